"""One DICOM Mammography CAD SR per exam (PS3.16 TID 4000 family), built from the exam
report (:class:`calcscope.reports.exam.ExamReport`) and the image reports it references
(:class:`calcscope.reports.schema.AnalysisReport`).

The document belongs to the exam's study and references every image of the exam (its
Current Requested Procedure Evidence and its Image Library). It reuses the per-image SR's
content items (:mod:`calcscope.reports.sr`); what differs is the Findings Summary, which
holds one Individual Impression/Recommendation per exam finding::

    CONTAINER Mammography CAD Report (111036)                             TID 4000
     HAS CONCEPT MOD Language
     CONTAINS CONTAINER Image Library: one IMAGE entry per image of the exam (TID 4020)
     CONTAINS CODE CAD Processing and Findings Summary                    TID 4001
       HAS PROPERTIES TEXT Impression Description (exam and each breast), CODE Assessment
                      Category, Recommended Follow-up (the exam's), CODE Comparison with
                      Prior Study Done (the prior's Study Instance UID and date, the prior
                      findings resolved per breast; compared exams only)
       INFERRED FROM CONTAINER Individual Impression/Recommendation       TID 4003
         (one per exam finding)
         CONTAINS CODE Composite Feature (111015) = Calcification Cluster  TID 4004
                       (or Individual Calcification for a benign macro finding)
           HAS CONCEPT MOD Rendering Intent; HAS PROPERTIES Algorithm, Composite type =
           "Target content items are related spatially", Certainty of Finding (the exam
           finding's score, higher on two views), Probability of cancer, Calcification
           Type, Distribution, Assessment Category, Recommended Follow-up, Impression
           Description (breast, quadrant, clock, distance from the nipple, views)
           HAS PROPERTIES its change since the prior exam: CODE Finding of change since
                         previous mammogram (CID 6002), NUM differences, TEXT Description
                         of Change (:mod:`calcscope.reports.exam_sr_change`)
           INFERRED FROM CODE Single Image Finding on each view it is seen on (TID 4006,
                         as in the image's SR: Center and Outline on that image)
     CONTAINS CODE Summary of Detections = Succeeded (each image)          TID 4015
     CONTAINS CODE Summary of Analyses = Succeeded                         TID 4016
       INFERRED FROM CONTAINER Successful Analyses
         CONTAINS CODE Analysis Performed = Individual Impression/Recommendation Analysis

Deviations from TID 4000 are those of :mod:`calcscope.reports.sr` (private BI-RADS codes;
image references by value). The exam's images must belong to one study: images grouped
by a manifest that come from several studies (or non-DICOM images, each given a synthetic
study) are referenced all the same, and the SR takes the first image's study.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydicom.dataset import Dataset
from pydicom.sr.coding import Code

from calcscope.about import __version__
from calcscope.reading.assess import Category, FollowUp
from calcscope.reports.dicom_source import (
    Deidentifier,
    derived_uid,
    description_text,
)
from calcscope.reports.exam import ExamAssessmentModel, ExamFindingModel, ExamReport
from calcscope.reports.exam_sr_change import comparison_items, finding_change_items
from calcscope.reports.schema import AnalysisReport
from calcscope.reports.sr import (
    _R,
    ASSESSMENT_CATEGORY,
    CAD_SUMMARY,
    CALCIFICATION_CLUSTER,
    CALCIFICATION_DISTRIBUTION,
    CALCIFICATION_TYPE,
    CERTAINTY_OF_FINDING,
    DETECTION_PERFORMED,
    ENGLISH,
    FOLLOW_UP_CODE,
    IMAGE_LIBRARY,
    IMPRESSION_DESCRIPTION,
    INDIVIDUAL_CALCIFICATION,
    LANGUAGE,
    MAMMOGRAPHY_CAD_REPORT,
    PERCENT,
    PROBABILITY_OF_CANCER,
    RECOMMENDED_FOLLOW_UP,
    SUCCEEDED,
    SUCCESSFUL_DETECTIONS,
    SUMMARY_OF_ANALYSES,
    SUMMARY_OF_DETECTIONS,
    WITH_FINDINGS,
    WITHOUT_FINDINGS,
    _algorithm,
    _calc_finding,
    _cluster_finding,
    _code,
    _coded,
    _image_library,
    _image_ref,
    _impression,
    _intent,
    _num,
    _text,
    _with,
    category_code,
    source_dataset,
)
from calcscope.reports.sr_document import MammographyCADSR, cad_sr_document, document_bytes
from calcscope.reports.sr_items import container_item

__all__ = ["ExamImageInput", "build_exam_sr", "exam_sr_bytes"]

COMPOSITE_FEATURE = Code("111015", "DCM", "Composite Feature")
COMPOSITE_TYPE = Code("111016", "DCM", "Composite type")
RELATED_SPATIALLY = Code("111154", "DCM", "Target content items are related spatially")
SUCCESSFUL_ANALYSES = Code("111062", "DCM", "Successful Analyses")
ANALYSIS_PERFORMED = Code("111004", "DCM", "Analysis Performed")
IMPRESSION_ANALYSIS = Code("111233", "DCM", "Individual Impression/Recommendation Analysis")

#: One image of the exam: its report (as the exam document names it, ``image_report``)
#: and the header of the analysed file (``None``: :func:`source_dataset` of the report).
ExamImageInput = tuple[AnalysisReport, Dataset | None]

_SIDE = {"L": "left", "R": "right"}


def _assessment_items(a: ExamAssessmentModel, where: str | None) -> list[Dataset]:
    category = Category(a.category)
    follow_up = FollowUp(a.follow_up)
    return [
        _code(ASSESSMENT_CATEGORY, category_code(category)),
        _code(RECOMMENDED_FOLLOW_UP, FOLLOW_UP_CODE[follow_up]),
        _text(
            IMPRESSION_DESCRIPTION,
            f"BI-RADS {category.value} ({category.label}); {follow_up.label}. "
            + (f"Where: {where}. " if where else "")
            + f"Why: {a.reason}",
        ),
    ]


def finding_where(f: ExamFindingModel, side: str | None) -> str:
    """Where an exam finding lies, in words: breast, quadrant, clock, distance, views."""
    parts = [f"{_SIDE[side]} breast" if side in _SIDE else "breast of unknown side"]
    parts += [p for p in (f.quadrant, f.clock) if p]
    if f.distance_from_nipple_mm is not None:
        parts.append(f"{f.distance_from_nipple_mm:.0f} mm from the nipple")
    if f.depth:
        parts.append(f"{f.depth} third")
    views = " and ".join(v.view or role for role, v in f.views.items())
    parts.append(f"seen on {views}" if views else "")
    return ", ".join(p for p in parts if p)


def _view_findings(
    f: ExamFindingModel, images: Mapping[str, AnalysisReport], refs: Mapping[str, Dataset]
) -> list[Dataset]:
    """The finding's Single Image Finding(s) on each view it is seen on."""
    items: list[Dataset] = []
    for link in f.views.values():
        report, ref = images[link.image_report], refs[link.image_report]
        by_id = {c.id: c for c in report.calcifications}
        if f.kind == "cluster":
            cluster = next(c for c in report.clusters if c.id == link.finding_id)
            members = [by_id[i] for i in cluster.member_ids if i in by_id]
            items.append(_cluster_finding(cluster, members, ref, _R.INFERRED_FROM))
            continue
        macro = next(m for m in report.macro_findings if m.id == link.finding_id)
        items += [
            _calc_finding(
                by_id[i],
                ref,
                _R.INFERRED_FROM,
                required=False,
                calc_type=_coded(macro.pattern_code),
            )
            for i in macro.member_ids
            if i in by_id
        ]
    return items


