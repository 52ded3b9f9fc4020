"""Where the phantom's calcifications go, and how each one is drawn.

Clusters are laid out by distribution (grouped, linear, segmental, regional, diffuse), benign
macro patterns by :func:`calcscope.phantom.shapes.macro_layout`, isolated specks apart from
everything; :class:`Placer` keeps the discs already taken so that inserts never overlap.
:func:`render_piece` draws one piece analytically (supersampled, area-averaged, blurred by the
PSF) and measures its truth. Coordinates are RIGHT-frame ``(row, col)`` pixels.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from calcscope.model import Distribution, Mammogram, Morphology
from calcscope.phantom.anatomy import EDGE_MARGIN_MM, Anatomy, random_inside, random_near_skin
from calcscope.phantom.shapes import Shape, disc, macro_layout, member_shape, micro_amp
from calcscope.phantom.truth import (
    ClusterSpec,
    Phantom,
    PhantomTruth,
    TrueCalcification,
    TrueCluster,
)

__all__ = [
    "Piece",
    "Placer",
    "free_centre",
    "inside_region_mm",
    "inserted_phantom",
    "place_cluster",
    "place_macro",
    "place_single",
    "render_piece",
]


def inside_region_mm(
    region: np.ndarray, image_shape: tuple[int, ...], pixel_mm: float
) -> np.ndarray:
    """Distance (mm) of every pixel to the edge of ``region`` (bool, the image's shape; the
    image border counts as an edge), for clusters inserted into a real image."""
    region = np.asarray(region, dtype=bool)
    if region.shape != tuple(image_shape):
        raise ValueError(f"region shape {region.shape} differs from the image's {image_shape}")
    padded = np.pad(region, 1).view(np.uint8)
    return cv2.distanceTransform(padded, cv2.DIST_L2, 5)[1:-1, 1:-1] * pixel_mm


def free_centre(
    rng: np.random.Generator,
    inside_mm: np.ndarray,
    margin_mm: float,
    blocked: Sequence[tuple[float, float, float]],
    reach_px: float,
) -> tuple[int, int]:
    """A random pixel ``(row, col)`` more than ``margin_mm`` inside the region (``inside_mm``:
    distance to its edge, :func:`inside_region_mm`) whose disc of ``reach_px`` clears every
    ``blocked`` disc ``(row, col, radius_px)``."""
    height, width = inside_mm.shape
    rows, cols = np.indices((height, width), sparse=True)
    ok_map = inside_mm > margin_mm
    for r, c, rad in blocked:
        ok_map &= (rows - r) ** 2 + (cols - c) ** 2 > (rad + reach_px) ** 2
    ok = np.flatnonzero(ok_map.ravel())
    if ok.size == 0:
        raise ValueError("no room in the region for an inserted cluster")
    cr, cc = np.unravel_index(ok[int(rng.integers(ok.size))], inside_mm.shape)
    return int(cr), int(cc)


def inserted_phantom(
    mammogram: Mammogram,
    layer: np.ndarray,
    calcs: Sequence[TrueCalcification],
    clusters: Sequence[TrueCluster],
    region: np.ndarray,
    levels: int | None = None,
) -> Phantom:
    """``mammogram`` with ``layer`` added (clipped to ``[0, 1]``, quantised to ``levels``
    grey levels if given) and the truth of the clusters inserted into it (``breast_mask``
    the ``region``, no pectoral mask)."""
    out: np.ndarray = np.clip(mammogram.pixels + layer, 0.0, 1.0)
    if levels:
        out = np.round(out * levels) / levels
    inserted = Mammogram(
        pixels=np.ascontiguousarray(out, dtype=np.float32),
        spacing_mm=mammogram.spacing_mm,
        laterality=mammogram.laterality,
        view=mammogram.view,
        source=mammogram.source,
    )
    truth = PhantomTruth(tuple(calcs), tuple(clusters), (), np.array(region, dtype=bool), None)
    return Phantom(inserted, truth)


@dataclass(frozen=True)
class Piece:
    shape: Shape
    anchor_rc: tuple[float, float]  # RIGHT-frame pixels
    angle: float  # rad, direction of the local u axis, atan2(d_row, d_col)
    cluster: int | None = None  # index into the cluster specs
    macro: int | None = None  # index into the macros


class Placer:
    """Keeps the discs already taken; all coordinates in RIGHT-frame pixels."""

    def __init__(self, anat: Anatomy) -> None:
        self.anat = anat
        self.discs: list[tuple[float, float, float]] = []  # row, col, radius_mm

    def free(
        self,
        r: float,
        c: float,
        radius_mm: float,
        gap_mm: float,
        extra: Sequence[tuple[float, float, float]] = (),
    ) -> bool:
        s = self.anat.spacing
        for dr, dc, rad in (*self.discs, *extra):
            if math.hypot(r - dr, c - dc) * s < radius_mm + rad + gap_mm:
                return False
        return True

    def fits(self, r: float, c: float, radius_mm: float, margin_mm: float = EDGE_MARGIN_MM) -> bool:
        return self.anat.allowed(r, c) >= radius_mm + margin_mm


def _cluster_sampler(
    rng: np.random.Generator,
    spec: ClusterSpec,
    anat: Anatomy,
    center: tuple[float, float],
    n_bound_mm: float,
) -> tuple[Callable[[], tuple[float, float, float]], float]:
    """Returns a sampler of member (row, col, duct angle) and the region radius (mm)."""
    s = anat.spacing
    cr, cc = center
    duct = anat.to_nipple(cr, cc)
    n = spec.n
    dist = spec.distribution
    if dist is Distribution.GROUPED:
        drawn = rng.uniform(4.0, 8.0)  # drawn always: the same seed gives the same image
        wanted = drawn if spec.radius_mm is None else spec.radius_mm
        radius = max(wanted, math.sqrt(n / 0.3) * (n_bound_mm + 0.5))

        def grouped() -> tuple[float, float, float]:
            rho, phi = radius * math.sqrt(rng.random()), rng.uniform(0, 2 * np.pi)
            a = duct + rng.uniform(-0.5, 0.5)
            return cr + rho * math.sin(phi) / s, cc + rho * math.cos(phi) / s, a

        return grouped, radius
    if dist is Distribution.LINEAR:
        length = max(rng.uniform(10.0, 20.0), n * (2 * n_bound_mm + 1.0) * 1.3)
        a0 = duct + rng.uniform(-0.35, 0.35)
        bend = rng.uniform(-0.15, 0.15)

        def linear() -> tuple[float, float, float]:
            t = rng.uniform(-0.5, 0.5)
            a = a0 + bend * t
            off = rng.normal(0, 0.25)
            along = t * length
            return (
                cr + (along * math.sin(a) + off * math.cos(a) + bend * along**2 / length) / s,
                cc + (along * math.cos(a) - off * math.sin(a)) / s,
                a + rng.uniform(-0.3, 0.3),
            )

        return linear, length / 2 + 1.0
    if dist is Distribution.SEGMENTAL:
        length = max(rng.uniform(25.0, 40.0), math.sqrt(n) * (2 * n_bound_mm + 1.0) * 2)
        half = rng.uniform(np.radians(12), np.radians(22))
        axis = duct + np.pi  # from the apex (nipple side) back into the breast
        apex = (cr - length / 2 * math.sin(axis) / s, cc - length / 2 * math.cos(axis) / s)
        n_rays = int(rng.integers(3, 6))  # ducts fanning out over the whole wedge
        rays = axis + np.linspace(-half, half, n_rays) + rng.uniform(-0.05, 0.05, n_rays)

        def segmental() -> tuple[float, float, float]:
            a = float(rays[rng.integers(len(rays))])
            d = length * rng.uniform(0.1, 1.0)
            off = rng.normal(0, 0.3)
            return (
                apex[0] + (d * math.sin(a) + off * math.cos(a)) / s,
                apex[1] + (d * math.cos(a) - off * math.sin(a)) / s,
                a + rng.uniform(-0.3, 0.3),
            )

        return segmental, length / 2 + 1.0
    if dist is Distribution.REGIONAL:
        radius = max(rng.uniform(15.0, 20.0), math.sqrt(n / 0.2) * (n_bound_mm + 1.5))

        def regional() -> tuple[float, float, float]:
            rho, phi = radius * math.sqrt(rng.random()), rng.uniform(0, 2 * np.pi)
            return (
                cr + rho * math.sin(phi) / s,
                cc + rho * math.cos(phi) / s,
                rng.uniform(-np.pi, np.pi),
            )

        return regional, radius
    raise ValueError(f"unsupported distribution {dist!r}")  # DIFFUSE handled by the caller


def place_cluster(
    rng: np.random.Generator,
    k: int,
    spec: ClusterSpec,
    anat: Anatomy,
    placer: Placer,
    center: tuple[float, float] | None,
) -> list[Piece]:
    shapes = [member_shape(rng, spec.morphology) for _ in range(spec.n)]
    bound = max(sh.bound_mm for sh in shapes)
    gap = max(0.6, 3 * anat.spacing)
    for _attempt in range(60 if center is None else 8):
        if spec.distribution is Distribution.DIFFUSE:

            def sampler() -> tuple[float, float, float]:
                r, c = random_inside(rng, anat, EDGE_MARGIN_MM + bound)
                return r, c, rng.uniform(-np.pi, np.pi)

            region, cen = None, None
            member_gap = max(gap, 4.0)
        else:
            cen = center if center is not None else random_inside(rng, anat, 6.0)
            sampler, region = _cluster_sampler(rng, spec, anat, cen, bound)
            if center is None and not placer.free(*cen, region, 5.0):
                continue
            member_gap = gap if spec.distribution is not Distribution.REGIONAL else 1.5
        taken: list[tuple[float, float, float]] = []
        pieces: list[Piece] = []
        for sh in shapes:
            for _try in range(300):
                r, c, a = sampler()
                if (
                    placer.fits(r, c, sh.bound_mm)
                    and placer.free(r, c, sh.bound_mm, 3.0)
                    and placer.free(r, c, sh.bound_mm, member_gap, taken)
                ):
                    break
            else:
                break
            taken.append((r, c, sh.bound_mm))
            pieces.append(Piece(sh, (r, c), a, cluster=k))
        if len(pieces) == spec.n:
            placer.discs.extend(taken)
            if region is not None and cen is not None:
                placer.discs.append((cen[0], cen[1], region))
            return pieces
    raise ValueError(
        f"could not place a {spec.distribution.value} cluster of {spec.n} "
        f"{spec.morphology.value} calcifications"
        + (f" at {center}" if center is not None else "")
        + "; use a larger image shape, fewer inserts or another center_rc"
    )


def place_macro(
    rng: np.random.Generator, k: int, pattern: Morphology, anat: Anatomy, placer: Placer
) -> tuple[list[Piece], list[tuple[np.ndarray, float, float]], tuple[float, float]]:
    skin = pattern is Morphology.SKIN
    for _attempt in range(200):
        if skin:
            cen = random_near_skin(rng, anat, 2.0, 4.0, 1.5)
        else:
            cen = random_inside(rng, anat, 6.0)
        layout, vessels = macro_layout(
            rng, pattern, anat.spacing, cen, anat.to_nipple(*cen), anat.skin_tangent(*cen)
        )
        ok = all(
            placer.fits(r, c, sh.bound_mm, 0.8 if skin else EDGE_MARGIN_MM)
            and placer.free(r, c, sh.bound_mm, 3.0)
            and (not skin or anat.skin_line(r, c) <= sh.bound_mm + 4.5)
            for r, c, _a, sh in layout
        )
        if ok:
            placer.discs.extend((r, c, sh.bound_mm) for r, c, _a, sh in layout)
            return [Piece(sh, (r, c), a, macro=k) for r, c, a, sh in layout], vessels, cen
    raise ValueError(
        f"could not place a {pattern.value} macro pattern; use a larger image shape or "
        "fewer inserts"
    )


def place_single(rng: np.random.Generator, anat: Anatomy, placer: Placer) -> Piece:
    if rng.random() < 0.7:
        sh = disc(rng, rng.uniform(0.15, 0.5), "punctate", micro_amp(rng))
    else:
        sh = disc(rng, rng.uniform(0.5, 1.0), "round", micro_amp(rng))
    for gap in (12.0, 8.0, 5.0):  # isolated: no CAD cluster (>= 3 within 1 cm) with others
        for _try in range(400):
            r, c = random_inside(rng, anat, EDGE_MARGIN_MM + sh.bound_mm)
            if placer.free(r, c, sh.bound_mm, gap):
                placer.discs.append((r, c, sh.bound_mm))
                return Piece(sh, (r, c), 0.0)
    raise ValueError("no room for an isolated calcification; use a larger image shape")


def render_piece(
    img: np.ndarray,
    piece: Piece,
    spacing: float,
    ss: int,
    psf_px: float,
    peak: float | None = None,
) -> tuple[tuple[float, float], float, float, float]:
    """Add one piece to ``img``; returns centroid (row, col), diameter, length, contrast.

    The added signal is ``amplitude * min(1, d / 0.5 mm)`` times the blurred profile, or,
    with ``peak``, the blurred profile scaled so that its maximum is ``peak``.
    """
    ar, ac = piece.anchor_rc
    reach = piece.shape.bound_mm / spacing + 3 * psf_px + 2
    r0, c0 = math.floor(ar - reach), math.floor(ac - reach)
    h, w = math.ceil(ar + reach) + 1 - r0, math.ceil(ac + reach) + 1 - c0
    sub = spacing / ss
    rows_sub = r0 - 0.5 + (np.arange(h * ss) + 0.5) / ss
    cols_sub = c0 - 0.5 + (np.arange(w * ss) + 0.5) / ss
    dy = ((rows_sub - ar) * spacing)[:, None]
    dx = ((cols_sub - ac) * spacing)[None, :]
    ca, sa = math.cos(piece.angle), math.sin(piece.angle)
    prof = piece.shape.profile(dx * ca + dy * sa, -dx * sa + dy * ca)
    mask = prof > 0
    idx = np.argwhere(mask)
    if len(idx) == 0:
        raise RuntimeError("empty calcification piece")  # programming error
    area_mm2 = len(idx) * sub * sub
    diameter = 2 * math.sqrt(area_mm2 / math.pi)
    hull = cv2.convexHull(idx[:, ::-1].astype(np.int32)).reshape(-1, 2).astype(float)
    feret = np.sqrt(((hull[:, None, :] - hull[None, :, :]) ** 2).sum(-1)).max()
    length = (feret + 1.0) * sub
    cen_r = float(rows_sub[idx[:, 0]].mean())
    cen_c = float(cols_sub[idx[:, 1]].mean())

    amp = piece.shape.amp * min(1.0, diameter / 0.5)
    down = prof.reshape(h, ss, w, ss).mean(axis=(1, 3)).astype(np.float32)
    add = amp * cv2.GaussianBlur(down, (0, 0), psf_px, borderType=cv2.BORDER_CONSTANT)
    if peak is not None:
        add *= np.float32(peak / max(float(add.max()), 1e-9))
    rr0, cc0 = max(r0, 0), max(c0, 0)
    rr1, cc1 = min(r0 + h, img.shape[0]), min(c0 + w, img.shape[1])
    img[rr0:rr1, cc0:cc1] += add[rr0 - r0 : rr1 - r0, cc0 - c0 : cc1 - c0]
    return (cen_r, cen_c), diameter, float(length), float(add.max())
