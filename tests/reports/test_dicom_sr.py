"""DICOM exports: the Mammography CAD SR and the presentation state.

The SR is read back and compared with the JSON report; dcmtk (``dsrdump``,
``dcmpschk``: Debian package ``dcmtk``) and dicom3tools (``dciodvfy``: Debian package
``dicom3tools``) validate both files when installed, and the tests skip otherwise.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import replace
from io import BytesIO

import numpy as np
import pydicom
import pytest

from calcscope.apps.cli import analyze_files
from calcscope.config import Config
from calcscope.model import Source
from calcscope.reports.dicom_bytes import dataset_bytes
from calcscope.reports.dicom_source import Deidentifier
from calcscope.reports.gsps import GSPS_STORAGE, build_gsps
from calcscope.reports.schema import to_report
from calcscope.reports.sr import (
    FOLLOW_UP_CODE,
    MAMMOGRAPHY_CAD_SR_STORAGE,
    build_sr,
    read_sr,
    sr_bytes,
    view_code,
)
from helpers import phantom_case_dicom

PATIENT = {"PatientName": "Quixotica^Zebulonia", "PatientID": "PID-424242-XYZ"}
BIRTH_DATE = "19610203"


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not installed (Debian package {package}: apt-get install {package})")
    return path


@pytest.fixture(scope="module")
def case(tmp_path_factory) -> dict:
    """A small phantom written as DICOM with a patient identity, analysed with --sr."""
    d = tmp_path_factory.mktemp("sr")
    path = phantom_case_dicom(d / "x.dcm", **PATIENT, PatientBirthDate=BIRTH_DATE)
    out = d / "out"
    cfg = Config()
    (res,) = analyze_files(
        [path], out, config=cfg, sr=True, keep_analysis=True, show_progress=False
    )
    assert res.ok, res.message
    return {
        "source": pydicom.dcmread(path, stop_before_pixels=True),
        "analysis": res.analysis,
        "json": json.loads((out / "x.json").read_text()),
        "sr": out / "x.sr.dcm",
        "gsps": out / "x.gsps.dcm",
    }


def _code(c: dict) -> tuple[str, str]:
    return (c["value"], c["scheme"])


def test_sr_is_a_mammography_cad_sr_referencing_the_source(case):
    ds = pydicom.dcmread(case["sr"])
    src = case["source"]
    assert ds.SOPClassUID == MAMMOGRAPHY_CAD_SR_STORAGE
    assert ds.Modality == "SR"
    assert ds.StudyInstanceUID == src.StudyInstanceUID
    assert ds.PatientID == PATIENT["PatientID"]  # not anonymised: inherited from the image
    ev = ds.CurrentRequestedProcedureEvidenceSequence[0]
    assert ev.StudyInstanceUID == src.StudyInstanceUID
    series = ev.ReferencedSeriesSequence[0]
    assert series.SeriesInstanceUID == src.SeriesInstanceUID
    assert series.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID
    root = ds.ConceptNameCodeSequence[0]
    assert (root.CodeValue, root.CodingSchemeDesignator) == ("111036", "DCM")
    assert ds.ContentTemplateSequence[0].TemplateIdentifier == "4000"
    content = read_sr(ds)
    assert content.referenced_sop_instance_uids == (src.SOPInstanceUID,)
    for f in content.findings:
        assert f.referenced_sop_instance_uids == (src.SOPInstanceUID,)
    assert b"not a medical device" in case["sr"].read_bytes()


def _n_reported(rep: dict) -> int:
    """Calcifications the reports show: detections at the operating point and every
    member of a reported finding (possible calcifications below it are JSON-only)."""
    return sum(
        1
        for c in rep["calcifications"]
        if c["detected"] or c["cluster_id"] is not None or c["macro_finding_id"] is not None
    )


def test_sr_content_matches_json(case):
    rep = case["json"]
    content = read_sr(case["sr"])
    assert rep["clusters"], "the phantom's cluster should be found"
    assert len(content.clusters) == len(rep["clusters"])
    assert len(content.calcifications) == _n_reported(rep)
    assert content.category == rep["assessment"]["category"]
    for f, c in zip(content.clusters, rep["clusters"], strict=True):
        assert f.calcification_type == _code(c["morphology_code"])
        assert f.distribution == _code(c["distribution_code"])
        assert f.n_calcifications == c["n_members"] == len(f.members)
        assert f.category == c["assessment"]["category"]
        fu = FOLLOW_UP_CODE[
            next(k for k in FOLLOW_UP_CODE if k.value == c["assessment"]["follow_up"])
        ]
        assert f.follow_up == (fu.value, fu.scheme_designator)
        np.testing.assert_allclose(f.center_rc, c["center_rc"], atol=0.01)
        assert len(f.outline_rc) >= 4
        assert np.array_equal(f.outline_rc[0], f.outline_rc[-1])  # closed
        # members: centres and outlines of the JSON's calcifications of this cluster
        calcs = {k["id"]: k for k in rep["calcifications"]}
        want = sorted(tuple(calcs[i]["center_rc"]) for i in c["member_ids"])
        got = sorted(m.center_rc for m in f.members)
        np.testing.assert_allclose(got, want, atol=0.01)
    macro_codes = sorted(_code(m["pattern_code"]) for m in rep["macro_findings"])
    typed = {f.calcification_type for f in content.findings if f.kind == "calcification"}
    assert set(macro_codes) <= typed
    # each cluster's impression says where it lies, as the JSON does
    texts = [
        t.TextValue
        for t in _items(pydicom.dcmread(case["sr"]), ("111033", "DCM"))
        if "Where:" in t.TextValue
    ]
    for c in rep["clusters"]:
        assert any(f"Where: {c['location']['text']}." in t for t in texts), c["location"]


def _items(ds, concept: tuple[str, str]) -> list:
    """Every content item named ``concept`` (value, scheme), walking the tree with pydicom."""
    found = []
    for item in ds.get("ContentSequence", []):
        name = item.get("ConceptNameCodeSequence")
        if name and (name[0].CodeValue, name[0].CodingSchemeDesignator) == concept:
            found.append(item)
        found += _items(item, concept)
    return found


def test_sr_tree_counts_with_pydicom(case):
    ds = pydicom.dcmread(case["sr"])
    rep = case["json"]
    findings = _items(ds, ("111059", "DCM"))  # Single Image Finding
    assert len(findings) == len(rep["clusters"]) + _n_reported(rep)
    for f in findings:
        assert f.ValueType == "CODE"
        assert f.ConceptCodeSequence[0].CodeValue in ("129769006", "129770007")
    centres = _items(ds, ("111010", "DCM"))
    assert len(centres) == len(findings)
    assert all(c.ValueType == "SCOORD" and c.GraphicType == "POINT" for c in centres)
    outlines = _items(ds, ("111041", "DCM"))
    assert all(c.GraphicType == "POLYLINE" for c in outlines)
    types = [i.ConceptCodeSequence[0].CodeValue for i in _items(ds, ("111009", "DCM"))]
    for c in rep["clusters"]:
        assert c["morphology_code"]["value"] in types


def test_sr_passes_dsrdump(case):
    dsrdump = _tool("dsrdump", "dcmtk")
    res = subprocess.run([dsrdump, str(case["sr"])], capture_output=True, text=True, timeout=60)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert "Mammography CAD SR Document" in out
    bad = [ln for ln in out.splitlines() if ln.startswith(("E:", "F:")) or "error" in ln.lower()]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("kind", ["sr", "gsps"])
def test_passes_dciodvfy(case, kind):
    dciodvfy = _tool("dciodvfy", "dicom3tools")
    res = subprocess.run([dciodvfy, str(case[kind])], capture_output=True, text=True, timeout=60)
    out = res.stdout + res.stderr
    errors = [ln for ln in out.splitlines() if ln.startswith("Error")]
    assert not errors, out


def test_gsps_passes_dcmpschk(case):
    dcmpschk = _tool("dcmpschk", "dcmtk")
    res = subprocess.run([dcmpschk, str(case["gsps"])], capture_output=True, text=True, timeout=60)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert "Test passed" in out, out


def test_gsps_outlines_every_calcification_on_the_source(case):
    ds = pydicom.dcmread(case["gsps"])
    src = case["source"]
    assert ds.SOPClassUID == GSPS_STORAGE
    ref = ds.ReferencedSeriesSequence[0]
    assert ref.SeriesInstanceUID == src.SeriesInstanceUID
    assert ref.ReferencedImageSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID
    layers = {a.GraphicLayer: a for a in ds.GraphicAnnotationSequence}
    outlines = layers["CALCIFICATIONS"].GraphicObjectSequence
    assert len(outlines) == _n_reported(case["json"])
    for g in outlines:
        assert g.GraphicType == "POLYLINE" and g.GraphicAnnotationUnits == "PIXEL"
        xy = np.asarray(g.GraphicData).reshape(-1, 2)
        assert (xy[:, 0] <= src.Columns).all() and (xy[:, 1] <= src.Rows).all()
    texts = [t.UnformattedTextValue for t in layers["FINDINGS"].TextObjectSequence]
    assert any("not a medical device" in t for t in texts)
    assert sum(t.startswith("C") for t in texts) == len(case["json"]["clusters"])


def test_built_sr_content_is_the_whole_tree(case):
    """build_sr hands highdicom a light root and sets the whole tree afterwards: the
    document's content (highdicom's view of it) and its evidence still cover it all."""
    sr = build_sr(to_report(case["analysis"]))
    root = sr.content[0]
    assert len(root.ContentSequence) == len(sr.ContentSequence) > 2
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    uid = evidence.ReferencedSOPSequence[0].ReferencedSOPInstanceUID
    assert uid == case["source"].SOPInstanceUID


def test_fast_encoding_writes_pydicoms_bytes(case):
    """sr_bytes and gsps_bytes encode the content themselves: the same bytes as pydicom."""
    report = to_report(case["analysis"])
    for doc, sequence in ((build_sr(report), "ContentSequence"),
                          (build_gsps(report), "GraphicAnnotationSequence")):  # fmt: skip
        buf = BytesIO()
        doc.save_as(buf, enforce_file_format=True)
        assert dataset_bytes(doc, [sequence]) == buf.getvalue()
    assert len(read_sr(pydicom.dcmread(BytesIO(sr_bytes(report)))).calcifications) == len(
        report.reported_calcifications()
    )


def test_anonymized_dicom_has_no_patient_identity(case):
    rep = to_report(case["analysis"])
    for ds in (build_sr(rep, anonymize=True), build_gsps(rep, anonymize=True)):
        assert str(ds.PatientName) == "ANONYMOUS^"
        assert ds.PatientID != PATIENT["PatientID"]
        assert not ds.PatientBirthDate
        assert ds.PatientIdentityRemoved == "YES"
        # the references follow the de-identified image (PS3.15: every UID replaced)
        original = case["source"].StudyInstanceUID
        assert ds.StudyInstanceUID == Deidentifier().uid(original) != original


def test_non_dicom_input_references_a_synthetic_instance(case, tmp_path):
    a = case["analysis"]
    png = to_report(replace(a, mammogram=replace(a.mammogram, source=Source(path="x.png"))))
    one, two = build_sr(png), build_sr(png)
    c1, c2 = read_sr(one), read_sr(two)
    assert c1.referenced_sop_instance_uids == c2.referenced_sop_instance_uids  # deterministic
    assert c1.referenced_sop_instance_uids != (case["source"].SOPInstanceUID,)
    assert len(c1.calcifications) == _n_reported(case["json"])
    gsps = build_gsps(png)
    uid = gsps.ReferencedSeriesSequence[0].ReferencedImageSequence[0].ReferencedSOPInstanceUID
    assert (uid,) == c1.referenced_sop_instance_uids
    if shutil.which("dciodvfy"):
        path = tmp_path / "png.sr.dcm"
        one.save_as(path, enforce_file_format=True)
        res = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
        assert not [ln for ln in (res.stdout + res.stderr).splitlines() if ln.startswith("Error")]


def test_view_codes_are_the_cid_4014_ones() -> None:
    from calcscope.model import View

    assert view_code(View.XCCL) == ("399192008", "cranio-caudal exaggerated laterally")
    assert view_code(View.MLO) == ("399368009", "medio-lateral oblique")
    assert view_code(View.OTHER) is None and view_code(None) is None
