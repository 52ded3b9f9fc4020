"""One plain-language letter per exam (``<exam>.letter.html`` and ``.letter.txt``).

It speaks of each breast in turn, says where a finding lies (the part of the breast, the
clock face, the distance from the nipple) and gives the next step of the whole exam. The
wording, the reading age and the notice are those of the image letter
(:mod:`calcscope.reports.letter`), whose sentences it reuses; it is rendered from the
exam report (:class:`calcscope.reports.exam.ExamReport`) with the same Jinja2 template
(``letter.html.j2``). The letter never names the patient.
"""

from __future__ import annotations

from calcscope.reading.assess import Category, FollowUp
from calcscope.reports.exam import BreastModel, ExamFindingModel, ExamReport
from calcscope.reports.letter import (
    _MEANING,
    EXPLAINED_TERMS,
    NEXT_STEP,
    NOTICE,
    _count,
    paragraphs_html,
    paragraphs_text,
)

__all__ = ["exam_letter_paragraphs", "exam_letter_text", "exam_letter_html"]

_SIDE = {"R": "right", "L": "left"}

_QUADRANT_WORDS = {
    "upper outer": "the upper outer part (towards the armpit)",
    "lower outer": "the lower outer part",
    "upper inner": "the upper inner part (towards the middle of the chest)",
    "lower inner": "the lower inner part",
    "upper": "the upper half",
    "lower": "the lower half",
    "outer": "the outer half (the side towards the armpit)",
    "inner": "the inner half (the side towards the middle of the chest)",
    "central": "the middle, behind the nipple",
    "subareolar": "the area just behind the nipple",
}


def _where(f: ExamFindingModel) -> str | None:
    """Where one finding lies, in plain words (None when nothing is known)."""
    parts = []
    if f.quadrant:
        parts.append(f"in {_QUADRANT_WORDS.get(f.quadrant, 'the ' + f.quadrant + ' part')}")
    if f.clock:
        parts.append(f"at {f.clock} (as on a clock face, looking at you)")
    if f.distance_from_nipple_mm is not None and f.quadrant != "subareolar":
        parts.append(f"about {max(1, round(f.distance_from_nipple_mm / 10))} cm from the nipple")
    return ", ".join(parts) if parts else None


_CHANGE_WORDS = {
    "new": "is new",
    "increased": "has grown",
    "stable": "has not changed",
    "decreased": "has become smaller",
}


def _changes(side: str, b: BreastModel, prior_date: str | None) -> list[str]:
    """What changed since the prior mammogram, one sentence per compared finding."""
    from calcscope.exam.compare import long_date

    when = long_date(prior_date)
    opening = f"Compared with your mammogram of {when}" if when else "Compared with your last one"
    out = []
    for f in b.findings:
        if f.change is None:
            continue
        what = "a larger calcium spot" if f.kind == "macro" else "a group of calcium spots"
        out.append(
            f"{opening}, {what} in your {_SIDE[side]} breast {_CHANGE_WORDS[f.change.change]}."
        )
    if b.resolved:
        out.append(
            f"{_count(len(b.resolved), 'group', 'groups')} seen on the earlier mammogram of "
            f"your {_SIDE[side]} breast can no longer be seen."
        )
    return out


def _breast(
    side: str, b: BreastModel, exam_category: str, prior_date: str | None = None
) -> list[str]:
    """The sentences about one breast (what its category means when it is not the
    exam's, which the next paragraph explains), and what changed since the prior."""
    name = f"your {_SIDE[side]} breast"
    if not b.imaged or b.assessment is None:
        return [f"There were no pictures of {name} in this exam."]
    clusters = [f for f in b.findings if f.kind == "cluster"]
    macros = [f for f in b.findings if f.kind == "macro"]
    if not b.findings:
        return [f"The computer found no calcium spots that matter in {name}. It is clear."]
    seen = []
    if clusters:
        seen.append(
            f"In {name} the computer found {_count(len(clusters), 'cluster', 'clusters')} "
            f"({EXPLAINED_TERMS['cluster']})."
        )
        worst = max(clusters, key=lambda f: Category(f.assessment.category).rank)
        where = _where(worst)
        if where and Category(worst.assessment.category) not in (Category.C1, Category.C2):
            group = "The group" if len(clusters) == 1 else "The group that needs a closer look"
            seen.append(f"{group} is {where}.")
        if len(worst.views) == 1 and Category(worst.assessment.category) is Category.C0:
            seen.append("It shows on one picture of this breast only.")
    if macros:
        seen.append(
            f"{'It also found' if clusters else f'In {name} the computer found'} "
            f"{_count(len(macros), 'larger spot', 'larger spots')}. "
            "Larger spots are almost always harmless."
        )
    seen += _changes(side, b, prior_date)
    if b.assessment.category != exam_category:
        seen.append(_MEANING[Category(b.assessment.category)])
    return seen


def exam_letter_paragraphs(exam: ExamReport) -> list[list[str]]:
    """The letter as paragraphs of sentences (plain text): notice, each breast, what it
    means, the next step, the doctor."""
    seen = [
        "A calcification is a tiny spot of calcium in the breast. "
        "They are very common, and more so with age."
    ]
    prior_date = exam.comparison.prior_study_date if exam.comparison else None
    for side in ("R", "L"):
        seen += _breast(side, exam.breasts[side], exam.assessment.category, prior_date)
    if exam.findings_unknown_side:
        seen.append(
            f"The computer also found "
            f"{_count(len(exam.findings_unknown_side), 'group', 'groups')} of spots on a "
            "picture that does not say which breast it shows."
        )
    a = exam.assessment
    meaning = ["Most calcium spots are not cancer.", _MEANING[Category(a.category)]]
    step = [NEXT_STEP[FollowUp(a.follow_up)]]
    doctor = [
        "Only your doctor can decide what is right for you.",
        "Please talk to your doctor about this result. Bring this letter with you.",
    ]
    return [[NOTICE], seen, meaning, step, doctor]


def exam_letter_text(exam: ExamReport) -> str:
    """The exam letter as plain text."""
    return paragraphs_text(exam_letter_paragraphs(exam))


def exam_letter_html(exam: ExamReport) -> str:
    """The exam letter as a small self-contained HTML page (template ``letter.html.j2``)."""
    return paragraphs_html(exam_letter_paragraphs(exam))
