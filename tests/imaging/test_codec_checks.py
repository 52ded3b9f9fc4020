"""Structural checks of compressed frames (calcscope.imaging.codec_checks): valid frames of
phantoms and of the real compressed files in ../shared/data pass; the corruptions that
decoders turned silently into another image (docs/accuracy.md, "Hostile input") are refused."""

from __future__ import annotations

import copy
import struct
from io import BytesIO
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless

from calcscope.errors import UnreadableFileError
from calcscope.evaluation.hostile import clean_dicom
from calcscope.imaging.codec_checks import (
    frame_problem,
    j2k_frame_problem,
    j2k_lossless_problem,
    jpegls_frame_problem,
    read_j2k_siz,
    rle_frame_problem,
)
from calcscope.imaging.io import read_image

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


@pytest.fixture(scope="module")
def clean() -> Dataset:
    return pydicom.dcmread(BytesIO(clean_dicom(0)))


def _compressed(ds: Dataset, syntax: pydicom.uid.UID) -> Dataset:
    d = copy.deepcopy(ds)
    try:
        d.compress(syntax, encoding_plugin="pylibjpeg" if syntax == RLELossless else "")
    except Exception:  # noqa: BLE001 - this syntax's encoder is missing here
        pytest.skip(f"no {syntax.name} encoder")
    return d


def _frame(ds: Dataset) -> bytearray:
    return bytearray(next(generate_frames(ds.PixelData, number_of_frames=1)))


def _with_frame(ds: Dataset, frame: bytes, path: Path) -> Path:
    d = copy.deepcopy(ds)
    d.PixelData = encapsulate([bytes(frame) + b"\0" * (len(frame) % 2)])
    d.save_as(path)
    return path


def test_valid_rle_jpegls_and_j2k_frames_pass(clean: Dataset) -> None:
    for syntax in (RLELossless, JPEGLSLossless, JPEG2000Lossless):
        d = _compressed(clean, syntax)
        assert frame_problem(d) is None, syntax.name
    assert frame_problem(clean) is None  # native pixel data: nothing to check


def test_rle_segment_that_decodes_to_another_length_is_refused(
    clean: Dataset, tmp_path: Path
) -> None:
    d = _compressed(clean, RLELossless)
    frame = _frame(d)
    rows, cols = int(d.Rows), int(d.Columns)
    assert rle_frame_problem(bytes(frame), rows, cols, 2) is None
    # the first control byte of segment 1 made a longer literal run: every later byte
    # of the segment is read shifted, and the count goes wrong
    start = struct.unpack("<I", frame[4:8])[0]
    bad = bytearray(frame)
    bad[start] = (bad[start] + 5) % 128 if bad[start] < 128 else 0
    assert "decodes to" in (rle_frame_problem(bytes(bad), rows, cols, 2) or "")
    # a wrong segment count and an offset outside the frame
    wrong = bytearray(frame)
    wrong[0] = 3
    assert "segments" in (rle_frame_problem(bytes(wrong), rows, cols, 2) or "")
    outside = bytearray(frame)
    outside[8:12] = struct.pack("<I", len(frame) + 10)
    assert rle_frame_problem(bytes(outside), rows, cols, 2) is not None
    with pytest.raises(UnreadableFileError, match="RLE Lossless.*corrupt"):
        read_image(_with_frame(d, bad, tmp_path / "shifted.dcm"))


@pytest.mark.parametrize(
    ("offset", "value", "words"),
    [
        (43, 0x62, "sub-sampled"),  # XRsiz
        (44, 0x7E, "sub-sampled"),  # YRsiz
        (42, 0x1F, "precision"),  # Ssiz: 32 bits in a 16-bit image
    ],
)
def test_j2k_siz_contradicting_the_header_is_refused(
    clean: Dataset, offset: int, value: int, words: str
) -> None:
    d = _compressed(clean, JPEG2000Lossless)
    frame = _frame(d)
    frame[offset] = value
    args = (int(d.Rows), int(d.Columns), 1, 16, True)
    assert words in (j2k_frame_problem(bytes(frame), *args) or "")


