"""DICOM Grayscale Softcopy Presentation State with the calcification outlines.

A GSPS (SOP class 1.2.840.10008.5.1.4.1.1.11.1, built with
:class:`highdicom.pr.GrayscaleSoftcopyPresentationState`) tells a standard viewer how to
show the analysed image: here it draws, over the original pixels,

* layer ``CALCIFICATIONS``: every calcification's outline as a closed polyline (cyan for
  micro-, yellow for macrocalcifications in viewers that honour layer colours);
* layer ``FINDINGS``: a box around each cluster and benign macro finding with a label
  such as ``C1 BI-RADS 4B`` or ``M1 coarse_popcorn``;
* a text line saying that the marks come from research software, not a medical device.

A GSPS is a few kilobytes where a Segmentation of a 3328 x 4096 mammogram would carry a
full-size frame, and every PACS viewer that shows presentation states shows it.
Coordinates are DICOM image coordinates ``(x=column, y=row)``, the centre of pixel
(r, c) being (c + 0.5, r + 0.5), as in :mod:`calcscope.reports.sr`; the source image is
referenced as described there (a synthetic instance for non-DICOM input), and
``anonymize`` de-identifies the image's header (PS3.15 Basic Profile, UIDs replaced).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from highdicom.color import CIELabColor
from highdicom.pr import (
    AnnotationUnitsValues,
    GraphicAnnotation,
    GraphicLayer,
    GraphicObject,
    GraphicTypeValues,
    GrayscaleSoftcopyPresentationState,
    TextObject,
)
from pydicom.dataset import Dataset
from pydicom.uid import GrayscaleSoftcopyPresentationStateStorage, generate_uid

from calcscope.about import __version__
from calcscope.reports.dicom_bytes import dataset_bytes
from calcscope.reports.dicom_source import (
    deidentify,
    derived_uid,
    mark_deidentified,
    outline_rc,
    pixel_centre_xy,
    source_dataset,
)
from calcscope.reports.schema import AnalysisReport
from calcscope.reports.sr_items import typed_dataset

__all__ = ["GSPS_STORAGE", "build_gsps", "gsps_bytes", "write_gsps"]

GSPS_STORAGE = GrayscaleSoftcopyPresentationStateStorage

_NOTICE = "calcscope: research software, not a medical device"


def _closed_xy(rc: np.ndarray) -> np.ndarray:
    xy = pixel_centre_xy(rc)
    if not np.array_equal(xy[0], xy[-1]):
        xy = np.vstack([xy, xy[:1]])
    return xy.astype(np.float32)


def _box_xy(bbox: tuple[int, int, int, int], pad: float, shape: tuple[int, int]) -> np.ndarray:
    r0, c0, r1, c1 = bbox
    x0, y0 = max(0.0, c0 - pad), max(0.0, r0 - pad)
    x1, y1 = min(float(shape[1]), c1 + pad), min(float(shape[0]), r1 + pad)
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]], dtype=np.float32)


_CALC_LAYER = GraphicLayer(
    "CALCIFICATIONS",
    order=1,
    description="calcification outlines",
    display_color=CIELabColor(91.1, -48.1, -14.1),
)
_FINDING_LAYER = GraphicLayer(
    "FINDINGS",
    order=2,
    description="clusters and macro findings",
    display_color=CIELabColor(54.3, 80.8, 69.9),
)


def _outline_xys(report: AnalysisReport) -> list[np.ndarray]:
    """The closed polyline (x, y) around every calcification the reports show."""
    return [_closed_xy(outline_rc(c)) for c in report.reported_calcifications()]


def _polyline(xy: np.ndarray) -> Dataset:
    """A Graphic Object: an unfilled POLYLINE in PIXEL units, the dataset that
    :class:`highdicom.pr.GraphicObject` builds, made without its per-object checks (one
    GSPS has a few hundred; :func:`_check_outlines` checks them at once)."""
    return typed_dataset(
        GraphicAnnotationUnits=AnnotationUnitsValues.PIXEL.value,
        GraphicDimensions=2,
        NumberOfGraphicPoints=len(xy),
        GraphicData=xy.flatten().tolist(),
        GraphicType=GraphicTypeValues.POLYLINE.value,
        GraphicFilled="N",
    )


def _check_outlines(xys: list[np.ndarray], ref: Dataset) -> None:
    """highdicom's checks of a graphic object, on every outline at once."""
    xy = np.vstack(xys)
    if xy.min() < 0 or xy[:, 0].max() > float(ref.Columns) or xy[:, 1].max() > float(ref.Rows):
        raise ValueError("a calcification outline lies outside the referenced image")
    if any(len(p) < 2 for p in xys):
        raise ValueError("a POLYLINE needs at least two points")


