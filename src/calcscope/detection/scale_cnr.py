"""A candidate's contrast in a band matched to a calcification, in units of its local noise.

On film scanned at 0.05 mm the finest band the detector reads (0.05-0.15 mm) is dominated by
grain one or two pixels across, so a faint 0.15-0.6 mm calcification scores low there. Its
*scale-matched* CNR is read in a difference of Gaussians matched to such a speck (sigmas
``SCALE_SIGMAS_MM``, 0.10 and 0.30 mm), where grain has averaged out: the band's peak within
2 pixels of the candidate's centre divided by the band's local rms in a square window of
``DetectConfig.scale_cnr_window_mm`` (2 mm; squares clipped at 9 times the band's global
robust variance, so that a bright neighbour does not inflate it). A candidate that reaches
``DetectConfig.scale_cnr_min`` (4.25), is not sharper than the imaging chain draws
(:func:`calcscope.detection.classifier.too_sharp`) and is at most
``scale_cnr_max_diameter_mm`` across counts as a *sure member* of a cluster
(``ClusterConfig.sure_members``), whatever its score; its score is left as the classifier
gave it, so it never becomes a detection on its own (on phantoms at 0.05 mm the rule makes
tens of non-calcification candidates sure). Only at pixels up to
``DetectConfig.scale_cnr_max_pixel_mm`` (0.06 mm): measured on CBIS-DDSM film at 0.05 mm
(docs/accuracy.md, ``benchmarks/measure_scale_cnr.py``).

Memory: the band is made in strips of rows with the blurs' margins (a few float32 strips at
a time, about 0.5 bytes per pixel of the image for its subsampled values), so the step adds
nothing to the analysis's peak; the peak and the noise are read in each candidate's window
only.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from calcscope.config import DetectConfig
from calcscope.detection.bands import blur
from calcscope.detection.candidates import TopHat
from calcscope.detection.classifier import too_sharp
from calcscope.detection.faint_clusters import faint_sure
from calcscope.detection.features import Candidates, subset_candidates
from calcscope.detection.labels import SparseLabels
from calcscope.detection.outline import outline_calcifications
from calcscope.detection.parallel import map_strips, mask_columns
from calcscope.model import Calcification, Mammogram

__all__ = [
    "SCALE_SIGMAS_MM",
    "scale_cnr_active",
    "scale_matched_cnr",
    "scale_sure",
    "with_scale_cnr",
]

SCALE_SIGMAS_MM = (0.10, 0.30)
"""Gaussian sigmas (mm) of the difference of Gaussians matched to a 0.15-0.6 mm speck."""
_PEAK_RADIUS_PX = 2
"""The band's peak is looked for within this many pixels (a 5 x 5 square) of the centre."""
_CLIP_SIGMAS = 3.0
"""Squares of the band are clipped at this many global robust sigmas, squared."""
_STRIP_ROWS = 512
"""Rows of a strip of the band (made with its margins, then freed)."""


def scale_cnr_active(pixel_mm: float, config: DetectConfig) -> bool:
    """Whether the scale-matched CNR is measured at pixels of ``pixel_mm`` (mm)."""
    return config.scale_cnr_sure and 0.0 < pixel_mm <= config.scale_cnr_max_pixel_mm


def _strip_band(
    img: np.ndarray, rows: tuple[int, int], cols: tuple[int, int], margin: int, pixel_mm: float
) -> tuple[np.ndarray, int, int]:
    """The scale-matched band over ``rows`` and ``cols`` (first, end) of ``img``, made on
    them and ``margin`` more on each side (the blurs' reach: the pixels asked for are as on
    the whole image); returns the band of the padded box and its first row and column."""
    top, left = max(rows[0] - margin, 0), max(cols[0] - margin, 0)
    slab = img[
        top : min(rows[1] + margin, img.shape[0]), left : min(cols[1] + margin, img.shape[1])
    ]
    band = blur(slab, SCALE_SIGMAS_MM[0] / pixel_mm)
    band = band - blur(slab, SCALE_SIGMAS_MM[1] / pixel_mm)
    return band, top, left


def _global_sigma(img: np.ndarray, mask: np.ndarray, margin: int, pixel_mm: float) -> float:
    """Robust sigma (1.4826 x median absolute value) of the band inside ``mask``, on every
    third row and column, made strip by strip over the mask's columns (the strips on the
    thread pool, :func:`~calcscope.detection.parallel.map_strips`; the values joined in
    row order, so the median is the serial loop's)."""

    def strip(r0: int, r1: int) -> np.ndarray:
        first = r0 + (-r0) % 3
        inside = mask_columns(mask[first:r1:3])
        if inside is None:
            return np.zeros(0, np.float32)
        c0, c1 = int(inside.start), int(inside.stop)
        band, top, left = _strip_band(img, (r0, r1), (c0, c1), margin, pixel_mm)
        c_first = c0 + (-c0) % 3
        sub = band[first - top : r1 - top : 3, c_first - left : c1 - left : 3]
        return np.abs(sub[mask[first:r1:3, c_first:c1:3]])

    values = map_strips(strip, int(img.shape[0]), _STRIP_ROWS)
    inside_values = np.concatenate(values) if values else np.zeros(0, np.float32)
    return 1.4826 * float(np.median(inside_values)) if inside_values.size else 0.0


