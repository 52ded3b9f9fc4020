"""A cluster-level test for faint specks: denser than the image's own rate (issue 18).

At 0.05 mm a faint calcification (0.15-0.6 mm, contrast 0.03-0.05) has a scale-matched CNR
(:mod:`calcscope.detection.scale_cnr`) of 3-4.5, where single grain specks reach 4.5: speck by
speck they cannot be told apart. A cluster of them can, by its density: film grain and noise
are scattered over tissue of one density at a rate of their own, while 5-12 calcifications lie
within a few millimetres. This test counts, per image, the *faint* specks (scale-matched CNR
of ``DetectConfig.faint_cnr_min`` or more, not too sharp, small: those
:func:`~calcscope.detection.scale_cnr.scale_sure` would accept but for the threshold) and the
sure ones (scoring ``sure_score`` or made sure by the scale-matched CNR), gives them a rate per
mm² of breast, and marks as sure cluster members the faint specks within
``faint_radius_mm`` of a speck whose neighbourhood holds improbably many under a Poisson model
of that rate: ``P(X >= k - 1) x places < faint_alpha`` with ``k`` the specks in the disc (the
centre one included), ``places`` the breast's area over the disc's (a Bonferroni correction
for the places tested) and ``k >= faint_min_count``. The clustering's own rules (four sure
members, cores, links) then still apply.

Measured on CBIS-DDSM film at 0.05 mm (docs/accuracy.md, ``benchmarks/measure_faint_clusters.py``):
off by default (``DetectConfig.faint_cluster_sure``); only where the scale-matched CNR is
measured (pixels up to ``scale_cnr_max_pixel_mm``).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree
from scipy.stats import poisson

from calcscope.config import DetectConfig
from calcscope.detection.features import Candidates
from calcscope.model import Mammogram

__all__ = ["dense_faint", "faint_sure"]


def dense_faint(
    centres_mm: np.ndarray,
    faint: np.ndarray,
    sure: np.ndarray,
    area_mm2: float,
    config: DetectConfig,
) -> np.ndarray:
    """Which faint specks lie in a group denser than the image's rate of such specks.

    Parameters
    ----------
    centres_mm : np.ndarray
        (n, 2) candidate centres, (row, col) in mm.
    faint : np.ndarray
        (n,) bool: faint specks (scale-matched CNR at least ``config.faint_cnr_min``, not
        too sharp, small).
    sure : np.ndarray
        (n,) bool: sure specks (by score or by the scale-matched CNR), counted in the rate
        and in the groups.
    area_mm2 : float
        Area of the breast (mm²) over which the specks were looked for.
    config : DetectConfig
        ``faint_radius_mm``, ``faint_alpha`` and ``faint_min_count``.

    Returns
    -------
    np.ndarray
        (n,) bool: the faint specks within ``faint_radius_mm`` of a speck whose disc holds
        improbably many specks (never set for a speck that is not ``faint``).
    """
    n = len(centres_mm)
    out = np.zeros(n, dtype=bool)
    counted = np.flatnonzero(faint | sure)
    r_mm = config.faint_radius_mm
    if counted.size < config.faint_min_count or area_mm2 <= 0 or r_mm <= 0:
        return out
    disc_mm2 = np.pi * r_mm**2
    expected = counted.size / area_mm2 * disc_mm2
    places = max(area_mm2 / disc_mm2, 1.0)
    pts = np.asarray(centres_mm, dtype=np.float64)[counted]
    groups = cKDTree(pts).query_ball_point(pts, r=r_mm)
    k = np.array([len(g) for g in groups])
    tail = poisson.sf(k - 2, expected)  # P(X >= k - 1): the others besides the centre
    dense = (k >= config.faint_min_count) & (tail * places < config.faint_alpha)
    for j in np.flatnonzero(dense):
        out[counted[groups[j]]] = True
    return out & np.asarray(faint, dtype=bool)


def faint_sure(
    mammogram: Mammogram,
    mask: np.ndarray,
    cands: Candidates,
    cnr: np.ndarray,
    sure: np.ndarray,
    cfg: DetectConfig,
) -> np.ndarray:
    """The candidates the faint test makes sure cluster members (bool, one per candidate):
    the faint ones (scale-matched CNR ``cnr`` of ``faint_cnr_min`` or more; NaN where not
    measured) that :func:`dense_faint` finds in a group denser than the image's rate, the
    rate counted over ``mask``'s area; sure specks are ``sure`` and the small ones scoring
    the operating score."""
    small = cands.diameter_mm <= cfg.scale_cnr_max_diameter_mm
    faint = np.nan_to_num(cnr, nan=-np.inf) >= cfg.faint_cnr_min
    counted_sure = sure | (small & (cands.score >= cfg.operating_score))
    sr, sc = mammogram.spacing_mm
    area_mm2 = float(np.count_nonzero(mask)) * sr * sc
    centres_mm = np.asarray(cands.center_rc, dtype=np.float64) * np.array([sr, sc])
    return dense_faint(centres_mm, faint & ~counted_sure, counted_sure, area_mm2, cfg)
