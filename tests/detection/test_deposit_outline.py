"""A coarse deposit's whole outline tells an angular (dystrophic) deposit from a lobulated
(popcorn) one, and the macro-pattern rule uses it."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from calcscope.detection.contours import deposit_outline
from calcscope.model import Calcification, DepositOutline, Morphology
from calcscope.reading.describe import DescribeThresholds, describe
from helpers import disc_contour, make_calcification

T = DescribeThresholds()
WINDOW_MM = 14.0


def _render(thickness, pixel_mm: float, ss: int = 4) -> np.ndarray:
    """Projected thickness ``thickness(y_mm, x_mm)`` (peak 1) rendered with supersampling,
    blurred by a 0.05 mm PSF, scaled to a deposit's contrast, over mild noise."""
    size = int(round(WINDOW_MM / pixel_mm)) | 1
    n = size * ss
    coords = ((np.arange(n) + 0.5) / ss - size / 2) * pixel_mm
    y, x = np.meshgrid(coords, coords, indexing="ij")
    img = thickness(y, x).reshape(size, ss, size, ss).mean(axis=(1, 3))
    img = cv2.GaussianBlur(img, (0, 0), 0.05 / pixel_mm) * 0.3
    rng = np.random.default_rng(0)
    return img + rng.normal(0.0, 0.004, img.shape)


def _dome(y, x, radius):
    """Thickness of a body whose outline radius at each bearing is ``radius(theta)``."""
    rb = radius(np.arctan2(y, x))
    return np.sqrt(np.clip(1.0 - (x * x + y * y) / (rb * rb), 0.0, None))


def _star(eq_diameter_mm: float):
    """An angular plaque: 12 vertices, radii alternating 1 and 0.55 (linear in angle)."""
    angles = np.linspace(-np.pi, np.pi, 12, endpoint=False) + 0.2
    radii = np.tile([1.0, 0.55], 6)
    th = np.linspace(-np.pi, np.pi, 721)
    area = 0.5 * np.trapezoid(np.interp(th, angles, radii, period=2 * np.pi) ** 2, th)
    radii = radii * eq_diameter_mm / 2 / np.sqrt(area / np.pi)
    return lambda y, x: _dome(y, x, lambda t: np.interp(t, angles, radii, period=2 * np.pi))


def _lobes(core_mm: float, lobe_mm: float, n: int):
    """A popcorn clump: a core ellipsoid and ``n`` rounded lobes bulging from it."""

    def f(y, x):
        out = _dome(y, x, lambda t: np.full_like(t, core_mm))
        for k in range(n):
            a = 2 * np.pi * k / n + 0.4
            cy, cx = 1.1 * core_mm * np.sin(a), 1.1 * core_mm * np.cos(a)
            out = np.maximum(out, _dome(y - cy, x - cx, lambda t: np.full_like(t, lobe_mm)))
        return out

    return f


def _outline(thickness, pixel_mm: float) -> DepositOutline:
    img = _render(thickness, pixel_mm)
    c = img.shape[0] // 2
    half = int(round(0.5 / pixel_mm))  # the detector's piece: a 1 mm box at the centre
    out = deposit_outline(img, (c - half, c - half, c + half + 1, c + half + 1), (c, c), pixel_mm)
    assert out is not None
    return out


def _votes(dep: DepositOutline) -> int:
    return (
        (dep.corner_fraction >= T.angular_corner_fraction)
        + (dep.straight_fraction >= T.angular_straight_fraction)
        + (dep.inscribed_ratio >= T.compact_inscribed_ratio)
    )


@pytest.mark.parametrize("pixel_mm", [0.07, 0.1])
def test_angular_plaque_lobulated_clump_and_disc(pixel_mm: float):
    star = _outline(_star(3.5), pixel_mm)
    clump = _outline(_lobes(0.9, 0.75, 4), pixel_mm)
    disc = _outline(lambda y, x: _dome(y, x, lambda t: np.full_like(t, 1.25)), pixel_mm)
    # the whole deposit is outlined, not the 1 mm piece the detector handed over
    assert 3.0 <= star.size_mm <= 4.0, star
    assert clump.size_mm > 2.5, clump
    assert 2.2 <= disc.size_mm <= 2.8, disc
    assert star.corner_fraction > clump.corner_fraction, (star, clump)
    assert star.straight_fraction > clump.straight_fraction, (star, clump)
    assert _votes(star) >= 2 > _votes(clump), (star, clump)
    # a disc is compact and has no corners
    assert disc.inscribed_ratio > 0.9 and disc.corner_fraction == 0.0, disc
    assert clump.inscribed_ratio < T.compact_inscribed_ratio < disc.inscribed_ratio


