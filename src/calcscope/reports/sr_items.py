"""SR content items built directly as pydicom datasets, in the structure highdicom's
content-item classes produce (:mod:`highdicom.sr.value_types`), without their per-item
checks and conversions.

A Mammography CAD SR of 50 calcifications holds about a thousand content items; built
with highdicom's classes (each concept name turned into a ``CodedConcept``, each
attribute set by keyword and checked) they took most of the half second the SR cost.
Here every value comes typed from the report model, each coded concept is encoded once
per :class:`~pydicom.sr.coding.Code`, and elements are added with their tag and VR
(from the DICOM dictionary). The datasets are plain :class:`~pydicom.dataset.Dataset`
instances with the same elements and values as highdicom's (the tests compare the two),
so that the document written is byte for byte the one highdicom's items gave.

Items are marked as explicit VR little endian in the default character set
(:meth:`Dataset.set_original_encoding`): they contain no element of ambiguous VR, and the
mark spares pydicom's writer its ambiguous-VR pass, which it otherwise repeats for every
nested item over that item's whole subtree (text is still encoded in the document's
Specific Character Set, which the writer passes down).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import StrEnum
from functools import cache, lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
from pydicom.charset import default_encoding
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence as DicomSequence
from pydicom.sr.coding import Code
from pydicom.tag import BaseTag
from pydicom.valuerep import DA, DS

__all__ = [
    "Rel",
    "code_item",
    "text_item",
    "num_item",
    "date_item",
    "uidref_item",
    "container_item",
    "image_item",
    "scoord_item",
    "with_children",
    "typed_dataset",
]


class Rel(StrEnum):
    """SR relationship types (PS3.3 C.17.3.2.4) used by calcscope's documents."""

    CONTAINS = "CONTAINS"
    HAS_PROPERTIES = "HAS PROPERTIES"
    HAS_CONCEPT_MOD = "HAS CONCEPT MOD"
    HAS_ACQ_CONTEXT = "HAS ACQ CONTEXT"
    INFERRED_FROM = "INFERRED FROM"
    SELECTED_FROM = "SELECTED FROM"


@cache
def _tag_vr(keyword: str) -> tuple[BaseTag, str]:
    tag = tag_for_keyword(keyword)
    if tag is None:  # pragma: no cover - a typo in this module
        raise KeyError(keyword)
    return BaseTag(tag), dictionary_VR(tag)


def typed_dataset(**values: Any) -> Dataset:
    """A dataset with ``values`` by keyword, each element added with its dictionary VR.

    Values are given in their final type (``str``, :class:`~pydicom.valuerep.DS`,
    ``float``, a list of floats for FL, a list of datasets for SQ), so that pydicom's
    conversion and validation of each value are skipped.
    """
    elements: dict[BaseTag, DataElement | RawDataElement] = {}
    for keyword, value in values.items():
        tag, vr = _tag_vr(keyword)
        if vr == "SQ":
            value = DicomSequence(value)
        elif isinstance(value, list):
            value = MultiValue(float, value)
        elements[tag] = DataElement(tag, vr, value, already_converted=True)
    ds = Dataset(elements)
    ds.set_original_encoding(False, True, default_encoding)
    return ds


@lru_cache(maxsize=512)
def _coded(code: Code) -> tuple[tuple[str, str], ...]:
    """The (keyword, value) pairs of a coded concept, as highdicom's ``CodedConcept``."""
    value = str(code.value)
    if len(value) > 16:
        key = "URNCodeValue" if value.startswith("urn") or "://" in value else "LongCodeValue"
    else:
        key = "CodeValue"
    if len(code.meaning) > 64:
        raise ValueError("Code meaning can have maximally 64 characters.")
    pairs = [
        (key, value),
        ("CodeMeaning", str(code.meaning)),
        ("CodingSchemeDesignator", str(code.scheme_designator)),
    ]
    if code.scheme_version is not None:
        pairs.append(("CodingSchemeVersion", str(code.scheme_version)))
    return tuple(pairs)


@lru_cache(maxsize=1024)
def _code_dataset(code: Code) -> Dataset:
    """The coded concept's dataset, made once per code and shared by every item that
    names the code (read only: nothing in calcscope changes a built document's codes)."""
    return typed_dataset(**dict(_coded(code)))


