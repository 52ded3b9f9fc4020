"""The exam report: ``<exam name>.exam.json`` (schema ``calcscope.exam``), a versioned
pydantic model like the image report (:class:`calcscope.reports.schema.AnalysisReport`).

One document per exam, beside the images' reports: the study's identity, each image (its
report's path, SOP Instance UID, laterality, view, part in the reading), each breast
(``"L"``, ``"R"``) with its assessment and findings, the exam's assessment (the highest
breast category with its follow-up), and ``outputs``: the exam's SR, letter and HTML page
(paths relative to the exam document; null until written).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from calcscope.about import DISCLAIMER, __version__
from calcscope.exam.compare import PriorExam, PriorFinding
from calcscope.exam.model import Change, Exam, ExamFinding, ExamImage, FindingChange, FindingKind
from calcscope.exam.pairing import ViewFinding
from calcscope.exam.views import ExamView
from calcscope.files import write_atomic
from calcscope.model import Laterality, View
from calcscope.reading.assess import Assessment
from calcscope.reports.schema import AnalysisReport

__all__ = [
    "EXAM_SCHEMA_VERSION",
    "EXAM_SUFFIX",
    "ExamReport",
    "to_exam_report",
    "exam_file_name",
    "exam_image_from_report",
    "write_exam",
    "load_exam",
    "prior_from_report",
]

EXAM_SCHEMA_VERSION = "1.1"
"""1.1: findings' ``change``, ``n_calcifications``, ``extent_mm`` and ``follow_up_months``,
breasts' ``resolved``, the exam's ``comparison`` (all optional)."""
EXAM_SUFFIX = ".exam.json"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExamAssessmentModel(_Model):
    category: str = Field(description="BI-RADS category: 0, 1, 2, 3, 4A, 4B, 4C or 5")
    category_label: str
    likelihood: float = Field(ge=0, le=1, description="likelihood of malignancy")
    follow_up: str
    follow_up_label: str
    reason: str


class ExamViewModel(_Model):
    """Where a finding shows on one view."""

    sop_instance_uid: str | None
    image_report: str = Field(description="the image's report, relative to this document")
    finding_id: int = Field(description="the finding's id in that report (cluster or macro)")
    view: str | None = Field(description="the projection: CC, XCCL, MLO, ML or LM")
    nipple_distance_mm: float | None = None


class ChangeModel(_Model):
    """A finding's change since the prior exam (:mod:`calcscope.exam.compare`)."""

    change: Literal["new", "increased", "stable", "decreased"]
    prior_finding_id: int | None = None
    match_score: float | None = Field(None, description="matching score in [0, 1]")
    prior_n_calcifications: int | None = None
    n_calcifications: int | None = None
    prior_extent_mm: float | None = None
    extent_mm: float | None = None
    stable_since: str | None = Field(None, description="earliest exam date showing it unchanged")
    first_seen: str | None = Field(None, description="earliest exam date showing it")
    prior_category: str | None = None


class ExamFindingModel(_Model):
    id: int
    kind: Literal["cluster", "macro"]
    views: dict[Literal["CC", "MLO", "additional"], ExamViewModel] = Field(
        description="the views showing the finding (CC, MLO); a view is absent where it is "
        "not seen; additional: an image of unknown side or view"
    )
    distance_from_nipple_mm: float | None
    quadrant: str | None = Field(
        description="upper outer, upper inner, lower outer, lower inner; upper, lower, outer, "
        "inner between two; central or subareolar; one view gives a half only"
    )
    clock: str | None = Field(description="clock face read facing the patient, e.g. 2 o'clock")
    depth: str | None = Field(description="anterior, middle or posterior third")
    description: str
    assessment: ExamAssessmentModel
    score: float = Field(ge=0, le=1, description="certainty; higher when seen on both views")
    morphology: str | None = Field(None, description="BI-RADS morphology or benign pattern")
    n_calcifications: int | None = Field(None, description="the most on one view")
    extent_mm: float | None = Field(None, description="a cluster's largest extent on one view")
    change: ChangeModel | None = Field(None, description="null: not compared with a prior")
    follow_up_months: int | None = Field(
        None, description="BI-RADS 3: months to the next follow-up mammogram"
    )


