"""The cluster-level test of faint specks (issue 18): a group of faint specks denser than the
image's own rate of them counts as sure cluster members; the same specks scattered do not;
off by default, and inactive at coarse pixels."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from calcscope.config import ClusterConfig, DetectConfig
from calcscope.detection.clusters import cluster_calcifications
from calcscope.detection.detect import detect
from calcscope.detection.faint_clusters import dense_faint
from calcscope.imaging.preprocess import Preprocessed
from calcscope.model import Mammogram

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_scale_cnr import _grain, _specks  # noqa: E402

ON = DetectConfig(faint_cluster_sure=True)


def _scatter(n: int, side_mm: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, side_mm, size=(n, 2))


def test_a_dense_group_of_faint_specks_stands_out_of_their_scatter():
    side_mm = 100.0
    grain = _scatter(200, side_mm, 1)  # 0.02 per mm2, as on the CBIS-DDSM films
    rng = np.random.default_rng(2)
    group = 50.0 + rng.uniform(-2.5, 2.5, size=(7, 2))
    pts = np.vstack([grain, group])
    faint = np.ones(len(pts), dtype=bool)
    sure = np.zeros(len(pts), dtype=bool)
    out = dense_faint(pts, faint, sure, side_mm**2, ON)
    assert out[len(grain) :].all()
    assert out[: len(grain)].sum() <= 3  # at most a stray grain speck inside the group's disc
    # the scatter alone: nothing
    assert not dense_faint(grain, faint[: len(grain)], sure[: len(grain)], side_mm**2, ON).any()


def test_only_faint_specks_are_marked_and_the_rate_is_the_images_own():
    side_mm = 100.0
    rng = np.random.default_rng(3)
    group = 50.0 + rng.uniform(-2.5, 2.5, size=(7, 2))
    faint = np.array([True, True, True, True, False, False, False])
    sure = ~faint
    out = dense_faint(group, faint, sure, side_mm**2, ON)
    assert (out == faint).all()
    # the same specks on a small image are all it holds: at that rate the disc is ordinary
    strict = ON.model_copy(update={"faint_alpha": 0.1})
    assert (dense_faint(group, faint, sure, side_mm**2, strict) == faint).all()
    assert not dense_faint(group, faint, sure, 30.0, strict).any()


def _faint_cluster(px_mm: float, amp: float, seed: int) -> tuple[Mammogram, Preprocessed]:
    """40 mm of grain with twelve faint 0.3 mm specks within 3 mm of its centre."""
    n = int(round(40 / px_mm))
    centre = n / 2
    rng = np.random.default_rng(3)
    angle, radius_mm = rng.uniform(0, 2 * np.pi, 12), rng.uniform(0.8, 3.0, 12)
    pts = [
        (centre + r / px_mm * np.sin(a), centre + r / px_mm * np.cos(a))
        for a, r in zip(angle, radius_mm, strict=True)
    ]
    img = _grain((n, n), seed) + amp * _specks((n, n), pts, px_mm)
    mask = np.zeros((n, n), dtype=bool)
    b = int(2 / px_mm)
    mask[b:-b, b:-b] = True
    prep = Preprocessed(mask, mask.copy(), np.zeros_like(mask), "left")
    return Mammogram(img.astype(np.float32), (px_mm, px_mm)), prep


def test_faint_cluster_in_grain_found_only_with_the_test():
    # without the tight-group rule, which alone finds this cluster on one seed
    loose = ClusterConfig(sure_tight_members=0)
    for seed in (0, 1):
        mammo, prep = _faint_cluster(0.05, 0.010, seed)
        off = detect(mammo, prep, DetectConfig())
        on = detect(mammo, prep, ON)
        assert len(cluster_calcifications(off.calcifications, mammo.spacing_mm, loose)) == 0
        assert len(cluster_calcifications(on.calcifications, mammo.spacing_mm, loose)) == 1
        assert sum(c.scale_sure for c in on.calcifications) > sum(
            c.scale_sure for c in off.calcifications
        )
        # scores stay the classifier's
        scored = {c.center_rc: c.score for c in on.calcifications}
        assert all(scored[c.center_rc] == c.score for c in off.calcifications)


def test_off_by_default_and_inactive_at_coarse_pixels():
    assert DetectConfig().faint_cluster_sure is False
    mammo, prep = _faint_cluster(0.1, 0.010, 0)
    on = detect(mammo, prep, ON)
    off = detect(mammo, prep, DetectConfig())
    assert [(c.center_rc, c.score, c.scale_sure) for c in on.calcifications] == [
        (c.center_rc, c.score, c.scale_sure) for c in off.calcifications
    ]
