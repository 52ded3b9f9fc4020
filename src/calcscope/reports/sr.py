"""DICOM Mammography CAD SR (PS3.16 TID 4000 family) of an analysis report
(:class:`calcscope.reports.schema.AnalysisReport`).

The document is a Mammography CAD SR Storage instance (SOP class
1.2.840.10008.5.1.4.1.1.88.50) built from :mod:`highdicom.sr` content items inside
highdicom's SR document machinery (highdicom ships no Mammography CAD templates and no
public class for this SOP class: its public ``EnhancedSR``, ``ComprehensiveSR`` and
``Comprehensive3DSR`` fix their own SOP class, so :class:`MammographyCADSR` subclasses
its private SR base ``_SR``, and pyproject.toml pins highdicom below the next minor
version for that reason).
It references the analysed image by its Study, Series and SOP Instance UIDs and inherits
the image's patient and study attributes (de-identified with ``anonymize``, references included).

Content tree (PS3.16 TID 4000, with PS3.17 Annex E as the worked example)::

    CONTAINER (111036, DCM, "Mammography CAD Report")                   TID 4000
     HAS CONCEPT MOD  Language of Content Item and Descendants         TID 1204
     CONTAINS CONTAINER Image Library (111028)                          TID 4020
       CONTAINS IMAGE  the analysed image
         HAS ACQ CONTEXT Image Laterality, Image View, Study Date,
                         Horizontal / Vertical Pixel Spacing (mm)
     CONTAINS CODE CAD Processing and Findings Summary (111017)        TID 4001
         = All algorithms succeeded; with / without findings           CID 6047
       HAS PROPERTIES TEXT Impression Description (image assessment, reason,
                           research-software notice)                   TID 4002
       HAS PROPERTIES CODE Assessment Category (BI-RADS, see below)
       HAS PROPERTIES CODE Recommended Follow-up                       CID 6028
       INFERRED FROM CONTAINER Individual Impression/Recommendation    TID 4003
         HAS CONCEPT MOD CODE Rendering Intent                         CID 6034
         CONTAINS CODE Single Image Finding = Calcification Cluster    TID 4006
           HAS CONCEPT MOD Rendering Intent
           HAS PROPERTIES TEXT Algorithm Name / Algorithm Version       TID 4019
           HAS PROPERTIES SCOORD Center (POINT), Outline (POLYLINE)     TID 4021
             SELECTED FROM IMAGE the analysed image
           HAS PROPERTIES NUM Certainty of Finding (%), Probability of cancer (%)
           HAS PROPERTIES CODE Calcification Type                      CID 6011
           HAS PROPERTIES CODE Calcification Distribution              CID 6012
           HAS PROPERTIES NUM Number of calcifications                 TID 4010
           HAS PROPERTIES CODE Assessment Category, Recommended Follow-up,
                          TEXT Impression Description (location and rule trace)
           INFERRED FROM CODE Single Image Finding = Individual Calcification
             (one per member; Rendering Intent, algorithm, Center, Outline,
              Certainty of Finding)                                     TID 4009
       ... one Individual Impression/Recommendation per benign macro finding
           (Individual Calcification findings with their Calcification Type and
           assessment), and one, "Presentation Optional", holding the remaining
           calcifications that belong to no finding.
     CONTAINS CODE Summary of Detections = Succeeded                   CID 6042
       INFERRED FROM CONTAINER Successful Detections                   TID 4015
         CONTAINS CODE Detection Performed = Individual Calcification /
                       Calcification Cluster (algorithm, image)        TID 4017
     CONTAINS CODE Summary of Analyses = Not Attempted                 CID 6042

Coordinates
    SCOORD graphic data are DICOM image coordinates ``(x=column, y=row)`` with the
    top-left corner of the image at (0, 0); the centre of pixel (r, c) is therefore
    (c + 0.5, r + 0.5) (PS3.3 C.18.6.1.1). The JSON report keeps ``[row, col]`` pixel
    indices; :func:`read_sr` converts back. Everything is taken from the report model,
    so centres carry the JSON's precision (0.01 pixel). Outlines are closed polylines (first point
    repeated last); a cluster's outline is the convex hull of its members' outlines.

Deviations from TID 4000 (known, documented here rather than hidden)
    * The BI-RADS assessment category is coded with a private scheme
      (``99CALCSCOPE``, values ``BIRADS-0`` ... ``BIRADS-5``) because the standard BI-RADS
      codes of CID 6026 are not in the code tables available to us; the category is
      also spelt out in the Impression Description text.
    * Per-finding assessment (category, follow-up, reason) is attached to each Single
      Image Finding with HAS PROPERTIES; the template rows were followed from the
      standard's structure and its Annex E examples, not machine-validated row by row
      (neither dcmtk nor dicom3tools checks TID 4000 content; both check the IOD and
      the relationship constraints of PS3.3 Table A.35.5-2).
    * Image references below SCOORDs and in Detection Performed are by value (an IMAGE
      item) rather than by reference to the Image Library entry.
    * Summary of Analyses is "Not Attempted": calcscope does no multi-view (composite
      feature) analysis.

Non-DICOM input
    When the analysed image was not a DICOM file (PNG, TIFF, array, phantom), the SR
    references a *synthetic* instance whose UIDs are derived from the pixel data (see
    :func:`source_dataset`); no file with those UIDs exists unless one is written.

Every document states that it comes from research software, not a medical device
(Impression Description, Series Description and Content Description-like text).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pydicom
from pydicom.dataset import Dataset
from pydicom.sr.coding import Code
from pydicom.uid import MammographyCADSRStorage

from calcscope.about import __version__
from calcscope.model import Laterality, View
from calcscope.reading.assess import Category, FollowUp
from calcscope.reports.dicom_source import (
    ANONYMOUS_NAME,
    DIGITAL_MAMMOGRAPHY_PRESENTATION,
    deidentify,
    derived_uid,
    description_text,
    laterality_code,
    outline_rc,
    pixel_centre_xy,
    source_dataset,
    view_code,
)
from calcscope.reports.schema import (
    AnalysisReport,
    AssessmentModel,
    CalcificationModel,
    ClusterModel,
    CodedConcept,
    MacroModel,
)
from calcscope.reports.sr_document import MammographyCADSR, cad_sr_document, document_bytes
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

__all__ = [
    "MAMMOGRAPHY_CAD_SR_STORAGE",
    "DIGITAL_MAMMOGRAPHY_PRESENTATION",
    "ANONYMOUS_NAME",
    "MammographyCADSR",
    "SRFinding",
    "SRContent",
    "build_sr",
    "sr_bytes",
    "write_sr",
    "read_sr",
    "source_dataset",
    "deidentify",
    "derived_uid",
    "pixel_centre_xy",
    "outline_rc",
]

MAMMOGRAPHY_CAD_SR_STORAGE = MammographyCADSRStorage

# --- codes ------------------------------------------------------------------------------


def _dcm(value: str, meaning: str) -> Code:
    return Code(value, "DCM", meaning)


def _sct(value: str, meaning: str) -> Code:
    return Code(value, "SCT", meaning)


MAMMOGRAPHY_CAD_REPORT = _dcm("111036", "Mammography CAD Report")
LANGUAGE = _dcm("121049", "Language of Content Item and Descendants")
ENGLISH = Code("en-US", "RFC5646", "English (United States)")
IMAGE_LIBRARY = _dcm("111028", "Image Library")
IMAGE_LATERALITY = _dcm("111027", "Image Laterality")
IMAGE_VIEW = _dcm("111031", "Image View")
STUDY_DATE = _dcm("111060", "Study Date")
HORIZONTAL_PIXEL_SPACING = _dcm("111026", "Horizontal Pixel Spacing")
VERTICAL_PIXEL_SPACING = _dcm("111066", "Vertical Pixel Spacing")
CAD_SUMMARY = _dcm("111017", "CAD Processing and Findings Summary")
WITH_FINDINGS = _dcm("111242", "All algorithms succeeded; with findings")
WITHOUT_FINDINGS = _dcm("111241", "All algorithms succeeded; without findings")
INDIVIDUAL_IMPRESSION = _dcm("111034", "Individual Impression/Recommendation")
RENDERING_INTENT = _dcm("111056", "Rendering Intent")
PRESENTATION_REQUIRED = _dcm(
    "111150", "Presentation Required: Rendering device is expected to present"
)
PRESENTATION_OPTIONAL = _dcm("111151", "Presentation Optional: Rendering device may present")
SINGLE_IMAGE_FINDING = _dcm("111059", "Single Image Finding")
CALCIFICATION_CLUSTER = _sct("129769006", "Calcification Cluster")
INDIVIDUAL_CALCIFICATION = _sct("129770007", "Individual Calcification")
ALGORITHM_NAME = _dcm("111001", "Algorithm Name")
ALGORITHM_VERSION = _dcm("111003", "Algorithm Version")
CENTER = _dcm("111010", "Center")
OUTLINE = _dcm("111041", "Outline")
CERTAINTY_OF_FINDING = _dcm("111012", "Certainty of Finding")
PROBABILITY_OF_CANCER = _dcm("111047", "Probability of cancer")
CALCIFICATION_TYPE = _dcm("111009", "Calcification Type")
CALCIFICATION_DISTRIBUTION = _dcm("111008", "Calcification Distribution")
NUMBER_OF_CALCIFICATIONS = _dcm("111038", "Number of calcifications")
ASSESSMENT_CATEGORY = _dcm("111005", "Assessment Category")
RECOMMENDED_FOLLOW_UP = _dcm("111053", "Recommended Follow-up")
IMPRESSION_DESCRIPTION = _dcm("111033", "Impression Description")
SUMMARY_OF_DETECTIONS = _dcm("111064", "Summary of Detections")
SUMMARY_OF_ANALYSES = _dcm("111065", "Summary of Analyses")
SUCCEEDED = _dcm("111222", "Succeeded")
NOT_ATTEMPTED = _dcm("111225", "Not Attempted")
SUCCESSFUL_DETECTIONS = _dcm("111063", "Successful Detections")
DETECTION_PERFORMED = _dcm("111022", "Detection Performed")
PERCENT = Code("%", "UCUM", "percent")
NO_UNITS = Code("1", "UCUM", "no units")
MILLIMETRE = Code("mm", "UCUM", "millimeter")

#: Private coding scheme of the BI-RADS categories (see the module docstring).
PRIVATE_SCHEME = "99CALCSCOPE"

#: Recommended follow-up (CID 6028 "Mammography Recommended Follow-up").
FOLLOW_UP_CODE: dict[FollowUp, Code] = {
    FollowUp.ROUTINE: _dcm("111140", "Normal interval follow-up"),
    FollowUp.SHORT_INTERVAL: _dcm("111142", "Follow-up at short interval (1-11 months)"),
    FollowUp.ADDITIONAL_IMAGING: _dcm("111136", "Spot magnification view(s)"),
    FollowUp.BIOPSY: _dcm("111143", "Biopsy should be considered"),
}


def category_code(category: Category) -> Code:
    """The (private) code of a BI-RADS category."""
    return Code(
        f"BIRADS-{category.value}",
        PRIVATE_SCHEME,
        f"BI-RADS {category.value}: {category.label}"[:64],
    )


_R = Rel
_ALGORITHM = "calcscope"


# --- content items ----------------------------------------------------------------------
# (built by :mod:`calcscope.reports.sr_items` as pydicom datasets in highdicom's structure)

_with = with_children


def _image_ref(ref: Dataset, rel: Rel | None) -> Dataset:
    return image_item(ref.SOPClassUID, ref.SOPInstanceUID, rel)


def _scoord(name: Code, graphic_type: str, xy: np.ndarray, ref: Dataset) -> Dataset:
    item = scoord_item(name, graphic_type, xy, _R.HAS_PROPERTIES)
    return _with(item, [_image_ref(ref, _R.SELECTED_FROM)])


def _text(name: Code, value: str, rel: Rel = _R.HAS_PROPERTIES) -> Dataset:
    return text_item(name, value, rel)


def _code(name: Code, value: Code, rel: Rel = _R.HAS_PROPERTIES) -> Dataset:
    return code_item(name, value, rel)


def _num(name: Code, value: float, unit: Code) -> Dataset:
    return num_item(name, value, unit, _R.HAS_PROPERTIES)


def _algorithm() -> list[Dataset]:
    """TID 4019 Algorithm Identification."""
    return [_text(ALGORITHM_NAME, _ALGORITHM), _text(ALGORITHM_VERSION, __version__)]


def _closed(xy: np.ndarray) -> np.ndarray:
    if len(xy) and not np.array_equal(xy[0], xy[-1]):
        xy = np.vstack([xy, xy[:1]])
    return xy


def _coded(c: CodedConcept) -> Code:
    return Code(c.value, c.scheme, c.meaning)


def _hull_rc(calcs: Sequence[CalcificationModel]) -> npt.NDArray[np.float64]:
    pts = np.vstack([outline_rc(c) for c in calcs]).astype(np.float32)
    hull = cv2.convexHull(pts[:, ::-1].copy()).reshape(-1, 2)  # (x, y)
    if len(hull) < 3:
        r = pts[:, 0]
        c = pts[:, 1]
        return np.array(
            [[r.min(), c.min()], [r.min(), c.max()], [r.max(), c.max()], [r.max(), c.min()]]
        )
    return hull[:, ::-1].astype(np.float64)


def _geometry(center_rc: Sequence[float], outline: np.ndarray, ref: Dataset) -> list[Dataset]:
    """TID 4021 Mammography CAD Geometry: Center (POINT) and Outline (POLYLINE)."""
    return [
        _scoord(CENTER, "POINT", pixel_centre_xy((center_rc[0], center_rc[1])), ref),
        _scoord(OUTLINE, "POLYLINE", _closed(pixel_centre_xy(outline)), ref),
    ]


def _assessment_items(a: AssessmentModel, where: str | None = None) -> list[Dataset]:
    category = Category(a.category)
    return [
        _code(ASSESSMENT_CATEGORY, category_code(category)),
        _code(RECOMMENDED_FOLLOW_UP, FOLLOW_UP_CODE[FollowUp(a.follow_up)]),
        _text(
            IMPRESSION_DESCRIPTION,
            f"BI-RADS {category.value} ({category.label}); {FollowUp(a.follow_up).label}. "
            + (f"Where: {where}. " if where else "")
            + f"Why: {a.reason}",
        ),
    ]


def _intent(required: bool) -> Dataset:
    return _code(
        RENDERING_INTENT,
        PRESENTATION_REQUIRED if required else PRESENTATION_OPTIONAL,
        _R.HAS_CONCEPT_MOD,
    )


def _calc_finding(
    c: CalcificationModel,
    ref: Dataset,
    rel: Rel,
    *,
    required: bool,
    calc_type: Code | None = None,
    assessment: AssessmentModel | None = None,
    where: str | None = None,
) -> Dataset:
    """TID 4006 Single Image Finding = Individual Calcification (TID 4009)."""
    item = _code(SINGLE_IMAGE_FINDING, INDIVIDUAL_CALCIFICATION, rel)
    kids = [_intent(required), *_algorithm(), *_geometry(c.center_rc, outline_rc(c), ref)]
    kids.append(_num(CERTAINTY_OF_FINDING, round(100 * c.score, 2), PERCENT))
    if calc_type is not None:
        kids.append(_code(CALCIFICATION_TYPE, calc_type))
    if assessment is not None:
        kids.append(_num(PROBABILITY_OF_CANCER, round(100 * assessment.likelihood, 2), PERCENT))
        kids += _assessment_items(assessment, where)
    return _with(item, kids)


def _impression(required: bool, findings: list[Dataset]) -> Dataset:
    """TID 4003 Individual Impression/Recommendation."""
    box = container_item(INDIVIDUAL_IMPRESSION, _R.INFERRED_FROM)
    return _with(box, [_intent(required), *findings])


def _image_library(report: AnalysisReport, ref: Dataset) -> Dataset:
    """TID 4020 CAD Image Library Entry for the analysed image."""
    src = report.source
    image = _image_ref(ref, _R.CONTAINS)
    ctx: list[Dataset] = []
    lat = laterality_code(Laterality(src.laterality) if src.laterality else None)
    if lat is not None:
        ctx.append(_code(IMAGE_LATERALITY, _sct(*lat), _R.HAS_ACQ_CONTEXT))
    view = view_code(View(src.view) if src.view else None)
    if view is not None:
        ctx.append(_code(IMAGE_VIEW, _sct(*view), _R.HAS_ACQ_CONTEXT))
    study_date = str(ref.get("StudyDate", "") or "")
    if len(study_date) == 8 and study_date.isdigit():
        ctx.append(date_item(STUDY_DATE, study_date, _R.HAS_ACQ_CONTEXT))
    for name, v in (
        (HORIZONTAL_PIXEL_SPACING, src.spacing_mm[1]),
        (VERTICAL_PIXEL_SPACING, src.spacing_mm[0]),
    ):
        ctx.append(num_item(name, float(v), MILLIMETRE, _R.HAS_ACQ_CONTEXT))
    library = container_item(IMAGE_LIBRARY, _R.CONTAINS)
    return _with(library, [_with(image, ctx)])


def _detections(ref: Dataset, with_clusters: bool) -> list[Dataset]:
    performed = [INDIVIDUAL_CALCIFICATION] + ([CALCIFICATION_CLUSTER] if with_clusters else [])
    box = container_item(SUCCESSFUL_DETECTIONS, _R.INFERRED_FROM)
    items = [
        _with(
            _code(DETECTION_PERFORMED, kind, _R.CONTAINS),
            [*_algorithm(), _image_ref(ref, _R.HAS_PROPERTIES)],
        )
        for kind in performed
    ]
    return [
        _with(_code(SUMMARY_OF_DETECTIONS, SUCCEEDED, _R.CONTAINS), [_with(box, items)]),
        _code(SUMMARY_OF_ANALYSES, NOT_ATTEMPTED, _R.CONTAINS),
    ]


def _cluster_impression(
    f: ClusterModel, members: Sequence[CalcificationModel], ref: Dataset
) -> Dataset:
    """TID 4003 holding one Calcification Cluster finding and its members."""
    required = Category(f.assessment.category).rank >= Category.C3.rank
    return _impression(required, [_cluster_finding(f, members, ref, _R.CONTAINS)])


def _cluster_finding(
    f: ClusterModel,
    members: Sequence[CalcificationModel],
    ref: Dataset,
    rel: Rel,
) -> Dataset:
    """TID 4006 Single Image Finding = Calcification Cluster with its members (TID 4009)."""
    a = f.assessment
    required = Category(a.category).rank >= Category.C3.rank
    item = _code(SINGLE_IMAGE_FINDING, CALCIFICATION_CLUSTER, rel)
    kids = [
        _intent(required),
        *_algorithm(),
        *_geometry(f.center_rc, _hull_rc(members), ref),
        _num(CERTAINTY_OF_FINDING, round(100 * f.score, 2), PERCENT),
        _num(PROBABILITY_OF_CANCER, round(100 * a.likelihood, 2), PERCENT),
        _code(CALCIFICATION_TYPE, _coded(f.morphology_code)),
        _code(CALCIFICATION_DISTRIBUTION, _coded(f.distribution_code)),
        _num(NUMBER_OF_CALCIFICATIONS, len(members), NO_UNITS),
        *_assessment_items(a, f.location.text if f.location else None),
    ]
    kids += [_calc_finding(c, ref, _R.INFERRED_FROM, required=False) for c in members]
    return _with(item, kids)


def _macro_impression(
    m: MacroModel, members: Sequence[CalcificationModel], ref: Dataset
) -> Dataset:
    """TID 4003 holding the Individual Calcifications of one benign macro finding."""
    findings = [
        _calc_finding(
            c,
            ref,
            _R.CONTAINS,
            required=False,
            calc_type=_coded(m.pattern_code),
            assessment=m.assessment,
            where=m.location.text if m.location else None,
        )
        for c in members
    ]
    return _impression(False, findings)


def _impressions(report: AnalysisReport, ref: Dataset) -> list[Dataset]:
    """One Individual Impression/Recommendation per finding, then one (optional) with
    the reported calcifications that belong to no finding."""
    by_id = {c.id: c for c in report.calcifications}
    impressions: list[Dataset] = []
    used: set[int] = set()
    for f in report.clusters:
        members = [by_id[i] for i in f.member_ids if i in by_id]
        used.update(c.id for c in members)
        impressions.append(_cluster_impression(f, members, ref))
    for m in report.macro_findings:
        members = [by_id[i] for i in m.member_ids if i in by_id]
        used.update(c.id for c in members)
        impressions.append(_macro_impression(m, members, ref))
    rest = [c for c in report.reported_calcifications() if c.id not in used]
    if rest:
        impressions.append(
            _impression(False, [_calc_finding(c, ref, _R.CONTAINS, required=False) for c in rest])
        )
    return impressions


def _content(report: AnalysisReport, ref: Dataset) -> Dataset:
    overall = report.assessment
    category, follow_up = Category(overall.category), FollowUp(overall.follow_up)
    summary = _code(
        CAD_SUMMARY,
        WITH_FINDINGS if report.reported_calcifications() else WITHOUT_FINDINGS,
        _R.CONTAINS,
    )
    summary_kids = [
        _text(
            IMPRESSION_DESCRIPTION,
            f"Image: BI-RADS {category.value} ({category.label}); "
            f"{follow_up.label}. {len(report.clusters)} cluster(s), "
            f"{len(report.macro_findings)} benign macro finding(s), "
            f"{report.n_calcifications} calcification(s). {description_text()}",
        ),
        _code(ASSESSMENT_CATEGORY, category_code(category)),
        _code(RECOMMENDED_FOLLOW_UP, FOLLOW_UP_CODE[follow_up]),
        *_impressions(report, ref),
    ]
    root = container_item(MAMMOGRAPHY_CAD_REPORT, None, template_id="4000")
    return _with(
        root,
        [
            _code(LANGUAGE, ENGLISH, _R.HAS_CONCEPT_MOD),
            _image_library(report, ref),
            _with(summary, summary_kids),
            *_detections(ref, bool(report.clusters)),
        ],
    )


def build_sr(
    report: AnalysisReport,
    *,
    anonymize: bool = False,
    source: Dataset | None = None,
    seed: str | None = None,
) -> MammographyCADSR:
    """The Mammography CAD SR of ``report`` (see the module docstring).

    Parameters
    ----------
    report
        The analysis report to export; built without ``anonymize`` so that its source
        path leads to the image's DICOM header.
    anonymize
        De-identify the image's header before it is copied and referenced
        (:func:`deidentify`: PS3.15 Basic Profile, UIDs replaced) and mark the SR so.
    source
        Header of the analysed image; by default :func:`source_dataset` of
        ``report.source``.
    seed
        The de-identification's seed
        (:class:`~calcscope.reports.dicom_source.Deidentifier`); ``None``: this process's.
    """
    ref = source if source is not None else source_dataset(report.source)
    if anonymize:
        ref = deidentify(ref, seed=seed)
    key = str(ref.SOPInstanceUID)
    content = _content(report, ref)
    return cad_sr_document(
        [ref],
        content,
        series_uid=derived_uid("calcscope-sr-series", key, __version__),
        series_number=9001,
        description="calcscope CAD SR (research software, not a medical device)",
        deidentified_by=str(ref.DeidentificationMethod[0]) if anonymize else None,
    )


def sr_bytes(report: AnalysisReport, *, anonymize: bool = False, seed: str | None = None) -> bytes:
    """The Mammography CAD SR as a DICOM file's bytes (:func:`document_bytes`)."""
    return document_bytes(build_sr(report, anonymize=anonymize, seed=seed))


