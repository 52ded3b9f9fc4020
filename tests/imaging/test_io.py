"""Tests of calcscope.imaging.io on synthetic images made here and real files in ../shared/data."""

from __future__ import annotations

import importlib.util
import json
import os
import struct
import threading
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
import tifffile
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import (
    ComputedRadiographyImageStorage,
    CTImageStorage,
    DigitalMammographyXRayImageStorageForPresentation,
    DigitalMammographyXRayImageStorageForProcessing,
    ExplicitVRLittleEndian,
    JPEGLSLossless,
    RLELossless,
    SecondaryCaptureImageStorage,
    generate_uid,
)

from calcscope.config import IOConfig
from calcscope.errors import (
    ImageTooLargeError,
    ImplausibleValueError,
    InputError,
    MissingSpacingError,
    NotAMammogramError,
    UnreadableFileError,
    one_line,
)
from calcscope.imaging.dicom import MAX_BAND_STEP_FRACTION, MAX_STEP_FRACTION, step_fractions
from calcscope.imaging.io import (
    PIXEL_FILE_SUFFIXES,
    find_images,
    from_array,
    read_image,
    write_image,
)
from calcscope.model import Laterality, Mammogram, Morphology, View

ROWS, COLS = 96, 80
SPOT_RC = (40, 30)


# ---------------------------------------------------------------------------------------
# synthetic images
# ---------------------------------------------------------------------------------------


def truth_image(rows: int = ROWS, cols: int = COLS) -> np.ndarray:
    """Known image in [0, 1], bright = dense: a gradient with one bright 3x3 spot."""
    rng = np.random.default_rng(7)
    img = 0.2 + 0.4 * np.linspace(0, 1, cols)[None, :] * np.ones((rows, 1))
    img = img + rng.normal(0, 0.01, (rows, cols))
    r, c = SPOT_RC
    img[r - 1 : r + 2, c - 1 : c + 2] = 0.95
    return np.clip(img, 0, 1)


