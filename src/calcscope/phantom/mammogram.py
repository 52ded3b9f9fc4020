"""Synthetic mammograms with exactly known calcifications (the bundled example).

:func:`make_phantom` draws a compressed breast with fibroglandular texture, vessels,
Cooper ligaments, skin-line fall-off, a pectoral muscle on oblique views and quantum
noise, and inserts microcalcification clusters, benign macro patterns and isolated
specks whose geometry is recorded in a :class:`PhantomTruth`.

Conventions
-----------
* Display orientation: a RIGHT breast has its chest wall at the left image edge
  (column 0) and the nipple pointing right; a LEFT breast is the mirror image (chest wall
  at the right edge). On MLO views the pectoral muscle is the triangle in the upper
  chest-wall corner. Everything is drawn in the RIGHT frame and mirrored exactly.
* :func:`full_field_shape` gives ``(rows, cols) = (4096, 3328)`` at 0.07 mm, i.e. a
  detector of about 287 mm (rows) x 233 mm (cols), scaled for other spacings.
* Every calcification piece (one connected drawn shape) is rendered analytically on a
  local grid supersampled at least 4x (finer than 0.02 mm per sub-pixel), area-averaged
  down to the pixel grid, blurred with a Gaussian PSF (sigma 0.05 mm) and added to the
  image. Its truth (area-equivalent diameter, longest extent, centroid) is measured on the
  supersampled mask, so it is exact up to the sub-pixel size.
* Added intensity of a piece is ``amplitude * profile`` where the profile is the
  normalised projected thickness (peak 1) and ``amplitude = a * min(1, d / 0.5 mm)``
  with ``a`` uniform in ``[0.17, 0.32]`` for microcalcifications (0.7x that for the faint
  amorphous ones) and ``[0.22, 0.38]`` for macro patterns. ``contrast`` in the truth is
  the peak of the added signal at the pixel level (after area averaging and PSF).
* Quantum noise has a per-pixel standard deviation of ``0.01 * noise * 0.07 /
  spacing_mm`` inside the breast, times ``0.7 + 0.6 * intensity`` (about 1 in the
  breast; half that outside it), plus correlated grain (sigma 0.1 mm) of 0.4x that.
  A 0.2 mm speck at 0.07 mm has a pixel contrast of about 0.04-0.08, i.e. a CNR of
  about 4-8 against the quantum noise.

The BI-RADS sizes used (punctate < 0.5 mm, round 0.5-1 mm, amorphous small and hazy,
fine pleomorphic < 0.5 mm varying, fine linear < 0.5 mm wide, coarse heterogeneous
0.5-1 mm, popcorn > 2-3 mm, rod-like >= 1 mm, rim 2-6 mm, skin 1-2 mm lucent centred)
follow the ACR BI-RADS Atlas, 5th ed. (2013), as summarised by the Radiology Assistant
("Breast - Calcifications - Differential diagnosis", radiologyassistant.nl).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from calcscope.model import Distribution, Laterality, Mammogram, Morphology, Source, View
from calcscope.phantom.shapes import (
    CLUSTER_MORPHOLOGIES,
    MACRO_PATTERNS,
    Shape,
    curve,
    disc,
    macro_layout,
    member_shape,
    micro_amp,
)

__all__ = [
    "TrueCalcification",
    "TrueCluster",
    "TrueMacro",
    "PhantomTruth",
    "Phantom",
    "ClusterSpec",
    "CLUSTER_MORPHOLOGIES",
    "MACRO_PATTERNS",
    "make_phantom",
    "insert_clusters",
    "truth_to_dict",
    "full_field_shape",
    "phantom_summary",
]

_FULL_FIELD_PX = (4096, 3328)  # rows, cols at 0.07 mm
_FULL_FIELD_SPACING_MM = 0.07
_PSF_SIGMA_MM = 0.05
_MAX_SUBPIXEL_MM = 0.02
_GRID_MM = 0.25  # cell of the low-resolution anatomy grids
_EDGE_MARGIN_MM = 3.0  # inserts keep this far from the skin line and the pectoral muscle


# --------------------------------------------------------------------------- truth types
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
    """

    morphology: Morphology
    distribution: Distribution = Distribution.GROUPED
    n: int = 8
    center_rc: tuple[float, float] | None = None


# ------------------------------------------------------------------------ public helpers
def full_field_shape(spacing_mm: float) -> tuple[int, int]:
    """Shape ``(rows, cols)`` of a full-field detector (287 x 233 mm) at this spacing.

    Parameters
    ----------
    spacing_mm
        Pixel spacing in mm; 0.07 gives ``(4096, 3328)``.
    """
    if spacing_mm <= 0:
        raise ValueError(f"spacing_mm must be positive, got {spacing_mm}")
    scale = _FULL_FIELD_SPACING_MM / spacing_mm
    return (round(_FULL_FIELD_PX[0] * scale), round(_FULL_FIELD_PX[1] * scale))


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


@dataclass(frozen=True)
class _Piece:
    shape: Shape
    anchor_rc: tuple[float, float]  # RIGHT-frame pixels
    angle: float  # rad, direction of the local u axis, atan2(d_row, d_col)
    cluster: int | None = None  # index into the cluster specs
    macro: int | None = None  # index into the macros


# ------------------------------------------------------------------------------ anatomy
def _power_law_field(
    rng: np.random.Generator, shape: tuple[int, int], beta: float, stretch: float = 1.0
) -> np.ndarray:
    """Zero-mean unit-variance Gaussian field with a ``1/f**beta`` power spectrum;
    ``stretch > 1`` elongates its structures along the columns (towards the nipple)."""
    h, w = shape
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.hypot(fy, fx * stretch)
    f[0, 0] = np.inf
    amp = f ** (-beta / 2)
    spec = amp * (rng.standard_normal(amp.shape) + 1j * rng.standard_normal(amp.shape))
    field = np.fft.irfft2(spec, s=(h, w))
    field -= field.mean()
    return (field / field.std()).astype(np.float32)


