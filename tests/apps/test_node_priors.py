"""The DICOM node compares each exam with the woman's prior: its own earlier exam, or one
it asks a real PACS (Orthanc) for (C-FIND, C-GET); a PACS that is down or silent never
holds the exam back longer than the prior time limit."""

from __future__ import annotations

import json
import os
import re
import socket
import time
from io import BytesIO
from pathlib import Path
from typing import Any

import pydicom
import pytest

pytest.importorskip("pynetdicom", reason="pynetdicom missing: pip install 'calcscope[dicom]'")

from pynetdicom import AE  # noqa: E402
from pynetdicom.sop_class import (  # noqa: E402  # type: ignore[attr-defined]
    DigitalMammographyXRayImageStorageForPresentation,
)

from calcscope.apps.node import PriorSource, StorageNode  # noqa: E402
from calcscope.apps.node_priors import ExamIndex, StudyKey, find_prior_studies  # noqa: E402
from calcscope.errors import ConfigError  # noqa: E402
from calcscope.phantom.follow_up import write_follow_up_phantom  # noqa: E402
from calcscope.reports.exam import ExamReport, load_exam  # noqa: E402
from helpers import assert_changes_as_truth as _check_changes  # noqa: E402
from helpers import dicom_with_unknown_vr  # noqa: E402

AET = "CALCSCOPE"  # the node, as Orthanc's configuration knows it (conftest.NODE_AET)
SEED = 2  # a seed whose three truth clusters the detector finds on both views
# (tests/exam/test_compare.py)


