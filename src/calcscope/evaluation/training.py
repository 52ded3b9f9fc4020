"""``calcscope train``: train the candidate classifier on a user's own set and write a
model folder (weights and ``model.json`` card, :mod:`calcscope.detection.model_card`).

The recipe is the shipped model's: the candidates of every usable image, positive inside
a truth circle (radius at least 2 mm), negative elsewhere; candidates on synthetic
clusters inserted into the set's own normal images
(:func:`calcscope.phantom.mammogram.insert_clusters`: real tissue, real grain, known
positions); optionally the synthetic phantoms; an ensemble of LightGBM classifiers that
differ in their inserted clusters, whose scores are averaged.

With a base model (``--base``) each member continues the base's boosting on the new data
(LightGBM ``init_model``): the base's trees are kept and new trees fit what the new data
adds, so 30 cases of one's own do not erase what the base learnt from its data.

``--cv`` measures the recipe first: the women (patient ids; mini-MIAS pairs consecutive
images) are split into folds; each fold's images are analysed by the full pipeline with a
model trained without them, and the cluster FROC over all held-out images goes on the card.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from calcscope.detection.model_card import (
    CrossValidation,
    FrocPoint,
    ModelCard,
    OperatingPoint,
    TrainingData,
    TrainingSettings,
    feature_version,
    read_card,
    write_card,
)
from calcscope.evaluation.training_set import (
    SetFormat,
    TrainingDataError,
    TrainingSet,
    mias_woman,
)
from calcscope.evaluation.training_tables import (
    ImageJob,
    TableSummary,
    build_table,
    code_key,
    insert_seed,
    load_table,
    mapped,
    phantom_table,
)

__all__ = ["LGB_PARAMS", "TrainOptions", "TrainResult", "train_model"]

LGB_PARAMS: dict[str, float | int | str | bool] = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 40,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "seed": 7,
    "deterministic": True,
    "force_row_wise": True,
    "num_threads": 2,
    "verbose": -1,
}
"""LightGBM settings of the shipped model."""

Progress = Callable[[str, int, int], None]
"""``(what, done, total)``: called as tables are built and models trained."""


@dataclass(frozen=True)
class TrainOptions:
    """Settings of a training run. The defaults are the shipped model's recipe (3 members,
    4 insertions of 3 clusters per normal image and member, 48 phantoms, seed 7).

    Attributes
    ----------
    spacing_mm : float or None
        Pixel spacing imposed on every image, mm (mini-MIAS default 0.2).
    rounds : int
        Boosting rounds per member (with ``base``: rounds added).
    ensemble : int
        Members, each with its own inserted clusters.
    insertions : int
        Insertions of 3 synthetic clusters per normal image and member (0: none).
    real_weight, inserted_weight : float
        Sample weights of real candidates and of candidates on inserted clusters
        (phantom candidates weigh 1).
    phantoms : int
        Synthetic phantoms added.
    cv_folds : int
        Folds of the cross-validation by woman (0: none).
    workers : int
        Processes building tables.
    name : str or None
        Name on the card; default the output folder's name.
    cache_dir : Path or None
        Table cache; default ``OUT/.cache``.
    normals : tuple of Path
        Extra folders of normal images (negatives and insertions), at the same spacing.
    base : Path or None
        Model folder to continue from.
    operating_fp_per_image : float
        False clusters per image the card's cluster operating point is calibrated to: on
        the cross-validated curve with ``cv_folds``, else on the training images
        (in-sample, so the threshold errs low: more clusters reported).
    operating_score : float or None
        Cluster operating point to put on the card as given, instead of calibrating it.
    cv_dir : Path or None
        Folder for the cross-validation's FROC (CSV, PNG) and per-image cluster scores.
    """

    spacing_mm: float | None = None
    rounds: int = 250
    ensemble: int = 3
    insertions: int = 4
    real_weight: float = 3.0
    inserted_weight: float = 1.0
    phantoms: int = 48
    cv_folds: int = 0
    workers: int = 2
    seed: int = 7
    name: str | None = None
    cache_dir: Path | None = None
    normals: tuple[Path, ...] = ()
    base: Path | None = None
    operating_fp_per_image: float = 1.0
    operating_score: float | None = None
    cv_dir: Path | None = None
    extra_params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainResult:
    """The written model folder and its card."""

    out: Path
    card: ModelCard


class _Lock:
    """``CACHE/LOCK`` holding the pid of the run writing the cache."""

    def __init__(self, cache: Path, say: Callable[[str], None]) -> None:
        self.path = cache / "LOCK"
        cache.mkdir(parents=True, exist_ok=True)
        if self.path.is_file():
            try:
                pid = int(self.path.read_text().strip() or 0)
            except (OSError, ValueError):
                pid = 0
            if pid and pid != os.getpid() and _alive(pid):
                raise TrainingDataError(
                    f"{cache} is being written by another training run (pid {pid}); wait for "
                    "it, or give another --out"
                )
            n = len(list((cache / "tables").glob("*.npz")))
            say(f"resuming an interrupted run: {n} image tables already in {cache}")
        self.path.write_text(str(os.getpid()))

    def release(self) -> None:
        self.path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _add_normals(ts: TrainingSet, folders: Sequence[Path]) -> TrainingSet:
    from calcscope.evaluation.truth import ImageTruth
    from calcscope.imaging.io import find_images

    paths, truth, woman = dict(ts.paths), dict(ts.truth), dict(ts.woman)
    for folder in folders:
        for p in find_images([folder]):
            key = f"normal:{folder.name}/{p.stem}"
            paths[key] = p
            truth[key] = ImageTruth(key, (), (), False, (), None, None)
            # mini-MIAS names pair a woman's two breasts (folds keep them together)
            mias = ts.format is SetFormat.MIAS and p.stem[:3] == "mdb" and p.stem[3:].isdigit()
            woman[key] = mias_woman(p.stem) if mias else key
    return replace(ts, paths=paths, truth=truth, woman=woman)


def _jobs(ts: TrainingSet, opts: TrainOptions, cache: Path, key: str) -> list[ImageJob]:
    n_insert = opts.ensemble * opts.insertions
    levels = 255 if ts.format is SetFormat.MIAS else None
    jobs = []
    for image_id, path in ts.paths.items():
        t = ts.truth[image_id]
        if t.excluded_reason:
            continue
        circles = tuple(
            (c.center_rc[0], c.center_rc[1], c.radius_px or 0.0)
            for c in t.clusters
            if c.center_rc is not None
        )
        normal = not t.has_calcification and not t.abnormal_classes
        seeds = tuple(insert_seed(image_id, k) for k in range(n_insert)) if normal else ()
        st = path.stat()
        job_key = (
            f"{key}|{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{opts.spacing_mm}|"
            f"{circles}|{ts.masks.get(image_id, ())}|{seeds}|{levels}"
        )
        import hashlib

        safe = image_id.replace("/", "__").replace(":", "_")
        jobs.append(
            ImageJob(
                image_id,
                path,
                opts.spacing_mm,
                circles,
                ts.masks.get(image_id, ()),
                seeds,
                levels,
                cache / "tables" / f"{safe}.npz",
                hashlib.sha256(job_key.encode()).hexdigest()[:20],
            )
        )
    return jobs


def _check_spacing(seen: dict[float, str], s: TableSummary, opts: TrainOptions) -> None:
    if opts.spacing_mm is not None:
        return
    for spacing, first in seen.items():
        if abs(spacing - s.spacing_mm) > 0.01 * spacing:
            raise TrainingDataError(
                f"mixed pixel spacings: {spacing:g} mm ({first}) and {s.spacing_mm:g} mm "
                f"({s.image_id}); pass --spacing-mm MM when every image has one spacing (and "
                "the files say otherwise), or train each spacing's images separately"
            )
    seen.setdefault(round(s.spacing_mm, 6), s.image_id)


def build_tables(
    jobs: list[ImageJob], opts: TrainOptions, progress: Progress | None
) -> dict[str, TableSummary]:
    """Build (or find cached) every image's table, ``opts.workers`` at a time."""
    out: dict[str, TableSummary] = {}
    seen: dict[float, str] = {}
    todo = [j for j in jobs]
    if progress:
        progress("tables", 0, len(todo))
    with mapped(build_table, todo, workers=min(opts.workers, len(todo))) as results:
        for i, s in enumerate(results):
            if s.error:
                raise TrainingDataError(s.error)
            _check_spacing(seen, s, opts)
            out[s.image_id] = s
            if progress:
                progress("tables", i + 1, len(todo))
    return out


