"""Compare an exam with the woman's prior exam: match each finding to the prior's findings
of the same breast, say how it changed, and list the prior findings not seen now.

A new compression and positioning moves a finding by several millimetres on the image and
changes its distance from the nipple by about a tenth; what survives is the breast, the
view, the distance from the nipple (roughly), the quadrant and clock face, the depth third,
and the calcifications' number, size and morphology. :func:`match_score` weighs these
(:class:`MatchConfig`, with the tolerance measured on synthetic follow-ups with a changed
positioning, docs/accuracy.md); :func:`match_findings` pairs the findings greedily, best
score first; :func:`compare_exams` gives each finding its :class:`~calcscope.exam.model.Change`
and re-assesses the exam with the change rules (:mod:`calcscope.exam.follow_up`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date

from calcscope.exam.build import exam_assessment
from calcscope.exam.follow_up import FollowUpRules, assess_change
from calcscope.exam.model import (
    BreastReading,
    Change,
    Comparison,
    Exam,
    ExamFinding,
    FindingChange,
    FindingKind,
    ResolvedFinding,
)
from calcscope.model import Laterality
from calcscope.reading.assess import Category, assess_image

__all__ = [
    "MatchConfig",
    "PriorFinding",
    "PriorExam",
    "Match",
    "prior_from_exam",
    "match_score",
    "match_findings",
    "classify_change",
    "compare_exams",
    "no_comparison",
    "months_between",
    "change_sentence",
]


@dataclass(frozen=True)
class MatchConfig:
    """How findings of two exams are matched and their change told.

    Attributes
    ----------
    distance_tolerance_mm
        Findings whose distances from the nipple differ by more are never matched (mm;
        20: a new compression changes the distance by up to about 15 %).
    distance_scale_mm
        The distance term is ``exp(-(diff / scale)**2 / 2)`` (mm; 10).
    min_score
        A pair scoring below it is not a match (0.5; the score is in [0, 1]).
    weight_distance, weight_location, weight_depth, weight_morphology, weight_size,
    weight_views
        Weights of the score's terms (sum 1): distance from the nipple 0.4, quadrant and
        clock 0.3, depth third 0.1, morphology 0.1, number of calcifications 0.05 (low: a
        group that grows must still match), a view in common 0.05.
    count_increase_min, count_increase_fraction
        More calcifications: at least this many more (4) and this fraction more (0.5).
    extent_increase_min_mm, extent_increase_fraction
        A larger extent: at least this much larger (4 mm) and this fraction larger (0.6),
        with at least one calcification more.
        The thresholds are wide enough that the detector's variation between two
        exposures of an unchanged group (a calcification more or less, a member at the
        edge) reads as stable; the same amounts downwards read as decreased.
    """

    distance_tolerance_mm: float = 20.0
    distance_scale_mm: float = 10.0
    min_score: float = 0.5
    weight_distance: float = 0.4
    weight_location: float = 0.3
    weight_depth: float = 0.1
    weight_morphology: float = 0.1
    weight_size: float = 0.05
    weight_views: float = 0.05
    count_increase_min: int = 4
    count_increase_fraction: float = 0.5
    extent_increase_min_mm: float = 4.0
    extent_increase_fraction: float = 0.6


@dataclass(frozen=True)
class PriorFinding:
    """What a comparison needs of one finding of the prior exam (from an :class:`Exam` or
    from its JSON document, :func:`calcscope.reports.exam.prior_from_report`)."""

    id: int
    laterality: Laterality | None
    kind: FindingKind
    views: frozenset[str]  # "CC", "MLO"
    distance_from_nipple_mm: float | None
    quadrant: str | None
    clock: str | None
    depth: str | None
    morphology: str
    n_calcifications: int | None
    extent_mm: float | None
    category: str
    description: str
    change: FindingChange | None = None  # its own change against the exam before it


@dataclass(frozen=True)
class PriorExam:
    """The prior exam: its identity and findings."""

    exam_id: str
    study_instance_uid: str | None
    patient_id: str | None
    study_date: str | None  # YYYYMMDD
    findings: tuple[PriorFinding, ...]
    prior_study_date: str | None = None  # the exam it was itself compared with
    issuer_of_patient_id: str | None = None  # who issued patient_id (None: unknown)


@dataclass(frozen=True)
class Match:
    """A current finding matched to a prior one, with the score."""

    finding_id: int
    prior_finding_id: int
    score: float


def _prior_finding(f: ExamFinding) -> PriorFinding:
    return PriorFinding(
        id=f.id,
        laterality=f.laterality,
        kind=f.kind,
        views=frozenset(r.value for r in f.views),
        distance_from_nipple_mm=f.distance_from_nipple_mm,
        quadrant=f.quadrant,
        clock=f.clock,
        depth=f.depth,
        morphology=f.morphology,
        n_calcifications=f.n_calcifications,
        extent_mm=f.extent_mm,
        category=f.assessment.category.value,
        description=f.description,
        change=f.change,
    )


def prior_from_exam(exam: Exam) -> PriorExam:
    """The prior view of an exam read in the same run."""
    return PriorExam(
        exam_id=exam.exam_id,
        study_instance_uid=exam.study_instance_uid,
        patient_id=exam.patient_id,
        study_date=exam.study_date,
        findings=tuple(_prior_finding(f) for f in exam.findings),
        prior_study_date=exam.comparison.prior_study_date if exam.comparison else None,
        issuer_of_patient_id=exam.issuer_of_patient_id,
    )


_DEPTHS = ("anterior", "middle", "posterior")
_QUADRANT_WORDS = ("upper", "lower", "outer", "inner")


def _location_term(a: ExamFinding, b: PriorFinding) -> float:
    """Agreement of quadrant and clock face in [0, 1] (0.5 where either is unknown)."""
    if a.clock and b.clock:
        diff = abs(int(a.clock.split()[0]) - int(b.clock.split()[0])) % 12
        return {0: 1.0, 1: 0.8, 11: 0.8, 2: 0.4, 10: 0.4}.get(diff, 0.0)
    if not a.quadrant or not b.quadrant:
        return 0.5
    if a.quadrant == b.quadrant:
        return 0.9
    wa = {w for w in _QUADRANT_WORDS if w in a.quadrant.split()}
    wb = {w for w in _QUADRANT_WORDS if w in b.quadrant.split()}
    if {a.quadrant, b.quadrant} <= {"central", "subareolar"}:
        return 0.8
    if not wa or not wb:  # central / subareolar against a quadrant
        return 0.3
    contradict = ({"upper", "lower"} <= wa | wb and not ({"upper", "lower"} & wa & wb)) or (
        {"outer", "inner"} <= wa | wb and not ({"outer", "inner"} & wa & wb)
    )
    return 0.0 if contradict else 0.6


def _depth_term(a: str | None, b: str | None) -> float:
    if a not in _DEPTHS or b not in _DEPTHS:
        return 0.5
    return {0: 1.0, 1: 0.5}.get(abs(_DEPTHS.index(a) - _DEPTHS.index(b)), 0.0)


def _size_term(a: int | None, b: int | None) -> float:
    """Similar numbers of calcifications: 1 for equal, 0 for an eight-fold difference."""
    if not a or not b:
        return 0.5
    return max(0.0, 1.0 - abs(math.log(a / b)) / math.log(8.0))


def match_score(current: ExamFinding, prior: PriorFinding, config: MatchConfig) -> float | None:
    """How likely ``current`` is ``prior`` seen again, in [0, 1]; None where they cannot
    be (another breast or kind, unknown distance, or distances from the nipple more than
    ``config.distance_tolerance_mm`` apart)."""
    if current.laterality != prior.laterality or current.kind is not prior.kind:
        return None
    da, db = current.distance_from_nipple_mm, prior.distance_from_nipple_mm
    if da is None or db is None or abs(da - db) > config.distance_tolerance_mm:
        return None
    c = config
    terms = (
        (c.weight_distance, math.exp(-0.5 * ((da - db) / c.distance_scale_mm) ** 2)),
        (c.weight_location, _location_term(current, prior)),
        (c.weight_depth, _depth_term(current.depth, prior.depth)),
        (c.weight_morphology, 1.0 if current.morphology == prior.morphology else 0.3),
        (c.weight_size, _size_term(current.n_calcifications, prior.n_calcifications)),
        (c.weight_views, 1.0 if {r.value for r in current.views} & prior.views else 0.5),
    )
    total = sum(w for w, _ in terms)
    return round(sum(w * t for w, t in terms) / total, 4)


def match_findings(
    current: Sequence[ExamFinding], prior: Sequence[PriorFinding], config: MatchConfig
) -> list[Match]:
    """Pairs of a current and a prior finding scoring at least ``config.min_score``,
    taken greedily best first; each finding joins one pair at most."""
    options = []
    for a in current:
        for b in prior:
            s = match_score(a, b, config)
            if s is not None and s >= config.min_score:
                options.append((-s, a.id, b.id))
    used_a: set[int] = set()
    used_b: set[int] = set()
    out = []
    for s, ia, ib in sorted(options):
        if ia in used_a or ib in used_b:
            continue
        used_a.add(ia)
        used_b.add(ib)
        out.append(Match(ia, ib, -s))
    return sorted(out, key=lambda m: m.finding_id)


def _grew(now: float | None, before: float | None, least: float, fraction: float) -> bool:
    return now is not None and before is not None and now - before >= max(least, fraction * before)


def classify_change(current: ExamFinding, prior: PriorFinding, config: MatchConfig) -> Change:
    """INCREASED with more calcifications, or a larger extent with at least one more
    calcification (:class:`MatchConfig`); DECREASED with as many fewer, or a smaller extent
    with at least one fewer; else STABLE. A larger extent with no more calcifications is
    usually one member more or less at the group's edge, not growth."""
    c = config
    now_n, then_n = current.n_calcifications, prior.n_calcifications
    more = now_n is not None and then_n is not None and now_n > then_n
    fewer = now_n is not None and then_n is not None and now_n < then_n
    count = (c.count_increase_min, c.count_increase_fraction)
    extent = (c.extent_increase_min_mm, c.extent_increase_fraction)
    if _grew(now_n, then_n, *count) or (
        more and _grew(current.extent_mm, prior.extent_mm, *extent)
    ):
        return Change.INCREASED
    if _grew(then_n, now_n, *count) or (
        fewer and _grew(prior.extent_mm, current.extent_mm, *extent)
    ):
        return Change.DECREASED
    return Change.STABLE


