"""Fixtures of the detection tests."""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import pytest


@pytest.fixture
def cv_threads() -> Iterator[None]:
    """Restore OpenCV's thread count after the test."""
    n = cv2.getNumThreads()
    yield
    cv2.setNumThreads(n)
