"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data folder ``../shared/data`` beside the repository; skip when absent."""
    root = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    if not root.is_dir():
        pytest.skip(
            f"shared data folder not found at {root}: the real data sets live beside the "
            "checkout, in ../shared/data (see the README, 'Data')"
        )
    return root
