"""Tests of calcscope.reading.describe: rule functions on hand-made calcifications, and per-class
accuracy of the whole pipeline on phantoms made for each BI-RADS class.

Accuracy bound: each class is inserted on ``SEEDS`` (3 phantoms, 0.1 mm pixels,
1200 x 1000) and must be described as inserted on at least ``MIN_CORRECT`` (2 of 3) of
them. Classes that the rules cannot yet tell apart at this resolution are marked as
strict ``xfail`` with the accuracy measured by ``scripts/describe_accuracy.py`` (seeds
100-139, disjoint from these), so that they show in every run and a fix shows as a failure
to un-mark. PUNCTATE counts as correct when called ROUND: the BI-RADS 5th edition files
punctate under round (round < 0.5 mm).
"""

from __future__ import annotations

import dataclasses
import functools

import cv2
import numpy as np
import pytest

from calcscope.config import DescribeConfig
from calcscope.model import Calcification, CalcKind, Cluster, Distribution, Mammogram, Morphology
from calcscope.phantom.mammogram import (
    CLUSTER_MORPHOLOGIES,
    MACRO_PATTERNS,
    ClusterSpec,
    make_phantom,
)
from calcscope.pipeline import Analysis, analyze_mammogram
from calcscope.reading.describe import (
    DescribeThresholds,
    classify_kind,
    cluster_distribution,
    cluster_morphology,
    describe,
    describe_clusters,
    diffuse_spread,
    judged_members,
)

SEEDS = (0, 1, 2)
MIN_CORRECT = 2
SPACING_MM = 0.1
SHAPE = (1200, 1000)
T = DescribeThresholds()

# measured on seeds 100-139 at 0.07 and 0.1 mm (scripts/describe_accuracy.py): below 2 of 3,
# and 0 of 3 on SEEDS (punctate, punctate, round)
KNOWN_WEAK = {
    Morphology.FINE_PLEOMORPHIC: "8/40 at 0.07 mm, 3/40 at 0.1 mm, mostly called punctate: "
    "0.15-0.5 mm irregular specks span 2-5 pixels, too few to show the shape; such clusters "
    "are not confident and get magnification views",
}
# Weak on the wider seed range but described as inserted on exactly MIN_CORRECT of SEEDS (the
# pipeline is deterministic), so they are plain tests at that bound: AMORPHOUS 2/3 (seed 0
# missed; 27/40 at 0.07 mm, 26/40 at 0.1 mm on seeds 100-139: faint clusters are missed or
# merged with false detections by detection and clustering), REGIONAL 2/3 (seed 0 called
# grouped; 28/40 at 0.07 mm, 29/40 at 0.1 mm: a spread that happens to be elongated towards
# the nipple is called segmental, a sparsely detected one grouped).
ACCEPT = {Morphology.PUNCTATE: {Morphology.PUNCTATE, Morphology.ROUND}}


# ------------------------------------------------------------------------- helpers
def _calc(
    id: int,
    center_rc: tuple[float, float],
    *,
    length_mm: float = 0.3,
    width_mm: float | None = None,
    circularity: float = 0.95,
    solidity: float = 1.0,
    cnr: float = 15.0,
    score: float = 0.9,
    lucent: bool = False,
    spacing_mm: float = 0.1,
    angle: float = 0.0,
) -> Calcification:
    """A calcification drawn as a filled ellipse (outline in pixels) with given features."""
    width_mm = length_mm if width_mm is None else width_mm
    a, b = length_mm / 2 / spacing_mm, width_mm / 2 / spacing_mm
    th = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    u, v = a * np.cos(th), b * np.sin(th)
    rr = center_rc[0] + u * np.sin(angle) + v * np.cos(angle)
    cc = center_rc[1] + u * np.cos(angle) - v * np.sin(angle)
    contour = np.unique(np.round(np.column_stack([rr, cc])).astype(np.int32), axis=0)
    r0, c0 = contour.min(0)
    r1, c1 = contour.max(0) + 1
    d_eq = float(np.sqrt(length_mm * width_mm))
    return Calcification(
        id=id,
        center_rc=center_rc,
        contour_rc=contour,
        bbox_rc=(int(r0), int(c0), int(r1), int(c1)),
        area_mm2=float(np.pi * length_mm * width_mm / 4),
        diameter_mm=d_eq,
        max_diameter_mm=length_mm,
        min_diameter_mm=width_mm,
        contrast=0.1,
        cnr=cnr,
        score=score,
        circularity=circularity,
        elongation=1.0 - width_mm / length_mm,
        solidity=solidity,
        lucent_center=lucent,
    )


