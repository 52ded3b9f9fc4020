"""Cross-validation of the training recipe by woman, with the full pipeline, and the
cluster operating point calibrated on the resulting curve."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from calcscope.detection.model_card import CrossValidation, OperatingPoint
from calcscope.evaluation.froc import FrocCurve, MatchResult
from calcscope.evaluation.training_set import TrainingSet
from calcscope.evaluation.training_tables import TableSummary, load_table, mapped

__all__ = [
    "CvOutcome",
    "HeldOutImage",
    "calibrate_operating_point",
    "cluster_results",
    "cross_validate",
    "fold_women",
    "held_out_image",
    "woman_folds",
]

MIN_OPERATING_SCORE = 0.1
"""Lowest cluster operating point a calibration gives (a model with few false clusters
would otherwise report every group of faint specks)."""


@dataclass(frozen=True)
class HeldOutImage:
    """One image to analyse with a model and match against its truth (picklable).

    Attributes
    ----------
    image_id : str
    path : Path
    spacing_mm : float or None
        Pixel spacing imposed, mm.
    model : str
        Model (weights path without suffix, or folder) scoring its candidates.
    circles_rc : tuple of (row, col, radius_px)
        Its located truth clusters.
    reports_dir : Path or None
        Where to write its JSON report (``<id>.json``), or None.
    """

    image_id: str
    path: Path
    spacing_mm: float | None
    model: str
    circles_rc: tuple[tuple[float, float, float], ...]
    reports_dir: Path | None = None


@dataclass(frozen=True)
class CvOutcome:
    """A cross-validation's card entry, its cluster FROC and the per-image matches."""

    card: CrossValidation
    curve: FrocCurve
    results: tuple[MatchResult, ...]


def woman_folds(women: Sequence[str], k: int, seed: int) -> list[list[str]]:
    """Split women into ``k`` folds (at most one per woman), shuffled by ``seed``."""
    unique = sorted(set(women))
    order = np.random.default_rng(seed).permutation(len(unique))
    k = max(2, min(k, len(unique)))
    return [[unique[i] for i in order[f::k]] for f in range(k)]


def fold_women(
    set_women: Sequence[str], normal_women: Sequence[str], k: int, seed: int
) -> list[list[str]]:
    """Folds of the set's women (:func:`woman_folds`), each joined by a share of the
    extra normal images' women (split the same way into as many folds): the set's folds
    do not depend on the extra normals, so a recipe with and without them is measured
    on the same held-out women of the set."""
    folds = woman_folds(set_women, k, seed)
    extra = sorted(set(normal_women) - set(set_women))
    if extra:
        for f, women in enumerate(woman_folds(extra, len(folds), seed)):
            folds[f % len(folds)].extend(women)
    return folds


def _match(job: HeldOutImage) -> MatchResult:
    """Analyse one image with every cluster reported and match them to its truth, as
    ``calcscope evaluate`` does."""
    from calcscope.config import ClusterConfig, Config, DetectConfig
    from calcscope.evaluation.froc import match_clusters
    from calcscope.evaluation.truth import ImageTruth, TruthCluster
    from calcscope.pipeline import analyze

    cfg = Config(detect=DetectConfig(model=job.model), cluster=ClusterConfig(operating_score=0.0))
    a = analyze(job.path, spacing_mm=job.spacing_mm, config=cfg)
    if job.reports_dir is not None:
        from calcscope.reports.writer import OutputOptions, write_outputs

        stem = job.image_id.replace("normal:", "").replace("/", "__")
        write_outputs(a, job.reports_dir, stem, OutputOptions(overlay=False))
    dets = [
        ((float(f.cluster.center_rc[0]), float(f.cluster.center_rc[1])), f.cluster.score)
        for f in a.clusters
    ]
    k = job.image_id
    truth = ImageTruth(
        k,
        tuple(
            TruthCluster(k, (float(r), float(c)), None, float(rad), None, "truth")
            for r, c, rad in job.circles_rc
        ),
        (),
        len(job.circles_rc) > 0,
        (),
        None,
        a.mammogram.pixel_mm,
    )
    m = match_clusters(dets, truth, spacing_mm=a.mammogram.pixel_mm)
    return MatchResult(m.true_scores, m.fp_scores, image_id=k)


def held_out_image(
    ts: TrainingSet,
    image_id: str,
    table: Path,
    model: str,
    spacing_mm: float | None,
    reports_dir: Path | None = None,
) -> HeldOutImage:
    """The :class:`HeldOutImage` of ``image_id`` (truth circles from its table)."""
    circles = tuple((float(r), float(c), float(rad)) for r, c, rad in load_table(table).circles_rc)
    return HeldOutImage(image_id, ts.paths[image_id], spacing_mm, model, circles, reports_dir)


