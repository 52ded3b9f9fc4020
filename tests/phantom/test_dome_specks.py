"""The independent renderer of inserted clusters (ellipsoidal domes)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from calcscope.model import Mammogram
from calcscope.phantom import insert_dome_clusters


def _flat(shape=(1400, 1200), value=0.4) -> Mammogram:
    return Mammogram(pixels=np.full(shape, value, np.float32), spacing_mm=(0.05, 0.05))


def test_domes_follow_the_recipe_and_their_truth_matches_the_pixels():
    base = _flat()
    region = np.ones(base.pixels.shape, bool)
    ph = insert_dome_clusters(base, region, seed=3, contrast=(0.05, 0.1))
    added = ph.mammogram.pixels - base.pixels
    assert len(ph.truth.clusters) == 2
    for tc in ph.truth.clusters:
        assert 5 <= len(tc.member_ids) <= 12
        assert tc.radius_mm <= 6.0 + 0.3  # disc radius plus half the largest piece
        members = [ph.truth.calcifications[i - 1] for i in tc.member_ids]
        level = np.mean([m.contrast for m in members])
        assert 0.05 * 0.6 <= level <= 0.1 * 1.4
        for m in members:
            assert 0.15 <= m.length_mm <= 0.6
            assert m.diameter_mm <= m.length_mm
            r, c = (int(round(x)) for x in m.center_rc)
            near = added[r - 3 : r + 4, c - 3 : c + 4]
            # the peak is the member's contrast (a close neighbour may add a little)
            assert m.contrast - 1e-5 <= float(near.max()) <= m.contrast * 1.25
    a, b = ph.truth.clusters
    gap_mm = math.hypot(a.center_rc[0] - b.center_rc[0], a.center_rc[1] - b.center_rc[1]) * 0.05
    assert gap_mm > a.radius_mm + b.radius_mm
    # nothing added outside the clusters' discs
    rows, cols = np.nonzero(added > 1e-6)
    for r, c in zip(rows[::50], cols[::50], strict=True):
        assert any(
            math.hypot(r - t.center_rc[0], c - t.center_rc[1]) * 0.05 <= t.radius_mm + 0.8
            for t in ph.truth.clusters
        )


def test_domes_are_reproducible_and_leave_the_input_alone():
    base = _flat()
    before = base.pixels.copy()
    region = np.zeros(base.pixels.shape, bool)
    region[200:1200, 200:1000] = True
    one = insert_dome_clusters(base, region, seed=11)
    two = insert_dome_clusters(base, region, seed=11)
    other = insert_dome_clusters(base, region, seed=12)
    assert np.array_equal(one.mammogram.pixels, two.mammogram.pixels)
    assert not np.array_equal(one.mammogram.pixels, other.mammogram.pixels)
    assert np.array_equal(base.pixels, before)
    for m in one.truth.calcifications:
        assert region[int(round(m.center_rc[0])), int(round(m.center_rc[1]))]


def test_no_room_for_a_cluster_is_a_clear_error():
    base = _flat((200, 200))
    with pytest.raises(ValueError, match="no room"):
        insert_dome_clusters(base, np.ones((200, 200), bool), seed=0)
    with pytest.raises(ValueError, match="shape"):
        insert_dome_clusters(base, np.ones((10, 10), bool), seed=0)
