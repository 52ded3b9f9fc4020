"""Measure a learned speck model at every local maximum for faint clusters at 0.05 mm (issue 18).

Usage::

    python benchmarks/measure_learned_specks.py collect --data ../shared/data --cache /tmp/specks
    python benchmarks/measure_learned_specks.py evaluate --cache /tmp/specks \
        [--detector-cache /tmp/smcnr]

Why: at the faintest level of :mod:`bench_real_hires` (peak contrast 0.03-0.05) about half of
an inserted cluster's members have no detector candidate at all, so no rule on the candidates
can find such a cluster. This measures the issue's ideas "hard negatives mined from real
high-resolution film" and a learned model on candidate points, where the points are not the
detector's candidates but *every* local maximum (5 x 5) of the scale-matched band
(:mod:`calcscope.detection.scale_cnr`: difference of Gaussians of 0.10 and 0.30 mm over its
clipped local rms in a 2 mm window) of 2.5 or more, at least 1 mm inside the breast.

``collect`` stores, per film of :data:`calcscope.phantom.CALC_FREE_FILMS` (two women, CBIS-DDSM;
citation in :mod:`bench_real_hires`), the maxima and their features on the film as it is, on
its 14 scanner-like changes (:func:`bench_real_hires.perturbations`) and on its copies with the
benchmark's clusters inserted by the shape library (``--seeds``, default 0-11) and by the
ellipsoidal domes (``--dome-seeds``, default 0-7), with the insertion seeds of the benchmark
(``seed + 1000 x film index``). Features (:data:`FEATURES`): the CNR at the point in seven
differences of Gaussians from 0.05-0.10 to 0.30-0.60 mm, each over its own clipped local rms
(the *signature*: how the speck's contrast spreads over scales), then film-level values (the
local rms over the band's global sigma in three bands, Hessian blob ratios at 0.1 and 0.2 mm,
the background's gradient at 1 mm, the tissue level).

``evaluate`` trains a LightGBM model on one woman (negatives: the maxima of her plain and
changed films; positives: maxima within a member's radius, at least 2.5 pixels, on her
shape-library copies) and tests it on the other woman, both ways:

1. per point: the share of the held-out woman's inserted members found above a threshold set
   at a false-point rate of 0.2-2 % of her own negatives, for the matched CNR alone and for the
   model (both renderers; the domes were never trained on);
2. per cluster, the maxima alone: points over a probability are sure members, clustered by
   :func:`calcscope.detection.clusters.cluster_calcifications` (the shipped rules); false
   clusters on the held-out plain and changed films, inserted clusters found by level;
3. with ``--detector-cache`` (``measure_scale_cnr.py collect --seeds 0-11``): the detector's
   own cached candidates (the shipped sure rules) joined by the model's sure points, on the
   shape-library copies (the same seeds and images).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from scipy.spatial import cKDTree

from calcscope.config import Config
from calcscope.detection.clusters import cluster_calcifications
from calcscope.detection.stripes import Stripes, find_stripes, on_stripes
from calcscope.imaging.io import read_image
from calcscope.imaging.preprocess import preprocess
from calcscope.phantom import CALC_FREE_FILMS, insert_benchmark_clusters, insert_dome_clusters

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_real_hires import (  # noqa: E402
    CONTRAST_BANDS,
    INSERT_CONTRAST,
    SPACING_MM,
    perturbations,
    seed_range,
)
from measure_scale_cnr import _calcs, load_runs, tally  # noqa: E402

BANDS_MM = ((0.05, 0.10), (0.075, 0.15), (0.10, 0.20), (0.10, 0.30), (0.15, 0.30), (0.20, 0.40),
            (0.30, 0.60))  # fmt: skip
"""Difference-of-Gaussian sigma pairs (mm) of the signature."""
MATCHED = 3
"""Index in :data:`BANDS_MM` of the scale-matched band (:mod:`calcscope.detection.scale_cnr`)."""
FEATURES = [f"cnr {a:g}-{b:g}" for a, b in BANDS_MM] + [
    "rms 0.05-0.10 / global",
    "rms 0.10-0.30 / global",
    "rms 0.30-0.60 / global",
    "blob ratio 0.1",
    "laplacian 0.1 / rms",
    "blob ratio 0.2",
    "laplacian 0.2 / rms",
    "gradient 1 mm / rms",
    "tissue level",
]
SIGNATURE = list(range(len(BANDS_MM)))
"""The columns of the signature (scale-normalised only)."""
MIN_CNR = 2.5
WINDOW_MM = 2.0
WOMEN = {
    "P_00173": [Path(p).stem for p in CALC_FREE_FILMS if "P_00173" in p],
    "P_00820": [Path(p).stem for p in CALC_FREE_FILMS if "P_00820" in p],
}


def _blur(img: np.ndarray, sigma_mm: float) -> np.ndarray:
    return cv2.GaussianBlur(img, (0, 0), sigma_mm / SPACING_MM)


def _local_rms(band: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, float]:
    """The band's clipped local rms in a :data:`WINDOW_MM` square, and its global sigma."""
    g = 1.4826 * float(np.median(np.abs(band[::3, ::3][mask[::3, ::3]])))
    k = int(round(WINDOW_MM / SPACING_MM)) | 1
    box = cv2.boxFilter(np.minimum(band * band, 9 * g * g), -1, (k, k))
    return np.sqrt(np.maximum(box, 0.0)) + 1e-9, g


