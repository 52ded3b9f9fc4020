"""Ground-truth readers for public mammography data sets.

Each reader turns a data set's own annotation format into the same frozen values:

* :class:`TruthCluster`: a calcification cluster (or other finding) outlined by a circle,
  centre ``(row, col)`` in pixels of the image, origin top-left;
* :class:`TruthCalcification`: one outlined calcification (INbreast);
* :class:`ImageTruth`: everything known about one image, including whether it must be
  left out of location-based scores (:attr:`ImageTruth.excluded_reason`).

Readers
-------
* :func:`read_mias`: mini-MIAS ``Info.txt`` (Suckling J et al., Excerpta Medica,
  International Congress Series 1069, 1994, pp. 375-378). Origin bottom-left in the file.
* :func:`read_cbis_ddsm`: the CBIS-DDSM case description CSV (Sawyer-Lee R et al., The
  Cancer Imaging Archive, 2016), with :func:`cbis_truth_from_masks` to turn an ROI mask
  into a cluster circle when the DICOMs are at hand.
* :func:`read_inbreast_xml`: INbreast annotations (Moreira IC et al., Acad Radiol 2012),
  Apple property-list XML written by OsiriX.

See ``../shared/data/README.md`` for the quirks of each file that these readers handle.
"""

from __future__ import annotations

import csv
import math
import plistlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from calcscope.errors import InputError, UnreadableFileError
from calcscope.model import Laterality, View

__all__ = [
    "TruthCluster",
    "TruthCalcification",
    "ImageTruth",
    "MIAS_CLASSES",
    "MIAS_KNOWN_OFF_BREAST",
    "MIAS_NO_COORDINATES_REASON",
    "OFF_BREAST_REASON",
    "read_mias",
    "mark_off_breast",
    "CbisFinding",
    "read_cbis_ddsm",
    "cbis_truth_from_masks",
    "read_inbreast_xml",
]


@dataclass(frozen=True)
class TruthCluster:
    """A ground-truth finding outlined by a circle.

    Attributes
    ----------
    image_id : str
        The image it belongs to (e.g. ``"mdb226"``).
    center_rc : tuple of float or None
        Centre ``(row, col)`` in pixels of the image, origin top-left; None when the
        source gives no location.
    radius_mm : float or None
        Radius of the circle enclosing the finding, in millimetres, when the pixel
        spacing is known.
    radius_px : float or None
        The same radius in pixels.
    severity : str or None
        ``"benign"`` or ``"malignant"`` (biopsy result) when the source says.
    label : str
        The source's own name for the finding: the mini-MIAS class (``"CALC"``), the
        INbreast ROI name (``"Cluster"``) or the CBIS-DDSM calc type.
    """

    image_id: str
    center_rc: tuple[float, float] | None
    radius_mm: float | None
    radius_px: float | None
    severity: str | None
    label: str


@dataclass(frozen=True)
class TruthCalcification:
    """One ground-truth calcification.

    Attributes
    ----------
    image_id : str
        The image it belongs to.
    center_rc : tuple of float
        Centre ``(row, col)`` in pixels, origin top-left.
    contour_rc : numpy.ndarray or None
        Outline, shape ``(n, 2)`` float64 ``(row, col)`` pixels, read-only; None for
        calcifications annotated with a point or two only. Not compared by ``==``.
    """

    image_id: str
    center_rc: tuple[float, float]
    contour_rc: np.ndarray | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class ImageTruth:
    """Everything the ground truth says about one image.

    Attributes
    ----------
    image_id : str
        Identifier of the image (mini-MIAS reference, INbreast file name stem, ...).
    clusters : tuple of TruthCluster
        Located calcification clusters (the targets of cluster-level FROC).
    calcifications : tuple of TruthCalcification
        Individually outlined calcifications (INbreast only).
    has_calcification : bool
        Image-level label: calcifications are present, located or not.
    abnormal_classes : tuple of str
        Every abnormality class or ROI name on the image, calcifications included, in
        file order without repeats; empty for a normal image.
    excluded_reason : str or None
        Why the image must be left out of location-based scores (e.g. calcifications
        without coordinates, a circle off the breast); None when it is usable.
    spacing_mm : float or None
        Pixel spacing of the annotated image in millimetres, when known.
    tissue : str or None
        Background tissue where the source gives it (mini-MIAS: ``"F"`` fatty,
        ``"G"`` fatty-glandular, ``"D"`` dense-glandular).
    """

    image_id: str
    clusters: tuple[TruthCluster, ...]
    calcifications: tuple[TruthCalcification, ...]
    has_calcification: bool
    abnormal_classes: tuple[str, ...]
    excluded_reason: str | None
    spacing_mm: float | None
    tissue: str | None = None


