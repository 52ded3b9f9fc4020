"""The high-resolution rules of issue 18 on synthetic input: a speck sharper than the imaging
chain draws keeps only a faint score; at fine pixels a cluster needs sure members; the image
domain says when the detector's figures do not cover an image."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from calcscope.config import ClusterConfig, DetectConfig
from calcscope.detection.clusters import cluster_calcifications
from calcscope.detection.detect import detect
from calcscope.detection.domain import Acquisition, image_domain
from calcscope.imaging.preprocess import Preprocessed
from calcscope.model import Calcification, Mammogram, Source
from helpers import make_calcification

SPACING_MM = 0.05


def _speck_image() -> tuple[Mammogram, Preprocessed, tuple[int, int], tuple[int, int]]:
    """Noisy flat tissue at 0.05 mm with a one-pixel dust speck and a blurred speck of the
    same peak contrast (sigma 0.1 mm: a calcification drawn through screen and scanner)."""
    rng = np.random.default_rng(3)
    img = (0.4 + 0.004 * rng.standard_normal((400, 400))).astype(np.float32)
    dust_rc, calc_rc = (120, 120), (280, 280)
    img[dust_rc] += 0.08
    calc = np.zeros_like(img)
    calc[calc_rc] = 1.0
    calc = cv2.GaussianBlur(calc, (0, 0), 0.1 / SPACING_MM)
    img += 0.08 * calc / calc.max()
    mask = np.zeros(img.shape, dtype=bool)
    mask[20:-20, 20:-20] = True
    prep = Preprocessed(mask, mask.copy(), np.zeros_like(mask), "left")
    return Mammogram(img, (SPACING_MM, SPACING_MM)), prep, dust_rc, calc_rc


def _score_near(det, rc: tuple[int, int]) -> float:
    c = det.candidates
    d = np.hypot(*(c.center_rc - np.asarray(rc, dtype=float)).T)
    return float(c.score[d < 3].max()) if (d < 3).any() else 0.0


def test_a_one_pixel_speck_keeps_only_a_faint_score_where_a_blurred_one_stays_sure():
    mammo, prep, dust_rc, calc_rc = _speck_image()
    det = detect(mammo, prep, DetectConfig())
    off = detect(mammo, prep, DetectConfig(speck_max_pixel_mm=0.0, impulse_max_pixel_mm=0.0))
    cap = DetectConfig().speck_max_score
    assert _score_near(off, dust_rc) > cap  # the classifier alone takes the dust for a speck
    assert _score_near(det, dust_rc) <= cap
    assert _score_near(det, calc_rc) == _score_near(off, calc_rc) > 0.5


def _calc(i: int, r: float, c: float, score: float) -> Calcification:
    return make_calcification(i, (r, c), 0.25, score=score, area_mm2=0.05)


def test_at_fine_pixels_a_cluster_needs_sure_members():
    # two sure specks and three faint ones within 5 mm: grain's pattern
    def group(px_mm: float) -> list[Calcification]:
        step = 1.0 / px_mm  # 1 mm in pixels
        scores = (0.97, 0.95, 0.3, 0.3, 0.3)
        return [_calc(i + 1, 500 + i * step, 500 + i * step, s) for i, s in enumerate(scores)]

    assert cluster_calcifications(group(0.05), (0.05, 0.05)) == ()
    assert len(cluster_calcifications(group(0.1), (0.1, 0.1))) == 1
    off = ClusterConfig(sure_members=0)
    assert len(cluster_calcifications(group(0.05), (0.05, 0.05), off)) == 1
    # members scoring 0.3 count as sure from sure_min_score 0.3 (default: core_min_score)
    assert (
        len(cluster_calcifications(group(0.05), (0.05, 0.05), ClusterConfig(sure_min_score=0.3)))
        == 1
    )
    assert (
        cluster_calcifications(group(0.05), (0.05, 0.05), ClusterConfig(sure_min_score=0.31)) == ()
    )


def test_at_fine_pixels_the_sure_members_must_group():
    # four sure specks 9 mm apart in a row, linked into one cluster by faint specks between
    # them: dust's pattern; the same four 3 mm apart (9 mm end to end, in a 6 mm disc): a
    # cluster
    def row(gap_mm: float) -> list[Calcification]:
        step = gap_mm / 0.05
        calcs = [_calc(i + 1, 500.0, 500 + i * step, 0.95) for i in range(4)]
        faint = [_calc(5 + i, 520.0, 500 + (i + 0.5) * step, 0.3) for i in range(3)]
        return calcs + faint

    assert cluster_calcifications(row(9.0), (0.05, 0.05)) == ()
    assert len(cluster_calcifications(row(3.0), (0.05, 0.05))) == 1
    anywhere = ClusterConfig(sure_within_mm=0.0)
    assert len(cluster_calcifications(row(9.0), (0.05, 0.05), anywhere)) == 1
    # at coarse pixels (mini-MIAS) neither sure rule applies
    spread = [
        dataclasses.replace(c, center_rc=(c.center_rc[0] / 4, c.center_rc[1] / 4)) for c in row(9.0)
    ]
    assert len(cluster_calcifications(spread, (0.2, 0.2))) == 1

    # the disc need not be centred on a member: four sure specks on the rim of a 5.9 mm
    # circle (each 8.3 mm or more from the others) fit in one 6 mm disc; on a 6.1 mm one not
    def rim(radius_mm: float) -> list[Calcification]:
        step = radius_mm / 0.05
        at = ((0, 1), (1, 0), (0, -1), (-1, 0))
        calcs = [_calc(i + 1, 800 + r * step, 800 + c * step, 0.95) for i, (r, c) in enumerate(at)]
        return [*calcs, _calc(5, 800.0, 800.0, 0.3)]

    assert len(cluster_calcifications(rim(5.9), (0.05, 0.05))) == 1
    assert cluster_calcifications(rim(6.1), (0.05, 0.05)) == ()


def test_the_grouping_test_stays_cheap_on_many_sure_specks():
    # 3000 sure specks 9 mm apart along a line, one linked group: no four fit in a 6 mm
    # disc, no three in 2.5 mm
    calcs = [_calc(i + 1, 500.0 + (i % 2), 500.0 + i * 180.0, 0.95) for i in range(3000)]
    assert cluster_calcifications(calcs, (0.05, 0.05)) == ()
    # 600 packed 1 mm apart: one cluster, answered from a k-d tree of the members (a table
    # of every disc through every pair would hold about 1.5e8 entries here)
    packed = [_calc(i + 1, 500.0 + 20 * (i // 25), 500.0 + 20 * (i % 25), 0.95) for i in range(600)]
    assert len(cluster_calcifications(packed, (0.05, 0.05))) == 1


def test_at_fine_pixels_three_sure_members_in_a_tight_group_make_a_cluster():
    # three sure specks within 2 mm and two faint ones: a tight group dust does not make
    def group(gap_mm: float) -> list[Calcification]:
        step = gap_mm / 0.05
        sure = [_calc(i + 1, 600.0, 600 + i * step, 0.95) for i in range(3)]
        return [*sure, _calc(4, 630.0, 600.0, 0.3), _calc(5, 630.0, 600 + step, 0.3)]

    assert len(cluster_calcifications(group(1.5), (0.05, 0.05))) == 1
    # the same three 4 mm apart (8 mm end to end) do not fit in the 2.5 mm disc
    assert cluster_calcifications(group(4.0), (0.05, 0.05)) == ()
    off = ClusterConfig(sure_tight_members=0)
    assert cluster_calcifications(group(1.5), (0.05, 0.05), off) == ()


def test_a_scan_softer_than_any_measured_is_outside_the_domain():
    import cv2

    from calcscope.detection.domain import SOFTEST_SCAN, scan_sharpness

    rng = np.random.default_rng(0)
    grain = (0.4 + 0.01 * rng.standard_normal((800, 600))).astype(np.float32)
    mask = np.ones(grain.shape, bool)
    white = scan_sharpness(grain, mask)
    soft = scan_sharpness(cv2.GaussianBlur(grain, (0, 0), 1.0), mask)
    assert white is not None and 0.9 < white < 1.1  # uncorrelated noise
    assert soft is not None and soft < SOFTEST_SCAN
    assert scan_sharpness(grain, np.zeros(grain.shape, bool)) is None
    film = Source(sop_class_uid="1.2.840.10008.5.1.4.1.1.7", modality="MG")
    pixels = np.zeros((64, 64), dtype=np.float32)
    mammo = Mammogram(pixels, (0.05, 0.05), source=film)
    assert image_domain(mammo, sharpness=0.5).familiar
    assert image_domain(mammo, sharpness=None).familiar
    d = image_domain(mammo, sharpness=0.3)
    assert not d.familiar
    assert "softer scan" in (d.warning or "") and "0.30" in (d.warning or "")


def test_image_domain_warns_outside_what_was_measured():
    pixels = np.zeros((64, 64), dtype=np.float32)
    film = Source(sop_class_uid="1.2.840.10008.5.1.4.1.1.7", modality="MG")
    digital = Source(
        sop_class_uid="1.2.840.10008.5.1.4.1.1.1.2.1", presentation_intent="FOR PROCESSING"
    )
    d = image_domain(Mammogram(pixels, (0.05, 0.05), source=film))
    assert d.acquisition is Acquisition.FILM and d.familiar and d.warning is None
    d = image_domain(Mammogram(pixels, (0.1, 0.1), source=film))
    assert not d.familiar and "0.100 mm" in (d.warning or "")
    d = image_domain(Mammogram(pixels, (0.07, 0.07), source=digital))
    assert d.acquisition is Acquisition.DIGITAL and not d.familiar
    assert "digital" in (d.warning or "") and "FOR PROCESSING" in (d.warning or "")
    d = image_domain(Mammogram(pixels, (0.3, 0.3)))
    assert d.acquisition is Acquisition.UNKNOWN and "0.300 mm" in (d.warning or "")
    assert image_domain(Mammogram(pixels, (0.1, 0.1))).familiar  # phantoms' range


def test_the_report_carries_the_domain_and_the_html_shows_its_warning():
    from calcscope.phantom import make_phantom
    from calcscope.pipeline import analyze_mammogram
    from calcscope.reports.html import render_html
    from calcscope.reports.schema import to_report

    ph = make_phantom(seed=3, spacing_mm=0.1, shape=(1200, 1000))
    plain = to_report(analyze_mammogram(ph.mammogram))
    assert plain.domain is not None and plain.domain.familiar and plain.domain.warning is None
    assert 'id="domain-warning"' not in render_html(plain)
    digital = dataclasses.replace(
        ph.mammogram, source=Source(sop_class_uid="1.2.840.10008.5.1.4.1.1.1.2")
    )
    rep = to_report(analyze_mammogram(digital))
    assert rep.domain is not None and rep.domain.acquisition == "digital"
    assert not rep.domain.familiar and "digital mammogram" in (rep.domain.warning or "")
    html = render_html(rep)
    assert 'id="domain-warning"' in html and "digital mammogram" in html


def test_the_report_carries_the_scan_sharpness_at_fine_pixels_only():
    from calcscope.phantom import make_phantom
    from calcscope.pipeline import analyze_mammogram
    from calcscope.reports.html import render_html
    from calcscope.reports.schema import AnalysisReport, to_report

    coarse = to_report(analyze_mammogram(make_phantom(seed=3, spacing_mm=0.1).mammogram))
    assert coarse.domain is not None and coarse.domain.scan_sharpness is None
    assert "grain sharpness" not in render_html(coarse)
    ph = make_phantom(seed=3, spacing_mm=0.05, shape=(1600, 1200), clusters=[], macros=[])
    analysis = analyze_mammogram(ph.mammogram)
    fine = to_report(analysis)
    measured = analysis.detection.scan_sharpness
    assert measured is not None and fine.domain is not None
    assert fine.domain.scan_sharpness == round(measured, 3)
    assert 0.0 < fine.domain.scan_sharpness <= 1.5
    assert f"{measured:.2f}" in render_html(fine).split("grain sharpness", 1)[1][:200]
    # a report written before schema 1.6 has no such field and still loads
    old = fine.model_dump(mode="json")
    old["schema_version"] = "1.5"
    del old["domain"]["scan_sharpness"]
    again = AnalysisReport.model_validate(old)
    assert again.domain is not None and again.domain.scan_sharpness is None