def mg_dataset(
    stored: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    intent: str = "FOR PRESENTATION",
    modality: str = "MG",
    sop_class: str = DigitalMammographyXRayImageStorageForPresentation,
    bits_stored: int = 14,
    **attributes: object,
) -> Dataset:
    """A digital mammography dataset (PS3.3 A.26) around ``stored`` uint16 pixels."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = modality
    ds.PatientName = "DOE^JANE"
    ds.PatientID = "P001"
    ds.PatientBirthDate = "19600101"
    ds.PresentationIntentType = intent
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = stored.shape[-2:]
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 0
    ds.PixelData = np.ascontiguousarray(stored, dtype="<u2").tobytes()
    for key, value in attributes.items():
        setattr(ds, key, value)
    return ds


def save(ds: Dataset, path: Path) -> Path:
    ds.save_as(path, enforce_file_format=True)
    return path


def ffdm_processing(truth: np.ndarray, *, window: bool = True) -> Dataset:
    """FFDM FOR PROCESSING MONOCHROME1 header: ImagerPixelSpacing 0.07, rescale, window.

    MONOCHROME1: the lowest stored value is displayed white, so dense = low values.
    """
    stored = np.round((1.0 - truth) * 12000 + 1000).astype(np.uint16)
    attrs: dict[str, object] = {
        "ImagerPixelSpacing": [0.07, 0.07],
        "RescaleSlope": 0.5,
        "RescaleIntercept": -200,
        "RescaleType": "US",
        "ImageLaterality": "R",
        "ViewPosition": "MLO",
    }
    if window:
        # rescaled values span 300..6300: a window covering them all
        attrs |= {"WindowCenter": 3300, "WindowWidth": 6400}
    return mg_dataset(
        stored,
        photometric="MONOCHROME1",
        intent="FOR PROCESSING",
        sop_class=DigitalMammographyXRayImageStorageForProcessing,
        **attrs,
    )


def assert_spot_brightest(pixels: np.ndarray) -> None:
    r, c = SPOT_RC
    assert pixels.dtype == np.float32
    assert pixels.shape == (ROWS, COLS)
    assert 0.0 <= pixels.min() and pixels.max() <= 1.0
    assert pixels[r, c] == pytest.approx(pixels.max())
    assert pixels[r, c] > np.median(pixels) + 0.2


def assert_one_line(exc: pytest.ExceptionInfo[InputError], path: Path) -> None:
    message = str(exc.value)
    assert "\n" not in message
    assert message.startswith(str(path))


def test_one_line_quotes_an_exception_on_one_short_line() -> None:
    assert one_line(ValueError("bad\n  value\tat 12")) == "bad value at 12"
    assert one_line(RuntimeError()) == "RuntimeError"
    assert one_line("a\nb") == "a\\nb"  # a message's control characters are escaped
    long = one_line(ValueError("x" * 5000), 300)
    assert len(long) <= 300 and "characters left out" in long


# ---------------------------------------------------------------------------------------
# DICOM intensities and header
# ---------------------------------------------------------------------------------------


def test_monochrome1_for_processing_with_window(tmp_path: Path) -> None:
    truth = truth_image()
    path = save(ffdm_processing(truth), tmp_path / "ffdm.dcm")
    m = read_image(path)
    assert_spot_brightest(m.pixels)
    # PS3.3 C.11.2.1.2.1 linear window on the rescaled values, then MONOCHROME1 inverted
    stored = np.round((1.0 - truth) * 12000 + 1000)
    rescaled = 0.5 * stored - 200
    expected = 1.0 - np.clip((rescaled - (3300 - 0.5)) / (6400 - 1) + 0.5, 0, 1)
    np.testing.assert_allclose(m.pixels, expected, atol=1e-4)
    assert m.spacing_mm == (0.07, 0.07)
    assert m.source.spacing_origin == "ImagerPixelSpacing"
    assert m.source.photometric_interpretation == "MONOCHROME1"
    assert m.source.presentation_intent == "FOR PROCESSING"
    assert m.source.sop_class_uid == DigitalMammographyXRayImageStorageForProcessing
    assert m.source.patient_name == "DOE^JANE"
    assert m.source.patient_id == "P001"
    assert m.source.patient_birth_date == "19600101"
    assert m.source.modality == "MG"
    assert (m.laterality, m.view) == (Laterality.RIGHT, View.MLO)


def test_for_processing_without_window_uses_robust_range(tmp_path: Path) -> None:
    truth = truth_image()
    path = save(ffdm_processing(truth, window=False), tmp_path / "raw.dcm")
    m = read_image(path)
    assert_spot_brightest(m.pixels)
    assert m.pixels.max() == pytest.approx(1.0)
    assert np.corrcoef(m.pixels.ravel(), truth.ravel())[0, 1] > 0.999


def test_window_clips_and_stretches(tmp_path: Path) -> None:
    stored = np.round(truth_image() * 1000).astype(np.uint16)  # 0..1000
    ds = mg_dataset(stored, WindowCenter=500, WindowWidth=200, ImagerPixelSpacing=[0.1, 0.1])
    m = read_image(save(ds, tmp_path / "w.dcm"))
    low = stored < 399
    high = stored > 600
    assert np.all(m.pixels[low] == 0.0)
    assert np.all(m.pixels[high] == 1.0)


def test_presentation_without_window_uses_bits_stored(tmp_path: Path) -> None:
    truth = truth_image()
    stored = np.round(truth * 4095).astype(np.uint16)
    ds = mg_dataset(stored, bits_stored=12, PixelSpacing=[0.1, 0.1])
    m = read_image(save(ds, tmp_path / "p.dcm"))
    np.testing.assert_allclose(m.pixels, stored / 4095, atol=1e-6)


def test_spacing_preference_and_user_override(tmp_path: Path) -> None:
    stored = np.zeros((ROWS, COLS), np.uint16)
    both = save(
        mg_dataset(stored, ImagerPixelSpacing=[0.07, 0.08], PixelSpacing=[0.06, 0.06]),
        tmp_path / "both.dcm",
    )
    m = read_image(both)
    assert m.spacing_mm == (0.07, 0.08)
    assert m.source.spacing_origin == "ImagerPixelSpacing"
    only = save(mg_dataset(stored, PixelSpacing=[0.06, 0.06]), tmp_path / "only.dcm")
    m = read_image(only)
    assert (m.spacing_mm, m.source.spacing_origin) == ((0.06, 0.06), "PixelSpacing")
    m = read_image(both, spacing_mm=(0.05, 0.04))
    assert (m.spacing_mm, m.source.spacing_origin) == ((0.05, 0.04), "user")
    m = read_image(only, spacing_mm=0.1)
    assert m.spacing_mm == (0.1, 0.1)
    with pytest.raises(InputError, match="spacing"):
        read_image(only, spacing_mm=-1.0)


def _view_item(code: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = code
    item.CodingSchemeDesignator = "SCT"
    item.CodeMeaning = meaning
    return item


@pytest.mark.parametrize(
    ("attributes", "laterality", "view"),
    [
        (
            {"ImageLaterality": "L", "ViewCodeSequence": [_view_item("399162004", "x")]},
            Laterality.LEFT,
            View.CC,
        ),
        (
            {"ImageLaterality": "R", "ViewCodeSequence": [_view_item("399368009", "")]},
            Laterality.RIGHT,
            View.MLO,
        ),
        ({"ViewCodeSequence": [_view_item("399260004", "medio-lateral")]}, None, View.ML),
        ({"ViewCodeSequence": [_view_item("399352003", "latero-medial")]}, None, View.LM),
        ({"ViewCodeSequence": [_view_item("999", "cranio-caudal")]}, None, View.CC),
        ({"Laterality": "R", "ViewPosition": "CC"}, Laterality.RIGHT, View.CC),
        ({"ImageLaterality": "L", "Laterality": "R"}, Laterality.LEFT, None),
        ({"ImageLaterality": "B", "ViewPosition": "SPOT"}, None, View.OTHER),
        ({"PatientID": "Calc-Test_P_00038_RIGHT_MLO"}, Laterality.RIGHT, View.MLO),
        ({"PatientID": "Mass-Training_P_00001_LEFT_CC_1"}, Laterality.LEFT, View.CC),
        ({"PatientID": "CLEFT_MLOX"}, None, None),
    ],
)
def test_laterality_and_view_from_header(
    tmp_path: Path, attributes: dict[str, object], laterality: Laterality | None, view: View | None
) -> None:
    stored = np.zeros((ROWS, COLS), np.uint16)
    ds = mg_dataset(stored, ImagerPixelSpacing=[0.07, 0.07], **attributes)
    m = read_image(save(ds, tmp_path / "v.dcm"))
    assert (m.laterality, m.view) == (laterality, view)


def test_user_laterality_and_view_override(tmp_path: Path) -> None:
    stored = np.zeros((ROWS, COLS), np.uint16)
    ds = mg_dataset(stored, ImagerPixelSpacing=[0.07, 0.07], ImageLaterality="L", ViewPosition="CC")
    path = save(ds, tmp_path / "o.dcm")
    m = read_image(path, laterality="right", view="mlo")
    assert (m.laterality, m.view) == (Laterality.RIGHT, View.MLO)
    m = read_image(path, laterality=Laterality.RIGHT, view=View.ML)
    assert (m.laterality, m.view) == (Laterality.RIGHT, View.ML)
    with pytest.raises(InputError, match="laterality"):
        read_image(path, laterality="up")
    with pytest.raises(InputError, match="view"):
        read_image(path, view="sideways")


def test_compressed_rle_and_secondary_capture_rg_accepted(tmp_path: Path) -> None:
    truth = truth_image()
    stored = np.round(truth * 65535).astype(np.uint16)
    ds = mg_dataset(stored, modality="RG", sop_class=SecondaryCaptureImageStorage, bits_stored=16)
    ds.compress(RLELossless)
    m = read_image(save(ds, tmp_path / "rle.dcm"), spacing_mm=0.1)
    np.testing.assert_allclose(m.pixels, stored / 65535, atol=1e-6)
    assert m.source.modality == "RG"


# ---------------------------------------------------------------------------------------
# other formats and round trips
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".png", ".tif", ".tiff", ".pgm", ".dcm"])
def test_round_trip(tmp_path: Path, suffix: str) -> None:
    truth = truth_image().astype(np.float32)
    m = Mammogram(pixels=truth, spacing_mm=(0.07, 0.075), laterality=Laterality.LEFT, view=View.MLO)
    path = write_image(m, tmp_path / "sub" / f"image{suffix}")
    assert path.is_file()
    assert list(path.parent.iterdir()) == [path]  # no temporary file left
    if suffix == ".dcm":
        back = read_image(path)
        assert back.spacing_mm == (0.07, 0.075)
        assert (back.laterality, back.view) == (Laterality.LEFT, View.MLO)
    else:
        # PNG, TIFF and PGM lose spacing, laterality and view
        with pytest.raises(MissingSpacingError):
            read_image(path)
        back = read_image(path, spacing_mm=(0.07, 0.075))
        assert (back.laterality, back.view) == (None, None)
    np.testing.assert_allclose(back.pixels, truth, atol=1e-4)
    assert_spot_brightest(back.pixels)


def test_written_dicom_is_digital_mammography_for_presentation(tmp_path: Path) -> None:
    m = Mammogram(
        pixels=truth_image(), spacing_mm=(0.07, 0.07), laterality=Laterality.RIGHT, view=View.CC
    )
    path = write_image(m, tmp_path / "mg.dcm")
    assert path.read_bytes()[128:132] == b"DICM"
    ds = pydicom.dcmread(path)
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert ds.file_meta.MediaStorageSOPClassUID == DigitalMammographyXRayImageStorageForPresentation
    assert ds.SOPClassUID == DigitalMammographyXRayImageStorageForPresentation
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert ds.Modality == "MG"
    assert ds.PresentationIntentType == "FOR PRESENTATION"
    assert ds.PhotometricInterpretation == "MONOCHROME2"
    assert ds.BitsAllocated == 16 and ds.BitsStored in (12, 16)
    assert [float(v) for v in ds.ImagerPixelSpacing] == [0.07, 0.07]
    assert [float(v) for v in ds.PixelSpacing] == [0.07, 0.07]
    assert ds.ImageLaterality == "R"
    assert ds.ViewPosition == "CC"
    assert ds.ViewCodeSequence[0].CodeValue == "399162004"
    assert ds.ViewCodeSequence[0].CodingSchemeDesignator == "SCT"
    assert str(ds.PatientName) == "PHANTOM^CALCSCOPE"
    assert ds.pixel_array.shape == (ROWS, COLS)
    other = pydicom.dcmread(write_image(m, tmp_path / "mg2.dcm"))
    assert other.SOPInstanceUID != ds.SOPInstanceUID
    assert other.StudyInstanceUID != ds.StudyInstanceUID


def test_write_image_rejects_unknown_suffix(tmp_path: Path) -> None:
    m = Mammogram(pixels=truth_image(), spacing_mm=(0.1, 0.1))
    with pytest.raises(ValueError, match="cannot write"):
        write_image(m, tmp_path / "x.jpg")


def test_png_8_bit_and_grey_rgb(tmp_path: Path) -> None:
    grey = np.round(truth_image() * 255).astype(np.uint8)
    Image.fromarray(grey).save(tmp_path / "g.png")
    Image.fromarray(np.stack([grey] * 3, axis=2)).save(tmp_path / "rgb.png")
    a = read_image(tmp_path / "g.png", spacing_mm=0.1, laterality="L", view="CC")
    b = read_image(tmp_path / "rgb.png", spacing_mm=0.1)
    np.testing.assert_allclose(a.pixels, grey / 255, atol=1e-6)
    np.testing.assert_array_equal(a.pixels, b.pixels)
    assert (a.laterality, a.view) == (Laterality.LEFT, View.CC)
    assert a.source.spacing_origin == "user"


def test_pgm_plain_and_16_bit(tmp_path: Path) -> None:
    values = np.round(truth_image() * 4095).astype(np.uint16)
    rows, cols = values.shape
    p5 = tmp_path / "b.pgm"
    p5.write_bytes(f"P5\n# 12 bit\n{cols} {rows}\n4095\n".encode() + values.astype(">u2").tobytes())
    p2 = tmp_path / "a.pgm"
    small = (values >> 4).astype(np.uint8)
    body = "\n".join(" ".join(str(v) for v in row) for row in small)
    p2.write_text(f"P2\n{cols} {rows}\n255\n{body}\n")
    np.testing.assert_allclose(read_image(p5, spacing_mm=0.2).pixels, values / 4095, atol=1e-4)
    np.testing.assert_allclose(read_image(p2, spacing_mm=0.2).pixels, small / 255, atol=1e-6)


def test_tiff_white_is_zero_is_inverted(tmp_path: Path) -> None:
    values = np.round((1 - truth_image()) * 65535).astype(np.uint16)
    tifffile.imwrite(tmp_path / "w.tif", values, photometric="miniswhite")
    m = read_image(tmp_path / "w.tif", spacing_mm=0.1)
    assert_spot_brightest(m.pixels)


# ---------------------------------------------------------------------------------------
# rejections
# ---------------------------------------------------------------------------------------


def test_ct_modality_rejected(tmp_path: Path) -> None:
    ds = mg_dataset(
        np.zeros((ROWS, COLS), np.uint16),
        modality="CT",
        sop_class=CTImageStorage,
        PixelSpacing=[0.5, 0.5],
    )
    path = save(ds, tmp_path / "ct.dcm")
    with pytest.raises(NotAMammogramError, match="modality CT") as exc:
        read_image(path)
    assert_one_line(exc, path)


def test_rg_modality_needs_mammography_capable_sop_class(tmp_path: Path) -> None:
    ds = mg_dataset(
        np.zeros((ROWS, COLS), np.uint16),
        modality="RG",
        sop_class=ComputedRadiographyImageStorage,
        PixelSpacing=[0.1, 0.1],
    )
    with pytest.raises(NotAMammogramError, match="modality RG"):
        read_image(save(ds, tmp_path / "cr.dcm"))


def test_multi_frame_rejected_before_decoding(tmp_path: Path) -> None:
    ds = mg_dataset(np.zeros((3, ROWS, COLS), np.uint16), ImagerPixelSpacing=[0.1, 0.1])
    ds.NumberOfFrames = 3
    with pytest.raises(NotAMammogramError, match="multi-frame"):
        read_image(save(ds, tmp_path / "tomo.dcm"))
    stack = np.zeros((3, ROWS, COLS), np.uint16)
    tifffile.imwrite(tmp_path / "stack.tif", stack, photometric="minisblack")
    with pytest.raises(NotAMammogramError, match="multi-frame"):
        read_image(tmp_path / "stack.tif", spacing_mm=0.1)


def test_rgb_photo_rejected(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    photo = rng.integers(0, 256, (ROWS, COLS, 3), dtype=np.uint8)
    Image.fromarray(photo).save(tmp_path / "photo.png")
    with pytest.raises(NotAMammogramError, match="colour") as exc:
        read_image(tmp_path / "photo.png", spacing_mm=0.1)
    assert_one_line(exc, tmp_path / "photo.png")
    planar = np.ascontiguousarray(np.moveaxis(photo, -1, 0))
    tifffile.imwrite(tmp_path / "photo.tif", planar, photometric="rgb", planarconfig="separate")
    with pytest.raises(NotAMammogramError, match="colour"):
        read_image(tmp_path / "photo.tif", spacing_mm=0.1)


def test_missing_and_empty_and_unknown_files(tmp_path: Path) -> None:
    with pytest.raises(UnreadableFileError, match="not found"):
        read_image(tmp_path / "nothing.dcm")
    (tmp_path / "empty.dcm").write_bytes(b"")
    with pytest.raises(UnreadableFileError, match="empty") as exc:
        read_image(tmp_path / "empty.dcm")
    assert_one_line(exc, tmp_path / "empty.dcm")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(UnreadableFileError, match="unknown image format"):
        read_image(tmp_path / "notes.txt", spacing_mm=0.1)
    (tmp_path / "fake.dcm").write_bytes(b"this is not DICOM at all" * 10)
    with pytest.raises(UnreadableFileError):
        read_image(tmp_path / "fake.dcm", spacing_mm=0.1)
    (tmp_path / "fake.png").write_bytes(b"not a png")
    with pytest.raises(UnreadableFileError, match="PNG"):
        read_image(tmp_path / "fake.png", spacing_mm=0.1)
    with pytest.raises(UnreadableFileError, match="regular file"):
        read_image(tmp_path)


def _truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def test_truncated_files_rejected(tmp_path: Path) -> None:
    truth = truth_image()
    stored = np.round(truth * 16383).astype(np.uint16)
    native = save(mg_dataset(stored, ImagerPixelSpacing=[0.1, 0.1]), tmp_path / "n.dcm")
    rle_ds = mg_dataset(stored, ImagerPixelSpacing=[0.1, 0.1])
    rle_ds.compress(RLELossless)
    rle = save(rle_ds, tmp_path / "rle.dcm")
    m = Mammogram(pixels=truth, spacing_mm=(0.1, 0.1))
    files = [native, rle] + [write_image(m, tmp_path / f"t{s}") for s in (".png", ".tif", ".pgm")]
    for path in files:
        _truncate(path)
        with pytest.raises(UnreadableFileError) as exc:
            read_image(path, spacing_mm=0.1)
        assert_one_line(exc, path)


def test_missing_spacing(tmp_path: Path) -> None:
    ds = mg_dataset(np.zeros((ROWS, COLS), np.uint16))
    path = save(ds, tmp_path / "nospacing.dcm")
    with pytest.raises(MissingSpacingError, match="--spacing-mm") as exc:
        read_image(path)
    assert_one_line(exc, path)
    Image.fromarray(np.zeros((ROWS, COLS), np.uint8)).save(tmp_path / "a.png")
    with pytest.raises(MissingSpacingError, match="--spacing-mm"):
        read_image(tmp_path / "a.png")


def test_too_large_checked_on_the_header(tmp_path: Path) -> None:
    small = IOConfig(max_pixels=ROWS * COLS - 1)
    ds = mg_dataset(np.zeros((ROWS, COLS), np.uint16), ImagerPixelSpacing=[0.1, 0.1])
    path = save(ds, tmp_path / "big.dcm")
    with pytest.raises(ImageTooLargeError) as exc:
        read_image(path, config=small)
    assert_one_line(exc, path)
    # the header says 20000 x 20000 but the pixel data is tiny: refused before decoding
    ds.Rows = ds.Columns = 20000
    with pytest.raises(ImageTooLargeError):
        read_image(save(ds, tmp_path / "bomb.dcm"))
    for suffix in (".png", ".tif", ".pgm"):
        out = write_image(Mammogram(truth_image(), (0.1, 0.1)), tmp_path / f"big{suffix}")
        with pytest.raises(ImageTooLargeError):
            read_image(out, spacing_mm=0.1, config=small)


def test_too_small_rejected(tmp_path: Path) -> None:
    ds = mg_dataset(np.zeros((32, 32), np.uint16), ImagerPixelSpacing=[0.1, 0.1])
    with pytest.raises(NotAMammogramError, match="too small"):
        read_image(save(ds, tmp_path / "icon.dcm"))
    assert read_image(tmp_path / "icon.dcm", config=IOConfig(min_side_px=16)).shape == (32, 32)


# ---------------------------------------------------------------------------------------
# from_array
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (np.full((ROWS, COLS), 51, np.uint8), 0.2),
        (np.full((ROWS, COLS), 4095, np.uint16), 1.0),  # 12 bits in uint16
        (np.full((ROWS, COLS), 1023, np.uint16), 1.0),  # 10 bits
        (np.full((ROWS, COLS), 0.25, np.float32), 0.25),  # already in [0, 1]: kept
        (np.full((ROWS, COLS), 0.5, np.float64), 0.5),
    ],
)
def test_from_array_dtypes(array: np.ndarray, expected: float) -> None:
    m = from_array(array, 0.1)
    assert m.pixels.dtype == np.float32
    assert m.pixels.shape == (ROWS, COLS)
    np.testing.assert_allclose(m.pixels, expected, atol=1e-6)


def test_from_array_ranges_and_spot() -> None:
    truth = truth_image()
    for arr in (truth * 1000 - 300, np.round(truth * 2000 - 1000).astype(np.int16)):
        m = from_array(arr, (0.07, 0.07), laterality="L", view="CC", path="mem")
        assert m.pixels.min() == 0.0 and m.pixels.max() == pytest.approx(1.0)
        assert_spot_brightest(m.pixels)
        assert (m.laterality, m.view, m.source.path) == (Laterality.LEFT, View.CC, "mem")
    u16 = np.round(truth * 3000).astype(np.uint16)
    np.testing.assert_allclose(from_array(u16, 0.1).pixels, u16 / 4095, atol=1e-6)
    grey3 = np.repeat(u16[:, :, None], 3, axis=2)
    np.testing.assert_allclose(from_array(grey3, 0.1).pixels, u16 / 4095, atol=1e-6)


def test_from_array_rejections() -> None:
    with pytest.raises(NotAMammogramError, match="2-D"):
        from_array(np.zeros((2, ROWS, COLS)), 0.1)
    with pytest.raises(NotAMammogramError, match="colour"):
        from_array(np.random.default_rng(0).random((ROWS, COLS, 3)), 0.1)
    bad = truth_image()
    bad[0, 0] = np.nan
    with pytest.raises(NotAMammogramError, match="NaN"):
        from_array(bad, 0.1)
    with pytest.raises(NotAMammogramError, match="too small"):
        from_array(np.zeros((10, 10)), 0.1)
    with pytest.raises(ImageTooLargeError):
        from_array(np.zeros((ROWS, COLS)), 0.1, config=IOConfig(max_pixels=100))
    with pytest.raises(MissingSpacingError):
        from_array(np.zeros((ROWS, COLS)), None)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------
# find_images
# ---------------------------------------------------------------------------------------


def test_find_images(tmp_path: Path) -> None:
    m = Mammogram(truth_image(), (0.1, 0.1))
    tree = tmp_path / "archive"
    wanted = [
        write_image(m, tree / "a.png"),
        write_image(m, tree / "sub" / "b.DCM"),
        write_image(m, tree / "sub" / "deep" / "c.tiff"),
        write_image(m, tree / "d.pgm"),
    ]
    extensionless = tree / "sub" / "IM0001"
    extensionless.write_bytes((tree / "sub" / "b.DCM").read_bytes())
    wanted.append(extensionless)
    (tree / "notes.txt").write_text("x")
    (tree / "sub" / "IM0002").write_bytes(b"no preamble")
    write_image(m, tree / ".hidden" / "e.png")
    write_image(m, tree / "._f.dcm")
    loose = tmp_path / "loose.jpg"
    loose.write_bytes(b"x")
    found = find_images([tree, loose, tree / "a.png", str(tree / "sub" / ".." / "a.png")])
    assert found == sorted([*wanted, loose], key=str)
    assert find_images([]) == []
    assert ".dcm" in PIXEL_FILE_SUFFIXES and ".pgm" in PIXEL_FILE_SUFFIXES


# ---------------------------------------------------------------------------------------
# real files (../shared/data); each big file decoded once
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_dicom(shared_data: Path) -> Path:
    folder = shared_data / "dicom"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found")
    return folder


@pytest.fixture(scope="module")
def j2k_mammogram(real_dicom: Path) -> Mammogram:
    return read_image(real_dicom / "MG1_J2KI.dcm", spacing_mm=0.05)


@pytest.fixture(scope="module")
def rle_mammogram(real_dicom: Path) -> Mammogram:
    return read_image(real_dicom / "Mass-Test_P_00820_LEFT_CC.dcm", spacing_mm=0.05)


def test_real_j2k_secondary_capture_rg(j2k_mammogram: Mammogram) -> None:
    m = j2k_mammogram
    assert m.shape == (4664, 3064)
    assert m.pixels.dtype == np.float32
    assert 0.0 <= m.pixels.min() < 0.1 and m.pixels.max() > 0.9
    assert m.source.modality == "RG"
    assert m.source.spacing_origin == "user"
    assert m.spacing_mm == (0.05, 0.05)


def test_real_j2k_has_no_spacing(real_dicom: Path) -> None:
    path = real_dicom / "MG1_J2KI.dcm"
    with pytest.raises(MissingSpacingError, match="--spacing-mm") as exc:
        read_image(path)
    assert_one_line(exc, path)


def test_real_lossy_12_bit_jpeg_is_unreadable(real_dicom: Path) -> None:
    path = real_dicom / "MG1_JPLY.dcm"
    with pytest.raises(UnreadableFileError, match="cannot decode") as exc:
        read_image(path, spacing_mm=0.05)
    assert_one_line(exc, path)
    assert "JPEG" in str(exc.value)


def test_real_rle_cbis_ddsm(rle_mammogram: Mammogram) -> None:
    m = rle_mammogram
    assert m.shape == (4736, 2624)
    assert (m.laterality, m.view) == (Laterality.LEFT, View.CC)
    assert m.source.modality == "MG"
    assert m.pixels.max() > 0.5


def test_real_mini_mias_pgm(shared_data: Path) -> None:
    # mdb001.pgm when present, else the first image of the set (this copy starts at mdb006)
    folder = shared_data / "mini-mias" / "images"
    images = sorted(folder.glob("mdb*.pgm"))
    if not images:
        pytest.skip(f"no mini-MIAS images in {folder}")
    path = folder / "mdb001.pgm" if (folder / "mdb001.pgm").is_file() else images[0]
    m = read_image(path, spacing_mm=0.2)
    assert m.shape == (1024, 1024)
    assert m.spacing_mm == (0.2, 0.2)
    assert m.pixels.dtype == np.float32
    assert m.pixels.max() > 0.5
    assert (m.laterality, m.view) == (None, None)


@pytest.mark.parametrize("view", [v for v in View if v is not View.OTHER])
def test_view_code_written_and_read_back(tmp_path: Path, view: View) -> None:
    from pydicom.sr.codedict import codes

    m = Mammogram(np.full((96, 80), 0.5, np.float32), (0.1, 0.1), Laterality.LEFT, view)
    path = write_image(m, tmp_path / "v.dcm")
    item = pydicom.dcmread(path).ViewCodeSequence[0]
    # the code is the CID 4014 one (XCCL was once written with latero-medial oblique's code)
    expected = {
        c.value
        for c in (getattr(codes.CID4014, k) for k in dir(codes.CID4014))
        if hasattr(c, "value")
    }
    assert item.CodeValue in expected and item.CodeValue == view.code.value
    assert read_image(path).view is view


# ---------------------------------------------------------------------------------------
# hostile input: an error naming the file and the problem, or the clean file's answer
# ---------------------------------------------------------------------------------------


def _clean_and_corrupt(tmp_path: Path, **attributes: object) -> tuple[Path, Path, np.ndarray]:
    """The FFDM test file, and a copy with ``attributes`` overwritten, in one folder; and
    the clean file's expected pixels."""
    clean = save(ffdm_processing(truth_image()), tmp_path / "clean.dcm")
    expected = read_image(clean).pixels.copy()
    ds = ffdm_processing(truth_image())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about NaN/inf in a DS
        for key, value in attributes.items():
            setattr(ds, key, value)
    return clean, save(ds, tmp_path / "corrupt.dcm"), expected


