"""Clustering: CAD convention, order invariance, extent in mm."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from calcscope.config import ClusterConfig
from calcscope.detection.clusters import cluster_calcifications, cluster_score
from calcscope.model import Calcification
from helpers import make_calcification


def calc(i: int, r: float, c: float, score: float = 0.9, d: float = 0.3) -> Calcification:
    return make_calcification(i, (r, c), d, score=score)


SPACING = (0.1, 0.1)  # 10 px per mm


def test_three_within_a_centimetre_make_a_cluster():
    calcs = [calc(1, 100, 100), calc(2, 130, 100), calc(3, 100, 140)]
    (cl,) = cluster_calcifications(calcs, SPACING)
    assert cl.member_ids == (1, 2, 3)
    assert cl.id == 1
    # span 5 mm between (130,100) and (100,140) plus the 0.3 mm mean size
    assert abs(cl.extent_mm - (5.0 + 0.3)) < 1e-6
    assert 0 < cl.score <= 1


def test_two_are_not_a_cluster_and_far_ones_stay_apart():
    assert cluster_calcifications([calc(1, 0, 0), calc(2, 10, 10)], SPACING) == ()
    calcs = [
        calc(1, 0, 0),
        calc(2, 30, 0),
        calc(3, 0, 30),
        calc(4, 1000, 1000),
        calc(5, 1030, 1000),
    ]
    (cl,) = cluster_calcifications(calcs, SPACING)
    assert cl.member_ids == (1, 2, 3)


def test_min_members_is_configurable():
    calcs = [calc(i, 100 + 20 * i, 100) for i in range(1, 5)]
    assert len(cluster_calcifications(calcs, SPACING, ClusterConfig(min_members=4))) == 1
    assert cluster_calcifications(calcs, SPACING, ClusterConfig(min_members=5)) == ()


def test_two_groups_are_two_clusters_ordered_by_score():
    a = [calc(i, 100 + 15 * i, 100, score=0.6) for i in range(1, 5)]
    b = [calc(i, 2000 + 15 * i, 2000, score=0.95) for i in range(5, 9)]
    cls = cluster_calcifications(a + b, SPACING)
    assert [c.member_ids for c in cls] == [(5, 6, 7, 8), (1, 2, 3, 4)]
    assert cls[0].score > cls[1].score


def test_cluster_score_rises_with_member_scores():
    assert cluster_score(np.array([0.9, 0.9, 0.9])) > cluster_score(np.array([0.5, 0.5, 0.5]))
    assert cluster_score(np.array([0.9] * 10)) > cluster_score(np.array([0.9] * 3))


def test_compact_cluster_scores_higher_than_a_spread_one():
    """Same member scores: the group packed into 2 mm outranks the one spread over 9 mm
    (chance grain rarely packs that tight); with ``compact_mm`` 0 they tie."""
    scores = [0.6, 0.4, 0.3]
    tight = [calc(i + 1, 100 + 5 * i, 100, s) for i, s in enumerate(scores)]  # 1 mm apart
    wide = [calc(i + 11, 500 + 22 * i, 500, s) for i, s in enumerate(scores)]  # 4.4 mm apart
    cls = cluster_calcifications(tight + wide, (0.2, 0.2), ClusterConfig(core_min_score=0.3))
    by_first = {c.member_ids[0]: c for c in cls}
    assert by_first[1].extent_mm < 3 < 8 < by_first[11].extent_mm
    assert by_first[1].score > by_first[11].score
    assert by_first[11].score == cluster_score(np.array(scores))  # beyond compact_mm: the sum
    off = cluster_calcifications(
        tight + wide, (0.2, 0.2), ClusterConfig(core_min_score=0.3, compact_mm=0.0)
    )
    assert off[0].score == off[1].score
    assert cluster_score(np.array(scores), 0.0, 8.0) == cluster_score(np.array(scores) * 2)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 400), st.floats(0, 400)), min_size=3, max_size=25, unique=True),
    st.randoms(use_true_random=False),
)
def test_clusters_do_not_depend_on_input_order(points, rnd):
    calcs = [calc(i + 1, r, c) for i, (r, c) in enumerate(points)]
    shuffled = calcs[:]
    rnd.shuffle(shuffled)
    a = {cl.member_ids for cl in cluster_calcifications(calcs, SPACING)}
    b = {cl.member_ids for cl in cluster_calcifications(shuffled, SPACING)}
    assert a == b


def test_centre_ignores_faint_possible_members():
    sure = [calc(1, 100, 100), calc(2, 110, 100), calc(3, 100, 110)]
    faint = [calc(4, 160, 150, score=0.05), calc(5, 150, 165, score=0.05)]
    (cl,) = cluster_calcifications(sure + faint, SPACING, ClusterConfig(operating_score=0.0))
    assert cl.member_ids == (1, 2, 3, 4, 5)  # the faint ones belong to it...
    # ...but do not move its centre (the densest point of three sure members lies
    # within a fraction of a pixel of their mean)
    assert np.allclose(cl.center_rc, (310 / 3, 310 / 3), atol=0.2)


def test_centre_is_the_densest_part_not_pulled_by_an_outlying_member():
    # four sure calcifications within 1 mm, one sure calcification 9 mm away
    group = [
        calc(i + 1, 100 + dr, 100 + dc)
        for i, (dr, dc) in enumerate([(0, 0), (0, 8), (8, 0), (8, 8)])
    ]
    far = calc(5, 190, 100)
    (cl,) = cluster_calcifications(group + [far], SPACING, ClusterConfig(operating_score=0.0))
    assert cl.member_ids == (1, 2, 3, 4, 5)
    assert np.hypot(cl.center_rc[0] - 104, cl.center_rc[1] - 104) < 3  # on the group
    mean_cfg = ClusterConfig(operating_score=0.0, centre_bandwidth_mm=0.0)
    (mean_cl,) = cluster_calcifications(group + [far], SPACING, mean_cfg)
    assert mean_cl.center_rc[0] > 115  # the plain weighted mean is pulled towards it
