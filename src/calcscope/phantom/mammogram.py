"""Synthetic mammograms with exactly known calcifications (the bundled example).

:func:`make_phantom` draws a compressed breast with fibroglandular texture, vessels,
Cooper ligaments, skin-line fall-off, a pectoral muscle on oblique views and quantum
noise, and inserts microcalcification clusters, benign macro patterns and isolated
specks whose geometry is recorded in a :class:`PhantomTruth`.

Conventions
-----------
* Display orientation: a RIGHT breast has its chest wall at the left image edge
  (column 0) and the nipple pointing right; a LEFT breast is the mirror image (chest wall
  at the right edge). On MLO views the pectoral muscle is the triangle in the upper
  chest-wall corner. Everything is drawn in the RIGHT frame and mirrored exactly.
* :func:`full_field_shape` gives ``(rows, cols) = (4096, 3328)`` at 0.07 mm, i.e. a
  detector of about 287 mm (rows) x 233 mm (cols), scaled for other spacings.
* Every calcification piece (one connected drawn shape) is rendered analytically on a
  local grid supersampled at least 4x (finer than 0.02 mm per sub-pixel), area-averaged
  down to the pixel grid, blurred with a Gaussian PSF (sigma 0.05 mm) and added to the
  image. Its truth (area-equivalent diameter, longest extent, centroid) is measured on the
  supersampled mask, so it is exact up to the sub-pixel size.
* Added intensity of a piece is ``amplitude * profile`` where the profile is the
  normalised projected thickness (peak 1) and ``amplitude = a * min(1, d / 0.5 mm)``
  with ``a`` uniform in ``[0.17, 0.32]`` for microcalcifications (0.7x that for the faint
  amorphous ones) and ``[0.22, 0.38]`` for macro patterns. ``contrast`` in the truth is
  the peak of the added signal at the pixel level (after area averaging and PSF).
* Quantum noise has a per-pixel standard deviation of ``0.01 * noise * 0.07 /
  spacing_mm`` inside the breast, times ``0.7 + 0.6 * intensity`` (about 1 in the
  breast; half that outside it), plus correlated grain (sigma 0.1 mm) of 0.4x that.
  A 0.2 mm speck at 0.07 mm has a pixel contrast of about 0.04-0.08, i.e. a CNR of
  about 4-8 against the quantum noise.

The BI-RADS sizes used (punctate < 0.5 mm, round 0.5-1 mm, amorphous small and hazy,
fine pleomorphic < 0.5 mm varying, fine linear < 0.5 mm wide, coarse heterogeneous
0.5-1 mm, popcorn > 2-3 mm, rod-like >= 1 mm, rim 2-6 mm, skin 1-2 mm lucent centred)
follow the ACR BI-RADS Atlas, 5th ed. (2013), as summarised by the Radiology Assistant
("Breast - Calcifications - Differential diagnosis", radiologyassistant.nl).

The parts: :mod:`calcscope.phantom.truth` (what a phantom holds),
:mod:`calcscope.phantom.anatomy` (the breast, its texture and the noise),
:mod:`calcscope.phantom.placement` (where each insert goes and how it is drawn) and
:mod:`calcscope.phantom.shapes` (the calcification shapes); this module puts them together.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from calcscope.model import Distribution, Laterality, Mammogram, Morphology, Source, View
from calcscope.phantom.anatomy import (
    EDGE_MARGIN_MM,
    MAX_SUBPIXEL_MM,
    PSF_SIGMA_MM,
    Anatomy,
    add_noise,
    breast_geometry,
    full_field_shape,
    render_anatomy,
)
from calcscope.phantom.placement import (
    Piece,
    Placer,
    free_centre,
    inserted_phantom,
    inside_region_mm,
    place_cluster,
    place_macro,
    place_single,
    render_piece,
)
from calcscope.phantom.shapes import (
    CLUSTER_MORPHOLOGIES,
    MACRO_PATTERNS,
    Shape,
    disc,
    member_shape,
)
from calcscope.phantom.truth import (
    ClusterSpec,
    Phantom,
    PhantomTruth,
    TrueCalcification,
    TrueCluster,
    TrueMacro,
    phantom_summary,
    true_cluster,
    truth_to_dict,
)

__all__ = [
    "TrueCalcification",
    "TrueCluster",
    "TrueMacro",
    "PhantomTruth",
    "Phantom",
    "ClusterSpec",
    "CLUSTER_MORPHOLOGIES",
    "MACRO_PATTERNS",
    "make_phantom",
    "insert_clusters",
    "truth_to_dict",
    "full_field_shape",
    "phantom_summary",
]

_DEFAULT_CLUSTERS = (
    ClusterSpec(Morphology.FINE_PLEOMORPHIC, Distribution.GROUPED, 8),
    ClusterSpec(Morphology.PUNCTATE, Distribution.GROUPED, 6),
    ClusterSpec(Morphology.FINE_LINEAR_BRANCHING, Distribution.LINEAR, 7),
)
_DEFAULT_MACROS = (Morphology.COARSE_POPCORN, Morphology.VASCULAR, Morphology.RIM_EGGSHELL)


def _requests(
    spacing_mm: float,
    shape: tuple[int, int] | None,
    clusters: Sequence[ClusterSpec] | None,
    macros: Sequence[Morphology] | None,
    n_singles: int,
    noise: float,
) -> tuple[tuple[int, int], tuple[ClusterSpec, ...], tuple[Morphology, ...]]:
    """The image shape, cluster specs and macro patterns of a :func:`make_phantom` call,
    checked (defaults filled in); raises ValueError for an invalid argument."""
    if spacing_mm <= 0:
        raise ValueError(f"spacing_mm must be positive, got {spacing_mm}")
    rows, cols = full_field_shape(spacing_mm) if shape is None else shape
    if rows < 64 or cols < 64:
        raise ValueError(f"shape must be at least 64 x 64 pixels, got {(rows, cols)}")
    if n_singles < 0 or noise < 0:
        raise ValueError("n_singles and noise must be non-negative")
    specs = tuple(_DEFAULT_CLUSTERS if clusters is None else clusters)
    patterns = tuple(_DEFAULT_MACROS if macros is None else macros)
    for spec in specs:
        if spec.morphology not in CLUSTER_MORPHOLOGIES:
            member_shape(np.random.default_rng(0), spec.morphology)  # raises
        if spec.n < 1:
            raise ValueError(f"a cluster needs n >= 1 calcifications, got {spec.n}")
    for pattern in patterns:
        if pattern not in MACRO_PATTERNS:
            raise ValueError(
                f"macro pattern {pattern!r} is not supported; use one of "
                f"{', '.join(m.name for m in MACRO_PATTERNS)}"
            )
    return (rows, cols), specs, patterns


@dataclass(frozen=True)
class _Layout:
    """Every piece placed in a phantom (RIGHT frame), before rendering."""

    clusters: dict[int, list[Piece]]  # by index into the cluster specs
    macros: list[list[Piece]]
    macro_centers: list[tuple[float, float]]
    vessels: list[tuple[np.ndarray, float, float]]  # (path_rc, radius_px, amplitude)
    singles: list[Piece]


def _place_all(
    rng: np.random.Generator,
    specs: Sequence[ClusterSpec],
    patterns: Sequence[Morphology],
    n_singles: int,
    anat: Anatomy,
    flip: Callable[[tuple[float, float]], tuple[float, float]],
) -> _Layout:
    """Place the clusters with a place (or a distribution other than diffuse) first, then
    the macro patterns, then diffuse clusters, then isolated specks; ``flip`` maps a
    requested ``center_rc`` into the RIGHT frame."""
    rows, cols = anat.rows, anat.cols
    placer = Placer(anat)
    cluster_pieces: dict[int, list[Piece]] = {}
    order = sorted(range(len(specs)), key=lambda i: specs[i].distribution is Distribution.DIFFUSE)
    for k in (i for i in order if specs[i].distribution is not Distribution.DIFFUSE):
        center = specs[k].center_rc
        if center is not None:
            center = flip(center)
            if (
                not anat.breast[int(round(center[0])) % rows, int(round(center[1])) % cols]
                or anat.allowed(*center) < EDGE_MARGIN_MM
            ):
                raise ValueError(
                    f"cluster center_rc {specs[k].center_rc} is not well inside "
                    "the breast (away from the skin and the pectoral muscle)"
                )
        cluster_pieces[k] = place_cluster(rng, k, specs[k], anat, placer, center)
    macro_pieces: list[list[Piece]] = []
    macro_centers: list[tuple[float, float]] = []
    vessels: list[tuple[np.ndarray, float, float]] = []
    for k, pattern in enumerate(patterns):
        pcs, ves, cen = place_macro(rng, k, pattern, anat, placer)
        macro_pieces.append(pcs)
        macro_centers.append(cen)
        vessels.extend(ves)
    for k in (i for i in order if specs[i].distribution is Distribution.DIFFUSE):
        cluster_pieces[k] = place_cluster(rng, k, specs[k], anat, placer, None)
    singles = [place_single(rng, anat, placer) for _ in range(n_singles)]
    return _Layout(cluster_pieces, macro_pieces, macro_centers, vessels, singles)


def _render_inserts(
    img: np.ndarray,
    layout: _Layout,
    specs: Sequence[ClusterSpec],
    patterns: Sequence[Morphology],
    spacing_mm: float,
    flip: Callable[[tuple[float, float]], tuple[float, float]],
) -> tuple[list[TrueCalcification], list[TrueCluster], list[TrueMacro]]:
    """Draw every placed piece into ``img`` (clusters, then macro patterns, then isolated
    specks) and return their truth, mapped by ``flip`` into the returned image's frame."""
    ss = max(4, math.ceil(spacing_mm / MAX_SUBPIXEL_MM))
    psf_px = PSF_SIGMA_MM / spacing_mm
    calcs: list[TrueCalcification] = []

    def render(piece: Piece, cluster_id: int | None) -> int:
        cen, d, length, contrast = render_piece(img, piece, spacing_mm, ss, psf_px)
        calcs.append(
            TrueCalcification(
                len(calcs) + 1, flip(cen), d, length, piece.shape.label, cluster_id, contrast
            )
        )
        return len(calcs)

    true_clusters = []
    for k, spec in enumerate(specs):
        ids = tuple(render(p, k + 1) for p in layout.clusters[k])
        true_clusters.append(
            true_cluster(k + 1, calcs, ids, spec.morphology, spec.distribution, spacing_mm)
        )
    true_macros = []
    for k, (pattern, pcs) in enumerate(zip(patterns, layout.macros, strict=True)):
        ids = tuple(render(p, None) for p in pcs)
        cen = flip(layout.macro_centers[k])
        true_macros.append(TrueMacro(k + 1, (float(cen[0]), float(cen[1])), pattern, ids))
    for piece in layout.singles:
        render(piece, None)
    return calcs, true_clusters, true_macros


