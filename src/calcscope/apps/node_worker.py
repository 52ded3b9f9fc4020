"""The DICOM node's analysis of one image, in a worker process with a time limit.

Each worker thread of :class:`calcscope.apps.node.StorageNode` owns one
:class:`AnalysisWorker`: a pool of one spawned process. A job never raises across the
process boundary; it returns an :class:`AnalysisOutcome`, so whatever the analysis
raises (a ``CalcscopeError``, any ``Exception``, or a ``BaseException`` such as the
``pyo3_runtime.PanicException`` of a compiled decoder) is recorded under its own name.
A process that dies (killed, out of memory) or overruns the time limit is replaced,
and only the image it was analysing fails.

Every image's outputs are written by :func:`calcscope.reports.writer.write_outputs`
with the stem :data:`STEM` (``analysis.json``, ``analysis.sr.dcm``,
``analysis.gsps.dcm``), durably (``fsync``).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from calcscope.config import Config
from calcscope.errors import CalcscopeError, one_line

if TYPE_CHECKING:
    from concurrent.futures import Future

    from calcscope.reports.dicom_source import Deidentifier

__all__ = [
    "STEM",
    "AnalysisJob",
    "AnalysisOutcome",
    "AnalysisWorker",
    "NodeStats",
    "results_folder",
    "run_job",
]

STEM = "analysis"
"""The stem of every output of the node (``results/<uid>/analysis.json``, ...)."""


@lru_cache(maxsize=4)
def _deidentifier(seed: str) -> Deidentifier:
    from calcscope.reports.dicom_source import Deidentifier

    return Deidentifier(seed)


def results_folder(out: Path, uid: str, anonymize_seed: str | None = None) -> Path:
    """The folder of one received image's outputs: ``out/results/<SOP Instance UID>``.

    On an anonymising node (``anonymize_seed``, the folder's de-identification seed) the
    folder is named by the de-identified UID that its reports carry, never by the
    original one (a UID identifies the image, PS3.15's profile replaces it).
    """
    name = uid if anonymize_seed is None else _deidentifier(anonymize_seed).uid(uid)
    return out / "results" / name


WORKER_DIED = "WorkerDied"
TIMED_OUT = "TimeoutError"

Analyze = Callable[[Path, Config], Any]


@dataclass
class NodeStats:
    """Counters of one node's life (thread-safe through :meth:`add`)."""

    received: int = 0
    duplicates: int = 0
    rejected: int = 0
    busy: int = 0
    analysed: int = 0
    failed: int = 0
    forwarded: int = 0
    forward_failed: int = 0
    recovered: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + n)


@dataclass(frozen=True)
class AnalysisJob:
    """One image to analyse (picklable: it travels to the worker process)."""

    src: str
    """The received file."""
    out_dir: str
    """The (temporary) folder the outputs go to."""
    config: Config
    dicom_reports: bool
    """Write the SR and the presentation state beside the JSON."""
    final_path: str
    """The image's path once analysed, written as the report's source."""
    analyze: Analyze | None = None
    """The analysis; ``None`` is :func:`calcscope.pipeline.analyze` (a module-level
    function when run in a process)."""
    anonymize_seed: str | None = None
    """De-identify every output under this seed (``--anonymize``); ``None``: do not."""


@dataclass(frozen=True)
class AnalysisOutcome:
    """What became of one job: a few counts for the log, or the error."""

    error: str | None = None
    """The name of the exception (``None`` on success)."""
    message: str = ""
    n_calcifications: int = 0
    n_clusters: int = 0
    category: str = ""
    analysis_s: float = 0.0
    """Seconds of :func:`~calcscope.pipeline.analyze` in the worker process."""
    outputs_s: float = 0.0
    """Seconds writing the JSON, SR and GSPS (durably) in the worker process."""

    @property
    def ok(self) -> bool:
        """Whether the image was analysed and its outputs written."""
        return self.error is None

    @classmethod
    def failure(cls, exc: BaseException) -> AnalysisOutcome:
        """The outcome of an analysis that raised ``exc``."""
        name = type(exc).__name__
        msg = one_line(str(exc) if isinstance(exc, CalcscopeError) else f"{name}: {exc}")
        return cls(error=name, message=msg)


def _default_analyze(path: Path, config: Config) -> Any:
    from calcscope.pipeline import analyze

    return analyze(path, config=config)


def run_job(job: AnalysisJob) -> AnalysisOutcome:
    """Analyse one image and write its outputs; never raises (but for an interrupt)."""
    from calcscope.reports.writer import OutputOptions, write_outputs

    analyze = job.analyze or _default_analyze
    options = OutputOptions(
        sr=job.dicom_reports,
        overlay=False,
        durable=True,
        anonymize=job.anonymize_seed is not None,
        anonymize_seed=job.anonymize_seed,
    )
    try:
        t0 = time.perf_counter()
        analysis = analyze(Path(job.src), job.config)
        t1 = time.perf_counter()
        write_outputs(analysis, job.out_dir, STEM, options, source_path=job.final_path)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - decoder panics are BaseExceptions
        return AnalysisOutcome.failure(exc)
    return AnalysisOutcome(
        n_calcifications=len(analysis.detected),
        n_clusters=len(analysis.clusters),
        category=str(analysis.assessment.category.value),
        analysis_s=t1 - t0,
        outputs_s=time.perf_counter() - t1,
    )


class AnalysisWorker:
    """One node worker's analysis process (or the calling thread when ``processes`` is off).

    Parameters
    ----------
    processes
        Analyse in a spawned process; ``False`` analyses in the calling thread (no time
        limit, a crash takes the node down: for tests).
    timeout_s
        Time limit of one image, in seconds (``None``: none); the process is killed and
        replaced when it runs over.
    model
        The detector model that each new process loads before its first image (the
        name in :attr:`calcscope.config.DetectConfig.model`), so that the time limit and
        the first image's latency count the analysis only; ``None``: loaded by the first
        image.
    """

    def __init__(
        self, *, processes: bool = True, timeout_s: float | None = None, model: str | None = None
    ) -> None:
        self.timeout_s = timeout_s
        self.model = model
        self._lock = threading.Lock()
        self._pool: Any = None
        self._ready: Any = None
        if processes:
            self._pool, self._ready = _new_pool(model)

    def run(self, job: AnalysisJob) -> AnalysisOutcome:
        """Analyse one image; a dead or overrunning process is that image's failure."""
        from concurrent.futures.process import BrokenProcessPool

        if self._pool is None:
            return run_job(job)
        try:
            future = self._submit(job)
            return future.result(timeout=self.timeout_s)
        except TimeoutError:
            self._restart()
            msg = f"no result within the time limit of {self.timeout_s:g} s; stopped"
            return AnalysisOutcome(error=TIMED_OUT, message=msg)
        except BrokenProcessPool:
            self._restart()
            msg = "the analysis process died (killed, out of memory, or a crash in a decoder)"
            return AnalysisOutcome(error=WORKER_DIED, message=msg)

    def _submit(self, job: AnalysisJob) -> Future[AnalysisOutcome]:
        """Submit ``job`` once the process has imported the pipeline (so that the time
        limit counts the analysis only); a process that died while idle is replaced."""
        from concurrent.futures.process import BrokenProcessPool

        for attempt in range(2):
            if attempt:  # died between two images: not this image's fault
                self._restart()
            if isinstance(self._ready.exception(), BrokenProcessPool):
                continue
            try:
                future: Future[AnalysisOutcome] = self._pool.submit(run_job, job)
                return future
            except BrokenProcessPool:
                continue
        raise BrokenProcessPool("no analysis process could be started")

    def _restart(self) -> None:
        with self._lock:
            old, self._pool = self._pool, None
            if old is not None:
                _kill(old)
            self._pool, self._ready = _new_pool(self.model)

    def close(self) -> None:
        """Stop the process (waiting for nothing)."""
        with self._lock:
            old, self._pool = self._pool, None
        if old is not None:
            _kill(old)


def _kill(pool: Any) -> None:
    """Kill a process pool's processes and shut it down without waiting."""
    kill_workers = getattr(pool, "kill_workers", None)  # Python >= 3.14
    if kill_workers is not None:
        kill_workers()
    else:  # the processes of an older ProcessPoolExecutor
        for proc in list((getattr(pool, "_processes", None) or {}).values()):
            proc.kill()
    pool.shutdown(wait=False, cancel_futures=True)


def _new_pool(model: str | None) -> tuple[Any, Any]:
    """A pool of one spawned process, and the future of its warm-up (loading ``model``)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(
        max_workers=1,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_watch_parent,
    )
    return pool, pool.submit(_warm_up, model)


def _watch_parent() -> None:
    """In a worker process: exit when the node process dies (even by SIGKILL)."""
    import multiprocessing
    from multiprocessing.connection import wait

    parent = multiprocessing.parent_process()
    if parent is None:  # pragma: no cover - not a child process
        return

    def watch() -> None:
        wait([parent.sentinel])
        os._exit(0)

    threading.Thread(target=watch, name="calcscope-parent-watch", daemon=True).start()


def _warm_up(model: str | None) -> None:
    """Import the pipeline in a fresh worker process before the first image arrives, and
    load ``model`` (a model that cannot be loaded fails each image, with its message)."""
    import calcscope.pipeline  # noqa: F401
    import calcscope.reports.gsps  # noqa: F401
    import calcscope.reports.schema  # noqa: F401
    import calcscope.reports.sr  # noqa: F401
    import calcscope.reports.writer  # noqa: F401

    if model is not None:
        from calcscope.detection.classifier import load_model

        try:
            load_model(model)  # cached in the process
        except Exception:  # noqa: BLE001, S110 - reported by each image's analysis
            pass
