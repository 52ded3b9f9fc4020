"""BI-RADS morphology of a cluster of microcalcifications from its members' sizes and shapes.

Rules follow the ACR BI-RADS Atlas, 5th edition (2013), "Calcifications: suspicious
morphology" (amorphous, coarse heterogeneous, fine pleomorphic, fine linear or fine-linear
branching) and the benign round and punctate forms; each threshold lives in
:class:`calcscope.reading.thresholds.DescribeThresholds` with its source.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from skimage.morphology import skeletonize

from calcscope.model import Calcification, Morphology
from calcscope.reading.thresholds import DescribeThresholds

__all__ = ["judged_members", "cluster_morphology"]


def _skeleton_ends(calc: Calcification) -> tuple[int, float]:
    """End points of the outline's skeleton (2 for a line, >= 3 when it branches) and the
    outline's greatest width in pixels (twice its largest inscribed radius).

    Spurs shorter than about half the outline's width are pruned first, so a blob with a
    ragged outline does not count as branching.
    """
    pts = calc.contour_rc.astype(np.int64)
    if len(pts) < 3:
        return 0, float(len(pts))
    lo = pts.min(0) - 2
    size = pts.max(0) - lo + 3
    mask = np.zeros((int(size[0]), int(size[1])), np.uint8)
    cv2.drawContours(mask, [(pts - lo)[:, None, ::-1].astype(np.int32)], -1, 1, -1)
    skel = skeletonize(mask > 0).astype(np.uint8)
    kernel = np.ones((3, 3), np.float32)
    radius_px = float(cv2.distanceTransform(mask, cv2.DIST_L2, 3).max())
    for _ in range(max(1, int(radius_px))):  # prune short spurs
        nb = cv2.filter2D(skel, -1, kernel, borderType=cv2.BORDER_CONSTANT) - skel
        ends = (skel == 1) & (nb == 1)
        if ends.sum() <= 2:
            break
        skel[ends] = 0
    nb = cv2.filter2D(skel, -1, kernel, borderType=cv2.BORDER_CONSTANT) - skel
    return int(((skel == 1) & (nb == 1)).sum()), 2.0 * radius_px


def judged_members(members: Sequence[Calcification], operating_score: float) -> list[Calcification]:
    """The members whose shape describes a cluster: those detected at the operating point
    (``score >= operating_score``) when there are at least 3 of them, else all members
    (possible calcifications included)."""
    sure = [m for m in members if m.score >= operating_score]
    return sure if len(sure) >= 3 else list(members)


@dataclass(frozen=True)
class _SizeShape:
    """What the speck rules read from a cluster's members (sizes in mm)."""

    median_mm: float  # median greatest dimension
    upper_mm: float  # upper quartile of the greatest dimensions
    cv: float  # coefficient of variation of the greatest dimensions
    median_circularity: float
    median_cnr: float
    irregular: bool  # the outline measure below its threshold
    outline: str  # that measure in words


def _size_shape(members: Sequence[Calcification], t: DescribeThresholds) -> _SizeShape:
    """Sizes, size variation, contrast and outline regularity of ``members``."""
    length = np.array([m.max_diameter_mm for m in members])
    circ = np.array([m.circularity for m in members])
    cnr = np.array([m.cnr for m in members])
    med_circ = float(np.median(circ))
    # irregular outline: the sub-pixel iso-contour where the detector measured it on most
    # members, else the pixel outline
    iso = [m.contour_circularity for m in members if m.contour_circularity is not None]
    if 2 * len(iso) > len(members):
        med_iso = float(np.median(iso))
        irregular = med_iso < t.irregular_contour_circularity
        outline = f"median outline circularity {med_iso:.3f}"
    else:
        irregular = med_circ < t.irregular_circularity
        outline = f"median circularity {med_circ:.2f}"
    return _SizeShape(
        median_mm=float(np.median(length)),
        upper_mm=float(np.percentile(length, 75)),
        cv=float(length.std() / max(length.mean(), 1e-6)),
        median_circularity=med_circ,
        median_cnr=float(np.median(cnr)),
        irregular=bool(irregular),
        outline=outline,
    )


def _casts(
    members: Sequence[Calcification], pixel_mm: float, t: DescribeThresholds
) -> tuple[np.ndarray, np.ndarray]:
    """Which members are thin linear or branching casts, and which of them branch (two
    boolean arrays of ``len(members)``)."""
    length = np.array([m.max_diameter_mm for m in members])
    width = np.array([m.min_diameter_mm for m in members])
    elong = np.array([m.elongation for m in members])
    thin = width < t.fine_linear_width_mm
    long_enough = length >= max(t.linear_min_length_mm, 4 * pixel_mm)
    linear = thin & long_enough & (elong >= t.linear_elongation)
    shapes = [
        _skeleton_ends(m) if lg else (0, 0.0) for m, lg in zip(members, long_enough, strict=True)
    ]
    branched = np.array(
        [ends >= 3 and w * pixel_mm < t.fine_linear_width_mm for ends, w in shapes], dtype=bool
    )
    return linear | branched, branched


