"""What the command modules share: console streams, options used by several commands, and
the loading of the configuration (``--config``, ``--model``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from calcscope.config import Config, load_config
from calcscope.errors import ConfigError

__all__ = [
    "AnonymizeOption",
    "ConfigOption",
    "ModelOption",
    "SpacingOption",
    "console",
    "err_console",
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


def load_settings(config_path: Path | None, model: Path | None = None) -> Config:
    """The configuration, with ``--model`` applied and the model checked (its card's
    hash and features): a model this calcscope cannot use stops the command here."""
    try:
        cfg = load_config(config_path)
        if model is not None:
            from calcscope.config import with_model

            cfg = with_model(cfg, model)
        if cfg.detect.model != "cnr":
            from calcscope.detection.classifier import resolve_model

            resolve_model(cfg.detect.model)
        return cfg
    except ConfigError as exc:
        err_console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
