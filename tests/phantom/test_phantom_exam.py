"""``calcscope phantom --exam``: four DICOM views of one study as a scanner writes them,
and the truth of the cluster placed on both views of its breast."""

from __future__ import annotations

import json
from pathlib import Path

import pydicom
import pytest

from calcscope.apps.cli import main
from calcscope.exam.views import view_from_dataset
from calcscope.model import View


@pytest.fixture(scope="module")
def exam_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("phantom_exam") / "exam"
    argv = ["phantom", "--exam", str(d), "--seed", "2", "--laterality", "R", "--spacing-mm", "0.2"]
    assert main(argv) == 0
    return d


def test_four_views_of_one_study(exam_dir: Path) -> None:
    files = sorted(exam_dir.glob("*.dcm"))
    assert [f.name for f in files] == ["LCC.dcm", "LMLO.dcm", "RCC.dcm", "RMLO.dcm"]
    sets = [pydicom.dcmread(f) for f in files]
    assert len({ds.StudyInstanceUID for ds in sets}) == 1
    assert len({ds.SOPInstanceUID for ds in sets}) == 4
    assert {ds.PatientID for ds in sets} == {"CALCSCOPE-EXAM-2"}
    assert {ds.StudyDate for ds in sets} == {"20240315"}
    orientation = {
        (ds.ImageLaterality, ds.ViewPosition): list(ds.PatientOrientation) for ds in sets
    }
    # nipple to the image's right on the right breast (A), to its left on the left (P);
    # image top lateral on CC (rows run medially), superior on MLO (feet)
    assert orientation == {
        ("L", "CC"): ["P", "R"],
        ("L", "MLO"): ["P", "FR"],
        ("R", "CC"): ["A", "L"],
        ("R", "MLO"): ["A", "FL"],
    }
    assert [view_from_dataset(ds).view for ds in sets] == [View.CC, View.MLO] * 2


def test_truth_names_the_cluster_views_quadrant_and_clock(exam_dir: Path) -> None:
    truth = json.loads((exam_dir / "truth.json").read_text())
    cluster = truth["cluster"]
    assert cluster["laterality"] == "R" and truth["clean_breast"] == "L"
    assert cluster["views"]["CC"]["file"] == "RCC.dcm"
    assert cluster["views"]["MLO"]["file"] == "RMLO.dcm"
    # the right breast's upper outer quadrant is at 9-12 o'clock facing the patient
    assert cluster["quadrant"] == "upper outer" and cluster["clock"] == "10 o'clock"
    assert cluster["outer_mm"] > 5 and cluster["upper_mm"] > 5


def test_phantom_needs_a_file_or_an_exam_folder() -> None:
    assert main(["phantom"]) == 2
