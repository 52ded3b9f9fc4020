"""Tolerant readers of single DICOM attributes (calcscope.imaging.tags) on hostile values:
absent, empty, multi-valued, bytes, not a number, and a VR pydicom cannot read."""

from __future__ import annotations

import math
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset

from calcscope.imaging.tags import header_number, header_text
from helpers import dicom_with_unknown_vr


def _with_unknown_vr(tmp_path: Path, keyword: str) -> Dataset:
    """A data set whose ``keyword`` has the unknown VR 'DY' (raises only when read)."""
    path = dicom_with_unknown_vr(
        tmp_path / "x.dcm", keyword, PatientID="P1", StudyDate="20240520", RescaleSlope="2"
    )
    return pydicom.dcmread(path)


def test_header_text_of_plain_missing_empty_and_bytes_values() -> None:
    ds = Dataset()
    ds.PatientID = "  P7 "
    ds.StudyDate = ""
    assert header_text(ds, "PatientID") == "P7"
    assert header_text(ds, "StudyDate") == ""
    assert header_text(ds, "IssuerOfPatientID") == ""
    assert header_text({"PatientID": b"P8"}, "PatientID") == "b'P8'"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    assert "PRIMARY" in header_text(ds, "ImageType")


def test_header_text_of_an_unreadable_vr_is_empty(tmp_path: Path) -> None:
    ds = _with_unknown_vr(tmp_path, "StudyDate")
    with pytest.raises(Exception, match="DY"):
        ds.get("StudyDate")
    assert header_text(ds, "StudyDate") == ""
    assert header_text(ds, "PatientID") == "P1"


def test_header_number_of_plain_missing_multi_valued_and_wrong_values() -> None:
    ds = Dataset()
    assert header_number(ds, "RescaleSlope", 1.0) == (1.0, "1")
    ds.RescaleSlope = "2.5"
    assert header_number(ds, "RescaleSlope", 1.0) == (2.5, "2.5")
    ds.WindowCenter = ["100", "200"]
    assert header_number(ds, "WindowCenter", 0.0) == (100.0, "100")
    ds.add_new("RescaleIntercept", "LO", "abc")  # wrong VR: text, not a number
    value, text = header_number(ds, "RescaleIntercept", 0.0)
    assert math.isnan(value) and text == "abc"
    ds.add_new("WindowWidth", "OB", b"\x01\x02")  # bytes that are no number
    value, text = header_number(ds, "WindowWidth", 0.0)
    assert math.isnan(value) and "\\x01" in text
    ds.add_new("RescaleType", "LO", "")
    assert header_number(ds, "RescaleType", 3.0) == (3.0, "3")


def test_header_number_of_an_unreadable_vr_raises_as_reading_the_image_would(
    tmp_path: Path,
) -> None:
    ds = _with_unknown_vr(tmp_path, "RescaleSlope")
    with pytest.raises(NotImplementedError, match="DY"):
        header_number(ds, "RescaleSlope", 1.0)