@pytest.fixture(scope="module")
def follow_up(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prior and a current exam of one synthetic woman, two years apart."""
    folder = tmp_path_factory.mktemp("follow_up")
    write_follow_up_phantom(folder, seed=SEED, spacing_mm=0.1)
    return folder


def _truth(folder: Path) -> dict[str, Any]:
    return dict(json.loads((folder / "truth.json").read_text()))


def _send(port: int, files: list[Path]) -> None:
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(DigitalMammographyXRayImageStorageForPresentation)
    assoc = ae.associate("127.0.0.1", port, ae_title=AET)
    assert assoc.is_established
    try:
        for f in files:
            assert assoc.send_c_store(pydicom.dcmread(f)).Status == 0
    finally:
        assoc.release()


def _exam_of(out: Path, study: str, timeout_s: float) -> ExamReport:
    path = out / "exams" / study / "exam.exam.json"
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert time.monotonic() < deadline, f"no exam of study {study} after {timeout_s} s"
        time.sleep(0.2)
    return load_exam(path)


def _node(out: Path, **kw: Any) -> StorageNode:
    return StorageNode(AET, 0, out, processes=False, exam_idle_s=30, exam_views=4, **kw)


# --- unit ---------------------------------------------------------------------------------


def test_prior_source_parse() -> None:
    assert PriorSource.parse("ORTHANC@pacs.local:4242") == PriorSource(
        "ORTHANC", "pacs.local", 4242
    )
    assert PriorSource.parse("PACS@[::1]:104") == PriorSource("PACS", "::1", 104)
    assert str(PriorSource("ORTHANC", "h", 1)) == "ORTHANC@h:1"
    for bad in ("pacs:4242", "@h:1", "A@h:0", "A@h:x", "A@:104", "A" * 17 + "@h:1"):
        with pytest.raises(ConfigError):
            PriorSource.parse(bad)


def test_node_refuses_prior_source_with_anonymize(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="anonymize"):
        _node(tmp_path / "n", prior_source="ORTHANC@127.0.0.1:4242", anonymize=True)
    with pytest.raises(ConfigError, match="prior timeout"):
        _node(tmp_path / "n", prior_timeout_s=0)


def test_cli_refuses_a_bad_prior_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from calcscope.apps.cli import main

    out = tmp_path / "node"
    argv = ["node", "--out", str(out), "--port", "0", "--prior-source", "ORTHANC:4242"]
    assert main(argv) == 2
    assert "AET@HOST:PORT" in capsys.readouterr().err
    assert main([*argv[:-1], "PACS@127.0.0.1:4242", "--anonymize"]) == 2
    assert "--anonymize" in capsys.readouterr().err
    assert not (out / "node.log").exists()


# --- the node's own priors ------------------------------------------------------------------


def test_node_compares_with_its_own_earlier_exam(tmp_path: Path, follow_up: Path) -> None:
    """No PACS asked: the prior exam the node received and analysed before is used."""
    truth = _truth(follow_up)
    out = tmp_path / "node"
    with _node(out) as node:
        _send(node.port, sorted((follow_up / "prior").glob("*.dcm")))
        prior = _exam_of(out, truth["prior"]["study_instance_uid"], 120)
        assert prior.comparison is not None and prior.comparison.interval_months is None
        assert prior.study_date == "20220520"
        _send(node.port, sorted((follow_up / "current").glob("*.dcm")))
        current = _exam_of(out, truth["current"]["study_instance_uid"], 120)
    _check_changes(current, follow_up)
    assert not (out / "priors").exists()
    # the patient letter and the exam page, as ``analyze --letter --html`` writes them
    folder = out / "exams" / truth["current"]["study_instance_uid"]
    assert current.outputs.letter_txt == "exam.letter.txt"
    assert current.outputs.letter_html == "exam.letter.html" and current.outputs.html == "exam.html"
    text = (folder / "exam.letter.txt").read_text()
    assert "Compared with your mammogram of 20 May 2022" in text
    assert "has grown" in text and "is new" in text and "has not changed" in text
    assert "has grown" in (folder / "exam.letter.html").read_text()
    assert (folder / "exam.html").read_text().lstrip().lower().startswith("<!doctype html")


def _with_issuer(files: list[Path], issuer: str, folder: Path) -> list[Path]:
    folder.mkdir(parents=True)
    out = []
    for f in files:
        ds = pydicom.dcmread(f)
        ds.IssuerOfPatientID = issuer
        ds.save_as(folder / f.name)
        out.append(folder / f.name)
    return out


def test_the_node_never_compares_exams_of_another_issuer(tmp_path: Path, follow_up: Path) -> None:
    """The same PatientID from two issuers: the node's earlier exam is not the prior."""
    truth = _truth(follow_up)
    prior = _with_issuer(sorted((follow_up / "prior").glob("*.dcm")), "HOSP-A", tmp_path / "p")
    current = _with_issuer(sorted((follow_up / "current").glob("*.dcm")), "HOSP-B", tmp_path / "c")
    out = tmp_path / "node"
    with _node(out) as node:
        _send(node.port, prior)
        _exam_of(out, truth["prior"]["study_instance_uid"], 120)
        _send(node.port, current)
        doc = _exam_of(out, truth["current"]["study_instance_uid"], 120)
    assert doc.comparison is not None and doc.comparison.prior_study_instance_uid is None
    assert not list(out.glob("exams/*/exam.v1.exam.json"))  # nor compared again


def test_a_prior_arriving_after_the_current_exam_has_it_compared_again(
    tmp_path: Path, follow_up: Path
) -> None:
    """Out of order: the current study first (no prior yet: not compared), then the prior;
    the current exam is compared again and written as a new version, the first kept."""
    truth = _truth(follow_up)
    out = tmp_path / "node"
    folder = out / "exams" / truth["current"]["study_instance_uid"]
    with _node(out) as node:
        _send(node.port, sorted((follow_up / "current").glob("*.dcm")))
        first = _exam_of(out, truth["current"]["study_instance_uid"], 120)
        assert first.comparison is not None and first.comparison.prior_study_date is None
        assert {
            f.change.change
            for f in first.findings_unknown_side
            + [f for b in first.breasts.values() for f in b.findings]
            if f.change is not None
        } <= {"new"}
        _send(node.port, sorted((follow_up / "prior").glob("*.dcm")))
        prior = _exam_of(out, truth["prior"]["study_instance_uid"], 120)
        assert prior.comparison is not None and prior.comparison.prior_study_date is None
        deadline = time.monotonic() + 60
        while not (folder / "exam.v1.exam.json").exists():
            assert time.monotonic() < deadline, "the current exam was not compared again"
            time.sleep(0.2)
    assert load_exam(folder / "exam.v1.exam.json") == first
    _check_changes(load_exam(folder / "exam.exam.json"), follow_up)
    assert "has grown" in (folder / "exam.letter.txt").read_text()
    # the prior's exam is written once, and nothing else is rewritten
    assert sorted(p.name for p in out.glob("exams/*/exam*.exam.json")) == [
        "exam.exam.json",
        "exam.exam.json",
        "exam.v1.exam.json",
    ]


def test_an_anonymized_node_writes_an_anonymized_letter(tmp_path: Path, follow_up: Path) -> None:
    """De-identified (and so not compared: an anonymizing node looks for no priors), the letter and
    the page are written all the same, and tell no patient, date or UID."""
    truth = _truth(follow_up)
    header = pydicom.dcmread(next((follow_up / "current").glob("*.dcm")), stop_before_pixels=True)
    out = tmp_path / "node"
    with _node(out, anonymize=True) as node:
        _send(node.port, sorted((follow_up / "prior").glob("*.dcm")))
        _send(node.port, sorted((follow_up / "current").glob("*.dcm")))
        deadline = time.monotonic() + 240
        # the exam JSON is written last: wait for it, not for the letter before it
        while len(list(out.glob("exams/*/exam.exam.json"))) < 2:
            assert time.monotonic() < deadline, "no exam documents of the two exams"
            time.sleep(0.2)
    docs = [load_exam(p) for p in out.glob("exams/*/exam.exam.json")]
    assert len(docs) == 2
    assert all(d.patient_id is None and d.study_date is None for d in docs)
    assert all(d.outputs.letter_txt and d.outputs.html and d.outputs.sr is None for d in docs)
    secrets = [
        str(header.PatientID),
        str(header.PatientName),
        truth["current"]["study_date"],
        truth["prior"]["study_date"],
        truth["current"]["study_instance_uid"],
        truth["prior"]["study_instance_uid"],
    ]
    # the studies' years as words (e.g. "20 May 2022", "2024-05-20"), not as digits inside the
    # random de-identified UIDs the page shows (a 40-digit UID holds one of them about once in 135)
    years = re.compile(r"(?<![0-9])(2022|2024)(?![0-9])")
    for path in [*out.glob("exams/*/exam.letter.*"), *out.glob("exams/*/exam.html")]:
        text = path.read_text()
        assert not [s for s in secrets if s and s in text], path
        assert years.search(text) is None, path
    letters = [p.read_text() for p in out.glob("exams/*/exam.letter.txt")]
    assert all("Your mammogram" in text and "breast" in text for text in letters)


# --- against a real PACS --------------------------------------------------------------------


def test_node_fetches_the_prior_from_orthanc(tmp_path: Path, follow_up: Path, orthanc: Any) -> None:
    """The prior is only in Orthanc: found by C-FIND, retrieved by C-GET, analysed and
    compared; the node's exam JSON carries the comparison."""
    truth = _truth(follow_up)
    prior_uid = truth["prior"]["study_instance_uid"]
    for f in sorted((follow_up / "prior").glob("*.dcm")):
        orthanc.post("/instances", f.read_bytes())
    source = PriorSource("ORTHANC", "127.0.0.1", orthanc.dicom_port)
    key = StudyKey.from_file(next((follow_up / "current").glob("*.dcm")))
    assert key is not None and key.study_date == "20240520"
    found = find_prior_studies(source, key, calling_ae_title=AET)
    assert [(s.study_instance_uid, s.study_date) for s in found] == [(prior_uid, "20220520")]
    out = tmp_path / "node"
    with _node(out, prior_source=str(source), prior_timeout_s=240) as node:
        _send(node.port, sorted((follow_up / "current").glob("*.dcm")))
        current = _exam_of(out, truth["current"]["study_instance_uid"], 300)
    _check_changes(current, follow_up)
    fetched = out / "priors" / prior_uid
    assert len(list((fetched / "images").glob("*.dcm"))) == 4
    assert load_exam(fetched / "exam.exam.json").study_instance_uid == prior_uid
    log = (out / "node.log").read_text()
    assert "retrieved 4 image(s) of prior study" in log
    assert f"compared with study {prior_uid}" in log
    assert (out / "exams" / truth["current"]["study_instance_uid"] / "exam.sr.dcm").exists()

    # a second node over the same folder reuses what it fetched: no retrieval again
    (out / "node.log").unlink()
    for p in (out / "exams").iterdir():
        for f in p.iterdir():
            f.unlink()
        p.rmdir()
    for p in (out / "done").iterdir():
        p.unlink()
    with _node(out, prior_source=str(source), prior_timeout_s=240) as node:
        _send(node.port, sorted((follow_up / "current").glob("*.dcm")))
        again = _exam_of(out, truth["current"]["study_instance_uid"], 300)
    assert again.comparison is not None
    assert again.comparison.prior_study_instance_uid == prior_uid
    log = (out / "node.log").read_text()
    assert "the node's own exam document is reused" in log
    assert "retrieved" not in log


def _silent_listener() -> socket.socket:
    """A port that accepts TCP connections and never answers (a hung PACS)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    return s


@pytest.mark.parametrize("pacs", ["down", "silent"])
def test_pacs_down_or_silent_never_holds_the_exam_back(
    tmp_path: Path, follow_up: Path, pacs: str
) -> None:
    truth = _truth(follow_up)
    listener = _silent_listener()
    port = listener.getsockname()[1]
    if pacs == "down":
        listener.close()  # nobody listens: connection refused
    out = tmp_path / "node"
    try:
        with _node(out, prior_source=f"ORTHANC@127.0.0.1:{port}", prior_timeout_s=4) as node:
            t0 = time.monotonic()
            _send(node.port, sorted((follow_up / "current").glob("*.dcm")))
            current = _exam_of(out, truth["current"]["study_instance_uid"], 60)
            waited_s = time.monotonic() - t0
    finally:
        listener.close()
    assert waited_s < 40
    assert current.comparison is not None
    assert current.comparison.prior_study_instance_uid is None
    assert current.comparison.interval_months is None
    assert all(f.change is None for b in current.breasts.values() for f in b.findings)
    log = (out / "node.log").read_text()
    assert "no comparison" in log


def _redated(files: list[Path], study_date: str, new_uids: bool) -> list[bytes]:
    """The files with another StudyDate (and, with ``new_uids``, as another study)."""
    from pydicom.uid import generate_uid

    study, series = generate_uid(), {}
    out = []
    for f in files:
        ds = pydicom.dcmread(f)
        ds.StudyDate = study_date
        if new_uids:
            ds.StudyInstanceUID = study
            ds.SeriesInstanceUID = series.setdefault(str(ds.SeriesInstanceUID), generate_uid())
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        buf = BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        out.append(buf.getvalue())
    return out


def test_a_prior_under_two_years_brings_the_study_before_it(
    tmp_path: Path, follow_up: Path, orthanc: Any
) -> None:
    """The prior is 12 months old: the study before it (24 months) is retrieved too, and a
    group unchanged over both carries the older date (two years of stability)."""
    truth = _truth(follow_up)
    prior_files = sorted((follow_up / "prior").glob("*.dcm"))
    for data in _redated(prior_files, "20230520", False) + _redated(prior_files, "20220520", True):
        orthanc.post("/instances", data)
    out = tmp_path / "node"
    source = f"ORTHANC@127.0.0.1:{orthanc.dicom_port}"
    with _node(out, prior_source=source, prior_timeout_s=240) as node:
        _send(node.port, sorted((follow_up / "current").glob("*.dcm")))
        doc = _exam_of(out, truth["current"]["study_instance_uid"], 300)
    assert doc.comparison is not None
    assert doc.comparison.prior_study_instance_uid == truth["prior"]["study_instance_uid"]
    assert doc.comparison.prior_study_date == "20230520"
    assert doc.comparison.interval_months == 12
    assert doc.comparison.older_study_date == "20220520"
    assert (out / "node.log").read_text().count("of prior study") == 2
    stable = [
        f.change
        for f in doc.breasts["R"].findings
        if f.kind == "cluster" and f.change is not None and f.change.change == "stable"
    ]
    assert stable and all(c.stable_since == "20220520" for c in stable)


def _find_move_scp(prior: list[Path], node_port: list[int]) -> Any:
    """A PACS (pynetdicom) that answers C-FIND and C-MOVE but offers no C-GET."""
    from pynetdicom import evt
    from pynetdicom.sop_class import (  # type: ignore[attr-defined]
        StudyRootQueryRetrieveInformationModelFind,
        StudyRootQueryRetrieveInformationModelMove,
    )

    datasets = [pydicom.dcmread(f) for f in prior]

    def on_find(event: Any) -> Any:
        ident = pydicom.Dataset()
        ident.QueryRetrieveLevel = "STUDY"
        ident.StudyInstanceUID = datasets[0].StudyInstanceUID
        ident.StudyDate = datasets[0].StudyDate
        yield 0xFF00, ident

    def on_move(event: Any) -> Any:
        assert event.move_destination.strip() == AET
        yield "127.0.0.1", node_port[0]
        yield len(datasets)
        for ds in datasets:
            yield 0xFF00, ds

    ae = AE(ae_title="PACS")
    ae.add_supported_context(StudyRootQueryRetrieveInformationModelFind)
    ae.add_supported_context(StudyRootQueryRetrieveInformationModelMove)
    ae.add_requested_context(DigitalMammographyXRayImageStorageForPresentation)
    handlers = [(evt.EVT_C_FIND, on_find), (evt.EVT_C_MOVE, on_move)]
    return ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=handlers)


def test_a_pacs_without_c_get_sends_the_prior_by_c_move(tmp_path: Path, follow_up: Path) -> None:
    truth = _truth(follow_up)
    node_port: list[int] = []
    server = _find_move_scp(sorted((follow_up / "prior").glob("*.dcm")), node_port)
    out = tmp_path / "node"
    try:
        source = f"PACS@127.0.0.1:{server.server_address[1]}"
        with _node(out, prior_source=source, prior_timeout_s=240) as node:
            node_port.append(node.port)
            _send(node.port, sorted((follow_up / "current").glob("*.dcm")))
            doc = _exam_of(out, truth["current"]["study_instance_uid"], 300)
    finally:
        server.shutdown()
    _check_changes(doc, follow_up)
    assert "sent 4 image(s) of prior study" in (out / "node.log").read_text()


def _exam_doc(path: Path, study: str, study_date: str, patient_id: str = "P1") -> None:
    """A minimal exam document (no images, no findings) written atomically."""
    doc = ExamReport.model_validate(
        {
            "exam_id": study,
            "study_instance_uid": study,
            "patient_id": patient_id,
            "study_date": study_date,
            "images": [],
            "breasts": {},
            "assessment": {
                "category": "1",
                "category_label": "negative",
                "likelihood": 0.0,
                "follow_up": "routine",
                "follow_up_label": "routine screening",
                "reason": "no findings",
            },
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(doc.model_dump_json())
    tmp.replace(path)


def test_exam_index_reads_each_document_version_once(tmp_path: Path) -> None:
    path = tmp_path / "exams" / "1.2.3" / "exam.exam.json"
    _exam_doc(path, "1.2.3", "20200101")
    index = ExamIndex()
    (first,) = index.headers([path, tmp_path / "missing.json"])
    assert (first.patient_id, first.study_date, first.exam_id) == ("P1", "20200101", "1.2.3")
    # the same version (inode, size, mtime) is not read again: garbage in place is unseen
    st = path.stat()
    path.write_bytes(b"x" * st.st_size)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert index.headers([path]) == [first]
    # a new version (an atomic replace: a new inode) is read
    _exam_doc(path, "1.2.3", "20210101", patient_id="P2")
    (second,) = index.headers([path])
    assert (second.patient_id, second.study_date) == ("P2", "20210101")
    # an unreadable new version has no header
    path.write_text("{")
    assert index.headers([path]) == []


def test_exam_index_lists_the_documents_once_and_then_takes_in_the_noted_ones(
    tmp_path: Path,
) -> None:
    exams, priors = tmp_path / "exams", tmp_path / "priors"
    _exam_doc(exams / "1.2" / "exam.exam.json", "1.2", "20200101")
    _exam_doc(priors / "1.1" / "exam.exam.json", "1.1", "20190101")
    _exam_doc(exams / "9.9" / "exam.exam.json", "9.9", "20200101", patient_id="P2")
    index = ExamIndex((exams, priors))
    # the roots' order, then the paths'; only the woman's documents
    assert [h.exam_id for h in index.of_patient("P1")] == ["1.2", "1.1"]
    assert [h.exam_id for h in index.of_patient("P2")] == ["9.9"]
    # a document written later is seen once noted (the folders are not listed again)
    _exam_doc(exams / "1.3" / "exam.exam.json", "1.3", "20210101")
    assert [h.exam_id for h in index.of_patient("P1")] == ["1.2", "1.1"]
    index.note(exams / "1.3" / "exam.exam.json")
    assert [h.exam_id for h in index.of_patient("P1")] == ["1.2", "1.3", "1.1"]
    # a new version of another patient moves; a removed document goes
    _exam_doc(exams / "1.2" / "exam.exam.json", "1.2", "20200101", patient_id="P2")
    (priors / "1.1" / "exam.exam.json").unlink()
    assert [h.exam_id for h in index.of_patient("P1")] == ["1.3"]
    index.note(exams / "1.2" / "exam.exam.json")
    assert [h.exam_id for h in index.of_patient("P2")] == ["1.2", "9.9"]


def test_study_key_of_a_file_with_an_unreadable_study_date(tmp_path: Path) -> None:
    """The node fuzz's case: StudyDate's VR flipped to 'DY' raises only when the value is
    read; the file's study key still comes (without a date), and the exam goes on."""
    path = dicom_with_unknown_vr(
        tmp_path / "x.dcm",
        "StudyDate",
        PatientID="P1",
        StudyInstanceUID="1.2.3",
        StudyDate="20240520",
    )
    assert StudyKey.from_file(path) == StudyKey("1.2.3", "P1", None, None)
