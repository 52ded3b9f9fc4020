"""The comparison with the prior exam in the exam's Mammography CAD SR
(:mod:`calcscope.reports.exam_sr`): each finding's change and the prior study.

Each exam finding compared with a prior (its Composite Feature, TID 4004) gets::

    HAS PROPERTIES CODE Finding of change since previous mammogram (SCT 129720009)
                   = a code of CID 6002 "Change Since Last Mammogram or Prior Surgery":
                     New finding, Increase in number of calcifications, Increase in size,
                     No significant changes in the finding, Decrease in number of
                     calcifications, Decrease in size
    HAS PROPERTIES NUM Difference in number of calcifications (CID 6037; no units) and
                   NUM Difference in size (CID 6037; mm, the cluster's extent), where both
                   exams give the numbers
    HAS PROPERTIES TEXT Description of Change (DCM 111021): the change in words

The concept name of the change is the one the Breast Imaging Report uses for CID 6002
(TID 4206; the Mammography CAD templates have no row for it: a deviation, as the private
BI-RADS codes of :mod:`calcscope.reports.sr`); the quantitative differences are TID
4004's (CID 6037). The CAD Processing and Findings Summary gets the prior study::

    HAS PROPERTIES CODE Comparison with Prior Study Done (DCM 122140) = Yes
      HAS PROPERTIES UIDREF Study Instance UID (DCM 110180): the prior's
      HAS PROPERTIES DATE Study Date (DCM 111060): the prior's (left out de-identified)
      HAS PROPERTIES TEXT Description of Change: the interval and, per breast, the prior
                          findings not seen now (resolved)

A de-identified SR tells the prior as the de-identified exam document does: its UID
mapped as the de-identified exports map it, its date left out.
"""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.sr.coding import Code

from calcscope.reports.exam import ChangeModel, ExamFindingModel, ExamReport
from calcscope.reports.sr import MILLIMETRE, NO_UNITS
from calcscope.reports.sr_items import (
    Rel,
    code_item,
    date_item,
    num_item,
    text_item,
    uidref_item,
    with_children,
)

__all__ = [
    "CHANGE_SINCE_PRIOR",
    "CHANGE_CODES",
    "DESCRIPTION_OF_CHANGE",
    "COMPARISON_DONE",
    "change_code",
    "finding_change_items",
    "comparison_items",
]

CHANGE_SINCE_PRIOR = Code("129720009", "SCT", "Finding of change since previous mammogram")
DESCRIPTION_OF_CHANGE = Code("111021", "DCM", "Description of Change")
DIFFERENCE_IN_NUMBER = Code("129810007", "SCT", "Difference in number of calcifications")
DIFFERENCE_IN_SIZE = Code("129806009", "SCT", "Difference in size")
COMPARISON_DONE = Code("122140", "DCM", "Comparison with Prior Study Done")
YES = Code("373066001", "SCT", "Yes")
STUDY_INSTANCE_UID = Code("110180", "DCM", "Study Instance UID")
STUDY_DATE = Code("111060", "DCM", "Study Date")

NEW_FINDING = Code("129721008", "SCT", "New finding")
MORE_CALCIFICATIONS = Code("129726003", "SCT", "Increase in number of calcifications")
LARGER = Code("15454001", "SCT", "Increase in size")
NO_CHANGE = Code("129723006", "SCT", "No significant changes in the finding")
FEWER_CALCIFICATIONS = Code("129727007", "SCT", "Decrease in number of calcifications")
SMALLER = Code("19776001", "SCT", "Decrease in size")

#: CID 6002 codes by change: (in number of calcifications, in size) for the two that have both.
CHANGE_CODES: dict[str, tuple[Code, Code]] = {
    "new": (NEW_FINDING, NEW_FINDING),
    "increased": (MORE_CALCIFICATIONS, LARGER),
    "stable": (NO_CHANGE, NO_CHANGE),
    "decreased": (FEWER_CALCIFICATIONS, SMALLER),
}

_SIDE = {"L": "left", "R": "right"}


def _relative(now: float | None, then: float | None) -> float:
    if now is None or then is None or then <= 0:
        return 0.0
    return abs(now / then - 1.0)


