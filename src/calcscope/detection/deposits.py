"""Sharp-edged coarse deposits (step 5 of :func:`calcscope.detection.detect.detect`).

A calcification is far denser than the tissue around it, so its edge is as sharp as the
imaging blur allows, while a bright patch of fibroglandular tissue of the same size and
contrast fades out over millimetres. Deposits found by their edge
(:func:`sharp_deposits`) that no detection covers are added as calcifications
(:func:`add_coarse_deposits`): the classifier, trained mostly on specks, can score a large
faint deposit as tissue.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import cv2
import numpy as np

from calcscope.config import DetectConfig
from calcscope.detection.bands import _enlarge, enlarge_rows, enlarges_by_rows
from calcscope.detection.candidates import (
    BAND_SIGMAS_MM,
    TopHat,
    _on_quarter_mm_small,
    blur,
    component_stats,
    sparse_components,
)
from calcscope.detection.features import Candidates
from calcscope.detection.labels import SparseLabels
from calcscope.detection.outline import outline_calcifications
from calcscope.detection.parallel import map_strips
from calcscope.model import Calcification, Mammogram

__all__ = ["SharpDeposit", "add_coarse_deposits", "sharp_deposits"]


@dataclass(frozen=True)
class SharpDeposit:
    """A sharp-edged coarse deposit.

    Attributes
    ----------
    box : tuple of slice
        Its box in the image: row and column slices.
    mask : np.ndarray
        Its pixels in that box (bool).
    """

    box: tuple[slice, slice]
    mask: np.ndarray


@dataclass(frozen=True)
class _LocalPeak:
    """The local peak map (:func:`_local_peak`): ``small`` on a grid reduced by ``factor``
    (1: the map itself), whose enlargement to ``shape`` is made strip by strip."""

    small: np.ndarray
    factor: int
    shape: tuple[int, int]

    def rows(self, r0: int, r1: int) -> np.ndarray:
        """Rows ``r0:r1`` of the map at the image's size (those of the whole
        enlargement, :func:`~calcscope.detection.bands.enlarge_rows`)."""
        if self.factor == 1:
            return self.small[r0:r1]
        out = enlarge_rows(self.small, self.shape, r0, r1)
        assert out is not None  # checked by _local_peak
        return out


def _local_peak(residual: np.ndarray, pixel_mm: float, peak_mm: float) -> _LocalPeak:
    """Highest ``residual`` within ``peak_mm`` (mm) of each pixel, at about 0.25 mm/pixel
    (:func:`~calcscope.detection.candidates.on_quarter_mm_grid`), brought back to the
    image's grid in strips of rows when asked for them (:class:`_LocalPeak`)."""

    def dilate(small: np.ndarray, small_mm: float) -> np.ndarray:
        k = 2 * max(1, int(round(peak_mm / small_mm))) + 1
        return cv2.dilate(small, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))

    small, factor = _on_quarter_mm_small(residual, pixel_mm, dilate)
    shape = (int(residual.shape[0]), int(residual.shape[1]))
    if factor > 1 and not enlarges_by_rows(small.shape, shape):
        return _LocalPeak(_enlarge(small, shape), 1, shape)  # the whole map, made once
    return _LocalPeak(small, factor, shape)


def _fine_near(
    img: np.ndarray, r: np.ndarray, c: np.ndarray, pixel_mm: float
) -> tuple[np.ndarray, tuple[int, int]]:
    """``img`` blurred by the finest band's sigma in the box around the edge pixels
    ``(r, c)`` (with the filter's reach as margin: the gradient is read on the edge pixels
    and their neighbours only), and the box's ``(row, col)`` origin."""
    sigma_px = BAND_SIGMAS_MM[0] / pixel_mm
    reach = 2 + int(np.ceil(4 * sigma_px)) + 1  # OpenCV's float kernel spans 4 sigmas
    r0, r1 = max(0, r.min() - reach), min(img.shape[0], r.max() + 1 + reach)
    c0, c1 = max(0, c.min() - reach), min(img.shape[1], c.max() + 1 + reach)
    return blur(img[r0:r1, c0:c1], sigma_px), (int(r0), int(c0))


