"""Batch throughput for 1 and 2 Dask workers, and the DICOM node's C-STORE-to-SR time.

Usage: ``python benchmarks/bench_batch_node.py [--images 12] [--workers 1,2] [--repeat 2]
[--no-pair] [--node-images 5] [--rows R --cols C] [--spacing-mm 0.1]``

1. Writes ``--images`` phantom mammograms (DICOM) into a temporary folder, then runs
   :func:`calcscope.apps.batch.run_batch` over the same set on a local Dask cluster of 1, then
   2, worker processes (cluster started and warmed up before the clock starts), and
   prints images per second and the speed-up over the first worker count. The images
   are full-field phantoms at 0.1 mm by default (2867 x 2330 px, about half a second each on an
   idle core): on the tiny images of earlier runs (600 x 480) the per-task overhead of
   Dask and of the files was a large share. Each line also shows how busy the workers
   were (the images' analysis times over wall time x workers: what is not busy is task
   overhead, waiting and the driver), the workers' CPU seconds and minor page faults per
   image (read in each worker; the CPU per image rising from 1 to 2 workers is what the
   scaling loses to shared caches and memory bandwidth), the CPU seconds per image of
   everything that is not a worker (this process: the client, and for the local
   cluster its scheduler and nannies; for the pair also the scheduler's and the nannies'
   processes), the largest worker's peak RSS, the driver's time writing the summary
   tables again, and the load average (other processes on the machine take cores too:
   wall-clock ratios mean little above a load of about 2, the CPU columns less so).
   Workers run one thread each with OpenCV's and the BLAS pools at one thread
   (:data:`calcscope.apps.batch.WORKER_ENV`), a memory limit of
   :func:`calcscope.apps.batch.worker_memory_bytes` and glibc's malloc thresholds of
   :func:`calcscope.apps.batch.tune_malloc`; then the same on a ``dask scheduler``
   and ``dask worker --nworkers N --nthreads 1`` started on 127.0.0.1 with the local cluster's
   Dask settings (:data:`calcscope.apps.batch.LOCAL_CLUSTER_CONFIG`, as ``DASK_...``
   environment variables; ``--no-pair`` skips).
2. Starts a :class:`calcscope.apps.node.StorageNode` forwarding to a small Storage SCP
   (the "PACS") on loopback, sends ``--node-images`` images one at a time by C-STORE and
   prints, per image, the time from the C-STORE request to the SR's arrival at the PACS,
   with how long the C-STORE itself took, the analysis and the writing of the JSON, SR and
   GSPS in the worker process (from the node's commit marker), and the rest (queue,
   commit, exam, forwarding). ``--no-batch`` times the node only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path


def _phantoms(folder: Path, n: int, shape: tuple[int, int] | None, spacing_mm: float) -> list[Path]:
    from calcscope.imaging.io import write_image
    from calcscope.phantom.mammogram import make_phantom

    distinct = min(n, 6)
    paths: list[Path] = []
    for seed in range(distinct):
        ph = make_phantom(seed=seed, spacing_mm=spacing_mm, shape=shape)
        paths.append(write_image(ph.mammogram, folder / f"p{seed:03d}.dcm"))
    for k in range(distinct, n):
        target = folder / f"p{k:03d}.dcm"
        shutil.copy(paths[k % distinct], target)
        paths.append(target)
    return paths


def _warm(client: object) -> None:
    """Import the pipeline in every worker and check its thread settings."""

    def setup() -> str:
        import cv2

        from calcscope.config import Config
        from calcscope.detection.classifier import load_model

        load_model(Config().detect.model)  # LightGBM and the model, loaded once per worker
        return f"cv2 threads {cv2.getNumThreads()}, OMP {os.environ.get('OMP_NUM_THREADS')}"

    seen = set(client.run(setup).values())  # type: ignore[attr-defined]
    print(f"{'':>8}workers: {', '.join(sorted(seen))}")


def _worker_usage() -> tuple[float, int, int]:
    """In a worker: its CPU time (s), minor page faults and peak RSS (bytes) so far."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime, r.ru_minflt, r.ru_maxrss * 1024