def _item(value_type: str, name: Code | None, rel: Rel | None, **values: Any) -> Dataset:
    head: dict[str, Any] = {"ValueType": value_type}
    if name is not None:
        head["ConceptNameCodeSequence"] = [_code_dataset(name)]
    if rel is not None:
        head["RelationshipType"] = rel.value
    return typed_dataset(**head, **values)


def code_item(name: Code, value: Code, rel: Rel | None) -> Dataset:
    """A CODE content item (as ``highdicom.sr.CodeContentItem``)."""
    return _item("CODE", name, rel, ConceptCodeSequence=[_code_dataset(value)])


def text_item(name: Code, value: str, rel: Rel | None) -> Dataset:
    """A TEXT content item (as ``highdicom.sr.TextContentItem``)."""
    return _item("TEXT", name, rel, TextValue=str(value))


def date_item(name: Code, value: str, rel: Rel | None) -> Dataset:
    """A DATE content item of a ``YYYYMMDD`` date (as ``highdicom.sr.DateContentItem``)."""
    if len(value) != 8 or not value.isdigit():
        raise ValueError(f"not a DICOM date: {value!r}")
    return _item("DATE", name, rel, Date=DA(value))


def num_item(name: Code, value: float, unit: Code, rel: Rel | None) -> Dataset:
    """A NUM content item (as ``highdicom.sr.NumContentItem``): the value as Numeric Value
    (DS) and, for a float, as Floating Point Value (FD)."""
    if not isinstance(value, (int, float)):
        raise TypeError('Argument "value" must have type "int" or "float".')
    measured: dict[str, Any] = {"NumericValue": DS(value, auto_format=True)}
    if isinstance(value, float):
        measured["FloatingPointValue"] = value
    measured["MeasurementUnitsCodeSequence"] = [_code_dataset(unit)]
    return _item("NUM", name, rel, MeasuredValueSequence=[typed_dataset(**measured)])


def container_item(
    name: Code, rel: Rel | None, *, continuous: bool = False, template_id: str | None = None
) -> Dataset:
    """A CONTAINER content item (as ``highdicom.sr.ContainerContentItem``)."""
    values: dict[str, Any] = {"ContinuityOfContent": "CONTINUOUS" if continuous else "SEPARATE"}
    if template_id is not None:
        values["ContentTemplateSequence"] = [
            typed_dataset(MappingResource="DCMR", TemplateIdentifier=str(template_id))
        ]
    return _item("CONTAINER", name, rel, **values)


def image_item(sop_class_uid: str, sop_instance_uid: str, rel: Rel | None) -> Dataset:
    """An IMAGE content item without concept name (TID 4020's images and the images SCOORDs
    are SELECTED FROM carry none)."""
    ref = typed_dataset(
        ReferencedSOPClassUID=str(sop_class_uid), ReferencedSOPInstanceUID=str(sop_instance_uid)
    )
    return _item("IMAGE", None, rel, ReferencedSOPSequence=[ref])


def scoord_item(name: Code, graphic_type: str, xy: npt.ArrayLike, rel: Rel | None) -> Dataset:
    """A SCOORD content item of ``xy`` (n x 2 image coordinates, stored as float32 as
    ``highdicom.sr.ScoordContentItem`` does); POINT takes one point, POLYLINE two or more."""
    data = np.asarray(xy, dtype=np.float32)
    n_points = 1 if data.ndim == 1 else len(data)
    if graphic_type == "POINT" and n_points != 1:
        raise ValueError("Graphic data of a scoord of graphic type POINT must be a single point.")
    if graphic_type == "POLYLINE" and n_points < 2:
        raise ValueError("A POLYLINE needs at least two points.")
    return _item("SCOORD", name, rel, GraphicType=graphic_type, GraphicData=data.flatten().tolist())


def with_children(item: Dataset, children: Iterable[Dataset]) -> Dataset:
    """``item`` with ``children`` as its Content Sequence (none added when empty)."""
    kids: Sequence[Dataset] = list(children)
    if kids:
        tag = BaseTag(0x0040A730)
        item.add(DataElement(tag, "SQ", DicomSequence(kids), already_converted=True))
    return item


def uidref_item(name: Code, value: str, rel: Rel | None) -> Dataset:
    """A UIDREF content item (as ``highdicom.sr.UIDRefContentItem``)."""
    return _item("UIDREF", name, rel, UID=str(value))