def _cast_morphology(
    casts: np.ndarray, branched: np.ndarray, t: DescribeThresholds
) -> tuple[Morphology, str] | None:
    """Fine linear or fine-linear branching when enough members are casts, else None.

    The most worrisome form present sets the morphology: a few branching casts among many
    specks (or among pieces of the same casts) still make it fine-linear branching.
    """
    frac_casts = float(casts.mean())
    branching_present = casts.sum() >= t.linear_min_casts and branched.sum() >= t.branching_min
    if not (frac_casts >= t.linear_fraction or branching_present):
        return None
    frac_branch = float(branched.sum() / max(casts.sum(), 1))
    is_branching = frac_branch >= t.branching_fraction
    reason = (
        f"{int(casts.sum())} of {len(casts)} calcifications are thin (< "
        f"{t.fine_linear_width_mm} mm wide) linear casts"
        + (
            f", {int(branched.sum())} of them branching: fine-linear branching"
            if is_branching
            else f" ({int(branched.sum())} branching): fine linear"
        )
    )
    morph = Morphology.FINE_LINEAR_BRANCHING if is_branching else Morphology.FINE_LINEAR
    return morph, reason


def _speck_morphology(s: _SizeShape, t: DescribeThresholds) -> tuple[Morphology, str]:
    """Coarse heterogeneous, amorphous, round, fine pleomorphic or punctate, in that order
    of precedence, for a cluster without enough casts."""
    med, cv = s.median_mm, s.cv
    if med >= t.coarse_heterogeneous_mm and s.irregular:
        return Morphology.COARSE_HETEROGENEOUS, (
            f"irregular ({s.outline}), conspicuous calcifications, "
            f"median {med:.2f} mm (>= {t.coarse_heterogeneous_mm} mm): coarse heterogeneous"
        )
    if med < t.amorphous_mm and s.median_cnr < t.amorphous_cnr:
        return Morphology.AMORPHOUS, (
            f"small (median {med:.2f} mm) and faint (median contrast-to-noise "
            f"{s.median_cnr:.1f} < {t.amorphous_cnr:.0f}) calcifications whose shape "
            "cannot be defined: amorphous"
        )
    if s.upper_mm >= t.round_mm:
        return Morphology.ROUND, (
            f"smooth round calcifications, a quarter or more {t.round_mm} mm or larger (upper "
            f"quartile {s.upper_mm:.2f} mm): round"
        )
    if cv > t.pleomorphic_cv or s.median_circularity < t.pleomorphic_circularity:
        return Morphology.FINE_PLEOMORPHIC, (
            f"calcifications under {t.round_mm} mm varying in size (variation {cv:.0%}) and "
            f"shape (median circularity {s.median_circularity:.2f}): fine pleomorphic"
        )
    return Morphology.PUNCTATE, (
        f"uniform round calcifications under {t.round_mm} mm (median {med:.2f} mm, "
        f"variation {cv:.0%}): punctate (round, < 0.5 mm)"
    )


def cluster_morphology(
    members: Sequence[Calcification], pixel_mm: float, t: DescribeThresholds
) -> tuple[Morphology, bool, list[str], float, float]:
    """BI-RADS morphology of a cluster from its members' sizes and shapes.

    ``members`` are the calcifications to judge (see :func:`judged_members`). Sizes are
    greatest dimensions (``max_diameter_mm``), as a radiologist measures them; ``pixel_mm``
    is the pixel size in mm.

    Returns (morphology, confident, reasons, median greatest dimension in mm, size
    variation: coefficient of variation of the greatest dimensions).
    """
    s = _size_shape(members, t)
    med = s.median_mm
    # a shape needs a few pixels across to be judged
    confident = bool(med / pixel_mm >= t.shape_min_px)
    casts, branched = _casts(members, pixel_mm, t)
    morph, reason = _cast_morphology(casts, branched, t) or _speck_morphology(s, t)
    reasons = [reason]
    if not confident:
        reasons.append(
            f"members span about {med / pixel_mm:.1f} pixels at {pixel_mm:.2f} mm/pixel: the shape "
            "cannot be judged reliably; magnification views are needed"
        )
    return morph, confident, reasons, med, s.cv