def scale_matched_cnr(
    image: np.ndarray,
    mask: np.ndarray,
    centres_rc: np.ndarray,
    pixel_mm: float,
    window_mm: float,
) -> np.ndarray:
    """Scale-matched CNR at each of ``centres_rc`` ((n, 2) pixel rows and columns).

    The band is made in strips of rows (twice: its global robust sigma first), so that
    only a strip of it is held at a time per thread of the pool
    (:func:`~calcscope.detection.parallel.map_strips`: the values are the serial loop's).

    Parameters
    ----------
    image : np.ndarray
        The image (any real type; read as float32).
    mask : np.ndarray
        Breast mask (bool), where the band's global robust sigma is measured.
    centres_rc : np.ndarray
        (n, 2) candidate centres, (row, col) pixels.
    pixel_mm : float
        Pixel size (mm).
    window_mm : float
        Side (mm) of the square window of the local noise.

    Returns
    -------
    np.ndarray
        (n,) float64: the band's peak within 2 pixels of each centre over the band's
        clipped local rms in the window (0 where the noise is 0).
    """
    n = len(centres_rc)
    if n == 0:
        return np.zeros(0)
    img = np.asarray(image, dtype=np.float32)
    half = (int(round(window_mm / pixel_mm)) | 1) // 2
    p = _PEAK_RADIUS_PX
    margin = int(np.ceil(4 * SCALE_SIGMAS_MM[1] / pixel_mm)) + max(half, p) + 8
    cap = np.float32((_CLIP_SIGMAS * _global_sigma(img, mask, margin, pixel_mm)) ** 2)
    rows_n, cols_n = img.shape
    rows = np.clip(np.rint(centres_rc[:, 0]).astype(int), 0, rows_n - 1)
    cols = np.clip(np.rint(centres_rc[:, 1]).astype(int), 0, cols_n - 1)
    out = np.zeros(n)

    def strip(r0: int, r1: int) -> None:  # writes only its own candidates' entries
        here = np.flatnonzero((rows >= r0) & (rows < r1))
        if here.size == 0:
            return
        c_span = (int(cols[here].min()) - half - p, int(cols[here].max()) + half + p + 1)
        band, top, left = _strip_band(img, (r0, r1), c_span, margin, pixel_mm)
        for k in here:
            r, c = int(rows[k]) - top, int(cols[k]) - left
            peak = float(band[max(r - p, 0) : r + p + 1, max(c - p, 0) : c + p + 1].max())
            w = band[max(r - half, 0) : r + half + 1, max(c - half, 0) : c + half + 1]
            noise = float(np.sqrt(np.minimum(w * w, cap).mean()))
            out[k] = peak / noise if noise > 0 else 0.0

    # strips without candidates cost nothing; the others on the thread pool
    map_strips(strip, rows_n, _STRIP_ROWS)
    return out


def scale_sure(cands: Candidates, scale_cnr: np.ndarray, config: DetectConfig) -> np.ndarray:
    """Which candidates count as sure cluster members by their scale-matched CNR.

    Those reaching ``config.scale_cnr_min``, at most ``config.scale_cnr_max_diameter_mm``
    across and not too sharp (:func:`~calcscope.detection.classifier.too_sharp`); none
    where the rule is off (:func:`scale_cnr_active`). Returns a bool array.
    """
    n = len(cands)
    if n == 0 or not scale_cnr_active(cands.pixel_mm, config):
        return np.zeros(n, dtype=bool)
    return (
        (scale_cnr >= config.scale_cnr_min)
        & (cands.diameter_mm <= config.scale_cnr_max_diameter_mm)
        & ~too_sharp(cands, config)
    )


def with_scale_cnr(
    mammogram: Mammogram,
    img: np.ndarray,
    mask: np.ndarray,
    labels: np.ndarray | SparseLabels,
    cands: Candidates,
    calcs: tuple[Calcification, ...],
    tophat: TopHat,
    cfg: DetectConfig,
) -> tuple[Calcification, ...]:
    """``calcs`` with their scale-matched CNR (:func:`scale_matched_cnr`), and
    the candidates it makes sure cluster members that score under ``min_score`` added as
    possible calcifications (after the others, ids following theirs; scores unchanged).

    The CNR is measured only at the candidates it could make sure (not too sharp, small
    enough); the others get None.
    """
    eligible = np.flatnonzero(scale_sure(cands, np.full(len(cands), np.inf), cfg))
    cnr = np.full(len(cands), np.nan)
    cnr[eligible] = scale_matched_cnr(
        img, mask, cands.center_rc[eligible], mammogram.pixel_mm, cfg.scale_cnr_window_mm
    )
    sure = scale_sure(cands, np.nan_to_num(cnr, nan=-np.inf), cfg)
    if cfg.faint_cluster_sure:
        sure |= faint_sure(mammogram, mask, cands, cnr, sure, cfg)
    min_score = min(cfg.min_score, cfg.operating_score)
    extra = sure & (cands.score < min_score)
    added: tuple[Calcification, ...] = ()
    if extra.any():
        added = outline_calcifications(
            mammogram,
            labels,
            subset_candidates(cands, extra),
            0.0,
            tophat.residual,
            tophat.sigma,
        )
    by_centre = {
        (float(r), float(c)): k for k, (r, c) in enumerate(cands.center_rc) if not np.isnan(cnr[k])
    }

    def measured(calc: Calcification, new_id: int) -> Calcification:
        k = by_centre.get(calc.center_rc)
        if k is None:
            return dataclasses.replace(calc, id=new_id)
        return dataclasses.replace(
            calc, id=new_id, scale_cnr=float(cnr[k]), scale_sure=bool(sure[k])
        )

    return tuple(measured(c, i) for i, c in enumerate((*calcs, *added), start=1))
