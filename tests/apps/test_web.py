"""The web viewer (``calcscope serve``): the API through FastAPI's test client, and the
page in a real headless Chromium driven by Playwright.

The browser test needs Debian's ``chromium`` (``.ci/run`` installs it) and the Python
``playwright`` package (the ``dev`` extra); Playwright's own browser download is not
used. Screenshots go to ``$CALCSCOPE_ARTIFACTS`` (or a temporary folder, printed).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("multipart")
pytest.importorskip("httpx")

import cv2  # noqa: E402

with warnings.catch_warnings():  # starlette's note about httpx2
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient  # noqa: E402

from calcscope.apps.cli import analyze_files  # noqa: E402
from calcscope.apps.web.app import LOOPBACK_HOSTS, create_app  # noqa: E402
from calcscope.apps.web.tiles import TILE_PX, Pyramid, TileCache, level_shapes  # noqa: E402
from calcscope.config import Config  # noqa: E402
from calcscope.imaging.io import write_image  # noqa: E402
from calcscope.phantom.mammogram import make_phantom  # noqa: E402
from helpers import BrowserPage  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

# the spot-contrast detector: the web surface is under test here, not the trained model
CONFIG = Config()
SHAPE = (1400, 1100)
HEADERS = {"X-Calcscope": "1"}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A results folder: ``case`` (source DICOM, overlay, letter), ``nolinks`` (same
    report, no overlay, no letter) and ``moved`` (source gone: overlay fallback)."""
    root = tmp_path_factory.mktemp("web")
    ph = make_phantom(seed=3, spacing_mm=0.1, shape=SHAPE)
    (root / "images").mkdir()
    dicom = write_image(ph.mammogram, root / "images" / "case.dcm")
    write_image(ph.mammogram, root / "case.png")
    out = root / "results"
    res = analyze_files([dicom], out, config=CONFIG, show_progress=False, letter=True)
    assert res[0].ok, res[0].message
    report = json.loads((out / "case.json").read_text())
    (out / "nolinks.json").write_text(json.dumps(report))
    moved = dict(report, source=dict(report["source"], path=str(root / "gone.dcm")))
    (out / "moved.json").write_text(json.dumps(moved))
    shutil.copy(out / "case.overlay.png", out / "moved.overlay.png")
    (out / "notes.json").write_text('{"not": "a report"}')
    return out


@pytest.fixture()
def client(results: Path, tmp_path: Path) -> TestClient:
    app = create_app(
        results,
        uploads_dir=tmp_path / "uploads",
        image_dirs=[results.parent / "images"],
        config=CONFIG,
        max_upload_bytes=4 * 2**20,
    )
    return TestClient(app)


def _png_bytes(shape: tuple[int, int] = (400, 300)) -> bytes:
    rng = np.random.default_rng(0)
    img = (rng.random(shape) * 50 + 100).astype(np.uint8)
    return cv2.imencode(".png", img)[1].tobytes()


# ---------------------------------------------------------------------------- tiles


def test_level_shapes_halve_down_to_one_tile() -> None:
    shapes = level_shapes((4096, 3328))
    assert shapes[0] == (4096, 3328)
    assert shapes[1] == (2048, 1664)
    assert max(shapes[-1]) <= TILE_PX < max(shapes[-2])
    assert level_shapes((100, 80)) == [(100, 80)]


def test_pyramid_tiles_cover_the_image_and_cache_is_bounded() -> None:
    base = (np.arange(600 * 700) % 251).astype(np.uint8).reshape(600, 700)
    pyr = Pyramid(base)
    n_r, n_c = pyr.n_tiles(0)
    assert (n_r, n_c) == (3, 3)
    assert pyr.tile(0, 2, 2).shape == (600 - 512, 700 - 512)
    np.testing.assert_array_equal(pyr.tile(0, 1, 2), base[256:512, 512:700])
    assert pyr.level(1).shape == (300, 350)
    with pytest.raises(IndexError):
        pyr.tile(0, 3, 0)
    cache = TileCache(max_pyramids=1, max_tile_bytes=10_000)
    loads = []
    for key in ("a", "a", "b"):
        cache.pyramid(key, lambda k=key: loads.append(k) or Pyramid(base))
    assert loads == ["a", "b"]
    for c in range(3):
        cache.tile_png("b", pyr, 0, 0, c)
    assert cache._tile_bytes <= 10_000


