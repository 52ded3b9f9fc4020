"""Pairing the CC and MLO findings of a breast, and their quadrant and clock face (moved
here from tests/reading/test_location.py with the code)."""

from __future__ import annotations

import pytest

from calcscope.exam.pairing import ViewFinding, clock_face, pair_views
from calcscope.model import Laterality


@pytest.mark.parametrize(
    ("laterality", "outer", "upper", "expected"),
    [
        (Laterality.RIGHT, 10.0, 17.3, ("upper outer", 11)),
        (Laterality.LEFT, 10.0, 17.3, ("upper outer", 1)),
        (Laterality.RIGHT, -10.0, -17.3, ("lower inner", 5)),
        (Laterality.LEFT, -10.0, -17.3, ("lower inner", 7)),
        (Laterality.RIGHT, 20.0, 2.0, ("outer", 9)),
        (Laterality.LEFT, 20.0, -2.0, ("outer", 3)),
        (Laterality.LEFT, 3.0, 30.0, ("upper", 12)),
        (Laterality.RIGHT, 2.0, -3.0, ("central", None)),
    ],
)
def test_clock_face_from_the_two_views(laterality, outer, upper, expected):
    assert clock_face(laterality, outer, upper) == expected


def _vf(image: str, fid: int, distance: float, offset: float = 10.0, morph: str = "round"):
    return ViewFinding(image, fid, distance, offset, morph, "3", 0.02)


def test_pair_views_by_distance_from_the_nipple():
    cc = [_vf("cc", 1, 30.0), _vf("cc", 2, 60.0), _vf("cc", 3, 90.0)]
    mlo = [_vf("mlo", 1, 58.0), _vf("mlo", 2, 33.0), _vf("mlo", 3, 120.0)]
    pairs = [(a.finding_id, b.finding_id) for a, b in pair_views(cc, mlo)]
    # 90 mm and 120 mm differ by more than 15 mm: no pair
    assert pairs == [(1, 2), (2, 1)]
    # one finding joins one pair at most; at equal distance the same morphology wins
    cc = [_vf("cc", 1, 40.0, morph="fine_linear")]
    mlo = [_vf("mlo", 1, 42.0, morph="round"), _vf("mlo", 2, 38.0, morph="fine_linear")]
    assert [(a.finding_id, b.finding_id) for a, b in pair_views(cc, mlo)] == [(1, 2)]
