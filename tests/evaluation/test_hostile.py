"""A sample of the hostile-input benchmark (benchmarks/bench_fuzz.py) through ``calcscope
analyze``: no traceback, no hang, no silent different answer, no good file lost."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from calcscope.evaluation.hostile import Answer, Family, clean_answer, clean_dicom, make_cases


@pytest.fixture(scope="module")
def clean() -> tuple[bytes, Answer]:
    data = clean_dicom(seed=0)
    return data, clean_answer(data)


def _answer(path: Path) -> Answer | None:
    if not path.exists():
        return None
    rep = json.loads(path.read_text())
    return Answer(rep["assessment"]["category"], len(rep["clusters"]))


def test_clean_file_is_suspicious(clean: tuple[bytes, Answer]) -> None:
    """The sample only shows a silent failure if the clean answer is not negative."""
    _, answer = clean
    assert answer.category == "4C"
    assert answer.n_clusters == 1


def test_hostile_sample_through_analyze(tmp_path: Path, clean: tuple[bytes, Answer]) -> None:
    data, expected = clean
    cases = make_cases(tmp_path / "in", n=130, seed=7, clean=data, good_every=3)
    dicom_cases = [c for c in cases if c.family is not Family.RASTER]
    for c in cases:  # rasters need a spacing: their own run below
        if c.family is Family.RASTER:
            (tmp_path / "in" / c.name).rename(tmp_path / c.name)
    families = Counter(c.family for c in dicom_cases)
    assert {Family.HEADER, Family.BYTES, Family.COMPRESSED, Family.SPECIAL} <= set(families)
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "calcscope",
            "analyze",
            str(tmp_path / "in"),
            "--out",
            str(out),
            "--no-overlay",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    text = proc.stdout + proc.stderr
    assert "Traceback" not in text
    assert proc.returncode == 1  # some files failed, clearly
    silent = []
    for c in dicom_cases:
        got = _answer(out / f"{Path(c.name).stem}.json")
        if got is not None and got != expected:
            silent.append(f"{c.name} ({c.what}): {got}")
        if got is None and c.what != "a folder named like an image":
            assert c.name in text, f"{c.name} ({c.what}): neither a result nor an error"
        if c.good:
            assert _answer(out / f"{Path(c.good).stem}.json") == expected, c.good
    assert silent == []


def test_case_bytes_makes_the_files_of_make_cases(
    tmp_path: Path, clean: tuple[bytes, Answer]
) -> None:
    """``case_bytes`` gives a run's ``h<k>`` files without writing the others."""
    from calcscope.evaluation.hostile import case_bytes

    data, _ = clean
    cases = make_cases(tmp_path, n=130, seed=3, clean=data)
    picked = [k for k, c in enumerate(cases) if c.family in (Family.BYTES, Family.COMPRESSED)]
    picked = picked[::9]
    got = case_bytes(picked, n=130, seed=3, clean=data)
    assert sorted(got) == picked
    for k in picked:
        family, what, blob = got[k]
        assert (family, what) == (cases[k].family, cases[k].what)
        if family is Family.BYTES:  # compressed ones carry a fresh SOP Instance UID
            assert blob == (tmp_path / cases[k].name).read_bytes()
