"""The exams the web viewer shows: the ``<exam>.exam.json`` documents (schema
``calcscope.exam``, :func:`calcscope.reports.exam.load_exam`) in the results folder, each
hung as four panels (right and left CC above, right and left MLO below).

An exam's images are the image studies of :class:`~calcscope.apps.web.studies.StudyStore`
whose report the exam names (relative to the exam document); their tiles are served by the
studies' tile route. Only exam documents inside the viewer's folders are read
(:meth:`StudyStore.safe_file`), and exam ids, like study ids, are looked up in an index,
never joined to a path.

Hanging: the right breast's images on the left of the screen, the left breast's on the
right, chest walls at the outer edges (the breasts face each other). An image whose
nipple (the report's ``nipple_line``) lies on the wrong side is shown mirrored left to
right (``flip``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from calcscope.apps.web.studies import Study, StudyStore, study_id_for
from calcscope.reports.exam import EXAM_SUFFIX, ExamReport, load_exam
from calcscope.reports.schema import AnalysisReport

__all__ = [
    "ExamEntry",
    "ExamPanel",
    "SLOTS",
    "scan_exams",
    "find_exam",
    "exam_panels",
    "exam_summary",
]

#: The hanging's four places, in reading order: right CC, left CC, right MLO, left MLO.
SLOTS = (("R", "CC"), ("L", "CC"), ("R", "MLO"), ("L", "MLO"))


@dataclass(frozen=True)
class ExamEntry:
    """One exam document on disk and its parsed model."""

    id: str
    path: Path
    name: str
    report: ExamReport


@dataclass(frozen=True)
class ExamPanel:
    """One image of the hanging.

    Attributes
    ----------
    slot
        ``"RCC"``, ``"LCC"``, ``"RMLO"`` or ``"LMLO"``.
    report_key
        How the exam names the image's report (relative to the exam document).
    study
        The image study (its tiles and report), or ``None`` when it is not in the viewer.
    flip
        Whether the image is shown mirrored left to right, so that its chest wall lies at
        the outer edge of the screen.
    """

    slot: str
    laterality: str
    view: str
    report_key: str
    sop_instance_uid: str | None
    study: Study | None
    flip: bool


def scan_exams(store: StudyStore) -> list[ExamEntry]:
    """The exam documents of the results folder (sorted by name); unreadable ones are left
    out."""
    folder = store.results_dir
    if folder is None or not folder.is_dir():
        return []
    found: dict[str, ExamEntry] = {}
    for path in sorted(folder.glob(f"*{EXAM_SUFFIX}")):
        if store.safe_file(path) is None:
            continue
        try:
            report = load_exam(path)
        except (OSError, ValueError, ValidationError):
            continue
        name = path.name[: -len(EXAM_SUFFIX)]
        eid = study_id_for(name)
        found.setdefault(eid, ExamEntry(eid, path, name, report))
    return list(found.values())


def find_exam(store: StudyStore, exam_id: str) -> ExamEntry | None:
    """The exam with this id, or ``None``."""
    return next((e for e in scan_exams(store) if e.id == exam_id), None)


def _flip(laterality: str, report: AnalysisReport | None) -> bool:
    """Whether to mirror the image: the right breast's nipple must point right (chest
    wall on the left edge), the left breast's nipple left."""
    if report is None or report.nipple_line is None:
        return False
    nipple_col = report.nipple_line.nipple_rc[1]
    nipple_right = nipple_col > report.source.shape_rc[1] / 2
    return nipple_right != (laterality == "R")


def exam_panels(store: StudyStore, entry: ExamEntry) -> list[ExamPanel]:
    """The panels of the hanging that the exam has an image for (its CC and MLO images)."""
    studies = {s.json_path.resolve(): s for s in store.scan()}
    panels = []
    for lat, view in SLOTS:
        image = next(
            (i for i in entry.report.images if i.laterality == lat and i.role == view), None
        )
        if image is None:
            continue
        path = store.safe_file(entry.path.parent / image.report)
        study = studies.get(path) if path is not None else None
        report = store.report(study) if study is not None else None
        panels.append(
            ExamPanel(
                slot=lat + view,
                laterality=lat,
                view=view,
                report_key=image.report,
                sop_instance_uid=image.sop_instance_uid,
                study=study if report is not None else None,
                flip=_flip(lat, report),
            )
        )
    return panels


def exam_summary(entry: ExamEntry) -> dict[str, Any]:
    """The fields of the study list for an exam (the API's JSON)."""
    rep = entry.report
    n_findings = sum(len(b.findings) for b in rep.breasts.values())
    return {
        "id": entry.id,
        "name": entry.name,
        "kind": "exam",
        "study_instance_uid": rep.study_instance_uid,
        "study_date": rep.study_date,
        "n_images": len(rep.images),
        "n_findings": n_findings,
        "category": rep.assessment.category,
        "follow_up_label": rep.assessment.follow_up_label,
    }
