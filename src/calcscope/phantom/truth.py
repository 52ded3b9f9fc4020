"""What a phantom holds: the inserted calcifications, clusters and macro patterns, exactly known.

The truth types of :func:`calcscope.phantom.make_phantom` and
:func:`calcscope.phantom.insert_clusters`, the request for one cluster (:class:`ClusterSpec`),
and their summaries as JSON-ready data. Coordinates are ``(row, col)`` pixels of the returned
image; lengths in mm. (Readers of truth files for real data sets are in
:mod:`calcscope.evaluation.truth`.)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from calcscope.model import Distribution, Mammogram, Morphology

__all__ = [
    "TrueCalcification",
    "TrueCluster",
    "TrueMacro",
    "PhantomTruth",
    "Phantom",
    "ClusterSpec",
    "true_cluster",
    "phantom_summary",
    "truth_to_dict",
]


@dataclass(frozen=True)
class TrueCalcification:
    """One inserted calcification: a connected drawn shape.

    Attributes
    ----------
    id
        1-based identifier, unique in the phantom.
    center_rc
        Area centroid ``(row, col)`` in pixels of the returned image.
    diameter_mm
        Area-equivalent diameter of the drawn shape (for a rim: the outer diameter).
    length_mm
        Longest extent (Feret diameter) of the drawn shape.
    shape
        ``"punctate"``, ``"round"``, ``"amorphous"``, ``"pleomorphic"``, ``"linear"``,
        ``"branching"``, ``"coarse_heterogeneous"``, ``"popcorn"``, ``"rim"``,
        ``"vascular"``, ``"rod"``, ``"dystrophic"`` or ``"skin"``.
    cluster_id
        Id of the :class:`TrueCluster` it belongs to, ``None`` otherwise.
    contrast
        Peak added intensity at the pixel level, image units.
    """

    id: int
    center_rc: tuple[float, float]
    diameter_mm: float
    length_mm: float
    shape: str
    cluster_id: int | None
    contrast: float


@dataclass(frozen=True)
class TrueCluster:
    """An inserted group of microcalcifications with its BI-RADS description.

    ``center_rc`` is the mean of the member centres; ``radius_mm`` the radius of the
    smallest circle about it that holds every member (centre distance + half length).
    """

    id: int
    center_rc: tuple[float, float]
    member_ids: tuple[int, ...]
    morphology: Morphology
    distribution: Distribution
    radius_mm: float


@dataclass(frozen=True)
class TrueMacro:
    """A benign macro pattern made of one or more pieces (vascular: two tracks)."""

    id: int
    center_rc: tuple[float, float]
    pattern: Morphology
    member_ids: tuple[int, ...]


@dataclass(frozen=True)
class PhantomTruth:
    """Ground truth of a phantom.

    ``breast_mask`` (bool, ``(rows, cols)``) covers all imaged tissue, pectoral muscle
    included; ``pectoral_mask`` is the muscle on MLO/ML/LM views, ``None`` otherwise.
    Calcifications are never placed on the muscle.
    """

    calcifications: tuple[TrueCalcification, ...]
    clusters: tuple[TrueCluster, ...]
    macros: tuple[TrueMacro, ...]
    breast_mask: np.ndarray
    pectoral_mask: np.ndarray | None


@dataclass(frozen=True)
class Phantom:
    """A synthetic mammogram and its truth."""

    mammogram: Mammogram
    truth: PhantomTruth


@dataclass(frozen=True)
class ClusterSpec:
    """Request for one cluster.

    Parameters
    ----------
    morphology
        One of :data:`CLUSTER_MORPHOLOGIES`.
    distribution
        GROUPED: within a circle of 4-8 mm radius (larger if ``n`` needs it); LINEAR:
        along a 10-20 mm line; SEGMENTAL: along 3-5 ducts fanning over a 25-40 mm wedge whose apex
        points to the nipple; REGIONAL: scattered over a disc of 15-20 mm radius;
        DIFFUSE: scattered over the whole breast.
    n
        Number of calcifications (>= 1).
    center_rc
        ``(row, col)`` in pixels of the returned image, or ``None`` for a random free
        place inside the breast. Ignored for DIFFUSE.
    radius_mm
        GROUPED only: the group's radius in mm (at least what ``n`` needs); ``None`` draws
        4-8 mm.
    """

    morphology: Morphology
    distribution: Distribution = Distribution.GROUPED
    n: int = 8
    center_rc: tuple[float, float] | None = None
    radius_mm: float | None = None


def true_cluster(
    cid: int,
    calcs: Sequence[TrueCalcification],
    ids: tuple[int, ...],
    morphology: Morphology,
    distribution: Distribution,
    spacing_mm: float,
) -> TrueCluster:
    """The truth of a cluster of the (1-based) calcifications ``ids``: centre the mean of
    their centres, radius to the farthest member's far end."""
    centers = np.array([calcs[i - 1].center_rc for i in ids])
    mean = centers.mean(axis=0)
    radius = max(
        float(np.hypot(*(centers[j] - mean))) * spacing_mm + calcs[i - 1].length_mm / 2
        for j, i in enumerate(ids)
    )
    return TrueCluster(cid, (float(mean[0]), float(mean[1])), ids, morphology, distribution, radius)


