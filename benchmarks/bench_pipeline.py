"""Per-stage time and peak memory of the pipeline on a full-field phantom.

Usage: ``python benchmarks/bench_pipeline.py [--repeat 3] [--spacing-mm 0.07]``

Prints the median time of each stage over the repeats, the total, and the peak memory
(numpy allocations traced by tracemalloc, and the process' maximum resident set size).
Target (issue 2): a 3328 x 4096 image at 0.07 mm in under 2 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time
import tracemalloc
from pathlib import Path

from calcscope.config import Config
from calcscope.phantom.mammogram import make_phantom
from calcscope.pipeline import analyze_mammogram


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--spacing-mm", type=float, default=0.07)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--real",
        type=Path,
        default=Path(__file__).resolve().parents[2] / "shared" / "data" / "mini-mias" / "images",
        help="folder of real images for the per-image timing (mini-MIAS)",
    )
    args = ap.parse_args()

    t0 = time.perf_counter()
    ph = make_phantom(seed=args.seed, spacing_mm=args.spacing_mm)
    t_phantom = time.perf_counter() - t0
    m = ph.mammogram
    print(
        f"image {m.shape[1]} x {m.shape[0]} px at {args.spacing_mm} mm "
        f"(phantom made in {t_phantom:.2f} s); cpus={os.cpu_count()}"
    )
    cfg = Config()
    analyze_mammogram(m, cfg)  # warm-up (imports, OpenCV threads)
    runs = []
    tracemalloc.start()
    for _ in range(args.repeat):
        tracemalloc.reset_peak()
        t = time.perf_counter()
        a = analyze_mammogram(m, cfg)
        wall = time.perf_counter() - t
        runs.append((wall, a.timings_s))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    stages = [k for k in runs[0][1] if k != "total"]
    print(f"{'stage':<12}{'median s':>10}")
    for k in stages:
        print(f"{k:<12}{statistics.median(r[1][k] for r in runs):>10.3f}")
    print(f"{'total':<12}{statistics.median(r[0] for r in runs):>10.3f}")
    print(f"calcifications {len(a.calcifications)}, clusters {len(a.clusters)}")
    print(f"peak traced (numpy) memory during analysis: {peak / 2**20:.0f} MiB")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"process max RSS: {rss:.0f} MiB")
    real_set(args.real)


def real_set(folder: Path) -> None:
    """Per-image time on the real mini-MIAS images (1024 x 1024 at 0.2 mm), if present."""
    from calcscope.pipeline import analyze

    images = sorted(folder.glob("mdb*.pgm")) if folder.is_dir() else []
    if not images:
        print(f"real set: {folder} not found, skipped")
        return
    times = []
    for p in images:
        t = time.perf_counter()
        analyze(p, spacing_mm=0.2)
        times.append(time.perf_counter() - t)
    print(
        f"real set (mini-MIAS, {len(images)} images 1024 x 1024 at 0.2 mm): "
        f"median {statistics.median(times):.3f} s/image, max {max(times):.3f} s"
    )


if __name__ == "__main__":
    main()
