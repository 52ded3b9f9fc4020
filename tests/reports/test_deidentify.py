"""``--anonymize`` in every surface (analyze, batch, node): no identifying value of the input
in any output, nor in any output's name.

The input is a phantom mammogram written as DICOM, given every identifying attribute a
mammography archive carries (patient, study, equipment, institution, dates, UIDs), named
and put in a folder named after the patient. Every output file's name and bytes, and
every element (text and UIDs, sequences included) of every DICOM output, are searched for
every one of these values, case-insensitively; a run without ``--anonymize`` finds them (so
that the search can fail). The node receives the image by a real C-STORE on loopback and
forwards its SR and presentation state to a pynetdicom Storage SCP, whose received files are
searched too.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.dataset import Dataset

from calcscope.apps.batch import run_batch
from calcscope.apps.cli import main
from calcscope.imaging.io import write_image
from calcscope.phantom.mammogram import make_phantom
from calcscope.reports.dicom_source import (
    DEIDENTIFICATION_CODES,
    Deidentifier,
    deidentify,
)
from calcscope.reports.writer import SEED_FILE, folder_seed
from helpers import storage_receiver

pytest.importorskip("dicognito")

IDENTITY = {
    "PatientName": "SCHMIDTBAUER^HILDEGARD",
    "PatientID": "PID-4711-0815",
    "PatientBirthDate": "19570423",
    "OtherPatientIDs": "OTHER-99887766",
    "InstitutionName": "St Quirinus Klinikum Altmuehl",
    "InstitutionAddress": "Quirinusweg 17, 93333 Hohenwarthau",
    "InstitutionalDepartmentName": "Brustzentrum Lindwurm",
    "ReferringPhysicianName": "WALDMEISTER^KUNIBERT",
    "OperatorsName": "ROSENKRANZ^EDELTRAUD",
    "PerformingPhysicianName": "HAFERKAMP^GUNDULA",
    "StudyID": "STUDY-31415",
    "AccessionNumber": "ACC-27182818",
    "StationName": "MAMMO-QUIRIN-02",
    "DeviceSerialNumber": "SN-55544433",
    "StudyDate": "20190314",
    "SeriesDate": "20190314",
    "AcquisitionDateTime": "20190314093015.123456",
    "PatientAddress": "Lindenallee 4, 93333 Eichelsdorf",
    "PatientTelephoneNumbers": "+49 9441 5550199",
}
FOLDER = "SCHMIDTBAUER_HILDEGARD_PID-4711-0815"
#: the input's file name: archives name files after the patient
FILE = "PID-4711-0815_SCHMIDTBAUER.dcm"
#: parts of the values above that must not appear on their own either
TOKENS = (
    "SCHMIDTBAUER",
    "HILDEGARD",
    "Quirinus",
    "Altmuehl",
    "Hohenwarthau",
    "Lindwurm",
    "WALDMEISTER",
    "KUNIBERT",
    "ROSENKRANZ",
    "EDELTRAUD",
    "HAFERKAMP",
    "GUNDULA",
    "Lindenallee",
    "Eichelsdorf",
    "9441 5550",
    "1957-04-23",
    "2019-03-14",
    "093015",
)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The identified input and every value that identifies it."""
    root = tmp_path_factory.mktemp("archive")
    ph = make_phantom(seed=1, spacing_mm=0.2, shape=(600, 480))
    path = write_image(ph.mammogram, root / FOLDER / FILE)
    ds = pydicom.dcmread(path)
    for keyword, value in IDENTITY.items():
        setattr(ds, keyword, value)
    ds.save_as(path)
    uids = sorted(
        str(e.value)
        for e in [*ds.file_meta, *ds.iterall()]
        if e.VR == "UI" and e.value and not e.keyword.endswith("ClassUID")
        if e.keyword != "TransferSyntaxUID"
    )
    assert {str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)} <= set(
        uids
    )
    needles = [*IDENTITY.values(), FOLDER, FILE, *TOKENS, *uids]
    return {"root": root, "path": path, "dataset": ds, "needles": needles}


def _dicom_values(ds: Dataset) -> Iterable[str]:
    """Every element's value as text (file meta and sequences included)."""
    meta = getattr(ds, "file_meta", None)
    for elem in [*(meta or []), *ds.iterall()]:
        if elem.VR not in ("SQ", "OB", "OW", "OF", "OD", "UN"):
            yield str(elem.value)


