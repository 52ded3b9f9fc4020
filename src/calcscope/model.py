"""Domain values shared by every stage of the pipeline.

Conventions
-----------
* Pixel coordinates are ``(row, col)`` in the pixel grid of the *source* image.
* Every length carries its unit in its name (``diameter_mm``, ``area_mm2``, ``_px``).
* Pixel intensities of a :class:`Mammogram` are float32 in ``[0, 1]``, brighter meaning
  more attenuating (calcifications are bright), whatever the photometric interpretation
  of the file was.
* BI-RADS terms are enums that carry their DICOM code from CID 6011 / CID 6012, so the
  DICOM exports get standard codes without a second table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from pydicom.sr.coding import Code

__all__ = [
    "Laterality",
    "View",
    "Source",
    "Mammogram",
    "Morphology",
    "Distribution",
    "CalcKind",
    "Calcification",
    "DepositOutline",
    "Cluster",
]


class Laterality(StrEnum):
    """Which breast: DICOM ImageLaterality values."""

    LEFT = "L"
    RIGHT = "R"


class View(StrEnum):
    """Mammographic view (ACR / DICOM CID 4014 abbreviations)."""

    CC = "CC"
    MLO = "MLO"
    ML = "ML"
    LM = "LM"
    XCCL = "XCCL"
    OTHER = "OTHER"

    @property
    def is_oblique_or_lateral(self) -> bool:
        """True for views where the pectoral muscle usually shows in a corner."""
        return self in (View.MLO, View.ML, View.LM)

    @property
    def code(self) -> Code | None:
        """SNOMED CT code of the view (DICOM CID 4014); ``None`` for OTHER."""
        keyword = _CID4014_KEYWORD.get(self)
        return None if keyword is None else getattr(_codes().CID4014, keyword)


_CID4014_KEYWORD = {
    View.CC: "CranioCaudal",
    View.MLO: "MedioLateralObliqueProjection",
    View.ML: "MedioLateralProjection",
    View.LM: "LateroMedial",
    View.XCCL: "CranioCaudalExaggeratedLaterally",
}


def _codes() -> Any:
    """pydicom's SR code dictionary, imported when first needed (a fifth of a second)."""
    from pydicom.sr.codedict import codes

    return codes


def _cid6011(keyword: str) -> Code:
    code: Code = getattr(_codes().CID6011, keyword)
    return code


def _cid6012(keyword: str) -> Code:
    code: Code = getattr(_codes().CID6012, keyword)
    return code


class Morphology(StrEnum):
    """BI-RADS calcification morphology (ACR BI-RADS Atlas, 5th ed., 2013).

    The value is a short stable identifier used in JSON; :attr:`code` is the DICOM
    coded concept from CID 6011 "Calcification Type".
    """

    # typically benign
    SKIN = "skin"
    VASCULAR = "vascular"
    COARSE_POPCORN = "coarse_popcorn"
    LARGE_ROD_LIKE = "large_rod_like"
    ROUND = "round"
    PUNCTATE = "punctate"
    RIM_EGGSHELL = "rim_eggshell"
    LUCENT_CENTERED = "lucent_centered"
    DYSTROPHIC = "dystrophic"
    MILK_OF_CALCIUM = "milk_of_calcium"
    SUTURE = "suture"
    # suspicious, in rising order of likelihood of malignancy
    AMORPHOUS = "amorphous"
    COARSE_HETEROGENEOUS = "coarse_heterogeneous"
    FINE_PLEOMORPHIC = "fine_pleomorphic"
    FINE_LINEAR = "fine_linear"
    FINE_LINEAR_BRANCHING = "fine_linear_branching"

    @property
    def code(self) -> Code:
        """DICOM code of this morphology (CID 6011)."""
        return _cid6011(_MORPHOLOGY_CODE_KEYWORD[self])

    @property
    def label(self) -> str:
        """Human-readable BI-RADS term."""
        return _MORPHOLOGY_LABEL[self]

    @property
    def typically_benign(self) -> bool:
        return self not in _SUSPICIOUS_MORPHOLOGIES


