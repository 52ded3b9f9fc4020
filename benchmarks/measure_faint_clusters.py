"""Measure the cluster-level test of faint specks offline (issue 18).

Usage::

    python benchmarks/measure_scale_cnr.py collect --data ../shared/data --cache /tmp/smcnr3 \\
        --seeds 0-11
    python benchmarks/measure_faint_clusters.py --data ../shared/data --cache /tmp/smcnr3 \\
        --seeds 0-3 --group tune
    python benchmarks/measure_faint_clusters.py --data ../shared/data --cache /tmp/smcnr3 \\
        --seeds 4-7 --group held-out --setting 3.0,4.0,1.0,4

On the candidates that ``measure_scale_cnr.py collect`` stored (CBIS-DDSM films at 0.05 mm;
citation in :mod:`bench_real_hires`), re-runs the clustering with members counted as sure when
their scale-matched CNR (2 mm window) reaches 4.25 (the adopted rule) or when
:func:`calcscope.detection.faint_clusters.dense_faint` finds them in a group denser than the
image's own rate, for a sweep of ``(faint_cnr_min, faint_radius_mm, faint_alpha,
faint_min_count)``, and prints false clusters per calcification-free film (MG1: its cluster
count), false clusters on the inserted copies and inserted clusters found per level. The
breast's area per film is measured once (the preprocessing's mask) and kept in the cache.
Groups: ``tune`` (P_00820 and MG1, where the setting is chosen) and ``held-out`` (P_00173's
four views).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from calcscope.config import Config, DetectConfig
from calcscope.detection.clusters import cluster_calcifications
from calcscope.detection.faint_clusters import dense_faint
from calcscope.imaging.io import read_image
from calcscope.imaging.preprocess import preprocess

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_real_hires import CALC_FREE, SPACING_MM, WITH_CALCS, seed_range  # noqa: E402
from measure_scale_cnr import _calcs, load_runs, tally  # noqa: E402

SCALE_COLUMN = 2
"""Column of the stored scale-matched CNRs: 0.10-0.30 mm band, 2 mm window (the rule's)."""
SURE_CNR = 4.25
"""The adopted scale-matched CNR threshold of a sure member."""
GROUPS = {
    "tune": lambda n: "P_00820" in n or "MG1" in n,
    "held-out": lambda n: "P_00173" in n,
}


def breast_areas(data: Path, cache: Path) -> dict[str, float]:
    """Breast area (mm²) of each film by its file stem, measured once and cached."""
    path = cache / "areas.json"
    if path.is_file():
        return dict(json.loads(path.read_text()))
    config = Config()
    areas = {}
    for rel in (*CALC_FREE, *WITH_CALCS):
        mammo = read_image(data / rel, spacing_mm=SPACING_MM, config=config.io)
        mask = preprocess(mammo, config.preprocess).mask
        areas[Path(rel).stem] = float(np.count_nonzero(mask)) * SPACING_MM**2
    path.write_text(json.dumps(areas))
    return areas


def promoted(run: dict[str, np.ndarray], area_mm2: float, setting: tuple | None) -> np.ndarray:
    """Members counted as sure: the scale-matched CNR rule, and the faint test's groups."""
    small = run["diameter"] <= 1.0
    eligible = ~run["sharp"] & small
    cnr = run["smcnr"][:, SCALE_COLUMN]
    sure = eligible & (cnr >= SURE_CNR)
    if setting is None:
        return sure
    t_low, radius_mm, alpha, n_min = setting
    cfg = DetectConfig(
        faint_cluster_sure=True,
        faint_cnr_min=t_low,
        faint_radius_mm=radius_mm,
        faint_alpha=alpha,
        faint_min_count=int(n_min),
    )
    counted_sure = sure | (small & (run["score"] >= 0.5))
    faint = eligible & (cnr >= t_low) & ~counted_sure
    centres_mm = run["center"] * SPACING_MM
    return sure | dense_faint(centres_mm, faint, counted_sure, area_mm2, cfg)


def clusters_of(
    run: dict[str, np.ndarray], promote: np.ndarray, need_scored: int = 0
) -> np.ndarray:
    """Cluster centres with the ``promote`` members clustered at the sure score (0.5); a
    cluster is kept only with ``need_scored`` members scoring 0.5 or more by themselves."""
    score = run["score"]
    keep = ((score >= 0.03) & (run["diameter"] <= 1.0)) | promote
    calcs = [
        dataclasses.replace(c, score=max(c.score, 0.5)) if p else c
        for c, p in zip(
            _calcs(run["center"][keep], score[keep], run["diameter"][keep]),
            promote[keep],
            strict=True,
        )
    ]
    found = cluster_calcifications(calcs, (SPACING_MM, SPACING_MM), Config().cluster)
    kept_score = score[keep]
    centres = [
        cl.center_rc
        for cl in found
        if sum(kept_score[i - 1] >= 0.5 for i in cl.member_ids) >= need_scored
    ]
    return np.array(centres).reshape(-1, 2)


def evaluate(
    runs: dict[str, dict], areas: dict[str, float], group: str, setting, need_scored: int = 0
) -> str:
    """One line: false clusters per plain film (MG1: its count), on the inserted copies, and
    inserted clusters found per level band."""
    plain: list[str] = []
    false_ins = 0
    ins = np.zeros(3, int)
    fnd = np.zeros(3, int)
    for name, run in runs.items():
        if not GROUPS[group](name):
            continue
        promote = promoted(run, areas[name.split(".")[0]], setting)
        centres = clusters_of(run, promote, need_scored if setting is not None else 0)
        n_false, i_, k_ = tally(run, centres)
        mg1 = "MG1" in name
        if name.endswith(".plain.npz"):
            plain.append(f"MG1 {len(centres)}" if mg1 else str(n_false))
        else:
            ins += i_
            fnd += k_
            false_ins += 0 if mg1 else n_false
    per = " ".join(f"{a}/{b}" for a, b in zip(fnd, ins, strict=True))
    return (
        f"{setting}: false per plain film [{', '.join(plain)}], +{false_ins} on inserted "
        f"copies; found {fnd.sum() / max(ins.sum(), 1):.2f} [{per}]"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--cache", type=Path, default=Path("/tmp/smcnr3"))
    ap.add_argument("--seeds", default="0-3")
    ap.add_argument("--group", choices=sorted(GROUPS), default="tune")
    ap.add_argument(
        "--setting",
        default=None,
        help="one setting faint_cnr_min,radius_mm,alpha,min_count (default: the sweep)",
    )
    ap.add_argument(
        "--need-scored",
        type=int,
        default=0,
        help="with the faint test, a cluster also needs this many members scoring 0.5 or more",
    )
    args = ap.parse_args(argv)
    runs = load_runs(args.cache, seed_range(args.seeds))
    areas = breast_areas(args.data, args.cache)
    if args.setting:
        settings: list = [None, tuple(float(x) for x in args.setting.split(","))]
    else:
        settings = [None] + [
            (t, r, a, n)
            for t in (2.5, 3.0, 3.5)
            for r in (4.0, 5.0, 6.0)
            for a in (0.05, 0.3, 1.0)
            for n in (4, 5)
        ]
    for setting in settings:
        print(evaluate(runs, areas, args.group, setting, args.need_scored), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