# ---------------------------------------------------------------------------------------
# mini-MIAS
# ---------------------------------------------------------------------------------------

MIAS_CLASSES = ("CALC", "CIRC", "SPIC", "MISC", "ARCH", "ASYM", "NORM")
"""Abnormality classes of mini-MIAS ``Info.txt`` (third column)."""

MIAS_KNOWN_OFF_BREAST = ("mdb212", "mdb214")
"""mini-MIAS images whose CALC circle lies on the black background, under either origin
convention (``../shared/data/README.md``; another copy of the truth lists them as
normal). :func:`read_mias` cannot see this from the text: pass breast masks to
:func:`mark_off_breast`, and report these images as left out of location-based scores."""

MIAS_NO_COORDINATES_REASON = "no coordinates: calcifications spread through the breast"
""":attr:`ImageTruth.excluded_reason` of mini-MIAS CALC rows without a circle (note 3)."""

OFF_BREAST_REASON = "circle off the breast"
""":attr:`ImageTruth.excluded_reason` set by :func:`mark_off_breast`."""

_MIAS_ROW = re.compile(r"^(mdb\d+)\s+([FGD])\s+(" + "|".join(MIAS_CLASSES) + r")\b(.*)$")
_SEVERITY = {"B": "benign", "M": "malignant"}


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _image_key(image_id: str | Path) -> str:
    """``"mdb006"`` from ``"mdb006"``, ``"mdb006.pgm"`` or a path to it."""
    return Path(str(image_id)).name.removesuffix(".pgm")


def read_mias(
    info_txt: Path,
    image_ids: Iterable[str] | None = None,
    *,
    size_px: int = 1024,
    spacing_mm: float = 0.2,
) -> dict[str, ImageTruth]:
    """Read the mini-MIAS ground truth (``Info.txt``).

    Only data rows are parsed (``mdbNNN tissue class [severity [x y radius]]``); the
    text header and footer and trailing spaces are ignored. Several rows for one image
    (mdb226 has 3) give several clusters. Only class ``CALC`` rows with coordinates
    become :class:`TruthCluster`; every non-``NORM`` class is listed in
    :attr:`ImageTruth.abnormal_classes`. A CALC row without coordinates (``*NOTE 3*``:
    mdb216, mdb245) gives an image-level label only, and the image is marked with
    ``excluded_reason`` = :data:`MIAS_NO_COORDINATES_REASON`.

    The file's origin is the bottom-left corner; the result uses array coordinates,
    ``row = size_px - 1 - y``, ``col = x``.

    Parameters
    ----------
    info_txt : Path
        The ``Info.txt`` file.
    image_ids : iterable of str, optional
        Keep only these images (``"mdb006"``; file names such as ``"mdb006.pgm"`` are
        accepted). Default: every image in the file.
    size_px : int
        Height of the images in pixels (1024 for mini-MIAS).
    spacing_mm : float
        Pixel spacing in millimetres (0.2 for mini-MIAS).

    Returns
    -------
    dict of str to ImageTruth
        Keyed by image id, in file order.

    Raises
    ------
    UnreadableFileError
        The file cannot be read.
    InputError
        A requested image has no row in the file.

    Notes
    -----
    Circles off the breast (:data:`MIAS_KNOWN_OFF_BREAST`) are not detectable from the
    text; use :func:`mark_off_breast`.
    """
    info_txt = Path(info_txt)
    try:
        text = info_txt.read_text(encoding="latin-1")
    except OSError as exc:
        raise UnreadableFileError(f"cannot read the mini-MIAS truth: {exc}", str(info_txt)) from exc
    rows: dict[str, list[tuple[str, str, list[str]]]] = {}
    for line in text.splitlines():
        m = _MIAS_ROW.match(line.strip())
        if m is None:
            continue
        ref, tissue, cls, rest = m.groups()
        rows.setdefault(ref, []).append((tissue, cls, rest.split()))
    wanted = list(rows) if image_ids is None else [_image_key(i) for i in image_ids]
    missing = [i for i in wanted if i not in rows]
    if missing:
        raise InputError(
            f"no row for {', '.join(missing)}; is this the mini-MIAS Info.txt?", str(info_txt)
        )
    return {
        ref: _mias_image(ref, rows[ref], size_px=size_px, spacing_mm=spacing_mm) for ref in wanted
    }


