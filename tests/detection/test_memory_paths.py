"""The detector's low-memory paths read the same values as the full-size maps they
replace: labels made in strips, label windows, the pending coarse band, the top-hat
residual freed and made again, the maps read at the objects' pixels."""

from __future__ import annotations

import tracemalloc

import cv2
import numpy as np
import pytest

from calcscope.config import DetectConfig
from calcscope.detection.candidates import (
    ObjectLabels,
    TopHat,
    TopHatMarks,
    band_pass_stack,
    coarse_deposit_mask,
    object_values,
    sparse_components,
    top_hat,
    top_hat_marks,
)
from calcscope.detection.labels import SparseLabels, components_at


def _blobs(seed: int, shape: tuple[int, int]) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.random(shape) < 0.03
    img = cv2.dilate(img.view(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    return img & (rng.random(shape) < 0.8)


@pytest.mark.parametrize(("seed", "shape"), [(0, (700, 530)), (1, (1029, 311)), (2, (3, 9))])
def test_components_in_strips_are_opencvs_labels(seed: int, shape: tuple[int, int]) -> None:
    img = _blobs(seed, shape)  # spans several strips of 256 rows
    pixels = np.flatnonzero(img)
    n_cv, labels_cv = cv2.connectedComponents(img.view(np.uint8), connectivity=8, ltype=cv2.CV_32S)
    n, labels_at = components_at(pixels, shape)
    assert n == n_cv
    np.testing.assert_array_equal(labels_at, labels_cv.ravel()[pixels])
    # any order: the same partition into the same number of parts
    n_any, any_at = components_at(pixels, shape, opencv_order=False)
    assert n_any == n_cv
    assert len(set(zip(any_at.tolist(), labels_at.tolist(), strict=True))) == n_cv - 1
    assert components_at(np.zeros(0, dtype=np.int64), shape)[0] == 1


def test_sparse_label_windows_are_the_label_images() -> None:
    img = _blobs(3, (200, 150))
    pixels = np.flatnonzero(img)
    n, dense = sparse_components(img, pixels)
    labels = SparseLabels(img.shape, pixels, dense.ravel()[pixels])
    for box in [
        (slice(0, 200), slice(0, 150)),
        (slice(17, 90), slice(40, 41)),
        (slice(5, 5), slice(3, 9)),
    ]:
        np.testing.assert_array_equal(labels[box], dense[box])
    painted = np.zeros((40, 50), dtype=np.int32)
    regions = [
        ((slice(2, 12), slice(3, 20)), np.ones((10, 17), dtype=bool)),
        ((slice(8, 30), slice(10, 14)), np.eye(22, 4, dtype=bool)),  # over the first
    ]
    for j, (box, patch) in enumerate(regions, start=1):
        painted[box][patch] = j
    sparse = SparseLabels.painted(painted.shape, regions)
    np.testing.assert_array_equal(sparse[slice(0, 40), slice(0, 50)], painted)


def test_pending_coarse_band_reads_the_full_bands_values() -> None:
    rng = np.random.default_rng(4)
    img = rng.normal(100.0, 5.0, size=(400, 330)).astype(np.float32)
    mask = np.zeros(img.shape, dtype=bool)
    mask[20:380, 10:300] = True
    full = band_pass_stack(img, 0.07, mask)
    light = band_pass_stack(img, 0.07, mask, grow_cnr=2.0)
    assert light.pending is not None and len(light.band_maps) == 2  # two full-size maps
    assert light.noise == full.noise
    for k in range(2):
        np.testing.assert_array_equal(light.band_maps[k], full.band_maps[k])
    np.testing.assert_array_equal(
        light.pending.grow, np.flatnonzero((full.band_maps[2] >= 2.0) & mask)
    )
    pixels = np.sort(rng.choice(img.size, 500, replace=False))
    objects = ObjectLabels(np.zeros(img.shape, dtype=np.int32), np.zeros((1, 5), np.int32), pixels)
    tophat = top_hat(img, 0.07, mask, 6.0)
    read, bands, made = object_values(objects, light.kept_at(pixels), tophat, img)
    for k in range(3):
        np.testing.assert_array_equal(bands.band_at(k, pixels), full.band_maps[k].ravel()[pixels])
    np.testing.assert_array_equal(read.background_at, full.background_level.ravel()[pixels])
    np.testing.assert_array_equal(read.residual_at, tophat.residual.ravel()[pixels])
    assert made is tophat
    with pytest.raises(ValueError):
        light.band_at(2, pixels)  # pending: not readable before it is made


def test_top_hat_freed_and_made_again_is_the_same() -> None:
    rng = np.random.default_rng(5)
    img = rng.normal(100.0, 4.0, size=(360, 300)).astype(np.float32)
    img[100:130, 80:115] += 60.0  # a coarse deposit
    mask = np.ones(img.shape, dtype=bool)
    cfg = DetectConfig()
    tophat = top_hat(img, 0.07, mask, cfg.background_mm)
    marks = top_hat_marks(tophat, mask, 0.07, cfg)
    assert isinstance(marks, TopHatMarks)
    np.testing.assert_array_equal(marks.rebuilt(img).residual, tophat.residual)
    z = tophat.residual * np.float32(1.0 / tophat.sigma)
    np.testing.assert_array_equal(marks.grow, np.flatnonzero((z >= cfg.macro_grow_z) & mask))
    deposit = np.flatnonzero(coarse_deposit_mask(z, mask, 0.07, cfg))
    assert deposit.size > 0
    np.testing.assert_array_equal(marks.deposit, deposit)
    pixels = np.flatnonzero(z > 1.0)
    objects = ObjectLabels(np.zeros(img.shape, dtype=np.int32), np.zeros((1, 5), np.int32), pixels)
    bands = band_pass_stack(img, 0.07, mask, grow_cnr=cfg.grow_cnr).kept_at(pixels)
    read, _, made = object_values(objects, bands, marks, img)
    assert isinstance(made, TopHat)
    np.testing.assert_array_equal(made.residual, tophat.residual)
    np.testing.assert_array_equal(read.residual_at, tophat.residual.ravel()[pixels])
    # a background computed at full size cannot be made again: the residual is kept
    assert top_hat_marks(top_hat(img, 0.3, mask, cfg.background_mm), mask, 0.3, cfg) is None


def test_pending_band_grows_at_the_full_bands_pixels_under_an_irregular_mask() -> None:
    """The pending band is made only in the columns of each strip's mask pixels: its
    growing pixels are still those of the full band, for a mask whose columns change from
    strip to strip (a disc, a lone column at the right edge, rows without any)."""
    rng = np.random.default_rng(9)
    img = rng.normal(100.0, 5.0, size=(700, 420)).astype(np.float32)
    rr, cc = np.mgrid[:700, :420]
    mask = np.hypot(rr - 300, cc - 150) < 200
    mask[520:600, 419] = True
    full = band_pass_stack(img, 0.07, mask)
    light = band_pass_stack(img, 0.07, mask, grow_cnr=1.5)
    assert light.pending is not None
    expected = np.flatnonzero((full.band_maps[2] >= 1.5) & mask)
    assert expected.size > 100 and expected[-1] > 520 * 420
    assert light.pending.grow.dtype == expected.dtype
    np.testing.assert_array_equal(light.pending.grow, expected)


def test_band_pass_stack_holds_at_most_three_full_size_maps_at_its_peak() -> None:
    """With the coarse band pending, the stack's peak allocation stays under three
    full-size float32 maps beyond the image (two held, one being made): a blur kept alive
    by a reference past its last read (e.g. a strip function's ``partial``) adds a fourth."""
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.normal(0.5, 0.1, (1600, 1300)).astype(np.float32), (0, 0), 2)
    mask = np.zeros(img.shape, dtype=bool)
    mask[:, :1100] = True
    tracemalloc.start()
    try:
        stack = band_pass_stack(img, 0.07, mask, grow_cnr=3.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert stack.pending is not None  # the low-memory path ran
    assert peak / img.nbytes < 3.0
