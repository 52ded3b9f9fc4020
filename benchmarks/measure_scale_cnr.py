"""Measure a scale-matched CNR rule for cluster members at 0.05 mm (issue 18).

Usage::

    python benchmarks/measure_scale_cnr.py collect --data ../shared/data --cache /tmp/smcnr
    python benchmarks/measure_scale_cnr.py evaluate --cache /tmp/smcnr

``collect`` analyses the six real high-resolution films of
:mod:`bench_real_hires` (CBIS-DDSM; citation there) as they are and with the benchmark's
inserted clusters (seeds 0-3, the same insertion seeds), and stores per run every
candidate (centre, score, size, the sharp-speck flag, the detector's band CNRs) with its
*scale-matched* contrast: the peak within 2 pixels of its centre of a difference of
Gaussians matched to a 0.15-0.6 mm speck (sigmas 0.10-0.30 mm, 0.15-0.45 mm and
0.45-1.35 mm), in units of that band's noise, where the noise is

- ``I``: the image's own noise model, the robust sigma (1.4826 x MAD inside the breast) of
  the band as a function of the local intensity (16 quantile bins of the 1.35 mm blur);
- ``L``: local, the band's rms (squares clipped at 9 times the band's global robust
  variance) in a window of 4 or 2 mm.

Grain (1-2 pixels) lives in the finest band and averages out in these. ``evaluate`` re-runs
the clustering (:func:`calcscope.detection.clusters.cluster_calcifications`) offline on the
stored candidates with members counted as sure when they score ``sure_min_score`` or
have a scale-matched CNR of at least ``T`` (and are not too sharp), for a sweep of ``T``,
and prints false clusters per calcification-free film and inserted clusters found per
contrast level, on the tuning films (P_00820 and MG1) and on P_00173's four held-out views.

The rule chosen here (the 2 mm window, ``T`` = 4.25) is in the pipeline since
(:mod:`calcscope.detection.scale_cnr`, ``DetectConfig.scale_cnr_*``); ``collect`` analyses
with it turned off, so that the stored clusters stay those without it (the candidates and
their scores are the same either way).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

from calcscope.config import Config
from calcscope.detection.bands import blur
from calcscope.detection.classifier import too_sharp
from calcscope.detection.clusters import cluster_calcifications
from calcscope.imaging.io import read_image
from calcscope.imaging.preprocess import preprocess
from calcscope.model import Calcification
from calcscope.phantom import CALC_FREE_FILMS, insert_benchmark_clusters
from calcscope.pipeline import analyze_mammogram

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_real_hires import (  # noqa: E402
    CONTRAST_BANDS,
    INSERT_CONTRAST,
    SPACING_MM,
    WITH_CALCS,
    level_band,
    seed_range,
)

BANDS_MM = ((0.10, 0.30), (0.15, 0.45), (0.45, 1.35))
"""Difference-of-Gaussian sigma pairs (mm) of the scale-matched bands."""
LOCAL_WINDOWS_MM = (4.0, 2.0)
"""Sides (mm) of the square windows of the local noise (``L``)."""


def _noise_model(band: np.ndarray, level: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Robust sigma of ``band`` at every pixel of ``level`` (16 quantile bins, interpolated)."""
    sub = (slice(None, None, 3), slice(None, None, 3))
    b = band[sub][mask[sub]]
    lv = level[sub][mask[sub]]
    edges = np.quantile(lv, np.linspace(0, 1, 17))
    mids, sig = [], []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = (lv >= lo) & (lv <= hi)
        if sel.sum() < 100:
            continue
        v = b[sel]
        sig.append(1.4826 * np.median(np.abs(v - np.median(v))))
        mids.append(0.5 * (lo + hi))
    return np.interp(level, np.array(mids), np.array(sig)).astype(np.float32)


