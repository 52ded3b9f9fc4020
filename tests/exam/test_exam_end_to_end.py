"""Two synthetic four-view exams analysed end to end by ``calcscope analyze``: one exam
document per study, the cluster reported once with both views, the right quadrant and
clock, the clean breast without findings, the exam category the highest breast's."""

from __future__ import annotations

import json
from pathlib import Path

import pydicom
import pytest

from calcscope.apps.cli import main
from calcscope.phantom.exam import write_exam_phantom
from calcscope.reading.assess import Category
from calcscope.reports.exam import ExamReport, load_exam

SHAPE = (1200, 1000)  # 120 x 100 mm at 0.1 mm: small for speed


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("exams")
    dirs = {}
    for seed, lat in ((0, "L"), (3, "R")):  # seeds whose clean breast the detector leaves clean
        d = root / f"exam{seed}"
        write_exam_phantom(d, seed=seed, spacing_mm=0.1, shape=SHAPE, laterality=lat)
        dirs[seed] = d
    out = root / "out"
    assert main(["analyze", str(dirs[0]), str(dirs[3]), "--out", str(out), "--no-overlay"]) == 0
    return {"dirs": dirs, "out": out}


def _exam_of(out: Path, folder: Path) -> tuple[ExamReport, Path]:
    uid = pydicom.dcmread(folder / "LCC.dcm").StudyInstanceUID
    docs = [p for p in out.glob("*.exam.json") if load_exam(p).study_instance_uid == uid]
    assert len(docs) == 1
    return load_exam(docs[0]), docs[0]


def _hour(clock: str) -> int:
    return int(clock.split()[0])


@pytest.mark.parametrize("seed", [0, 3])
def test_one_exam_document_per_study_with_the_cluster_once(run: dict, seed: int) -> None:
    out, folder = run["out"], run["dirs"][seed]
    assert len(list(out.glob("*.exam.json"))) == 2
    assert len(list(out.glob("*.json"))) == 2 + 8  # and the eight image reports
    truth = json.loads((folder / "truth.json").read_text())["cluster"]
    exam, path = _exam_of(out, folder)
    assert exam.schema_name == "calcscope.exam" and exam.patient_id == f"CALCSCOPE-EXAM-{seed}"
    assert exam.study_date == "20240315" and len(exam.images) == 4
    for img in exam.images:  # each image's report and SOP Instance UID
        report = json.loads((path.parent / img.report).read_text())
        assert report["source"]["sop_instance_uid"] == img.sop_instance_uid
        assert img.role == img.view
    lat = truth["laterality"]
    clean = "R" if lat == "L" else "L"
    assert exam.breasts[clean].findings == []
    assert exam.breasts[clean].assessment.category == "1"
    clusters = [f for f in exam.breasts[lat].findings if f.kind == "cluster"]
    both = [f for f in clusters if set(f.views) == {"CC", "MLO"}]
    assert len(both) == 1 and len(clusters) == 1
    (f,) = both
    assert f.quadrant == truth["quadrant"] == "upper outer"
    assert abs(_hour(f.clock) - _hour(truth["clock"])) <= 1
    assert abs(f.distance_from_nipple_mm - truth["distance_from_nipple_mm"]) < 10
    sops = {i.view: i.sop_instance_uid for i in exam.images if i.laterality == lat}
    assert f.views["CC"].sop_instance_uid == sops["CC"]
    assert f.views["MLO"].sop_instance_uid == sops["MLO"]
    worst = max(
        (b.assessment for b in exam.breasts.values()), key=lambda a: Category(a.category).rank
    )
    assert exam.assessment.category == worst.category != "1"
    assert exam.outputs.sr is None and exam.outputs.letter_html is None


def test_anonymize_leaves_the_patient_id_out_of_the_exam(run: dict, tmp_path: Path) -> None:
    folder = run["dirs"][0]
    argv = ["analyze", str(folder / "RCC.dcm"), str(folder / "RMLO.dcm"), "--out", str(tmp_path)]
    assert main([*argv, "--no-overlay", "--anonymize"]) == 0
    (doc,) = tmp_path.glob("*.exam.json")
    assert load_exam(doc).patient_id is None
    assert b"CALCSCOPE-EXAM-0" not in doc.read_bytes()


def test_pipeline_analyze_exam_reads_the_same_exam(run: dict) -> None:
    from calcscope.pipeline import analyze_exam
    from calcscope.reports.exam import to_exam_report

    folder = run["dirs"][0]
    files = sorted(folder.glob("*.dcm"))
    result = analyze_exam(files, keys=[f"{p.stem}.json" for p in files])
    assert len(result.analyses) == 4
    api = to_exam_report(result.exam)
    cli, _ = _exam_of(run["out"], folder)
    assert api.study_instance_uid == cli.study_instance_uid
    assert api.assessment.category == cli.assessment.category
    for lat in ("L", "R"):
        a, b = api.breasts[lat], cli.breasts[lat]
        assert [(f.kind, sorted(f.views), f.quadrant, f.clock) for f in a.findings] == [
            (f.kind, sorted(f.views), f.quadrant, f.clock) for f in b.findings
        ]
