"""Real high-resolution film (issue 18): no false clusters on calcification-free CBIS-DDSM
films at 0.05 mm, inserted clusters still found, pectoral muscle excluded on MLO views.

Data: CBIS-DDSM (Sawyer-Lee R et al., The Cancer Imaging Archive 2016; CC BY 3.0) in
``../shared/data``; skipped when absent. Full figures: ``benchmarks/bench_real_hires.py``.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from calcscope.config import Config
from calcscope.detection.domain import SOFTEST_SCAN, scan_sharpness
from calcscope.imaging.io import read_image
from calcscope.imaging.preprocess import preprocess
from calcscope.model import View
from calcscope.phantom import CALC_FREE_FILMS as CALC_FREE
from calcscope.phantom import insert_benchmark_clusters, insert_dome_clusters
from calcscope.pipeline import analyze_mammogram


def _read(shared_data: Path, rel: str):
    path = shared_data / rel
    if not path.is_file():
        pytest.skip(f"{path} absent")
    return read_image(path, spacing_mm=0.05)


def test_calcification_free_films_have_at_most_a_quarter_false_cluster_per_image(shared_data):
    n_false = 0
    for rel in CALC_FREE:
        a = analyze_mammogram(_read(shared_data, rel))
        n_false += len(a.clusters)
        # these scans are what the detector was measured on: no softer-scan warning
        sharpness = a.detection.scan_sharpness
        assert sharpness is not None and sharpness >= SOFTEST_SCAN, (rel, sharpness)
        if a.mammogram.view is View.MLO:  # view from the PatientID text
            assert a.prep.pectoral.any(), f"{rel}: no pectoral muscle excluded"
    assert n_false / len(CALC_FREE) <= 0.25, f"{n_false} false clusters on {len(CALC_FREE)} films"


def test_scanner_like_changes_make_no_false_cluster(shared_data):
    """The dustiest calcification-free film, as another optical-density mapping (gamma 0.7)
    or a 12-bit scan would give it: still no cluster (each gave one before the sure members
    had to group, ClusterConfig.sure_within_mm; the full set: bench_real_hires.py --perturb)."""
    mammo = _read(shared_data, CALC_FREE[0])
    p = mammo.pixels.astype(np.float32)
    for name, pixels in (
        ("gamma 0.7", p**0.7),
        ("12-bit", np.round(p * 4095) / 4095),
    ):
        changed = dataclasses.replace(mammo, pixels=np.ascontiguousarray(pixels, np.float32))
        clusters = analyze_mammogram(changed).clusters
        assert clusters == (), f"{name}: {len(clusters)} false clusters"
    # a scanner softer than any measured (blur 0.05 mm, where 3 false clusters remain in 70
    # changed films) is told apart by the grain's sharpness
    mask = preprocess(mammo, Config().preprocess).mask
    soft = scan_sharpness(cv2.GaussianBlur(p, (0, 0), 1.0), mask)
    assert soft is not None and soft < SOFTEST_SCAN


def _found_share(
    shared_data: Path,
    rels: tuple[str, ...],
    seeds: range,
    contrast: tuple[float, float],
    insert=insert_benchmark_clusters,
) -> float:
    """Share of clusters (two per seed and film; 5-12 members of 0.15-0.6 mm, issue 18's
    specks) inserted by ``insert`` into the real tissue of ``rels`` found at the report's
    operating point."""
    cfg = Config()
    found = inserted = 0
    for index, rel in enumerate(rels):
        mammo = _read(shared_data, rel)
        region = preprocess(mammo, cfg.preprocess).mask
        for seed in seeds:
            ph = insert(mammo, region, seed=seed + 1000 * index, contrast=contrast)
            a = analyze_mammogram(ph.mammogram, cfg)
            for tc in ph.truth.clusters:
                inserted += 1
                found += any(
                    math.hypot(
                        (f.cluster.center_rc[0] - tc.center_rc[0]) * 0.05,
                        (f.cluster.center_rc[1] - tc.center_rc[1]) * 0.05,
                    )
                    <= max(tc.radius_mm, 2.0) + 1.0
                    for f in a.clusters
                )
    return found / inserted


def test_clear_clusters_inserted_into_real_film_are_found(shared_data):
    """Clusters of level 0.08-0.15 (the brighter half of the real calcifications on MG1)
    inserted into P_00173 and P_00820: at least 0.9 found (the benchmark: 19 of 19)."""
    share = _found_share(shared_data, (CALC_FREE[1], CALC_FREE[4]), range(2), (0.08, 0.15))
    assert share >= 0.9, f"{share:.2f} of the inserted clusters found"


def test_clear_clusters_drawn_by_another_renderer_are_found(shared_data):
    """The same with clusters of ellipsoidal domes (:func:`insert_dome_clusters`, which
    shares nothing with the shape library the detector's phantoms use), other seeds: what is
    found does not depend on how the positives were drawn."""
    share = _found_share(
        shared_data, (CALC_FREE[2], CALC_FREE[4]), range(5, 7), (0.08, 0.15), insert_dome_clusters
    )
    assert share >= 0.9, f"{share:.2f} of the inserted dome clusters found"


@pytest.mark.xfail(
    strict=True,
    reason="issue 18 gap: faint clusters (level 0.03-0.05, 1-2 times P_00173's tissue texture, "
    "member CNR 4-6 like its ~700 grain candidates per film) are found 4 times in 19 in the "
    "benchmark; the candidate classifier scores their members under 0.1 on this film",
)
def test_faint_clusters_inserted_into_real_film_are_found(shared_data):
    share = _found_share(shared_data, (CALC_FREE[0],), range(2), (0.03, 0.05))
    assert share >= 0.9, f"{share:.2f} of the inserted clusters found"
