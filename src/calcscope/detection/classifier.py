"""The candidate classifier: the shipped LightGBM models (``detection/models/``), their
loading and the score of each candidate."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

import numpy as np

from calcscope.config import DetectConfig
from calcscope.detection.features import Candidates
from calcscope.errors import ConfigError

__all__ = [
    "MODEL_DIR",
    "load_model",
    "model_files",
    "score_candidates",
    "scored_candidates",
    "too_sharp",
]

MODEL_DIR = Path(__file__).resolve().parent / "models"
"""Folder of the shipped candidate models."""


def model_files(name: str) -> list[Path]:
    """The LightGBM text files of the candidate model ``name``.

    A shipped name (``"candidates-v2"``) is looked up in :data:`MODEL_DIR`; a name with
    a directory part is a path without its suffix, as written by
    ``scripts/train_detector.py`` during cross-validation. The model is the single file
    ``<name>.lgb.txt`` or, for an ensemble, the files ``<name>.1.lgb.txt``,
    ``<name>.2.lgb.txt``, ...; a name ending in ``.txt`` is one file.
    """
    if name.endswith(".txt"):
        return [Path(name)]
    base = Path(name) if Path(name).name != name else MODEL_DIR / name
    single = base.with_name(base.name + ".lgb.txt")
    if single.is_file():
        return [single]
    return sorted(base.parent.glob(base.name + ".*.lgb.txt"))


@functools.lru_cache(maxsize=4)
def load_model(name: str) -> tuple[Any, ...]:
    """The LightGBM candidate classifier(s) of ``name`` (see :func:`model_files`): one
    booster, or the members of an ensemble whose predictions are averaged."""
    import lightgbm

    paths = model_files(name)
    if not paths or not all(p.is_file() for p in paths):
        raise ConfigError(f"detector model {name!r} not found (looked for {name}.lgb.txt)")
    return tuple(lightgbm.Booster(model_file=str(p)) for p in paths)


def score_candidates(cands: Candidates, config: DetectConfig) -> np.ndarray:
    """Detector confidence in [0, 1] of every candidate.

    With ``config.model == "cnr"`` a logistic function of the peak CNR (0.5 at
    ``score_cnr_mid``); otherwise the probability given by the shipped LightGBM
    candidate classifier of that name (trained by ``scripts/train_detector.py``; for an
    ensemble, the mean of its members' probabilities). The operating point
    (``operating_score``) is a threshold on this score.
    """
    if len(cands) == 0:
        return np.zeros(0)
    if config.model == "cnr":
        z = (cands.peak_cnr - config.score_cnr_mid) / config.score_cnr_width
        return (1.0 / (1.0 + np.exp(-z))).astype(np.float64)
    x = cands.feature_matrix()
    members = load_model(config.model)
    return np.mean([np.asarray(b.predict(x), dtype=np.float64) for b in members], axis=0)


def scored_candidates(cands: Candidates, config: DetectConfig) -> Candidates:
    """``cands`` with their scores (:func:`score_candidates`); candidates whose diameter
    lies outside ``min_diameter_mm`` to ``max_diameter_mm`` score 0, and those sharper than
    the imaging chain draws (:func:`too_sharp`) at most ``speck_max_score``."""
    score = score_candidates(cands, config)
    size_ok = (cands.diameter_mm >= config.min_diameter_mm) & (
        cands.diameter_mm <= config.max_diameter_mm
    )
    score = np.where(too_sharp(cands, config), np.minimum(score, config.speck_max_score), score)
    return dataclasses.replace(cands, score=np.where(size_ok, score, 0.0))


def too_sharp(cands: Candidates, config: DetectConfig) -> np.ndarray:
    """Whether each candidate is sharper than the imaging chain can draw a calcification.

    On film scanned at 0.05 mm, dust, dead pixels and grain make specks one or two pixels
    across whose energy lies in the finest band (0.05-0.15 mm) alone: their half-maximum
    width (``diameter_mm``) is under ``config.speck_min_mm`` or their second band's CNR
    under ``config.speck_min_band_ratio`` of the finest band's. A calcification, however
    small, reaches the film through the screen's and the focal spot's blur and the scanner's,
    and is drawn wider and smoother. Only at pixels up to ``config.speck_max_pixel_mm``
    (coarser pixels cannot measure such widths). Returns a bool array, one per candidate.
    """
    n = len(cands)
    if n == 0 or cands.pixel_mm > config.speck_max_pixel_mm:
        return np.zeros(n, dtype=bool)
    ratio = cands.band_cnr[:, 1] / np.maximum(cands.band_cnr[:, 0], 1e-6)
    return (cands.diameter_mm < config.speck_min_mm) | (ratio < config.speck_min_band_ratio)