def assert_error_then_clean_answer(
    corrupt: Path, clean: Path, expected: np.ndarray, error: type[InputError], message: str
) -> None:
    with pytest.raises(error) as exc:
        read_image(corrupt)
    assert str(exc.value) == f"{corrupt}: {message}"
    np.testing.assert_array_equal(read_image(clean).pixels, expected)


_CORRUPT_HEADER = "the header is corrupt, not analysed"


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        (
            {"RescaleSlope": "NaN"},
            f"RescaleSlope is NaN: the modality rescale needs a finite, non-zero number; "
            f"{_CORRUPT_HEADER}",
        ),
        (
            {"RescaleSlope": "inf"},
            f"RescaleSlope is inf: the modality rescale needs a finite, non-zero number; "
            f"{_CORRUPT_HEADER}",
        ),
        (
            {"RescaleSlope": "0"},
            f"RescaleSlope is 0: the modality rescale needs a finite, non-zero number; "
            f"{_CORRUPT_HEADER}",
        ),
        (
            {"RescaleIntercept": "-inf"},
            f"RescaleIntercept is -inf: the modality rescale needs a finite number; "
            f"{_CORRUPT_HEADER}",
        ),
        (
            {"RescaleSlope": "1e308"},
            "RescaleSlope is 1e308 and RescaleIntercept -200.0: the rescaled pixel values "
            "overflow or lose their steps (not finite, or too large for their precision); "
            f"{_CORRUPT_HEADER}",
        ),
        (
            {"RescaleIntercept": "1e20"},
            "RescaleSlope is 0.5 and RescaleIntercept 1e20: the rescaled pixel values "
            "overflow or lose their steps (not finite, or too large for their precision); "
            f"{_CORRUPT_HEADER}",
        ),
        (
            {"WindowWidth": "NaN"},
            f"WindowWidth is NaN: a display window needs finite numbers; {_CORRUPT_HEADER}",
        ),
    ],
    ids=["slope-nan", "slope-inf", "slope-0", "intercept-minus-inf", "slope-1e308", "i-1e20", "ww"],
)
def test_non_finite_lut_is_an_error_not_a_blank_image(
    tmp_path: Path, attributes: dict[str, object], message: str
) -> None:
    clean, corrupt, expected = _clean_and_corrupt(tmp_path, **attributes)
    assert_error_then_clean_answer(corrupt, clean, expected, ImplausibleValueError, message)


