"""BI-RADS description: size class, benign macro patterns, cluster morphology and distribution.

Rules and thresholds follow the ACR BI-RADS Atlas, 5th edition (2013), mammography
section "Calcifications", as summarised by the Radiology Assistant (Kopans/Hofvind-era
review: "Breast - Calcifications: differential diagnosis and BI-RADS", radiologyassistant.nl)
and by Demetri-Lewis A, Slanetz PJ, Eisenberg RL, "Breast calcifications: the focal group",
AJR 2012;198:W325-W343. Each threshold lives in
:class:`calcscope.reading.thresholds.DescribeThresholds` with its source, and can be set in the
configuration (``describe.thresholds``).
Every description carries the reasons it was chosen, in a radiologist's words.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

import cv2
import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree
from scipy.stats import spearmanr
from skimage.morphology import skeletonize

from calcscope.config import DescribeConfig, DetectConfig
from calcscope.model import Calcification, CalcKind, Cluster, Distribution, Morphology
from calcscope.reading.thresholds import DescribeThresholds

_T = TypeVar("_T")

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
class MacroFinding:
    """A macrocalcification (or a set of pieces) recognised as a benign pattern."""

    id: int
    member_ids: tuple[int, ...]
    pattern: Morphology
    center_rc: tuple[float, float]
    size_mm: float
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class ClusterDescription:
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
    kinds: dict[int, CalcKind]
    macros: tuple[MacroFinding, ...]
    clusters: tuple[ClusterDescription, ...]
    clusterable_ids: tuple[int, ...]
    macro_threshold_mm: float


def classify_kind(calc: Calcification, config: DescribeConfig) -> CalcKind:
    """Macro when the equivalent diameter reaches ``config.macro_threshold_mm``."""
    return CalcKind.MACRO if calc.diameter_mm >= config.macro_threshold_mm else CalcKind.MICRO


def _orientation(calc: Calcification) -> float:
    pts = calc.contour_rc.astype(np.float64)
    if len(pts) < 3:
        return 0.0
    pts = pts - pts.mean(0)
    cov = pts.T @ pts
    w, v = np.linalg.eigh(cov)
    major = v[:, int(np.argmax(w))]
    return float(np.arctan2(major[0], major[1]))


def _is_elongated(c: Calcification) -> bool:
    return c.elongation >= 0.6 and c.max_diameter_mm >= 3.0


def _parallel_partner(
    c: Calcification, others: Sequence[Calcification], spacing: float, t: DescribeThresholds
) -> Calcification | None:
    a = _orientation(c)
    ca = np.array(c.center_rc) * spacing
    direction = np.array([np.sin(a), np.cos(a)])
    normal = np.array([direction[1], -direction[0]])
    for o in others:
        if o.id == c.id or not _is_elongated(o):
            continue
        da = abs(np.angle(np.exp(2j * (a - _orientation(o))))) / 2
        if da > np.deg2rad(20):
            continue
        d = np.array(o.center_rc) * spacing - ca
        along, across = abs(float(d @ direction)), abs(float(d @ normal))
        if t.vascular_gap_mm[0] <= across <= t.vascular_gap_mm[1] and along <= max(
            c.max_diameter_mm, o.max_diameter_mm
        ):
            return o
    return None


def _is_irregular(c: Calcification, t: DescribeThresholds) -> bool:
    """A coarse deposit with an irregular outline (dystrophic) rather than a smooth one
    (round); see ``dystrophic_solidity`` and ``dystrophic_circularity``."""
    return c.solidity < t.dystrophic_solidity or c.circularity < t.dystrophic_circularity


def _coarse_form(c: Calcification, t: DescribeThresholds) -> tuple[Morphology, list[str]] | None:
    """Round (compact and smooth), dystrophic (angular) or popcorn (lobulated) from a
    coarse deposit's whole outline (see ``angular_corner_fraction`` and the thresholds
    after it); None when the outline was not measured, or for a deposit of
    ``lobulated_mm`` or less that is neither round nor angular."""
    dep = c.deposit
    if dep is None:
        return None
    angular = [
        dep.corner_fraction >= t.angular_corner_fraction,
        dep.straight_fraction >= t.angular_straight_fraction,
        dep.inscribed_ratio >= t.compact_inscribed_ratio,
    ]
    shape = (
        f"sharp corners on {dep.corner_fraction:.0%} and straight edges on "
        f"{dep.straight_fraction:.0%} of its outline, largest inscribed disc "
        f"{dep.inscribed_ratio:.0%} of its size"
    )
    if (
        dep.corner_fraction < t.angular_corner_fraction
        and dep.inscribed_ratio >= t.round_inscribed_ratio
    ):
        return Morphology.ROUND, [
            f"smooth round deposit {dep.size_mm:.1f} mm across ({shape}): round calcification"
        ]
    if sum(angular) >= 2 or dep.corner_fraction >= t.angular_corner_alone:
        return Morphology.DYSTROPHIC, [
            f"coarse angular deposit {dep.size_mm:.1f} mm across ({shape}): dystrophic "
            "calcification, as after surgery, radiation or injury"
        ]
    if dep.size_mm > t.lobulated_mm:
        return Morphology.COARSE_POPCORN, [
            f"coarse lobulated deposit {dep.size_mm:.1f} mm across ({shape}: rounded lobes, "
            f"> {t.lobulated_mm:g} mm): coarse or popcorn-like calcification, as in an "
            "involuting fibroadenoma"
        ]
    return None


def _macro_pattern(
    c: Calcification,
    macros: Sequence[Calcification],
    skin_distance_mm: float,
    spacing: float,
    t: DescribeThresholds,
) -> tuple[Morphology, list[str]] | None:
    d = c.diameter_mm
    if c.lucent_center and skin_distance_mm <= t.skin_mm and c.max_diameter_mm <= t.skin_max_mm:
        return Morphology.SKIN, [
            f"lucent-centred {c.max_diameter_mm:.1f} mm calcification {skin_distance_mm:.1f} mm "
            f"from the skin line (<= {t.skin_mm:.0f} mm): skin (dermal) calcification; a "
            "tangential view confirms it if needed"
        ]
    if c.lucent_center and c.max_diameter_mm >= t.rim_mm:
        return Morphology.RIM_EGGSHELL, [
            f"thin calcified rim around a lucent centre, {c.max_diameter_mm:.1f} mm across: rim "
            "(eggshell) calcification, as in an oil cyst or fat necrosis"
        ]
    if _is_elongated(c):
        if (
            c.min_diameter_mm >= t.rod_width_mm
            and c.max_diameter_mm >= t.rod_length_mm
            and c.solidity >= t.rod_solidity
        ):
            return Morphology.LARGE_ROD_LIKE, [
                f"solid rod {c.max_diameter_mm:.1f} mm long and {c.min_diameter_mm:.1f} mm wide "
                f"(>= {t.rod_width_mm} mm, thicker than a vessel wall): large rod-like "
                "(secretory) calcification along a duct"
            ]
        partner = _parallel_partner(c, macros, spacing, t)
        if partner is not None:
            return Morphology.VASCULAR, [
                f"two parallel thin tubular tracks ({c.max_diameter_mm:.0f} and "
                f"{partner.max_diameter_mm:.0f} mm long, {c.min_diameter_mm:.1f} mm wide): "
                "vascular calcification of an ageing artery"
            ]
        if c.max_diameter_mm >= t.vascular_length_mm:
            return Morphology.VASCULAR, [
                f"long thin tubular track ({c.max_diameter_mm:.0f} mm): vascular calcification"
            ]
    # the whole outline judges a large or irregular piece, and a smooth one whose
    # deposit is not round (a lobe of a popcorn clump)
    not_round = c.deposit is not None and c.deposit.inscribed_ratio < t.round_inscribed_ratio
    if d > t.popcorn_mm or (d >= t.cluster_max_member_mm and (_is_irregular(c, t) or not_round)):
        form = _coarse_form(c, t)
        if form is not None:
            return form
    if d > t.popcorn_mm:
        return Morphology.COARSE_POPCORN, [
            f"coarse deposit {d:.1f} mm across (> {t.popcorn_mm} mm): coarse or popcorn-like "
            "calcification, as in an involuting fibroadenoma"
        ]
    if d >= t.cluster_max_member_mm:
        if _is_irregular(c, t):
            return Morphology.DYSTROPHIC, [
                f"coarse irregular deposit {d:.1f} mm across: dystrophic calcification, as after "
                "surgery, radiation or injury"
            ]
        return Morphology.ROUND, [f"smooth round deposit {d:.1f} mm across: round calcification"]
    return None


def _skin_distance_mm(breast: np.ndarray | None, calc: Calcification, pixel_mm: float) -> float:
    if breast is None:
        return float("inf")
    r0, c0, r1, c1 = calc.bbox_rc
    pad = 200
    R0, C0 = max(0, r0 - pad), max(0, c0 - pad)
    R1, C1 = min(breast.shape[0], r1 + pad), min(breast.shape[1], c1 + pad)
    patch = np.pad(breast[R0:R1, C0:C1].astype(np.uint8), 0)
    if patch.all():  # no skin line within the padded box
        return float("inf")
    dist = cv2.distanceTransform(patch, cv2.DIST_L2, 3)
    r = int(np.clip(round(calc.center_rc[0]) - R0, 0, patch.shape[0] - 1))
    c = int(np.clip(round(calc.center_rc[1]) - C0, 0, patch.shape[1] - 1))
    return float(dist[r, c]) * pixel_mm


def _skeleton_ends(calc: Calcification) -> tuple[int, float]:
    """End points of the outline's skeleton (2 for a line, >= 3 when it branches) and the
    outline's greatest width in pixels (twice its largest inscribed radius).

    Spurs shorter than about half the outline's width are pruned first, so a blob with a
    ragged outline does not count as branching.
    """
    pts = calc.contour_rc.astype(np.int64)
    if len(pts) < 3:
        return 0, float(len(pts))
    lo = pts.min(0) - 2
    size = pts.max(0) - lo + 3
    mask = np.zeros((int(size[0]), int(size[1])), np.uint8)
    cv2.drawContours(mask, [(pts - lo)[:, None, ::-1].astype(np.int32)], -1, 1, -1)
    skel = skeletonize(mask > 0).astype(np.uint8)
    kernel = np.ones((3, 3), np.float32)
    radius_px = float(cv2.distanceTransform(mask, cv2.DIST_L2, 3).max())
    for _ in range(max(1, int(radius_px))):  # prune short spurs
        nb = cv2.filter2D(skel, -1, kernel, borderType=cv2.BORDER_CONSTANT) - skel
        ends = (skel == 1) & (nb == 1)
        if ends.sum() <= 2:
            break
        skel[ends] = 0
    nb = cv2.filter2D(skel, -1, kernel, borderType=cv2.BORDER_CONSTANT) - skel
    return int(((skel == 1) & (nb == 1)).sum()), 2.0 * radius_px


def judged_members(members: Sequence[Calcification], operating_score: float) -> list[Calcification]:
    """The members whose shape describes a cluster: those detected at the operating point
    (``score >= operating_score``) when there are at least 3 of them, else all members
    (possible calcifications included)."""
    sure = [m for m in members if m.score >= operating_score]
    return sure if len(sure) >= 3 else list(members)


def cluster_morphology(
    members: Sequence[Calcification], pixel_mm: float, t: DescribeThresholds
) -> tuple[Morphology, bool, list[str], float, float]:
    """BI-RADS morphology of a cluster from its members' sizes and shapes.

    ``members`` are the calcifications to judge (see :func:`judged_members`). Sizes are
    greatest dimensions (``max_diameter_mm``), as a radiologist measures them.

    Returns (morphology, confident, reasons, median greatest dimension in mm, size
    variation: coefficient of variation of the greatest dimensions).
    """
    length = np.array([m.max_diameter_mm for m in members])
    width = np.array([m.min_diameter_mm for m in members])
    elong = np.array([m.elongation for m in members])
    circ = np.array([m.circularity for m in members])
    cnr = np.array([m.cnr for m in members])
    med = float(np.median(length))
    upper = float(np.percentile(length, 75))
    cv = float(length.std() / max(length.mean(), 1e-6))
    med_circ = float(np.median(circ))
    # irregular outline: the sub-pixel iso-contour where the detector measured it on most
    # members, else the pixel outline
    iso = [m.contour_circularity for m in members if m.contour_circularity is not None]
    if 2 * len(iso) > len(members):
        med_iso = float(np.median(iso))
        irregular = med_iso < t.irregular_contour_circularity
        outline = f"median outline circularity {med_iso:.3f}"
    else:
        irregular = med_circ < t.irregular_circularity
        outline = f"median circularity {med_circ:.2f}"
    # a shape needs a few pixels across to be judged
    confident = bool(med / pixel_mm >= t.shape_min_px)
    reasons: list[str] = []
    thin = width < t.fine_linear_width_mm
    long_enough = length >= max(t.linear_min_length_mm, 4 * pixel_mm)
    linear = thin & long_enough & (elong >= t.linear_elongation)
    shapes = [
        _skeleton_ends(m) if lg else (0, 0.0) for m, lg in zip(members, long_enough, strict=True)
    ]
    branched = np.array(
        [ends >= 3 and w * pixel_mm < t.fine_linear_width_mm for ends, w in shapes], dtype=bool
    )
    casts = linear | branched
    frac_casts = float(casts.mean())
    # the most worrisome form present sets the morphology: a few branching casts among
    # many specks (or among pieces of the same casts) still make it fine-linear branching
    branching_present = casts.sum() >= t.linear_min_casts and branched.sum() >= t.branching_min
    if frac_casts >= t.linear_fraction or branching_present:
        frac_branch = float(branched.sum() / max(casts.sum(), 1))
        is_branching = frac_branch >= t.branching_fraction
        reasons.append(
            f"{int(casts.sum())} of {len(members)} calcifications are thin (< "
            f"{t.fine_linear_width_mm} mm wide) linear casts"
            + (
                f", {int(branched.sum())} of them branching: fine-linear branching"
                if is_branching
                else f" ({int(branched.sum())} branching): fine linear"
            )
        )
        morph = Morphology.FINE_LINEAR_BRANCHING if is_branching else Morphology.FINE_LINEAR
    elif med >= t.coarse_heterogeneous_mm and irregular:
        morph = Morphology.COARSE_HETEROGENEOUS
        reasons.append(
            f"irregular ({outline}), conspicuous calcifications, "
            f"median {med:.2f} mm (>= {t.coarse_heterogeneous_mm} mm): coarse heterogeneous"
        )
    elif med < t.amorphous_mm and float(np.median(cnr)) < t.amorphous_cnr:
        morph = Morphology.AMORPHOUS
        reasons.append(
            f"small (median {med:.2f} mm) and faint (median contrast-to-noise "
            f"{float(np.median(cnr)):.1f} < {t.amorphous_cnr:.0f}) calcifications whose shape "
            "cannot be defined: amorphous"
        )
    elif upper >= t.round_mm:
        morph = Morphology.ROUND
        reasons.append(
            f"smooth round calcifications, a quarter or more {t.round_mm} mm or larger (upper "
            f"quartile {upper:.2f} mm): round"
        )
    elif cv > t.pleomorphic_cv or med_circ < t.pleomorphic_circularity:
        morph = Morphology.FINE_PLEOMORPHIC
        reasons.append(
            f"calcifications under {t.round_mm} mm varying in size (variation {cv:.0%}) and "
            f"shape (median circularity {med_circ:.2f}): fine pleomorphic"
        )
    else:
        morph = Morphology.PUNCTATE
        reasons.append(
            f"uniform round calcifications under {t.round_mm} mm (median {med:.2f} mm, "
            f"variation {cv:.0%}): punctate (round, < 0.5 mm)"
        )
    if not confident:
        reasons.append(
            f"members span about {med / pixel_mm:.1f} pixels at {pixel_mm:.2f} mm/pixel: the shape "
            "cannot be judged reliably; magnification views are needed"
        )
    return morph, confident, reasons, med, cv


def cluster_distribution(
    cluster: Cluster,
    members: Sequence[Calcification],
    spacing_mm: tuple[float, float],
    t: DescribeThresholds,
    nipple_rc: tuple[float, float] | None = None,
) -> tuple[Distribution, list[str]]:
    """BI-RADS distribution of a cluster from the geometry of its member centres.

    ``members`` are the calcifications to judge (see :func:`judged_members`); the extent
    is the longest distance between two of them plus their half sizes (``cluster`` gives
    it only when ``members`` is empty). With ``nipple_rc`` (pixels) a segmental spread
    must point at the nipple.
    """
    pts = np.array(
        [(m.center_rc[0] * spacing_mm[0], m.center_rc[1] * spacing_mm[1]) for m in members]
    ).reshape(-1, 2)
    if len(pts) < 2:
        return Distribution.GROUPED, [f"{len(pts)} calcification(s): grouped"]
    size = np.array([m.max_diameter_mm for m in members])
    gaps = np.sqrt(((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1))
    extent = float((gaps + (size[:, None] + size[None, :]) / 2).max())
    centre = pts.mean(0)
    pts = pts - centre
    w, vecs = np.linalg.eigh(pts.T @ pts / len(pts))
    major = 4 * np.sqrt(max(w[1], 0.0))
    minor = 4 * np.sqrt(max(w[0], 0.0))
    ratio = major / max(minor, 0.5)
    off_axis = None  # angle (deg) between the long axis and the line to the nipple
    if nipple_rc is not None:
        to_nipple = np.array(nipple_rc) * np.array(spacing_mm) - centre
        if np.hypot(*to_nipple) > 1e-6:
            cos = abs(float(vecs[:, 1] @ to_nipple)) / float(np.hypot(*to_nipple))
            off_axis = float(np.degrees(np.arccos(min(cos, 1.0))))
    if ratio >= t.linear_ratio and minor < t.linear_width_mm and major >= 5.0:
        return Distribution.LINEAR, [
            f"calcifications arranged in a line ({major:.0f} x {minor:.1f} mm, axes "
            f"{ratio:.1f} : 1): linear distribution, suggesting deposits in one duct"
        ]
    towards_nipple = off_axis is None or off_axis <= t.segmental_axis_deg
    if extent > t.regional_mm and ratio >= t.segmental_ratio and towards_nipple:
        return Distribution.SEGMENTAL, [
            f"calcifications in an elongated area {major:.0f} x {minor:.0f} mm (> "
            f"{t.regional_mm:.0f} mm long, wider than one duct"
            + ("" if off_axis is None else f", long axis {off_axis:.0f} deg off the nipple")
            + "): segmental distribution, a duct and its branches"
        ]
    wedge = (
        _wedge_from_nipple(pts, np.array(nipple_rc) * np.array(spacing_mm) - centre)
        if nipple_rc is not None and extent > t.regional_mm
        else None
    )
    if wedge is not None and wedge[0] >= t.segmental_wedge_rho and wedge[1] <= t.segmental_cone_deg:
        return Distribution.SEGMENTAL, [
            f"calcifications in a wedge {major:.0f} x {minor:.0f} mm (> {t.regional_mm:.0f} mm) "
            f"that widens away from the nipple (rank correlation {wedge[0]:.2f}) within a "
            f"{wedge[1]:.0f} deg cone seen from it: segmental distribution, the ducts of one "
            "lobe converging on the nipple"
        ]
    if extent > t.regional_mm:
        why = "not along a duct"
        if ratio >= t.segmental_ratio and off_axis is not None:
            why = (
                f"elongated, but its long axis turns {off_axis:.0f} deg (> "
                f"{t.segmental_axis_deg:.0f} deg) away from the nipple, so not a segment"
            )
        return Distribution.REGIONAL, [
            f"calcifications scattered over {extent:.0f} mm (> {t.regional_mm:.0f} mm), "
            f"{why}: regional"
        ]
    return Distribution.GROUPED, [
        f"{len(members)} calcifications within {extent:.0f} mm (<= {t.regional_mm:.0f} mm): "
        "grouped" + ("" if len(members) >= 5 else " (fewer than the 5 the BI-RADS term asks for)")
    ]


def _wedge_from_nipple(pts: np.ndarray, nipple: np.ndarray) -> tuple[float, float] | None:
    """How far member centres ``pts`` (mm, about their mean) form a triangle with its apex
    towards ``nipple`` (mm, same frame): the rank correlation of each member's distance
    from the nipple along the line to the spread's centre with its offset from the
    members' median line (positive: the spread widens away from the nipple), and the
    10-90 % range of the members' bearings seen from the nipple (degrees). None with
    fewer than 4 members or the nipple inside the spread."""
    dist = float(np.hypot(*nipple))
    if len(pts) < 4 or dist < 1e-6:
        return None
    away = -nipple / dist
    across = np.array([-away[1], away[0]])
    rel = pts - nipple
    along, side = rel @ away, rel @ across
    if along.min() <= 0:
        return None
    offset = np.abs(side - np.median(side))
    if np.ptp(offset) == 0 or np.ptp(along) == 0:
        return None
    rho = float(spearmanr(along, offset).statistic)
    bearing = np.degrees(np.arctan2(side, along))
    return rho, float(np.percentile(bearing, 90) - np.percentile(bearing, 10))


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
        c for c in macros if not c.lucent_center and not _is_elongated(c) and not _is_cast(c, t)
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
    return (np.hypot(dr, dc) <= gap_mm).any(axis=1)


def _member_boxes(
    findings: Sequence[MacroFinding],
    by_id: dict[int, Calcification],
    spacing_mm: tuple[float, float],
) -> np.ndarray:
    sr, sc = spacing_mm
    return np.array(
        [by_id[i].bbox_rc for f in findings for i in f.member_ids], dtype=np.float64
    ).reshape(-1, 4) * np.array([sr, sc, sr, sc])


def _is_cast(c: Calcification, t: DescribeThresholds) -> bool:
    """A thin linear cast (``fine_linear_width_mm``, ``linear_elongation``): whatever its
    area, never a lobe or a satellite of a benign deposit (fine-linear casts side by side
    are a suspicious cluster, not a popcorn calcification)."""
    return c.min_diameter_mm < t.fine_linear_width_mm and c.elongation >= t.linear_elongation


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
    casts (:func:`_is_cast`) never are.
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
            and not _is_cast(c, t)
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


def _pattern_fragments(
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
    pixel_mm = float(np.sqrt(spacing_mm[0] * spacing_mm[1]))
    kinds = {c.id: classify_kind(c, cfg) for c in calcs}
    macros = [c for c in calcs if kinds[c.id] is CalcKind.MACRO and c.score >= operating_score]
    findings: list[MacroFinding] = []
    in_pattern: set[int] = set()
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
        in_pattern.update(ids)
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
        form = _coarse_form(max(lobes, key=lambda c: c.diameter_mm), t)
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
    for c in sorted(macros, key=lambda c: -c.diameter_mm):
        if c.id in in_pattern:
            continue
        res = _macro_pattern(c, macros, _skin_distance_mm(breast, c, pixel_mm), pixel_mm, t)
        if res is None:
            continue
        pattern, reasons = res
        ids = [c.id]
        if pattern is Morphology.VASCULAR:
            partner = _parallel_partner(c, macros, pixel_mm, t)
            if partner is not None and partner.id not in in_pattern:
                ids.append(partner.id)
        in_pattern.update(ids)
        findings.append(
            MacroFinding(
                id=len(findings) + 1,
                member_ids=tuple(sorted(ids)),
                pattern=pattern,
                center_rc=c.center_rc,
                size_mm=c.max_diameter_mm,
                reasons=tuple(reasons),
            )
        )
    by_id = {c.id: c for c in calcs}
    findings = _merge_vessel_segments(findings, by_id, spacing_mm, t)
    findings = _absorb_satellites(findings, macros, spacing_mm, t)
    in_pattern = {i for f in findings for i in f.member_ids}
    fragments = _pattern_fragments(calcs, findings, spacing_mm, t.pattern_fragment_mm)
    # coarse pieces (possible ones too) around a popcorn or dystrophic deposit are its
    # satellites, never members of a cluster of microcalcifications; thin linear casts
    # stay clusterable (a fine-linear cluster beside a fibroadenoma is still suspicious)
    fragments |= _pattern_fragments(
        calcs,
        [f for f in findings if _is_anchor(f, by_id, t)],
        spacing_mm,
        t.solitary_gap_mm,
        candidates=[c for c in calcs if kinds[c.id] is CalcKind.MACRO and not _is_cast(c, t)],
    )
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


_DIFFUSE_FORMS = (Morphology.PUNCTATE, Morphology.ROUND, Morphology.AMORPHOUS)


def diffuse_spread(
    calcs: Sequence[Calcification],
    breast: np.ndarray,
    spacing_mm: tuple[float, float],
    t: DescribeThresholds,
) -> str | None:
    """The reason why ``calcs`` (the detected calcifications that may belong to a
    cluster) are scattered at random throughout ``breast``, or None when they are not.

    Diffuse calcifications are "distributed randomly throughout the breast" (BI-RADS
    atlas). Two measures, both needed, with at least ``diffuse_min_count`` of them:
    *randomness*, the Clark-Evans ratio of their mean nearest-neighbour distance to the
    one expected of as many points placed at random over the breast (0.5 sqrt(area /
    n); about 1 for random points, well under 1 for grouped ones), at least
    ``diffuse_randomness``; and *spread*, the root-mean-square distance of the
    calcifications from their centre over that of the breast's pixels, at least
    ``diffuse_spread``.
    """
    if len(calcs) < t.diffuse_min_count or not breast.any():
        return None
    scale = np.array(spacing_mm, dtype=np.float64)
    pts = np.array([c.center_rc for c in calcs], dtype=np.float64) * scale
    step = max(1, int(round(1.0 / float(scale.min()))))  # breast sampled every ~1 mm
    inside = np.argwhere(breast[::step, ::step]).astype(np.float64) * step * scale
    area_mm2 = float(breast.sum()) * float(scale.prod())
    dist, _ = cKDTree(pts).query(pts, k=2)
    ratio = float(dist[:, 1].mean()) / (0.5 * np.sqrt(area_mm2 / len(pts)))
    spread = float(
        np.sqrt(
            ((pts - pts.mean(0)) ** 2).sum(1).mean()
            / ((inside - inside.mean(0)) ** 2).sum(1).mean()
        )
    )
    if ratio < t.diffuse_randomness or spread < t.diffuse_spread:
        return None
    return (
        f"{len(pts)} calcifications scattered throughout the breast (nearest-neighbour "
        f"distance {ratio:.2f} times that of random points, spread {spread:.2f} of the "
        "breast's): diffuse distribution"
    )


def _solitary_macros(
    description: Description,
    clusters: Sequence[Cluster],
    calcs: Sequence[Calcification],
    spacing_mm: tuple[float, float],
    operating_score: float,
    t: DescribeThresholds,
) -> tuple[MacroFinding, ...]:
    """Coarse deposits of ``solitary_macro_mm`` up to ``cluster_max_member_mm`` that no
    reported cluster took: macrocalcifications in their own right (round when smooth,
    dystrophic when irregular). Larger ones are judged by :func:`describe` already; those
    within ``solitary_gap_mm`` of a benign macro finding are its satellites."""
    in_cluster = {i for cl in clusters for i in cl.member_ids}
    clusterable = set(description.clusterable_ids)
    near_pattern = _pattern_fragments(calcs, description.macros, spacing_mm, t.solitary_gap_mm)
    found: list[MacroFinding] = []
    start = len(description.macros) + 1
    for c in sorted(calcs, key=lambda c: c.id):
        if (
            c.id in in_cluster
            or c.id in near_pattern
            or c.id not in clusterable
            or c.score < operating_score
            or description.kinds.get(c.id) is not CalcKind.MACRO
            or c.diameter_mm < t.solitary_macro_mm
        ):
            continue
        if _is_irregular(c, t):
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
        if diffuse is not None and morph in _DIFFUSE_FORMS:
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
        + _solitary_macros(description, clusters, calcs, spacing_mm, op, t),
        clusters=tuple(out),
        clusterable_ids=description.clusterable_ids,
        macro_threshold_mm=description.macro_threshold_mm,
    )