def write_sr(report: AnalysisReport, path: str | Path, *, anonymize: bool = False) -> Path:
    """Write the Mammography CAD SR to ``path`` (atomically)."""
    from calcscope.files import write_atomic

    return write_atomic(path, sr_bytes(report, anonymize=anonymize))


# --- reading back -----------------------------------------------------------------------


@dataclass(frozen=True)
class SRFinding:
    """One Single Image Finding read from a Mammography CAD SR."""

    kind: str  # "cluster" or "calcification"
    center_rc: tuple[float, float]
    outline_rc: np.ndarray
    calcification_type: tuple[str, str] | None  # (value, scheme)
    distribution: tuple[str, str] | None
    n_calcifications: int | None
    category: str | None
    follow_up: tuple[str, str] | None
    members: tuple[SRFinding, ...]
    referenced_sop_instance_uids: tuple[str, ...]


@dataclass(frozen=True)
class SRContent:
    """What :func:`read_sr` finds in a Mammography CAD SR."""

    sop_class_uid: str
    study_instance_uid: str
    referenced_sop_instance_uids: tuple[str, ...]
    category: str | None
    findings: tuple[SRFinding, ...]

    @property
    def clusters(self) -> tuple[SRFinding, ...]:
        return tuple(f for f in self.findings if f.kind == "cluster")

    @property
    def calcifications(self) -> tuple[SRFinding, ...]:
        """Every Individual Calcification, those inside clusters included."""
        out: list[SRFinding] = []
        for f in self.findings:
            out += [f] if f.kind == "calcification" else list(f.members)
        return tuple(out)