def _marks(report: AnalysisReport) -> list[tuple[tuple[int, int, int, int], str]]:
    """The box (bbox_rc) and label of each cluster and benign macro finding."""
    by_id = {c.id: c for c in report.calcifications}
    marks = [(c.bbox_rc, f"C{c.id} BI-RADS {c.assessment.category}") for c in report.clusters]
    for m in report.macro_findings:
        b = np.array([by_id[i].bbox_rc for i in m.member_ids if i in by_id])
        if len(b):
            bbox = (int(b[:, 0].min()), int(b[:, 1].min()), int(b[:, 2].max()), int(b[:, 3].max()))
            marks.append((bbox, f"M{m.id} {m.pattern}"))
    return marks


def _boxes_and_labels(report: AnalysisReport) -> tuple[list[GraphicObject], list[TextObject]]:
    """Boxes 1 mm around each finding, their labels, and the research-software notice."""
    shape = report.source.shape_rc
    row_mm, col_mm = report.source.spacing_mm
    pad = max(6.0, 1.0 / float(np.sqrt(row_mm * col_mm)))  # 1 mm around the finding
    boxes: list[GraphicObject] = []
    labels: list[TextObject] = []
    for bbox, label in _marks(report):
        xy = _box_xy(bbox, pad, shape)
        boxes.append(GraphicObject(GraphicTypeValues.POLYLINE, xy, AnnotationUnitsValues.PIXEL))
        labels.append(
            TextObject(
                text_value=label,
                units=AnnotationUnitsValues.PIXEL,
                anchor_point=(float(xy[0, 0]), max(0.0, float(xy[0, 1]) - 2)),
                anchor_point_visible=False,
            )
        )
    labels.append(
        TextObject(
            text_value=_NOTICE,
            units=AnnotationUnitsValues.PIXEL,
            anchor_point=(10.0, 20.0),
            anchor_point_visible=False,
        )
    )
    return boxes, labels


def build_gsps(
    report: AnalysisReport,
    *,
    anonymize: bool = False,
    source: Dataset | None = None,
    seed: str | None = None,
) -> GrayscaleSoftcopyPresentationState:
    """The presentation state marking the calcifications and findings of ``report``.

    ``report`` is built without ``anonymize`` (its source path leads to the image's
    DICOM header); ``anonymize`` de-identifies that header here under ``seed``
    (:func:`~calcscope.reports.dicom_source.deidentify`), references included.
    ``source`` is the header of the analysed image, by default :func:`source_dataset`.
    """
    ref = source if source is not None else source_dataset(report.source)
    if anonymize:
        ref = deidentify(ref, seed=seed)
    outlines = _outline_xys(report)
    boxes, labels = _boxes_and_labels(report)
    annotations = [
        GraphicAnnotation([ref], _FINDING_LAYER, graphic_objects=boxes or None, text_objects=labels)
    ]
    if outlines:  # highdicom builds the layer around the first outline (see below)
        _check_outlines(outlines, ref)
        first = GraphicObject(GraphicTypeValues.POLYLINE, outlines[0], AnnotationUnitsValues.PIXEL)
        annotations.insert(0, GraphicAnnotation([ref], _CALC_LAYER, graphic_objects=[first]))
    key = str(ref.SOPInstanceUID)
    gsps = GrayscaleSoftcopyPresentationState(
        referenced_images=[ref],
        series_instance_uid=derived_uid("calcscope-gsps-series", key, __version__),
        series_number=9002,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="calcscope",
        manufacturer_model_name="calcscope",
        software_versions=__version__,
        device_serial_number="none",
        content_label="CALCSCOPE",
        content_description="calcifications (research software, not a medical device)",
        graphic_layers=[_CALC_LAYER, _FINDING_LAYER],
        graphic_annotations=annotations,
        series_description="calcscope marks (research software, not a medical device)",
    )
    if outlines:  # the other outlines, built without highdicom's per-object work
        layer = gsps.GraphicAnnotationSequence[0]
        layer.GraphicObjectSequence = [first, *(_polyline(p) for p in outlines[1:])]
    # General Series Laterality (type 2C: the breast is a paired structure)
    gsps.Laterality = report.source.laterality or ""
    if anonymize:
        mark_deidentified(gsps, str(ref.DeidentificationMethod[0]))
    return gsps


def gsps_bytes(
    report: AnalysisReport, *, anonymize: bool = False, seed: str | None = None
) -> bytes:
    """The presentation state as a DICOM file's bytes."""
    gsps = build_gsps(report, anonymize=anonymize, seed=seed)
    return dataset_bytes(gsps, ["GraphicAnnotationSequence"])


def write_gsps(report: AnalysisReport, path: str | Path, *, anonymize: bool = False) -> Path:
    """Write the presentation state to ``path`` (atomically)."""
    from calcscope.files import write_atomic

    return write_atomic(path, gsps_bytes(report, anonymize=anonymize))