def leaks(
    files: Iterable[Path], needles: Iterable[str], root: Path | None = None
) -> dict[str, set[str]]:
    """The needles found in each file (its bytes, and for DICOM every element's value)
    and in its name (relative to ``root``, folders included, when given)."""
    lowered = [n.lower() for n in needles]
    found: dict[str, set[str]] = {}
    for p in files:
        data = p.read_bytes().lower()
        name = str(p.relative_to(root) if root is not None else p.name).lower()
        hits = {n for n in lowered if n.encode() in data or n in name}
        if p.suffix == ".dcm":
            text = "\n".join(_dicom_values(pydicom.dcmread(p))).lower()
            hits |= {n for n in lowered if n in text}
        if hits:
            found[str(p)] = hits
    return found


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _referenced_uids(ds: Dataset) -> set[str]:
    return {str(e.value) for e in ds.iterall() if e.keyword == "ReferencedSOPInstanceUID"}


def _check_deidentified_dicom(path: Path, sop_uid: str) -> None:
    ds = pydicom.dcmread(path)
    assert ds.PatientIdentityRemoved == "YES"
    codes = {item.CodeValue for item in ds.DeidentificationMethodCodeSequence}
    assert codes == {value for value, _ in DEIDENTIFICATION_CODES}
    assert "113100" in codes  # Basic Application Confidentiality Profile
    assert sop_uid in _referenced_uids(ds)


# --- the library ---------------------------------------------------------------------------


def test_deidentify_maps_uids_consistently_and_removes_identity(
    source: dict, tmp_path: Path
) -> None:
    ds = source["dataset"]
    one, two = deidentify(ds, seed="s1"), deidentify(ds, seed="s1")
    assert one.SOPInstanceUID == two.SOPInstanceUID == Deidentifier("s1").uid(ds.SOPInstanceUID)
    assert one.SOPInstanceUID != deidentify(ds, seed="s2").SOPInstanceUID
    assert one.file_meta.MediaStorageSOPInstanceUID == one.SOPInstanceUID
    assert one.SOPClassUID == ds.SOPClassUID  # class UIDs are kept
    assert str(one.StudyDate) < str(ds.StudyDate)  # dates shifted back, not removed
    for kw in ("OtherPatientIDs", "PatientAddress", "DeviceSerialNumber", "OperatorsName"):
        assert kw not in one, kw
    assert one.PatientBirthDate == "" and one.ReferringPhysicianName == ""
    tmp = tmp_path / "deid.dcm"
    one.save_as(tmp, enforce_file_format=True)
    assert not leaks([tmp], source["needles"])


def test_folder_seed_is_kept_and_private(tmp_path: Path) -> None:
    seed = folder_seed(tmp_path)
    assert folder_seed(tmp_path) == seed and len(seed) == 64
    assert (tmp_path / SEED_FILE).stat().st_mode & 0o077 == 0


# --- analyze -------------------------------------------------------------------------------


def _analyze(source: dict, out: Path, *flags: str) -> list[Path]:
    argv = ["analyze", str(source["path"]), "--out", str(out), "--sr", "--html", "--letter"]
    assert main([*argv, *flags]) == 0
    files = _files(out)
    stem = (
        Deidentifier().uid(source["dataset"].SOPInstanceUID)
        if "--anonymize" in flags
        else Path(FILE).stem
    )
    suffixes = (".json", ".overlay.png", ".sr.dcm", ".gsps.dcm", ".html", ".letter.html")
    assert {p.name for p in files} >= {stem + s for s in (*suffixes, ".letter.txt")}
    return files


def test_analyze_without_anonymize_keeps_the_identity(source: dict, tmp_path: Path) -> None:
    found = leaks(_analyze(source, tmp_path / "plain"), source["needles"])
    everywhere = set().union(*found.values())
    ds = source["dataset"]
    for value in (
        IDENTITY["PatientName"],
        IDENTITY["PatientID"],
        IDENTITY["StudyID"],
        IDENTITY["AccessionNumber"],
        FOLDER,
        FILE,
        ds.StudyInstanceUID,
        ds.SOPInstanceUID,
    ):
        assert str(value).lower() in everywhere, value


def test_analyze_anonymize_leaves_no_identity(source: dict, tmp_path: Path) -> None:
    """No output's name or content holds the identity, the input's file name included:
    the outputs are named after the de-identified SOP Instance UID."""
    out = tmp_path / "anon"
    files = _analyze(source, out, "--anonymize")
    assert leaks(files, source["needles"], out) == {}
    # the exports reference the image as de-identified under this process's seed
    sop = Deidentifier().uid(source["dataset"].SOPInstanceUID)
    report = json.loads((out / f"{sop}.json").read_text())
    assert report["patient"] is None and report["source"]["path"] == f"{sop}.dcm"
    assert report["source"]["sop_instance_uid"] == sop
    for name in (f"{sop}.sr.dcm", f"{sop}.gsps.dcm"):
        _check_deidentified_dicom(out / name, sop)


