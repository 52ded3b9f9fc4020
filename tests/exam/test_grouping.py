"""Which images form an exam (study, patient and date, manifest), and which view each is
(DICOM view codes and modifiers, never an ML, LM, XCCL, spot or magnification view taken
for a CC or MLO)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from calcscope.errors import ConfigError
from calcscope.exam import ViewModifier, ViewRole, group_exams, read_manifest, view_from_dataset
from calcscope.exam.grouping import read_header
from calcscope.model import Laterality, View


def _code(value: str, meaning: str, scheme: str = "SCT") -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def _ds(view_code: tuple[str, str] | None = None, modifiers=(), **attrs) -> Dataset:
    ds = Dataset()
    if view_code is not None:
        item = _code(*view_code)
        item.ViewModifierCodeSequence = [_code(*m) for m in modifiers]
        ds.ViewCodeSequence = [item]
    for k, v in attrs.items():
        setattr(ds, k, v)
    return ds


@pytest.mark.parametrize(
    ("ds", "view", "mods", "role"),
    [
        (_ds(("399162004", "cranio-caudal")), View.CC, (), ViewRole.CC),
        (_ds(("399368009", "medio-lateral oblique")), View.MLO, (), ViewRole.MLO),
        (_ds(("399260004", "medial-lateral")), View.ML, (), ViewRole.MLO),
        (_ds(("399352003", "latero-medial")), View.LM, (), ViewRole.MLO),
        (_ds(("399192008", "cranio-caudal exaggerated laterally")), View.XCCL, (), ViewRole.CC),
        (_ds(("399101009", "cranio-caudal exaggerated medially")), View.OTHER, (), "additional"),
        (
            _ds(("399162004", "cranio-caudal"), [("399055006", "Spot Compression")]),
            View.CC,
            (ViewModifier.SPOT_COMPRESSION,),
            ViewRole.ADDITIONAL,
        ),
        (
            _ds(("399368009", "medio-lateral oblique"), [("399163009", "Magnification")]),
            View.MLO,
            (ViewModifier.MAGNIFICATION,),
            ViewRole.ADDITIONAL,
        ),
        (_ds(ViewPosition="CC"), View.CC, (), ViewRole.CC),
        (_ds(ViewPosition="MCC"), View.CC, (ViewModifier.MAGNIFICATION,), ViewRole.ADDITIONAL),
        (_ds(ViewPosition="CC SPOT"), View.CC, (ViewModifier.SPOT_COMPRESSION,), "additional"),
        (_ds(ViewPosition="XCCL"), View.XCCL, (), ViewRole.CC),
        (_ds(), None, (), None),
    ],
)
def test_view_recognition_from_codes(ds, view, mods, role):
    ev = view_from_dataset(ds)
    assert ev.view is view and ev.modifiers == mods
    assert ev.standard_role == role


def _write(path: Path, **attrs) -> Path:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.2"
    ds.SOPInstanceUID = generate_uid()
    ds.Modality = "MG"
    for k, v in attrs.items():
        setattr(ds, k, v)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.save_as(path, enforce_file_format=True)
    return path


def test_grouping_by_study_then_patient_and_date_then_file(tmp_path: Path):
    s1, s2 = generate_uid(), generate_uid()
    files = [
        _write(tmp_path / "a.dcm", StudyInstanceUID=s1, PatientID="P1", StudyDate="20240101"),
        _write(tmp_path / "b.dcm", StudyInstanceUID=s2, PatientID="P1", StudyDate="20240101"),
        _write(tmp_path / "c.dcm", StudyInstanceUID=s1, PatientID="P1", StudyDate="20240101"),
        _write(tmp_path / "d.dcm", PatientID="P2", StudyDate="20240202"),
        _write(tmp_path / "e.dcm", PatientID="P2", StudyDate="20240202"),
        _write(tmp_path / "f.dcm", PatientID="P2", StudyDate="20250202"),
    ]
    (tmp_path / "g.png").write_bytes(b"not read")
    (tmp_path / "h.png").write_bytes(b"not read")
    groups = group_exams([*files, tmp_path / "g.png", tmp_path / "h.png"])
    by_files = [sorted(h.path.name for h in g.images) for g in groups]
    expected = [["a.dcm", "c.dcm"], ["b.dcm"], ["d.dcm", "e.dcm"], ["f.dcm"], ["g.png"], ["h.png"]]
    assert by_files == expected
    assert [g.grouped_by for g in groups][:3] == [
        "study_instance_uid",
        "study_instance_uid",
        "patient_id+study_date",
    ]
    assert groups[0].study_instance_uid == s1 and groups[0].name == s1
    # the name of a patient-based exam never carries the patient id
    assert "P2" not in groups[2].name and groups[2].study_date == "20240202"
    assert len({g.name for g in groups}) == len(groups)


def test_manifest_groups_plain_files_and_gives_laterality_and_view(tmp_path: Path):
    for name in ("rcc.png", "rmlo.png", "lcc.png", "other.png"):
        (tmp_path / name).write_bytes(b"not read")
    manifest = tmp_path / "exams.csv"
    manifest.write_text(
        "file,exam,laterality,view\nrcc.png,E1,R,CC\nrmlo.png,E1,R,MLO\nlcc.png,E1,L,CC SPOT\n"
    )
    rows = read_manifest(manifest)
    files = [tmp_path / n for n in ("rcc.png", "rmlo.png", "lcc.png", "other.png")]
    groups = group_exams(files, rows)
    assert [len(g.images) for g in groups] == [3, 1]
    e1 = groups[0]
    assert e1.exam_id == "E1" and e1.grouped_by == "manifest"
    lat_view = [(h.laterality, h.view.view, h.view.standard_role) for h in e1.images]
    assert lat_view == [
        (Laterality.RIGHT, View.CC, ViewRole.CC),
        (Laterality.RIGHT, View.MLO, ViewRole.MLO),
        (Laterality.LEFT, View.CC, ViewRole.ADDITIONAL),
    ]
    bad = tmp_path / "bad.csv"
    bad.write_text("name,exam\nx.png,E\n")
    with pytest.raises(ConfigError, match="file, exam"):
        read_manifest(bad)


def test_grouping_never_opens_a_fifo_or_parses_garbage(tmp_path: Path):
    fifo = tmp_path / "pipe.dcm"
    os.mkfifo(fifo)  # opening it for reading would block
    garbage = tmp_path / "garbage.dcm"
    garbage.write_bytes(b"\0" * 128 + b"DICM" + b"\xff" * 300)
    loop = tmp_path / "loop.dcm"
    loop.symlink_to(loop)
    manifest = tmp_path / "m.csv"
    manifest.write_text("file,exam,laterality,view\nloop.dcm,E,L,CC\n")
    groups = group_exams([fifo, garbage, loop], read_manifest(manifest))
    assert [g.grouped_by for g in groups] == ["file", "file", "manifest"]
    assert groups[0].images[0].study_instance_uid is None


def test_the_issuer_of_patient_id_is_read_and_separates_patients(tmp_path: Path):
    """The same PatientID from two issuers is two patients: their images without a study
    UID are not one exam; the group carries the issuer."""
    files = [
        _write(
            tmp_path / "a.dcm", PatientID="P1", IssuerOfPatientID="HOSP-A", StudyDate="20240101"
        ),
        _write(
            tmp_path / "b.dcm", PatientID="P1", IssuerOfPatientID="HOSP-B", StudyDate="20240101"
        ),
        _write(
            tmp_path / "c.dcm", PatientID="P1", IssuerOfPatientID="HOSP-A", StudyDate="20240101"
        ),
        _write(tmp_path / "d.dcm", PatientID="P1", StudyDate="20240101"),
    ]
    assert read_header(files[0]).issuer_of_patient_id == "HOSP-A"
    assert read_header(files[3]).issuer_of_patient_id is None
    groups = group_exams(files)
    by_files = [sorted(h.path.name for h in g.images) for g in groups]
    assert by_files == [["a.dcm", "c.dcm"], ["b.dcm"], ["d.dcm"]]
    assert [g.issuer_of_patient_id for g in groups] == ["HOSP-A", "HOSP-B", None]
    assert all("HOSP" not in g.name and "P1" not in g.name for g in groups)