def _type_items(f: ExamFindingModel, images: Mapping[str, AnalysisReport]) -> list[Dataset]:
    """Calcification Type (and Distribution) of the finding, from its first view."""
    link = next(iter(f.views.values()), None)
    if link is None:
        return []
    report = images[link.image_report]
    if f.kind == "cluster":
        c = next(c for c in report.clusters if c.id == link.finding_id)
        return [
            _code(CALCIFICATION_TYPE, _coded(c.morphology_code)),
            _code(CALCIFICATION_DISTRIBUTION, _coded(c.distribution_code)),
        ]
    m = next(m for m in report.macro_findings if m.id == link.finding_id)
    return [_code(CALCIFICATION_TYPE, _coded(m.pattern_code))]


def _finding_impression(
    f: ExamFindingModel,
    side: str | None,
    images: Mapping[str, AnalysisReport],
    refs: Mapping[str, Dataset],
    prior_date: str | None = None,
) -> Dataset:
    """TID 4003 holding one exam finding as a Composite Feature (TID 4004), with its change
    since the prior exam (:mod:`calcscope.reports.exam_sr_change`)."""
    a = f.assessment
    required = Category(a.category).rank >= Category.C3.rank
    value = CALCIFICATION_CLUSTER if f.kind == "cluster" else INDIVIDUAL_CALCIFICATION
    item = _code(COMPOSITE_FEATURE, value, _R.CONTAINS)
    kids = [
        _intent(required),
        *_algorithm(),
        _code(COMPOSITE_TYPE, RELATED_SPATIALLY),
        _num(CERTAINTY_OF_FINDING, round(100 * f.score, 2), PERCENT),
        _num(PROBABILITY_OF_CANCER, round(100 * a.likelihood, 2), PERCENT),
        *_type_items(f, images),
        *_assessment_items(a, finding_where(f, side)),
        *finding_change_items(f, prior_date),
        *_view_findings(f, images, refs),
    ]
    return _impression(required, [_with(item, kids)])


def _summary_text(exam: ExamReport) -> str:
    a = exam.assessment
    parts = [f"Exam: BI-RADS {a.category} ({a.category_label}); {a.follow_up_label}."]
    for side in ("R", "L"):
        b = exam.breasts[side]
        if b.assessment is None:
            parts.append(f"{_SIDE[side].capitalize()} breast: not imaged.")
            continue
        parts.append(
            f"{_SIDE[side].capitalize()} breast: BI-RADS {b.assessment.category}, "
            f"{len(b.findings)} finding(s)."
        )
    return " ".join([*parts, description_text()])