def cluster_results(
    jobs: Sequence[HeldOutImage],
    workers: int,
    progress: Callable[[str, int, int], None] | None = None,
    what: str = "held-out images",
) -> list[MatchResult]:
    """Match every image of ``jobs`` (``workers`` processes), in order."""
    out: list[MatchResult] = []
    if progress:
        progress(what, 0, len(jobs))
    with mapped(_match, jobs, workers=min(workers, len(jobs))) as results:
        for i, r in enumerate(results):
            out.append(r)
            if progress:
                progress(what, i + 1, len(jobs))
    return out


@dataclass(frozen=True)
class _FoldFit:
    """One fold's model to train (picklable): its training tables and where to save it."""

    tables: tuple[Path, ...]
    phantoms: tuple[Path, ...]
    opts: Any
    base: tuple[Any, ...]
    model: Path


def _fit_fold(fit: _FoldFit) -> None:
    from calcscope.evaluation.training import _fit

    for e, b in enumerate(_fit(fit.tables, fit.phantoms, fit.opts, fit.base, threads=1)):
        b.save_model(f"{fit.model}.{e + 1}.lgb.txt")


def _fit_folds(fits: Sequence[_FoldFit], workers: int, progress: Any) -> None:
    """Train every fold's model, ``workers`` folds at a time (one thread each: on a busy
    machine LightGBM's threads spin while they wait for each other)."""
    with mapped(_fit_fold, fits, workers=min(workers, len(fits))) as done:
        for f, _ in enumerate(done):
            if progress:
                progress("cross-validation: training", f + 1, len(fits))


def cross_validate(
    ts: TrainingSet,
    usable: dict[str, TableSummary],
    table_of: dict[str, Path],
    phantoms: Sequence[Path],
    opts: Any,
    base: Sequence[Any],
    progress: Any = None,
) -> CvOutcome:
    """Cluster FROC of the recipe over held-out women.

    For each fold, a model (every member) is trained on the other women's images (and
    their inserted clusters, and the phantoms), and the fold's images, extra normal
    images included, are analysed by the full pipeline with it, every cluster reported
    whatever its score (their JSON reports go to ``opts.cv_dir/images`` when it is
    set); the clusters are matched to the truth circles as ``calcscope evaluate`` does.
    """
    from calcscope.evaluation.froc import froc_curve
    from calcscope.evaluation.training import froc_points

    ids = sorted(usable)
    normal = [k for k in ids if k.startswith("normal:")]
    set_women = [ts.woman[k] for k in ids if k not in set(normal)]
    folds = fold_women(set_women, [ts.woman[k] for k in normal], opts.cv_folds, opts.seed)
    jobs: list[HeldOutImage] = []
    reports = None if opts.cv_dir is None else Path(opts.cv_dir) / "images"
    with tempfile.TemporaryDirectory() as tmp:
        fits = []
        for f, women in enumerate(folds):
            held = [k for k in ids if ts.woman[k] in women]
            rest = tuple(table_of[k] for k in ids if ts.woman[k] not in women)
            model = Path(tmp) / f"fold{f}"
            fits.append(_FoldFit(rest, tuple(phantoms), opts, tuple(base), model))
            jobs += [
                held_out_image(ts, k, table_of[k], str(model), opts.spacing_mm, reports)
                for k in held
            ]
        _fit_folds(fits, opts.workers, progress)
        results = cluster_results(jobs, opts.workers, progress, "cross-validation: analysis")
    curve = froc_curve(results)
    one_each = len(folds) == len(set(set_women))
    split = (
        "leave-one-woman-out (one fold per woman of the set; patient id, mini-MIAS pairs)"
        if one_each
        else f"{len(folds)} folds by woman (patient id), seed {opts.seed}"
    )
    if normal:
        split += f"; the {len(normal)} extra normal images cross-validated in the same folds"
    card = CrossValidation(
        split=split,
        folds=len(folds),
        n_images=curve.n_images,
        n_true_clusters=curve.n_true,
        points=froc_points(curve),
    )
    return CvOutcome(card, curve, tuple(results))


def calibrate_operating_point(
    curve: FrocCurve, target_fp_per_image: float, source: str
) -> OperatingPoint:
    """The lowest cluster score (rounded up to 0.01, at least
    :data:`MIN_OPERATING_SCORE`) at which ``curve``'s false clusters per image are at
    most ``target_fp_per_image``."""
    fp = np.asarray(curve.mean_fp_per_image)
    thr = np.asarray(curve.threshold)
    ok = fp <= target_fp_per_image + 1e-12
    # thresholds fall along the curve; the false-positive rate grows: the last ok one
    t = float(thr[ok].min()) if ok.any() else 1.0
    score = min(1.0, max(MIN_OPERATING_SCORE, float(np.ceil(t * 100 - 1e-9) / 100)))
    n_fp = sum(int(v) for v in curve.n_fp[thr >= score][-1:]) if (thr >= score).any() else 0
    n_hit = sum(int(v) for v in curve.n_hit[thr >= score][-1:]) if (thr >= score).any() else 0
    return OperatingPoint(
        cluster_score=score,
        target_fp_per_image=target_fp_per_image,
        fp_per_image=n_fp / max(curve.n_images, 1),
        sensitivity=n_hit / curve.n_true if curve.n_true else None,
        source=source,
    )