def _name(item: Dataset) -> tuple[str, str] | None:
    seq = item.get("ConceptNameCodeSequence")
    return (seq[0].CodeValue, seq[0].CodingSchemeDesignator) if seq else None


def _value_code(item: Dataset) -> tuple[str, str]:
    c = item.ConceptCodeSequence[0]
    return (c.CodeValue, c.CodingSchemeDesignator)


def _key(code: Code) -> tuple[str, str]:
    return (code.value, code.scheme_designator)


def _read_finding(item: Dataset) -> SRFinding:
    kind = "cluster" if _value_code(item) == _key(CALCIFICATION_CLUSTER) else "calcification"
    center = (float("nan"), float("nan"))
    outline = np.zeros((0, 2))
    ctype = dist = follow = None
    n = None
    cat = None
    members: list[SRFinding] = []
    refs: list[str] = []
    for child in item.get("ContentSequence", []):
        name = _name(child)
        if name == _key(SINGLE_IMAGE_FINDING):
            members.append(_read_finding(child))
        elif name in (_key(CENTER), _key(OUTLINE)):
            xy = np.asarray(child.GraphicData, dtype=np.float64).reshape(-1, 2)
            rc = np.stack([xy[:, 1] - 0.5, xy[:, 0] - 0.5], axis=1)
            if name == _key(CENTER):
                center = (float(rc[0, 0]), float(rc[0, 1]))
            else:
                outline = rc
            refs += [
                str(g.ReferencedSOPSequence[0].ReferencedSOPInstanceUID)
                for g in child.get("ContentSequence", [])
                if g.ValueType == "IMAGE"
            ]
        elif name == _key(CALCIFICATION_TYPE):
            ctype = _value_code(child)
        elif name == _key(CALCIFICATION_DISTRIBUTION):
            dist = _value_code(child)
        elif name == _key(NUMBER_OF_CALCIFICATIONS):
            n = int(float(child.MeasuredValueSequence[0].NumericValue))
        elif name == _key(ASSESSMENT_CATEGORY):
            cat = _value_code(child)[0].removeprefix("BIRADS-")
        elif name == _key(RECOMMENDED_FOLLOW_UP):
            follow = _value_code(child)
    return SRFinding(
        kind=kind,
        center_rc=center,
        outline_rc=outline,
        calcification_type=ctype,
        distribution=dist,
        n_calcifications=n,
        category=cat,
        follow_up=follow,
        members=tuple(members),
        referenced_sop_instance_uids=tuple(dict.fromkeys(refs)),
    )


