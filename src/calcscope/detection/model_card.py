"""Model folders and their cards: ``MODEL_DIR/model.json`` next to the LightGBM weights.

A model folder is what ``calcscope train`` writes and what ``--model`` reads; the shipped
model (``detection/models/``) is one. The card (in the spirit of a MONAI bundle's
metadata) says which calcscope made it, on which features, from which data and with
which settings, and carries a content hash (sha256 of the weights files and of the card
without its hash). :func:`read_card` refuses a folder whose hash does not match (tampered
or half-copied) or whose feature list is not the running calcscope's: such a model would
score candidates on the wrong columns.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from calcscope.about import __version__
from calcscope.errors import ConfigError

__all__ = [
    "CARD_FILE",
    "CARD_VERSION",
    "CrossValidation",
    "FrocPoint",
    "ModelCard",
    "ModelIdentity",
    "OperatingPoint",
    "TrainingData",
    "TrainingSettings",
    "card_hash",
    "feature_version",
    "model_operating_score",
    "read_card",
    "write_card",
]

CARD_FILE = "model.json"
"""Name of the card inside a model folder."""

CARD_VERSION = "1"
"""Version of the card layout."""


class _Card(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrainingData(_Card):
    """What a model was trained on (one entry per data set)."""

    format: str = Field(description="mias, cbis-ddsm, inbreast or phantoms")
    folder: str = Field(description="name of the images folder (not its full path)")
    n_images: int = Field(description="images used (excluded ones not counted)")
    n_women: int
    n_clusters: int = Field(description="located ground-truth calcification clusters")
    n_calcifications: int = Field(description="individually marked calcifications")
    spacings_mm: list[float] = Field(description="pixel spacings seen, mm")
    acquisition: str = Field(description="film (digitised) or digital")
    n_candidates: int = 0
    n_positive_candidates: int = 0
    n_inserted_positives: int = Field(0, description="candidates on synthetic inserted clusters")
    excluded: dict[str, str] = Field(default_factory=dict, description="image id -> reason")


class TrainingSettings(_Card):
    """How a model was trained."""

    learner: str = "lightgbm"
    params: dict[str, float | int | str | bool] = Field(default_factory=dict)
    rounds: int = 0
    ensemble: int = 1
    insertions_per_member: int = 0
    real_weight: float = 1.0
    inserted_weight: float = 1.0
    phantoms: int = 0
    seed: int = 0
    base: str | None = Field(None, description="base model 'name sha256' when --base was used")
    base_method: str | None = None


class FrocPoint(_Card):
    fp_per_image: float
    sensitivity: float


class CrossValidation(_Card):
    """Cross-validated cluster FROC of the training recipe (full pipeline)."""

    split: str
    folds: int
    n_images: int
    n_true_clusters: int
    points: list[FrocPoint]


class OperatingPoint(_Card):
    """The cluster score threshold reports use with this model (``ClusterConfig.
    operating_score``: lower-scoring clusters are not reported), and how it was chosen."""

    cluster_score: float = Field(ge=0.0, le=1.0, description="cluster score threshold")
    target_fp_per_image: float | None = Field(
        None, description="false clusters per image the threshold was calibrated to"
    )
    fp_per_image: float | None = Field(
        None, description="false clusters per image at the threshold, where it was measured"
    )
    sensitivity: float | None = Field(
        None, description="cluster sensitivity at the threshold, where it was measured"
    )
    source: str = Field(description="how the threshold was chosen (which images, which curve)")


class ModelCard(_Card):
    """The card of a model folder (``model.json``)."""

    card_name: str = "calcscope.model-card"
    card_version: str = CARD_VERSION
    name: str
    calcscope_version: str = __version__
    report_schema_version: str
    features: list[str]
    feature_version: str
    weights: list[str] = Field(description="weights files in the folder; scores are averaged")
    data: list[TrainingData] = Field(default_factory=list)
    training: TrainingSettings = TrainingSettings()
    cross_validation: CrossValidation | None = None
    operating_point: OperatingPoint | None = Field(
        None, description="cluster operating point that --model applies (None: the config's)"
    )
    rebuild: str | None = Field(None, description="command that rebuilds this model")
    notes: str | None = None
    sha256: str = ""


class ModelIdentity(_Card):
    """What a report says about the model that scored its candidates."""

    name: str
    sha256: str | None = None


def feature_version(names: Sequence[str]) -> str:
    """Short hash of an ordered feature list: two calcscopes agree on it when their
    classifiers read the same columns in the same order."""
    return hashlib.sha256("\n".join(names).encode()).hexdigest()[:12]


def _card_bytes(card: ModelCard) -> bytes:
    doc = card.model_dump(mode="json")
    doc["sha256"] = ""
    if doc["operating_point"] is None:  # cards written before the field keep their hash
        del doc["operating_point"]
    return json.dumps(doc, sort_keys=True).encode()


def card_hash(folder: Path, card: ModelCard) -> str:
    """sha256 of the weights files (in card order) and of the card without its hash."""
    h = hashlib.sha256()
    for name in card.weights:
        path = Path(folder) / name
        try:
            h.update(path.read_bytes())
        except OSError as exc:
            raise ConfigError(f"model {folder}: cannot read weights {name}: {exc}") from exc
    h.update(_card_bytes(card))
    return h.hexdigest()


def write_card(folder: Path, card: ModelCard) -> ModelCard:
    """Fill the card's hash and write it (atomically) as ``folder/model.json``."""
    from calcscope.files import write_atomic

    card = card.model_copy(update={"sha256": card_hash(folder, card)})
    write_atomic(Path(folder) / CARD_FILE, json.dumps(card.model_dump(mode="json"), indent=1))
    return card