def _mias_image(
    ref: str, rows: list[tuple[str, str, list[str]]], *, size_px: int, spacing_mm: float
) -> ImageTruth:
    clusters: list[TruthCluster] = []
    classes: list[str] = []
    has_calc = False
    unlocated_calc = False
    for _tissue, cls, rest in rows:
        if cls != "NORM" and cls not in classes:
            classes.append(cls)
        if cls != "CALC":
            continue
        has_calc = True
        severity = _SEVERITY.get(rest[0]) if rest else None
        coords = [_number(t) for t in rest[1:4]]
        x, y = (coords + [None, None])[:2]
        if x is None or y is None:
            unlocated_calc = True
            continue
        radius_px = coords[2] if len(coords) > 2 else None
        clusters.append(
            TruthCluster(
                image_id=ref,
                center_rc=(float(size_px - 1 - y), float(x)),
                radius_mm=None if radius_px is None else radius_px * spacing_mm,
                radius_px=radius_px,
                severity=severity,
                label=cls,
            )
        )
    return ImageTruth(
        image_id=ref,
        clusters=tuple(clusters),
        calcifications=(),
        has_calcification=has_calc,
        abnormal_classes=tuple(classes),
        excluded_reason=MIAS_NO_COORDINATES_REASON if unlocated_calc else None,
        spacing_mm=spacing_mm,
        tissue=rows[0][0],
    )


def mark_off_breast(
    truth: dict[str, ImageTruth], breast_masks: Mapping[str, np.ndarray]
) -> dict[str, ImageTruth]:
    """Mark images whose truth circle is centred off the breast.

    An image is given ``excluded_reason`` = :data:`OFF_BREAST_REASON` when the centre of
    any of its clusters lies outside its breast mask (or outside the array). Images
    without a mask, or already excluded, are returned unchanged.

    Parameters
    ----------
    truth : dict of str to ImageTruth
        As returned by :func:`read_mias`.
    breast_masks : mapping of str to numpy.ndarray
        Boolean (or nonzero = breast) masks of shape ``(rows, cols)``, keyed by image id,
        in the pixel grid of the annotated image.

    Returns
    -------
    dict of str to ImageTruth
        A new dictionary; ``truth`` is not modified.
    """
    out: dict[str, ImageTruth] = {}
    for image_id, t in truth.items():
        mask = breast_masks.get(image_id)
        if mask is not None and t.excluded_reason is None:
            if any(c.center_rc is not None and not _inside(mask, c.center_rc) for c in t.clusters):
                t = replace(t, excluded_reason=OFF_BREAST_REASON)
        out[image_id] = t
    return out


def _inside(mask: np.ndarray, center_rc: tuple[float, float]) -> bool:
    r, c = (int(round(v)) for v in center_rc)
    if not (0 <= r < mask.shape[0] and 0 <= c < mask.shape[1]):
        return False
    return bool(mask[r, c])


# ---------------------------------------------------------------------------------------
# CBIS-DDSM
# ---------------------------------------------------------------------------------------

_NA = {"", "NA", "N/A", "NAN", "NONE"}
_CBIS_COLUMNS = (
    "patient_id",
    "left_or_right_breast",
    "image_view",
    "abnormality_id",
    "pathology",
)


