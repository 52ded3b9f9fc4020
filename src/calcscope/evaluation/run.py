"""``calcscope evaluate``: run the pipeline over a public data set and score it.

Per image the JSON report is written to ``OUT/images/<id>.json`` (atomically), so a rerun
skips what is done (resumable). Then the FROC curve of clusters over *all* images
(normal ones included) is written as ``froc_clusters.csv`` / ``.png``, a per-image table
``per_image.csv``, and, where single calcifications are marked (INbreast), the
per-calcification FROC (hit within 0.5 mm).

Formats
-------
``mias``      ``--truth Info.txt`` of mini-MIAS; images ``mdbNNN.pgm`` at 0.2 mm.
``inbreast``  ``--truth`` a folder of INbreast XML files named ``<id>.xml`` (or
              ``<id>_*.xml``); images named ``<id>*.dcm``. Images without an XML are
              normal.
``cbis-ddsm`` ``--truth`` a description CSV; with ``--images`` the full mammograms and
              ROI masks at the CSV's relative paths; without, the recorded descriptors
              are assessed (:mod:`calcscope.evaluation.recorded_descriptors`).
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calcscope.config import Config
from calcscope.errors import CalcscopeError, InputError
from calcscope.evaluation.froc import (
    FROC_MARKS,
    FrocCurve,
    MatchResult,
    froc_curve,
    load_detections_from_json,
    match_calcifications,
    match_clusters,
    plot_froc,
    sensitivity_at,
    write_froc_csv,
)
from calcscope.evaluation.truth import (
    ImageTruth,
    TruthCluster,
    mark_off_breast,
    read_inbreast_xml,
    read_mias,
)

__all__ = ["EvaluationResult", "evaluate_images", "load_truth"]


@dataclass(frozen=True)
class EvaluationResult:
    cluster_curve: FrocCurve
    calc_curve: FrocCurve | None
    n_images: int
    excluded: dict[str, str]  # image id -> reason
    failed: dict[str, str]  # image id -> error
    out_dir: Path

    def sensitivities(self) -> dict[float, float]:
        return {fp: sensitivity_at(self.cluster_curve, fp) for fp in FROC_MARKS}


def _images_in(folder: Path) -> list[Path]:
    from calcscope.imaging.io import find_images

    return find_images([folder])


def load_truth(
    fmt: str, images: list[Path], truth_path: Path
) -> tuple[dict[str, Path], dict[str, ImageTruth]]:
    """Pair each image with its truth: returns (id -> image path, id -> truth)."""
    if fmt == "mias":
        paths = {p.stem: p for p in images if p.stem.startswith("mdb")}
        return paths, read_mias(truth_path, paths.keys())
    if fmt == "inbreast":
        paths = {p.stem.split("_")[0]: p for p in images}
        truth: dict[str, ImageTruth] = {}
        xml_dir = truth_path if truth_path.is_dir() else truth_path.parent
        xmls = {x.stem.split("_")[0]: x for x in xml_dir.glob("*.xml")}
        for key in paths:
            if key in xmls:
                truth[key] = read_inbreast_xml(xmls[key], image_id=key)
            else:
                truth[key] = ImageTruth(key, (), (), False, (), None, None)
        return paths, truth
    if fmt == "cbis-ddsm":
        return _cbis_truth(images, truth_path)
    raise InputError(f"unknown format {fmt!r}: use mias, inbreast or cbis-ddsm")


def _cbis_truth(
    images: list[Path], csv_path: Path
) -> tuple[dict[str, Path], dict[str, ImageTruth]]:
    import cv2

    from calcscope.evaluation.truth import cbis_truth_from_masks, read_cbis_ddsm

    findings = read_cbis_ddsm(csv_path)
    by_name = {p.parent.parent.parent.name if p.name == "1-1.dcm" else p.stem: p for p in images}
    root = images[0].parents[3] if images and len(images[0].parents) > 3 else None
    paths: dict[str, Path] = {}
    clusters: dict[str, list[TruthCluster]] = {}
    for f in findings:
        key = f.image_id
        img = by_name.get(key)
        if img is None:
            continue
        paths[key] = img
        mask_path = (root / f.roi_mask_file_path) if root else None
        if mask_path is not None and mask_path.is_file():
            mask = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE)
            if mask is not None and mask.any():
                clusters.setdefault(key, []).append(cbis_truth_from_masks(f, mask > 0))
    truth = {
        k: ImageTruth(k, tuple(clusters.get(k, ())), (), bool(clusters.get(k)), (), None, None)
        for k in paths
    }
    return paths, truth


def _model_block(cfg: Config) -> dict[str, str | None] | None:
    """The ``model`` block a report made with ``cfg`` carries: a report made by another
    model (an earlier ``--model``) is redone, not scored."""
    from calcscope.detection.classifier import resolve_model

    ident = resolve_model(cfg.detect.model)
    return None if ident is None else {"name": ident.name, "sha256": ident.sha256}


@dataclass
class _Analysed:
    """What the analysis of a set left for scoring."""

    failed: dict[str, str]
    masks: dict[str, np.ndarray]
    spacing_of: dict[str, float]


def _reuse(json_path: Path, model: dict[str, str | None] | None) -> float | None:
    """The pixel spacing of a report written earlier by the same model, else ``None``
    (a half-written, stale or other model's report is removed, to be redone)."""
    from calcscope.reports.schema import load_report

    if not json_path.is_file():
        return None
    try:
        report = load_report(json_path)
    except CalcscopeError:
        json_path.unlink(missing_ok=True)
        return None
    made_by = None if report.model is None else report.model.model_dump()
    if made_by != model:
        json_path.unlink(missing_ok=True)
        return None
    return float(report.source.spacing_mm[0])


def _analyse_set(
    paths: dict[str, Path],
    truth: dict[str, ImageTruth],
    res_dir: Path,
    cfg: Config,
    spacing_mm: float | None,
    on_image: Callable[[str, int, int], None] | None,
) -> _Analysed:
    """Analyse every image into ``res_dir/<key>.json``, reusing the reports already there."""
    from calcscope.imaging.io import read_image
    from calcscope.imaging.preprocess import preprocess
    from calcscope.pipeline import analyze
    from calcscope.reports.schema import write_json

    model = _model_block(cfg)
    done = _Analysed({}, {}, {})
    for i, (key, path) in enumerate(sorted(paths.items())):
        if on_image:
            on_image(key, i, len(paths))
        json_path = res_dir / f"{key}.json"
        located = any(c.center_rc is not None for c in truth[key].clusters)
        try:
            spacing = _reuse(json_path, model)
            if spacing is not None:
                done.spacing_of[key] = spacing
                if located:
                    mammogram = read_image(path, spacing_mm=spacing_mm)
                    done.masks[key] = preprocess(mammogram, cfg.preprocess).breast
                continue
            a = analyze(path, spacing_mm=spacing_mm, config=cfg)
        except CalcscopeError as exc:
            done.failed[key] = str(exc)
            continue
        write_json(a, json_path)
        done.spacing_of[key] = a.mammogram.spacing_mm[0]
        if located:
            done.masks[key] = a.prep.breast
    return done


def _score_image(
    key: str, t: ImageTruth, json_path: Path, spacing: float
) -> tuple[MatchResult, MatchResult | None, dict[str, object]]:
    """The cluster match, the calcification match (when the truth has points) and the
    per-image row of one image."""
    dets = load_detections_from_json(json_path, level="cluster")
    m = match_clusters(dets, t, spacing_mm=spacing)
    m = MatchResult(m.true_scores, m.fp_scores, image_id=key)
    calc = None
    if t.calcifications:
        cd = load_detections_from_json(json_path, level="calcification")
        pts = [c.center_rc for c in t.calcifications]
        calc = match_calcifications(cd, pts, spacing_mm=spacing)
    row = {
        "image": key,
        "true_clusters": m.n_true,
        "hit": m.n_hit,
        "best_true_scores": ";".join("" if s is None else f"{s:.3f}" for s in m.true_scores),
        "detected_clusters": len(dets),
        "false_positive_scores": ";".join(f"{s:.3f}" for s in m.fp_scores),
    }
    return m, calc, row


_PER_IMAGE_FIELDS = [
    "image",
    "true_clusters",
    "hit",
    "best_true_scores",
    "detected_clusters",
    "false_positive_scores",
]


def evaluate_images(
    fmt: str,
    images_dir: Path,
    truth_path: Path,
    out_dir: Path,
    *,
    spacing_mm: float | None = None,
    config: Config | None = None,
    on_image: Callable[[str, int, int], None] | None = None,
) -> EvaluationResult:
    """Analyse every image of the set (skipping those already done) and score them."""
    cfg = config or Config()
    images = _images_in(images_dir)
    if not images:
        raise InputError(f"{images_dir}: no images found")
    paths, truth = load_truth(fmt, images, truth_path)
    if fmt == "mias" and spacing_mm is None:
        spacing_mm = 0.2
    res_dir = out_dir / "images"
    res_dir.mkdir(parents=True, exist_ok=True)
    done = _analyse_set(paths, truth, res_dir, cfg, spacing_mm, on_image)
    truth = mark_off_breast(truth, done.masks)
    excluded = {k: t.excluded_reason for k, t in truth.items() if t.excluded_reason}
    cluster_results: list[MatchResult] = []
    calc_results: list[MatchResult] = []
    rows = []
    for key in sorted(paths):
        if key in done.failed or key in excluded or key not in done.spacing_of:
            continue
        m, calc, row = _score_image(key, truth[key], res_dir / f"{key}.json", done.spacing_of[key])
        cluster_results.append(m)
        if calc is not None:
            calc_results.append(calc)
        rows.append(row)
    curve = froc_curve(cluster_results)
    write_froc_csv(curve, out_dir / "froc_clusters.csv")
    plot_froc(curve, out_dir / "froc_clusters.png", title=f"calcscope clusters, {fmt}")
    calc_curve = None
    if calc_results:
        calc_curve = froc_curve(calc_results)
        write_froc_csv(calc_curve, out_dir / "froc_calcifications.csv")
        plot_froc(calc_curve, out_dir / "froc_calcifications.png", title=f"calcifications, {fmt}")
    with (out_dir / "per_image.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=_PER_IMAGE_FIELDS)
        w.writeheader()
        w.writerows(rows)
    with (out_dir / "excluded.csv").open("w", newline="") as fh:
        w2 = csv.writer(fh)
        w2.writerow(["image", "reason"])
        w2.writerows(sorted(excluded.items()) + sorted(done.failed.items()))
    failed = done.failed
    return EvaluationResult(curve, calc_curve, len(cluster_results), excluded, failed, out_dir)