def change_code(change: ChangeModel) -> Code:
    """The CID 6002 code of a finding's change: an increase or decrease is told in number
    of calcifications, or in size where the extent changed by the larger fraction."""
    by_number, by_size = CHANGE_CODES[change.change]
    size = _relative(change.extent_mm, change.prior_extent_mm)
    number = _relative(change.n_calcifications, change.prior_n_calcifications)
    return by_size if size > number else by_number


def _describe(change: ChangeModel, prior_date: str | None) -> str:
    since = f"the prior mammogram of {prior_date}" if prior_date else "the prior mammogram"
    parts = [f"{change.change} since {since}"]
    if change.prior_n_calcifications is not None and change.n_calcifications is not None:
        parts.append(f"{change.prior_n_calcifications} -> {change.n_calcifications} calcifications")
    if change.prior_extent_mm is not None and change.extent_mm is not None:
        parts.append(f"extent {change.prior_extent_mm:.1f} -> {change.extent_mm:.1f} mm")
    if change.match_score is not None:
        parts.append(f"matching score {change.match_score:.2f}")
    if change.stable_since:
        parts.append(f"unchanged since {change.stable_since}")
    return "; ".join(parts) + "."


def finding_change_items(f: ExamFindingModel, prior_date: str | None) -> list[Dataset]:
    """The HAS PROPERTIES items of a finding's change (none when it was not compared).

    ``prior_date`` (YYYYMMDD) is named in the description; ``None`` where unknown or
    de-identified.
    """
    c = f.change
    if c is None:
        return []
    items = [code_item(CHANGE_SINCE_PRIOR, change_code(c), Rel.HAS_PROPERTIES)]
    if c.n_calcifications is not None and c.prior_n_calcifications is not None:
        diff = c.n_calcifications - c.prior_n_calcifications
        items.append(num_item(DIFFERENCE_IN_NUMBER, diff, NO_UNITS, Rel.HAS_PROPERTIES))
    if c.extent_mm is not None and c.prior_extent_mm is not None:
        size = round(float(c.extent_mm - c.prior_extent_mm), 2)
        items.append(num_item(DIFFERENCE_IN_SIZE, size, MILLIMETRE, Rel.HAS_PROPERTIES))
    items.append(text_item(DESCRIPTION_OF_CHANGE, _describe(c, prior_date), Rel.HAS_PROPERTIES))
    return items


def _resolved_text(exam: ExamReport) -> str:
    c = exam.comparison
    assert c is not None
    parts = [
        f"Compared with the prior study ({c.interval_months} months earlier)."
        if c.interval_months is not None
        else "Compared with the prior study."
    ]
    for side in ("R", "L"):
        resolved = exam.breasts[side].resolved
        if not resolved:
            parts.append(f"{_SIDE[side].capitalize()} breast: no prior finding resolved.")
            continue
        where = ", ".join(
            r.description
            if r.distance_from_nipple_mm is None
            else f"{r.description} ({r.distance_from_nipple_mm:.0f} mm from the nipple)"
            for r in resolved
        )
        parts.append(
            f"{_SIDE[side].capitalize()} breast: {len(resolved)} prior finding(s) not seen "
            f"now (resolved): {where}."
        )
    return " ".join(parts)


def comparison_items(exam: ExamReport) -> list[Dataset]:
    """The prior study's HAS PROPERTIES item of the Findings Summary (none: not compared,
    or compared and no prior found). The exam document gives the prior's UID and date as
    they are to be told (a de-identified document: the UID mapped, no date)."""
    c = exam.comparison
    if c is None or c.prior_study_instance_uid is None:
        return []
    kids = [uidref_item(STUDY_INSTANCE_UID, c.prior_study_instance_uid, Rel.HAS_PROPERTIES)]
    if c.prior_study_date and len(c.prior_study_date) == 8:
        kids.append(date_item(STUDY_DATE, c.prior_study_date, Rel.HAS_PROPERTIES))
    kids.append(text_item(DESCRIPTION_OF_CHANGE, _resolved_text(exam), Rel.HAS_PROPERTIES))
    return [with_children(code_item(COMPARISON_DONE, YES, Rel.HAS_PROPERTIES), kids)]