@dataclass(frozen=True)
class CbisFinding:
    """One row of a CBIS-DDSM case description CSV: one abnormality on one image.

    Attributes
    ----------
    patient_id : str
        ``"P_00005"``.
    laterality : Laterality
        Breast side (``left or right breast`` column).
    view : View
        ``CC`` or ``MLO`` (``image view``).
    abnormality_id : int
        Number of the abnormality on this image, from 1.
    abnormality_type : str
        ``"calcification"`` or ``"mass"``.
    calc_type : str or None
        Raw BI-RADS morphology, compound types joined with ``-``
        (``"PLEOMORPHIC-FINE_LINEAR_BRANCHING"``); None where the file says ``NA``.
    calc_distribution : str or None
        Raw BI-RADS distribution (``"CLUSTERED"``); None for ``NA``.
    assessment : int or None
        BI-RADS assessment category, 0-5.
    pathology : str
        ``"BENIGN"``, ``"BENIGN_WITHOUT_CALLBACK"`` or ``"MALIGNANT"``.
    subtlety : int or None
        Subtlety rating, 1 (subtle) to 5 (obvious).
    breast_density : int or None
        BI-RADS breast density, 1-4.
    image_file_path, cropped_image_file_path, roi_mask_file_path : str
        DICOM paths as given (line breaks inside the values removed), under
        ``images_dir`` when one was passed to :func:`read_cbis_ddsm`.
    """

    patient_id: str
    laterality: Laterality
    view: View
    abnormality_id: int
    abnormality_type: str
    calc_type: str | None
    calc_distribution: str | None
    assessment: int | None
    pathology: str
    subtlety: int | None
    breast_density: int | None
    image_file_path: str
    cropped_image_file_path: str
    roi_mask_file_path: str

    @property
    def image_id(self) -> str:
        """Identifier of the full image, e.g. ``"P_00005_RIGHT_CC"``."""
        side = "LEFT" if self.laterality is Laterality.LEFT else "RIGHT"
        return f"{self.patient_id}_{side}_{self.view.value}"

    @property
    def malignant(self) -> bool:
        """True when the biopsy found malignancy."""
        return self.pathology == "MALIGNANT"


def _column_key(name: str) -> str:
    return "_".join(name.strip().lower().split())


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.replace("\r", "").replace("\n", "").strip()
    return None if value.upper() in _NA else value


def read_cbis_ddsm(csv_path: Path, *, images_dir: Path | None = None) -> list[CbisFinding]:
    """Read a CBIS-DDSM case description CSV (calcification or mass, train or test).

    Handles the file's quirks: CRLF line ends, line breaks inside the quoted path
    values, ``NA`` for missing values, and column names with spaces (``left or right
    breast``, ``calc type``, ``ROI mask file path``; matched case-insensitively with
    spaces and underscores equivalent).

    Parameters
    ----------
    csv_path : Path
        E.g. ``calc_case_description_train_set.csv``.
    images_dir : Path, optional
        Folder the DICOM paths are relative to; when given, the paths of the result are
        joined to it.

    Returns
    -------
    list of CbisFinding
        One per data row, in file order.

    Raises
    ------
    UnreadableFileError
        The file cannot be read.
    InputError
        A required column is missing or a value cannot be parsed (message gives the line).
    """
    csv_path = Path(csv_path)
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None:
                raise InputError("empty CSV file", str(csv_path))
            keys = {_column_key(n): n for n in reader.fieldnames}
            missing = [c for c in _CBIS_COLUMNS if c not in keys]
            if missing:
                raise InputError(
                    f"not a CBIS-DDSM case description: no column {', '.join(missing)}",
                    str(csv_path),
                )
            findings = []
            for row in reader:
                values = {k: _clean(row.get(name)) for k, name in keys.items()}
                if not any(values.values()):
                    continue
                try:
                    findings.append(_cbis_finding(values, images_dir))
                except ValueError as exc:
                    raise InputError(f"line {reader.line_num}: {exc}", str(csv_path)) from exc
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UnreadableFileError(f"cannot read the CBIS-DDSM CSV: {exc}", str(csv_path)) from exc
    return findings