# ------------------------------------------------------------------------------ API


def test_study_list(client: TestClient) -> None:
    r = client.get("/api/studies")
    assert r.status_code == 200
    rows = {s["id"]: s for s in r.json()["studies"]}
    assert set(rows) == {"case", "nolinks", "moved"}  # notes.json is not a report
    assert rows["case"]["name"] == "case"
    assert rows["case"]["category"]
    assert rows["case"]["shape_rc"] == list(SHAPE)


def test_study_json_and_tiles(client: TestClient) -> None:
    r = client.get("/api/studies/case")
    assert r.status_code == 200
    st = r.json()
    assert st["image"]["kind"] == "source"
    assert st["image"]["levels"][0] == list(SHAPE)
    assert st["report"]["schema_name"] == "calcscope.analysis"
    assert st["has_overlay"] is True
    t = client.get("/api/studies/case/tiles/0/0/0.png")
    assert t.status_code == 200 and t.headers["content-type"] == "image/png"
    tile = cv2.imdecode(np.frombuffer(t.content, np.uint8), cv2.IMREAD_UNCHANGED)
    assert tile.shape == (TILE_PX, TILE_PX)
    # the last tile of level 0 is cut to the image: 1400 = 5 * 256 + 120, 1100 = 4 * 256 + 76
    edge = client.get("/api/studies/case/tiles/0/5/4.png")
    tile = cv2.imdecode(np.frombuffer(edge.content, np.uint8), cv2.IMREAD_UNCHANGED)
    assert tile.shape == (120, 76)
    top = len(st["image"]["levels"]) - 1
    small = client.get(f"/api/studies/case/tiles/{top}/0/0.png")
    tile = cv2.imdecode(np.frombuffer(small.content, np.uint8), cv2.IMREAD_UNCHANGED)
    assert tile.shape == tuple(st["image"]["levels"][top])
    assert client.get("/api/studies/case/tiles/0/6/0.png").status_code == 404
    assert client.get("/api/studies/case/tiles/9/0/0.png").status_code == 404


def test_overlay_fallback_and_letters(client: TestClient) -> None:
    moved = client.get("/api/studies/moved").json()
    assert moved["image"]["kind"] == "overlay"
    assert "gone.dcm" in moved["image"]["note"]
    tile = client.get("/api/studies/moved/tiles/0/0/0.png")
    img = cv2.imdecode(np.frombuffer(tile.content, np.uint8), cv2.IMREAD_UNCHANGED)
    assert img.shape[:2] == (TILE_PX, TILE_PX)  # a grey PNG where the tile has no mark
    letter = client.get("/api/studies/case/letter")
    assert letter.status_code == 200 and "research software" in letter.text
    assert letter.headers["content-security-policy"].startswith("sandbox")
    rebuilt = client.get("/api/studies/nolinks/letter")  # no letter file: rebuilt
    assert rebuilt.status_code == 200 and "<h1>Your mammogram" in rebuilt.text
    assert client.get("/api/studies/nolinks/overlay.png").status_code == 404
    assert client.get("/api/studies/case/overlay.png").headers["content-type"] == "image/png"


