"""Helpers shared by several test modules (imported as ``helpers``: pytest puts this
folder on ``sys.path``)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pydicom
import pytest

from calcscope.imaging.io import write_image
from calcscope.model import Morphology
from calcscope.phantom.mammogram import ClusterSpec, make_phantom

# headless Chromium in a container: no sandbox, no GPU, nothing fetched in the background
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


def chromium_path() -> str:
    """Debian's chromium (or ``$CALCSCOPE_CHROMIUM``); skips the test when there is none."""
    for name in (os.environ.get("CALCSCOPE_CHROMIUM", ""), "chromium", "chromium-browser"):
        path = shutil.which(name) if name else None
        if path:
            return path
    pytest.skip("no chromium on this machine (Debian: apt-get install chromium)")


def phantom_case_dicom(path: Path, **attributes: str) -> Path:
    """The small report-test phantom (a fine pleomorphic cluster of 8 and a popcorn
    deposit, 0.1 mm) written as DICOM to ``path`` with the given patient attributes."""
    ph = make_phantom(
        seed=5,
        spacing_mm=0.1,
        shape=(1400, 1100),
        clusters=[ClusterSpec(Morphology.FINE_PLEOMORPHIC, n=8)],
        macros=[Morphology.COARSE_POPCORN],
    )
    path = write_image(ph.mammogram, path)
    ds = pydicom.dcmread(path)
    for k, v in attributes.items():
        setattr(ds, k, v)
    ds.save_as(path)
    return path
