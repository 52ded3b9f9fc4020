"""The phantom's breast: outline, pectoral muscle, tissue texture, vessels, ligaments and noise.

Everything is drawn in the RIGHT frame (chest wall at column 0, nipple pointing right); see
:mod:`calcscope.phantom.mammogram` for the conventions. Distances are kept on a low-resolution
grid of ``GRID_MM`` cells; :class:`Anatomy` answers where a calcification may go.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from calcscope.phantom.shapes import curve

__all__ = [
    "FULL_FIELD_PX",
    "FULL_FIELD_SPACING_MM",
    "PSF_SIGMA_MM",
    "MAX_SUBPIXEL_MM",
    "GRID_MM",
    "EDGE_MARGIN_MM",
    "Anatomy",
    "full_field_shape",
    "breast_geometry",
    "render_anatomy",
    "random_inside",
    "random_near_skin",
    "add_noise",
]

FULL_FIELD_PX = (4096, 3328)  # rows, cols at 0.07 mm
FULL_FIELD_SPACING_MM = 0.07
PSF_SIGMA_MM = 0.05
MAX_SUBPIXEL_MM = 0.02
GRID_MM = 0.25  # cell of the low-resolution anatomy grids
EDGE_MARGIN_MM = 3.0  # inserts keep this far from the skin line and the pectoral muscle


def full_field_shape(spacing_mm: float) -> tuple[int, int]:
    """Shape ``(rows, cols)`` of a full-field detector (287 x 233 mm) at this spacing.

    Parameters
    ----------
    spacing_mm
        Pixel spacing in mm; 0.07 gives ``(4096, 3328)``.
    """
    if spacing_mm <= 0:
        raise ValueError(f"spacing_mm must be positive, got {spacing_mm}")
    scale = FULL_FIELD_SPACING_MM / spacing_mm
    return (round(FULL_FIELD_PX[0] * scale), round(FULL_FIELD_PX[1] * scale))


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
    unit: np.ndarray = (field / field.std()).astype(np.float32)
    return unit


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
    dist_mm: np.ndarray = np.clip(d - 0.5, 0, None) * cell_mm
    return dist_mm


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
class Anatomy:
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
        return float(self.allowed_mm[self.cell(r, c)]) - GRID_MM

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


def breast_geometry(
    rng: np.random.Generator, rows: int, cols: int, spacing: float, oblique: bool
) -> tuple[Anatomy, np.ndarray, np.ndarray | None]:
    """Breast outline, pectoral muscle and distance maps; returns also the low-res
    level function of the breast and the soft pectoral map (full-res) or None."""
    cell = max(GRID_MM, spacing)
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
    anat = Anatomy(
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


def render_anatomy(
    rng: np.random.Generator,
    anat: Anatomy,
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
        r, c = random_inside(rng, anat, 5.0)
        start = np.array([r, min(c, rng.uniform(0.0, 0.3) * anat.nipple_rc[1])])
        heading = anat.to_nipple(*start) + rng.uniform(-0.6, 0.6)
        path = curve(rng, start, heading, rng.uniform(0.5, 1.1) * anat.nipple_rc[1], 1.0 / s, 0.04)
        _draw_tube(lines, path, rng.uniform(0.5, 1.0) / s, rng.uniform(0.03, 0.06))
    for path, radius_px, amp in extra_vessels:
        _draw_tube(lines, path, radius_px, amp)
    for _ in range(int(np.clip(area_cm2 / 15, 4, 25))):
        for _try in range(50):
            r, c = random_inside(rng, anat, 4.0)
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
    sigma = max(PSF_SIGMA_MM / s, 0.5)
    blurred: np.ndarray = cv2.GaussianBlur(img.astype(np.float32), (0, 0), sigma)
    return blurred


def random_inside(rng: np.random.Generator, anat: Anatomy, min_mm: float) -> tuple[float, float]:
    """Uniform random point at least ``min_mm`` from the skin, pectoral and border."""
    for _ in range(5000):
        r, c = rng.uniform(0, anat.rows - 1), rng.uniform(0, anat.cols - 1)
        if anat.allowed(r, c) >= min_mm:
            return float(r), float(c)
    raise ValueError(
        f"no room {min_mm:.1f} mm inside the breast; use a larger image shape or a finer spacing_mm"
    )


def random_near_skin(
    rng: np.random.Generator, anat: Anatomy, lo_mm: float, hi_mm: float, min_mm: float
) -> tuple[float, float]:
    """Uniform random point between ``lo_mm`` and ``hi_mm`` from the skin line (the image
    border is not skin) and at least ``min_mm`` from anything a calcification avoids."""
    ok = (
        (anat.skin_line_mm >= lo_mm)
        & (anat.skin_line_mm <= hi_mm)
        & (anat.allowed_mm - GRID_MM >= min_mm)
    )
    cells = np.flatnonzero(ok)
    if cells.size == 0:
        raise ValueError("no skin line inside the image; use a larger image shape")
    i, j = np.unravel_index(int(rng.choice(cells)), ok.shape)
    gr, gc = anat.grid_scale
    r = (i + rng.uniform(0.0, 1.0)) * gr - 0.5  # inverse of Anatomy.cell
    c = (j + rng.uniform(0.0, 1.0)) * gc - 0.5
    return float(np.clip(r, 0, anat.rows - 1)), float(np.clip(c, 0, anat.cols - 1))


def add_noise(
    rng: np.random.Generator, img: np.ndarray, breast: np.ndarray, spacing: float, noise: float
) -> np.ndarray:
    """Quantum noise (mildly signal dependent) plus correlated grain."""
    if noise <= 0:
        return img
    std = 0.01 * noise * FULL_FIELD_SPACING_MM / spacing
    quantum = rng.standard_normal(img.shape, dtype=np.float32)
    grain: np.ndarray = cv2.GaussianBlur(
        rng.standard_normal(img.shape, dtype=np.float32), (0, 0), max(0.1 / spacing, 0.7)
    )
    grain *= np.float32(0.4 / max(float(grain[::7, ::7].std()), 1e-6))
    quantum += grain
    scale = np.clip(img, 0, 1) * np.float32(0.6 * std) + np.float32(0.7 * std)
    scale[~breast] *= np.float32(0.5)
    quantum *= scale
    return img + quantum