def test_page_and_static_files_are_served_locally(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert "default-src 'self'" in r.headers["content-security-policy"]
    # every script, style sheet and image the page names is served by the app itself
    links = re.findall(r'(?:src|href)="([^"]*)"', r.text)
    assert links and all(u.startswith(("/", "#", "data:")) for u in links), links
    assert "//" not in "".join(links)
    for name in ("viewer.js", "viewer.css"):
        s = client.get(f"/static/{name}")
        assert s.status_code == 200
        text = s.text.replace("http://www.w3.org/2000/svg", "")
        assert "http://" not in text and "https://" not in text and "@import" not in text


@pytest.mark.parametrize(
    "bad_id",
    ["..", "../results/case", "..%2Fcase", "%2e%2e%2fcase", "case.json", "/etc/passwd", "nope"],
)
def test_unknown_or_hostile_ids_are_404(client: TestClient, bad_id: str) -> None:
    for suffix in ("", "/letter", "/report.json", "/tiles/0/0/0.png"):
        r = client.get(f"/api/studies/{bad_id}{suffix}")
        assert r.status_code == 404, (bad_id, suffix, r.status_code)


def test_upload_png_with_spacing_becomes_a_study(client: TestClient, results: Path) -> None:
    png = (results.parent / "case.png").read_bytes()
    r = client.post(
        "/api/upload",
        files={"file": ("../../evil name.png", png, "image/png")},
        data={"spacing_mm": "0.1", "laterality": "R", "view": "MLO"},
        headers=HEADERS,
    )
    assert r.status_code == 201, r.text
    row = r.json()
    assert row["id"].startswith("u-") and row["name"] == "evil name.png"
    stored = {p.name for p in (client.app.state.uploads_dir).iterdir()}  # type: ignore[attr-defined]
    assert all(n.startswith(row["id"]) for n in stored)
    assert f"{row['id']}.png" in stored and f"{row['id']}.json" in stored
    ids = [s["id"] for s in client.get("/api/studies").json()["studies"]]
    assert row["id"] in ids
    st = client.get(f"/api/studies/{row['id']}").json()
    assert st["image"]["kind"] == "source"
    assert st["report"]["source"]["laterality"] == "R"
    assert st["report"]["source"]["spacing_mm"] == [0.1, 0.1]
    assert client.get(f"/api/studies/{row['id']}/tiles/0/0/0.png").status_code == 200


@pytest.mark.parametrize(
    ("name", "content", "data", "status", "words"),
    [
        ("junk.png", b"this is not an image at all", {}, 415, "not a supported image"),
        ("empty.dcm", b"", {}, 400, "empty"),
        ("scan.png", _png_bytes(), {}, 400, "pixel spacing"),
        ("scan.png", _png_bytes(), {"spacing_mm": "abc"}, 400, "not a number"),
        ("scan.png", _png_bytes(), {"spacing_mm": "5"}, 400, "outside"),
        ("scan.png", _png_bytes(), {"spacing_mm": "0.1", "view": "XX"}, 400, "view"),
        ("trunc.png", _png_bytes()[:200], {"spacing_mm": "0.1"}, 400, "trunc.png"),
    ],
)
def test_bad_uploads_get_a_readable_message(
    client: TestClient, name: str, content: bytes, data: dict, status: int, words: str
) -> None:
    r = client.post(
        "/api/upload", files={"file": (name, content, "image/png")}, data=data, headers=HEADERS
    )
    assert r.status_code == status, r.text
    detail = r.json()["error"]
    assert words in detail
    assert str(client.app.state.uploads_dir) not in detail  # type: ignore[attr-defined]
    assert client.get("/api/health").json()["status"] == "ok"
    assert list(client.app.state.uploads_dir.iterdir()) == []  # type: ignore[attr-defined]


def test_upload_limits(client: TestClient) -> None:
    big = b"\x89PNG\r\n\x1a\n" + bytes(5 * 2**20)
    r = client.post("/api/upload", files={"file": ("big.png", big)}, headers=HEADERS)
    assert r.status_code == 413 and "too large" in r.json()["error"]
    # no Content-Length: the bytes are counted as they arrive

    def chunks():  # type: ignore[no-untyped-def]
        boundary = b"--xyz"
        yield boundary + b"\r\n"
        yield b'Content-Disposition: form-data; name="file"; filename="b.png"\r\n\r\n'
        for _ in range(6):
            yield bytes(2**20)
        yield b"\r\n" + boundary + b"--\r\n"

    r = client.post(
        "/api/upload",
        content=chunks(),
        headers={**HEADERS, "Content-Type": "multipart/form-data; boundary=xyz"},
    )
    assert r.status_code == 413
    no_header = client.post("/api/upload", files={"file": ("a.png", _png_bytes())})
    assert no_header.status_code == 403
    assert client.post("/api/upload", data={"x": "1"}, headers=HEADERS).status_code == 400
    assert client.get("/api/health").status_code == 200


def test_trusted_hosts(results: Path, tmp_path: Path) -> None:
    app = create_app(results, uploads_dir=tmp_path, allowed_hosts=LOOPBACK_HOSTS)
    assert TestClient(app, base_url="http://127.0.0.1").get("/api/health").status_code == 200
    assert TestClient(app, base_url="http://evil.example").get("/api/health").status_code == 400


def test_missing_results_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        create_app(tmp_path / "nope")
    app = create_app(None, uploads_dir=tmp_path)
    assert TestClient(app).get("/api/studies").json() == {"studies": [], "exams": []}


# ------------------------------------------------------------- files outside the folders


def _copy_study(results: Path, folder: Path, stem: str, **source: object) -> Path:
    """``results/case.json`` copied to ``folder/<stem>.json`` with its source fields changed."""
    report = json.loads((results / "case.json").read_text())
    report["source"].update(source)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.json").write_text(json.dumps(report))
    return folder / f"{stem}.json"


def test_symlinks_out_of_the_folder_are_not_followed(results: Path, tmp_path: Path) -> None:
    res = tmp_path / "res"
    _copy_study(results, res, "x")
    _copy_study(results, res, "inner")
    secret = tmp_path / "secret.png"
    shutil.copy(results / "case.overlay.png", secret)
    (res / "x.overlay.png").symlink_to("/etc/passwd")
    (res / "x.letter.html").symlink_to(secret)
    outside = _copy_study(results, tmp_path / "elsewhere", "far")
    (res / "far.json").symlink_to(outside)  # a report outside: not a study
    shutil.copy(results / "case.overlay.png", res / "real.png")
    (res / "inner.overlay.png").symlink_to(res / "real.png")  # inside: served
    c = TestClient(create_app(res, uploads_dir=tmp_path / "up"))
    ids = {s["id"] for s in c.get("/api/studies").json()["studies"]}
    assert ids == {"x", "inner"}
    assert c.get("/api/studies/far").status_code == 404
    r = c.get("/api/studies/x/overlay.png")
    assert r.status_code == 404 and "root:" not in r.text
    assert r.json() == {"error": "no overlay PNG was written for this study"}
    st = c.get("/api/studies/x").json()
    assert st["has_overlay"] is False and st["image"]["kind"] is None
    assert c.get("/api/studies/x/tiles/0/0/0.png").status_code == 404
    letter = c.get("/api/studies/x/letter")  # the linked file is not read: rebuilt instead
    assert letter.status_code == 200 and "<h1>Your mammogram" in letter.text
    assert letter.content != secret.read_bytes()
    inner = c.get("/api/studies/inner/overlay.png")
    assert inner.status_code == 200 and inner.content == (res / "real.png").read_bytes()


def test_source_images_are_looked_up_inside_the_folders_only(results: Path, tmp_path: Path) -> None:
    images = results.parent / "images"
    res = tmp_path / "res"
    _copy_study(results, res, "absolute", path=str(images / "case.dcm"))
    _copy_study(results, res, "dotdot", path=os.path.relpath(images / "case.dcm", res))
    shutil.copy(results / "case.overlay.png", res / "absolute.overlay.png")
    alone = TestClient(create_app(res, uploads_dir=tmp_path / "up"))
    for sid in ("absolute", "dotdot"):
        st = alone.get(f"/api/studies/{sid}").json()
        assert st["image"]["kind"] != "source", sid
    assert alone.get("/api/studies/absolute").json()["image"]["kind"] == "overlay"
    assert alone.get("/api/studies/dotdot/tiles/0/0/0.png").status_code == 404
    # the same reports, with the images folder given: the file is found there by its name
    given = TestClient(create_app(res, uploads_dir=tmp_path / "up", image_dirs=[images]))
    for sid in ("absolute", "dotdot"):
        assert given.get(f"/api/studies/{sid}").json()["image"]["kind"] == "source", sid


# ------------------------------------------------------------------------ upload retention


def _fake_upload(folder: Path, sid: str, age_h: float) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = [folder / f"{sid}{suffix}" for suffix in (".png", ".json", ".meta.json")]
    stamp = time.time() - age_h * 3600
    for path in files:
        path.write_text("{}")
        os.utime(path, (stamp, stamp))
    return files


def test_old_uploads_are_removed(tmp_path: Path) -> None:
    from calcscope.apps.web.uploads import prune_uploads

    up = tmp_path / "up"
    old = _fake_upload(up, "u-00000000000000aa", age_h=30)
    new = _fake_upload(up, "u-00000000000000bb", age_h=1)
    other = up / "notes.txt"
    other.write_text("not an upload")
    os.utime(other, (0, 0))
    app = create_app(None, uploads_dir=up, upload_retention_hours=24)  # at start-up
    assert not any(p.exists() for p in old)
    assert all(p.exists() for p in new) and other.exists()
    # a fake clock 24 h later: the newer one is past the retention time too
    assert prune_uploads(up, 24 * 3600, now_s=time.time() + 24 * 3600) == ["u-00000000000000bb"]
    assert not any(p.exists() for p in new) and other.exists()
    # while the server runs: on the study list and on each upload (even a refused one)
    c = TestClient(app)
    for request in (
        lambda: c.get("/api/studies"),
        lambda: c.post("/api/upload", files={"file": ("a.png", b"junk")}, headers=HEADERS),
    ):
        files = _fake_upload(up, "u-00000000000000cc", age_h=25)
        request()
        assert not any(p.exists() for p in files)
    kept = _fake_upload(tmp_path / "keep", "u-00000000000000dd", age_h=1000)
    create_app(None, uploads_dir=tmp_path / "keep", upload_retention_hours=None)
    assert all(p.exists() for p in kept)


# ----------------------------------------------------------------------------- JSON errors


def test_every_error_is_json(client: TestClient, results: Path, tmp_path: Path) -> None:
    for method, url, status in [
        ("GET", "/api/nothing-here", 404),
        ("GET", "/api/studies/nope", 404),
        ("GET", "/api/studies/case/tiles/x/0/0.png", 422),
        ("GET", "/api/upload", 405),
        ("GET", "/static/nope.js", 404),
    ]:
        r = client.request(method, url)
        assert r.status_code == status, (url, r.status_code)
        assert r.headers["content-type"] == "application/json", url
        assert isinstance(r.json()["error"], str) and r.json()["error"], url
    app = create_app(results, uploads_dir=tmp_path, allowed_hosts=LOOPBACK_HOSTS)
    r = TestClient(app, base_url="http://evil.example").get("/api/health")
    assert r.status_code == 400 and "host" in r.json()["error"]


def test_unexpected_errors_are_json_500(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    import calcscope.apps.web.routes as routes
    from calcscope import pipeline
    from calcscope.reports import writer

    class FakePanic(BaseException):  # like pyo3_runtime.PanicException
        pass

    up: Path = client.app.state.uploads_dir  # type: ignore[attr-defined]
    real_write = writer.write_outputs

    def half_written(analysis, out_dir, stem, options=None, **kw):  # type: ignore[no-untyped-def]
        (Path(out_dir) / f"{stem}.overlay.png").write_bytes(b"partial")
        raise OSError("disk full")

    def boom(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("boom")

    def panic(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise FakePanic("decoder panicked")

    data = {"spacing_mm": "0.1"}
    for target, fake, words in [
        ((pipeline, "analyze"), boom, "RuntimeError: boom"),
        ((pipeline, "analyze"), panic, "FakePanic"),
        ((writer, "write_outputs"), half_written, "OSError: disk full"),
    ]:
        with monkeypatch.context() as m:
            m.setattr(*target, fake)
            r = client.post(
                "/api/upload", files={"file": ("s.png", _png_bytes())}, data=data, headers=HEADERS
            )
        assert r.status_code == 500, r.text
        assert r.headers["content-type"] == "application/json"
        assert words in r.json()["error"] and "s.png" in r.json()["error"]
        assert list(up.iterdir()) == []  # the upload's files are removed
    assert writer.write_outputs is real_write
    assert client.get("/api/health").status_code == 200
    # outside an upload: the guard answers JSON, with the security headers
    monkeypatch.setattr(routes, "summary", boom)
    r = client.get("/api/studies")
    assert r.status_code == 500 and "RuntimeError" in r.json()["error"]
    assert "default-src 'self'" in r.headers["content-security-policy"]


# -------------------------------------------------------------------------- browser


@pytest.fixture()
def server(results: Path, tmp_path: Path, live_server: Callable[[object], str]) -> str:
    return live_server(
        create_app(
            results,
            uploads_dir=tmp_path / "uploads",
            image_dirs=[results.parent / "images"],
            config=CONFIG,
            allowed_hosts=LOOPBACK_HOSTS,
        )
    )


@pytest.fixture()
def artifacts(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("CALCSCOPE_ARTIFACTS") or tmp_path / "artifacts") / "web"
    folder.mkdir(parents=True, exist_ok=True)
    print(f"browser screenshots in {folder}")
    return folder


def test_browser(server: str, artifacts: Path, open_browser: Callable[..., BrowserPage]) -> None:
    browser = open_browser(900, console_errors=True)
    page = browser.page

    # the page and the study list
    page.goto(server + "/")
    page.wait_for_selector("body[data-ready='1']")
    page.wait_for_selector("#study-list button.study[data-id='case']")
    assert "not a medical device" in page.text_content("#disclaimer")
    page.screenshot(path=str(artifacts / "1-study-list.png"))

    # open a study: tiles load, marks are drawn, findings listed, letter shown
    page.click("#study-list button.study[data-id='case']")
    page.wait_for_selector("body[data-study='case']")
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('#tiles-base img'))"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    n_rows = page.locator("#findings tr.finding").count()
    assert n_rows >= 1
    assert page.locator("#marks g.finding").count() == n_rows
    assert page.locator("#marks .calc").count() > 0
    assert page.is_visible("#marks")
    letter = page.frame_locator("#letter").locator("h1")
    assert "Your mammogram" in letter.text_content()
    page.screenshot(path=str(artifacts / "2-study.png"))

    # toggle the overlay
    page.uncheck("#overlay-toggle")
    assert page.is_hidden("#marks")
    page.screenshot(path=str(artifacts / "3-overlay-off.png"))
    page.check("#overlay-toggle")
    assert page.is_visible("#marks")

    # click a finding: the view centres on it and zooms in, full-resolution tiles
    before = page.eval_on_selector("#world", "e => e.style.transform")
    scale_before = float(page.get_attribute("#stage", "data-scale"))
    row = page.locator("#findings tr.finding").first
    centre = [float(v) for v in row.get_attribute("data-center").split(",")]
    row.click()
    page.wait_for_function(
        "b => document.getElementById('world').style.transform !== b", arg=before
    )
    assert float(page.get_attribute("#stage", "data-scale")) > scale_before
    got = [float(v) for v in page.get_attribute("#stage", "data-centre").split(",")]
    assert abs(got[0] - centre[0]) < 60 and abs(got[1] - centre[1]) < 60
    assert "selected" in (row.get_attribute("class") or "")
    page.wait_for_selector("#tiles img[data-level='0']")
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('#tiles img'))"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    page.screenshot(path=str(artifacts / "4-finding.png"), full_page=True)

    # wheel zoom and drag pan change the view
    page.locator("#stage").scroll_into_view_if_needed()
    box = page.locator("#stage").bounding_box()
    assert box is not None
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    t0 = page.eval_on_selector("#world", "e => e.style.transform")
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx + 120, cy + 40, steps=5)
    page.mouse.up()
    page.wait_for_function("b => document.getElementById('world').style.transform !== b", arg=t0)
    s0 = float(page.get_attribute("#stage", "data-scale"))
    page.mouse.wheel(0, 300)
    page.wait_for_function(
        "s => parseFloat(document.getElementById('stage').dataset.scale) < s", arg=s0
    )

    # a bad upload: a readable message in the page, the server still answers
    page.set_input_files(
        "#upload-file",
        files=[{"name": "bad.png", "mimeType": "image/png", "buffer": b"no image here"}],
    )
    page.click("#upload-submit")
    page.wait_for_selector("#upload-status.error")
    message = page.text_content("#upload-status")
    assert "Upload failed" in message and "bad.png" in message
    assert "DICOM" in message
    page.screenshot(path=str(artifacts / "5-bad-upload.png"))
    health = page.request.get(server + "/api/health")
    assert health.ok
    outside = [u for u in browser.requests if not u.startswith((server, "data:", "about:"))]
    assert outside == [], outside
    assert [p for p in browser.problems if "415" not in p] == []
    assert sorted(f.name for f in artifacts.glob("*.png"))[:5] == [
        "1-study-list.png",
        "2-study.png",
        "3-overlay-off.png",
        "4-finding.png",
        "5-bad-upload.png",
    ]
    assert io.BytesIO((artifacts / "2-study.png").read_bytes()).getbuffer().nbytes > 10_000


# ----------------------------------------------------------------------------- exams


@pytest.fixture(scope="module")
def exam_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A results folder written like ``calcscope analyze EXAM_DIR --out``: four image
    reports of one synthetic exam (a cluster in the left breast) and its exam document."""
    from calcscope.apps.exams import ExamCollector
    from calcscope.phantom.exam import write_exam_phantom

    root = tmp_path_factory.mktemp("webexam")
    views, _ = write_exam_phantom(root / "exam", seed=1, spacing_mm=0.2, shape=(900, 700))
    files = sorted(views.values())
    out = root / "results"
    exams = ExamCollector.for_files(files, out)
    res = analyze_files(files, out, config=CONFIG, show_progress=False, on_analysis=exams.add)
    assert all(r.ok for r in res)
    assert len(exams.write()) == 1
    return out


def _exam_client(folder: Path, tmp_path: Path) -> TestClient:
    return TestClient(create_app(folder, uploads_dir=tmp_path / "up", config=CONFIG))


def test_exam_api_lists_and_hangs_the_exam(exam_results: Path, tmp_path: Path) -> None:
    client = _exam_client(exam_results, tmp_path)
    listed = client.get("/api/studies").json()
    assert sorted(s["id"] for s in listed["studies"]) == ["LCC", "LMLO", "RCC", "RMLO"]
    assert len(listed["exams"]) == 1
    row = listed["exams"][0]
    assert row["kind"] == "exam" and row["n_images"] == 4
    assert client.get("/api/exams").json()["exams"] == listed["exams"]
    body = client.get(f"/api/exams/{row['id']}").json()
    assert body["exam"]["schema_name"] == "calcscope.exam"
    assert [p["slot"] for p in body["panels"]] == ["RCC", "LCC", "RMLO", "LMLO"]
    for panel in body["panels"]:
        assert panel["study_id"] == panel["slot"]
        assert panel["report"]["source"]["laterality"] == panel["laterality"]
        assert panel["image"]["levels"], panel["image"]
        assert panel["flip"] is False  # the phantom is written as it is hung
        tile = client.get(f"/api/studies/{panel['study_id']}/tiles/0/0/0.png")
        assert tile.status_code == 200 and tile.content[:4] == b"\x89PNG"
    left = body["exam"]["breasts"]["L"]["findings"]
    assert any(set(f["views"]) == {"CC", "MLO"} for f in left)
    assert client.get("/api/exams/nope").status_code == 404
    assert client.get("/api/exams/..%2Fetc").status_code == 404


def test_exam_panel_is_mirrored_when_its_nipple_points_outwards(
    exam_results: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "results"
    shutil.copytree(exam_results, folder)
    report = json.loads((folder / "RCC.json").read_text())
    row, col = report["nipple_line"]["nipple_rc"]
    width = report["source"]["shape_rc"][1]
    report["nipple_line"]["nipple_rc"] = [row, width - 1 - col]
    (folder / "RCC.json").write_text(json.dumps(report))
    client = _exam_client(folder, tmp_path)
    exam_id = client.get("/api/exams").json()["exams"][0]["id"]
    flips = {p["slot"]: p["flip"] for p in client.get(f"/api/exams/{exam_id}").json()["panels"]}
    assert flips == {"RCC": True, "LCC": False, "RMLO": False, "LMLO": False}


def test_exam_outside_the_folders_is_not_read(exam_results: Path, tmp_path: Path) -> None:
    folder = tmp_path / "results"
    folder.mkdir()
    exam = next(exam_results.glob("*.exam.json"))
    (folder / "linked.exam.json").symlink_to(exam)
    client = _exam_client(folder, tmp_path)
    assert client.get("/api/studies").json()["exams"] == []


@pytest.fixture()
def exam_server(exam_results: Path, tmp_path: Path, live_server: Callable[[object], str]) -> str:
    return live_server(create_app(exam_results, uploads_dir=tmp_path / "up", config=CONFIG))


def _centre(page, selector: str) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    box = page.locator(selector).bounding_box()
    assert box is not None, selector
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def test_browser_exam_hanging(
    exam_server: str, artifacts: Path, open_browser: Callable[..., BrowserPage]
) -> None:
    browser = open_browser(1000)
    page = browser.page
    page.goto(exam_server + "/")
    page.wait_for_selector("body[data-ready='1']")
    page.click("#exam-list button.exam")
    page.wait_for_selector("body[data-exam]")
    page.wait_for_function(
        "() => document.querySelectorAll('#hanging .pane img').length > 0 && "
        "Array.from(document.querySelectorAll('#hanging .pane img'))"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    # four panels, each with its image, in the hanging's places
    for slot in ("RCC", "LCC", "RMLO", "LMLO"):
        pane = f"#hanging .panel[data-slot='{slot}'] .pane"
        assert page.get_attribute(pane, "data-study") == slot
        assert page.locator(f"{pane} img").count() > 0
    rcc, lcc = _centre(page, "[data-slot='RCC']"), _centre(page, "[data-slot='LCC']")
    rmlo, lmlo = _centre(page, "[data-slot='RMLO']"), _centre(page, "[data-slot='LMLO']")
    assert rcc[0] < lcc[0] and rmlo[0] < lmlo[0]
    assert max(rcc[1], lcc[1]) < min(rmlo[1], lmlo[1])
    # the breasts face each other: each image touches its panel's outer edge
    for slot, side in (("RCC", "left"), ("LCC", "right")):
        pane = page.locator(f"[data-slot='{slot}'] .pane").bounding_box()
        img = page.locator(f"[data-slot='{slot}'] .ptiles").bounding_box()
        assert pane is not None and img is not None
        if side == "left":
            assert abs(img["x"] - pane["x"]) < 2
        else:
            assert abs(img["x"] + img["width"] - pane["x"] - pane["width"]) < 2
    # marks on the views; a finding row marks the finding on both views
    assert page.locator("#hanging g.finding").count() >= 2
    row = page.locator("#exam-findings tr.finding[data-views='CC,MLO']").first
    key = row.get_attribute("data-exam")
    row.click()
    page.wait_for_selector(f"body[data-exam-finding='{key}']")
    selected = page.locator("#hanging g.finding.selected")
    assert selected.count() == 2
    slots = sorted(
        selected.nth(i).evaluate("e => e.closest('.panel').dataset.slot") for i in range(2)
    )
    assert slots == [key[0] + "CC", key[0] + "MLO"]
    assert "selected" in (row.get_attribute("class") or "")
    page.screenshot(path=str(artifacts / "6-exam.png"), full_page=True)
    assert browser.problems == []


# ------------------------------------------------------------------------------ CLI


def test_serve_command(results: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    uvicorn = pytest.importorskip("uvicorn")
    from calcscope.apps.cli import main

    calls: list[tuple[object, dict]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    assert main(["serve", str(tmp_path / "nope")]) == 2
    assert calls == []
    up = tmp_path / "up"
    assert main(["serve", str(results), "--port", "8123", "--uploads", str(up)]) == 0
    app, kw = calls[0]
    assert kw == {"host": "127.0.0.1", "port": 8123, "log_level": "warning"}
    assert app.state.uploads_dir == up  # type: ignore[attr-defined]
    ids = {
        s["id"]
        for s in TestClient(app, base_url="http://localhost").get("/api/studies").json()["studies"]
    }
    assert "case" in ids
    assert TestClient(app, base_url="http://example.org").get("/api/studies").status_code == 400
    assert app.state.viewer.upload_retention_s == 24 * 3600  # type: ignore[attr-defined]
    images = str(results.parent / "images")
    args = ["serve", str(results), "--uploads", str(up), "--images", images]
    assert main([*args, "--upload-retention-hours", "2"]) == 0
    app = calls[-1][0]
    assert app.state.viewer.upload_retention_s == 2 * 3600  # type: ignore[attr-defined]
    st = TestClient(app, base_url="http://localhost").get("/api/studies/case").json()
    assert st["image"]["kind"] == "source"
    assert main([*args, "--upload-retention-hours", "0"]) == 0
    assert calls[-1][0].state.viewer.upload_retention_s is None  # type: ignore[attr-defined]
    assert main([*args, "--upload-retention-hours", "-1"]) == 2
    assert main(["serve", str(results), "--images", str(tmp_path / "nope")]) == 2
