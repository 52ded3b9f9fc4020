"""Pairing the findings of the CC and MLO views of one breast, and their quadrant and clock.

A finding lies at about the same distance from the nipple on both views of a breast (the
"arc" or nipple-distance method of triangulation); the CC view tells outer from inner,
the MLO (ML, LM) view upper from lower, and the two together give the quadrant and the
clock face (BI-RADS atlas, 5th ed., "Location of lesion").

Moved here from :mod:`calcscope.reading.location` (which places a finding on one view):
:func:`calcscope.exam.build.build_exam` and the batch's ``breasts.csv`` use it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calcscope.model import Laterality
from calcscope.reading.location import CENTRAL_MM

__all__ = ["ViewFinding", "clock_face", "pair_views", "SUBAREOLAR_MM", "MAX_DIFFERENCE_MM"]

MAX_DIFFERENCE_MM = 15.0
"""Findings of the two views whose distances from the nipple differ by more are not paired."""
SUBAREOLAR_MM = 20.0
"""A central finding this close to the nipple is subareolar (behind the areola)."""


@dataclass(frozen=True)
class ViewFinding:
    """One finding on one view, as a cross-view pairing needs it.

    ``offset_mm`` is the signed distance from the posterior nipple line (+ outer on a CC
    view, + upper on an MLO view). The fields after ``likelihood`` (optional, for records
    written by earlier versions) describe the finding for the exam model.
    """

    image: str
    finding_id: int
    nipple_distance_mm: float
    offset_mm: float
    morphology: str
    category: str
    likelihood: float
    kind: str = "cluster"  # "cluster" or "macro"
    follow_up: str | None = None
    reason: str = ""
    depth: str | None = None
    score: float | None = None
    distribution: str | None = None
    n_calcifications: int | None = None
    half: str | None = None
    extent_mm: float | None = None  # a cluster's extent (longest member distance + size)


def clock_face(
    laterality: Laterality, outer_mm: float, upper_mm: float, central_mm: float = CENTRAL_MM
) -> tuple[str, int | None]:
    """Quadrant and clock-face hour of a finding ``outer_mm`` outwards (CC view) and
    ``upper_mm`` upwards (MLO view) of the nipple.

    The clock is read facing the patient: 12 o'clock up, the right breast's outer side at
    9 o'clock and the left breast's at 3 o'clock (BI-RADS atlas). Within ``central_mm`` of
    the nipple on both views the finding is "central" (no hour); within it on one view
    only, it lies between two quadrants ("upper", "outer", ...).
    """
    outer_c, upper_c = abs(outer_mm) < central_mm, abs(upper_mm) < central_mm
    vertical = "upper" if upper_mm > 0 else "lower"
    horizontal = "outer" if outer_mm > 0 else "inner"
    if outer_c and upper_c:
        return "central", None
    if outer_c:
        quadrant = vertical
    elif upper_c:
        quadrant = horizontal
    else:
        quadrant = f"{vertical} {horizontal}"
    # viewer's x axis: to the viewer's right; the right breast's outer side is on the left
    x = outer_mm if laterality is Laterality.LEFT else -outer_mm
    angle = float(np.degrees(np.arctan2(upper_mm, x)))
    hour = int(round((90.0 - angle) / 30.0)) % 12
    return quadrant, 12 if hour == 0 else hour


def pair_views(
    cc: list[ViewFinding], mlo: list[ViewFinding], max_difference_mm: float = MAX_DIFFERENCE_MM
) -> list[tuple[ViewFinding, ViewFinding]]:
    """Findings of a CC and an MLO view of one breast that are likely the same.

    Pairs whose distances from the nipple differ by at most ``max_difference_mm`` are
    taken greedily, closest first, preferring the same morphology; each finding joins
    one pair at most. Returned in the order of the CC findings (image, finding id).
    """
    options = sorted(
        (
            abs(a.nipple_distance_mm - b.nipple_distance_mm),
            a.morphology != b.morphology,
            i,
            j,
        )
        for i, a in enumerate(cc)
        for j, b in enumerate(mlo)
        if abs(a.nipple_distance_mm - b.nipple_distance_mm) <= max_difference_mm
    )
    used_a: set[int] = set()
    used_b: set[int] = set()
    pairs = []
    for _, _, i, j in options:
        if i in used_a or j in used_b:
            continue
        used_a.add(i)
        used_b.add(j)
        pairs.append((cc[i], mlo[j]))
    return sorted(pairs, key=lambda p: (p[0].image, p[0].finding_id))
