"""Fixtures of the apps' tests: a real PACS (Orthanc, Debian package ``orthanc``) started
on loopback with its own configuration in a temporary folder; the tests that use it skip
when the ``Orthanc`` program is absent."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

#: The AE title Orthanc knows the node by (its ``DicomModalities``).
NODE_AET = "CALCSCOPE"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _orthanc_program() -> str | None:
    return shutil.which("Orthanc", path=os.environ.get("PATH", "") + ":/usr/sbin:/usr/bin")


class Orthanc:
    """An Orthanc started for a test: its DICOM port and its REST API."""

    def __init__(self, dicom_port: int, http_port: int) -> None:
        self.dicom_port = dicom_port
        self.url = f"http://127.0.0.1:{http_port}"

    def get(self, path: str) -> object:
        with urllib.request.urlopen(self.url + path, timeout=10) as r:
            body = r.read()
        return json.loads(body) if r.headers.get_content_type() == "application/json" else body

    def post(self, path: str, data: bytes) -> object:
        req = urllib.request.Request(self.url + path, data=data, method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())


@pytest.fixture
def orthanc(tmp_path: Path) -> Iterator[Orthanc]:
    program = _orthanc_program()
    if program is None:
        pytest.skip("Orthanc is not installed (Debian: apt-get install orthanc)")
    dicom_port, http_port = _free_port(), _free_port()
    root = tmp_path / "orthanc"
    (root / "db").mkdir(parents=True)
    cfg = {
        "Name": "calcscope-test",
        "StorageDirectory": str(root / "db"),
        "IndexDirectory": str(root / "db"),
        "DicomAet": "ORTHANC",
        "DicomPort": dicom_port,
        "HttpPort": http_port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomModalities": {"calcscope": [NODE_AET, "127.0.0.1", 11112]},
        "Plugins": [],
        "StorageCompression": False,
    }
    (root / "orthanc.json").write_text(json.dumps(cfg, indent=1))
    log = (root / "orthanc.log").open("wb")
    proc = subprocess.Popen([program, str(root / "orthanc.json")], stdout=log, stderr=log)
    pacs = Orthanc(dicom_port, http_port)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                pacs.get("/system")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    pytest.fail(
                        "Orthanc did not start:\n" + (root / "orthanc.log").read_text()[-2000:]
                    )
                time.sleep(0.2)
        yield pacs
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
