"""The band-pass stack (step 1 of :func:`calcscope.detection.detect.detect`): differences
of Gaussians in millimetres, each band divided by its robust noise level.

All images are float32 and every filter is an OpenCV call; large blurs run on a reduced
copy (:func:`blur`). The stack holds at most the two fine (seeding) bands as full-size
maps when the detector asks it to (:func:`band_pass_stack` with ``grow_cnr``): the coarse
band is then kept as the pixels where it reaches that level and made again, from its
reduced blur, at the pixels where it is read (:class:`PendingBand`). The row strips (the
blurs up to 6 pixels, the band arithmetic, :func:`strips`) run on the detector's thread
pool (:func:`~calcscope.detection.parallel.map_strips`), with the serial loop's results.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import cv2
import numpy as np

from calcscope.detection.parallel import map_strips, mask_columns

__all__ = [
    "BAND_SIGMAS_MM",
    "BandStack",
    "PendingBand",
    "band_pass_stack",
    "blur",
    "enlarge_rows",
    "enlarges_by_rows",
    "robust_sigma",
    "strips",
]

BAND_SIGMAS_MM: tuple[float, ...] = (0.05, 0.15, 0.45, 1.35)
"""Sigmas (mm) of the Gaussians whose differences make the band-pass stack."""
_MAD_TO_SIGMA = 1.4826
_SEED_BANDS = 2  # bands 0 and 1 (sharp detail up to about 1 mm) may seed a candidate
_NOISE_SUBSAMPLE = (slice(None, None, 3), slice(None, None, 3))
"""Every third pixel in each direction: enough to estimate a noise level."""
_CHUNK_ROWS = 64
"""Rows per strip of the element-wise masks (:func:`strips`): a strip's temporaries stay
in the processor's cache and no full-image temporary is allocated."""
_BLUR_ROWS = 256
"""Rows per strip of the finest blur (:func:`_fine_band_into`)."""


@dataclass(frozen=True)
class PendingBand:
    """A coarse band that the stack does not hold (see :func:`band_pass_stack`).

    Attributes
    ----------
    grow : np.ndarray
        Flat indices (ascending) of the pixels inside the mask where the band's CNR reaches
        the ``grow_cnr`` the stack was made with.
    finer_small : np.ndarray
        The band's finer Gaussian blur on its reduced grid (:func:`blur` enlarges it).
    scale : np.float32
        One over the band's noise level (its CNR is ``(finer - coarser) * scale``).
    """

    grow: np.ndarray
    finer_small: np.ndarray
    scale: np.float32