def _cpu_s(pids: list[int]) -> float:
    """CPU time (user + system) of the processes ``pids`` so far, s."""
    import psutil

    total = 0.0
    for pid in pids:
        t = psutil.Process(pid).cpu_times()
        total += t.user + t.system
    return total


@dataclass(frozen=True)
class _Run:
    """One timed batch: images per second, and where the wall time and the CPU went."""

    images_per_s: float
    wall_s: float
    busy: float  # sum of the images' analysis times / (wall x workers)
    tables_s: float  # the driver's summaries (summary, images, exams, breasts CSV)
    worker_cpu_s: float  # CPU of the worker processes per image
    faults: float  # minor page faults of the workers per image
    overhead_cpu_s: float  # CPU per image of the driver, scheduler and nannies
    peak_mib: float  # the largest worker's peak RSS


def _timed_batch(
    client: object, folder: Path, n: int, out: Path, workers: int, others: list[int]
) -> _Run:
    """Run the batch once; ``others``: the processes besides this one (driver) that are
    not workers: a separate scheduler and the nannies' process."""
    from calcscope.apps.batch import run_batch, write_exams, write_summaries

    pids = [os.getpid(), *others]
    before = client.run(_worker_usage)  # type: ignore[attr-defined]
    cpu0 = _cpu_s(pids)
    res = run_batch(folder, out, client=client, show_progress=False)
    overhead_s = _cpu_s(pids) - cpu0
    after = client.run(_worker_usage)  # type: ignore[attr-defined]
    assert res.n_analysed == n, res
    analysis_s = sum(
        float(json.loads(p.read_text())["timings_s"]["total"]) for p in out.glob("*/analysis.json")
    )
    keys = sorted(p.parent.name for p in out.glob("*/analysis.json"))
    t = time.perf_counter()
    write_summaries(out, keys)
    write_exams(out, keys)
    tables_s = time.perf_counter() - t
    busy = analysis_s / (res.seconds * workers)
    used = [(after[w][0] - before[w][0], after[w][1] - before[w][1]) for w in after if w in before]
    return _Run(
        float(res.images_per_second),
        res.seconds,
        busy,
        tables_s,
        worker_cpu_s=sum(u[0] for u in used) / n,
        faults=sum(u[1] for u in used) / n,
        overhead_cpu_s=overhead_s / n,
        peak_mib=max(u[2] for u in after.values()) / 2**20,
    )


def _print_runs(w: int, runs: list[_Run], base: float | None) -> float:
    """Print one worker count's line; return the base rate (the first count's best)."""
    best = max(runs, key=lambda r: r.images_per_s)
    base = base or best.images_per_s
    each = " ".join(f"{r.images_per_s:.2f}" for r in runs)
    print(
        f"{w:>7}{each:>16}{best.images_per_s:>6.2f}{best.images_per_s / base:>6.2f}"
        f"{best.busy:>6.0%}{best.worker_cpu_s:>8.3f}{best.faults / 1000:>8.1f}"
        f"{best.overhead_cpu_s:>10.3f}{best.peak_mib:>8.0f}{best.tables_s:>7.2f}"
        f"{os.getloadavg()[0]:>6.1f}"
    )
    return base


_HEADER = (
    f"{'workers':>7}{'images/s (runs)':>16}{'best':>6}{'x':>6}{'busy':>6}"
    f"{'wCPU/im':>8}{'kflt/im':>8}{'drvCPU/im':>10}{'peakMiB':>8}{'tables':>7}{'load':>6}"
)
_LEGEND = (
    "x: speed-up over the first count; busy: analysis time / (wall x workers); wCPU/im: "
    "the workers' CPU s per image;\nkflt/im: their minor page faults per image (thousands); "
    "drvCPU/im: CPU s per image of everything else (driver, scheduler, nannies);\n"
    "peakMiB: the largest worker's peak RSS; tables: the driver's summary tables, s; load: "
    "1-minute load average"
)


