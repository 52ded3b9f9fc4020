"""Time of the DICOM exports (Mammography CAD SR and GSPS) and of the overlay PNG.

Usage: ``python benchmarks/bench_reports.py [--repeat 7]``

Analyses a full-field phantom (3328 x 4096 at 0.07 mm) with extra clusters so that the
report holds about 50 calcifications, then prints the median wall and CPU time of building
and encoding the SR, the GSPS and the overlay PNG, and their share of a full run
(analysis plus every output). Target (issue 22): SR and GSPS together <= 0.1 s for 50
calcifications.
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
from calcscope.pipeline import analyze_mammogram
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
    print(f"cpus={os.cpu_count()} load={os.getloadavg()[0]:.2f}; {n} reported calcifications, "
          f"{len(report.clusters)} clusters; analysis {t_an:.2f} s")
    rows = {
        "sr": timed(lambda: sr_bytes(report), args.repeat),
        "gsps": timed(lambda: gsps_bytes(report), args.repeat),
        "overlay": timed(lambda: overlay_png(analysis), args.repeat),  # type: ignore[arg-type]
    }
    total = t_an + sum(r[0] for r in rows.values())
    print(f"{'output':<10}{'wall s':>9}{'cpu s':>9}{'KiB':>9}{'share':>8}")
    for k, (w, c, out) in rows.items():
        print(f"{k:<10}{w:>9.3f}{c:>9.3f}{len(out) / 1024:>9.0f}{w / total:>8.1%}")  # type: ignore[arg-type]
    w = rows["sr"][0] + rows["gsps"][0]
    print(f"SR + GSPS: {w:.3f} s for {n} calcifications ({w / total:.1%} of a full run)")


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
