"""Detector accuracy on phantoms with known truth (issue 2's acceptance figures).

>= 95 % of inserted calcifications of diameter >= 0.2 mm found, fewer than 1 false
detection per 10 cm2 of breast, every inserted cluster found with its member count
within +-20 %. Pooled over seeds per spacing so one unlucky speck does not decide.
"""

from __future__ import annotations

import pytest

from calcscope.evaluate import score_phantom
from calcscope.model import View
from calcscope.phantom import make_phantom
from calcscope.pipeline import analyze_mammogram

CASES = [
    # spacing, shape (None = full field), seeds
    (0.05, (3000, 2400), (1, 2)),
    (0.07, None, (3, 4, 5)),
    (0.1, None, (6, 7)),
]


@pytest.mark.parametrize(("spacing", "shape", "seeds"), CASES)
def test_phantom_detection_accuracy(spacing, shape, seeds):
    n_true = n_found = n_false = 0
    area = 0.0
    for seed in seeds:
        view = View.MLO if seed % 2 else View.CC
        ph = make_phantom(seed=seed, spacing_mm=spacing, shape=shape, view=view)
        a = analyze_mammogram(ph.mammogram)
        s = score_phantom(ph, a)
        n_true += s.n_true
        n_found += s.n_found
        n_false += s.n_false
        area += s.breast_area_cm2
        for found, n, got in zip(
            s.cluster_found, s.cluster_true_n, s.cluster_detected_n, strict=True
        ):
            assert found, f"seed {seed}: an inserted cluster of {n} was not found"
            assert abs(got - n) <= 0.2 * n + 1e-9, (
                f"seed {seed}: cluster of {n} found with {got} members (more than 20 % off)"
            )
    sensitivity = n_found / n_true
    assert sensitivity >= 0.95, f"sensitivity {sensitivity:.3f} ({n_found}/{n_true})"
    assert 10 * n_false / area < 1.0, f"{n_false} false detections in {area:.0f} cm2"
