"""``calcscope phantom --exam DIR --follow-up``: a prior and a current exam of one woman,
two years apart, positioned differently, with a growing, a stable and a new cluster."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest

from calcscope.apps.cli import main


@pytest.fixture(scope="module")
def follow_up(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("phantom_follow_up") / "woman"
    argv = ["phantom", "--exam", str(d), "--follow-up", "--seed", "3", "--spacing-mm", "0.2"]
    assert main(argv) == 0
    return d


def test_two_studies_of_one_patient_two_years_apart(follow_up: Path) -> None:
    prior = [pydicom.dcmread(p) for p in sorted((follow_up / "prior").glob("*.dcm"))]
    current = [pydicom.dcmread(p) for p in sorted((follow_up / "current").glob("*.dcm"))]
    assert len(prior) == len(current) == 4
    assert {ds.PatientID for ds in prior + current} == {"CALCSCOPE-FOLLOWUP-3"}
    assert {ds.StudyDate for ds in prior} == {"20220520"}
    assert {ds.StudyDate for ds in current} == {"20240520"}
    uids = {ds.StudyInstanceUID for ds in prior}, {ds.StudyInstanceUID for ds in current}
    assert len(uids[0]) == len(uids[1]) == 1 and uids[0] != uids[1]
    truth = json.loads((follow_up / "truth.json").read_text())
    assert truth["interval_months"] == 24
    assert truth["prior"]["study_instance_uid"] in uids[0]
    # another compression: the breast itself is drawn anew
    assert not np.array_equal(prior[0].pixel_array, current[0].pixel_array)


def test_truth_has_a_growing_a_stable_and_a_new_cluster(follow_up: Path) -> None:
    truth = json.loads((follow_up / "truth.json").read_text())
    by_name = {c["name"]: c for c in truth["clusters"]}
    assert {n: c["change"] for n, c in by_name.items()} == {
        "growing": "increased",
        "stable": "stable",
        "new": "new",
    }
    grow, stay, new = by_name["growing"], by_name["stable"], by_name["new"]
    assert grow["current"]["n_calcifications"] > grow["prior"]["n_calcifications"]
    assert grow["current"]["radius_mm"] > grow["prior"]["radius_mm"]
    assert stay["current"]["n_calcifications"] == stay["prior"]["n_calcifications"]
    assert new["prior"] is None and new["current"]["n_calcifications"] > 0
    # a changed positioning: farther from the nipple and moved on the image by a few mm
    for c in (grow, stay):
        before, now = c["prior"], c["current"]
        assert now["distance_from_nipple_mm"] > before["distance_from_nipple_mm"]
        moved = np.hypot(
            *np.subtract(now["views"]["CC"]["center_rc"], before["views"]["CC"]["center_rc"])
        )
        assert moved * 0.2 > 1.0  # pixels of 0.2 mm
        assert now["quadrant"] == before["quadrant"]


def test_follow_up_needs_an_exam_folder() -> None:
    assert main(["phantom", "--out", "x.dcm", "--follow-up"]) == 2