def test_j2k_tile_size_that_changes_the_grid_is_refused(clean: Dataset) -> None:
    """A flipped YTsiz (byte 31): a grid of two tiles with one tile-part, which OpenJPEG
    decoded into a BI-RADS 0 image."""
    d = _compressed(clean, JPEG2000Lossless)
    frame = _frame(d)
    args = (int(d.Rows), int(d.Columns), 1, 16, True)
    frame[31] = 0x00  # YTsiz 700 -> 512: two tiles
    assert "tiles" in (j2k_frame_problem(bytes(frame), *args) or "")


def test_j2k_lossless_with_quantization_or_irreversible_wavelet_is_refused(
    clean: Dataset, tmp_path: Path
) -> None:
    d = _compressed(clean, JPEG2000Lossless)
    frame = _frame(d)
    args = (int(d.Rows), int(d.Columns), 1, 16, True)
    qcd = frame.index(b"\xff\x5c")
    quantized = bytearray(frame)
    quantized[qcd + 4] = 0x89  # the flip that OpenJPEG decoded into another image
    assert "quantized" in (j2k_frame_problem(bytes(quantized), *args) or "")
    assert j2k_frame_problem(bytes(quantized), *args[:-1], False) is None  # lossy syntax
    cod = frame.index(b"\xff\x52")
    irreversible = bytearray(frame)
    irreversible[cod + 4 + 9] = 0
    assert "irreversible" in (j2k_frame_problem(bytes(irreversible), *args) or "")
    with pytest.raises(UnreadableFileError, match="quantized"):
        read_image(_with_frame(d, quantized, tmp_path / "quantized.dcm"))


def test_jpegls_header_that_changes_the_decoding_is_refused(clean: Dataset) -> None:
    """The two flips that CharLS decoded into a BI-RADS 1 image: the LSE marker's ID and
    the SOS marker itself; and a NEAR above 0 in a lossless stream."""
    d = _compressed(clean, JPEGLSLossless)
    frame = _frame(d)
    args = (int(d.Rows), int(d.Columns), 1, 16, True)
    assert jpegls_frame_problem(bytes(frame), *args) is None
    lse, sos = frame.index(b"\xff\xf8"), frame.index(b"\xff\xda")
    bad_id = bytearray(frame)
    bad_id[lse + 4] = 0x61
    assert "LSE" in (jpegls_frame_problem(bytes(bad_id), *args) or "")
    no_sos = bytearray(frame)
    no_sos[sos + 1] = 0x2B
    assert "FF 2B" in (jpegls_frame_problem(bytes(no_sos), *args) or "")
    near = bytearray(frame)
    near[sos + 4 + 1 + 2 * near[sos + 4]] = 3
    assert "NEAR = 3" in (jpegls_frame_problem(bytes(near), *args) or "")
    assert jpegls_frame_problem(bytes(near), *args[:-1], False) is None  # near-lossless


def test_jpegls_point_transform_is_refused(clean: Dataset, tmp_path: Path) -> None:
    """The fuzz run's h07261: the SOS marker's point transform flipped to 12 made CharLS
    decode every pixel shifted and wrapped (the BI-RADS 4C phantom read as BI-RADS 2)."""
    d = _compressed(clean, JPEGLSLossless)
    frame = _frame(d)
    sos = frame.index(b"\xff\xda")
    shifted = bytearray(frame)
    shifted[sos + 4 + 3 + 2 * shifted[sos + 4]] = 12
    args = (int(d.Rows), int(d.Columns), 1, 16, True)
    assert "point transform 12" in (jpegls_frame_problem(bytes(shifted), *args) or "")
    assert "point transform 12" in (jpegls_frame_problem(bytes(shifted), *args[:-1], False) or "")
    with pytest.raises(UnreadableFileError, match="point transform"):
        read_image(_with_frame(d, shifted, tmp_path / "shifted.dcm"))