def _cluster(members: list[Calcification]) -> Cluster:
    pts = np.array([m.center_rc for m in members])
    return Cluster(
        id=1,
        member_ids=tuple(m.id for m in members),
        center_rc=(float(pts[:, 0].mean()), float(pts[:, 1].mean())),
        bbox_rc=(0, 0, 1, 1),
        extent_mm=10.0,
        area_mm2=1.0,
        score=5.0,
    )


def _grid(n: int, spacing_px: float = 25.0, **kw: object) -> list[Calcification]:
    """``n`` calcifications on a compact grid (grouped, ~2.5 mm apart at 0.1 mm)."""
    side = int(np.ceil(np.sqrt(n)))
    return [
        _calc(i + 1, (500 + spacing_px * (i // side), 500 + spacing_px * (i % side)), **kw)  # type: ignore[arg-type]
        for i in range(n)
    ]


# --------------------------------------------------------------------- rule units
def test_classify_kind_uses_config_threshold():
    c = _calc(1, (10, 10), length_mm=0.7)
    assert classify_kind(c, DescribeConfig()) is CalcKind.MACRO
    assert classify_kind(c, DescribeConfig(macro_threshold_mm=1.0)) is CalcKind.MICRO


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        (dict(length_mm=0.3, cnr=15.0), Morphology.PUNCTATE),
        (dict(length_mm=0.25, cnr=6.0), Morphology.AMORPHOUS),
        (dict(length_mm=0.7, cnr=18.0), Morphology.ROUND),
        (dict(length_mm=0.7, cnr=18.0, circularity=0.7), Morphology.COARSE_HETEROGENEOUS),
        (dict(length_mm=0.3, circularity=0.6), Morphology.FINE_PLEOMORPHIC),
        (dict(length_mm=1.5, width_mm=0.2), Morphology.FINE_LINEAR),
    ],
)
def test_cluster_morphology_rules(kw: dict, expected: Morphology):
    members = _grid(8, **kw)
    morph, _, reasons, med, cv = cluster_morphology(members, 0.1, T)
    assert morph is expected, reasons
    assert reasons and all(r.strip() for r in reasons)
    assert med == pytest.approx(kw["length_mm"])
    assert cv == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize(("pixel_mm", "confident"), [(0.1, False), (0.07, False), (0.05, True)])
def test_shape_needs_six_pixels_to_be_confident(pixel_mm: float, confident: bool):
    """0.4 mm specks span 4 and 5.7 pixels at 0.1 and 0.07 mm, where punctate and fine
    pleomorphic outlines are a coin toss: magnification views are asked for; at 0.05 mm
    (8 pixels) the call stands."""
    members = _grid(8, length_mm=0.4, spacing_mm=pixel_mm)
    morph, conf, reasons, _, _ = cluster_morphology(members, pixel_mm, T)
    assert conf is confident
    assert any("magnification" in r for r in reasons) is not confident


def test_varying_sizes_are_pleomorphic():
    sizes = [0.1, 0.15, 0.2, 0.3, 0.35, 0.4, 0.45, 0.12]
    members = [
        _calc(i + 1, (500 + 25 * i, 500), length_mm=s, cnr=14.0) for i, s in enumerate(sizes)
    ]
    morph, _, reasons, _, cv = cluster_morphology(members, 0.1, T)
    assert cv > T.pleomorphic_cv
    assert morph is Morphology.FINE_PLEOMORPHIC, reasons


def test_branching_casts_are_fine_linear_branching():
    """Y-shaped outlines (skeleton with 3 ends) among linear casts."""
    members = _grid(6, length_mm=1.5, width_mm=0.2)
    ys = []
    for k in range(3):
        r, c = 800 + 30 * k, 800
        arms = [
            _calc(0, (r, c + 5), length_mm=1.0, width_mm=0.2),
            _calc(0, (r - 4, c - 4), length_mm=1.0, width_mm=0.2, angle=np.pi / 4),
            _calc(0, (r + 4, c - 4), length_mm=1.0, width_mm=0.2, angle=-np.pi / 4),
        ]
        mask = np.zeros((80, 80), np.uint8)
        import cv2

        for a in arms:
            pts = (a.contour_rc - [r - 40, c - 40])[:, None, ::-1].astype(np.int32)
            cv2.fillPoly(mask, [cv2.convexHull(pts)], 1)
        cnts, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        outline = cnts[0][:, 0, ::-1] + np.array([r - 40, c - 40])
        base = _calc(100 + k, (float(r), float(c)), length_mm=1.5, width_mm=0.2)
        ys.append(
            Calcification(
                **{
                    **base.__dict__,
                    "contour_rc": outline.astype(np.int32),
                    "min_diameter_mm": 1.0,
                    "elongation": 0.3,
                    "solidity": 0.5,
                }
            )
        )
    morph, _, reasons, _, _ = cluster_morphology(members + ys, 0.1, T)
    assert morph is Morphology.FINE_LINEAR_BRANCHING, reasons


def test_judged_members_prefer_detected_ones():
    sure = _grid(4)
    possible = [_calc(10 + i, (900.0, 900.0 + 30 * i), length_mm=0.9, score=0.1) for i in range(6)]
    assert judged_members(sure + possible, 0.5) == sure
    assert judged_members(sure[:2] + possible, 0.5) == sure[:2] + possible


@pytest.mark.parametrize(
    ("layout", "expected"),
    [
        ("grouped", Distribution.GROUPED),
        ("line", Distribution.LINEAR),
        ("wide", Distribution.REGIONAL),
        ("wedge", Distribution.SEGMENTAL),
    ],
)
def test_cluster_distribution_rules(layout: str, expected: Distribution):
    rng = np.random.default_rng(1)
    if layout == "grouped":  # 12 within a 5 mm radius
        pts = rng.uniform(-35, 35, (12, 2))
    elif layout == "line":  # 10 along 18 mm, 1 mm wide
        pts = np.column_stack([rng.uniform(-5, 5, 10), np.linspace(-90, 90, 10)])
    elif layout == "wide":  # 20 over a 35 mm disc
        ang, rad = rng.uniform(0, 2 * np.pi, 20), 175 * np.sqrt(rng.uniform(0, 1, 20))
        pts = np.column_stack([rad * np.sin(ang), rad * np.cos(ang)])
    else:  # 20 in a 30 mm long wedge, 12 mm wide at its base
        u = rng.uniform(0, 300, 20)
        pts = np.column_stack([(u / 300) * rng.uniform(-60, 60, 20), u])
    members = [_calc(i + 1, (500 + p[0], 500 + p[1])) for i, p in enumerate(pts)]
    dist, reasons = cluster_distribution(_cluster(members), members, (0.1, 0.1), T)
    assert dist is expected, reasons
    assert reasons and all(r.strip() for r in reasons)


@pytest.mark.parametrize(
    ("nipple_rc", "expected"),
    [
        ((500.0, 2000.0), Distribution.SEGMENTAL),  # the wedge's axis points at the nipple
        ((2000.0, 650.0), Distribution.REGIONAL),  # the nipple lies across its axis
        (None, Distribution.SEGMENTAL),  # nipple unknown: shape alone
    ],
)
def test_segment_must_point_at_the_nipple(nipple_rc, expected: Distribution):
    rng = np.random.default_rng(1)
    u = rng.uniform(0, 300, 20)  # 30 mm wedge along the columns, 12 mm wide at its base
    pts = np.column_stack([(u / 300) * rng.uniform(-60, 60, 20), u])
    members = [_calc(i + 1, (500 + p[0], 500 + p[1])) for i, p in enumerate(pts)]
    dist, reasons = cluster_distribution(_cluster(members), members, (0.1, 0.1), T, nipple_rc)
    assert dist is expected, reasons
    if nipple_rc is not None:
        assert "nipple" in " ".join(reasons)


@pytest.mark.parametrize(
    ("nipple_rc", "expected"),
    [
        ((500.0, 100.0), Distribution.SEGMENTAL),  # apex towards the nipple, 40 mm away
        ((500.0, 1200.0), Distribution.REGIONAL),  # it widens towards the nipple instead
        (None, Distribution.REGIONAL),  # nipple unknown: too wide to be elongated
    ],
)
def test_wide_wedge_with_its_apex_at_the_nipple_is_segmental(nipple_rc, expected):
    """A triangle of half-angle about 34 degrees is not elongated (axes under 1.6 : 1);
    it is a segment because it widens away from the nipple within a narrow cone."""
    rng = np.random.default_rng(2)
    u = rng.uniform(0, 300, 24)  # 30 mm long, 40 mm wide at its base: axes 1.4 : 1
    pts = np.column_stack([(u / 300) * rng.uniform(-200, 200, 24), u])
    members = [_calc(i + 1, (500 + p[0], 500 + p[1])) for i, p in enumerate(pts)]
    dist, reasons = cluster_distribution(_cluster(members), members, (0.1, 0.1), T, nipple_rc)
    assert dist is expected, reasons
    if expected is Distribution.SEGMENTAL:
        assert "widens away from the nipple" in reasons[0]


def _scatter_mask() -> np.ndarray:
    breast = np.zeros((1000, 800), bool)
    breast[100:900, :700] = True  # 80 x 70 mm at 0.1 mm
    return breast


@pytest.mark.parametrize(
    ("layout", "diffuse"),
    [
        ("random", True),  # 30 specks at random over the breast
        ("clusters", False),  # 30 specks in three tight groups far apart
        ("regional", False),  # 30 specks over a 3 cm disc
        ("few", False),  # 10 specks at random: too few to call
    ],
)
def test_diffuse_spread_tells_random_scatter_from_groups(layout: str, diffuse: bool):
    rng = np.random.default_rng(4)
    if layout in ("random", "few"):
        n = 30 if layout == "random" else 10
        pts = np.column_stack([rng.uniform(120, 880, n), rng.uniform(20, 680, n)])
    elif layout == "clusters":
        centres = np.array([[250, 150], [700, 200], [450, 600]])
        pts = np.concatenate([c + rng.normal(0, 20, (10, 2)) for c in centres])
    else:
        ang, rad = rng.uniform(0, 2 * np.pi, 30), 150 * np.sqrt(rng.uniform(0, 1, 30))
        pts = np.column_stack([500 + rad * np.sin(ang), 350 + rad * np.cos(ang)])
    calcs = [_calc(i + 1, (float(r), float(c))) for i, (r, c) in enumerate(pts)]
    reason = diffuse_spread(calcs, _scatter_mask(), (0.1, 0.1), T)
    assert (reason is not None) is diffuse, reason
    if diffuse:
        assert "diffuse" in reason and "30 calcifications" in reason


def test_diffuse_clusters_of_punctate_specks_are_benign():
    """On phantoms of punctate or round specks scattered over the breast, the clusters
    they happen to form are diffuse and BI-RADS 2 (atlas: diffuse punctate calcifications
    are benign), never a suspicious distribution."""
    for seed in SEEDS:
        _, analysis = _analysis("distribution", Distribution.DIFFUSE.value, seed)
        for f in analysis.clusters:
            if f.description.distribution is Distribution.DIFFUSE:
                assert f.description.morphology in (
                    Morphology.PUNCTATE,
                    Morphology.ROUND,
                    Morphology.AMORPHOUS,
                )
                if f.description.morphology is not Morphology.AMORPHOUS:
                    assert f.assessment.category.value == "2", f.assessment.rules
            assert f.description.distribution not in (
                Distribution.SEGMENTAL,
                Distribution.LINEAR,
            ) or f.description.morphology not in (Morphology.PUNCTATE, Morphology.ROUND)


def _branch(id: int, center_rc: tuple[float, float], arm_px: int = 8) -> Calcification:
    """A Y-shaped cast (three 0.2 mm wide arms of ``arm_px`` pixels at 0.1 mm)."""
    size = 4 * arm_px
    mask = np.zeros((size, size), np.uint8)
    c = size // 2
    for ang in (0.0, 2.1, 4.2):
        end = (int(c + arm_px * np.cos(ang)), int(c + arm_px * np.sin(ang)))
        cv2.line(mask, (c, c), end, 1, thickness=2)
    cnts, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    contour = max(cnts, key=cv2.contourArea)[:, 0, ::-1] + np.array(center_rc, int) - c
    base = _calc(id, center_rc, length_mm=1.4, width_mm=0.7, circularity=0.3, solidity=0.4)
    return dataclasses.replace(base, contour_rc=contour.astype(np.int32), elongation=0.5)


@pytest.mark.parametrize(("n_branching", "expected"), [(2, True), (1, False)])
def test_a_few_branching_casts_make_the_cluster_fine_linear_branching(n_branching, expected):
    """Four casts, two of them branching, among 16 specks (20 %) set the cluster's form:
    the atlas describes a cluster by its most worrisome form."""
    specks = [_calc(i + 1, (500 + 25 * (i // 4), 500 + 25 * (i % 4))) for i in range(16)]
    lines = [
        _calc(20 + i, (450 + 30 * i, 420), length_mm=1.5, width_mm=0.2)
        for i in range(4 - n_branching)
    ]
    branches = [_branch(30 + i, (450 + 40 * i, 640)) for i in range(n_branching)]
    morph, _, reasons, _, _ = cluster_morphology([*specks, *lines, *branches], 0.1, T)
    assert (morph is Morphology.FINE_LINEAR_BRANCHING) is expected, reasons
    assert morph is not Morphology.FINE_LINEAR or not expected


def test_describe_clusters_gives_reasons_for_every_cluster():
    members = _grid(8)
    desc = describe(members, (0.1, 0.1))
    desc = describe_clusters(desc, [_cluster(members)], members, (0.1, 0.1))
    (cd,) = desc.clusters
    assert cd.n_members == 8
    assert len(cd.reasons) >= 2 and all(r.strip() for r in cd.reasons)


def _breast(shape: tuple[int, int] = (400, 400)) -> np.ndarray:
    breast = np.zeros(shape, bool)
    breast[:, :300] = True  # skin line at column 300
    return breast


@pytest.mark.parametrize(
    ("calcs", "expected"),
    [
        ([_calc(1, (200, 285), length_mm=1.4, lucent=True)], Morphology.SKIN),
        ([_calc(1, (200, 100), length_mm=3.0, lucent=True)], Morphology.RIM_EGGSHELL),
        ([_calc(1, (200, 100), length_mm=4.0, circularity=0.6)], Morphology.COARSE_POPCORN),
        ([_calc(1, (200, 100), length_mm=1.8, circularity=0.4)], Morphology.DYSTROPHIC),
        ([_calc(1, (200, 100), length_mm=1.8)], Morphology.ROUND),
        ([_calc(1, (200, 100), length_mm=7.0, width_mm=1.2)], Morphology.LARGE_ROD_LIKE),
        (
            [
                _calc(1, (200, 100), length_mm=8.0, width_mm=0.4),
                _calc(2, (215, 100), length_mm=7.0, width_mm=0.4),
            ],
            Morphology.VASCULAR,
        ),
    ],
    ids=["skin", "rim", "popcorn", "dystrophic", "round", "rod", "vascular"],
)
def test_macro_patterns_on_hand_made_calcifications(calcs, expected: Morphology):
    desc = describe(calcs, (0.1, 0.1), breast=_breast())
    assert [m.pattern for m in desc.macros][:1] == [expected], [m.reasons for m in desc.macros]
    for m in desc.macros:
        assert m.reasons and all(r.strip() for r in m.reasons)
    if expected is Morphology.VASCULAR:
        assert desc.macros[0].member_ids == (1, 2)


def test_lucent_calcification_far_from_skin_is_not_skin():
    c = _calc(1, (200, 100), length_mm=1.4, lucent=True)
    desc = describe([c], (0.1, 0.1), breast=_breast())
    assert desc.macros[0].pattern is Morphology.RIM_EGGSHELL


def _solitary(calcs: list[Calcification], clusters: list[Cluster]) -> list:
    desc = describe(calcs, (0.1, 0.1), breast=_breast(), operating_score=0.5)
    desc = describe_clusters(desc, clusters, calcs, (0.1, 0.1), operating_score=0.5)
    return list(desc.macros)


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        (dict(length_mm=1.1), Morphology.ROUND),
        (dict(length_mm=1.1, circularity=0.45), Morphology.DYSTROPHIC),
        (dict(length_mm=0.8), None),  # under 1 mm: a single speck, not a finding
        (dict(length_mm=1.1, score=0.3), None),  # below the operating point
    ],
    ids=["round", "dystrophic", "small", "faint"],
)
def test_solitary_coarse_deposit_is_a_macro_finding(kw: dict, expected: Morphology | None):
    """A 1-1.25 mm deposit may be a cluster member; when no cluster takes it, it is a
    round (or dystrophic) macrocalcification of its own, with its reason."""
    lone = _calc(1, (200, 100), **kw)  # type: ignore[arg-type]
    found = _solitary([lone], [])
    assert [m.pattern for m in found] == ([expected] if expected else [])
    for m in found:
        assert m.member_ids == (1,) and "in no cluster" in m.reasons[0]


def test_solitary_rule_skips_cluster_members_and_pattern_satellites():
    members = [_calc(i + 2, (300 + 15 * i, 100), length_mm=0.3) for i in range(4)]
    big = _calc(1, (300, 115), length_mm=1.1)
    assert _solitary([big, *members], [_cluster([big, *members])]) == []
    popcorn = _calc(10, (100, 100), length_mm=4.0, circularity=0.6)
    satellite = _calc(11, (100, 140), length_mm=1.1)  # 4 mm from the deposit's centre
    found = _solitary([popcorn, satellite], [])
    assert [m.pattern for m in found] == [Morphology.COARSE_POPCORN]


def test_coarse_satellites_join_their_deposit_and_never_a_cluster():
    """Coarse pieces within ``solitary_gap_mm`` of a dystrophic deposit more than
    ``popcorn_mm`` across are its fragments: one finding, none of them clusterable;
    micro specks and coarse pieces farther away stay clusterable."""
    body = _calc(1, (200, 100), length_mm=3.6, width_mm=2.2, circularity=0.4, solidity=0.6)
    sats = [
        _calc(2, (200, 130), length_mm=1.1),  # 3 mm from the centre: a smooth 1.1 mm piece
        _calc(3, (230, 100), length_mm=1.3, circularity=0.5),  # would be dystrophic alone
        _calc(4, (165, 110), length_mm=0.6),  # coarse, not a detection
    ]
    sats[2] = dataclasses.replace(sats[2], score=0.3)
    far = _calc(5, (200, 200), length_mm=0.7)  # 10 mm away
    speck = _calc(6, (200, 160), length_mm=0.3)  # micro, 4 mm from the body's box
    calcs = [body, *sats, far, speck]
    desc = describe(calcs, (0.1, 0.1), breast=_breast(), operating_score=0.5)
    assert [m.pattern for m in desc.macros] == [Morphology.DYSTROPHIC]
    assert desc.macros[0].member_ids == (1, 2, 3)
    assert "fragments of the same benign process" in desc.macros[0].reasons[-1]
    assert set(desc.clusterable_ids) == {5, 6}


def test_linear_casts_beside_a_coarse_deposit_stay_clusterable():
    """A fine-linear cast has the area of a coarse piece but is no fragment of a popcorn
    deposit: a fine-linear cluster beside a fibroadenoma stays a suspicious finding."""
    body = _calc(1, (200, 100), length_mm=4.0, circularity=0.6)
    casts = [
        _calc(i, (200 + 20 * (i - 3), 150), length_mm=2.0, width_mm=0.3, angle=0.3 * i)
        for i in (2, 3, 4)
    ]
    desc = describe([body, *casts], (0.1, 0.1), breast=_breast(), operating_score=0.5)
    assert [(m.pattern, m.member_ids) for m in desc.macros] == [(Morphology.COARSE_POPCORN, (1,))]
    assert {2, 3, 4} <= set(desc.clusterable_ids)
    # touching casts are no popcorn lobes either
    touching = [
        _calc(i, (200 + 8 * (i - 3), 150), length_mm=2.0, width_mm=0.3, angle=0.3 * i)
        for i in (2, 3, 4)
    ]
    desc = describe(touching, (0.1, 0.1), breast=_breast(), operating_score=0.5)
    assert desc.macros == () and set(desc.clusterable_ids) == {2, 3, 4}


def test_deposit_of_cluster_member_size_is_no_anchor():
    """A 2 mm irregular deposit could be a coalesced piece of a coarse heterogeneous
    cluster, and a clump of 0.9 mm pieces is cluster-sized: neither takes satellites."""
    small = _calc(1, (200, 100), length_mm=2.0, circularity=0.4, solidity=0.6)
    near = [_calc(2, (200, 135), length_mm=0.7), _calc(3, (235, 100), length_mm=0.7)]
    desc = describe([small, *near], (0.1, 0.1), breast=_breast(), operating_score=0.5)
    assert [(m.pattern, m.member_ids) for m in desc.macros] == [(Morphology.DYSTROPHIC, (1,))]
    assert {2, 3} <= set(desc.clusterable_ids)
    lobes = [_calc(i + 1, (200, 100 + 9 * i), length_mm=0.9) for i in range(4)]
    nearby = _calc(9, (230, 115), length_mm=0.7)  # 3 mm from the clump
    desc = describe([*lobes, nearby], (0.1, 0.1), breast=_breast(), operating_score=0.5)
    assert [m.pattern for m in desc.macros] == [Morphology.COARSE_POPCORN]
    assert 9 in desc.clusterable_ids


# ------------------------------------------------------------- phantom accuracy
@functools.cache
def _analysis(task: str, value: str, seed: int, flip: bool = False) -> tuple[object, Analysis]:
    common = dict(seed=seed, spacing_mm=SPACING_MM, shape=SHAPE, n_singles=0, macros=[])
    if task == "morphology":
        spec = ClusterSpec(Morphology(value), Distribution.GROUPED, n=8 + seed % 5)
        ph = make_phantom(clusters=[spec], **common)
    elif task == "distribution":
        dist = Distribution(value)
        morph = CLUSTER_MORPHOLOGIES[seed % len(CLUSTER_MORPHOLOGIES)]
        n = 20 if dist in (Distribution.REGIONAL, Distribution.SEGMENTAL) else 12
        if dist is Distribution.DIFFUSE:  # the forms the atlas describes as diffuse
            morph, n = (Morphology.PUNCTATE, Morphology.ROUND)[seed % 2], 30
        ph = make_phantom(clusters=[ClusterSpec(morph, dist, n=n)], **common)
    else:
        common["macros"] = [Morphology(value)]
        ph = make_phantom(clusters=[], **common)
    mammo = ph.mammogram
    if flip:
        mammo = Mammogram(
            np.ascontiguousarray(mammo.pixels[:, ::-1]),
            mammo.spacing_mm,
            mammo.laterality,
            mammo.view,
        )
    return ph.truth, analyze_mammogram(mammo)


def _cluster_answer(truth, analysis: Analysis, flip: bool = False):
    k = truth.clusters[0]
    centre = np.array(k.center_rc)
    if flip:
        centre[1] = SHAPE[1] - 1 - centre[1]
    best, best_d = None, np.inf
    for f in analysis.clusters:
        d = float(np.hypot(*(np.array(f.cluster.center_rc) - centre))) * SPACING_MM
        if d < best_d:
            best, best_d = f.description, d
    return best if best is not None and best_d <= k.radius_mm + 2.0 else None


def _macro_answer(truth, analysis: Analysis) -> Morphology | None:
    m = truth.macros[0]
    by_id = {t.id: t for t in truth.calcifications}
    centre = np.array(m.center_rc)
    extent = max(
        float(np.hypot(*(np.array(by_id[i].center_rc) - centre))) * SPACING_MM
        + by_id[i].length_mm / 2
        for i in m.member_ids
    )
    near = [
        (float(np.hypot(*(np.array(r.finding.center_rc) - centre))) * SPACING_MM, r.finding)
        for r in analysis.macros
    ]
    near = [(d, f) for d, f in near if d <= max(extent, 5.0)]
    if not near:
        return None
    votes: dict[Morphology, int] = {}
    for _, f in near:
        votes[f.pattern] = votes.get(f.pattern, 0) + 1
    top = max(votes.values())
    return min((d, f.pattern.value) for d, f in near if votes[f.pattern] == top)[1]


def _param(value, weak=KNOWN_WEAK):
    marks = [pytest.mark.xfail(reason=weak[value], strict=True)] if value in weak else []
    return pytest.param(value, id=value.value, marks=marks)


@pytest.mark.parametrize("morphology", [_param(m) for m in CLUSTER_MORPHOLOGIES])
def test_cluster_morphology_accuracy(morphology: Morphology):
    accept = ACCEPT.get(morphology, {morphology})
    answers = []
    for seed in SEEDS:
        truth, analysis = _analysis("morphology", morphology.value, seed)
        d = _cluster_answer(truth, analysis)
        answers.append(None if d is None else d.morphology)
        if d is not None:
            assert d.reasons and all(r.strip() for r in d.reasons)
    correct = sum(a in accept for a in answers)
    assert correct >= MIN_CORRECT, f"{morphology.value}: {correct}/{len(SEEDS)}: {answers}"


@pytest.mark.parametrize(
    "distribution",
    [
        _param(d)
        for d in (
            Distribution.GROUPED,
            Distribution.LINEAR,
            Distribution.SEGMENTAL,
            Distribution.REGIONAL,
            Distribution.DIFFUSE,
        )
    ],
)
def test_cluster_distribution_accuracy(distribution: Distribution):
    answers = []
    for seed in SEEDS:
        truth, analysis = _analysis("distribution", distribution.value, seed)
        d = _cluster_answer(truth, analysis)
        answers.append(None if d is None else d.distribution)
    correct = sum(a is distribution for a in answers)
    assert correct >= MIN_CORRECT, f"{distribution.value}: {correct}/{len(SEEDS)}: {answers}"


@pytest.mark.parametrize("pattern", [_param(p) for p in MACRO_PATTERNS])
def test_macro_pattern_accuracy(pattern: Morphology):
    answers = []
    for seed in SEEDS:
        truth, analysis = _analysis("macro", pattern.value, seed)
        answers.append(_macro_answer(truth, analysis))
        for r in analysis.macros:
            assert r.finding.reasons and all(x.strip() for x in r.finding.reasons)
    correct = sum(a == pattern.value for a in answers)
    assert correct >= MIN_CORRECT, f"{pattern.value}: {correct}/{len(SEEDS)}: {answers}"


@pytest.mark.parametrize(
    ("task", "value"),
    [
        ("morphology", Morphology.FINE_LINEAR_BRANCHING.value),
        ("morphology", Morphology.ROUND.value),
        ("distribution", Distribution.LINEAR.value),
    ],
)
def test_left_right_flip_keeps_description(task: str, value: str):
    """Mirroring the image leaves every cluster's morphology and distribution unchanged."""
    _, plain = _analysis(task, value, SEEDS[1])
    _, flipped = _analysis(task, value, SEEDS[1], flip=True)
    assert plain.clusters
    for f in plain.clusters:
        r, c = f.cluster.center_rc
        mirrored = np.array([r, SHAPE[1] - 1 - c])
        match = [
            g
            for g in flipped.clusters
            if np.hypot(*(np.array(g.cluster.center_rc) - mirrored)) * SPACING_MM < 1.0
        ]
        assert len(match) == 1
        a, b = f.description, match[0].description
        assert (a.morphology, a.distribution) == (b.morphology, b.distribution)


def test_thresholds_come_from_the_config_file(tmp_path):
    """``describe.thresholds`` and ``assess.thresholds`` in a TOML file reach the rules."""
    from calcscope.config import load_config
    from calcscope.errors import ConfigError

    ph = make_phantom(
        seed=3,
        spacing_mm=0.1,
        shape=(1200, 1000),
        clusters=[ClusterSpec(Morphology.FINE_LINEAR_BRANCHING, Distribution.LINEAR, 8)],
        macros=[Morphology.COARSE_POPCORN],
        n_singles=0,
    )
    centre = np.array(ph.truth.clusters[0].center_rc)

    def inserted(config=None):
        found = analyze_mammogram(ph.mammogram, config=config).clusters
        return min(found, key=lambda f: np.hypot(*(np.array(f.cluster.center_rc) - centre)))

    top = inserted()
    assert top.description.morphology is Morphology.FINE_LINEAR_BRANCHING
    assert top.assessment.category.value == "4C"

    path = tmp_path / "rules.toml"
    path.write_text("[describe.thresholds]\nlinear_fraction = 1.01\nlinear_min_casts = 1000\n")
    top = inserted(load_config(path))
    assert top.description.morphology not in {
        Morphology.FINE_LINEAR_BRANCHING,
        Morphology.FINE_LINEAR,
    }

    path.write_text("[assess.thresholds]\nc4b_max = 0.95\nc5_min = 0.99\n")
    top = inserted(load_config(path))
    assert top.assessment.category.value == "4B"

    path.write_text("[describe.thresholds]\npopcorn_size = 2.0\n")
    with pytest.raises(ConfigError, match="popcorn_size"):
        load_config(path)


def test_fragments_beside_a_benign_pattern_are_not_cluster_members():
    rim = _calc(1, (500, 500), length_mm=3.0, lucent=True, cnr=30.0)
    near = _calc(2, (500, 530), length_mm=0.3)  # 1.5 mm beyond the rim's box edge (1.5 mm)
    far = _calc(3, (500, 600), length_mm=0.3)  # 8.5 mm beyond it
    desc = describe([rim, near, far], (0.1, 0.1), operating_score=0.5)
    assert [f.pattern for f in desc.macros] == [Morphology.RIM_EGGSHELL]
    assert set(desc.clusterable_ids) == {3}
    # with the rule off, the near fragment may join a cluster again
    off = describe(
        [rim, near, far],
        (0.1, 0.1),
        operating_score=0.5,
        thresholds=dataclasses.replace(T, pattern_fragment_mm=0.0),
    )
    assert set(off.clusterable_ids) == {2, 3}


def test_describe_module_keeps_its_public_names():
    """The names other packages import from calcscope.reading.describe (the pipeline, tests,
    scripts) stay there after the rules moved to their own modules."""
    import calcscope.reading.describe as module
    from calcscope.reading.benign_patterns import MacroFinding
    from calcscope.reading.distribution import diffuse_spread
    from calcscope.reading.morphology import cluster_morphology as morphology_rule

    assert set(module.__all__) >= {
        "MacroFinding",
        "ClusterDescription",
        "Description",
        "describe",
        "describe_clusters",
        "cluster_morphology",
        "cluster_distribution",
        "judged_members",
        "diffuse_spread",
        "classify_kind",
    }
    assert all(hasattr(module, name) for name in module.__all__)
    assert module.MacroFinding is MacroFinding
    assert module.diffuse_spread is diffuse_spread
    assert module.cluster_morphology is morphology_rule
