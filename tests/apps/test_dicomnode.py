"""The DICOM node: C-STORE in, analysis exactly once, SR out to a real PACS (Orthanc).

Orthanc (Debian package ``orthanc``) is started on loopback with its own configuration
in a temporary folder; the Orthanc test skips when the ``Orthanc`` program is absent.
Who may connect (bind address, AE titles, TLS) is tested with pynetdicom as the client;
the TLS certificate is made in the test (``cryptography``, else ``openssl req``).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections import Counter
from io import BytesIO
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.uid import MammographyCADSRStorage, generate_uid

pytest.importorskip("pynetdicom", reason="pynetdicom missing: pip install 'calcscope[dicom]'")

from pynetdicom import AE  # noqa: E402
from pynetdicom.sop_class import (  # noqa: E402  # type: ignore[attr-defined]
    DigitalMammographyXRayImageStorageForPresentation,
    SecondaryCaptureImageStorage,
    Verification,
)

import calcscope.apps.node as dicomnode  # noqa: E402
from calcscope.apps.cli import main  # noqa: E402
from calcscope.apps.node import (  # noqa: E402
    Forward,
    StorageNode,
    TLSFiles,
    analysed_counts,
    run_node,
)
from calcscope.apps.send import wait_for_echo  # noqa: E402
from calcscope.config import Config  # noqa: E402
from calcscope.errors import ConfigError  # noqa: E402
from calcscope.imaging.io import write_image  # noqa: E402
from calcscope.phantom.mammogram import make_phantom  # noqa: E402
from calcscope.pipeline import analyze  # noqa: E402
from calcscope.reports.sr import read_sr  # noqa: E402
from helpers import free_port, storage_receiver  # noqa: E402

AET = "CALCSCOPE"
SHAPE = (600, 480)


@pytest.fixture(scope="module")
def base_images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A phantom with clusters, one without inserts (fast to analyse and report), and a
    smaller one (fast to send and analyse)."""
    d = tmp_path_factory.mktemp("phantoms")
    full = make_phantom(seed=1, spacing_mm=0.2, shape=SHAPE)
    empty = make_phantom(seed=2, spacing_mm=0.2, shape=SHAPE, clusters=[], macros=[], n_singles=0)
    small = make_phantom(
        seed=2, spacing_mm=0.2, shape=(300, 240), clusters=[], macros=[], n_singles=0
    )
    return {
        "full": write_image(full.mammogram, d / "full.dcm"),
        "empty": write_image(empty.mammogram, d / "empty.dcm"),
        "small": write_image(small.mammogram, d / "small.dcm"),
    }


def _clones(path: Path, n: int) -> list[pydicom.Dataset]:
    """``n`` copies of a DICOM file, each a new instance (and a new study)."""
    base = pydicom.dcmread(path)
    out = []
    for _ in range(n):
        ds = copy.deepcopy(base)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.StudyInstanceUID = generate_uid()
        ds.SeriesInstanceUID = generate_uid()
        out.append(ds)
    return out


def _scu(port: int, contexts: list[str] | None = None) -> object:
    ae = AE(ae_title="SENDER")
    for cls in contexts or [DigitalMammographyXRayImageStorageForPresentation]:
        ae.add_requested_context(cls)
    assoc = ae.associate("127.0.0.1", port, ae_title=AET)
    assert assoc.is_established, "no association with the node"
    return assoc


def _send(port: int, datasets: list[pydicom.Dataset], **kw: object) -> list[int]:
    assoc = _scu(port, **kw)  # type: ignore[arg-type]
    try:
        return [int(assoc.send_c_store(ds).Status) for ds in datasets]  # type: ignore[attr-defined]
    finally:
        assoc.release()  # type: ignore[attr-defined]


