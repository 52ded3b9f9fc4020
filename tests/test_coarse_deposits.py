"""Sharp-edged coarse deposits the candidate classifier missed (detect.promote_coarse_deposits).

A calcification's edge is as sharp as the imaging blur allows; a bright patch of tissue of
the same size and contrast fades out over millimetres. Synthetic images: a smooth textured
background, a 2.5 mm disc with a blurred-step edge and a Gaussian bump of the same size and
height.
"""

from __future__ import annotations

import cv2
import numpy as np

from calcscope.config import DetectConfig
from calcscope.detect import (
    Detection,
    _background,
    _blur,
    _empty_candidates,
    _sharp_deposits,
    promote_coarse_deposits,
)
from calcscope.model import Mammogram
from calcscope.preprocess import Preprocessed

SPACING = 0.07
DISC_RC = (300, 300)
BUMP_RC = (300, 700)


def _image(amp: float = 0.25) -> np.ndarray:
    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur(rng.normal(0, 1, (600, 1000)).astype(np.float32), (0, 0), 15)
    img = 0.4 + 0.05 * texture / texture.std()
    rr, cc = np.mgrid[:600, :1000]
    radius = 1.25 / SPACING
    disc = (np.hypot(rr - DISC_RC[0], cc - DISC_RC[1]) <= radius).astype(np.float32)
    img += amp * cv2.GaussianBlur(disc, (0, 0), 0.05 / SPACING)
    sigma = 1.25 / SPACING / 1.5
    img += amp * np.exp(-((rr - BUMP_RC[0]) ** 2 + (cc - BUMP_RC[1]) ** 2) / (2 * sigma**2))
    img += rng.normal(0, 0.004, img.shape).astype(np.float32)
    return img.astype(np.float32)


def _inputs(img: np.ndarray, spacing: float = SPACING):
    mammo = Mammogram(img, (spacing, spacing))
    mask = np.ones(img.shape, dtype=bool)
    prep = Preprocessed(mask=mask, breast=mask, pectoral=~mask, chest_wall="left")
    residual = img - _background(img, spacing, DetectConfig().background_mm)
    sub = residual[::3, ::3]
    r_sigma = float(1.4826 * np.median(np.abs(sub - np.median(sub))))
    empty = Detection((), _empty_candidates(3), (1.0, 1.0, 1.0), r_sigma)
    return mammo, prep, residual, r_sigma, empty


def test_sharp_disc_is_a_deposit_and_the_smooth_bump_is_not():
    img = _image()
    _, prep, residual, r_sigma, _ = _inputs(img)
    labels = _sharp_deposits(
        _blur(img, 0.05 / SPACING), residual, residual / r_sigma, prep.mask, SPACING, DetectConfig()
    )
    assert labels[DISC_RC] > 0
    assert labels[BUMP_RC] == 0
    assert labels.max() == 1  # nothing else in the texture


def test_missed_disc_is_promoted_as_one_calcification():
    mammo, prep, _, _, empty = _inputs(_image())
    det = promote_coarse_deposits(mammo, prep, empty)
    (calc,) = det.calcifications
    assert calc.score == DetectConfig().coarse_score
    assert np.hypot(*(np.array(calc.center_rc) - DISC_RC)) * SPACING < 0.3
    assert 2.0 <= calc.diameter_mm <= 3.0  # drawn 2.5 mm
    assert calc.circularity > 0.8 and calc.solidity > 0.9


def test_detected_disc_is_left_as_it_is_and_film_pixels_are_skipped():
    mammo, prep, _, _, empty = _inputs(_image())
    first = promote_coarse_deposits(mammo, prep, empty)
    again = promote_coarse_deposits(mammo, prep, first)  # covered: nothing added
    assert len(again.calcifications) == 1
    coarse = DetectConfig(coarse_max_pixel_mm=0.05)
    assert promote_coarse_deposits(mammo, prep, empty, coarse).calcifications == ()


def test_no_deposit_no_promotion():
    mammo, prep, _, _, empty = _inputs(_image(0.0))
    assert promote_coarse_deposits(mammo, prep, empty).calcifications == ()