def months_between(earlier: str | None, later: str | None) -> int | None:
    """Whole months (rounded) from one DICOM date (YYYYMMDD) to another; None if unknown."""
    a, b = _date(earlier), _date(later)
    if a is None or b is None:
        return None
    return int(round((b - a).days / (365.25 / 12)))


def _date(text: str | None) -> date | None:
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:8])) if text else None
    except (ValueError, IndexError):
        return None


def _change_of(
    f: ExamFinding, p: PriorFinding, m: Match, prior: PriorExam, config: MatchConfig
) -> FindingChange:
    change = classify_change(f, p, config)
    earlier = p.change
    first_seen = (earlier.first_seen if earlier else None) or prior.study_date
    stable_since = None
    if change is Change.STABLE:
        kept = earlier.stable_since if earlier and earlier.change is Change.STABLE else None
        stable_since = kept or prior.study_date
    return FindingChange(
        change=change,
        prior_finding_id=p.id,
        match_score=m.score,
        prior_n_calcifications=p.n_calcifications,
        n_calcifications=f.n_calcifications,
        prior_extent_mm=p.extent_mm,
        extent_mm=f.extent_mm,
        stable_since=stable_since,
        first_seen=first_seen,
        prior_category=p.category,
    )


def _reassess(exam: Exam, findings: dict[int, ExamFinding], resolved: dict) -> Exam:
    breasts = {}
    for lat, b in exam.breasts.items():
        mine = tuple(findings[f.id] for f in b.findings)
        assessment = assess_image([f.assessment for f in mine]) if b.assessment else None
        breasts[lat] = BreastReading(lat, b.images, mine, assessment, resolved.get(lat, ()))
    unplaced = tuple(findings[f.id] for f in exam.unplaced)
    return replace(
        exam,
        breasts=breasts,
        unplaced=unplaced,
        assessment=exam_assessment(breasts, unplaced),
    )