def _phantoms(n: int, cache: Path, key: str, workers: int, progress: Progress | None) -> list[Path]:
    """Build (or find cached) the tables of ``n`` synthetic phantoms, ``workers`` at a time."""
    paths = [cache / "phantoms" / f"phantom{k:03d}.npz" for k in range(n)]
    if not n:
        return paths
    with mapped(phantom_table, range(n), paths, [key] * n, workers=min(workers, n)) as done:
        for k, _ in enumerate(done):
            if progress:
                progress("phantoms", k + 1, n)
    return paths


def _member_matrix(
    tables: Sequence[Path], phantoms: Sequence[Path], member: int, opts: TrainOptions, tmp: Path
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One member's training rows, written to a memory-mapped file in ``tmp`` (the
    candidates are read table by table, never all held at once)."""
    lo, hi = member * opts.insertions, (member + 1) * opts.insertions
    parts: list[tuple[Path, bool]] = [(p, True) for p in tables] + [(p, False) for p in phantoms]
    sizes = []
    for p, real in parts:
        t = load_table(p)
        n_ins = int(((t.inserted_of >= lo) & (t.inserted_of < hi)).sum()) if real else 0
        sizes.append((len(t.y), n_ins))
    n = sum(a + b for a, b in sizes)
    k = load_table(parts[0][0]).x.shape[1]
    x = np.lib.format.open_memmap(tmp / f"x{member}.npy", mode="w+", dtype=np.float32, shape=(n, k))
    y = np.zeros(n, np.int8)
    w = np.zeros(n, np.float32)
    i = 0
    for (p, real), (m, m_ins) in zip(parts, sizes, strict=True):
        t = load_table(p)
        x[i : i + m], y[i : i + m] = t.x, t.y
        w[i : i + m] = opts.real_weight if real else 1.0
        i += m
        if m_ins:
            sel = (t.inserted_of >= lo) & (t.inserted_of < hi)
            x[i : i + m_ins], y[i : i + m_ins] = t.inserted_x[sel], 1
            w[i : i + m_ins] = opts.inserted_weight
            i += m_ins
    x.flush()
    return x, y, w


def _fit(
    tables: Sequence[Path],
    phantoms: Sequence[Path],
    opts: TrainOptions,
    base: Sequence[Any],
    threads: int,
) -> list[Any]:
    import lightgbm as lgb

    from calcscope.detection.features import Candidates

    params = dict(LGB_PARAMS, seed=opts.seed, num_threads=threads, **opts.extra_params)
    boosters = []
    with tempfile.TemporaryDirectory() as tmp:
        for e in range(opts.ensemble):
            x, y, w = _member_matrix(tables, phantoms, e, opts, Path(tmp))
            if not y.any():
                raise TrainingDataError("no positive candidates in the training data")
            ds = lgb.Dataset(x, y, weight=w, feature_name=list(Candidates.FEATURE_NAMES))
            init = base[e % len(base)] if base else None
            boosters.append(lgb.train(params, ds, opts.rounds, init_model=init))
            del ds, x
    return boosters


def _usable(summaries: dict[str, TableSummary]) -> dict[str, TableSummary]:
    return {k: s for k, s in summaries.items() if not s.off_breast}


def train_model(
    fmt: SetFormat | str,
    images_dir: Path,
    truth_path: Path,
    out: Path,
    opts: TrainOptions | None = None,
    *,
    progress: Progress | None = None,
    say: Callable[[str], None] = print,
) -> TrainResult:
    """Train a candidate classifier on a set and write the model folder ``out``.

    Parameters
    ----------
    fmt, images_dir, truth_path
        The set (:func:`calcscope.evaluation.training_set.read_training_set`).
    out : Path
        The model folder to write (weights ``<name>.<k>.lgb.txt`` and ``model.json``).
    opts : TrainOptions
    progress, say
        Progress callback and message sink.

    Raises
    ------
    TrainingDataError
        Bad input (see :func:`read_training_set`), a mask of the wrong size, mixed
        spacings without ``spacing_mm``, no positive candidates, a cache in use.
    ConfigError
        The base model is not usable by this calcscope.
    """
    from calcscope.evaluation.training_set import read_training_set

    opts = opts or TrainOptions()
    fmt = SetFormat(fmt)
    if fmt is SetFormat.MIAS and opts.spacing_mm is None:
        opts = replace(opts, spacing_mm=0.2)
    out = Path(out)
    base_card, base_boosters = _load_base(opts.base)
    ts = _add_normals(read_training_set(fmt, images_dir, truth_path), opts.normals)
    cache = opts.cache_dir or out / ".cache"
    lock = _Lock(cache, say)
    try:
        key = code_key()
        jobs = _jobs(ts, opts, cache, key)
        summaries = build_tables(jobs, opts, progress)
        n_cached = sum(s.cached for s in summaries.values())
        if n_cached:
            say(f"{n_cached} of {len(summaries)} image tables came from the cache {cache}")
        phantoms = _phantoms(opts.phantoms, cache, key, opts.workers, progress)
        usable = _usable(summaries)
        if not any(s.n_positive for s in usable.values()):
            raise TrainingDataError(
                "no positives: no candidate of the detector lies inside a truth circle "
                "(check the truth's coordinates and the pixel spacing)"
            )
        table_of = {j.image_id: j.out for j in jobs}
        outcome = None
        if opts.cv_folds:
            from calcscope.evaluation.training_cv import cross_validate

            outcome = cross_validate(ts, usable, table_of, phantoms, opts, base_boosters, progress)
            if opts.cv_dir is not None:
                write_cv_results(outcome, opts.cv_dir)
        if progress:
            progress("training", 0, opts.ensemble)
        boosters = _fit([table_of[k] for k in usable], phantoms, opts, base_boosters, threads=2)
        if progress:
            progress("training", opts.ensemble, opts.ensemble)
        name = opts.name or out.resolve().name
        weights = _save_weights(out, name, boosters)
        op = _operating_point(ts, usable, table_of, out / name, outcome, opts, progress)
        cv = None if outcome is None else outcome.card
        card = _write_model(out, name, ts, summaries, opts, weights, cv, base_card, op)
    finally:
        lock.release()
    return TrainResult(out, card)


def _load_base(base: Path | None) -> tuple[ModelCard | None, list[Any]]:
    if base is None:
        return None, []
    import lightgbm as lgb

    from calcscope.detection.classifier import model_folder

    folder = model_folder(str(base))
    if folder is None:
        raise TrainingDataError(f"--base {base}: not a model folder (no model.json there)")
    card = read_card(folder)
    return card, [lgb.Booster(model_file=str(folder / w)) for w in card.weights]


def _data_entry(ts: TrainingSet, summaries: dict[str, TableSummary], fmt_name: str) -> TrainingData:
    usable = _usable(summaries)
    excluded = {k: t.excluded_reason for k, t in ts.truth.items() if t.excluded_reason}
    excluded |= {k: "truth circle off the breast" for k, s in summaries.items() if s.off_breast}
    return TrainingData(
        format=fmt_name,
        folder=ts.images_dir.name,
        n_images=len(usable),
        n_women=len({ts.woman[k] for k in usable}),
        n_clusters=sum(s.n_clusters for s in usable.values()),
        n_calcifications=sum(len(ts.truth[k].calcifications) for k in usable),
        spacings_mm=sorted({round(s.spacing_mm, 4) for s in usable.values()}),
        acquisition=ts.format.acquisition,
        n_candidates=sum(s.n_candidates for s in usable.values()),
        n_positive_candidates=sum(s.n_positive for s in usable.values()),
        n_inserted_positives=sum(s.n_inserted for s in usable.values()),
        excluded=dict(sorted(excluded.items())),
    )


def _save_weights(out: Path, name: str, boosters: Sequence[Any]) -> list[str]:
    """Write the members as ``<name>.<k>.lgb.txt`` (after removing the card and the old
    weights of that name: no card ever stands over half-written weights)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "model.json").unlink(missing_ok=True)
    for old in out.glob(f"{name}.*lgb.txt"):
        old.unlink()
    weights = []
    for e, b in enumerate(boosters):
        w = f"{name}.{e + 1}.lgb.txt"
        b.save_model(str(out / w))
        weights.append(w)
    return weights