def make_phantom(
    *,
    seed: int = 0,
    spacing_mm: float = 0.07,
    shape: tuple[int, int] | None = None,
    laterality: Laterality = Laterality.LEFT,
    view: View = View.CC,
    clusters: Sequence[ClusterSpec] | None = None,
    macros: Sequence[Morphology] | None = None,
    n_singles: int = 5,
    noise: float = 1.0,
) -> Phantom:
    """Generate a synthetic mammogram with known calcifications.

    Parameters
    ----------
    seed
        Seed of :func:`numpy.random.default_rng`; the same arguments give the same image.
    spacing_mm
        Isotropic pixel spacing in mm (0.05-0.2 are typical).
    shape
        ``(rows, cols)``; ``None`` gives :func:`full_field_shape` of ``spacing_mm``.
    laterality
        RIGHT: chest wall at the left edge; LEFT: mirrored (chest wall at the right).
    view
        MLO, ML and LM views get a pectoral muscle in the upper chest-wall corner.
    clusters
        Clusters to insert; ``None`` gives fine pleomorphic (grouped, 8), punctate
        (grouped, 6) and fine-linear branching (linear, 7).
    macros
        Benign macro patterns from :data:`MACRO_PATTERNS`; ``None`` gives popcorn,
        vascular and rim.
    n_singles
        Isolated punctate (0.15-0.5 mm) or round (0.5-1 mm) calcifications, at least
        5 mm (12 mm where room allows) from every other insert.
    noise
        Scale of the quantum noise; 1 gives a per-pixel std of 0.01 at 0.07 mm.

    Returns
    -------
    Phantom
        Pixels float32 ``(rows, cols)`` in ``[0, 1]`` and the truth (pixel coordinates
        of the returned, possibly mirrored, image).

    Raises
    ------
    ValueError
        For an invalid argument, an unsupported morphology or pattern, or inserts that
        do not fit in the breast.
    """
    (rows, cols), specs, patterns = _requests(spacing_mm, shape, clusters, macros, n_singles, noise)
    laterality, view = Laterality(laterality), View(view)
    mirror = laterality is Laterality.LEFT

    def flip(rc: tuple[float, float]) -> tuple[float, float]:
        return (rc[0], cols - 1 - rc[1]) if mirror else (rc[0], rc[1])

    rng = np.random.default_rng(seed)
    anat, level, pect_soft = breast_geometry(
        rng, rows, cols, spacing_mm, view.is_oblique_or_lateral
    )
    layout = _place_all(rng, specs, patterns, n_singles, anat, flip)
    img = render_anatomy(rng, anat, level, pect_soft, layout.vessels)
    calcs, true_clusters, true_macros = _render_inserts(
        img, layout, specs, patterns, spacing_mm, flip
    )
    img = np.clip(add_noise(rng, img, anat.breast, spacing_mm, noise), 0.0, 1.0)
    breast, pectoral = anat.breast, anat.pectoral
    if mirror:
        img, breast = img[:, ::-1], breast[:, ::-1]
        pectoral = None if pectoral is None else pectoral[:, ::-1]
    mammogram = Mammogram(
        pixels=np.ascontiguousarray(img, dtype=np.float32),
        spacing_mm=(spacing_mm, spacing_mm),
        laterality=laterality,
        view=view,
        source=Source(path=None, modality="MG"),
    )
    truth = PhantomTruth(
        calcifications=tuple(calcs),
        clusters=tuple(true_clusters),
        macros=tuple(true_macros),
        breast_mask=np.ascontiguousarray(breast),
        pectoral_mask=None if pectoral is None else np.ascontiguousarray(pectoral),
    )
    return Phantom(mammogram, truth)


