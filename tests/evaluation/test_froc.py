"""Tests of calcscope.evaluation.froc: hand-made detections and truths, FROC points by hand."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest

from calcscope.errors import UnreadableFileError
from calcscope.evaluation.froc import (
    FROC_MARKS,
    MatchResult,
    froc_curve,
    load_detections_from_json,
    match_calcifications,
    match_clusters,
    plot_froc,
    sensitivity_at,
    write_froc_csv,
)
from calcscope.evaluation.truth import ImageTruth, TruthCluster, read_mias

SPACING_MM = 0.2  # mini-MIAS: the 2 mm radius floor is 10 pixels


def image_truth(image_id: str, circles: list[tuple[float, float, float]]) -> ImageTruth:
    """Truth with one cluster per ``(row, col, radius_px)``."""
    clusters = tuple(
        TruthCluster(image_id, (r, c), rad * SPACING_MM, rad, "benign", "CALC")
        for r, c, rad in circles
    )
    return ImageTruth(image_id, clusters, (), bool(clusters), (), None, SPACING_MM)


# Three images, worked by hand:
# A: T1 (100, 100) r 20 is hit at 0.9 and again, a duplicate, at 0.6; T2 (300, 300) r 5
#    is hit at 0.7 from 8 px away (only with the 10 px floor); (500, 500) 0.8 is an FP.
# B: T3 (200, 200) r 15: (200, 230) 0.95 is 30 px away, an FP; (210, 200) 0.3 hits it.
# C: normal: 0.5 and 0.2 are FPs.
TRUTH_A = image_truth("A", [(100, 100, 20), (300, 300, 5)])
TRUTH_B = image_truth("B", [(200, 200, 15)])
TRUTH_C = image_truth("C", [])
DETS_A = [((105, 105), 0.9), ((100, 110), 0.6), ((308, 300), 0.7), ((500, 500), 0.8)]
DETS_B = [((200, 230), 0.95), ((210, 200), 0.3)]
DETS_C = [((50, 50), 0.5), ((60, 60), 0.2)]

# threshold:  0.95  0.9  0.8  0.7  0.5  0.3  0.2
# hits:          0    1    1    2    2    3    3   of 3 true clusters
# FPs:           1    1    2    2    3    3    4   over 3 images
EXPECTED_THRESHOLD = [0.95, 0.9, 0.8, 0.7, 0.5, 0.3, 0.2]
EXPECTED_SENS = [0, 1 / 3, 1 / 3, 2 / 3, 2 / 3, 1, 1]
EXPECTED_FP = [1 / 3, 1 / 3, 2 / 3, 2 / 3, 1, 1, 4 / 3]


def matches() -> list[MatchResult]:
    return [
        match_clusters(DETS_A, TRUTH_A, spacing_mm=SPACING_MM),
        match_clusters(DETS_B, TRUTH_B, spacing_mm=SPACING_MM),
        match_clusters(DETS_C, TRUTH_C, spacing_mm=SPACING_MM),
    ]


def test_match_clusters_per_image() -> None:
    a, b, c = matches()
    assert a == MatchResult((0.9, 0.7), (0.8,), "A")  # the duplicate 0.6 is in neither
    assert b == MatchResult((0.3,), (0.95,), "B")
    assert c == MatchResult((), (0.5, 0.2), "C")  # a normal image contributes FPs only
    assert (a.n_true, a.n_hit, c.n_true, c.n_hit) == (2, 2, 0, 0)


def test_duplicate_detection_is_not_a_false_positive() -> None:
    truth = image_truth("D", [(100, 100, 20)])
    dets = [((100, 100), 0.5), ((110, 100), 0.9), ((90, 95), 0.7)]
    assert match_clusters(dets, truth, spacing_mm=SPACING_MM) == MatchResult((0.9,), (), "D")


def test_match_is_independent_of_detection_order() -> None:
    shuffled = DETS_A[:]
    random.Random(3).shuffle(shuffled)
    assert match_clusters(shuffled, TRUTH_A, spacing_mm=SPACING_MM) == matches()[0]


def test_radius_floor_is_2_mm() -> None:
    truth = image_truth("F", [(300, 300, 5)])
    on_floor = [((310, 300), 0.7)]  # 10 px = 2 mm at 0.2 mm: inside
    beyond = [((310.5, 300), 0.7)]
    assert match_clusters(on_floor, truth, spacing_mm=0.2).true_scores == (0.7,)
    assert match_clusters(beyond, truth, spacing_mm=0.2) == MatchResult((None,), (0.7,), "F")
    # no floor: 8 px from a 5 px circle is a miss and a false positive
    no_floor = match_clusters(DETS_A, TRUTH_A, spacing_mm=SPACING_MM, min_radius_mm=0.0)
    assert no_floor == MatchResult((0.9, None), (0.8, 0.7), "A")
    # at 0.1 mm the same floor is 20 px
    assert match_clusters([((318, 300), 0.4)], truth, spacing_mm=0.1).true_scores == (0.4,)


def test_radius_from_mm_when_no_pixels() -> None:
    truth = ImageTruth(
        "M", (TruthCluster("M", (0.0, 0.0), 6.0, None, None, "x"),), (), True, (), None, None
    )
    hit = match_clusters([((0, 29), 1.0)], truth, spacing_mm=0.2)  # 6 mm = 30 px
    assert hit.true_scores == (1.0,)


def test_detection_in_overlapping_circles_hits_both() -> None:
    truth = image_truth("O", [(100, 100, 30), (100, 140, 30)])
    result = match_clusters([((100, 120), 0.6)], truth, spacing_mm=SPACING_MM)
    assert result == MatchResult((0.6, 0.6), (), "O")


def test_unlocated_truth_is_refused() -> None:
    truth = ImageTruth(
        "N", (TruthCluster("N", None, None, None, "malignant", "CALC"),), (), True, (), None, 0.2
    )
    with pytest.raises(ValueError, match="image-level"):
        match_clusters([], truth, spacing_mm=0.2)
    with pytest.raises(ValueError, match="spacing"):
        match_clusters([], TRUTH_C, spacing_mm=0.0)


def test_froc_curve_points_by_hand() -> None:
    curve = froc_curve(matches())
    assert curve.n_images == 3
    assert curve.n_true == 3
    np.testing.assert_allclose(curve.threshold, EXPECTED_THRESHOLD)
    np.testing.assert_allclose(curve.sensitivity, EXPECTED_SENS)
    np.testing.assert_allclose(curve.mean_fp_per_image, EXPECTED_FP)
    np.testing.assert_array_equal(curve.n_hit, [0, 1, 1, 2, 2, 3, 3])
    np.testing.assert_array_equal(curve.n_fp, [1, 1, 2, 2, 3, 3, 4])


def test_froc_curve_given_thresholds() -> None:
    curve = froc_curve(matches(), thresholds=np.array([0.5, 0.9, 0.0]))
    np.testing.assert_allclose(curve.threshold, [0.9, 0.5, 0.0])
    np.testing.assert_allclose(curve.sensitivity, [1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(curve.mean_fp_per_image, [1 / 3, 1, 4 / 3])


def test_normal_images_dilute_false_positives() -> None:
    with_more_normals = matches() + [MatchResult((), ()), MatchResult((), ())]
    curve = froc_curve(with_more_normals)
    np.testing.assert_allclose(curve.sensitivity, EXPECTED_SENS)
    np.testing.assert_allclose(curve.mean_fp_per_image, np.array(EXPECTED_FP) * 3 / 5)


def test_froc_curve_edge_cases() -> None:
    with pytest.raises(ValueError):
        froc_curve([])
    only_normals = froc_curve([MatchResult((), (0.4,))])
    assert only_normals.n_true == 0
    assert np.isnan(only_normals.sensitivity).all()
    assert np.isnan(sensitivity_at(only_normals, 1.0))


@pytest.mark.parametrize(
    ("fp", "expected"),
    [(0.25, 0.0), (1 / 3, 1 / 3), (0.5, 1 / 3), (2 / 3, 2 / 3), (0.99, 2 / 3), (1.0, 1.0), (5, 1)],
)
def test_sensitivity_at_picks_the_best_point_within_the_fp_rate(fp: float, expected: float) -> None:
    assert sensitivity_at(froc_curve(matches()), fp) == pytest.approx(expected)


def test_match_calcifications_greedy_one_to_one() -> None:
    points = [(10.0, 10.0), (10.0, 20.0), (50.0, 50.0)]
    dets = [((11, 10), 0.9), ((12, 10), 0.8), ((10, 16), 0.7), ((50, 56), 0.6)]
    # spacing 0.1 mm: 0.5 mm = 5 px. (12, 10) is 1 px from a point already taken and
    # 10.2 px from the next: a false positive; (50, 56) is 6 px away: a false positive.
    result = match_calcifications(dets, points, spacing_mm=0.1, image_id="I")
    assert result == MatchResult((0.9, 0.7, None), (0.8, 0.6), "I")


def test_match_calcifications_higher_score_chooses_first() -> None:
    points = np.array([[0.0, 0.0], [0.0, 8.0]])
    # the 0.5 detection is 4 px from both; the 0.9 one takes (0, 0) first
    dets = [((0, 4), 0.5), ((0, 1), 0.9)]
    assert match_calcifications(dets, points, spacing_mm=0.1).true_scores == (0.9, 0.5)
    assert match_calcifications(dets, [], spacing_mm=0.1) == MatchResult((), (0.9, 0.5))
    wider = match_calcifications([((0, 14), 0.3)], points, spacing_mm=0.1, max_distance_mm=0.6)
    assert wider.true_scores == (None, 0.3)


def test_write_froc_csv(tmp_path: Path) -> None:
    path = write_froc_csv(froc_curve(matches()), tmp_path / "out" / "froc.csv")
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 7
    assert [float(r["threshold"]) for r in rows] == EXPECTED_THRESHOLD
    assert [float(r["sensitivity"]) for r in rows] == pytest.approx(EXPECTED_SENS, abs=1e-5)
    assert [float(r["mean_fp_per_image"]) for r in rows] == pytest.approx(EXPECTED_FP, abs=1e-5)
    assert {r["n_true"] for r in rows} == {"3"} and {r["n_images"] for r in rows} == {"3"}


def test_plot_froc_writes_png(tmp_path: Path) -> None:
    path = plot_froc(froc_curve(matches()), tmp_path / "froc.png", title="test (hand-made)")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 5000
    assert FROC_MARKS == (0.25, 0.5, 1.0, 2.0)


def test_load_detections_from_json(tmp_path: Path) -> None:
    report = {
        "clusters": [{"id": 1, "center_rc": [10.5, 20.0], "score": 0.8}],
        "calcifications": [
            {"id": 1, "center_rc": [10.0, 19.0], "score": 0.9},
            {"id": 2, "center_rc": [11.0, 21.0], "score": 0.4},
        ],
    }
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report), encoding="utf-8")
    assert load_detections_from_json(path) == [((10.5, 20.0), 0.8)]
    assert load_detections_from_json(path, "calcification") == [
        ((10.0, 19.0), 0.9),
        ((11.0, 21.0), 0.4),
    ]
    with pytest.raises(ValueError, match="level"):
        load_detections_from_json(path, "macro")
    path.write_text(json.dumps({"clusters": [{"center_rc": [1, 2]}]}), encoding="utf-8")
    with pytest.raises(UnreadableFileError, match="score"):
        load_detections_from_json(path)
    with pytest.raises(UnreadableFileError):
        load_detections_from_json(tmp_path / "missing.json")


def test_perfect_detector_on_real_mias_truth(shared_data: Path) -> None:
    info = shared_data / "mini-mias" / "Info.txt"
    if not info.is_file():
        pytest.skip("mini-MIAS Info.txt not in the shared data")
    images = sorted(p.stem for p in (info.parent / "images").glob("mdb*.pgm"))
    truth = read_mias(info, images)
    usable = [t for t in truth.values() if t.excluded_reason is None]
    results = [
        match_clusters(
            [(c.center_rc, 0.9) for c in t.clusters if c.center_rc is not None],
            t,
            spacing_mm=SPACING_MM,
        )
        for t in usable
    ]
    curve = froc_curve(results)
    assert curve.n_images == 72  # mdb216 and mdb245 have no coordinates
    assert curve.n_true == 14  # 12 located images, mdb226 with 3 circles
    assert sensitivity_at(curve, 0.0) == 1.0
