"""scripts/recluster_lowo.py: the cluster stage re-run from per-image JSON reports gives
the clusters the pipeline reported, and its overrides reach the clustering."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from calcscope.config import ClusterConfig, Config
from calcscope.model import Distribution, Morphology
from calcscope.phantom.mammogram import ClusterSpec, make_phantom
from calcscope.pipeline import analyze_mammogram
from calcscope.reports.schema import write_json

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "recluster_lowo.py"


def _load():
    spec = importlib.util.spec_from_file_location("recluster_lowo", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


def test_reclustering_reports_reproduces_the_pipeline(tmp_path: Path) -> None:
    mod = _load()
    ph = make_phantom(
        seed=5,
        spacing_mm=0.2,
        shape=(600, 480),
        clusters=[ClusterSpec(Morphology.ROUND, Distribution.GROUPED, 10)],
        n_singles=0,
        macros=[],  # no benign pattern, whose satellites the reports do not record
    )
    cfg = Config(cluster=ClusterConfig(operating_score=0.0))
    analysis = analyze_mammogram(ph.mammogram, cfg)
    assert analysis.clusters
    reports = tmp_path / "images"
    write_json(analysis, reports / "mdb001.json")
    # mini-MIAS truth: x, y from the bottom-left corner of the 1024 x 1024 image, radius in px
    r, c = ph.truth.clusters[0].center_rc
    info = tmp_path / "Info.txt"
    info.write_text(f"mdb001 G CALC M {c:.0f} {1024 - r:.0f} 20\n")

    calcs = mod.report_calcifications(reports / "mdb001.json", 1.25)
    again = mod.cluster_calcifications(calcs, (0.2, 0.2), cfg.cluster)
    assert [cl.member_ids for cl in again] == [f.cluster.member_ids for f in analysis.clusters]
    assert np.allclose([cl.score for cl in again], [f.cluster.score for f in analysis.clusters])

    sens = mod.recluster(reports, info, cfg.cluster)
    assert sens[1.0] == 1.0
    # a cluster needs more members than the phantom's: nothing is found
    assert (
        mod.recluster(reports, info, ClusterConfig(operating_score=0.0, min_members=40))[1.0] == 0.0
    )
