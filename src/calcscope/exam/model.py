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

__all__ = ["FindingKind", "ExamImage", "ViewLink", "ExamFinding", "BreastReading", "Exam"]


class FindingKind(StrEnum):
    """What an exam finding is."""

    CLUSTER = "cluster"
    MACRO = "macro"  # a benign macro pattern (popcorn, rim, vascular, ...)


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

    @property
    def findings(self) -> tuple[ExamFinding, ...]:
        """Every finding: right breast, left breast, then those of unknown side."""
        out = [f for lat in (Laterality.RIGHT, Laterality.LEFT) for f in self.breasts[lat].findings]
        return (*out, *self.unplaced)
