"""``calcscope batch`` over several exams of one woman: each exam compared with her latest
earlier one, as ``calcscope analyze`` compares them (one implementation:
:func:`calcscope.apps.exams.write_compared_exams`)."""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

pytest.importorskip(
    "distributed", reason="Dask distributed missing: pip install 'calcscope[batch]'"
)

from calcscope.apps.batch import DONE, EXAM_COLUMNS, run_batch  # noqa: E402
from calcscope.apps.batch_tables import ViewRecord  # noqa: E402
from calcscope.apps.cli import main  # noqa: E402
from calcscope.phantom.exam import write_exam_phantom  # noqa: E402
from calcscope.phantom.follow_up import write_follow_up_phantom  # noqa: E402
from calcscope.reports.exam import EXAM_SUFFIX, load_exam  # noqa: E402

SEED = 2  # its three clusters are found on both views (docs/accuracy.md)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A prior and a current exam of one woman, an unrelated woman's exam, a broken file."""
    root = tmp_path_factory.mktemp("priors")
    _, _, truth_path = write_follow_up_phantom(root / "woman", seed=SEED, spacing_mm=0.1)
    write_exam_phantom(root / "other", seed=5, spacing_mm=0.1)
    (root / "woman" / "current" / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x01" * 9)
    return root, json.loads(truth_path.read_text())


@pytest.fixture(scope="module")
def batch_out(archive, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("batch")
    res = run_batch(archive[0], out, workers=2, processes=False, show_progress=False)
    assert (res.n_images, res.n_analysed, res.n_failed) == (13, 12, 1)
    return out


def _by_exam(out: Path) -> dict[str, list[dict[str, str]]]:
    rows = _rows(out / "exams.csv")
    assert tuple(rows[0]) == EXAM_COLUMNS
    exams: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        exams.setdefault(r["exam"], []).append(r)
    return exams


def test_batch_compares_the_current_exam_with_the_prior(batch_out: Path, archive) -> None:
    truth = archive[1]
    exams = _by_exam(batch_out)
    current = exams[truth["current"]["study_instance_uid"]]
    assert {r["prior_study_date"] for r in current} == {truth["prior"]["study_date"]}
    assert {r["interval_months"] for r in current} == {"24"}
    changes = [r["change"] for r in current]
    assert {"increased", "stable", "new"} <= set(changes)
    counts = {k: int(current[0][f"n_{k}"]) for k in ("new", "increased", "stable", "decreased")}
    assert counts == {k: changes.count(k) for k in counts}
    assert int(current[0]["n_resolved"]) >= 0
    matched = [r for r in current if r["change"] in ("increased", "stable")]
    assert all(r["prior_finding_id"] for r in matched)
    # the prior has nothing earlier; the other woman's exam is not compared with hers
    for uid in (
        truth["prior"]["study_instance_uid"],
        next(
            k
            for k in exams
            if k
            not in (truth["prior"]["study_instance_uid"], truth["current"]["study_instance_uid"])
        ),
    ):
        assert {r["change"] for r in exams[uid]} == {""}
        assert {r["prior_study_date"] for r in exams[uid]} == {""}


def test_batch_exam_documents_carry_the_comparison(batch_out: Path, archive) -> None:
    truth = archive[1]
    docs = {d.study_instance_uid: d for d in map(load_exam, batch_out.glob(f"*{EXAM_SUFFIX}"))}
    assert len(docs) == 3
    cur = docs[truth["current"]["study_instance_uid"]]
    assert cur.comparison is not None
    assert cur.comparison.prior_study_instance_uid == truth["prior"]["study_instance_uid"]
    assert cur.comparison.interval_months == 24
    for image in cur.images:  # named relative to the document, as analyze names them
        assert (batch_out / image.report).is_file()
    prior = docs[truth["prior"]["study_instance_uid"]]
    assert prior.comparison is None or prior.comparison.prior_study_instance_uid is None


def test_batch_and_analyze_give_the_same_changes(batch_out: Path, archive, tmp_path) -> None:
    out = tmp_path / "analyze"
    rc = main(["analyze", str(archive[0] / "woman"), "--out", str(out)])
    assert rc in (0, 1)

    def changes(folder: Path) -> dict[str | None, list[tuple]]:
        result = {}
        for d in map(load_exam, folder.glob(f"*{EXAM_SUFFIX}")):
            found = [f for b in d.breasts.values() for f in b.findings]
            result[d.study_instance_uid] = sorted(
                (f.id, f.change.change if f.change else None) for f in found
            )
        return result

    by_batch = changes(batch_out)
    by_analyze = changes(out)
    assert by_analyze and all(by_batch[uid] == v for uid, v in by_analyze.items())


def test_rerun_and_half_written_folders_keep_the_comparison(batch_out: Path, archive, tmp_path):
    out = tmp_path / "rerun"
    shutil.copytree(batch_out, out)
    folder = next(out.glob("woman__current__LCC*"))
    (folder / DONE).unlink()  # a half-written folder: redone
    res = run_batch(archive[0], out, workers=1, processes=False, show_progress=False)
    assert (res.n_skipped, res.n_analysed) == (12, 1)
    assert (out / "exams.csv").read_text() == (batch_out / "exams.csv").read_text()


def test_views_record_keeps_the_identity_and_old_records_still_read(batch_out: Path) -> None:
    folder = next(batch_out.glob("woman__prior__RCC*"))
    record = ViewRecord.read(folder)
    assert record is not None and record.patient_id and record.study_date == "20220520"
    data = json.loads((folder / "views.json").read_text())
    del data["patient_id"], data["study_date"]  # as earlier versions wrote it
    (folder.parent / "old").mkdir()
    (folder.parent / "old" / "views.json").write_text(json.dumps(data))
    old = ViewRecord.read(folder.parent / "old")
    assert old is not None and old.patient_id is None
    assert old.to_json() == json.dumps(data) + "\n"
    shutil.rmtree(folder.parent / "old")


def test_exams_without_study_uid_are_told_apart_by_date(batch_out: Path, tmp_path) -> None:
    """Images without a Study Instance UID: one exam per patient and study date (as
    ``calcscope analyze`` groups them), so the later is still compared with the earlier."""
    from calcscope.apps.batch_tables import write_exams

    keys = sorted(p.name for p in batch_out.glob("woman__*") if (p / "views.json").exists())
    assert len(keys) == 8
    for key in keys:
        data = json.loads((batch_out / key / "views.json").read_text())
        data["study"] = data["patient_id"]
        (tmp_path / key).mkdir()
        (tmp_path / key / "views.json").write_text(json.dumps(data))
    exams = _by_exam(write_exams(tmp_path, keys)[0].parent)
    patient = json.loads((tmp_path / keys[0] / "views.json").read_text())["patient_id"]
    assert sorted(exams) == [f"{patient}-20220520", f"{patient}-20240520"]
    assert {"increased", "stable", "new"} <= {r["change"] for r in exams[f"{patient}-20240520"]}


@pytest.mark.parametrize(
    ("prior_issuer", "current_issuer", "compared"),
    [("HOSP-A", "HOSP-B", False), ("HOSP-A", "HOSP-A", True), (None, "HOSP-B", True)],
)
def test_an_exam_of_another_issuer_is_not_the_prior(
    batch_out: Path,
    archive,
    tmp_path: Path,
    prior_issuer: str | None,
    current_issuer: str,
    compared: bool,
) -> None:
    """views.json carries the Issuer of Patient ID; the same PatientID from two issuers is
    two patients (not compared), the same issuer or one unknown is one."""
    from calcscope.apps.batch_tables import write_exams

    keys = sorted(p.name for p in batch_out.glob("woman__*") if (p / "views.json").exists())
    for key in keys:
        record = ViewRecord.read(batch_out / key)
        assert record is not None and record.issuer_of_patient_id is None
        issuer = prior_issuer if "__prior__" in key else current_issuer
        text = replace(record, issuer_of_patient_id=issuer).to_json()
        assert ('"issuer_of_patient_id"' in text) is (issuer is not None)
        (tmp_path / key).mkdir()
        (tmp_path / key / "views.json").write_text(text)
        assert ViewRecord.read(tmp_path / key) == replace(record, issuer_of_patient_id=issuer)
    exams = _by_exam(write_exams(tmp_path, keys)[0].parent)
    current = exams[archive[1]["current"]["study_instance_uid"]]
    assert {r["prior_study_date"] for r in current} == ({"20220520"} if compared else {""})


def test_header_issuer_is_read_and_de_identified(archive) -> None:
    """The issuer comes from the header; de-identified it is a digest keyed by the seed."""
    import pydicom

    from calcscope.apps.batch_tables import header_issuer

    src = next((archive[0] / "woman" / "prior").glob("*.dcm"))
    assert header_issuer(str(src)) is None
    ds = pydicom.dcmread(src)
    paths = []
    for name, issuer in (("a.dcm", "HOSP-A"), ("b.dcm", "HOSP-A"), ("c.dcm", "HOSP-B")):
        ds.IssuerOfPatientID = issuer
        paths.append(str(archive[0].parent / name))
        ds.save_as(paths[-1])
    assert header_issuer(paths[0]) == "HOSP-A"
    a, b, c = (header_issuer(p, "seed") for p in paths)
    assert a == b != c and a is not None and "HOSP" not in a
    assert header_issuer(paths[0], "other seed") != a