def _upper_quartile_gradient(
    fine: tuple[np.ndarray, tuple[int, int]],
    r: np.ndarray,
    c: np.ndarray,
    lab_e: np.ndarray,
    big: np.ndarray,
    pixel_mm: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Upper-quartile gradient (intensity per mm) of ``fine`` (a box of the smoothed image
    and its origin, :func:`_fine_near`) on the edge pixels ``(r, c)`` (raster order) of each
    object ``big`` (their labels ``lab_e``), and whether the object has edge pixels."""
    box, (r0, c0) = fine
    rb, cb = r - r0, c - c0

    def at(dr: int, dc: int) -> np.ndarray:  # the smoothed image beside the outline
        return box[rb + dr, cb + dc].astype(np.float64)

    gx = (at(-1, 1) + 2 * at(0, 1) + at(1, 1)) - (at(-1, -1) + 2 * at(0, -1) + at(1, -1))
    gy = (at(1, -1) + 2 * at(1, 0) + at(1, 1)) - (at(-1, -1) + 2 * at(-1, 0) + at(-1, 1))
    grad = np.hypot(gx, gy) / (8.0 * pixel_mm)  # intensity per mm
    # upper quartile of the gradient per object (sort by object, then gradient)
    order = np.lexsort((grad, lab_e))
    lab_s, grad_s = lab_e[order], grad[order]
    starts = np.searchsorted(lab_s, big, side="left")
    ends = np.searchsorted(lab_s, big, side="right")
    valid = ends > starts
    q = np.where(valid, starts + (0.75 * (ends - starts - 1)).astype(np.int64), 0)
    g75 = np.where(valid, grad_s[np.minimum(q, grad_s.size - 1)], 0.0)
    return g75, valid


def _deposit_shapes(
    objects: np.ndarray,
    lab: np.ndarray,
    stats: np.ndarray,
    residual: np.ndarray,
    peak_at: tuple[np.ndarray, np.ndarray],
) -> tuple[SharpDeposit, ...]:
    """Each deposit is the largest connected part of its accepted object (``objects``,
    labels in ``lab``) above half the local peak (its shape; ``peak_at``: the objects'
    pixels, flat indices ascending, and the local peak there); few objects pass, so this
    works in their boxes."""
    out = []
    pixels, peak_values = peak_at
    cols = lab.shape[1]
    for obj_id in objects:
        x, y, w, h = (int(v) for v in stats[obj_id, :4])
        box = (slice(y, y + h), slice(x, x + w))
        # the local peak in the box, at the object's pixels (the only ones read)
        peak = np.zeros((h, w), dtype=peak_values.dtype)
        lo, hi = np.searchsorted(pixels, [y * cols, (y + h) * cols])
        r, c = np.divmod(pixels[lo:hi], cols)
        inside = (c >= x) & (c < x + w)
        peak[r[inside] - y, c[inside] - x] = peak_values[lo:hi][inside]
        half = (lab[box] == obj_id) & (residual[box] >= 0.5 * peak)
        m, parts, part_stats, _ = cv2.connectedComponentsWithStats(
            half.view(np.uint8), connectivity=8, ltype=cv2.CV_32S
        )
        if m > 1:
            largest = 1 + int(np.argmax(part_stats[1:, cv2.CC_STAT_AREA]))
            out.append(SharpDeposit(box, parts == largest))
    return tuple(out)


def _outline_pixels(obj: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Those of ``pixels`` (flat indices of ``obj`` pixels, ascending) on the outline of
    ``obj`` (a 3 x 3 neighbour outside it), away from the image border."""
    rows, cols = obj.shape
    r, c = np.divmod(pixels, cols)
    inside = (r > 0) & (r < rows - 1) & (c > 0) & (c < cols - 1)
    p = pixels[inside]
    flat = obj.ravel()
    interior = np.ones(p.size, dtype=bool)
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            if dr or dc:
                interior &= flat[p + (dr * cols + dc)]
    return p[~interior]


def _objects(
    residual: np.ndarray, peak: _LocalPeak, mask: np.ndarray, sigma: float, grow_z: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The bool image of the pixels inside ``mask`` whose ``residual`` reaches ``grow_z``
    noise levels (``sigma``) and a quarter of the local ``peak``, their flat indices
    (ascending) and the local peak there (float32): made in strips of rows (no full-image
    temporaries, the peak map enlarged strip by strip) on the thread pool, each strip
    writing its own rows."""
    obj = np.empty(mask.shape, dtype=bool)
    z_scale = np.float32(1.0 / sigma)
    cols = int(mask.shape[1])

    def strip(r0: int, r1: int) -> tuple[np.ndarray, np.ndarray]:
        rows, peak_rows = slice(r0, r1), peak.rows(r0, r1)
        obj[rows] = (
            (residual[rows] * z_scale >= grow_z) & (residual[rows] >= 0.25 * peak_rows) & mask[rows]
        )
        at = np.flatnonzero(obj[rows])
        return at + r0 * cols, peak_rows.ravel()[at]

    parts = map_strips(strip, int(mask.shape[0]), 128)
    return obj, np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def sharp_deposits(
    img: np.ndarray, tophat: TopHat, mask: np.ndarray, pixel_mm: float, cfg: DetectConfig
) -> tuple[SharpDeposit, ...]:
    """Coarse deposits of ``img`` told from tissue by their sharp edge.

    Objects are the top-hat regions (``tophat.residual``) above a quarter of their local
    peak (within ``coarse_peak_mm``) and above ``macro_grow_z``, at least
    ``coarse_min_mm`` across (equivalent diameter). Their *edge width* is the peak height
    divided by the upper-quartile gradient on the outline (mm; about 2.5 blur sigmas for a
    blurred step, the object's size for a smooth bump), the gradient taken on the image
    lightly smoothed (the finest band's blur). An object is a sharp coarse deposit when its
    edge width is at most ``coarse_edge_mm`` and at most ``coarse_edge_ratio`` times its
    equivalent radius; the largest connected part of it above half the local peak is the
    deposit.
    """
    residual = tophat.residual
    peak = _local_peak(residual, pixel_mm, cfg.coarse_peak_mm)
    # the local peak is read at the objects' pixels only
    obj, pixels, peak_at = _objects(residual, peak, mask, tophat.sigma, cfg.macro_grow_z)
    del peak
    n, lab = sparse_components(obj, pixels)
    lab_p = lab.ravel()[pixels]
    area = np.bincount(lab_p, minlength=n)
    min_px = np.pi * (cfg.coarse_min_mm / 2) ** 2 / pixel_mm**2
    big = np.flatnonzero(area >= min_px)
    big = big[big > 0]
    if big.size == 0:
        return ()
    is_big = np.zeros(n, dtype=bool)
    is_big[big] = True
    big_at = is_big[lab_p]
    in_big, peak_big = pixels[big_at], peak_at[big_at]  # the large objects' pixels only
    del pixels, lab_p, peak_at, big_at
    edge = _outline_pixels(obj, in_big)
    del obj
    if edge.size == 0:
        return ()
    r, c = np.divmod(edge, lab.shape[1])
    fine = _fine_near(img, r, c, pixel_mm)
    g75, valid = _upper_quartile_gradient(fine, r, c, lab.ravel()[edge], big, pixel_mm)
    lab_b = lab.ravel()[in_big]
    peak_r = np.full(n, -np.inf)
    np.maximum.at(peak_r, lab_b, residual.ravel()[in_big].astype(np.float64))
    peak_r = peak_r[big]
    width_mm = peak_r / np.maximum(g75, 1e-12)
    radius_mm = np.sqrt(area[big] / np.pi) * pixel_mm
    ok_obj = (
        valid & (width_mm <= cfg.coarse_edge_mm) & (width_mm <= cfg.coarse_edge_ratio * radius_mm)
    )
    stats = component_stats(in_big, lab_b, n, lab.shape) if ok_obj.any() else None
    if stats is None:
        return ()
    return _deposit_shapes(big[ok_obj], lab, stats, residual, (in_big, peak_big))


def _covered(deposit: SharpDeposit, detected: list[tuple[int, int, int, int]]) -> bool:
    """Whether any box of ``detected`` (row0, col0, row1, col1) overlaps a pixel of
    ``deposit``."""
    box, patch = deposit.box, deposit.mask
    for r0, c0, r1, c1 in detected:
        rs = slice(max(r0, box[0].start), min(r1, box[0].stop))
        cs = slice(max(c0, box[1].start), min(c1, box[1].stop))
        if rs.start < rs.stop and cs.start < cs.stop:
            sub = patch[
                rs.start - box[0].start : rs.stop - box[0].start,
                cs.start - box[1].start : cs.stop - box[1].start,
            ]
            if sub.any():
                return True
    return False


def _deposit_candidates(
    new: list[SharpDeposit], mammogram: Mammogram, tophat: TopHat, cfg: DetectConfig
) -> Candidates:
    """Candidate table of the deposits ``new`` (labels 1..n), scoring ``coarse_score``."""
    sr, sc = mammogram.spacing_mm
    m = len(new)
    index = np.arange(1, m + 1)
    bbox = np.array(
        [[d.box[0].start, d.box[1].start, d.box[0].stop, d.box[1].stop] for d in new],
        dtype=np.int64,
    )
    centre = np.array(
        [np.argwhere(d.mask).mean(axis=0) + (d.box[0].start, d.box[1].start) for d in new]
    )
    area_mm2 = np.array([d.mask.sum() for d in new], dtype=np.float64) * sr * sc
    peak_r = np.array([tophat.residual[d.box][d.mask].max() for d in new], dtype=np.float64)
    return Candidates(
        label=index.astype(np.int32),
        center_rc=centre.reshape(m, 2),
        bbox_rc=bbox,
        peak_cnr=peak_r / tophat.sigma,
        band_cnr=np.zeros((m, len(BAND_SIGMAS_MM) - 1)),
        tophat_z=peak_r / tophat.sigma,
        contrast=peak_r,
        area_mm2=area_mm2,
        diameter_mm=2.0 * np.sqrt(area_mm2 / np.pi),
        major_mm=np.zeros(m),
        minor_mm=np.zeros(m),
        mean_intensity=np.zeros(m),
        local_rms=np.zeros(m),
        neighbours=np.zeros(m),
        score=np.full(m, cfg.coarse_score),
        pixel_mm=mammogram.pixel_mm,
    )


def add_coarse_deposits(
    mammogram: Mammogram,
    calcs: tuple[Calcification, ...],
    deposits: tuple[SharpDeposit, ...],
    tophat: TopHat,
    cfg: DetectConfig,
) -> tuple[Calcification, ...]:
    """``calcs`` with the sharp-edged coarse deposits that the classifier missed.

    The candidate classifier learnt mostly from specks; a large, faint, smooth deposit
    (a round calcification of 2-3 mm, the body of a dystrophic one) can score as tissue,
    or break into pieces of its rim. Each of ``deposits`` (:func:`sharp_deposits`) that
    is at least half ``coarse_min_mm`` across and that no calcification at
    ``operating_score`` already covers becomes one calcification scoring
    ``coarse_score``, and the possible calcifications (pieces of its rim) inside it are
    dropped. Deposits are looked for only at pixels up to ``coarse_max_pixel_mm``:
    coarser pixels blur every edge (film at 0.2 mm passed about two sharp objects per
    image, mostly at the mask boundary). Ids are renumbered in descending score order.
    """
    if not deposits:
        return calcs
    sr, sc = mammogram.spacing_mm
    min_px = np.pi * (cfg.coarse_min_mm / 4) ** 2 / (sr * sc)
    detected = [c.bbox_rc for c in calcs if c.score >= cfg.operating_score]
    new = [d for d in deposits if d.mask.sum() >= min_px and not _covered(d, detected)]
    if not new:
        return calcs
    rows, cols = tophat.residual.shape
    # the deposits' label image, held as their pixels
    labels = SparseLabels.painted((int(rows), int(cols)), [(d.box, d.mask) for d in new])
    cands = _deposit_candidates(new, mammogram, tophat, cfg)
    added = outline_calcifications(mammogram, labels, cands, 0.0, tophat.residual, tophat.sigma)

    def covered(c: Calcification) -> bool:
        r = int(np.clip(round(c.center_rc[0]), 0, rows - 1))
        col = int(np.clip(round(c.center_rc[1]), 0, cols - 1))
        return bool(labels[r : r + 1, col : col + 1][0, 0])

    kept = [c for c in calcs if not covered(c)]
    merged = sorted([*kept, *added], key=lambda c: -c.score)
    return tuple(dataclasses.replace(c, id=i) for i, c in enumerate(merged, start=1))
