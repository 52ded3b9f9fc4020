"""Batch analysis of an archive with Dask: resumable, one atomic result folder per image.

``run_batch(INPUT_DIR, OUT)`` lists the images under ``INPUT_DIR`` (as
:func:`calcscope.imaging.io.find_images`), and runs :func:`calcscope.pipeline.analyze` on each
with Dask: a :class:`distributed.LocalCluster` of ``workers`` processes by default, or an
existing scheduler (``tcp://host:8786``; its workers must see ``INPUT_DIR`` and ``OUT``
under the same paths, e.g. on a shared file system, and have calcscope installed).

Layout of ``OUT``::

    OUT/<image id>/analysis.json   the JSON report            (or error.json on failure)
    OUT/<image id>/clusters.csv    this image's rows of the summary
    OUT/<image id>/views.json      what the pairing of views needs (see write_breasts)
    OUT/<image id>/_done           written last: the folder is complete
    OUT/summary.csv                one row per cluster of every image, sorted
    OUT/images.csv                 one row per image: status, counts, category, error
    OUT/breasts.csv                clusters seen on both views of a breast: quadrant, clock

The image id is the path relative to ``INPUT_DIR`` with ``/`` replaced by ``__``. Each
task writes into ``OUT/.tmp-<id>-<random>/`` and renames it to ``OUT/<id>/`` (atomic), so
a folder either is complete or does not exist. A rerun skips folders with ``_done``,
deletes half-written ones (without ``_done``) and temporary folders, and redoes those
images; the summaries are rebuilt from the per-image files in image-id order, so a killed
and rerun batch gives the same ``summary.csv`` as an uninterrupted one.

Memory stays bounded for any archive size: tasks carry paths (never pixels), at most
``window`` tasks (4 per worker thread by default) are in flight, each worker holds one
image at a time, and the summaries are streamed to disk. A failure (unreadable file, not
a mammogram, a killed worker) is recorded in ``OUT/<id>/error.json``; the batch goes on.
Research software, not a medical device.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from calcscope.config import Config
from calcscope.errors import CalcscopeError, ConfigError
from calcscope.files import atomic_path
from calcscope.model import Laterality
from calcscope.reading.assess import Category
from calcscope.reading.location import ViewFinding, clock_face, pair_views

__all__ = [
    "SUMMARY_COLUMNS",
    "IMAGE_COLUMNS",
    "BatchResult",
    "image_id",
    "analyse_to_folder",
    "run_batch",
    "write_summaries",
    "write_breasts",
    "BREAST_COLUMNS",
]

SUMMARY_COLUMNS = (
    "image",
    "cluster_id",
    "center_row",
    "center_col",
    "n_members",
    "n_detected",
    "extent_mm",
    "morphology",
    "distribution",
    "half",
    "depth",
    "nipple_distance_mm",
    "category",
    "likelihood",
    "follow_up",
    "score",
)
IMAGE_COLUMNS = (
    "image",
    "path",
    "status",
    "n_calcifications",
    "n_microcalcifications",
    "n_clusters",
    "n_macro_findings",
    "category",
    "follow_up",
    "error",
)
BREAST_COLUMNS = (
    "study",
    "laterality",
    "cc_image",
    "cc_cluster_id",
    "mlo_image",
    "mlo_cluster_id",
    "nipple_distance_mm",
    "distance_difference_mm",
    "quadrant",
    "clock",
    "morphology",
    "category",
    "likelihood",
)
DONE = "_done"
_TMP = ".tmp-"


@dataclass(frozen=True)
class BatchResult:
    """What one :func:`run_batch` call did."""

    n_images: int
    n_skipped: int  # already done by an earlier run
    n_analysed: int
    n_failed: int
    summary_csv: Path
    images_csv: Path
    seconds: float
    workers: int
    breasts_csv: Path | None = None

    @property
    def images_per_second(self) -> float:
        n = self.n_analysed + self.n_failed
        return n / self.seconds if self.seconds > 0 else 0.0


def image_id(path: Path, root: Path) -> str:
    """The result folder name of ``path``: its path under ``root``, ``/`` -> ``__``."""
    try:
        rel = path.resolve().relative_to(root.resolve())
    except ValueError:
        rel = Path(path.name)
    return rel.as_posix().replace("/", "__")


def _csv_text(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def _image_record(
    key: str, path: str, report: dict[str, Any] | None, error: str = ""
) -> dict[str, Any]:
    if report is None:
        return {"image": key, "path": path, "status": "failed", "error": error}
    a = report["assessment"]
    return {
        "image": key,
        "path": path,
        "status": "ok",
        "n_calcifications": report["n_calcifications"],
        "n_microcalcifications": report["n_microcalcifications"],
        "n_clusters": len(report["clusters"]),
        "n_macro_findings": len(report["macro_findings"]),
        "category": a["category"],
        "follow_up": a["follow_up"],
        "error": "",
    }


def _blank_none(value: Any) -> Any:
    return "" if value is None else value


def _cluster_rows(key: str, report: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for c in report["clusters"]:
        where = c.get("location") or {}  # schema 1.3; empty for older reports
        rows.append(
            {
                "image": key,
                "cluster_id": c["id"],
                "center_row": c["center_rc"][0],
                "center_col": c["center_rc"][1],
                "n_members": c["n_members"],
                "n_detected": c.get("n_detected", ""),
                "extent_mm": c["extent_mm"],
                "morphology": c["morphology"],
                "distribution": c["distribution"],
                "half": where.get("half") or "",
                "depth": where.get("depth") or "",
                "nipple_distance_mm": _blank_none(where.get("nipple_distance_mm")),
                "category": c["assessment"]["category"],
                "likelihood": c["assessment"]["likelihood"],
                "follow_up": c["assessment"]["follow_up"],
                "score": c["score"],
            }
        )
    return rows


def analyse_to_folder(
    path: str,
    out_dir: str,
    key: str,
    config: Config | None = None,
    spacing_mm: float | None = None,
) -> dict[str, Any]:
    """Analyse one image into ``out_dir/key/`` atomically (the Dask task).

    Returns the small per-image record of ``images.csv`` (never pixels). A failure is
    recorded in ``error.json`` and returned with ``status`` ``failed``; it never raises
    for a bad input.
    """
    from calcscope.pipeline import analyze
    from calcscope.reports.schema import to_report

    out = Path(out_dir)
    tmp = out / f"{_TMP}{key}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        try:
            analysis = analyze(path, spacing_mm=spacing_mm, config=config)
            report = to_report(analysis).model_dump(mode="json")
        except Exception as exc:  # noqa: BLE001 - a per-image record instead of a crash
            msg = str(exc) if isinstance(exc, CalcscopeError) else f"{type(exc).__name__}: {exc}"
            error = {"image": key, "path": path, "error": type(exc).__name__, "message": msg}
            if not isinstance(exc, CalcscopeError):
                error["traceback"] = traceback.format_exc()
            (tmp / "error.json").write_text(json.dumps(error, indent=1) + "\n")
            record = _image_record(key, path, None, msg)
            rows: list[dict[str, Any]] = []
        else:
            (tmp / "analysis.json").write_text(json.dumps(report, indent=1) + "\n")
            (tmp / "views.json").write_text(json.dumps(_view_record(report)) + "\n")
            record = _image_record(key, path, report)
            rows = _cluster_rows(key, report)
        (tmp / "clusters.csv").write_text(_csv_text(rows, SUMMARY_COLUMNS))
        (tmp / "image.json").write_text(json.dumps(record) + "\n")
        (tmp / DONE).write_text(record["status"] + "\n")
        final = out / key
        if final.exists():  # half-written by an interrupted run (a complete one is skipped)
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return record


def _record_crash(out: Path, key: str, path: str, exc: BaseException) -> dict[str, Any]:
    """Record a task that died outside :func:`analyse_to_folder` (e.g. a killed worker)."""
    msg = f"{type(exc).__name__}: {exc}"
    tmp = out / f"{_TMP}{key}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    error = {"image": key, "path": path, "error": type(exc).__name__, "message": msg}
    (tmp / "error.json").write_text(json.dumps(error, indent=1) + "\n")
    record = _image_record(key, path, None, msg)
    (tmp / "clusters.csv").write_text(_csv_text([], SUMMARY_COLUMNS))
    (tmp / "image.json").write_text(json.dumps(record) + "\n")
    (tmp / DONE).write_text("failed\n")
    if (out / key).exists():
        shutil.rmtree(out / key)
    os.replace(tmp, out / key)
    return record


def _is_done(folder: Path, retry_failed: bool) -> bool:
    marker = folder / DONE
    if not marker.exists():
        return False
    return not (retry_failed and marker.read_text().strip() == "failed")


def write_summaries(out_dir: str | Path, keys: list[str]) -> tuple[Path, Path]:
    """Write ``summary.csv`` (one row per cluster) and ``images.csv`` from the folders.

    Streams the per-image files in the order of ``keys`` (sorted by the caller), through
    temporary files renamed at the end (:func:`calcscope.imaging.io.atomic_path`).
    """
    out = Path(out_dir)
    summary, images = out / "summary.csv", out / "images.csv"
    with (
        atomic_path(summary) as tmp_s,
        atomic_path(images) as tmp_i,
        open(tmp_s, "w", newline="") as fs,
        open(tmp_i, "w", newline="") as fi,
    ):
        ws = csv.DictWriter(fs, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
        wi = csv.DictWriter(fi, fieldnames=IMAGE_COLUMNS, lineterminator="\n")
        ws.writeheader()
        wi.writeheader()
        for key in keys:
            folder = out / key
            if not (folder / DONE).exists():
                wi.writerow({"image": key, "status": "missing"})
                continue
            with (folder / "clusters.csv").open(newline="") as fh:
                ws.writerows(csv.DictReader(fh))
            wi.writerow(json.loads((folder / "image.json").read_text()))
    return summary, images


_CC_VIEWS = ("CC", "XCCL")
_MLO_VIEWS = ("MLO", "ML", "LM")


def _view_record(report: dict[str, Any]) -> dict[str, Any] | None:
    """What :func:`write_breasts` needs of one report (written to ``views.json`` by the
    task, so that the end of a batch does not read every full report again); None for
    an image that cannot be paired (no study, laterality or view)."""
    src = report.get("source") or {}
    study = src.get("study_instance_uid") or (report.get("patient") or {}).get("id")
    lat, view = src.get("laterality"), src.get("view")
    if not study or lat not in ("L", "R") or view not in _CC_VIEWS + _MLO_VIEWS:
        return None
    findings = []
    for c in report.get("clusters", []):
        loc = c.get("location") or {}
        if loc.get("nipple_distance_mm") is None or loc.get("offset_mm") is None:
            continue
        findings.append(
            {
                "finding_id": int(c["id"]),
                "nipple_distance_mm": float(loc["nipple_distance_mm"]),
                "offset_mm": float(loc["offset_mm"]),
                "morphology": str(c["morphology"]),
                "category": str(c["assessment"]["category"]),
                "likelihood": float(c["assessment"]["likelihood"]),
            }
        )
    return {"study": str(study), "laterality": lat, "view": view, "findings": findings}


def write_breasts(out_dir: str | Path, keys: list[str]) -> Path:
    """Write ``breasts.csv``: clusters seen on both the CC and the MLO view of one breast.

    Images are grouped by study (Study Instance UID, else patient id) and laterality; in
    each group the clusters of the CC views and of the MLO (ML, LM) views are paired by
    their distance from the nipple (:func:`calcscope.reading.location.pair_views`), and each pair
    gets its quadrant and clock face (:func:`calcscope.reading.location.clock_face`): the CC view
    tells outer from inner, the MLO view upper from lower. Each row gives the worse of the
    two calls. Images without a study, laterality or view are left out. Each image's
    ``views.json`` is read, or its ``analysis.json`` for folders written without it.
    """
    out = Path(out_dir)
    groups: dict[tuple[str, str], tuple[list[ViewFinding], list[ViewFinding]]] = {}
    for key in keys:
        views, full = out / key / "views.json", out / key / "analysis.json"
        if views.exists():
            record = json.loads(views.read_text())
        elif full.exists():
            record = _view_record(json.loads(full.read_text()))
        else:
            continue
        if record is None:
            continue
        cc, mlo = groups.setdefault((record["study"], record["laterality"]), ([], []))
        (cc if record["view"] in _CC_VIEWS else mlo).extend(
            ViewFinding(image=key, **f) for f in record["findings"]
        )
    path = out / "breasts.csv"
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=BREAST_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for (study, lat), (cc, mlo) in sorted(groups.items()):
            for a, b in pair_views(cc, mlo):
                quadrant, hour = clock_face(Laterality(lat), a.offset_mm, b.offset_mm)
                worse = max((a, b), key=lambda f: (Category(f.category).rank, f.likelihood))
                writer.writerow(
                    {
                        "study": study,
                        "laterality": lat,
                        "cc_image": a.image,
                        "cc_cluster_id": a.finding_id,
                        "mlo_image": b.image,
                        "mlo_cluster_id": b.finding_id,
                        "nipple_distance_mm": round(
                            (a.nipple_distance_mm + b.nipple_distance_mm) / 2, 1
                        ),
                        "distance_difference_mm": round(
                            abs(a.nipple_distance_mm - b.nipple_distance_mm), 1
                        ),
                        "quadrant": quadrant,
                        "clock": "" if hour is None else hour,
                        "morphology": worse.morphology,
                        "category": worse.category,
                        "likelihood": worse.likelihood,
                    }
                )
    return path


def _clean(out: Path, keys: set[str], retry_failed: bool) -> list[str]:
    """Delete temporary and half-written folders; return the keys still to do."""
    for tmp in out.glob(f"{_TMP}*"):
        shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)
    for tmp in out.glob(".*.csv.*.tmp"):  # summaries of a run killed while writing them
        tmp.unlink(missing_ok=True)
    todo = []
    for key in sorted(keys):
        folder = out / key
        if _is_done(folder, retry_failed):
            continue
        if folder.exists():
            shutil.rmtree(folder)
        todo.append(key)
    return todo


def _open_client(
    scheduler: str | None, workers: int | None, processes: bool
) -> tuple[Any, Callable[[], None]]:
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ConfigError(
            "calcscope batch needs Dask distributed: pip install 'calcscope[batch]'"
        ) from exc
    if scheduler:
        try:
            client = Client(scheduler, timeout="30s")
        except OSError as exc:
            raise ConfigError(f"cannot reach the Dask scheduler {scheduler}: {exc}") from exc
        return client, client.close
    n = workers or max(1, (os.cpu_count() or 1))
    kwargs: dict[str, Any] = {}
    if processes:  # one image per worker process, one core each (OpenCV's pool too)
        kwargs["env"] = {"OPENCV_FOR_THREADS_NUM": "1"}
    cluster = LocalCluster(
        n_workers=n,
        threads_per_worker=1,
        processes=processes,
        dashboard_address=None,
        memory_limit=0 if not processes else "auto",
        **kwargs,
    )
    client = Client(cluster)

    def close() -> None:
        client.close()
        cluster.close()

    return client, close


def _nthreads(client: Any) -> int:
    try:
        return max(1, sum(client.nthreads().values()))
    except Exception:  # noqa: BLE001
        return 1


def run_batch(
    input_dir: str | Path,
    out_dir: str | Path,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    config: Config | None = None,
    spacing_mm: float | None = None,
    window: int | None = None,
    retry_failed: bool = False,
    processes: bool = True,
    client: Any = None,
    show_progress: bool = True,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> BatchResult:
    """Analyse every image under ``input_dir`` into ``out_dir`` with Dask (resumable).

    Parameters
    ----------
    input_dir
        Folder searched recursively for images (or a single file).
    out_dir
        Output folder (see the module docstring).
    scheduler
        Address of an existing Dask scheduler (``tcp://host:8786``); ``None`` starts a
        local cluster.
    workers
        Worker processes of the local cluster (default: the number of CPUs).
    config, spacing_mm
        Passed to :func:`calcscope.pipeline.analyze`.
    window
        Tasks in flight at most (default 4 per worker thread).
    retry_failed
        Redo the images whose earlier attempt failed.
    processes
        Local cluster of processes (``False``: threads in this process, for tests).
    client
        An existing :class:`distributed.Client` to use (then ``scheduler`` and
        ``workers`` are ignored and the client is left open).
    show_progress
        Show a rich progress bar on stderr.
    on_result
        Called with each finished image's record (in completion order).
    """
    from calcscope.imaging.io import find_images

    t_start = time.perf_counter()
    root = Path(input_dir)
    if not root.exists():
        raise ConfigError(f"{root}: no such folder")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    base = root if root.is_dir() else root.parent
    paths = {image_id(p, base): str(p) for p in find_images([root])}
    keys = sorted(paths)
    todo = _clean(out, set(keys), retry_failed)
    n_skipped = len(keys) - len(todo)
    n_ok = n_failed = 0
    n_threads = 0
    if todo:
        if client is None:
            client_, close = _open_client(scheduler, workers, processes)
        else:
            client_, close = client, (lambda: None)
        try:
            n_threads = _nthreads(client_)
            for record in _run_tasks(
                client_,
                out,
                [(k, paths[k]) for k in todo],
                config=config,
                spacing_mm=spacing_mm,
                window=window or 4 * n_threads,
                show_progress=show_progress,
                n_total=len(keys),
                n_skipped=n_skipped,
            ):
                if record["status"] == "ok":
                    n_ok += 1
                else:
                    n_failed += 1
                if on_result is not None:
                    on_result(record)
        finally:
            close()
    summary, images = write_summaries(out, keys)
    breasts = write_breasts(out, keys)
    return BatchResult(
        n_images=len(keys),
        n_skipped=n_skipped,
        n_analysed=n_ok,
        n_failed=n_failed,
        summary_csv=summary,
        images_csv=images,
        breasts_csv=breasts,
        seconds=time.perf_counter() - t_start,
        workers=n_threads,
    )


def _run_tasks(
    client: Any,
    out: Path,
    jobs: list[tuple[str, str]],
    *,
    config: Config | None,
    spacing_mm: float | None,
    window: int,
    show_progress: bool,
    n_total: int,
    n_skipped: int,
) -> Iterator[dict[str, Any]]:
    """Submit ``jobs`` in a sliding window of ``window`` tasks; yield their records."""
    from distributed import as_completed
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    run = uuid.uuid4().hex[:8]
    it = iter(jobs)
    meta: dict[str, tuple[str, str]] = {}

    def submit() -> Any | None:
        job = next(it, None)
        if job is None:
            return None
        key, path = job
        fut = client.submit(
            analyse_to_folder,
            path,
            str(out),
            key,
            config,
            spacing_mm,
            key=f"calcscope-{run}-{key}",
            retries=0,
        )
        meta[fut.key] = job
        return fut

    first = [f for f in (submit() for _ in range(max(1, window))) if f is not None]
    ac = as_completed(first)
    progress = Progress(
        TextColumn("[bold]batch"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[failed]} failed"),
        console=Console(stderr=True),
        disable=not show_progress,
    )
    with progress:
        task = progress.add_task("batch", total=n_total, completed=n_skipped, failed=0)
        failed = 0
        for fut in ac:
            key, path = meta.pop(fut.key)
            try:
                record = fut.result()
            except Exception as exc:  # noqa: BLE001 - killed worker, lost data, ...
                record = _record_crash(out, key, path, exc)
            finally:
                fut.release()
            if record["status"] != "ok":
                failed += 1
            progress.update(task, advance=1, failed=failed)
            nxt = submit()
            if nxt is not None:
                ac.add(nxt)
            yield record
