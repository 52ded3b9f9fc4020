"""The exam's Mammography CAD SR carries the comparison with the prior exam: each
finding's change as a CID 6002 code (with the numbers and the words), and the prior study
(its Study Instance UID and date, the prior findings resolved); read back from the file
and checked with dcmtk and dicom3tools."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset

from calcscope.apps.cli import main
from calcscope.phantom.follow_up import write_follow_up_phantom
from calcscope.reports.exam import ExamReport, load_exam
from calcscope.reports.exam_sr_change import (
    CHANGE_CODES,
    CHANGE_SINCE_PRIOR,
    COMPARISON_DONE,
    change_code,
)
from calcscope.reports.sr_document import walk_items

SEED = 2  # as tests/exam/test_compare.py: the three truth clusters are found on both views


def _name(item: Dataset) -> str | None:
    seq = item.get("ConceptNameCodeSequence")
    return seq[0].CodeValue if seq else None


def _current(out: Path, folder: Path) -> tuple[Path, ExamReport]:
    truth = json.loads((folder / "truth.json").read_text())
    uid = truth["current"]["study_instance_uid"]
    (path,) = [p for p in out.glob("*.exam.json") if load_exam(p).study_instance_uid == uid]
    return path, load_exam(path)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("sr_change")
    folder = root / "woman"
    write_follow_up_phantom(folder, seed=SEED, spacing_mm=0.1)
    out = root / "out"
    argv = ["analyze", str(folder / "prior"), str(folder / "current"), "--out", str(out)]
    assert main([*argv, "--no-overlay", "--sr"]) == 0
    path, doc = _current(out, folder)
    assert doc.outputs.sr is not None
    sr = path.parent / doc.outputs.sr
    return {"folder": folder, "out": out, "doc": doc, "sr": sr, "ds": pydicom.dcmread(sr)}


def _composite_changes(ds: Dataset) -> list[tuple[str, str]]:
    """(change code value, description) of each Composite Feature, in document order."""
    out = []
    for item in walk_items(ds):
        if _name(item) != "111015":
            continue
        kids = list(item.get("ContentSequence", []))
        codes = [k for k in kids if _name(k) == CHANGE_SINCE_PRIOR.value]
        texts = [k.TextValue for k in kids if _name(k) == "111021"]
        if codes:
            out.append((codes[0].ConceptCodeSequence[0].CodeValue, texts[0]))
    return out


def test_each_finding_s_change_is_coded_and_read_back(run: dict) -> None:
    doc: ExamReport = run["doc"]
    sided = [f for side in ("R", "L") for f in doc.breasts[side].findings]
    sided += doc.findings_unknown_side
    expected = [change_code(f.change).value for f in sided if f.change is not None]
    got = _composite_changes(run["ds"])
    assert [code for code, _ in got] == expected
    # the truth's growing, stable and new clusters give all three kinds of code
    kinds = {f.change.change for f in sided if f.change is not None}
    assert {"increased", "stable", "new"} <= kinds
    values = {c.value for kind in ("increased", "stable", "new") for c in CHANGE_CODES[kind]}
    assert {code for code, _ in got} <= values | {c.value for c in CHANGE_CODES["decreased"]}
    assert any(
        text.startswith("increased since the prior mammogram of 20220520") for _, text in got
    )


def test_the_prior_study_is_referenced(run: dict) -> None:
    truth = json.loads((run["folder"] / "truth.json").read_text())
    (done,) = [i for i in walk_items(run["ds"]) if _name(i) == COMPARISON_DONE.value]
    kids = {_name(k): k for k in done.ContentSequence}
    assert kids["110180"].UID == truth["prior"]["study_instance_uid"]
    assert kids["111060"].Date == "20220520"
    assert "24 months earlier" in kids["111021"].TextValue


def test_the_prior_exam_sr_has_no_change(run: dict) -> None:
    truth = json.loads((run["folder"] / "truth.json").read_text())
    uid = truth["prior"]["study_instance_uid"]
    (path,) = [p for p in run["out"].glob("*.exam.json") if load_exam(p).study_instance_uid == uid]
    doc = load_exam(path)
    assert doc.outputs.sr is not None
    ds = pydicom.dcmread(path.parent / doc.outputs.sr)
    assert not _composite_changes(ds)
    assert not [i for i in walk_items(ds) if _name(i) == COMPARISON_DONE.value]


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not installed (Debian package {package}: apt-get install {package})")
    return path


def test_the_compared_sr_passes_dsrdump_and_dciodvfy(run: dict) -> None:
    res = subprocess.run(
        [_tool("dsrdump", "dcmtk"), str(run["sr"])], capture_output=True, text=True, timeout=60
    )
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert "Finding of change since previous mammogram" in out
    bad = [ln for ln in out.splitlines() if ln.startswith(("E:", "F:")) or "error" in ln.lower()]
    assert not bad, "\n".join(bad)
    res = subprocess.run(
        [_tool("dciodvfy", "dicom3tools"), str(run["sr"])],
        capture_output=True,
        text=True,
        timeout=60,
    )
    out = res.stdout + res.stderr
    assert not [ln for ln in out.splitlines() if ln.startswith("Error")], out


def test_an_anonymized_sr_names_no_prior_date(run: dict, tmp_path: Path) -> None:
    folder = run["folder"]
    argv = ["analyze", str(folder / "prior"), str(folder / "current"), "--out", str(tmp_path)]
    assert main([*argv, "--no-overlay", "--sr", "--anonymize"]) == 0
    docs = [(p, load_exam(p)) for p in tmp_path.glob("*.exam.json")]
    ((path, doc),) = [
        (p, d) for p, d in docs if d.comparison and d.comparison.prior_study_instance_uid
    ]
    ds = pydicom.dcmread(path.parent / doc.outputs.sr)
    (done,) = [i for i in walk_items(ds) if _name(i) == COMPARISON_DONE.value]
    kids = {_name(k): k for k in done.ContentSequence}
    truth = json.loads((folder / "truth.json").read_text())
    assert kids["110180"].UID == doc.comparison.prior_study_instance_uid
    assert kids["110180"].UID != truth["prior"]["study_instance_uid"]
    assert "111060" not in kids
    assert "2022" not in " ".join(text for _, text in _composite_changes(ds))