def _wait(cond: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def _done(out: Path) -> set[str]:
    return {p.name for p in (out / "done").iterdir() if not p.name.startswith(".")}


# --- unit ---------------------------------------------------------------------------------


def test_forward_parse() -> None:
    assert Forward.parse("pacs.local:104:ORTHANC") == Forward("pacs.local", 104, "ORTHANC")
    assert Forward.parse("[::1]:4242:PACS") == Forward("::1", 4242, "PACS")
    for bad in ("pacs:104", "pacs:x:AET", "pacs:0:AET", ":104:AET", "h:1:" + "A" * 17):
        with pytest.raises(ConfigError):
            Forward.parse(bad)


# --- exams ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exam_views(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The four views of one synthetic exam (one study), small and coarse."""
    from calcscope.phantom.exam import write_exam_phantom

    views, _ = write_exam_phantom(
        tmp_path_factory.mktemp("exam"), seed=1, spacing_mm=0.2, shape=(900, 700)
    )
    return {p.stem: p for p in views.values()}


def _study(views: dict[str, Path], names: list[str], study: str | None = None) -> list:  # type: ignore[type-arg]
    """The named views as new instances, of their own study or of ``study``."""
    out = []
    for name in names:
        ds = pydicom.dcmread(views[name])
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        if study is not None:
            ds.StudyInstanceUID = study
        out.append(ds)
    return out


def _exam(folder: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((folder / "exam.exam.json").read_text())


def test_node_assembles_an_exam_and_a_late_image_makes_a_new_version(
    tmp_path: Path, exam_views: dict[str, Path]
) -> None:
    out = tmp_path / "node"
    four = _study(exam_views, ["RCC", "LCC", "RMLO", "LMLO"])
    study = str(four[0].StudyInstanceUID)
    folder = out / "exams" / study
    with StorageNode(AET, 0, out, processes=False, exam_idle_s=600, exam_views=4) as node:
        assert _send(node.port, four[:3]) == [0, 0, 0]
        assert node.wait_idle(120)
        assert not (folder / "exam.exam.json").exists()  # three views: not complete yet
        assert node.exams.open_exams == 1
        assert _send(node.port, four[3:]) == [0]
        _wait(lambda: (folder / "exam.exam.json").exists(), 120, "the exam")
        first = _exam(folder)
        assert first["schema_name"] == "calcscope.exam"
        assert first["study_instance_uid"] == study
        assert len(first["images"]) == 4
        assert {(i["laterality"], i["view"]) for i in first["images"]} == {
            ("R", "CC"),
            ("L", "CC"),
            ("R", "MLO"),
            ("L", "MLO"),
        }
        for image in first["images"]:
            assert (folder / image["report"]).is_file(), image["report"]
        assert any(set(f["views"]) == {"CC", "MLO"} for f in first["breasts"]["L"]["findings"])
        assert first["outputs"]["sr"] == "exam.sr.dcm"
        assert _evidence_uids(folder / "exam.sr.dcm") == {
            i["sop_instance_uid"] for i in first["images"]
        }
        # a late image of the completed study reopens it: a new version, the old one kept
        late = _study(exam_views, ["LCC"], study=study)
        assert _send(node.port, late) == [0]
        _wait(lambda: (folder / "exam.v1.exam.json").exists(), 120, "the new version")
        assert node.wait_idle(60)
    assert json.loads((folder / "exam.v1.exam.json").read_text()) == first
    second = _exam(folder)
    assert len(second["images"]) == 5
    uids = {i["sop_instance_uid"] for i in second["images"]}
    assert str(late[0].SOPInstanceUID) in uids
    assert sorted(p.name for p in folder.glob("*.exam.json")) == [
        "exam.exam.json",
        "exam.v1.exam.json",
    ]
    assert _evidence_uids(folder / "exam.sr.dcm") == uids  # the SR replaced: five images


def _evidence_uids(path: Path) -> set[str]:
    """The SOP Instance UIDs an exam SR references as its evidence."""
    sr = pydicom.dcmread(path)
    return {
        str(inst.ReferencedSOPInstanceUID)
        for study in sr.CurrentRequestedProcedureEvidenceSequence
        for series in study.ReferencedSeriesSequence
        for inst in series.ReferencedSOPSequence
    }


def test_node_forwards_the_exam_sr(tmp_path: Path, exam_views: dict[str, Path]) -> None:
    """A completed exam's one SR for the study goes to the PACS, besides each image's."""
    received: list[pydicom.Dataset] = []

    def on_store(event: Any) -> int:
        received.append(event.dataset)
        return 0

    four = _study(exam_views, ["RCC", "LCC", "RMLO", "LMLO"])
    uids = {str(ds.SOPInstanceUID) for ds in four}
    with storage_receiver(on_store) as pacs_port:
        fwd = Forward("127.0.0.1", pacs_port, "PACS")
        with StorageNode(
            AET, 0, tmp_path / "node", forward=fwd, processes=False, exam_views=4
        ) as node:
            assert _send(node.port, four) == [0, 0, 0, 0]

            def exam_sr() -> list[pydicom.Dataset]:
                return [
                    ds
                    for ds in received
                    if ds.SOPClassUID == MammographyCADSRStorage
                    and len(
                        ds.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence
                    )
                    and {
                        str(i.ReferencedSOPInstanceUID)
                        for s in ds.CurrentRequestedProcedureEvidenceSequence
                        for r in s.ReferencedSeriesSequence
                        for i in r.ReferencedSOPSequence
                    }
                    == uids
                ]

            _wait(lambda: len(exam_sr()) == 1, 120, "the exam SR at the PACS")
    per_image = [ds for ds in received if ds.SOPClassUID == MammographyCADSRStorage]
    assert len(per_image) == 5  # four image SRs and the exam's


def test_node_writes_one_exam_per_study_after_the_idle_time(
    tmp_path: Path, exam_views: dict[str, Path]
) -> None:
    out = tmp_path / "node"
    a = _study(exam_views, ["RCC", "LCC"], study=generate_uid())
    b = _study(exam_views, ["RMLO"], study=generate_uid())
    with StorageNode(AET, 0, out, processes=False, exam_idle_s=3.0, exam_views=4) as node:
        assert _send(node.port, [a[0], b[0], a[1]]) == [0, 0, 0]
        assert node.wait_idle(120)
        _wait(lambda: len(list((out / "exams").glob("*/exam.exam.json"))) == 2, 30, "2 exams")
        assert node.exams.open_exams == 0
    exams = {
        e["study_instance_uid"]: e
        for e in (json.loads(p.read_text()) for p in (out / "exams").glob("*/exam.exam.json"))
    }
    assert set(exams) == {str(a[0].StudyInstanceUID), str(b[0].StudyInstanceUID)}
    assert len(exams[str(a[0].StudyInstanceUID)]["images"]) == 2
    assert len(exams[str(b[0].StudyInstanceUID)]["images"]) == 1
    assert not list((out / "exams").glob("*/exam.v*.exam.json"))


def test_node_refuses_a_bad_exam_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        StorageNode(AET, 0, tmp_path / "a", exam_idle_s=0)
    with pytest.raises(ConfigError):
        StorageNode(AET, 0, tmp_path / "b", exam_views=0)
    args = ["node", "--out", str(tmp_path / "c"), "--port", "0"]
    assert main([*args, "--exam-idle-s", "0"]) == 2
    assert main([*args, "--exam-views", "0"]) == 2
    assert not (tmp_path / "c" / "node.log").exists()


# --- node without a PACS --------------------------------------------------------------------


def test_echo_store_and_failure_statuses(tmp_path: Path, base_images: dict[str, Path]) -> None:
    out = tmp_path / "node"
    with StorageNode(AET, 0, out, dicom_reports=True) as node:
        ae = AE(ae_title="SENDER")
        ae.add_requested_context(Verification)
        assoc = ae.associate("127.0.0.1", node.port, ae_title=AET)
        assert int(assoc.send_c_echo().Status) == 0
        assoc.release()

        good = _clones(base_images["full"], 1)[0]
        ct = _clones(base_images["empty"], 1)[0]
        ct.Modality = "CT"
        truncated = _clones(base_images["empty"], 1)[0]
        truncated.PixelData = truncated.PixelData[:1000]
        mismatch = _clones(base_images["empty"], 1)[0]
        sc_ot = _clones(base_images["empty"], 1)[0]
        sc_ot.SOPClassUID = SecondaryCaptureImageStorage
        sc_ot.Modality = "OT"
        sc_mg = _clones(base_images["empty"], 1)[0]
        sc_mg.SOPClassUID = SecondaryCaptureImageStorage
        assoc = _scu(
            node.port,
            contexts=[
                DigitalMammographyXRayImageStorageForPresentation,
                SecondaryCaptureImageStorage,
            ],
        )
        statuses = [int(assoc.send_c_store(ds).Status) for ds in (ct, truncated)]  # type: ignore[attr-defined]
        # a data set whose SOP Instance UID differs from the request's
        status_uid = dicomnode.check_dataset(mismatch, str(mismatch.SOPClassUID), generate_uid())
        statuses += [int(assoc.send_c_store(ds).Status) for ds in (sc_ot, sc_mg, good)]  # type: ignore[attr-defined]
        assoc.release()  # type: ignore[attr-defined]
        assert statuses == [0xA900, 0xC000, 0xA900, 0x0000, 0x0000]
        assert status_uid is not None and status_uid[0] == 0xA900
        assert node.wait_idle(60)
        # a second C-STORE of an analysed image is answered but not analysed again
        assert _send(node.port, [good]) == [0]
        assert node.wait_idle(10)
        assert node.stats.rejected == 3 and node.stats.duplicates == 1
    uid = str(good.SOPInstanceUID)
    assert _done(out) == {uid, str(sc_mg.SOPInstanceUID)}
    res = out / "results" / uid
    assert {p.name for p in res.iterdir()} == {
        "analysis.json",
        "analysis.sr.dcm",
        "analysis.gsps.dcm",
    }
    report = json.loads((res / "analysis.json").read_text())
    assert report["source"]["path"] == str(out / "received" / f"{uid}.dcm")
    sr = read_sr(res / "analysis.sr.dcm")
    assert sr.study_instance_uid == str(good.StudyInstanceUID)
    assert len(sr.clusters) == len(report["clusters"]) >= 1
    assert (out / "received" / f"{uid}.dcm").exists()
    assert not list((out / "incoming").iterdir())
    assert analysed_counts(out)[uid] == 1
    # the commit marker keeps where the image's time went (in the worker process)
    marker = json.loads((out / "done" / uid).read_text())
    assert 0 < marker["analysis_s"] < marker["seconds"] and 0 < marker["outputs_s"]
    text = (out / "node.log").read_text()
    assert "not a mammogram: modality CT" in text and "truncated pixel data" in text


def test_queue_full_answers_out_of_resources(tmp_path: Path, base_images: dict[str, Path]) -> None:
    def slow(path: Path, config: Config) -> object:
        time.sleep(1.0)
        return analyze(path, config=config)

    out = tmp_path / "node"
    with StorageNode(
        AET,
        0,
        out,
        queue_size=1,
        put_timeout_s=0.2,
        dicom_reports=False,
        processes=False,
        analyze=slow,
    ) as node:
        images = _clones(base_images["empty"], 4)
        statuses = _send(node.port, images)
        assert statuses[:2] == [0, 0] and 0xA700 in statuses
        assert node.wait_idle(30)
    accepted = {str(ds.SOPInstanceUID) for ds, s in zip(images, statuses, strict=True) if s == 0}
    assert _done(out) == accepted
    refused = [ds for ds, s in zip(images, statuses, strict=True) if s == 0xA700]
    assert not any((out / "incoming" / f"{ds.SOPInstanceUID}.dcm").exists() for ds in refused)


def test_200_images_over_20_associations_each_analysed_once(
    tmp_path: Path, base_images: dict[str, Path]
) -> None:
    out = tmp_path / "node"
    images = _clones(base_images["small"], 200)
    with StorageNode(AET, 0, out, workers=2, queue_size=32, dicom_reports=False) as node:
        results: dict[int, list[int]] = {}

        def sender(k: int) -> None:
            results[k] = _send(node.port, images[k::20])

        threads = [threading.Thread(target=sender, args=(k,)) for k in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert sorted(results) == list(range(20))
        assert all(s == 0 for r in results.values() for s in r)
        assert node.wait_idle(120)
        assert node.stats.analysed == 200 and node.stats.received == 200
    uids = {str(ds.SOPInstanceUID) for ds in images}
    assert _done(out) == uids
    assert {p.name for p in (out / "results").iterdir()} == uids
    assert all((out / "results" / u / "analysis.json").exists() for u in uids)
    assert {p.stem for p in (out / "received").iterdir()} == uids
    counts = analysed_counts(out)
    assert set(counts) == uids and set(counts.values()) == {1}


def test_stop_with_queued_work_then_restart(tmp_path: Path, base_images: dict[str, Path]) -> None:
    calls: Counter[str] = Counter()

    def slow(path: Path, config: Config) -> object:
        calls[Path(path).stem] += 1
        time.sleep(0.3)
        return analyze(path, config=config)

    out = tmp_path / "node"
    images = _clones(base_images["empty"], 12)
    stop = threading.Event()
    port = free_port()
    thread = threading.Thread(
        target=run_node,
        args=(AET, port, out),
        kwargs={
            "stop_event": stop,
            "dicom_reports": False,
            "host": "127.0.0.1",
            "processes": False,
            "analyze": slow,
        },
    )
    thread.start()
    _wait(
        lambda: (out / "node.log").exists() and "listening" in (out / "node.log").read_text(),
        20,
        "the node to listen",
    )
    assert _send(port, images) == [0] * 12
    _wait(lambda: len(_done(out)) >= 2, 30, "two analyses")
    stop.set()
    thread.join(30)
    left = {p.stem for p in (out / "incoming").glob("*.dcm")}
    assert left and len(_done(out)) + len(left) == 12
    # half-written leftovers of a crash are cleaned at the next start
    (out / "incoming" / ".tmp-junk.dcm.x").write_bytes(b"partial")
    (out / "results" / ".tmp-1.2.3-deadbeef").mkdir()
    with StorageNode(AET, 0, out, dicom_reports=False, processes=False, analyze=slow) as node:
        assert node.wait_idle(60)
        assert node.stats.recovered == len(left)
    uids = {str(ds.SOPInstanceUID) for ds in images}
    assert _done(out) == uids
    assert set(calls) == uids and set(calls.values()) == {1}
    assert not list((out / "incoming").iterdir())
    assert {p.name for p in (out / "results").iterdir()} == uids


def test_killed_node_loses_no_received_image(tmp_path: Path, base_images: dict[str, Path]) -> None:
    """SIGKILL the node process with work queued; a restart analyses the rest once.

    The node is started without ``--host``: it listens on 127.0.0.1 by default."""
    out = tmp_path / "node"
    port = free_port()
    images = _clones(base_images["full"], 16)
    cmd = [
        sys.executable, "-m", "calcscope.apps.cli", "node", "--out", str(out), "--port", str(port),
        "--ae-title", AET, "--no-dicom-reports",
    ]  # fmt: skip

    def start() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if wait_for_echo("127.0.0.1", port, AET, calling_ae_title="SENDER"):
            return proc
        proc.kill()
        raise AssertionError("the node did not start")

    proc = start()
    try:
        assert _send(port, images) == [0] * 16
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        analysed_before = len(_done(out))
        assert analysed_before < 16, "the node was too fast to be killed mid-run"
        proc = start()
        _wait(lambda: len(_done(out)) == 16, 90, "all 16 images analysed after the restart")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
    uids = {str(ds.SOPInstanceUID) for ds in images}
    assert _done(out) == uids
    assert {p.stem for p in (out / "received").iterdir()} == uids
    assert not list((out / "incoming").glob("*.dcm"))
    counts = analysed_counts(out)
    assert set(counts) == uids and max(counts.values()) == 1


# --- who may connect ---------------------------------------------------------------------------


def _associate(
    port: int,
    *,
    called: str = AET,
    calling: str = "SENDER",
    tls: ssl.SSLContext | None = None,
) -> object:
    """An association from a pynetdicom SCU (established or not), over TLS with ``tls``."""
    ae = AE(ae_title=calling)
    ae.acse_timeout = ae.network_timeout = ae.connection_timeout = 10
    ae.add_requested_context(DigitalMammographyXRayImageStorageForPresentation)
    ae.add_requested_context(Verification)
    tls_args = (tls, "localhost") if tls is not None else None
    return ae.associate("127.0.0.1", port, ae_title=called, tls_args=tls_args)


def _non_loopback_address() -> str | None:
    """This machine's address on its default route (no packet is sent), if any."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1
            address = str(s.getsockname()[0])
    except OSError:
        return None
    return None if address.startswith("127.") else address


def test_listens_on_loopback_by_default(tmp_path: Path) -> None:
    with StorageNode(AET, 0, tmp_path / "node", processes=False) as node:
        assert node.address == ("127.0.0.1", node.port)
        assoc = _associate(node.port)
        assert assoc.is_established  # type: ignore[attr-defined]
        assoc.release()  # type: ignore[attr-defined]
        other = _non_loopback_address()
        if other is not None:  # not reachable from another interface
            with pytest.raises(OSError), socket.create_connection((other, node.port), 5):
                pass


def test_wrong_called_ae_title_is_refused(tmp_path: Path) -> None:
    with StorageNode(AET, 0, tmp_path / "node", processes=False) as node:
        wrong = _associate(node.port, called="ANY-SCP")
        assert not wrong.is_established and wrong.is_rejected  # type: ignore[attr-defined]
        right = _associate(node.port)
        assert right.is_established  # type: ignore[attr-defined]
        right.release()  # type: ignore[attr-defined]


def test_allow_accepts_only_listed_calling_ae_titles(
    tmp_path: Path, base_images: dict[str, Path]
) -> None:
    out = tmp_path / "node"
    image = _clones(base_images["small"], 1)[0]
    with StorageNode(
        AET, 0, out, allow=["MODALITY", "PACS"], dicom_reports=False, processes=False
    ) as node:
        stranger = _associate(node.port, calling="SENDER")
        assert not stranger.is_established and stranger.is_rejected  # type: ignore[attr-defined]
        listed = _associate(node.port, calling="MODALITY")
        assert listed.is_established  # type: ignore[attr-defined]
        assert int(listed.send_c_store(image).Status) == 0  # type: ignore[attr-defined]
        listed.release()  # type: ignore[attr-defined]
        assert node.wait_idle(60)
    assert _done(out) == {str(image.SOPInstanceUID)}
    with pytest.raises(ConfigError):
        StorageNode(AET, 0, out, allow=["A" * 17])


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate and key for ``localhost`` (PEM), made here."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    try:
        from cryptography import x509  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        openssl = shutil.which("openssl")
        if openssl is None:
            pytest.skip("neither the cryptography package nor openssl to make a certificate")
        subprocess.run(
            [
                openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert),
                "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
        return cert, key
    import datetime
    import ipaddress

    from cryptography.hazmat.primitives import hashes, serialization  # type: ignore[import-not-found, unused-ignore]
    from cryptography.hazmat.primitives.asymmetric import ec  # type: ignore[import-not-found, unused-ignore]
    from cryptography.x509.oid import NameOID  # type: ignore[import-not-found, unused-ignore]

    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    san = x509.SubjectAlternativeName(
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(san, critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private, hashes.SHA256())
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert, key


def test_tls_store_works_and_plain_client_is_refused(
    tmp_path: Path, base_images: dict[str, Path]
) -> None:
    cert, key = _self_signed(tmp_path)
    out = tmp_path / "node"
    image = _clones(base_images["small"], 1)[0]
    client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cert)
    tls = TLSFiles(cert, key)
    with StorageNode(AET, 0, out, tls=tls, dicom_reports=False, processes=False) as node:
        plain = _associate(node.port)
        assert not plain.is_established  # type: ignore[attr-defined]
        # a client that connects and stays silent does not stop the node accepting others
        with socket.create_connection(("127.0.0.1", node.port)):
            time.sleep(0.2)
            secure = _associate(node.port, tls=client)
        assert secure.is_established  # type: ignore[attr-defined]
        assert int(secure.send_c_store(image).Status) == 0  # type: ignore[attr-defined]
        secure.release()  # type: ignore[attr-defined]
        assert node.wait_idle(60)
    assert _done(out) == {str(image.SOPInstanceUID)}
    # with a CA file, a client must present a certificate signed by it
    tls_ca = TLSFiles(cert, key, ca=cert)
    with StorageNode(AET, 0, tmp_path / "node2", tls=tls_ca, processes=False) as node:
        anonymous = _associate(node.port, tls=client)
        assert not anonymous.is_established  # type: ignore[attr-defined]
        client.load_cert_chain(cert, key)
        known = _associate(node.port, tls=client)
        assert known.is_established  # type: ignore[attr-defined]
        assert int(known.send_c_echo().Status) == 0  # type: ignore[attr-defined]
        known.release()  # type: ignore[attr-defined]
    with pytest.raises(ConfigError):
        TLSFiles(cert, tmp_path / "missing.pem").server_context()
    with pytest.raises(ConfigError):
        TLSFiles.from_options(cert, None)


def test_cli_refuses_incomplete_tls_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cert, _ = _self_signed(tmp_path)
    out = tmp_path / "node"
    assert main(["node", "--out", str(out), "--port", "0", "--tls-cert", str(cert)]) == 2
    assert "--tls-key" in capsys.readouterr().err
    assert not (out / "node.log").exists()


# --- an image that cannot be analysed ------------------------------------------------------------


class PanicException(BaseException):
    """Like ``pyo3_runtime.PanicException``: a decoder panic, not an ``Exception``."""


def faulty_analyze(path: Path, config: Config) -> object:
    """The analysis, but for images whose PatientID asks for a panic, a crash or a hang.

    Module-level, so that the node's worker processes can run it (they import this module).
    """
    fault = str(pydicom.dcmread(path, stop_before_pixels=True).get("PatientID", ""))
    if fault == "PANIC":
        raise PanicException("called `Option::unwrap()` on a `None` value")
    if fault == "CRASH":
        os.kill(os.getpid(), signal.SIGKILL)
    if fault == "HANG":
        time.sleep(600)
    return analyze(path, config=config)


def _faulty_images(path: Path, faults: list[str]) -> list[pydicom.Dataset]:
    images = _clones(path, len(faults))
    for ds, fault in zip(images, faults, strict=True):
        ds.PatientID = fault
    return images


def _error(out: Path, ds: pydicom.Dataset) -> tuple[str, str]:
    record = json.loads((out / "results" / str(ds.SOPInstanceUID) / "error.json").read_text())
    return str(record["error"]), str(record["message"])


def test_decoder_panic_in_a_worker_thread_is_that_images_failure(
    tmp_path: Path, base_images: dict[str, Path]
) -> None:
    out = tmp_path / "node"
    panic, good = _faulty_images(base_images["small"], ["PANIC", "OK"])
    with StorageNode(
        AET, 0, out, dicom_reports=False, processes=False, analyze=faulty_analyze
    ) as node:
        assert _send(node.port, [panic, good]) == [0, 0]
        assert node.wait_idle(60)
        assert node.stats.failed == 1 and node.stats.analysed == 1
    error, message = _error(out, panic)
    assert error == "PanicException" and "unwrap" in message
    assert (out / "failed" / f"{panic.SOPInstanceUID}.dcm").exists()
    assert (out / "results" / str(good.SOPInstanceUID) / "analysis.json").exists()


def test_panicking_killed_and_hanging_workers_fail_only_their_image(
    tmp_path: Path, base_images: dict[str, Path]
) -> None:
    """In worker processes: a panic, a SIGKILL and a hang past ``timeout_s`` are each
    recorded as that image's failure, and the next image is analysed."""
    out = tmp_path / "node"
    faults = ["PANIC", "CRASH", "HANG", "OK"]
    images = _faulty_images(base_images["small"], faults)
    with StorageNode(
        AET, 0, out, dicom_reports=False, analyze=faulty_analyze, timeout_s=10
    ) as node:
        assert _send(node.port, images) == [0] * 4
        assert node.wait_idle(150)
        assert node.stats.failed == 3 and node.stats.analysed == 1
    errors = [_error(out, ds)[0] for ds in images[:3]]
    assert errors == ["PanicException", "WorkerDied", "TimeoutError"]
    assert "PicklingError" not in (out / "node.log").read_text()
    report = json.loads(
        (out / "results" / str(images[3].SOPInstanceUID) / "analysis.json").read_text()
    )
    assert report["source"]["path"] == str(out / "received" / f"{images[3].SOPInstanceUID}.dcm")
    assert _done(out) == {str(ds.SOPInstanceUID) for ds in images}


def _dcmtk(tool: str) -> str | None:
    """dcmtk's ``tool``, not a same-named console script of a virtualenv on PATH, active
    or not (pynetdicom installs its own ``storescu`` there, with other options)."""

    def in_venv(d: str) -> bool:
        d = os.path.abspath(d)
        return d == os.path.join(sys.prefix, "bin") or os.path.isfile(
            os.path.join(os.path.dirname(d), "pyvenv.cfg")
        )

    path = os.pathsep.join(
        p for p in os.environ.get("PATH", "").split(os.pathsep) if p and not in_venv(p)
    )
    return shutil.which(tool, path=path + os.pathsep + "/usr/bin")


@pytest.mark.skipif(
    not all(_dcmtk(t) for t in ("storescu", "dcmcjpls", "dcmcrle", "dcmodify")),
    reason="dcmtk's storescu/dcmcjpls/dcmcrle missing (Debian: apt-get install dcmtk)",
)
def test_dcmtk_storescu_with_compressed_transfer_syntaxes(
    tmp_path: Path, base_images: dict[str, Path]
) -> None:
    """JPEG-LS and RLE sent by dcmtk's storescu give the same analysis as the raw file."""
    files = {}
    for name, tool, propose in (
        ("jls", "dcmcjpls", "--propose-jls-lossless"),
        ("rle", "dcmcrle", "--propose-rle"),
    ):
        f = tmp_path / f"{name}.dcm"
        subprocess.run([_dcmtk(tool), str(base_images["empty"]), str(f)], check=True)
        subprocess.run([_dcmtk("dcmodify"), "-nb", "-gin", str(f)], check=True)  # new instance
        files[name] = (f, propose)
    out = tmp_path / "node"
    with StorageNode(AET, 0, out, dicom_reports=False, processes=False) as node:
        for f, propose in files.values():
            cmd = [_dcmtk("storescu"), "-aec", AET, propose, "127.0.0.1", str(node.port), str(f)]
            run = subprocess.run(cmd, capture_output=True, text=True)
            if run.returncode != 0:  # seen once under heavy load: one retry, then fail loudly
                time.sleep(1.0)
                run = subprocess.run(cmd, capture_output=True, text=True)
            assert run.returncode == 0, f"storescu failed: {run.stdout}\n{run.stderr}"
        assert node.wait_idle(60)
    raw = analyze(base_images["empty"])
    for f, _ in files.values():
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        assert ds.file_meta.TransferSyntaxUID.is_compressed
        uid = str(ds.SOPInstanceUID)
        report = json.loads((out / "results" / uid / "analysis.json").read_text())
        assert report["n_calcifications"] == len(raw.detected)


# --- against a real PACS -----------------------------------------------------------------------


def test_sr_arrives_in_orthanc_under_the_same_study(
    tmp_path: Path, base_images: dict[str, Path], orthanc: Any
) -> None:
    image = _clones(base_images["full"], 1)[0]
    study_uid, uid = str(image.StudyInstanceUID), str(image.SOPInstanceUID)
    out = tmp_path / "node"
    fwd = Forward("127.0.0.1", orthanc.dicom_port, "ORTHANC")
    with StorageNode(AET, 0, out, forward=fwd, host="127.0.0.1") as node:
        # the modality sends the study to the PACS and to calcscope
        send_image = tmp_path / "image.dcm"
        image.save_as(send_image, enforce_file_format=True)
        dicomnode.send_files([send_image], fwd, calling_ae_title="MODALITY")
        assert _send(node.port, [image]) == [0]

        def sr_series() -> list[dict[str, object]]:
            found = orthanc.post("/tools/lookup", study_uid.encode())
            studies = [f["ID"] for f in found if f["Type"] == "Study"]  # type: ignore[attr-defined]
            if not studies:
                return []
            series = orthanc.get(f"/studies/{studies[0]}/series")
            return [s for s in series if s["MainDicomTags"].get("Modality") == "SR"]  # type: ignore[attr-defined]

        _wait(lambda: sr_series() and node.stats.forwarded == 1, 60, "the SR in Orthanc")
    study = orthanc.post("/tools/lookup", study_uid.encode())[0]["ID"]  # type: ignore[index]
    modalities = {
        s["MainDicomTags"]["Modality"]
        for s in orthanc.get(f"/studies/{study}/series")  # type: ignore[attr-defined]
    }
    assert modalities == {"MG", "SR", "PR"}
    (series,) = sr_series()
    (instance,) = series["Instances"]  # type: ignore[misc]
    sr_bytes = orthanc.get(f"/instances/{instance}/file")
    ds = pydicom.dcmread(BytesIO(sr_bytes))  # type: ignore[arg-type]
    assert ds.SOPClassUID == MammographyCADSRStorage
    assert ds.StudyInstanceUID == study_uid
    sr = read_sr(ds)
    report = json.loads((out / "results" / uid / "analysis.json").read_text())
    assert uid in sr.referenced_sop_instance_uids
    assert sr.category == report["assessment"]["category"]
    assert len(sr.clusters) == len(report["clusters"]) >= 1
    by_n = sorted(
        (c.n_calcifications, c.calcification_type[0], c.distribution[0], c.category)  # type: ignore[index]
        for c in sr.clusters
    )
    expected = sorted(
        (
            c["n_members"],
            c["morphology_code"]["value"],
            c["distribution_code"]["value"],
            c["assessment"]["category"],
        )
        for c in report["clusters"]
    )
    assert by_n == expected
    assert not (out / "results" / uid / "forward_pending").exists()


def test_wait_for_echo_answers_when_a_node_listens_and_gives_up_when_none_does(
    tmp_path: Path,
) -> None:
    with StorageNode(AET, 0, tmp_path / "node", dicom_reports=False, processes=False) as node:
        assert wait_for_echo("127.0.0.1", node.port, AET, timeout_s=10)
    port = free_port()
    t0 = time.monotonic()
    assert not wait_for_echo("127.0.0.1", port, AET, timeout_s=1.0, interval_s=0.1)
    assert time.monotonic() - t0 < 30
