"""Breast segmentation and pectoral-muscle exclusion.

Everything runs on a copy reduced to about 0.5 mm per pixel, where the breast outline and
the pectoral muscle are large smooth shapes, and is resized back to the source grid. The
cost on a 3328 x 4096 full-field image is a few tens of milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from calcscope.config import PreprocessConfig
from calcscope.model import Mammogram

__all__ = [
    "Preprocessed",
    "preprocess",
    "breast_mask",
    "pectoral_mask",
    "chest_wall_side",
    "nipple_position",
]

_WORK_MM = 0.5  # working resolution of the segmentation


@dataclass(frozen=True)
class Preprocessed:
    """Masks on the source pixel grid.

    ``mask`` is the analysable breast (pectoral muscle and a thin skin rim removed);
    ``breast`` is the whole breast; ``pectoral`` the muscle (all False when absent).
    ``chest_wall`` is ``"left"`` or ``"right"``: the image side the chest wall is on.
    """

    mask: np.ndarray
    breast: np.ndarray
    pectoral: np.ndarray
    chest_wall: str

    @property
    def nipple_rc(self) -> tuple[float, float] | None:
        """Estimated nipple position (see :func:`nipple_position`)."""
        return nipple_position(self.breast, self.chest_wall)

    @property
    def breast_area_mm2_per_px(self) -> float:  # pragma: no cover - convenience
        return float(self.mask.mean())


def _reduce(pixels: np.ndarray, pixel_mm: float) -> tuple[np.ndarray, float]:
    factor = max(1, int(round(_WORK_MM / pixel_mm)))
    if factor == 1:
        return pixels.astype(np.float32, copy=False), 1.0
    rows, cols = pixels.shape
    small = cv2.resize(
        pixels, (max(1, cols // factor), max(1, rows // factor)), interpolation=cv2.INTER_AREA
    )
    return small, float(factor)


def _as_u8(mask: np.ndarray) -> np.ndarray:
    """A bool mask as 0/1 uint8 (a view, no copy, for a bool array)."""
    return mask.view(np.uint8) if mask.dtype == bool else mask.astype(np.uint8)


def _enlarge(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if mask.shape == shape:
        return mask
    big = cv2.resize(_as_u8(mask), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
    return big.view(bool)  # 0/1 values: a valid bool view, without a full-size copy


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    inv = (~mask).astype(np.uint8)
    n, labels = cv2.connectedComponents(inv, connectivity=4)
    if n <= 1:
        return mask
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    holes = ~np.isin(labels, border) & (labels > 0)
    return mask | holes


def _largest_component(mask: np.ndarray) -> np.ndarray:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return mask.astype(bool)
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    largest: np.ndarray = labels == biggest
    return largest


def _otsu(values: np.ndarray) -> float:
    v8 = np.clip(values * 255.0, 0, 255).astype(np.uint8).reshape(-1, 1)
    t, _ = cv2.threshold(v8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return float(t) / 255.0


def _separation(values: np.ndarray, t: float) -> float:
    """Otsu's separability of ``values`` split at ``t``: between-class over total
    variance (1 for two spikes; about 0.64 for one Gaussian split at its mean)."""
    total = float(values.var())
    if total <= 0:
        return 0.0
    lo, hi = values[values < t], values[values >= t]
    if lo.size == 0 or hi.size == 0:
        return 0.0
    w = lo.size / values.size
    return float(w * (1 - w) * (hi.mean() - lo.mean()) ** 2 / total)


_BIMODAL = 0.8
"""Separability above which the darker class of Otsu's split is itself two classes."""


def breast_mask(pixels: np.ndarray, pixel_mm: float) -> np.ndarray:
    """Whole-breast mask (bool, source grid) by thresholding the background out.

    The threshold sits between the background (air, film base) and the faintest tissue:
    35 % of the way from the background level to Otsu's threshold, which keeps the thin
    breast edge near the skin line. The background level is the median of the darkest
    class: when a bright pectoral muscle or dense tissue draws Otsu's split between fatty
    and dense tissue, the pixels under it hold the fat as well as the background, well
    apart (separability over :data:`_BIMODAL`), and their median would be the fat's
    level, which cut the fatty breast away; their own Otsu split then separates the
    background. Film labels and markers are dropped by keeping the largest connected
    component.
    """
    return _breast_mask_reduced(_reduce(pixels, pixel_mm)[0], pixels.shape)


def _breast_mask_reduced(small: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """:func:`breast_mask` from the image reduced to the working grid (:func:`_reduce`),
    enlarged to ``shape``."""
    small = cv2.GaussianBlur(small, (0, 0), 1.0)
    otsu = _otsu(small)
    background = small[small < otsu]
    if background.size > 16:
        inner = _otsu(background)
        if _separation(background, inner) > _BIMODAL:
            background = background[background < inner]
    bg_level = float(np.percentile(background, 50)) if background.size else 0.0
    thr = bg_level + 0.35 * (otsu - bg_level)
    mask = small > thr
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    mask = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, k).astype(bool)
    mask = _largest_component(mask)
    mask = _fill_holes(mask)
    return _enlarge(mask, shape)