def scale_features(
    img: np.ndarray, mask: np.ndarray, centres_rc: np.ndarray, pixel_mm: float
) -> np.ndarray:
    """(n, 3 * len(BANDS_MM)) scale-matched CNRs: per band, noise model ``I``, then local
    ``L`` in each of :data:`LOCAL_WINDOWS_MM`."""
    import cv2

    img = img.astype(np.float32)
    level = blur(img, 1.35 / pixel_mm)
    rows = np.clip(np.rint(centres_rc[:, 0]).astype(int), 0, img.shape[0] - 1)
    cols = np.clip(np.rint(centres_rc[:, 1]).astype(int), 0, img.shape[1] - 1)
    out = []
    for s0, s1 in BANDS_MM:
        band = blur(img, s0 / pixel_mm) - blur(img, s1 / pixel_mm)
        peak = cv2.dilate(band, np.ones((5, 5), np.uint8))[rows, cols]
        noise_i = _noise_model(band, level, mask)[rows, cols]
        g = 1.4826 * np.median(np.abs(band[::3, ::3][mask[::3, ::3]]))
        out.append(peak / np.maximum(noise_i, 1e-9))
        clipped = np.minimum(band * band, (3 * g) ** 2)
        for window_mm in LOCAL_WINDOWS_MM:
            k = int(round(window_mm / pixel_mm)) | 1
            box = cv2.boxFilter(clipped, -1, (k, k))
            out.append(peak / np.maximum(np.sqrt(np.maximum(box, 0.0))[rows, cols], 1e-9))
        del band, clipped
    return np.column_stack(out)


def collect(data: Path, cache: Path, seeds: list[int]) -> None:
    """Analyse every film (the rule off) and store its candidates and truth under ``cache``."""
    config = Config()
    config = config.model_copy(
        update={"detect": config.detect.model_copy(update={"scale_cnr_sure": False})}
    )
    cache.mkdir(parents=True, exist_ok=True)
    paths = [(p, True) for p in CALC_FREE_FILMS] + [(p, False) for p in WITH_CALCS]
    for index, (rel, _free) in enumerate(paths):
        mammo = read_image(data / rel, spacing_mm=SPACING_MM, config=config.io)
        region = preprocess(mammo, config.preprocess).mask
        for seed in [None, *seeds]:
            out = cache / f"{Path(rel).stem}.{'plain' if seed is None else seed}.npz"
            if out.is_file():
                continue
            truth_c, truth_m = np.zeros((0, 4)), np.zeros((0, 4))
            m = mammo
            if seed is not None:
                ph = insert_benchmark_clusters(
                    mammo, region, seed=seed + 1000 * index, contrast=INSERT_CONTRAST
                )
                m = ph.mammogram
                rows_c, rows_m = [], []
                for k, tc in enumerate(ph.truth.clusters):
                    ms = [ph.truth.calcifications[i - 1] for i in tc.member_ids]
                    level = sum(x.contrast for x in ms) / len(ms)
                    rows_c.append((*tc.center_rc, tc.radius_mm, level))
                    rows_m += [(*x.center_rc, x.diameter_mm, k) for x in ms]
                truth_c, truth_m = np.array(rows_c), np.array(rows_m)
            a = analyze_mammogram(m, config)
            c = a.detection.candidates
            mask = preprocess(m, config.preprocess).mask
            feats = scale_features(m.pixels, mask, c.center_rc, m.pixel_mm)
            np.savez(
                out,
                center=c.center_rc,
                score=c.score,
                diameter=c.diameter_mm,
                band_cnr=c.band_cnr,
                sharp=too_sharp(c, config.detect),
                smcnr=feats,
                reported=np.array([cl.cluster.center_rc for cl in a.clusters]).reshape(-1, 2),
                truth_c=truth_c,
                truth_m=truth_m,
            )
            print(out.name, len(c), len(a.clusters), flush=True)


