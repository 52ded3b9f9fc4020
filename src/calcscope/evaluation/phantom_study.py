"""Scoring an analysis against known truth.

:func:`compare_with_truth` scores a phantom analysis (per-calcification sensitivity, false
detections per 10 cm2 of breast, cluster hits and member counts). Real-data evaluation
(FROC over mini-MIAS, CBIS-DDSM, INbreast) is in :mod:`calcscope.evaluation.froc` and
:mod:`calcscope.evaluation.truth`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calcscope.detection.features import Candidates
from calcscope.model import Calcification
from calcscope.phantom.mammogram import Phantom
from calcscope.phantom.truth import PhantomTruth, TrueCluster
from calcscope.pipeline import Analysis

__all__ = ["PhantomScore", "score_phantom", "compare_with_truth", "label_candidates"]


@dataclass(frozen=True)
class PhantomScore:
    """How an analysis compares with a phantom's truth.

    Matching rules
    --------------
    * A true calcification is *found* when a detected calcification's centre lies within
      ``max(0.5 mm, length / 2)`` of its centre, or its centre lies inside a detected
      calcification's bounding box (a coarse piece detected whole).
    * A detection is *false* when its centre lies farther than ``length / 2 + 1 mm``
      from every true calcification's centre.
    * A true cluster is *found* when a detected cluster's centre lies within its radius
      plus 2 mm. Its true member count counts the members of at least
      ``min_diameter_mm`` (the detectability limit the sensitivity is stated for); its
      detected member count counts those of them found (as above) by a member of the
      detected cluster (possible calcifications below the operating point included:
      they are members of the reported cluster), so a branching cast split into
      several pieces counts once.
    * A reported cluster is *false* when its centre lies farther than radius + 2 mm from
      every true cluster.
    """

    n_true: int  # true calcifications of diameter >= min_diameter_mm
    n_found: int
    n_detected: int
    n_false: int
    breast_area_cm2: float
    cluster_found: tuple[bool, ...]
    cluster_true_n: tuple[int, ...]
    cluster_detected_n: tuple[int, ...]
    missed: tuple[int, ...]  # ids of missed true calcifications
    n_false_clusters: int = 0

    @property
    def sensitivity(self) -> float:
        return self.n_found / self.n_true if self.n_true else float("nan")

    @property
    def false_per_10cm2(self) -> float:
        return 10.0 * self.n_false / max(self.breast_area_cm2, 1e-9)


def score_phantom(
    phantom: Phantom, analysis: Analysis, *, min_diameter_mm: float = 0.2
) -> PhantomScore:
    """Score ``analysis`` of ``phantom.mammogram`` against ``phantom.truth``.

    Calcifications count as detected at the analysis' operating point
    (``config.detect.operating_score``); clusters as reported.
    """
    truth = phantom.truth
    sr, sc = phantom.mammogram.spacing_mm
    scale = np.array([sr, sc])
    op = analysis.config.detect.operating_score
    detected = [c for c in analysis.calcifications if c.score >= op]
    det = np.array([c.center_rc for c in detected]).reshape(-1, 2) * scale
    boxes = np.array([c.bbox_rc for c in detected]).reshape(-1, 4)
    tc = np.array([t.center_rc for t in truth.calcifications]).reshape(-1, 2)
    tlen = np.array([t.length_mm for t in truth.calcifications])
    found_ids: list[int] = []
    missed: list[int] = []
    n_true = 0
    for t, centre in zip(truth.calcifications, tc, strict=True):
        if t.diameter_mm < min_diameter_mm:
            continue
        n_true += 1
        hit = False
        if len(det):
            d = np.sqrt(((det - centre * scale) ** 2).sum(1))
            hit = bool((d <= max(0.5, t.length_mm / 2)).any())
            if not hit:
                inside = (
                    (boxes[:, 0] <= centre[0])
                    & (centre[0] < boxes[:, 2])
                    & (boxes[:, 1] <= centre[1])
                    & (centre[1] < boxes[:, 3])
                )
                hit = bool(inside.any())
        (found_ids if hit else missed).append(t.id)
    n_false = 0
    for p in det:
        d = np.sqrt(((tc * scale - p) ** 2).sum(1))
        if not (d <= tlen / 2 + 1.0).any():
            n_false += 1
    found, true_n, det_n = [], [], []
    centres = np.array([f.cluster.center_rc for f in analysis.clusters]).reshape(-1, 2) * scale
    by_id = {c.id: c for c in analysis.calcifications}
    size_of = {t.id: t.diameter_mm for t in truth.calcifications}
    for k in truth.clusters:
        true_n.append(sum(size_of[i] >= min_diameter_mm for i in k.member_ids))
        if len(centres):
            d = np.sqrt(((centres - np.array(k.center_rc) * scale) ** 2).sum(1))
            j = int(np.argmin(d))
            ok = bool(d[j] <= k.radius_mm + 2.0)
        else:
            ok, j = False, -1
        found.append(ok)
        members = analysis.clusters[j].cluster.member_ids if ok else ()
        det_n.append(_members_found(k, members, truth, by_id, scale, min_diameter_mm))
    true_centres = np.array([k.center_rc for k in truth.clusters]).reshape(-1, 2) * scale
    reach = np.array([k.radius_mm + 2.0 for k in truth.clusters])
    n_false_clusters = sum(
        not bool((np.sqrt(((true_centres - c) ** 2).sum(1)) <= reach).any()) for c in centres
    )
    area_cm2 = float(truth.breast_mask.sum()) * sr * sc / 100.0
    return PhantomScore(
        n_true=n_true,
        n_found=len(found_ids),
        n_detected=len(det),
        n_false=n_false,
        breast_area_cm2=area_cm2,
        cluster_found=tuple(found),
        cluster_true_n=tuple(true_n),
        cluster_detected_n=tuple(det_n),
        missed=tuple(missed),
        n_false_clusters=n_false_clusters,
    )


def _members_found(
    k: TrueCluster,
    members: tuple[int, ...],
    truth: PhantomTruth,
    by_id: dict[int, Calcification],
    scale: np.ndarray,
    min_diameter_mm: float,
) -> int:
    dets = [by_id[i] for i in members]
    if not dets:
        return 0
    pts = np.array([c.center_rc for c in dets]) * scale
    boxes = np.array([c.bbox_rc for c in dets])
    n = 0
    for t in truth.calcifications:
        if t.id not in k.member_ids or t.diameter_mm < min_diameter_mm:
            continue
        centre = np.array(t.center_rc)
        near = np.sqrt(((pts - centre * scale) ** 2).sum(1)) <= max(0.5, t.length_mm / 2)
        inside = (
            (boxes[:, 0] <= centre[0])
            & (centre[0] < boxes[:, 2])
            & (boxes[:, 1] <= centre[1])
            & (centre[1] < boxes[:, 3])
        )
        n += bool(near.any() or inside.any())
    return n


def compare_with_truth(phantom: Phantom, analysis: Analysis) -> dict[str, float | int | str]:
    """A flat summary of :func:`score_phantom` for printing."""
    s = score_phantom(phantom, analysis)
    return {
        "true calcifications >= 0.2 mm": s.n_true,
        "found": s.n_found,
        "sensitivity": round(s.sensitivity, 3),
        "detections": s.n_detected,
        "false detections": s.n_false,
        "false per 10 cm2 of breast": round(s.false_per_10cm2, 3),
        "clusters found": f"{sum(s.cluster_found)} of {len(s.cluster_found)}",
        "false clusters": s.n_false_clusters,
        "cluster members (true -> detected)": ", ".join(
            f"{a}->{b}" for a, b in zip(s.cluster_true_n, s.cluster_detected_n, strict=True)
        ),
    }


def label_candidates(phantom: Phantom, candidates: Candidates) -> np.ndarray:
    """Training labels of detector candidates on a phantom: 1, 0, or -1 (ambiguous).

    1 when the candidate's centre lies within ``max(0.4 mm, length / 2)`` of a true
    calcification's centre; 0 when it lies farther than ``length / 2 + 1 mm`` from every
    one (the same rule that counts a false detection in :func:`score_phantom`); -1 in
    between (a fragment at the edge of a coarse deposit, say), left out of training.
    """
    truth = phantom.truth
    n = len(candidates)
    if n == 0:
        return np.zeros(0, dtype=np.int8)
    scale = np.array(phantom.mammogram.spacing_mm)
    cand = candidates.center_rc * scale
    tc = np.array([t.center_rc for t in truth.calcifications]).reshape(-1, 2) * scale
    if len(tc) == 0:
        return np.zeros(n, dtype=np.int8)
    tlen = np.array([t.length_mm for t in truth.calcifications])
    d = np.sqrt(((cand[:, None, :] - tc[None, :, :]) ** 2).sum(-1))
    pos = (d <= np.maximum(0.4, tlen / 2)[None, :]).any(1)
    neg = ~(d <= (tlen / 2 + 1.0)[None, :]).any(1)
    labels = np.full(n, -1, dtype=np.int8)
    labels[neg] = 0
    labels[pos] = 1
    return labels
