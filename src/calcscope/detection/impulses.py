"""Single-pixel impulses: dead or hot pixels, dust at the detector, corrupt bytes.

At pixels of 0.1 mm or finer no calcification is one isolated pixel: the screen or
detector, the focal spot and the scanner spread every real speck over its neighbours. A
pixel that stands above the highest of its 8 neighbours (or below the lowest) by many
times the image's own noise is therefore an impulse the imaging chain cannot draw: a dead
or hot pixel, a dust speck on the detector, or a flipped byte of a file without a checksum
(RLE). :func:`remove_impulses` finds them, vectorised, and replaces each by the median of
its 3 x 3 neighbourhood, before anything else of the detector sees the image. It runs at
pixels over ``DetectConfig.speck_max_pixel_mm`` (0.06 mm) and up to
``DetectConfig.impulse_max_pixel_mm`` (0.1 mm): finer, the sharpness rules already keep
such specks out of clusters; coarser, a calcification may be one or two pixels.

It also replaces a *run*: 2 to 128 horizontally adjacent pixels of one row that all stand
above the highest pixel of the ring around the run (the rows above and below it, one
column wider on each side, and the pixel just left and just right of it) by the same
margin, or all below the lowest. That is what a flipped value byte of an RLE replicate
run draws (PackBits: one byte repeated 2 to 128 times along a row, so the run's pixels
all move by the same amount): a one-row streak with sharp ends. A calcification, even a
fine linear one drawn one pixel thick, is blurred over the rows beside it or continues
into them; on the phantoms no run stands more than 9.6 noise units above its ring (the
margin is 16), the two corrupt pairs of the fuzz benchmark 34 and 68 (docs/accuracy.md,
"Hostile input").

The noise is the robust standard deviation (1.4826 x MAD) of ``image - median3x3(image)``
inside the breast, sampled on every third pixel: the finest detail the image holds, which
is what an impulse is measured against. The work runs in row strips, each cut to the
columns of its breast pixels and the filters' reach (the rows and columns outside the
breast are never filtered: about half the image of a full-field view), so no full-size
temporary is allocated besides the output copy (made only when something is replaced).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from calcscope.config import DetectConfig
from calcscope.detection.bands import robust_sigma
from calcscope.detection.parallel import map_strips, mask_columns

__all__ = ["Impulses", "impulse_noise", "impulse_rule_applies", "remove_impulses"]

_STRIP_ROWS = 32
"""Rows per strip (each strip is read with one row of margin above and below). Small: the
strips run on the detector's thread pool, and a worker thread's temporaries stay in its
own malloc arena (256 rows held 3.5 bytes per pixel more than the serial loop, 32 rows
0.5; the CPU time is the same)."""
_ABOVE_BELOW = np.array([[1, 1, 1], [0, 0, 0], [1, 1, 1]], dtype=np.uint8)
"""The 6 pixels of the rows above and below a pixel."""
_MAX_RUN = 128
"""Longest run replaced: the longest replicate run of RLE (PackBits) is 128 bytes."""


@dataclass(frozen=True)
class Impulses:
    """The image with its single-pixel impulses replaced.

    Attributes
    ----------
    image : np.ndarray
        The image (float32), impulses replaced by their 3 x 3 median; the input array
        itself when nothing was replaced.
    rows, cols : np.ndarray
        (row, col) of each replaced pixel (int64), in raster order.
    noise : float
        The robust noise level the margin was measured in, image units (0.0 when the
        rule was off).
    """

    image: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    noise: float

    @property
    def count(self) -> int:
        """Number of pixels replaced."""
        return int(self.rows.size)


def _median3(block: np.ndarray) -> np.ndarray:
    """3 x 3 median of a float32 block (OpenCV's border: the edge pixel replicated)."""
    return cv2.medianBlur(np.ascontiguousarray(block), 3)


def impulse_noise(img: np.ndarray, mask: np.ndarray) -> float:
    """Robust noise of ``img`` (float32) inside ``mask``: 1.4826 x the MAD of
    ``img - median3x3(img)`` on every third pixel in each direction (image units; at
    least 1e-6, 1.0 when ``mask`` is empty)."""
    n_rows, n_cols = (int(v) for v in img.shape)

    def strip(r0: int, r1: int) -> np.ndarray:
        first = (-r0) % 3  # the strip's rows of the every-third-row subsample
        sub_mask = mask[r0 + first : r1 : 3]
        cols = mask_columns(sub_mask[:, ::3])
        if cols is None:  # no sampled pixel of the breast in these rows
            return np.empty(0, np.float32)
        # the median's columns: those of the sampled mask pixels, one more each side
        c_lo, c_hi = cols.start * 3, (cols.stop - 1) * 3 + 1
        a, b = max(c_lo - 1, 0), min(c_hi + 1, n_cols)
        a0, a1 = max(r0 - 1, 0), min(r1 + 1, n_rows)
        block = np.ascontiguousarray(img[a0:a1, a:b])
        at = (slice(r0 - a0 + first, r1 - a0, 3), slice(c_lo - a, c_hi - a, 3))
        resid = block[at] - _median3(block)[at]
        return resid[sub_mask[:, c_lo:c_hi:3]]

    samples = map_strips(strip, n_rows, _STRIP_ROWS)  # in row order
    return robust_sigma(np.concatenate(samples) if samples else np.empty(0, np.float32))


def _hits(block: np.ndarray, inner: slice, mask: np.ndarray, margin: np.float32) -> np.ndarray:
    """The impulses of the rows ``inner`` of ``block`` inside ``mask`` (bool, shape of
    ``block[inner]``): the pixels standing more than ``margin`` above the highest of their 8
    neighbours (or below the lowest), and those of a one-row run of 2 to :data:`_MAX_RUN`
    pixels standing so out of its ring (the rows above and below, one column wider each
    side, and the two pixels that end it). ``block``'s first and last columns are those of
    the image (the border replicated), or outside ``mask``.

    A pixel's 8 neighbours are the 6 above and below, which the runs are measured against
    too, and the two beside it: as ``b - max(x, y)`` rounds to ``min(b - x, b - y)``, a
    single pixel is a candidate of the rows above and below (one dilation or erosion for
    both rules) that also stands out of the two beside it, compared at the candidates only.
    """
    hits = np.zeros(mask.shape, dtype=bool)
    b = block[inner]
    last = b.shape[1] - 1
    # above: ring = the highest of the rows above and below; below: the same with the
    # signs turned (max(-x) = -min(x) and -x - -y = y - x exactly, in float32 as in
    # float64), without a negated copy of the block
    for above in (True, False):
        morph = cv2.dilate if above else cv2.erode
        ring = morph(block, _ABOVE_BELOW, borderType=cv2.BORDER_REPLICATE)[inner]
        cand = ((b - ring) if above else (ring - b)) > margin
        cand &= mask
        rr, cc = np.divmod(np.flatnonzero(cand), cand.shape[1])  # few: 2-D nonzero is slow
        if rr.size == 0:
            continue
        left, right = b[rr, np.maximum(cc - 1, 0)], b[rr, np.minimum(cc + 1, last)]
        if above:
            stands = b[rr, cc] - np.maximum(left, right)
        else:
            stands = np.minimum(left, right) - b[rr, cc]
        single = stands > margin
        hits[rr[single], cc[single]] = True
        _add_runs(hits, b, ring, cand, above, margin)
    return hits


def _add_runs(
    hits: np.ndarray,
    b: np.ndarray,
    ring: np.ndarray,
    cand: np.ndarray,
    above: bool,
    margin: np.float32,
) -> None:
    """Mark in ``hits`` the runs of 2 to :data:`_MAX_RUN` pixels of ``cand`` (the pixels of
    ``b`` standing more than ``margin`` above ``ring``, the highest of the rows above and
    below; below the lowest when not ``above``) that stand so out of the two pixels that
    end them too. ``cand`` is changed."""
    cand[:, 0] = cand[:, -1] = False  # a run needs a pixel on each side
    some = np.flatnonzero(cand.any(axis=1))  # the few rows with a candidate
    if some.size == 0:
        return
    padded = np.zeros((some.size, cand.shape[1] + 2), dtype=np.int8)
    padded[:, 1:-1] = cand[some]
    step = np.diff(padded, axis=1)
    at, starts = np.nonzero(step == 1)
    ends = np.nonzero(step == -1)[1]  # exclusive; same order (raster)
    rows = some[at]
    for r, c0, c1 in zip(rows, starts, ends, strict=True):
        if not 2 <= c1 - c0 <= _MAX_RUN:
            continue
        if above:
            top = max(float(ring[r, c0:c1].max()), float(b[r, c0 - 1]), float(b[r, c1]))
            stands = float(b[r, c0:c1].min()) - top
        else:
            low = min(float(ring[r, c0:c1].min()), float(b[r, c0 - 1]), float(b[r, c1]))
            stands = low - float(b[r, c0:c1].max())
        if stands > margin:
            hits[r, c0:c1] = True


def impulse_rule_applies(pixel_mm: float, cfg: DetectConfig | None = None) -> bool:
    """Whether :func:`remove_impulses` replaces anything at pixels of ``pixel_mm`` (mm):
    above ``cfg.speck_max_pixel_mm`` (the sharpness rules' range) and up to
    ``cfg.impulse_max_pixel_mm``."""
    cfg = cfg or DetectConfig()
    return cfg.speck_max_pixel_mm < pixel_mm <= cfg.impulse_max_pixel_mm


def remove_impulses(
    img: np.ndarray, mask: np.ndarray, pixel_mm: float, cfg: DetectConfig | None = None
) -> Impulses:
    """Replace the single-pixel impulses of ``img`` inside ``mask``, and the one-row runs
    of 2-128 pixels that stand out of their ring the same way, by their 3 x 3 median.

    Parameters
    ----------
    img : np.ndarray
        The image (float32, 2-D).
    mask : np.ndarray
        The breast (bool, same shape): only impulses inside it are replaced.
    pixel_mm : float
        Pixel size (mm). Over ``cfg.impulse_max_pixel_mm`` (e.g. mini-MIAS at 0.2 mm,
        where a calcification may be one or two pixels) nothing is replaced; nor at
        pixels up to ``cfg.speck_max_pixel_mm``, where the sharpness rules
        (:func:`~calcscope.detection.classifier.too_sharp`) already keep a one-pixel
        impulse from being a calcification, and replacing only the peak pixel of a dust
        speck a few pixels across would blunt it past those rules (measured on
        CBIS-DDSM film at 0.05 mm: a false cluster on P_00173 LEFT CC).
    cfg : DetectConfig, optional
        ``impulse_max_pixel_mm`` and ``impulse_noise_multiple`` (the margin, in units of
        :func:`impulse_noise`, by which an impulse exceeds the highest of its 8
        neighbours or falls below the lowest).

    Returns
    -------
    Impulses
        The image and the replaced pixels (a run's pixels each count).
    """
    cfg = cfg or DetectConfig()
    none = np.empty(0, dtype=np.int64)
    if not impulse_rule_applies(pixel_mm, cfg) or img.ndim != 2 or min(img.shape) < 3:
        return Impulses(img, none, none, 0.0)
    noise = impulse_noise(img, mask)
    margin = np.float32(cfg.impulse_noise_multiple * noise)
    n_rows = int(img.shape[0])

    def strip(r0: int, r1: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        # the columns of the strip's breast pixels and two more each side (the reach of
        # the filters and of a run's ends): at the breast's pixels every filter gives the
        # values of the whole rows, and no candidate lies outside it
        cols = mask_columns(mask[r0:r1], 2)
        if cols is None:
            return None
        m = mask[r0:r1, cols]
        a0, a1 = max(r0 - 1, 0), min(r1 + 1, n_rows)  # one row of margin
        block = np.ascontiguousarray(img[a0:a1, cols])
        inner = slice(r0 - a0, r1 - a0)
        hit = _hits(block, inner, m, margin)
        if not hit.any():
            return None
        rr, cc = np.nonzero(hit)
        return (rr + r0, cc + cols.start, _median3(block)[inner][rr, cc]) if rr.size else None

    # the strips by the detector's thread pool, in row order
    found = [f for f in map_strips(strip, n_rows, _STRIP_ROWS) if f is not None]
    found_r = [f[0] for f in found]
    found_c = [f[1] for f in found]
    values = [f[2] for f in found]
    if not found_r:
        return Impulses(img, none, none, noise)
    rows = np.concatenate(found_r).astype(np.int64)
    cols = np.concatenate(found_c).astype(np.int64)
    out = img.astype(np.float32, copy=True)
    out[rows, cols] = np.concatenate(values)
    return Impulses(out, rows, cols, noise)