_MORPHOLOGY_CODE_KEYWORD = {
    Morphology.SKIN: "CalcifiedSkinOfBreast",
    Morphology.VASCULAR: "VascularCalcificationRadiographicFinding",
    Morphology.COARSE_POPCORN: "CoarsePopcornLikeCalcification",
    Morphology.LARGE_ROD_LIKE: "LargeRodLikeCalcification",
    Morphology.ROUND: "RoundShapedCalcification",
    Morphology.PUNCTATE: "PunctateCalcification",
    Morphology.RIM_EGGSHELL: "EggshellCalcification",
    Morphology.LUCENT_CENTERED: "LucentCenteredCalcification",
    Morphology.DYSTROPHIC: "DystrophicCalcification",
    Morphology.MILK_OF_CALCIUM: "MilkOfCalciumCalcification",
    Morphology.SUTURE: "CalcifiedSutureMaterial",
    Morphology.AMORPHOUS: "AmorphousCalcification",
    Morphology.COARSE_HETEROGENEOUS: "HeterogeneousCalcification",
    Morphology.FINE_PLEOMORPHIC: "FinePleomorphicCalcification",
    Morphology.FINE_LINEAR: "FineLinearCastingCalcification",
    Morphology.FINE_LINEAR_BRANCHING: "FineLinearBranchingCastingCalcification",
}

_MORPHOLOGY_LABEL = {
    Morphology.SKIN: "skin",
    Morphology.VASCULAR: "vascular",
    Morphology.COARSE_POPCORN: "coarse or popcorn-like",
    Morphology.LARGE_ROD_LIKE: "large rod-like",
    Morphology.ROUND: "round",
    Morphology.PUNCTATE: "punctate",
    Morphology.RIM_EGGSHELL: "rim (eggshell)",
    Morphology.LUCENT_CENTERED: "lucent-centred",
    Morphology.DYSTROPHIC: "dystrophic",
    Morphology.MILK_OF_CALCIUM: "milk of calcium",
    Morphology.SUTURE: "suture",
    Morphology.AMORPHOUS: "amorphous",
    Morphology.COARSE_HETEROGENEOUS: "coarse heterogeneous",
    Morphology.FINE_PLEOMORPHIC: "fine pleomorphic",
    Morphology.FINE_LINEAR: "fine linear",
    Morphology.FINE_LINEAR_BRANCHING: "fine linear branching",
}

_SUSPICIOUS_MORPHOLOGIES = frozenset(
    {
        Morphology.AMORPHOUS,
        Morphology.COARSE_HETEROGENEOUS,
        Morphology.FINE_PLEOMORPHIC,
        Morphology.FINE_LINEAR,
        Morphology.FINE_LINEAR_BRANCHING,
    }
)


class Distribution(StrEnum):
    """BI-RADS calcification distribution; :attr:`code` is from CID 6012."""

    DIFFUSE = "diffuse"
    REGIONAL = "regional"
    GROUPED = "grouped"
    LINEAR = "linear"
    SEGMENTAL = "segmental"

    @property
    def code(self) -> Code:
        """DICOM code of this distribution (CID 6012)."""
        return _cid6012(f"{self.name.capitalize()}CalcificationDistribution")

    @property
    def label(self) -> str:
        return self.value


class CalcKind(StrEnum):
    """Size class: macro- or microcalcification (threshold in the config)."""

    MACRO = "macro"
    MICRO = "micro"


@dataclass(frozen=True)
class Source:
    """Where a mammogram came from; UIDs only for DICOM input."""

    path: str | None = None
    study_instance_uid: str | None = None
    series_instance_uid: str | None = None
    sop_instance_uid: str | None = None
    sop_class_uid: str | None = None
    modality: str | None = None
    patient_id: str | None = None
    patient_name: str | None = None
    patient_birth_date: str | None = None
    presentation_intent: str | None = None  # "FOR PRESENTATION" / "FOR PROCESSING"
    photometric_interpretation: str | None = None
    spacing_origin: str | None = None  # tag or "user" the spacing came from
    patient_orientation: str | None = None  # DICOM PatientOrientation, e.g. "A\\R"


