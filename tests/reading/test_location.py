"""Where a finding lies: laterality, half of the breast a view tells, depth third and
distance from the nipple (BI-RADS "location of lesion")."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from calcscope.imaging.preprocess import Preprocessed
from calcscope.model import Laterality, Mammogram, Source, View
from calcscope.reading.location import BreastHalf, Depth, locate, nipple_line

ROWS, COLS = 400, 300
SPACING = (0.2, 0.2)


def _breast(chest_wall: str = "left") -> np.ndarray:
    """A half-disc breast against the chest wall, nipple at row 200, 250 px (50 mm) out."""
    r, c = np.mgrid[:ROWS, :COLS]
    x = c if chest_wall == "left" else COLS - 1 - c
    return ((r - 200) ** 2 + x**2) <= 250**2


def _mammo(view: View | None, orientation: str | None = None, lat=Laterality.LEFT) -> Mammogram:
    return Mammogram(
        np.zeros((ROWS, COLS), np.float32),
        SPACING,
        lat,
        view,
        Source(patient_orientation=orientation),
    )


def _prep(chest_wall: str = "left", pectoral: np.ndarray | None = None) -> Preprocessed:
    breast = _breast(chest_wall)
    pec = np.zeros_like(breast) if pectoral is None else pectoral
    return Preprocessed(breast & ~pec, breast, pec, chest_wall)


@pytest.mark.parametrize("chest_wall", ["left", "right"])
def test_cc_view_halves_depth_and_distance(chest_wall: str):
    mammo, prep = _mammo(View.CC), _prep(chest_wall)
    line = nipple_line(mammo, prep)
    assert line is not None
    assert line.nipple_rc[0] == pytest.approx(200, abs=2)
    assert line.length_mm == pytest.approx(50, abs=1.5)  # 250 px at 0.2 mm
    assert line.top_is is BreastHalf.OUTER and "usual CC" in line.orientation_note

    def col(mm_from_nipple: float) -> float:  # a column that far back from the nipple
        back = mm_from_nipple / 0.2
        return 249 - back if chest_wall == "left" else COLS - 250 + back

    upper = locate((120.0, col(10)), mammo, line)  # 16 mm above the nipple line
    assert (upper.half, upper.depth) == (BreastHalf.OUTER, Depth.ANTERIOR)
    assert upper.nipple_distance_mm == pytest.approx(np.hypot(16, 10), abs=0.5)
    lower = locate((300.0, col(25)), mammo, line)
    assert (lower.half, lower.depth) == (BreastHalf.INNER, Depth.MIDDLE)
    deep = locate((210.0, col(45)), mammo, line)
    assert (deep.half, deep.depth) == (BreastHalf.CENTRAL, Depth.POSTERIOR)
    assert upper.text == "left breast, outer half, anterior third, 19 mm from the nipple (CC view)"
    assert deep.text.startswith("left breast, behind the nipple, posterior third")


def test_patient_orientation_turns_the_halves_round():
    """A left CC stored upside down: its column direction points to the patient's left
    (lateral), so the image top is medial."""
    prep = _prep()
    flipped = nipple_line(_mammo(View.CC, "A\\L"), prep)
    usual = nipple_line(_mammo(View.CC, "A\\R"), prep)
    assert flipped is not None and usual is not None
    assert flipped.top_is is BreastHalf.INNER and "PatientOrientation" in flipped.orientation_note
    assert usual.top_is is BreastHalf.OUTER and "PatientOrientation" in usual.orientation_note
    assert locate((120.0, 200.0), _mammo(View.CC, "A\\L"), flipped).half is BreastHalf.INNER
    # MLO: head-wards down the image means the top is the lower half
    mlo = nipple_line(_mammo(View.MLO, "A\\HR"), prep)
    assert mlo is not None and mlo.top_is is BreastHalf.LOWER


def test_mlo_nipple_line_is_perpendicular_to_the_pectoral_edge():
    r, c = np.mgrid[:ROWS, :COLS]
    pectoral = c < 120 - 0.6 * r  # a triangle in the upper corner at the chest wall
    mammo, prep = _mammo(View.MLO), _prep("left", pectoral & _breast("left"))
    line = nipple_line(mammo, prep)
    assert line is not None and line.top_is is BreastHalf.UPPER
    # the muscle's edge runs along (1, -0.6) (row, col); the line is perpendicular to it
    edge = np.array([1.0, -0.6]) / np.hypot(1.0, 0.6)
    assert abs(float(np.dot(line.direction_rc, edge))) < 0.05
    assert line.direction_rc[1] < 0  # back towards the chest wall on the left
    # the nipple (row 200, col 249) to the edge col = 120 - 0.6 row, in mm
    nipple = np.array(line.nipple_rc)
    distance_px = abs(nipple[1] - (120 - 0.6 * nipple[0])) / np.hypot(1.0, 0.6)
    assert line.length_mm == pytest.approx(distance_px * 0.2, rel=0.05)
    above = locate((150.0, 230.0), mammo, line)
    below = locate((260.0, 230.0), mammo, line)
    assert (above.half, below.half) == (BreastHalf.UPPER, BreastHalf.LOWER)


def test_unknown_view_gives_no_half_and_no_nipple_gives_no_place():
    prep = _prep()
    line = nipple_line(_mammo(None), prep)
    assert line is not None and line.top_is is None
    loc = locate((120.0, 200.0), _mammo(None), line)
    assert loc.half is None and loc.depth is Depth.ANTERIOR
    assert loc.text.startswith("left breast, anterior third")
    empty = replace(prep, breast=np.zeros_like(prep.breast))
    assert nipple_line(_mammo(View.CC), empty) is None
    nowhere = locate((1.0, 1.0), _mammo(View.CC, lat=None), None)
    assert (nowhere.half, nowhere.depth, nowhere.nipple_distance_mm) == (None, None, None)
    assert nowhere.text == "breast of unknown side (CC view)"


def test_patient_orientation_read_from_dicom(tmp_path: Path):
    from calcscope.imaging.io import read_image
    from imaging.test_io import mg_dataset, save  # tests/imaging/test_io.py

    ds = mg_dataset(
        np.zeros((64, 64), np.uint16),
        ImagerPixelSpacing=[0.07, 0.07],
        ImageLaterality="L",
        ViewPosition="CC",
        PatientOrientation=["A", "R"],
    )
    m = read_image(save(ds, tmp_path / "o.dcm"))
    assert m.source.patient_orientation == "A\\R"


def test_report_letter_and_html_carry_the_location():
    from calcscope.model import Distribution, Morphology
    from calcscope.phantom.mammogram import ClusterSpec, make_phantom
    from calcscope.pipeline import analyze_mammogram
    from calcscope.reports.html import render_html
    from calcscope.reports.letter import letter_text
    from calcscope.reports.schema import to_report

    ph = make_phantom(
        seed=3,
        spacing_mm=0.1,
        shape=(1200, 1000),
        clusters=[ClusterSpec(Morphology.FINE_LINEAR_BRANCHING, Distribution.LINEAR, 10)],
        macros=[Morphology.COARSE_POPCORN],
        n_singles=0,
    )
    analysis = analyze_mammogram(ph.mammogram)
    rep = to_report(analysis)
    assert rep.nipple_line is not None and rep.nipple_line.length_mm > 20
    assert rep.clusters and rep.macro_findings
    for f in [*rep.clusters, *rep.macro_findings]:
        assert f.location is not None and f.location.half is not None
        assert f.location.text.startswith(
            "left breast" if ph.mammogram.laterality == "L" else "right"
        )
    worst = max(analysis.clusters, key=lambda f: f.assessment.category.rank)
    words = {"outer": "outer half", "inner": "inner half", "central": "behind the nipple"}
    assert worst.location is not None
    assert words[worst.location.half.value] in letter_text(rep)
    assert rep.clusters[0].location.text in render_html(rep)
