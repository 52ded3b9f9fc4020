"""Grouping microcalcifications into clusters (CAD convention).

A *cluster* is at least ``min_members`` (3) calcifications within ``within_mm`` (10 mm, i.e.
1 cm) of one another, the definition used by CAD systems and FROC studies (Kallergi M., Med
Phys 2004;31:314-326; Nishikawa RM et al., Med Phys 1995). It is found as in DBSCAN: a
calcification scoring at least ``core_min_score`` with at least ``min_members - 1``
neighbours within ``within_mm`` is a core; cores closer than ``link_mm`` join;
calcifications within ``link_mm`` of a cluster's cores are its members. At fine pixels (up
to ``sure_max_pixel_mm``) a cluster also needs ``sure_members`` members scoring
``core_min_score``: there each calcification of 0.15 mm or more spans several pixels and is
seen on its own, while film grain, dust and noise make one or two sure specks with faint
ones scattered around them (on six real CBIS-DDSM films at 0.05 mm this removed every false
cluster left by the sharp-speck rule of :func:`calcscope.detection.classifier.too_sharp`),
and those sure members must fit in one disc of ``sure_within_mm`` (6 mm), not lie scattered
along the cluster's links as dust specks 5-15 mm apart do (on the same films under
scanner-like changes, false clusters went from 30 to 8 in 70).
The centre is where the cluster is densest: the highest mode of the score-weighted density
of the members scoring at least ``core_min_score``, smoothed over ``centre_bandwidth_mm``
(mean shift). The faint possible members, mostly film grain or noise around a real cluster,
do not pull it off the cluster (on the leave-one-woman-out FROC of mini-MIAS this moved
sensitivity at 1 FP/image from 0.75 to 0.83), and neither does a sure member a centimetre
away from the rest: the centre stays on the group that made the cluster, which is where
magnification views and a biopsy would aim. Of five variants of the leave-one-woman-out FROC
(other core scores, other candidate features), the densest point kept or regained a hit of a
small circle in every one where the weighted mean lost it, and never lost one. A cluster's
score (:func:`cluster_score`) sums its members' scores, counted up to double for a cluster
much smaller than ``compact_mm`` (chance specks rarely pack that tight). A calcification made
a sure member by its scale-matched CNR (``Calcification.scale_sure``, at pixels up to 0.06 mm,
:mod:`calcscope.detection.scale_cnr`) counts in all of this as if it scored the sure score
(``sure_min_score``, else ``core_min_score``), as measured offline; its own score is not
changed. The BI-RADS
"grouped" distribution (>= 5 calcifications within 1 cm) is a description made later, in
:mod:`calcscope.reading.describe`.

Clustering depends only on the set of centres, not on their order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import ConvexHull, QhullError, cKDTree

from calcscope.config import ClusterConfig
from calcscope.model import Calcification, Cluster

__all__ = ["cluster_calcifications", "cluster_score"]


def cluster_score(
    member_scores: np.ndarray, extent_mm: float = float("inf"), compact_mm: float = 0.0
) -> float:
    """Cluster confidence in [0, 1] from its members' scores and its extent.

    ``1 - exp(-S' / 2)`` where ``S`` is the sum of the member scores (the expected number
    of true calcifications among the members): three sure members give 0.78, eight
    give 0.98, and many faint possible members of a real cluster add up, while a few
    faint specks of film grain do not. Chosen on the leave-one-woman-out FROC of
    mini-MIAS (``calcscope train --cv``, docs/accuracy.md), where it beat the mean of the best
    three members.

    A compact group is less likely to be chance: specks of grain or noise scattered
    over the breast fall a few at a time into any 1 cm disc, rarely into a few
    millimetres (the reasoning of a scan statistic). So ``S' = S * (1 + max(0, 1 -
    extent_mm / compact_mm))``: a cluster of ``extent_mm`` 0 counts double, one of
    ``compact_mm`` or more counts as ``S`` (``compact_mm`` 0 turns this off).
    """
    s = float(np.sum(np.asarray(member_scores, dtype=np.float64)))
    if compact_mm > 0:
        s *= 1.0 + max(0.0, 1.0 - extent_mm / compact_mm)
    return float(1.0 - np.exp(-max(s, 0.0) / 2.0))


def _densest_point(pts_mm: np.ndarray, weights: np.ndarray, bandwidth_mm: float) -> np.ndarray:
    """Highest mode of the weighted Gaussian density of ``pts_mm`` (mean shift started
    from every weighted point, all at once); the weighted mean when ``bandwidth_mm`` is
    0. Points of zero weight do not count."""
    w = np.asarray(weights, dtype=np.float64)
    if not (w > 0).any():
        w = np.ones(len(pts_mm))
    if bandwidth_mm <= 0:
        return (pts_mm * w[:, None]).sum(axis=0) / w.sum()
    p = pts_mm[w > 0]
    wp = w[w > 0]
    inv = 1.0 / (2.0 * bandwidth_mm**2)
    y = p.copy()
    for _ in range(50):
        k = wp[None, :] * np.exp(-((y[:, None, :] - p[None, :, :]) ** 2).sum(-1) * inv)
        y_new = (k @ p) / k.sum(axis=1, keepdims=True)
        done = np.abs(y_new - y).max() < 1e-3
        y = y_new
        if done:
            break
    density = (wp[None, :] * np.exp(-((y[:, None, :] - p[None, :, :]) ** 2).sum(-1) * inv)).sum(1)
    return y[int(np.argmax(density))]


@dataclass(frozen=True)
class _Components:
    """Which component (cluster to be) each calcification joins.

    Attributes
    ----------
    assign : np.ndarray
        Component of each calcification, -1 for none.
    count : int
        Number of components.
    core : np.ndarray
        Whether each calcification is a core point (bool).
    """

    assign: np.ndarray
    count: int
    core: np.ndarray


def _components(
    centres_mm: np.ndarray, scores: np.ndarray, cfg: ClusterConfig
) -> _Components | None:
    """Link core calcifications (at least ``min_members`` within ``within_mm`` and scoring
    ``core_min_score``) within ``link_mm``; every other one joins the component of its
    nearest core within ``link_mm``. None when there is no core."""
    n = len(centres_mm)
    tree = cKDTree(centres_mm)
    radius = cfg.within_mm
    link = cfg.link_mm
    neighbours = tree.query_ball_point(centres_mm, r=radius)
    counts = np.array([len(nb) for nb in neighbours])  # includes the point itself
    # faint possible calcifications may join a cluster but never extend it: a chain of
    # them would otherwise swell a cluster across the breast
    core = (counts >= cfg.min_members) & (scores >= cfg.core_min_score)
    if not core.any():
        return None
    core_idx = np.flatnonzero(core)
    pairs = cKDTree(centres_mm[core_idx]).query_pairs(
        r=min(cfg.link_mm, radius), output_type="ndarray"
    )
    m = core_idx.size
    graph = coo_matrix(
        (np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])) if len(pairs) else ([], ([], [])),
        shape=(m, m),
    )
    n_comp, comp = connected_components(graph, directed=False)
    # every point joins the component of its nearest core within the radius
    assign = np.full(n, -1, dtype=np.int64)
    assign[core_idx] = comp
    core_tree = cKDTree(centres_mm[core_idx])
    dist, nearest = core_tree.query(centres_mm[~core], k=1)
    border = np.flatnonzero(~core)
    ok = dist <= link
    assign[border[ok]] = comp[nearest[ok]]
    return _Components(assign, int(n_comp), core)


def _cluster(
    calcs: Sequence[Calcification],
    members: np.ndarray,
    centres_mm: np.ndarray,
    scores: np.ndarray,
    core: np.ndarray,
    spacing_mm: tuple[float, float],
    cfg: ClusterConfig,
) -> Cluster:
    """The cluster of ``members`` (indices into ``calcs``), its id still 0."""
    sr, sc = spacing_mm
    pts = centres_mm[members]
    diffs = pts[:, None, :] - pts[None, :, :]
    span = float(np.sqrt((diffs**2).sum(-1)).max())
    mean_d = float(np.mean([calcs[i].diameter_mm for i in members]))
    try:
        hull_area = float(ConvexHull(pts).volume) if members.size >= 3 else 0.0
    except QhullError:
        hull_area = 0.0
    boxes = np.array([calcs[i].bbox_rc for i in members])
    member_scores = scores[members]
    score = cluster_score(member_scores, span + mean_d, cfg.compact_mm)
    centre = _densest_point(
        pts, np.where(core[members], member_scores, 0.0), cfg.centre_bandwidth_mm
    )
    return Cluster(
        id=0,
        member_ids=tuple(sorted(calcs[i].id for i in members)),
        center_rc=(float(centre[0] / sr), float(centre[1] / sc)),
        bbox_rc=(
            int(boxes[:, 0].min()),
            int(boxes[:, 1].min()),
            int(boxes[:, 2].max()),
            int(boxes[:, 3].max()),
        ),
        extent_mm=span + mean_d,
        area_mm2=hull_area,
        score=score,
    )


def _fits_in_a_disc(points_mm: np.ndarray, radius_mm: float, k: int) -> bool:
    """Whether ``k`` of ``points_mm`` ((n, 2), mm) fit in one disc of ``radius_mm``.

    Exact: if some disc holds ``k`` points, one centred on a point or one with two points on
    its rim does. The discs centred on the points are counted first (a k-d tree; most groups
    answer there), then the two through each pair closer than the diameter, so that memory
    stays linear in the pairs whatever the number of points."""
    n = len(points_mm)
    if k <= 1:
        return n >= k
    if n < k:
        return False
    reach = radius_mm * (1.0 + 1e-9) + 1e-12
    tree = cKDTree(points_mm)
    if int(np.max(tree.query_ball_point(points_mm, reach, return_length=True))) >= k:
        return True
    pairs = tree.query_pairs(2.0 * radius_mm, output_type="ndarray")
    if len(pairs) == 0:
        return False
    half = (points_mm[pairs[:, 1]] - points_mm[pairs[:, 0]]) / 2.0
    gap = np.hypot(half[:, 0], half[:, 1])
    ok = gap > 0
    mid = points_mm[pairs[ok, 0]] + half[ok]
    normal = np.column_stack((-half[ok, 1], half[ok, 0])) / gap[ok, None]
    rise = np.sqrt(np.maximum(radius_mm**2 - gap[ok] ** 2, 0.0))[:, None]
    for centres in (mid + normal * rise, mid - normal * rise):
        if (
            len(centres)
            and int(np.max(tree.query_ball_point(centres, reach, return_length=True))) >= k
        ):
            return True
    return False


def _sure_enough(sure_mm: np.ndarray, need: int, cfg: ClusterConfig) -> bool:
    """Whether the sure members (centres in mm) make a cluster at fine pixels: ``need`` of
    them, fitting in one disc of ``cfg.sure_within_mm`` when that is > 0, or else
    ``cfg.sure_tight_members`` of them in one disc of ``cfg.sure_tight_mm``."""
    if need <= 0:
        return True
    if len(sure_mm) >= need and (
        cfg.sure_within_mm <= 0 or _fits_in_a_disc(sure_mm, cfg.sure_within_mm, need)
    ):
        return True
    tight = cfg.sure_tight_members
    return tight > 0 and _fits_in_a_disc(sure_mm, cfg.sure_tight_mm, tight)


def cluster_calcifications(
    calcs: Sequence[Calcification],
    spacing_mm: tuple[float, float],
    config: ClusterConfig | None = None,
) -> tuple[Cluster, ...]:
    """Group ``calcs`` (normally the microcalcifications) into clusters.

    Clusters are numbered from 1 by descending score; member ids are sorted.
    """
    cfg = config or ClusterConfig()
    if len(calcs) < cfg.min_members:
        return ()
    sr, sc = spacing_mm
    centres_mm = np.array([(c.center_rc[0] * sr, c.center_rc[1] * sc) for c in calcs])
    sure_score = cfg.core_min_score if cfg.sure_min_score is None else cfg.sure_min_score
    # a member made sure by its scale-matched CNR (Calcification.scale_sure) clusters as
    # if it scored the sure score; its own score is left as it is
    scale_sure = np.array([c.scale_sure for c in calcs], dtype=bool)
    scores = np.array([c.score for c in calcs])
    scores = np.where(scale_sure, np.maximum(scores, sure_score), scores)
    comps = _components(centres_mm, scores, cfg)
    if comps is None:
        return ()
    clusters: list[Cluster] = []
    need_sure = cfg.sure_members if np.sqrt(sr * sc) <= cfg.sure_max_pixel_mm else 0
    sure = scores >= sure_score
    for k in range(comps.count):
        members = np.flatnonzero(comps.assign == k)
        if members.size >= cfg.min_members and _sure_enough(
            centres_mm[members[sure[members]]], need_sure, cfg
        ):
            clusters.append(
                _cluster(calcs, members, centres_mm, scores, comps.core, spacing_mm, cfg)
            )
    clusters.sort(key=lambda cl: (-cl.score, cl.center_rc))
    kept = [cl for cl in clusters if cl.score >= cfg.operating_score]
    return tuple(dataclasses.replace(cl, id=i) for i, cl in enumerate(kept, start=1))