def _dist_mm(mask: np.ndarray, cell_mm: float, *, border_inside: bool) -> np.ndarray:
    """Distance (mm) from each True cell to the nearest False cell (image border as set)."""
    pad = cv2.copyMakeBorder(
        mask.astype(np.uint8),
        1,
        1,
        1,
        1,
        cv2.BORDER_REPLICATE if border_inside else cv2.BORDER_CONSTANT,
        value=0,
    )
    d = cv2.distanceTransform(pad, cv2.DIST_L2, cv2.DIST_MASK_5)[1:-1, 1:-1]
    return np.clip(d - 0.5, 0, None) * cell_mm


def _draw_tube(img: np.ndarray, path_rc: np.ndarray, radius_px: float, amp: float) -> None:
    """Add a tube of circular cross-section (projected thickness) along a path."""
    rows, cols = img.shape
    pad = radius_px + 3
    r0 = max(int(path_rc[:, 0].min() - pad), 0)
    c0 = max(int(path_rc[:, 1].min() - pad), 0)
    r1 = min(int(path_rc[:, 0].max() + pad) + 1, rows)
    c1 = min(int(path_rc[:, 1].max() + pad) + 1, cols)
    if r1 <= r0 or c1 <= c0:
        return
    canvas = np.full((r1 - r0, c1 - c0), 255, np.uint8)
    pts = np.round((path_rc[:, ::-1] - (c0, r0)) * 16).astype(np.int32)
    cv2.polylines(canvas, [pts], False, 0, 1, cv2.LINE_8, shift=4)
    d = cv2.distanceTransform(canvas, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    img[r0:r1, c0:c1] += amp * np.sqrt(np.clip(1.0 - (d / radius_px) ** 2, 0.0, None))


@dataclass
class _Anatomy:
    """RIGHT-frame geometry: masks, distance maps (low-res grid), nipple."""

    rows: int
    cols: int
    spacing: float
    breast: np.ndarray  # full-res bool
    pectoral: np.ndarray | None  # full-res bool
    grid_scale: tuple[float, float]  # full-res px per low-res cell (rows, cols)
    allowed_mm: np.ndarray  # low-res distance to skin / pectoral / image border
    skin_mm: np.ndarray  # low-res distance to the skin line / image border
    nipple_rc: tuple[float, float]
    breast_low: np.ndarray  # low-res bool
    low_rc: tuple[np.ndarray, np.ndarray]  # full-res coordinates of low-res cell centres
    skin_grad: tuple[np.ndarray, np.ndarray]  # gradient of skin_mm (rows, cols)
    skin_line_mm: np.ndarray  # low-res distance to the skin line only (not the image border)

    def cell(self, r: float, c: float) -> tuple[int, int]:
        i = int(np.clip((r + 0.5) / self.grid_scale[0], 0, self.allowed_mm.shape[0] - 1))
        j = int(np.clip((c + 0.5) / self.grid_scale[1], 0, self.allowed_mm.shape[1] - 1))
        return i, j

    def allowed(self, r: float, c: float) -> float:
        """Conservative distance (mm) of a point from anything a calcification avoids."""
        return float(self.allowed_mm[self.cell(r, c)]) - _GRID_MM

    def skin(self, r: float, c: float) -> float:
        return float(self.skin_mm[self.cell(r, c)])

    def skin_line(self, r: float, c: float) -> float:
        """Distance (mm) to the skin line; where the breast leaves the image (chest wall,
        axilla) there is no skin."""
        return float(self.skin_line_mm[self.cell(r, c)])

    def skin_tangent(self, r: float, c: float) -> float:
        """Direction (rad, atan2(d_row, d_col)) along the skin line near a point."""
        i, j = self.cell(r, c)
        return math.atan2(float(self.skin_grad[1][i, j]), -float(self.skin_grad[0][i, j]))

    def to_nipple(self, r: float, c: float) -> float:
        return math.atan2(self.nipple_rc[0] - r, self.nipple_rc[1] - c)


def _geometry(
    rng: np.random.Generator, rows: int, cols: int, spacing: float, oblique: bool
) -> tuple[_Anatomy, np.ndarray, np.ndarray | None]:
    """Breast outline, pectoral muscle and distance maps; returns also the low-res
    level function of the breast and the soft pectoral map (full-res) or None."""
    cell = max(_GRID_MM, spacing)
    hl, wl = max(int(round(rows * spacing / cell)), 8), max(int(round(cols * spacing / cell)), 8)
    sr, sc = rows / hl, cols / wl
    rr = ((np.arange(hl) + 0.5) * sr - 0.5)[:, None]
    cc = ((np.arange(wl) + 0.5) * sc - 0.5)[None, :]
    if oblique:
        cr, ar = rows * rng.uniform(0.34, 0.40), rows * rng.uniform(0.58, 0.64)
    else:
        cr, ar = rows * rng.uniform(0.47, 0.53), rows * rng.uniform(0.38, 0.44)
    c0, ac = -0.05 * cols, cols * rng.uniform(0.68, 0.85)
    y, x = (rr - cr) / ar, (cc - c0) / ac
    theta = np.arctan2(y, x)
    harm = [(k, rng.uniform(0, 0.025), rng.uniform(0, 2 * np.pi)) for k in (2, 3, 4, 5)]
    mod = 1.0 + sum(a * np.cos(k * theta + p) for k, a, p in harm)
    level = (np.hypot(y, x) - mod).astype(np.float32)
    breast_low = level < 0
    breast = cv2.resize(level, (cols, rows), interpolation=cv2.INTER_LINEAR) < 0
    tip = 1.0 + sum(a * math.cos(p) for _, a, p in harm)
    nipple = (cr, c0 + ac * tip - 3.0 / spacing)

    pect_low = np.zeros_like(breast_low)
    pectoral = soft = None
    if oblique:
        h, w = rows * rng.uniform(0.35, 0.55), cols * rng.uniform(0.22, 0.35)
        p = rng.uniform(0.85, 1.15)
        plevel = np.clip(rr / h, 0, None) ** p + np.clip(cc / w, 0, None) ** p - 1.0
        plevel = plevel.astype(np.float32) * min(h, w) * spacing  # ~ mm near the edge
        soft_low = 1.0 / (1.0 + np.exp(np.clip(plevel / 0.6, -30, 30)))
        soft = (
            cv2.resize(soft_low.astype(np.float32), (cols, rows), interpolation=cv2.INTER_LINEAR)
            * breast
        )
        pectoral = soft > 0.5
        pect_low = (plevel < 0) & breast_low
    allowed_mm = _dist_mm(breast_low & ~pect_low, cell, border_inside=False)
    allowed_mm = np.minimum(allowed_mm, _dist_mm(~pect_low, cell, border_inside=True))
    skin_mm = _dist_mm(breast_low, cell, border_inside=False)
    gi, gj = np.gradient(cv2.GaussianBlur(skin_mm, (0, 0), 4.0))
    anat = _Anatomy(
        rows,
        cols,
        spacing,
        breast,
        pectoral,
        (sr, sc),
        allowed_mm,
        skin_mm,
        nipple,
        breast_low,
        (rr, cc),
        (gi, gj),
        _dist_mm(breast_low, cell, border_inside=True),
    )
    return anat, level, soft


def _render_anatomy(
    rng: np.random.Generator,
    anat: _Anatomy,
    level: np.ndarray,
    pect_soft: np.ndarray | None,
    extra_vessels: Sequence[tuple[np.ndarray, float, float]],
) -> np.ndarray:
    """Background, tissue texture, skin fall-off, vessels, ligaments, pectoral."""
    rows, cols, s = anat.rows, anat.cols, anat.spacing
    hl, wl = level.shape
    rr, cc = anat.low_rc
    bg = rng.uniform(0.02, 0.05)

    # fibroglandular density: power-law field modulated by a central glandular envelope
    field = _power_law_field(rng, (hl, wl), rng.uniform(2.8, 3.2), rng.uniform(1.2, 1.8))
    fine = _power_law_field(rng, (hl, wl), 2.0)
    gr = anat.nipple_rc[0] + rng.uniform(-0.05, 0.05) * rows
    gc = anat.nipple_rc[1] * rng.uniform(0.35, 0.5)
    env = np.exp(-(((rr - gr) / (0.3 * rows)) ** 2) - ((cc - gc) / (0.32 * cols)) ** 2)
    density = rng.uniform(-1.2, 0.6)
    gland = 1.0 / (1.0 + np.exp(-(1.4 * field + 3.0 * env - 1.8 + density) / 0.45))
    tissue = (0.24 + 0.36 * gland + 0.02 * fine).astype(np.float32)

    # thickness fall-off towards the skin line (breast continues beyond the image edge)
    skin = _dist_mm(anat.breast, s, border_inside=True)
    u = np.clip(skin / rng.uniform(6.0, 10.0), 0, 1)
    thick_full = np.sqrt(1.0 - (1.0 - u) ** 2) * anat.breast
    tissue_full = cv2.resize(tissue, (cols, rows), interpolation=cv2.INTER_CUBIC)
    img = bg + (tissue_full - bg) * thick_full + 0.03 * np.exp(-skin / 1.2) * anat.breast

    # vessels (1-2 mm tubes) and Cooper ligaments (thin curves near the skin)
    lines = np.zeros((rows, cols), np.float32)
    area_cm2 = float(anat.breast.sum()) * s * s / 100
    for _ in range(int(rng.integers(3, 7))):
        r, c = _random_inside(rng, anat, 5.0)
        start = np.array([r, min(c, rng.uniform(0.0, 0.3) * anat.nipple_rc[1])])
        heading = anat.to_nipple(*start) + rng.uniform(-0.6, 0.6)
        path = curve(rng, start, heading, rng.uniform(0.5, 1.1) * anat.nipple_rc[1], 1.0 / s, 0.04)
        _draw_tube(lines, path, rng.uniform(0.5, 1.0) / s, rng.uniform(0.03, 0.06))
    for path, radius_px, amp in extra_vessels:
        _draw_tube(lines, path, radius_px, amp)
    for _ in range(int(np.clip(area_cm2 / 15, 4, 25))):
        for _try in range(50):
            r, c = _random_inside(rng, anat, 4.0)
            if anat.skin(r, c) < 25.0:
                break
        heading = anat.skin_tangent(r, c) + rng.uniform(-0.5, 0.5) + np.pi * (rng.random() < 0.5)
        path = curve(rng, np.array([r, c]), heading, rng.uniform(10, 30) / s, 0.5 / s, 0.08)
        _draw_tube(lines, path, max(rng.uniform(0.1, 0.25) / s, 0.7), rng.uniform(0.02, 0.04))
    img += lines * thick_full

    if pect_soft is not None:
        pfield = cv2.resize(
            _power_law_field(rng, (hl, wl), 2.5), (cols, rows), interpolation=cv2.INTER_LINEAR
        )
        muscle = rng.uniform(0.7, 0.78) + 0.03 * pfield
        img = img * (1 - pect_soft) + muscle * pect_soft
    sigma = max(_PSF_SIGMA_MM / s, 0.5)
    return cv2.GaussianBlur(img.astype(np.float32), (0, 0), sigma)


def _random_inside(rng: np.random.Generator, anat: _Anatomy, min_mm: float) -> tuple[float, float]:
    """Uniform random point at least ``min_mm`` from the skin, pectoral and border."""
    for _ in range(5000):
        r, c = rng.uniform(0, anat.rows - 1), rng.uniform(0, anat.cols - 1)
        if anat.allowed(r, c) >= min_mm:
            return float(r), float(c)
    raise ValueError(
        f"no room {min_mm:.1f} mm inside the breast; use a larger image shape or a finer spacing_mm"
    )


def _random_near_skin(
    rng: np.random.Generator, anat: _Anatomy, lo_mm: float, hi_mm: float, min_mm: float
) -> tuple[float, float]:
    """Uniform random point between ``lo_mm`` and ``hi_mm`` from the skin line (the image
    border is not skin) and at least ``min_mm`` from anything a calcification avoids."""
    ok = (
        (anat.skin_line_mm >= lo_mm)
        & (anat.skin_line_mm <= hi_mm)
        & (anat.allowed_mm - _GRID_MM >= min_mm)
    )
    cells = np.flatnonzero(ok)
    if cells.size == 0:
        raise ValueError("no skin line inside the image; use a larger image shape")
    i, j = np.unravel_index(int(rng.choice(cells)), ok.shape)
    gr, gc = anat.grid_scale
    r = (i + rng.uniform(0.0, 1.0)) * gr - 0.5  # inverse of _Anatomy.cell
    c = (j + rng.uniform(0.0, 1.0)) * gc - 0.5
    return float(np.clip(r, 0, anat.rows - 1)), float(np.clip(c, 0, anat.cols - 1))


# ---------------------------------------------------------------------------- placement
class _Placer:
    """Keeps the discs already taken; all coordinates in RIGHT-frame pixels."""

    def __init__(self, anat: _Anatomy) -> None:
        self.anat = anat
        self.discs: list[tuple[float, float, float]] = []  # row, col, radius_mm

    def free(
        self,
        r: float,
        c: float,
        radius_mm: float,
        gap_mm: float,
        extra: Sequence[tuple[float, float, float]] = (),
    ) -> bool:
        s = self.anat.spacing
        for dr, dc, rad in (*self.discs, *extra):
            if math.hypot(r - dr, c - dc) * s < radius_mm + rad + gap_mm:
                return False
        return True

    def fits(
        self, r: float, c: float, radius_mm: float, margin_mm: float = _EDGE_MARGIN_MM
    ) -> bool:
        return self.anat.allowed(r, c) >= radius_mm + margin_mm


def _cluster_sampler(
    rng: np.random.Generator,
    spec: ClusterSpec,
    anat: _Anatomy,
    center: tuple[float, float],
    n_bound_mm: float,
) -> tuple[Callable[[], tuple[float, float, float]], float]:
    """Returns a sampler of member (row, col, duct angle) and the region radius (mm)."""
    s = anat.spacing
    cr, cc = center
    duct = anat.to_nipple(cr, cc)
    n = spec.n
    dist = spec.distribution
    if dist is Distribution.GROUPED:
        radius = max(rng.uniform(4.0, 8.0), math.sqrt(n / 0.3) * (n_bound_mm + 0.5))

        def grouped() -> tuple[float, float, float]:
            rho, phi = radius * math.sqrt(rng.random()), rng.uniform(0, 2 * np.pi)
            a = duct + rng.uniform(-0.5, 0.5)
            return cr + rho * math.sin(phi) / s, cc + rho * math.cos(phi) / s, a

        return grouped, radius
    if dist is Distribution.LINEAR:
        length = max(rng.uniform(10.0, 20.0), n * (2 * n_bound_mm + 1.0) * 1.3)
        a0 = duct + rng.uniform(-0.35, 0.35)
        bend = rng.uniform(-0.15, 0.15)

        def linear() -> tuple[float, float, float]:
            t = rng.uniform(-0.5, 0.5)
            a = a0 + bend * t
            off = rng.normal(0, 0.25)
            along = t * length
            return (
                cr + (along * math.sin(a) + off * math.cos(a) + bend * along**2 / length) / s,
                cc + (along * math.cos(a) - off * math.sin(a)) / s,
                a + rng.uniform(-0.3, 0.3),
            )

        return linear, length / 2 + 1.0
    if dist is Distribution.SEGMENTAL:
        length = max(rng.uniform(25.0, 40.0), math.sqrt(n) * (2 * n_bound_mm + 1.0) * 2)
        half = rng.uniform(np.radians(12), np.radians(22))
        axis = duct + np.pi  # from the apex (nipple side) back into the breast
        apex = (cr - length / 2 * math.sin(axis) / s, cc - length / 2 * math.cos(axis) / s)
        n_rays = int(rng.integers(3, 6))  # ducts fanning out over the whole wedge
        rays = axis + np.linspace(-half, half, n_rays) + rng.uniform(-0.05, 0.05, n_rays)

        def segmental() -> tuple[float, float, float]:
            a = float(rays[rng.integers(len(rays))])
            d = length * rng.uniform(0.1, 1.0)
            off = rng.normal(0, 0.3)
            return (
                apex[0] + (d * math.sin(a) + off * math.cos(a)) / s,
                apex[1] + (d * math.cos(a) - off * math.sin(a)) / s,
                a + rng.uniform(-0.3, 0.3),
            )

        return segmental, length / 2 + 1.0
    if dist is Distribution.REGIONAL:
        radius = max(rng.uniform(15.0, 20.0), math.sqrt(n / 0.2) * (n_bound_mm + 1.5))

        def regional() -> tuple[float, float, float]:
            rho, phi = radius * math.sqrt(rng.random()), rng.uniform(0, 2 * np.pi)
            return (
                cr + rho * math.sin(phi) / s,
                cc + rho * math.cos(phi) / s,
                rng.uniform(-np.pi, np.pi),
            )

        return regional, radius
    raise ValueError(f"unsupported distribution {dist!r}")  # DIFFUSE handled by the caller


def _place_cluster(
    rng: np.random.Generator,
    k: int,
    spec: ClusterSpec,
    anat: _Anatomy,
    placer: _Placer,
    center: tuple[float, float] | None,
) -> list[_Piece]:
    shapes = [member_shape(rng, spec.morphology) for _ in range(spec.n)]
    bound = max(sh.bound_mm for sh in shapes)
    gap = max(0.6, 3 * anat.spacing)
    for _attempt in range(60 if center is None else 8):
        if spec.distribution is Distribution.DIFFUSE:

            def sampler() -> tuple[float, float, float]:
                r, c = _random_inside(rng, anat, _EDGE_MARGIN_MM + bound)
                return r, c, rng.uniform(-np.pi, np.pi)

            region, cen = None, None
            member_gap = max(gap, 4.0)
        else:
            cen = center if center is not None else _random_inside(rng, anat, 6.0)
            sampler, region = _cluster_sampler(rng, spec, anat, cen, bound)
            if center is None and not placer.free(*cen, region, 5.0):
                continue
            member_gap = gap if spec.distribution is not Distribution.REGIONAL else 1.5
        taken: list[tuple[float, float, float]] = []
        pieces: list[_Piece] = []
        for sh in shapes:
            for _try in range(300):
                r, c, a = sampler()
                if (
                    placer.fits(r, c, sh.bound_mm)
                    and placer.free(r, c, sh.bound_mm, 3.0)
                    and placer.free(r, c, sh.bound_mm, member_gap, taken)
                ):
                    break
            else:
                break
            taken.append((r, c, sh.bound_mm))
            pieces.append(_Piece(sh, (r, c), a, cluster=k))
        if len(pieces) == spec.n:
            placer.discs.extend(taken)
            if region is not None and cen is not None:
                placer.discs.append((cen[0], cen[1], region))
            return pieces
    raise ValueError(
        f"could not place a {spec.distribution.value} cluster of {spec.n} "
        f"{spec.morphology.value} calcifications"
        + (f" at {center}" if center is not None else "")
        + "; use a larger image shape, fewer inserts or another center_rc"
    )


def _place_macro(
    rng: np.random.Generator, k: int, pattern: Morphology, anat: _Anatomy, placer: _Placer
) -> tuple[list[_Piece], list[tuple[np.ndarray, float, float]], tuple[float, float]]:
    skin = pattern is Morphology.SKIN
    for _attempt in range(200):
        if skin:
            cen = _random_near_skin(rng, anat, 2.0, 4.0, 1.5)
        else:
            cen = _random_inside(rng, anat, 6.0)
        layout, vessels = macro_layout(
            rng, pattern, anat.spacing, cen, anat.to_nipple(*cen), anat.skin_tangent(*cen)
        )
        ok = all(
            placer.fits(r, c, sh.bound_mm, 0.8 if skin else _EDGE_MARGIN_MM)
            and placer.free(r, c, sh.bound_mm, 3.0)
            and (not skin or anat.skin_line(r, c) <= sh.bound_mm + 4.5)
            for r, c, _a, sh in layout
        )
        if ok:
            placer.discs.extend((r, c, sh.bound_mm) for r, c, _a, sh in layout)
            return [_Piece(sh, (r, c), a, macro=k) for r, c, a, sh in layout], vessels, cen
    raise ValueError(
        f"could not place a {pattern.value} macro pattern; use a larger image shape or "
        "fewer inserts"
    )


def _place_single(rng: np.random.Generator, anat: _Anatomy, placer: _Placer) -> _Piece:
    if rng.random() < 0.7:
        sh = disc(rng, rng.uniform(0.15, 0.5), "punctate", micro_amp(rng))
    else:
        sh = disc(rng, rng.uniform(0.5, 1.0), "round", micro_amp(rng))
    for gap in (12.0, 8.0, 5.0):  # isolated: no CAD cluster (>= 3 within 1 cm) with others
        for _try in range(400):
            r, c = _random_inside(rng, anat, _EDGE_MARGIN_MM + sh.bound_mm)
            if placer.free(r, c, sh.bound_mm, gap):
                placer.discs.append((r, c, sh.bound_mm))
                return _Piece(sh, (r, c), 0.0)
    raise ValueError("no room for an isolated calcification; use a larger image shape")


# ---------------------------------------------------------------------------- rendering
def _render_piece(
    img: np.ndarray,
    piece: _Piece,
    spacing: float,
    ss: int,
    psf_px: float,
    peak: float | None = None,
) -> tuple[tuple[float, float], float, float, float]:
    """Add one piece to ``img``; returns centroid (row, col), diameter, length, contrast.

    The added signal is ``amplitude * min(1, d / 0.5 mm)`` times the blurred profile, or,
    with ``peak``, the blurred profile scaled so that its maximum is ``peak``.
    """
    ar, ac = piece.anchor_rc
    reach = piece.shape.bound_mm / spacing + 3 * psf_px + 2
    r0, c0 = math.floor(ar - reach), math.floor(ac - reach)
    h, w = math.ceil(ar + reach) + 1 - r0, math.ceil(ac + reach) + 1 - c0
    sub = spacing / ss
    rows_sub = r0 - 0.5 + (np.arange(h * ss) + 0.5) / ss
    cols_sub = c0 - 0.5 + (np.arange(w * ss) + 0.5) / ss
    dy = ((rows_sub - ar) * spacing)[:, None]
    dx = ((cols_sub - ac) * spacing)[None, :]
    ca, sa = math.cos(piece.angle), math.sin(piece.angle)
    prof = piece.shape.profile(dx * ca + dy * sa, -dx * sa + dy * ca)
    mask = prof > 0
    idx = np.argwhere(mask)
    if len(idx) == 0:
        raise RuntimeError("empty calcification piece")  # programming error
    area_mm2 = len(idx) * sub * sub
    diameter = 2 * math.sqrt(area_mm2 / math.pi)
    hull = cv2.convexHull(idx[:, ::-1].astype(np.int32)).reshape(-1, 2).astype(float)
    feret = np.sqrt(((hull[:, None, :] - hull[None, :, :]) ** 2).sum(-1)).max()
    length = (feret + 1.0) * sub
    cen_r = float(rows_sub[idx[:, 0]].mean())
    cen_c = float(cols_sub[idx[:, 1]].mean())

    amp = piece.shape.amp * min(1.0, diameter / 0.5)
    down = prof.reshape(h, ss, w, ss).mean(axis=(1, 3)).astype(np.float32)
    add = amp * cv2.GaussianBlur(down, (0, 0), psf_px, borderType=cv2.BORDER_CONSTANT)
    if peak is not None:
        add *= np.float32(peak / max(float(add.max()), 1e-9))
    rr0, cc0 = max(r0, 0), max(c0, 0)
    rr1, cc1 = min(r0 + h, img.shape[0]), min(c0 + w, img.shape[1])
    img[rr0:rr1, cc0:cc1] += add[rr0 - r0 : rr1 - r0, cc0 - c0 : cc1 - c0]
    return (cen_r, cen_c), diameter, float(length), float(add.max())


def _add_noise(
    rng: np.random.Generator, img: np.ndarray, breast: np.ndarray, spacing: float, noise: float
) -> np.ndarray:
    """Quantum noise (mildly signal dependent) plus correlated grain."""
    if noise <= 0:
        return img
    std = 0.01 * noise * _FULL_FIELD_SPACING_MM / spacing
    quantum = rng.standard_normal(img.shape, dtype=np.float32)
    grain = cv2.GaussianBlur(
        rng.standard_normal(img.shape, dtype=np.float32), (0, 0), max(0.1 / spacing, 0.7)
    )
    grain *= np.float32(0.4 / max(float(grain[::7, ::7].std()), 1e-6))
    quantum += grain
    scale = np.clip(img, 0, 1) * np.float32(0.6 * std) + np.float32(0.7 * std)
    scale[~breast] *= np.float32(0.5)
    quantum *= scale
    return img + quantum


# --------------------------------------------------------------------------------- main
_DEFAULT_CLUSTERS = (
    ClusterSpec(Morphology.FINE_PLEOMORPHIC, Distribution.GROUPED, 8),
    ClusterSpec(Morphology.PUNCTATE, Distribution.GROUPED, 6),
    ClusterSpec(Morphology.FINE_LINEAR_BRANCHING, Distribution.LINEAR, 7),
)
_DEFAULT_MACROS = (Morphology.COARSE_POPCORN, Morphology.VASCULAR, Morphology.RIM_EGGSHELL)


def _true_cluster(
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


def make_phantom(
    *,
    seed: int = 0,
    spacing_mm: float = 0.07,
    shape: tuple[int, int] | None = None,
    laterality: Laterality = Laterality.LEFT,
    view: View = View.CC,
    clusters: Sequence[ClusterSpec] | None = None,
    macros: Sequence[Morphology] | None = None,
    n_singles: int = 5,
    noise: float = 1.0,
) -> Phantom:
    """Generate a synthetic mammogram with known calcifications.

    Parameters
    ----------
    seed
        Seed of :func:`numpy.random.default_rng`; the same arguments give the same image.
    spacing_mm
        Isotropic pixel spacing in mm (0.05-0.2 are typical).
    shape
        ``(rows, cols)``; ``None`` gives :func:`full_field_shape` of ``spacing_mm``.
    laterality
        RIGHT: chest wall at the left edge; LEFT: mirrored (chest wall at the right).
    view
        MLO, ML and LM views get a pectoral muscle in the upper chest-wall corner.
    clusters
        Clusters to insert; ``None`` gives fine pleomorphic (grouped, 8), punctate
        (grouped, 6) and fine-linear branching (linear, 7).
    macros
        Benign macro patterns from :data:`MACRO_PATTERNS`; ``None`` gives popcorn,
        vascular and rim.
    n_singles
        Isolated punctate (0.15-0.5 mm) or round (0.5-1 mm) calcifications, at least
        5 mm (12 mm where room allows) from every other insert.
    noise
        Scale of the quantum noise; 1 gives a per-pixel std of 0.01 at 0.07 mm.

    Returns
    -------
    Phantom
        Pixels float32 ``(rows, cols)`` in ``[0, 1]`` and the truth (pixel coordinates
        of the returned, possibly mirrored, image).

    Raises
    ------
    ValueError
        For an invalid argument, an unsupported morphology or pattern, or inserts that
        do not fit in the breast.
    """
    if spacing_mm <= 0:
        raise ValueError(f"spacing_mm must be positive, got {spacing_mm}")
    rows, cols = full_field_shape(spacing_mm) if shape is None else shape
    if rows < 64 or cols < 64:
        raise ValueError(f"shape must be at least 64 x 64 pixels, got {(rows, cols)}")
    if n_singles < 0 or noise < 0:
        raise ValueError("n_singles and noise must be non-negative")
    specs = tuple(_DEFAULT_CLUSTERS if clusters is None else clusters)
    patterns = tuple(_DEFAULT_MACROS if macros is None else macros)
    for spec in specs:
        if spec.morphology not in CLUSTER_MORPHOLOGIES:
            member_shape(np.random.default_rng(0), spec.morphology)  # raises
        if spec.n < 1:
            raise ValueError(f"a cluster needs n >= 1 calcifications, got {spec.n}")
    for pattern in patterns:
        if pattern not in MACRO_PATTERNS:
            raise ValueError(
                f"macro pattern {pattern!r} is not supported; use one of "
                f"{', '.join(m.name for m in MACRO_PATTERNS)}"
            )
    laterality, view = Laterality(laterality), View(view)
    mirror = laterality is Laterality.LEFT

    def flip(rc: tuple[float, float]) -> tuple[float, float]:
        return (rc[0], cols - 1 - rc[1]) if mirror else (rc[0], rc[1])

    rng = np.random.default_rng(seed)
    anat, level, pect_soft = _geometry(rng, rows, cols, spacing_mm, view.is_oblique_or_lateral)
    placer = _Placer(anat)

    cluster_pieces: dict[int, list[_Piece]] = {}
    order = sorted(range(len(specs)), key=lambda i: specs[i].distribution is Distribution.DIFFUSE)
    for k in (i for i in order if specs[i].distribution is not Distribution.DIFFUSE):
        center = specs[k].center_rc
        if center is not None:
            center = flip(center)
            if (
                not anat.breast[int(round(center[0])) % rows, int(round(center[1])) % cols]
                or anat.allowed(*center) < _EDGE_MARGIN_MM
            ):
                raise ValueError(
                    f"cluster center_rc {specs[k].center_rc} is not well inside "
                    "the breast (away from the skin and the pectoral muscle)"
                )
        cluster_pieces[k] = _place_cluster(rng, k, specs[k], anat, placer, center)
    macro_pieces: list[list[_Piece]] = []
    macro_centers: list[tuple[float, float]] = []
    vessels: list[tuple[np.ndarray, float, float]] = []
    for k, pattern in enumerate(patterns):
        pcs, ves, cen = _place_macro(rng, k, pattern, anat, placer)
        macro_pieces.append(pcs)
        macro_centers.append(cen)
        vessels.extend(ves)
    for k in (i for i in order if specs[i].distribution is Distribution.DIFFUSE):
        cluster_pieces[k] = _place_cluster(rng, k, specs[k], anat, placer, None)
    singles = [_place_single(rng, anat, placer) for _ in range(n_singles)]

    img = _render_anatomy(rng, anat, level, pect_soft, vessels)
    ss = max(4, math.ceil(spacing_mm / _MAX_SUBPIXEL_MM))
    psf_px = _PSF_SIGMA_MM / spacing_mm
    calcs: list[TrueCalcification] = []

    def render(piece: _Piece, cluster_id: int | None) -> int:
        cen, d, length, contrast = _render_piece(img, piece, spacing_mm, ss, psf_px)
        calcs.append(
            TrueCalcification(
                len(calcs) + 1, flip(cen), d, length, piece.shape.label, cluster_id, contrast
            )
        )
        return len(calcs)

    true_clusters = []
    for k, spec in enumerate(specs):
        ids = tuple(render(p, k + 1) for p in cluster_pieces[k])
        true_clusters.append(
            _true_cluster(k + 1, calcs, ids, spec.morphology, spec.distribution, spacing_mm)
        )
    true_macros = []
    for k, (pattern, pcs) in enumerate(zip(patterns, macro_pieces, strict=True)):
        ids = tuple(render(p, None) for p in pcs)
        cen = flip(macro_centers[k])
        true_macros.append(TrueMacro(k + 1, (float(cen[0]), float(cen[1])), pattern, ids))
    for piece in singles:
        render(piece, None)

    img = np.clip(_add_noise(rng, img, anat.breast, spacing_mm, noise), 0.0, 1.0)
    breast, pectoral = anat.breast, anat.pectoral
    if mirror:
        img, breast = img[:, ::-1], breast[:, ::-1]
        pectoral = None if pectoral is None else pectoral[:, ::-1]
    mammogram = Mammogram(
        pixels=np.ascontiguousarray(img, dtype=np.float32),
        spacing_mm=(spacing_mm, spacing_mm),
        laterality=laterality,
        view=view,
        source=Source(path=None, modality="MG"),
    )
    truth = PhantomTruth(
        calcifications=tuple(calcs),
        clusters=tuple(true_clusters),
        macros=tuple(true_macros),
        breast_mask=np.ascontiguousarray(breast),
        pectoral_mask=None if pectoral is None else np.ascontiguousarray(pectoral),
    )
    return Phantom(mammogram, truth)


_INSERT_MORPHOLOGIES = (
    Morphology.PUNCTATE,
    Morphology.ROUND,
    Morphology.AMORPHOUS,
    Morphology.FINE_PLEOMORPHIC,
    Morphology.COARSE_HETEROGENEOUS,
    Morphology.FINE_LINEAR,
    Morphology.FINE_LINEAR_BRANCHING,
)


def insert_clusters(
    mammogram: Mammogram,
    region: np.ndarray,
    *,
    seed: int,
    n_clusters: int = 2,
    members: tuple[int, int] = (3, 12),
    radius_mm: tuple[float, float] = (2.0, 7.0),
    contrast: tuple[float, float] = (0.012, 0.08),
    psf_mm: tuple[float, float] = (0.05, 0.12),
    avoid_rc: Sequence[tuple[float, float, float]] = (),
    levels: int | None = None,
) -> Phantom:
    """Insert synthetic microcalcification clusters into a real mammogram.

    The classic way to get many known calcifications on real tissue and real noise
    (film grain, detector noise) for training a detector: each member, drawn by the
    same shape library as :func:`make_phantom`, is rendered analytically, area-averaged,
    blurred by a Gaussian PSF of sigma drawn from ``psf_mm`` and added to the pixels
    with a peak pixel contrast near a cluster level drawn log-uniformly from
    ``contrast`` (image units, pixels in ``[0, 1]``; each member 0.6-1.4x that level).

    Parameters
    ----------
    mammogram
        The real image; it is not modified.
    region
        Bool mask, the image's shape: where clusters may lie (breast tissue without the
        pectoral muscle). Every member lies inside it.
    seed
        Seed of :func:`numpy.random.default_rng`; the same arguments give the same image.
    n_clusters, members, radius_mm
        Number of clusters; members per cluster and radius of the disc they are drawn in
        (both ranges inclusive, drawn uniformly per cluster).
    avoid_rc
        ``(row, col, radius_px)`` discs (known findings) that inserted clusters keep
        clear of.
    levels
        Quantise the result to this many grey levels (255 for 8-bit film scans), as the
        original pixels are.

    Returns
    -------
    Phantom
        The image with the inserts and their truth (clusters are GROUPED; ``breast_mask``
        is ``region``; no pectoral mask).
    """
    rng = np.random.default_rng(seed)
    img = mammogram.pixels
    region = np.asarray(region, dtype=bool)
    if region.shape != img.shape:
        raise ValueError(f"region shape {region.shape} differs from the image's {img.shape}")
    spacing = mammogram.pixel_mm
    # distance to the region's edge, the image border counting as an edge
    padded = np.pad(region, 1).view(np.uint8)
    inside_mm = cv2.distanceTransform(padded, cv2.DIST_L2, 5)[1:-1, 1:-1] * spacing
    ss = max(4, math.ceil(spacing / _MAX_SUBPIXEL_MM))
    rows, cols = np.indices(img.shape, sparse=True)
    blocked = [(float(r), float(c), float(rad)) for r, c, rad in avoid_rc]
    layer = np.zeros(img.shape, dtype=np.float32)
    calcs: list[TrueCalcification] = []
    clusters: list[TrueCluster] = []
    for k in range(n_clusters):
        n = int(rng.integers(members[0], members[1] + 1))
        radius = float(rng.uniform(*radius_mm))
        morph = _INSERT_MORPHOLOGIES[int(rng.integers(len(_INSERT_MORPHOLOGIES)))]
        level = float(np.exp(rng.uniform(*np.log(contrast))))
        psf_px = float(rng.uniform(*psf_mm)) / spacing
        reach_px = (radius + 2.0) / spacing  # members and their blur stay within this
        ok_map = inside_mm > radius + 2.0
        for r, c, rad in blocked:
            ok_map &= (rows - r) ** 2 + (cols - c) ** 2 > (rad + reach_px) ** 2
        ok = np.flatnonzero(ok_map.ravel())
        if ok.size == 0:
            raise ValueError("no room in the region for an inserted cluster")
        cr, cc = np.unravel_index(ok[int(rng.integers(ok.size))], img.shape)
        taken: list[tuple[float, float, float]] = []
        pieces: list[_Piece] = []
        for _ in range(n):
            shape = member_shape(rng, morph)
            for _try in range(200):
                rho, phi = radius * math.sqrt(rng.random()), rng.uniform(0, 2 * np.pi)
                r, c = cr + rho * math.sin(phi) / spacing, cc + rho * math.cos(phi) / spacing
                gap = max(0.6, 3 * spacing) + shape.bound_mm
                if all(math.hypot(r - a, c - b) * spacing > gap + bd for a, b, bd in taken):
                    break
            else:
                continue
            taken.append((r, c, shape.bound_mm))
            pieces.append(_Piece(shape, (r, c), rng.uniform(-np.pi, np.pi)))
        ids = []
        for piece in pieces:
            target = level * float(rng.uniform(0.6, 1.4))
            cen, d, length, _ = _render_piece(layer, piece, spacing, ss, psf_px, peak=target)
            calcs.append(
                TrueCalcification(len(calcs) + 1, cen, d, length, piece.shape.label, k + 1, target)
            )
            ids.append(len(calcs))
        clusters.append(
            _true_cluster(k + 1, calcs, tuple(ids), morph, Distribution.GROUPED, spacing)
        )
        blocked.append((float(cr), float(cc), reach_px + 5.0 / spacing))
    out = np.clip(img + layer, 0.0, 1.0)
    if levels:
        out = np.round(out * levels) / levels
    inserted = Mammogram(
        pixels=np.ascontiguousarray(out, dtype=np.float32),
        spacing_mm=mammogram.spacing_mm,
        laterality=mammogram.laterality,
        view=mammogram.view,
        source=mammogram.source,
    )
    truth = PhantomTruth(tuple(calcs), tuple(clusters), (), region.copy(), None)
    return Phantom(inserted, truth)


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
