"""Structural checks of compressed DICOM frames, made before they are decoded.

Decoders repair or ignore some corruption quietly and return an image of the right size
that is not the stored one. These checks refuse a frame whose structure contradicts the
format or the DICOM header, which a valid encoder never writes:

* RLE Lossless (PS3.5 Annex G): the 64-byte segment header (segment count equal to the
  samples times the bytes per sample, first offset 64, offsets increasing and inside the
  frame, unused offsets zero), and every segment decoding (PackBits) to exactly
  ``Rows x Columns`` bytes, no run crossing that end, with at most one byte of padding left,
  and no run crossing the end of a row (PS3.5 G.3.1: each row is encoded separately).
  A flipped control byte shifts every later byte of its segment, so its count goes wrong;
  two can shift a stretch and back, the count right: its runs then cross row ends (fuzz
  case h05521: rows 196-303 with their high bytes from 5 columns on, read as valid).
* JPEG-LS: the markers before the scan (only SOF55, LSE with a defined ID, DRI, COM and
  APPn, then SOS), SOF55 against the header (size, components, precision), and for the
  lossless syntax a NEAR of 0 in SOS. A flipped LSE ID or SOS marker makes CharLS decode
  with other parameters (a BI-RADS 4C phantom read as BI-RADS 1).
* JPEG 2000: the SIZ marker (image size equal to ``Rows x Columns``, component count equal
  to ``SamplesPerPixel``, no sub-sampling, precision at most ``BitsAllocated``), and for
  the lossless-only syntax the COD marker's reversible 5-3 wavelet and the QCD marker's
  "no quantization" style, which that syntax requires. A flipped header byte there makes
  OpenJPEG decode another image of the same size.

What they cannot see: a flipped byte inside RLE literal data or inside entropy-coded
JPEG-LS / JPEG 2000 data leaves a valid stream (neither format carries a checksum); see
docs/accuracy.md, "Hostile input".
"""

from __future__ import annotations

import importlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import (
    JPEG2000,
    JPEG2000Lossless,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

_packbits: ModuleType | None
try:  # the compiled PackBits walk, built at install when a C compiler is there
    _packbits = importlib.import_module("calcscope.imaging._packbits")
except ImportError:  # pragma: no cover - depends on the build
    _packbits = None

__all__ = [
    "frame_problem",
    "rle_frame_problem",
    "J2kSiz",
    "read_j2k_siz",
    "j2k_frame_problem",
    "j2k_lossless_problem",
    "jpegls_frame_problem",
]

_CHECKED = (RLELossless, JPEG2000Lossless, JPEG2000, JPEGLSLossless, JPEGLSNearLossless)

#: The first bytes of a JPEG 2000 code stream: the SOC and SIZ markers.
_J2K_SOC_SIZ = b"\xff\x4f\xff\x51"

#: RLE segment header: the segment count and 15 offsets, little-endian 32-bit.
_RLE_HEADER_BYTES = 64


def frame_problem(
    ds: Dataset,
    frames: Sequence[bytes] | None = None,
    j2k_sizes: Sequence[J2kSiz | None] | None = None,
) -> str | None:
    """The first structural problem of ``ds``'s compressed frames, or None (also for
    other transfer syntaxes and for pixel data that cannot be split into frames, which
    the decoder reports).

    Parameters
    ----------
    ds
        A DICOM data set with encapsulated pixel data.
    frames
        Its frames, already split (None: split here).
    j2k_sizes
        For JPEG 2000, each frame's SIZ marker as :func:`read_j2k_siz` read it (None: read
        here).

    Returns
    -------
    str or None
        The problem in words, naming the frame.
    """
    from pydicom.encaps import generate_frames

    meta = getattr(ds, "file_meta", None)
    ts = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    if ts not in _CHECKED or "PixelData" not in ds:
        return None
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    bits = int(ds.get("BitsAllocated", 16) or 16)
    if frames is None:
        n = max(int(ds.get("NumberOfFrames", 1) or 1), 1)
        try:
            frames = [bytes(f) for f in generate_frames(ds.PixelData, number_of_frames=n)]
        except Exception:  # noqa: BLE001 - a corrupt encapsulation: the decoder reports it
            return None
    for k, frame in enumerate(frames):
        data = bytes(frame)
        if ts == RLELossless:
            problem = rle_frame_problem(data, rows, cols, samples * ((bits + 7) // 8))
        elif ts in (JPEGLSLossless, JPEGLSNearLossless):
            problem = jpegls_frame_problem(data, rows, cols, samples, bits, ts == JPEGLSLossless)
        else:
            siz = j2k_sizes[k] if j2k_sizes is not None and k < len(j2k_sizes) else None
            lossless = ts == JPEG2000Lossless
            problem = j2k_frame_problem(data, rows, cols, samples, bits, lossless, siz)
        if problem is not None:
            return f"frame {k + 1}: {problem}"
    return None


def rle_frame_problem(frame: bytes, rows: int, cols: int, n_segments: int) -> str | None:
    """What is structurally wrong with one RLE Lossless frame, or None.

    Parameters
    ----------
    frame
        The frame's bytes (its fragments joined).
    rows, cols
        The header's ``Rows`` and ``Columns``.
    n_segments
        ``SamplesPerPixel`` times ``BitsAllocated / 8``: the segments the frame must hold.

    Returns
    -------
    str or None
        The first problem found, in words; None for a consistent frame.
    """
    if len(frame) < _RLE_HEADER_BYTES:
        return f"the RLE header is cut ({len(frame)} bytes of 64)"
    header = struct.unpack("<16I", frame[:_RLE_HEADER_BYTES])
    count, offsets = header[0], header[1:]
    if count != n_segments:
        return f"the RLE header lists {count} segments, the image needs {n_segments}"
    used = list(offsets[:count])
    if used[0] != _RLE_HEADER_BYTES or any(o != 0 for o in offsets[count:]):
        return "the RLE segment offsets are inconsistent (first not 64, or unused ones set)"
    ends = [*used[1:], len(frame)]
    if any(b <= a for a, b in zip(used, ends, strict=True)):
        return "the RLE segment offsets are not increasing inside the frame"
    need = rows * cols
    for k, (start, end) in enumerate(zip(used, ends, strict=True)):
        produced, consumed, crossed = _packbits_count(frame, start, end, need, cols)
        if produced != need:
            return f"RLE segment {k + 1} decodes to {produced:,} bytes, not {need:,}"
        if end - consumed > 1:  # one byte of padding to an even length
            return f"RLE segment {k + 1} holds {end - consumed:,} bytes after its image"
        if crossed is not None:
            return (
                f"a run of RLE segment {k + 1} crosses the end of row {crossed // cols + 1}, "
                "where each row must be encoded on its own: its bytes are out of place"
            )
    return None


#: Sums of the walk stay below this in the compiled walk's 64-bit integers.
_PACKBITS_C_MAX = 2**40


def _packbits_count(
    data: bytes, start: int, end: int, need: int, cols: int
) -> tuple[int, int, int | None]:
    """Bytes a PackBits segment ``data[start:end]`` decodes to, stopping at ``need`` (or
    one past it when a run crosses it, or short when the data end), where it stopped, and
    the first output byte of the first run that crosses the end of a row of ``cols``
    bytes (None when none does).

    The compiled walk (:mod:`calcscope.imaging._packbits`, built at install) when it is
    there and the arguments fit its integers, else :func:`_packbits_count_py`: the same
    result either way."""
    if (
        _packbits is not None
        and 0 <= start
        and end <= len(data)
        and abs(need) <= _PACKBITS_C_MAX
        and abs(cols) <= _PACKBITS_C_MAX
    ):
        result: tuple[int, int, int | None] = _packbits.count(data, start, end, need, cols)
        return result
    return _packbits_count_py(data, start, end, need, cols)


def _packbits_count_py(
    data: bytes, start: int, end: int, need: int, cols: int
) -> tuple[int, int, int | None]:
    """:func:`_packbits_count` in Python: the fallback and the reference of the compiled
    walk (``_packbits.c`` mirrors it line by line)."""
    produced, i, crossed = 0, start, None
    row_end = cols  # the end of the row where the next run starts (no division per run)
    while produced < need and i < end:
        n = data[i]
        if n < 128:  # n + 1 literal bytes follow
            count = n + 1
            i += n + 2
            if i > end:
                return produced + count - (i - end), end, crossed  # the literal run is cut
        elif n > 128:  # the next byte, 257 - n times
            count = 257 - n
            i += 2
        else:  # 128: no operation
            i += 1
            continue
        new = produced + count
        if crossed is None:
            if new > row_end:
                crossed = produced
            elif new == row_end:
                row_end += cols
        produced = new
    return produced, min(i, end), crossed


@dataclass(frozen=True)
class J2kSiz:
    """The SIZ marker of a JPEG 2000 code stream (ISO 15444-1 A.5.1), read once.

    Attributes
    ----------
    width, height : int
        Reference grid size (``Xsiz``, ``Ysiz``), pixels.
    x_offset, y_offset : int
        Image offset on the grid (``XOsiz``, ``YOsiz``), pixels.
    tile_width, tile_height : int
        Tile size (``XTsiz``, ``YTsiz``), pixels.
    tile_x_offset, tile_y_offset : int
        Tile grid offset (``XTOsiz``, ``YTOsiz``), pixels.
    n_components : int
        The stated component count (``Csiz``).
    components : tuple[tuple[int, int, int], ...]
        ``(Ssiz, XRsiz, YRsiz)`` of each component whose bytes the stream holds (fewer than
        ``n_components`` in a cut stream).
    end : int
        Offset of the byte after the component list (where the next marker segment starts
        in an intact stream).
    """

    width: int
    height: int
    x_offset: int
    y_offset: int
    tile_width: int
    tile_height: int
    tile_x_offset: int
    tile_y_offset: int
    n_components: int
    components: tuple[tuple[int, int, int], ...]
    end: int


def read_j2k_siz(frame: bytes) -> J2kSiz | None:
    """The SIZ marker of a JPEG 2000 code stream, or None when ``frame`` does not start
    with the SOC and SIZ markers or is cut before the component list.

    Parameters
    ----------
    frame
        The frame's bytes.

    Returns
    -------
    J2kSiz or None
        The marker's fields.
    """
    if frame[:4] != _J2K_SOC_SIZ or len(frame) < 42:
        return None
    xsiz, ysiz, xo, yo, xt, yt, xto, yto = struct.unpack(">8I", frame[8:40])
    csiz = struct.unpack(">H", frame[40:42])[0]
    n_held = min(csiz, (len(frame) - 42) // 3)
    components = tuple(
        (frame[42 + 3 * c], frame[43 + 3 * c], frame[44 + 3 * c]) for c in range(n_held)
    )
    return J2kSiz(xsiz, ysiz, xo, yo, xt, yt, xto, yto, csiz, components, 42 + 3 * csiz)


def j2k_frame_problem(
    frame: bytes,
    rows: int,
    cols: int,
    samples: int,
    bits_allocated: int,
    lossless: bool,
    siz: J2kSiz | None = None,
) -> str | None:
    """What is structurally wrong with one JPEG 2000 code stream, or None.

    Parameters
    ----------
    frame
        The frame's bytes: a JPEG 2000 code stream (``FF 4F FF 51`` ...), or a JP2 file
        (then not checked here).
    rows, cols, samples, bits_allocated
        The header's ``Rows``, ``Columns``, ``SamplesPerPixel`` and ``BitsAllocated``.
    lossless
        The transfer syntax is JPEG 2000 Lossless Only: the wavelet must be the reversible
        5-3 one and the coefficients unquantized.
    siz
        ``frame``'s SIZ marker as :func:`read_j2k_siz` read it (None: read here).

    Returns
    -------
    str or None
        The first problem found, in words; None for a consistent code stream.
    """
    if frame[:4] != _J2K_SOC_SIZ:
        return None if frame[4:8] == b"jP  " else "no JPEG 2000 SOC and SIZ markers"
    siz = siz or read_j2k_siz(frame)
    if siz is None:
        return "the JPEG 2000 SIZ marker is cut"
    width, height = siz.width - siz.x_offset, siz.height - siz.y_offset
    if (width, height) != (cols, rows):
        return f"the JPEG 2000 image is {width} x {height}, the header says {cols} x {rows}"
    if siz.n_components != samples or len(siz.components) < siz.n_components:
        return f"the JPEG 2000 stream has {siz.n_components} components, the header says {samples}"
    for ssiz, xr, yr in siz.components:
        if (ssiz & 0x7F) + 1 > bits_allocated:
            return f"JPEG 2000 component precision {(ssiz & 0x7F) + 1} > {bits_allocated} bits"
        if (xr, yr) != (1, 1):
            return f"JPEG 2000 component sub-sampled ({xr} x {yr}): not a DICOM image"
    if siz.tile_width == 0 or siz.tile_height == 0:
        return "a JPEG 2000 tile of size 0"
    n_tiles = -(-(siz.width - siz.tile_x_offset) // siz.tile_width) * -(
        -(siz.height - siz.tile_y_offset) // siz.tile_height
    )
    problem = _j2k_coding_problem(frame, siz.end, lossless)
    return problem or _j2k_tiles_problem(frame, n_tiles)


def _j2k_coding_problem(frame: bytes, i: int, lossless: bool) -> str | None:
    """The main header's COD and QCD markers (from offset ``i`` to the first tile) against
    the lossless syntax (``lossless``): reversible wavelet, no quantization."""
    while i + 4 <= len(frame):
        marker, length = struct.unpack(">HH", frame[i : i + 4])
        if marker == 0xFF90:  # SOT: the main header ends
            return None
        body = frame[i + 4 : i + 2 + length]
        if lossless and marker == 0xFF52 and len(body) >= 10 and body[9] != 1:
            return "JPEG 2000 Lossless with an irreversible wavelet (COD marker)"
        if lossless and marker == 0xFF5C and body and body[0] & 0x1F != 0:
            return "JPEG 2000 Lossless with quantized coefficients (QCD marker)"
        if length < 2:
            return "a JPEG 2000 marker segment has an impossible length"
        i += 2 + length
    return "the JPEG 2000 main header has no tile (SOT marker)"


#: Marker segments allowed in a JPEG-LS stream before its first scan: SOF55, LSE, DRI,
#: COM and APP0-APP15 (ISO 14495-1).
_JPEGLS_HEADER_MARKERS = frozenset({0xF7, 0xF8, 0xDD, 0xFE, *range(0xE0, 0xF0)})


def jpegls_frame_problem(
    frame: bytes, rows: int, cols: int, samples: int, bits_allocated: int, lossless: bool
) -> str | None:
    """What is structurally wrong with one JPEG-LS stream's header, or None.

    Parameters
    ----------
    frame
        The frame's bytes (SOI, marker segments, SOS, the scan, EOI).
    rows, cols, samples, bits_allocated
        The header's ``Rows``, ``Columns``, ``SamplesPerPixel`` and ``BitsAllocated``.
    lossless
        The transfer syntax is JPEG-LS Lossless: the scan's NEAR must be 0.

    Returns
    -------
    str or None
        The first problem found, in words; None for a consistent header.
    """
    if frame[:2] != b"\xff\xd8":
        return "no JPEG-LS SOI marker"
    i, seen_sof = 2, False
    while i + 4 <= len(frame):
        if frame[i] != 0xFF:
            return f"no JPEG-LS marker at byte {i} of the header"
        marker, length = frame[i + 1], struct.unpack(">H", frame[i + 2 : i + 4])[0]
        body = frame[i + 4 : i + 2 + length]
        if length < 2 or len(body) < length - 2:
            return "a JPEG-LS marker segment has an impossible length"
        if marker == 0xDA:  # SOS: the scan
            if not seen_sof:
                return "a JPEG-LS scan before its SOF55 frame header"
            ns = body[0] if body else 0
            if len(body) < 1 + 2 * ns + 3:
                return "the JPEG-LS SOS marker is cut"
            near, ilv, point_transform = body[1 + 2 * ns : 4 + 2 * ns]
            if length != 6 + 2 * ns or ilv > 2:
                return "the JPEG-LS SOS marker is inconsistent"
            if point_transform:  # the decoded values would be shifted (CharLS wraps them)
                return f"JPEG-LS scan with point transform {point_transform} (must be 0)"
            return f"JPEG-LS Lossless with NEAR = {near}" if lossless and near else None
        if marker not in _JPEGLS_HEADER_MARKERS:
            return f"unexpected marker FF {marker:02X} in the JPEG-LS header"
        if marker == 0xF7:
            if len(body) < 6:
                return "the JPEG-LS SOF55 marker is cut"
            precision, y, x = body[0], *struct.unpack(">HH", body[1:5])
            if (y, x) != (rows, cols) or body[5] != samples:
                return f"the JPEG-LS frame is {x} x {y} x {body[5]}, the header says otherwise"
            if not 2 <= precision <= bits_allocated:
                return f"JPEG-LS precision {precision} with {bits_allocated} bits allocated"
            seen_sof = True
        if marker == 0xF8 and (not body or body[0] not in (1, 2, 3, 4)):
            return "a JPEG-LS LSE marker with an undefined ID"
        i += 2 + length
    return "no JPEG-LS scan (SOS marker)"


def _j2k_tiles_problem(frame: bytes, n_tiles: int) -> str | None:
    """Every tile of the SIZ marker's grid (``n_tiles``) has a tile-part, and no tile-part
    names a tile outside it: a flipped tile size makes OpenJPEG decode another grid."""
    i = frame.find(b"\xff\x90")
    seen: set[int] = set()
    while 0 <= i and i + 12 <= len(frame) and frame[i : i + 2] == b"\xff\x90":
        isot, psot = struct.unpack(">HI", frame[i + 4 : i + 10])
        if isot >= n_tiles:
            return f"a JPEG 2000 tile-part of tile {isot}, the SIZ grid has {n_tiles} tiles"
        seen.add(isot)
        if psot == 0:  # the last tile-part: up to the end of the code stream
            break
        i += psot
    if len(seen) != n_tiles:
        return f"the JPEG 2000 stream holds {len(seen)} of its SIZ grid's {n_tiles} tiles"
    return None


def _lift53(a: np.ndarray, axis: int) -> np.ndarray:
    """The low-pass half of one reversible 5-3 lifting step along ``axis`` (int32; JPEG
    2000's whole-sample symmetric extension at both ends, the image starting at 0)."""
    a = np.moveaxis(a, axis, 0)
    even, odd = a[0::2], a[1::2]
    e_next = np.concatenate([even[1:], even[-1:]], axis=0)[: len(odd)]
    d = odd - np.floor_divide(even[: len(odd)] + e_next, 2)
    d_prev = np.concatenate([d[:1], d], axis=0)[: len(even)]
    d_cur = np.concatenate([d, d[-1:]], axis=0)[: len(even)]
    return np.moveaxis(even + np.floor_divide(d_prev + d_cur + 2, 4), 0, axis)


def j2k_lossless_problem(
    frame: bytes, decoded: np.ndarray, siz: J2kSiz | None = None
) -> str | None:
    """Whether a lossless JPEG 2000 frame's decoded pixels agree with the stream's own
    half-resolution image, or None (also where it cannot be checked).

    With the reversible 5-3 wavelet, the half-resolution image a decoder makes from the
    stream (its first LL band) equals the 5-3 LL band of the full decoded image (both
    clipped to the precision's range). Bits flipped in the entropy-coded data pass every
    structural check and decode without an error, but make coefficients the decoder must
    clip, which breaks this equality. Checked for one unsigned component of at most 16 bits,
    one tile, no image offset and at least one decomposition level; needs Pillow's
    JPEG 2000 decoder (else not checked).

    Parameters
    ----------
    frame
        The JPEG 2000 code stream (``FF 4F FF 51`` ...).
    decoded
        The frame as the decoder returned it, ``(rows, cols)``.
    siz
        ``frame``'s SIZ marker as :func:`read_j2k_siz` read it (None: read here).

    Returns
    -------
    str or None
        The disagreement in words; None when they agree or it cannot be checked.
    """
    siz = siz or read_j2k_siz(frame)
    if siz is None or not siz.components or decoded.ndim != 2:
        return None
    ssiz = siz.components[0][0]
    precision = (ssiz & 0x7F) + 1
    offsets = (siz.x_offset, siz.y_offset, siz.tile_x_offset, siz.tile_y_offset)
    if siz.n_components != 1 or ssiz & 0x80 or precision > 16 or any(offsets):
        return None
    xsiz, ysiz = siz.width, siz.height
    if siz.tile_width < xsiz or siz.tile_height < ysiz or decoded.shape != (ysiz, xsiz):
        return None
    if min(xsiz, ysiz) < 4:
        return None
    cod = frame.find(b"\xff\x52", 42)
    if cod < 0 or len(frame) < cod + 10 or frame[cod + 9] < 1:  # decomposition levels
        return None
    try:
        import io

        from PIL import Image

        with Image.open(io.BytesIO(frame)) as im:
            im.reduce = 1  # type: ignore[assignment]
            im.load()
            mode = im.mode
            half = np.asarray(im).astype(np.int32)
    except Exception:  # noqa: BLE001 - no JPEG 2000 in this Pillow, or it cannot read it
        return None
    # Pillow widens the samples to its mode's bits (I;16: 16, L: 8) by a left shift
    width = 16 if mode.startswith("I;16") else 8 if mode == "L" else 0
    if width < precision:
        return None
    top = (1 << precision) - 1
    ll = np.clip(_lift53(_lift53(decoded.astype(np.int32), 0), 1), 0, top) << (width - precision)
    if half.shape != ll.shape:
        return None
    n_off = int(np.count_nonzero(ll != half))
    if n_off == 0:
        return None
    return (
        f"the decoded pixels disagree with the stream's own half-resolution image at "
        f"{n_off:,} of {ll.size:,} points (corrupt entropy-coded data)"
    )
