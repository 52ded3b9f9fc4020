"""Re-run only the clustering stage on the held-out detections of the last
leave-one-woman-out run, in seconds.

Usage::

    calcscope train ... --cv --cv-folds 53 --cv-out benchmarks/results/mias-lowo   # once
    python scripts/recluster_lowo.py                                   # the same curve
    python scripts/recluster_lowo.py --set compact_mm=0 --set core_min_score=0.4

Each held-out image's report (``LOWO/images/<id>.json``, written by ``calcscope train --cv
--cv-out LOWO``) lists every calcification its fold's detector scored at least
``detect.min_score``: centre, size, score and whether it belongs to a benign macro pattern.
Here the clusters are formed again from them
(:func:`calcscope.detection.clusters.cluster_calcifications`) with a
:class:`~calcscope.config.ClusterConfig` whose fields ``--set FIELD=VALUE`` override,
matched against the mini-MIAS truth with :mod:`calcscope.evaluation.froc`, and the FROC
summary is printed. With no ``--set`` the run's own figures come back (a check of the
harness). Calcifications that are pieces of a benign macro pattern, or
``cluster_max_member_mm`` across or more, are kept out of clusters as in the pipeline; the
satellites of a pattern (``pattern_fragment_mm``) are not recorded in the report and do join
here, so a run can differ from the pipeline by such a cluster. A change to the detector or
to the description rules needs the full ``--cv`` run.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from calcscope.config import ClusterConfig
from calcscope.detection.clusters import cluster_calcifications
from calcscope.evaluation.froc import (
    FROC_MARKS,
    MatchResult,
    froc_curve,
    match_clusters,
    sensitivity_at,
)
from calcscope.evaluation.truth import read_mias
from calcscope.model import Calcification, DepositOutline
from calcscope.reading.thresholds import DescribeThresholds


def report_calcifications(path: Path, max_member_mm: float) -> list[Calcification]:
    """The calcifications of a JSON report that may belong to a cluster: all but the
    pieces of benign macro patterns and those ``max_member_mm`` across or more. A
    solitary round or dystrophic deposit under ``max_member_mm`` (named after
    clustering, see :func:`calcscope.reading.describe.describe_clusters`) stays."""
    report = json.loads(path.read_text())
    solitary = {
        m["member_ids"][0]
        for m in report["macro_findings"]
        if len(m["member_ids"]) == 1 and m["pattern"] in ("round", "dystrophic")
    }
    out = []
    for c in report["calcifications"]:
        in_pattern = c.get("macro_finding_id") is not None and c["id"] not in solitary
        if in_pattern or c["diameter_mm"] >= max_member_mm:
            continue
        out.append(
            Calcification(
                id=int(c["id"]),
                center_rc=(float(c["center_rc"][0]), float(c["center_rc"][1])),
                contour_rc=np.asarray(c.get("contour_rc") or [[0, 0]], dtype=np.int32),
                bbox_rc=tuple(int(v) for v in c["bbox_rc"]),  # type: ignore[arg-type]
                area_mm2=float(c["area_mm2"]),
                diameter_mm=float(c["diameter_mm"]),
                max_diameter_mm=float(c["max_diameter_mm"]),
                min_diameter_mm=float(c["min_diameter_mm"]),
                contrast=float(c["contrast"]),
                cnr=float(c["cnr"]),
                score=float(c["score"]),
                circularity=float(c["circularity"]),
                elongation=float(c["elongation"]),
                solidity=float(c["solidity"]),
                lucent_center=bool(c["lucent_center"]),
                contour_circularity=c.get("contour_circularity"),
                deposit=None if c.get("deposit") is None else DepositOutline(**c["deposit"]),
            )
        )
    return out


def recluster(
    reports: Path, info: Path, config: ClusterConfig, spacing_mm: float = 0.2
) -> dict[float, float]:
    """Cluster sensitivity at the FROC marks after clustering the reports again."""
    paths = sorted(reports.glob("mdb*.json"))
    if not paths:
        raise SystemExit(f"{reports}: no per-image reports (run calcscope train --cv --cv-out DIR)")
    truth = read_mias(info, [p.stem for p in paths])
    limit = DescribeThresholds().cluster_max_member_mm
    results = []
    for p in paths:
        calcs = report_calcifications(p, limit)
        clusters = cluster_calcifications(calcs, (spacing_mm, spacing_mm), config)
        dets = [(c.center_rc, c.score) for c in clusters]
        m = match_clusters(dets, truth[p.stem], spacing_mm=spacing_mm)
        results.append(MatchResult(m.true_scores, m.fp_scores, image_id=p.stem))
    curve = froc_curve(results)
    return {fp: sensitivity_at(curve, fp) for fp in FROC_MARKS}


def _override(text: str) -> tuple[str, float]:
    key, _, value = text.partition("=")
    if key not in ClusterConfig.model_fields or not value:
        raise argparse.ArgumentTypeError(
            f"{text!r}: use FIELD=VALUE with a field of ClusterConfig "
            f"({', '.join(ClusterConfig.model_fields)})"
        )
    return key, float(value)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lowo", type=Path, default=Path("benchmarks/results/mias-lowo"))
    ap.add_argument("--mias", type=Path, default=Path("../shared/data/mini-mias"))
    ap.add_argument("--set", type=_override, action="append", default=[], metavar="F=V")
    args = ap.parse_args(argv)
    fields = {"operating_score": 0.0, **dict(args.set)}
    config = ClusterConfig(**fields)  # type: ignore[arg-type]
    sens = recluster(args.lowo / "images", args.mias / "Info.txt", config)
    shown = ", ".join(f"{k}={v:g}" for k, v in dict(args.set).items()) or "as shipped"
    print(f"cluster settings: {shown}")
    for fp, s in sens.items():
        print(f"  {fp:g} FP/image: sensitivity {s:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
