"""Hostile inputs: corrupt, implausible and special files made from one clean mammogram.

The rule they test: *a corrupt or implausible file gives a clear error or the clean file's
answer, never another one; nothing hangs a run; no good file is lost.* :func:`make_cases`
writes a folder of hostile files, each followed by a copy of the clean file, from a small
synthetic mammogram that calcscope calls suspicious (a segmental fine-linear branching
cluster, BI-RADS 4C), so that a silent failure ("0 calcifications, BI-RADS 1") shows.

Families of cases (:class:`Family`):

* ``header``: implausible header values (NaN, infinite or huge rescale, spacing of 1e30 or
  1e-30, zero or huge rows and columns, bit depths that contradict the data, ...);
* ``vr``: an element written with a wrong value representation;
* ``bytes``: random bytes flipped in the header, an element length made huge;
* ``truncated``: the file cut at a random offset;
* ``compressed``: the image encoded as RLE, JPEG-LS or JPEG 2000, then its fragment flipped,
  cut, zeroed, emptied or doubled;
* ``raster``: PNG, TIFF and PGM files cut, with a corrupt header or claiming a huge size;
* ``special``: a FIFO, a folder named like an image, a symbolic link loop, a link to
  ``/dev/zero`` and a broken link, empty and text files.

:func:`classify` turns what a run wrote into the four counts the benchmark reports:
tracebacks, hangs, silent different answers and lost good files.
"""

from __future__ import annotations

import contextlib
import copy
import os
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom import config as dicom_config
from pydicom.dataset import Dataset
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless

__all__ = [
    "Family",
    "Case",
    "Answer",
    "clean_dicom",
    "make_cases",
    "case_bytes",
    "iter_cases",
    "compressed_cases",
    "clean_answer",
]


class Family(StrEnum):
    HEADER = "header"
    VR = "vr"
    BYTES = "bytes"
    TRUNCATED = "truncated"
    COMPRESSED = "compressed"
    RASTER = "raster"
    SPECIAL = "special"


@dataclass(frozen=True)
class Case:
    """One hostile file and the good file written after it."""

    name: str
    family: Family
    what: str
    good: str
    """File name of the clean copy that follows it (must still be analysed)."""


@dataclass(frozen=True)
class Answer:
    """What a reading says, compared between a hostile file and the clean one."""

    category: str
    n_clusters: int