def test_no_outline_without_a_peak():
    assert deposit_outline(np.zeros((80, 80)), (35, 35, 45, 45), (40.0, 40.0), 0.1) is None


def _deposit(
    d_mm: float, deposit: DepositOutline | None, solidity: float, circularity: float = 0.5
) -> Calcification:
    return make_calcification(
        1,
        (500.0, 500.0),
        d_mm,
        score=0.95,
        radius_px=d_mm / 2 / 0.1,
        contour_rc=disc_contour((500.0, 500.0), d_mm / 2 / 0.1, 48),
        min_diameter_mm=d_mm * 0.8,
        contrast=0.3,
        cnr=40.0,
        circularity=circularity,
        elongation=0.2,
        solidity=solidity,
        deposit=deposit,
    )


ANGULAR = DepositOutline(
    size_mm=3.6, corner_fraction=0.11, straight_fraction=0.25, inscribed_ratio=0.75
)
LOBULATED = DepositOutline(
    size_mm=2.6, corner_fraction=0.0, straight_fraction=0.12, inscribed_ratio=0.66
)


@pytest.mark.parametrize(
    ("d_mm", "deposit", "expected", "words"),
    [
        # over 3 mm but angular: dystrophic (before: popcorn by size alone)
        (3.6, ANGULAR, Morphology.DYSTROPHIC, "angular"),
        # an irregular piece under 3 mm of a lobulated clump: popcorn (before: dystrophic)
        (2.2, LOBULATED, Morphology.COARSE_POPCORN, "lobulated"),
        # a lobulated deposit of 2 mm or less is not popcorn: the irregular rule stands
        (1.8, LOBULATED.__class__(1.9, 0.0, 0.12, 0.66), Morphology.DYSTROPHIC, "irregular"),
        # not measured: the size rule of before
        (3.6, None, Morphology.COARSE_POPCORN, "3.0 mm"),
        (2.2, None, Morphology.DYSTROPHIC, "irregular"),
    ],
)
def test_macro_pattern_from_the_deposit_outline(d_mm, deposit, expected, words):
    d = describe([_deposit(d_mm, deposit, solidity=0.7)], (0.1, 0.1))
    assert [f.pattern for f in d.macros] == [expected]
    assert words in " ".join(d.macros[0].reasons)


def test_smooth_round_deposit_keeps_the_round_rule():
    """The outline vote only splits irregular (or large) deposits: a smooth compact one
    with a flat arc or two stays round."""
    smooth = DepositOutline(
        size_mm=2.0, corner_fraction=0.0, straight_fraction=0.2, inscribed_ratio=0.95
    )
    d = describe([_deposit(2.0, smooth, solidity=0.95, circularity=0.85)], (0.1, 0.1))
    assert [f.pattern for f in d.macros] == [Morphology.ROUND]


@pytest.mark.parametrize(
    ("deposit", "expected", "words"),
    [
        (ANGULAR, Morphology.DYSTROPHIC, "3 touching pieces"),
        (LOBULATED, Morphology.COARSE_POPCORN, "3 coarse lobes"),
        (None, Morphology.COARSE_POPCORN, "3 coarse lobes"),
    ],
)
def test_touching_pieces_of_an_angular_plaque_are_dystrophic(deposit, expected, words):
    """The detector can break an angular plaque into touching pieces, which the lobe rule
    would take for a popcorn clump; the whole outline decides."""
    pieces = [
        dataclasses.replace(
            _deposit(1.6 - 0.1 * k, deposit if k == 0 else None, solidity=0.85, circularity=0.7),
            id=k + 1,
            center_rc=(500.0, 500.0 + 16 * k),
            bbox_rc=(492, 492 + 16 * k, 508, 508 + 16 * k),
        )
        for k in range(3)
    ]
    d = describe(pieces, (0.1, 0.1))
    assert [(f.pattern, f.member_ids) for f in d.macros] == [(expected, (1, 2, 3))]
    assert words in " ".join(d.macros[0].reasons)


def test_smooth_lobe_of_a_lobulated_deposit_is_popcorn():
    """The detector outlines each lobe of a popcorn clump as a smooth piece; its whole
    deposit is not round, so the deposit decides (before: a round calcification)."""
    lobe = _deposit(1.8, LOBULATED, solidity=0.95, circularity=0.85)
    d = describe([lobe], (0.1, 0.1))
    assert [f.pattern for f in d.macros] == [Morphology.COARSE_POPCORN]
    # without the outline the smooth piece stays round
    d = describe([dataclasses.replace(lobe, deposit=None)], (0.1, 0.1))
    assert [f.pattern for f in d.macros] == [Morphology.ROUND]
