"""Batch throughput for 1 and 2 Dask workers, and the DICOM node's C-STORE-to-SR time.

Usage: ``python benchmarks/bench_batch_node.py [--images 24] [--workers 1,2] [--repeat 2]
[--no-pair] [--node-images 5] [--rows 600 --cols 480 --spacing-mm 0.2]``

1. Writes ``--images`` phantom mammograms (DICOM) into a temporary folder, then runs
   :func:`calcscope.apps.batch.run_batch` over the same set on a local Dask cluster of 1, then
   2, worker processes (cluster started and warmed up before the clock starts), and
   prints images per second and the speed-up over the first worker count. Workers run
   one thread each with OpenCV's and the BLAS pools at one thread
   (:data:`calcscope.apps.batch.WORKER_ENV`) and a memory limit of
   :func:`calcscope.apps.batch.worker_memory_bytes`; then the same on a ``dask scheduler``
   and ``dask worker --nworkers N --nthreads 1`` started on 127.0.0.1 (``--no-pair`` skips).
2. Starts a :class:`calcscope.apps.node.StorageNode` forwarding to a small Storage SCP
   (the "PACS") on loopback, sends ``--node-images`` images one at a time by C-STORE and
   prints, per image, the time from the C-STORE request to the SR's arrival at the PACS,
   with how long the C-STORE itself took and the node's analysis time (JSON, SR and GSPS
   included).
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
from pathlib import Path


def _phantoms(folder: Path, n: int, shape: tuple[int, int], spacing_mm: float) -> list[Path]:
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


def _timed_batch(client: object, folder: Path, n: int, out: Path) -> float:
    from calcscope.apps.batch import run_batch

    res = run_batch(folder, out, client=client, show_progress=False)
    assert res.n_analysed == n, res
    return float(res.images_per_second)


def bench_batch(folder: Path, n: int, workers: list[int], work: Path, repeat: int) -> None:
    """Images per second on a LocalCluster of worker processes (as ``calcscope batch``)."""
    from distributed import Client, LocalCluster

    from calcscope.apps.batch import WORKER_ENV, worker_memory_bytes

    print(f"\nbatch, LocalCluster: {n} images of {folder}, cpus={os.cpu_count()}")
    print(f"{'workers':>8}{'images/s (each run)':>28}{'best':>8}{'speed-up':>10}")
    base = None
    for w in workers:
        with (
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
            runs = [_timed_batch(client, folder, n, work / f"batch-{w}-{k}") for k in range(repeat)]
        best = max(runs)
        base = base or best
        each = " ".join(f"{r:.2f}" for r in runs)
        print(f"{w:>8}{each:>28}{best:>8.2f}{best / base:>10.2f}")


def bench_pair(folder: Path, n: int, workers: list[int], work: Path, repeat: int) -> None:
    """The same on a ``dask scheduler`` + ``dask worker`` pair started here on loopback."""
    import subprocess
    import sys

    from distributed import Client

    from calcscope.apps.batch import WORKER_ENV, worker_memory_bytes

    dask = str(Path(sys.executable).with_name("dask"))
    print(f"\nbatch, dask scheduler + dask worker on 127.0.0.1: {n} images")
    print(f"{'workers':>8}{'images/s (each run)':>28}{'best':>8}{'speed-up':>10}")
    base = None
    env = {**os.environ, **WORKER_ENV}
    for w in workers:
        sched_file = work / f"scheduler-{w}.json"
        sched = subprocess.Popen(
            [dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--scheduler-file", str(sched_file)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
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
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            with Client(scheduler_file=str(sched_file), timeout="60s") as client:
                client.wait_for_workers(w, timeout=120)
                _warm(client)
                runs = [
                    _timed_batch(client, folder, n, work / f"pair-{w}-{k}") for k in range(repeat)
                ]
        finally:
            for proc in (worker, sched):
                if proc is not None:
                    proc.terminate()
                    proc.wait(timeout=30)
        best = max(runs)
        base = base or best
        each = " ".join(f"{r:.2f}" for r in runs)
        print(f"{w:>8}{each:>28}{best:>8.2f}{best / base:>10.2f}")


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
                rows.append((t_store, done["seconds"], t_sr))
    pacs.server.shutdown()
    print(f"\nnode: {n} images of {image.name} ({base.Rows} x {base.Columns}), one at a time")
    print(f"{'image':>6}{'C-STORE s':>11}{'analysis+reports s':>20}{'C-STORE->SR s':>15}")
    for i, (a, b, c) in enumerate(rows, 1):
        print(f"{i:>6}{a:>11.3f}{b:>20.3f}{c:>15.3f}")
    print(
        f"median C-STORE to SR received: {statistics.median(r[2] for r in rows):.3f} s "
        f"(analysis and reports {statistics.median(r[1] for r in rows):.3f} s of it)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    ap.add_argument("--node-images", type=int, default=5)
    ap.add_argument("--rows", type=int, default=600)
    ap.add_argument("--cols", type=int, default=480)
    ap.add_argument("--spacing-mm", type=float, default=0.2)
    ap.add_argument("--repeat", type=int, default=2, help="timed runs per worker count")
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
        paths = _phantoms(folder, args.images, (args.rows, args.cols), args.spacing_mm)
        print(
            f"{len(paths)} phantoms {args.rows} x {args.cols} px at {args.spacing_mm} mm "
            f"written in {time.perf_counter() - t:.1f} s"
        )
        counts = [int(w) for w in args.workers.split(",")]
        bench_batch(folder, len(paths), counts, work, args.repeat)
        if args.pair:
            bench_pair(folder, len(paths), counts, work, args.repeat)
        if args.node_images:
            bench_node(paths[1], args.node_images, work)


if __name__ == "__main__":
    main()
