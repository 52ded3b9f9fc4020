"""The candidate classifier: the shipped LightGBM models (``detection/models/``), their
loading and the score of each candidate."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from calcscope.config import DetectConfig
from calcscope.detection.features import Candidates
from calcscope.detection.model_card import CARD_FILE, ModelIdentity, read_card
from calcscope.errors import ConfigError

__all__ = [
    "MODEL_DIR",
    "load_model",
    "model_files",
    "model_folder",
    "model_identity",
    "resolve_model",
    "score_candidates",
    "scored_candidates",
    "too_sharp",
]

MODEL_DIR = Path(__file__).resolve().parent / "models"
"""Folder of the shipped candidate model: a model folder like any other (its card is
``models/model.json``)."""


def _shipped_name() -> str | None:
    """Name on the shipped model's card, None without a card."""
    try:
        return str(json.loads((MODEL_DIR / CARD_FILE).read_text())["name"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def model_folder(name: str) -> Path | None:
    """The model folder ``name`` stands for: a folder (with a card, or given with a
    directory part), or the shipped folder when ``name`` is its card's name."""
    path = Path(name).expanduser()
    if path.is_dir() and ((path / CARD_FILE).is_file() or path.name != name):
        return path
    if name == _shipped_name():
        return MODEL_DIR
    return None


def model_files(name: str) -> list[Path]:
    """The LightGBM text files of the candidate model ``name``.

    ``name`` is a model folder (``calcscope train --out``; its card lists the weights),
    the name on the shipped model's card (``"candidates-v2"``), or, without a card, a
    path without its suffix as written during cross-validation: the single file
    ``<name>.lgb.txt`` or, for an ensemble, ``<name>.1.lgb.txt``, ``<name>.2.lgb.txt``,
    ...; a name ending in ``.txt`` is one file.
    """
    folder = model_folder(name)
    if folder is not None:
        return [folder / w for w in read_card(folder).weights]
    if name.endswith(".txt"):
        return [Path(name)]
    base = Path(name) if Path(name).name != name else MODEL_DIR / name
    single = base.with_name(base.name + ".lgb.txt")
    if single.is_file():
        return [single]
    return sorted(base.parent.glob(base.name + ".*.lgb.txt"))


def resolve_model(name: str) -> ModelIdentity | None:
    """Check the model ``name`` and say which it is (card name and content hash).

    None for the ``"cnr"`` scorer. A model folder is checked by
    :func:`~calcscope.detection.model_card.read_card` (hash, features); a bare weights
    file (cross-validation folds) is named by its path and the sha256 of its files.

    Raises
    ------
    ConfigError
        The model is missing, tampered or made for other features.
    """
    if name == "cnr":
        return None
    folder = model_folder(name)
    if folder is not None:
        if not (folder / CARD_FILE).is_file():
            read_card(folder)  # raises the message for a folder without a card
        files = sorted([folder / CARD_FILE, *folder.glob("*.txt")])
        stamp = tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in files)
        return _folder_identity(str(folder.resolve()), stamp)
    paths = model_files(name)
    if not paths or not all(p.is_file() for p in paths):
        raise ConfigError(
            f"detector model {name!r} not found: give a model folder (with {CARD_FILE}) "
            f"or the shipped model's name ({_shipped_name()})"
        )
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes())
    return ModelIdentity(name=name, sha256=h.hexdigest())


@functools.lru_cache(maxsize=16)
def _folder_identity(folder: str, stamp: tuple[tuple[str, int, int], ...]) -> ModelIdentity:
    """The checked card of ``folder``, cached while its files (``stamp``: names, times
    and sizes) stay the same."""
    card = read_card(Path(folder))
    return ModelIdentity(name=card.name, sha256=card.sha256)


def model_identity(name: str) -> ModelIdentity | None:
    """Alias of :func:`resolve_model`, for reports."""
    return resolve_model(name)


def load_model(name: str) -> tuple[Any, ...]:
    """The LightGBM candidate classifier(s) of ``name`` (see :func:`model_files`): one
    booster, or the members of an ensemble whose predictions are averaged. A model
    folder is checked first (:func:`resolve_model`)."""
    ident = resolve_model(name)
    return _boosters(tuple(str(p) for p in model_files(name)), ident.sha256 if ident else None)


@functools.lru_cache(maxsize=4)
def _boosters(paths: tuple[str, ...], sha256: str | None) -> tuple[Any, ...]:
    lightgbm = _import_lightgbm()
    return tuple(lightgbm.Booster(model_file=p) for p in paths)


_IMPORT_LOCK = threading.Lock()


def _import_lightgbm() -> ModuleType:
    """lightgbm, imported (when it is the first to load) without its scikit-learn
    wrappers: its ``compat`` module imports scikit-learn whenever installed, about half a
    second of a command's start-up that prediction (``Booster``) never uses, nor
    calcscope's training (``lightgbm.train``). scikit-learn stays importable afterwards."""
    with _IMPORT_LOCK:
        if "lightgbm" in sys.modules or "sklearn" in sys.modules:
            import lightgbm

            return lightgbm
        sys.modules["sklearn"] = None  # type: ignore[assignment]  # import fails: not used
        try:
            import lightgbm
        finally:
            del sys.modules["sklearn"]
        return lightgbm


def score_candidates(cands: Candidates, config: DetectConfig) -> np.ndarray:
    """Detector confidence in [0, 1] of every candidate.

    With ``config.model == "cnr"`` a logistic function of the peak CNR (0.5 at
    ``score_cnr_mid``); otherwise the probability given by the shipped LightGBM
    candidate classifier of that name or model folder (trained by ``calcscope train``; for an
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
