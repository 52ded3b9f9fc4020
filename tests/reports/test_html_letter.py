"""HTML report, patient letter, de-identification and the research-software notice.

``calcscope analyze --all-reports --anonymize`` runs on a small phantom written as DICOM
with a patient identity; every written file is searched for that identity. The HTML
report and the letter are rendered in headless Chromium (Debian package ``chromium``)
when it is installed, and those tests skip otherwise.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest

from calcscope.apps.cli import analyze_files, main
from calcscope.config import Config
from calcscope.reading.assess import Assessment, Category, FollowUp, RuleHit
from calcscope.reports.dicom_source import Deidentifier
from calcscope.reports.letter import EXPLAINED_TERMS, letter_text
from calcscope.reports.schema import load_report, to_report
from helpers import CHROMIUM_ARGS, chromium_path, phantom_case_dicom

NAME, FAMILY = "Zebulonia", "Quixotica"
PATIENT_ID = "PID-424242-XYZ"
BIRTH_DATE = "19610203"

#: Words a patient should not meet without their meaning in the same sentence.
JARGON = (
    "bi-rads",
    "birads",
    "morphology",
    "pleomorphic",
    "microcalcification",
    "macrocalcification",
    "calcification",
    "cluster",
    "biopsy",
    "spot compression",
    "malignan",
    "lesion",
    "amorphous",
    "punctate",
    "distribution",
)


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("reports")
    path = phantom_case_dicom(
        d / "case.dcm",
        PatientName=f"{FAMILY}^{NAME}",
        PatientID=PATIENT_ID,
        PatientBirthDate=BIRTH_DATE,
    )
    cfg = d / "cfg.json"
    cfg.write_text(json.dumps({}))
    out = d / "out"
    argv = ["analyze", str(path), "--out", str(out), "--config", str(cfg)]
    assert main([*argv, "--all-reports", "--anonymize"]) == 0
    # anonymized outputs are named after the de-identified SOP Instance UID
    stem = Deidentifier().uid(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
    (res,) = analyze_files(
        [path],
        d / "plain",
        config=Config(),
        html=True,
        keep_analysis=True,
        show_progress=False,
    )
    return {
        "out": out,
        "json": json.loads((out / f"{stem}.json").read_text()),
        "stem": stem,
        "analysis": res.analysis,
        "plain_html": d / "plain" / "case.html",
        "source": path,
    }


def test_all_reports_are_written(outputs):
    names = sorted(p.name for p in outputs["out"].iterdir())
    for suffix in (
        ".json",
        ".overlay.png",
        ".sr.dcm",
        ".gsps.dcm",
        ".html",
        ".letter.html",
        ".letter.txt",
    ):
        assert f"{outputs['stem']}{suffix}" in names


def test_anonymize_leaves_no_identity_in_any_file(outputs):
    # the identity is there without --anonymize (so the check below means something)
    assert f"{FAMILY}^{NAME}" in outputs["plain_html"].read_text()
    needles = [s.encode() for s in (NAME, FAMILY, PATIENT_ID, BIRTH_DATE, "1961-02-03")]
    files = [p for p in outputs["out"].iterdir() if p.is_file()]
    assert len(files) >= 7
    for p in files:
        data = p.read_bytes()
        for needle in needles:
            assert needle not in data, f"{needle!r} found in {p.name}"
        if p.suffix == ".dcm":
            ds = pydicom.dcmread(p)
            assert NAME not in str(ds.PatientName) and ds.PatientID != PATIENT_ID
            assert not ds.get("PatientBirthDate")


def test_anonymized_dicom_exports_still_reference_the_image(outputs):
    """The anonymized JSON names the image by its de-identified UID; the SR and GSPS
    still re-read the image's header and reference its instance as de-identified (its
    UID replaced as the JSON report's)."""
    original = pydicom.dcmread(outputs["source"], stop_before_pixels=True).SOPInstanceUID
    uid = outputs["json"]["source"]["sop_instance_uid"]
    assert uid == Deidentifier().uid(original) != original  # this process's seed
    assert outputs["json"]["source"]["path"] == f"{uid}.dcm"  # not the input's file name
    sr = pydicom.dcmread(outputs["out"] / f"{outputs['stem']}.sr.dcm")
    series = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    assert series.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == uid
    gsps = pydicom.dcmread(outputs["out"] / f"{outputs['stem']}.gsps.dcm")
    ref = gsps.ReferencedSeriesSequence[0].ReferencedImageSequence[0]
    assert ref.ReferencedSOPInstanceUID == uid