@dataclass(frozen=True)
class BandStack:
    """The band-pass stack normalised by noise (step 1).

    Attributes
    ----------
    band_maps : tuple of np.ndarray
        Each band's CNR (band divided by its robust noise level), finest first: a
        full-size map, or (1-D) its values at :attr:`coarse_pixels`. A band that is
        :attr:`pending` comes last and is not in the tuple.
    noise : tuple of float
        Each band's robust noise level inside the breast, image units (every band).
    background : np.ndarray
        The image blurred by the largest sigma (local tissue brightness), as the reduced
        copy that :func:`blur` enlarges when that sigma is large (over 6 pixels), else at
        full size: see :attr:`background_level`.
    """

    band_maps: tuple[np.ndarray, ...]
    noise: tuple[float, ...]
    background: np.ndarray
    coarse_pixels: np.ndarray | None = None
    """``None``: every band held is a full-size map; else the flat indices (ascending) at
    which the 1-D entries of ``band_maps`` hold their band's values (see
    :meth:`with_coarse_at` and :meth:`kept_at`)."""
    pending: PendingBand | None = None
    """The coarse band when the stack does not hold it (:meth:`with_pending_at` makes it
    at :attr:`coarse_pixels`)."""

    def with_coarse_at(self, pixels: np.ndarray) -> BandStack:
        """This stack with the coarse bands kept at ``pixels`` only (flat indices,
        ascending): once the grown pixels are known nothing reads them elsewhere, and
        their full-size maps are freed when no other reference holds them."""
        if self.coarse_pixels is not None or self.pending is not None:
            raise ValueError("the coarse bands are already kept at a few pixels")
        kept = tuple(b.ravel()[pixels] for b in self.band_maps[_SEED_BANDS:])
        maps = self.band_maps[:_SEED_BANDS] + kept
        return BandStack(maps, self.noise, self.background, pixels)

    def kept_at(self, pixels: np.ndarray) -> BandStack:
        """This stack with every band but the finest (read in tiles by the context
        features) kept at ``pixels`` only (flat indices, ascending; a subset of
        :attr:`coarse_pixels` when some bands are kept at pixels already); a pending band
        stays pending."""
        maps = (self.band_maps[0],) + tuple(
            self.band_at(k, pixels) for k in range(1, len(self.band_maps))
        )
        return BandStack(maps, self.noise, self.background, pixels, self.pending)

    def with_pending_at(self, finer_at: np.ndarray, coarser_at: np.ndarray) -> BandStack:
        """This stack with its pending band made at :attr:`coarse_pixels` from its finer
        and coarser blurs there (float32): the same values as the band's full-size map."""
        if self.pending is None or self.coarse_pixels is None:
            raise ValueError("no pending band, or the pixels it is made at are not set")
        band = np.subtract(finer_at, coarser_at)
        band *= self.pending.scale
        return BandStack(self.band_maps + (band,), self.noise, self.background, self.coarse_pixels)

    def band_at(self, k: int, pixels: np.ndarray) -> np.ndarray:
        """Band ``k``'s CNR at ``pixels`` (flat indices; for a band kept at a few pixels,
        a subset of :attr:`coarse_pixels`)."""
        if k >= len(self.band_maps):
            raise ValueError(f"band {k} is pending: made by with_pending_at")
        band = self.band_maps[k]
        if band.ndim == 2 or self.coarse_pixels is None:
            return band.ravel()[pixels]
        return band[np.searchsorted(self.coarse_pixels, pixels)]

    @property
    def background_level(self) -> np.ndarray:
        """The image blurred by the largest sigma at full size (float32), enlarged from
        :attr:`background` when asked for: the same values as :func:`blur`'s, without
        holding a full-size image that is read at the candidates' pixels only."""
        shape = self.band_maps[0].shape
        if self.background.shape == shape:
            return self.background
        return _enlarge(self.background, shape)

    def seed_at(self, where: slice | tuple[slice, slice] | np.ndarray) -> np.ndarray:
        """The seed map (maximum CNR over the fine bands that may seed a candidate,
        float32) at ``where``: rows, a box, or flat pixel indices, while the fine bands
        are full-size maps. It is never held as a full image: the detector reads it in
        strips, tiles and at its grown pixels."""
        seed_bands = self.band_maps[:_SEED_BANDS]
        if isinstance(where, np.ndarray):
            values = [b.ravel()[where] for b in seed_bands]
        else:
            values = [b[where] for b in seed_bands]
        out = values[0]
        for v in values[1:]:
            out = np.maximum(out, v)
        return out

    @property
    def seed_map(self) -> np.ndarray:
        """The whole seed map (see :meth:`seed_at`), computed when asked for."""
        return self.seed_at(slice(None))

    @property
    def cnr(self) -> np.ndarray:
        """Contrast-to-noise map: the maximum over bands of each band's CNR (float32),
        computed when asked for (a full-size image the stack need not hold), from a stack
        of full-size bands."""
        if self.coarse_pixels is not None or self.pending is not None:
            raise ValueError("the coarse bands are kept at a few pixels only")
        out = self.seed_map.copy()
        for band in self.band_maps[_SEED_BANDS:]:
            np.maximum(out, band, out=out)
        return out


