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
   peak height in ``R`` above the surrounding tissue
   (:data:`~calcscope.detection.outline.EXTENT_FRACTION`), so they do not depend on the
   detection threshold.
4. *Features and score.* Per-candidate features are computed for all candidates at once
   with label-indexed reductions; the score in [0, 1] is the mean probability of the
   shipped LightGBM ensemble (with ``model = "cnr"``, a logistic function of the peak CNR;
   see :func:`~calcscope.detection.classifier.score_candidates`). Outlines and shape
   descriptors are computed only for candidates kept at the operating point; besides the
   pixel outline's circularity, each gets the circularity of its half-maximum contour
   traced between pixels (:func:`~calcscope.detection.contours.contour_circularity`),
   which still shows the shape of a speck a few pixels across; each of 1 mm or more also
   gets its deposit's whole outline at 30 % of its height
   (:func:`~calcscope.detection.contours.deposit_outline`), which holds the lobes of a
   lobulated deposit that the half-peak outlines split, and whose corners, straight edges
   and inscribed disc tell popcorn from dystrophic deposits.
5. *Sharp coarse deposits.* At pixels up to ``coarse_max_pixel_mm``, top-hat objects of
   ``coarse_min_mm`` or more whose edge is as sharp as the blur allows
   (:func:`~calcscope.detection.deposits.sharp_deposits`) and that no detection covers are
   added as calcifications scoring ``coarse_score``
   (:func:`~calcscope.detection.deposits.add_coarse_deposits`): the classifier, trained mostly
   on specks, can score a large faint deposit as tissue.

