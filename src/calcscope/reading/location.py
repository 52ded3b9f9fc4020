"""Where a finding lies in the breast, in the words of a breast imaging report.

The BI-RADS atlas (5th ed., "Location of lesion") asks for the laterality, the location
in the breast (quadrant or clock face), the depth (anterior, middle or posterior third)
and the distance from the nipple. One view gives all of them but the quadrant: a CC view
shows whether a finding lies in the outer (lateral) or inner (medial) half, an MLO (or
ML, LM) view whether it lies in the upper or lower half; the quadrant and clock face need
both views of the breast.

Geometry on the image, after :mod:`calcscope.imaging.preprocess`:

* the nipple is the breast's most anterior point
  (:func:`calcscope.imaging.preprocess.nipple_position`);
* the posterior nipple line runs from the nipple back to the chest wall: perpendicular to
  the pectoral muscle's edge where the muscle shows (MLO), else straight back to the
  image side the chest wall is on (CC); its length is the breast's depth (the usual
  positioning measure, e.g. ACR Mammography Quality Control Manual, 2018);
* depth thirds are the finding's distance along that line over its length;
* the half is the side of that line the finding is on. With the usual orientation
  (DICOM PS3.17, mammography patient orientation: "A\\R" for a left CC, "A\\FR" for a
  left MLO) the image top is lateral on a CC view and superior on an MLO view; a
  ``PatientOrientation`` whose column direction says otherwise turns the halves round.
  Findings within ``central_mm`` of the line are "behind the nipple" (central, the
  atlas's retroareolar and central regions) rather than in either half.

With both views of a breast, :func:`calcscope.exam.pairing.pair_views` pairs their findings
by distance from the nipple and :func:`calcscope.exam.pairing.clock_face` gives each pair its
quadrant and clock-face hour (the exam model, :mod:`calcscope.exam`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from calcscope.imaging.preprocess import Preprocessed
from calcscope.model import Laterality, Mammogram, View

__all__ = [
    "BreastHalf",
    "Depth",
    "Location",
    "NippleLine",
    "locate",
    "nipple_line",
    "CENTRAL_MM",
]

CENTRAL_MM = 5.0
"""Findings this close to the posterior nipple line lie behind the nipple, in neither half."""


class BreastHalf(StrEnum):
    """The half of the breast one view can tell."""

    OUTER = "outer"
    INNER = "inner"
    UPPER = "upper"
    LOWER = "lower"
    CENTRAL = "central"  # on the nipple line (retroareolar / central)


class Depth(StrEnum):
    """BI-RADS depth: the third of the nipple-to-chest-wall distance."""

    ANTERIOR = "anterior"
    MIDDLE = "middle"
    POSTERIOR = "posterior"


@dataclass(frozen=True)
class NippleLine:
    """Posterior nipple line of one image, in pixels (row, col)."""

    nipple_rc: tuple[float, float]
    direction_rc: tuple[float, float]  # unit vector from the nipple towards the chest wall
    length_mm: float
    top_is: BreastHalf | None  # the half the image's top side shows; None: view unknown
    orientation_note: str


@dataclass(frozen=True)
class Location:
    """Where one finding lies, as far as one view tells."""

    laterality: Laterality | None
    view: View | None
    half: BreastHalf | None
    depth: Depth | None
    nipple_distance_mm: float | None
    # signed distance from the nipple line: + outer (CC) or upper (MLO), - inner or lower
    offset_mm: float | None = None

    @property
    def text(self) -> str:
        """E.g. "left breast, outer half, middle third, 45 mm from the nipple (CC view)"."""
        side: dict[str, str] = {Laterality.LEFT: "left breast", Laterality.RIGHT: "right breast"}
        parts = [side.get(self.laterality or "", "breast of unknown side")]
        if self.half is BreastHalf.CENTRAL:
            parts.append("behind the nipple")
        elif self.half is not None:
            parts.append(f"{self.half.value} half")
        if self.depth is not None:
            parts.append(f"{self.depth.value} third")
        if self.nipple_distance_mm is not None:
            parts.append(f"{self.nipple_distance_mm:.0f} mm from the nipple")
        text = ", ".join(parts)
        return text + (f" ({self.view.value} view)" if self.view is not None else "")


#: The half the image top shows on each view in the usual orientation.
_TOP_HALF = {
    View.CC: BreastHalf.OUTER,
    View.XCCL: BreastHalf.OUTER,
    View.MLO: BreastHalf.UPPER,
    View.ML: BreastHalf.UPPER,
    View.LM: BreastHalf.UPPER,
}
_OPPOSITE = {
    BreastHalf.OUTER: BreastHalf.INNER,
    BreastHalf.INNER: BreastHalf.OUTER,
    BreastHalf.UPPER: BreastHalf.LOWER,
    BreastHalf.LOWER: BreastHalf.UPPER,
}


def _top_half(mammogram: Mammogram) -> tuple[BreastHalf | None, str]:
    """The half the image's top side shows, and how that was decided."""
    view = mammogram.view
    if view not in _TOP_HALF:
        return None, "view unknown: no half given"
    usual = _TOP_HALF[view]
    other = _OPPOSITE[usual]
    orientation = (mammogram.source.patient_orientation or "").upper().split("\\")
    down = orientation[1] if len(orientation) == 2 else ""
    if usual is BreastHalf.OUTER:
        lateral_of: dict[str, str] = {Laterality.LEFT: "L", Laterality.RIGHT: "R"}
        lateral = lateral_of.get(mammogram.laterality or "")
        if lateral is None or not set(down) & {"L", "R"}:
            return usual, "image top taken as lateral (the usual CC orientation)"
        # the column direction points down the image: towards the lateral side, the top
        # is medial
        if lateral in down:
            return other, "image top medial (PatientOrientation)"
        return usual, "image top lateral (PatientOrientation)"
    if not set(down) & {"H", "F"}:
        return usual, "image top taken as superior (the usual MLO orientation)"
    if "H" in down:
        return other, "image top inferior (PatientOrientation)"
    return usual, "image top superior (PatientOrientation)"