class ResolvedModel(_Model):
    """A finding of the prior exam not seen now."""

    prior_finding_id: int
    kind: str
    description: str
    distance_from_nipple_mm: float | None
    quadrant: str | None


class BreastModel(_Model):
    imaged: bool
    assessment: ExamAssessmentModel | None = Field(description="null: breast not imaged")
    findings: list[ExamFindingModel]
    resolved: list[ResolvedModel] = Field(
        default_factory=list, description="findings of the prior exam not seen now"
    )


class ComparisonModel(_Model):
    """The prior exam the exam was compared with (nulls: no prior)."""

    prior_study_instance_uid: str | None = None
    prior_study_date: str | None = None
    interval_months: int | None = None
    prior_exam_id: str | None = None
    older_study_date: str | None = Field(
        None, description="the exam before the prior, which the prior was compared with"
    )


class ExamImageModel(_Model):
    report: str = Field(description="the image's JSON report, relative to this document")
    sop_instance_uid: str | None
    laterality: str | None
    view: str | None
    view_modifiers: list[str]
    role: str = Field(description="CC or MLO (read for the findings), or additional")


class ExamOutputsModel(_Model):
    """The exam's other outputs, relative to this document (null: not written)."""

    sr: str | None = None
    letter_html: str | None = None
    letter_txt: str | None = None
    html: str | None = None


class ExamReport(_Model):
    """The JSON document calcscope writes per exam."""

    schema_name: Literal["calcscope.exam"] = "calcscope.exam"
    schema_version: str = EXAM_SCHEMA_VERSION
    calcscope_version: str = __version__
    disclaimer: str = DISCLAIMER
    exam_id: str
    study_instance_uid: str | None
    patient_id: str | None
    study_date: str | None
    images: list[ExamImageModel]
    breasts: dict[Literal["L", "R"], BreastModel]
    findings_unknown_side: list[ExamFindingModel] = Field(default_factory=list)
    assessment: ExamAssessmentModel
    comparison: ComparisonModel | None = Field(
        None, description="the prior exam compared with; null: not compared"
    )
    outputs: ExamOutputsModel = Field(default_factory=ExamOutputsModel)


def _assessment(a: Assessment) -> ExamAssessmentModel:
    return ExamAssessmentModel(
        category=a.category.value,
        category_label=a.category.label,
        likelihood=round(a.likelihood, 4),
        follow_up=a.follow_up.value,
        follow_up_label=a.follow_up.label,
        reason=a.reason,
    )


def _same(uid: str | None) -> str | None:
    return uid


def _uid_map(anonymize: bool, seed: str | None) -> Callable[[str | None], str | None]:
    """Identity, or the replacement of a UID as the de-identified exports make it."""
    if not anonymize:
        return _same
    from calcscope.reports.dicom_source import Deidentifier

    deid = Deidentifier(seed)
    return lambda uid: None if uid is None else deid.uid(uid)


def exam_file_name(exam: Exam, *, anonymize: bool = False, seed: str | None = None) -> str:
    """The exam's file-name-safe name (``<name>.exam.json``); with ``anonymize`` the
    study's UID in it replaced as the de-identified exports replace it, and a name not
    made from that UID (a file's name, a patient ID and date) replaced by ``anon-exam-``
    and a keyed hash of the exam's id."""
    if not anonymize:
        return exam.name
    return _anonymous_exam_id(exam, exam.name, seed)


def _anonymous_exam_id(exam: Exam, text: str, seed: str | None) -> str:
    """``text`` (the exam's name or id) de-identified: the study's UID in it replaced, or
    the whole replaced by a keyed hash when it is not made from that UID."""
    from calcscope.reports.dicom_source import Deidentifier

    deid = Deidentifier(seed)
    study = exam.study_instance_uid
    if study and text.startswith(study.strip("._")):
        return deid.file_name(text, [study])
    return f"anon-exam-{deid.pseudonym(exam.exam_id)}"