def test_real_compressed_files_pass() -> None:
    files = sorted(DATA.glob("**/*.dcm"))
    if not files:
        pytest.skip("no real DICOM files in ../shared/data")
    checked = 0
    for p in files:
        ds = pydicom.dcmread(p)
        assert frame_problem(ds) is None, p.name
        checked += ds.file_meta.TransferSyntaxUID in (RLELossless, "1.2.840.10008.1.2.4.91")
    assert checked >= 1


def test_a_decoded_phantom_is_unchanged_by_the_checks(clean: Dataset, tmp_path: Path) -> None:
    d = _compressed(clean, RLELossless)
    d.save_as(tmp_path / "rle.dcm")
    native = tmp_path / "native.dcm"
    clean.save_as(native)
    a, b = read_image(tmp_path / "rle.dcm"), read_image(native)
    assert np.array_equal(a.pixels, b.pixels)


def _packbits_across_rows(plane: np.ndarray) -> bytes:
    """``plane`` as one PackBits stream of literal runs of 128 bytes, blind to row ends."""
    data = plane.astype(np.uint8).tobytes()
    out = bytearray()
    for i in range(0, len(data), 128):
        chunk = data[i : i + 128]
        out += bytes([len(chunk) - 1]) + chunk
    return bytes(out)


def test_a_row_shifted_band_of_an_rle_segment_is_refused(clean: Dataset, tmp_path: Path) -> None:
    """Issue 17: a band of rows whose high bytes come from 5 columns on (what two flipped
    control bytes of one segment can draw, the segment's length still right) decodes to
    the right size and is refused, with a message naming the file: its runs cross row
    ends, which PS3.5 G.3.1 forbids and no encoder writes."""
    d = _compressed(clean, RLELossless)
    frame = _frame(d)
    rows, cols = int(d.Rows), int(d.Columns)
    raw = clean.pixel_array.astype(np.uint16)
    high = (raw >> 8).ravel()
    shifted = high.copy()
    a, b = 196 * cols + 21, 303 * cols + 310
    shifted[a:b] = high[a + 5 : b + 5]  # a band read 5 bytes on
    seg1 = _packbits_across_rows(shifted)
    seg2 = frame[struct.unpack("<I", frame[8:12])[0] :]
    header = struct.pack("<16I", 2, 64, 64 + len(seg1), *([0] * 13))
    bad = header + seg1 + bytes(seg2)
    problem = rle_frame_problem(bad, rows, cols, 2)
    assert problem is not None and "crosses the end of row 1," in problem
    path = _with_frame(d, bad, tmp_path / "band.dcm")
    with pytest.raises(UnreadableFileError, match=r"band\.dcm: .*crosses the end of row"):
        read_image(path)
    # the same segment encoded row by row, as every encoder does, is read
    by_row = b"".join(_packbits_across_rows(r) for r in shifted.reshape(rows, cols))
    ok = struct.pack("<16I", 2, 64, 64 + len(by_row), *([0] * 13)) + by_row + bytes(seg2)
    assert rle_frame_problem(ok, rows, cols, 2) is None


#: Bytes of the RLE frame of ``clean_dicom(0)`` flipped by hostile file h05521 of
#: ``bench_fuzz.py`` (``--n 10000``, seed 0; RLE, "7 bytes flipped"): (offset, xor). Two of
#: them shift segment 1 by 5 bytes over rows 196-303 and back: it decoded to the right
#: size, passed the band check and gave BI-RADS 4C with 2 clusters instead of 1.
H05521 = [(31488, 13), (109338, 246), (171187, 127), (601476, 17), (634164, 243),
          (649581, 159), (782456, 9)]  # fmt: skip


def test_fuzz_case_h05521_is_refused(clean: Dataset, tmp_path: Path) -> None:
    d = _compressed(clean, RLELossless)
    frame = _frame(d)
    if len(frame) != 793_530:
        pytest.skip("this RLE encoder writes another frame")
    for offset, xor in H05521:
        frame[offset] ^= xor
    path = _with_frame(d, frame, tmp_path / "h05521.dcm")
    with pytest.raises(UnreadableFileError, match=r"h05521\.dcm: .*crosses the end of row 197"):
        read_image(path)


