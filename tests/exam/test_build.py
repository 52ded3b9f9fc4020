"""Reading an exam: pairing the views of a breast, one-view findings, breast and exam
categories, roles of additional views; the batch's exams.csv and breasts.csv from it."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from calcscope.apps.batch_tables import BREAST_COLUMNS, EXAM_COLUMNS, write_exams
from calcscope.exam import ExamImage, ExamView, ViewFinding, ViewModifier, ViewRole, build_exam
from calcscope.model import Laterality, View
from calcscope.reading.assess import Category, FollowUp

L, R = Laterality.LEFT, Laterality.RIGHT


def _finding(image: str, fid: int, dist: float, offset: float, cat: str = "4B", **kw):
    return ViewFinding(
        image=image,
        finding_id=fid,
        nipple_distance_mm=dist,
        offset_mm=offset,
        morphology=kw.pop("morphology", "fine_pleomorphic"),
        category=cat,
        likelihood=kw.pop("likelihood", 0.4),
        score=kw.pop("score", 0.8),
        **kw,
    )


def _image(key: str, lat: Laterality, view: View, findings=(), modifiers=()) -> ExamImage:
    return ExamImage(key, f"1.2.{key}", lat, ExamView(view, tuple(modifiers)), tuple(findings))


def test_a_cluster_on_both_views_is_one_finding_with_quadrant_and_clock():
    exam = build_exam(
        [
            _image("lcc", L, View.CC, [_finding("lcc", 1, 40.0, 20.0)]),
            _image("lmlo", L, View.MLO, [_finding("lmlo", 3, 44.0, 12.0, score=0.6)]),
            _image("rcc", R, View.CC),
            _image("rmlo", R, View.MLO),
        ],
        exam_id="e1",
    )
    (f,) = exam.breasts[L].findings
    assert f.both_views and f.views[ViewRole.MLO].finding_id == 3
    assert f.views[ViewRole.CC].sop_instance_uid == "1.2.lcc"
    assert (f.quadrant, f.clock) == ("upper outer", "2 o'clock")
    assert f.distance_from_nipple_mm == 42.0
    # more certain on two views than on either one
    assert f.score > 0.8 and f.assessment.category is Category.C4B
    assert "both the CC and MLO" in f.assessment.reason
    assert exam.breasts[R].findings == () and exam.breasts[R].assessment.category is Category.C1
    assert exam.assessment.category is Category.C4B
    assert "left breast" in exam.assessment.reason


def test_a_suspicious_cluster_on_one_view_only_is_recalled():
    exam = build_exam(
        [
            _image("lcc", L, View.CC, [_finding("lcc", 1, 40.0, 20.0)]),
            _image("lmlo", L, View.MLO, [_finding("lmlo", 1, 90.0, 12.0)]),  # too far
            _image("rcc", R, View.CC, [_finding("rcc", 1, 30.0, -9.0, "4C", likelihood=0.7)]),
            _image("rmlo", R, View.MLO),
        ],
        exam_id="e2",
    )
    left = exam.breasts[L].findings
    assert len(left) == 2 and not any(f.both_views for f in left)
    cc_only = next(f for f in left if ViewRole.CC in f.views)
    assert ViewRole.MLO not in cc_only.views
    assert cc_only.assessment.category is Category.C0
    assert cc_only.assessment.follow_up is FollowUp.ADDITIONAL_IMAGING
    assert "seen on the CC view only (not found on the MLO view)" in cc_only.assessment.reason
    assert cc_only.clock is None
    # a 4C cluster: its features decide, even on one view
    (right,) = exam.breasts[R].findings
    assert right.assessment.category is Category.C4C
    assert "features decide" in right.assessment.reason
    assert exam.assessment.category is Category.C4C  # the highest breast category


def test_a_missing_view_is_named_in_the_reason_and_spot_views_are_additional():
    spot = _image(
        "lspot", L, View.CC, [_finding("lspot", 1, 40.0, 20.0)], [ViewModifier.SPOT_COMPRESSION]
    )
    exam = build_exam(
        [_image("lcc", L, View.CC, [_finding("lcc", 1, 40.0, 20.0, "4A")]), spot],
        exam_id="e3",
    )
    assert exam.roles == {"lcc": ViewRole.CC, "lspot": ViewRole.ADDITIONAL}
    (f,) = exam.breasts[L].findings  # the spot view's finding is not a second finding
    assert "no MLO view of this breast" in f.assessment.reason
    assert f.assessment.category is Category.C0
    assert exam.breasts[R].assessment is None and exam.breasts[R].images == ()


def test_xccl_and_ml_stand_in_for_missing_cc_and_mlo_but_lose_to_them():
    imgs = [
        _image("xccl", L, View.XCCL),
        _image("ml", L, View.ML),
        _image("cc", L, View.CC),
        _image("lm", R, View.LM),
    ]
    roles = build_exam(imgs, exam_id="e4").roles
    assert roles["cc"] is ViewRole.CC and roles["xccl"] is ViewRole.ADDITIONAL
    assert roles["ml"] is ViewRole.MLO and roles["lm"] is ViewRole.MLO


def _views_json(folder: Path, study: str, lat: str, view: str, findings: list[dict]) -> None:
    folder.mkdir(parents=True)
    record = {"study": study, "laterality": lat, "view": view, "findings": findings}
    (folder / "views.json").write_text(json.dumps(record))


def _f(fid: int, dist: float, off: float, cat: str, kind: str = "cluster") -> dict:
    return {
        "finding_id": fid,
        "nipple_distance_mm": dist,
        "offset_mm": off,
        "morphology": "fine_pleomorphic" if kind == "cluster" else "coarse_popcorn",
        "category": cat,
        "likelihood": 0.3,
        "kind": kind,
    }


def test_batch_exams_csv_and_breasts_csv_come_from_one_exam_model(tmp_path: Path):
    _views_json(tmp_path / "a_rcc", "s1", "R", "CC", [_f(1, 40.0, 12.0, "4B")])
    _views_json(
        tmp_path / "a_rmlo",
        "s1",
        "R",
        "MLO",
        [_f(2, 43.0, 10.0, "4A"), _f(1, 60.0, 5.0, "2", "macro")],
    )
    _views_json(tmp_path / "b_lcc", "s2", "L", "CC", [_f(1, 30.0, -8.0, "4A")])
    exams_csv, breasts_csv = write_exams(tmp_path, ["a_rcc", "a_rmlo", "b_lcc", "missing"])
    with exams_csv.open() as fh:
        exams = list(csv.DictReader(fh))
    with breasts_csv.open() as fh:
        breasts = list(csv.DictReader(fh))
    assert tuple(exams[0]) == EXAM_COLUMNS and tuple(breasts[0]) == BREAST_COLUMNS
    # s1: one pair (both views) and a macro on one view; s2: a one-view cluster, recalled
    assert [(r["exam"], r["kind"], r["category"]) for r in exams] == [
        ("s1", "cluster", "4B"),
        ("s1", "macro", "2"),
        ("s2", "cluster", "0"),
    ]
    assert exams[0]["quadrant"] == "upper outer" and exams[0]["clock"] == "10 o'clock"
    assert exams[2]["exam_category"] == "0" and exams[2]["mlo_image"] == ""
    (row,) = breasts
    assert (row["cc_image"], row["cc_cluster_id"], row["mlo_cluster_id"]) == ("a_rcc", "1", "2")
    assert (row["quadrant"], row["clock"], row["category"]) == ("upper outer", "10", "4B")
