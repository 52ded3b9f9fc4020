"""Outlines, sizes and shape descriptors of the calcifications kept at the operating point
(the only Python loop of the detector: one pass per kept calcification). It runs on one
thread: its time is mostly scikit-image's contour assembly, which holds the interpreter
lock, so chunks on the thread pool were slower (0.051 -> 0.068 s on the full-field
phantom, 0.097 -> 0.120 s on the film; benchmarks/results/profile-stop18-load2.txt)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import cv2
import numpy as np

from calcscope.detection.contours import DEPOSIT_MIN_MM, contour_circularity, deposit_outline
from calcscope.detection.features import Candidates
from calcscope.detection.labels import SparseLabels
from calcscope.model import Calcification, Mammogram

__all__ = ["EXTENT_FRACTION", "LONG_MM", "calcification_extent", "outline_calcifications"]

EXTENT_FRACTION = 0.2
"""Fraction of a calcification's peak (above the surrounding tissue) at which its size is
measured. The object outline is taken at half the fine-band peak, which keeps neighbours
apart and shapes sharp but runs inside the visible edge: a projected sphere is only 87 %
of its diameter wide at half height, and blur narrows the band-pass response further
(sizes came out 25-30 % short on phantoms). Radiologists measure the visible edge, so
the size is measured where the calcification meets the tissue: at 20 % of its height in
the top-hat residual, and never below 2 noise sigmas."""

LONG_MM = 3.0
"""Deposits at least this long are measured across by their widest inscribed disc."""


@dataclass(frozen=True)
class _PixelOutline:
    """The half-peak object's outer pixel contour (OpenCV points, in a 1-pixel padded
    patch), its convex hull and areas in pixels."""

    contour: np.ndarray
    hull: np.ndarray
    filled_px: float
    hole_px: float
    perimeter_px: float
    hull_area_px: float


@dataclass(frozen=True)
class _SizeOutline:
    """The contour and hull sizes are measured on, the filled area (mm^2, outline
    included) and the area (mm^2)."""

    contour: np.ndarray
    hull: np.ndarray
    filled_mm2: float
    area_mm2: float


def calcification_extent(
    residual: np.ndarray,
    labels: np.ndarray | SparseLabels,
    label: int,
    bbox: tuple[int, int, int, int],
    pixel_mm: float,
    r_sigma: float,
) -> np.ndarray:
    """Region of one calcification out to its visible edge (see :data:`EXTENT_FRACTION`),
    in a window around ``bbox``.

    Grows the object ``label`` through connected pixels of ``residual`` above the edge
    level, by at most half its inscribed radius (and 0.3 mm).
    """
    rows, cols = residual.shape
    r0, c0, r1, c1 = bbox
    m = max(2, int(round(0.3 / pixel_mm)))
    ra, ca, rb, cb = max(r0 - m, 0), max(c0 - m, 0), min(r1 + m, rows), min(c1 + m, cols)
    window = labels[ra:rb, ca:cb]
    obj = window == label
    res = residual[ra:rb, ca:cb]
    near = cv2.dilate(obj.view(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    others = (window > 0) & ~obj
    around = res[~near & ~others]
    base = float(np.median(around)) if around.size else 0.0
    peak = float(res[obj].max())
    level = base + max(EXTENT_FRACTION * (peak - base), 2.0 * r_sigma)
    # grow by at most half the object's inscribed radius: the edge lies just outside the
    # half-peak outline, and a thin wall must not bridge to its neighbour through the
    # soft tissue between them
    obj_u8 = np.pad(obj, 1).view(np.uint8)
    inscribed = float(cv2.distanceTransform(obj_u8, cv2.DIST_L2, 3).max())
    reach = max(1, int(round(0.5 * inscribed)))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1))
    within = cv2.dilate(obj_u8, disc)[1:-1, 1:-1].astype(bool)
    grown = ((res >= level) & within & ~others) | obj
    _, comp = cv2.connectedComponents(grown.view(np.uint8), connectivity=8)
    ids = np.unique(comp[obj])
    return np.isin(comp, ids[ids > 0])


def _pixel_outline(patch: np.ndarray) -> _PixelOutline | None:
    """Outer contour of the largest part of the bool ``patch``, its holes and hull; None
    when it has no contour."""
    patch_u8 = np.pad(patch, 1).astype(np.uint8)
    contours, hierarchy = cv2.findContours(patch_u8, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None
    outer_ids = [k for k in range(len(contours)) if hierarchy[0][k][3] < 0]
    main = max(outer_ids, key=lambda k: cv2.contourArea(contours[k]))
    cnt = contours[main]
    hull = cv2.convexHull(cnt)
    return _PixelOutline(
        contour=cnt,
        hull=hull,
        filled_px=max(float(cv2.contourArea(cnt)), float(patch.sum()) * 0.5, 0.5),
        hole_px=sum(
            cv2.contourArea(contours[k]) for k in range(len(contours)) if hierarchy[0][k][3] == main
        ),
        perimeter_px=max(cv2.arcLength(cnt, True), 1e-6),
        hull_area_px=max(float(cv2.contourArea(hull)), 1e-6),
    )


def _size_outline(
    pixel: _PixelOutline,
    area_mm2: float,
    extent: np.ndarray | None,
    spacing_mm: tuple[float, float],
) -> _SizeOutline:
    """The outline sizes are measured on: the half-peak outline, or the ``extent`` region
    (grown to the visible edge) when there is one; the whole (filled) outline area gives
    the size of a rim calcification too."""
    sr, sc = spacing_mm
    filled_mm2 = (pixel.filled_px + pixel.perimeter_px / 2 + 1) * sr * sc
    if extent is None:
        return _SizeOutline(pixel.contour, pixel.hull, filled_mm2, area_mm2)
    e_cnts, _ = cv2.findContours(
        np.pad(extent, 1).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE
    )
    if not e_cnts:
        return _SizeOutline(pixel.contour, pixel.hull, filled_mm2, area_mm2)
    size_cnt = max(e_cnts, key=cv2.contourArea)
    e_px = max(float(cv2.contourArea(size_cnt)), 0.5)
    e_mm2 = (e_px + cv2.arcLength(size_cnt, True) / 2 + 1) * sr * sc
    return _SizeOutline(
        contour=size_cnt,
        hull=cv2.convexHull(size_cnt),
        filled_mm2=max(filled_mm2, e_mm2),
        area_mm2=max(area_mm2, float(extent.sum()) * sr * sc),
    )


def _feret_and_least_width_mm(
    size: _SizeOutline, spacing_mm: tuple[float, float], pixel_mm: float
) -> tuple[float, float]:
    """Largest (Feret) and least width (mm) of the size outline.

    The least width is the bounding rectangle's or, for long deposits (at least
    :data:`LONG_MM`), the widest inscribed disc's, since a curved vessel segment is thin
    however wide its rectangle (small irregular specks keep the rectangle: their inscribed
    disc would make them look like thin casts).
    """
    sr, sc = spacing_mm
    pts = size.hull[:, 0, :].astype(np.float64) * np.array([sc, sr])
    if len(pts) > 1:
        d = np.sqrt(((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1))
        feret_mm = float(d.max()) + pixel_mm
    else:
        feret_mm = pixel_mm
    (_, _), (w, h), _ = cv2.minAreaRect(size.contour)
    min_d_mm = float(min(w, h)) * pixel_mm + pixel_mm
    if feret_mm >= LONG_MM:
        x0, y0, bw, bh = cv2.boundingRect(size.contour)
        solid = np.zeros((bh + 2, bw + 2), np.uint8)
        cv2.drawContours(solid, [size.contour - np.array([x0 - 1, y0 - 1])], -1, 1, thickness=-1)
        inscribed = float(cv2.distanceTransform(solid, cv2.DIST_L2, 3).max())
        min_d_mm = min(min_d_mm, max(2.0 * inscribed - 1.0, 1.0) * pixel_mm)
    return feret_mm, min_d_mm


def _calcification(
    mammogram: Mammogram,
    labels: np.ndarray | SparseLabels,
    cands: Candidates,
    i: int,
    new_id: int,
    residual: np.ndarray | None,
    r_sigma: float,
) -> Calcification | None:
    """Calcification ``new_id`` from candidate ``i``; None when its object has no pixels."""
    pixel_mm = mammogram.pixel_mm
    r0, c0, r1, c1 = (int(v) for v in cands.bbox_rc[i])
    box = (r0, c0, r1, c1)
    patch = labels[r0:r1, c0:c1] == cands.label[i]
    if not patch.any():
        return None
    pixel = _pixel_outline(patch)
    if pixel is None:
        return None
    extent = (
        calcification_extent(residual, labels, int(cands.label[i]), box, pixel_mm, r_sigma)
        if residual is not None
        else None
    )
    size = _size_outline(pixel, float(cands.area_mm2[i]), extent, mammogram.spacing_mm)
    feret_mm, min_d_mm = _feret_and_least_width_mm(size, mammogram.spacing_mm, pixel_mm)
    diameter = float(max(2 * np.sqrt(size.filled_mm2 / np.pi), cands.diameter_mm[i]))
    filled_px = pixel.filled_px
    centre = (float(cands.center_rc[i, 0]), float(cands.center_rc[i, 1]))
    return Calcification(
        id=new_id,
        center_rc=centre,
        contour_rc=pixel.contour[:, 0, ::-1].astype(np.int32)
        + np.array([r0 - 1, c0 - 1], dtype=np.int32),
        bbox_rc=box,
        area_mm2=size.area_mm2,
        diameter_mm=diameter,
        max_diameter_mm=max(feret_mm, diameter),
        min_diameter_mm=min(min_d_mm, feret_mm),
        contrast=float(cands.contrast[i]),
        cnr=float(cands.peak_cnr[i]),
        score=float(cands.score[i]),
        circularity=(
            float(min(1.0, 4 * np.pi * filled_px / pixel.perimeter_px**2)) if filled_px > 2 else 1.0
        ),
        elongation=float(1.0 - min(min_d_mm, feret_mm) / max(feret_mm, 1e-6)),
        solidity=(
            float(min(1.0, filled_px / pixel.hull_area_px)) if pixel.hull_area_px > 2 else 1.0
        ),
        lucent_center=bool(pixel.hole_px >= max(2.0, 0.1 * filled_px)),
        contour_circularity=(
            contour_circularity(residual, box, centre, pixel_mm) if residual is not None else None
        ),
        deposit=(
            deposit_outline(residual, box, centre, pixel_mm)
            if residual is not None and diameter >= DEPOSIT_MIN_MM
            else None
        ),
    )


def outline_calcifications(
    mammogram: Mammogram,
    labels: np.ndarray | SparseLabels,
    cands: Candidates,
    operating_score: float,
    residual: np.ndarray | None = None,
    r_sigma: float = 1.0,
) -> tuple[Calcification, ...]:
    """Outlines and shape descriptors of the candidates scoring at least
    ``operating_score`` (and above 0), ids numbered from 1 in descending score order.

    The outline (shape descriptors) is the half-peak object (``labels``); sizes are
    measured on its region grown to the visible edge in ``residual`` (see
    :func:`calcification_extent`), whose noise level is ``r_sigma``.
    """
    order = np.argsort(-cands.score, kind="stable")
    chosen: list[int] = []
    for i in order:
        if cands.score[i] < operating_score or cands.score[i] <= 0.0:
            break
        chosen.append(int(i))

    made = [_calcification(mammogram, labels, cands, i, 0, residual, r_sigma) for i in chosen]
    found = [c for c in made if c is not None]
    return tuple(dataclasses.replace(c, id=k) for k, c in enumerate(found, start=1))