_INSERT_MORPHOLOGIES = (
    Morphology.PUNCTATE,
    Morphology.ROUND,
    Morphology.AMORPHOUS,
    Morphology.FINE_PLEOMORPHIC,
    Morphology.COARSE_HETEROGENEOUS,
    Morphology.FINE_LINEAR,
    Morphology.FINE_LINEAR_BRANCHING,
)


def _sized_shape(
    rng: np.random.Generator, morph: Morphology, piece_mm: tuple[float, float]
) -> Shape:
    """A member of ``morph`` whose largest extent (twice its bound, mm) lies in ``piece_mm``:
    the morphology's own shapes drawn until one fits (up to 100 draws), else a speck of
    that morphology's label with a diameter drawn uniformly in ``piece_mm``."""
    lo, hi = piece_mm
    for _ in range(100):
        shape = member_shape(rng, morph)
        if lo <= 2.0 * shape.bound_mm <= hi:
            return shape
    return disc(rng, float(rng.uniform(lo, hi)), shape.label, shape.amp, ecc_max=1.0)


def _members_in_disc(
    rng: np.random.Generator,
    n: int,
    morph: Morphology,
    centre_rc: tuple[int, int],
    radius_mm: float,
    spacing: float,
    piece_mm: tuple[float, float] | None = None,
) -> list[Piece]:
    """Up to ``n`` members of ``morph`` drawn uniformly in a disc of ``radius_mm`` about
    ``centre_rc``, apart from each other (a member that finds no room is left out); with
    ``piece_mm``, each member's size lies in that range (:func:`_sized_shape`)."""
    cr, cc = centre_rc
    taken: list[tuple[float, float, float]] = []
    pieces: list[Piece] = []
    for _ in range(n):
        shape = member_shape(rng, morph) if piece_mm is None else _sized_shape(rng, morph, piece_mm)
        for _try in range(200):
            rho, phi = radius_mm * math.sqrt(rng.random()), rng.uniform(0, 2 * np.pi)
            r, c = cr + rho * math.sin(phi) / spacing, cc + rho * math.cos(phi) / spacing
            gap = max(0.6, 3 * spacing) + shape.bound_mm
            if all(math.hypot(r - a, c - b) * spacing > gap + bd for a, b, bd in taken):
                break
        else:
            continue
        taken.append((r, c, shape.bound_mm))
        pieces.append(Piece(shape, (r, c), rng.uniform(-np.pi, np.pi)))
    return pieces


