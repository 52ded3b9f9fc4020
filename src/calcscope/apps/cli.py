"""Command line: ``calcscope analyze | demo | phantom | evaluate | train | node | batch``.

Exit codes: 0 all inputs analysed; 1 at least one input failed (the others were still
analysed and written); 2 usage or configuration error.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from calcscope.about import DISCLAIMER, __version__
from calcscope.apps.cli_common import (
    AnonymizeOption,
    ConfigOption,
    ModelOption,
    SpacingOption,
    console,
    err_console,
    fail,
    load_settings,
)
from calcscope.config import Config
from calcscope.errors import CalcscopeError, ConfigError, InputError, one_line

if TYPE_CHECKING:
    from calcscope.exam.compare import PriorExam
    from calcscope.pipeline import Analysis
    from calcscope.reports.writer import OutputOptions, Outputs

__all__ = ["app", "main", "analyze_files", "summary_table", "FileResult"]

app = typer.Typer(
    name="calcscope",
    help="Find breast calcifications on mammograms and describe them in BI-RADS terms. "
    + DISCLAIMER,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@dataclass
class FileResult:
    path: Path
    ok: bool
    message: str = ""
    json_path: Path | None = None
    n_calcs: int = 0
    n_macro: int = 0
    n_clusters: int = 0
    category: str = ""
    follow_up: str = ""
    follow_up_short: str = ""  # the follow-up in a few words (summary table)
    seconds: float = 0.0
    analysis: Analysis | None = None  # only when asked to keep it


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"calcscope {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool | None,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Print the version."
        ),
    ] = None,
) -> None:
    """calcscope: research software, not a medical device."""


def _unique_stem(path: Path, used: set[str]) -> str:
    stem = path.stem if path.suffix.lower() != ".gz" else Path(path.stem).stem
    if stem in used:
        candidate = f"{path.parent.name}_{stem}"
        k = 2
        while candidate in used:
            candidate = f"{path.parent.name}_{stem}_{k}"
            k += 1
        stem = candidate
    used.add(stem)
    return stem


def analyze_files(
    files: list[Path],
    out: Path,
    *,
    spacing_mm: float | None = None,
    config: Config | None = None,
    overlay: bool = True,
    anonymize: bool = False,
    laterality: str | None = None,
    view: str | None = None,
    show_progress: bool = True,
    keep_analysis: bool = False,
    sr: bool = False,
    html: bool = False,
    letter: bool = False,
    overrides: Mapping[Path, tuple[str | None, str | None]] | None = None,
    on_analysis: Callable[[Path, Analysis, Outputs], None] | None = None,
) -> list[FileResult]:
    """Analyse ``files`` one by one into ``out``; a failure never stops the run.

    ``overrides`` gives a file its laterality and view (an exam manifest's);
    ``on_analysis`` is called with each analysed file, its analysis and the paths
    written (the exam documents are built from them).

    Beside ``<stem>.json`` (and ``<stem>.overlay.png`` with ``overlay``): ``sr`` writes the
    DICOM Mammography CAD SR ``<stem>.sr.dcm`` and the presentation state with the
    outlines ``<stem>.gsps.dcm``; ``html`` the report ``<stem>.html``; ``letter`` the
    patient letter ``<stem>.letter.html`` and ``<stem>.letter.txt``. ``anonymize``
    applies to every file written.
    """
    from calcscope.reports.writer import OutputOptions

    job = _Job(
        out=out,
        config=config or Config(),
        options=OutputOptions(
            overlay=overlay, sr=sr, html=html, letter=letter, anonymize=anonymize
        ),
        spacing_mm=spacing_mm,
        laterality=laterality,
        view=view,
        keep_analysis=keep_analysis,
        overrides=dict(overrides or {}),
        on_analysis=on_analysis,
    )
    out.mkdir(parents=True, exist_ok=True)
    results: list[FileResult] = []
    used: set[str] = set()
    with _file_progress(show_progress) as progress:
        task = progress.add_task("analysing", total=len(files), current="")
        for path in files:
            progress.update(task, current=path.name)
            results.append(_analyze_one(path, used, job))
            progress.advance(task)
    return results


@dataclass(frozen=True)
class _Job:
    """What :func:`analyze_files` does to each file."""

    out: Path
    config: Config
    options: OutputOptions
    spacing_mm: float | None
    laterality: str | None
    view: str | None
    keep_analysis: bool
    overrides: Mapping[Path, tuple[str | None, str | None]] = dataclass_field(default_factory=dict)
    on_analysis: Callable[[Path, Analysis, Outputs], None] | None = None


def _file_progress(show: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[current]}"),
        console=err_console,
        disable=not show,
        transient=False,
    )


def _output_stem(path: Path, analysis: Analysis, job: _Job, used: set[str]) -> str:
    """The unused stem of ``path``'s outputs: its file name's, or with ``anonymize`` its
    de-identified SOP Instance UID (a keyed hash of the path for an image without one),
    never derived from the file's or its folders' names."""
    if not job.options.anonymize:
        return _unique_stem(path, used)
    from calcscope.reports.dicom_source import Deidentifier

    sop = analysis.mammogram.source.sop_instance_uid
    base = Deidentifier(job.options.anonymize_seed).output_stem(str(path), sop)
    stem, k = base, 2
    while stem in used:
        stem, k = f"{base}_{k}", k + 1
    used.add(stem)
    return stem


def _analyze_one(path: Path, used: set[str], job: _Job) -> FileResult:
    """Analyse one file and write its outputs as ``<stem>...`` (:func:`_output_stem`, the
    stem added to ``used``); a failure (a decoder's panic included) is printed as one
    line and returned, never raised."""
    from calcscope.pipeline import analyze
    from calcscope.reports.writer import write_outputs

    t0 = time.perf_counter()
    lat, view = job.overrides.get(path, (None, None))
    try:
        analysis = analyze(
            path,
            spacing_mm=job.spacing_mm,
            config=job.config,
            laterality=job.laterality or lat,
            view=job.view or view,
        )
        stem = _output_stem(path, analysis, job, used)
        written = write_outputs(analysis, job.out, stem, job.options)
        if job.on_analysis is not None:
            job.on_analysis(path, analysis, written)
    except CalcscopeError as exc:
        msg = str(exc) if isinstance(exc, InputError) and exc.path else one_line(f"{path}: {exc}")
    except MemoryError:
        msg = f"{path}: out of memory while analysing this image"
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - one bad file (a panic too) must not stop the run
        msg = one_line(f"{path}: unexpected {type(exc).__name__}: {exc}")
    else:
        follow_up = analysis.assessment.follow_up
        return FileResult(
            path=path,
            ok=True,
            json_path=written.json,
            n_calcs=len(analysis.detected),
            n_macro=sum(1 for c in analysis.detected if c.kind.value == "macro"),
            n_clusters=len(analysis.clusters),
            category=analysis.assessment.category.value,
            follow_up=follow_up.label,
            follow_up_short=_FOLLOW_UP_SHORT.get(follow_up.value, follow_up.label),
            seconds=time.perf_counter() - t0,
            analysis=analysis if job.keep_analysis else None,
        )
    err_console.print(f"[red]error:[/] {msg}")
    return FileResult(path=path, ok=False, message=msg)


_FOLLOW_UP_SHORT = {
    "routine_screening": "routine",
    "mammogram_in_6_months": "6-month mammo",
    "diagnostic_mammography_spot_compression_magnification": "spot/mag views",
    "biopsy": "biopsy",
}
"""The follow-up's short label, by its code, for the summary table."""


def summary_table(results: list[FileResult]) -> Table:
    """The summary of an ``analyze`` run: one row per file, one or two lines each in an
    80-column terminal (the follow-up in a few words; a failure's reason cut to one line,
    every error having been printed in full as it happened)."""
    table = Table(
        title="calcscope summary",
        caption=DISCLAIMER,
        box=box.SIMPLE_HEAD,
        collapse_padding=True,
        show_edge=False,
        pad_edge=False,
    )
    table.add_column("file", overflow="fold", ratio=1, min_width=12)
    for col in ("calcs", "macro", "clusters"):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("BI-RADS", no_wrap=True)
    table.add_column("follow-up", no_wrap=True, overflow="ellipsis", max_width=14)
    table.add_column("status", no_wrap=True)
    for r in results:
        if r.ok:
            table.add_row(
                r.path.name,
                str(r.n_calcs),
                str(r.n_macro),
                str(r.n_clusters),
                r.category,
                r.follow_up_short or r.follow_up,
                f"[green]ok[/] {r.seconds:.1f}s",
            )
        else:
            reason = r.message.removeprefix(f"{r.path}: ")
            table.add_row(r.path.name, "", "", "", "", reason, "[red]failed[/]")
    return table


def _gather_inputs(
    inputs: list[Path], prior: list[Path]
) -> tuple[list[Path], list[Path], list[PriorExam], list[Path]]:
    """The image files of ``inputs`` and ``--prior`` (searched), the inputs that do not
    exist (each reported), the prior exam documents read, and the prior image files.
    Exits 2 for an unreadable exam document, 1 when nothing is found."""
    from calcscope.apps.exams import split_priors
    from calcscope.imaging.io import find_images

    try:
        prior_exams, prior_inputs = split_priors([p for p in prior if p.exists()])
    except ConfigError as exc:
        fail(str(exc))
    missing = [p for p in [*inputs, *prior] if not p.exists()]
    prior_files = find_images(prior_inputs) if prior_inputs else []
    files = find_images([p for p in inputs if p.exists()])
    files += [p for p in prior_files if p not in set(files)]
    for p in missing:
        err_console.print(f"[red]error:[/] {p}: no such file or folder")
    if not files and not missing:
        fail("no mammogram files found in the given inputs", 1)
    return files, missing, prior_exams, prior_files


@app.command()
def analyze(
    inputs: Annotated[list[Path], typer.Argument(help="Mammogram files or folders (searched).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    spacing_mm: SpacingOption = None,
    config_path: ConfigOption = None,
    model: ModelOption = None,
    laterality: Annotated[str | None, typer.Option(help="L or R, overrides the file.")] = None,
    view: Annotated[str | None, typer.Option(help="CC, MLO, ..., overrides the file.")] = None,
    overlay: Annotated[bool, typer.Option(help="Write <stem>.overlay.png.")] = True,
    anonymize: AnonymizeOption = False,
    sr: Annotated[
        bool,
        typer.Option(
            "--sr", help="Write the DICOM Mammography CAD SR <stem>.sr.dcm and <stem>.gsps.dcm."
        ),
    ] = False,
    html: Annotated[
        bool, typer.Option("--html", help="Write the HTML report <stem>.html.")
    ] = False,
    letter: Annotated[
        bool,
        typer.Option(
            "--letter", help="Write the patient letter <stem>.letter.html and .letter.txt."
        ),
    ] = False,
    all_reports: Annotated[
        bool, typer.Option("--all-reports", help="Same as --sr --html --letter.")
    ] = False,
    exam_manifest: Annotated[
        Path | None,
        typer.Option(
            "--exam-manifest",
            help="CSV with columns file, exam, laterality, view: groups files into exams.",
        ),
    ] = None,
    prior: Annotated[
        list[Path] | None,
        typer.Option(
            "--prior",
            help="Prior exam: image files or folders (analysed too), or a previous run's "
            "output folder or <exam>.exam.json (read, not re-analysed). Repeatable.",
        ),
    ] = None,
) -> None:
    """Analyse mammograms: writes <stem>.json (and an overlay PNG) per image into OUT, and
    <exam>.exam.json per exam (images of one study, or of one exam of --exam-manifest),
    each exam compared with the patient's latest earlier exam among the inputs or --prior.

    --sr, --letter and --html write each image's SR, letter and page and, for an exam of
    two or more images, one more for the exam (<exam>.sr.dcm, <exam>.letter.html and
    .letter.txt, <exam>.html), listed in the exam JSON's outputs."""
    from calcscope.apps.exams import ExamCollector

    cfg = load_settings(config_path, model)
    if spacing_mm is not None and not (0.01 <= spacing_mm <= 1.0):
        fail(f"--spacing-mm {spacing_mm} is outside 0.01-1 mm")
    files, missing, prior_exams, prior_files = _gather_inputs(inputs, prior or [])
    try:
        exams = ExamCollector.for_files(
            files,
            out,
            manifest=exam_manifest,
            anonymize=anonymize,
            sr=sr or all_reports,
            letter=letter or all_reports,
            html=html or all_reports,
            priors=prior_exams,
            prior_files=prior_files,
        )
    except ConfigError as exc:
        fail(str(exc))
    results = analyze_files(
        files,
        out,
        spacing_mm=spacing_mm,
        config=cfg,
        overlay=overlay,
        anonymize=anonymize,
        laterality=laterality,
        view=view,
        sr=sr or all_reports,
        html=html or all_reports,
        letter=letter or all_reports,
        overrides=exams.overrides,
        on_analysis=exams.add,
    )
    exams.write()
    console.print(summary_table(results))
    failed = sum(not r.ok for r in results) + len(missing)
    if failed:
        err_console.print(f"[red]{failed} of {len(results) + len(missing)} inputs failed[/]")
        raise typer.Exit(1)


@app.command()
def phantom(
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Image file: .dcm, .png, .tif, .pgm")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    spacing_mm: Annotated[
        float | None, typer.Option("--spacing-mm", help="Pixel spacing (0.07; exam 0.1).")
    ] = None,
    view: Annotated[str, typer.Option(help="CC or MLO.")] = "CC",
    laterality: Annotated[str, typer.Option(help="L or R.")] = "L",
    exam: Annotated[
        Path | None,
        typer.Option(
            "--exam", help="Write a four-view exam (DICOM, one study) and truth.json into DIR."
        ),
    ] = None,
    follow_up: Annotated[
        bool,
        typer.Option(
            "--follow-up",
            help="With --exam: a prior and a current exam of one woman, two years apart "
            "(DIR/prior, DIR/current), a cluster that grows, one that stays, one that is new.",
        ),
    ] = False,
) -> None:
    """Write a synthetic mammogram and its ground truth (<file>.truth.json), or with
    --exam DIR a four-view exam (RCC, RMLO, LCC, LMLO) and its truth.json."""
    if (out is None) == (exam is None):
        fail("give either --out FILE or --exam DIR")
    if follow_up and exam is None:
        fail("--follow-up needs --exam DIR")
    spacing = spacing_mm if spacing_mm is not None else (0.1 if exam is not None else 0.07)
    if not (0.03 <= spacing <= 0.3):
        fail("--spacing-mm must be within 0.03-0.3 mm")
    if exam is not None:
        from calcscope.apps.exams import write_phantom_exam

        try:
            console.print(write_phantom_exam(exam, seed, spacing, laterality, follow_up))
        except ValueError as exc:
            fail(str(exc))
        return
    from calcscope.imaging.io import write_image
    from calcscope.model import Laterality, View
    from calcscope.phantom.mammogram import make_phantom, truth_to_dict

    try:
        ph = make_phantom(
            seed=seed,
            spacing_mm=spacing,
            view=View(view.upper()),
            laterality=Laterality(laterality.upper()),
        )
    except ValueError as exc:
        fail(str(exc))
    try:
        path = write_image(ph.mammogram, out)  # type: ignore[arg-type]
    except CalcscopeError as exc:
        fail(str(exc), 1)
    truth = path.with_name(path.name + ".truth.json")
    truth.write_text(json.dumps(truth_to_dict(ph), indent=1))
    console.print(f"wrote {path} and {truth}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("demo-out"),
    seed: Annotated[int, typer.Option(help="Phantom seed.")] = 0,
) -> None:
    """Make a full-field synthetic mammogram (phantom), analyse it, compare with its truth."""
    from calcscope.evaluation.phantom_study import compare_with_truth
    from calcscope.imaging.io import write_image
    from calcscope.phantom.mammogram import make_phantom, truth_to_dict

    out.mkdir(parents=True, exist_ok=True)
    with console.status("making a full-field phantom mammogram..."):
        ph = make_phantom(seed=seed)
        image = write_image(ph.mammogram, out / "phantom.dcm")
        (out / "phantom.truth.json").write_text(json.dumps(truth_to_dict(ph), indent=1))
    console.print(f"phantom written to {image} (truth in phantom.truth.json)")
    results = analyze_files([image], out, keep_analysis=True)
    console.print(summary_table(results))
    if not results[0].ok:
        raise typer.Exit(1)
    analysis = results[0].analysis
    assert analysis is not None  # kept (keep_analysis) for an image analysed
    scores = compare_with_truth(ph, analysis)
    table = Table(title="detection against the phantom's truth")
    table.add_column("measure")
    table.add_column("value")
    for k, v in scores.items():
        table.add_row(k, f"{v:.3g}" if isinstance(v, float) else str(v))
    console.print(table)
    console.print(f"results in {out}/ (phantom.json, phantom.overlay.png). {DISCLAIMER}")


class EvalFormat(StrEnum):
    mias = "mias"
    cbis_ddsm = "cbis-ddsm"
    inbreast = "inbreast"


@app.command()
def evaluate(
    fmt: Annotated[EvalFormat, typer.Option("--format", help="Ground-truth format.")],
    truth: Annotated[Path, typer.Option("--truth", help="Ground-truth file or folder.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    images: Annotated[
        Path | None, typer.Option("--images", help="Image folder (omit for CBIS-DDSM descriptors).")
    ] = None,
    spacing_mm: SpacingOption = None,
    config_path: ConfigOption = None,
    model: ModelOption = None,
) -> None:
    """Score calcscope on a public data set: FROC of clusters, or CBIS-DDSM descriptor rules."""
    out.mkdir(parents=True, exist_ok=True)
    if not truth.exists():
        fail(f"{truth}: no such file or folder")
    if images is None:
        if fmt is not EvalFormat.cbis_ddsm:
            fail("--images is needed for this format")
        from calcscope.evaluation.recorded_descriptors import assess_cbis_csv, format_evaluation

        try:
            ev = assess_cbis_csv(
                truth, out, thresholds=load_settings(config_path).assess.thresholds
            )
        except CalcscopeError as exc:
            fail(str(exc), 1)
        console.print(format_evaluation(ev))
        console.print(f"rows written to {out / 'descriptor_assessment.csv'}")
        return
    from calcscope.evaluation.run import evaluate_images

    cfg = load_settings(config_path, model)
    with Progress(
        TextColumn("[bold]evaluating"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[current]}"),
        console=err_console,
    ) as progress:
        task = progress.add_task("evaluating", total=None, current="")

        def on_image(key: str, i: int, n: int) -> None:
            progress.update(task, total=n, completed=i, current=key)

        try:
            res = evaluate_images(
                fmt.value, images, truth, out, spacing_mm=spacing_mm, config=cfg, on_image=on_image
            )
        except CalcscopeError as exc:
            fail(str(exc), 1)
        progress.update(task, completed=progress.tasks[0].total)
    table = Table(
        title=f"cluster FROC on {fmt.value} ({res.n_images} images, "
        f"{res.cluster_curve.n_true} true clusters)"
    )
    table.add_column("false positives / image")
    table.add_column("cluster sensitivity")
    for fp, sens in res.sensitivities().items():
        table.add_row(f"{fp:g}", f"{sens:.3f}")
    console.print(table)
    for key, reason in sorted(res.excluded.items()):
        console.print(f"left out {key}: {reason}")
    for key, reason in sorted(res.failed.items()):
        err_console.print(f"[red]failed[/] {key}: {reason}")
    console.print(f"FROC written to {out / 'froc_clusters.csv'} and {out / 'froc_clusters.png'}")


def _register() -> None:
    """The commands kept in their own modules: train, and the services (node, batch,
    serve)."""
    from calcscope.apps.cli_services import batch, node, serve
    from calcscope.apps.cli_train import train

    app.command(name="train")(train)
    app.command(name="node")(node)
    app.command(name="batch")(batch)
    app.command(name="serve")(serve)


_register()


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (tests call it with ``argv``)."""
    try:
        app(args=argv, prog_name="calcscope")
    except SystemExit as exc:
        if exc.code is None:
            return 0
        return exc.code if isinstance(exc.code, int) else 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