def _operating_point(
    ts: TrainingSet,
    usable: dict[str, TableSummary],
    table_of: dict[str, Path],
    model: Path,
    outcome: Any,
    opts: TrainOptions,
    progress: Progress | None,
) -> OperatingPoint:
    """The card's cluster operating point: as given, or calibrated to
    ``opts.operating_fp_per_image`` on the cross-validated curve or, without one, on the
    training images analysed with the trained weights (``model``: their path prefix)."""
    from calcscope.evaluation.froc import froc_curve
    from calcscope.evaluation.training_cv import (
        calibrate_operating_point,
        cluster_results,
        held_out_image,
    )

    rate = opts.operating_fp_per_image
    if opts.operating_score is not None:
        return OperatingPoint(
            cluster_score=opts.operating_score, source="given (--operating-score)"
        )
    rule = f"lowest cluster score (0.01 steps) with at most {rate:g} false clusters per image"
    if outcome is not None:
        return calibrate_operating_point(
            outcome.curve, rate, f"{rule} on the cross-validated curve ({outcome.card.split})"
        )
    jobs = [held_out_image(ts, k, table_of[k], str(model), opts.spacing_mm) for k in sorted(usable)]
    results = cluster_results(jobs, opts.workers, progress, "operating point")
    return calibrate_operating_point(
        froc_curve(results),
        rate,
        f"{rule} on the {len(jobs)} training images, in-sample (fewer false clusters than on "
        "new images: the threshold errs low, towards reporting more); --cv calibrates it on "
        "held-out images",
    )