def read_card(folder: Path, features: Sequence[str] | None = None) -> ModelCard:
    """Read and check a model folder's card.

    Parameters
    ----------
    folder : Path
        The model folder (holding ``model.json`` and the weights).
    features : sequence of str, optional
        The running calcscope's feature list; default
        ``calcscope.detection.features.Candidates.FEATURE_NAMES``.

    Raises
    ------
    ConfigError
        No card, an unreadable card, a content hash that does not match (tampered or
        incomplete folder), or features that differ from the running calcscope's.
    """
    folder = Path(folder)
    path = folder / CARD_FILE
    try:
        card = ModelCard.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise ConfigError(
            f"{folder} is not a calcscope model folder (no readable {CARD_FILE}: {exc})"
        ) from exc
    except ValidationError as exc:
        raise ConfigError(f"model {folder}: {CARD_FILE} is not a model card: {exc}") from exc
    actual = card_hash(folder, card)
    if actual != card.sha256:
        raise ConfigError(
            f"model {folder}: content hash mismatch (card says {card.sha256[:12] or 'none'}, "
            f"files give {actual[:12]}): the weights or the card were changed after training; "
            "retrain, or restore the folder"
        )
    if features is None:
        from calcscope.detection.features import Candidates

        features = Candidates.FEATURE_NAMES
    if list(card.features) != list(features):
        missing = [f for f in features if f not in card.features]
        extra = [f for f in card.features if f not in features]
        raise ConfigError(
            f"model {folder} ({card.name}, calcscope {card.calcscope_version}) was trained on "
            f"features version {card.feature_version}, this calcscope {__version__} computes "
            f"version {feature_version(features)} (missing from the model: "
            f"{', '.join(missing) or 'none'}; unknown here: {', '.join(extra) or 'none'}"
            + ("; same names, other order" if not missing and not extra else "")
            + "): refusing to score with it; retrain it with `calcscope train`"
        )
    return card


def model_operating_score(model: str) -> float | None:
    """The cluster operating point on the card of the model folder ``model`` (a folder, or
    the shipped model's name); None for a scorer or weights without a card, or a card
    without one. A card that cannot be read is left for the model check to report."""
    from calcscope.detection.classifier import model_folder

    folder = model_folder(model)
    if folder is None or not (folder / CARD_FILE).is_file():
        return None
    try:
        card = ModelCard.model_validate_json((folder / CARD_FILE).read_bytes())
    except (OSError, ValidationError):
        return None
    return None if card.operating_point is None else card.operating_point.cluster_score
