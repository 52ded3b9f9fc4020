"""FROC evaluation: detections against ground truth, per cluster or per calcification.

A free-response ROC (FROC) curve plots, as the score threshold falls, the fraction of
true findings hit (sensitivity) against the mean number of false positives per image
(Bunch PC et al., Proc SPIE 0127, 1977; Chakraborty DP, Med Phys 16, 1989).

Matching rules
--------------
Clusters (:func:`match_clusters`): the CAD convention used with mini-MIAS and DDSM. A
true cluster is *hit* by a detected cluster whose centre lies inside the true circle,
with the radius raised to ``min_radius_mm`` (2 mm = 10 pixels at 0.2 mm) for small
circles. A detection inside no true circle is a false positive. A detection inside a
circle already hit by a higher-scoring detection is a duplicate: neither a true nor a
false positive (it lowers no threshold's sensitivity and adds no false positive). A
detection inside two overlapping circles hits both. Every detection on an image without
true clusters (a normal image) is a false positive.

Calcifications (:func:`match_calcifications`): one-to-one, greedy by score. In order of
falling score, a detection takes the nearest still unmatched true calcification within
``max_distance_mm`` (0.5 mm) of its centre; a detection that takes none, duplicates
included, is a false positive.

Distances on the boundary count as hits (``<=``, with a micro-pixel slack for rounding).

Both rules are monotone in the threshold: the matches of the detections scoring at least
``t`` do not depend on the detections scoring less, so one :class:`MatchResult` per image
gives the whole curve.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calcscope.errors import UnreadableFileError
from calcscope.evaluation.truth import ImageTruth

__all__ = [
    "ScoredPoint",
    "MatchResult",
    "FrocCurve",
    "FROC_MARKS",
    "match_clusters",
    "match_calcifications",
    "froc_curve",
    "sensitivity_at",
    "write_froc_csv",
    "plot_froc",
    "load_detections_from_json",
]

ScoredPoint = tuple[tuple[float, float], float]
"""A detection as FROC scores it: ``((row, col), score)``, centre in pixels, score in
[0, 1] (not :class:`calcscope.detection.detect.Detection`, the detector's whole output)."""

_EPS_PX = 1e-6
"""Slack on distance tests in pixels, so that a boundary hit survives ``mm / spacing``
rounding (0.6 mm / 0.1 mm = 5.999999999999999)."""

FROC_MARKS = (0.25, 0.5, 1.0, 2.0)
"""False positives per image at which sensitivities are usually reported."""


@dataclass(frozen=True)
class MatchResult:
    """Detections of one image matched against its truth.

    Attributes
    ----------
    true_scores : tuple of (float or None)
        Per true finding, in truth order: the best score of a detection hitting it, or
        None when none does.
    fp_scores : tuple of float
        Scores of the false-positive detections, highest first.
    image_id : str or None
        The image, for tables and debugging.
    """

    true_scores: tuple[float | None, ...]
    fp_scores: tuple[float, ...]
    image_id: str | None = None

    @property
    def n_true(self) -> int:
        """Number of true findings on the image."""
        return len(self.true_scores)

    @property
    def n_hit(self) -> int:
        """Number of true findings hit at any threshold."""
        return sum(s is not None for s in self.true_scores)


@dataclass(frozen=True)
class FrocCurve:
    """Operating points of a detector, one per threshold, thresholds falling.

    Attributes
    ----------
    threshold : numpy.ndarray
        Score thresholds, shape ``(n,)``, decreasing; a detection counts when its score
        is ``>=`` the threshold.
    sensitivity : numpy.ndarray
        Fraction of true findings hit, shape ``(n,)``; NaN when there are none.
    mean_fp_per_image : numpy.ndarray
        False positives divided by the number of images (all of them, normal ones
        included), shape ``(n,)``.
    n_hit, n_fp : numpy.ndarray
        Counts behind the two rates, shape ``(n,)``, int64.
    n_images : int
        Number of images.
    n_true : int
        Number of true findings over all images.
    """

    threshold: np.ndarray
    sensitivity: np.ndarray
    mean_fp_per_image: np.ndarray
    n_hit: np.ndarray
    n_fp: np.ndarray
    n_images: int
    n_true: int


def _valid(detections: Sequence[ScoredPoint]) -> list[ScoredPoint]:
    """Detections with a finite score, highest score first (stable for equal scores)."""
    good = [
        ((float(rc[0]), float(rc[1])), float(s)) for rc, s in detections if math.isfinite(float(s))
    ]
    return sorted(good, key=lambda d: -d[1])


def match_clusters(
    detections: Sequence[ScoredPoint],
    truth: ImageTruth,
    *,
    spacing_mm: float,
    min_radius_mm: float = 2.0,
) -> MatchResult:
    """Match detected clusters of one image against its true clusters.

    See the module docstring for the rule (centre inside the true circle; duplicates are
    neither true nor false positives).

    Parameters
    ----------
    detections : sequence of ((row, col), score)
        Detected cluster centres in pixels and their scores.
    truth : ImageTruth
        The image's truth. Check :attr:`ImageTruth.excluded_reason` before calling:
        excluded images belong in no location-based score.
    spacing_mm : float
        Pixel spacing in millimetres.
    min_radius_mm : float
        Smallest radius a true circle is given, in millimetres.

    Returns
    -------
    MatchResult
        One best score per entry of ``truth.clusters``.

    Raises
    ------
    ValueError
        A true cluster has no centre (image-level label only), or ``spacing_mm`` is not
        positive.
    """
    if not spacing_mm > 0:
        raise ValueError(f"spacing_mm must be positive, got {spacing_mm}")
    if any(c.center_rc is None for c in truth.clusters):
        raise ValueError(
            f"{truth.image_id}: a true cluster has no location; the image can only be used "
            "as an image-level label"
        )
    floor_px = min_radius_mm / spacing_mm
    centres = np.array([c.center_rc for c in truth.clusters], dtype=np.float64).reshape(-1, 2)
    radii = np.array(
        [
            max(
                floor_px,
                c.radius_px
                if c.radius_px is not None
                else (c.radius_mm / spacing_mm if c.radius_mm is not None else 0.0),
            )
            for c in truth.clusters
        ],
        dtype=np.float64,
    )
    best: list[float | None] = [None] * len(truth.clusters)
    fps: list[float] = []
    for (r, c), score in _valid(detections):
        inside = np.hypot(centres[:, 0] - r, centres[:, 1] - c) <= radii + _EPS_PX
        if not inside.any():
            fps.append(score)
            continue
        for i in np.flatnonzero(inside):
            if best[i] is None:
                best[i] = score
    return MatchResult(tuple(best), tuple(fps), truth.image_id)


def match_calcifications(
    detections: Sequence[ScoredPoint],
    truth_points_rc: Sequence[tuple[float, float]] | np.ndarray,
    *,
    spacing_mm: float,
    max_distance_mm: float = 0.5,
    image_id: str | None = None,
) -> MatchResult:
    """Match detected calcifications of one image against true calcification centres.

    One-to-one, greedy by score: each detection, highest score first, takes the nearest
    unmatched true centre within ``max_distance_mm``; detections that take none are false
    positives.

    Parameters
    ----------
    detections : sequence of ((row, col), score)
        Detected calcification centres in pixels and their scores.
    truth_points_rc : sequence of (row, col) or numpy.ndarray
        True centres in pixels, shape ``(n, 2)`` (e.g. the ``center_rc`` of
        :attr:`ImageTruth.calcifications`).
    spacing_mm : float
        Pixel spacing in millimetres.
    max_distance_mm : float
        Largest centre distance of a hit, in millimetres.
    image_id : str, optional
        Recorded in the result.

    Returns
    -------
    MatchResult
        One best score per true point, in the given order.
    """
    if not spacing_mm > 0:
        raise ValueError(f"spacing_mm must be positive, got {spacing_mm}")
    pts = np.asarray(truth_points_rc, dtype=np.float64).reshape(-1, 2)
    max_px = max_distance_mm / spacing_mm
    best: list[float | None] = [None] * len(pts)
    free = np.ones(len(pts), dtype=bool)
    fps: list[float] = []
    for (r, c), score in _valid(detections):
        dist = np.hypot(pts[:, 0] - r, pts[:, 1] - c)
        dist[~free] = np.inf
        if len(pts) and dist.min() <= max_px + _EPS_PX:
            i = int(np.argmin(dist))
            free[i] = False
            best[i] = score
        else:
            fps.append(score)
    return MatchResult(tuple(best), tuple(fps), image_id)


def froc_curve(per_image: Sequence[MatchResult], thresholds: np.ndarray | None = None) -> FrocCurve:
    """FROC operating points over a set of images.

    Parameters
    ----------
    per_image : sequence of MatchResult
        One per image, normal images included (they add false positives only).
    thresholds : numpy.ndarray, optional
        Score thresholds; default every distinct score of a hit or a false positive.
        Sorted decreasing in the result.

    Returns
    -------
    FrocCurve
        At threshold ``t``: sensitivity = true findings whose best score is ``>= t``
        over all true findings; mean FP = false positives scoring ``>= t`` over the
        number of images.

    Raises
    ------
    ValueError
        ``per_image`` is empty.
    """
    if not per_image:
        raise ValueError("no images to evaluate")
    hits = np.array(
        [s for m in per_image for s in m.true_scores if s is not None], dtype=np.float64
    )
    fps = np.array([s for m in per_image for s in m.fp_scores], dtype=np.float64)
    n_true = sum(m.n_true for m in per_image)
    n_images = len(per_image)
    if thresholds is None:
        thr = np.unique(np.concatenate([hits, fps]))
    else:
        thr = np.unique(np.asarray(thresholds, dtype=np.float64).ravel())
    thr = thr[::-1]
    n_hit = (hits[None, :] >= thr[:, None]).sum(axis=1).astype(np.int64)
    n_fp = (fps[None, :] >= thr[:, None]).sum(axis=1).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        sens = n_hit / n_true if n_true else np.full(len(thr), np.nan)
    return FrocCurve(
        threshold=thr,
        sensitivity=np.asarray(sens, dtype=np.float64),
        mean_fp_per_image=n_fp / n_images,
        n_hit=n_hit,
        n_fp=n_fp,
        n_images=n_images,
        n_true=n_true,
    )


def sensitivity_at(curve: FrocCurve, fp_per_image: float) -> float:
    """The best sensitivity at a mean false-positive rate of at most ``fp_per_image``.

    Returns 0.0 when no operating point has so few false positives (the detector could
    still report nothing), NaN when the curve has no true findings.
    """
    if curve.n_true == 0:
        return float("nan")
    ok = curve.mean_fp_per_image <= fp_per_image + 1e-12
    return float(curve.sensitivity[ok].max()) if ok.any() else 0.0


def write_froc_csv(curve: FrocCurve, path: Path) -> Path:
    """Write the operating points as CSV.

    Columns: ``threshold, sensitivity, mean_fp_per_image, n_hit, n_fp, n_true,
    n_images``, one row per threshold, thresholds falling.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(
            ["threshold", "sensitivity", "mean_fp_per_image", "n_hit", "n_fp", "n_true", "n_images"]
        )
        for t, s, f, h, n in zip(
            curve.threshold,
            curve.sensitivity,
            curve.mean_fp_per_image,
            curve.n_hit,
            curve.n_fp,
            strict=True,
        ):
            w.writerow(
                [f"{t:.6g}", f"{s:.6g}", f"{f:.6g}", int(h), int(n), curve.n_true, curve.n_images]
            )
    return path


def plot_froc(
    curve: FrocCurve, path: Path, title: str = "FROC", *, label: str | None = None
) -> Path:
    """Plot the FROC curve to an image file (PNG, SVG or PDF by suffix).

    Log x axis from 0.01 to 10 false positives per image; the sensitivity at 0.25, 0.5,
    1 and 2 FP/image (:func:`sensitivity_at`) is marked and printed. Uses matplotlib's
    Agg canvas directly, leaving pyplot's global state alone.

    Parameters
    ----------
    curve : FrocCurve
    path : Path
        Output file.
    title : str
        Figure title (name the data set in it).
    label : str, optional
        Legend entry for the curve.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ModuleNotFoundError as exc:  # pragma: no cover - depends on the install
        raise ModuleNotFoundError(
            f"FROC plots need the 'eval' extra ({exc.name} is missing): "
            "pip install 'calcscope[eval]'"
        ) from exc

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(6, 4.5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    fp = np.concatenate([[0.0], curve.mean_fp_per_image])
    sens = np.concatenate([[0.0], curve.sensitivity])
    ax.step(
        np.maximum(fp, 1e-3),
        sens,
        where="post",
        color="C0",
        label=label or f"{curve.n_true} findings, {curve.n_images} images",
    )
    for mark in FROC_MARKS:
        s = sensitivity_at(curve, mark)
        ax.axvline(mark, color="0.8", linestyle=":", linewidth=1)
        ax.plot([mark], [s], "o", color="C1", markersize=4)
        ax.annotate(
            f"{s:.2f}",
            (mark, s),
            textcoords="offset points",
            xytext=(3, -12),
            fontsize=8,
        )
    ax.set_xscale("log")
    ax.set_xlim(0.01, 10)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("mean false positives per image")
    ax.set_ylabel("sensitivity")
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    return path


def load_detections_from_json(path: Path, level: str = "cluster") -> list[ScoredPoint]:
    """Detections from a calcscope JSON report.

    Parameters
    ----------
    path : Path
        A report written by :func:`calcscope.reports.schema.write_json`.
    level : {"cluster", "calcification"}
        Read the ``clusters`` or the ``calcifications`` list.

    Returns
    -------
    list of ((row, col), score)

    Raises
    ------
    ValueError
        Unknown ``level``.
    UnreadableFileError
        The file is missing, is not JSON, or lacks the list or its keys.
    """
    key = {"cluster": "clusters", "calcification": "calcifications"}.get(level)
    if key is None:
        raise ValueError(f"level must be 'cluster' or 'calcification', got {level!r}")
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return [
            ((float(item["center_rc"][0]), float(item["center_rc"][1])), float(item["score"]))
            for item in doc[key]
        ]
    except OSError as exc:
        raise UnreadableFileError(f"cannot read the report: {exc}", str(path)) from exc
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise UnreadableFileError(
            f"not a calcscope report with '{key}' (center_rc, score): {exc!r}", str(path)
        ) from exc
