"""Breast mask and pectoral muscle on phantoms with known masks."""

from __future__ import annotations

import numpy as np
import pytest

from calcscope.imaging.preprocess import breast_mask, nipple_position, preprocess
from calcscope.model import Laterality, View
from calcscope.phantom.mammogram import make_phantom


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.mark.parametrize("lat", [Laterality.LEFT, Laterality.RIGHT])
def test_breast_mask_matches_truth(lat):
    ph = make_phantom(seed=4, spacing_mm=0.2, laterality=lat, view=View.CC)
    prep = preprocess(ph.mammogram)
    assert iou(prep.breast, ph.truth.breast_mask) > 0.95
    assert prep.chest_wall == ("right" if lat is Laterality.LEFT else "left")
    assert not prep.pectoral.any(), "no pectoral muscle on a CC view"


@pytest.mark.parametrize("seed", [7, 13])
def test_fatty_breast_is_not_cut_away_beside_a_bright_muscle(seed):
    # on these MLO phantoms the bright muscle and dense tissue drew Otsu's split between
    # fatty and dense tissue: the mask lost the fat (IoU 0.81 and 0.42)
    ph = make_phantom(seed=seed, spacing_mm=0.2, view=View.MLO)
    assert iou(breast_mask(ph.mammogram.pixels, 0.2), ph.truth.breast_mask) > 0.95


def test_breast_mask_keeps_fat_between_air_and_dense_tissue():
    rows, cols = np.indices((300, 240))
    img = np.full((300, 240), 0.02, np.float32)  # air
    breast = (rows - 150) ** 2 / 140**2 + cols**2 / 200**2 <= 1
    img[breast] = 0.2  # fatty tissue
    img[breast & ((rows - 150) ** 2 + (cols - 40) ** 2 < 50**2)] = 0.32  # dense tissue
    img[(rows < 90) & (cols < 90 - rows)] = 0.8  # bright muscle in the corner
    img += np.random.default_rng(0).normal(0, 0.005, img.shape).astype(np.float32)
    mask = breast_mask(img, 0.5)
    assert iou(mask, breast) > 0.95


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_pectoral_muscle_found_on_mlo(seed):
    ph = make_phantom(seed=seed, spacing_mm=0.2, view=View.MLO)
    prep = preprocess(ph.mammogram)
    truth = ph.truth.pectoral_mask
    assert truth is not None and truth.any()
    assert iou(prep.pectoral, truth) > 0.7
    # the analysable mask excludes the muscle
    assert (prep.mask & truth).sum() < 0.1 * truth.sum()


@pytest.mark.parametrize("chest_wall", ["left", "right"])
def test_nipple_is_the_most_anterior_point(chest_wall: str) -> None:
    rows, cols = np.indices((400, 300))
    breast = (rows - 220) ** 2 / 180**2 + cols**2 / 250**2 <= 1  # half ellipse, wall left
    if chest_wall == "right":
        breast = breast[:, ::-1]
    r, c = nipple_position(breast, chest_wall)
    assert abs(r - 220) <= 3
    assert abs(c - (247 if chest_wall == "left" else 52)) <= 4
    assert nipple_position(np.zeros((5, 5), bool), "left") is None


@pytest.mark.parametrize("border_mm", [1.0, 0.0])
def test_image_edges_are_left_out_of_the_analysis(border_mm: float) -> None:
    """Where the breast runs off the image (chest wall, top of an MLO), a margin of
    ``border_mm`` along the edge is not analysed: film and detector edges carry
    artefacts. The breast itself still reaches the edge."""
    from calcscope.config import PreprocessConfig

    ph = make_phantom(seed=3, spacing_mm=0.2, shape=(600, 480), clusters=[], n_singles=0)
    prep = preprocess(ph.mammogram, PreprocessConfig(border_mm=border_mm))
    b = int(round(border_mm / 0.2))
    chest = slice(None, 20) if prep.chest_wall == "left" else slice(-20, None)
    assert prep.breast[:, chest].any()  # the breast touches the chest-wall edge
    if b:
        for edge in (prep.mask[:b], prep.mask[-b:], prep.mask[:, :b], prep.mask[:, -b:]):
            assert not edge.any()
    col = b if prep.chest_wall == "left" else -1 - b
    assert prep.mask[:, col].any()  # just inside the margin the breast is analysed


@pytest.mark.parametrize(("view", "erode_mm"), [(View.MLO, 0.5), (View.CC, 0.5), (View.CC, 0.25)])
def test_mask_is_the_whole_image_erosion_of_breast_minus_muscle(view: View, erode_mm: float):
    """The skin rim is cut by eroding the breast (less the muscle) with a disc, as one
    erosion of the whole image would (the erosion is made in strips cut to the breast's
    columns; a cut too close to the breast would keep pixels of the rim)."""
    import cv2

    from calcscope.config import PreprocessConfig

    ph = make_phantom(seed=7, spacing_mm=0.07, view=view)
    cfg = PreprocessConfig(mask_erode_mm=erode_mm, border_mm=0.0)
    prep = preprocess(ph.mammogram, cfg)
    r = int(round(erode_mm / 0.07))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    whole = cv2.erode((prep.breast & ~prep.pectoral).astype(np.uint8), disc).astype(bool)
    assert prep.pectoral.any() == (view is View.MLO)
    assert whole.sum() < (prep.breast & ~prep.pectoral).sum()  # the rim is cut
    assert np.array_equal(prep.mask, whole)