def insert_clusters(
    mammogram: Mammogram,
    region: np.ndarray,
    *,
    seed: int,
    n_clusters: int = 2,
    members: tuple[int, int] = (3, 12),
    radius_mm: tuple[float, float] = (2.0, 7.0),
    contrast: tuple[float, float] = (0.012, 0.08),
    psf_mm: tuple[float, float] = (0.05, 0.12),
    avoid_rc: Sequence[tuple[float, float, float]] = (),
    levels: int | None = None,
    piece_mm: tuple[float, float] | None = None,
) -> Phantom:
    """Insert synthetic microcalcification clusters into a real mammogram.

    The classic way to get many known calcifications on real tissue and real noise
    (film grain, detector noise) for training a detector: each member, drawn by the
    same shape library as :func:`make_phantom`, is rendered analytically, area-averaged,
    blurred by a Gaussian PSF of sigma drawn from ``psf_mm`` and added to the pixels
    with a peak pixel contrast near a cluster level drawn log-uniformly from
    ``contrast`` (image units, pixels in ``[0, 1]``; each member 0.6-1.4x that level).

    Parameters
    ----------
    mammogram
        The real image; it is not modified.
    region
        Bool mask, the image's shape: where clusters may lie (breast tissue without the
        pectoral muscle). Every member lies inside it.
    seed
        Seed of :func:`numpy.random.default_rng`; the same arguments give the same image.
    n_clusters, members, radius_mm
        Number of clusters; members per cluster and radius of the disc they are drawn in
        (both ranges inclusive, drawn uniformly per cluster).
    avoid_rc
        ``(row, col, radius_px)`` discs (known findings) that inserted clusters keep
        clear of.
    levels
        Quantise the result to this many grey levels (255 for 8-bit film scans), as the
        original pixels are.
    piece_mm
        Restrict every member to this size range (mm, largest extent: a speck's diameter,
        a line's length): e.g. ``(0.15, 0.6)``, the microcalcification specks of issue 18's
        target. None (default): the morphology's own sizes (0.1-2 mm).

    Returns
    -------
    Phantom
        The image with the inserts and their truth (clusters are GROUPED; ``breast_mask``
        is ``region``; no pectoral mask).
    """
    rng = np.random.default_rng(seed)
    img = mammogram.pixels
    region = np.asarray(region, dtype=bool)
    spacing = mammogram.pixel_mm
    inside_mm = inside_region_mm(region, img.shape, spacing)
    ss = max(4, math.ceil(spacing / MAX_SUBPIXEL_MM))
    blocked = [(float(r), float(c), float(rad)) for r, c, rad in avoid_rc]
    layer = np.zeros(img.shape, dtype=np.float32)
    calcs: list[TrueCalcification] = []
    clusters: list[TrueCluster] = []
    for k in range(n_clusters):
        n = int(rng.integers(members[0], members[1] + 1))
        radius = float(rng.uniform(*radius_mm))
        morph = _INSERT_MORPHOLOGIES[int(rng.integers(len(_INSERT_MORPHOLOGIES)))]
        level = float(np.exp(rng.uniform(*np.log(contrast))))
        psf_px = float(rng.uniform(*psf_mm)) / spacing
        reach_px = (radius + 2.0) / spacing  # members and their blur stay within this
        cr, cc = free_centre(rng, inside_mm, radius + 2.0, blocked, reach_px)
        ids = []
        for piece in _members_in_disc(rng, n, morph, (cr, cc), radius, spacing, piece_mm):
            target = level * float(rng.uniform(0.6, 1.4))
            cen, d, length, _ = render_piece(layer, piece, spacing, ss, psf_px, peak=target)
            calcs.append(
                TrueCalcification(len(calcs) + 1, cen, d, length, piece.shape.label, k + 1, target)
            )
            ids.append(len(calcs))
        clusters.append(
            true_cluster(k + 1, calcs, tuple(ids), morph, Distribution.GROUPED, spacing)
        )
        blocked.append((float(cr), float(cc), reach_px + 5.0 / spacing))
    return inserted_phantom(mammogram, layer, calcs, clusters, region, levels)