def test_every_output_says_research_software(outputs):
    out = outputs["out"]
    suffixes = (".json", ".html", ".letter.html", ".letter.txt")
    for name in [f"{outputs['stem']}{x}" for x in suffixes]:
        text = (out / name).read_text().lower()
        assert "research software" in text and "not a medical device" in text, name
    for name in (f"{outputs['stem']}.sr.dcm", f"{outputs['stem']}.gsps.dcm"):
        assert b"not a medical device" in (out / name).read_bytes(), name


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.imgs: list[dict[str, str | None]] = []
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self._table = a.get("id") or f"t{len(self.tables)}"
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "img":
            self.imgs.append(a)

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def test_html_has_findings_table_image_and_settings(outputs):
    rep = outputs["json"]
    page = _Page()
    page.feed((outputs["out"] / f"{outputs['stem']}.html").read_text())
    header, *rows = page.tables["findings"]
    for col in ("size (mm)", "morphology", "distribution", "BI-RADS", "follow-up", "reason"):
        assert col in header
    assert len(rows) == len(rep["clusters"]) + len(rep["macro_findings"])
    assert rep["clusters"]
    for row, c in zip(rows, rep["clusters"], strict=False):
        assert row[0] == f"C{c['id']}"
        assert row[header.index("size (mm)")] == f"{c['extent_mm']:.1f}"
        assert row[header.index("distribution")] == c["distribution"]
        assert row[header.index("BI-RADS")] == c["assessment"]["category"]
        assert row[header.index("follow-up")] == c["assessment"]["follow_up_label"]
    (img,) = page.imgs
    src = str(img["src"])
    assert src.startswith("data:image/png;base64,")  # self-contained
    png = cv2.imdecode(np.frombuffer(base64.b64decode(src.split(",", 1)[1]), np.uint8), 1)
    assert png.shape[:2] == tuple(rep["source"]["shape_rc"])
    settings = dict(r for r in page.tables["settings"] if len(r) == 2)
    assert settings["calcscope version"] == rep["calcscope_version"]
    assert "0.5 mm" in settings["macro / micro threshold"]
    html = (outputs["out"] / f"{outputs['stem']}.html").read_text()
    assert not re.search(r"""(src|href)=["']?https?:""", html)  # nothing fetched


