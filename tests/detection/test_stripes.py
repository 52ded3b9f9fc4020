"""Scanner stripes (a column or row brighter over the whole scan) and the candidates on them."""

from __future__ import annotations

import numpy as np

from calcscope.config import DetectConfig
from calcscope.detection.stripes import Stripes, find_stripes, on_stripes
from calcscope.imaging.preprocess import Preprocessed
from calcscope.model import Mammogram


def _grain(shape=(1600, 1200), seed=0, sigma=0.01) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.45 + rng.normal(0.0, sigma, shape)).astype(np.float32)


def test_a_faint_stripe_is_found_and_grain_alone_has_none():
    img = _grain()
    mask = np.ones(img.shape, bool)
    assert find_stripes(img, mask, DetectConfig()).count == 0
    # a column 3 grain sigmas bright (as on P_00173's left views), a row 2.5 sigmas
    img[:, 300] += 0.03
    img[900, :] += 0.025
    found = find_stripes(img, mask, DetectConfig())
    assert np.flatnonzero(found.cols).tolist() == [300]
    assert np.flatnonzero(found.rows).tolist() == [900]
    # a stripe of one grain sigma is not called one
    faint = _grain(seed=1)
    faint[:, 300] += 0.01
    assert find_stripes(faint, mask, DetectConfig()).count == 0


def test_bright_specks_and_tissue_edges_make_no_stripe():
    img = _grain(seed=2)
    rng = np.random.default_rng(3)
    # a column of bright specks (calcifications along a duct) and a tissue step
    for r in rng.choice(1600, 40, replace=False):
        img[r - 2 : r + 3, 598:603] += 0.2
    img[:, 800:] += 0.1
    assert find_stripes(img, np.ones(img.shape, bool), DetectConfig()).count == 0


def test_only_the_breast_is_read():
    img = _grain(seed=4)
    img[:, 300] += 0.03
    mask = np.zeros(img.shape, bool)
    mask[:, 400:] = True  # the stripe lies outside the breast
    assert find_stripes(img, mask, DetectConfig()).count == 0
    assert find_stripes(img, np.zeros(img.shape, bool), DetectConfig()).count == 0


def test_candidates_on_a_stripe():
    cols = np.zeros(100, bool)
    cols[40] = True
    stripes = Stripes(cols=cols, rows=np.zeros(80, bool))
    centres = np.array([[10.0, 40.0], [10.0, 42.0], [10.0, 43.0], [70.0, 38.5]])
    assert on_stripes(centres, stripes).tolist() == [True, True, False, True]
    assert on_stripes(np.zeros((0, 2)), stripes).tolist() == []


def test_detect_drops_the_specks_on_a_stripe_at_fine_pixels_only():
    import sys
    from pathlib import Path

    from calcscope.detection.detect import detect

    sys.path.insert(0, str(Path(__file__).parent))
    from test_scale_cnr import _grain, _specks

    def scan(px_mm: float):
        # 60 x 30 mm: a stripe is judged over at least 40 mm of breast
        n, w = int(round(60 / px_mm)), int(round(30 / px_mm))
        col = w // 3
        on = [(n * f, float(col)) for f in (0.3, 0.5, 0.7)]
        off = [(n * f, float(2 * col)) for f in (0.3, 0.5, 0.7)]
        img = _grain((n, w), 5) + 0.15 * _specks((n, w), on + off, px_mm)
        img[:, col] += 0.03  # a scanner stripe three grain sigmas bright
        mask = np.zeros((n, w), dtype=bool)
        b = int(2 / px_mm)
        mask[b:-b, b:-b] = True
        prep = Preprocessed(mask, mask.copy(), np.zeros_like(mask), "left")
        det = detect(Mammogram(img.astype(np.float32), (px_mm, px_mm)), prep, DetectConfig())
        cols = [c.center_rc[1] for c in det.calcifications if c.score >= 0.5]
        return sum(abs(c - col) < 3 for c in cols), sum(abs(c - 2 * col) < 3 for c in cols)

    on_stripe, off_stripe = scan(0.05)
    assert on_stripe == 0 and off_stripe == 3
    # at 0.1 mm (no stripe rule) the specks on the stripe are found like the others
    on_stripe, off_stripe = scan(0.1)
    assert on_stripe == 3 and off_stripe == 3
