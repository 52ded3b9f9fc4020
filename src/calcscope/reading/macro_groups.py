"""Benign macro findings made of several pieces, and the calcifications they keep out of clusters.

The detector outlines a lobulated deposit as touching lobes, a calcified artery as segments,
and an involuting fibroadenoma as a coarse deposit with smaller fragments around it; each is
one benign finding (ACR BI-RADS Atlas, 5th edition, 2013). :func:`macro_findings` finds them
all; :func:`satellite_ids` lists the calcifications around them that are pieces of the same
deposit, never members of a cluster; :func:`solitary_macros` names the coarse deposits no
cluster took.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TypeVar

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from calcscope.model import Calcification, CalcKind, Cluster, Morphology
from calcscope.reading.benign_patterns import (
    MacroFinding,
    coarse_form,
    is_cast,
    is_elongated,
    is_irregular,
    macro_pattern,
    parallel_partner,
    skin_distance_mm,
)
from calcscope.reading.thresholds import DescribeThresholds

_T = TypeVar("_T")

__all__ = ["macro_findings", "satellite_ids", "pattern_fragments", "solitary_macros"]


def _box_groups(boxes_mm: np.ndarray, gap_mm: float, items: Sequence[_T]) -> list[list[_T]]:
    """``items`` grouped by their boxes (row0, col0, row1, col1 in mm): boxes within
    ``gap_mm`` of each other (along rows or columns, whichever is farther) chain into one
    group. Groups come in the order of their first item."""
    b = np.asarray(boxes_mm, dtype=np.float64)
    gap_r = np.maximum(b[None, :, 0] - b[:, None, 2], b[:, None, 0] - b[None, :, 2])
    gap_c = np.maximum(b[None, :, 1] - b[:, None, 3], b[:, None, 1] - b[None, :, 3])
    near = np.maximum(np.maximum(gap_r, gap_c), 0.0) <= gap_mm
    _, labels = connected_components(csr_matrix(near), directed=False)
    groups: dict[int, list[_T]] = {}
    for item, label in zip(items, labels, strict=True):
        groups.setdefault(int(label), []).append(item)
    return list(groups.values())


def _popcorn_lobes(
    macros: Sequence[Calcification], spacing_mm: tuple[float, float], t: DescribeThresholds
) -> list[list[Calcification]]:
    """Groups of coarse lobes that make one popcorn deposit.

    The detector outlines a lobulated deposit as several touching lobes; solid,
    non-lucent, non-tubular macro pieces (thin linear casts excepted) whose outlines lie
    within ``lobe_gap_mm`` of each other are one deposit when, together, they span more
    than ``popcorn_mm``.
    """
    pieces = [
        c for c in macros if not c.lucent_center and not is_elongated(c) and not is_cast(c, t)
    ]
    if len(pieces) < 2:
        return []
    sr, sc = spacing_mm
    boxes = np.array([c.bbox_rc for c in pieces], dtype=np.float64) * np.array([sr, sc, sr, sc])
    groups = _box_groups(boxes, t.lobe_gap_mm, pieces)
    out = []
    for g in groups:
        if len(g) < t.popcorn_min_lobes:
            continue
        b = np.array([c.bbox_rc for c in g], dtype=np.float64)
        extent = max((b[:, 2].max() - b[:, 0].min()) * sr, (b[:, 3].max() - b[:, 1].min()) * sc)
        if extent > t.popcorn_mm:
            out.append(g)
    return out


def _renumbered(findings: Sequence[MacroFinding]) -> list[MacroFinding]:
    """``findings`` with ids 1, 2, ... in their order."""
    return [replace(f, id=k) for k, f in enumerate(findings, start=1)]


def _merge_vessel_segments(
    findings: list[MacroFinding],
    by_id: dict[int, Calcification],
    spacing_mm: tuple[float, float],
    t: DescribeThresholds,
) -> list[MacroFinding]:
    """One vascular finding per vessel: segments whose outlines lie within
    ``vessel_gap_mm`` of each other are pieces of one calcified artery."""
    vessels = [f for f in findings if f.pattern is Morphology.VASCULAR]
    if len(vessels) < 2:
        return findings
    sr, sc = spacing_mm

    def box(f: MacroFinding) -> np.ndarray:
        b = np.array([by_id[i].bbox_rc for i in f.member_ids], dtype=np.float64)
        return np.array(
            [b[:, 0].min() * sr, b[:, 1].min() * sc, b[:, 2].max() * sr, b[:, 3].max() * sc]
        )

    groups = _box_groups(np.array([box(f) for f in vessels]), t.vessel_gap_mm, vessels)
    merged: list[MacroFinding] = [f for f in findings if f.pattern is not Morphology.VASCULAR]
    for g in groups:
        ids = tuple(sorted(i for f in g for i in f.member_ids))
        b = np.array([box(f) for f in g])
        extent = float(max(b[:, 2].max() - b[:, 0].min(), b[:, 3].max() - b[:, 1].min()))
        centre = np.mean([by_id[i].center_rc for i in ids], axis=0)
        reasons = g[0].reasons
        if len(g) > 1:
            reasons = (
                *reasons,
                f"{len(g)} segments along one vessel over {extent:.0f} mm: one calcified artery",
            )
        merged.append(
            MacroFinding(
                id=0,
                member_ids=ids,
                pattern=Morphology.VASCULAR,
                center_rc=(float(centre[0]), float(centre[1])),
                size_mm=extent,
                reasons=reasons,
            )
        )
    merged.sort(key=lambda f: min(f.member_ids))
    return _renumbered(merged)


_COARSE_BENIGN = (Morphology.COARSE_POPCORN, Morphology.DYSTROPHIC)


def _near_boxes(
    calcs: Sequence[Calcification],
    boxes_mm: np.ndarray,
    spacing_mm: tuple[float, float],
    gap_mm: float,
) -> np.ndarray:
    """For each calcification, whether its centre lies within ``gap_mm`` of any of the
    boxes ``(m, 4)`` (row0, col0, row1, col1 in mm)."""
    if not len(calcs) or not len(boxes_mm):
        return np.zeros(len(calcs), dtype=bool)
    centres = np.array([c.center_rc for c in calcs], dtype=np.float64) * np.array(spacing_mm)
    r, col = centres[:, :1], centres[:, 1:]  # (n, 1) against the (m,) boxes
    dr = np.maximum(np.maximum(boxes_mm[:, 0] - r, r - boxes_mm[:, 2]), 0.0)
    dc = np.maximum(np.maximum(boxes_mm[:, 1] - col, col - boxes_mm[:, 3]), 0.0)
    near: np.ndarray = (np.hypot(dr, dc) <= gap_mm).any(axis=1)
    return near


def _member_boxes(
    findings: Sequence[MacroFinding],
    by_id: dict[int, Calcification],
    spacing_mm: tuple[float, float],
) -> np.ndarray:
    sr, sc = spacing_mm
    boxes_mm: np.ndarray = np.array(
        [by_id[i].bbox_rc for f in findings for i in f.member_ids], dtype=np.float64
    ).reshape(-1, 4) * np.array([sr, sc, sr, sc])
    return boxes_mm


def _is_anchor(f: MacroFinding, by_id: dict[int, Calcification], t: DescribeThresholds) -> bool:
    """A popcorn or dystrophic deposit more than ``popcorn_mm`` across with a piece too
    coarse for a cluster member: the deposits that have satellites (``solitary_gap_mm``)."""
    return (
        f.pattern in _COARSE_BENIGN
        and f.size_mm > t.popcorn_mm
        and max(by_id[i].diameter_mm for i in f.member_ids) >= t.cluster_max_member_mm
    )


def _absorb_satellites(
    findings: list[MacroFinding],
    macros: Sequence[Calcification],
    spacing_mm: tuple[float, float],
    t: DescribeThresholds,
) -> list[MacroFinding]:
    """One finding per coarse benign deposit with its satellites.

    Smaller coarse deposits whose centres lie within ``solitary_gap_mm`` of a popcorn or
    dystrophic deposit are fragments of the same process (an involuting fibroadenoma
    breaks into several coarse pieces; dystrophic calcification forms scattered coarse
    plaques in scarred tissue; BI-RADS atlas), so they join its finding instead of being
    reported on their own. Satellites are coarse pieces that no other pattern claimed,
    or single-piece round or dystrophic findings smaller than the deposit; thin linear
    casts (:func:`~calcscope.reading.benign_patterns.is_cast`) never are.
    """
    by_id = {c.id: c for c in macros}
    mains = sorted(
        (k for k, f in enumerate(findings) if _is_anchor(f, by_id, t)),
        key=lambda k: -findings[k].size_mm,
    )
    if not mains:
        return findings
    owner = {i: k for k, f in enumerate(findings) for i in f.member_ids}
    out = list(findings)
    dropped: set[int] = set()
    for k in mains:
        if k in dropped:
            continue
        f = out[k]
        cands = [
            c
            for c in macros
            if c.id not in f.member_ids
            and c.max_diameter_mm <= f.size_mm
            and not is_cast(c, t)
            and (
                c.id not in owner
                or (
                    owner[c.id] not in dropped
                    and out[owner[c.id]].pattern in (Morphology.ROUND, Morphology.DYSTROPHIC)
                    and len(out[owner[c.id]].member_ids) == 1
                    and out[owner[c.id]].size_mm < f.size_mm
                )
            )
        ]
        near = _near_boxes(
            cands, _member_boxes([f], by_id, spacing_mm), spacing_mm, t.solitary_gap_mm
        )
        sats = [c for c, n in zip(cands, near, strict=True) if n]
        if not sats:
            continue
        for c in sats:
            if c.id in owner:
                dropped.add(owner[c.id])
            owner[c.id] = k
        word = "deposit" if len(sats) == 1 else "deposits"
        out[k] = MacroFinding(
            id=f.id,
            member_ids=tuple(sorted((*f.member_ids, *(c.id for c in sats)))),
            pattern=f.pattern,
            center_rc=f.center_rc,
            size_mm=f.size_mm,
            reasons=(
                *f.reasons,
                f"{len(sats)} smaller coarse {word} within {t.solitary_gap_mm:g} mm: "
                "fragments of the same benign process, reported with it",
            ),
        )
    return _renumbered([f for k, f in enumerate(out) if k not in dropped])


def pattern_fragments(
    calcs: Sequence[Calcification],
    findings: Sequence[MacroFinding],
    spacing_mm: tuple[float, float],
    gap_mm: float,
    candidates: Sequence[Calcification] | None = None,
) -> set[int]:
    """Ids of the calcifications (of ``candidates``, default all of ``calcs``) lying within
    ``gap_mm`` of a benign macro finding's pieces (their bounding boxes): fragments of
    the same deposit, not cluster members. ``calcs`` must hold the findings' pieces."""
    if not findings or gap_mm <= 0:
        return set()
    by_id = {c.id: c for c in calcs}
    members = {i for f in findings for i in f.member_ids}
    others = [c for c in (calcs if candidates is None else candidates) if c.id not in members]
    near = _near_boxes(others, _member_boxes(findings, by_id, spacing_mm), spacing_mm, gap_mm)
    return {c.id for c, n in zip(others, near, strict=True) if n}


