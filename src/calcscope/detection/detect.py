"""Calcification detection: multi-scale spot finding in millimetres.

Method
------
1. *Band-pass stack.* Differences of Gaussians at sigmas of 0.05, 0.15, 0.45 and 1.35 mm
   give three bands tuned to specks of about 0.1-0.3, 0.3-1 and 1-3 mm. Each band is
   divided by its robust noise level (1.4826 x MAD inside the breast) and the maximum
   over bands is the contrast-to-noise map (CNR).
2. *Coarse deposits.* A grey opening with a disc of ``background_mm`` (6 mm) on a copy
   reduced to about 0.25 mm per pixel estimates the tissue background; the top-hat
   residual ``R = image - background`` shows whole coarse calcifications up to that size,
   whose centres a band-pass alone would miss.
3. *Hysteresis.* Pixels above ``grow_cnr`` form regions; a region is a candidate when it
   holds a seed pixel above ``seed_cnr``. Each region is split into its calcifications
   at half the local fine-band peak (the outline, which keeps neighbours and shapes
   apart); sizes are measured on that outline grown to the visible edge, 20 % of the
   peak height in ``R`` above the surrounding tissue (``_EXTENT_FRACTION``), so they do
   not depend on the detection threshold.
4. *Features and score.* Per-candidate features are computed for all candidates at once
   with label-indexed reductions; the score in [0, 1] is the mean probability of the
   shipped LightGBM ensemble (with ``model = "cnr"``, a logistic function of the peak CNR;
   see :func:`score_candidates`). Outlines and shape descriptors are computed only for
   candidates kept at the operating point; besides the pixel outline's circularity, each
   gets the circularity of its half-maximum contour traced between pixels
   (:func:`_contour_circularity`), which still shows the shape of a speck a few pixels
   across; each of 1 mm or more also gets its deposit's whole outline at 30 % of its
   height (:func:`_deposit_outline`), which holds the lobes of a lobulated deposit that
   the half-peak outlines split, and whose corners, straight edges and inscribed disc
   tell popcorn from dystrophic deposits.
5. *Sharp coarse deposits.* At pixels up to ``coarse_max_pixel_mm``, top-hat objects of
   ``coarse_min_mm`` or more whose edge is as sharp as the blur allows
   (:func:`_sharp_deposits`) and that no detection covers are added as calcifications
   scoring ``coarse_score`` (:func:`_add_coarse_deposits`): the classifier, trained mostly
   on specks, can score a large faint deposit as tissue.

All images are float32 and every filter is an OpenCV call on the whole image; the only
Python loop is over kept calcifications, to trace their outlines.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree
from skimage.measure import find_contours

from calcscope.config import DetectConfig
from calcscope.errors import ConfigError
from calcscope.imaging.preprocess import Preprocessed
from calcscope.model import Calcification, DepositOutline, Mammogram

__all__ = [
    "Candidates",
    "Detection",
    "detect",
    "score_candidates",
    "load_model",
    "model_files",
    "BAND_SIGMAS_MM",
    "MODEL_DIR",
]

BAND_SIGMAS_MM: tuple[float, ...] = (0.05, 0.15, 0.45, 1.35)
_MAD_TO_SIGMA = 1.4826
_SEED_BANDS = 2  # bands 0 and 1 (sharp detail up to about 1 mm) may seed a candidate


@dataclass(frozen=True)
class Candidates:
    """Feature table of every candidate (one entry per candidate in each array)."""

    label: np.ndarray  # label id in the component image
    center_rc: np.ndarray  # (n, 2) float
    bbox_rc: np.ndarray  # (n, 4) int: row0, col0, row1, col1
    peak_cnr: np.ndarray
    band_cnr: np.ndarray  # (n, n_bands) peak CNR per band
    tophat_z: np.ndarray  # peak top-hat residual / its robust sigma
    contrast: np.ndarray  # peak - base of the top-hat residual, image units
    area_mm2: np.ndarray  # half-maximum area
    diameter_mm: np.ndarray  # equivalent-circle diameter of the half-maximum area
    major_mm: np.ndarray  # second-moment major axis length
    minor_mm: np.ndarray
    mean_intensity: np.ndarray  # local tissue brightness (background estimate)
    local_rms: np.ndarray  # rms of the finest band's CNR within about 2 mm (texture, grain)
    neighbours: np.ndarray  # other candidates within 5 mm
    score: np.ndarray
    pixel_mm: float = 0.1

    def __len__(self) -> int:
        return int(self.label.shape[0])

    def feature_matrix(self) -> np.ndarray:
        """Features as an ``(n, k)`` float32 matrix, columns in :attr:`FEATURE_NAMES`."""
        return np.column_stack(
            [
                self.peak_cnr,
                *self.band_cnr.T,
                self.tophat_z,
                self.contrast,
                self.area_mm2,
                self.diameter_mm,
                self.major_mm,
                self.minor_mm,
                1.0 - self.minor_mm / np.maximum(self.major_mm, 1e-6),
                self.mean_intensity,
                self.local_rms,
                self.peak_cnr / np.maximum(self.local_rms, 0.1),
                self.neighbours,
                np.full(self.label.shape, self.pixel_mm),
            ]
        ).astype(np.float32)

    FEATURE_NAMES = (
        "peak_cnr",
        "band0_cnr",
        "band1_cnr",
        "band2_cnr",
        "tophat_z",
        "contrast",
        "area_mm2",
        "diameter_mm",
        "major_mm",
        "minor_mm",
        "elongation",
        "mean_intensity",
        "local_rms",
        "local_cnr",
        "neighbours",
        "pixel_mm",
    )


@dataclass(frozen=True)
class Detection:
    """Detector output: kept calcifications, the full candidate table, noise levels."""

    calcifications: tuple[Calcification, ...]
    candidates: Candidates
    band_noise: tuple[float, ...]
    tophat_noise: float


def _blur(img: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian blur; large sigmas run on a reduced copy (cheap and accurate enough)."""
    if sigma_px < 0.35:
        return img
    if sigma_px <= 6.0:
        return cv2.GaussianBlur(img, (0, 0), sigma_px, borderType=cv2.BORDER_REFLECT)
    factor = int(sigma_px // 3)
    rows, cols = img.shape
    small = cv2.resize(img, (cols // factor, rows // factor), interpolation=cv2.INTER_AREA)
    # area averaging already blurs by about factor/sqrt(12) pixels
    s_small = np.sqrt(max(sigma_px**2 - factor**2 / 12.0, 0.25)) / factor
    small = cv2.GaussianBlur(small, (0, 0), s_small, borderType=cv2.BORDER_REFLECT)
    return cv2.resize(small, (cols, rows), interpolation=cv2.INTER_LINEAR)


def _robust_sigma(values: np.ndarray) -> float:
    if values.size == 0:
        return 1.0
    med = np.median(values)
    mad = np.median(np.abs(values - med))
    return float(max(_MAD_TO_SIGMA * mad, 1e-6))


def _on_quarter_mm_grid(
    img: np.ndarray, pixel_mm: float, op: Callable[[np.ndarray, float], np.ndarray]
) -> np.ndarray:
    """``op(small, small_pixel_mm)`` applied on a copy of ``img`` reduced to about
    0.25 mm/pixel (area averaging), its result brought back to ``img``'s grid: for the
    morphology of millimetre-sized structures, cheap at any resolution."""
    factor = max(1, int(round(0.25 / pixel_mm)))
    rows, cols = img.shape
    small = (
        cv2.resize(img, (cols // factor, rows // factor), interpolation=cv2.INTER_AREA)
        if factor > 1
        else img
    )
    out = op(small, pixel_mm * factor)
    if factor > 1:
        out = cv2.resize(out, (cols, rows), interpolation=cv2.INTER_LINEAR)
    return out


def _background(img: np.ndarray, pixel_mm: float, size_mm: float) -> np.ndarray:
    """Tissue background by grey opening (disc of ``size_mm``) at about 0.25 mm/pixel."""

    def opening(small: np.ndarray, small_mm: float) -> np.ndarray:
        d = max(3, int(round(size_mm / small_mm)) | 1)
        se = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (d, d))
        opened = cv2.morphologyEx(small, cv2.MORPH_OPEN, se, borderType=cv2.BORDER_REFLECT)
        return cv2.GaussianBlur(opened, (0, 0), 1.0)

    return _on_quarter_mm_grid(img, pixel_mm, opening)


MODEL_DIR = Path(__file__).resolve().parent / "models"


def model_files(name: str) -> list[Path]:
    """The LightGBM text files of the candidate model ``name``.

    A shipped name (``"candidates-v2"``) is looked up in ``calcscope/models``; a name with
    a directory part is a path without its suffix, as written by
    ``scripts/train_detector.py`` during cross-validation. The model is the single file
    ``<name>.lgb.txt`` or, for an ensemble, the files ``<name>.1.lgb.txt``,
    ``<name>.2.lgb.txt``, ...; a name ending in ``.txt`` is one file.
    """
    if name.endswith(".txt"):
        return [Path(name)]
    base = Path(name) if Path(name).name != name else MODEL_DIR / name
    single = base.with_name(base.name + ".lgb.txt")
    if single.is_file():
        return [single]
    return sorted(base.parent.glob(base.name + ".*.lgb.txt"))


@functools.lru_cache(maxsize=4)
def load_model(name: str) -> tuple[Any, ...]:
    """The LightGBM candidate classifier(s) of ``name`` (see :func:`model_files`): one
    booster, or the members of an ensemble whose predictions are averaged."""
    import lightgbm

    paths = model_files(name)
    if not paths or not all(p.is_file() for p in paths):
        raise ConfigError(f"detector model {name!r} not found (looked for {name}.lgb.txt)")
    return tuple(lightgbm.Booster(model_file=str(p)) for p in paths)


def score_candidates(cands: Candidates, config: DetectConfig) -> np.ndarray:
    """Detector confidence in [0, 1] of every candidate.

    With ``config.model == "cnr"`` a logistic function of the peak CNR (0.5 at
    ``score_cnr_mid``); otherwise the probability given by the shipped LightGBM
    candidate classifier of that name (trained by ``scripts/train_detector.py``; for an
    ensemble, the mean of its members' probabilities). The operating point
    (``operating_score``) is a threshold on this score.
    """
    if len(cands) == 0:
        return np.zeros(0)
    if config.model == "cnr":
        z = (cands.peak_cnr - config.score_cnr_mid) / config.score_cnr_width
        return (1.0 / (1.0 + np.exp(-z))).astype(np.float64)
    x = cands.feature_matrix()
    members = load_model(config.model)
    return np.mean([np.asarray(b.predict(x), dtype=np.float64) for b in members], axis=0)


def detect(
    mammogram: Mammogram, prep: Preprocessed, config: DetectConfig | None = None
) -> Detection:
    """Find calcifications in ``mammogram`` inside ``prep.mask``.

    Returns every candidate's features and the (possible) calcifications whose score
    reaches ``config.min_score``, ids numbered from 1 in descending score order; those
    at ``config.operating_score`` or above are the detections proper.
    """
    cfg = config or DetectConfig()
    img = mammogram.pixels.astype(np.float32, copy=False)
    pixel_mm = mammogram.pixel_mm
    mask = prep.mask
    sub = (slice(None, None, 3), slice(None, None, 3))
    mask_sub = mask[sub]

    # 1. band-pass stack normalised by noise
    blurred = [_blur(img, s / pixel_mm) for s in BAND_SIGMAS_MM]
    cnr = np.full(img.shape, -np.inf, dtype=np.float32)
    seed_map = np.full(img.shape, -np.inf, dtype=np.float32)
    band_noise: list[float] = []
    band_maps: list[np.ndarray] = []
    for k in range(len(BAND_SIGMAS_MM) - 1):
        band = blurred[k] - blurred[k + 1]
        sigma = _robust_sigma(band[sub][mask_sub])
        band_noise.append(sigma)
        band_cnr = band * np.float32(1.0 / sigma)
        band_maps.append(band_cnr)
        np.maximum(cnr, band_cnr, out=cnr)
        if k < _SEED_BANDS:
            np.maximum(seed_map, band_cnr, out=seed_map)
    background_level = blurred[-1]
    fine = blurred[0]
    del blurred

    # 2. top-hat residual for coarse deposits; the sharp-edged ones (see
    # _sharp_deposits) are kept aside for step 5
    residual = img - _background(img, pixel_mm, cfg.background_mm)
    r_sigma = _robust_sigma(residual[sub][mask_sub])
    rz = residual * np.float32(1.0 / r_sigma)
    deposits = (
        _sharp_deposits(fine, residual, rz, mask, pixel_mm, cfg)
        if pixel_mm <= cfg.coarse_max_pixel_mm
        else []
    )
    del fine

    # 3. hysteresis regions holding a seed
    # seeds need a sharp (fine-band) peak: smooth bright tissue never seeds, however
    # bright; coarse deposits seed on their sharp edges and grow through the top-hat
    grow = ((cnr >= cfg.grow_cnr) | (rz >= cfg.macro_grow_z)) & mask
    seeds = (seed_map >= cfg.seed_cnr) & grow
    n_lab, labels, stats, _ = cv2.connectedComponentsWithStats(
        grow.view(np.uint8), connectivity=8, ltype=cv2.CV_32S
    )
    has_seed = np.bincount(labels[seeds], minlength=n_lab) > 0
    has_seed[0] = False
    area_px = stats[:, cv2.CC_STAT_AREA]
    px_area_mm2 = mammogram.spacing_mm[0] * mammogram.spacing_mm[1]
    max_area_px = np.pi * (cfg.max_diameter_mm / 2) ** 2 / px_area_mm2 * 4  # generous
    keep = has_seed & (area_px <= max_area_px)
    kept = np.flatnonzero(keep).astype(np.int32)

    empty = _empty_candidates(len(BAND_SIGMAS_MM) - 1)
    if kept.size == 0:
        return Detection((), empty, tuple(band_noise), r_sigma)

    # 4. split each region into its calcifications: a pixel belongs to an object when its
    # fine-band CNR reaches half the highest within ``split_mm`` (neighbours separate at the
    # valley between them, specks on bright tissue stay specks, a lucent centre stays
    # out of its rim), or when it is part of a coarse deposit (top-hat above
    # ``macro_object_z``)
    remap = np.zeros(n_lab, dtype=np.int32)
    remap[kept] = np.arange(1, kept.size + 1, dtype=np.int32)
    parent = remap[labels]
    p_idx = np.flatnonzero(parent)
    k = 2 * max(1, int(round(cfg.split_mm / pixel_mm))) + 1
    local_peak = cv2.dilate(seed_map, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k)))
    p_cnr = seed_map.ravel()[p_idx]
    in_obj = (p_cnr >= cfg.grow_cnr) & (p_cnr >= 0.5 * local_peak.ravel()[p_idx])
    in_obj |= _coarse_deposits(rz, mask, pixel_mm, cfg).ravel()[p_idx]
    obj_mask = np.zeros(img.shape, dtype=np.uint8)
    obj_mask.ravel()[p_idx[in_obj]] = 1
    n_obj, labels, stats, _ = cv2.connectedComponentsWithStats(
        obj_mask, connectivity=8, ltype=cv2.CV_32S
    )
    m = n_obj - 1
    if m <= 0:
        return Detection((), empty, tuple(band_noise), r_sigma)
    flat_idx = np.flatnonzero(labels)
    lab = labels.ravel()[flat_idx]
    index = np.arange(1, m + 1)
    kept = index.astype(np.int32)

    def per(values: np.ndarray, fn: str) -> np.ndarray:
        return np.asarray(getattr(ndimage, fn)(values, lab, index), dtype=np.float64)

    cnr_vals = cnr.ravel()[flat_idx]
    r_vals = residual.ravel()[flat_idx]
    peak_cnr = per(cnr_vals, "maximum")
    band_peaks = np.column_stack([per(b.ravel()[flat_idx], "maximum") for b in band_maps])
    tophat_z = per(rz.ravel()[flat_idx], "maximum")
    peak_r = per(r_vals, "maximum")
    base_r = np.maximum(per(r_vals, "minimum"), 0.0)
    in_half = np.ones(flat_idx.shape, dtype=bool)
    weights = np.maximum(r_vals - base_r[lab - 1], 0.0) + 1e-9
    rows_all, cols_all = np.divmod(flat_idx, img.shape[1])
    wsum = np.bincount(lab, weights, minlength=m + 1)[1:]
    wsum = np.maximum(wsum, 1e-12)
    cr = np.bincount(lab, weights * rows_all, minlength=m + 1)[1:] / wsum
    cc = np.bincount(lab, weights * cols_all, minlength=m + 1)[1:] / wsum
    half_px = stats[1:, cv2.CC_STAT_AREA].astype(np.float64)
    area_mm2 = half_px * px_area_mm2
    diameter_mm = 2.0 * np.sqrt(area_mm2 / np.pi)
    # second moments of the half-maximum region, in mm
    hw = in_half.astype(np.float64)
    n_half = np.maximum(half_px, 1.0)
    mr = np.bincount(lab, hw * rows_all, minlength=m + 1)[1:] / n_half
    mc = np.bincount(lab, hw * cols_all, minlength=m + 1)[1:] / n_half
    dr = (rows_all - mr[lab - 1]) * mammogram.spacing_mm[0]
    dc = (cols_all - mc[lab - 1]) * mammogram.spacing_mm[1]
    srr = np.bincount(lab, hw * dr * dr, minlength=m + 1)[1:] / n_half
    scc = np.bincount(lab, hw * dc * dc, minlength=m + 1)[1:] / n_half
    src = np.bincount(lab, hw * dr * dc, minlength=m + 1)[1:] / n_half
    # pixel footprint adds 1/12 px^2 of variance per axis
    pix2 = pixel_mm**2 / 12.0
    tr = srr + scc + 2 * pix2
    det = (srr + pix2) * (scc + pix2) - src**2
    disc = np.sqrt(np.maximum(tr**2 / 4 - det, 0.0))
    major_mm = 4.0 * np.sqrt(np.maximum(tr / 2 + disc, 0.0))
    minor_mm = 4.0 * np.sqrt(np.maximum(tr / 2 - disc, 0.0))
    contrast = peak_r - base_r
    mean_int = per(background_level.ravel()[flat_idx], "mean")

    st = stats[1:]
    bbox = np.column_stack(
        [
            st[:, cv2.CC_STAT_TOP],
            st[:, cv2.CC_STAT_LEFT],
            st[:, cv2.CC_STAT_TOP] + st[:, cv2.CC_STAT_HEIGHT],
            st[:, cv2.CC_STAT_LEFT] + st[:, cv2.CC_STAT_WIDTH],
        ]
    ).astype(np.int64)
    cands = Candidates(
        label=kept,
        center_rc=np.column_stack([cr, cc]),
        bbox_rc=bbox,
        peak_cnr=peak_cnr,
        band_cnr=band_peaks,
        tophat_z=tophat_z,
        contrast=contrast,
        area_mm2=area_mm2,
        diameter_mm=diameter_mm,
        major_mm=major_mm,
        minor_mm=minor_mm,
        mean_intensity=mean_int,
        local_rms=np.zeros(m),
        neighbours=np.zeros(m),
        score=np.zeros(m),
        pixel_mm=pixel_mm,
    )
    keep_obj = peak_cnr >= cfg.seed_cnr
    cands = _subset(cands, keep_obj)
    cands = _context_features(cands, band_maps[0], pixel_mm, mammogram.spacing_mm)
    score = score_candidates(cands, cfg)
    size_ok = (cands.diameter_mm >= cfg.min_diameter_mm) & (
        cands.diameter_mm <= cfg.max_diameter_mm
    )
    cands = dataclasses.replace(cands, score=np.where(size_ok, score, 0.0))
    calcs = _outline(
        mammogram, labels, cands, min(cfg.min_score, cfg.operating_score), residual, r_sigma
    )
    # 5. sharp-edged coarse deposits that the classifier missed
    calcs = _add_coarse_deposits(mammogram, calcs, deposits, residual, r_sigma, cfg)
    return Detection(calcs, cands, tuple(band_noise), r_sigma)


def _coarse_deposits(
    rz: np.ndarray, mask: np.ndarray, pixel_mm: float, cfg: DetectConfig
) -> np.ndarray:
    """Whole outlines of coarse deposits: top-hat regions above ``macro_object_z`` at
    least ``macro_min_mm`` across and bright throughout (mean above 1.5 x the level).
    Smaller bright regions are left to the band-pass, which keeps specks on bright
    tissue apart."""
    high = ((rz >= cfg.macro_object_z) & mask).view(np.uint8)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(high, connectivity=8, ltype=cv2.CV_32S)
    if n <= 1:
        return np.zeros(rz.shape, dtype=bool)
    min_px = np.pi * (cfg.macro_min_mm / 2) ** 2 / pixel_mm**2
    idx = np.flatnonzero(lab)
    ll = lab.ravel()[idx]
    mean_z = np.bincount(ll, rz.ravel()[idx], minlength=n) / np.maximum(
        np.bincount(ll, minlength=n), 1
    )
    ok = (stats[:, cv2.CC_STAT_AREA] >= min_px) & (mean_z >= 1.5 * cfg.macro_object_z)
    ok[0] = False
    return ok[lab]


def _sharp_deposits(
    fine: np.ndarray,
    residual: np.ndarray,
    rz: np.ndarray,
    mask: np.ndarray,
    pixel_mm: float,
    cfg: DetectConfig,
) -> list[tuple[tuple[slice, slice], np.ndarray]]:
    """Outlines of coarse deposits told from tissue by their sharp edge.

    A calcification is far denser than the tissue around it, so its edge is as sharp as
    the imaging blur allows, while a bright patch of fibroglandular tissue of the same
    size and contrast fades out over millimetres. Objects are the top-hat regions
    (``residual``) above a quarter of their local peak (within ``coarse_peak_mm``) and
    above ``macro_grow_z``, at least ``coarse_min_mm`` across (equivalent diameter).
    Their *edge width* is the peak height divided by the upper-quartile gradient on the
    outline (mm; about 2.5 blur sigmas for a blurred step, the object's size for a
    smooth bump). An object is a sharp coarse deposit when its edge width is at most
    ``coarse_edge_mm`` and at most ``coarse_edge_ratio`` times its equivalent radius;
    the largest connected part of it above half the local peak is the deposit. Returns
    each deposit as its box (row and column slices) and its bool mask in that box.
    ``fine`` is the image lightly smoothed (the finest band's blur).
    """

    def local_peak(small: np.ndarray, small_mm: float) -> np.ndarray:
        k = 2 * max(1, int(round(cfg.coarse_peak_mm / small_mm))) + 1
        return cv2.dilate(small, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))

    peak = _on_quarter_mm_grid(residual, pixel_mm, local_peak)
    obj = (rz >= cfg.macro_grow_z) & (residual >= 0.25 * peak) & mask
    n, lab, stats, _ = cv2.connectedComponentsWithStats(
        obj.view(np.uint8), connectivity=8, ltype=cv2.CV_32S
    )
    min_px = np.pi * (cfg.coarse_min_mm / 2) ** 2 / pixel_mm**2
    big = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] >= min_px)
    big = big[big > 0]
    if big.size == 0:
        return []
    is_big = np.zeros(n, dtype=bool)
    is_big[big] = True
    # outline pixels of the large objects, away from the image border
    inner = cv2.erode(obj.view(np.uint8), np.ones((3, 3), np.uint8), borderValue=0)
    edge = obj & (inner == 0) & is_big[lab]
    edge[0, :] = edge[-1, :] = edge[:, 0] = edge[:, -1] = False
    r, c = np.nonzero(edge)
    if r.size == 0:
        return []

    def at(dr: int, dc: int) -> np.ndarray:  # the smoothed image beside the outline
        return fine[r + dr, c + dc].astype(np.float64)

    gx = (at(-1, 1) + 2 * at(0, 1) + at(1, 1)) - (at(-1, -1) + 2 * at(0, -1) + at(1, -1))
    gy = (at(1, -1) + 2 * at(1, 0) + at(1, 1)) - (at(-1, -1) + 2 * at(-1, 0) + at(-1, 1))
    grad = np.hypot(gx, gy) / (8.0 * pixel_mm)  # intensity per mm
    lab_e = lab[r, c]
    # upper quartile of the gradient per object (sort by object, then gradient)
    order = np.lexsort((grad, lab_e))
    lab_s, grad_s = lab_e[order], grad[order]
    starts = np.searchsorted(lab_s, big, side="left")
    ends = np.searchsorted(lab_s, big, side="right")
    valid = ends > starts
    q = np.where(valid, starts + (0.75 * (ends - starts - 1)).astype(np.int64), 0)
    g75 = np.where(valid, grad_s[np.minimum(q, grad_s.size - 1)], 0.0)
    in_big = np.flatnonzero(is_big[lab])  # the large objects' pixels only
    peak_r = np.full(n, -np.inf)
    np.maximum.at(peak_r, lab.ravel()[in_big], residual.ravel()[in_big].astype(np.float64))
    peak_r = peak_r[big]
    width_mm = peak_r / np.maximum(g75, 1e-12)
    radius_mm = np.sqrt(stats[big, cv2.CC_STAT_AREA] / np.pi) * pixel_mm
    ok_obj = (
        valid & (width_mm <= cfg.coarse_edge_mm) & (width_mm <= cfg.coarse_edge_ratio * radius_mm)
    )
    # each deposit is the largest connected part of its accepted object above half the
    # local peak (its shape); few objects pass, so this works in their boxes
    out = []
    for obj_id in big[ok_obj]:
        x, y, w, h = (int(v) for v in stats[obj_id, :4])
        box = (slice(y, y + h), slice(x, x + w))
        half = (lab[box] == obj_id) & (residual[box] >= 0.5 * peak[box])
        m, parts, part_stats, _ = cv2.connectedComponentsWithStats(
            half.view(np.uint8), connectivity=8, ltype=cv2.CV_32S
        )
        if m > 1:
            largest = 1 + int(np.argmax(part_stats[1:, cv2.CC_STAT_AREA]))
            out.append((box, parts == largest))
    return out


