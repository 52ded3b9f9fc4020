"""Cross-validation of the training recipe by woman, with the full pipeline."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from calcscope.detection.model_card import CrossValidation
from calcscope.evaluation.training_set import TrainingSet
from calcscope.evaluation.training_tables import TableSummary, load_table

__all__ = ["cross_validate", "woman_folds"]


def woman_folds(women: Sequence[str], k: int, seed: int) -> list[list[str]]:
    """Split women into ``k`` folds (at most one per woman), shuffled by ``seed``."""
    unique = sorted(set(women))
    order = np.random.default_rng(seed).permutation(len(unique))
    k = max(2, min(k, len(unique)))
    return [[unique[i] for i in order[f::k]] for f in range(k)]


def cross_validate(
    ts: TrainingSet,
    usable: dict[str, TableSummary],
    table_of: dict[str, Path],
    phantoms: Sequence[Path],
    opts: Any,
    base: Sequence[Any],
    progress: Any = None,
) -> CrossValidation:
    """Cluster FROC of the recipe over held-out women.

    For each fold, a model (every member) is trained on the other women's images (and
    their inserted clusters, and the phantoms), and the fold's images are analysed by the
    full pipeline with it, every cluster reported whatever its score; the clusters are
    matched to the truth circles as ``calcscope evaluate`` does.
    """
    from calcscope.config import ClusterConfig, Config, DetectConfig
    from calcscope.evaluation.froc import MatchResult, froc_curve, match_clusters
    from calcscope.evaluation.training import _fit, froc_points
    from calcscope.evaluation.truth import ImageTruth, TruthCluster
    from calcscope.pipeline import analyze

    ids = sorted(usable)
    folds = woman_folds([ts.woman[k] for k in ids], opts.cv_folds, opts.seed)
    results: list[MatchResult] = []
    with tempfile.TemporaryDirectory() as tmp:
        for f, women in enumerate(folds):
            held = [k for k in ids if ts.woman[k] in women]
            rest = [table_of[k] for k in ids if ts.woman[k] not in women]
            boosters = _fit(rest, phantoms, opts, base, threads=2)
            model = Path(tmp) / f"fold{f}"
            for e, b in enumerate(boosters):
                b.save_model(f"{model}.{e + 1}.lgb.txt")
            cfg = Config(
                detect=DetectConfig(model=str(model)), cluster=ClusterConfig(operating_score=0.0)
            )
            for k in held:
                if k.startswith("normal:"):
                    continue  # extra normals train only
                a = analyze(ts.paths[k], spacing_mm=opts.spacing_mm, config=cfg)
                dets = [
                    (
                        (float(f.cluster.center_rc[0]), float(f.cluster.center_rc[1])),
                        f.cluster.score,
                    )
                    for f in a.clusters
                ]
                circles = load_table(table_of[k]).circles_rc
                truth = ImageTruth(
                    k,
                    tuple(
                        TruthCluster(k, (float(r), float(c)), None, float(rad), None, "truth")
                        for r, c, rad in circles
                    ),
                    (),
                    len(circles) > 0,
                    (),
                    None,
                    a.mammogram.pixel_mm,
                )
                m = match_clusters(dets, truth, spacing_mm=a.mammogram.pixel_mm)
                results.append(MatchResult(m.true_scores, m.fp_scores, image_id=k))
            if progress:
                progress("cross-validation", f + 1, len(folds))
    curve = froc_curve(results)
    return CrossValidation(
        split=f"{len(folds)} folds by woman (patient id), seed {opts.seed}",
        folds=len(folds),
        n_images=curve.n_images,
        n_true_clusters=curve.n_true,
        points=froc_points(curve),
    )
