"""Single-pixel impulses (issue 18's dust and dead pixels, issue 17's flipped RLE literal
bytes): replaced by their 3 x 3 median at 0.06-0.1 mm pixels, never on a phantom's own
calcifications, never at 0.2 mm."""

from __future__ import annotations

import numpy as np
import pytest

from calcscope.config import Config, DetectConfig
from calcscope.detection.impulses import impulse_rule_applies, remove_impulses
from calcscope.imaging.preprocess import preprocess
from calcscope.model import Distribution, Mammogram, Morphology
from calcscope.phantom import ClusterSpec, make_phantom
from calcscope.pipeline import analyze_mammogram


def _noisy(pixel_mm: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    img = (0.4 + 0.004 * rng.standard_normal((300, 300))).astype(np.float32)
    mask = np.zeros(img.shape, dtype=bool)
    mask[10:-10, 10:-10] = True
    return img, mask


HOT = [(50, 60), (120, 200), (201, 33)]
COLD = [(250, 250)]


def _with_impulses(img: np.ndarray) -> np.ndarray:
    out = img.copy()
    for rc in HOT:
        out[rc] += 0.2
    for rc in COLD:
        out[rc] -= 0.2
    return out


def test_hot_and_cold_pixels_are_found_and_replaced_by_their_median():
    img, mask = _noisy(0.1)
    got = remove_impulses(_with_impulses(img), mask, 0.1)
    assert sorted(zip(got.rows.tolist(), got.cols.tolist(), strict=True)) == sorted(HOT + COLD)
    for rc in HOT + COLD:
        assert abs(got.image[rc] - 0.4) < 0.02
    assert 0.003 < got.noise < 0.006  # the image's own noise (0.004 drawn)


@pytest.mark.parametrize("pixel_mm", [0.2, 0.05])
def test_the_rule_is_off_at_0_2_mm_and_where_the_sharpness_rules_apply(pixel_mm: float):
    img, mask = _noisy(pixel_mm)
    hot = _with_impulses(img)
    got = remove_impulses(hot, mask, pixel_mm)
    assert got.count == 0
    assert got.image is hot
    assert not impulse_rule_applies(pixel_mm)
    assert impulse_rule_applies(0.1) and impulse_rule_applies(0.07)


def _suspicious_phantom(spacing_mm: float, seed: int = 0) -> Mammogram:
    spec = ClusterSpec(Morphology.FINE_LINEAR_BRANCHING, Distribution.SEGMENTAL, n=12)
    shape = (int(70 / spacing_mm), int(56 / spacing_mm))
    return make_phantom(
        seed=seed, spacing_mm=spacing_mm, shape=shape, clusters=[spec], macros=[], n_singles=0
    ).mammogram


@pytest.mark.parametrize(
    ("spacing_mm", "seed", "default"),
    [(0.1, 0, False), (0.1, 1, False), (0.07, 0, False), (0.1, 2, True), (0.07, 3, True)],
)
def test_no_pixel_of_a_phantom_is_replaced(spacing_mm: float, seed: int, default: bool):
    mammo = (
        make_phantom(seed=seed, spacing_mm=spacing_mm).mammogram
        if default
        else _suspicious_phantom(spacing_mm, seed)
    )
    mask = preprocess(mammo, Config().preprocess).mask
    got = remove_impulses(mammo.pixels.astype(np.float32), mask, mammo.pixel_mm)
    assert got.count == 0


def _clusters(mammo: Mammogram, config: Config) -> list[tuple[str, int, float, float]]:
    a = analyze_mammogram(mammo, config)
    out = [
        (a.assessment.category.value, len(c.cluster.member_ids), *np.round(c.cluster.center_rc, 0))
        for c in a.clusters
    ]
    return sorted(out)


def test_hot_pixels_leave_a_cluster_of_calcifications_as_it_was_at_0_1_mm():
    clean = _suspicious_phantom(0.1)
    img = clean.pixels.astype(np.float32).copy()
    lo, hi = np.percentile(img, [0.5, 99.5])
    mask = preprocess(clean, Config().preprocess).mask
    rows, cols = np.nonzero(mask[::40, ::40])
    hot = img.copy()
    for r, c in zip(rows[::3] * 40 + 3, cols[::3] * 40 + 3, strict=True):
        hot[r, c] += 0.3 * (hi - lo)  # dead / hot pixels scattered over the breast
    dirty = Mammogram(hot.astype(clean.pixels.dtype), clean.spacing_mm)
    cfg = Config()
    expected = _clusters(clean, cfg)
    assert expected  # the phantom's cluster is found
    assert _clusters(dirty, cfg) == expected
    off = cfg.model_copy(update={"detect": DetectConfig(impulse_max_pixel_mm=0.0)})
    assert _clusters(dirty, off) != expected  # without the rule the hot pixels count


def test_flipped_rle_literal_bytes_give_the_clean_answer(tmp_path):
    """Issue 17: hostile cases 6 and 132 of ``bench_fuzz.py --frames 200`` (RLE, literal
    bytes flipped: 4 and 10 isolated pixels changed, one by 0.24 of the range) decode to
    the right size without an error; they made a second cluster."""
    from calcscope.evaluation.hostile import clean_dicom, compressed_cases
    from calcscope.pipeline import analyze

    data = clean_dicom(0)
    cases = compressed_cases(133, seed=0, clean=data)
    if not cases or not cases[0][0].startswith("RLE"):
        pytest.skip("no RLE encoder here")
    (tmp_path / "clean.dcm").write_bytes(data)
    clean = analyze(tmp_path / "clean.dcm")
    expected = (clean.assessment.category, len(clean.clusters))
    off = Config().model_copy(update={"detect": DetectConfig(impulse_max_pixel_mm=0.0)})
    for k in (6, 132):
        what, blob = cases[k]
        assert "bytes flipped" in what
        path = tmp_path / f"case{k}.dcm"
        path.write_bytes(blob)
        got = analyze(path)
        assert (got.assessment.category, len(got.clusters)) == expected
        assert got.detection.impulses >= 1
        without = analyze(path, config=off)
        assert len(without.clusters) == len(clean.clusters) + 1


def test_a_raised_replicate_run_is_replaced_and_a_fine_linear_member_is_not():
    """Issue 17: a flipped value byte of an RLE replicate run raises 2-128 adjacent pixels
    of one row by the same amount; a one-pixel-thick line (horizontal, diagonal) stays."""
    img, mask = _noisy(0.1)
    dirty = img.copy()
    dirty[100, 40:42] += 0.15  # a pair (like h04159 and h04561 of the fuzz benchmark)
    dirty[150, 70:75] -= 0.15  # a lowered run of 5
    dirty[200, 100:103] += np.float32([0.1, 0.12, 0.11])  # unequal steps are caught too
    line = img.copy()
    line[60, 150:190] += 0.1  # a horizontal line one pixel thick that tapers at its ends
    line[60, 148:150] += 0.05
    line[60, 190:192] += 0.05
    for k in range(30):  # a diagonal one
        line[220 + k, 200 + k] += 0.1
    line[240:243, 100:104] += 0.1  # a blob three rows high
    got = remove_impulses(dirty, mask, 0.1)
    want = [(100, 40), (100, 41), *[(150, c) for c in range(70, 75)], (200, 100), (200, 101)]
    want.append((200, 102))
    assert sorted(zip(got.rows.tolist(), got.cols.tolist(), strict=True)) == sorted(want)
    assert np.abs(got.image - img).max() < 0.03
    assert remove_impulses(line, mask, 0.1).count == 0
    long_run = img.copy()
    long_run[30, 11:160] += 0.15  # longer than any RLE run (128): left alone
    assert remove_impulses(long_run, mask, 0.1).count == 0


#: Bytes of the RLE frame of ``clean_dicom(0)`` flipped by hostile files h04159 and h04561
#: of ``bench_fuzz.py`` (``--n 10000``, seed 0; RLE, "bytes flipped"): (offset, xor).
RLE_FLIPS = {
    "h04159": [(11813, 185), (81095, 194), (81117, 110), (115931, 95), (130706, 93),
               (277053, 168), (298981, 181), (476517, 142), (477657, 4), (526782, 225),
               (712547, 67), (768671, 44)],
    "h04561": [(110337, 89), (302845, 218), (499460, 166), (719351, 247)],
}  # fmt: skip


def rle_with_flips(data: bytes, flips: list[tuple[int, int]]) -> bytes | None:
    """``data`` (a DICOM file) encoded as RLE Lossless with the bytes ``flips`` of its frame
    flipped (None when this machine's RLE encoder writes another frame)."""
    from io import BytesIO

    import pydicom
    from pydicom.encaps import encapsulate, generate_frames
    from pydicom.uid import RLELossless

    ds = pydicom.dcmread(BytesIO(data))
    try:
        ds.compress(RLELossless, encoding_plugin="pylibjpeg")
    except Exception:  # noqa: BLE001 - the plugin is missing: pydicom's own encoder
        ds = pydicom.dcmread(BytesIO(data))
        ds.compress(RLELossless)
    frame = bytearray(next(generate_frames(ds.PixelData, number_of_frames=1)))
    if len(frame) != 793_530:
        return None
    for offset, xor in flips:
        frame[offset] ^= xor
    ds.PixelData = encapsulate([bytes(frame)])
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def test_flipped_rle_replicate_run_values_give_the_clean_answer(tmp_path):
    """Issue 17: hostile files h04159 and h04561 of ``bench_fuzz.py`` raise two adjacent
    pixels of a row by 0.31 and 0.57 of the range (the value byte of a replicate run, among
    other flips): they made a second cluster, 4C with 2 clusters instead of 1."""
    from calcscope.evaluation.hostile import clean_dicom
    from calcscope.pipeline import analyze

    data = clean_dicom(0)
    (tmp_path / "clean.dcm").write_bytes(data)
    clean = analyze(tmp_path / "clean.dcm")
    expected = (clean.assessment.category, len(clean.clusters))
    for name, flips in RLE_FLIPS.items():
        blob = rle_with_flips(data, flips)
        if blob is None:
            pytest.skip("this RLE encoder writes another frame")
        path = tmp_path / f"{name}.dcm"
        path.write_bytes(blob)
        got = analyze(path)
        assert (got.assessment.category, len(got.clusters)) == expected
        assert got.detection.impulses >= 3  # the pair and at least one single pixel


def _breast_like(rows: int = 300, cols: int = 260) -> tuple[np.ndarray, np.ndarray]:
    """A noisy image and a half-disc mask against the left edge (its columns vary from
    row to row), with hot and cold pixels and raised runs on and next to its edge."""
    rng = np.random.default_rng(11)
    img = (0.4 + 0.004 * rng.standard_normal((rows, cols))).astype(np.float32)
    rr, cc = np.mgrid[:rows, :cols]
    mask = np.hypot(rr - rows / 2, cc) < 0.45 * rows
    edge = [(r, int(np.flatnonzero(mask[r])[-1])) for r in range(20, rows - 20, 23)]
    for k, (r, c) in enumerate(edge):
        for dc in (-1, 0, 1, 2):
            img[r + (dc % 2), c + dc] += 0.2 if (k + dc) % 2 else -0.2
        img[r + 7, max(c - 5, 0) : c + 1] += 0.3  # a run ending on the edge
    img[40, 0] += 0.3  # on the image's first column
    return img, mask


def test_impulses_match_the_whole_image_filters_at_the_breast_edge():
    """The strips' filters, cut to the breast's columns, give the whole-image filters'
    noise and single-pixel impulses (a margin too small would change those at the edge)."""
    import cv2

    img, mask = _breast_like()
    got = remove_impulses(img, mask, 0.07)
    resid = img - cv2.medianBlur(img, 3)
    values = resid[::3, ::3][mask[::3, ::3]]
    noise = 1.4826 * np.median(np.abs(values - np.median(values)))
    assert got.noise == pytest.approx(float(noise), rel=0, abs=0)
    ring = np.array([[1, 1, 1], [1, 0, 1], [1, 1, 1]], dtype=np.uint8)
    hi = cv2.dilate(img, ring, borderType=cv2.BORDER_REPLICATE)
    lo = cv2.erode(img, ring, borderType=cv2.BORDER_REPLICATE)
    margin = np.float32(DetectConfig().impulse_noise_multiple * got.noise)
    single = ((img - hi > margin) | (lo - img > margin)) & mask
    found = set(zip(got.rows.tolist(), got.cols.tolist(), strict=True))
    expected = set(zip(*(v.tolist() for v in np.nonzero(single)), strict=True))
    assert len(expected) >= 10 and expected <= found
    runs = found - expected  # the rest are the raised runs' pixels, inside the breast
    assert len(runs) >= 10 and all(mask[r, c] for r, c in runs)
    med = cv2.medianBlur(img, 3)
    assert np.array_equal(got.image[got.rows, got.cols], med[got.rows, got.cols])
