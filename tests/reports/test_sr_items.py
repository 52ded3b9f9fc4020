"""The fast SR content items (:mod:`calcscope.reports.sr_items`) are highdicom's items, and
the fast encoder (:mod:`calcscope.reports.dicom_bytes`) writes pydicom's bytes."""

from __future__ import annotations

from io import BytesIO

import numpy as np
import pytest
from highdicom.sr import (
    CodeContentItem,
    ContainerContentItem,
    DateContentItem,
    ImageContentItem,
    NumContentItem,
    RelationshipTypeValues,
    ScoordContentItem,
    TextContentItem,
)
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sr.coding import Code
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from calcscope.reports.dicom_bytes import dataset_bytes, encode_sequence
from calcscope.reports.sr_items import (
    Rel,
    code_item,
    container_item,
    date_item,
    image_item,
    num_item,
    scoord_item,
    text_item,
    with_children,
)

NAME = Code("111001", "DCM", "Algorithm Name")
VALUE = Code("129769006", "SCT", "Calcification Cluster")
PERCENT = Code("%", "UCUM", "percent")
REL = RelationshipTypeValues.HAS_PROPERTIES


def _pydicom_bytes(ds: Dataset) -> bytes:
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _same(a: Dataset, b: Dataset) -> None:
    assert a == b
    assert [e.VR for e in a] == [e.VR for e in b]


def test_items_equal_highdicom_items() -> None:
    xy = np.array([[1.25, 2.5], [3.0, 4.75], [1.25, 2.5]], dtype=np.float32)
    hp, acq = Rel.HAS_PROPERTIES, RelationshipTypeValues.HAS_ACQ_CONTEXT
    pairs = [
        (code_item(NAME, VALUE, hp), CodeContentItem(NAME, VALUE, REL)),
        (text_item(NAME, "calcscope é", hp), TextContentItem(NAME, "calcscope é", REL)),
        (num_item(NAME, 12.34, PERCENT, hp), NumContentItem(NAME, 12.34, PERCENT, None, REL)),
        (num_item(NAME, 7, PERCENT, hp), NumContentItem(NAME, 7, PERCENT, None, REL)),
        (date_item(NAME, "20240131", Rel.HAS_ACQ_CONTEXT), DateContentItem(NAME, "20240131", acq)),
        (
            container_item(NAME, None, template_id="4000"),
            ContainerContentItem(NAME, is_content_continuous=False, template_id="4000"),
        ),
        (
            scoord_item(NAME, "POLYLINE", xy, hp),
            ScoordContentItem(NAME, "POLYLINE", xy, relationship_type=REL),
        ),
    ]
    for ours, theirs in pairs:
        _same(ours, theirs)
    image = ImageContentItem(
        NAME, "1.2.3", "1.2.3.4", relationship_type=RelationshipTypeValues.SELECTED_FROM
    )
    del image.ConceptNameCodeSequence  # calcscope's IMAGE items carry no name
    _same(image_item("1.2.3", "1.2.3.4", Rel.SELECTED_FROM), image)


def test_item_checks() -> None:
    with pytest.raises(ValueError):
        date_item(NAME, "2024-01-31", Rel.HAS_ACQ_CONTEXT)
    with pytest.raises(ValueError):
        scoord_item(NAME, "POINT", np.zeros((2, 2)), Rel.HAS_PROPERTIES)
    with pytest.raises(ValueError):
        code_item(NAME, Code("1", "DCM", "x" * 65), Rel.CONTAINS)


def _document(charset: str | None, text: str) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.50"
    ds.file_meta.MediaStorageSOPInstanceUID = uid = generate_uid()
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.88.50", uid
    if charset:
        ds.SpecificCharacterSet = charset
    ds.PatientName = "Doe^Jane"
    root = container_item(NAME, None, template_id="4000")
    finding = with_children(
        code_item(NAME, VALUE, Rel.CONTAINS),
        [
            text_item(NAME, text, Rel.HAS_PROPERTIES),
            text_item(NAME, "odd", Rel.HAS_PROPERTIES),
            num_item(NAME, 1 / 3, PERCENT, Rel.HAS_PROPERTIES),
            scoord_item(NAME, "POINT", [[0.5, 1.5]], Rel.HAS_PROPERTIES),
            image_item("1.2.3", "1.2.3.45", Rel.SELECTED_FROM),
        ],
    )
    other = Dataset()  # an item as pydicom users build it: multi-valued CS, US, IS
    other.ImageType = ["DERIVED", "SECONDARY"]
    other.Rows = 512
    other.InstanceNumber = "7"
    ds.ContentSequence = with_children(root, [finding, other]).ContentSequence
    return ds


@pytest.mark.parametrize(
    ("charset", "text"),
    [(None, "plain text, odd length"), ("ISO_IR 192", "Zürich ∑ 中"), ("ISO_IR 100", "Zürich")],
)
def test_dataset_bytes_are_pydicoms(charset: str | None, text: str) -> None:
    ds = _document(charset, text)
    expected = _pydicom_bytes(ds)
    assert dataset_bytes(ds, ["ContentSequence"]) == expected
    assert _pydicom_bytes(ds) == expected  # the dataset is left as it was


def test_ambiguous_vr_goes_to_pydicom() -> None:
    ds = _document(None, "x")
    item = Dataset()
    item.add_new(0x00280106, "US or SS", 0)  # Smallest Image Pixel Value
    item.PixelRepresentation = 0
    ds.ContentSequence.append(item)
    with pytest.raises(ValueError):
        encode_sequence(ds.ContentSequence)
    out = dataset_bytes(ds, ["ContentSequence"])
    assert out == _pydicom_bytes(ds)
    assert ds.ContentSequence[-1]["SmallestImagePixelValue"].VR == "US"
