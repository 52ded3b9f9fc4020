"""The viewer's side by side of an exam and its prior: the API (FastAPI's test client)
and the page in a real headless Chromium driven by Playwright (as ``test_web.py``)."""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

with warnings.catch_warnings():  # starlette's note about httpx2
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient  # noqa: E402

from calcscope.apps.cli import analyze_files  # noqa: E402
from calcscope.apps.exams import ExamCollector  # noqa: E402
from calcscope.apps.web.app import LOOPBACK_HOSTS, create_app  # noqa: E402
from calcscope.apps.web.compare import compare_links  # noqa: E402
from calcscope.config import Config  # noqa: E402
from calcscope.phantom.follow_up import write_follow_up_phantom  # noqa: E402
from calcscope.reports.exam import EXAM_SUFFIX, load_exam  # noqa: E402
from helpers import BrowserPage  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

HOSTILE = '<img id="pwn" src="x">'


@pytest.fixture(scope="module")
def follow_up(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """``calcscope analyze PRIOR CURRENT --out`` of a synthetic follow-up (seed 2: its
    growing, stable and new clusters are found on both views), the truth; one current
    finding's description made hostile (it must show as text)."""
    root = tmp_path_factory.mktemp("webprior")
    prior, current, truth_path = write_follow_up_phantom(root / "fu", seed=2, spacing_mm=0.1)
    files = sorted(prior.glob("*.dcm")) + sorted(current.glob("*.dcm"))
    out = root / "results"
    exams = ExamCollector.for_files(files, out)
    res = analyze_files(files, out, config=Config(), show_progress=False, on_analysis=exams.add)
    assert all(r.ok for r in res)
    assert len(exams.write()) == 2
    truth = json.loads(truth_path.read_text())
    doc = next(
        p
        for p in out.glob(f"*{EXAM_SUFFIX}")
        if load_exam(p).study_instance_uid == truth["current"]["study_instance_uid"]
    )
    data = json.loads(doc.read_text())
    data["breasts"]["L"]["findings"][0]["description"] += " " + HOSTILE
    doc.write_text(json.dumps(data))
    return out, truth


def _ids(client: TestClient, truth: dict) -> tuple[str, str]:
    rows = client.get("/api/exams").json()["exams"]
    by_uid = {r["study_instance_uid"]: r["id"] for r in rows}
    return by_uid[truth["current"]["study_instance_uid"]], by_uid[
        truth["prior"]["study_instance_uid"]
    ]


def test_compare_api_links_the_exam_with_its_prior(follow_up, tmp_path: Path) -> None:
    out, truth = follow_up
    client = TestClient(create_app(out, uploads_dir=tmp_path / "up"))
    current, prior = _ids(client, truth)
    assert client.get(f"/api/exams/{current}").json()["prior_id"] == prior
    assert client.get(f"/api/exams/{prior}").json()["prior_id"] is None
    assert client.get(f"/api/exams/{prior}/compare").status_code == 404
    body = client.get(f"/api/exams/{current}/compare").json()
    assert body["comparison"]["interval_months"] == 24
    assert body["current"]["id"] == current and body["prior"]["id"] == prior
    for side in ("current", "prior"):
        assert [p["slot"] for p in body[side]["panels"]] == ["RCC", "LCC", "RMLO", "LMLO"]
    studies = {p["study_id"] for side in ("current", "prior") for p in body[side]["panels"]}
    assert len(studies) == 8  # eight images, none shared
    links = body["links"]
    assert [link["number"] for link in links] == list(range(1, len(links) + 1))
    assert {"increased", "stable", "new"} <= {link["change"] for link in links}
    prior_ids = {f["id"] for b in body["prior"]["exam"]["breasts"].values() for f in b["findings"]}
    for link in links:
        if link["change"] in ("increased", "stable", "decreased", "resolved"):
            assert link["prior_finding_id"] in prior_ids
        if link["change"] == "new":
            assert link["prior_finding_id"] is None and link["finding_id"] is not None
    for bad in ("nope", "..%2F..%2Fetc", current + "x"):
        assert client.get(f"/api/exams/{bad}/compare").status_code == 404


def test_compare_links_follow_the_documents(follow_up) -> None:
    out, truth = follow_up
    docs = {d.study_instance_uid: d for d in map(load_exam, out.glob(f"*{EXAM_SUFFIX}"))}
    cur = docs[truth["current"]["study_instance_uid"]]
    pri = docs[truth["prior"]["study_instance_uid"]]
    links = compare_links(cur, pri)
    found = [f for b in cur.breasts.values() for f in b.findings]
    assert [link.finding_id for link in links if link.finding_id is not None] == [
        f.id for f in found
    ]
    resolved = [r.prior_finding_id for b in cur.breasts.values() for r in b.resolved]
    assert [link.prior_finding_id for link in links if link.change == "resolved"] == resolved


def test_prior_outside_the_folders_is_not_shown(follow_up, tmp_path: Path) -> None:
    out, truth = follow_up
    folder = tmp_path / "results"
    shutil.copytree(out, folder, symlinks=True)
    client = TestClient(create_app(folder, uploads_dir=tmp_path / "up"))
    current, prior = _ids(client, truth)
    doc = next(
        p
        for p in folder.glob(f"*{EXAM_SUFFIX}")
        if load_exam(p).study_instance_uid == truth["prior"]["study_instance_uid"]
    )
    outside = tmp_path / "elsewhere.exam.json"
    doc.rename(outside)
    (folder / doc.name).symlink_to(outside)  # a link out of the folder is not followed
    assert client.get(f"/api/exams/{current}").json()["prior_id"] is None
    assert client.get(f"/api/exams/{current}/compare").status_code == 404


@pytest.fixture()
def server(follow_up, tmp_path: Path, live_server: Callable[[object], str]) -> str:
    return live_server(
        create_app(follow_up[0], uploads_dir=tmp_path / "up", allowed_hosts=LOOPBACK_HOSTS)
    )


_IMAGES_SHOWN = (
    "() => ['current', 'prior'].every(side => {"
    " const imgs = document.querySelectorAll(`#side-by-side .panel[data-side=${side}] img`);"
    " return imgs.length > 0 && Array.from(imgs).every(i => i.complete && i.naturalWidth > 0);"
    "})"
)


def _side(side: str) -> str:
    return f"#side-by-side .panel[data-side='{side}']"


def test_browser_side_by_side(
    server: str, follow_up, tmp_path: Path, open_browser: Callable[..., BrowserPage]
) -> None:
    client = TestClient(create_app(follow_up[0], uploads_dir=tmp_path / "up"))
    current, _ = _ids(client, follow_up[1])
    browser = open_browser(1000)
    page = browser.page
    page.goto(server + "/")
    page.wait_for_selector("body[data-ready='1']")
    page.click(f"#exam-list button.exam[data-id='{current}']")
    page.wait_for_selector(f"body[data-exam='{current}']")
    page.wait_for_selector("#compare-bar:not([hidden])")
    assert "24 months earlier" in page.inner_text("#compare-note")
    page.click("#compare-toggle")
    page.wait_for_selector(f"body[data-compare='{current}']")
    assert page.locator("#hanging").is_hidden()
    page.wait_for_function(_IMAGES_SHOWN)
    # both exams' images of the chosen view, each its own study
    now_study = page.get_attribute(f"{_side('current')} .pane", "data-study")
    prior_study = page.get_attribute(f"{_side('prior')} .pane", "data-study")
    assert now_study and prior_study and now_study != prior_study
    view = page.input_value("#compare-view")
    assert view in page.inner_text(f"{_side('current')} figcaption")
    # a matched pair: the same number on both sides, highlighted together
    now_marks = page.locator(f"{_side('current')} g.finding[data-link]")
    numbers = [now_marks.nth(i).get_attribute("data-link") for i in range(now_marks.count())]
    pair = next(n for n in numbers if page.locator(f"{_side('prior')} g[data-link='{n}']").count())
    mark = page.locator(f"{_side('current')} g[data-link='{pair}']").first
    match = page.locator(f"{_side('prior')} g[data-link='{pair}']").first
    assert mark.get_attribute("class").split()[1] == match.get_attribute("class").split()[1]
    change = mark.get_attribute("data-change")
    assert change in ("increased", "stable", "decreased")
    assert mark.text_content() == f"{pair} {change}"
    assert match.text_content() == f"{pair} prior"
    mark.hover()
    page.wait_for_function(
        f"() => document.querySelectorAll('#compare .linked[data-link=\"{pair}\"]')"
        ".length === 3"  # both marks and the table row
    )
    match.click()
    page.wait_for_selector(f"body[data-compare-link='{pair}']")
    assert "selected" in (mark.get_attribute("class") or "")
    row = page.locator(f"#compare-findings tr[data-link='{pair}']")
    assert "selected" in (row.get_attribute("class") or "")
    # every change label is in the table; text from the documents stays text
    table = page.inner_text("#compare-findings")
    for word in ("new", "increased", "stable", "resolved"):
        assert word in table, word
    assert HOSTILE in table and page.locator("#pwn").count() == 0
    # every view can be chosen; a resolved prior finding shows on the prior side
    resolved = 0
    for slot in ("RCC", "LCC", "RMLO", "LMLO"):
        page.select_option("#compare-view", slot)
        page.wait_for_function(_IMAGES_SHOWN)
        assert slot in page.inner_text(f"{_side('prior')} figcaption")
        resolved += page.locator(f"{_side('prior')} g[data-change='resolved']").count()
        assert page.locator(f"{_side('current')} g[data-change='resolved']").count() == 0
    assert resolved > 0
    page.screenshot(path=str(tmp_path / "compare.png"), full_page=True)
    page.click("#compare-toggle")
    page.wait_for_selector("#hanging:not([hidden])")
    assert page.locator("#hanging .pane img").count() > 0
    assert browser.problems == []
