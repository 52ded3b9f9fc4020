"""The mini-MIAS leave-one-woman-out cluster FROC with the extra calcification-free images
(``mini-mias-more``) in the false-positive denominator.

Usage::

    # a recipe trained on the 74 images only: its leave-one-woman-out curve (the
    # cv_clusters.json that `calcscope train --cv --cv-out DIR` writes) pooled with the
    # 132 images scored by a model that never saw them (default: the shipped model)
    python scripts/mias_extra_normals.py --cv benchmarks/results/mias-lowo/cv_clusters.json \\
        --more ../shared/data/mini-mias-more [--model MODEL_DIR] [--json OUT.json]
    # a recipe trained with `--normals ../shared/data/mini-mias-more/images`: the 132 are
    # cross-validated in the same folds, so its cv_clusters.json holds every figure
    python scripts/mias_extra_normals.py --cv DIR/cv_clusters.json

The 132 images of ``mini-mias-more`` (MIAS MiniMammographic Database, Suckling J et al.,
Excerpta Medica, International Congress Series 1069, 1994, pp. 375-378) belong to other
women than the 74 of ``mini-mias``; none has a calcification row, so every cluster
reported on them is a false positive. Printed: the sensitivities at 0.25 / 0.5 / 1 / 2
false clusters per image over all images and over the 70 scored images of ``mini-mias``
alone, and the false clusters per image at the report's operating point.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from calcscope.config import ClusterConfig, Config, with_model
from calcscope.evaluation.froc import FROC_MARKS, MatchResult, froc_curve, sensitivity_at
from calcscope.pipeline import analyze


def extra_cluster_scores(folder: Path, model: Path | None) -> dict[str, list[float]]:
    """Every cluster score (operating point 0) of each PGM in ``folder`` at 0.2 mm."""
    cfg = Config() if model is None else with_model(Config(), model)
    cfg = cfg.model_copy(update={"cluster": ClusterConfig(operating_score=0.0)})
    out: dict[str, list[float]] = {}
    for path in sorted(folder.glob("*.pgm")):
        a = analyze(path, spacing_mm=0.2, config=cfg)
        out[path.stem] = [round(f.cluster.score, 4) for f in a.clusters]
        print(f"{path.stem}: {len(a.clusters)} clusters", flush=True)
    return out


def cv_results(path: Path) -> list[MatchResult]:
    """Per-image matches of a ``cv_clusters.json`` (``calcscope train --cv --cv-out``)."""
    doc = json.loads(path.read_text())
    return [
        MatchResult(tuple(v["true_scores"]), tuple(v["fp_scores"]), image_id=k)
        for k, v in doc["images"].items()
    ]


def summary(results: list[MatchResult], operating_score: float) -> dict[str, object]:
    """Sensitivity at the FROC marks and the figures at ``operating_score``."""
    curve = froc_curve(results)
    n_fp = sum(sum(s >= operating_score for s in r.fp_scores) for r in results)
    n_hit = sum(sum(s is not None and s >= operating_score for s in r.true_scores) for r in results)
    return {
        "n_images": curve.n_images,
        "n_true_clusters": curve.n_true,
        "sensitivity_at_fp": {f"{m:g}": sensitivity_at(curve, m) for m in FROC_MARKS},
        "false_clusters_per_image_at_operating_point": n_fp / curve.n_images,
        "sensitivity_at_operating_point": n_hit / curve.n_true,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cv", type=Path, required=True, help="cv_clusters.json of a --cv run")
    ap.add_argument("--more", type=Path, default=None, help="mini-mias-more (to score it)")
    ap.add_argument("--model", type=Path, default=None, help="model scoring --more")
    ap.add_argument("--operating-score", type=float, default=Config().cluster.operating_score)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    results = cv_results(args.cv)
    extra: dict[str, list[float]] = {}
    if args.more is not None:
        extra = extra_cluster_scores(args.more / "images", args.model)
        results += [MatchResult((), tuple(v), image_id=f"more:{k}") for k, v in extra.items()]
    set_only = [r for r in results if (r.image_id or "").startswith("mdb")]
    doc = {
        "all_images": summary(results, args.operating_score),
        "mini_mias_only": summary(set_only, args.operating_score),
        "operating_score": args.operating_score,
    }
    print(json.dumps(doc, indent=1))
    if args.json:
        args.json.write_text(json.dumps({**doc, "extra_cluster_scores": extra}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
