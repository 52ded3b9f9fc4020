"""Which view an image of an exam is: the projection and its modifiers, from DICOM codes.

The projection comes from ``ViewCodeSequence`` (DICOM CID 4014), else ``ViewPosition``;
spot compression and magnification from ``ViewModifierCodeSequence`` (CID 4015) inside it,
else from words in ``ViewPosition`` or ``AcquisitionDeviceProcessingDescription``
(some scanners write "SPOT" or "MAG" there). An ML, LM or XCCL view, or a spot or
magnification view, is never taken for a CC or MLO: the exam pairs findings of the
standard views (CC and MLO; an XCCL stands in for a missing CC and an ML or LM for a
missing MLO) and lists the other images as additional.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from calcscope.model import View

__all__ = ["ViewModifier", "ViewRole", "ExamView", "view_from_dataset", "VIEW_CODES"]


class ViewModifier(StrEnum):
    """View modifiers that change how an image is used (DICOM CID 4015)."""

    SPOT_COMPRESSION = "spot_compression"
    MAGNIFICATION = "magnification"


class ViewRole(StrEnum):
    """The part an image plays in reading an exam."""

    CC = "CC"  # tells outer from inner
    MLO = "MLO"  # tells upper from lower
    ADDITIONAL = "additional"  # spot, magnification, or another view of the same role


#: CID 4014 view codes (SNOMED CT and legacy SNOMED-RT), with the other common ones
#: (XCCM, caudo-cranial, LMO, SIO, ...) as OTHER so that they are never read as CC/MLO.
VIEW_CODES: dict[str, View] = {
    "399162004": View.CC,
    "R-10242": View.CC,
    "399368009": View.MLO,
    "R-10226": View.MLO,
    "399260004": View.ML,
    "R-10224": View.ML,
    "399352003": View.LM,
    "R-10230": View.LM,
    "399192008": View.XCCL,
    "R-1024A": View.XCCL,
    "399101009": View.OTHER,  # XCCM
    "399196006": View.OTHER,  # caudo-cranial (FB)
    "399099002": View.OTHER,  # latero-medial oblique
    "399188001": View.OTHER,  # superolateral to inferomedial oblique
    "441555000": View.OTHER,  # inferomedial to superolateral oblique
    "127457009": View.OTHER,  # specimen
}
_MODIFIER_CODES = {
    "399055006": ViewModifier.SPOT_COMPRESSION,
    "R-102D2": ViewModifier.SPOT_COMPRESSION,
    "399163009": ViewModifier.MAGNIFICATION,
    "R-102D6": ViewModifier.MAGNIFICATION,
}
_POSITIONS = {
    "CC": View.CC,
    "MLO": View.MLO,
    "ML": View.ML,
    "LM": View.LM,
    "XCCL": View.XCCL,
}
_SPOT_WORDS = re.compile(r"\bSPOT\b|\bSPOT\s*COMP|\bS(CC|MLO|ML|LM)\b")
_MAG_WORDS = re.compile(r"\bMAG(NIFI\w*)?\b|\bM(CC|MLO|ML|LM)\b")


@dataclass(frozen=True)
class ExamView:
    """The projection of an image and its modifiers."""

    view: View | None
    modifiers: tuple[ViewModifier, ...] = ()

    @property
    def standard_role(self) -> ViewRole | None:
        """CC or MLO for a view that can play that part (CC, XCCL; MLO, ML, LM) and has no
        spot or magnification modifier; ADDITIONAL for a modified view; None if unknown."""
        if self.view is None:
            return None
        if self.modifiers:
            return ViewRole.ADDITIONAL
        if self.view in (View.CC, View.XCCL):
            return ViewRole.CC
        if self.view in (View.MLO, View.ML, View.LM):
            return ViewRole.MLO
        return ViewRole.ADDITIONAL

    @property
    def preference(self) -> int:
        """Lower is better among images of one role (CC before XCCL, MLO before ML, LM)."""
        order = {View.CC: 0, View.MLO: 0, View.XCCL: 1, View.ML: 1, View.LM: 2}
        return order.get(self.view, 9) if self.view is not None else 9

    @property
    def label(self) -> str:
        """E.g. "CC", "MLO", "CC spot compression"."""
        base = self.view.value if self.view is not None else "unknown view"
        return " ".join([base, *(m.value.replace("_", " ") for m in self.modifiers)])


def _text(value: Any) -> str:
    return str(value or "").strip().upper()


def _modifiers(ds: Any, item: Any | None) -> tuple[ViewModifier, ...]:
    found: list[ViewModifier] = []
    sequences = [ds.get("ViewModifierCodeSequence")]
    if item is not None:
        sequences.insert(0, item.get("ViewModifierCodeSequence"))
    for seq in sequences:
        for mod in seq or []:
            code = str(mod.get("CodeValue", "") or "").strip()
            meaning = _text(mod.get("CodeMeaning"))
            if code in _MODIFIER_CODES:
                found.append(_MODIFIER_CODES[code])
            elif "SPOT" in meaning:
                found.append(ViewModifier.SPOT_COMPRESSION)
            elif "MAGNIF" in meaning:
                found.append(ViewModifier.MAGNIFICATION)
    words = " ".join(
        _text(ds.get(k))
        for k in ("ViewPosition", "AcquisitionDeviceProcessingDescription", "SeriesDescription")
    )
    if _SPOT_WORDS.search(words):
        found.append(ViewModifier.SPOT_COMPRESSION)
    if _MAG_WORDS.search(words):
        found.append(ViewModifier.MAGNIFICATION)
    if ds.get("EstimatedRadiographicMagnificationFactor") is not None:
        try:
            if float(ds.EstimatedRadiographicMagnificationFactor) >= 1.4:
                found.append(ViewModifier.MAGNIFICATION)
        except (TypeError, ValueError):
            pass
    return tuple(dict.fromkeys(found))


def view_from_dataset(ds: Any) -> ExamView:
    """The view of a DICOM dataset (pydicom ``Dataset``; pixels not needed).

    ``ViewCodeSequence`` wins over ``ViewPosition``; an unknown code gives
    :attr:`View.OTHER` (never CC or MLO). Modifiers are read from
    ``ViewModifierCodeSequence`` and from the words "SPOT" / "MAG" in ``ViewPosition``,
    ``AcquisitionDeviceProcessingDescription`` or ``SeriesDescription``, and an estimated
    radiographic magnification of 1.4 or more.
    """
    seq = ds.get("ViewCodeSequence")
    item = seq[0] if seq else None
    view: View | None = None
    if item is not None:
        code = str(item.get("CodeValue", "") or "").strip()
        meaning = re.sub(r"[^A-Z]", "", _text(item.get("CodeMeaning")))
        if code in VIEW_CODES:
            view = VIEW_CODES[code]
        elif meaning in ("CRANIOCAUDAL",):
            view = View.CC
        elif meaning == "MEDIOLATERALOBLIQUE":
            view = View.MLO
        else:
            view = View.OTHER
    if view is None:
        position = re.sub(r"[^A-Z]", " ", _text(ds.get("ViewPosition"))).split()
        for word in position:
            if word in _POSITIONS:
                view = _POSITIONS[word]
                break
            stripped = word[1:] if word[:1] in ("S", "M") else ""
            if stripped in _POSITIONS:  # "MCC" (magnified CC), "SMLO" (spot MLO)
                view = _POSITIONS[stripped]
                break
        else:
            view = View.OTHER if position else None
    return ExamView(view, _modifiers(ds, item))
