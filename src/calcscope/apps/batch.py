"""Batch analysis of an archive with Dask: resumable, one atomic result folder per image.

``run_batch(INPUT_DIR, OUT)`` lists the images under ``INPUT_DIR`` (as
:func:`calcscope.imaging.io.find_images`), and runs :func:`calcscope.pipeline.analyze` on each
with Dask: a :class:`distributed.LocalCluster` of ``workers`` processes by default, or an
existing scheduler (``tcp://host:8786``; its workers must see ``INPUT_DIR`` and ``OUT``
under the same paths, e.g. on a shared file system, and have calcscope installed).

Layout of ``OUT``::

    OUT/<image id>/analysis.json   the JSON report            (or error.json on failure),
                                   written by calcscope.reports.writer.write_outputs
    OUT/<image id>/clusters.csv    this image's rows of the summary
    OUT/<image id>/views.json      what the pairing of views needs (see write_breasts)
    OUT/<image id>/_done           written last: the folder is complete
    OUT/summary.csv                one row per cluster of every image, sorted
    OUT/images.csv                 one row per image: status, counts, category, error
    OUT/exams.csv                  one row per exam finding (images grouped by study), with
                                   its change since the prior exam and the comparison's counts
    OUT/breasts.csv                clusters seen on both views of a breast: quadrant, clock
                                   (both from the exam model, calcscope.exam)
    OUT/<exam>.exam.json           each exam's document, compared with its prior

Exams of one patient (the same ``PatientID``; de-identified alike with ``anonymize``) are
compared as ``calcscope analyze`` compares them: each with the latest earlier one, itself
compared with the one before (:func:`calcscope.apps.exams.write_compared_exams`); the exam
documents and tables are rebuilt from the per-image folders at the end of every run.

The image id is the path relative to ``INPUT_DIR`` with ``/`` replaced by ``__`` (with
``anonymize``: ``anon-`` and a keyed hash of it, whose key is kept in
``OUT/.calcscope-anonymize-seed``; every output is then de-identified, and the tables
name each image by its id, never by its file name). Each
task writes into ``OUT/.tmp-<id>-<random>/`` (each file through
:func:`calcscope.files.write_atomic`) and renames it to ``OUT/<id>/`` (atomic), so a folder
either is complete or does not exist; folders written by earlier versions (the same names)
are recognised as done (their ``analysis.json`` ended with a newline, the writer's does
not). A rerun skips folders with ``_done``, deletes half-written ones (without ``_done``)
and temporary folders, and redoes those images; the summaries are rebuilt from the
per-image files in image-id order, so a killed and rerun batch gives the same
``summary.csv`` as an uninterrupted one.

Memory stays bounded for any archive size: tasks carry paths (never pixels), at most
``window`` tasks (4 per worker thread by default) are in flight, each worker holds one
image at a time, and the summaries are streamed to disk; the number of local workers
follows the free memory (:func:`default_workers`). Each task sets glibc's malloc thresholds
(:func:`tune_malloc`: Dask's nanny setting made every image-sized temporary a fresh, zeroed
mapping, a third more CPU). A failure (unreadable file, not a
mammogram, a decoder panic or any other ``BaseException`` in the task, a killed worker,
an image that runs past the time limit ``timeout_s``, whose worker is then restarted) is
recorded in ``OUT/<id>/error.json``
and in ``images.csv``; the batch goes on and always finishes. The CSV rows and the view
records are read from the typed report model
(:class:`calcscope.reports.schema.AnalysisReport`), never from raw dicts.
Research software, not a medical device.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import shutil
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from calcscope.apps.batch_tables import (
    BREAST_COLUMNS,
    DONE,
    EXAM_COLUMNS,
    IMAGE_COLUMNS,
    REPORT_STEM,
    SUMMARY_COLUMNS,
    ImageRecord,
    ViewRecord,
    batch_exams,
    cluster_rows,
    csv_text,
    header_identity,
    header_issuer,
    write_breasts,
    write_exams,
    write_summaries,
)
from calcscope.config import Config, IOConfig
from calcscope.errors import CalcscopeError, ConfigError, one_line
from calcscope.files import write_atomic

__all__ = [
    "SUMMARY_COLUMNS",
    "IMAGE_COLUMNS",
    "BREAST_COLUMNS",
    "EXAM_COLUMNS",
    "REPORT_STEM",
    "DEFAULT_TIMEOUT_S",
    "BatchResult",
    "ImageRecord",
    "ViewRecord",
    "image_id",
    "default_workers",
    "worker_memory_bytes",
    "tune_malloc",
    "analyse_to_folder",
    "run_batch",
    "write_summaries",
    "write_breasts",
    "write_exams",
]

DEFAULT_TIMEOUT_S = 300.0
"""Time limit of one image's analysis, s (a hung decoder never stalls the batch)."""
BYTES_PER_PIXEL = 30
"""Peak memory of one analysis per image pixel, bytes, with a margin: measured (peak RSS
of a fresh process above its RSS after loading the model, ``benchmarks/profile_pipeline.py``)
at 18.8 on a 4096 x 3328 phantom and 18.6 on a 0.05 mm CBIS-DDSM film; the margin covers
a compressed frame's decode and what glibc keeps after freeing (3-4)."""
WORKER_ENV = {
    "OPENCV_FOR_THREADS_NUM": "1",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
"""Environment of a local worker process: one image per worker, one core each (OpenCV's
and the BLAS thread pools too), so that workers do not fight over the cores."""
LOCAL_CLUSTER_CONFIG = {
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "2s",
}
"""Dask settings of the local cluster, whose scheduler and nannies share the driver's
process: its event-loop watchdog (20 ms) and its system monitor for the dashboard
(0.5 s) less often, about 1 % of a core fewer for the workers (the memory monitors,
heartbeats and time limits unchanged)."""
MMAP_THRESHOLD_BYTES = 32 * 2**20
"""Blocks at least this large are mapped afresh by glibc's malloc in a worker, bytes (see
:func:`tune_malloc`): glibc's own ceiling for its sliding threshold."""
TRIM_THRESHOLD_BYTES = 64 * 2**20
"""Free memory at the top of a worker's heap that glibc keeps for the next image, bytes."""
MAX_PLAUSIBLE_PIXELS = IOConfig().max_pixels
"""The largest image analysed (``io.max_pixels``, 32 megapixels: the largest real
mammograms hold about 30)."""
WORKER_OVERHEAD_BYTES = 400 * 2**20
"""Memory of an idle worker process (interpreter, NumPy, OpenCV, Dask), bytes."""
START_TOPIC = "calcscope-batch-start"
"""Dask event topic on which each task announces that it started (for its time limit)."""
_TMP = ".tmp-"
_PASS_THROUGH = (KeyboardInterrupt, SystemExit, GeneratorExit)


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
    exams_csv: Path | None = None

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


def default_workers(available_bytes: int | None = None, cpus: int | None = None) -> int:
    """Local worker processes that fit the free memory and the cores.

    Each worker holds one image at a time: about :data:`BYTES_PER_PIXEL` bytes per pixel of
    the largest plausible mammogram (:data:`MAX_PLAUSIBLE_PIXELS`, about 1.0 GB) plus
    :data:`WORKER_OVERHEAD_BYTES`.

    Parameters
    ----------
    available_bytes
        Free memory, bytes (default: ``psutil.virtual_memory().available``).
    cpus
        Cores (default: ``os.cpu_count()``).
    """
    if available_bytes is None:
        try:
            import psutil

            available_bytes = int(psutil.virtual_memory().available)
        except ImportError:  # pragma: no cover - psutil comes with Dask distributed
            available_bytes = 0
    n_cpus = cpus or os.cpu_count() or 1
    by_memory = available_bytes // worker_memory_bytes() if available_bytes else n_cpus
    return max(1, min(n_cpus, int(by_memory)))


def worker_memory_bytes() -> int:
    """Memory one local worker may use, bytes: one analysis of the largest plausible
    mammogram plus the idle process (Dask's memory limit of each local worker)."""
    return BYTES_PER_PIXEL * MAX_PLAUSIBLE_PIXELS + WORKER_OVERHEAD_BYTES


_malloc_tuned: list[bool] = []  # once per process


def tune_malloc() -> bool:
    """Let glibc's malloc reuse the blocks of the last image instead of mapping them anew.

    A Dask nanny starts its worker with ``MALLOC_TRIM_THRESHOLD_=65536``
    (``distributed.nanny.pre-spawn-environ``), which also freezes glibc's mmap threshold at
    128 KiB: every image-sized temporary is then mapped, zeroed page by page and unmapped,
    about 175,000 page faults and a third more CPU per 2867 x 2330 image, and two workers
    on two cores share the memory bandwidth that the zeroing takes. This sets the
    thresholds where glibc's own sliding threshold ends up in a plain process
    (:data:`MMAP_THRESHOLD_BYTES`, :data:`TRIM_THRESHOLD_BYTES`); the memory held between
    images stays below one analysis's peak, which the worker's memory limit bounds.
    Called by each task; the first call in a process sets them, later calls do nothing.

    Returns
    -------
    bool
        Whether the thresholds are set (False where the C library is not glibc).
    """
    if not _malloc_tuned:
        ok = False
        try:
            import ctypes

            libc = ctypes.CDLL("libc.so.6")
            m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
            ok = bool(libc.mallopt(m_mmap_threshold, MMAP_THRESHOLD_BYTES)) and bool(
                libc.mallopt(m_trim_threshold, TRIM_THRESHOLD_BYTES)
            )
        except (OSError, AttributeError):  # not glibc (macOS, musl, Windows)
            pass
        _malloc_tuned.append(ok)
    return _malloc_tuned[0]


def _announce_start(task_key: str | None) -> None:
    """Tell the client that this task started now (it times the task from here)."""
    if task_key is None:
        return
    try:
        from distributed import get_worker

        worker = get_worker()
        worker.log_event(START_TOPIC, {"key": task_key, "worker": worker.address})
    except Exception:  # noqa: BLE001 - not in a Dask worker: nothing to tell
        pass


def _write_failure(
    folder: Path, key: str, path: str, message: str, name: str, tb: str | None = None
) -> ImageRecord:
    """Write a failed image's files into ``folder`` (not yet ``_done``)."""
    error: dict[str, str] = {"image": key, "path": path, "error": name, "message": message}
    if tb is not None:
        error["traceback"] = tb
    write_atomic(folder / "error.json", json.dumps(error, indent=1) + "\n")
    return ImageRecord.failed(key, path, message)


def _shown_path(path: str, key: str, anonymize_seed: str | None) -> str:
    """The path written in the tables and error records: ``path``, or with
    ``anonymize_seed`` (``--anonymize``) the image id ``key`` (a keyed hash: the file's
    and its folders' names may name the patient) and the file's suffix."""
    if anonymize_seed is None:
        return path
    suffix = Path(path).suffix.lower()
    return key + (suffix if suffix in (".dcm", ".dicom", ".png", ".tif", ".tiff", ".pgm") else "")


def _scrubbed(message: str, path: str, shown: str) -> str:
    """``message`` with ``path`` (as given, resolved, and its file name) replaced by
    ``shown``: an error message names the file."""
    for text in (str(Path(path).resolve()), path, Path(path).name):
        message = message.replace(text, shown)
    return message


def _analyse_into(
    folder: Path,
    path: str,
    key: str,
    config: Config | None,
    spacing_mm: float | None,
    anonymize_seed: str | None = None,
) -> ImageRecord:
    """Analyse one image and write its files into ``folder``; never raises for an image
    (decoder panics and other ``BaseException`` included), only for an interrupt.

    With ``anonymize_seed`` every file is de-identified under that seed: the outputs by
    the writer, the records name the file only, a failure keeps no traceback."""
    from calcscope.pipeline import analyze
    from calcscope.reports.schema import to_report
    from calcscope.reports.writer import OutputOptions, write_outputs

    anonymize = anonymize_seed is not None
    shown = _shown_path(path, key, anonymize_seed)
    options = OutputOptions(overlay=False, anonymize=anonymize, anonymize_seed=anonymize_seed)
    try:
        analysis = analyze(path, spacing_mm=spacing_mm, config=config)
        report = to_report(analysis, anonymize=anonymize, seed=anonymize_seed)
        write_outputs(analysis, folder, REPORT_STEM, options, report=report)
        patient_id, study_date = header_identity(path, anonymize_seed)
        issuer = header_issuer(path, anonymize_seed)
    except _PASS_THROUGH:
        raise
    except BaseException as exc:  # noqa: BLE001 - a per-image record instead of a crash
        name = type(exc).__name__
        msg = one_line(str(exc) if isinstance(exc, CalcscopeError) else f"{name}: {exc}")
        if anonymize:
            msg = _scrubbed(msg, path, shown)
            record = _write_failure(folder, key, shown, msg, name)
        elif isinstance(exc, CalcscopeError):
            record = _write_failure(folder, key, path, msg, name)
        else:
            record = _write_failure(folder, key, path, msg, name, traceback.format_exc())
        rows: list[dict[str, Any]] = []
    else:
        view = ViewRecord.from_report(
            report, patient_id=patient_id, study_date=study_date, issuer_of_patient_id=issuer
        )
        write_atomic(folder / "views.json", view.to_json())
        record = ImageRecord.from_report(key, report.source.path or shown, report)
        rows = cluster_rows(key, report)
    write_atomic(folder / "clusters.csv", csv_text(rows, SUMMARY_COLUMNS))
    return record


def _commit(tmp: Path, record: ImageRecord, final: Path, *, replace: bool) -> None:
    """Mark ``tmp`` complete and rename it to ``final``.

    An existing ``final`` is a half-written folder (removed) or, when it is complete and
    ``replace`` is false, the record the client wrote after this task's time ran out (kept:
    ``tmp`` is left for the caller to remove).
    """
    write_atomic(tmp / "image.json", record.to_json())
    write_atomic(tmp / DONE, record.status + "\n")
    if final.exists():
        if (final / DONE).exists() and not replace:
            return
        shutil.rmtree(final)
    os.replace(tmp, final)


def analyse_to_folder(
    path: str,
    out_dir: str,
    key: str,
    config: Config | None = None,
    spacing_mm: float | None = None,
    task_key: str | None = None,
    anonymize_seed: str | None = None,
) -> ImageRecord:
    """Analyse one image into ``out_dir/key/`` atomically (the Dask task).

    Returns the image's record of ``images.csv`` (never pixels). A failure, a
    ``BaseException`` such as a decoder's panic included, is recorded in ``error.json``
    and returned with ``status`` ``failed``; it never raises for a bad input.
    ``task_key`` is the Dask key under which the task announces its start
    (:data:`START_TOPIC`), from when the client times it. ``anonymize_seed``: de-identify
    every file under this seed (``--anonymize``; :func:`calcscope.reports.writer.folder_seed`).
    """
    _announce_start(task_key)
    tune_malloc()
    out = Path(out_dir)
    tmp = out / f"{_TMP}{key}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        record = _analyse_into(tmp, path, key, config, spacing_mm, anonymize_seed)
        _commit(tmp, record, out / key, replace=False)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return record


def _record_failure(out: Path, key: str, path: str, message: str, name: str) -> ImageRecord:
    """Record an image whose task died outside :func:`analyse_to_folder` (a killed worker)
    or ran out of time; this record wins over a late result of the task."""
    tmp = out / f"{_TMP}{key}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        record = _write_failure(tmp, key, path, message, name)
        write_atomic(tmp / "clusters.csv", csv_text([], SUMMARY_COLUMNS))
        _commit(tmp, record, out / key, replace=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return record


def _is_done(folder: Path, retry_failed: bool) -> bool:
    marker = folder / DONE
    if not marker.exists():
        return False
    return not (retry_failed and marker.read_text().strip() == "failed")


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
        import dask
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
    n = workers or default_workers()
    kwargs: dict[str, Any] = {}
    if processes:  # one image per worker process, one core each (OpenCV's pool too)
        kwargs["env"] = dict(WORKER_ENV)
    with dask.config.set(LOCAL_CLUSTER_CONFIG):  # read as the cluster starts
        cluster = LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=processes,
            dashboard_address=None,
            memory_limit=0 if not processes else worker_memory_bytes(),
            **kwargs,
        )
    client = Client(cluster)

    def close() -> None:
        client.close()
        cluster.close()

    return client, close


def _nthreads(client: Any) -> int:
    try:
        nthreads: dict[str, int] = client.nthreads()  # worker address -> threads
        return max(1, sum(nthreads.values()))
    except Exception:  # noqa: BLE001
        return 1


def _image_ids(root: Path, out: Path, anonymize: bool) -> tuple[dict[str, str], str | None]:
    """Image id -> path of every image under ``root``, and the de-identification seed
    (with ``anonymize`` the ids are keyed pseudonyms of the paths, see :func:`run_batch`)."""
    from calcscope.imaging.io import find_images

    base = root if root.is_dir() else root.parent
    if not anonymize:
        return {image_id(p, base): str(p) for p in find_images([root])}, None
    from calcscope.reports.dicom_source import Deidentifier
    from calcscope.reports.writer import folder_seed

    seed = folder_seed(out)
    deid = Deidentifier(seed)
    return {f"anon-{deid.pseudonym(image_id(p, base))}": str(p) for p in find_images([root])}, seed


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
    on_result: Callable[[ImageRecord], None] | None = None,
    timeout_s: float | None = DEFAULT_TIMEOUT_S,
    anonymize: bool = False,
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
        Worker processes of the local cluster (default: :func:`default_workers`, as many
        as the cores and the free memory allow).
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
    timeout_s
        Time limit of one image, s, from the start of its task: past it the image is
        failed ("timed out after N s"), its worker restarted; ``None``: no limit.
    anonymize
        De-identify every output (DICOM PS3.15 Basic Profile): image ids become keyed
        pseudonyms of their paths (``anon-<16 hex>``; the key in
        ``OUT/.calcscope-anonymize-seed``, keep it private), path columns the file name.
    """
    t_start = time.perf_counter()
    root = Path(input_dir)
    if not root.exists():
        raise ConfigError(f"{root}: no such folder")
    if timeout_s is not None and timeout_s <= 0:
        raise ConfigError(f"the time limit must be positive, not {timeout_s} s")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths, seed = _image_ids(root, out, anonymize)
    keys = sorted(paths)
    todo = _clean(out, set(keys), retry_failed)
    n_skipped = len(keys) - len(todo)
    n_ok = n_failed = n_threads = 0
    if todo:
        if client is None:
            client_, close = _open_client(scheduler, workers, processes)
        else:
            client_, close = client, (lambda: None)
        try:
            n_threads = _nthreads(client_)
            tasks = _Tasks(client_, out, config, spacing_mm, timeout_s, seed)
            jobs = [(k, paths[k]) for k in todo]
            display = (show_progress, len(keys), n_skipped)
            records = tasks.run(jobs, window=window or 4 * n_threads, display=display)
            n_ok, n_failed = _count(records, on_result)
        finally:
            close()
    summary, images = write_summaries(out, keys)
    exams, breasts = _write_exam_tables(out, keys)
    return BatchResult(
        n_images=len(keys),
        n_skipped=n_skipped,
        n_analysed=n_ok,
        n_failed=n_failed,
        summary_csv=summary,
        images_csv=images,
        breasts_csv=breasts,
        exams_csv=exams,
        seconds=time.perf_counter() - t_start,
        workers=n_threads,
    )


def _write_exam_tables(out: Path, keys: list[str]) -> tuple[Path, Path]:
    """Each exam compared with its priors (the latest earlier exam of the same patient
    in the batch, as ``calcscope analyze`` does) and written as ``OUT/<exam>.exam.json``
    (the values are de-identified already where the batch is); then ``exams.csv`` and
    ``breasts.csv``."""
    from calcscope.apps.exams import write_compared_exams

    compared = write_compared_exams(batch_exams(out, keys), out)
    return write_exams(out, keys, [exam for exam, _ in compared])


def _count(
    records: Iterator[ImageRecord], on_result: Callable[[ImageRecord], None] | None
) -> tuple[int, int]:
    """Images analysed and failed among ``records``, each passed to ``on_result``."""
    n_ok = n_failed = 0
    for record in records:
        n_ok, n_failed = n_ok + record.ok, n_failed + (not record.ok)
        if on_result is not None:
            on_result(record)
    return n_ok, n_failed


def _progress(show: bool) -> Any:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]batch"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[failed]} failed"),
        console=Console(stderr=True),
        disable=not show,
        refresh_per_second=2,  # 10 by default: 1.4 % of a core that the workers need
    )


class _Tasks:
    """The Dask tasks of one batch: a sliding window of submissions, each task timed from
    its start (announced on :data:`START_TOPIC`), and every outcome one image record."""

    poll_s = 0.5  # how often the time limits are checked while no task finishes, s

    def __init__(
        self,
        client: Any,
        out: Path,
        config: Config | None,
        spacing_mm: float | None,
        timeout_s: float | None,
        anonymize_seed: str | None = None,
    ) -> None:
        self.client, self.out = client, out
        self.config, self.spacing_mm, self.timeout_s = config, spacing_mm, timeout_s
        self.anonymize_seed = anonymize_seed
        self.run_id = uuid.uuid4().hex[:8]
        self.jobs: dict[str, tuple[str, str]] = {}  # Dask key -> (image id, path)
        self.futures: dict[str, Any] = {}  # Dask key -> future, while pending
        self.started: dict[str, tuple[float, str]] = {}  # Dask key -> (monotonic s, worker)
        self.finished: queue.Queue[Any] = queue.Queue()
        self.restarts: list[threading.Thread] = []  # of workers whose task ran out of time

    def _on_start(self, event: tuple[float, dict[str, str]]) -> None:
        msg = event[1]
        if msg.get("key") in self.futures:
            self.started[msg["key"]] = (time.monotonic(), str(msg.get("worker", "")))

    def _submit(self, job: tuple[str, str]) -> None:
        key, path = job
        task_key = f"calcscope-{self.run_id}-{key}"
        self.jobs[task_key] = job
        fut = self.client.submit(
            analyse_to_folder,
            path,
            str(self.out),
            key,
            self.config,
            self.spacing_mm,
            task_key,
            self.anonymize_seed,
            key=task_key,
            retries=0,
        )
        self.futures[task_key] = fut
        fut.add_done_callback(self.finished.put)

    def _outcome(self, fut: Any) -> ImageRecord | None:
        """The record of a finished future (None: already recorded as timed out).

        A task that finished is read from its folder, never gathered from its worker: a
        worker that died since would make the client wait for the task to run again.
        """
        if self.futures.pop(fut.key, None) is None:
            return None
        self.started.pop(fut.key, None)
        key, path = self.jobs.pop(fut.key)
        try:
            if fut.status == "finished":
                folder = self.out / key
                return ImageRecord(**json.loads((folder / "image.json").read_text()))
            exc = fut.exception(timeout=self.poll_s)
        except _PASS_THROUGH:
            raise
        except BaseException as err:  # noqa: BLE001 - no record where one was expected
            exc = err
        finally:
            fut.release()
        msg = one_line(f"{type(exc).__name__}: {exc}")  # a killed worker, lost data, ...
        shown = _shown_path(path, key, self.anonymize_seed)
        if self.anonymize_seed is not None:
            msg = _scrubbed(msg, path, shown)
        return _record_failure(self.out, key, shown, msg, type(exc).__name__)

    def _finished(self) -> list[Any]:
        """The futures finished since the last call (waits up to :attr:`poll_s` for one)."""
        try:
            done = [self.finished.get(timeout=self.poll_s)]
        except queue.Empty:
            return []
        while not self.finished.empty():
            done.append(self.finished.get_nowait())
        return done

    def _expired(self) -> Iterator[ImageRecord]:
        """Record every task past its time limit as failed, and free its worker."""
        if self.timeout_s is None:
            return
        now = time.monotonic()
        for task_key, (t0, worker) in list(self.started.items()):
            if now - t0 <= self.timeout_s or self.futures[task_key].done():
                continue  # in time, or finished (its outcome is on its way)
            fut = self.futures.pop(task_key)
            del self.started[task_key]
            key, path = self.jobs.pop(task_key)
            fut.cancel()
            fut.release()
            msg = f"timed out after {self.timeout_s:g} s"
            shown = _shown_path(path, key, self.anonymize_seed)
            yield _record_failure(self.out, key, shown, msg, "TimeoutError")
            if worker:  # in the background: a restart takes seconds
                restart = threading.Thread(target=self._restart, args=(worker,), daemon=True)
                restart.start()
                self.restarts.append(restart)

    def _restart(self, worker: str) -> None:
        """Restart a worker whose task ran out of time (a hung decoder holds it)."""
        try:
            self.client.restart_workers([worker], raise_for_error=False)
        except Exception:  # noqa: BLE001 - threads of a test cluster cannot be restarted
            pass

    def run(
        self,
        jobs: list[tuple[str, str]],
        *,
        window: int,
        display: tuple[bool, int, int],
    ) -> Iterator[ImageRecord]:
        """Submit ``jobs`` ((image id, path)) with at most ``window`` in flight; yield each
        image's record as it finishes, fails or runs out of time. ``display``: whether to
        show the bar, the images in all and those already done."""
        show_progress, n_total, n_skipped = display
        todo = iter(jobs)
        self.client.subscribe_topic(START_TOPIC, self._on_start)
        try:
            for job in itertools.islice(todo, max(1, window)):
                self._submit(job)
            with _progress(show_progress) as progress:
                bar = progress.add_task("batch", total=n_total, completed=n_skipped, failed=0)
                failed = 0
                while self.futures:
                    records = [r for r in map(self._outcome, self._finished()) if r is not None]
                    for record in [*records, *self._expired()]:
                        failed += not record.ok
                        progress.update(bar, advance=1, failed=failed)
                        nxt = next(todo, None)
                        if nxt is not None:
                            self._submit(nxt)
                        yield record
        finally:
            self.client.unsubscribe_topic(START_TOPIC)
            for restart in self.restarts:  # before the caller closes the cluster
                restart.join(timeout=60)