def _finding(f: ExamFinding, uid: Callable[[str | None], str | None] = _same) -> ExamFindingModel:
    views = {
        role.value: ExamViewModel(
            sop_instance_uid=uid(link.sop_instance_uid),
            image_report=link.image,
            finding_id=link.finding_id,
            view=link.view,
            nipple_distance_mm=(
                None if link.nipple_distance_mm is None else round(link.nipple_distance_mm, 1)
            ),
        )
        for role, link in f.views.items()
    }
    return ExamFindingModel(
        id=f.id,
        kind=f.kind.value,
        views=views,
        distance_from_nipple_mm=f.distance_from_nipple_mm,
        quadrant=f.quadrant,
        clock=f.clock,
        depth=f.depth,
        description=f.description,
        assessment=_assessment(f.assessment),
        score=f.score,
        morphology=f.morphology or None,
        n_calcifications=f.n_calcifications,
        extent_mm=f.extent_mm,
        change=None if f.change is None else ChangeModel(**asdict(f.change)),
        follow_up_months=f.follow_up_months,
    )


def _comparison(
    exam: Exam, uid: Callable[[str | None], str | None], anonymize: bool
) -> ComparisonModel | None:
    """The comparison block; de-identified: the prior's UID mapped, its dates and id left out."""
    if exam.comparison is None:
        return None
    c = ComparisonModel(**asdict(exam.comparison))
    if not anonymize:
        return c
    return c.model_copy(
        update={
            "prior_study_instance_uid": uid(c.prior_study_instance_uid),
            "prior_study_date": None,
            "older_study_date": None,
            "prior_exam_id": None,
        }
    )


def _undated(f: ExamFindingModel, anonymize: bool) -> ExamFindingModel:
    """``f`` without the exam dates of its change when de-identified."""
    if not anonymize or f.change is None:
        return f
    change = f.change.model_copy(update={"stable_since": None, "first_seen": None})
    return f.model_copy(update={"change": change})


def to_exam_report(exam: Exam, *, anonymize: bool = False, seed: str | None = None) -> ExamReport:
    """The JSON model of an exam.

    With ``anonymize`` the patient id and the study date are left out, the exam id is
    reduced to a file name, and the Study and SOP Instance UIDs are replaced as the
    de-identified image reports and exports replace them
    (:class:`calcscope.reports.dicom_source.Deidentifier` under ``seed``).
    """
    uid = _uid_map(anonymize, seed)
    images = [
        ExamImageModel(
            report=img.key,
            sop_instance_uid=uid(img.sop_instance_uid),
            laterality=img.laterality.value if img.laterality else None,
            view=img.view.view.value if img.view.view else None,
            view_modifiers=[m.value for m in img.view.modifiers],
            role=exam.roles[img.key].value,
        )
        for img in exam.images
    ]
    breasts = {
        lat.value: BreastModel(
            imaged=bool(b.images),
            assessment=_assessment(b.assessment) if b.assessment else None,
            findings=[_undated(_finding(f, uid), anonymize) for f in b.findings],
            resolved=[ResolvedModel(**asdict(r)) for r in b.resolved],
        )
        for lat, b in exam.breasts.items()
    }
    exam_id = exam.exam_id
    if anonymize:
        exam_id = _anonymous_exam_id(exam, exam_id, seed)
    return ExamReport(
        exam_id=exam_id,
        study_instance_uid=uid(exam.study_instance_uid),
        patient_id=None if anonymize else exam.patient_id,
        study_date=None if anonymize else exam.study_date,
        images=images,
        breasts=breasts,
        findings_unknown_side=[_finding(f, uid) for f in exam.unplaced],
        assessment=_assessment(exam.assessment),
        comparison=_comparison(exam, uid, anonymize),
    )


def _members_score(report: AnalysisReport, ids: list[int]) -> float:
    scores = [c.score for c in report.calcifications if c.id in set(ids)]
    return float(max(scores)) if scores else 1.0


