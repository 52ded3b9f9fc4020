"""BI-RADS distribution of a cluster (grouped, linear, segmental, regional) and of calcifications
scattered throughout the breast (diffuse), from the geometry of their centres.

Rules follow the ACR BI-RADS Atlas, 5th edition (2013), "Distribution"; each threshold lives in
:class:`calcscope.reading.thresholds.DescribeThresholds` with its source.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.spatial import cKDTree

from calcscope.model import Calcification, Cluster, Distribution, Morphology
from calcscope.reading.thresholds import DescribeThresholds

__all__ = ["DIFFUSE_FORMS", "cluster_distribution", "diffuse_spread"]


def cluster_distribution(
    cluster: Cluster,
    members: Sequence[Calcification],
    spacing_mm: tuple[float, float],
    t: DescribeThresholds,
    nipple_rc: tuple[float, float] | None = None,
) -> tuple[Distribution, list[str]]:
    """BI-RADS distribution of a cluster from the geometry of its member centres.

    ``members`` are the calcifications to judge (see :func:`judged_members`); the extent
    is the longest distance between two of them plus their half sizes (``cluster`` gives
    it only when ``members`` is empty). With ``nipple_rc`` (pixels) a segmental spread
    must point at the nipple.
    """
    pts = np.array(
        [(m.center_rc[0] * spacing_mm[0], m.center_rc[1] * spacing_mm[1]) for m in members]
    ).reshape(-1, 2)
    if len(pts) < 2:
        return Distribution.GROUPED, [f"{len(pts)} calcification(s): grouped"]
    size = np.array([m.max_diameter_mm for m in members])
    gaps = np.sqrt(((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1))
    extent = float((gaps + (size[:, None] + size[None, :]) / 2).max())
    centre = pts.mean(0)
    pts = pts - centre
    w, vecs = np.linalg.eigh(pts.T @ pts / len(pts))
    major = 4 * np.sqrt(max(w[1], 0.0))
    minor = 4 * np.sqrt(max(w[0], 0.0))
    ratio = major / max(minor, 0.5)
    off_axis = None  # angle (deg) between the long axis and the line to the nipple
    if nipple_rc is not None:
        to_nipple = np.array(nipple_rc) * np.array(spacing_mm) - centre
        if np.hypot(*to_nipple) > 1e-6:
            cos = abs(float(vecs[:, 1] @ to_nipple)) / float(np.hypot(*to_nipple))
            off_axis = float(np.degrees(np.arccos(min(cos, 1.0))))
    if ratio >= t.linear_ratio and minor < t.linear_width_mm and major >= 5.0:
        return Distribution.LINEAR, [
            f"calcifications arranged in a line ({major:.0f} x {minor:.1f} mm, axes "
            f"{ratio:.1f} : 1): linear distribution, suggesting deposits in one duct"
        ]
    towards_nipple = off_axis is None or off_axis <= t.segmental_axis_deg
    if extent > t.regional_mm and ratio >= t.segmental_ratio and towards_nipple:
        return Distribution.SEGMENTAL, [
            f"calcifications in an elongated area {major:.0f} x {minor:.0f} mm (> "
            f"{t.regional_mm:.0f} mm long, wider than one duct"
            + ("" if off_axis is None else f", long axis {off_axis:.0f} deg off the nipple")
            + "): segmental distribution, a duct and its branches"
        ]
    wedge = (
        _wedge_from_nipple(pts, np.array(nipple_rc) * np.array(spacing_mm) - centre)
        if nipple_rc is not None and extent > t.regional_mm
        else None
    )
    if wedge is not None and wedge[0] >= t.segmental_wedge_rho and wedge[1] <= t.segmental_cone_deg:
        return Distribution.SEGMENTAL, [
            f"calcifications in a wedge {major:.0f} x {minor:.0f} mm (> {t.regional_mm:.0f} mm) "
            f"that widens away from the nipple (rank correlation {wedge[0]:.2f}) within a "
            f"{wedge[1]:.0f} deg cone seen from it: segmental distribution, the ducts of one "
            "lobe converging on the nipple"
        ]
    if extent > t.regional_mm:
        why = "not along a duct"
        if ratio >= t.segmental_ratio and off_axis is not None:
            why = (
                f"elongated, but its long axis turns {off_axis:.0f} deg (> "
                f"{t.segmental_axis_deg:.0f} deg) away from the nipple, so not a segment"
            )
        return Distribution.REGIONAL, [
            f"calcifications scattered over {extent:.0f} mm (> {t.regional_mm:.0f} mm), "
            f"{why}: regional"
        ]
    return Distribution.GROUPED, [
        f"{len(members)} calcifications within {extent:.0f} mm (<= {t.regional_mm:.0f} mm): "
        "grouped" + ("" if len(members) >= 5 else " (fewer than the 5 the BI-RADS term asks for)")
    ]


def _wedge_from_nipple(pts: np.ndarray, nipple: np.ndarray) -> tuple[float, float] | None:
    """How far member centres ``pts`` (mm, about their mean) form a triangle with its apex
    towards ``nipple`` (mm, same frame): the rank correlation of each member's distance
    from the nipple along the line to the spread's centre with its offset from the
    members' median line (positive: the spread widens away from the nipple), and the
    10-90 % range of the members' bearings seen from the nipple (degrees). None with
    fewer than 4 members or the nipple inside the spread."""
    dist = float(np.hypot(*nipple))
    if len(pts) < 4 or dist < 1e-6:
        return None
    away = -nipple / dist
    across = np.array([-away[1], away[0]])
    rel = pts - nipple
    along, side = rel @ away, rel @ across
    if along.min() <= 0:
        return None
    offset = np.abs(side - np.median(side))
    if np.ptp(offset) == 0 or np.ptp(along) == 0:
        return None
    from scipy.stats import spearmanr  # scipy.stats takes most of a second to import

    rho = float(spearmanr(along, offset).statistic)
    bearing = np.degrees(np.arctan2(side, along))
    return rho, float(np.percentile(bearing, 90) - np.percentile(bearing, 10))


#: morphologies whose clusters are called diffuse when the calcifications are scattered at random
#: throughout the breast (:func:`diffuse_spread`)
DIFFUSE_FORMS = (Morphology.PUNCTATE, Morphology.ROUND, Morphology.AMORPHOUS)


def diffuse_spread(
    calcs: Sequence[Calcification],
    breast: np.ndarray,
    spacing_mm: tuple[float, float],
    t: DescribeThresholds,
) -> str | None:
    """The reason why ``calcs`` (the detected calcifications that may belong to a
    cluster) are scattered at random throughout ``breast``, or None when they are not.

    Diffuse calcifications are "distributed randomly throughout the breast" (BI-RADS
    atlas). Two measures, both needed, with at least ``diffuse_min_count`` of them:
    *randomness*, the Clark-Evans ratio of their mean nearest-neighbour distance to the
    one expected of as many points placed at random over the breast (0.5 sqrt(area /
    n); about 1 for random points, well under 1 for grouped ones), at least
    ``diffuse_randomness``; and *spread*, the root-mean-square distance of the
    calcifications from their centre over that of the breast's pixels, at least
    ``diffuse_spread``.
    """
    if len(calcs) < t.diffuse_min_count or not breast.any():
        return None
    scale = np.array(spacing_mm, dtype=np.float64)
    pts = np.array([c.center_rc for c in calcs], dtype=np.float64) * scale
    step = max(1, int(round(1.0 / float(scale.min()))))  # breast sampled every ~1 mm
    inside = np.argwhere(breast[::step, ::step]).astype(np.float64) * step * scale
    area_mm2 = float(breast.sum()) * float(scale.prod())
    dist, _ = cKDTree(pts).query(pts, k=2)
    ratio = float(dist[:, 1].mean()) / (0.5 * np.sqrt(area_mm2 / len(pts)))
    spread = float(
        np.sqrt(
            ((pts - pts.mean(0)) ** 2).sum(1).mean()
            / ((inside - inside.mean(0)) ** 2).sum(1).mean()
        )
    )
    if ratio < t.diffuse_randomness or spread < t.diffuse_spread:
        return None
    return (
        f"{len(pts)} calcifications scattered throughout the breast (nearest-neighbour "
        f"distance {ratio:.2f} times that of random points, spread {spread:.2f} of the "
        "breast's): diffuse distribution"
    )
