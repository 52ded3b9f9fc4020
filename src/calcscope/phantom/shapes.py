"""Analytic calcification shapes and benign macro-pattern layouts for the phantom.

Helper of :mod:`calcscope.phantom` (placement and rendering use it). A *profile* maps local
coordinates ``(u, v)`` in mm (``u`` along the shape's axis) to the normalised projected thickness in
``[0, 1]``; it is exactly 0 outside the shape, so the drawn mask is ``profile > 0``.
Sizes follow the ACR BI-RADS Atlas, 5th ed. (2013); see :mod:`calcscope.phantom.mammogram`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from calcscope.model import Morphology

Profile = Callable[[np.ndarray, np.ndarray], np.ndarray]

#: Morphologies accepted in :class:`ClusterSpec`.
CLUSTER_MORPHOLOGIES: tuple[Morphology, ...] = (
    Morphology.AMORPHOUS,
    Morphology.COARSE_HETEROGENEOUS,
    Morphology.FINE_PLEOMORPHIC,
    Morphology.FINE_LINEAR,
    Morphology.FINE_LINEAR_BRANCHING,
    Morphology.PUNCTATE,
    Morphology.ROUND,
)
#: Benign macro patterns accepted by :func:`make_phantom` ``macros``.
MACRO_PATTERNS: tuple[Morphology, ...] = (
    Morphology.VASCULAR,
    Morphology.COARSE_POPCORN,
    Morphology.RIM_EGGSHELL,
    Morphology.DYSTROPHIC,
    Morphology.SKIN,
    Morphology.LARGE_ROD_LIKE,
    Morphology.ROUND,
)
_MICRO_AMP = (0.17, 0.32)
_MACRO_AMP = (0.22, 0.38)


# -------------------------------------------------------------------- analytic profiles
# A profile maps local coordinates (u, v) in mm (u along the shape's axis) to the
# normalised projected thickness in [0, 1]; it is 0 exactly outside the shape.
def _ellipse(a: float, b: float, *, du: float = 0.0, dv: float = 0.0) -> Profile:
    def f(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        return np.sqrt(np.clip(1.0 - ((u - du) / a) ** 2 - ((v - dv) / b) ** 2, 0.0, None))

    return f


def _star(angles: np.ndarray, radii: np.ndarray, *, du: float = 0.0, dv: float = 0.0) -> Profile:
    """Star-shaped irregular polygon, radius (mm) interpolated linearly in angle."""

    def f(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        x, y = u - du, v - dv
        rb = np.interp(np.arctan2(y, x), angles, radii, period=2 * np.pi)
        height: np.ndarray = np.sqrt(np.clip(1.0 - (x * x + y * y) / (rb * rb), 0.0, None))
        return height

    return f


def _polyline(points: np.ndarray, half_widths: np.ndarray) -> Profile:
    """Chain of capsules (tube of varying radius) through ``points`` ``(k, 2)`` (u, v)."""

    def f(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        out = np.zeros(np.broadcast_shapes(u.shape, v.shape))
        for i in range(len(points) - 1):
            (pu, pv), (qu, qv) = points[i], points[i + 1]
            du, dv = qu - pu, qv - pv
            t = np.clip(((u - pu) * du + (v - pv) * dv) / max(du * du + dv * dv, 1e-12), 0, 1)
            dist2 = (u - pu - t * du) ** 2 + (v - pv - t * dv) ** 2
            r = half_widths[i] + t * (half_widths[i + 1] - half_widths[i])
            np.maximum(out, np.sqrt(np.clip(1.0 - dist2 / (r * r), 0.0, None)), out=out)
        return out

    return f


def _ring(r_out: float, thick: float, fill: float, ecc: float) -> Profile:
    """Calcified shell seen in projection: bright rim, lucent (``fill``) centre."""
    rm = r_out - thick / 2
    sq = math.sqrt(ecc)

    def f(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        rr = np.hypot(u / sq, v * sq)
        ring = np.sqrt(np.clip(1.0 - ((rr - rm) / (thick / 2)) ** 2, 0.0, None))
        inner = fill * np.sqrt(np.clip(1.0 - (rr / rm) ** 2, 0.0, None))
        return np.maximum(ring, inner)

    return f


def _union(parts: Sequence[Profile]) -> Profile:
    def f(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        height: np.ndarray = np.maximum.reduce([p(u, v) for p in parts])
        return height

    return f


def _random_star(
    rng: np.random.Generator,
    diameter_mm: float,
    k_range: tuple[int, int],
    r_low: float,
    du: float = 0.0,
    dv: float = 0.0,
) -> tuple[Profile, float]:
    """Irregular polygon of area-equivalent diameter ``diameter_mm``; returns its bound."""
    k = int(rng.integers(k_range[0], k_range[1] + 1))
    angles = np.sort(rng.uniform(0, 2 * np.pi, k))
    radii = rng.uniform(r_low, 1.0, k)
    th = np.linspace(-np.pi, np.pi, 721)
    area = 0.5 * np.trapezoid(np.interp(th, angles, radii, period=2 * np.pi) ** 2, th)
    radii = radii * (diameter_mm / 2) / math.sqrt(area / np.pi)
    return _star(angles, radii, du=du, dv=dv), float(radii.max())


# ------------------------------------------------------------------------ shape library
@dataclass(frozen=True)
class Shape:
    profile: Profile  # local frame, mm
    bound_mm: float  # radius about the local origin that holds the shape
    label: str
    amp: float  # amplitude before the min(1, d / 0.5 mm) size factor


def micro_amp(rng: np.random.Generator, factor: float = 1.0) -> float:
    return float(rng.uniform(*_MICRO_AMP)) * factor


def macro_amp(rng: np.random.Generator) -> float:
    return float(rng.uniform(*_MACRO_AMP))


def disc(
    rng: np.random.Generator, d: float, label: str, amp: float, *, ecc_max: float = 1.12
) -> Shape:
    k = rng.uniform(1.0, ecc_max)
    a, b = d / 2 * math.sqrt(k), d / 2 / math.sqrt(k)
    return Shape(_ellipse(a, b), a, label, amp)


def _line(rng: np.random.Generator, length: float, width: float, beaded: bool) -> Shape:
    half = max(length - width, 0.05) / 2
    k = 7 if beaded else 3
    u = np.linspace(-half, half, k)
    sag = rng.uniform(-0.12, 0.12) * length
    v = sag * (1 - (u / half) ** 2)
    hw = np.full(k, width / 2)
    if beaded:
        hw[1:-1] *= rng.uniform(0.5, 1.0, k - 2)
    return Shape(
        _polyline(np.column_stack([u, v]), hw),
        half + width / 2 + abs(sag),
        "linear",
        micro_amp(rng),
    )


def _branching(rng: np.random.Generator) -> Shape:
    w = rng.uniform(0.1, 0.3)
    trunk = rng.uniform(0.3, 0.9)
    pts = [np.array([[-trunk, 0.0], [0.0, 0.0]])]
    for sign in (-1.0, 1.0):
        ang = sign * rng.uniform(np.radians(20), np.radians(45))
        b = rng.uniform(0.3, 0.8)
        pts.append(np.array([[0.0, 0.0], [b * math.cos(ang), b * math.sin(ang)]]))
    parts = [_polyline(p, np.array([w / 2, w / 2 * rng.uniform(0.75, 1.0)])) for p in pts]
    bound = max(float(np.hypot(*p[-1])) for p in pts[1:]) + w / 2
    return Shape(_union(parts), max(bound, trunk + w / 2), "branching", micro_amp(rng))


def member_shape(rng: np.random.Generator, morph: Morphology) -> Shape:
    """One cluster member of the given BI-RADS morphology (sizes in the module doc)."""
    if morph is Morphology.PUNCTATE:
        return disc(rng, rng.uniform(0.15, 0.5), "punctate", micro_amp(rng))
    if morph is Morphology.ROUND:
        return disc(rng, rng.uniform(0.3, 1.0), "round", micro_amp(rng))
    if morph is Morphology.AMORPHOUS:
        return disc(rng, rng.uniform(0.1, 0.3), "amorphous", micro_amp(rng, 0.7), ecc_max=1.4)
    if morph is Morphology.FINE_PLEOMORPHIC:
        prof, bound = _random_star(rng, rng.uniform(0.15, 0.5), (4, 8), 0.4)
        return Shape(prof, bound, "pleomorphic", micro_amp(rng))
    if morph is Morphology.COARSE_HETEROGENEOUS:
        prof, bound = _random_star(rng, rng.uniform(0.5, 1.0), (6, 11), 0.55)
        return Shape(prof, bound, "coarse_heterogeneous", micro_amp(rng, 1.2))
    if morph is Morphology.FINE_LINEAR:
        return _line(rng, rng.uniform(0.5, 2.0), rng.uniform(0.1, 0.3), rng.random() < 0.4)
    if morph is Morphology.FINE_LINEAR_BRANCHING:
        if rng.random() < 0.3:  # casts are a mix of branching and straight pieces
            return _line(rng, rng.uniform(0.5, 2.0), rng.uniform(0.1, 0.3), rng.random() < 0.4)
        return _branching(rng)
    raise ValueError(
        f"cluster morphology {morph!r} is not supported; use one of "
        f"{', '.join(m.name for m in CLUSTER_MORPHOLOGIES)}"
    )


def curve(
    rng: np.random.Generator,
    start: np.ndarray,
    heading: float,
    length_px: float,
    step_px: float,
    wiggle: float,
) -> np.ndarray:
    """Smooth random curve ``(k, 2)`` (row, col): a random walk of the heading."""
    n = max(int(length_px / step_px), 2)
    turn = np.convolve(rng.normal(0, wiggle, n + 8), np.ones(8) / 8, mode="valid")[:n]
    head = heading + np.cumsum(turn)
    steps = np.column_stack([np.sin(head), np.cos(head)]) * step_px
    return np.vstack([start, start + np.cumsum(steps, axis=0)])


@dataclass
class _Pieces:
    """The pieces (and vessels) of one macro pattern being laid out about ``cen_rc``."""

    cen_rc: tuple[float, float]  # pixels
    spacing: float  # mm per pixel
    out: list[tuple[float, float, float, Shape]] = field(default_factory=list)
    vessels: list[tuple[np.ndarray, float, float]] = field(default_factory=list)

    def at(self, dr_mm: float, dc_mm: float, angle: float, shape: Shape) -> None:
        """Add ``shape`` at ``(dr_mm, dc_mm)`` from the centre, its axis at ``angle`` (rad)."""
        self.out.append(
            (
                self.cen_rc[0] + dr_mm / self.spacing,
                self.cen_rc[1] + dc_mm / self.spacing,
                angle,
                shape,
            )
        )


def _popcorn(rng: np.random.Generator, p: _Pieces, duct: float, tangent: float) -> None:
    """A lobulated popcorn deposit (a core and 3-6 lobes) with 0-2 coarse fragments beside it."""
    core = rng.uniform(0.7, 1.3)
    lobes = [_ellipse(core, core * rng.uniform(0.7, 1.0))]
    for _ in range(int(rng.integers(3, 7))):
        lr, phi = rng.uniform(0.5, 1.2), rng.uniform(0, 2 * np.pi)
        d = (core + lr) * rng.uniform(0.45, 0.8)
        lobes.append(
            _ellipse(lr, lr * rng.uniform(0.6, 1.0), du=d * math.cos(phi), dv=d * math.sin(phi))
        )
    main_bound = 2 * core + 1.2 + 0.1
    p.at(
        0,
        0,
        rng.uniform(-np.pi, np.pi),
        Shape(_union(lobes), main_bound, "popcorn", macro_amp(rng)),
    )
    for phi in rng.uniform(0, 2 * np.pi, int(rng.integers(0, 3))):
        prof, b = _random_star(rng, rng.uniform(0.6, 1.2), (5, 9), 0.55)
        d = main_bound + b + 0.5
        p.at(d * math.sin(phi), d * math.cos(phi), 0.0, Shape(prof, b, "popcorn", macro_amp(rng)))


def _rim(rng: np.random.Generator, p: _Pieces, duct: float, tangent: float) -> None:
    """One calcified shell with a lucent centre, 2-6 mm across."""
    r_out = rng.uniform(1.0, 3.0)
    p.at(
        0,
        0,
        rng.uniform(-np.pi, np.pi),
        Shape(
            _ring(r_out, rng.uniform(0.3, 0.5), rng.uniform(0.15, 0.25), rng.uniform(1.0, 1.15)),
            r_out * 1.08,
            "rim",
            macro_amp(rng),
        ),
    )


def _round_deposit(rng: np.random.Generator, p: _Pieces, duct: float, tangent: float) -> None:
    """One smooth round deposit 1-3 mm across."""
    d = rng.uniform(1.0, 3.0)
    p.at(0, 0, 0.0, disc(rng, d, "round", macro_amp(rng), ecc_max=1.08))


def _dystrophic(rng: np.random.Generator, p: _Pieces, duct: float, tangent: float) -> None:
    """An angular plaque 2-5 mm across with 1-3 smaller angular fragments beside it."""
    prof, b = _random_star(rng, rng.uniform(2.0, 5.0), (9, 16), 0.35)
    p.at(0, 0, 0.0, Shape(prof, b, "dystrophic", macro_amp(rng)))
    for phi in rng.uniform(0, 2 * np.pi, int(rng.integers(1, 4))):
        fprof, fb = _random_star(rng, rng.uniform(0.5, 1.5), (5, 10), 0.4)
        d = b + fb + rng.uniform(0.6, 1.5)
        p.at(
            d * math.sin(phi),
            d * math.cos(phi),
            0.0,
            Shape(fprof, fb, "dystrophic", macro_amp(rng)),
        )


def _rods(rng: np.random.Generator, p: _Pieces, duct: float, tangent: float) -> None:
    """2-4 solid rods 1-1.6 mm wide and 5-10 mm long side by side along the duct."""
    n_rods = int(rng.integers(2, 5))
    widths = rng.uniform(1.0, 1.6, n_rods)
    sides = np.concatenate(
        [[0.0], np.cumsum((widths[:-1] + widths[1:]) / 2 + rng.uniform(1.5, 3.0, n_rods - 1))]
    )
    sides -= sides.mean()
    for w, off in zip(widths, sides, strict=True):
        length = rng.uniform(5.0, 10.0)
        along = rng.uniform(-2.0, 2.0)
        half = (length - w) / 2
        u = np.linspace(-half, half, 4)
        v = rng.uniform(-0.06, 0.06) * length * (1 - (u / half) ** 2)
        hw = w / 2 * np.concatenate([[1.0], rng.uniform(0.85, 1.0, 2), [1.0]])
        sh = Shape(_polyline(np.column_stack([u, v]), hw), length / 2 + 0.5, "rod", macro_amp(rng))
        p.at(
            along * math.sin(duct) + off * math.cos(duct),
            along * math.cos(duct) - off * math.sin(duct),
            duct + rng.uniform(-0.08, 0.08),
            sh,
        )


def _skin(rng: np.random.Generator, p: _Pieces, duct: float, tangent: float) -> None:
    """2-4 small lucent-centred rings in a row along the skin line."""
    pos = 0.0
    for _ in range(int(rng.integers(2, 5))):
        r_out = rng.uniform(0.5, 1.0)
        sh = Shape(
            _ring(r_out, rng.uniform(0.2, 0.35), rng.uniform(0.1, 0.2), rng.uniform(1.0, 1.1)),
            r_out * 1.06,
            "skin",
            macro_amp(rng),
        )
        pos += r_out
        p.at(pos * math.sin(tangent), pos * math.cos(tangent), rng.uniform(-np.pi, np.pi), sh)
        pos += r_out + rng.uniform(1.0, 3.0)


def _vascular(rng: np.random.Generator, p: _Pieces, duct: float, tangent: float) -> None:
    """Two parallel tracks of segments along a curved vessel 10-30 mm long (drawn too)."""
    s = p.spacing
    cr, cc = p.cen_rc
    length = rng.uniform(10.0, 30.0)
    sep = rng.uniform(1.0, 2.0)
    heading = duct + rng.uniform(-0.8, 0.8)
    step = 0.4
    start = np.array(
        [cr - length / 2 * math.sin(heading) / s, cc - length / 2 * math.cos(heading) / s]
    )
    path = curve(rng, start, heading, length / s, step / s, 0.03)
    tang = np.gradient(path, axis=0)
    tang /= np.linalg.norm(tang, axis=1, keepdims=True)
    normal = np.column_stack([tang[:, 1], -tang[:, 0]])
    ext = curve(rng, path[-1], math.atan2(*tang[-1]), 15 / s, 1 / s, 0.03)
    pre = curve(rng, path[0], math.atan2(*(-tang[0])), 15 / s, 1 / s, 0.03)[::-1]
    p.vessels.append(
        (np.vstack([pre, path, ext]), (sep / 2 + 0.2) / s, float(rng.uniform(0.03, 0.05)))
    )
    for side in (-0.5, 0.5):
        track = path + side * sep / s * normal
        w = rng.uniform(0.3, 0.6)
        pos = rng.uniform(0.0, 1.5)
        while pos < length - 1.0:
            seg = min(rng.uniform(2.0, 6.0), length - pos)
            i0, i1 = int(pos / step), min(int((pos + seg) / step), len(track) - 1)
            if i1 - i0 >= 2:
                pts = track[i0 : i1 + 1]
                mid = pts[len(pts) // 2]
                local = (pts - mid)[:, ::-1] * s  # (u=d_col, v=d_row) in mm
                hw = w / 2 * rng.uniform(0.8, 1.0, len(pts))
                bound = float(np.hypot(local[:, 0], local[:, 1]).max()) + w / 2 + 0.05
                sh = Shape(_polyline(local, hw), bound, "vascular", macro_amp(rng) * 0.8)
                p.out.append((float(mid[0]), float(mid[1]), 0.0, sh))
            pos += seg + rng.uniform(0.5, 2.0)


_LAYOUTS: dict[Morphology, Callable[[np.random.Generator, _Pieces, float, float], None]] = {
    Morphology.COARSE_POPCORN: _popcorn,
    Morphology.RIM_EGGSHELL: _rim,
    Morphology.ROUND: _round_deposit,
    Morphology.DYSTROPHIC: _dystrophic,
    Morphology.LARGE_ROD_LIKE: _rods,
    Morphology.SKIN: _skin,
    Morphology.VASCULAR: _vascular,
}


def macro_layout(
    rng: np.random.Generator,
    pattern: Morphology,
    spacing: float,
    cen: tuple[float, float],
    duct: float,
    tangent: float,
) -> tuple[list[tuple[float, float, float, Shape]], list[tuple[np.ndarray, float, float]]]:
    """Lay out one benign macro pattern.

    Parameters
    ----------
    pattern
        One of :data:`MACRO_PATTERNS`.
    spacing
        Pixel spacing in mm.
    cen
        Centre ``(row, col)`` in pixels.
    duct, tangent
        Directions (rad, ``atan2(d_row, d_col)``) towards the nipple and along the skin.

    Returns
    -------
    pieces, vessels
        Pieces ``(row, col, angle, shape)`` and the vessels ``(path_rc, radius_px,
        amplitude)`` the pattern sits in (vascular only).
    """
    layout = _LAYOUTS.get(pattern)
    if layout is None:
        raise ValueError(
            f"macro pattern {pattern!r} is not supported; use one of "
            f"{', '.join(m.name for m in MACRO_PATTERNS)}"
        )
    p = _Pieces(cen, spacing)
    layout(rng, p, duct, tangent)
    return p.out, p.vessels
