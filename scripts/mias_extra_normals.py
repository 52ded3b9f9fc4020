"""The mini-MIAS leave-one-woman-out cluster FROC with the extra calcification-free images
(``mini-mias-more``) in the false-positive denominator.

Usage::

    python scripts/mias_extra_normals.py --more ../shared/data/mini-mias-more \\
        [--lowo benchmarks/results/mias-lowo/froc_clusters_lowo.csv]

The 132 images of ``mini-mias-more`` (MIAS MiniMammographic Database, Suckling J et al.,
Excerpta Medica, International Congress Series 1069, 1994, pp. 375-378) belong to women
outside the 74 images the shipped model was trained on, so the shipped model is held out
for them: every cluster it reports there (none has a calcification row) is a false positive.
Their cluster scores are pooled with the leave-one-woman-out curve of
``scripts/train_detector.py --cv`` (its CSV: hits and false clusters at each threshold over
the 70 scored images) and the sensitivities at 0.25 / 0.5 / 1 / 2 false clusters per image
are printed over all images; ``--json`` writes them with the scores.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from calcscope.config import ClusterConfig, Config
from calcscope.pipeline import analyze

MARKS = (0.25, 0.5, 1.0, 2.0)


def extra_cluster_scores(folder: Path) -> dict[str, list[float]]:
    """Every cluster score (operating point 0) of each PGM in ``folder`` at 0.2 mm."""
    cfg = Config(cluster=ClusterConfig(operating_score=0.0))
    out: dict[str, list[float]] = {}
    for path in sorted(folder.glob("*.pgm")):
        a = analyze(path, spacing_mm=0.2, config=cfg)
        out[path.stem] = [round(f.cluster.score, 4) for f in a.clusters]
        print(f"{path.stem}: {len(a.clusters)} clusters", flush=True)
    return out


def pooled_sensitivity(
    lowo_csv: Path, extra: dict[str, list[float]], operating_score: float
) -> dict[str, object]:
    """Sensitivity at :data:`MARKS` false clusters per image over the LOWO images and the
    extra ones, and false clusters per image at the report's ``operating_score``."""
    with lowo_csv.open() as fh:
        rows = [
            (
                float(r["threshold"]),
                int(r["n_hit"]),
                int(r["n_fp"]),
                int(r["n_true"]),
                int(r["n_images"]),
            )
            for r in csv.DictReader(fh)
        ]
    rows.sort(key=lambda r: -r[0])
    n_true, n_lowo = rows[0][3], rows[0][4]
    extra_scores = np.array([s for v in extra.values() for s in v], dtype=np.float64)
    n_images = n_lowo + len(extra)

    def counts(t: float) -> tuple[int, int]:
        # rows hold counts of clusters scoring >= their threshold; the smallest threshold
        # at or above t has the same counts as t
        above = [r for r in rows if r[0] >= t]
        hit, fp = (above[-1][1], above[-1][2]) if above else (0, 0)
        return hit, fp + int((extra_scores >= t).sum())

    thresholds = sorted({r[0] for r in rows} | set(extra_scores.tolist()), reverse=True)
    curve = [(t, *counts(t)) for t in thresholds]
    sens = {
        f"{m:g}": max([h / n_true for _, h, fp in curve if fp / n_images <= m], default=0.0)
        for m in MARKS
    }
    _, hit_op, fp_op = (operating_score, *counts(operating_score))
    return {
        "n_images": n_images,
        "n_true_clusters": n_true,
        "sensitivity_at_fp": sens,
        "extra_false_clusters_per_image_at_operating_point": float(
            (extra_scores >= operating_score).sum() / max(len(extra), 1)
        ),
        "all_false_clusters_per_image_at_operating_point": fp_op / n_images,
        "sensitivity_at_operating_point": hit_op / n_true,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--more", type=Path, default=Path("../shared/data/mini-mias-more"))
    ap.add_argument(
        "--lowo", type=Path, default=Path("benchmarks/results/mias-lowo/froc_clusters_lowo.csv")
    )
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    extra = extra_cluster_scores(args.more / "images")
    summary = pooled_sensitivity(args.lowo, extra, Config().cluster.operating_score)
    print(json.dumps(summary, indent=1))
    if args.json:
        args.json.write_text(json.dumps({**summary, "extra_cluster_scores": extra}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