def chest_wall_side(breast: np.ndarray) -> str:
    """``"left"`` or ``"right"``: the image side of the chest wall.

    The chest wall is the breast's straight edge: per row, the breast's first and last
    columns are taken, and the side whose extreme column varies least down the image is
    the chest wall (the other side is the curved skin line). This works when films have
    black margins, where the breast does not touch the image edge.
    """
    rows_with = breast.any(axis=1)
    if rows_with.sum() < 3:
        return "left"
    b = breast[rows_with]
    first = np.argmax(b, axis=1)
    last = b.shape[1] - 1 - np.argmax(b[:, ::-1], axis=1)
    spread_left = float(np.percentile(first, 90) - np.percentile(first, 10))
    spread_right = float(np.percentile(last, 90) - np.percentile(last, 10))
    return "left" if spread_left <= spread_right else "right"


def nipple_position(breast: np.ndarray, chest_wall: str) -> tuple[float, float] | None:
    """Estimated nipple ``(row, col)``: the breast's most anterior point.

    The nipple is taken as the point of the skin line farthest from the chest wall (the
    usual estimate when it is not marked, and where the ducts converge): the mean row of
    the breast pixels in the 2 % of columns nearest the far end. ``None`` for an empty
    mask.
    """
    cols = np.flatnonzero(breast.any(axis=0))
    if cols.size == 0:
        return None
    band = max(1, int(round(0.02 * breast.shape[1])))
    if chest_wall == "right":
        c0 = int(cols[0])
        window = breast[:, c0 : c0 + band]
        offset = c0
    else:
        c1 = int(cols[-1]) + 1
        window = breast[:, max(c1 - band, 0) : c1]
        offset = max(c1 - band, 0)
    rr, cc = np.nonzero(window)
    return float(rr.mean()), float(cc.mean() + offset)


def pectoral_mask(
    pixels: np.ndarray, breast: np.ndarray, pixel_mm: float, chest_wall: str
) -> np.ndarray:
    """Pectoral muscle on an MLO view: the bright band along the upper chest wall.

    The image is mirrored so the chest wall is on the left. The muscle is brighter than
    the breast tissue beside it: a threshold halfway between the tissue's median and the
    brightness of the top chest-wall corner is applied, and per row the run of bright
    pixels that starts at the chest wall gives the muscle's width. Widths are forced to
    shrink down the image (the muscle is a triangle with its base at the top) and a
    trimmed quadratic fit smooths the edge. A candidate covering less than 1 % or more
    than 40 % of the breast, or not touching the top edge, is rejected (no muscle).
    """
    return _pectoral_mask_reduced(_reduce(pixels, pixel_mm)[0], breast, chest_wall)


