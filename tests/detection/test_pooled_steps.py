"""Steps that run on the detector's thread pool give exactly their serial results: the
sharp deposits' object mask (strips of rows), detect's calcifications as a whole and
the scale-matched CNR (strips of rows), on synthetic images whose objects straddle the
strips' edges."""

from __future__ import annotations

import sys

import cv2
import numpy as np
import pytest

from calcscope.config import DetectConfig
from calcscope.detection.bands import enlarge_rows, enlarges_by_rows
from calcscope.detection.candidates import top_hat
from calcscope.detection.deposits import sharp_deposits
from calcscope.detection.detect import detect
from calcscope.detection.scale_cnr import scale_matched_cnr
from calcscope.imaging.preprocess import Preprocessed
from calcscope.model import Mammogram
from helpers import serial_and_threaded

SPACING = 0.07


def _image(rows: int = 900, cols: int = 700) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """A textured float32 image with sharp 2.5 mm discs centred on strip edges (rows 128,
    256, 384, 512, 640) and specks of 0.2-0.5 mm along the same rows; the discs' centres."""
    rng = np.random.default_rng(7)
    texture = cv2.GaussianBlur(rng.normal(0, 1, (rows, cols)).astype(np.float32), (0, 0), 15)
    img = 0.4 + 0.05 * texture / texture.std()
    rr, cc = np.mgrid[:rows, :cols]
    discs = [(128, 150), (256, 450), (384, 200), (512, 520), (640, 300)]
    drawn = np.zeros((rows, cols), np.float32)
    for r, c in discs:
        drawn += (np.hypot(rr - r, cc - c) <= 1.25 / SPACING).astype(np.float32)
    for k, r in enumerate((128, 256, 384, 512, 640, 768)):
        for j in range(6):
            c = 60 + 100 * j + 7 * k
            radius = (0.1 + 0.05 * ((j + k) % 4)) / SPACING
            drawn += (np.hypot(rr - r - (j % 3) + 1, cc - c) <= radius).astype(np.float32)
    img += 0.25 * cv2.GaussianBlur(drawn, (0, 0), 0.05 / SPACING)
    img += rng.normal(0, 0.004, img.shape).astype(np.float32)
    return img.astype(np.float32), discs


def _text(value: object) -> str:
    """``repr(value)`` with every array element written out."""
    with np.printoptions(threshold=sys.maxsize):
        return repr(value)


def test_sharp_deposits_pooled_equal_serial(
    cv_threads: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    img, discs = _image()
    mask = np.ones(img.shape, dtype=bool)
    tophat = top_hat(img, SPACING, mask, DetectConfig().background_mm)

    def run() -> list[tuple[tuple[slice, slice], np.ndarray]]:
        found = sharp_deposits(img, tophat, mask, SPACING, DetectConfig())
        return [(d.box, d.mask) for d in found]

    serial, pooled = serial_and_threaded(run, monkeypatch)
    # every disc across a strip edge is found whole, by both
    for r, c in discs:
        hits = [
            m[r - box[0].start, c - box[1].start]
            for box, m in serial
            if box[0].start <= r < box[0].stop and box[1].start <= c < box[1].stop
        ]
        assert any(hits), (r, c)
    assert len(serial) == len(pooled) >= len(discs)
    for (box_s, mask_s), (box_p, mask_p) in zip(serial, pooled, strict=True):
        assert box_s == box_p
        assert np.array_equal(mask_s, mask_p)


def test_detect_outlines_pooled_equal_serial(
    cv_threads: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    img, _ = _image()
    mammo = Mammogram(img, (SPACING, SPACING))
    mask = np.ones(img.shape, dtype=bool)
    prep = Preprocessed(mask=mask, breast=mask, pectoral=~mask, chest_wall="left")
    serial, pooled = serial_and_threaded(
        lambda: detect(mammo, prep, DetectConfig()).calcifications, monkeypatch
    )
    assert len(serial) > 8  # many outlined calcifications
    assert [c.id for c in pooled] == list(range(1, len(pooled) + 1))
    scores = [c.score for c in pooled]
    assert scores == sorted(scores, reverse=True)  # numbered in descending score order
    assert _text(serial) == _text(pooled)


def test_scale_matched_cnr_pooled_equal_serial(
    cv_threads: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(3)
    img = cv2.GaussianBlur(rng.normal(0, 1, (1300, 600)).astype(np.float32), (0, 0), 1.0)
    rr, cc = np.mgrid[:1300, :600]
    mask = cc < 450 + 60 * np.sin(rr / 50.0)
    # centres on both sides of the strips' edges (rows 512 and 1024) and near the border
    rows = np.array([509, 511, 512, 514, 1021, 1023, 1024, 1027, 2, 1297], dtype=float)
    centres = np.column_stack([rows, np.linspace(5, 590, rows.size)])
    for r, c in centres.astype(int):
        img[max(r - 2, 0) : r + 3, max(c - 2, 0) : c + 3] += 3.0

    serial, pooled = serial_and_threaded(
        lambda: scale_matched_cnr(img, mask, centres, 0.05, 2.0), monkeypatch
    )
    assert np.all(serial > 0)
    assert np.array_equal(serial, pooled)


@pytest.mark.parametrize("factor", [2, 3, 4, 5])
def test_enlarged_rows_are_those_of_the_whole_enlargement(factor: int) -> None:
    rng = np.random.default_rng(factor)
    small = rng.uniform(0, 1000, (97, 61)).astype(np.float32)
    shape = (97 * factor, 61 * factor)
    whole = cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    for rows in (1, 5, 64, 128):
        for r0 in range(0, shape[0], rows):
            r1 = min(r0 + rows, shape[0])
            part = enlarge_rows(small, shape, r0, r1)
            assert part is not None
            assert np.array_equal(part, whole[r0:r1]), (rows, r0)
    # not an integer multiple (a film's reduced grid): the weights would differ
    assert enlarge_rows(small, (97 * factor + 3, 61 * factor), 0, 10) is None
    assert enlarges_by_rows(small.shape, shape)
    assert not enlarges_by_rows(small.shape, (97 * factor, 61 * factor + 1))
    assert not enlarges_by_rows((0, 61), shape)


def test_impulses_pooled_equal_serial(cv_threads: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Impulse removal in strips cut to the breast's columns: the pool's result is the
    serial loop's (pixels, values and noise)."""
    from calcscope.detection.impulses import remove_impulses

    img, _ = _image()
    rng = np.random.default_rng(3)
    rr, cc = np.mgrid[: img.shape[0], : img.shape[1]]
    mask = np.hypot(rr - 450, cc) < 420  # a half disc: its columns vary along the strips
    hot = rng.integers(0, img.size, 400)
    img.ravel()[hot] += rng.choice([-0.3, 0.3], hot.size).astype(np.float32)

    def run() -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        got = remove_impulses(img, mask, SPACING)
        return got.rows, got.cols, got.image, got.noise

    serial, pooled = serial_and_threaded(run, monkeypatch)
    assert serial[0].size > 50
    for s, p in zip(serial, pooled, strict=True):
        assert np.array_equal(s, p)