def write_cv_results(outcome: Any, folder: Path) -> None:
    """The cross-validation's cluster FROC (``froc_clusters_cv.csv``, ``.png``) and
    ``cv_clusters.json`` (the card's entry and every image's matched cluster scores) in
    ``folder``."""
    import json

    from calcscope.evaluation.froc import plot_froc, write_froc_csv
    from calcscope.files import write_atomic

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_froc_csv(outcome.curve, folder / "froc_clusters_cv.csv")
    plot_froc(outcome.curve, folder / "froc_clusters_cv.png", "cluster FROC, cross-validated")
    doc = {
        "cross_validation": outcome.card.model_dump(mode="json"),
        "images": {
            r.image_id: {"true_scores": list(r.true_scores), "fp_scores": list(r.fp_scores)}
            for r in outcome.results
        },
    }
    write_atomic(folder / "cv_clusters.json", json.dumps(doc, indent=1))


def _write_model(
    out: Path,
    name: str,
    ts: TrainingSet,
    summaries: dict[str, TableSummary],
    opts: TrainOptions,
    weights: list[str],
    cv: CrossValidation | None,
    base: ModelCard | None,
    operating_point: OperatingPoint,
) -> ModelCard:
    from calcscope.detection.features import Candidates
    from calcscope.reports.schema import SCHEMA_VERSION

    n_phantoms = opts.phantoms
    data = [_data_entry(ts, summaries, ts.format.value)]
    if n_phantoms:
        data.append(TrainingData(format="phantoms", folder="(synthetic)", n_images=n_phantoms,
                                 n_women=0, n_clusters=3 * n_phantoms, n_calcifications=0,
                                 spacings_mm=[], acquisition="synthetic"))  # fmt: skip
    if base is not None:
        data = list(base.data) + data
    card = ModelCard(
        name=name,
        report_schema_version=SCHEMA_VERSION,
        features=list(Candidates.FEATURE_NAMES),
        feature_version=feature_version(Candidates.FEATURE_NAMES),
        weights=weights,
        data=data,
        training=TrainingSettings(
            params=dict(LGB_PARAMS, seed=opts.seed, **opts.extra_params),
            rounds=opts.rounds,
            ensemble=opts.ensemble,
            insertions_per_member=opts.insertions,
            real_weight=opts.real_weight,
            inserted_weight=opts.inserted_weight,
            phantoms=n_phantoms,
            seed=opts.seed,
            base=None if base is None else f"{base.name} {base.sha256}",
            base_method=None if base is None else "lightgbm init_model: continued boosting",
        ),
        cross_validation=cv,
        operating_point=operating_point,
        rebuild=_rebuild_command(ts, opts, out),
    )
    return write_card(out, card)


