"""Benign macro patterns of a single piece: skin, rim, large rod-like, vascular and the coarse
forms (round, dystrophic, popcorn-like) judged from a deposit's whole outline.

Rules follow the ACR BI-RADS Atlas, 5th edition (2013), "Calcifications: typically benign"; each
threshold lives in :class:`calcscope.reading.thresholds.DescribeThresholds` with its source.
Pieces that belong together (popcorn lobes, vessel segments, satellites) are grouped in
:mod:`calcscope.reading.macro_groups`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from calcscope.model import Calcification, Morphology
from calcscope.reading.thresholds import DescribeThresholds

__all__ = [
    "MacroFinding",
    "is_elongated",
    "is_irregular",
    "is_cast",
    "parallel_partner",
    "coarse_form",
    "macro_pattern",
    "skin_distance_mm",
]


@dataclass(frozen=True)
class MacroFinding:
    """A macrocalcification (or a set of pieces) recognised as a benign pattern."""

    id: int
    member_ids: tuple[int, ...]
    pattern: Morphology
    center_rc: tuple[float, float]
    size_mm: float
    reasons: tuple[str, ...]


def _orientation(calc: Calcification) -> float:
    pts = calc.contour_rc.astype(np.float64)
    if len(pts) < 3:
        return 0.0
    pts = pts - pts.mean(0)
    cov = pts.T @ pts
    w, v = np.linalg.eigh(cov)
    major = v[:, int(np.argmax(w))]
    return float(np.arctan2(major[0], major[1]))


def is_elongated(c: Calcification) -> bool:
    return c.elongation >= 0.6 and c.max_diameter_mm >= 3.0


def parallel_partner(
    c: Calcification, others: Sequence[Calcification], spacing: float, t: DescribeThresholds
) -> Calcification | None:
    a = _orientation(c)
    ca = np.array(c.center_rc) * spacing
    direction = np.array([np.sin(a), np.cos(a)])
    normal = np.array([direction[1], -direction[0]])
    for o in others:
        if o.id == c.id or not is_elongated(o):
            continue
        da = abs(np.angle(np.exp(2j * (a - _orientation(o))))) / 2
        if da > np.deg2rad(20):
            continue
        d = np.array(o.center_rc) * spacing - ca
        along, across = abs(float(d @ direction)), abs(float(d @ normal))
        if t.vascular_gap_mm[0] <= across <= t.vascular_gap_mm[1] and along <= max(
            c.max_diameter_mm, o.max_diameter_mm
        ):
            return o
    return None


def is_irregular(c: Calcification, t: DescribeThresholds) -> bool:
    """A coarse deposit with an irregular outline (dystrophic) rather than a smooth one
    (round); see ``dystrophic_solidity`` and ``dystrophic_circularity``."""
    return c.solidity < t.dystrophic_solidity or c.circularity < t.dystrophic_circularity


def coarse_form(c: Calcification, t: DescribeThresholds) -> tuple[Morphology, list[str]] | None:
    """Round (compact and smooth), dystrophic (angular) or popcorn (lobulated) from a
    coarse deposit's whole outline (see ``angular_corner_fraction`` and the thresholds
    after it); None when the outline was not measured, or for a deposit of
    ``lobulated_mm`` or less that is neither round nor angular."""
    dep = c.deposit
    if dep is None:
        return None
    angular = [
        dep.corner_fraction >= t.angular_corner_fraction,
        dep.straight_fraction >= t.angular_straight_fraction,
        dep.inscribed_ratio >= t.compact_inscribed_ratio,
    ]
    shape = (
        f"sharp corners on {dep.corner_fraction:.0%} and straight edges on "
        f"{dep.straight_fraction:.0%} of its outline, largest inscribed disc "
        f"{dep.inscribed_ratio:.0%} of its size"
    )
    if (
        dep.corner_fraction < t.angular_corner_fraction
        and dep.inscribed_ratio >= t.round_inscribed_ratio
    ):
        return Morphology.ROUND, [
            f"smooth round deposit {dep.size_mm:.1f} mm across ({shape}): round calcification"
        ]
    if sum(angular) >= 2 or dep.corner_fraction >= t.angular_corner_alone:
        return Morphology.DYSTROPHIC, [
            f"coarse angular deposit {dep.size_mm:.1f} mm across ({shape}): dystrophic "
            "calcification, as after surgery, radiation or injury"
        ]
    if dep.size_mm > t.lobulated_mm:
        return Morphology.COARSE_POPCORN, [
            f"coarse lobulated deposit {dep.size_mm:.1f} mm across ({shape}: rounded lobes, "
            f"> {t.lobulated_mm:g} mm): coarse or popcorn-like calcification, as in an "
            "involuting fibroadenoma"
        ]
    return None


def macro_pattern(
    c: Calcification,
    macros: Sequence[Calcification],
    skin_distance_mm: float,
    spacing: float,
    t: DescribeThresholds,
) -> tuple[Morphology, list[str]] | None:
    d = c.diameter_mm
    if c.lucent_center and skin_distance_mm <= t.skin_mm and c.max_diameter_mm <= t.skin_max_mm:
        return Morphology.SKIN, [
            f"lucent-centred {c.max_diameter_mm:.1f} mm calcification {skin_distance_mm:.1f} mm "
            f"from the skin line (<= {t.skin_mm:.0f} mm): skin (dermal) calcification; a "
            "tangential view confirms it if needed"
        ]
    if c.lucent_center and c.max_diameter_mm >= t.rim_mm:
        return Morphology.RIM_EGGSHELL, [
            f"thin calcified rim around a lucent centre, {c.max_diameter_mm:.1f} mm across: rim "
            "(eggshell) calcification, as in an oil cyst or fat necrosis"
        ]
    if is_elongated(c):
        if (
            c.min_diameter_mm >= t.rod_width_mm
            and c.max_diameter_mm >= t.rod_length_mm
            and c.solidity >= t.rod_solidity
        ):
            return Morphology.LARGE_ROD_LIKE, [
                f"solid rod {c.max_diameter_mm:.1f} mm long and {c.min_diameter_mm:.1f} mm wide "
                f"(>= {t.rod_width_mm} mm, thicker than a vessel wall): large rod-like "
                "(secretory) calcification along a duct"
            ]
        partner = parallel_partner(c, macros, spacing, t)
        if partner is not None:
            return Morphology.VASCULAR, [
                f"two parallel thin tubular tracks ({c.max_diameter_mm:.0f} and "
                f"{partner.max_diameter_mm:.0f} mm long, {c.min_diameter_mm:.1f} mm wide): "
                "vascular calcification of an ageing artery"
            ]
        if c.max_diameter_mm >= t.vascular_length_mm:
            return Morphology.VASCULAR, [
                f"long thin tubular track ({c.max_diameter_mm:.0f} mm): vascular calcification"
            ]
    # the whole outline judges a large or irregular piece, and a smooth one whose
    # deposit is not round (a lobe of a popcorn clump)
    not_round = c.deposit is not None and c.deposit.inscribed_ratio < t.round_inscribed_ratio
    if d > t.popcorn_mm or (d >= t.cluster_max_member_mm and (is_irregular(c, t) or not_round)):
        form = coarse_form(c, t)
        if form is not None:
            return form
    if d > t.popcorn_mm:
        return Morphology.COARSE_POPCORN, [
            f"coarse deposit {d:.1f} mm across (> {t.popcorn_mm} mm): coarse or popcorn-like "
            "calcification, as in an involuting fibroadenoma"
        ]
    if d >= t.cluster_max_member_mm:
        if is_irregular(c, t):
            return Morphology.DYSTROPHIC, [
                f"coarse irregular deposit {d:.1f} mm across: dystrophic calcification, as after "
                "surgery, radiation or injury"
            ]
        return Morphology.ROUND, [f"smooth round deposit {d:.1f} mm across: round calcification"]
    return None


def skin_distance_mm(breast: np.ndarray | None, calc: Calcification, pixel_mm: float) -> float:
    if breast is None:
        return float("inf")
    r0, c0, r1, c1 = calc.bbox_rc
    pad = 200
    R0, C0 = max(0, r0 - pad), max(0, c0 - pad)
    R1, C1 = min(breast.shape[0], r1 + pad), min(breast.shape[1], c1 + pad)
    patch = np.pad(breast[R0:R1, C0:C1].astype(np.uint8), 0)
    if patch.all():  # no skin line within the padded box
        return float("inf")
    dist = cv2.distanceTransform(patch, cv2.DIST_L2, 3)
    r = int(np.clip(round(calc.center_rc[0]) - R0, 0, patch.shape[0] - 1))
    c = int(np.clip(round(calc.center_rc[1]) - C0, 0, patch.shape[1] - 1))
    return float(dist[r, c]) * pixel_mm


def is_cast(c: Calcification, t: DescribeThresholds) -> bool:
    """A thin linear cast (``fine_linear_width_mm``, ``linear_elongation``): whatever its
    area, never a lobe or a satellite of a benign deposit (fine-linear casts side by side
    are a suspicious cluster, not a popcorn calcification)."""
    return c.min_diameter_mm < t.fine_linear_width_mm and c.elongation >= t.linear_elongation