def phantom_summary(phantom: Phantom) -> dict[str, Any]:
    """Counts describing a phantom (for logs, the CLI demo and tests).

    Returns
    -------
    dict
        ``n_calcifications``, ``n_micro`` (diameter < 0.5 mm), ``n_clusters``,
        ``n_macros``, ``n_singles``, ``by_shape``, ``clusters`` (morphology,
        distribution, n per cluster), ``macros`` (patterns), ``shape``, ``spacing_mm``,
        ``laterality``, ``view`` and ``breast_area_cm2``.
    """
    truth = phantom.truth
    mammo = phantom.mammogram
    in_macro = {i for m in truth.macros for i in m.member_ids}
    singles = [c for c in truth.calcifications if c.cluster_id is None and c.id not in in_macro]
    return {
        "n_calcifications": len(truth.calcifications),
        "n_micro": sum(c.diameter_mm < 0.5 for c in truth.calcifications),
        "n_clusters": len(truth.clusters),
        "n_macros": len(truth.macros),
        "n_singles": len(singles),
        "by_shape": dict(Counter(c.shape for c in truth.calcifications)),
        "clusters": [
            {
                "id": k.id,
                "morphology": k.morphology.value,
                "distribution": k.distribution.value,
                "n": len(k.member_ids),
            }
            for k in truth.clusters
        ],
        "macros": [m.pattern.value for m in truth.macros],
        "shape": mammo.shape,
        "spacing_mm": mammo.spacing_mm,
        "laterality": mammo.laterality.value if mammo.laterality else None,
        "view": mammo.view.value if mammo.view else None,
        "breast_area_cm2": float(truth.breast_mask.sum())
        * mammo.spacing_mm[0]
        * mammo.spacing_mm[1]
        / 100.0,
    }


def truth_to_dict(phantom: Phantom) -> dict[str, Any]:
    """The phantom's truth as JSON-ready data (coordinates ``[row, col]``, lengths in mm)."""
    t = phantom.truth
    m = phantom.mammogram
    return {
        "schema_name": "calcscope.phantom_truth",
        "schema_version": "1.0",
        "spacing_mm": list(m.spacing_mm),
        "shape_rc": list(m.shape),
        "laterality": m.laterality.value if m.laterality else None,
        "view": m.view.value if m.view else None,
        "calcifications": [
            {
                "id": c.id,
                "center_rc": [round(c.center_rc[0], 2), round(c.center_rc[1], 2)],
                "diameter_mm": round(c.diameter_mm, 4),
                "length_mm": round(c.length_mm, 4),
                "shape": c.shape,
                "cluster_id": c.cluster_id,
                "contrast": round(c.contrast, 4),
            }
            for c in t.calcifications
        ],
        "clusters": [
            {
                "id": k.id,
                "center_rc": [round(k.center_rc[0], 2), round(k.center_rc[1], 2)],
                "member_ids": list(k.member_ids),
                "morphology": k.morphology.value,
                "distribution": k.distribution.value,
                "radius_mm": round(k.radius_mm, 3),
            }
            for k in t.clusters
        ],
        "macros": [
            {
                "id": k.id,
                "center_rc": [round(k.center_rc[0], 2), round(k.center_rc[1], 2)],
                "pattern": k.pattern.value,
                "member_ids": list(k.member_ids),
            }
            for k in t.macros
        ],
        "summary": phantom_summary(phantom),
    }