def _popcorn_findings(
    macros: Sequence[Calcification], spacing_mm: tuple[float, float], t: DescribeThresholds
) -> list[MacroFinding]:
    """One finding per clump of coarse lobes (:func:`_popcorn_lobes`): popcorn-like, or
    dystrophic when the largest piece's whole outline is angular."""
    findings: list[MacroFinding] = []
    for lobes in _popcorn_lobes(macros, spacing_mm, t):
        ids = sorted(c.id for c in lobes)
        boxes = np.array([c.bbox_rc for c in lobes], dtype=np.float64)
        extent = float(
            max(
                (boxes[:, 2].max() - boxes[:, 0].min()) * spacing_mm[0],
                (boxes[:, 3].max() - boxes[:, 1].min()) * spacing_mm[1],
            )
        )
        centre = tuple(float(v) for v in np.mean([c.center_rc for c in lobes], axis=0))
        pattern, reasons = (
            Morphology.COARSE_POPCORN,
            [
                f"{len(lobes)} coarse lobes clumped within {extent:.1f} mm "
                f"(> {t.popcorn_mm} mm): coarse or popcorn-like calcification, as in an "
                "involuting fibroadenoma"
            ],
        )
        # the detector can break an angular plaque into touching pieces too: its whole
        # outline tells them apart
        form = coarse_form(max(lobes, key=lambda c: c.diameter_mm), t)
        if form is not None and form[0] is Morphology.DYSTROPHIC:
            pattern, reasons = (
                form[0],
                [
                    *form[1],
                    f"outlined by the detector as {len(lobes)} touching pieces",
                ],
            )
        findings.append(
            MacroFinding(
                id=len(findings) + 1,
                member_ids=tuple(ids),
                pattern=pattern,
                center_rc=(centre[0], centre[1]),
                size_mm=extent,
                reasons=tuple(reasons),
            )
        )
    return findings