def maxima_features(pixels: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Local maxima of the scale-matched CNR (``(n, 2)`` rows, columns) and their
    :data:`FEATURES` (``(n, len(FEATURES))`` float32)."""
    img = np.asarray(pixels, dtype=np.float32)
    blurs = {s: _blur(img, s) for pair in BANDS_MM for s in pair}
    cnr, rms, glob = [], [], []
    for a, b in BANDS_MM:
        band = blurs[a] - blurs[b]
        r, g = _local_rms(band, mask)
        cnr.append(band / r)
        rms.append(r)
        glob.append(g)
    m = cnr[MATCHED]
    inside = cv2.erode(mask.astype(np.uint8), np.ones((41, 41), np.uint8)).astype(bool)
    pts = np.argwhere((m >= cv2.dilate(m, np.ones((5, 5), np.uint8))) & (m >= MIN_CNR) & inside)
    r, c = pts[:, 0], pts[:, 1]
    cols = [x[r, c] for x in cnr] + [rms[i][r, c] / glob[i] for i in (0, MATCHED, 6)]
    matched_rms = rms[MATCHED][r, c]
    for s in (0.10, 0.20):
        gb = blurs[s]
        xx = cv2.Sobel(gb, cv2.CV_32F, 2, 0, ksize=3)[r, c]
        yy = cv2.Sobel(gb, cv2.CV_32F, 0, 2, ksize=3)[r, c]
        xy = cv2.Sobel(gb, cv2.CV_32F, 1, 1, ksize=3)[r, c]
        root = np.sqrt((xx - yy) ** 2 + 4 * xy * xy)
        lo, hi = (xx + yy - root) / 2, (xx + yy + root) / 2  # Hessian eigenvalues
        cols += [hi / (np.abs(lo) + 1e-9), (xx + yy) / matched_rms]
    tissue = _blur(img, 1.0)
    gx = cv2.Sobel(tissue, cv2.CV_32F, 1, 0, ksize=3)[r, c]
    gy = cv2.Sobel(tissue, cv2.CV_32F, 0, 1, ksize=3)[r, c]
    cols.append(np.hypot(gx, gy) / matched_rms)
    q5, q95 = np.percentile(tissue[mask][::17], [5, 95])
    cols.append((tissue[r, c] - q5) / (q95 - q5 + 1e-9))
    return pts, np.stack(cols, axis=1).astype(np.float32)


def collect(data: Path, cache: Path, seeds: list[int], dome_seeds: list[int]) -> None:
    """Store every film's maxima and features, plain, changed and with inserted clusters."""
    config = Config()
    cache.mkdir(parents=True, exist_ok=True)
    for index, rel in enumerate(CALC_FREE_FILMS):
        if not (data / rel).is_file():
            print(f"{rel}: absent, skipped")
            continue
        mammo = read_image(data / rel, spacing_mm=SPACING_MM, config=config.io)
        region = preprocess(mammo, config.preprocess).mask
        stem = Path(rel).stem
        runs: list[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        none = np.zeros((0, 5)), np.zeros((0, 4))
        runs.append(("plain", mammo.pixels, region, *none))
        for name, pixels in perturbations(mammo.pixels).items():
            size = pixels.shape[::-1]
            reg = region
            if pixels.shape != region.shape:
                reg = cv2.resize(region.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
            runs.append((f"changed-{name.replace(' ', '_')}", pixels, reg.astype(bool), *none))
        for kind, kind_seeds in (("library", seeds), ("domes", dome_seeds)):
            for seed in kind_seeds:
                insert = insert_dome_clusters if kind == "domes" else insert_benchmark_clusters
                ph = insert(mammo, region, seed=seed + 1000 * index, contrast=INSERT_CONTRAST)
                t = ph.truth
                members = np.array(
                    [
                        (*x.center_rc, x.diameter_mm, x.contrast, x.cluster_id or -1)
                        for x in t.calcifications
                    ]
                ).reshape(-1, 5)
                clusters = np.array([(*k.center_rc, k.radius_mm, k.id) for k in t.clusters])
                runs.append((f"{kind}.{seed}", ph.mammogram.pixels, region, members, clusters))
        for tag, pixels, reg, members, clusters in runs:
            out = cache / f"{stem}.{tag}.npz"
            if out.is_file():
                continue
            pts, feats = maxima_features(pixels, reg)
            stripes = find_stripes(pixels, reg, config.detect)
            np.savez(
                out,
                pts=pts,
                F=feats,
                members=members,
                clusters=clusters,
                stripe_cols=stripes.cols,
                stripe_rows=stripes.rows,
            )
        print(f"{stem}: {len(runs)} runs", flush=True)


Run = dict[str, np.ndarray]


def _stripes(run: Run) -> Stripes:
    return Stripes(cols=run["stripe_cols"], rows=run["stripe_rows"])


def _load(path: Path) -> Run:
    """A stored run without its maxima on a scanner stripe (the detector drops the
    candidates there, :mod:`calcscope.detection.stripes`)."""
    run = dict(np.load(path))
    keep = ~on_stripes(run["pts"], _stripes(run))
    return {**run, "pts": run["pts"][keep], "F": run["F"][keep]}


def _runs(cache: Path, films: list[str], kind: str) -> list[tuple[str, Run]]:
    """The stored runs of ``films`` whose tag starts with ``kind`` (plain, changed, library,
    domes)."""
    return [(p.name, _load(p)) for film in films for p in sorted(cache.glob(f"{film}.{kind}*.npz"))]


def _positives(run: Run) -> tuple[np.ndarray, np.ndarray]:
    """Which maxima lie on an inserted member (within its radius, at least 2.5 pixels), and
    the level (contrast) of that member."""
    members = run["members"]
    d, i = cKDTree(members[:, :2]).query(run["pts"])
    on = d <= np.maximum(2.5, members[i, 2] / 2 / SPACING_MM)
    return on, members[i, 3]


def train(cache: Path, films: list[str], columns: list[int]) -> Callable[[np.ndarray], np.ndarray]:
    """A LightGBM model of one woman's maxima (negatives: plain and changed films; positives:
    the shape-library copies' members); returns its probability as a function of features."""
    import lightgbm as lgb

    xs, ys = [], []
    for kind in ("plain", "changed"):
        for _, run in _runs(cache, films, kind):
            xs.append(run["F"][:, columns])
            ys.append(np.zeros(len(run["F"])))
    for _, run in _runs(cache, films, "library"):
        on, _ = _positives(run)
        xs.append(run["F"][on][:, columns])
        ys.append(np.ones(int(on.sum())))
    model = lgb.LGBMClassifier(
        n_estimators=150, learning_rate=0.05, num_leaves=7, min_child_samples=100, verbose=-1
    )
    model.fit(np.concatenate(xs), np.concatenate(ys))
    return lambda feats: model.predict_proba(feats[:, columns])[:, 1]


def per_point(cache: Path, films: list[str], prob: Callable[[np.ndarray], np.ndarray]) -> None:
    """Members found at fixed false-point rates, matched CNR against the model."""
    negatives = np.concatenate(
        [run["F"] for kind in ("plain", "changed") for _, run in _runs(cache, films, kind)]
    )
    for kind in ("library", "domes"):
        feats, levels = [], []
        for _, run in _runs(cache, films, kind):
            on, level = _positives(run)
            feats.append(run["F"][on])
            levels.append(level[on])
        pos, lv = np.concatenate(feats), np.concatenate(levels)
        faint, mid = (
            lv < CONTRAST_BANDS[1][0],
            (lv >= CONTRAST_BANDS[1][0]) & (lv < CONTRAST_BANDS[2][0]),
        )
        for label, neg_s, pos_s in (
            ("matched CNR", negatives[:, MATCHED], pos[:, MATCHED]),
            ("model", prob(negatives), prob(pos)),
        ):
            cells = []
            for rate in (0.002, 0.005, 0.01, 0.02):
                t = np.quantile(neg_s, 1 - rate)
                cells.append(
                    f"{rate:.1%}: {np.mean(pos_s[faint] >= t):.2f} / {np.mean(pos_s[mid] >= t):.2f}"
                )
            print(
                f"    {kind:8s} {label:11s} faint / mid members at false-point rate "
                + ", ".join(cells)
            )


def _cluster_centres(centres: np.ndarray, scores: np.ndarray, diameters: np.ndarray) -> np.ndarray:
    found = cluster_calcifications(
        _calcs(centres, scores, diameters), (SPACING_MM, SPACING_MM), Config().cluster
    )
    return np.array([cl.center_rc for cl in found]).reshape(-1, 2)


def _found(run: Run, centres: np.ndarray, ins: np.ndarray, fnd: np.ndarray) -> int:
    """Add the inserted clusters (by level band) and those found
    (:func:`measure_scale_cnr.tally`, their level the mean of their members' contrast);
    returns the false ones."""
    members = run["members"]
    truth = [
        (r, c, radius, float(np.mean(members[members[:, 4] == cid, 3])))
        for r, c, radius, cid in run["clusters"]
    ]
    false, inserted, found = tally({"truth_c": np.array(truth).reshape(-1, 4)}, centres)
    ins += inserted
    fnd += found
    return false


def maxima_clusters(
    cache: Path, films: list[str], prob: Callable[[np.ndarray], np.ndarray], t: float
) -> str:
    """False clusters on the plain and changed films and inserted ones found, the model's
    sure points alone clustered."""

    def centres(run: Run) -> np.ndarray:
        sure = prob(run["F"]) >= t
        n = int(sure.sum())
        return _cluster_centres(run["pts"][sure].astype(float), np.full(n, 0.5), np.full(n, 0.3))

    false = sum(
        len(centres(run)) for k in ("plain", "changed") for _, run in _runs(cache, films, k)
    )
    n_free = sum(len(_runs(cache, films, k)) for k in ("plain", "changed"))
    cells = []
    for kind in ("library", "domes"):
        ins, fnd = np.zeros(3, int), np.zeros(3, int)
        for _, run in _runs(cache, films, kind):
            _found(run, centres(run), ins, fnd)
        per = " ".join(f"{a}/{b}" for a, b in zip(fnd, ins, strict=True))
        cells.append(f"{kind} {fnd.sum() / max(ins.sum(), 1):.2f} [{per}]")
    return f"false {false} in {n_free} films; found " + ", ".join(cells)


def joined_clusters(
    cache: Path,
    detector: dict[str, Run],
    films: list[str],
    prob: Callable[[np.ndarray], np.ndarray] | None,
    t: float,
) -> str:
    """The detector's cached candidates under the shipped sure rules (score 0.5, or a
    scale-matched CNR of 4.25, not too sharp, at most 1 mm), joined by the model's sure points
    (a candidate within 0.3 mm of one is made sure, the others added as sure members); the
    plain films and the shape-library copies (``prob`` None: the detector alone)."""
    false_plain: list[int] = []
    false_ins = 0
    ins, fnd = np.zeros(3, int), np.zeros(3, int)
    for name, run in detector.items():
        if not any(f in name for f in films):
            continue
        tag = name.split(".")[1]
        mine = _load(
            cache / f"{name.split('.')[0]}.{'plain' if tag == 'plain' else 'library.' + tag}.npz"
        )
        small = run["diameter"] <= 1.0
        sure = (run["smcnr"][:, 2] >= 4.25) & ~run["sharp"] & small
        keep = ((run["score"] >= 0.03) & small) | sure
        keep &= ~on_stripes(run["center"], _stripes(mine))
        centres, scores = run["center"][keep], np.where(sure, 0.5, 0.0)[keep]
        scores = np.maximum(scores, run["score"][keep])
        diameters = run["diameter"][keep]
        if prob is not None:
            pts = mine["pts"][prob(mine["F"]) >= t].astype(float)
            if len(pts) and len(centres):
                d, i = cKDTree(centres).query(pts)
                near = d <= 0.3 / SPACING_MM
                lifted = np.unique(i[near])
                scores[lifted] = np.maximum(scores[lifted], 0.5)
                pts = pts[~near]
            centres = np.concatenate([centres, pts])
            scores = np.concatenate([scores, np.full(len(pts), 0.5)])
            diameters = np.concatenate([diameters, np.full(len(pts), 0.3)])
        found = _cluster_centres(centres, scores, diameters)
        if tag == "plain":
            false_plain.append(tally(run, found)[0])
        else:
            mine_run: Run = {"clusters": mine["clusters"], "members": mine["members"]}
            false_ins += _found(mine_run, found, ins, fnd)
    per = " ".join(f"{a}/{b}" for a, b in zip(fnd, ins, strict=True))
    return (
        f"false per plain film {false_plain} (+{false_ins} on inserted copies); found "
        f"{fnd.sum() / max(ins.sum(), 1):.2f} [{per}]"
    )


def evaluate(cache: Path, detector_cache: Path | None) -> None:
    detector = (
        {k: v for k, v in load_runs(detector_cache, list(range(12))).items() if "MG1" not in k}
        if detector_cache is not None
        else {}
    )
    for train_w, test_w in (("P_00173", "P_00820"), ("P_00820", "P_00173")):
        for label, columns in (
            ("all features", list(range(len(FEATURES)))),
            ("signature", SIGNATURE),
        ):
            prob = train(cache, WOMEN[train_w], columns)
            print(f"trained on {train_w}, tested on {test_w}, {label}:")
            per_point(cache, WOMEN[test_w], prob)
            for t in (0.2, 0.3, 0.5):
                print(
                    f"    maxima alone, p >= {t}: {maxima_clusters(cache, WOMEN[test_w], prob, t)}"
                )
            if detector:
                alone = joined_clusters(cache, detector, WOMEN[test_w], None, 0)
                print(f"    detector alone: {alone}")
                for t in (0.15, 0.2, 0.3, 0.5):
                    line = joined_clusters(cache, detector, WOMEN[test_w], prob, t)
                    print(f"    detector + model p >= {t}: {line}")
            sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("action", choices=["collect", "evaluate"])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--cache", type=Path, default=Path("/tmp/specks"))
    ap.add_argument("--seeds", default="0-11", help="collect: shape-library insertion seeds")
    ap.add_argument("--dome-seeds", default="0-7", help="collect: dome insertion seeds")
    ap.add_argument(
        "--detector-cache",
        type=Path,
        default=None,
        help="evaluate: the cache of 'measure_scale_cnr.py collect --seeds 0-11'",
    )
    args = ap.parse_args(argv)
    if args.action == "collect":
        collect(args.data, args.cache, seed_range(args.seeds), seed_range(args.dome_seeds))
    else:
        evaluate(args.cache, args.detector_cache)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
