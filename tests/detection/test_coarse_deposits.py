"""Sharp-edged coarse deposits the candidate classifier missed (step 5 of detect.detect,
calcscope.detection.deposits).

A calcification's edge is as sharp as the imaging blur allows; a bright patch of tissue of
the same size and contrast fades out over millimetres. Synthetic images: a smooth textured
background, a 2.5 mm disc with a blurred-step edge and a Gaussian bump of the same size and
height.
"""

from __future__ import annotations

import cv2
import numpy as np

from calcscope.config import DetectConfig
from calcscope.detection.candidates import TopHat, top_hat
from calcscope.detection.deposits import add_coarse_deposits, sharp_deposits
from calcscope.detection.detect import detect
from calcscope.imaging.preprocess import Preprocessed
from calcscope.model import Mammogram

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


def _inputs(img: np.ndarray, spacing: float = SPACING) -> tuple[Mammogram, Preprocessed, TopHat]:
    mammo = Mammogram(img, (spacing, spacing))
    mask = np.ones(img.shape, dtype=bool)
    prep = Preprocessed(mask=mask, breast=mask, pectoral=~mask, chest_wall="left")
    return mammo, prep, top_hat(img, spacing, mask, DetectConfig().background_mm)


def _deposits(img: np.ndarray):
    _, prep, tophat = _inputs(img)
    return sharp_deposits(img, tophat, prep.mask, SPACING, DetectConfig())


def _promote(img: np.ndarray, calcs=()):
    """The calcifications after step 5 of detect, from ``calcs`` found before it."""
    mammo, _, tophat = _inputs(img)
    return add_coarse_deposits(mammo, tuple(calcs), _deposits(img), tophat, DetectConfig())


def test_sharp_disc_is_a_deposit_and_the_smooth_bump_is_not():
    img = _image()
    labels = np.zeros(img.shape, dtype=np.int32)
    for j, deposit in enumerate(_deposits(img), start=1):
        labels[deposit.box][deposit.mask] = j
    assert labels[DISC_RC] > 0
    assert labels[BUMP_RC] == 0
    assert labels.max() == 1  # nothing else in the texture


def test_missed_disc_is_promoted_as_one_calcification():
    (calc,) = _promote(_image())
    assert calc.score == DetectConfig().coarse_score
    assert np.hypot(*(np.array(calc.center_rc) - DISC_RC)) * SPACING < 0.3
    assert 2.0 <= calc.diameter_mm <= 3.0  # drawn 2.5 mm
    assert calc.circularity > 0.8 and calc.solidity > 0.9


def test_detected_disc_is_left_as_it_is_and_film_pixels_are_skipped():
    img = _image()
    first = _promote(img)
    again = _promote(img, first)  # covered: nothing added
    assert len(again) == 1
    mammo, prep, _ = _inputs(img)
    coarse = DetectConfig(coarse_max_pixel_mm=0.05)
    added = [
        c for c in detect(mammo, prep, coarse).calcifications if c.score == coarse.coarse_score
    ]
    assert added == []
    # with the default, the whole pipeline stage finds the disc, by the classifier or step 5
    found = detect(mammo, prep).calcifications
    assert any(
        c.score >= DetectConfig().operating_score
        and np.hypot(*(np.array(c.center_rc) - DISC_RC)) * SPACING < 0.5
        and c.diameter_mm >= 2.0
        for c in found
    )


def test_no_deposit_no_promotion():
    assert _promote(_image(0.0)) == ()
