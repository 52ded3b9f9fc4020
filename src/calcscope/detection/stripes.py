"""Scanner stripes: straight lines of brighter pixels along a whole film scan.

A film digitiser that reads the film line by line draws a speck of dust on its sensor, or a
faulty sensor element, as a thin stripe along the scan direction: a column (or row) that is
brighter than its neighbours over the whole image. Seen on CBIS-DDSM scans at 0.05 mm
(P_00173's left views: a stripe of three grain sigmas two pixels wide, 4-6 mm inside the
chest-wall edge), where grain specks on the stripe pass for calcifications and chain into
false clusters. A stripe is found from the mean, down each column (across each row) inside
the breast, of the pixel's excess over its neighbours two pixels to each side (the smaller
excess, so that a straight edge, above one side only, is no stripe; clipped at three robust
sigmas, so that dust and calcifications do not move it): grain
averages out over a thousand rows, a stripe does not. A column whose mean excess
reaches ``DetectConfig.stripe_noise_multiple`` times the pixels' own robust noise is a stripe
(on the CBIS-DDSM films: stripes 1.8-2.6, the highest other column or row 0.64).
Candidates centred on a stripe (within ``_REACH_PX``) are dropped: an object a few pixels
across centred on such a line is the line's artefact as far as the image can tell.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calcscope.config import DetectConfig
from calcscope.detection.features import Candidates, subset_candidates

__all__ = ["Stripes", "drop_stripe_candidates", "find_stripes", "on_stripes"]

_STEP = 8
"""Every this many rows (columns) is read for a column's (row's) mean."""
_MIN_SAMPLES = 100
"""A column (row) needs this many breast pixels among those read to be judged (800 pixels
of breast along it: 40 mm at 0.05 mm)."""
_REACH_PX = 2
"""A candidate whose centre lies this close to a stripe (pixels) is on it."""
_CLIP = 3.0
"""Excesses are clipped at this many robust sigmas before a column's mean is taken."""


@dataclass(frozen=True)
class Stripes:
    """Stripe columns and rows of an image (bool, one per column / row)."""

    cols: np.ndarray
    rows: np.ndarray

    @property
    def count(self) -> int:
        """Number of stripe columns and rows."""
        return int(self.cols.sum() + self.rows.sum())


def _stripe_columns(img: np.ndarray, mask: np.ndarray, multiple: float) -> np.ndarray:
    """Which columns of ``img`` are stripes (bool, one per column): the mean of each pixel's
    excess over its neighbours two columns away (the smaller of the two: a line stands above
    both sides, an edge above one only), clipped at ``_CLIP`` robust sigmas (so that a bright
    speck does not move it), on every ``_STEP``-th row and breast pixels only, reaches
    ``multiple`` robust sigmas; none with too few breast pixels or no noise."""
    none = np.zeros(img.shape[1], dtype=bool)
    sub = img[::_STEP].astype(np.float32, copy=False)
    inside = mask[::_STEP, 2:-2]
    centre_px = sub[:, 2:-2]
    excess = np.minimum(centre_px - sub[:, :-4], centre_px - sub[:, 4:])
    sample = excess[::4][inside[::4]]
    if sample.size < _MIN_SAMPLES:
        return none
    centre = float(np.median(sample))
    sigma = 1.4826 * float(np.median(np.abs(sample - centre)))
    if sigma <= 0:
        return none
    clipped = np.clip(excess - np.float32(centre), -_CLIP * sigma, _CLIP * sigma)
    counts = inside.sum(axis=0)
    sums = np.where(inside, clipped, 0.0).sum(axis=0)
    judged = counts >= _MIN_SAMPLES
    mean = np.zeros(img.shape[1])
    mean[2:-2][judged] = sums[judged] / counts[judged]
    return mean >= multiple * sigma


def find_stripes(image: np.ndarray, mask: np.ndarray, config: DetectConfig) -> Stripes:
    """The stripe columns and rows of ``image`` (see the module's text) inside ``mask``."""
    img = np.asarray(image)
    m = np.asarray(mask, dtype=bool)
    multiple = config.stripe_noise_multiple
    return Stripes(
        cols=_stripe_columns(img, m, multiple), rows=_stripe_columns(img.T, m.T, multiple)
    )


def on_stripes(centres_rc: np.ndarray, stripes: Stripes) -> np.ndarray:
    """Whether each of ``centres_rc`` ((n, 2) row, col) lies on a stripe (bool array)."""
    n = len(centres_rc)
    if n == 0 or stripes.count == 0:
        return np.zeros(n, dtype=bool)
    out = np.zeros(n, dtype=bool)
    for flags, axis in ((stripes.cols, 1), (stripes.rows, 0)):
        where = np.flatnonzero(flags)
        if where.size == 0:
            continue
        at = np.asarray(centres_rc, dtype=np.float64)[:, axis]
        nearest = np.abs(at[:, None] - where[None, :]).min(axis=1)
        out |= nearest <= _REACH_PX
    return out


def drop_stripe_candidates(
    image: np.ndarray, mask: np.ndarray, cands: Candidates, config: DetectConfig
) -> Candidates:
    """``cands`` without those centred on a scanner stripe of ``image`` (see the module's
    text); all of them at pixels over ``config.speck_max_pixel_mm`` or without a stripe."""
    if len(cands) == 0 or not 0.0 < cands.pixel_mm <= config.speck_max_pixel_mm:
        return cands
    stripes = find_stripes(image, mask, config)
    if stripes.count == 0:
        return cands
    return subset_candidates(cands, ~on_stripes(cands.center_rc, stripes))