def read_sr(sr: str | Path | Dataset) -> SRContent:
    """Read the findings of a Mammography CAD SR written by :func:`write_sr`.

    Coordinates come back as ``(row, col)`` pixel indices, as in the JSON report.
    """
    ds = sr if isinstance(sr, Dataset) else pydicom.dcmread(sr)
    findings: list[SRFinding] = []
    category = None
    refs: list[str] = []
    for top in ds.get("ContentSequence", []):
        if _name(top) == _key(IMAGE_LIBRARY):
            refs += [
                str(i.ReferencedSOPSequence[0].ReferencedSOPInstanceUID)
                for i in top.get("ContentSequence", [])
                if i.ValueType == "IMAGE"
            ]
        if _name(top) != _key(CAD_SUMMARY):
            continue
        for child in top.get("ContentSequence", []):
            if _name(child) == _key(ASSESSMENT_CATEGORY):
                category = _value_code(child)[0].removeprefix("BIRADS-")
            if _name(child) == _key(INDIVIDUAL_IMPRESSION):
                findings += [
                    _read_finding(f)
                    for f in child.get("ContentSequence", [])
                    if _name(f) == _key(SINGLE_IMAGE_FINDING)
                ]
    return SRContent(
        sop_class_uid=str(ds.SOPClassUID),
        study_instance_uid=str(ds.StudyInstanceUID),
        referenced_sop_instance_uids=tuple(refs),
        category=category,
        findings=tuple(findings),
    )
