"""The exam: the views of one study read together, one finding per calcification group.

Plain frozen dataclasses; the JSON document is :class:`calcscope.reports.exam.ExamReport`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from calcscope.exam.pairing import ViewFinding
from calcscope.exam.views import ExamView, ViewRole
from calcscope.model import Laterality
from calcscope.reading.assess import Assessment

__all__ = [
    "FindingKind",
    "ExamImage",
    "ViewLink",
    "ExamFinding",
    "BreastReading",
    "Exam",
    "Change",
    "FindingChange",
    "ResolvedFinding",
    "Comparison",
]


class FindingKind(StrEnum):
    """What an exam finding is."""

    CLUSTER = "cluster"
    MACRO = "macro"  # a benign macro pattern (popcorn, rim, vascular, ...)


class Change(StrEnum):
    """How a finding changed since the prior exam (:mod:`calcscope.exam.compare`)."""

    NEW = "new"
    INCREASED = "increased"
    STABLE = "stable"
    DECREASED = "decreased"


@dataclass(frozen=True)
class FindingChange:
    """A finding's change since the prior exam, with the numbers it rests on.

    ``prior_finding_id`` is the matched finding of the prior exam (None for a new one);
    ``stable_since`` the study date (YYYYMMDD) of the earliest exam showing the finding
    unchanged; ``first_seen`` the date of the earliest exam showing it at all.
    """

    change: Change
    prior_finding_id: int | None = None
    match_score: float | None = None
    prior_n_calcifications: int | None = None
    n_calcifications: int | None = None
    prior_extent_mm: float | None = None
    extent_mm: float | None = None
    stable_since: str | None = None
    first_seen: str | None = None
    prior_category: str | None = None


@dataclass(frozen=True)
class ResolvedFinding:
    """A finding of the prior exam not seen now."""

    prior_finding_id: int
    kind: str
    description: str
    distance_from_nipple_mm: float | None
    quadrant: str | None


@dataclass(frozen=True)
class Comparison:
    """Which prior exam the exam was compared with (all None: no prior)."""

    prior_study_instance_uid: str | None = None
    prior_study_date: str | None = None
    interval_months: int | None = None
    prior_exam_id: str | None = None
    older_study_date: str | None = None  # the exam before the prior, where it was used


@dataclass(frozen=True)
class ExamImage:
    """One image of an exam: its identity, view and the findings of its report.

    ``key`` names the image's report (its path relative to the exam document, or a batch
    image id); each finding's ``image`` is this key.
    """

    key: str
    sop_instance_uid: str | None
    laterality: Laterality | None
    view: ExamView
    findings: tuple[ViewFinding, ...] = ()


@dataclass(frozen=True)
class ViewLink:
    """Where an exam finding shows on one view: the image and the finding in its report."""

    image: str
    sop_instance_uid: str | None
    finding_id: int
    view: str | None  # the actual projection: "CC", "XCCL", "MLO", "ML", "LM"
    nipple_distance_mm: float | None = None


@dataclass(frozen=True)
class ExamFinding:
    """One calcification finding of a breast, seen on one view or on both."""

    id: int
    laterality: Laterality | None
    kind: FindingKind
    views: Mapping[ViewRole, ViewLink]  # CC and / or MLO; absent where not seen
    distance_from_nipple_mm: float | None
    quadrant: str | None  # "upper outer", ..., "central", "subareolar"; a half on one view
    clock: str | None  # "2 o'clock", read facing the patient; None on one view or central
    depth: str | None  # anterior, middle, posterior third
    description: str
    assessment: Assessment
    score: float  # in [0, 1]; higher on two views than on one
    morphology: str = ""  # BI-RADS morphology (cluster) or benign pattern (macro) value
    distribution: str | None = None
    n_calcifications: int | None = None  # the most on one view
    extent_mm: float | None = None  # the largest on one view (clusters)
    change: FindingChange | None = None  # None: not compared (no prior)
    follow_up_months: int | None = None  # BI-RADS 3: months to the next mammogram

    @property
    def both_views(self) -> bool:
        return ViewRole.CC in self.views and ViewRole.MLO in self.views


@dataclass(frozen=True)
class BreastReading:
    """The reading of one breast: its images, findings and assessment (None: not imaged)."""

    laterality: Laterality
    images: tuple[str, ...]
    findings: tuple[ExamFinding, ...]
    assessment: Assessment | None
    resolved: tuple[ResolvedFinding, ...] = ()  # prior findings not seen now


@dataclass(frozen=True)
class Exam:
    """One exam: the images of a study read together."""

    exam_id: str
    name: str
    study_instance_uid: str | None
    patient_id: str | None
    study_date: str | None
    images: tuple[ExamImage, ...]
    roles: Mapping[str, ViewRole]  # image key -> its part in the reading
    breasts: Mapping[Laterality, BreastReading]
    unplaced: tuple[ExamFinding, ...]  # findings of images of unknown laterality
    assessment: Assessment
    comparison: Comparison | None = None  # None: not compared; see calcscope.exam.compare
    issuer_of_patient_id: str | None = None  # with patient_id, who the patient is

    @property
    def findings(self) -> tuple[ExamFinding, ...]:
        """Every finding: right breast, left breast, then those of unknown side."""
        out = [f for lat in (Laterality.RIGHT, Laterality.LEFT) for f in self.breasts[lat].findings]
        return (*out, *self.unplaced)
