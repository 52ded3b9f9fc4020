"""The assessment of a finding with its change since the prior exam (BI-RADS atlas).

Each rule's source is in its docstring; each leaves its trace (a
:class:`~calcscope.reading.assess.RuleHit`) in the finding's reason.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from calcscope.exam.model import Change, ExamFinding, FindingKind
from calcscope.reading.assess import Assessment, Category, FollowUp, RuleHit

__all__ = ["FollowUpRules", "assess_change", "suspicious_change", "stable_two_years", "interval"]


@dataclass(frozen=True)
class FollowUpRules:
    """Thresholds of the change rules.

    Attributes
    ----------
    stable_months
        A probably-benign group unchanged for at least this long (months; 24, the atlas's
        two years) is benign.
    schedule_months
        The follow-up after a first BI-RADS 3 finding, in months after it was first seen:
        6, 12 and 24 (the atlas's 6-month, then 6-month, then 12-month mammograms).
    schedule_tolerance_months
        A follow-up exam this much (2 months) before its due date counts as that one.
    suspicious_likelihood
        The least likelihood of malignancy of a group raised to 4A (0.03; 4A is > 2 %).
    """

    stable_months: int = 24
    schedule_months: tuple[int, ...] = (6, 12, 24)
    schedule_tolerance_months: int = 2
    suspicious_likelihood: float = 0.03


def _months(first: str | None, now: str | None) -> int | None:
    from calcscope.exam.compare import months_between

    return months_between(first, now)


def suspicious_change(
    f: ExamFinding, interval_months: int | None, rules: FollowUpRules
) -> RuleHit | None:
    """New or increasing calcifications are not probably benign: BI-RADS 3 becomes 4A
    (biopsy).

    Source: ACR BI-RADS Atlas, 5th ed. (2013), Mammography, Guidance, "Probably benign
    (BI-RADS 3)": the category is for findings at baseline; a new or increasing finding on
    a follow-up is not eligible, and an increase in size or extent warrants biopsy
    (Sickles, Radiology 1991;179:463-468).
    """
    change = f.change
    if (
        change is None
        or f.kind is not FindingKind.CLUSTER
        or f.assessment.category is not Category.C3
    ):
        return None
    if change.change is Change.INCREASED:
        grew = []
        if change.prior_n_calcifications is not None and change.n_calcifications is not None:
            grew.append(
                f"{change.prior_n_calcifications} -> {change.n_calcifications} calcifications"
            )
        if change.prior_extent_mm is not None and change.extent_mm is not None:
            grew.append(f"extent {change.prior_extent_mm:.0f} -> {change.extent_mm:.0f} mm")
        what = f"increased since the prior exam ({', '.join(grew)})" if grew else "increased"
    elif change.change is Change.NEW and interval_months is not None:
        what = "new since the prior exam"
    else:
        return None
    return RuleHit(
        "suspicious_change",
        f"{what}: new or increasing calcifications are not probably benign, BI-RADS 4A "
        "(biopsy) instead of 3 (BI-RADS atlas)",
    )


def stable_two_years(
    f: ExamFinding, study_date: str | None, rules: FollowUpRules
) -> RuleHit | None:
    """A probably-benign group unchanged for two years or more is benign: BI-RADS 3
    becomes 2 (routine screening).

    Source: ACR BI-RADS Atlas, 5th ed. (2013), Mammography, Guidance, "Probably benign
    (BI-RADS 3)": after the 6-, 12- and 24-month follow-ups show no change, the final
    assessment is benign (category 2); Sickles, Radiology 1991;179:463-468 (0.5 %
    malignancy among probably-benign findings, most of them recognised by a change).
    """
    change = f.change
    if change is None or f.assessment.category is not Category.C3:
        return None
    if change.change is not Change.STABLE:
        return None
    months = _months(change.stable_since, study_date)
    if months is None or months < rules.stable_months - rules.schedule_tolerance_months:
        return None
    return RuleHit(
        "stable_two_years",
        f"unchanged for {months} months (since {_iso(change.stable_since)}): a probably-benign "
        "group stable for two years or more is benign, BI-RADS 2, routine screening "
        "(BI-RADS atlas)",
    )


def interval(f: ExamFinding, study_date: str | None, rules: FollowUpRules) -> tuple[int, RuleHit]:
    """Months to the next mammogram of a BI-RADS 3 finding and the rule's trace: at 6, 12
    and 24 months after it was first seen.

    Source: ACR BI-RADS Atlas, 5th ed. (2013), Mammography, Guidance, "Probably benign
    (BI-RADS 3)": an initial short-interval (6-month) follow-up, then 6 months later (12
    months after the first sighting), then 12 months later (24 months), with further
    yearly follow-up where the finding has not yet been stable for two years.
    """
    first = f.change.first_seen if f.change is not None and f.change.first_seen else study_date
    elapsed = _months(first, study_date) or 0
    due = next(
        (m for m in rules.schedule_months if m > elapsed + rules.schedule_tolerance_months),
        elapsed + 12,
    )
    months = due - elapsed
    if elapsed <= rules.schedule_tolerance_months:
        text = f"probably benign, seen for the first time: follow-up mammogram in {months} months"
    else:
        text = (
            f"probably benign, first seen {_iso(first)} ({elapsed} months ago): next "
            f"follow-up mammogram in {months} months ({due} months after the first sighting)"
        )
    return months, RuleHit("follow_up_interval", text)


def _iso(text: str | None) -> str:
    return f"{text[:4]}-{text[4:6]}-{text[6:8]}" if text and len(text) >= 8 else "an earlier exam"


def assess_change(
    f: ExamFinding, study_date: str | None, interval_months: int | None, rules: FollowUpRules
) -> ExamFinding:
    """The finding re-assessed with its change (:func:`suspicious_change`,
    :func:`stable_two_years`), and a BI-RADS 3 finding's follow-up interval
    (:func:`interval`). ``interval_months`` is the time since the prior exam (None: no
    prior)."""
    a = f.assessment
    hit = suspicious_change(f, interval_months, rules)
    if hit is not None:
        a = Assessment(
            Category.C4A,
            max(a.likelihood, rules.suspicious_likelihood),
            FollowUp.BIOPSY,
            (*a.rules, hit),
        )
    else:
        hit = stable_two_years(f, study_date, rules)
        if hit is not None:
            a = Assessment(Category.C2, a.likelihood, FollowUp.ROUTINE, (*a.rules, hit))
    months = None
    if a.category is Category.C3:
        months, hit = interval(replace(f, assessment=a), study_date, rules)
        a = Assessment(a.category, a.likelihood, a.follow_up, (*a.rules, hit))
    return replace(f, assessment=a, follow_up_months=months)
