"""Comparison with a prior exam: matching through a new positioning, the change of each
finding, the change rules of the assessment, and ``calcscope analyze`` finding the prior
itself or being told it (``--prior``) on synthetic follow-ups."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from calcscope.apps.cli import main
from calcscope.exam.compare import (
    MatchConfig,
    PriorExam,
    change_sentence,
    classify_change,
    compare_exams,
    match_findings,
    match_score,
    months_between,
    no_comparison,
    prior_from_exam,
)
from calcscope.exam.follow_up import FollowUpRules, assess_change
from calcscope.exam.model import (
    BreastReading,
    Change,
    Exam,
    ExamFinding,
    FindingChange,
    FindingKind,
    ViewLink,
)
from calcscope.exam.priors import compare_with_priors
from calcscope.exam.views import ViewRole
from calcscope.model import Laterality
from calcscope.phantom.follow_up import write_follow_up_phantom
from calcscope.reading.assess import Assessment, Category, FollowUp, RuleHit
from calcscope.reports.exam import ExamReport, load_exam, prior_from_report, to_exam_report
from helpers import assert_changes_as_truth

L, R = Laterality.LEFT, Laterality.RIGHT


def _finding(
    fid: int,
    lat: Laterality = L,
    d: float = 40.0,
    clock: str | None = "2 o'clock",
    n: int = 8,
    extent: float = 8.0,
    cat: Category = Category.C3,
    quadrant: str = "upper outer",
) -> ExamFinding:
    link = ViewLink(image="x.json", sop_instance_uid=None, finding_id=fid, view="CC")
    follow = FollowUp.SHORT_INTERVAL if cat is Category.C3 else FollowUp.BIOPSY
    return ExamFinding(
        id=fid,
        laterality=lat,
        kind=FindingKind.CLUSTER,
        views={ViewRole.CC: link, ViewRole.MLO: replace(link, view="MLO")},
        distance_from_nipple_mm=d,
        quadrant=quadrant,
        clock=clock,
        depth="middle",
        description=f"{n} punctate calcifications",
        assessment=Assessment(cat, 0.015, follow, (RuleHit("view", "grouped punctate"),)),
        score=0.8,
        morphology="punctate",
        n_calcifications=n,
        extent_mm=extent,
    )


def _exam(
    exam_id: str,
    date: str,
    *findings: ExamFinding,
    patient: str = "P1",
    issuer: str | None = None,
) -> Exam:
    breasts = {
        lat: BreastReading(
            lat,
            ("x.json",),
            tuple(f for f in findings if f.laterality is lat),
            Assessment(Category.C1, 0.0, FollowUp.ROUTINE, ()),
        )
        for lat in (R, L)
    }
    return Exam(
        exam_id=exam_id,
        name=exam_id,
        study_instance_uid=f"1.2.{exam_id}",
        patient_id=patient,
        study_date=date,
        images=(),
        roles={},
        breasts=breasts,
        unplaced=(),
        assessment=Assessment(Category.C1, 0.0, FollowUp.ROUTINE, ()),
        issuer_of_patient_id=issuer,
    )


def _by_id(exam: Exam) -> dict[int, ExamFinding]:
    return {f.id: f for f in exam.findings}


# --- matching -------------------------------------------------------------------------


def test_matching_survives_a_new_compression_and_prefers_the_same_place() -> None:
    prior = prior_from_exam(
        _exam("a", "20220520", _finding(1, d=30.0), _finding(2, d=18.0, clock="8 o'clock"))
    )
    # the current exam: farther from the nipple (other compression), an hour off, grown
    now = [
        _finding(7, d=34.0, clock="1 o'clock", n=20),
        _finding(8, d=19.5, clock="7 o'clock", quadrant="lower inner"),
        _finding(9, d=32.0, clock="8 o'clock", quadrant="lower inner"),  # no counterpart
    ]
    matches = match_findings(now, prior.findings, MatchConfig())
    assert [(m.finding_id, m.prior_finding_id) for m in matches] == [(7, 1), (8, 2)]
    assert all(0.5 <= m.score <= 1 for m in matches)


def test_no_match_across_breasts_or_beyond_the_distance_tolerance() -> None:
    (p,) = prior_from_exam(_exam("a", "20220520", _finding(1, d=30.0))).findings
    cfg = MatchConfig()
    assert match_score(_finding(2, lat=R, d=30.0), p, cfg) is None
    assert match_score(_finding(2, d=30.0 + cfg.distance_tolerance_mm + 1), p, cfg) is None
    assert match_score(_finding(2, d=30.0), p, cfg) == pytest.approx(1.0)


def test_change_numbers_decide_increased_stable_decreased() -> None:
    (p,) = prior_from_exam(_exam("a", "20220520", _finding(1, n=8, extent=8.0))).findings
    cfg = MatchConfig()
    assert classify_change(_finding(2, n=16, extent=12.0), p, cfg) is Change.INCREASED
    assert classify_change(_finding(2, n=10, extent=14.0), p, cfg) is Change.INCREASED
    assert classify_change(_finding(2, n=8, extent=14.0), p, cfg) is Change.STABLE  # edge
    assert classify_change(_finding(2, n=9, extent=9.0), p, cfg) is Change.STABLE
    assert classify_change(_finding(2, n=3, extent=5.0), p, cfg) is Change.DECREASED


def test_months_between_dicom_dates() -> None:
    assert months_between("20220520", "20240520") == 24
    assert months_between("20231120", "20240520") == 6
    assert months_between(None, "20240520") is None
    assert months_between("2024", "20240520") is None


# --- the change rules -----------------------------------------------------------------


def test_new_or_increasing_probably_benign_group_becomes_4a() -> None:
    prior = prior_from_exam(_exam("a", "20220520", _finding(1, n=6)))
    now = compare_exams(
        _exam("b", "20240520", _finding(1, n=18), _finding(2, d=70.0, clock="8 o'clock")),
        prior,
    )
    grown, new = _by_id(now)[1], _by_id(now)[2]
    assert grown.change is not None and grown.change.change is Change.INCREASED
    assert (grown.change.prior_n_calcifications, grown.change.n_calcifications) == (6, 18)
    assert new.change is not None and new.change.change is Change.NEW
    for f in (grown, new):
        assert f.assessment.category is Category.C4A
        assert f.assessment.follow_up is FollowUp.BIOPSY
        assert "suspicious_change" in [r.rule for r in f.assessment.rules]
        assert "not probably benign" in f.assessment.reason
    assert "6 -> 18 calcifications" in grown.assessment.reason
    assert now.assessment.category is Category.C4A
    assert now.comparison is not None and now.comparison.interval_months == 24


def test_a_probably_benign_group_stable_for_two_years_is_benign() -> None:
    prior = prior_from_exam(_exam("a", "20220520", _finding(1)))
    now = compare_exams(_exam("b", "20240520", _finding(1, n=9)), prior)
    (f,) = now.findings
    assert f.change is not None and f.change.change is Change.STABLE
    assert f.change.stable_since == "20220520"
    assert f.assessment.category is Category.C2 and f.assessment.follow_up is FollowUp.ROUTINE
    assert "unchanged for 24 months" in f.assessment.reason and f.follow_up_months is None
    # one year of stability is not enough: still 3, next mammogram a year later
    short = compare_exams(_exam("c", "20230520", _finding(1)), prior)
    (g,) = short.findings
    assert g.assessment.category is Category.C3 and g.follow_up_months == 12


def test_stability_over_two_years_rests_on_the_exam_before_the_prior() -> None:
    exams = [
        _exam("a", "20220520", _finding(1)),
        _exam("b", "20230520", _finding(1, d=42.0)),
        _exam("c", "20240520", _finding(1, d=39.0)),
    ]
    a, b, c = compare_with_priors(exams)
    assert a.comparison is not None and a.comparison.prior_study_date is None
    assert b.comparison is not None and b.comparison.interval_months == 12
    assert c.comparison is not None and c.comparison.prior_study_date == "20230520"
    assert c.comparison.older_study_date == "20220520"
    (f,) = c.findings
    assert f.change is not None and f.change.stable_since == "20220520"
    assert f.assessment.category is Category.C2


def test_follow_up_interval_of_a_probably_benign_finding() -> None:
    rules = FollowUpRules()
    first = no_comparison(_exam("a", "20220520", _finding(1)))
    assert first.comparison is not None and first.comparison.interval_months is None
    (f,) = first.findings
    assert f.change is None and f.follow_up_months == 6
    assert "seen for the first time" in f.assessment.reason
    for months_ago, date, due in ((6, "20221120", 6), (12, "20230520", 12)):
        seen = replace(_finding(1), change=FindingChange(Change.STABLE, first_seen="20220520"))
        g = assess_change(seen, date, months_ago, rules)
        assert g.follow_up_months == due, months_ago


def test_without_a_prior_nothing_changes_but_the_interval() -> None:
    exam = _exam("a", "20240520", _finding(1, cat=Category.C4B))
    (f,) = no_comparison(exam).findings
    assert f.assessment == exam.findings[0].assessment and f.follow_up_months is None


def test_priors_of_another_patient_are_not_used() -> None:
    a = _exam("a", "20220520", _finding(1), patient="P1")
    b = _exam("b", "20240520", _finding(1), patient="P2")
    _, b2 = compare_with_priors([a, b])
    assert b2.comparison is not None and b2.comparison.prior_study_date is None


@pytest.mark.parametrize(
    ("issuer_a", "issuer_b", "compared"),
    [
        ("HOSP-A", "HOSP-B", False),
        ("HOSP-A", "HOSP-A", True),
        ("HOSP-A", None, True),
        (None, "HOSP-B", True),
    ],
)
def test_the_same_patient_id_from_another_issuer_is_another_patient(
    issuer_a: str | None, issuer_b: str | None, compared: bool
) -> None:
    """Same PatientID and different issuers: not compared (neither automatically nor as
    an explicit prior); the same issuer, or one unknown: compared."""
    a = _exam("a", "20220520", _finding(1), issuer=issuer_a)
    b = _exam("b", "20240520", _finding(1), issuer=issuer_b)
    _, b2 = compare_with_priors([a, b])
    assert b2.comparison is not None
    assert (b2.comparison.prior_study_date == "20220520") is compared
    _, b3 = compare_with_priors([a, b], explicit=frozenset({"a"}))
    assert b3.comparison is not None and (b3.comparison.prior_study_date is not None) is compared
    (b4,) = compare_with_priors([b], [prior_from_exam(a)])
    assert b4.comparison is not None and (b4.comparison.prior_study_date is not None) is compared


def test_resolved_prior_findings_are_listed_per_breast() -> None:
    prior = prior_from_exam(_exam("a", "20220520", _finding(1), _finding(2, lat=R)))
    now = compare_exams(_exam("b", "20240520", _finding(1)), prior)
    assert [r.prior_finding_id for r in now.breasts[R].resolved] == [2]
    assert now.breasts[L].resolved == ()


def test_the_comparison_survives_the_exam_document() -> None:
    prior = prior_from_exam(_exam("a", "20220520", _finding(1)))
    now = compare_exams(_exam("b", "20240520", _finding(1, n=18)), prior)
    doc = ExamReport.model_validate_json(to_exam_report(now).model_dump_json())
    assert doc.schema_version == "1.1"
    assert doc.comparison is not None and doc.comparison.interval_months == 24
    (f,) = doc.breasts["L"].findings
    assert f.change is not None and f.change.change == "increased"
    again: PriorExam = prior_from_report(doc)
    assert again.findings[0].change is not None
    assert again.findings[0].n_calcifications == 18


def test_change_sentence_in_plain_words() -> None:
    prior = prior_from_exam(_exam("a", "20240520", _finding(1, n=6)))
    now = compare_exams(_exam("b", "20250520", _finding(1, n=18)), prior)
    (f,) = now.findings
    assert change_sentence(f, "20240520") == (
        "compared with your mammogram of 20 May 2024, a group of calcifications in your "
        "left breast has grown; a closer look is recommended"
    )
    assert change_sentence(_finding(1), "20240520") == ""


# --- end to end: synthetic follow-ups through calcscope analyze ----------------------

SEEDS = (2, 3)  # seeds whose three truth clusters the detector finds on both views


@pytest.fixture(scope="module")
def follow_ups(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("follow_up")
    dirs = {}
    for seed in SEEDS:
        write_follow_up_phantom(root / f"woman{seed}", seed=seed, spacing_mm=0.1)
        dirs[seed] = root / f"woman{seed}"
    out = root / "out"
    argv = ["analyze", *(str(dirs[s] / k) for s in SEEDS for k in ("prior", "current"))]
    assert main([*argv, "--out", str(out), "--no-overlay"]) == 0
    return {"dirs": dirs, "out": out, "root": root}


def _current(out: Path, folder: Path) -> ExamReport:
    truth = json.loads((folder / "truth.json").read_text())
    uid = truth["current"]["study_instance_uid"]
    (doc,) = [d for d in map(load_exam, out.glob("*.exam.json")) if d.study_instance_uid == uid]
    return doc


@pytest.mark.parametrize("seed", SEEDS)
def test_automatic_priors_label_growing_stable_and_new(follow_ups: dict, seed: int) -> None:
    folder = follow_ups["dirs"][seed]
    assert_changes_as_truth(_current(follow_ups["out"], folder), folder)
    prior_uid = json.loads((folder / "truth.json").read_text())["prior"]["study_instance_uid"]
    (prior,) = [
        d
        for d in map(load_exam, follow_ups["out"].glob("*.exam.json"))
        if d.study_instance_uid == prior_uid
    ]
    assert prior.comparison is not None and prior.comparison.interval_months is None


def test_prior_named_explicitly_as_images_or_as_a_previous_run(follow_ups: dict) -> None:
    folder = follow_ups["dirs"][SEEDS[0]]
    out = follow_ups["root"] / "explicit"
    argv = ["analyze", str(folder / "current"), "--prior", str(folder / "prior")]
    assert main([*argv, "--out", str(out), "--no-overlay"]) == 0
    assert_changes_as_truth(_current(out, folder), folder)
    # a previous run's output folder: its exam documents are read, not re-analysed
    out2 = follow_ups["root"] / "from_run"
    prior_run = follow_ups["root"] / "prior_run"
    assert main(["analyze", str(folder / "prior"), "--out", str(prior_run), "--no-overlay"]) == 0
    argv = ["analyze", str(folder / "current"), "--prior", str(prior_run)]
    assert main([*argv, "--out", str(out2), "--no-overlay"]) == 0
    assert len(list(out2.glob("*.json"))) == 4 + 1  # the current exam only
    assert_changes_as_truth(_current(out2, folder), folder)


@pytest.mark.parametrize("seed", SEEDS[:1])
def test_the_exam_letter_tells_the_changes(follow_ups: dict, seed: int) -> None:
    """The patient's letter says, in plain words, what changed since the prior mammogram."""
    from calcscope.reports.exam_letter import exam_letter_text

    text = exam_letter_text(_current(follow_ups["out"], follow_ups["dirs"][seed]))
    assert "Compared with your mammogram of 20 May 2022" in text
    assert "has grown" in text
    assert "is new" in text
    assert "has not changed" in text
