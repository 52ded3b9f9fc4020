"""The detector's thread pool (:mod:`calcscope.detection.parallel`): strips processed by
threads give exactly the serial results, and with OpenCV at one thread (the batch and
node workers) or ``CALCSCOPE_THREADS=1`` the pool is not used."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

from calcscope.config import DetectConfig
from calcscope.detection.candidates import TopHatMarks, band_pass_stack, top_hat, top_hat_marks
from calcscope.detection.impulses import remove_impulses
from calcscope.detection.parallel import (
    THREADS_ENV,
    map_strips,
    mask_columns,
    strip_bounds,
    threads,
)
from helpers import serial_and_threaded


def _image(seed: int, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A noisy float32 image with specks and impulses, and a mask with a ragged edge."""
    rng = np.random.default_rng(seed)
    img = rng.normal(1000.0, 20.0, shape).astype(np.float32)
    img = (cv2.GaussianBlur(img, (0, 0), 1.5) + rng.normal(0, 5.0, shape)).astype(np.float32)
    r, c = rng.integers(0, shape[0], 300), rng.integers(0, shape[1], 300)
    img[r, c] += rng.uniform(30, 400, 300).astype(np.float32)
    rr, cc = np.mgrid[: shape[0], : shape[1]]
    mask = (cc < shape[1] * (0.7 + 0.2 * np.sin(rr / 37.0))) & (rr > 3)
    return img, mask


def test_strip_bounds_cover_the_rows_and_start_on_the_grid() -> None:
    bounds = strip_bounds(1031, 64, align=6)
    assert bounds[0][0] == 0 and bounds[-1][1] == 1031
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))
    assert all(r0 % 6 == 0 for r0, _ in bounds)  # 64 rounded up to 66
    assert strip_bounds(5, 64) == [(0, 5)]


def test_threads_follow_opencv_and_the_env(
    cv_threads: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(THREADS_ENV, raising=False)
    cv2.setNumThreads(2)
    assert threads() == 2
    monkeypatch.setenv(THREADS_ENV, "1")
    assert threads() == 1
    monkeypatch.setenv(THREADS_ENV, "8")  # at most OpenCV's
    assert threads() == 2
    cv2.setNumThreads(1)
    monkeypatch.delenv(THREADS_ENV)
    assert threads() == 1


def _thread_names(n_strips: int) -> set[str]:
    names: set[str] = set()

    def fn(r0: int, r1: int) -> int:
        names.add(threading.current_thread().name)
        threading.Event().wait(0.002)  # long enough for both threads to take strips
        return r0

    assert map_strips(fn, 10 * n_strips, 10) == list(range(0, 10 * n_strips, 10))
    return names


def test_pool_used_only_with_several_opencv_threads(
    cv_threads: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(THREADS_ENV, raising=False)
    cv2.setNumThreads(1)  # as the batch and node workers set it
    assert _thread_names(40) == {threading.current_thread().name}
    cv2.setNumThreads(2)
    assert any(n.startswith("calcscope") for n in _thread_names(40))
    monkeypatch.setenv(THREADS_ENV, "1")
    assert _thread_names(40) == {threading.current_thread().name}


@pytest.mark.parametrize(
    ("shape", "pixel_mm"),
    [((1031, 517), 0.07), ((777, 389), 0.05), ((513, 301), 0.1), ((70, 90), 0.07)],
)
def test_band_pass_stack_threaded_is_serial(
    shape: tuple[int, int], pixel_mm: float, cv_threads: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # rows that are no multiple of the 64- and 256-row strips; 0.07 mm: the coarse band
    # pending (reduced grids), 0.1 mm: every band a full-size map
    img, mask = _image(0, shape)
    a, b = serial_and_threaded(
        lambda: band_pass_stack(img, pixel_mm, mask, grow_cnr=2.0), monkeypatch
    )
    assert a.noise == b.noise
    assert len(a.band_maps) == len(b.band_maps)
    for x, y in zip(a.band_maps, b.band_maps, strict=True):
        assert x.tobytes() == y.tobytes()
    assert a.background.tobytes() == b.background.tobytes()
    assert (a.pending is None) == (b.pending is None)
    if a.pending is not None and b.pending is not None:
        np.testing.assert_array_equal(a.pending.grow, b.pending.grow)
        assert a.pending.scale == b.pending.scale
    if pixel_mm == 0.07 and shape[0] > 100:
        assert a.pending is not None and a.pending.grow.size > 0


def test_top_hat_marks_threaded_are_serial(
    cv_threads: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    img, mask = _image(1, (1029, 413))
    cfg = DetectConfig()

    def run() -> tuple[bytes, TopHatMarks, bytes]:
        th = top_hat(img, 0.07, mask, cfg.background_mm)
        marks = top_hat_marks(th, mask, 0.07, cfg)
        assert marks is not None
        return th.residual.tobytes(), marks, marks.rebuilt(img).residual.tobytes()

    (res_a, a, again_a), (res_b, b, again_b) = serial_and_threaded(run, monkeypatch)
    assert res_a == res_b == again_a == again_b
    assert a.grow.size > 0
    np.testing.assert_array_equal(a.grow, b.grow)
    np.testing.assert_array_equal(a.deposit, b.deposit)
    assert a.sigma == b.sigma


def test_remove_impulses_threaded_is_serial(
    cv_threads: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    img, mask = _image(2, (1100, 350))  # impulses in several 256-row strips
    a, b = serial_and_threaded(lambda: remove_impulses(img, mask, 0.07), monkeypatch)
    assert a.count > 10
    assert a.noise == b.noise
    np.testing.assert_array_equal(a.rows, b.rows)
    np.testing.assert_array_equal(a.cols, b.cols)
    assert a.image.tobytes() == b.image.tobytes()


def test_mask_columns_spans_the_mask_pixels_and_the_margin_clipped_to_the_width() -> None:
    rows = np.zeros((3, 20), dtype=bool)
    assert mask_columns(rows, 2) is None
    rows[1, 5] = rows[2, 9] = True
    assert mask_columns(rows) == slice(5, 10)
    assert mask_columns(rows, 2) == slice(3, 12)
    rows[0, 0] = rows[0, 19] = True
    assert mask_columns(rows, 4) == slice(0, 20)