@dataclass(frozen=True)
class Mammogram:
    """One mammographic image ready for analysis.

    Parameters
    ----------
    pixels
        float32 array of shape ``(rows, cols)``, values in ``[0, 1]``, bright = dense.
    spacing_mm
        Pixel spacing ``(row, col)`` in millimetres at the detector.
    laterality, view
        From the DICOM header or the caller; ``None`` when unknown.
    """

    pixels: np.ndarray
    spacing_mm: tuple[float, float]
    laterality: Laterality | None = None
    view: View | None = None
    source: Source = field(default_factory=Source)

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.pixels.shape[0]), int(self.pixels.shape[1]))

    @property
    def pixel_mm(self) -> float:
        """Isotropic pixel size in mm (geometric mean of row and column spacing)."""
        return float(np.sqrt(self.spacing_mm[0] * self.spacing_mm[1]))


@dataclass(frozen=True)
class DepositOutline:
    """Shape of a coarse deposit's whole outline, which tells a lobulated (popcorn) deposit
    from an angular (dystrophic) one.

    Measured on the sub-pixel contour at 30 % of the deposit's height above the tissue
    around it (see :func:`calcscope.detection.contours.deposit_outline`), which holds all
    of its lobes even where the detector outlines them one by one. Corners and straight edges are
    judged on the turning of the contour over 0.3 mm of arc on each side of each point.
    """

    size_mm: float  # diameter of the circle of the outline's area
    corner_fraction: float  # share of the outline at sharp convex corners (turn > 45 deg)
    straight_fraction: float  # share of the outline along straight edges (turn < 8 deg)
    inscribed_ratio: float  # largest inscribed disc's diameter / size_mm (lobes: low)


@dataclass(frozen=True)
class Calcification:
    """One detected calcification.

    ``contour_rc`` is the outline as an ``(N, 2)`` int array of (row, col) pixels.
    """

    id: int
    center_rc: tuple[float, float]
    contour_rc: np.ndarray
    bbox_rc: tuple[int, int, int, int]  # row0, col0, row1, col1 (exclusive)
    area_mm2: float
    diameter_mm: float  # equivalent-circle diameter
    max_diameter_mm: float  # longest extent (Feret)
    min_diameter_mm: float  # width perpendicular to the longest extent
    contrast: float  # peak intensity above local background, image units
    cnr: float  # contrast-to-noise ratio
    score: float  # detector confidence in [0, 1]
    circularity: float  # 4*pi*area/perimeter^2, 1 = disc
    elongation: float  # 1 - min/max axis
    solidity: float  # area / convex area
    lucent_center: bool  # darker centre than rim (rim / eggshell / skin)
    kind: CalcKind = CalcKind.MICRO
    # circularity of the sub-pixel half-maximum iso-contour (None: not measured)
    contour_circularity: float | None = None
    # whole outline of a coarse deposit (None: not measured, as for specks)
    deposit: DepositOutline | None = None
    # contrast in a band matched to a 0.15-0.6 mm speck over its local noise
    # (calcscope.detection.scale_cnr; None: not measured, at pixels over 0.06 mm)
    scale_cnr: float | None = None
    # counts as a sure cluster member by its scale_cnr (its score is left as it was)
    scale_sure: bool = False


@dataclass(frozen=True)
class Cluster:
    """A group of microcalcifications (CAD convention: >= 3 within 1 cm)."""

    id: int
    member_ids: tuple[int, ...]
    center_rc: tuple[float, float]
    bbox_rc: tuple[int, int, int, int]
    extent_mm: float  # longest distance between two members plus their size
    area_mm2: float  # convex hull area of member centres
    score: float
