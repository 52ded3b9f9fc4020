"""Row strips of an image processed by a small thread pool: the detector's one way to use
the second core where its steps are serial (numpy's element-wise passes and reductions,
OpenCV filters that do not parallelise themselves).

OpenCV and numpy release the GIL inside their calls, so strips processed by threads run
at once. The results are those of the serial loop: each strip is computed by the same
function on the same rows, and :func:`map_strips` returns them in row order.

The number of threads is :func:`threads`: OpenCV's own (``cv2.getNumThreads()``), so that
the batch and node workers, which set OpenCV to one thread each (``OPENCV_FOR_THREADS_NUM``)
so as not to oversubscribe the cores, run every strip serially in the calling thread; at
most :data:`THREADS_ENV` (an environment variable) when it is set.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import cv2
import numpy as np

__all__ = ["THREADS_ENV", "map_strips", "mask_columns", "strip_bounds", "threads"]

THREADS_ENV = "CALCSCOPE_THREADS"
"""Environment variable: the most threads the detector's strips use (``1``: serial)."""

T = TypeVar("T")
_TASKS_PER_THREAD = 4
"""Tasks (runs of consecutive strips) per thread of one :func:`map_strips` call."""

_lock = threading.Lock()
_pool: tuple[int, int, ThreadPoolExecutor] | None = None  # (pid, workers, pool)


def threads() -> int:
    """Threads that :func:`map_strips` uses: ``cv2.getNumThreads()``, at most the value
    of :data:`THREADS_ENV` when it is set to a positive integer, and at least 1."""
    n = int(cv2.getNumThreads())
    env = os.environ.get(THREADS_ENV, "").strip()
    if env.isdigit() and int(env) > 0:
        n = min(n, int(env))
    return max(1, n)


def _executor(workers: int) -> ThreadPoolExecutor:
    """The process's pool of ``workers`` threads, made again after a fork (a child
    inherits the pool object but not its threads) or when the number changes."""
    global _pool
    with _lock:
        pid = os.getpid()
        if _pool is None or _pool[0] != pid or _pool[1] != workers:
            if _pool is not None and _pool[0] == pid:
                _pool[2].shutdown(wait=False)
            _pool = (pid, workers, ThreadPoolExecutor(workers, thread_name_prefix="calcscope"))
        return _pool[2]


def strip_bounds(n_rows: int, rows: int, align: int = 1) -> list[tuple[int, int]]:
    """``(r0, r1)`` of the strips of ``rows`` rows (rounded up to a multiple of ``align``,
    so that every strip starts on a multiple of it: the rows of a reduced grid) that
    cover ``n_rows`` rows; the last strip may be shorter."""
    step = max(align, -(-max(1, rows) // align) * align)
    return [(r0, min(r0 + step, n_rows)) for r0 in range(0, n_rows, step)]


def mask_columns(mask_rows: np.ndarray, margin: int = 0) -> slice | None:
    """The columns of the pixels of ``mask_rows`` (bool, rows of a mask) with ``margin``
    columns more on each side (clipped to its width), or None when it holds none: the part
    of a strip a filter of reach up to ``margin`` needs to give, at the mask's pixels, the
    values it gives on the whole rows."""
    cols = np.flatnonzero(mask_rows.any(axis=0))
    if cols.size == 0:
        return None
    n_cols = int(mask_rows.shape[1])
    return slice(max(int(cols[0]) - margin, 0), min(int(cols[-1]) + 1 + margin, n_cols))


def map_strips(fn: Callable[[int, int], T], n_rows: int, rows: int, align: int = 1) -> list[T]:
    """``[fn(r0, r1) for (r0, r1) in strip_bounds(n_rows, rows, align)]``, the strips
    processed by :func:`threads` threads at once (in the calling thread when that is 1 or
    there is a single strip).

    ``fn`` must only read shared arrays and write its own rows ``r0:r1`` of an output: the
    strips then give the serial loop's results, in row order. Its temporaries exist once
    per thread: keep strips small (a few hundred rows) so that memory stays that of the
    serial loop plus a few strips.
    """
    bounds = strip_bounds(n_rows, rows, align)
    n = threads()
    if n <= 1 or len(bounds) <= 1:
        return [fn(r0, r1) for r0, r1 in bounds]
    # a few runs of consecutive strips per thread: few hand-offs between threads, and
    # still a balanced load where some rows cost more than others
    n_tasks = min(len(bounds), _TASKS_PER_THREAD * n)
    cuts = [len(bounds) * i // n_tasks for i in range(n_tasks + 1)]

    def run(i: int) -> list[T]:
        return [fn(r0, r1) for r0, r1 in bounds[cuts[i] : cuts[i + 1]]]

    return [r for part in _executor(n).map(run, range(n_tasks)) for r in part]