def _j2k(pixels: np.ndarray, bits: int) -> bytes:
    from openjpeg import encode

    return bytes(encode(np.ascontiguousarray(pixels), bits_stored=bits))


@pytest.mark.parametrize(("shape", "bits"), [((64, 48), 16), ((101, 77), 12), ((90, 131), 14)])
def test_intact_lossless_j2k_agrees_with_its_half_resolution(
    shape: tuple[int, int], bits: int
) -> None:
    """Odd and even sizes, 12 to 16 bits, hard edges at the range's ends (where the 5-3
    low-pass overshoots and both sides clip): an intact stream always agrees."""
    rng = np.random.default_rng(bits)
    top = (1 << bits) - 1
    x = rng.integers(0, top // 3, shape)
    x[:, shape[1] // 2 :] = top
    x[5:20, 3:9] = 0
    pixels = x.astype(np.uint16)
    assert j2k_lossless_problem(_j2k(pixels, bits), pixels) is None


def test_lossless_j2k_with_pixels_that_disagree_is_refused(clean: Dataset, tmp_path: Path) -> None:
    """The 10,000-file run's h08733 (bytes flipped in the entropy-coded data: no header
    check sees it, OpenJPEG decodes it silently, the decoder clips what it cannot hold):
    decoded pixels that do not match the stream's own half-resolution image are refused;
    the intact phantom is read."""
    d = _compressed(clean, JPEG2000Lossless)
    frame = bytes(_frame(d))
    pixels = np.asarray(d.pixel_array)
    assert j2k_lossless_problem(frame, pixels) is None
    assert read_image(_with_frame(d, frame, tmp_path / "intact.dcm")) is not None
    wrong = pixels.copy()
    wrong[100:140, 200:260] = 0  # what clipped garbage looks like to the check
    problem = j2k_lossless_problem(frame, wrong)
    assert problem is not None and "half-resolution" in problem


def test_real_films_reencoded_as_lossless_j2k_pass() -> None:
    files = sorted((DATA / "cbis-ddsm-images").glob("*.dcm"))[:1]
    if not files:
        pytest.skip("no CBIS-DDSM films in ../shared/data")
    film = pydicom.dcmread(files[0]).pixel_array
    for crop in (film[:1201, :901], film[3:1500, 5:1000]):
        pixels = np.ascontiguousarray(crop)
        assert j2k_lossless_problem(_j2k(pixels, 16), pixels) is None


def test_j2k_siz_is_read_once_and_shared_by_both_checks() -> None:
    """read_j2k_siz gives the stream's size, components and tile grid; a cut or non-J2K
    frame gives None; both checks answer the same with the SIZ passed as without it."""
    pixels = np.zeros((40, 56), dtype=np.uint16)
    pixels[10:20, 5:30] = 3000
    frame = _j2k(pixels, 12)
    siz = read_j2k_siz(frame)
    assert siz is not None
    assert (siz.width, siz.height, siz.n_components) == (56, 40, 1)
    assert (siz.components[0][0] & 0x7F) + 1 == 12 and siz.components[0][1:] == (1, 1)
    assert siz.tile_width >= 56 and siz.end == 45
    assert read_j2k_siz(frame[:41]) is None and read_j2k_siz(b"\x00" * 64) is None
    cut = read_j2k_siz(frame[:43])
    assert cut is not None and cut.n_components == 1 and cut.components == ()
    args = (40, 56, 1, 16, True)
    assert j2k_frame_problem(frame, *args, siz) is None
    assert "40 x 56" in (j2k_frame_problem(frame, 56, 40, 1, 16, True, siz) or "")
    assert "cut" in (j2k_frame_problem(frame[:41], *args) or "")
    assert "components" in (j2k_frame_problem(frame[:43], *args, cut) or "")
    assert j2k_lossless_problem(frame, pixels, siz) is None
    wrong = pixels.copy()
    wrong[12, 8] = 0
    assert j2k_lossless_problem(frame, wrong, siz) == j2k_lossless_problem(frame, wrong)
    assert j2k_lossless_problem(frame, wrong, siz) is not None
