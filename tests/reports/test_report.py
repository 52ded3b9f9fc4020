"""JSON report: schema, units, reasons, anonymisation, overlay."""

from __future__ import annotations

import json

import numpy as np
import pytest

from calcscope.model import Morphology, View
from calcscope.phantom.mammogram import ClusterSpec, make_phantom
from calcscope.pipeline import analyze_mammogram
from calcscope.reports.schema import (
    AnalysisReport,
    load_report,
    overlay_png,
    render_overlay,
    to_report,
    write_json,
)


@pytest.fixture(scope="module")
def analysis():
    ph = make_phantom(
        seed=31,
        spacing_mm=0.1,
        shape=(1500, 1200),
        view=View.CC,
        clusters=[
            ClusterSpec(Morphology.FINE_LINEAR_BRANCHING, n=8),
            ClusterSpec(Morphology.PUNCTATE, n=6),
        ],
        macros=[Morphology.COARSE_POPCORN, Morphology.RIM_EGGSHELL],
    )
    return analyze_mammogram(ph.mammogram)


def test_every_finding_has_a_category_follow_up_and_reason(analysis):
    r = to_report(analysis)
    assert r.clusters and r.macro_findings
    for f in [*r.clusters, *r.macro_findings]:
        a = f.assessment
        assert a.category in {"0", "1", "2", "3", "4A", "4B", "4C", "5"}
        assert a.follow_up_label
        assert a.rules and all(rule.reason for rule in a.rules)
        assert a.reason
    assert r.assessment.reason


def test_json_round_trips_through_the_schema(analysis, tmp_path):
    path = write_json(analysis, tmp_path / "x.json")
    data = json.loads(path.read_text())
    again = AnalysisReport.model_validate(data)
    assert again.schema_version == "1.6"
    assert load_report(path) == again
    assert again.source.pixel_sha256 is not None and len(again.source.pixel_sha256) == 64
    assert data["n_calcifications"] == sum(c["detected"] for c in data["calcifications"])
    assert data["n_calcifications"] + data["n_possible_calcifications"] == len(
        data["calcifications"]
    )
    ids = {c["id"] for c in data["calcifications"]}
    for cl in data["clusters"]:
        assert set(cl["member_ids"]) <= ids
        for i in cl["member_ids"]:
            member = next(c for c in data["calcifications"] if c["id"] == i)
            assert member["cluster_id"] == cl["id"]
        detected = [
            c for c in data["calcifications"] if c["id"] in cl["member_ids"] and c["detected"]
        ]
        assert cl["n_detected"] == len(detected) <= cl["n_members"]
    # the branching cluster counts its pieces as detected, its faint neighbours as possible
    assert any(0 < cl["n_detected"] < cl["n_members"] for cl in data["clusters"])
    assert data["settings"]["macro_threshold_mm"] == 0.5


def test_anonymize_drops_patient_identity(analysis):
    from dataclasses import replace

    from calcscope.model import Source

    m = replace(
        analysis.mammogram,
        source=Source(
            path="/data/Jane_Doe/scan.dcm",
            patient_id="12345",
            patient_name="DOE^JANE",
            patient_birth_date="19600101",
        ),
    )
    a = replace(analysis, mammogram=m)
    plain = to_report(a).model_dump_json()
    assert "DOE^JANE" in plain
    anon = to_report(a, anonymize=True).model_dump_json()
    for secret in ("DOE^JANE", "12345", "19600101", "Jane_Doe"):
        assert secret not in anon


def test_overlay_marks_the_findings(analysis):
    rgb = render_overlay(analysis)
    assert rgb.shape == (*analysis.mammogram.shape, 3)
    grey = np.repeat(
        (np.clip(analysis.mammogram.pixels, 0, 1) * 255).astype(np.uint8)[..., None], 3, -1
    )
    changed = np.any(rgb != grey, axis=-1)
    assert changed.sum() > 100
    r0, c0, r1, c1 = analysis.clusters[0].cluster.bbox_rc
    assert changed[max(0, r0 - 20) : r1 + 20, max(0, c0 - 20) : c1 + 20].any()


def test_overlay_png_is_shrunk_to_its_long_side(analysis):
    """The overlay PNG is shrunk to ``max_side_px`` (the image is 1500 x 1200)."""
    import cv2

    png = overlay_png(analysis, max_side_px=750)
    decoded = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded.shape == (750, 600, 3)
    full = cv2.imdecode(np.frombuffer(overlay_png(analysis), np.uint8), cv2.IMREAD_UNCHANGED)
    assert full.shape == (1500, 1200, 3)  # under the default 2048 px: kept


def test_json_schema_explains_every_size_and_shape_feature() -> None:
    """A reader of the JSON learns what each per-calcification measure means."""
    from calcscope.reports.schema import CalcificationModel

    props = CalcificationModel.model_json_schema()["properties"]
    for name in (
        "area_mm2",
        "diameter_mm",
        "max_diameter_mm",
        "min_diameter_mm",
        "contrast",
        "circularity",
        "contour_circularity",
        "elongation",
        "solidity",
        "lucent_center",
        "deposit",
    ):
        assert props[name].get("description", "").strip(), name
    assert "irregular" in props["solidity"]["description"]