def _add_coarse_deposits(
    mammogram: Mammogram,
    calcs: tuple[Calcification, ...],
    deposits: list[tuple[tuple[slice, slice], np.ndarray]],
    residual: np.ndarray,
    r_sigma: float,
    cfg: DetectConfig,
) -> tuple[Calcification, ...]:
    """``calcs`` with the sharp-edged coarse deposits that the classifier missed.

    The candidate classifier learnt mostly from specks; a large, faint, smooth deposit
    (a round calcification of 2-3 mm, the body of a dystrophic one) can score as tissue,
    or break into pieces of its rim. Each of ``deposits`` (:func:`_sharp_deposits`) that
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

    def covered(box: tuple[slice, slice], patch: np.ndarray) -> bool:
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

    new = [
        (box, patch) for box, patch in deposits if patch.sum() >= min_px and not covered(box, patch)
    ]
    if not new:
        return calcs
    labels = np.zeros(residual.shape, dtype=np.int32)
    for j, (box, patch) in enumerate(new, start=1):
        labels[box][patch] = j
    m = len(new)
    index = np.arange(1, m + 1)
    bbox = np.array(
        [[b[0].start, b[1].start, b[0].stop, b[1].stop] for b, _ in new], dtype=np.int64
    )
    centre = np.array(
        [np.argwhere(patch).mean(axis=0) + (b[0].start, b[1].start) for b, patch in new]
    )
    area_mm2 = np.array([patch.sum() for _, patch in new], dtype=np.float64) * sr * sc
    peak_r = np.array([residual[b][patch].max() for b, patch in new], dtype=np.float64)
    cands = Candidates(
        label=index.astype(np.int32),
        center_rc=centre.reshape(m, 2),
        bbox_rc=bbox,
        peak_cnr=peak_r / r_sigma,
        band_cnr=np.zeros((m, len(BAND_SIGMAS_MM) - 1)),
        tophat_z=peak_r / r_sigma,
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
    added = _outline(mammogram, labels, cands, 0.0, residual, r_sigma)
    rows, cols = labels.shape
    kept = [
        c
        for c in calcs
        if not labels[
            int(np.clip(round(c.center_rc[0]), 0, rows - 1)),
            int(np.clip(round(c.center_rc[1]), 0, cols - 1)),
        ]
    ]
    merged = sorted([*kept, *added], key=lambda c: -c.score)
    return tuple(dataclasses.replace(c, id=i) for i, c in enumerate(merged, start=1))


def _context_features(
    c: Candidates, band0: np.ndarray, pixel_mm: float, spacing_mm: tuple[float, float]
) -> Candidates:
    """Local texture (rms of the finest band within about 2 mm) and crowding (candidates
    within 5 mm) of each candidate: film grain and dense tissue raise the first, clusters
    the second."""
    if len(c) == 0:
        return c
    k = 2 * max(1, int(round(1.0 / pixel_mm))) + 1
    rows, cols = band0.shape
    rr = np.clip(np.round(c.center_rc[:, 0]).astype(np.int64), 0, rows - 1)
    cc = np.clip(np.round(c.center_rc[:, 1]).astype(np.int64), 0, cols - 1)
    sq = cv2.boxFilter(np.minimum(band0, 20.0) ** 2, -1, (k, k))
    local_rms = np.sqrt(np.maximum(sq[rr, cc], 0.0)).astype(np.float64)
    pts = c.center_rc * np.asarray(spacing_mm)
    tree = cKDTree(pts)
    counts = np.array([len(n) - 1 for n in tree.query_ball_point(pts, r=5.0)], dtype=np.float64)
    return dataclasses.replace(c, local_rms=local_rms, neighbours=counts)


def _subset(c: Candidates, keep: np.ndarray) -> Candidates:
    fields = {
        f.name: (
            getattr(c, f.name)[keep]
            if isinstance(getattr(c, f.name), np.ndarray)
            else getattr(c, f.name)
        )
        for f in dataclasses.fields(c)
    }
    return Candidates(**fields)


def _empty_candidates(n_bands: int) -> Candidates:
    z = np.zeros(0)
    return Candidates(
        label=np.zeros(0, dtype=np.int32),
        center_rc=np.zeros((0, 2)),
        bbox_rc=np.zeros((0, 4), dtype=np.int64),
        peak_cnr=z,
        band_cnr=np.zeros((0, n_bands)),
        tophat_z=z,
        contrast=z,
        area_mm2=z,
        diameter_mm=z,
        major_mm=z,
        minor_mm=z,
        mean_intensity=z,
        local_rms=z,
        neighbours=z,
        score=z,
    )


_EXTENT_FRACTION = 0.2
"""Fraction of a calcification's peak (above the surrounding tissue) at which its size is
measured. The object outline is taken at half the fine-band peak, which keeps neighbours
apart and shapes sharp but runs inside the visible edge: a projected sphere is only 87 %
of its diameter wide at half height, and blur narrows the band-pass response further
(sizes came out 25-30 % short on phantoms). Radiologists measure the visible edge, so
the size is measured where the calcification meets the tissue: at 20 % of its height in
the top-hat residual, and never below 2 noise sigmas."""


_LONG_MM = 3.0
"""Deposits at least this long are measured across by their widest inscribed disc."""


def _extent(
    residual: np.ndarray,
    labels: np.ndarray,
    label: int,
    bbox: tuple[int, int, int, int],
    pixel_mm: float,
    r_sigma: float,
) -> np.ndarray:
    """Region of one calcification out to its visible edge (see ``_EXTENT_FRACTION``), in
    a window around ``bbox``.

    Grows the object ``label`` through connected pixels of ``residual`` above the edge
    level, by at most half its inscribed radius (and 0.3 mm).
    """
    rows, cols = residual.shape
    r0, c0, r1, c1 = bbox
    m = max(2, int(round(0.3 / pixel_mm)))
    ra, ca, rb, cb = max(r0 - m, 0), max(c0 - m, 0), min(r1 + m, rows), min(c1 + m, cols)
    obj = labels[ra:rb, ca:cb] == label
    res = residual[ra:rb, ca:cb]
    near = cv2.dilate(obj.view(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    others = (labels[ra:rb, ca:cb] > 0) & ~obj
    around = res[~near & ~others]
    base = float(np.median(around)) if around.size else 0.0
    peak = float(res[obj].max())
    level = base + max(_EXTENT_FRACTION * (peak - base), 2.0 * r_sigma)
    # grow by at most half the object's inscribed radius: the edge lies just outside the
    # half-peak outline, and a thin wall must not bridge to its neighbour through the
    # soft tissue between them
    obj_u8 = np.pad(obj, 1).view(np.uint8)
    inscribed = float(cv2.distanceTransform(obj_u8, cv2.DIST_L2, 3).max())
    reach = max(1, int(round(0.5 * inscribed)))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1))
    within = cv2.dilate(obj_u8, disc)[1:-1, 1:-1].astype(bool)
    grown = ((res >= level) & within & ~others) | obj
    _, comp = cv2.connectedComponents(grown.view(np.uint8), connectivity=8)
    ids = np.unique(comp[obj])
    return np.isin(comp, ids[ids > 0])


_ISO_SMOOTH_MM = 0.03
"""Light Gaussian smoothing (sigma, mm) of the top-hat residual before tracing the
sub-pixel half-maximum contour (see :func:`_contour_circularity`)."""


def _contour_circularity(
    residual: np.ndarray,
    bbox: tuple[int, int, int, int],
    center_rc: tuple[float, float],
    pixel_mm: float,
) -> float | None:
    """Circularity (4 pi area / perimeter^2) of the calcification's half-maximum
    iso-contour, traced at sub-pixel precision (marching squares) in the lightly smoothed
    top-hat residual around ``bbox``.

    The pixel outline of an object a few pixels across is a staircase whose circularity
    says more about the grid than about the shape (a digitised 0.6 mm disc at 0.1 mm
    scores about 0.88, an irregular 0.8 mm speck about 0.86); the interpolated
    iso-contour follows the blurred shape itself (disc about 0.97, mildly irregular
    speck about 0.95). The level is halfway between the peak near the centre and the
    median of the window's border; the contour is the closed one around the centre.
    Returns None when no such contour closes inside the window.
    """
    best = _centre_contour(residual, bbox, center_rc, pixel_mm, 4, 0.5, 2)
    if best is None:
        return None
    y, x = best[:, 0], best[:, 1]
    area = 0.5 * abs(float(np.dot(x[:-1], y[1:]) - np.dot(y[:-1], x[1:])))
    perimeter = float(np.hypot(np.diff(x), np.diff(y)).sum())
    if perimeter <= 0:
        return None
    return float(min(1.0, 4 * np.pi * area / perimeter**2))


def _outline(
    mammogram: Mammogram,
    labels: np.ndarray,
    cands: Candidates,
    operating_score: float,
    residual: np.ndarray | None = None,
    r_sigma: float = 1.0,
) -> tuple[Calcification, ...]:
    """Trace outlines and shape descriptors of the candidates kept at the operating point.

    The outline (shape descriptors) is the half-peak object; sizes are measured on its
    region grown to the visible edge in ``residual`` (see :func:`_extent`).
    """
    sr, sc = mammogram.spacing_mm
    pixel_mm = mammogram.pixel_mm
    order = np.argsort(-cands.score, kind="stable")
    out: list[Calcification] = []
    for i in order:
        if cands.score[i] < operating_score or cands.score[i] <= 0.0:
            break
        r0, c0, r1, c1 = (int(v) for v in cands.bbox_rc[i])
        patch = labels[r0:r1, c0:c1] == cands.label[i]
        if not patch.any():
            continue
        patch_u8 = np.pad(patch, 1).astype(np.uint8)
        contours, hierarchy = cv2.findContours(patch_u8, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
        if not contours:
            continue
        outer_ids = [k for k in range(len(contours)) if hierarchy[0][k][3] < 0]
        main = max(outer_ids, key=lambda k: cv2.contourArea(contours[k]))
        cnt = contours[main]
        filled_px = max(float(cv2.contourArea(cnt)), float(patch.sum()) * 0.5, 0.5)
        hole_px = sum(
            cv2.contourArea(contours[k]) for k in range(len(contours)) if hierarchy[0][k][3] == main
        )
        perimeter_px = max(cv2.arcLength(cnt, True), 1e-6)
        hull = cv2.convexHull(cnt)
        hull_area = max(float(cv2.contourArea(hull)), 1e-6)
        area_mm2 = float(cands.area_mm2[i])
        # whole (filled) outline area gives the size of a rim calcification too
        filled_mm2 = (filled_px + perimeter_px / 2 + 1) * sr * sc
        size_cnt, size_hull = cnt, hull
        if residual is not None:
            ext = _extent(
                residual, labels, int(cands.label[i]), (r0, c0, r1, c1), pixel_mm, r_sigma
            )
            e_cnts, _ = cv2.findContours(
                np.pad(ext, 1).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE
            )
            if e_cnts:
                size_cnt = max(e_cnts, key=cv2.contourArea)
                size_hull = cv2.convexHull(size_cnt)
                e_px = max(float(cv2.contourArea(size_cnt)), 0.5)
                e_mm2 = (e_px + cv2.arcLength(size_cnt, True) / 2 + 1) * sr * sc
                filled_mm2 = max(filled_mm2, e_mm2)
                area_mm2 = max(area_mm2, float(ext.sum()) * sr * sc)
        pts = size_hull[:, 0, :].astype(np.float64) * np.array([sc, sr])
        if len(pts) > 1:
            d = np.sqrt(((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1))
            feret_mm = float(d.max()) + pixel_mm
        else:
            feret_mm = pixel_mm
        # least width: the bounding rectangle's, or for long deposits (>= 3 mm) the
        # widest inscribed disc's, since a curved vessel segment is thin however wide its
        # rectangle (small irregular specks keep the rectangle: their inscribed disc
        # would make them look like thin casts)
        (_, _), (w, h), _ = cv2.minAreaRect(size_cnt)
        min_d_mm = float(min(w, h)) * pixel_mm + pixel_mm
        if feret_mm >= _LONG_MM:
            x0, y0, bw, bh = cv2.boundingRect(size_cnt)
            solid = np.zeros((bh + 2, bw + 2), np.uint8)
            cv2.drawContours(solid, [size_cnt - np.array([x0 - 1, y0 - 1])], -1, 1, thickness=-1)
            inscribed = float(cv2.distanceTransform(solid, cv2.DIST_L2, 3).max())
            min_d_mm = min(min_d_mm, max(2.0 * inscribed - 1.0, 1.0) * pixel_mm)
        diameter = float(max(2 * np.sqrt(filled_mm2 / np.pi), cands.diameter_mm[i]))
        circ = float(min(1.0, 4 * np.pi * filled_px / perimeter_px**2)) if filled_px > 2 else 1.0
        lucent = bool(hole_px >= max(2.0, 0.1 * filled_px))
        contour_rc = cnt[:, 0, ::-1].astype(np.int32) + np.array([r0 - 1, c0 - 1], dtype=np.int32)
        box = (r0, c0, r1, c1)
        centre = (float(cands.center_rc[i, 0]), float(cands.center_rc[i, 1]))
        out.append(
            Calcification(
                id=len(out) + 1,
                center_rc=centre,
                contour_rc=contour_rc,
                bbox_rc=(r0, c0, r1, c1),
                area_mm2=area_mm2,
                diameter_mm=diameter,
                max_diameter_mm=max(feret_mm, diameter),
                min_diameter_mm=min(min_d_mm, feret_mm),
                contrast=float(cands.contrast[i]),
                cnr=float(cands.peak_cnr[i]),
                score=float(cands.score[i]),
                circularity=circ,
                elongation=float(1.0 - min(min_d_mm, feret_mm) / max(feret_mm, 1e-6)),
                solidity=float(min(1.0, filled_px / hull_area)) if hull_area > 2 else 1.0,
                lucent_center=lucent,
                contour_circularity=(
                    _contour_circularity(residual, box, centre, pixel_mm)
                    if residual is not None
                    else None
                ),
                deposit=(
                    _deposit_outline(residual, box, centre, pixel_mm)
                    if residual is not None and diameter >= _DEPOSIT_MIN_MM
                    else None
                ),
            )
        )
    return tuple(out)


_DEPOSIT_MIN_MM = 1.0
"""Coarse deposits from this size up get their whole outline measured
(:func:`_deposit_outline`): popcorn against dystrophic matters from 2-3 mm, and smaller
objects have too short an outline for corners and edges to mean anything."""
_DEPOSIT_LEVEL = 0.3
"""Height (fraction of the peak above the surrounding tissue) of the deposit outline: low
enough to hold every lobe of a lobulated deposit in one contour, high enough to stay clear
of the tissue around it (0.2 and 0.5 separated popcorn from dystrophic phantoms less well)."""
_TURN_ARC_MM = 0.3
_TURN_STEP_MM = 0.05
_CORNER_DEG = 45.0
_STRAIGHT_DEG = 8.0


def _centre_contour(
    residual: np.ndarray,
    bbox: tuple[int, int, int, int],
    center_rc: tuple[float, float],
    pixel_mm: float,
    pad: int,
    level: float,
    near_px: int,
) -> np.ndarray | None:
    """Closed sub-pixel contour (row, col pixels) around ``center_rc`` at ``level`` of the
    way from the tissue (median of the border of a window ``pad`` pixels beyond ``bbox``)
    to the peak within ``near_px`` of the centre, traced (marching squares) in the residual
    smoothed by ``_ISO_SMOOTH_MM``; the longest such contour holding the centre, None when
    none closes inside the window."""
    rows, cols = residual.shape
    r0, c0, r1, c1 = bbox
    ra, ca, rb, cb = max(r0 - pad, 0), max(c0 - pad, 0), min(r1 + pad, rows), min(c1 + pad, cols)
    patch = residual[ra:rb, ca:cb].astype(np.float64)
    if min(patch.shape) < 3:
        return None
    patch = cv2.GaussianBlur(patch, (0, 0), max(_ISO_SMOOTH_MM / pixel_mm, 0.3))
    cr, cc = center_rc[0] - ra, center_rc[1] - ca
    ir, ic = int(round(cr)), int(round(cc))
    near = patch[max(ir - near_px, 0) : ir + near_px + 1, max(ic - near_px, 0) : ic + near_px + 1]
    if near.size == 0:
        return None
    base = float(np.median(np.concatenate([patch[0], patch[-1], patch[:, 0], patch[:, -1]])))
    peak = float(near.max())
    if peak <= base:
        return None
    best: np.ndarray | None = None
    for cnt in find_contours(patch, base + level * (peak - base)):
        if len(cnt) < 5 or not np.allclose(cnt[0], cnt[-1]):
            continue
        poly = cnt[:, ::-1].astype(np.float32).reshape(-1, 1, 2)  # (x, y)
        if cv2.pointPolygonTest(poly, (float(cc), float(cr)), False) >= 0:
            if best is None or len(cnt) > len(best):
                best = cnt
    return None if best is None else best + np.array([ra, ca])


def _deposit_outline(
    residual: np.ndarray,
    bbox: tuple[int, int, int, int],
    center_rc: tuple[float, float],
    pixel_mm: float,
) -> DepositOutline | None:
    """The whole outline of the coarse deposit at ``center_rc`` and its shape measures
    (:class:`~calcscope.model.DepositOutline`).

    The contour is traced between pixels (marching squares) in the lightly smoothed
    top-hat residual at ``_DEPOSIT_LEVEL`` of the way from the tissue around the deposit
    (median of the border of a window 3 mm beyond ``bbox``, 6 mm when the contour does not
    close inside it) to its peak near the centre, and is the closed contour around the
    centre (:func:`_centre_contour`). The detector outlines a lobulated
    deposit lobe by lobe (each at half its own peak); this contour holds the lobes together.
    It is resampled every 0.05 mm; the turning of the outline over ``_TURN_ARC_MM`` of arc on
    each side of a point marks a sharp convex corner (over 45 degrees) or a straight edge
    (under 8 degrees): an angular, dystrophic deposit has both, a popcorn deposit's rounded
    lobes neither. The largest inscribed disc over the area-equivalent diameter is low for
    a clump of lobes and high for a compact body. None when no closed contour holds the
    centre.
    """
    found = None
    r0, c0, r1, c1 = bbox
    for pad_mm in (3.0, 6.0):  # wider when the deposit reaches out of the first window
        pad = int(round(max(pad_mm / pixel_mm, r1 - r0, c1 - c0)))
        found = _centre_contour(residual, bbox, center_rc, pixel_mm, pad, _DEPOSIT_LEVEL, 3)
        if found is not None:
            break
    if found is None:
        return None
    mm = found * pixel_mm  # (row, col) in mm, closed
    y, x = mm[:, 0], mm[:, 1]
    area = 0.5 * abs(float(np.dot(x[:-1], y[1:]) - np.dot(y[:-1], x[1:])))
    if area <= 0:
        return None
    size_mm = 2.0 * float(np.sqrt(area / np.pi))
    # resample at equal arc length, then the turning over +-_TURN_ARC_MM
    arc = np.r_[0.0, np.cumsum(np.hypot(np.diff(y), np.diff(x)))]
    n = max(int(arc[-1] / _TURN_STEP_MM), 8)
    t = np.linspace(0.0, arc[-1], n, endpoint=False)
    pts = np.column_stack([np.interp(t, arc, y), np.interp(t, arc, x)])
    w = max(1, int(round(_TURN_ARC_MM / _TURN_STEP_MM)))
    ahead = np.roll(pts, -w, axis=0) - pts
    behind = pts - np.roll(pts, w, axis=0)
    turn = np.arctan2(
        ahead[:, 0] * behind[:, 1] - ahead[:, 1] * behind[:, 0], (ahead * behind).sum(1)
    )
    if turn.sum() < 0:  # convex turns positive whatever the contour's direction
        turn = -turn
    corner = float(np.mean(turn > np.radians(_CORNER_DEG)))
    straight = float(np.mean(np.abs(turn) < np.radians(_STRAIGHT_DEG)))
    # largest inscribed disc on a raster of the outline: 0.02 mm, coarser for outlines
    # over 20 mm (a long vessel wall), so that the raster stays within 1000 x 1000
    fine = max(0.02, float(np.ptp(mm, axis=0).max()) / 1000.0)
    xy = ((mm[:, ::-1] - mm[:, ::-1].min(0)) / fine + 2).astype(np.int32)
    raster = np.zeros((int(xy[:, 1].max()) + 3, int(xy[:, 0].max()) + 3), np.uint8)
    cv2.fillPoly(raster, [xy.reshape(-1, 1, 2)], 1)
    inscribed = float(cv2.distanceTransform(raster, cv2.DIST_L2, 5).max()) * fine * 2
    return DepositOutline(
        size_mm=size_mm,
        corner_fraction=corner,
        straight_fraction=straight,
        inscribed_ratio=float(min(1.0, inscribed / size_mm)),
    )
