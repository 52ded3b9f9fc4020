"""Fixtures of the apps' tests: a real PACS (Orthanc, Debian package ``orthanc``) started
on loopback with its own configuration in a temporary folder (the tests that use it skip
when the ``Orthanc`` program is absent); the web viewer served by uvicorn on loopback, and
a page of Debian's Chromium driven by Playwright (skipped where either cannot run)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from helpers import CHROMIUM_ARGS, BrowserPage, chromium_path, free_port

#: The AE title Orthanc knows the node by (its ``DicomModalities``).
NODE_AET = "CALCSCOPE"


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
    dicom_port, http_port = free_port(), free_port()
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


@pytest.fixture
def live_server() -> Iterator[Callable[[Any], str]]:
    """Serve an ASGI app (the viewer's ``create_app(...)``) with uvicorn on a free loopback
    port, in a thread, until the test ends: ``live_server(app)`` returns its base URL.
    Skips without uvicorn."""
    uvicorn = pytest.importorskip("uvicorn")
    servers: list[tuple[Any, threading.Thread]] = []

    def serve(app: Any) -> str:
        port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        srv = uvicorn.Server(config)
        thread = threading.Thread(target=srv.run, daemon=True)
        thread.start()
        servers.append((srv, thread))
        deadline = time.monotonic() + 15
        while not srv.started:
            if time.monotonic() > deadline or not thread.is_alive():
                pytest.fail("uvicorn did not start")
            time.sleep(0.05)
        return f"http://127.0.0.1:{port}"

    yield serve
    for srv, thread in servers:
        srv.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def open_browser() -> Iterator[Callable[..., BrowserPage]]:
    """Open a page in Debian's Chromium (``helpers.chromium_path``), headless under
    Playwright with a fresh profile, closed when the test ends:
    ``open_browser(height_px=900, console_errors=False)`` gives a 1280-pixel-wide page
    with a 20 s default time-out that records its requests and errors. Skips without
    Playwright or Chromium, or when Chromium does not start."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with ExitStack() as stack:

        def open_page(height_px: int = 900, *, console_errors: bool = False) -> BrowserPage:
            chromium = chromium_path()
            pw = stack.enter_context(sync_api.sync_playwright())
            profile = stack.enter_context(tempfile.TemporaryDirectory())
            try:
                ctx = pw.chromium.launch_persistent_context(
                    profile,
                    executable_path=chromium,
                    headless=True,
                    args=list(CHROMIUM_ARGS),
                    viewport={"width": 1280, "height": height_px},
                    timeout=60_000,
                )
            except Exception as exc:  # noqa: BLE001 - a broken browser install is a skip
                pytest.skip(f"chromium at {chromium} does not start under Playwright: {exc}")
            stack.callback(ctx.close)
            seen = BrowserPage(ctx.new_page())
            seen.page.set_default_timeout(20_000)
            seen.page.on("request", lambda req: seen.requests.append(req.url))
            seen.page.on("pageerror", lambda exc: seen.problems.append(f"page error: {exc}"))
            if console_errors:
                seen.page.on(
                    "console",
                    lambda m: (
                        seen.problems.append(f"console: {m.text}") if m.type == "error" else None
                    ),
                )
            return seen

        yield open_page
