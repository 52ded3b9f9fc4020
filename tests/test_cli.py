"""The command line: multi-file runs, bad files, output naming, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from calcscope.apps.cli import main
from calcscope.imaging.io import write_image
from calcscope.model import Morphology, View
from calcscope.phantom.mammogram import ClusterSpec, make_phantom


@pytest.fixture(scope="module")
def small_phantom_dcm(tmp_path_factory) -> tuple[Path, object]:
    ph = make_phantom(
        seed=11,
        spacing_mm=0.1,
        shape=(1400, 1100),
        view=View.CC,
        clusters=[ClusterSpec(Morphology.FINE_PLEOMORPHIC, n=8)],
        macros=[Morphology.COARSE_POPCORN],
        n_singles=2,
    )
    d = tmp_path_factory.mktemp("in")
    path = write_image(ph.mammogram, d / "case1.dcm")
    return path, ph


def test_analyze_writes_json_named_after_stem(small_phantom_dcm, tmp_path):
    path, ph = small_phantom_dcm
    out = tmp_path / "out"
    assert main(["analyze", str(path), "--out", str(out)]) == 0
    report = json.loads((out / "case1.json").read_text())
    assert (out / "case1.overlay.png").stat().st_size > 1000
    assert report["schema_version"] == "1.4"
    assert "not a medical device" in report["disclaimer"]
    src = report["source"]
    assert src["path"].endswith("case1.dcm")
    assert src["study_instance_uid"] and src["sop_instance_uid"] and src["series_instance_uid"]
    assert src["laterality"] == ph.mammogram.laterality.value
    assert src["view"] == "CC"
    assert src["spacing_mm"] == [0.1, 0.1]
    assert report["clusters"], "the inserted cluster should be reported"
    for item in report["calcifications"] + report["clusters"]:
        assert 0.0 <= item["score"] <= 1.0
        assert len(item["center_rc"]) == 2
    for c in report["calcifications"]:
        assert c["diameter_mm"] > 0 and c["area_mm2"] > 0
    for cl in report["clusters"]:
        assert cl["extent_mm"] > 0
        assert cl["assessment"]["reason"]
        assert cl["morphology_code"]["scheme"] in ("SCT", "DCM")


def test_bad_file_does_not_stop_the_run(small_phantom_dcm, tmp_path, capsys):
    good, _ = small_phantom_dcm
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "empty.dcm").write_bytes(b"")
    data = good.read_bytes()
    (inputs / "truncated.dcm").write_bytes(data[: len(data) // 3])
    (inputs / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (inputs / "good.dcm").write_bytes(data)
    out = tmp_path / "out"
    code = main(["analyze", str(inputs), "--out", str(out)])
    assert code == 1, "a failed input must make the exit code non-zero"
    assert (out / "good.json").is_file(), "the good file is analysed despite the bad ones"
    assert not (out / "empty.json").exists()
    captured = capsys.readouterr()
    text = captured.out + captured.err
    for name in ("empty.dcm", "truncated.dcm", "photo.png"):
        assert name in text
    assert "Traceback" not in text


def test_missing_spacing_is_a_clear_error(tmp_path, capsys):
    img = (np.random.default_rng(0).random((300, 300)) * 255).astype(np.uint8)
    import cv2

    cv2.imwrite(str(tmp_path / "film.png"), img)
    code = main(["analyze", str(tmp_path / "film.png"), "--out", str(tmp_path / "o")])
    assert code == 1
    text = "".join(capsys.readouterr())
    assert "film.png" in text and "spacing" in text.lower()


def test_spacing_option_reads_plain_images(small_phantom_dcm, tmp_path):
    _, ph = small_phantom_dcm
    png = write_image(ph.mammogram, tmp_path / "plain.png")
    out = tmp_path / "out"
    assert main(["analyze", str(png), "--spacing-mm", "0.1", "--out", str(out)]) == 0
    report = json.loads((out / "plain.json").read_text())
    assert report["source"]["spacing_mm"] == [0.1, 0.1]
    assert report["source"]["spacing_origin"] == "user"


def test_phantom_command_writes_image_and_truth(tmp_path):
    out = tmp_path / "p.png"
    assert main(["phantom", "--out", str(out), "--spacing-mm", "0.2", "--seed", "3"]) == 0
    truth = json.loads((tmp_path / "p.png.truth.json").read_text())
    assert out.stat().st_size > 0
    assert truth["calcifications"] and truth["clusters"]


def test_usage_error_exit_code(tmp_path):
    assert main(["analyze", "--out", str(tmp_path)]) == 2