def _rebuild_command(ts: TrainingSet, opts: TrainOptions, out: Path) -> str:
    """The ``calcscope train`` command line of this run (options at their default left
    out; the cache folder is not part of the recipe)."""
    parts = [
        "calcscope train",
        f"--format {ts.format.value}",
        f"--images {ts.images_dir}",
        f"--truth {ts.truth_path}",
    ]
    parts += [f"--normals {p}" for p in opts.normals]
    if opts.spacing_mm is not None:
        parts.append(f"--spacing-mm {opts.spacing_mm:g}")
    if opts.name is not None:
        parts.append(f"--name {opts.name}")
    if opts.cv_folds:
        parts.append(f"--cv --cv-folds {opts.cv_folds}")
    if opts.cv_dir is not None:
        parts.append(f"--cv-out {opts.cv_dir}")
    if opts.base is not None:
        parts.append(f"--base {opts.base}")
    defaults = TrainOptions()
    for flag, value, default in (
        ("--ensemble", opts.ensemble, defaults.ensemble),
        ("--insertions", opts.insertions, defaults.insertions),
        ("--rounds", opts.rounds, defaults.rounds),
        ("--phantoms", opts.phantoms, defaults.phantoms),
        ("--operating-fp-per-image", opts.operating_fp_per_image, defaults.operating_fp_per_image),
        ("--operating-score", opts.operating_score, defaults.operating_score),
    ):
        if value != default:
            parts.append(f"{flag} {value:g}" if isinstance(value, float) else f"{flag} {value}")
    parts.append(f"--out {out}")
    return " ".join(parts)


def froc_points(curve: Any) -> list[FrocPoint]:
    """The card's FROC points: sensitivity at 0.25, 0.5, 1 and 2 false positives per image."""
    from calcscope.evaluation.froc import FROC_MARKS, sensitivity_at

    return [FrocPoint(fp_per_image=fp, sensitivity=sensitivity_at(curve, fp)) for fp in FROC_MARKS]


def remove_cache(out: Path) -> None:
    """Delete a model folder's table cache."""
    shutil.rmtree(Path(out) / ".cache", ignore_errors=True)
