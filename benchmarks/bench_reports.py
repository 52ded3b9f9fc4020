"""Time of the DICOM exports (Mammography CAD SR and GSPS) and of the overlay PNG.

Usage: ``python benchmarks/bench_reports.py [--repeat 7]``

Analyses a full-field phantom (3328 x 4096 at 0.07 mm) with extra clusters so that the
report holds about 50 calcifications, then prints the median wall and CPU time of building
and encoding the SR, the GSPS and the overlay PNG, and their share of a full run
(analysis plus every output). Target (issue 22): SR and GSPS together <= 0.1 s for 50
calcifications. Also the viewer's level-0 tiles of the full-size overlay.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

from calcscope.config import Config
from calcscope.model import Distribution, Morphology
from calcscope.phantom.mammogram import ClusterSpec, make_phantom
from calcscope.pipeline import Analysis, analyze_mammogram
from calcscope.reports.gsps import gsps_bytes
from calcscope.reports.schema import overlay_png, to_report
from calcscope.reports.sr import sr_bytes


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float, object]:
    """Median wall and CPU seconds of ``fn`` over ``repeat`` calls, and its last result."""
    walls, cpus = [], []
    out: object = None
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    ph = make_phantom(seed=args.seed, spacing_mm=0.07, clusters=_clusters(), n_singles=8)
    cfg = Config()
    t_an, c_an, analysis = timed(lambda: analyze_mammogram(ph.mammogram, cfg), 1)
    report = to_report(analysis)  # type: ignore[arg-type]
    n = len(report.reported_calcifications())
    print(
        f"cpus={os.cpu_count()} load={os.getloadavg()[0]:.2f}; {n} reported calcifications, "
        f"{len(report.clusters)} clusters; analysis {t_an:.2f} s"
    )
    rows = {
        "sr": timed(lambda: sr_bytes(report), args.repeat),
        "gsps": timed(lambda: gsps_bytes(report), args.repeat),
        "overlay": timed(lambda: overlay_png(analysis), args.repeat),  # type: ignore[arg-type]
    }
    total_cpu = c_an + sum(r[1] for r in rows.values())
    print(f"{'output':<10}{'wall s':>9}{'cpu s':>9}{'KiB':>9}{'cpu share':>10}")
    for k, (w, c, out) in rows.items():
        kib = len(out) / 1024  # type: ignore[arg-type]
        print(f"{k:<10}{w:>9.3f}{c:>9.3f}{kib:>9.0f}{c / total_cpu:>10.1%}")
    w, c = rows["sr"][0] + rows["gsps"][0], rows["sr"][1] + rows["gsps"][1]
    print(
        f"SR + GSPS: {w:.3f} s wall, {c:.3f} s CPU for {n} calcifications "
        f"({c / total_cpu:.1%} of a full run's CPU: analysis {c_an:.2f} s CPU and every output)"
    )
    tiles(analysis)  # type: ignore[arg-type]


def tiles(analysis: Analysis) -> None:
    """Time and bytes of the viewer's level-0 tiles of the full-size overlay."""
    from calcscope.apps.web.tiles import Pyramid
    from calcscope.reports.schema import render_overlay

    pyr = Pyramid(render_overlay(analysis), kind="overlay")
    n_r, n_c = pyr.n_tiles(0)
    w, c = time.perf_counter(), time.process_time()
    sizes = [len(pyr.tile_png(0, r, col)) for r in range(n_r) for col in range(n_c)]
    w, c = time.perf_counter() - w, time.process_time() - c
    print(
        f"viewer overlay tiles, level 0: {len(sizes)} tiles, {sum(sizes) / 2**20:.1f} MiB, "
        f"{1000 * c / len(sizes):.2f} ms CPU per tile ({w:.2f} s wall for all)"
    )


def _clusters() -> list[ClusterSpec]:
    """Six clusters (about 45 calcifications) beside the default macro findings."""
    m, d = Morphology, Distribution
    return [
        ClusterSpec(m.FINE_PLEOMORPHIC, d.GROUPED, 8),
        ClusterSpec(m.PUNCTATE, d.GROUPED, 6),
        ClusterSpec(m.FINE_LINEAR_BRANCHING, d.LINEAR, 7),
        ClusterSpec(m.AMORPHOUS, d.GROUPED, 8),
        ClusterSpec(m.FINE_PLEOMORPHIC, d.SEGMENTAL, 9),
        ClusterSpec(m.PUNCTATE, d.GROUPED, 7),
    ]


if __name__ == "__main__":
    main()
