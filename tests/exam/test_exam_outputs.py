"""The exam's own outputs: ``calcscope analyze EXAM_DIR --sr --letter --html`` writes one
Mammography CAD SR referencing all four images, one letter and one page per exam, listed
in the exam JSON's ``outputs``; the per-image outputs stay; a single image gets none."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset

from calcscope.apps.cli import main
from calcscope.phantom.exam import write_exam_phantom
from calcscope.reports.exam import ExamReport, load_exam
from calcscope.reports.exam_letter import exam_letter_text
from calcscope.reports.sr_document import walk_items

SHAPE = (1200, 1000)  # 120 x 100 mm at 0.1 mm: small for speed
PATIENT_NAME = "PHANTOM^EXAM"
FLAGS = ["--sr", "--letter", "--html"]


@pytest.fixture(scope="module")
def exam_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("exam") / "exam0"
    write_exam_phantom(d, seed=0, spacing_mm=0.1, shape=SHAPE, laterality="L")
    return d


@pytest.fixture(scope="module")
def run(exam_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("out")
    assert main(["analyze", str(exam_dir), "--out", str(out), *FLAGS]) == 0
    (doc,) = out.glob("*.exam.json")
    return {"out": out, "doc": doc, "exam": load_exam(doc)}


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not installed (Debian package {package}: apt-get install {package})")
    return path


def _name(item: Dataset) -> str | None:
    seq = item.get("ConceptNameCodeSequence")
    return seq[0].CodeMeaning if seq else None


def _image_uids(item: Dataset) -> set[str]:
    return {
        str(i.ReferencedSOPSequence[0].ReferencedSOPInstanceUID)
        for i in walk_items(item)
        if i.ValueType == "IMAGE"
    }


def _composites(ds: Dataset) -> list[Dataset]:
    return [i for i in walk_items(ds) if _name(i) == "Composite Feature"]


def test_outputs_list_one_sr_letter_and_page_beside_the_image_outputs(run: dict) -> None:
    out, exam = run["out"], run["exam"]
    o = exam.outputs
    names = [o.sr, o.letter_html, o.letter_txt, o.html]
    assert all(n is not None and "/" not in n for n in names)
    assert o.sr.endswith(".sr.dcm") and o.html.endswith(".html") and o.html != o.letter_html
    for n in names:
        assert (run["doc"].parent / n).is_file()
    assert len(list(out.glob("*.sr.dcm"))) == 4 + 1  # each image's and the exam's
    assert len(list(out.glob("*.letter.txt"))) == 4 + 1
    for img in exam.images:  # the per-image outputs are kept
        assert (out / img.report.replace(".json", ".sr.dcm")).is_file()


def test_one_sr_references_every_image_of_the_exam(run: dict) -> None:
    exam: ExamReport = run["exam"]
    ds = pydicom.dcmread(run["doc"].parent / exam.outputs.sr)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.50"
    assert ds.StudyInstanceUID == exam.study_instance_uid
    sops = {i.sop_instance_uid for i in exam.images}
    assert len(sops) == 4
    (evidence,) = ds.CurrentRequestedProcedureEvidenceSequence
    assert evidence.StudyInstanceUID == exam.study_instance_uid
    referenced = {
        str(s.ReferencedSOPInstanceUID)
        for series in evidence.ReferencedSeriesSequence
        for s in series.ReferencedSOPSequence
    }
    assert referenced == sops
    (library,) = [i for i in ds.ContentSequence if _name(i) == "Image Library"]
    assert _image_uids(library) == sops
    assert str(ds.PatientName) == PATIENT_NAME  # the study's patient, not de-identified


def test_sr_has_one_finding_per_exam_finding_with_its_regions_on_each_view(run: dict) -> None:
    exam: ExamReport = run["exam"]
    ds = pydicom.dcmread(run["doc"].parent / exam.outputs.sr)
    findings = [f for b in exam.breasts.values() for f in b.findings]
    assert findings  # the phantom's cluster
    composites = _composites(ds)
    assert len(composites) == len(findings)
    both = [f for f in findings if set(f.views) == {"CC", "MLO"}]
    assert len(both) == 1
    (f,) = both
    on_views = [c for c in composites if len(_image_uids(c)) == 2]
    assert len(on_views) == 1
    assert _image_uids(on_views[0]) == {v.sop_instance_uid for v in f.views.values()}
    regions = [i for i in walk_items(on_views[0]) if _name(i) == "Outline"]
    assert len(regions) >= 2


def test_exam_sr_passes_dsrdump(run: dict) -> None:
    dsrdump = _tool("dsrdump", "dcmtk")
    sr = run["doc"].parent / run["exam"].outputs.sr
    res = subprocess.run([dsrdump, str(sr)], capture_output=True, text=True, timeout=60)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert "Mammography CAD SR Document" in out and "Composite Feature" in out
    bad = [ln for ln in out.splitlines() if ln.startswith(("E:", "F:")) or "error" in ln.lower()]
    assert not bad, "\n".join(bad)


def test_exam_sr_passes_dciodvfy(run: dict) -> None:
    dciodvfy = _tool("dciodvfy", "dicom3tools")
    sr = run["doc"].parent / run["exam"].outputs.sr
    res = subprocess.run([dciodvfy, str(sr)], capture_output=True, text=True, timeout=60)
    out = res.stdout + res.stderr
    assert not [ln for ln in out.splitlines() if ln.startswith("Error")], out


def test_one_letter_speaks_of_each_breast(run: dict, exam_dir: Path) -> None:
    exam: ExamReport = run["exam"]
    truth = json.loads((exam_dir / "truth.json").read_text())["cluster"]
    assert truth["laterality"] == "L"
    text = (run["doc"].parent / exam.outputs.letter_txt).read_text()
    html = (run["doc"].parent / exam.outputs.letter_html).read_text()
    assert "In your left breast the computer found one cluster" in text
    assert "your right breast. It is clear." in text
    assert "upper outer part" in text and "cm from the nipple" in text
    assert "o'clock" in text
    assert "The next step:" in text
    assert "not a medical device" in text and 'id="disclaimer"' in html
    assert "left breast" in html and "right breast" in html
    for letter in (text, html):
        assert "PHANTOM" not in letter and "CALCSCOPE-EXAM" not in letter


def test_letter_says_both_breasts_are_clear_without_findings(run: dict) -> None:
    exam: ExamReport = run["exam"]
    clean = {
        side: b.model_copy(update={"findings": [], "assessment": exam.breasts["R"].assessment})
        for side, b in exam.breasts.items()
    }
    text = exam_letter_text(
        exam.model_copy(update={"breasts": clean, "assessment": exam.breasts["R"].assessment})
    )
    assert "your right breast. It is clear." in text and "your left breast. It is clear." in text
    assert "cluster" not in text and "nothing more than your usual screening" in text


def test_one_page_shows_four_views_and_the_finding_on_both(run: dict) -> None:
    exam: ExamReport = run["exam"]
    html = (run["doc"].parent / exam.outputs.html).read_text()
    assert html.count('<figure class="view"') == 4
    for img in exam.images:
        assert f'src="{img.report.removesuffix(".json")}.overlay.png"' in html
    assert html.count('class="finding"') == 1
    assert html.count('class="view-link"') == 2  # the cluster, linked to both its views
    assert f'id="assessment">BI-RADS <span class="cat-{exam.assessment.category}"' in html
    assert 'id="breast-R"' in html and 'id="breast-L"' in html
    assert PATIENT_NAME not in html


def test_page_without_overlays_shows_no_images(exam_dir: Path, tmp_path: Path) -> None:
    assert main(["analyze", str(exam_dir), "--out", str(tmp_path), "--html", "--no-overlay"]) == 0
    (doc,) = tmp_path.glob("*.exam.json")
    exam = load_exam(doc)
    assert exam.outputs.sr is None and exam.outputs.letter_txt is None
    html = (tmp_path / exam.outputs.html).read_text()
    assert "<img" not in html and html.count("(no image)") == 4


def test_anonymized_exam_sr_holds_no_patient_and_matches_the_image_reports(
    exam_dir: Path, tmp_path: Path
) -> None:
    assert main(["analyze", str(exam_dir), "--out", str(tmp_path), "--sr", "--anonymize"]) == 0
    (doc,) = tmp_path.glob("*.exam.json")
    exam = load_exam(doc)
    raw = (tmp_path / exam.outputs.sr).read_bytes()
    assert PATIENT_NAME.encode() not in raw and b"CALCSCOPE-EXAM-0" not in raw
    ds = pydicom.dcmread(tmp_path / exam.outputs.sr)
    assert ds.PatientIdentityRemoved == "YES"
    original = {pydicom.dcmread(p).SOPInstanceUID for p in exam_dir.glob("*.dcm")}
    studies = {pydicom.dcmread(p).StudyInstanceUID for p in exam_dir.glob("*.dcm")}
    assert ds.StudyInstanceUID not in studies
    refs = _image_uids(ds)
    assert len(refs) == 4 and not refs & original
    # one seed for the run: the exam SR references the images as their reports name them
    reports = [json.loads(p.read_text()) for p in tmp_path.glob("*.json") if ".exam." not in p.name]
    assert refs == {r["source"]["sop_instance_uid"] for r in reports}
    # and the exam document names the study and its images as the SR does
    assert exam.study_instance_uid == ds.StudyInstanceUID and exam.study_date is None
    assert {i.sop_instance_uid for i in exam.images} == refs
    for study in studies:  # neither in the file names nor in any exam output
        assert not [p for p in tmp_path.iterdir() if study in p.name]
        assert study.encode() not in doc.read_bytes()


def test_single_image_keeps_its_outputs_and_gets_no_exam_outputs(
    exam_dir: Path, tmp_path: Path
) -> None:
    argv = ["analyze", str(exam_dir / "LCC.dcm"), "--out", str(tmp_path), "--no-overlay"]
    assert main([*argv, *FLAGS]) == 0
    (doc,) = tmp_path.glob("*.exam.json")
    o = load_exam(doc).outputs
    assert (o.sr, o.letter_html, o.letter_txt, o.html) == (None, None, None, None)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(
        [doc.name]
        + [f"LCC{s}" for s in (".json", ".sr.dcm", ".gsps.dcm", ".html", ".letter.html")]
        + ["LCC.letter.txt"]
    )