def _calcs(center: np.ndarray, score: np.ndarray, diameter: np.ndarray) -> list[Calcification]:
    """Minimal calcifications for the clustering (which reads centre, score, size, box)."""
    empty = np.zeros((0, 2), dtype=int)
    return [
        Calcification(
            id=i + 1,
            center_rc=(float(r), float(cc)),
            contour_rc=empty,
            bbox_rc=(int(r), int(cc), int(r) + 1, int(cc) + 1),
            area_mm2=0.0,
            diameter_mm=float(d),
            max_diameter_mm=float(d),
            min_diameter_mm=float(d),
            contrast=0.0,
            cnr=0.0,
            score=float(s),
            circularity=1.0,
            elongation=0.0,
            solidity=1.0,
            lucent_center=False,
        )
        for i, ((r, cc), s, d) in enumerate(zip(center, score, diameter, strict=True))
    ]


def clusters_of(
    run: dict[str, np.ndarray], feature: int | None, t: float, need_scored: int = 0
) -> np.ndarray:
    """Cluster centres with members counted as sure also when their scale-matched CNR
    (column ``feature``; None: the rule off) reaches ``t`` and they are not too sharp;
    a cluster is kept only with ``need_scored`` members scoring 0.5 or more.

    Members of 1 mm or less (the clusterable specks) that score ``min_score`` (0.03) or
    have such a CNR are clustered; the rule is emulated by lifting the promoted members'
    score to the sure score (0.5). With the rule off this gives the benchmark's clusters
    on the calcification-free films (MG1 differs: its coarse deposits and macro patterns
    are not modelled here)."""
    cfg = Config().cluster
    score = run["score"]
    small = run["diameter"] <= 1.0
    promoted = np.zeros(len(score), dtype=bool)
    if feature is not None:
        promoted = (run["smcnr"][:, feature] >= t) & ~run["sharp"] & small
    keep = ((score >= 0.03) & small) | promoted
    kept_score = score[keep]
    calcs = [
        dataclasses.replace(c, score=max(c.score, 0.5)) if p else c
        for c, p in zip(
            _calcs(run["center"][keep], kept_score, run["diameter"][keep]),
            promoted[keep],
            strict=True,
        )
    ]
    found = cluster_calcifications(calcs, (SPACING_MM, SPACING_MM), cfg)
    centres = [
        cl.center_rc
        for cl in found
        if sum(kept_score[i - 1] >= 0.5 for i in cl.member_ids) >= need_scored
    ]
    return np.array(centres).reshape(-1, 2)


def tally(run: dict[str, np.ndarray], centres: np.ndarray) -> tuple[int, list[int], list[int]]:
    """(false clusters, inserted per level band, found per level band)."""
    ins = [0] * len(CONTRAST_BANDS)
    fnd = [0] * len(CONTRAST_BANDS)
    matched: set[int] = set()
    for r, c, radius, level in run["truth_c"]:
        d = np.hypot(centres[:, 0] - r, centres[:, 1] - c) * SPACING_MM
        hits = np.flatnonzero(d <= max(radius, 2.0) + 1.0)
        matched.update(hits.tolist())
        band = level_band(level)
        ins[band] += 1
        fnd[band] += int(hits.size > 0)
    return len(centres) - len(matched), ins, fnd


GROUPS = {
    "tune (P_00820, MG1)": lambda n: "P_00820" in n or "MG1" in n,
    "held out (P_00173 x4)": lambda n: "P_00173" in n,
}
"""The films a threshold is chosen on, and the held-out woman it is reported on."""
FEATURES = [
    f"{kind}{s0:.2f}"
    for s0, _ in BANDS_MM
    for kind in ("I", *(f"L{w:g}mm/" for w in LOCAL_WINDOWS_MM))
]
"""Columns of ``smcnr``: the noise model (I) or local noise in a window (L), then the band
by its finer sigma (mm)."""


