"""The one writer of an analysis' outputs: every surface (CLI, web viewer, batch, node) calls
:func:`write_outputs`.

One naming rule: every file of an image is ``<stem><suffix>`` in one folder, with the
suffixes of :data:`SUFFIXES`; the JSON report is always written, the others on request.
Every file is written atomically (:func:`calcscope.files.write_atomic`), the JSON last, so
a folder whose JSON exists holds every output that was asked for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

from calcscope.files import write_atomic

if TYPE_CHECKING:
    from calcscope.pipeline import Analysis
    from calcscope.reports.schema import AnalysisReport

__all__ = [
    "SUFFIXES",
    "SEED_FILE",
    "OutputOptions",
    "Outputs",
    "output_paths",
    "write_outputs",
    "folder_seed",
]

SUFFIXES: dict[str, str] = {
    "json": ".json",
    "overlay": ".overlay.png",
    "sr": ".sr.dcm",
    "gsps": ".gsps.dcm",
    "html": ".html",
    "letter_html": ".letter.html",
    "letter_txt": ".letter.txt",
}


#: The file in an output folder (batch, node) that keeps its de-identification seed.
SEED_FILE = ".calcscope-anonymize-seed"


def folder_seed(folder: str | Path) -> str:
    """The de-identification seed of a batch's or node's output folder.

    Read from :data:`SEED_FILE` in ``folder``, or drawn at random and written there
    (readable by its owner only) on the first run, so that a resumed run maps every UID,
    ID and image to the same pseudonym as the first. Keep the file private: whoever holds
    it can test a guessed identifier against a pseudonym; delete it to cut the link.
    """
    import os
    import secrets

    path = Path(folder) / SEED_FILE
    try:
        seed = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        seed = ""
    if not seed:  # none yet, or an empty one left by a crash while creating it
        Path(folder).mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        seed = secrets.token_hex(32)
        # created readable by its owner only (not through atomic_path, whose file gets
        # the umask's permissions); O_EXCL: a concurrent first run fails, never mixes
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(seed + "\n")
            fh.flush()
            os.fsync(fh.fileno())
    return seed


@dataclass(frozen=True)
class OutputOptions:
    """Which outputs to write beside the JSON report, and whether to de-identify them."""

    overlay: bool = True
    sr: bool = False
    """DICOM Mammography CAD SR and the presentation state (GSPS) with the outlines."""
    html: bool = False
    letter: bool = False
    """The patient letter, as HTML and plain text."""
    anonymize: bool = False
    """De-identify every output (PS3.15 Basic Profile, :mod:`calcscope.reports.dicom_source`):
    no patient block, no folders in paths, replaced UIDs, names, IDs and dates."""
    anonymize_seed: str | None = None
    """The secret of the de-identification's mapping (see
    :class:`~calcscope.reports.dicom_source.Deidentifier`); ``None``: random per process."""
    durable: bool = False
    """fsync every file and its folder (the DICOM node acknowledges only durable data)."""


@dataclass(frozen=True)
class Outputs:
    """The paths written for one image (``None`` where that output was not asked for)."""

    json: Path
    overlay: Path | None = None
    sr: Path | None = None
    gsps: Path | None = None
    html: Path | None = None
    letter_html: Path | None = None
    letter_txt: Path | None = None

    def written(self) -> list[Path]:
        """Every path written, the JSON first."""
        paths = (getattr(self, f.name) for f in fields(self))
        return [p for p in paths if p is not None]


def output_paths(out_dir: str | Path, stem: str) -> dict[str, Path]:
    """Where each output of the image ``stem`` goes in ``out_dir`` (the naming rule)."""
    out = Path(out_dir)
    return {kind: out / f"{stem}{suffix}" for kind, suffix in SUFFIXES.items()}


def write_outputs(
    analysis: Analysis,
    out_dir: str | Path,
    stem: str,
    options: OutputOptions | None = None,
    *,
    source_path: str | None = None,
    report: AnalysisReport | None = None,
) -> Outputs:
    """Write the outputs of one analysis into ``out_dir`` as ``<stem><suffix>``.

    The report model (:func:`calcscope.reports.schema.to_report`) is built once and
    every renderer (HTML, letter, SR, GSPS) takes it; only the overlay PNG needs the
    pixels of ``analysis``. ``source_path`` replaces the report's source path (the node
    moves an image after analysing it; with ``anonymize`` only its de-identified
    name, :meth:`~calcscope.reports.dicom_source.Deidentifier.source_name`); ``report``
    is the report model when the caller already built it (with
    ``anonymize``, built with the same seed). Returns the paths written.
    """
    from calcscope.reports.schema import to_report

    opts = options or OutputOptions()
    paths = output_paths(out_dir, stem)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    seed = opts.anonymize_seed
    if report is None:
        report = to_report(analysis, anonymize=opts.anonymize, seed=seed)
    # The DICOM exports re-read the image's header from where it was analysed (an
    # anonymized report keeps only the file name); they de-identify it themselves.
    dicom_report = to_report(analysis) if opts.anonymize else report
    if source_path is not None:
        if opts.anonymize:
            from calcscope.reports.dicom_source import Deidentifier

            sop = dicom_report.source.sop_instance_uid
            source_path = Deidentifier(seed).source_name(source_path, sop)
        source = report.source.model_copy(update={"path": source_path})
        report = report.model_copy(update={"source": source})
    written: dict[str, Path] = {}

    def put(kind: str, data: bytes | str) -> None:
        written[kind] = write_atomic(paths[kind], data, durable=opts.durable)

    if opts.overlay:
        from calcscope.reports.schema import overlay_png

        put("overlay", overlay_png(analysis))
    if opts.sr:
        from calcscope.reports.gsps import gsps_bytes
        from calcscope.reports.sr import sr_bytes

        put("sr", sr_bytes(dicom_report, anonymize=opts.anonymize, seed=seed))
        put("gsps", gsps_bytes(dicom_report, anonymize=opts.anonymize, seed=seed))
    if opts.html:
        from calcscope.reports.html import render_html
        from calcscope.reports.schema import overlay_png

        put("html", render_html(report, overlay_png=overlay_png(analysis, max_side_px=2048)))
    if opts.letter:
        from calcscope.reports.letter import letter_html, letter_text

        put("letter_html", letter_html(report))
        put("letter_txt", letter_text(report))
    put("json", json.dumps(report.model_dump(mode="json"), indent=1))
    return Outputs(**written)