def _int(values: dict[str, str | None], key: str, lo: int, hi: int) -> int | None:
    text = values.get(key)
    if text is None:
        return None
    value = int(text)
    if not lo <= value <= hi:
        raise ValueError(f"{key} {value} is not in {lo}-{hi}")
    return value


def _cbis_finding(values: dict[str, str | None], images_dir: Path | None) -> CbisFinding:
    def required(key: str) -> str:
        value = values.get(key)
        if value is None:
            raise ValueError(f"no value for {key}")
        return value

    side = required("left_or_right_breast").upper()
    laterality = {"LEFT": Laterality.LEFT, "RIGHT": Laterality.RIGHT}.get(side)
    if laterality is None:
        laterality = Laterality(side)

    def path(key: str) -> str:
        value = values.get(key) or ""
        if images_dir is not None and value:
            return str(Path(images_dir) / value)
        return value

    density = values.get("breast_density")
    return CbisFinding(
        patient_id=required("patient_id"),
        laterality=laterality,
        view=View(required("image_view").upper()),
        abnormality_id=int(required("abnormality_id")),
        abnormality_type=values.get("abnormality_type") or "",
        calc_type=values.get("calc_type"),
        calc_distribution=values.get("calc_distribution"),
        assessment=_int(values, "assessment", 0, 5),
        pathology=required("pathology").upper(),
        subtlety=_int(values, "subtlety", 1, 5),
        breast_density=None if density is None else int(density),
        image_file_path=path("image_file_path"),
        cropped_image_file_path=path("cropped_image_file_path"),
        roi_mask_file_path=path("roi_mask_file_path"),
    )