def separability(runs: dict[str, dict[str, np.ndarray]]) -> None:
    """Print, per group and feature, the scale-matched CNR of the inserted members the
    classifier does not make sure (score < 0.5, not too sharp) against the plain
    calcification-free films' candidates of the same kind."""
    for gname, sel in GROUPS.items():
        pos: list[np.ndarray] = []
        neg: list[np.ndarray] = []
        n_img = 0
        for name, run in runs.items():
            if not sel(name):
                continue
            ok = (run["score"] < 0.5) & ~run["sharp"] & (run["diameter"] <= 1.0)
            if name.endswith(".plain.npz"):
                if "MG1" not in name:
                    neg.append(run["smcnr"][ok])
                    n_img += 1
                continue
            c = run["center"]
            for r, cc, d_mm, _ in run["truth_m"]:
                near = np.flatnonzero(
                    np.hypot(c[:, 0] - r, c[:, 1] - cc) * SPACING_MM <= max(0.4, d_mm)
                )
                if near.size:
                    i = near[np.argmax(run["score"][near])]
                    if ok[i]:
                        pos.append(run["smcnr"][i])
        p, q = np.array(pos), np.concatenate(neg)
        print(f"{gname}: {len(p)} non-sure inserted members, {len(q)} plain-film candidates")
        for j, fname in enumerate(FEATURES):
            row = f"  {fname}: members median {np.median(p[:, j]):4.1f}, plain q99 "
            row += f"{np.quantile(q[:, j], 0.99):4.1f};"
            for t in (4, 5, 6):
                row += f" >={t}: members {np.mean(p[:, j] >= t):.2f}, "
                row += f"plain {np.sum(q[:, j] >= t) / n_img:5.1f}/film"
            print(row)


def sweep(runs: dict[str, dict[str, np.ndarray]], need_scored: int) -> None:
    """Print false clusters (per plain film, and on the inserted copies) and inserted
    clusters found per level for every feature and threshold."""
    settings: list[tuple[str, int | None, float]] = [("off", None, 0.0)]
    for f, fname in enumerate(FEATURES):
        settings += [(fname, f, t) for t in (4, 4.25, 4.5, 4.75, 5, 5.5, 6, 8)]
    for label, feature, t in settings:
        line = f"{label:5s} T={t:4.2f} need_scored={need_scored} |"
        for gname, sel in GROUPS.items():
            false_plain: list[int] = []
            false_ins = 0
            ins = np.zeros(len(CONTRAST_BANDS), int)
            fnd = np.zeros(len(CONTRAST_BANDS), int)
            for name, run in runs.items():
                if not sel(name):
                    continue
                n_false, i_, k_ = tally(run, clusters_of(run, feature, t, need_scored))
                free = "MG1" not in name
                if name.endswith(".plain.npz"):
                    false_plain += [n_false] if free else []
                else:
                    ins += i_
                    fnd += k_
                    false_ins += n_false if free else 0
            per = " ".join(f"{a}/{b}" for a, b in zip(fnd, ins, strict=True))
            line += (
                f" {gname}: false per film {false_plain} (+{false_ins} on inserted copies),"
                f" found {fnd.sum() / max(ins.sum(), 1):.2f} [{per}] |"
            )
        print(line, flush=True)


def load_runs(cache: Path, seeds: list[int]) -> dict[str, dict[str, np.ndarray]]:
    """The runs ``collect`` stored under ``cache`` (by file name): every film as it is and
    its copies with clusters inserted by ``seeds``."""
    wanted = {"plain", *map(str, seeds)}
    return {
        p.name: dict(np.load(p))
        for p in sorted(cache.glob("*.npz"))
        if p.name.split(".")[-2] in wanted
    }


def evaluate(cache: Path, need_scored: int, seeds: list[int]) -> None:
    """Separability table, then the sweep of the rule, on the plain films and the copies
    with clusters inserted by ``seeds``."""
    runs = load_runs(cache, seeds)
    separability(runs)
    sweep(runs, need_scored)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("action", choices=["collect", "evaluate"])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--cache", type=Path, default=Path("/tmp/smcnr"))
    ap.add_argument("--seeds", default="0-3")
    ap.add_argument(
        "--need-scored",
        type=int,
        default=0,
        help="evaluate: a cluster also needs this many members scoring 0.5 or more",
    )
    args = ap.parse_args(argv)
    seeds = seed_range(args.seeds)
    if args.action == "collect":
        collect(args.data, args.cache, seeds)
    else:
        evaluate(args.cache, args.need_scored, seeds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