def _pectoral_edge(pectoral: np.ndarray, chest_wall: str) -> tuple[float, float] | None:
    """The pectoral muscle's edge as a line ``col = slope * row + intercept`` fitted to its
    outer boundary (the muscle's farthest pixel from the chest wall on each row); None
    without a muscle."""
    rows = np.flatnonzero(pectoral.any(axis=1))
    if rows.size < 10:
        return None
    sub = pectoral[rows]
    if chest_wall == "left":
        edge = sub.shape[1] - 1 - np.argmax(sub[:, ::-1], axis=1)
    else:
        edge = np.argmax(sub, axis=1)
    slope, intercept = np.polyfit(rows.astype(np.float64), edge.astype(np.float64), 1)
    return float(slope), float(intercept)


def nipple_line(mammogram: Mammogram, prep: Preprocessed) -> NippleLine | None:
    """The posterior nipple line of ``mammogram``; None when no nipple can be placed."""
    nipple = prep.nipple_rc
    if nipple is None:
        return None
    sr, sc = mammogram.spacing_mm
    n = np.asarray(nipple, dtype=np.float64)
    back = np.array([0.0, -1.0 if prep.chest_wall == "left" else 1.0])
    edge = _pectoral_edge(prep.pectoral, prep.chest_wall)
    rows, cols = prep.breast.shape
    # straight back, the length runs to the image side the chest wall is on
    t_end = n[1] if prep.chest_wall == "left" else cols - 1 - n[1]
    if edge is not None:
        slope, intercept = edge
        # perpendicular (in mm) to the muscle's edge, pointing back to the chest wall
        edge_mm = np.array([sr, slope * sc])
        normal = np.array([-edge_mm[1], edge_mm[0]]) / np.array([sr, sc])
        normal /= np.linalg.norm(normal)
        back = normal if normal @ back > 0 else -normal
        # where the line meets the muscle's edge (extended), else the image side
        denom = back[1] - slope * back[0]
        if abs(denom) > 1e-9:
            t = (slope * n[0] + intercept - n[1]) / denom
            if t > 0:
                t_end = t
    length_mm = float(np.hypot(t_end * back[0] * sr, t_end * back[1] * sc))
    top, note = _top_half(mammogram)
    return NippleLine(
        nipple_rc=(float(nipple[0]), float(nipple[1])),
        direction_rc=(float(back[0]), float(back[1])),
        length_mm=length_mm,
        top_is=top,
        orientation_note=note,
    )


def locate(
    center_rc: tuple[float, float],
    mammogram: Mammogram,
    line: NippleLine | None,
    central_mm: float = CENTRAL_MM,
) -> Location:
    """Location of a finding centred at ``center_rc`` (pixels) on ``mammogram``."""
    if line is None:
        return Location(mammogram.laterality, mammogram.view, None, None, None)
    scale = np.array(mammogram.spacing_mm)
    rel_mm = (np.asarray(center_rc) - np.asarray(line.nipple_rc)) * scale
    back_mm = np.asarray(line.direction_rc) * scale
    back_mm /= np.linalg.norm(back_mm)
    along = float(rel_mm @ back_mm)
    # offset across the line, positive towards the image top
    across_dir = np.array([-back_mm[1], back_mm[0]])
    if across_dir[0] > 0:
        across_dir = -across_dir
    across = float(rel_mm @ across_dir)
    depth = None
    if line.length_mm > 0:
        third = along / line.length_mm
        depth = (
            Depth.ANTERIOR if third < 1 / 3 else Depth.MIDDLE if third < 2 / 3 else Depth.POSTERIOR
        )
    half = None
    offset = None
    if line.top_is is not None:
        offset = across if line.top_is in (BreastHalf.OUTER, BreastHalf.UPPER) else -across
        if abs(across) < central_mm:
            half = BreastHalf.CENTRAL
        else:
            half = line.top_is if across > 0 else _OPPOSITE[line.top_is]
    return Location(
        laterality=mammogram.laterality,
        view=mammogram.view,
        half=half,
        depth=depth,
        nipple_distance_mm=float(np.hypot(*rel_mm)),
        offset_mm=offset,
    )
