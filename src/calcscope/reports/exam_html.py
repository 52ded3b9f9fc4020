"""The HTML page of one exam (``<exam>.html``): the exam's and each breast's assessment,
the exam findings table with the views each finding is seen on, and the four views in the
usual hanging (right and left CC side by side, right and left MLO below).

Rendered from the exam report (:class:`calcscope.reports.exam.ExamReport`) with the
Jinja2 template ``exam.html.j2`` (autoescaped). The views show the images' overlay PNGs
(``<stem>.overlay.png``) where they were written, linked relative to the page (the page
lies in the same folder as the exam document and the image outputs); without them the
page shows the views' names only. The page names no patient.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from calcscope.about import DISCLAIMER, __version__
from calcscope.reports.exam import (
    ExamAssessmentModel,
    ExamFindingModel,
    ExamImageModel,
    ExamReport,
)
from calcscope.reports.templating import render_template

__all__ = ["render_exam_html", "overlay_of"]

_SIDE = {"R": "right", "L": "left"}
_HANGING = (("R", "CC"), ("L", "CC"), ("R", "MLO"), ("L", "MLO"))


def overlay_of(report: str) -> str:
    """The overlay PNG of an image report (``RCC.json`` -> ``RCC.overlay.png``)."""
    return report.removesuffix(".json") + ".overlay.png"


@dataclass(frozen=True)
class _ViewCell:
    anchor: str
    label: str
    report: str | None
    overlay: str | None


@dataclass(frozen=True)
class _ViewLinkCell:
    anchor: str
    label: str


@dataclass(frozen=True)
class _FindingRow:
    id: str
    breast: str
    kind: str
    quadrant: str
    clock: str
    distance: str
    depth: str
    views: list[_ViewLinkCell]
    description: str
    score: str
    assessment: ExamAssessmentModel


@dataclass(frozen=True)
class _BreastRow:
    side: str
    name: str
    assessment: ExamAssessmentModel | None
    n_findings: int


def _anchor(img: ExamImageModel) -> str:
    return f"view-{img.laterality or 'U'}-{img.role}-{img.report}".replace("/", "-")


def _label(img: ExamImageModel) -> str:
    side = _SIDE.get(img.laterality or "", "unknown side")
    return f"{side} {img.view or img.role}"


def _views(exam: ExamReport, has_overlay: Callable[[str], bool]) -> list[_ViewCell]:
    """The hanging's four cells, then every other image of the exam."""
    cells: list[_ViewCell] = []
    used: set[str] = set()
    for side, role in _HANGING:
        img = next((i for i in exam.images if i.laterality == side and i.role == role), None)
        if img is None:
            cells.append(_ViewCell(f"view-{side}-{role}", f"{_SIDE[side]} {role}", None, None))
            continue
        used.add(img.report)
        cells.append(_cell(img, has_overlay))
    cells += [_cell(i, has_overlay) for i in exam.images if i.report not in used]
    return cells


def _cell(img: ExamImageModel, has_overlay: Callable[[str], bool]) -> _ViewCell:
    overlay = overlay_of(img.report)
    return _ViewCell(
        _anchor(img), _label(img), img.report, overlay if has_overlay(overlay) else None
    )


def _finding_row(f: ExamFindingModel, side: str | None, exam: ExamReport) -> _FindingRow:
    by_report = {i.report: i for i in exam.images}
    links = []
    for role, v in f.views.items():
        img = by_report.get(v.image_report)
        tag = "C" if f.kind == "cluster" else "M"
        label = f"{v.view or role}: {tag}{v.finding_id}"
        links.append(_ViewLinkCell(_anchor(img) if img else "", label))
    return _FindingRow(
        id=f"{side or 'U'}{f.id}",
        breast=_SIDE.get(side or "", "unknown"),
        kind="cluster of microcalcifications" if f.kind == "cluster" else "macrocalcification",
        quadrant=f.quadrant or "",
        clock=f.clock or "",
        distance="" if f.distance_from_nipple_mm is None else f"{f.distance_from_nipple_mm:.0f}",
        depth=f.depth or "",
        views=links,
        description=f.description,
        score=f"{f.score:.2f}",
        assessment=f.assessment,
    )


def render_exam_html(exam: ExamReport, *, has_overlay: Callable[[str], bool]) -> str:
    """The exam page as a string (see the module docstring).

    Parameters
    ----------
    exam
        The exam report.
    has_overlay
        Whether an overlay PNG (path relative to the page) exists.
    """
    rows = [_finding_row(f, side, exam) for side in ("R", "L") for f in exam.breasts[side].findings]
    rows += [_finding_row(f, None, exam) for f in exam.findings_unknown_side]
    breasts = [
        _BreastRow(
            s, f"{_SIDE[s]} breast", exam.breasts[s].assessment, len(exam.breasts[s].findings)
        )
        for s in ("R", "L")
    ]
    header = [
        ("exam", exam.exam_id),
        ("study date", exam.study_date or "unknown"),
        ("images", str(len(exam.images))),
        ("report schema", f"{exam.schema_name} {exam.schema_version}"),
    ]
    return render_template(
        "exam.html.j2",
        title=f"calcscope exam report: {exam.exam_id}",
        disclaimer=DISCLAIMER,
        a=exam.assessment,
        header=header,
        breasts=breasts,
        findings=rows,
        views=_views(exam, has_overlay),
        version=__version__,
    )
