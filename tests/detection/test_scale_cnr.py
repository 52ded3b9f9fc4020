"""The scale-matched CNR rule (issue 18): at 0.05 mm faint 0.3 mm specks in grain count as
sure cluster members by their contrast in a band matched to them, their scores unchanged;
at 0.1 mm nothing changes; a promoted speck alone is never reported."""

from __future__ import annotations

import cv2
import numpy as np

from calcscope.config import ClusterConfig, DetectConfig
from calcscope.detection.clusters import cluster_calcifications
from calcscope.detection.detect import Detection, detect
from calcscope.imaging.preprocess import Preprocessed
from calcscope.model import Mammogram
from calcscope.pipeline import analyze_mammogram


def _grain(shape: tuple[int, int], seed: int) -> np.ndarray:
    """Film-grain-like white noise of standard deviation 0.01 around 0.4."""
    g = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return 0.4 + 0.01 * g / g.std()


def _specks(shape: tuple[int, int], centres_rc: list[tuple[float, float]], px_mm: float):
    """Unit-peak 0.3 mm discs drawn through a 0.06 mm blur (the imaging chain)."""
    s = np.zeros(shape, dtype=np.float32)
    for r, c in centres_rc:
        cv2.circle(s, (int(round(c)), int(round(r))), max(1, int(round(0.15 / px_mm))), 1.0, -1)
    s = cv2.GaussianBlur(s, (0, 0), 0.06 / px_mm)
    return s / s.max()


def _faint_cluster(px_mm: float) -> tuple[Mammogram, Preprocessed, list[tuple[float, float]]]:
    """30 mm of grain with eight faint 0.3 mm specks on a 3 mm circle."""
    n = int(round(30 / px_mm))
    centre = n / 2
    pts = [
        (centre + 3.0 / px_mm * np.sin(a), centre + 3.0 / px_mm * np.cos(a))
        for a in np.linspace(0, 2 * np.pi, 8, endpoint=False)
    ]
    img = _grain((n, n), 0) + 0.02 * _specks((n, n), pts, px_mm)
    mask = np.zeros((n, n), dtype=bool)
    b = int(2 / px_mm)
    mask[b:-b, b:-b] = True
    prep = Preprocessed(mask, mask.copy(), np.zeros_like(mask), "left")
    return Mammogram(img.astype(np.float32), (px_mm, px_mm)), prep, pts


def _clusters(mammo: Mammogram, det: Detection) -> int:
    return len(cluster_calcifications(det.calcifications, mammo.spacing_mm, ClusterConfig()))


def _near(det: Detection, pts: list[tuple[float, float]]) -> list:
    out = []
    for r, c in pts:
        d = [np.hypot(x.center_rc[0] - r, x.center_rc[1] - c) for x in det.calcifications]
        out.append(det.calcifications[int(np.argmin(d))] if d and min(d) < 4 else None)
    return out


def test_faint_specks_in_grain_make_a_cluster_at_fine_pixels_only_with_the_rule():
    mammo, prep, pts = _faint_cluster(0.05)
    on = detect(mammo, prep, DetectConfig())
    off = detect(mammo, prep, DetectConfig(scale_cnr_sure=False))
    members = _near(on, pts)
    assert all(m is not None and m.scale_sure for m in members)
    # their scores stay the classifier's: faint, too few sure on their own for a cluster
    assert sum(m.score >= 0.5 for m in members) < ClusterConfig().sure_members
    assert min(m.score for m in members) < DetectConfig().min_score  # let through
    scored = {c.center_rc: c.score for c in off.calcifications}
    assert all(scored.get(m.center_rc, m.score) == m.score for m in members)
    assert _clusters(mammo, on) == 1
    assert _clusters(mammo, off) == 0
    assert all(c.scale_cnr is None and not c.scale_sure for c in off.calcifications)


def test_the_same_specks_at_coarser_pixels_are_untouched():
    mammo, prep, _ = _faint_cluster(0.1)
    on = detect(mammo, prep, DetectConfig())
    off = detect(mammo, prep, DetectConfig(scale_cnr_sure=False))
    assert len(on.calcifications) > 0
    assert [(c.center_rc, c.score) for c in on.calcifications] == [
        (c.center_rc, c.score) for c in off.calcifications
    ]
    assert all(c.scale_cnr is None and not c.scale_sure for c in on.calcifications)


def test_a_promoted_speck_alone_is_not_reported():
    px_mm, n = 0.05, 800
    img = _grain((n, n), 0)
    rows, cols = np.mgrid[:n, :n]
    body = (rows - n / 2) ** 2 + cols**2 < (0.95 * n) ** 2
    specks = _specks((n, n), [(300, 300), (500, 420), (250, 550)], px_mm)
    img = np.where(body, img + 0.02 * specks, 0.02).astype(np.float32)
    a = analyze_mammogram(Mammogram(img, (px_mm, px_mm)))
    min_score = DetectConfig().min_score
    promoted = [c for c in a.detection.calcifications if c.scale_sure and c.score < min_score]
    assert promoted  # kept by detection as possible members...
    ids = {c.id for c in promoted}
    assert not a.clusters
    # ...but listed nowhere without a cluster
    assert not ids & {c.id for c in a.calcifications}
    assert not ids & {c.id for c in a.reported_calcifications}