def blur(img: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian blur of ``img`` by ``sigma_px`` pixels.

    Sigmas under 0.35 pixel return ``img`` itself; large sigmas (over 6 pixels) run on a
    reduced copy (cheap and accurate enough).
    """
    if sigma_px < 0.35:
        return img
    if sigma_px <= 6.0:
        return cv2.GaussianBlur(img, (0, 0), sigma_px, borderType=cv2.BORDER_REFLECT)
    return _enlarge(_reduced_blur(img, sigma_px), img.shape)


def _reduced_blur(img: np.ndarray, sigma_px: float) -> np.ndarray:
    """:func:`blur` by a large sigma (over 6 pixels) before its last step: the blurred copy
    of ``img`` reduced by ``sigma_px // 3``, which :func:`_enlarge` brings back."""
    factor = int(sigma_px // 3)
    rows, cols = img.shape
    small = cv2.resize(img, (cols // factor, rows // factor), interpolation=cv2.INTER_AREA)
    # area averaging already blurs by about factor/sqrt(12) pixels
    s_small = np.sqrt(max(sigma_px**2 - factor**2 / 12.0, 0.25)) / factor
    return cv2.GaussianBlur(small, (0, 0), s_small, borderType=cv2.BORDER_REFLECT)


def _enlarge(small: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``small`` enlarged to ``shape`` (rows, cols) by bilinear interpolation."""
    return cv2.resize(small, (int(shape[1]), int(shape[0])), interpolation=cv2.INTER_LINEAR)


def enlarges_by_rows(small_shape: tuple[int, ...], shape: tuple[int, ...]) -> bool:
    """Whether :func:`enlarge_rows` can enlarge a map of ``small_shape`` to ``shape`` strip
    by strip: ``shape`` (rows, cols) is an integer multiple of it (and it is not empty)."""
    n, m = (int(v) for v in small_shape[:2])
    return n > 0 and m > 0 and int(shape[0]) % n == 0 and int(shape[1]) % m == 0


def enlarge_rows(small: np.ndarray, shape: tuple[int, ...], r0: int, r1: int) -> np.ndarray | None:
    """Rows ``r0:r1`` of ``small`` enlarged to ``shape`` (rows, cols) by bilinear
    interpolation (:func:`_enlarge`), made from the rows of ``small`` they read and one
    more on each side: the same values as the whole enlargement when ``shape`` is an
    integer multiple of ``small``'s shape (each output row is interpolated from the same
    two rows with the same weights, every column as on the whole image); ``None`` when it
    is not (:func:`enlarges_by_rows`; the weights would differ)."""
    if not enlarges_by_rows(small.shape, shape):
        return None
    n = int(small.shape[0])
    rows, cols = int(shape[0]), int(shape[1])
    f = rows // n
    s0, s1 = max(r0 // f - 1, 0), min((r1 - 1) // f + 2, n)
    part = cv2.resize(small[s0:s1], (cols, (s1 - s0) * f), interpolation=cv2.INTER_LINEAR)
    return part[r0 - s0 * f : r1 - s0 * f]


def _median(values: np.ndarray) -> Any:
    """``np.median(values)`` (the same value and numpy scalar type), made with one selection and a
    maximum: ``np.median`` selects the two middle values and the last one (its NaN check),
    8 times the time on a band's 0.6 million noise samples."""
    a = np.asarray(values).ravel()
    if a.size == 0 or (a.dtype.kind in "fc" and np.isnan(a).any()):
        return np.median(a)
    k = a.size // 2
    part = np.partition(a, k)
    if a.size % 2:
        return np.mean(part[k : k + 1])
    part[k - 1] = part[:k].max()  # the lower middle value: the largest below k
    return np.mean(part[k - 1 : k + 1])


def robust_sigma(values: np.ndarray) -> float:
    """Robust standard deviation of ``values``: 1.4826 x their median absolute deviation
    (1.0 for no values, at least 1e-6)."""
    if values.size == 0:
        return 1.0
    med = _median(values)
    mad = _median(np.abs(values - med))
    return float(max(_MAD_TO_SIGMA * mad, 1e-6))


def band_pass_stack(
    img: np.ndarray, pixel_mm: float, mask: np.ndarray, grow_cnr: float | None = None
) -> BandStack:
    """Differences of Gaussians at :data:`BAND_SIGMAS_MM`, each divided by its robust noise
    level inside ``mask`` (the maximum of the seeding bands is :meth:`BandStack.seed_at`,
    the CNR map, their maximum over all bands, :attr:`BandStack.cnr`).

    With ``grow_cnr``, the coarse band is not held when its finer blur is made on a
    reduced copy (pixels under 0.075 mm): only the pixels inside ``mask`` where it reaches
    ``grow_cnr`` and that reduced blur are kept (:attr:`BandStack.pending`), so that the
    stack holds two full-size maps instead of three.
    """
    sigmas_px = [s / pixel_mm for s in BAND_SIGMAS_MM]
    last = len(sigmas_px) - 1
    pend = (
        grow_cnr is not None
        and last - 1 == _SEED_BANDS
        and sigmas_px[last - 1] > 6.0
        and img.dtype == np.float32
    )
    # coarsest first, each band written over the coarser blur of its pair once that is
    # read for the last time, and the finest blur made in row strips: the stack never
    # holds more than three full-size maps (two when the coarse band is pending)
    if sigmas_px[last] > 6.0:  # kept reduced (BandStack.background_level)
        background = _reduced_blur(img, sigmas_px[last])
        coarser = _enlarge(background, img.shape)
    else:
        coarser = background = blur(img, sigmas_px[last])
    bands: list[np.ndarray] = []
    noise: list[float] = []
    pending: PendingBand | None = None
    rows = int(img.shape[0])
    for k in range(last - 1, -1, -1):
        strips = k == 0 and 0.35 <= sigmas_px[0] <= 6.0 and img.dtype == np.float32
        finer_small = _reduced_blur(img, sigmas_px[k]) if pend and k == last - 1 else None
        if strips:
            finer = None
        elif finer_small is not None:
            finer = _enlarge(finer_small, img.shape)  # blur(img, sigmas_px[k])
        elif 0.35 <= sigmas_px[k] <= 6.0 and img.dtype == np.float32:
            finer = _blur_into(np.empty(img.shape, dtype=np.float32), img, sigmas_px[k])
        else:
            finer = blur(img, sigmas_px[k])
        own = coarser is not img and coarser is not background and coarser.dtype == np.float32
        band = coarser if own else np.empty(img.shape, dtype=np.float32)
        if finer is None:  # the noise from the band's strips, then the band scaled
            sigma = robust_sigma(_fine_band_into(band, img, sigmas_px[0], coarser, mask))
            scale = np.float32(1.0 / sigma)
            grow = map_strips(partial(_scale_rows, band, scale, mask, None), rows, _CHUNK_ROWS)
        else:  # the noise from the subsample, then the band made and scaled in one pass
            inside = mask[_NOISE_SUBSAMPLE]  # the difference at these pixels only: half the time
            at = finer[_NOISE_SUBSAMPLE][inside], coarser[_NOISE_SUBSAMPLE][inside]
            sigma = robust_sigma(np.subtract(*at, dtype=np.float32))
            del at
            scale = np.float32(1.0 / sigma)
            make: Callable[[int, int], np.ndarray | None]
            if finer_small is not None and grow_cnr is not None:  # pending: where it grows
                make = partial(_grow_rows, finer, coarser, scale, mask, grow_cnr)
            else:
                make = partial(_band_rows, finer, coarser, band, scale)
            grow = map_strips(make, rows, _CHUNK_ROWS)
            del make  # it holds ``coarser``: a full-size map freed below
        noise.insert(0, sigma)
        if finer_small is not None:
            pending = PendingBand(
                np.concatenate([g for g in grow if g is not None]), finer_small, scale
            )
        else:
            bands.insert(0, band)
        del band, grow  # a pending band's full-size map is freed here
        coarser = finer  # type: ignore[assignment]
    return BandStack(tuple(bands), tuple(noise), background, pending=pending)


def _band_rows(
    finer: np.ndarray, coarser: np.ndarray, out: np.ndarray, scale: np.float32, r0: int, r1: int
) -> None:
    """Write ``(finer - coarser) * scale`` into the rows ``r0:r1`` of ``out`` (which may be
    ``coarser`` itself) while they are in the cache: the values of the difference and then
    the scaling over the whole image."""
    strip = np.subtract(finer[r0:r1], coarser[r0:r1], out=out[r0:r1])
    strip *= scale


def _grow_rows(
    finer: np.ndarray,
    coarser: np.ndarray,
    scale: np.float32,
    mask: np.ndarray,
    grow_cnr: float,
    r0: int,
    r1: int,
) -> np.ndarray:
    """Flat indices (ascending) of the pixels of the rows ``r0:r1`` inside ``mask`` where
    the band ``(finer - coarser) * scale`` reaches ``grow_cnr``, the band made only in the
    columns of those rows' mask pixels (a pending band's map is not kept): the pixels
    :func:`_band_rows` and :func:`_scale_rows` find on the whole rows."""
    m = mask[r0:r1]
    cols = mask_columns(m)
    if cols is None:
        return np.empty(0, dtype=np.intp)
    c0, c1 = int(cols.start), int(cols.stop)
    band = np.subtract(finer[r0:r1, c0:c1], coarser[r0:r1, c0:c1])
    band *= scale
    # flatnonzero and divmod: np.nonzero of a 2-D array costs 40 times as much
    rr, cc = np.divmod(np.flatnonzero((band >= grow_cnr) & m[:, c0:c1]), c1 - c0)
    return (rr + r0) * int(mask.shape[1]) + (cc + c0)


def _scale_rows(
    band: np.ndarray,
    scale: np.float32,
    mask: np.ndarray,
    grow_cnr: float | None,
    r0: int,
    r1: int,
) -> np.ndarray | None:
    """Multiply the rows ``r0:r1`` of ``band`` by ``scale`` in place and, with
    ``grow_cnr``, return the flat indices of those rows' pixels inside ``mask`` where the
    result reaches it."""
    strip = band[r0:r1]
    strip *= scale
    if grow_cnr is None:
        return None
    return np.flatnonzero((strip >= grow_cnr) & mask[r0:r1]) + r0 * int(band.shape[1])


def _blur_rows(img: np.ndarray, sigma_px: float, r0: int, r1: int) -> np.ndarray:
    """Rows ``r0:r1`` of ``blur(img, sigma_px)`` (0.35 to 6 pixels), blurred from those
    rows with a margin of the Gaussian's reach: the same values as on the whole image
    (each output pixel reads the same input pixels with the same weights)."""
    rows = int(img.shape[0])
    reach = int(np.ceil(4 * sigma_px)) + 2  # OpenCV's float kernel spans 4 sigmas
    a, b = max(r0 - reach, 0), min(r1 + reach, rows)
    return blur(img[a:b], sigma_px)[r0 - a : r1 - a]


def _blur_into(out: np.ndarray, img: np.ndarray, sigma_px: float) -> np.ndarray:
    """Write ``blur(img, sigma_px)`` (0.35 to 6 pixels, float32) into ``out`` in strips of
    :data:`_BLUR_ROWS` rows (:func:`_blur_rows`, processed by
    :func:`~calcscope.detection.parallel.map_strips`) and return ``out``."""

    def rows(r0: int, r1: int) -> None:
        out[r0:r1] = _blur_rows(img, sigma_px, r0, r1)

    map_strips(rows, int(img.shape[0]), _BLUR_ROWS)
    return out


def _fine_band_into(
    out: np.ndarray, img: np.ndarray, sigma_px: float, coarser: np.ndarray, mask: np.ndarray
) -> np.ndarray:
    """Write ``blur(img, sigma_px) - coarser`` (float32) into ``out`` (which may be
    ``coarser`` itself), the blur made in strips of :data:`_BLUR_ROWS` rows with a margin of
    the Gaussian's reach (:func:`_blur_rows`; the strips processed by
    :func:`~calcscope.detection.parallel.map_strips`), and return the difference at the
    noise subsample inside ``mask``."""

    def rows(r0: int, r1: int) -> np.ndarray:
        strip = out[r0:r1]
        np.subtract(_blur_rows(img, sigma_px, r0, r1), coarser[r0:r1], out=strip)
        first = (-r0) % 3  # the rows of the image's every-third-row subsample
        return strip[first::3, ::3][mask[r0 + first : r1 : 3, ::3]]

    return np.concatenate(map_strips(rows, int(img.shape[0]), _BLUR_ROWS))


def strips(
    out: np.ndarray, fn: Callable[[slice], np.ndarray], rows: int = _CHUNK_ROWS
) -> np.ndarray:
    """Fill ``out`` strip by strip of ``rows`` rows with ``fn(strip)`` (an element-wise
    expression of the images' rows ``strip``): the same values as the expression on the
    whole image, without its full-image temporaries. The strips are processed by
    :func:`~calcscope.detection.parallel.map_strips` (``fn`` only reads shared arrays)."""

    def fill(r0: int, r1: int) -> None:
        out[r0:r1] = fn(slice(r0, r1))

    map_strips(fill, int(out.shape[0]), rows)
    return out
