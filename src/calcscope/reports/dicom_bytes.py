"""DICOM files' bytes with their large sequences encoded here, byte for byte as pydicom's
writer encodes them, in a fraction of its time.

pydicom's writer costs about 15 us per element (each value re-validated, each item's
whole subtree searched again for ambiguous VRs, each nested sequence copied once per
level); a Mammography CAD SR of 50 calcifications holds some 7,000 elements in its
Content Sequence, a presentation state a few hundred in its Graphic Annotation Sequence.
:func:`dataset_bytes` lets pydicom write the header and copies the value of each named
sequence, encoded by :func:`encode_sequence`, as a raw element. Explicit VR little endian
only (the transfer syntax of calcscope's SR and GSPS); values of VRs outside the text,
number and sequence ones that SR and presentation-state content use are encoded by
pydicom itself, and an element of ambiguous VR sends the whole dataset to pydicom's writer.
The tests compare the bytes with pydicom's.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from io import BytesIO

from pydicom.charset import convert_encodings, default_encoding, encode_string
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import correct_ambiguous_vr, write_data_element
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag

__all__ = ["encode_sequence", "dataset_bytes"]

_LONG_LENGTH_VRS = frozenset({"SQ", "UC", "UR", "UT"})
_TEXT_VRS = frozenset({"SH", "LO", "ST", "LT", "UC", "UT"})  # in the Specific Character Set
_STRING_VRS = frozenset({"AE", "AS", "CS", "DA", "UI", "UR"})  # in the default repertoire
_NUMBER_FORMATS = {"FL": "f", "FD": "d", "US": "H", "UL": "L", "SS": "h", "SL": "l"}
_ENCODED_VRS = _TEXT_VRS | _STRING_VRS | set(_NUMBER_FORMATS) | {"DS", "SQ"}


def _value_bytes(elem: DataElement, encodings: list[str]) -> bytes | None:
    """The encoded value of ``elem`` (explicit VR little endian, padded to even length) as
    pydicom's writer encodes it; ``None`` for values this module leaves to pydicom."""
    vr, value = elem.VR, elem.value
    if value is None or (isinstance(value, (str, list, MultiValue)) and len(value) == 0):
        return b""
    values = list(value) if isinstance(value, (list, MultiValue)) else [value]
    if vr in _NUMBER_FORMATS:
        return struct.pack(f"<{len(values)}{_NUMBER_FORMATS[vr]}", *values)
    if vr == "DS":
        text = "\\".join(
            v.original_string if hasattr(v, "original_string") else str(v) for v in values
        )
        return _padded(text.encode(default_encoding), b" ")
    if vr == "DA":  # DA values keep the string they were made from
        values = [getattr(v, "original_string", v) for v in values]
    if not all(isinstance(v, str) for v in values):
        return None  # e.g. a date as datetime.date
    if vr in _STRING_VRS:
        return _padded("\\".join(values).encode(default_encoding), b"\0" if vr == "UI" else b" ")
    parts = [v.encode("ascii") if v.isascii() else encode_string(v, encodings) for v in values]
    return _padded(b"\\".join(parts), b" ")


def _padded(raw: bytes, pad: bytes) -> bytes:
    return raw + pad if len(raw) % 2 else raw


def _pydicom_element(elem: DataElement, encodings: list[str]) -> bytes:
    """``elem`` encoded whole (tag, VR, length, value) by pydicom's writer."""
    buf = DicomBytesIO()
    buf.is_little_endian, buf.is_implicit_VR = True, False
    write_data_element(buf, elem, encodings)
    return buf.getvalue()


def _encode_dataset(ds: Dataset, encodings: list[str], memo: dict[int, bytes]) -> bytes:
    key = id(ds)
    if key in memo:  # a shared coded concept, encoded once per call
        return memo[key]
    if "SpecificCharacterSet" in ds:
        encodings = convert_encodings(ds.SpecificCharacterSet)
    out: list[bytes] = []
    for tag in sorted(ds.keys()):
        if tag.element == 0 and tag.group > 6:
            continue  # retired group lengths, not written (as pydicom)
        elem = ds[tag]
        vr = elem.VR
        if len(vr) != 2:
            raise _Ambiguous(f"{elem.tag} has the ambiguous VR {vr}")
        if vr == "SQ":
            value: bytes | None = _encode_items(elem.value, encodings, memo)
        else:
            value = _value_bytes(elem, encodings) if vr in _ENCODED_VRS else None
        if value is None or (vr not in _LONG_LENGTH_VRS and len(value) > 0xFFFF):
            out.append(_pydicom_element(elem, encodings))
            continue
        head = struct.pack("<HH2s", tag.group, tag.element, vr.encode("ascii"))
        if vr in _LONG_LENGTH_VRS:
            out += [head, struct.pack("<HL", 0, len(value)), value]
        else:
            out += [head, struct.pack("<H", len(value)), value]
    memo[key] = encoded = b"".join(out)
    return encoded


def _encode_items(items: Iterable[Dataset], encodings: list[str], memo: dict[int, bytes]) -> bytes:
    out: list[bytes] = []
    for item in items:
        body = _encode_dataset(item, encodings, memo)
        out += [struct.pack("<HHL", 0xFFFE, 0xE000, len(body)), body]
    return b"".join(out)


def encode_sequence(
    items: Iterable[Dataset], encodings: str | list[str] = default_encoding
) -> bytes:
    """The value of a sequence of ``items`` encoded in explicit VR little endian, byte for
    byte as pydicom's writer encodes it (items of defined length, text in ``encodings``:
    the document's Specific Character Set), in a fraction of its time (see the module
    docstring). Raises ``ValueError`` for an element of ambiguous VR."""
    return _encode_items(items, convert_encodings(encodings), {})


class _Ambiguous(ValueError):
    """An element whose VR the writer would have to resolve first."""


def dataset_bytes(ds: Dataset, sequences: Sequence[str]) -> bytes:
    """``ds`` as a DICOM file's bytes (``ds.save_as(..., enforce_file_format=True)``, explicit
    VR little endian), the top-level ``sequences`` (keywords) encoded by
    :func:`encode_sequence`. ``ds`` is left as it was."""
    try:
        return _with_raw_sequences(ds, sequences)
    except _Ambiguous:
        return _saved(ds)


def _saved(ds: Dataset) -> bytes:
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _with_raw_sequences(ds: Dataset, sequences: Sequence[str]) -> bytes:
    tags = [BaseTag(ds[k].tag) for k in sequences if k in ds]
    saved = {tag: ds[tag] for tag in tags}
    read_state = (*ds.original_encoding, ds.original_character_set)
    try:
        for tag in tags:
            del ds[tag]
        correct_ambiguous_vr(ds, True)  # the rest, as the writer does
        charset = ds.get("SpecificCharacterSet")
        encodings = convert_encodings(charset) if charset else default_encoding
        for tag, elem in saved.items():
            raw = encode_sequence(elem.value, encodings)
            ds[tag] = RawDataElement(tag, "SQ", len(raw), raw, 0, False, True)
        ds.set_original_encoding(False, True, encodings)  # the writer copies raw elements
        return _saved(ds)
    finally:
        for tag, elem in saved.items():
            ds[tag] = elem
        ds.set_original_encoding(*read_state)