def no_comparison(exam: Exam, rules: FollowUpRules | None = None) -> Exam:
    """The exam without a prior: ``comparison`` all null; a probably-benign (BI-RADS 3)
    finding, seen now for the first time, gets its first follow-up interval."""
    rules = rules or FollowUpRules()
    findings = {f.id: assess_change(f, exam.study_date, None, rules) for f in exam.findings}
    return replace(_reassess(exam, findings, {}), comparison=Comparison())


def compare_exams(
    exam: Exam,
    prior: PriorExam,
    config: MatchConfig | None = None,
    rules: FollowUpRules | None = None,
) -> Exam:
    """The exam compared with ``prior``: each finding's change, the prior's findings not
    seen now (per breast), the comparison's identity and interval, and the assessment
    re-read with the change rules (:func:`calcscope.exam.follow_up.assess_change`)."""
    config, rules = config or MatchConfig(), rules or FollowUpRules()
    matches = {m.finding_id: m for m in match_findings(exam.findings, prior.findings, config)}
    by_id = {p.id: p for p in prior.findings}
    interval = months_between(prior.study_date, exam.study_date)
    findings: dict[int, ExamFinding] = {}
    for f in exam.findings:
        m = matches.get(f.id)
        if m is None:
            change = FindingChange(
                Change.NEW,
                n_calcifications=f.n_calcifications,
                extent_mm=f.extent_mm,
                first_seen=exam.study_date,
            )
        else:
            change = _change_of(f, by_id[m.prior_finding_id], m, prior, config)
        findings[f.id] = assess_change(replace(f, change=change), exam.study_date, interval, rules)
    seen = {m.prior_finding_id for m in matches.values()}
    resolved: dict[Laterality, tuple[ResolvedFinding, ...]] = {}
    for lat in (Laterality.RIGHT, Laterality.LEFT):
        resolved[lat] = tuple(
            ResolvedFinding(
                p.id, p.kind.value, p.description, p.distance_from_nipple_mm, p.quadrant
            )
            for p in prior.findings
            if p.laterality is lat and p.id not in seen
        )
    comparison = Comparison(
        prior_study_instance_uid=prior.study_instance_uid,
        prior_study_date=prior.study_date,
        interval_months=interval,
        prior_exam_id=prior.exam_id,
        older_study_date=prior.prior_study_date,
    )
    return replace(_reassess(exam, findings, resolved), comparison=comparison)


