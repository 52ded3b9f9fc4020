"""Tests of the synthetic mammogram generator (calcscope.phantom.mammogram)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from calcscope.model import Distribution, Laterality, Mammogram, Morphology, View
from calcscope.phantom.mammogram import (
    CLUSTER_MORPHOLOGIES,
    MACRO_PATTERNS,
    ClusterSpec,
    Phantom,
    full_field_shape,
    insert_clusters,
    make_phantom,
    phantom_summary,
)

SMALL = {"spacing_mm": 0.1, "shape": (1200, 900)}

# nominal size ranges (mm) of each drawn shape: (diameter range, length range)
SIZE_RANGES = {
    "punctate": ((0.15, 0.5), None),
    "pleomorphic": ((0.15, 0.5), None),
    "amorphous": ((0.1, 0.3), None),
    "coarse_heterogeneous": ((0.5, 1.0), None),
    "linear": (None, (0.5, 2.0)),
    "branching": (None, (0.5, 2.5)),
    "popcorn": (None, (0.5, 8.0)),
    "rim": ((2.0, 6.0), None),
    "dystrophic": ((0.5, 5.0), None),
    "skin": ((1.0, 2.0), None),
    "rod": (None, (5.0, 10.0)),
    "vascular": (None, (0.3, 7.0)),  # 2-6 mm segments plus their round caps
}


def _within(value: float, bounds: tuple[float, float], spacing_mm: float) -> bool:
    tol = 0.06 * bounds[1] + 0.5 * spacing_mm / 4 + 0.01
    return bounds[0] - tol <= value <= bounds[1] + tol


@pytest.fixture(scope="module")
def small() -> Phantom:
    return make_phantom(seed=3, **SMALL)


@pytest.fixture(scope="module")
def small_mlo() -> Phantom:
    return make_phantom(seed=4, view=View.MLO, laterality=Laterality.RIGHT, **SMALL)


def test_full_field_shape() -> None:
    assert full_field_shape(0.07) == (4096, 3328)
    assert full_field_shape(0.14) == (2048, 1664)
    with pytest.raises(ValueError):
        full_field_shape(0.0)


def test_same_seed_same_image_other_seed_differs() -> None:
    a = make_phantom(seed=11, **SMALL)
    b = make_phantom(seed=11, **SMALL)
    c = make_phantom(seed=12, **SMALL)
    assert np.array_equal(a.mammogram.pixels, b.mammogram.pixels)
    assert a.truth.calcifications == b.truth.calcifications
    assert a.truth.clusters == b.truth.clusters
    assert not np.array_equal(a.mammogram.pixels, c.mammogram.pixels)


def test_shapes_dtypes_and_range(small: Phantom) -> None:
    m = small.mammogram
    assert isinstance(m, Mammogram)
    assert m.pixels.shape == (1200, 900)
    assert m.pixels.dtype == np.float32
    assert 0.0 <= m.pixels.min() and m.pixels.max() <= 1.0
    assert m.spacing_mm == (0.1, 0.1)
    assert m.laterality is Laterality.LEFT and m.view is View.CC
    assert m.source.path is None and m.source.modality == "MG"
    assert small.truth.breast_mask.dtype == bool
    assert small.truth.breast_mask.shape == m.pixels.shape
    assert small.truth.pectoral_mask is None
    inside = m.pixels[small.truth.breast_mask].mean()
    outside = m.pixels[~small.truth.breast_mask].mean()
    assert 0.3 < inside < 0.65
    assert 0.01 < outside < 0.07


def test_ids_and_default_mix(small: Phantom) -> None:
    t = small.truth
    assert [c.id for c in t.calcifications] == list(range(1, len(t.calcifications) + 1))
    assert len(t.clusters) == 3 and len(t.macros) == 3
    by_id = {c.id: c for c in t.calcifications}
    for k in t.clusters:
        assert all(by_id[i].cluster_id == k.id for i in k.member_ids)
    for m in t.macros:
        assert all(by_id[i].cluster_id is None for i in m.member_ids)
    summary = phantom_summary(small)
    assert summary["n_clusters"] == 3 and summary["n_singles"] == 5
    assert summary["n_calcifications"] == len(t.calcifications)
    assert sum(summary["by_shape"].values()) == len(t.calcifications)


def _check_inside(p: Phantom) -> None:
    t, s = p.truth, p.mammogram.spacing_mm[0]
    allowed = t.breast_mask.copy()
    if t.pectoral_mask is not None:
        allowed &= ~t.pectoral_mask
    dist_mm = (
        cv2.distanceTransform(
            cv2.copyMakeBorder(allowed.astype(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0),
            cv2.DIST_L2,
            5,
        )[1:-1, 1:-1]
        * s
    )
    for c in t.calcifications:
        r, col = (int(round(v)) for v in c.center_rc)
        assert allowed[r, col], c
        assert dist_mm[r, col] >= 0.5, c  # centre well inside, off the muscle


def test_calcifications_inside_breast_cc(small: Phantom) -> None:
    _check_inside(small)


def test_calcifications_inside_breast_off_pectoral_mlo(small_mlo: Phantom) -> None:
    t = small_mlo.truth
    assert t.pectoral_mask is not None and t.pectoral_mask.dtype == bool
    assert t.pectoral_mask.any()
    assert not (t.pectoral_mask & ~t.breast_mask).any()
    # RIGHT breast: chest wall on the left, muscle in the upper-left corner
    rows, cols = t.pectoral_mask.shape
    assert t.pectoral_mask[: rows // 4, : cols // 4].mean() > t.pectoral_mask[:, cols // 2 :].mean()
    assert t.pectoral_mask[:, cols // 2 :].sum() == 0
    pix = small_mlo.mammogram.pixels
    assert pix[t.pectoral_mask].mean() > pix[t.breast_mask & ~t.pectoral_mask].mean()
    _check_inside(small_mlo)


def test_laterality_mirrors_breast() -> None:
    left = make_phantom(seed=5, laterality=Laterality.LEFT, **SMALL)
    right = make_phantom(seed=5, laterality=Laterality.RIGHT, **SMALL)
    np.testing.assert_array_equal(left.truth.breast_mask, right.truth.breast_mask[:, ::-1])
    np.testing.assert_array_equal(left.mammogram.pixels, right.mammogram.pixels[:, ::-1])
    cols = right.mammogram.shape[1]
    for a, b in zip(left.truth.calcifications, right.truth.calcifications, strict=True):
        assert a.center_rc[0] == pytest.approx(b.center_rc[0])
        assert a.center_rc[1] == pytest.approx(cols - 1 - b.center_rc[1])
        assert a.diameter_mm == b.diameter_mm
    # chest wall at the right image edge for LEFT, at the left edge for RIGHT
    mask = right.truth.breast_mask
    assert mask[:, 0].sum() > mask[:, -1].sum()
    assert left.truth.breast_mask[:, -1].sum() > left.truth.breast_mask[:, 0].sum()


@pytest.mark.parametrize("morphology", CLUSTER_MORPHOLOGIES)
def test_each_cluster_morphology(morphology: Morphology) -> None:
    spec = ClusterSpec(morphology, Distribution.GROUPED, n=7)
    p = make_phantom(seed=6, clusters=[spec], macros=[], n_singles=0, **SMALL)
    (cluster,) = p.truth.clusters
    assert cluster.morphology is morphology
    assert cluster.distribution is Distribution.GROUPED
    assert len(cluster.member_ids) == 7 == len(p.truth.calcifications)
    assert cluster.radius_mm < 20
    for c in p.truth.calcifications:
        expected = morphology.value.removeprefix("fine_").replace("linear_branching", "branching")
        if morphology is Morphology.FINE_LINEAR_BRANCHING:
            assert c.shape in ("branching", "linear")
        else:
            assert c.shape == expected
        _check_size(c.shape, c.diameter_mm, c.length_mm, 0.1)


def _check_size(shape: str, diameter_mm: float, length_mm: float, spacing_mm: float) -> None:
    if shape == "round":
        assert _within(diameter_mm, (0.3, 1.0), spacing_mm), diameter_mm
        return
    d_range, len_range = SIZE_RANGES[shape]
    if d_range is not None:
        assert _within(diameter_mm, d_range, spacing_mm), (shape, diameter_mm)
    if len_range is not None:
        assert _within(length_mm, len_range, spacing_mm), (shape, length_mm)
    assert length_mm >= diameter_mm * 0.9


@pytest.mark.parametrize("pattern", MACRO_PATTERNS)
def test_each_macro_pattern(pattern: Morphology) -> None:
    p = make_phantom(seed=7, clusters=[], macros=[pattern], n_singles=0, **SMALL)
    (macro,) = p.truth.macros
    assert macro.pattern is pattern
    assert len(macro.member_ids) == len(p.truth.calcifications) >= 1
    for c in p.truth.calcifications:
        if pattern is Morphology.ROUND:
            assert _within(c.diameter_mm, (1.0, 3.0), 0.1)
        else:
            _check_size(c.shape, c.diameter_mm, c.length_mm, 0.1)
    if pattern is Morphology.VASCULAR:
        assert len(macro.member_ids) >= 4  # two tracks of segments
    _check_inside(p)


@pytest.mark.parametrize("distribution", list(Distribution))
def test_each_distribution(distribution: Distribution) -> None:
    spec = ClusterSpec(Morphology.PUNCTATE, distribution, n=9)
    p = make_phantom(seed=8, clusters=[spec], macros=[], n_singles=1, **SMALL)
    (cluster,) = p.truth.clusters
    assert cluster.distribution is distribution and len(cluster.member_ids) == 9
    if distribution is Distribution.GROUPED:
        assert cluster.radius_mm <= 10
    if distribution is Distribution.REGIONAL:
        assert cluster.radius_mm > 10
    _check_inside(p)
    _check_no_overlap(p)


def _check_no_overlap(p: Phantom) -> None:
    """Pieces of different inserts do not touch (pieces of one macro are built apart)."""
    s = p.mammogram.spacing_mm[0]
    cs = p.truth.calcifications
    macro_of = {i: m.id for m in p.truth.macros for i in m.member_ids}
    centers = np.array([c.center_rc for c in cs])
    for i, a in enumerate(cs):
        for j in range(i + 1, len(cs)):
            if a.id in macro_of and macro_of[a.id] == macro_of.get(cs[j].id):
                continue
            d_mm = float(np.hypot(*(centers[i] - centers[j]))) * s
            assert d_mm > (a.diameter_mm + cs[j].diameter_mm) / 2, (a, cs[j])


def test_cluster_center_is_honoured() -> None:
    center = (600.0, 400.0)
    spec = ClusterSpec(Morphology.FINE_PLEOMORPHIC, n=6, center_rc=center)
    p = make_phantom(seed=9, clusters=[spec], macros=[], n_singles=0, **SMALL)
    (cluster,) = p.truth.clusters
    assert np.hypot(cluster.center_rc[0] - center[0], cluster.center_rc[1] - center[1]) < 100
    with pytest.raises(ValueError, match="inside"):
        make_phantom(
            seed=9, clusters=[ClusterSpec(Morphology.PUNCTATE, center_rc=(600.0, 5.0))], **SMALL
        )


def test_unsupported_inputs_raise() -> None:
    with pytest.raises(ValueError, match="not supported"):
        make_phantom(clusters=[ClusterSpec(Morphology.VASCULAR)], **SMALL)
    with pytest.raises(ValueError, match="not supported"):
        make_phantom(macros=[Morphology.FINE_LINEAR], **SMALL)
    with pytest.raises(ValueError):
        make_phantom(clusters=[ClusterSpec(Morphology.PUNCTATE, n=0)], **SMALL)
    with pytest.raises(ValueError):
        make_phantom(spacing_mm=-0.1, shape=(100, 100))


@pytest.mark.parametrize("noise", [0.0, 1.0])
def test_calcifications_brighter_than_local_background(noise: float) -> None:
    p = make_phantom(seed=3, noise=noise, **SMALL)
    pix = p.mammogram.pixels
    s = p.mammogram.spacing_mm[0]
    for c in p.truth.calcifications:
        r, col = (int(round(v)) for v in c.center_rc)
        reach = int(c.length_mm / s / 2) + 2
        ring = int(c.length_mm / s) + 8
        local = pix[r - ring : r + ring + 1, col - ring : col + ring + 1]
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 3,) * 2)
        tophat = cv2.morphologyEx(local, cv2.MORPH_TOPHAT, kernel)
        peak = tophat[ring - reach : ring + reach + 1, ring - reach : ring + reach + 1].max()
        if noise == 0:
            # the added signal stands out of the (noise-free) anatomy by most of its contrast
            assert peak > 0.5 * c.contrast, c
            if c.shape in ("punctate", "round", "pleomorphic", "coarse_heterogeneous"):
                assert tophat[ring, ring] > 0.4 * c.contrast, c
        elif c.diameter_mm >= 0.3:
            assert (
                pix[r - reach : r + reach + 1, col - reach : col + reach + 1].max()
                > np.median(local) + 0.5 * c.contrast
            ), c
    assert all(c.contrast > 0 for c in p.truth.calcifications)


def test_noise_does_not_move_the_truth(small: Phantom) -> None:
    quiet = make_phantom(seed=3, noise=0.0, **SMALL)
    assert quiet.truth.calcifications == small.truth.calcifications


def test_contrast_to_noise_of_small_specks() -> None:
    """0.2-0.3 mm specks at 0.07 mm: pixel contrast about 4-8x the quantum noise."""
    spec = ClusterSpec(Morphology.PUNCTATE, Distribution.REGIONAL, n=12)
    p = make_phantom(
        seed=10, spacing_mm=0.07, shape=(1200, 1000), clusters=[spec], macros=[], n_singles=0
    )
    noise_std = 0.01
    small_specks = [c for c in p.truth.calcifications if c.diameter_mm < 0.3]
    for c in small_specks:
        assert 2.5 < c.contrast / noise_std < 12, c
    # the quantum noise: std of the difference of neighbouring pixels in a flat region
    pix = p.mammogram.pixels.astype(np.float64)
    diff = (pix[:, 1:] - pix[:, :-1])[p.truth.breast_mask[:, 1:] & p.truth.breast_mask[:, :-1]]
    assert 0.006 < np.median(np.abs(diff)) / 0.6745 / np.sqrt(2) < 0.016


@pytest.mark.parametrize("spacing_mm", [0.05, 0.1, 0.2])
def test_spacings(spacing_mm: float) -> None:
    shape = (round(110 / spacing_mm), round(85 / spacing_mm))
    p = make_phantom(seed=2, spacing_mm=spacing_mm, shape=shape)
    assert p.mammogram.pixels.shape == shape
    assert p.mammogram.spacing_mm == (spacing_mm, spacing_mm)
    assert len(p.truth.clusters) == 3
    for c in p.truth.calcifications:
        if c.cluster_id is not None:
            _check_size(c.shape, c.diameter_mm, c.length_mm, spacing_mm)
    _check_inside(p)


def test_zero_noise_is_smooth() -> None:
    p = make_phantom(seed=1, noise=0.0, macros=[], clusters=[], n_singles=0, **SMALL)
    pix = p.mammogram.pixels
    assert float(np.abs(np.diff(pix, axis=1)).mean()) < 0.003


def test_insert_clusters_into_a_real_looking_image() -> None:
    rng = np.random.default_rng(5)
    pixels = np.clip(
        0.5
        + 0.02 * cv2.GaussianBlur(rng.standard_normal((500, 400)).astype(np.float32), (0, 0), 3),
        0,
        1,
    ).astype(np.float32)
    pixels = np.round(pixels * 255) / 255
    base = Mammogram(pixels=pixels.astype(np.float32), spacing_mm=(0.2, 0.2))
    region = np.zeros(pixels.shape, dtype=bool)
    region[0:450, 40:400] = True  # touches the image border
    avoid = [(250.0, 200.0, 40.0)]
    ph = insert_clusters(base, region, seed=9, n_clusters=2, avoid_rc=avoid, levels=255)
    again = insert_clusters(base, region, seed=9, n_clusters=2, avoid_rc=avoid, levels=255)
    assert np.array_equal(ph.mammogram.pixels, again.mammogram.pixels)
    assert np.array_equal(base.pixels, pixels)  # the input is not modified
    out = ph.mammogram.pixels
    assert out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
    assert np.allclose(out * 255, np.round(out * 255), atol=1e-3)  # stays on the 8-bit grid
    assert len(ph.truth.clusters) == 2
    assert all(cl.distribution is Distribution.GROUPED for cl in ph.truth.clusters)
    changed = np.abs(out - pixels) > 0.5 / 255
    assert not changed[~region].any()  # nothing outside the region
    for c in ph.truth.calcifications:
        r, col = c.center_rc
        assert 0 <= r < 500 and 0 <= col < 400 and region[int(round(r)), int(round(col))]
        assert np.hypot(r - 250, col - 200) > 40  # keeps clear of the known finding
        assert 0.006 <= c.contrast <= 0.12
        # the pixel at the centre got brighter by about the drawn contrast
        win = (out - pixels)[int(r) - 2 : int(r) + 3, int(col) - 2 : int(col) + 3]
        assert win.max() >= 0.5 * c.contrast
    members = {i for cl in ph.truth.clusters for i in cl.member_ids}
    assert members == {c.id for c in ph.truth.calcifications}
    for cl in ph.truth.clusters:
        assert 3 <= len(cl.member_ids) <= 12 and cl.radius_mm <= 7.0 + 2.5
    with pytest.raises(ValueError, match="region shape"):
        insert_clusters(base, region[:10], seed=1)


def test_public_api_is_the_same_from_the_package_and_its_modules():
    import calcscope.phantom as package
    import calcscope.phantom.dome_specks as dome_specks
    import calcscope.phantom.mammogram as module
    import calcscope.phantom.real_film as real_film

    modules = (module, real_film, dome_specks)
    assert set(package.__all__) == set().union(*(set(m.__all__) for m in modules))
    for name in package.__all__:
        source = next(m for m in modules if name in m.__all__)
        assert getattr(package, name) is getattr(source, name), name


def test_benchmark_clusters_follow_the_real_film_recipe() -> None:
    """Two clusters of 5-12 members within a 6 mm radius, pieces 0.15-0.6 mm, as
    insert_clusters with the recipe gives; piece_mm=None lifts the size limit."""
    from calcscope.phantom import BENCHMARK_PIECE_MM, insert_benchmark_clusters

    rng = np.random.default_rng(5)
    pixels = np.clip(0.5 + 0.01 * rng.standard_normal((900, 900)), 0, 1).astype(np.float32)
    base = Mammogram(pixels=pixels, spacing_mm=(0.05, 0.05))
    region = np.ones(pixels.shape, dtype=bool)
    ph = insert_benchmark_clusters(base, region, seed=4, contrast=(0.05, 0.1))
    assert len(ph.truth.clusters) == 2
    for cl in ph.truth.clusters:
        assert 5 <= len(cl.member_ids) <= 12 and cl.radius_mm <= 6.0 + 2.5
    sizes = [max(c.diameter_mm, c.length_mm) for c in ph.truth.calcifications]
    assert min(sizes) >= 0.1 and max(sizes) <= BENCHMARK_PIECE_MM[1] + 0.05
    same = insert_clusters(
        base,
        region,
        seed=4,
        n_clusters=2,
        members=(5, 12),
        radius_mm=(2.0, 6.0),
        contrast=(0.05, 0.1),
        piece_mm=(0.15, 0.6),
    )
    assert np.array_equal(ph.mammogram.pixels, same.mammogram.pixels)
    free = insert_benchmark_clusters(base, region, seed=4, contrast=(0.05, 0.1), piece_mm=None)
    assert not np.array_equal(free.mammogram.pixels, ph.mammogram.pixels)


def test_insert_clusters_can_restrict_pieces_to_microcalcification_specks() -> None:
    rng = np.random.default_rng(3)
    pixels = (0.5 + 0.01 * rng.standard_normal((900, 900))).astype(np.float32)
    base = Mammogram(pixels=np.clip(pixels, 0, 1), spacing_mm=(0.05, 0.05))
    region = np.ones(pixels.shape, dtype=bool)
    sizes = []
    for seed in range(4):
        ph = insert_clusters(base, region, seed=seed, n_clusters=2, piece_mm=(0.15, 0.6))
        sizes += [max(c.diameter_mm, c.length_mm) for c in ph.truth.calcifications]
    free = insert_clusters(base, region, seed=0, n_clusters=2)
    free_sizes = [max(c.diameter_mm, c.length_mm) for c in free.truth.calcifications]
    assert min(sizes) >= 0.1 and max(sizes) <= 0.65, (min(sizes), max(sizes))
    assert len(sizes) >= 40
    assert free_sizes != sizes[: len(free_sizes)]  # the option changes the draw
