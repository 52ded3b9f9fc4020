"""Candidate tables for ``calcscope train``: per image, the detector's candidates with
their features and labels, and the candidates on synthetic clusters inserted into its
normal tissue; one compressed file per image in the cache folder, written atomically, so
that an interrupted run resumes where it stopped and memory stays bounded.

Feature computation is the detector's (:func:`calcscope.detection.detect.detect` with the
``cnr`` scorer, every candidate kept): a black box here.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from calcscope.config import Config, DetectConfig
from calcscope.errors import CalcscopeError

__all__ = [
    "CANDIDATES",
    "ImageJob",
    "ImageTable",
    "TableSummary",
    "build_table",
    "code_key",
    "insert_seed",
    "load_table",
    "phantom_table",
    "mapped",
    "process_pool",
]

T = TypeVar("T")

CANDIDATES = DetectConfig(model="cnr", operating_score=1.0, min_score=1.0)
"""Detector settings that list every candidate with its features (the classifier is what is
trained); ``min_score`` 1 skips the outlines of kept calcifications, which the table does not
need and which took about 90 % of the detector's time (the features are the same)."""

MIN_RADIUS_MM = 2.0
"""A candidate inside a truth circle of at least this radius is positive (the FROC rule)."""


@dataclass(frozen=True)
class ImageJob:
    """What to compute for one image (picklable, for worker processes).

    Attributes
    ----------
    image_id : str
    path : Path
    spacing_mm : float or None
        Pixel spacing to impose, mm; None to take the file's.
    circles_rc : tuple of (row, col, radius_px)
        Located truth clusters (CBIS-DDSM: from ``masks`` instead).
    masks : tuple of Path
        CBIS-DDSM ROI masks, each the image's size.
    insert_seeds : tuple of int
        One insertion of 3 synthetic clusters per seed (normal images only).
    levels : int or None
        Grey levels the inserted image is quantised to (255 for 8-bit film).
    out : Path
        The table file.
    key : str
        Cache key: a table with another key is recomputed.
    """

    image_id: str
    path: Path
    spacing_mm: float | None
    circles_rc: tuple[tuple[float, float, float], ...]
    masks: tuple[Path, ...]
    insert_seeds: tuple[int, ...]
    levels: int | None
    out: Path
    key: str


@dataclass(frozen=True)
class TableSummary:
    """What building one table found (or why it failed: ``error``)."""

    image_id: str
    cached: bool
    n_candidates: int = 0
    n_positive: int = 0
    n_inserted: int = 0
    spacing_mm: float = 0.0
    n_clusters: int = 0
    off_breast: bool = False
    error: str | None = None


@dataclass(frozen=True)
class ImageTable:
    """One image's table, as read back from the cache."""

    image_id: str
    x: np.ndarray  # (n, k) float32 features
    y: np.ndarray  # (n,) int8 labels
    inserted_x: np.ndarray  # (m, k) float32 features of candidates on inserted clusters
    inserted_of: np.ndarray  # (m,) int16: which insertion (index into insert_seeds)
    circles_rc: np.ndarray  # (c, 3) row, col, radius_px of the truth clusters
    spacing_mm: float
    off_breast: bool


_NOT_TABLE_CODE = frozenset({"model_card.py"})
"""Modules of those packages that do not shape a table (editing them keeps the cache)."""


