"""Rebuild the shipped candidate model (``src/calcscope/detection/models``), a thin wrapper
over ``calcscope train`` (:func:`calcscope.evaluation.training.train_model`).

Usage::

    python scripts/train_detector.py --mias ../shared/data/mini-mias [--cv]
    python scripts/train_detector.py --card-only   # the card of the weights already there

The shipped recipe: mini-MIAS (0.2 mm film; candidates inside a calcification circle of
radius at least 2 mm positive, every other one negative; images without coordinates or
with circles off the breast left out), synthetic clusters inserted 4 times per ensemble
member into every normal mini-MIAS image, 48 synthetic phantoms, an ensemble of 3 whose
scores are averaged. ``--cv`` adds the leave-one-woman-out cluster FROC to the card (one
fold per woman). Same as::

    calcscope train --format mias --images ../shared/data/mini-mias/images \\
        --truth ../shared/data/mini-mias/Info.txt --spacing-mm 0.2 --phantoms 48 \\
        --insertions 4 --ensemble 3 --name candidates-v2 --out src/calcscope/detection/models

``--card-only`` writes ``models/model.json`` for the weights in the folder (after they were
trained by an earlier version of this script, or after the features changed and the
weights were retrained): the card names the recipe above and the figures of
``benchmarks/results/mias-lowo/lowo_summary.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from calcscope.detection.classifier import MODEL_DIR
from calcscope.detection.features import Candidates
from calcscope.detection.model_card import (
    CrossValidation,
    FrocPoint,
    ModelCard,
    TrainingData,
    TrainingSettings,
    feature_version,
    write_card,
)
from calcscope.evaluation.training import LGB_PARAMS, TrainOptions, train_model
from calcscope.reports.schema import SCHEMA_VERSION

NAME = "candidates-v2"
RECIPE = TrainOptions(
    spacing_mm=0.2, ensemble=3, insertions=4, phantoms=48, rounds=250, name=NAME, workers=2
)
REBUILD = (
    "calcscope train --format mias --images ../shared/data/mini-mias/images --truth "
    "../shared/data/mini-mias/Info.txt --spacing-mm 0.2 --phantoms 48 --insertions 4 "
    "--ensemble 3 --name candidates-v2 --out src/calcscope/detection/models"
)
LOWO = Path("benchmarks/results/mias-lowo/lowo_summary.json")


def shipped_card() -> ModelCard:
    """The card of the shipped weights (trained by this recipe; figures from ``LOWO``)."""
    cv = None
    if LOWO.is_file():
        doc = json.loads(LOWO.read_text())
        cv = CrossValidation(
            split="leave-one-woman-out (mdb(2k-1) and mdb(2k) are one woman)",
            folds=53,
            n_images=doc["n_images"],
            n_true_clusters=doc["n_true_clusters"],
            points=[
                FrocPoint(fp_per_image=float(k), sensitivity=v)
                for k, v in doc["sensitivity_at_fp"].items()
            ],
        )
    return ModelCard(
        name=NAME,
        report_schema_version=SCHEMA_VERSION,
        features=list(Candidates.FEATURE_NAMES),
        feature_version=feature_version(Candidates.FEATURE_NAMES),
        weights=[f"{NAME}.{k}.lgb.txt" for k in (1, 2, 3)],
        data=[
            TrainingData(
                format="mias",
                folder="images",
                n_images=70,
                n_women=53,
                n_clusters=12,
                n_calcifications=0,
                spacings_mm=[0.2],
                acquisition="film",
                excluded={
                    "mdb212": "circle off the breast",
                    "mdb214": "circle off the breast",
                    "mdb216": "no coordinates: calcifications spread through the breast",
                    "mdb245": "no coordinates: calcifications spread through the breast",
                },
            ),
            TrainingData(
                format="phantoms",
                folder="(synthetic)",
                n_images=48,
                n_women=0,
                n_clusters=144,
                n_calcifications=0,
                spacings_mm=[0.05, 0.07, 0.085, 0.1, 0.15, 0.2],
                acquisition="synthetic",
            ),
        ],
        training=TrainingSettings(
            params=dict(LGB_PARAMS),
            rounds=RECIPE.rounds,
            ensemble=RECIPE.ensemble,
            insertions_per_member=RECIPE.insertions,
            real_weight=RECIPE.real_weight,
            inserted_weight=RECIPE.inserted_weight,
            phantoms=RECIPE.phantoms,
            seed=RECIPE.seed,
        ),
        cross_validation=cv,
        rebuild=REBUILD,
        notes="Trained by scripts/train_detector.py before `calcscope train` existed; the "
        "rebuild command gives the same recipe (not bit-identical weights).",
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--mias", type=Path, default=None, help="mini-MIAS folder")
    ap.add_argument("--cv", action="store_true", help="leave-one-woman-out CV on the card")
    ap.add_argument("--card-only", action="store_true", help="write the card, train nothing")
    ap.add_argument("--out", type=Path, default=MODEL_DIR)
    ap.add_argument("--cache", type=Path, default=Path(".cache/train-shipped"))
    args = ap.parse_args()
    if args.card_only:
        card = write_card(args.out, shipped_card())
        print(f"wrote {args.out / 'model.json'} (sha256 {card.sha256[:12]})")
        return
    if args.mias is None:
        ap.error("--mias DIR is needed (or --card-only)")
    folds = 10_000 if args.cv else 0  # one fold per woman
    opts = TrainOptions(**{**RECIPE.__dict__, "cache_dir": args.cache, "cv_folds": folds})
    res = train_model("mias", args.mias / "images", args.mias / "Info.txt", args.out, opts)
    print(f"wrote {res.out} ({res.card.name}, sha256 {res.card.sha256[:12]})")


if __name__ == "__main__":
    main()
