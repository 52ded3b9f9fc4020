"""Tolerant readers of single DICOM attributes: the one place that reads a header value that
may be hostile (absent, empty, multi-valued, bytes, not a number, or of a VR pydicom cannot
read, which raises only when the value is read).

:func:`header_text` never raises (an unreadable value counts as absent: a node must go on
with the rest of a study); :func:`header_number` gives a value that is not a number as NaN
with its text, for the caller to refuse in words, and lets an unreadable value raise as
reading the image would (the reader reports the file unreadable).
"""

from __future__ import annotations

import math
from typing import Any

from pydicom.multival import MultiValue

__all__ = ["header_text", "header_number"]


def header_text(ds: Any, keyword: str) -> str:
    """An attribute's value as stripped text.

    Parameters
    ----------
    ds
        A pydicom data set (or anything with ``get(keyword, default)``).
    keyword
        The attribute's keyword, e.g. ``"StudyDate"``.

    Returns
    -------
    str
        The value's text, stripped; ``""`` when absent, empty or unreadable (a hostile VR
        such as ``'DY'`` raises only when the value is read, and must not stop the caller).
    """
    try:
        return str(ds.get(keyword, "") or "").strip()
    except Exception:  # noqa: BLE001 - an unreadable value counts as absent
        return ""


def header_number(ds: Any, keyword: str, default: float) -> tuple[float, str]:
    """A numeric attribute's first value as float and as written.

    Parameters
    ----------
    ds
        A pydicom data set.
    keyword
        The attribute's keyword, e.g. ``"RescaleSlope"``.
    default
        The value when the attribute is absent or empty.

    Returns
    -------
    tuple[float, str]
        The first value (of a multi-valued attribute) as float, NaN when it is not a number,
        and its text; ``(default, f"{default:g}")`` when absent or empty. A value pydicom
        cannot read at all (an unknown VR) raises pydicom's error.
    """
    value = ds.get(keyword)
    if value is None or value == "":
        return default, f"{default:g}"
    first = value[0] if isinstance(value, MultiValue | list | tuple) else value
    try:
        return float(first), str(first)
    except (TypeError, ValueError):
        return math.nan, str(first)
