"""Exams: the views of one study read together (grouping, view recognition, pairing of
the CC and MLO findings of each breast, per breast and per exam assessment), and compared
with the woman's prior exam (matching, change, the change rules of the assessment)."""

from calcscope.exam.build import build_exam
from calcscope.exam.compare import MatchConfig, change_sentence, compare_exams
from calcscope.exam.grouping import ExamGroup, group_exams, read_manifest
from calcscope.exam.model import (
    BreastReading,
    Change,
    Comparison,
    Exam,
    ExamFinding,
    ExamImage,
    FindingChange,
    FindingKind,
)
from calcscope.exam.pairing import ViewFinding, clock_face, pair_views
from calcscope.exam.views import ExamView, ViewModifier, ViewRole, view_from_dataset

__all__ = [
    "build_exam",
    "group_exams",
    "read_manifest",
    "ExamGroup",
    "Exam",
    "ExamFinding",
    "ExamImage",
    "BreastReading",
    "FindingKind",
    "ViewFinding",
    "clock_face",
    "pair_views",
    "ExamView",
    "ViewModifier",
    "ViewRole",
    "view_from_dataset",
    "Change",
    "Comparison",
    "FindingChange",
    "MatchConfig",
    "compare_exams",
    "change_sentence",
]
