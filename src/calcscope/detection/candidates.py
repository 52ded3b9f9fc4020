"""Multi-scale spot finding: the top-hat residual, seeded regions and their split into
objects (steps 2 to 4 of :func:`calcscope.detection.detect.detect`; the band-pass stack,
step 1, is :mod:`calcscope.detection.bands`, its names re-exported here).

All images are float32 and every filter is an OpenCV call, on the whole image or, where
its result is read at a few pixels only, in tiles around them (:func:`filter_at`);
components are labelled in strips of the box around their pixels
(:func:`~calcscope.detection.labels.components_at`), and the maps read at a few pixels
are kept at those pixels (:class:`TopHatMarks`, :func:`object_values`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from calcscope.config import DetectConfig
from calcscope.detection.bands import (
    _CHUNK_ROWS,
    _NOISE_SUBSAMPLE,
    _SEED_BANDS,
    BAND_SIGMAS_MM,
    BandStack,
    _enlarge,
    band_pass_stack,
    blur,
    enlarge_rows,
    enlarges_by_rows,
    robust_sigma,
)
from calcscope.detection.bands import strips as _strips
from calcscope.detection.labels import SparseLabels, components_at
from calcscope.detection.parallel import map_strips

__all__ = [
    "BAND_SIGMAS_MM",
    "BandStack",
    "ObjectLabels",
    "SeededRegions",
    "TopHat",
    "TopHatMarks",
    "band_pass_stack",
    "blur",
    "coarse_deposit_mask",
    "component_stats",
    "sparse_components",
    "filter_at",
    "grown_pixels",
    "object_values",
    "local_max_at",
    "on_quarter_mm_grid",
    "robust_sigma",
    "seeded_regions",
    "split_regions",
    "tissue_background",
    "top_hat",
    "top_hat_marks",
]

_TILE = 256
"""Side (pixels) of the tiles of :func:`local_max_at`."""
_ENLARGE_ROWS = 128
"""Rows per strip of a reduced map enlarged strip by strip (:func:`_minus_enlarged`)."""


@dataclass(frozen=True)
class TopHat:
    """The top-hat residual ``image - tissue background`` (step 2).

    Attributes
    ----------
    residual : np.ndarray
        Image minus its grey-opening background, image units (float32).
    sigma : float
        Robust noise level of ``residual`` inside the breast, image units.
    """

    residual: np.ndarray
    sigma: float
    background_small: np.ndarray | None = None
    """The tissue background on its reduced grid (before :func:`top_hat` enlarges it), from
    which :meth:`TopHatMarks.rebuilt` makes the same residual again; ``None`` when the
    background is computed at full size."""

    @property
    def z(self) -> np.ndarray:
        """``residual / sigma`` (float32), computed when asked for."""
        return self.residual * np.float32(1.0 / self.sigma)


@dataclass(frozen=True)
class TopHatMarks:
    """What the detector reads of the top-hat residual while it does not hold it (from
    the band-pass stack to the candidates' context features), and what makes it again.

    Attributes
    ----------
    sigma : float
        Robust noise level of the residual inside the breast, image units.
    grow : np.ndarray
        Flat indices (ascending) of the pixels inside the mask whose residual reaches
        ``macro_grow_z`` noise levels (:func:`grown_pixels`).
    deposit : np.ndarray
        Flat indices (ascending) of the coarse deposits' pixels
        (:func:`coarse_deposit_mask`, read by :func:`split_regions`).
    background_small : np.ndarray
        The tissue background on its reduced grid (:attr:`TopHat.background_small`).
    """

    sigma: float
    grow: np.ndarray
    deposit: np.ndarray
    background_small: np.ndarray

    def residual_into(self, img: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Write the residual of ``img`` (the image :func:`top_hat` was given) into ``out``
        (float32, ``img``'s shape): the same values, from the reduced background."""
        if enlarges_by_rows(self.background_small.shape, out.shape):
            return _minus_enlarged(img, self.background_small, out)
        background = _enlarge_into(self.background_small, out)
        map_strips(  # in strips on the thread pool
            lambda r0, r1: np.subtract(img[r0:r1], background[r0:r1], out=out[r0:r1]),
            int(img.shape[0]),
            _CHUNK_ROWS,
        )
        return out

    def rebuilt(self, img: np.ndarray) -> TopHat:
        """The :class:`TopHat` of ``img`` again (a new full-size residual)."""
        out = np.empty(img.shape, dtype=np.float32)
        return TopHat(self.residual_into(img, out), self.sigma, self.background_small)


@dataclass(frozen=True)
class SeededRegions:
    """Hysteresis regions that hold a seed pixel (step 3), as their pixels and labels:
    no full-size label image is held.

    Attributes
    ----------
    shape : tuple of int
        (rows, cols) of the image.
    n_labels : int
        Number of labels, the background included.
    kept : np.ndarray
        Labels of the regions kept (seeded, not too large).
    pixels : np.ndarray
        Flat indices of the grown pixels, ascending.
    labels_at : np.ndarray
        The label (int32, 1..n_labels-1) of each of ``pixels``.
    """

    shape: tuple[int, int]
    n_labels: int
    kept: np.ndarray
    pixels: np.ndarray
    labels_at: np.ndarray

    @property
    def count(self) -> int:
        """Number of regions kept."""
        return int(self.kept.size)


@dataclass(frozen=True)
class ObjectLabels:
    """The kept regions split into their calcifications (step 4).

    Attributes
    ----------
    labels : np.ndarray or SparseLabels
        Component image of the objects (int32, 1..count, 0 = none), or the same held as
        the objects' pixels (:class:`~calcscope.detection.labels.SparseLabels`).
    stats : np.ndarray
        OpenCV component statistics, one row per label (row 0 the background).
    pixels : np.ndarray or None
        Flat indices of the objects' pixels, ascending (``None``: found from ``labels``).
    background_at : np.ndarray or None
        :attr:`BandStack.background_level` at ``pixels`` (float32; ``None``: read from
        the stack), read by :func:`object_values` so that no full-size map of it is held.
    """

    labels: np.ndarray | SparseLabels
    stats: np.ndarray
    pixels: np.ndarray | None = None
    background_at: np.ndarray | None = None
    residual_at: np.ndarray | None = None
    """The top-hat residual at ``pixels`` (float32; ``None``: read from the
    :class:`TopHat`)."""

    @property
    def count(self) -> int:
        """Number of objects."""
        return int(self.stats.shape[0]) - 1


def on_quarter_mm_grid(
    img: np.ndarray, pixel_mm: float, op: Callable[[np.ndarray, float], np.ndarray]
) -> np.ndarray:
    """``op(small, small_pixel_mm)`` applied on a copy of ``img`` reduced to about
    0.25 mm/pixel (area averaging), its result brought back to ``img``'s grid: for the
    morphology of millimetre-sized structures, cheap at any resolution."""
    out, factor = _on_quarter_mm_small(img, pixel_mm, op)
    if factor > 1:
        out = _enlarge(out, img.shape)
    return out


def _on_quarter_mm_small(
    img: np.ndarray, pixel_mm: float, op: Callable[[np.ndarray, float], np.ndarray]
) -> tuple[np.ndarray, int]:
    """:func:`on_quarter_mm_grid` before its enlargement: ``op``'s result on the reduced
    grid and the reduction factor (1: the result is at full size)."""
    factor = max(1, int(round(0.25 / pixel_mm)))
    rows, cols = img.shape
    small = (
        cv2.resize(img, (cols // factor, rows // factor), interpolation=cv2.INTER_AREA)
        if factor > 1
        else img
    )
    return op(small, pixel_mm * factor), factor


def tissue_background(img: np.ndarray, pixel_mm: float, size_mm: float) -> np.ndarray:
    """Tissue background of ``img`` by grey opening with a disc of ``size_mm`` (mm),
    computed at about 0.25 mm/pixel."""
    small, factor = _tissue_background_small(img, pixel_mm, size_mm)
    return _enlarge(small, img.shape) if factor > 1 else small


def _tissue_background_small(
    img: np.ndarray, pixel_mm: float, size_mm: float
) -> tuple[np.ndarray, int]:
    """:func:`tissue_background` on its reduced grid, and the reduction factor."""

    def opening(small: np.ndarray, small_mm: float) -> np.ndarray:
        d = max(3, int(round(size_mm / small_mm)) | 1)
        se = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (d, d))
        opened = cv2.morphologyEx(small, cv2.MORPH_OPEN, se, borderType=cv2.BORDER_REFLECT)
        return cv2.GaussianBlur(opened, (0, 0), 1.0)

    return _on_quarter_mm_small(img, pixel_mm, opening)


def top_hat(img: np.ndarray, pixel_mm: float, mask: np.ndarray, background_mm: float) -> TopHat:
    """The top-hat residual of ``img`` over its tissue background (a grey opening with a
    disc of ``background_mm``), which shows whole coarse deposits up to that size."""
    small, factor = _tissue_background_small(img, pixel_mm, background_mm)
    shape = (int(img.shape[0]), int(img.shape[1]))
    if (
        factor > 1
        and img.dtype == np.float32
        and small.dtype == np.float32
        and enlarges_by_rows(small.shape, shape)
    ):
        # the background enlarged strip by strip: one full-size image, one pass
        residual = _minus_enlarged(img, small, np.empty(shape, dtype=np.float32))
        sigma = robust_sigma(residual[_NOISE_SUBSAMPLE][mask[_NOISE_SUBSAMPLE]])
        return TopHat(residual, sigma, small)
    background = _enlarge(small, img.shape) if factor > 1 else small
    # in place when the types allow: no second full-size image
    if background.dtype == np.result_type(img, background) and background is not img:
        residual = background  # in place, strip by strip on the thread pool
        map_strips(
            lambda r0, r1: np.subtract(img[r0:r1], background[r0:r1], out=residual[r0:r1]),
            int(img.shape[0]),
            _CHUNK_ROWS,
        )
    else:
        residual = img - background
    sigma = robust_sigma(residual[_NOISE_SUBSAMPLE][mask[_NOISE_SUBSAMPLE]])
    rebuildable = factor > 1 and img.dtype == np.float32 and small.dtype == np.float32
    return TopHat(residual, sigma, small if rebuildable else None)


def top_hat_marks(
    tophat: TopHat, mask: np.ndarray, pixel_mm: float, cfg: DetectConfig
) -> TopHatMarks | None:
    """The pixels the detector reads of ``tophat`` until its context features
    (:class:`TopHatMarks`), so that the full-size residual can be freed meanwhile and made
    again (:meth:`TopHatMarks.rebuilt`); ``None`` when it cannot be made again (a
    background computed at full size)."""
    if tophat.background_small is None:
        return None
    residual, z_scale = tophat.residual, np.float32(1.0 / tophat.sigma)
    rows, cols = (int(n) for n in mask.shape)

    def levels(r0: int, r1: int) -> tuple[np.ndarray, np.ndarray]:
        z, inside = residual[r0:r1] * z_scale, mask[r0:r1]
        return (
            np.flatnonzero((z >= cfg.macro_grow_z) & inside) + r0 * cols,
            np.flatnonzero((z >= cfg.macro_object_z) & inside) + r0 * cols,
        )

    parts = map_strips(levels, rows, _CHUNK_ROWS)  # one pass in strips for both levels
    grow, high = (np.concatenate([p[i] for p in parts]) for i in (0, 1))
    # coarse_deposit_mask's regions at their pixels (their numbering does not matter)
    n, lab = components_at(high, (rows, cols), opencv_order=False)
    min_px = np.pi * (cfg.macro_min_mm / 2) ** 2 / pixel_mm**2
    area = np.bincount(lab, minlength=n)
    mean_z = np.bincount(lab, residual.ravel()[high] * z_scale, minlength=n) / np.maximum(area, 1)
    ok = (area >= min_px) & (mean_z >= 1.5 * cfg.macro_object_z)
    ok[0] = False
    return TopHatMarks(tophat.sigma, grow, high[ok[lab]], tophat.background_small)


def sparse_components(binary: np.ndarray, pixels: np.ndarray) -> tuple[int, np.ndarray]:
    """``cv2.connectedComponents(binary, connectivity=8)``'s label count and int32 label
    image, the labelling run only in the box around the set pixels (``pixels``, flat
    indices of ``binary``'s set pixels), its origin on even rows and columns so that
    OpenCV's 2 x 2 blocks, and so the numbering of the labels, stay those of the whole
    image. Outside the box the label image is never written (no memory is used there)."""
    labels = np.zeros(binary.shape, dtype=np.int32)
    if pixels.size == 0:
        return 1, labels
    rows, cols = binary.shape
    first_row, last_row = int(pixels[0]) // cols, int(pixels[-1]) // cols
    c = pixels % cols
    r0, c0 = first_row & ~1, int(c.min()) & ~1
    box = (slice(r0, last_row + 1), slice(c0, int(c.max()) + 1))
    n, labels[box] = cv2.connectedComponents(
        np.ascontiguousarray(binary[box]).view(np.uint8), connectivity=8, ltype=cv2.CV_32S
    )
    return n, labels


def component_stats(
    pixels: np.ndarray, labels_at: np.ndarray, n_labels: int, shape: tuple[int, int]
) -> np.ndarray:
    """OpenCV's component statistics (``cv2.connectedComponentsWithStats``: left, top,
    width, height, area; one int32 row per label, row 0 the background taken as the whole
    image) of the labelled pixels ``pixels`` (flat indices, ascending) with labels
    ``labels_at`` (1..n_labels-1): the same figures for the labels present (rows of zeros
    for the others), computed from those few pixels instead of a pass over the image."""
    stats = np.zeros((n_labels, 5), dtype=np.int32)
    stats[0] = (0, 0, shape[1], shape[0], shape[0] * shape[1] - pixels.size)
    if pixels.size == 0:
        return stats
    order = np.argsort(labels_at, kind="stable")
    labs = labels_at[order]
    rows, cols = np.divmod(pixels[order], shape[1])
    starts = np.concatenate([[0], np.flatnonzero(np.diff(labs)) + 1])
    present = labs[starts]
    top, left = np.minimum.reduceat(rows, starts), np.minimum.reduceat(cols, starts)
    stats[present, cv2.CC_STAT_LEFT] = left
    stats[present, cv2.CC_STAT_TOP] = top
    stats[present, cv2.CC_STAT_WIDTH] = np.maximum.reduceat(cols, starts) - left + 1
    stats[present, cv2.CC_STAT_HEIGHT] = np.maximum.reduceat(rows, starts) - top + 1
    stats[present, cv2.CC_STAT_AREA] = np.diff(np.append(starts, labs.size))
    return stats


def filter_at(
    shape: tuple[int, int],
    pixels: np.ndarray,
    reach: int,
    op: Callable[[tuple[slice, slice]], np.ndarray],
) -> np.ndarray:
    """A local filter read at ``pixels`` (flat indices of an image of ``shape``):
    ``op(box)`` filters the image's ``box`` (a pair of slices), looking at most ``reach``
    pixels away. It runs only in the tiles of :data:`_TILE` pixels that hold ``pixels``,
    each with a margin of ``reach`` cut at the image edge (where ``op``'s own border rule
    applies as on the whole image)."""
    rows, cols = shape
    r, c = np.divmod(pixels, cols)
    n_tile_cols = -(-cols // _TILE)
    tile = (r // _TILE) * n_tile_cols + c // _TILE
    order = np.argsort(tile, kind="stable")
    tile_s = tile[order]
    starts = np.concatenate([[0], np.flatnonzero(np.diff(tile_s)) + 1])
    ends = np.append(starts[1:], tile_s.size)
    out = np.empty(pixels.size, dtype=np.float32)
    for s0, s1 in zip(starts, ends, strict=True):
        tr, tc = divmod(int(tile_s[s0]), n_tile_cols)
        ra, ca = max(tr * _TILE - reach, 0), max(tc * _TILE - reach, 0)
        rb, cb = min((tr + 1) * _TILE + reach, rows), min((tc + 1) * _TILE + reach, cols)
        sel = order[s0:s1]
        out[sel] = op((slice(ra, rb), slice(ca, cb)))[r[sel] - ra, c[sel] - ca]
    return out


def local_max_at(img: np.ndarray, pixels: np.ndarray, k: int) -> np.ndarray:
    """Highest value of ``img`` (float32) in the ``k`` x ``k`` square around each pixel of
    ``pixels`` (flat indices): ``cv2.dilate(img, k x k square)`` read at those pixels (a
    maximum is exact in any order), computed in tiles (:func:`filter_at`)."""
    se = cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
    return filter_at(img.shape, pixels, k // 2, lambda box: cv2.dilate(img[box], se))


def grown_pixels(
    bands: BandStack, tophat: TopHat | TopHatMarks, mask: np.ndarray, cfg: DetectConfig
) -> np.ndarray:
    """Flat indices (ascending) of the pixels inside ``mask`` above ``grow_cnr`` in a band
    or above ``macro_grow_z`` in the top-hat: the pixels :func:`seeded_regions` grows its
    regions from (step 3). ``bands`` holds full-size bands (or a pending coarse band)."""
    coarse = bands.band_maps[_SEED_BANDS:]
    marks = tophat if isinstance(tophat, TopHatMarks) else None
    residual = None if isinstance(tophat, TopHatMarks) else tophat.residual
    z_scale = np.float32(1.0 / tophat.sigma)

    def grow_rows(r: slice) -> np.ndarray:
        # bands.cnr >= grow_cnr, band by band: the maximum reaches a level when one does
        g = bands.seed_at(r) >= cfg.grow_cnr
        if residual is not None:
            g |= residual[r] * z_scale >= cfg.macro_grow_z
        for band in coarse:
            g |= band[r] >= cfg.grow_cnr
        return g & mask[r]

    grown = _strips(np.empty(mask.shape, dtype=bool), grow_rows)
    if marks is not None:  # the top-hat's pixels, found before its residual was freed
        grown.ravel()[marks.grow] = True
    if bands.pending is not None:  # the pending coarse band's, found when it was made
        grown.ravel()[bands.pending.grow] = True
    return np.flatnonzero(grown)


def seeded_regions(
    bands: BandStack,
    tophat: TopHat | TopHatMarks,
    mask: np.ndarray,
    spacing_mm: tuple[float, float],
    cfg: DetectConfig,
    grown: np.ndarray | None = None,
) -> SeededRegions:
    """Hysteresis: pixels above ``grow_cnr`` (or top-hat above ``macro_grow_z``) form
    regions; a region is kept when it holds a seed (fine bands above ``seed_cnr``) and is
    at most four times the area of a ``max_diameter_mm`` disc.

    Seeds need a sharp (fine-band) peak: smooth bright tissue never seeds, however bright;
    coarse deposits seed on their sharp edges and grow through the top-hat. ``grown``:
    the grown pixels when already found (:func:`grown_pixels`, which is run otherwise).
    """
    pixels = grown_pixels(bands, tophat, mask, cfg) if grown is None else grown
    shape = (int(mask.shape[0]), int(mask.shape[1]))
    n_lab, lab = components_at(pixels, shape, opencv_order=False)  # any numbering will do
    has_seed = np.bincount(lab[bands.seed_at(pixels) >= cfg.seed_cnr], minlength=n_lab) > 0
    has_seed[0] = False
    area_px = np.bincount(lab, minlength=n_lab)
    px_area_mm2 = spacing_mm[0] * spacing_mm[1]
    max_area_px = np.pi * (cfg.max_diameter_mm / 2) ** 2 / px_area_mm2 * 4  # generous
    keep = has_seed & (area_px <= max_area_px)
    return SeededRegions(shape, n_lab, np.flatnonzero(keep).astype(np.int32), pixels, lab)


def split_regions(
    regions: SeededRegions,
    bands: BandStack,
    tophat: TopHat | TopHatMarks,
    mask: np.ndarray,
    pixel_mm: float,
    cfg: DetectConfig,
) -> ObjectLabels:
    """Split each kept region into its calcifications.

    A pixel belongs to an object when its fine-band CNR reaches half the highest within
    ``split_mm`` (neighbours separate at the valley between them, specks on bright tissue
    stay specks, a lucent centre stays out of its rim), or when it is part of a coarse
    deposit (:func:`coarse_deposit_mask`).
    The tissue level and the residual at the objects' pixels are read afterwards
    (:func:`object_values`; else :func:`~calcscope.detection.features.measure_candidates`
    reads them at full size).
    """
    shape = regions.shape
    keep = np.zeros(regions.n_labels, dtype=bool)
    keep[regions.kept] = True
    at = np.flatnonzero(keep[regions.labels_at])  # positions among the grown pixels
    p_idx = regions.pixels[at]  # the grown pixels only
    k = 2 * max(1, int(round(cfg.split_mm / pixel_mm))) + 1
    p_cnr = bands.seed_at(p_idx)
    se = cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
    local_peak = filter_at(shape, p_idx, k // 2, lambda box: cv2.dilate(bands.seed_at(box), se))
    in_obj = (p_cnr >= cfg.grow_cnr) & (p_cnr >= 0.5 * local_peak)
    if isinstance(tophat, TopHatMarks):
        in_obj |= _members(p_idx, tophat.deposit)
    else:
        z_scale = np.float32(1.0 / tophat.sigma)
        ok, lab, _ = _coarse_deposits(tophat.residual, z_scale, mask, pixel_mm, cfg)
        if lab is not None:
            in_obj |= ok[lab.ravel()[p_idx]]
        del ok, lab
    pixels = p_idx[in_obj]
    n, labels_at = components_at(pixels, shape)
    stats = component_stats(pixels, labels_at, n, shape)
    return ObjectLabels(SparseLabels(shape, pixels, labels_at), stats, pixels)


def object_values(
    objects: ObjectLabels, bands: BandStack, tophat: TopHat | TopHatMarks, img: np.ndarray
) -> tuple[ObjectLabels, BandStack, TopHat]:
    """Read the full-size maps that the objects' measurement needs at their pixels, one
    after the other in one scratch map: the tissue level (:attr:`ObjectLabels.background_at`),
    the pending coarse band's finer blur (:meth:`BandStack.with_pending_at`) and the top-hat
    residual (:attr:`ObjectLabels.residual_at`), made again from ``img`` when ``tophat``
    does not hold it; that residual is returned as the :class:`TopHat` the outlines read.

    ``bands`` should hold no full-size map but the finest band
    (:meth:`BandStack.kept_at` the objects' pixels) so that at most two are held here.
    """
    pixels = objects.pixels
    if pixels is None:
        pixels = (
            np.flatnonzero(objects.labels)
            if isinstance(objects.labels, np.ndarray)
            else (objects.labels.pixels)
        )
    if bands.coarse_pixels is None or not np.array_equal(bands.coarse_pixels, pixels):
        bands = bands.kept_at(pixels)
    shape = (int(img.shape[0]), int(img.shape[1]))
    scratch = np.empty(shape, dtype=np.float32)
    if bands.background.shape == shape:
        background_at = bands.background.ravel()[pixels]
    else:  # the same values as BandStack.background_level
        background_at = _enlarged_at(bands.background, pixels, scratch)
    if bands.pending is not None:
        finer_at = _enlarged_at(bands.pending.finer_small, pixels, scratch)
        bands = bands.with_pending_at(finer_at, background_at)
    if isinstance(tophat, TopHatMarks):
        tophat = TopHat(tophat.residual_into(img, scratch), tophat.sigma, tophat.background_small)
    del scratch
    residual_at = tophat.residual.ravel()[pixels]
    objects = dataclasses.replace(
        objects, pixels=pixels, background_at=background_at, residual_at=residual_at
    )
    return objects, bands, tophat


def _enlarge_into(small: np.ndarray, out: np.ndarray) -> np.ndarray:
    """:func:`~calcscope.detection.bands.blur`'s enlargement of ``small`` written into
    ``out`` (float32, the full size): the same values without a new full-size map."""
    rows, cols = out.shape
    cv2.resize(small, (int(cols), int(rows)), dst=out, interpolation=cv2.INTER_LINEAR)
    return out


def _minus_enlarged(img: np.ndarray, small: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Write ``img`` minus ``small`` enlarged to its size into ``out`` (float32, ``img``'s
    shape, an integer multiple of ``small``'s), strip by strip on the thread pool
    (:func:`~calcscope.detection.bands.enlarge_rows`: the whole enlargement's values)."""

    def rows(r0: int, r1: int) -> None:
        strip = enlarge_rows(small, out.shape, r0, r1)
        if strip is None:  # the callers take this path only on an integer multiple
            raise ValueError(f"{out.shape} is not an integer multiple of {small.shape}")
        np.subtract(img[r0:r1], strip, out=out[r0:r1])

    map_strips(rows, int(out.shape[0]), _ENLARGE_ROWS)
    return out


def _enlarged_at(small: np.ndarray, pixels: np.ndarray, scratch: np.ndarray) -> np.ndarray:
    """``small`` enlarged to ``scratch``'s size, read at ``pixels`` (flat indices,
    ascending): made only in the strips of rows that hold them (on the thread pool) when
    the size is an integer multiple of ``small``'s, else written into ``scratch``."""
    shape = (int(scratch.shape[0]), int(scratch.shape[1]))
    if not enlarges_by_rows(small.shape, shape):
        return _enlarge_into(small, scratch).ravel()[pixels]
    cols = shape[1]
    bounds = np.searchsorted(pixels, np.arange(0, shape[0] + _ENLARGE_ROWS, _ENLARGE_ROWS) * cols)

    def rows(r0: int, r1: int) -> np.ndarray:
        lo, hi = int(bounds[r0 // _ENLARGE_ROWS]), int(bounds[r0 // _ENLARGE_ROWS + 1])
        if lo == hi:
            return np.zeros(0, dtype=np.float32)
        part = enlarge_rows(small, shape, r0, r1)
        assert part is not None
        return part.ravel()[pixels[lo:hi] - r0 * cols]

    return np.concatenate(map_strips(rows, shape[0], _ENLARGE_ROWS))


def _members(pixels: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """Whether each of ``pixels`` is in ``sorted_set`` (ascending)."""
    if sorted_set.size == 0:
        return np.zeros(pixels.shape, dtype=bool)
    at = np.minimum(np.searchsorted(sorted_set, pixels), sorted_set.size - 1)
    return sorted_set[at] == pixels


def coarse_deposit_mask(
    rz: np.ndarray, mask: np.ndarray, pixel_mm: float, cfg: DetectConfig
) -> np.ndarray:
    """Whole outlines of coarse deposits: top-hat regions (``rz``, the residual over its
    noise) above ``macro_object_z`` at least ``macro_min_mm`` across and bright throughout
    (mean above 1.5 x the level). Smaller bright regions are left to the band-pass, which
    keeps specks on bright tissue apart."""
    ok, lab, _ = _coarse_deposits(rz, np.float32(1.0), mask, pixel_mm, cfg)
    return np.zeros(rz.shape, dtype=bool) if lab is None else ok[lab]


def _coarse_deposits(
    residual: np.ndarray, z_scale: np.float32, mask: np.ndarray, pixel_mm: float, cfg: DetectConfig
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """:func:`coarse_deposit_mask` of ``rz = residual * z_scale`` (float32) as a per-label
    flag, the label image (``None`` when there is no region) and the flat indices of the
    labelled pixels, so that callers look up only the pixels they need."""
    high = _strips(
        np.empty(mask.shape, dtype=bool),
        lambda r: (residual[r] * z_scale >= cfg.macro_object_z) & mask[r],
    )
    idx = np.flatnonzero(high)
    n, lab = sparse_components(high, idx)
    del high
    if n <= 1:
        return np.zeros(1, dtype=bool), None, idx
    min_px = np.pi * (cfg.macro_min_mm / 2) ** 2 / pixel_mm**2
    ll = lab.ravel()[idx]
    area = np.bincount(ll, minlength=n)
    mean_z = np.bincount(ll, residual.ravel()[idx] * z_scale, minlength=n) / np.maximum(area, 1)
    ok = (area >= min_px) & (mean_z >= 1.5 * cfg.macro_object_z)
    ok[0] = False
    return ok, lab, idx