def _single_findings(
    macros: Sequence[Calcification],
    findings: list[MacroFinding],
    breast: np.ndarray | None,
    pixel_mm: float,
    t: DescribeThresholds,
) -> list[MacroFinding]:
    """``findings`` followed by one finding per piece that no finding holds yet and that is a
    benign pattern by itself (:func:`~calcscope.reading.benign_patterns.macro_pattern`),
    largest first; a vascular track takes its parallel partner along."""
    found = list(findings)
    in_pattern = {i for f in findings for i in f.member_ids}
    for c in sorted(macros, key=lambda c: -c.diameter_mm):
        if c.id in in_pattern:
            continue
        res = macro_pattern(c, macros, skin_distance_mm(breast, c, pixel_mm), pixel_mm, t)
        if res is None:
            continue
        pattern, reasons = res
        ids = [c.id]
        if pattern is Morphology.VASCULAR:
            partner = parallel_partner(c, macros, pixel_mm, t)
            if partner is not None and partner.id not in in_pattern:
                ids.append(partner.id)
        in_pattern.update(ids)
        found.append(
            MacroFinding(
                id=len(found) + 1,
                member_ids=tuple(sorted(ids)),
                pattern=pattern,
                center_rc=c.center_rc,
                size_mm=c.max_diameter_mm,
                reasons=tuple(reasons),
            )
        )
    return found


