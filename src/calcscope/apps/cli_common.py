"""What the command modules share: console streams, options used by several commands, the
loading of the configuration (``--config``, ``--model``) and the way a command stops on an
error (``error: ...`` on stderr, exit 2 for usage and configuration errors)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from calcscope.config import Config, load_config
from calcscope.errors import CalcscopeError, ConfigError

__all__ = [
    "AnonymizeOption",
    "ConfigOption",
    "ModelOption",
    "SpacingOption",
    "console",
    "err_console",
    "exit_on_errors",
    "fail",
    "load_settings",
]

console = Console(stderr=False)
err_console = Console(stderr=True)

# options shared by several commands
ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="Configuration file (JSON or TOML).")
]
AnonymizeOption = Annotated[
    bool,
    typer.Option(
        "--anonymize",
        help="De-identify every output (DICOM PS3.15 Basic Profile, by dicognito): no "
        "patient, no folders, UIDs, names, IDs, institution and dates replaced.",
    ),
]
ModelOption = Annotated[
    Path | None,
    typer.Option(
        "--model",
        help="Model folder written by 'calcscope train' (default: the shipped model).",
    ),
]
SpacingOption = Annotated[
    float | None,
    typer.Option("--spacing-mm", help="Pixel spacing in mm for files that carry none."),
]


def fail(message: str, code: int = 2) -> NoReturn:
    """Stop the command: ``error: message`` on stderr, exit ``code`` (2: usage or
    configuration error)."""
    err_console.print(f"[red]error:[/] {message}")
    raise typer.Exit(code)


@contextmanager
def exit_on_errors(*, other_errors_exit: int | None = None) -> Iterator[None]:
    """Run the block; a :class:`ConfigError` it raises stops the command with exit 2, and,
    when ``other_errors_exit`` is given, any other :class:`CalcscopeError` with that code
    (each as ``error: ...`` on stderr)."""
    try:
        yield
    except ConfigError as exc:
        err_console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    except CalcscopeError as exc:
        if other_errors_exit is None:
            raise
        err_console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(other_errors_exit) from exc


def load_settings(config_path: Path | None, model: Path | None = None) -> Config:
    """The configuration, with ``--model`` applied and the model checked (its card's
    hash and features): a model this calcscope cannot use stops the command here."""
    with exit_on_errors():
        cfg = load_config(config_path)
        if model is not None:
            from calcscope.config import with_model

            cfg = with_model(cfg, model)
        if cfg.detect.model != "cnr":
            from calcscope.detection.classifier import resolve_model

            resolve_model(cfg.detect.model)
    return cfg