def exam_image_from_report(
    report: AnalysisReport, key: str, view: ExamView | None = None
) -> ExamImage:
    """The exam's view of an image from its JSON report (``key``: how the exam names it)."""
    src = report.source
    findings: list[ViewFinding] = []
    for kind, items in (("cluster", report.clusters), ("macro", report.macro_findings)):
        for c in items:
            loc = c.location
            dist = None if loc is None else loc.nipple_distance_mm
            is_cluster = kind == "cluster"
            findings.append(
                ViewFinding(
                    image=key,
                    finding_id=c.id,
                    nipple_distance_mm=float("nan") if dist is None else float(dist),
                    offset_mm=float(loc.offset_mm) if loc and loc.offset_mm is not None else 0.0,
                    morphology=c.morphology if is_cluster else c.pattern,  # type: ignore[union-attr]
                    category=c.assessment.category,
                    likelihood=c.assessment.likelihood,
                    kind=kind,
                    follow_up=c.assessment.follow_up,
                    reason=c.assessment.reason,
                    depth=loc.depth if loc else None,
                    score=c.score if is_cluster else _members_score(report, c.member_ids),  # type: ignore[union-attr]
                    distribution=c.distribution if is_cluster else None,  # type: ignore[union-attr]
                    n_calcifications=len(c.member_ids),
                    half=loc.half if loc else None,
                    extent_mm=float(c.extent_mm) if is_cluster else None,  # type: ignore[union-attr]
                )
            )
    if view is None:
        view = ExamView(View(src.view) if src.view else None)
    return ExamImage(
        key=key,
        sop_instance_uid=src.sop_instance_uid,
        laterality=Laterality(src.laterality) if src.laterality in ("L", "R") else None,
        view=view,
        findings=tuple(findings),
    )


def write_exam(
    exam: Exam,
    out_dir: str | Path,
    *,
    anonymize: bool = False,
    seed: str | None = None,
    outputs: ExamOutputsModel | None = None,
    durable: bool = False,
    name: str | None = None,
) -> Path:
    """Write ``<out_dir>/<name>.exam.json`` atomically
    (:func:`calcscope.files.write_atomic`; ``name``: by default :func:`exam_file_name`)."""
    report = to_exam_report(exam, anonymize=anonymize, seed=seed)
    if outputs is not None:
        report = report.model_copy(update={"outputs": outputs})
    if name is None:
        name = exam_file_name(exam, anonymize=anonymize, seed=seed)
    path = Path(out_dir) / f"{name}{EXAM_SUFFIX}"
    text = json.dumps(report.model_dump(mode="json"), indent=1)
    return write_atomic(path, text, durable=durable)


def load_exam(path: str | Path) -> ExamReport:
    """Read an exam document written by calcscope."""
    return ExamReport.model_validate_json(Path(path).read_bytes())


def _prior_finding(f: ExamFindingModel, lat: Laterality | None) -> PriorFinding:
    change = None
    if f.change is not None:
        change = FindingChange(**{**f.change.model_dump(), "change": Change(f.change.change)})
    return PriorFinding(
        id=f.id,
        laterality=lat,
        kind=FindingKind(f.kind),
        views=frozenset(r for r in f.views if r != "additional"),
        distance_from_nipple_mm=f.distance_from_nipple_mm,
        quadrant=f.quadrant,
        clock=f.clock,
        depth=f.depth,
        morphology=f.morphology or "",
        n_calcifications=f.n_calcifications,
        extent_mm=f.extent_mm,
        category=f.assessment.category,
        description=f.description,
        change=change,
    )


def prior_from_report(report: ExamReport) -> PriorExam:
    """The prior exam of a comparison from its JSON document (a previous run's output:
    read, not re-analysed)."""
    findings = [
        _prior_finding(f, Laterality(lat))
        for lat, breast in sorted(report.breasts.items(), key=lambda kv: kv[0] != "R")
        for f in breast.findings
    ]
    findings += [_prior_finding(f, None) for f in report.findings_unknown_side]
    return PriorExam(
        exam_id=report.exam_id,
        study_instance_uid=report.study_instance_uid,
        patient_id=report.patient_id,
        study_date=report.study_date,
        findings=tuple(findings),
        prior_study_date=report.comparison.prior_study_date if report.comparison else None,
    )
