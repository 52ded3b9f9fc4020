"""Helpers shared by several test modules (imported as ``helpers``: pytest puts this
folder on ``sys.path``)."""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np
import pydicom
import pytest

from calcscope.detection.parallel import THREADS_ENV, threads
from calcscope.imaging.io import write_image
from calcscope.model import Calcification, Morphology
from calcscope.phantom.mammogram import ClusterSpec, make_phantom
from calcscope.reports.exam import ExamReport

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


@dataclass
class BrowserPage:
    """A page of the headless Chromium that the ``open_browser`` fixture of
    ``tests/apps/conftest.py`` opened (Playwright's ``Page``), and what it has seen so far:
    the URL of every request, and the page's errors (uncaught exceptions, and the console's
    error messages when asked for)."""

    page: Any
    requests: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


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


def assert_changes_as_truth(doc: ExamReport, folder: Path) -> None:
    """``doc``, the current exam of the synthetic follow-up written to ``folder``
    (``write_follow_up_phantom``), is compared with its prior, two years earlier, and labels
    each truth cluster (growing, stable, new) once, on both views, with the truth's change."""
    truth = json.loads((folder / "truth.json").read_text())
    assert doc.comparison is not None
    assert doc.comparison.prior_study_instance_uid == truth["prior"]["study_instance_uid"]
    assert doc.comparison.prior_study_date == "20220520"
    assert doc.comparison.interval_months == truth["interval_months"] == 24
    for cl in truth["clusters"]:
        where = cl["current"]
        found = [
            f
            for f in doc.breasts[cl["laterality"]].findings
            if f.kind == "cluster"
            and set(f.views) == {"CC", "MLO"}
            and abs(f.distance_from_nipple_mm - where["distance_from_nipple_mm"]) < 10
            and f.quadrant == where["quadrant"]
        ]
        assert len(found) == 1, cl["name"]
        assert found[0].change is not None and found[0].change.change == cl["change"], cl["name"]


def disc_contour(center_rc: tuple[float, float], radius_px: float, n_points: int) -> np.ndarray:
    """``n_points`` points of a circle of ``radius_px`` around ``center_rc``, rounded to
    int32 ``(row, col)`` pixels (in angle order; duplicates kept)."""
    th = np.linspace(0, 2 * np.pi, n_points, endpoint=False)
    r0, c0 = center_rc
    ring = np.column_stack([r0 + radius_px * np.sin(th), c0 + radius_px * np.cos(th)])
    return np.round(ring).astype(np.int32)


def make_calcification(
    i: int,
    center_rc: tuple[float, float],
    diameter_mm: float,
    *,
    score: float = 0.9,
    radius_px: float | None = None,
    contour_rc: np.ndarray | None = None,
    **fields: Any,
) -> Calcification:
    """A round test calcification of ``diameter_mm`` at ``center_rc``.

    Without ``radius_px`` a one-pixel speck (contour: its centre pixel; box: 5 x 5 pixels);
    with it a disc of that radius (contour: ``contour_rc``, else :func:`disc_contour` of 32
    points; box: the disc's). Measures are a disc's (area, equal diameters, circularity 1,
    solidity 1), contrast 0.1, CNR 10; ``fields`` overrides any of them.
    """
    r, c = center_rc
    if radius_px is None:
        contour = np.array([[int(r), int(c)]])
        bbox = (int(r) - 2, int(c) - 2, int(r) + 3, int(c) + 3)
    else:
        contour = disc_contour(center_rc, radius_px, 32) if contour_rc is None else contour_rc
        bbox = (
            int(r - radius_px),
            int(c - radius_px),
            int(r + 1 + radius_px),
            int(c + 1 + radius_px),
        )
    values: dict[str, Any] = {
        "area_mm2": float(np.pi * diameter_mm**2 / 4),
        "max_diameter_mm": diameter_mm,
        "min_diameter_mm": diameter_mm,
        "contrast": 0.1,
        "cnr": 10.0,
        "circularity": 1.0,
        "elongation": 0.0,
        "solidity": 1.0,
        "lucent_center": False,
    }
    values.update(fields)
    return Calcification(
        id=i,
        center_rc=(float(r), float(c)),
        contour_rc=contour,
        bbox_rc=bbox,
        diameter_mm=diameter_mm,
        score=score,
        **values,
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def storage_receiver(on_store: Callable[[Any], int], ae_title: str = "PACS") -> Iterator[int]:
    """A fake PACS: a pynetdicom storage SCP on 127.0.0.1 that accepts every storage SOP
    class and hands each C-STORE event to ``on_store`` (which returns the status); yields
    its port and shuts it down afterwards."""
    from pynetdicom import AE, AllStoragePresentationContexts, evt

    pacs = AE(ae_title=ae_title)
    pacs.supported_contexts = AllStoragePresentationContexts
    port = free_port()
    server = pacs.start_server(
        ("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)]
    )
    try:
        yield port
    finally:
        server.shutdown()


def dicom_with_unknown_vr(path: Path, keyword: str, **attributes: str) -> Path:
    """A small explicit-VR little-endian DICOM file at ``path`` with ``attributes``, whose
    attribute ``keyword`` (one of them) has its VR flipped to the unknown ``'DY'``: pydicom
    reads the file, and raises only when that value is read (the node fuzz's case)."""
    from pydicom.datadict import dictionary_VR, tag_for_keyword
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    ds = Dataset()
    for k, v in attributes.items():
        setattr(ds, k, v)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.2"
    ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    ds.save_as(path, enforce_file_format=True)
    tag = tag_for_keyword(keyword)
    assert tag is not None, keyword
    group, element = divmod(tag, 0x10000)
    head = group.to_bytes(2, "little") + element.to_bytes(2, "little")
    data = bytearray(path.read_bytes())
    at = data.index(head + dictionary_VR(tag).encode())
    data[at + 4 : at + 6] = b"DY"
    path.write_bytes(bytes(data))
    return path


T = TypeVar("T")


def serial_and_threaded(fn: Callable[[], T], monkeypatch: pytest.MonkeyPatch) -> tuple[T, T]:
    """``fn()`` with the detector's strips serial, then threaded (2 threads; OpenCV set to 2
    threads too: use with the detection tests' ``cv_threads`` fixture, which restores it)."""
    cv2.setNumThreads(2)
    monkeypatch.setenv(THREADS_ENV, "1")
    serial = fn()
    monkeypatch.delenv(THREADS_ENV)
    assert threads() == 2
    return serial, fn()
