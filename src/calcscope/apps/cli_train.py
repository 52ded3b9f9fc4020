"""``calcscope train``: the command (registered on the application in
:mod:`calcscope.apps.cli`)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from calcscope.apps.cli_common import console, err_console, exit_on_errors, fail

if TYPE_CHECKING:
    from calcscope.detection.model_card import ModelCard
    from calcscope.evaluation.training import TrainOptions, TrainResult

__all__ = ["card_table", "train"]


class TrainFormat(StrEnum):
    mias = "mias"
    cbis_ddsm = "cbis-ddsm"
    inbreast = "inbreast"


def train(
    fmt: Annotated[TrainFormat, typer.Option("--format", help="Ground-truth format.")],
    images: Annotated[Path, typer.Option("--images", help="Image folder (searched).")],
    truth: Annotated[
        Path,
        typer.Option(
            "--truth", help="mini-MIAS Info.txt, CBIS-DDSM CSV, or a folder of INbreast XML."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Model folder to write.")],
    spacing_mm: Annotated[
        float | None,
        typer.Option("--spacing-mm", help="Pixel spacing of every image in mm (mini-MIAS: 0.2)."),
    ] = None,
    normals: Annotated[
        list[Path] | None,
        typer.Option("--normals", help="Folder of extra normal images (repeatable)."),
    ] = None,
    cv: Annotated[
        bool, typer.Option("--cv", help="Cross-validated cluster FROC by woman, on the card.")
    ] = False,
    cv_folds: Annotated[
        int,
        typer.Option("--cv-folds", help="Folds of --cv (the number of women or more: one each)."),
    ] = 5,
    cv_out: Annotated[
        Path | None,
        typer.Option(
            "--cv-out", help="Folder for --cv's FROC (CSV, PNG) and per-image cluster scores."
        ),
    ] = None,
    base: Annotated[
        Path | None,
        typer.Option(
            "--base", help="Continue this model folder's boosting on the new data (init_model)."
        ),
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Name on the card (default: OUT's name).")
    ] = None,
    ensemble: Annotated[int, typer.Option("--ensemble", help="Ensemble members.")] = 3,
    insertions: Annotated[
        int,
        typer.Option(
            "--insertions",
            help="Insertions of 3 synthetic clusters per normal image and member (0: none).",
        ),
    ] = 4,
    rounds: Annotated[int, typer.Option("--rounds", help="Boosting rounds per member.")] = 250,
    phantoms: Annotated[
        int, typer.Option("--phantoms", help="Synthetic phantoms added (0: none).")
    ] = 48,
    operating_fp_per_image: Annotated[
        float,
        typer.Option(
            "--operating-fp-per-image",
            help="False clusters per image the card's operating point is calibrated to "
            "(on the --cv curve, else on the training images).",
        ),
    ] = 1.0,
    operating_score: Annotated[
        float | None,
        typer.Option(
            "--operating-score",
            help="Cluster operating point for the card, instead of calibrating.",
        ),
    ] = None,
    workers: Annotated[
        int, typer.Option("--workers", help="Processes building tables and analysing images.")
    ] = 2,
    cache: Annotated[
        Path | None,
        typer.Option("--cache", help="Candidate table cache (default OUT/.cache; resumable)."),
    ] = None,
) -> None:
    """Train the candidate classifier on your own set and write a model folder for --model."""
    from calcscope.evaluation.training import TrainOptions

    if spacing_mm is not None and not (0.01 <= spacing_mm <= 1.0):
        fail(f"--spacing-mm {spacing_mm} is outside 0.01-1 mm")
    if operating_score is not None and not (0.0 <= operating_score <= 1.0):
        fail(f"--operating-score {operating_score} is outside 0-1")
    if operating_fp_per_image <= 0:
        fail("--operating-fp-per-image must be positive")
    if min(ensemble, rounds, workers) < 1 or min(insertions, phantoms) < 0 or cv_folds < 2:
        fail(
            "--ensemble, --rounds and --workers must be at least 1, "
            "--insertions and --phantoms at least 0, --cv-folds at least 2"
        )
    opts = TrainOptions(
        spacing_mm=spacing_mm,
        rounds=rounds,
        ensemble=ensemble,
        insertions=insertions,
        phantoms=phantoms,
        cv_folds=cv_folds if cv else 0,
        workers=workers,
        name=name,
        cache_dir=cache,
        normals=tuple(normals or ()),
        base=base,
        operating_fp_per_image=operating_fp_per_image,
        operating_score=operating_score,
        cv_dir=cv_out if cv else None,
    )
    res = _run_training(fmt.value, images, truth, out, opts)
    console.print(card_table(res.card, res.out))
    console.print(f"use it: calcscope analyze --model {res.out} IMAGES --out DIR")


def _run_training(
    fmt: str, images: Path, truth: Path, out: Path, opts: TrainOptions
) -> TrainResult:
    """Train with a progress bar per step; errors exit 2 (configuration) or 1."""
    from calcscope.evaluation.training import train_model

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
    ) as progress:
        tasks: dict[str, TaskID] = {}

        def on_progress(what: str, done: int, total: int) -> None:
            if what not in tasks:
                tasks[what] = progress.add_task(what, total=total)
            progress.update(tasks[what], completed=done, total=total)

        def say(message: str) -> None:
            progress.console.print(message)

        with exit_on_errors(other_errors_exit=1):
            result = train_model(fmt, images, truth, out, opts, progress=on_progress, say=say)
    return result


def card_table(card: ModelCard, out: Path) -> Table:
    """What ``train`` tells at the end: the data, the cross-validated FROC, the hash."""
    table = Table(title=f"model {card.name} written to {out}")
    table.add_column("")
    table.add_column("")
    for d in card.data:
        table.add_row(
            f"data: {d.format} ({d.folder})",
            f"{d.n_images} images, {d.n_women} women, {d.n_clusters} clusters, "
            f"{d.n_positive_candidates} positive / {d.n_candidates} candidates, "
            f"{d.n_inserted_positives} on inserted clusters",
        )
    if card.cross_validation is not None:
        cvr = card.cross_validation
        table.add_row(
            f"cluster sensitivity, {cvr.split}",
            " / ".join(f"{p.sensitivity:.2f} at {p.fp_per_image:g}" for p in cvr.points)
            + " false clusters per image",
        )
    if card.operating_point is not None:
        op = card.operating_point
        measured = (
            f" ({op.fp_per_image:.2f} false clusters per image there)"
            if op.fp_per_image is not None
            else ""
        )
        table.add_row("cluster operating point", f"{op.cluster_score:g}{measured}")
    table.add_row("sha256", card.sha256)
    return table
