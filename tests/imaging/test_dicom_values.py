"""DICOM grey levels: read_image maps stored values through a table of each value (window,
BitsStored range, robust percentiles, MONOCHROME1, float32 cast and clip); the pixels are
exactly those of mapping every pixel in float64, then casting and clipping."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_voi_lut

from calcscope.imaging.io import ROBUST_PERCENTILES, read_image, write_image
from calcscope.phantom.mammogram import make_phantom


@pytest.fixture(scope="module")
def phantom_dcm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ph = make_phantom(seed=2, spacing_mm=0.2, shape=(600, 480))
    return write_image(ph.mammogram, tmp_path_factory.mktemp("values") / "p.dcm")


def _finish(values: np.ndarray, photometric: str) -> np.ndarray:
    if photometric == "MONOCHROME1":
        values = 1.0 - values
    return np.clip(values.astype(np.float32), 0.0, 1.0)


def _variant(src: Path, out: Path, photometric: str, **attrs: object) -> pydicom.Dataset:
    ds = pydicom.dcmread(src)
    for keyword in ("WindowCenter", "WindowWidth", "PresentationIntentType"):
        if keyword in ds:
            delattr(ds, keyword)
    ds.PhotometricInterpretation = photometric
    for keyword, value in attrs.items():
        setattr(ds, keyword, value)
    ds.save_as(out)
    return ds


@pytest.mark.parametrize("photometric", ["MONOCHROME2", "MONOCHROME1"])
def test_bits_range_and_robust_percentiles_exact(
    phantom_dcm: Path, tmp_path: Path, photometric: str, caplog: pytest.LogCaptureFixture
) -> None:
    ds = pydicom.dcmread(phantom_dcm)
    shifted = (ds.pixel_array >> 3).astype(np.uint16).tobytes()  # 13 bits in a 14-bit range
    ds = _variant(phantom_dcm, tmp_path / "bits.dcm", photometric, BitsStored=14, PixelData=shifted)
    raw = ds.pixel_array
    assert raw.max() < 2**13
    lo, hi = min(0.0, float(raw.min())), max(2.0**14 - 1, float(raw.max()))
    with caplog.at_level(logging.WARNING, logger="pydicom"):
        pixels = read_image(tmp_path / "bits.dcm").pixels
    assert not caplog.records  # unused high bits: no "cannot return a view" from pydicom
    assert np.array_equal(pixels, _finish((raw.astype(np.float64) - lo) / (hi - lo), photometric))
    assert not pixels.flags.writeable and pixels.dtype == np.float32

    path = tmp_path / "proc.dcm"
    ds = _variant(phantom_dcm, path, photometric, PresentationIntentType="FOR PROCESSING")
    raw = ds.pixel_array
    lo, hi = (float(v) for v in np.percentile(raw, ROBUST_PERCENTILES))
    expected = _finish((raw.astype(np.float64) - lo) / (hi - lo), photometric)
    assert np.array_equal(read_image(path).pixels, expected)
    assert expected.min() == 0.0 and expected.max() == 1.0  # some pixels clipped each side


def test_window_with_monochrome1_exact(phantom_dcm: Path, tmp_path: Path) -> None:
    path = tmp_path / "w1.dcm"
    ds = _variant(phantom_dcm, path, "MONOCHROME1", WindowCenter=30000.0, WindowWidth=20000.0)
    raw = ds.pixel_array
    probe = apply_voi_lut(np.array([-1e30, 1e30]), ds, index=0)
    lo, hi = float(probe.min()), float(probe.max())
    windowed = (apply_voi_lut(raw.astype(np.float64), ds, index=0) - lo) / (hi - lo)
    assert np.array_equal(read_image(path).pixels, _finish(windowed, "MONOCHROME1"))


def test_all_equal_stored_values_read_as_zeros(phantom_dcm: Path, tmp_path: Path) -> None:
    ds = pydicom.dcmread(phantom_dcm)
    path = tmp_path / "flat.dcm"
    ds.PixelData = np.full(ds.pixel_array.shape, 700, dtype=np.uint16).tobytes()
    ds.PresentationIntentType = "FOR PROCESSING"
    for keyword in ("WindowCenter", "WindowWidth"):
        if keyword in ds:
            delattr(ds, keyword)
    ds.save_as(path)
    pixels = read_image(path).pixels
    assert pixels.shape == ds.pixel_array.shape and not pixels.any()