def _pectoral_mask_reduced(small: np.ndarray, breast: np.ndarray, chest_wall: str) -> np.ndarray:
    """:func:`pectoral_mask` from the image reduced to the working grid (:func:`_reduce`)."""
    bsmall = cv2.resize(
        _as_u8(breast), (small.shape[1], small.shape[0]), interpolation=cv2.INTER_NEAREST
    ).view(bool)
    if chest_wall == "right":
        small, bsmall = small[:, ::-1], bsmall[:, ::-1]
    small = np.ascontiguousarray(small)
    rows, cols = small.shape
    empty = np.zeros(breast.shape, dtype=bool)
    small = cv2.GaussianBlur(small, (0, 0), 2.0)
    cols_idx = np.arange(cols)[None, :]
    # the chest wall is the first breast column of each row (films have black margins)
    has = bsmall.any(axis=1)
    first = np.where(has, np.argmax(bsmall, axis=1), cols)
    rel = cols_idx - first[:, None]
    corner_mask = bsmall & (rel >= 0) & (rel < max(2, cols // 10))
    corner_mask[max(2, rows // 20) :] = False
    if corner_mask.sum() < 10:
        return empty
    v0 = float(np.percentile(small[corner_mask], 75))
    tissue = float(np.median(small[bsmall]))
    if v0 <= tissue + 0.02:
        return empty
    thr = tissue + 0.5 * (v0 - tissue)
    top = int(rows * 0.75)
    # a few mm at the film's edge may be dim (blurred border): they do not stop the run
    edge = max(2, int(round(3.0 / _WORK_MM)))
    bright = ((small[:top] > thr) & bsmall[:top]) | (rel[:top] < edge)
    # run of bright pixels starting at the chest wall
    run = np.cumprod(bright, axis=1).sum(axis=1).astype(np.float64) - np.minimum(first[:top], cols)
    run[run <= edge] = 0.0  # nothing bright beyond the film edge: no muscle in this row
    run = np.minimum.accumulate(np.maximum(run, 0.0))
    r_idx = np.flatnonzero(run > 0)
    if r_idx.size < 5 or run[0] <= 0:
        return empty
    x, y = r_idx.astype(np.float64), run[r_idx]
    # extend the fit to the row where the width reaches zero
    end_row = float(r_idx[-1] + 1)
    x = np.append(x, end_row)
    y = np.append(y, 0.0)
    keep = np.ones_like(x, dtype=bool)
    coef = np.polyfit(x, y, 2)
    for _ in range(3):
        resid = y - np.polyval(coef, x)
        mad = np.median(np.abs(resid - np.median(resid))) + 1e-6
        keep = np.abs(resid) <= 3.0 * 1.4826 * mad + 2.0
        if keep.sum() < 5:
            break
        coef = np.polyfit(x[keep], y[keep], 2)
    rr = np.arange(rows, dtype=np.float64)
    width = np.clip(np.polyval(coef, rr), 0, cols)
    width[rr > end_row + 0.1 * rows] = 0
    muscle = (rel >= 0) & (rel < width[:, None])
    muscle &= bsmall
    area = muscle.sum()
    if not (0.01 * bsmall.sum() <= area <= 0.4 * bsmall.sum()) or not muscle[0].any():
        return empty
    if chest_wall == "right":
        muscle = muscle[:, ::-1]
    return _enlarge(np.ascontiguousarray(muscle), breast.shape)


def preprocess(mammogram: Mammogram, config: PreprocessConfig | None = None) -> Preprocessed:
    """Breast mask, minus the pectoral muscle on MLO/ML views, a thin skin rim and a
    margin along the image edges (``border_mm``)."""
    cfg = config or PreprocessConfig()
    pixel_mm = mammogram.pixel_mm
    small, _ = _reduce(mammogram.pixels, pixel_mm)  # one reduced copy for both masks
    breast = _breast_mask_reduced(small, mammogram.pixels.shape)
    side = chest_wall_side(breast)
    pect = np.zeros_like(breast)
    view = mammogram.view
    # MLO/ML/LM views show the muscle; with the view unknown (plain images) it is looked
    # for too, and only taken when its shape passes the checks in pectoral_mask
    if cfg.pectoral and (view is None or view.is_oblique_or_lateral):
        pect = _pectoral_mask_reduced(small, breast, side)
    mask = breast & ~pect if pect.any() else breast  # copied below if not eroded
    erode_px = int(round(cfg.mask_erode_mm / pixel_mm))
    if erode_px > 0:
        # a distance transform for speed when the kernel is large
        mask = _erode_near(mask, erode_px) if erode_px <= 15 else _erode_fast(mask, erode_px)
    border_px = int(round(cfg.border_mm / pixel_mm))
    if mask is breast:
        mask = breast.copy()
    if border_px > 0:  # film and detector edges: artefacts, not tissue
        mask[:border_px] = False
        mask[-border_px:] = False
        mask[:, :border_px] = False
        mask[:, -border_px:] = False
    return Preprocessed(mask=mask, breast=breast, pectoral=pect, chest_wall=side)


_ERODE_ROWS = 256
"""Rows per strip of :func:`_erode_near`."""


def _erode_near(mask: np.ndarray, erode_px: int) -> np.ndarray:
    """``mask`` (bool) eroded by a disc of radius ``erode_px`` pixels (OpenCV's elliptic
    element; the image's edges do not erode), in row strips each cut to the columns of
    the strip's mask pixels and ``erode_px`` more each side: the same pixels as one
    ``cv2.erode`` of the whole image, without filtering the rows and columns outside the
    breast (about half a full-field image). A pixel whose element reaches past a cut is
    outside the mask, and stays out."""
    size = 2 * erode_px + 1
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    out = np.zeros(mask.shape, dtype=bool)
    rows, cols = mask.shape
    for r0 in range(0, rows, _ERODE_ROWS):
        r1 = min(r0 + _ERODE_ROWS, rows)
        a0, a1 = max(r0 - erode_px, 0), min(r1 + erode_px, rows)
        has = np.flatnonzero(mask[r0:r1].any(axis=0))
        if has.size == 0:
            continue
        c0, c1 = max(int(has[0]) - erode_px, 0), min(int(has[-1]) + 1 + erode_px, cols)
        block = np.ascontiguousarray(_as_u8(mask[a0:a1, c0:c1]))
        out[r0:r1, c0:c1] = cv2.erode(block, k)[r0 - a0 : r1 - a0].view(bool)
    return out


def _erode_fast(mask: np.ndarray, erode_px: int) -> np.ndarray:
    dist = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)
    return dist > erode_px
