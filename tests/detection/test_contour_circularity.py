"""The sub-pixel half-maximum contour tells a small smooth disc from a mildly irregular
speck, where the pixel outline's staircase cannot, and the cluster morphology rule uses it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from calcscope.detection.contours import contour_circularity
from calcscope.model import Calcification, Morphology
from calcscope.reading.describe import DescribeThresholds, cluster_morphology
from helpers import disc_contour, make_calcification

PIXEL_MM = 0.1


def _render(radius_mm, size: int = 41, psf_px: float = 0.7, ss: int = 8) -> np.ndarray:
    """A bright shape (radius as a function of angle, mm) rendered with supersampling and
    blurred, on a flat background."""
    n = size * ss
    coords = (np.arange(n) + 0.5) / ss - size / 2
    y, x = np.meshgrid(coords, coords, indexing="ij")
    r = np.hypot(x, y) * PIXEL_MM
    inside = (r <= radius_mm(np.arctan2(y, x))).astype(np.float64)
    img = inside.reshape(size, ss, size, ss).mean(axis=(1, 3))
    return cv2.GaussianBlur(img, (0, 0), psf_px) * 0.3


def _circ(img: np.ndarray) -> float | None:
    c = img.shape[0] // 2
    return contour_circularity(img, (c - 6, c - 6, c + 7, c + 7), (float(c), float(c)), PIXEL_MM)


@pytest.mark.parametrize("d_mm", [0.6, 0.8, 1.0])
def test_disc_is_round_and_star_is_not(d_mm: float):
    disc = _render(lambda th: np.full_like(th, d_mm / 2))
    # an irregular speck of about the same area: 8 vertices, radii alternating 1 and 0.6
    angles = np.linspace(-np.pi, np.pi, 8, endpoint=False) + 0.3
    radii = np.tile([1.0, 0.6], 4) * d_mm / 2 / 0.8
    star = _render(lambda th: np.interp(th, angles, radii, period=2 * np.pi))
    c_disc, c_star = _circ(disc), _circ(star)
    assert c_disc is not None and c_star is not None
    assert c_disc >= 0.96 > c_star, (c_disc, c_star)


def test_no_contour_without_a_peak():
    assert _circ(np.zeros((41, 41))) is None


def _member(length_mm: float, contour_circ: float | None, circ: float) -> Calcification:
    r = length_mm / 2 / PIXEL_MM
    contour = np.unique(disc_contour((100.0, 100.0), r, 32), axis=0)
    return make_calcification(
        1,
        (100.0, 100.0),
        length_mm,
        radius_px=r,
        contour_rc=contour,
        cnr=15.0,
        circularity=circ,
        solidity=0.97,
        contour_circularity=contour_circ,
    )


@pytest.mark.parametrize(
    ("contour_circ", "circ", "expected"),
    [
        (0.94, 0.88, Morphology.COARSE_HETEROGENEOUS),  # staircase looks smooth, shape is not
        (0.975, 0.84, Morphology.ROUND),  # staircase looks irregular, shape is round
        (None, 0.84, Morphology.COARSE_HETEROGENEOUS),  # not measured: pixel outline
        (None, 0.88, Morphology.ROUND),
    ],
)
def test_coarse_heterogeneous_judged_on_the_subpixel_outline(contour_circ, circ, expected):
    members = [_member(0.8, contour_circ, circ) for _ in range(6)]
    morph, _, reasons, _, _ = cluster_morphology(members, PIXEL_MM, DescribeThresholds())
    assert morph is expected, reasons