def cbis_truth_from_masks(
    finding: CbisFinding, mask: np.ndarray, *, spacing_mm: float | None = None
) -> TruthCluster:
    """Turn a CBIS-DDSM ROI mask into a cluster circle.

    The centre is the centroid of the mask pixels, the radius the largest distance of a
    mask pixel (centre) to it.

    Parameters
    ----------
    finding : CbisFinding
        The row the mask belongs to (gives the image id, severity and label).
    mask : numpy.ndarray
        ROI mask, shape ``(rows, cols)`` in the grid of the full image; nonzero = ROI.
    spacing_mm : float, optional
        Pixel spacing in millimetres, to fill :attr:`TruthCluster.radius_mm`
        (CBIS-DDSM DICOMs do not carry one).

    Returns
    -------
    TruthCluster

    Raises
    ------
    ValueError
        The mask is not 2-D or is empty.

    Notes
    -----
    In some CBIS-DDSM series the cropped image and the ROI mask are swapped; check that
    the mask has the full image's shape before calling this.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"ROI mask must be 2-D, got shape {mask.shape}")
    rr, cc = np.nonzero(mask)
    if rr.size == 0:
        raise ValueError(f"ROI mask of {finding.image_id} is empty")
    r0, c0 = float(rr.mean()), float(cc.mean())
    radius_px = float(np.sqrt(((rr - r0) ** 2 + (cc - c0) ** 2).max()))
    return TruthCluster(
        image_id=finding.image_id,
        center_rc=(r0, c0),
        radius_mm=None if spacing_mm is None else radius_px * spacing_mm,
        radius_px=radius_px,
        severity="malignant" if finding.malignant else "benign",
        label=finding.calc_type or finding.abnormality_type or "calcification",
    )


# ---------------------------------------------------------------------------------------
# INbreast
# ---------------------------------------------------------------------------------------

_FLOAT = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _point(value: Any) -> tuple[float, float] | None:
    """``(x, y)`` from an INbreast point string such as ``"(1534.0, 2017.5)"``."""
    if isinstance(value, (list, tuple)) and len(value) >= 2:
        return float(value[0]), float(value[1])
    if not isinstance(value, str):
        return None
    numbers = _FLOAT.findall(value)
    if len(numbers) < 2:
        return None
    return float(numbers[0]), float(numbers[1])


def _points(values: Any) -> np.ndarray:
    """Points as ``(n, 2)`` float64 ``(x, y)``."""
    pts = [p for p in (_point(v) for v in values or []) if p is not None]
    return np.array(pts, dtype=np.float64).reshape(-1, 2)


def _inbreast_spacing(rois: list[dict[str, Any]]) -> float | None:
    """Pixel spacing from the ratio of ``Point_mm`` to ``Point_px``, when both exist."""
    ratios: list[float] = []
    for roi in rois:
        px, mm = _points(roi.get("Point_px")), _points(roi.get("Point_mm"))
        if len(px) and len(px) == len(mm):
            ok = np.abs(px) > 1
            ratios.extend((mm[ok] / px[ok]).tolist())
    if not ratios:
        return None
    spacing = float(np.median(ratios))
    return round(spacing, 6) if 0 < spacing < 1 else None


def read_inbreast_xml(xml_path: Path, image_id: str | None = None) -> ImageTruth:
    """Read an INbreast annotation file (OsiriX property-list XML).

    ROIs named ``Calcification`` become :class:`TruthCalcification` (centre from
    ``Center``, else the mean of the points; outline when more than two points); ROIs
    named ``Cluster`` become :class:`TruthCluster` with the smallest circle enclosing
    their points. Points are ``(x, y)`` = ``(col, row)``, origin top-left. The pixel
    spacing is taken from the ratio of ``Point_mm`` to ``Point_px`` when both are
    present.

    Parameters
    ----------
    xml_path : Path
        E.g. ``AllXML/20586908.xml``.
    image_id : str, optional
        Identifier for the result; default the file name stem.

    Returns
    -------
    ImageTruth

    Raises
    ------
    UnreadableFileError
        The file is missing or is not a property list with an ``Images`` list.
    """
    xml_path = Path(xml_path)
    image_id = image_id or xml_path.stem
    try:
        with xml_path.open("rb") as fh:
            doc = plistlib.load(fh)
    except (OSError, plistlib.InvalidFileException, ValueError) as exc:
        raise UnreadableFileError(f"cannot read the INbreast XML: {exc}", str(xml_path)) from exc
    images = doc.get("Images") if isinstance(doc, dict) else None
    if not isinstance(images, list):
        raise UnreadableFileError("no 'Images' list: not an INbreast annotation", str(xml_path))
    rois = [roi for im in images for roi in (im.get("ROIs") or []) if isinstance(roi, dict)]
    clusters: list[TruthCluster] = []
    calcs: list[TruthCalcification] = []
    names: list[str] = []
    spacing = _inbreast_spacing(rois)
    for roi in rois:
        name = str(roi.get("Name", "")).strip()
        if name and name not in names:
            names.append(name)
        kind = name.lower()
        pts = _points(roi.get("Point_px"))
        center = _point(roi.get("Center"))
        if kind.startswith("calcification"):
            if center is None and len(pts):
                center = (float(pts[:, 0].mean()), float(pts[:, 1].mean()))
            if center is None:
                continue
            contour = None
            if len(pts) > 2:
                contour = pts[:, ::-1].copy()
                contour.setflags(write=False)
            calcs.append(TruthCalcification(image_id, (center[1], center[0]), contour))
        elif kind.startswith("cluster"):
            if len(pts) >= 3:
                (x, y), radius = cv2.minEnclosingCircle(pts.astype(np.float32))
                center, radius_px = (float(x), float(y)), float(radius)
            elif len(pts):
                mean = pts.mean(axis=0)
                center = (float(mean[0]), float(mean[1]))
                radius_px = float(np.hypot(*(pts - mean).T).max())
            elif center is not None:
                radius_px = 0.0
            else:
                continue
            clusters.append(
                TruthCluster(
                    image_id=image_id,
                    center_rc=(center[1], center[0]),
                    radius_mm=None if spacing is None else radius_px * spacing,
                    radius_px=radius_px,
                    severity=None,
                    label=name,
                )
            )
    return ImageTruth(
        image_id=image_id,
        clusters=tuple(clusters),
        calcifications=tuple(calcs),
        has_calcification=bool(clusters or calcs),
        abnormal_classes=tuple(names),
        excluded_reason=None,
        spacing_mm=spacing,
    )