@pytest.mark.parametrize("value", [1e30, 1e-30, 0.9, 0.005])
def test_implausible_header_spacing_is_an_error_unless_overridden(
    tmp_path: Path, value: float
) -> None:
    clean, corrupt, expected = _clean_and_corrupt(tmp_path, ImagerPixelSpacing=[value, value])
    assert_error_then_clean_answer(
        corrupt,
        clean,
        expected,
        ImplausibleValueError,
        f"ImagerPixelSpacing is {value:g} x {value:g} mm, outside the plausible range for a "
        "mammogram (0.02-0.5 mm); the header is wrong: pass the real spacing with "
        "--spacing-mm (spacing_mm=...)",
    )
    # the given spacing overrides a wrong header: the clean file's pixels, the given spacing
    m = read_image(corrupt, spacing_mm=0.07)
    np.testing.assert_array_equal(m.pixels, expected)
    assert m.spacing_mm == (0.07, 0.07) and m.source.spacing_origin == "user"
    # a wider configured range accepts what it covers
    wide = IOConfig(min_spacing_mm=1e-3, max_spacing_mm=1.0)
    if 1e-3 <= value <= 1.0:
        assert read_image(corrupt, config=wide).spacing_mm == (value, value)


@pytest.mark.parametrize("value", [1e30, 1e-30, 2.0])
def test_implausible_given_spacing_is_an_error(tmp_path: Path, value: float) -> None:
    clean = save(ffdm_processing(truth_image()), tmp_path / "clean.dcm")
    message = (
        f"the given spacing is {value:g} x {value:g} mm, outside the plausible range for a "
        "mammogram (0.02-0.5 mm); give the real spacing (or set io.min_spacing_mm / "
        "io.max_spacing_mm if intended)"
    )
    with pytest.raises(ImplausibleValueError) as exc:
        read_image(clean, spacing_mm=value)
    assert str(exc.value) == f"{clean}: {message}"
    with pytest.raises(ImplausibleValueError) as exc:
        from_array(truth_image(), value, path="mem")
    assert str(exc.value) == f"mem: {message}"
    assert read_image(clean).spacing_mm == (0.07, 0.07)