def _summaries(refs: Sequence[Dataset], with_clusters: bool) -> list[Dataset]:
    """Summary of Detections (every image) and of Analyses (the exam reading)."""
    images = [_image_ref(ref, _R.HAS_PROPERTIES) for ref in refs]
    performed = [INDIVIDUAL_CALCIFICATION] + ([CALCIFICATION_CLUSTER] if with_clusters else [])
    detections = [
        _with(_code(DETECTION_PERFORMED, kind, _R.CONTAINS), [*_algorithm(), *images])
        for kind in performed
    ]
    analysis = _with(
        _code(ANALYSIS_PERFORMED, IMPRESSION_ANALYSIS, _R.CONTAINS),
        [*_algorithm(), *[_image_ref(ref, _R.HAS_PROPERTIES) for ref in refs]],
    )

    def box(name: Code, items: list[Dataset]) -> Dataset:
        c = container_item(name, _R.INFERRED_FROM)
        return _with(c, items)

    return [
        _with(
            _code(SUMMARY_OF_DETECTIONS, SUCCEEDED, _R.CONTAINS),
            [box(SUCCESSFUL_DETECTIONS, detections)],
        ),
        _with(
            _code(SUMMARY_OF_ANALYSES, SUCCEEDED, _R.CONTAINS),
            [box(SUCCESSFUL_ANALYSES, [analysis])],
        ),
    ]


def _content(
    exam: ExamReport, images: Mapping[str, AnalysisReport], refs: Mapping[str, Dataset]
) -> Dataset:
    keys = [img.report for img in exam.images]
    entries = [_image_library(images[k], refs[k]).ContentSequence[0] for k in keys]
    library = container_item(IMAGE_LIBRARY, _R.CONTAINS)
    sided: list[tuple[str | None, ExamFindingModel]] = [
        (side, f) for side in ("R", "L") for f in exam.breasts[side].findings
    ]
    sided += [(None, f) for f in exam.findings_unknown_side]
    a = exam.assessment
    prior_date = exam.comparison.prior_study_date if exam.comparison else None
    summary = _code(CAD_SUMMARY, WITH_FINDINGS if sided else WITHOUT_FINDINGS, _R.CONTAINS)
    summary_kids = [
        _text(IMPRESSION_DESCRIPTION, _summary_text(exam)),
        _code(ASSESSMENT_CATEGORY, category_code(Category(a.category))),
        _code(RECOMMENDED_FOLLOW_UP, FOLLOW_UP_CODE[FollowUp(a.follow_up)]),
        *comparison_items(exam),
        *[_finding_impression(f, side, images, refs, prior_date) for side, f in sided],
    ]
    root = container_item(MAMMOGRAPHY_CAD_REPORT, None, template_id="4000")
    has_clusters = any(f.kind == "cluster" for _, f in sided) or any(
        images[k].clusters for k in keys
    )
    return _with(
        root,
        [
            _code(LANGUAGE, ENGLISH, _R.HAS_CONCEPT_MOD),
            _with(library, entries),
            _with(summary, summary_kids),
            *_summaries([refs[k] for k in keys], has_clusters),
        ],
    )


def build_exam_sr(
    exam: ExamReport,
    images: Mapping[str, ExamImageInput],
    *,
    anonymize: bool = False,
    seed: str | None = None,
) -> MammographyCADSR:
    """The Mammography CAD SR of one exam (see the module docstring).

    Parameters
    ----------
    exam
        The exam report.
    images
        Each image of the exam by the name the exam gives its report
        (``ExamImageModel.report``): its report and the header of the analysed file
        (``None``: re-read from the report's source path, or a synthetic one).
    anonymize
        De-identify every image header (one :class:`Deidentifier` under ``seed`` for the
        whole exam, so the images keep one study) and mark the SR so.
    seed
        The de-identification's seed; ``None``: this process's (as the image outputs).
    """
    deid = Deidentifier(seed) if anonymize else None
    reports = {k: report for k, (report, _) in images.items()}
    refs: dict[str, Dataset] = {}
    for key, (report, header) in images.items():
        ref = header if header is not None else source_dataset(report.source)
        refs[key] = deid.dataset(ref) if deid is not None else ref
    ordered = [refs[img.report] for img in exam.images]
    content = _content(exam, reports, refs)
    first = ordered[0]
    return cad_sr_document(
        ordered,
        content,
        series_uid=derived_uid(
            "calcscope-exam-sr-series", str(first.StudyInstanceUID), __version__
        ),
        series_number=9002,
        description="calcscope exam CAD SR (research software, not a medical device)",
        deidentified_by=str(first.DeidentificationMethod[0]) if anonymize else None,
    )


def exam_sr_bytes(
    exam: ExamReport,
    images: Mapping[str, ExamImageInput],
    *,
    anonymize: bool = False,
    seed: str | None = None,
) -> bytes:
    """The exam's Mammography CAD SR as a DICOM file's bytes (:func:`build_exam_sr`)."""
    return document_bytes(build_exam_sr(exam, images, anonymize=anonymize, seed=seed))