_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_WORDS = {
    Change.NEW: "is new",
    Change.INCREASED: "has grown",
    Change.STABLE: "has not changed",
    Change.DECREASED: "has become smaller",
}


def long_date(text: str | None) -> str | None:
    """A DICOM date (YYYYMMDD) in words, e.g. \"20 May 2024\"; None when unreadable."""
    d = _date(text)
    return None if d is None else f"{d.day} {_MONTHS[d.month - 1]} {d.year}"


def change_sentence(finding: ExamFinding, prior_date: str | None) -> str:
    """A finding's change in plain words for the patient's letter, e.g. "compared with
    your mammogram of 20 May 2024, a small group of calcifications in your left breast has
    grown; a closer look is recommended"; "" when the finding was not compared.

    ``prior_date`` is the prior exam's date (DICOM YYYYMMDD).
    """
    if finding.change is None:
        return ""
    when = long_date(prior_date)
    opening = (
        f"compared with your mammogram of {when}" if when else "compared with your last mammogram"
    )
    sides = {Laterality.LEFT: "your left breast", Laterality.RIGHT: "your right breast"}
    side = sides[finding.laterality] if finding.laterality is not None else "your breast"
    if finding.kind is FindingKind.MACRO:
        what = "a calcification of a harmless-looking kind"
    elif (finding.n_calcifications or 0) <= 12:
        what = "a small group of calcifications"
    else:
        what = "a group of calcifications"
    cat = finding.assessment.category
    if cat is Category.C0 or cat.rank >= Category.C4A.rank:
        advice = "a closer look is recommended"
    elif cat is Category.C3:
        months = finding.follow_up_months or 6
        advice = f"a check-up mammogram in {months} months is recommended"
    else:
        advice = "no more than your routine screening is needed"
    return f"{opening}, {what} in {side} {_WORDS[finding.change.change]}; {advice}"
