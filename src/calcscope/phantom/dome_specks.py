"""A second, independent renderer of inserted clusters: ellipsoidal domes (issue 18).

:func:`calcscope.phantom.insert_clusters` draws its members with the shape library that the
detector's phantoms and training also use, so a benchmark built only on it could reward a
detector for knowing that library. :func:`insert_dome_clusters` shares nothing with it but
the truth types: every member is the projection of a solid ellipsoid (a dome of thickness
``sqrt(1 - (x/a)^2 - (y/b)^2)``, axes ``a`` along a random direction and ``b`` = 0.5-1 x
``a``), rendered on a grid four times finer than the pixels, area-averaged, blurred by a
Gaussian PSF and added to the pixels so that its peak pixel contrast is the member's own
(the cluster's level, drawn log-uniformly, times 0.6-1.4). Members lie uniformly in the
cluster's disc, at least their own size apart; each cluster's centre lies in the region at
least its radius plus 2 mm inside. This is how a real-film benchmark checks that what it
measures does not depend on how its positives were drawn
(``benchmarks/bench_real_hires.py --renderer domes``).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from calcscope.model import Distribution, Mammogram, Morphology
from calcscope.phantom.placement import free_centre, inserted_phantom, inside_region_mm
from calcscope.phantom.truth import (
    Phantom,
    TrueCalcification,
    TrueCluster,
    true_cluster,
)

__all__ = ["insert_dome_clusters"]

_SUPERSAMPLE = 4
"""Sub-pixels per pixel side on which a dome is drawn before area averaging."""


def _dome(d_mm: float, ratio: float, angle: float, pixel_mm: float, psf_px: float) -> np.ndarray:
    """One member's profile on a pixel grid centred on it, peak 1 (after blur), float32."""
    a_px = 0.5 * d_mm / pixel_mm
    b_px = a_px * ratio
    half = int(math.ceil(a_px + 4.0 * psf_px)) + 2
    n = (2 * half + 1) * _SUPERSAMPLE
    axis = (np.arange(n, dtype=np.float32) + 0.5) / _SUPERSAMPLE - (half + 0.5)
    y, x = np.meshgrid(axis, axis, indexing="ij")
    u = (x * math.cos(angle) + y * math.sin(angle)) / a_px
    v = (-x * math.sin(angle) + y * math.cos(angle)) / b_px
    fine = np.sqrt(np.maximum(1.0 - u * u - v * v, 0.0)).astype(np.float32)
    coarse = cv2.resize(fine, (2 * half + 1, 2 * half + 1), interpolation=cv2.INTER_AREA)
    if psf_px > 0:
        coarse = cv2.GaussianBlur(coarse, (0, 0), psf_px, borderType=cv2.BORDER_CONSTANT)
    peak = float(coarse.max())
    return coarse / peak if peak > 0 else coarse


def insert_dome_clusters(
    mammogram: Mammogram,
    region: np.ndarray,
    *,
    seed: int,
    n_clusters: int = 2,
    members: tuple[int, int] = (5, 12),
    radius_mm: tuple[float, float] = (2.0, 6.0),
    contrast: tuple[float, float] = (0.03, 0.15),
    piece_mm: tuple[float, float] = (0.15, 0.6),
    psf_mm: tuple[float, float] = (0.05, 0.12),
) -> Phantom:
    """Insert clusters of ellipsoidal domes into a real mammogram (see the module's text).

    Parameters
    ----------
    mammogram
        The real image (pixels in ``[0, 1]``); it is not modified.
    region
        Bool mask, the image's shape: where clusters may lie.
    seed
        Seed of :func:`numpy.random.default_rng`; the same arguments give the same image.
    n_clusters, members, radius_mm
        Number of clusters; members per cluster and radius (mm) of the disc they lie in
        (drawn uniformly per cluster).
    contrast
        Range of a cluster's level (peak pixel contrast, image units), drawn log-uniformly.
    piece_mm
        Range of a member's long axis (mm), drawn uniformly per member.
    psf_mm
        Range of the Gaussian PSF's sigma (mm), drawn per cluster.

    Returns
    -------
    Phantom
        The image with the clusters and their truth (members' shape ``"round"``, clusters
        of morphology ROUND and distribution GROUPED, ``breast_mask`` the region).
    """
    rng = np.random.default_rng(seed)
    img = mammogram.pixels
    region = np.asarray(region, dtype=bool)
    pixel = mammogram.pixel_mm
    inside_mm = inside_region_mm(region, img.shape, pixel)
    layer = np.zeros(img.shape, dtype=np.float32)
    calcs: list[TrueCalcification] = []
    clusters: list[TrueCluster] = []
    # two clusters' centres lie at least this far apart: their discs 7 mm clear of each other
    apart_px = (2.0 * radius_mm[1] + 7.0) / pixel
    blocked: list[tuple[float, float, float]] = []
    for k in range(n_clusters):
        n = int(rng.integers(members[0], members[1] + 1))
        radius = float(rng.uniform(*radius_mm))
        level = float(np.exp(rng.uniform(*np.log(contrast))))
        psf_px = float(rng.uniform(*psf_mm)) / pixel
        cr, cc = free_centre(rng, inside_mm, radius + 2.0, blocked, 0.0)
        placed: list[tuple[float, float, float]] = []
        ids: list[int] = []
        for _ in range(200 * n):
            if len(ids) == n:
                break
            d_mm = float(rng.uniform(*piece_mm))
            rho = radius * math.sqrt(float(rng.uniform()))
            phi = float(rng.uniform(0.0, 2.0 * math.pi))
            r_px = cr + rho * math.sin(phi) / pixel
            c_px = cc + rho * math.cos(phi) / pixel
            if any(
                math.hypot(r_px - r, c_px - c) * pixel < 0.5 * (d_mm + e) + 0.1
                for r, c, e in placed
            ):
                continue
            ratio = float(rng.uniform(0.5, 1.0))
            prof = _dome(d_mm, ratio, float(rng.uniform(0, math.pi)), pixel, psf_px)
            target = level * float(rng.uniform(0.6, 1.4))
            half = prof.shape[0] // 2
            r0, c0 = int(round(r_px)) - half, int(round(c_px)) - half
            layer[r0 : r0 + prof.shape[0], c0 : c0 + prof.shape[1]] += target * prof
            placed.append((r_px, c_px, d_mm))
            # area-equivalent diameter of the ellipse (axes d and d x ratio) and its long axis
            calcs.append(
                TrueCalcification(
                    len(calcs) + 1,
                    (float(r0 + half), float(c0 + half)),
                    d_mm * math.sqrt(ratio),
                    d_mm,
                    "round",
                    k + 1,
                    target,
                )
            )
            ids.append(len(calcs))
        clusters.append(
            true_cluster(k + 1, calcs, tuple(ids), Morphology.ROUND, Distribution.GROUPED, pixel)
        )
        blocked.append((float(cr), float(cc), apart_px))
    return inserted_phantom(mammogram, layer, calcs, clusters, region)
