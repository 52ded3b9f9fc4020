"""The bands' robust noise level (1.4826 x the median absolute deviation) is the value the
plain ``np.median`` formula gives, bit for bit, whatever the count, ties and type."""

from __future__ import annotations

import numpy as np
import pytest

from calcscope.detection.bands import robust_sigma


def _plain(values: np.ndarray) -> float:
    if values.size == 0:
        return 1.0
    mad = np.median(np.abs(values - np.median(values)))
    return float(max(1.4826 * mad, 1e-6))


@pytest.mark.parametrize("n", [1, 2, 3, 4, 9, 10, 1001, 60000, 60001])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
def test_robust_sigma_is_the_plain_median_formula(n: int, dtype: type) -> None:
    rng = np.random.default_rng(n)
    for values in (rng.normal(3.0, 40.0, n), np.round(rng.normal(0.0, 2.0, n))):  # ties
        v = values.astype(dtype)
        assert robust_sigma(v) == _plain(v)


def test_robust_sigma_of_no_values_and_of_a_constant() -> None:
    assert robust_sigma(np.empty(0, np.float32)) == 1.0
    assert robust_sigma(np.full(10, 2.5, np.float32)) == 1e-6
    with np.errstate(invalid="ignore"):
        v = np.array([1.0, np.nan, 3.0, 2.0], np.float32)
        assert np.isnan(robust_sigma(v)) == np.isnan(_plain(v))
