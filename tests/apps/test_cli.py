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
    assert report["schema_version"] == "1.6"
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


def _rows_of(table_text: str) -> list[str]:
    """The body lines of a summary table rendered as text (below its header rule)."""
    lines = table_text.splitlines()
    rule = next(i for i, line in enumerate(lines) if line.startswith("\u2500"))
    caption = next(i for i, line in enumerate(lines) if "research software" in line)
    return lines[rule + 1 : caption]


def test_summary_table_fits_an_80_column_terminal():
    from rich.console import Console

    from calcscope.apps.cli import FileResult, summary_table
    from calcscope.reading.assess import FollowUp

    results = [
        FileResult(
            Path(f"/archive/Calc-Test_P_000{k}_LEFT_CC_1-07-2016.dcm"),
            True,
            n_calcs=1234,
            n_macro=4,
            n_clusters=13,
            category="4C",
            follow_up=fu.label,
            follow_up_short=short,
            seconds=112.3,
        )
        for k, (fu, short) in enumerate(
            [
                (FollowUp.ADDITIONAL_IMAGING, "spot/mag views"),
                (FollowUp.SHORT_INTERVAL, "6-month mammo"),
                (FollowUp.ROUTINE, "routine"),
                (FollowUp.BIOPSY, "biopsy"),
            ]
        )
    ]
    results.append(
        FileResult(
            Path("/archive/truncated.dcm"),
            False,
            message="/archive/truncated.dcm: cannot read this DICOM file: the pixel data "
            "ends before the image does (is it truncated?)",
        )
    )
    console = Console(width=80, record=True, color_system=None)
    console.print(summary_table(results))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    body = _rows_of(text)
    assert len(body) <= 2 * len(results), "an image takes at most two lines"
    # each row starts on a line that names its file, and every figure shows in full
    starts = [line for line in body if line.startswith(("Calc-Test", "truncated"))]
    assert len(starts) == len(results)
    for short in ("spot/mag views", "6-month mammo", "routine", "biopsy", "1234", "4C"):
        assert short in text
    assert "failed" in starts[-1] and "cannot read" in starts[-1]


def test_a_panic_in_one_file_does_not_stop_the_run(
    small_phantom_dcm, tmp_path, monkeypatch, capsys
):
    """A decoder's panic (a BaseException, not an Exception) fails only its own file."""
    import calcscope.pipeline

    good, _ = small_phantom_dcm
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "a_panic.dcm").write_bytes(good.read_bytes())
    (inputs / "b_good.dcm").write_bytes(good.read_bytes())
    real = calcscope.pipeline.analyze

    class Panic(BaseException):
        pass

    def analyze(path, *args, **kwargs):
        if Path(path).name == "a_panic.dcm":
            raise Panic("RLE decoder: index out of bounds")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(calcscope.pipeline, "analyze", analyze)
    out = tmp_path / "out"
    assert main(["analyze", str(inputs), "--out", str(out), "--no-overlay"]) == 1
    assert (out / "b_good.json").is_file()
    text = "".join(capsys.readouterr())
    flat = " ".join(text.split())  # the console wraps long lines
    assert "a_panic.dcm" in text and "unexpected Panic: RLE decoder: index out of" in flat
    assert "Traceback" not in text


def test_batch_time_limit_must_be_positive(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x.png").write_bytes(b"")
    pytest.importorskip("distributed")
    code = main(["batch", str(tmp_path / "in"), "--out", str(tmp_path / "o"), "--timeout-s", "0"])
    assert code == 2


def test_start_up_imports_stay_light():
    """``calcscope --help`` loads neither the detector nor the heavy libraries of other
    commands, and loading the detector model does not pull in scikit-learn (half a second
    of lightgbm's import that prediction never uses)."""
    import subprocess
    import sys

    code = (
        "import sys, calcscope.apps.cli\n"
        "heavy = ['calcscope.detection', 'lightgbm', 'sklearn', 'highdicom', 'dask', "
        "'distributed', 'fastapi', 'matplotlib', 'pynetdicom', 'skimage']\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
        "from calcscope.config import Config\n"
        "from calcscope.detection.classifier import load_model\n"
        "print(len(load_model(Config().detect.model)), 'sklearn' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out[0] == "[]"
    n_members, sklearn_loaded = out[1].split()
    assert int(n_members) >= 1 and sklearn_loaded == "False"