All images are float32 and every filter is an OpenCV call. Filters whose result is read at
a few pixels (the split's local peak, the local texture) run only in the tiles holding
them, connected components in strips of the box around their pixels, and element-wise masks
in row strips, with the same results as on the whole image (see ``docs/accuracy.md``, Speed).
Maps read at a few pixels only are kept at those pixels: at most the image, two fine bands
and one scratch map are held as full-size float32 images (``docs/accuracy.md``, Memory).
The Python loops are over those tiles and over kept calcifications, to trace their
outlines.

:func:`detect` runs these steps as named stages, each a function of its own module:
:mod:`~calcscope.detection.candidates` (steps 1-3 and the split into objects),
:mod:`~calcscope.detection.features`, :mod:`~calcscope.detection.classifier`,
:mod:`~calcscope.detection.outline` with :mod:`~calcscope.detection.contours`, and
:mod:`~calcscope.detection.deposits` (step 5).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calcscope.config import DetectConfig
from calcscope.detection.candidates import (
    BAND_SIGMAS_MM,
    BandStack,
    TopHat,
    TopHatMarks,
    band_pass_stack,
    grown_pixels,
    object_values,
    seeded_regions,
    split_regions,
    top_hat,
    top_hat_marks,
)
from calcscope.detection.classifier import (
    MODEL_DIR,
    load_model,
    model_files,
    score_candidates,
    scored_candidates,
)
from calcscope.detection.deposits import SharpDeposit, add_coarse_deposits, sharp_deposits
from calcscope.detection.domain import scan_sharpness
from calcscope.detection.features import (
    Candidates,
    context_features,
    empty_candidates,
    measure_candidates,
    subset_candidates,
)
from calcscope.detection.impulses import remove_impulses
from calcscope.detection.outline import outline_calcifications
from calcscope.detection.scale_cnr import scale_cnr_active, with_scale_cnr
from calcscope.detection.stripes import drop_stripe_candidates
from calcscope.imaging.preprocess import Preprocessed
from calcscope.model import Calcification, Mammogram

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


@dataclass(frozen=True)
class Detection:
    """Detector output: kept calcifications, the full candidate table, noise levels."""

    calcifications: tuple[Calcification, ...]
    candidates: Candidates
    band_noise: tuple[float, ...]
    tophat_noise: float
    impulses: int = 0
    """Single-pixel impulses replaced before detection (see
    :func:`~calcscope.detection.impulses.remove_impulses`)."""
    scan_sharpness: float | None = None
    """How sharply the scanner drew the film's grain
    (:func:`~calcscope.detection.domain.scan_sharpness`), at pixels up to
    ``DetectConfig.speck_max_pixel_mm``; None elsewhere."""


def _nothing_found(
    bands: BandStack, tophat: TopHat | TopHatMarks, impulses: int, sharpness: float | None
) -> Detection:
    """The detection of an image without candidates."""
    return Detection(
        (),
        empty_candidates(len(BAND_SIGMAS_MM) - 1),
        bands.noise,
        tophat.sigma,
        impulses,
        sharpness,
    )


def detect(
    mammogram: Mammogram, prep: Preprocessed, config: DetectConfig | None = None
) -> Detection:
    """Find calcifications in ``mammogram`` inside ``prep.mask``.

    Returns every candidate's features and the (possible) calcifications whose score
    reaches ``config.min_score``, ids numbered from 1 in descending score order; those
    at ``config.operating_score`` or above are the detections proper.
    """
    cfg = config or DetectConfig()
    pixel_mm, spacing_mm, mask = mammogram.pixel_mm, mammogram.spacing_mm, prep.mask
    impulses = remove_impulses(mammogram.pixels.astype(np.float32, copy=False), mask, pixel_mm, cfg)
    img = impulses.image
    sharpness = scan_sharpness(img, mask) if 0.0 < pixel_mm <= cfg.speck_max_pixel_mm else None

    # the top-hat and the sharp deposits first: their full-size temporaries are freed
    # before the band-pass stack is made (a lower peak; the steps are independent)
    tophat = top_hat(img, pixel_mm, mask, cfg.background_mm)
    deposits: tuple[SharpDeposit, ...] = (
        sharp_deposits(img, tophat, mask, pixel_mm, cfg)
        if pixel_mm <= cfg.coarse_max_pixel_mm
        else ()
    )
    # until the context features only a few of the residual's pixels are read: it is
    # freed (made again for the outlines) when it can be made again
    marks = top_hat_marks(tophat, mask, pixel_mm, cfg)
    th: TopHat | TopHatMarks = tophat if marks is None else marks
    del tophat
    # two full-size bands (the coarse band is made again at the objects' pixels)
    bands = band_pass_stack(img, pixel_mm, mask, cfg.grow_cnr)
    grown = grown_pixels(bands, th, mask, cfg)
    if bands.pending is None:
        # the coarse bands are read at the grown pixels only from here on: their
        # full-size maps are freed before the regions are labelled
        bands = bands.with_coarse_at(grown)
    regions = seeded_regions(bands, th, mask, spacing_mm, cfg, grown)
    del grown
    if regions.count == 0:
        return _nothing_found(bands, th, impulses.count, sharpness)
    objects = split_regions(regions, bands, th, mask, pixel_mm, cfg)
    del regions  # its pixel lists are no longer needed
    if objects.count <= 0:
        return _nothing_found(bands, th, impulses.count, sharpness)

    # only the finest band is read as an image from here on (the context features);
    # the others, the tissue level and the residual are read at the objects' pixels
    if objects.pixels is not None:  # always, from split_regions
        bands = bands.kept_at(objects.pixels)
    objects, bands, tophat = object_values(objects, bands, th, img)
    del th
    cands = measure_candidates(objects, bands, tophat, spacing_mm, pixel_mm)
    cands = subset_candidates(cands, cands.peak_cnr >= cfg.seed_cnr)
    cands = context_features(cands, bands.band_maps[0], pixel_mm, spacing_mm)
    noise = bands.noise
    del bands  # the finest band is not read any more
    cands = drop_stripe_candidates(img, mask, scored_candidates(cands, cfg), cfg)
    min_score = min(cfg.min_score, cfg.operating_score)
    calcs = outline_calcifications(
        mammogram, objects.labels, cands, min_score, tophat.residual, tophat.sigma
    )
    if scale_cnr_active(pixel_mm, cfg):
        calcs = with_scale_cnr(mammogram, img, mask, objects.labels, cands, calcs, tophat, cfg)
    calcs = add_coarse_deposits(mammogram, calcs, deposits, tophat, cfg)
    return Detection(calcs, cands, noise, tophat.sigma, impulses.count, sharpness)
