"""The viewer's side by side of an exam and its prior exam.

An exam compared with a prior (its document's ``comparison``, written by
:func:`calcscope.exam.priors.compare_with_priors`) names the prior by its exam id and
Study Instance UID; the prior is shown when its exam document lies in the viewer's
results folder too (as ``calcscope analyze`` writes both exams of a woman there), found
among :func:`~calcscope.apps.web.exams.scan_exams`, never by joining a name to a path.

Each finding of the exam and each of the prior's that the comparison names gets one
:class:`CompareLink`: a number shown on both sides, the change (``new``, ``increased``,
``stable``, ``decreased``; ``resolved`` for a prior finding not seen now), and the two
findings' ids. The page draws both exams' images of one view and links the marks by
the number.
"""

from __future__ import annotations

from dataclasses import dataclass

from calcscope.apps.web.exams import ExamEntry, scan_exams
from calcscope.apps.web.studies import StudyStore
from calcscope.reports.exam import ExamFindingModel, ExamReport

__all__ = ["CompareLink", "find_prior", "compare_links"]


@dataclass(frozen=True)
class CompareLink:
    """One finding of the side by side and its counterpart.

    Attributes
    ----------
    number
        Shown beside both marks (1, 2, ...).
    laterality
        ``"R"``, ``"L"``, or ``None`` for a finding of an image of unknown side.
    change
        ``"new"``, ``"increased"``, ``"stable"``, ``"decreased"``, ``"resolved"`` (a prior
        finding not seen now), or ``""`` (a finding not compared).
    finding_id, prior_finding_id
        The exam's and the prior exam's finding ids (``None`` where there is none).
    """

    number: int
    laterality: str | None
    change: str
    finding_id: int | None
    prior_finding_id: int | None


def find_prior(store: StudyStore, entry: ExamEntry) -> ExamEntry | None:
    """The exam document of ``entry``'s prior among the viewer's exams, or ``None`` (not
    compared, or its prior is not in the viewer's folders)."""
    c = entry.report.comparison
    if c is None or (c.prior_exam_id is None and c.prior_study_instance_uid is None):
        return None
    for other in scan_exams(store):
        if other.id == entry.id:
            continue
        rep = other.report
        if c.prior_study_instance_uid is not None:
            if rep.study_instance_uid == c.prior_study_instance_uid:
                return other
        elif rep.exam_id == c.prior_exam_id:
            return other
    return None


def _findings(report: ExamReport) -> list[tuple[str | None, ExamFindingModel]]:
    out: list[tuple[str | None, ExamFindingModel]] = []
    for lat in ("R", "L"):
        breast = report.breasts.get(lat)
        out += [(lat, f) for f in (breast.findings if breast is not None else [])]
    return out + [(None, f) for f in report.findings_unknown_side]


def compare_links(current: ExamReport, prior: ExamReport) -> list[CompareLink]:
    """The links of the side by side: every finding of ``current`` (with its change and
    its prior finding, where matched), then each breast's resolved prior findings that
    ``prior`` holds."""
    prior_ids = {f.id for _, f in _findings(prior)}
    links: list[CompareLink] = []
    for lat, f in _findings(current):
        change = f.change.change if f.change is not None else ""
        matched = f.change.prior_finding_id if f.change is not None else None
        if matched not in prior_ids:
            matched = None
        links.append(CompareLink(len(links) + 1, lat, change, f.id, matched))
    for side in ("R", "L"):
        breast = current.breasts.get(side)
        for r in breast.resolved if breast is not None else []:
            if r.prior_finding_id in prior_ids:
                links.append(
                    CompareLink(len(links) + 1, side, "resolved", None, r.prior_finding_id)
                )
    return links
