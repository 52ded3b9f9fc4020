"""BI-RADS description: size class, benign macro patterns, cluster morphology and distribution.

Rules and thresholds follow the ACR BI-RADS Atlas, 5th edition (2013), mammography
section "Calcifications", as summarised by the Radiology Assistant (Kopans/Hofvind-era
review: "Breast - Calcifications: differential diagnosis and BI-RADS", radiologyassistant.nl)
and by Demetri-Lewis A, Slanetz PJ, Eisenberg RL, "Breast calcifications: the focal group",
AJR 2012;198:W325-W343. Each threshold lives in
:class:`calcscope.reading.thresholds.DescribeThresholds` with its source, and can be set in the
configuration (``describe.thresholds``).
Every description carries the reasons it was chosen, in a radiologist's words.

This module runs the steps; the rules live beside it:

* :mod:`calcscope.reading.benign_patterns`: what a single macro piece is (skin, rim, rod-like,
  vascular, round, dystrophic, popcorn-like);
* :mod:`calcscope.reading.macro_groups`: pieces that make one benign finding, and the
  calcifications they keep out of clusters;
* :mod:`calcscope.reading.morphology`: a cluster's morphology;
* :mod:`calcscope.reading.distribution`: a cluster's distribution, and diffuse spread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from calcscope.config import DescribeConfig, DetectConfig
from calcscope.model import Calcification, CalcKind, Cluster, Distribution, Morphology
from calcscope.reading.benign_patterns import MacroFinding
from calcscope.reading.distribution import DIFFUSE_FORMS, cluster_distribution, diffuse_spread
from calcscope.reading.macro_groups import macro_findings, satellite_ids, solitary_macros
from calcscope.reading.morphology import cluster_morphology, judged_members
from calcscope.reading.thresholds import DescribeThresholds

__all__ = [
    "DescribeThresholds",
    "MacroFinding",
    "ClusterDescription",
    "Description",
    "classify_kind",
    "describe",
    "describe_clusters",
    "cluster_morphology",
    "cluster_distribution",
    "judged_members",
    "diffuse_spread",
]


@dataclass(frozen=True)
class ClusterDescription:
    """The BI-RADS description of one cluster, with the reasons for it."""

    cluster_id: int
    morphology: Morphology
    distribution: Distribution
    n_members: int
    morphology_confident: bool
    reasons: tuple[str, ...]
    median_diameter_mm: float
    size_cv: float


@dataclass(frozen=True)
class Description:
    """Size class of every calcification, the benign macro findings and the clusters'
    descriptions of one image."""

    kinds: dict[int, CalcKind]
    macros: tuple[MacroFinding, ...]
    clusters: tuple[ClusterDescription, ...]
    clusterable_ids: tuple[int, ...]
    macro_threshold_mm: float


def classify_kind(calc: Calcification, config: DescribeConfig) -> CalcKind:
    """Macro when the equivalent diameter reaches ``config.macro_threshold_mm``."""
    return CalcKind.MACRO if calc.diameter_mm >= config.macro_threshold_mm else CalcKind.MICRO


def describe(
    calcs: Sequence[Calcification],
    spacing_mm: tuple[float, float],
    config: DescribeConfig | None = None,
    *,
    breast: np.ndarray | None = None,
    thresholds: DescribeThresholds | None = None,
    operating_score: float = 0.0,
) -> Description:
    """Size class of every calcification and benign macro patterns.

    Benign macro patterns are looked for among the calcifications scoring at least
    ``operating_score`` (the detections proper); size classes and ``clusterable_ids`` cover
    all of them. Cluster descriptions are added by :func:`describe_clusters` once clusters
    are known; ``clusterable_ids`` lists the calcifications that may belong to a cluster
    (micro, and macro up to ``cluster_max_member_mm`` that is not a benign pattern).
    """
    cfg = config or DescribeConfig()
    t = thresholds or DescribeThresholds()
    kinds = {c.id: classify_kind(c, cfg) for c in calcs}
    macros = [c for c in calcs if kinds[c.id] is CalcKind.MACRO and c.score >= operating_score]
    findings = macro_findings(calcs, macros, spacing_mm, t, breast=breast)
    in_pattern = {i for f in findings for i in f.member_ids}
    fragments = satellite_ids(calcs, findings, kinds, spacing_mm, t)
    clusterable = tuple(
        c.id
        for c in calcs
        if c.id not in in_pattern
        and c.id not in fragments
        and c.diameter_mm < t.cluster_max_member_mm
    )
    return Description(
        kinds=kinds,
        macros=tuple(findings),
        clusters=(),
        clusterable_ids=clusterable,
        macro_threshold_mm=cfg.macro_threshold_mm,
    )


def describe_clusters(
    description: Description,
    clusters: Sequence[Cluster],
    calcs: Sequence[Calcification],
    spacing_mm: tuple[float, float],
    *,
    thresholds: DescribeThresholds | None = None,
    operating_score: float | None = None,
    nipple_rc: tuple[float, float] | None = None,
    breast: np.ndarray | None = None,
) -> Description:
    """Add the morphology and distribution of each cluster to ``description``.

    ``nipple_rc`` (pixels; see :func:`calcscope.imaging.preprocess.nipple_position`) lets the
    distribution tell a segment, which points at the nipple, from a regional spread.
    ``breast`` (the breast mask) lets it tell calcifications scattered at random
    throughout the breast (diffuse, see :func:`diffuse_spread`): the clusters of
    punctate, round or amorphous calcifications among them are then diffuse.

    Morphology and distribution are judged on the members detected at
    ``operating_score`` (default: ``DetectConfig().operating_score``) when a cluster has
    at least 3 of them, else on all its members (see :func:`judged_members`).
    """
    t = thresholds or DescribeThresholds()
    default = float(DetectConfig.model_fields["operating_score"].default)
    op = default if operating_score is None else operating_score
    pixel_mm = float(np.sqrt(spacing_mm[0] * spacing_mm[1]))
    by_id = {c.id: c for c in calcs}
    clusterable = set(description.clusterable_ids)
    diffuse = (
        diffuse_spread(
            [c for c in calcs if c.id in clusterable and c.score >= op], breast, spacing_mm, t
        )
        if breast is not None
        else None
    )
    out = []
    for cl in clusters:
        members = [by_id[i] for i in cl.member_ids]
        judged = judged_members(members, op)
        morph, confident, m_reasons, med, cv = cluster_morphology(judged, pixel_mm, t)
        dist, d_reasons = cluster_distribution(cl, judged, spacing_mm, t, nipple_rc)
        if diffuse is not None and morph in DIFFUSE_FORMS:
            dist, d_reasons = Distribution.DIFFUSE, [diffuse]
        if len(judged) < len(members):
            m_reasons.append(
                f"judged on the {len(judged)} calcifications detected at the operating point "
                f"(score >= {op:g}); {len(members) - len(judged)} possible ones also belong"
            )
        out.append(
            ClusterDescription(
                cluster_id=cl.id,
                morphology=morph,
                distribution=dist,
                n_members=len(members),
                morphology_confident=confident,
                reasons=tuple(m_reasons + d_reasons),
                median_diameter_mm=med,
                size_cv=cv,
            )
        )
    return Description(
        kinds=description.kinds,
        macros=description.macros
        + solitary_macros(
            description.macros,
            description.kinds,
            description.clusterable_ids,
            clusters,
            calcs,
            spacing_mm,
            op,
            t,
        ),
        clusters=tuple(out),
        clusterable_ids=description.clusterable_ids,
        macro_threshold_mm=description.macro_threshold_mm,
    )