def test_frame_not_of_the_declared_size(tmp_path: Path) -> None:
    stored = np.round(truth_image() * 16383).astype(np.uint16)
    clean = save(mg_dataset(stored, ImagerPixelSpacing=[0.1, 0.1]), tmp_path / "clean.dcm")
    short = mg_dataset(stored, ImagerPixelSpacing=[0.1, 0.1])
    short.PixelData = short.PixelData[: -3 * 2 * COLS]  # the last 3 rows are missing
    short_path = save(short, tmp_path / "short.dcm")
    with pytest.raises(UnreadableFileError) as exc:
        read_image(short_path)
    assert str(exc.value).startswith(
        f"{short_path}: cannot decode the pixel data, Explicit VR Little Endian "
        "(1.2.840.10008.1.2.1): The number of bytes of pixel data is less than expected "
        "(14880 vs 15360 bytes)"
    )
    assert_one_line(exc, short_path)
    fewer_rows = save(
        mg_dataset(stored, ImagerPixelSpacing=[0.1, 0.1], Rows=ROWS - 6), tmp_path / "rows.dcm"
    )
    with pytest.raises(UnreadableFileError) as exc:
        read_image(fewer_rows)
    assert str(exc.value) == (
        f"{fewer_rows}: the pixel data hold 15,360 bytes, but Rows x Columns = 90 x 80 at 16 "
        "bits allocated need 14,400: the header does not match the data"
    )
    np.testing.assert_allclose(read_image(clean).pixels, stored / 16383, atol=1e-6)