def process_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` fresh (spawned) processes: a forked child of a process whose
    LightGBM (OpenMP) threads have run can hang in its first LightGBM call."""
    import multiprocessing

    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))


@contextmanager
def mapped(fn: Callable[..., T], *iterables: Iterable[Any], workers: int) -> Iterator[Iterator[T]]:
    """``map(fn, *iterables)`` in this process (``workers`` <= 1) or in a
    :func:`process_pool` of ``workers``, results in order; the pool is shut down (pending
    work cancelled) when the block ends, also on an error."""
    if workers <= 1:
        yield map(fn, *iterables)
        return
    pool = process_pool(workers)
    try:
        yield pool.map(fn, *iterables)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def code_key() -> str:
    """Hash of the code that shapes a table: the imaging, detection and phantom sources
    and the candidate settings. Tables made by other code are rebuilt."""
    import calcscope

    root = Path(calcscope.__file__).resolve().parent
    h = hashlib.sha256()
    for package in ("phantom", "imaging", "detection"):
        for path in sorted((root / package).glob("*.py")):
            if path.name not in _NOT_TABLE_CODE:
                h.update(path.read_bytes())
    h.update(inspect.getsource(build_table).encode())
    h.update(repr(CANDIDATES).encode())
    return h.hexdigest()[:16]


def insert_seed(image_id: str, k: int) -> int:
    """Seed of the ``k``-th insertion into ``image_id`` (mini-MIAS: ``100 * number + k``,
    as the shipped model's)."""
    if image_id.startswith("mdb") and image_id[3:].isdigit():
        return int(image_id[3:]) * 100 + k
    return (zlib.crc32(image_id.encode()) % 1_000_000) * 100 + k


def _read_mask(path: Path) -> np.ndarray:
    import cv2

    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mask is None:
        from calcscope.imaging.io import read_image

        pixels: np.ndarray = read_image(path, spacing_mm=1.0).pixels > 0
        return pixels
    binary: np.ndarray = np.asarray(mask).reshape(mask.shape[:2] + (-1,)).max(axis=2) > 0
    return binary


def _mask_circles(job: ImageJob, shape: tuple[int, int]) -> list[tuple[float, float, float]]:
    out = []
    for path in job.masks:
        mask = _read_mask(path)
        if mask.shape != shape:
            raise ValueError(
                f"ROI mask {path.name} is {mask.shape[0]} x {mask.shape[1]} pixels but its "
                f"image {job.path.name} is {shape[0]} x {shape[1]}: masks must be the full "
                "image's size (in CBIS-DDSM the cropped image and the mask are sometimes "
                "swapped)"
            )
        rr, cc = np.nonzero(mask)
        if rr.size == 0:
            raise ValueError(f"ROI mask {path.name} is empty")
        r0, c0 = float(rr.mean()), float(cc.mean())
        out.append((r0, c0, float(np.sqrt(((rr - r0) ** 2 + (cc - c0) ** 2).max()))))
    return out


def _inside(center_rc: np.ndarray, circles: np.ndarray, min_radius_px: float) -> np.ndarray:
    y = np.zeros(len(center_rc), dtype=bool)
    for r, c, radius in circles:
        d = np.hypot(center_rc[:, 0] - r, center_rc[:, 1] - c)
        y |= d <= max(radius, min_radius_px)
    return y


def build_table(job: ImageJob) -> TableSummary:
    """Compute and save one image's table (or find it cached). Errors are returned, not
    raised, so that a worker process can report them."""
    from calcscope.detection.detect import detect
    from calcscope.evaluation.phantom_study import label_candidates
    from calcscope.files import write_atomic
    from calcscope.imaging.io import read_image
    from calcscope.imaging.preprocess import preprocess
    from calcscope.phantom.mammogram import insert_clusters

    if job.out.is_file():
        try:
            t = load_table(job.out, key=job.key)
            return TableSummary(
                job.image_id, True, len(t.y), int(t.y.sum()), len(t.inserted_x),
                t.spacing_mm, len(t.circles_rc), t.off_breast,
            )  # fmt: skip
        except (OSError, ValueError, KeyError):
            pass  # stale or unreadable: rebuild
    try:
        m = read_image(job.path, spacing_mm=job.spacing_mm)
        circles = np.array(list(job.circles_rc) + _mask_circles(job, m.shape), np.float64)
    except (CalcscopeError, ValueError) as exc:
        return TableSummary(job.image_id, False, error=f"{job.path}: {exc}")
    circles = circles.reshape(-1, 3)
    prep = preprocess(m, Config().preprocess)
    off = any(not prep.breast[_clip(r, m.shape[0]), _clip(c, m.shape[1])] for r, c, _ in circles)
    c = detect(m, prep, CANDIDATES).candidates
    y = _inside(c.center_rc.reshape(-1, 2), circles, MIN_RADIUS_MM / m.pixel_mm).astype(np.int8)
    xs, of = [], []
    for i, seed in enumerate(job.insert_seeds if len(circles) == 0 else ()):
        try:
            ph = insert_clusters(m, prep.mask, seed=seed, n_clusters=3, levels=job.levels)
        except ValueError:
            continue  # no room for three clusters in this (small) breast
        ci = detect(ph.mammogram, prep, CANDIDATES).candidates
        xi = ci.feature_matrix()[label_candidates(ph, ci) == 1]
        xs.append(xi)
        of.append(np.full(len(xi), i, np.int16))
    k = len(c.feature_matrix()[0]) if len(c) else _n_features()
    ins_x = np.concatenate(xs) if xs else np.zeros((0, k), np.float32)
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        key=job.key,
        x=c.feature_matrix().reshape(-1, k),
        y=y,
        inserted_x=ins_x.astype(np.float32),
        inserted_of=np.concatenate(of) if of else np.zeros(0, np.int16),
        circles_rc=circles,
        spacing_mm=m.pixel_mm,
        off_breast=off,
    )
    job.out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(job.out, buf.getvalue())
    return TableSummary(
        job.image_id, False, len(y), int(y.sum()), len(ins_x), m.pixel_mm, len(circles), off
    )


def _clip(v: float, n: int) -> int:
    return int(min(max(round(v), 0), n - 1))


def _n_features() -> int:
    from calcscope.detection.features import Candidates

    return len(Candidates.FEATURE_NAMES)


def load_table(path: Path, *, key: str | None = None) -> ImageTable:
    """Read a table back; ``ValueError`` when its key is not ``key``."""
    with np.load(path, allow_pickle=False) as z:
        if key is not None and str(z["key"]) != key:
            raise ValueError(f"{path.name}: made by other code or settings")
        return ImageTable(
            image_id=path.stem,
            x=z["x"],
            y=z["y"],
            inserted_x=z["inserted_x"],
            inserted_of=z["inserted_of"],
            circles_rc=z["circles_rc"],
            spacing_mm=float(z["spacing_mm"]),
            off_breast=bool(z["off_breast"]),
        )


def phantom_table(k: int, out: Path, key: str) -> TableSummary:
    """Candidates of synthetic phantom ``k`` (seed ``1000 + k``, spacings 0.05-0.2 mm, CC
    and MLO, random cluster morphologies and macro patterns), labelled by
    :func:`calcscope.evaluation.phantom_study.label_candidates` (ambiguous ones left
    out), saved as a table without inserted clusters: the shipped model's synthetic
    part."""
    from calcscope.detection.detect import detect
    from calcscope.evaluation.phantom_study import label_candidates
    from calcscope.files import write_atomic
    from calcscope.imaging.preprocess import preprocess
    from calcscope.model import Distribution, Laterality, View
    from calcscope.phantom.mammogram import (
        CLUSTER_MORPHOLOGIES,
        MACRO_PATTERNS,
        ClusterSpec,
        make_phantom,
    )

    if out.is_file():
        try:
            t = load_table(out, key=key)
            return TableSummary(f"phantom{k}", True, len(t.y), int(t.y.sum()), 0, t.spacing_mm)
        except (OSError, ValueError, KeyError):
            pass
    rng = np.random.default_rng(1000 + k)
    spacing = float(rng.choice([0.05, 0.07, 0.07, 0.085, 0.1, 0.15, 0.2]))
    shape = (3000, 2400) if spacing < 0.07 else None
    morphs = rng.choice(len(CLUSTER_MORPHOLOGIES), size=3, replace=False)
    dists = [Distribution.GROUPED, Distribution.GROUPED, Distribution.LINEAR, Distribution.REGIONAL]
    specs = [
        ClusterSpec(
            CLUSTER_MORPHOLOGIES[i],
            dists[int(rng.integers(len(dists)))],
            n=int(rng.integers(5, 14)),
        )
        for i in morphs
    ]
    macros = [MACRO_PATTERNS[i] for i in rng.choice(len(MACRO_PATTERNS), 3, replace=False)]
    ph = make_phantom(
        seed=1000 + k,
        spacing_mm=spacing,
        shape=shape,
        view=View.MLO if k % 2 else View.CC,
        laterality=Laterality.LEFT if k % 3 else Laterality.RIGHT,
        clusters=specs,
        macros=macros,
        n_singles=int(rng.integers(3, 10)),
        noise=float(rng.uniform(0.7, 1.5)),
    )
    prep = preprocess(ph.mammogram, Config().preprocess)
    c = detect(ph.mammogram, prep, CANDIDATES).candidates
    y = label_candidates(ph, c)
    keep = y >= 0
    x = c.feature_matrix().reshape(-1, _n_features())[keep]
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        key=key,
        x=x,
        y=y[keep].astype(np.int8),
        inserted_x=np.zeros((0, x.shape[1]), np.float32),
        inserted_of=np.zeros(0, np.int16),
        circles_rc=np.zeros((0, 3)),
        spacing_mm=spacing,
        off_breast=False,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, buf.getvalue())
    return TableSummary(f"phantom{k}", False, int(keep.sum()), int(y[keep].sum()), 0, spacing)