def test_analyze_anonymize_names_a_png_by_a_keyed_hash(tmp_path: Path) -> None:
    """An image without a SOP Instance UID is named by a keyed hash of its path."""
    ph = make_phantom(seed=1, spacing_mm=0.2, shape=(600, 480))
    path = write_image(ph.mammogram, tmp_path / FOLDER / "SCHMIDTBAUER.png")
    out = tmp_path / "out"
    argv = ["analyze", str(path), "--out", str(out), "--spacing-mm", "0.2", "--anonymize"]
    assert main(argv) == 0
    names = sorted(p.name for p in _files(out))
    assert names and all(n.startswith("anon-") for n in names), names
    assert leaks(_files(out), ["SCHMIDTBAUER", FOLDER], out) == {}


# --- batch ---------------------------------------------------------------------------------


def test_batch_anonymize_leaves_no_identity(source: dict, tmp_path: Path) -> None:
    """Every per-image file, the tables and a failed image's error record (whose message
    names the file) are free of the identity; so are the folder names."""
    root = tmp_path / "in"
    (root / FOLDER).mkdir(parents=True)
    shutil.copy(source["path"], root / FOLDER / FILE)
    broken = b"\0" * 128 + b"DICM" + b"\x02\x00" * 10
    (root / FOLDER / "SCHMIDTBAUER_broken.dcm").write_bytes(broken)
    out = tmp_path / "batch"
    argv = ["batch", str(root), "--out", str(out), "--workers", "1", "--anonymize"]
    assert main(argv) == 1  # the broken file failed
    files = _files(out)
    assert any(p.name == "error.json" for p in files)
    assert leaks(files, [*source["needles"], str(root), "broken"], out) == {}  # names too
    folders = [p for p in out.iterdir() if p.is_dir()]
    assert len(folders) == 2 and all(p.name.startswith("anon-") for p in folders)
    with (out / "images.csv").open() as fh:
        table = fh.read()
    assert all(p.name in table for p in folders)  # each image by its id
    assert f"{folders[0].name}.dcm" in table or f"{folders[1].name}.dcm" in table  # the failed
    # a rerun finds the same pseudonymous ids (the folder's seed): nothing to redo
    res = run_batch(root, out, anonymize=True, processes=False, show_progress=False)
    assert res.n_skipped == 2 and res.n_analysed == 0


# --- node ----------------------------------------------------------------------------------


def test_node_anonymize_leaves_no_identity(source: dict, tmp_path: Path) -> None:
    pytest.importorskip("pynetdicom")
    from pynetdicom import AE
    from pynetdicom.sop_class import (  # type: ignore[attr-defined]
        DigitalMammographyXRayImageStorageForPresentation,
    )

    from calcscope.apps.node import Forward, StorageNode

    pacs_dir = tmp_path / "pacs"
    pacs_dir.mkdir()

    def on_store(event: Any) -> int:
        uid = event.request.AffectedSOPInstanceUID
        (pacs_dir / f"{uid}.dcm").write_bytes(event.encoded_dataset(include_meta=True))
        return 0

    out = tmp_path / "node"
    with storage_receiver(on_store) as pacs_port:
        fwd = Forward("127.0.0.1", pacs_port, "PACS")
        with StorageNode("CALCSCOPE", 0, out, forward=fwd, anonymize=True, processes=False) as node:
            sender = AE(ae_title="MODALITY")
            sender.add_requested_context(DigitalMammographyXRayImageStorageForPresentation)
            assoc = sender.associate("127.0.0.1", node.port, ae_title="CALCSCOPE")
            assert assoc.is_established
            assert int(assoc.send_c_store(pydicom.dcmread(source["path"])).Status) == 0
            assoc.release()
            deadline = time.monotonic() + 120
            while node.stats.forwarded < 1 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert node.stats.forwarded == 1 and node.stats.analysed == 1
    outputs = _files(out / "results")
    forwarded = _files(pacs_dir)
    assert {p.name for p in outputs} == {"analysis.json", "analysis.sr.dcm", "analysis.gsps.dcm"}
    assert len(forwarded) == 2
    assert leaks([*outputs, *forwarded], source["needles"]) == {}
    sop = Deidentifier(folder_seed(out)).uid(source["dataset"].SOPInstanceUID)
    report = json.loads((outputs[0].parent / "analysis.json").read_text())
    assert report["source"]["sop_instance_uid"] == sop
    assert report["source"]["path"] == f"{sop}.dcm"  # the received file's name, its UID mapped
    # the results folder is named by the de-identified UID, never by the received one
    assert [p.name for p in (out / "results").iterdir()] == [sop]
    original = str(source["dataset"].SOPInstanceUID)
    # the exam's documents (its members/written lists are the node's working state, as are
    # incoming/, received/ and done/, which hold the received images themselves)
    exam_files = [p for p in _files(out / "exams") if p.name not in {"members", "written"}]
    assert leaks(exam_files, source["needles"]) == {}
    assert not any(original in str(p.relative_to(out)) for p in [*outputs, *exam_files])
    for p in forwarded:
        _check_deidentified_dicom(p, sop)