def _rle_overrunning_segments(stored: np.ndarray) -> bytes:
    """An RLE frame (PS3.5 G.3) whose two segments decode to more bytes than the frame:
    replicate runs of 128 bytes past its end."""
    runs = bytes([0x81, 0x07]) * (stored.size // 128 + 20)
    header = struct.pack("<16L", 2, 64, 64 + len(runs), *([0] * 13))
    return header + runs + runs


def test_decoder_panic_is_an_error_naming_the_transfer_syntax(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored = np.round(truth_image() * 16383).astype(np.uint16)
    ds = mg_dataset(stored, ImagerPixelSpacing=[0.1, 0.1])
    ds.compress(RLELossless)
    clean = save(ds, tmp_path / "clean.dcm")
    ds.PixelData = encapsulate([_rle_overrunning_segments(stored)])
    corrupt = save(ds, tmp_path / "corrupt.dcm")
    # the structural check refuses the overrunning segments before any decoder runs ...
    with pytest.raises(UnreadableFileError) as exc:
        read_image(corrupt)
    assert str(exc.value).startswith(
        f"{corrupt}: the RLE Lossless (1.2.840.10008.1.2.5) pixel data are corrupt "
        "(frame 1: RLE segment 1 "
    )
    assert_one_line(exc, corrupt)
    # ... and without it, the decoder's panic is isolated into the same kind of error
    monkeypatch.setattr("calcscope.imaging.dicom.frame_problem", lambda *args: None)
    with pytest.raises(UnreadableFileError) as exc:
        read_image(corrupt)
    assert str(exc.value).startswith(
        f"{corrupt}: cannot decode the pixel data, RLE Lossless (1.2.840.10008.1.2.5): "
    )
    assert_one_line(exc, corrupt)
    if importlib.util.find_spec("rle") is not None:  # pylibjpeg-rle: a Rust panic
        assert type(exc.value.__cause__).__name__ == "PanicException"
        assert not isinstance(exc.value.__cause__, Exception)
    np.testing.assert_allclose(read_image(clean).pixels, stored / 16383, atol=1e-6)


def test_garbled_jpeg_ls_is_refused(tmp_path: Path) -> None:
    pytest.importorskip("jpeg_ls")
    stored = np.round(truth_image(256, 256) * 4095).astype(np.uint16)
    ds = mg_dataset(stored, bits_stored=12, ImagerPixelSpacing=[0.1, 0.1])
    ds.compress(JPEGLSLossless, encoding_plugin="pyjpegls")
    clean = save(ds, tmp_path / "clean.dcm")
    stream = bytearray(next(generate_frames(ds.PixelData, number_of_frames=1)))
    stream[len(stream) // 10] ^= 0x5A  # one flipped byte early in the scan
    ds.PixelData = encapsulate([bytes(stream)])
    corrupt = save(ds, tmp_path / "corrupt.dcm")
    with pytest.raises(ImplausibleValueError) as exc:
        read_image(corrupt)
    assert str(exc.value).startswith(
        f"{corrupt}: the decoded JPEG-LS Lossless Image Compression pixels are garbled "
        "(corrupt compressed data?): 3.9% of the pixels"
    )
    np.testing.assert_array_equal(read_image(clean).pixels, (stored / 4095).astype(np.float32))


def test_step_fractions_low_on_smooth_images_high_on_noise() -> None:
    smooth = np.round(truth_image(256, 256) * 4095)
    assert step_fractions(smooth)[0] < MAX_STEP_FRACTION / 10
    noise = np.random.default_rng(3).integers(0, 4096, (256, 256))
    overall, band = step_fractions(noise)
    assert overall > 10 * MAX_STEP_FRACTION and band > 10 * MAX_BAND_STEP_FRACTION


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_special_files_are_skipped_not_waited_on(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    clean = write_image(Mammogram(truth_image(), (0.1, 0.1)), folder / "a.dcm")
    fifo, fifo_bare = folder / "pipe.dcm", folder / "IM0002"
    os.mkfifo(fifo)
    os.mkfifo(fifo_bare)
    found: list[list[Path]] = []
    worker = threading.Thread(target=lambda: found.append(find_images([folder])), daemon=True)
    worker.start()
    worker.join(timeout=20)
    assert found == [sorted([clean, fifo_bare, fifo], key=str)], "discovery must not open a FIFO"
    for path in (fifo, fifo_bare):
        with pytest.raises(UnreadableFileError) as exc:
            read_image(path, spacing_mm=0.1)
        assert str(exc.value) == f"{path}: not a regular file but a FIFO (named pipe); skipped"
    np.testing.assert_allclose(read_image(clean).pixels, truth_image(), atol=2e-5)


def _clusters(report_path: Path) -> list[tuple[object, ...]]:
    report = json.loads(report_path.read_text())
    return [(c["center_rc"], c["assessment"]["category"]) for c in report["clusters"]]


def test_analyze_run_with_corrupt_headers_and_a_fifo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Through ``calcscope analyze``: each corrupt file is a one-line error, exit 1, and the
    good file in the same run gets the answer it gets alone; ``--spacing-mm`` rescues a
    file whose header spacing is wrong."""
    from calcscope.apps.cli import main
    from calcscope.phantom.mammogram import ClusterSpec, make_phantom

    ph = make_phantom(
        seed=11,
        spacing_mm=0.1,
        shape=(1000, 800),
        view=View.CC,
        clusters=[ClusterSpec(Morphology.FINE_PLEOMORPHIC, n=8)],
        n_singles=0,
        macros=[],
    )
    alone = tmp_path / "alone"
    good = write_image(ph.mammogram, alone / "good.dcm")
    assert main(["analyze", str(good), "--out", str(tmp_path / "out-alone")]) == 0
    answer = _clusters(tmp_path / "out-alone" / "good.json")
    assert answer, "the phantom's cluster is found"

    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "good.dcm").write_bytes(good.read_bytes())
    corrupt = {
        "nan-slope.dcm": ("RescaleSlope", "NaN", "RescaleSlope is NaN"),
        "inf-slope.dcm": ("RescaleSlope", "inf", "RescaleSlope is inf"),
        "far-spacing.dcm": ("ImagerPixelSpacing", ["1e30", "1e30"], "ImagerPixelSpacing is 1e+30"),
        "tiny-spacing.dcm": (
            "ImagerPixelSpacing",
            ["1e-30", "1e-30"],
            "ImagerPixelSpacing is 1e-30",
        ),
    }
    for name, (keyword, value, _) in corrupt.items():
        ds = pydicom.dcmread(good)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            setattr(ds, keyword, value)
            if keyword == "ImagerPixelSpacing":
                ds.PixelSpacing = value
        ds.save_as(folder / name)
    if hasattr(os, "mkfifo"):
        os.mkfifo(folder / "pipe.dcm")
    out = tmp_path / "out"
    assert main(["analyze", str(folder), "--out", str(out)]) == 1
    text = "".join("".join(capsys.readouterr()).split())  # without rich's line wrapping
    assert "Traceback" not in text
    for name, (_, _, message) in corrupt.items():
        assert "".join(f"{name}: {message}".split()) in text
        assert not (out / name.replace(".dcm", ".json")).exists()
    if hasattr(os, "mkfifo"):
        assert "pipe.dcm:notaregularfilebutaFIFO(namedpipe);skipped" in text
    assert _clusters(out / "good.json") == answer

    rescued = tmp_path / "out-rescued"
    far = folder / "far-spacing.dcm"
    assert main(["analyze", str(far), "--spacing-mm", "0.1", "--out", str(rescued)]) == 0
    assert _clusters(rescued / "far-spacing.json") == answer


def test_default_pixel_limit_fits_the_largest_real_mammogram() -> None:
    """About 30 megapixels pass (film digitised at 0.042 mm); 40 are refused (memory)."""
    big = np.zeros((6000, 5000), dtype=np.uint8)  # 30 MP
    from_array(big, 0.05)
    with pytest.raises(ImageTooLargeError):
        from_array(np.zeros((8000, 5000), dtype=np.uint8), 0.05)  # 40 MP


@pytest.mark.parametrize("window", [None, (30000.0, 20000.0), (1000.5, 1.0)])
def test_window_table_gives_pydicom_values(tmp_path, window) -> None:
    """The VOI window goes through a table of the stored values: the same grey levels as
    pydicom's windowing of every pixel."""
    import pydicom
    from pydicom.pixels import apply_voi_lut

    from calcscope.imaging.io import write_image
    from calcscope.phantom.mammogram import make_phantom

    path = write_image(
        make_phantom(seed=2, spacing_mm=0.2, shape=(600, 480)).mammogram, tmp_path / "w.dcm"
    )
    ds = pydicom.dcmread(path)
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
        ds.save_as(path)
    raw = ds.pixel_array
    probe = apply_voi_lut(np.array([-1e30, 1e30]), ds, index=0)
    lo, hi = float(probe.min()), float(probe.max())
    expected = (apply_voi_lut(raw.astype(np.float64), ds, index=0) - lo) / (hi - lo)
    expected = np.clip(expected, 0.0, 1.0).astype(np.float32)
    assert np.array_equal(read_image(path).pixels, expected)


def test_error_messages_are_one_bounded_line() -> None:
    """A corrupt header can make a quoted value megabytes long: the message stays one
    printable line of bounded length, naming the file."""
    from calcscope.errors import MAX_MESSAGE_CHARS, NotAMammogramError

    value = "MG\x00\x08" + "x" * 2_000_000 + "\n\x7f"
    exc = NotAMammogramError(f"modality {value!r} is not a mammogram's", "/data/a.dcm")
    text = str(exc)
    assert len(text) <= MAX_MESSAGE_CHARS
    assert "\n" not in text and "\x00" not in text
    assert text.startswith("/data/a.dcm: modality")
    assert "characters left out" in text


@pytest.mark.parametrize(
    ("header", "what"),
    [(b"P5\n520 700\n65535\n", "width"), (b"P5\n560 700\n6\x0c535\n", "maxval")],
)
def test_pgm_whose_header_disagrees_with_its_data_is_refused(
    tmp_path: Path, header: bytes, what: str
) -> None:
    """A flipped byte in a PGM header (no checksum) would read the pixels sheared or
    scaled into another image: the pixel byte count must match the header."""
    from calcscope.errors import UnreadableFileError

    rng = np.random.default_rng(3)
    data = rng.integers(0, 65535, size=(700, 560), dtype=np.uint16).astype(">u2").tobytes()
    good = tmp_path / "good.pgm"
    good.write_bytes(b"P5\n560 700\n65535\n" + data)
    assert read_image(good, spacing_mm=0.1).pixels.shape == (700, 560)
    bad = tmp_path / f"bad-{what}.pgm"
    bad.write_bytes(header + data)
    with pytest.raises(UnreadableFileError, match="header declares"):
        read_image(bad, spacing_mm=0.1)


def test_cut_jpeg_ls_frame_is_refused(tmp_path: Path) -> None:
    """A JPEG-LS frame cut short decodes without an error in some decoders (the missing
    rows filled): a frame must end with its end marker, else the file is refused; the
    intact frame still reads."""
    pytest.importorskip("jpeg_ls")
    from calcscope.errors import UnreadableFileError

    stored = np.round(truth_image(256, 256) * 4095).astype(np.uint16)
    ds = mg_dataset(stored, bits_stored=12, ImagerPixelSpacing=[0.1, 0.1])
    ds.compress(JPEGLSLossless, encoding_plugin="pyjpegls")
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    intact = save(ds, tmp_path / "intact.dcm")
    assert read_image(intact).pixels.shape == (256, 256)
    cut = frame[: len(frame) * 2 // 3]
    ds.PixelData = encapsulate([cut + b"\x00" * (len(cut) % 2)])
    with pytest.raises(UnreadableFileError, match="end marker"):
        read_image(save(ds, tmp_path / "cut.dcm"))