# --------------------------------------------------------------------------- the clean file
def clean_dicom(seed: int = 0) -> bytes:
    """A small suspicious synthetic mammogram (0.1 mm, 700 x 560) as DICOM bytes."""
    import tempfile

    from calcscope.imaging.io import write_image
    from calcscope.model import Distribution, Morphology
    from calcscope.phantom import ClusterSpec, make_phantom

    spec = ClusterSpec(Morphology.FINE_LINEAR_BRANCHING, Distribution.SEGMENTAL, n=12)
    ph = make_phantom(
        seed=seed, spacing_mm=0.1, shape=(700, 560), clusters=[spec], macros=[], n_singles=0
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = write_image(ph.mammogram, Path(tmp) / "clean.dcm")
        return path.read_bytes()


def clean_answer(data: bytes) -> Answer:
    """The pipeline's answer on the clean file (read from bytes in a temporary file)."""
    import tempfile

    from calcscope.pipeline import analyze

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clean.dcm"
        path.write_bytes(data)
        a = analyze(path)
    return Answer(a.assessment.category.value, len(a.clusters))


@contextlib.contextmanager
def _lenient() -> Iterator[None]:
    """Let pydicom write values that its validation would refuse (that is the point)."""
    s = dicom_config.settings
    old = (s.reading_validation_mode, s.writing_validation_mode)
    s.reading_validation_mode = dicom_config.IGNORE
    s.writing_validation_mode = dicom_config.IGNORE
    try:
        yield
    finally:
        s.reading_validation_mode, s.writing_validation_mode = old


def _save(ds: Dataset) -> bytes:
    buf = BytesIO()
    with _lenient():
        ds.save_as(buf, enforce_file_format=False)
    return buf.getvalue()


# --------------------------------------------------------------------------- header values
_BAD_NUMBERS = ["NaN", "nan", "inf", "-inf", "1e308", "-1e308", "1e30", "1e-30", "0", "-1", ""]
_HEADER_VALUES: dict[str, list[str | int]] = {
    "RescaleSlope": ["NaN", "inf", "-inf", "1e308", "0", "-1e308", "1e-300"],
    "RescaleIntercept": ["NaN", "inf", "-inf", "1e308", "-1e308"],
    "ImagerPixelSpacing": [
        "1e30\\1e30",
        "1e-30\\1e-30",
        "NaN\\NaN",
        "inf\\inf",
        "0\\0",
        "-0.1\\-0.1",
        "5\\5",
        "0.001\\0.001",
        "0.1\\1e30",
        "x\\y",
    ],
    "PixelSpacing": ["1e30\\1e30", "1e-30\\1e-30", "NaN\\NaN", "0\\0", "-1\\-1"],
    "WindowCenter": ["NaN", "inf", "-inf", "1e308"],
    "WindowWidth": ["NaN", "inf", "0", "-5", "1e-300"],
    "Rows": [0, 1, 65535, 350],
    "Columns": [0, 1, 65535, 280],
    "BitsAllocated": [0, 1, 8, 32, 64],
    "BitsStored": [0, 1, 17, 64],
    "HighBit": [0, 31, 255],
    "PixelRepresentation": [2, 255],
    "SamplesPerPixel": [0, 3, 4],
    "PhotometricInterpretation": ["RGB", "PALETTE COLOR", "YBR_FULL", "", "X" * 64],
    "NumberOfFrames": ["0", "-1", "1000000", "NaN"],
    "Modality": ["CT", "MR", "", "US"],
}


def _header_cases(ds: Dataset, rng: random.Random) -> Iterator[tuple[str, bytes]]:
    for keyword, values in _HEADER_VALUES.items():
        for value in values:
            d = copy.deepcopy(ds)
            tag = pydicom.datadict.tag_for_keyword(keyword)
            assert tag is not None
            with _lenient():
                if tag not in d:
                    d.add_new(tag, pydicom.datadict.dictionary_VR(tag), None)
                d[tag]._value = value  # raw: bypass pydicom's conversion and validation
                try:
                    data = _save(d)
                except Exception:  # noqa: BLE001 - pydicom refused to write it
                    continue
            yield f"{keyword}={str(value)[:24]!r}", data


def _vr_cases(ds: Dataset, rng: random.Random) -> Iterator[tuple[str, bytes]]:
    wrong = {
        "Rows": ("DS", "700.5"),
        "Columns": ("LO", "five hundred"),
        "BitsStored": ("FD", 16.0),
        "RescaleSlope": ("US", 1),
        "ImagerPixelSpacing": ("US", [1, 1]),
        "PixelSpacing": ("FD", [0.1, float("nan")]),
        "WindowCenter": ("SQ", []),
        "PhotometricInterpretation": ("US", 2),
    }
    for keyword, (vr, value) in wrong.items():
        d = copy.deepcopy(ds)
        tag = pydicom.datadict.tag_for_keyword(keyword)
        assert tag is not None
        with _lenient():
            with contextlib.suppress(KeyError):
                del d[tag]
            d.add_new(tag, vr, value)
            try:
                data = _save(d)
            except Exception:  # noqa: BLE001 - pydicom refused to write it: skip the case
                continue
        yield f"{keyword} as {vr}", data


# --------------------------------------------------------------------------- bytes
def _pixel_offset(data: bytes) -> int:
    """Offset of the Pixel Data element (7FE0,0010) in an explicit VR little endian file."""
    i = data.rfind(b"\xe0\x7f\x10\x00")
    return i if i > 0 else len(data)


def _byte_cases(clean: bytes, rng: random.Random, n: int) -> Iterator[tuple[str, bytes]]:
    header_end = _pixel_offset(clean)
    for k in range(n):
        b = bytearray(clean)
        if k % 3 == 2:  # an element's 4-byte length made huge (explicit VR, long form)
            offsets = [
                i
                for i in range(132, header_end - 12, 2)
                if bytes(b[i + 4 : i + 6]) in (b"OB", b"OW", b"UN", b"SQ", b"UT", b"UC")
            ]
            if offsets:
                i = rng.choice(offsets)
                b[i + 8 : i + 12] = rng.choice([b"\xf0\xff\xff\xff", b"\x00\x00\x00\x7f"])
                yield f"long length at {i}", bytes(b)
                continue
        flips = rng.randint(1, 8)
        where = [rng.randrange(128, header_end) for _ in range(flips)]
        for i in where:
            b[i] ^= rng.randrange(1, 256)
        yield f"{flips} header bytes flipped at {sorted(where)[:3]}", bytes(b)


def _truncated_cases(clean: bytes, rng: random.Random, n: int) -> Iterator[tuple[str, bytes]]:
    for _ in range(n):
        cut = rng.randrange(0, len(clean) - 1)
        yield f"cut at {cut} of {len(clean)} bytes", clean[:cut]


# --------------------------------------------------------------------------- compressed
def _compressed(ds: Dataset, syntax: pydicom.uid.UID) -> Dataset | None:
    d = copy.deepcopy(ds)
    try:
        kwargs: dict[str, Any] = {"encoding_plugin": "pylibjpeg"} if syntax == RLELossless else {}
        d.compress(syntax, **kwargs)
    except Exception:  # noqa: BLE001 - encoder missing here: that syntax is skipped
        try:
            d = copy.deepcopy(ds)
            d.compress(syntax)
        except Exception:  # noqa: BLE001
            return None
    return d


_SYNTAXES = (RLELossless, JPEGLSLossless, JPEG2000Lossless)


def _fragment_cases(ds: Dataset, rng: random.Random, n: int) -> Iterator[tuple[str, bytes]]:
    from pydicom.encaps import encapsulate, generate_frames

    for syntax in _SYNTAXES:
        d = _compressed(ds, syntax)
        if d is None:
            continue
        # the whole frame (generate_frames skips the Basic Offset Table item)
        frame = next(generate_frames(d.PixelData, number_of_frames=1))
        for k in range(n):
            f = bytearray(frame)
            kind = k % 6
            if kind == 0:
                m = rng.randint(1, 16)
                for _ in range(m):
                    i = rng.randrange(len(f))
                    f[i] ^= rng.randrange(1, 256)
                what = f"{m} bytes flipped"
            elif kind == 1:
                cut = rng.randrange(1, len(f))
                f = f[:cut]
                what = f"fragment cut at {cut} of {len(frame)}"
            elif kind == 2:
                i = rng.randrange(len(f))
                f[i : i + rng.randint(8, 4096)] = bytes(min(len(f) - i, 4096))
                what = f"fragment zeroed from {i}"
            elif kind == 3:
                f = bytearray(frame[: max(2, len(frame) // 50)])
                what = "fragment almost empty"
            elif kind == 4:
                f = bytearray(frame + frame)
                what = "fragment doubled"
            else:
                i = rng.randrange(min(64, len(f)))  # the codec's own header
                f[i] ^= rng.randrange(1, 256)
                what = f"codec header byte {i} flipped"
            if len(f) % 2:
                f += b"\x00"
            e = copy.deepcopy(d)
            e.PixelData = encapsulate([bytes(f)])
            yield f"{syntax.name}: {what}", _save(e)


def compressed_cases(
    n_per_syntax: int = 200, *, seed: int = 0, clean: bytes | None = None
) -> list[tuple[str, bytes]]:
    """Corrupt compressed frames only: ``n_per_syntax`` per syntax (RLE, JPEG-LS, JPEG 2000
    Lossless; a syntax without an encoder here is left out), as ``(what, DICOM bytes)``
    whose ``what`` starts with the syntax's name: the ``compressed`` family of
    :func:`make_cases`, cut, zeroed, emptied, doubled, or with flipped bytes."""
    clean = clean if clean is not None else clean_dicom(seed)
    with _lenient():
        ds = pydicom.dcmread(BytesIO(clean))
    return list(_fragment_cases(ds, random.Random(seed), n_per_syntax))


# --------------------------------------------------------------------------- raster
def _raster_cases(
    pixels: np.ndarray, rng: random.Random, n: int
) -> Iterator[tuple[str, str, bytes]]:
    import cv2

    encoded = {}
    for ext in (".png", ".tif", ".pgm"):
        ok, buf = cv2.imencode(ext, pixels)
        if ok:
            encoded[ext] = buf.tobytes()
    for k in range(n):
        ext = list(encoded)[k % len(encoded)]
        data = encoded[ext]
        mode = (k // len(encoded)) % 3
        if mode == 0:
            cut = rng.randrange(0, len(data))
            yield ext, f"{ext} cut at {cut}", data[:cut]
        elif mode == 1:
            b = bytearray(data)
            for _ in range(rng.randint(1, 4)):
                i = rng.randrange(min(len(b), 64))
                b[i] ^= rng.randrange(1, 256)
            yield ext, f"{ext} header flipped", bytes(b)
        elif ext == ".pgm":
            yield ext, "pgm claiming 100000 x 100000", b"P5\n100000 100000\n65535\n" + data[-4096:]
        else:
            yield ext, f"{ext} as text", b"not an image at all\n" * 10


# --------------------------------------------------------------------------- special files
def _special_cases(folder: Path, start: int) -> list[Case]:
    made: list[tuple[str, str, Callable[[Path], object]]] = [
        (".dcm", "a FIFO", lambda p: os.mkfifo(p)),
        (".dcm", "a folder named like an image", lambda p: p.mkdir()),
        (".dcm", "a symbolic link loop", lambda p: p.symlink_to(p)),
        (".dcm", "a link to /dev/zero", lambda p: p.symlink_to("/dev/zero")),
        (".dcm", "a broken link", lambda p: p.symlink_to(folder / "no-such-file.dcm")),
        (".dcm", "an empty file", lambda p: p.write_bytes(b"")),
        (".dcm", "a text file", lambda p: p.write_text("hello\n" * 100)),
        (".png", "an empty PNG", lambda p: p.write_bytes(b"")),
    ]
    cases = []
    for k, (ext, what, make) in enumerate(made):
        name = f"h{start + k:05d}-special{ext}"
        with contextlib.suppress(OSError, AttributeError):
            make(folder / name)
            cases.append(Case(name, Family.SPECIAL, what, ""))
    return cases


# --------------------------------------------------------------------------- the folder
def iter_cases(
    *, n: int = 10_000, seed: int = 0, clean: bytes | None = None
) -> Iterator[tuple[Family, str, str, bytes]]:
    """The cases :func:`make_cases` writes (same ``n`` and ``seed``), made one at a time
    and not written, in order (the ``k``-th is file ``h<k>``; the special files are left
    out): ``(family, extension, what, data)``."""
    clean = clean if clean is not None else clean_dicom(seed)
    rng = random.Random(seed)
    with _lenient():
        ds = pydicom.dcmread(BytesIO(clean))
        ds.decompress() if ds.file_meta.TransferSyntaxUID.is_compressed else None
        pixels = ds.pixel_array.astype(np.uint16)
    fixed = list(_header_cases(ds, rng)) + list(_vr_cases(ds, rng))
    budget = max(n - len(fixed) - 8, 6)
    share = {Family.BYTES: 0.25, Family.TRUNCATED: 0.15, Family.COMPRESSED: 0.5, Family.RASTER: 0.1}
    n_bytes = int(budget * share[Family.BYTES])
    n_cut = int(budget * share[Family.TRUNCATED])
    per_syntax = max(1, int(budget * share[Family.COMPRESSED]) // 3)
    n_raster = int(budget * share[Family.RASTER])

    def cases() -> Iterator[tuple[Family, str, str, bytes]]:
        for w, d in fixed:
            yield (Family.HEADER if "=" in w else Family.VR, ".dcm", w, d)
        for w, d in _byte_cases(clean, rng, n_bytes):
            yield Family.BYTES, ".dcm", w, d
        for w, d in _truncated_cases(clean, rng, n_cut):
            yield Family.TRUNCATED, ".dcm", w, d
        for w, d in _fragment_cases(ds, rng, per_syntax):
            yield Family.COMPRESSED, ".dcm", w, d
        for ext, w, d in _raster_cases(pixels, rng, n_raster):
            yield Family.RASTER, ext, w, d

    return cases()


def make_cases(
    folder: str | Path,
    *,
    n: int = 10_000,
    seed: int = 0,
    clean: bytes | None = None,
    good_every: int = 1,
) -> list[Case]:
    """Write about ``n`` hostile files into ``folder``, each followed by a clean copy.

    ``good_every`` writes a clean copy after every ``good_every``-th hostile file (1: after
    each). Returns the cases; the clean copies are named ``g<k>.dcm``.
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    clean = clean if clean is not None else clean_dicom(seed)
    generated = iter_cases(n=n, seed=seed, clean=clean)
    cases: list[Case] = []
    k = -1
    for k, (family, ext, what, data) in enumerate(generated):
        name = f"h{k:05d}-{family.value}{ext}"
        good = ""
        if k % good_every == 0:
            good = f"g{k:05d}.dcm"
            (out / good).write_bytes(clean)
        (out / name).write_bytes(data)
        cases.append(Case(name, family, what, good))
    cases += _special_cases(out, k + 1)
    return cases


def case_bytes(
    numbers: Iterable[int], *, n: int = 10_000, seed: int = 0, clean: bytes | None = None
) -> dict[int, tuple[Family, str, bytes]]:
    """Some cases of :func:`make_cases` (same ``n`` and ``seed``) in memory, without writing
    the others: ``{k: (family, what, data)}`` for each ``k`` of ``numbers`` (the ``k`` of
    file ``h<k>``; the special files are left out)."""
    want = set(numbers)
    clean = clean if clean is not None else clean_dicom(seed)
    generated = iter_cases(n=n, seed=seed, clean=clean)
    out: dict[int, tuple[Family, str, bytes]] = {}
    for k, (family, _, what, data) in enumerate(generated):
        if k in want:
            out[k] = (family, what, data)
        if len(out) == len(want):
            break
    return out
