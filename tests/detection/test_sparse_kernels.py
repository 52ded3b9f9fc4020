"""The detector's sparse kernels give OpenCV's whole-image results exactly."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from calcscope.detection.candidates import (
    BAND_SIGMAS_MM,
    band_pass_stack,
    blur,
    component_stats,
    filter_at,
    local_max_at,
    robust_sigma,
    sparse_components,
)


def _sparse_image(seed: int, shape: tuple[int, int] = (301, 427)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.zeros(shape, dtype=bool)
    # blobs and specks away from the origin, so that the labelling box starts inside
    for _ in range(40):
        r, c = rng.integers(7, shape[0]), rng.integers(5, shape[1])
        img[r : r + rng.integers(1, 9), c : c + rng.integers(1, 9)] = True
    img &= rng.random(shape) < 0.8
    return img


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_sparse_components_are_opencvs_labels(seed: int) -> None:
    img = _sparse_image(seed)
    pixels = np.flatnonzero(img)
    n, labels = sparse_components(img, pixels)
    n_cv, labels_cv = cv2.connectedComponents(img.view(np.uint8), connectivity=8, ltype=cv2.CV_32S)
    assert n == n_cv
    np.testing.assert_array_equal(labels, labels_cv)


def test_sparse_components_of_nothing() -> None:
    n, labels = sparse_components(np.zeros((5, 6), dtype=bool), np.zeros(0, dtype=np.int64))
    assert n == 1 and not labels.any()


@pytest.mark.parametrize("seed", [0, 5])
def test_component_stats_are_opencvs(seed: int) -> None:
    img = _sparse_image(seed)
    pixels = np.flatnonzero(img)
    n, labels, stats_cv, _ = cv2.connectedComponentsWithStats(
        img.view(np.uint8), connectivity=8, ltype=cv2.CV_32S
    )
    stats = component_stats(pixels, labels.ravel()[pixels], n, img.shape)
    np.testing.assert_array_equal(stats[1:], stats_cv[1:])
    assert stats[0, cv2.CC_STAT_AREA] == stats_cv[0, cv2.CC_STAT_AREA]


def test_filter_at_reads_the_whole_image_filter() -> None:
    rng = np.random.default_rng(3)
    img = rng.normal(size=(600, 700)).astype(np.float32)
    pixels = rng.choice(img.size, 500, replace=False)
    pixels = np.concatenate([pixels, [0, img.size - 1, 699, 599 * 700]])  # the corners
    k = 11
    want = cv2.dilate(img, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))).ravel()[pixels]
    np.testing.assert_array_equal(local_max_at(img, pixels, k), want)
    box = cv2.boxFilter(img, -1, (29, 29)).ravel()[pixels]
    got = filter_at(img.shape, pixels, 14, lambda box: cv2.boxFilter(img[box], -1, (29, 29)))
    np.testing.assert_allclose(got, box, rtol=1e-6, atol=1e-6)


def test_band_stack_seed_map_is_the_fine_bands_maximum() -> None:
    rng = np.random.default_rng(4)
    img = rng.normal(100.0, 5.0, size=(200, 240)).astype(np.float32)
    mask = np.ones(img.shape, dtype=bool)
    bands = band_pass_stack(img, 0.07, mask)
    want = np.maximum(bands.band_maps[0], bands.band_maps[1])
    np.testing.assert_array_equal(bands.seed_map, want)
    pixels = np.array([0, 5, 1234, img.size - 1])
    np.testing.assert_array_equal(bands.seed_at(pixels), want.ravel()[pixels])
    np.testing.assert_array_equal(bands.seed_at(np.s_[10:20]), want[10:20])
    np.testing.assert_array_equal(bands.cnr, np.maximum(want, bands.band_maps[2]))


@pytest.mark.parametrize("pixel_mm", [0.05, 0.07, 0.2, 0.3])
def test_band_stack_in_place_is_the_plain_band_pass(pixel_mm: float) -> None:
    """Bands written over their finer blur and the background kept reduced give exactly
    the differences of the blurs, each over its noise, and the largest blur."""
    rng = np.random.default_rng(6)
    img = rng.normal(100.0, 5.0, size=(620, 190)).astype(np.float32)  # strips of 256 rows
    mask = np.zeros(img.shape, dtype=bool)
    mask[20:590, 10:170] = True
    bands = band_pass_stack(img, pixel_mm, mask)
    blurs = [blur(img, s / pixel_mm) for s in BAND_SIGMAS_MM]
    for k, band in enumerate(bands.band_maps):
        diff = np.subtract(blurs[k], blurs[k + 1], dtype=np.float32)
        want = diff * np.float32(1.0 / bands.noise[k])
        np.testing.assert_array_equal(band, want)
        assert bands.noise[k] == robust_sigma(diff[::3, ::3][mask[::3, ::3]])
    np.testing.assert_array_equal(bands.background_level, blurs[-1])
    big_blur = BAND_SIGMAS_MM[-1] / pixel_mm > 6.0
    assert (bands.background.size < img.size) == big_blur  # held reduced when it can be
    assert not np.shares_memory(bands.band_maps[0], img)  # the image is never overwritten


def test_coarse_bands_kept_at_the_grown_pixels_read_the_same() -> None:
    rng = np.random.default_rng(8)
    img = rng.normal(100.0, 5.0, size=(300, 260)).astype(np.float32)
    bands = band_pass_stack(img, 0.07, np.ones(img.shape, dtype=bool))
    grown = np.sort(rng.choice(img.size, 900, replace=False))
    sparse = bands.with_coarse_at(grown)
    assert sparse.band_maps[2].shape == (grown.size,)  # no full-size coarse map held
    np.testing.assert_array_equal(sparse.band_maps[0], bands.band_maps[0])
    some = grown[::7]
    for k in range(len(bands.band_maps)):
        np.testing.assert_array_equal(sparse.band_at(k, some), bands.band_maps[k].ravel()[some])
    with pytest.raises(ValueError):
        _ = sparse.cnr