def bench_batch(folder: Path, n: int, workers: list[int], work: Path, repeat: int) -> None:
    """Images per second on a LocalCluster of worker processes (as ``calcscope batch``)."""
    import dask
    from distributed import Client, LocalCluster

    from calcscope.apps.batch import LOCAL_CLUSTER_CONFIG, WORKER_ENV, worker_memory_bytes

    print(f"\nbatch, LocalCluster: {n} images of {folder}, cpus={os.cpu_count()}")
    print(_LEGEND)
    print(_HEADER)
    base = None
    for w in workers:
        with (
            dask.config.set(LOCAL_CLUSTER_CONFIG),
            LocalCluster(
                n_workers=w,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                env=dict(WORKER_ENV),  # as calcscope batch's local cluster
                memory_limit=worker_memory_bytes(),
            ) as cluster,
            Client(cluster) as client,
        ):
            _warm(client)
            runs = [
                _timed_batch(client, folder, n, work / f"batch-{w}-{k}", w, [])
                for k in range(repeat)
            ]
        base = _print_runs(w, runs, base)


def bench_pair(folder: Path, n: int, workers: list[int], work: Path, repeat: int) -> None:
    """The same on a ``dask scheduler`` + ``dask worker`` pair started here on loopback."""
    import subprocess
    import sys

    from distributed import Client

    from calcscope.apps.batch import LOCAL_CLUSTER_CONFIG, WORKER_ENV, worker_memory_bytes

    dask = str(Path(sys.executable).with_name("dask"))
    print(f"\nbatch, dask scheduler + dask worker on 127.0.0.1: {n} images")
    print(_HEADER)
    base = None
    quiet = {  # the local cluster's settings, as Dask reads them from the environment
        "DASK_" + key.upper().replace(".", "__").replace("-", "_"): value
        for key, value in LOCAL_CLUSTER_CONFIG.items()
    }
    env = {**os.environ, **quiet}
    worker_env = {**env, **WORKER_ENV}
    for w in workers:
        sched_file = work / f"scheduler-{w}.json"
        sched = subprocess.Popen(
            [dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--scheduler-file", str(sched_file)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        worker = None
        try:
            deadline = time.monotonic() + 60
            while not sched_file.exists() and time.monotonic() < deadline:
                time.sleep(0.2)
            worker = subprocess.Popen(
                [dask, "worker", "--scheduler-file", str(sched_file), "--nworkers", str(w),
                 "--nthreads", "1", "--memory-limit", str(worker_memory_bytes()),
                 "--no-dashboard", "--host", "127.0.0.1"],
                env=worker_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            with Client(scheduler_file=str(sched_file), timeout="60s") as client:
                client.wait_for_workers(w, timeout=120)
                _warm(client)
                others = [sched.pid, worker.pid]  # the scheduler; the nannies' process
                runs = [
                    _timed_batch(client, folder, n, work / f"pair-{w}-{k}", w, others)
                    for k in range(repeat)
                ]
        finally:
            for proc in (worker, sched):
                if proc is not None:
                    proc.terminate()
                    proc.wait(timeout=30)
        base = _print_runs(w, runs, base)


class _Pacs:
    """A Storage SCP that notes when each SR arrives (keyed by its Study Instance UID)."""

    def __init__(self) -> None:
        from pynetdicom import AE, evt

        from calcscope.apps.node import REPORT_SOP_CLASSES

        self.arrived: dict[str, float] = {}
        self.cond = threading.Condition()
        ae = AE(ae_title="PACS")
        for cls in REPORT_SOP_CLASSES:
            ae.add_supported_context(cls)
        self.server = ae.start_server(
            ("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_STORE, self._on_store)]
        )
        self.port = int(self.server.server_address[1])

    def _on_store(self, event: object) -> int:
        ds = event.dataset  # type: ignore[attr-defined]
        if ds.Modality == "SR":
            with self.cond:
                self.arrived[str(ds.StudyInstanceUID)] = time.perf_counter()
                self.cond.notify_all()
        return 0

    def wait(self, study: str, timeout_s: float = 120) -> float:
        with self.cond:
            self.cond.wait_for(lambda: study in self.arrived, timeout_s)
            return self.arrived[study]


def bench_node(image: Path, n: int, work: Path) -> None:
    import pydicom
    from pydicom.uid import generate_uid
    from pynetdicom import AE
    from pynetdicom.sop_class import (  # type: ignore[attr-defined]
        DigitalMammographyXRayImageStorageForPresentation as DM,
    )

    from calcscope.apps.node import Forward, StorageNode

    pacs = _Pacs()
    out = work / "node"
    base = pydicom.dcmread(image)
    rows = []
    with StorageNode(
        "CALCSCOPE", 0, out, forward=Forward("127.0.0.1", pacs.port, "PACS"), host="127.0.0.1"
    ) as node:
        ae = AE(ae_title="MODALITY")
        ae.add_requested_context(DM)
        for k in range(n + 1):  # the first one warms up the worker process
            base.SOPInstanceUID = base.file_meta.MediaStorageSOPInstanceUID = generate_uid()
            base.StudyInstanceUID = generate_uid()
            t0 = time.perf_counter()
            assoc = ae.associate("127.0.0.1", node.port, ae_title="CALCSCOPE")
            status = assoc.send_c_store(base)
            assoc.release()
            t_store = time.perf_counter() - t0
            assert status.Status == 0, status
            t_sr = pacs.wait(str(base.StudyInstanceUID)) - t0
            done = json.loads((out / "done" / str(base.SOPInstanceUID)).read_text())
            if k:
                times = (done["analysis_s"], done["outputs_s"], done["seconds"])
                rows.append((t_store, *times, t_sr))
    pacs.server.shutdown()
    print(f"\nnode: {n} images of {image.name} ({base.Rows} x {base.Columns}), one at a time")
    print(
        f"{'image':>6}{'C-STORE':>9}{'analysis':>10}{'outputs':>9}{'job':>11}"
        f"{'rest':>7}{'C-STORE->SR':>13}   (s)"
    )
    for i, (st, an, wr, job, sr) in enumerate(rows, 1):
        rest = sr - st - job  # queue, commit, exam, forwarding
        print(f"{i:>6}{st:>9.3f}{an:>10.3f}{wr:>9.3f}{job:>11.3f}{rest:>7.3f}{sr:>13.3f}")
    med = [statistics.median(r[j] for r in rows) for j in range(5)]
    print(
        f"median C-STORE to SR received: {med[4]:.3f} s (C-STORE {med[0]:.3f} s, analysis "
        f"{med[1]:.3f} s, JSON + SR + GSPS {med[2]:.3f} s, the node's job with its commit "
        f"{med[3]:.3f} s)"
    )


def _shape(path: Path) -> tuple[int, int]:
    import pydicom

    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return int(ds.Rows), int(ds.Columns)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=12)
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    ap.add_argument("--node-images", type=int, default=5)
    ap.add_argument("--rows", type=int, default=0, help="0: a full-field detector's")
    ap.add_argument("--cols", type=int, default=0, help="0: a full-field detector's")
    ap.add_argument("--spacing-mm", type=float, default=0.1)
    ap.add_argument("--repeat", type=int, default=2, help="timed runs per worker count")
    ap.add_argument(
        "--batch",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="time the Dask batch (--no-batch: the node only)",
    )
    ap.add_argument(
        "--pair",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time a dask scheduler + dask worker pair on loopback",
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="calcscope-bench-") as tmp:
        work = Path(tmp)
        folder = work / "images"
        folder.mkdir()
        t = time.perf_counter()
        shape = (args.rows, args.cols) if args.rows and args.cols else None
        paths = _phantoms(folder, args.images, shape, args.spacing_mm)
        rows, cols = _shape(paths[0])
        print(
            f"{len(paths)} phantoms {rows} x {cols} px at {args.spacing_mm} mm "
            f"written in {time.perf_counter() - t:.1f} s"
        )
        counts = [int(w) for w in args.workers.split(",")]
        if args.batch:
            bench_batch(folder, len(paths), counts, work, args.repeat)
        if args.batch and args.pair:
            bench_pair(folder, len(paths), counts, work, args.repeat)
        if args.node_images:
            bench_node(paths[1], args.node_images, work)


if __name__ == "__main__":
    main()
