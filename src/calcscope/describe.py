"""BI-RADS description: size class, benign macro patterns, cluster morphology and distribution.

Rules and thresholds follow the ACR BI-RADS Atlas, 5th edition (2013), mammography
section "Calcifications", as summarised by the Radiology Assistant (Kopans/Hofvind-era
review: "Breast - Calcifications: differential diagnosis and BI-RADS", radiologyassistant.nl)
and by Demetri-Lewis A, Slanetz PJ, Eisenberg RL, "Breast calcifications: the focal group",
AJR 2012;198:W325-W343. Each threshold lives in :class:`DescribeThresholds` with its source.
Every description carries the reasons it was chosen, in a radiologist's words.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from calcscope.config import DescribeConfig
from calcscope.model import Calcification, CalcKind, Cluster, Distribution, Morphology

__all__ = [
    "DescribeThresholds",
    "MacroFinding",
    "ClusterDescription",
    "Description",
    "classify_kind",
    "describe",
]


@dataclass(frozen=True)
class DescribeThresholds:
    """Thresholds of the description rules, in millimetres.

    Attributes
    ----------
    popcorn_mm
        Coarse or popcorn-like calcifications are > 2-3 mm (BI-RADS atlas; Radiology
        Assistant: "coarse or popcorn-like ... larger than 2-3 mm"); we use 2.5 mm.
    rod_width_mm
        Large rod-like calcifications are >= 1 mm in diameter (BI-RADS atlas). Measured
        widths of blurred rods fall a little short, so 0.8 mm is accepted.
    rod_length_mm, vascular_length_mm
        Minimum length of a rod, and of a single vessel-wall track without its parallel
        partner (vascular calcifications are long parallel tracks, BI-RADS atlas).
    vascular_gap_mm
        Two parallel tracks this far apart are the two walls of one vessel (breast
        arteries are about 1-4 mm wide).
    skin_mm
        Skin (dermal) calcifications lie within the skin, at most a few mm from the skin
        line, and have lucent centres (BI-RADS atlas).
    coarse_heterogeneous_mm
        Coarse heterogeneous calcifications are irregular, generally 0.5-1 mm (BI-RADS
        atlas); clusters whose median member exceeds 0.5 mm are called so.
    amorphous_mm
        Amorphous calcifications are so small and hazy that their shape cannot be
        determined (BI-RADS atlas); members under 0.3 mm with low contrast.
    fine_linear_width_mm
        Fine linear or fine-linear branching calcifications are thin (< 0.5 mm) linear
        casts of a duct (BI-RADS atlas).
    linear_ratio
        A cluster is in a linear distribution when its long axis is at least this many
        times its short axis (arranged in a line, BI-RADS atlas).
    regional_mm
        Regional: spread over more than 2 cm in greatest dimension (BI-RADS atlas).
    """

    popcorn_mm: float = 2.5
    rod_width_mm: float = 0.8
    rod_length_mm: float = 3.0
    vascular_length_mm: float = 10.0
    vascular_gap_mm: tuple[float, float] = (0.5, 4.0)
    skin_mm: float = 3.0
    coarse_heterogeneous_mm: float = 0.5
    amorphous_mm: float = 0.3
    fine_linear_width_mm: float = 0.5
    linear_ratio: float = 3.0
    regional_mm: float = 20.0
    cluster_max_member_mm: float = 1.0


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


def _macro_pattern(
    c: Calcification,
    macros: Sequence[Calcification],
    skin_distance_mm: float,
    spacing: float,
    t: DescribeThresholds,
) -> tuple[Morphology, list[str]] | None:
    d = c.diameter_mm
    if c.lucent_center and skin_distance_mm <= t.skin_mm:
        return Morphology.SKIN, [
            f"lucent-centred {d:.1f} mm calcification {skin_distance_mm:.1f} mm from the skin "
            "line: skin (dermal) calcification"
        ]
    if c.lucent_center and d >= 1.0:
        return Morphology.RIM_EGGSHELL, [
            f"thin calcified rim around a lucent centre, {d:.1f} mm across: rim (eggshell) "
            "calcification, as in an oil cyst or fat necrosis"
        ]
    if _is_elongated(c):
        partner = _parallel_partner(c, macros, spacing, t)
        if partner is not None:
            return Morphology.VASCULAR, [
                f"two parallel tubular tracks ({c.max_diameter_mm:.0f} and "
                f"{partner.max_diameter_mm:.0f} mm long): vascular calcification of an ageing "
                "artery"
            ]
        if c.min_diameter_mm >= t.rod_width_mm and c.max_diameter_mm >= t.rod_length_mm:
            return Morphology.LARGE_ROD_LIKE, [
                f"solid rod {c.max_diameter_mm:.1f} mm long and {c.min_diameter_mm:.1f} mm wide: "
                "large rod-like (secretory) calcification along a duct"
            ]
        if c.max_diameter_mm >= t.vascular_length_mm:
            return Morphology.VASCULAR, [
                f"long thin tubular track ({c.max_diameter_mm:.0f} mm): vascular calcification"
            ]
    if d > t.popcorn_mm:
        return Morphology.COARSE_POPCORN, [
            f"coarse deposit {d:.1f} mm across (> {t.popcorn_mm} mm): coarse or popcorn-like "
            "calcification, as in an involuting fibroadenoma"
        ]
    if d >= t.cluster_max_member_mm:
        if c.solidity < 0.8 or c.circularity < 0.6:
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
    dist = cv2.distanceTransform(patch, cv2.DIST_L2, 3)
    r = int(np.clip(round(calc.center_rc[0]) - R0, 0, patch.shape[0] - 1))
    c = int(np.clip(round(calc.center_rc[1]) - C0, 0, patch.shape[1] - 1))
    return float(dist[r, c]) * pixel_mm


def cluster_morphology(
    members: Sequence[Calcification], pixel_mm: float, t: DescribeThresholds
) -> tuple[Morphology, bool, list[str], float, float]:
    """BI-RADS morphology of a cluster from its members' sizes and shapes.

    Returns (morphology, confident, reasons, median diameter in mm, size variation).
    """
    diam = np.array([m.diameter_mm for m in members])
    width = np.array([m.min_diameter_mm for m in members])
    length = np.array([m.max_diameter_mm for m in members])
    elong = np.array([m.elongation for m in members])
    circ = np.array([m.circularity for m in members])
    solid = np.array([m.solidity for m in members])
    cnr = np.array([m.cnr for m in members])
    med = float(np.median(diam))
    cv = float(diam.std() / max(diam.mean(), 1e-6))
    # a shape needs a few pixels across to be judged
    confident = bool(med / pixel_mm >= 3.0)
    reasons: list[str] = []
    linear = (elong >= 0.55) & (width < t.fine_linear_width_mm) & (length >= 3 * pixel_mm)
    frac_linear = float(linear.mean())
    if frac_linear >= 0.3:
        branching = bool(((solid < 0.7) & linear).sum() >= 1)
        reasons.append(
            f"{int(linear.sum())} of {len(members)} calcifications are thin "
            f"(< {t.fine_linear_width_mm} mm wide) linear casts"
            + (", some branching" if branching else "")
        )
        morph = Morphology.FINE_LINEAR_BRANCHING if branching else Morphology.FINE_LINEAR
    elif med >= t.coarse_heterogeneous_mm and (np.median(circ) < 0.8 or cv > 0.3):
        morph = Morphology.COARSE_HETEROGENEOUS
        reasons.append(
            f"irregular, conspicuous calcifications, median {med:.2f} mm "
            f"(>= {t.coarse_heterogeneous_mm} mm): coarse heterogeneous"
        )
    elif med < t.amorphous_mm and float(np.median(cnr)) < 7.0:
        morph = Morphology.AMORPHOUS
        reasons.append(
            f"small (median {med:.2f} mm) and faint calcifications whose shape cannot be "
            "defined: amorphous"
        )
    elif cv > 0.35 or float(np.median(circ)) < 0.7:
        morph = Morphology.FINE_PLEOMORPHIC
        reasons.append(
            f"calcifications under 0.5 mm varying in size (variation {cv:.0%}) and shape: "
            "fine pleomorphic"
        )
    elif med < 0.5:
        morph = Morphology.PUNCTATE
        reasons.append(f"uniform round calcifications under 0.5 mm (median {med:.2f} mm): punctate")
    else:
        morph = Morphology.ROUND
        reasons.append(f"uniform round calcifications (median {med:.2f} mm): round")
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
) -> tuple[Distribution, list[str]]:
    """BI-RADS distribution of a cluster from the geometry of its member centres."""
    pts = np.array(
        [(m.center_rc[0] * spacing_mm[0], m.center_rc[1] * spacing_mm[1]) for m in members]
    )
    pts = pts - pts.mean(0)
    w = np.sort(np.linalg.eigvalsh(pts.T @ pts / max(len(pts), 1)))[::-1]
    major = 4 * np.sqrt(max(w[0], 0.0))
    minor = 4 * np.sqrt(max(w[1], 0.0)) if len(w) > 1 else 0.0
    ratio = major / max(minor, 0.5)
    extent = cluster.extent_mm
    if ratio >= t.linear_ratio and major >= 5.0:
        if extent > t.regional_mm and minor >= 4.0:
            return Distribution.SEGMENTAL, [
                f"calcifications along a wedge {extent:.0f} mm long pointing along the ducts: "
                "segmental distribution (a duct and its branches)"
            ]
        return Distribution.LINEAR, [
            f"calcifications arranged in a line ({major:.0f} x {minor:.1f} mm): linear "
            "distribution, suggesting deposits in one duct"
        ]
    if extent > t.regional_mm:
        return Distribution.REGIONAL, [
            f"calcifications scattered over {extent:.0f} mm (> {t.regional_mm:.0f} mm): regional"
        ]
    return Distribution.GROUPED, [
        f"{len(members)} calcifications within {extent:.0f} mm: grouped"
        + ("" if len(members) >= 5 else " (fewer than the 5 the BI-RADS term asks for)")
    ]


def describe(
    calcs: Sequence[Calcification],
    spacing_mm: tuple[float, float],
    config: DescribeConfig | None = None,
    *,
    breast: np.ndarray | None = None,
    thresholds: DescribeThresholds | None = None,
) -> Description:
    """Size class of every calcification and benign macro patterns.

    Cluster descriptions are added by :func:`describe_clusters` once clusters are known;
    ``clusterable_ids`` lists the calcifications that may belong to a cluster (micro, and
    macro up to ``cluster_max_member_mm`` that is not a benign pattern).
    """
    cfg = config or DescribeConfig()
    t = thresholds or DescribeThresholds()
    pixel_mm = float(np.sqrt(spacing_mm[0] * spacing_mm[1]))
    kinds = {c.id: classify_kind(c, cfg) for c in calcs}
    macros = [c for c in calcs if kinds[c.id] is CalcKind.MACRO]
    findings: list[MacroFinding] = []
    in_pattern: set[int] = set()
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
    clusterable = tuple(
        c.id for c in calcs if c.id not in in_pattern and c.diameter_mm < t.cluster_max_member_mm
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
) -> Description:
    """Add the morphology and distribution of each cluster to ``description``."""
    t = thresholds or DescribeThresholds()
    pixel_mm = float(np.sqrt(spacing_mm[0] * spacing_mm[1]))
    by_id = {c.id: c for c in calcs}
    out = []
    for cl in clusters:
        members = [by_id[i] for i in cl.member_ids]
        morph, confident, m_reasons, med, cv = cluster_morphology(members, pixel_mm, t)
        dist, d_reasons = cluster_distribution(cl, members, spacing_mm, t)
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
        macros=description.macros,
        clusters=tuple(out),
        clusterable_ids=description.clusterable_ids,
        macro_threshold_mm=description.macro_threshold_mm,
    )
