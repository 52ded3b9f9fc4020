"""The public API is pinned: additions are deliberate, removals are breaking changes."""

from __future__ import annotations

import numpy as np
import pytest

import calcscope
from calcscope.errors import MissingSpacingError


def test_exported_members():
    assert sorted(calcscope.__all__) == sorted(
        [
            "__version__",
            "DISCLAIMER",
            "Analysis",
            "analyze",
            "Config",
            "load_config",
            "CalcscopeError",
            "InputError",
        ]
    )
    assert "not a medical device" in calcscope.DISCLAIMER


def test_analyze_accepts_an_array_with_spacing():
    from calcscope.phantom.mammogram import make_phantom

    ph = make_phantom(seed=21, spacing_mm=0.2, shape=(700, 560))
    a = calcscope.analyze(ph.mammogram.pixels, spacing_mm=0.2)
    assert a.mammogram.spacing_mm == (0.2, 0.2)
    assert a.breast_area_mm2 > 0
    assert a.assessment.rules, "the image-level assessment carries its reason"


def test_analyze_array_without_spacing_is_refused():
    with pytest.raises(MissingSpacingError):
        calcscope.analyze(np.zeros((100, 100), dtype=np.float32))