def _chromium(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess:
    cmd = [
        chromium_path(),
        "--headless",
        *CHROMIUM_ARGS,
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--window-size=1280,2000",
        *args,
        url,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def _not_blank(png_path: Path) -> np.ndarray:
    assert png_path.is_file() and png_path.stat().st_size > 1000
    img = cv2.imread(str(png_path))
    assert img is not None and img.shape[0] >= 1000 and img.shape[1] >= 1000
    assert float(img.std()) > 10, "blank screenshot"
    return img


def test_html_renders_in_chromium(outputs, tmp_path):
    url = (outputs["out"] / f"{outputs['stem']}.html").as_uri()
    shot = tmp_path / "report.png"
    _chromium(tmp_path, url, f"--screenshot={shot}")
    img = _not_blank(shot)
    # the mammogram: a large dark (background) area with grey tissue inside the viewer
    grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    assert (grey < 30).mean() > 0.05
    dom = _chromium(tmp_path, url, "--dump-dom", "--virtual-time-budget=3000").stdout
    shape = outputs["json"]["source"]["shape_rc"]
    assert f'data-overlay-size="{shape[1]}x{shape[0]}"' in dom  # the image decoded
    page = _Page()
    page.feed(dom)
    rows = page.tables["findings"][1:]
    assert len(rows) == len(outputs["json"]["clusters"]) + len(outputs["json"]["macro_findings"])


def test_letter_renders_in_chromium(outputs, tmp_path):
    shot = tmp_path / "letter.png"
    letter = outputs["out"] / f"{outputs['stem']}.letter.html"
    _chromium(tmp_path, letter.as_uri(), f"--screenshot={shot}")
    img = _not_blank(shot)
    assert (cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) < 100).mean() > 0.002  # there is text


_NEXT = {
    FollowUp.ROUTINE: "usual screening mammogram",
    FollowUp.SHORT_INTERVAL: "another mammogram in 6 months",
    FollowUp.ADDITIONAL_IMAGING: "spot compression",
    FollowUp.BIOPSY: "biopsy",
}

_FOLLOW = {
    Category.C0: FollowUp.ADDITIONAL_IMAGING,
    Category.C1: FollowUp.ROUTINE,
    Category.C2: FollowUp.ROUTINE,
    Category.C3: FollowUp.SHORT_INTERVAL,
    Category.C4A: FollowUp.BIOPSY,
    Category.C4B: FollowUp.BIOPSY,
    Category.C4C: FollowUp.BIOPSY,
    Category.C5: FollowUp.BIOPSY,
}


def _sentences(text: str) -> list[str]:
    body = " ".join(ln for ln in text.splitlines() if ln and not ln.startswith("("))
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", body) if s.strip()]


def _check_reading_level(text: str) -> None:
    sentences = _sentences(text)
    words = [w for s in sentences for w in re.findall(r"[A-Za-z0-9'-]+", s)]
    assert np.mean([len(re.findall(r"[A-Za-z0-9'-]+", s)) for s in sentences]) <= 15
    assert np.mean([len(w) for w in words]) <= 5
    for s in sentences:
        low = s.lower()
        for term in JARGON:
            if term in low:
                # the term is one the letter explains, and its explanation's words are
                # in the same sentence
                meaning = next((v for k, v in EXPLAINED_TERMS.items() if k in low), None)
                assert meaning is not None and term in " ".join(EXPLAINED_TERMS), (
                    f"unexplained {term!r} in: {s}"
                )
                key = [w for w in re.findall(r"[a-z-]+", meaning) if len(w) > 3]
                hits = sum(w in low for w in key)
                assert hits >= max(1, len(key) // 2), f"unexplained {term!r} in: {s}"


@pytest.mark.parametrize("category", list(Category))
def test_letter_reading_level_and_next_step(outputs, category):
    a = outputs["analysis"]
    follow = _FOLLOW[category]
    text = letter_text(
        to_report(replace(a, assessment=Assessment(category, 0.1, follow, (RuleHit("x", "y"),))))
    )
    _check_reading_level(text)
    low = text.lower()
    assert _NEXT[follow] in low
    for other, phrase in _NEXT.items():
        if other is not follow:
            assert phrase not in low, (follow, phrase)
    assert "only your doctor can decide" in low
    assert "not a medical device" in low and "research software" in low
    assert "most calcium spots are not cancer" in low


def test_letter_of_the_case_says_what_was_seen(outputs):
    txt = (outputs["out"] / f"{outputs['stem']}.letter.txt").read_text()
    _check_reading_level(txt)
    rep = outputs["json"]
    assert ("cluster" in txt) == bool(rep["clusters"])
    assert _NEXT[FollowUp(rep["assessment"]["follow_up"])] in txt.lower()
    html = (outputs["out"] / f"{outputs['stem']}.letter.html").read_text()
    assert "Only your doctor can decide" in html


def test_letter_without_findings(outputs):
    a = outputs["analysis"]
    none = replace(
        a,
        calcifications=(),
        clusters=(),
        macros=(),
        assessment=Assessment(Category.C1, 0.0, FollowUp.ROUTINE, ()),
    )
    text = letter_text(to_report(none))
    _check_reading_level(text)
    assert "no calcium spots" in text and "usual screening mammogram" in text


def test_letter_says_when_the_spots_are_spread_all_over():
    """Diffuse calcifications are told in plain words, not counted as clusters."""
    from calcscope.model import Distribution, Morphology
    from calcscope.phantom.mammogram import ClusterSpec, make_phantom
    from calcscope.pipeline import analyze_mammogram

    ph = make_phantom(
        clusters=[ClusterSpec(Morphology.PUNCTATE, Distribution.DIFFUSE, n=30)],
        seed=2,
        spacing_mm=0.1,
        shape=(1200, 1000),
        n_singles=0,
        macros=[],
    )
    analysis = analyze_mammogram(ph.mammogram)
    dists = [f.description.distribution for f in analysis.clusters]
    assert Distribution.DIFFUSE in dists
    text = letter_text(to_report(analysis))
    _check_reading_level(text)
    assert "spread all over" in text and "not in one place" in text
    n_local = sum(d is not Distribution.DIFFUSE for d in dists)
    assert ("cluster" in text) == bool(n_local)


def test_letter_rebuilt_from_a_report_tells_diffuse_spots(outputs):
    """The web viewer renders the letter from the JSON report alone (the model)."""
    from calcscope.apps.web.studies import letter_from_report

    report = load_report(outputs["out"] / f"{outputs['stem']}.json")
    (cluster,) = report.clusters[:1]
    assessment = report.assessment.model_copy(
        update={"category": "2", "follow_up": FollowUp.ROUTINE.value}
    )
    report = report.model_copy(
        update={
            "assessment": assessment,
            "source": report.source.model_copy(update={"laterality": "L"}),
            "clusters": [
                cluster.model_copy(update={"distribution": "diffuse"}),
                cluster.model_copy(update={"distribution": "grouped"}),
            ],
            "macro_findings": [],
            "n_macrocalcifications": 0,
        }
    )
    html = letter_from_report(report)
    assert "spread all over your left breast, not in one place" in html
    assert "one cluster" in html
    assert "larger spot" not in html


def test_a_report_written_by_schema_1_3_renders_the_same(outputs, tmp_path):
    """A report written before this version (no pixel digest) still loads and renders."""
    from calcscope.reports.html import render_html
    from calcscope.reports.letter import letter_html

    data = json.loads((outputs["out"] / f"{outputs['stem']}.json").read_text())
    data["schema_version"] = "1.3"
    del data["source"]["pixel_sha256"]
    old = tmp_path / "old.json"
    old.write_text(json.dumps(data))
    then, now = load_report(old), load_report(outputs["out"] / f"{outputs['stem']}.json")
    assert then.source.pixel_sha256 is None
    assert letter_html(then) == letter_html(now)
    assert (outputs["out"] / f"{outputs['stem']}.letter.html").read_text() == letter_html(now)
    assert render_html(then).replace("1.3", "1.6") == render_html(now)


def test_load_report_names_the_file_it_cannot_read(tmp_path):
    from calcscope.errors import ReportError

    bad = tmp_path / "bad.json"
    bad.write_text('{"schema_name": "calcscope.analysis"}')
    with pytest.raises(ReportError, match="bad.json"):
        load_report(bad)
    bad.write_text("{not json")
    with pytest.raises(ReportError, match="bad.json.*not a calcscope analysis report"):
        load_report(bad)
    with pytest.raises(ReportError, match="missing.json"):
        load_report(tmp_path / "missing.json")


def test_hostile_values_are_escaped_in_the_html_report(outputs):
    """Values read from a file (patient name, path, reasons) cannot inject markup."""
    from calcscope.reports.html import render_html
    from calcscope.reports.schema import PatientModel

    evil = '<script>alert(1)</script><img src=x onerror="alert(2)">'
    report = load_report(outputs["out"] / f"{outputs['stem']}.json")
    cluster = report.clusters[0]
    report = report.model_copy(
        update={
            "patient": PatientModel(name=evil, id=evil),
            "source": report.source.model_copy(update={"path": f"/x/{evil}.dcm"}),
            "clusters": [
                cluster.model_copy(
                    update={
                        "assessment": cluster.assessment.model_copy(update={"reason": evil}),
                        "distribution": evil,
                    }
                )
            ],
        }
    )
    html = render_html(report, overlay_png=b"\x89PNG")
    assert "<script>alert" not in html and 'onerror="alert' not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    page = _Page()
    page.feed(html)
    assert len(page.imgs) == 1  # only the overlay
    row = page.tables["findings"][1]
    assert row[7] == evil and row[10] == evil  # shown as text
