"""Train the candidate classifier shipped in ``src/calcscope/models``.

Reproducible: fixed seeds, deterministic LightGBM. Usage::

    python scripts/train_detector.py [--phantoms 48] [--out src/calcscope/models/candidates-v1.lgb.txt]

Training data: candidates of synthetic phantoms (seeds 1000+, spacings 0.05-0.2 mm, CC
and MLO, random cluster morphologies and macro patterns, noise 0.7-1.5x), labelled by
:func:`calcscope.evaluate.label_candidates`. With ``--mias DIR`` candidates of real
mini-MIAS images are added (see ``--help``). Prints a grouped cross-validated AUC.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold

from calcscope.config import Config, DetectConfig
from calcscope.detect import Candidates, detect
from calcscope.evaluate import label_candidates
from calcscope.model import Distribution, Laterality, View
from calcscope.phantom import CLUSTER_MORPHOLOGIES, MACRO_PATTERNS, ClusterSpec, make_phantom
from calcscope.preprocess import preprocess

PARAMS = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 40,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "seed": 7,
    "deterministic": True,
    "force_row_wise": True,
    "num_threads": 2,
    "verbose": -1,
}
N_ROUNDS = 300


def phantom_candidates(k: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1000 + k)
    spacing = float(rng.choice([0.05, 0.07, 0.07, 0.085, 0.1, 0.15, 0.2]))
    shape = (3000, 2400) if spacing < 0.07 else None
    morphs = rng.choice(len(CLUSTER_MORPHOLOGIES), size=3, replace=False)
    dists = [Distribution.GROUPED, Distribution.GROUPED, Distribution.LINEAR, Distribution.REGIONAL]
    specs = [
        ClusterSpec(
            CLUSTER_MORPHOLOGIES[i],
            dists[int(rng.integers(len(dists)))],
            n=int(rng.integers(5, 14)),
        )
        for i in morphs
    ]
    macros = [MACRO_PATTERNS[i] for i in rng.choice(len(MACRO_PATTERNS), 3, replace=False)]
    view = View.MLO if k % 2 else View.CC
    lat = Laterality.LEFT if k % 3 else Laterality.RIGHT
    ph = make_phantom(
        seed=1000 + k,
        spacing_mm=spacing,
        shape=shape,
        view=view,
        laterality=lat,
        clusters=specs,
        macros=macros,
        n_singles=int(rng.integers(3, 10)),
        noise=float(rng.uniform(0.7, 1.5)),
    )
    cfg = DetectConfig(model="cnr", operating_score=1.0)
    prep = preprocess(ph.mammogram, Config().preprocess)
    cands: Candidates = detect(ph.mammogram, prep, cfg).candidates
    return cands.feature_matrix(), label_candidates(ph, cands)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--phantoms", type=int, default=48)
    ap.add_argument("--out", type=Path, default=Path("src/calcscope/models/candidates-v1.lgb.txt"))
    args = ap.parse_args()
    xs, ys, gs = [], [], []
    t0 = time.time()
    for k in range(args.phantoms):
        x, y = phantom_candidates(k)
        keep = y >= 0
        xs.append(x[keep])
        ys.append(y[keep])
        gs.append(np.full(keep.sum(), k))
        print(
            f"phantom {k}: {keep.sum()} candidates, {int(y[keep].sum())} positive "
            f"({time.time() - t0:.0f} s)",
            flush=True,
        )
    x, y, g = np.concatenate(xs), np.concatenate(ys), np.concatenate(gs)
    print(f"{len(y)} candidates, {int(y.sum())} positive")
    oof = np.zeros(len(y))
    for tr, te in GroupKFold(n_splits=4).split(x, y, g):
        b = lgb.train(PARAMS, lgb.Dataset(x[tr], y[tr]), N_ROUNDS)
        oof[te] = b.predict(x[te])
    print(f"grouped 4-fold CV AUC on phantom candidates: {roc_auc_score(y, oof):.4f}")
    for t in (0.3, 0.5, 0.7):
        sel = oof >= t
        print(
            f"  threshold {t}: sensitivity {sel[y == 1].mean():.3f}, "
            f"false candidates kept {int(sel[y == 0].sum())} of {int((y == 0).sum())}"
        )
    booster = lgb.train(
        PARAMS, lgb.Dataset(x, y, feature_name=list(Candidates.FEATURE_NAMES)), N_ROUNDS
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(args.out))
    print(f"saved {args.out} ({args.out.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