def macro_findings(
    calcs: Sequence[Calcification],
    macros: Sequence[Calcification],
    spacing_mm: tuple[float, float],
    t: DescribeThresholds,
    *,
    breast: np.ndarray | None = None,
) -> list[MacroFinding]:
    """The benign macro findings among ``macros`` (the macrocalcifications of ``calcs`` that
    were detected), numbered 1, 2, ...

    Popcorn clumps first, then single pieces (largest first), then vessel segments merged
    into one finding per vessel, then satellites absorbed by their coarse deposit.
    ``spacing_mm`` is the (row, col) pixel spacing in mm; ``breast`` (the breast mask) lets
    a lucent piece near the skin line be called skin.
    """
    pixel_mm = float(np.sqrt(spacing_mm[0] * spacing_mm[1]))
    findings = _popcorn_findings(macros, spacing_mm, t)
    findings = _single_findings(macros, findings, breast, pixel_mm, t)
    by_id = {c.id: c for c in calcs}
    findings = _merge_vessel_segments(findings, by_id, spacing_mm, t)
    return _absorb_satellites(findings, macros, spacing_mm, t)


def satellite_ids(
    calcs: Sequence[Calcification],
    findings: Sequence[MacroFinding],
    kinds: dict[int, CalcKind],
    spacing_mm: tuple[float, float],
    t: DescribeThresholds,
) -> set[int]:
    """Ids of the calcifications that are pieces of a benign macro finding without being
    its members: those within ``pattern_fragment_mm`` of any finding, and the coarse pieces
    (possible ones too) within ``solitary_gap_mm`` of a popcorn or dystrophic deposit.

    Thin linear casts stay clusterable: a fine-linear cluster beside a fibroadenoma is
    still suspicious.
    """
    by_id = {c.id: c for c in calcs}
    fragments = pattern_fragments(calcs, findings, spacing_mm, t.pattern_fragment_mm)
    fragments |= pattern_fragments(
        calcs,
        [f for f in findings if _is_anchor(f, by_id, t)],
        spacing_mm,
        t.solitary_gap_mm,
        candidates=[c for c in calcs if kinds[c.id] is CalcKind.MACRO and not is_cast(c, t)],
    )
    return fragments


def solitary_macros(
    findings: Sequence[MacroFinding],
    kinds: dict[int, CalcKind],
    clusterable_ids: Sequence[int],
    clusters: Sequence[Cluster],
    calcs: Sequence[Calcification],
    spacing_mm: tuple[float, float],
    operating_score: float,
    t: DescribeThresholds,
) -> tuple[MacroFinding, ...]:
    """Coarse deposits of ``solitary_macro_mm`` up to ``cluster_max_member_mm`` that no
    reported cluster took: macrocalcifications in their own right (round when smooth,
    dystrophic when irregular), numbered after ``findings``.

    Larger ones are judged by :func:`macro_findings` already; those within
    ``solitary_gap_mm`` of a finding of ``findings`` are its satellites.
    """
    in_cluster = {i for cl in clusters for i in cl.member_ids}
    clusterable = set(clusterable_ids)
    near_pattern = pattern_fragments(calcs, findings, spacing_mm, t.solitary_gap_mm)
    found: list[MacroFinding] = []
    start = len(findings) + 1
    for c in sorted(calcs, key=lambda c: c.id):
        if (
            c.id in in_cluster
            or c.id in near_pattern
            or c.id not in clusterable
            or c.score < operating_score
            or kinds.get(c.id) is not CalcKind.MACRO
            or c.diameter_mm < t.solitary_macro_mm
        ):
            continue
        if is_irregular(c, t):
            pattern = Morphology.DYSTROPHIC
            reason = (
                f"solitary coarse irregular deposit {c.diameter_mm:.1f} mm across, in no "
                "cluster: dystrophic calcification, as after surgery, radiation or injury"
            )
        else:
            pattern = Morphology.ROUND
            reason = (
                f"solitary smooth round deposit {c.diameter_mm:.1f} mm across "
                f"(>= {t.solitary_macro_mm:g} mm), in no cluster: round calcification"
            )
        found.append(
            MacroFinding(
                id=start + len(found),
                member_ids=(c.id,),
                pattern=pattern,
                center_rc=c.center_rc,
                size_mm=c.max_diameter_mm,
                reasons=(reason,),
            )
        )
    return tuple(found)
