"""Read DICOM mammograms: header checks, pixel decoding, modality and VOI LUTs, geometry.

:func:`read_dicom` is called by :func:`calcscope.imaging.io.read_image`; it returns a
:class:`~calcscope.model.Mammogram` or raises a :mod:`calcscope.errors` class.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut, apply_voi_lut
from pydicom.uid import (
    JPEG2000,
    UID,
    DigitalMammographyXRayImageStorageForPresentation,
    DigitalMammographyXRayImageStorageForProcessing,
    JPEG2000Lossless,
    SecondaryCaptureImageStorage,
)

from calcscope.config import IOConfig
from calcscope.errors import (
    MAX_QUOTED_CHARS,
    ImplausibleValueError,
    MissingSpacingError,
    NotAMammogramError,
    UnreadableFileError,
    one_line,
)
from calcscope.imaging._common import (
    MISSING_SPACING,
    check_size,
    check_spacing,
    finish,
    grey_from_channels,
    int_or,
    normalise_array,
    orientation,
    robust_bounds,
    str_or_none,
    uid_name,
)
from calcscope.imaging.codec_checks import (
    J2kSiz,
    frame_problem,
    j2k_lossless_problem,
    read_j2k_siz,
)
from calcscope.imaging.tags import header_number
from calcscope.model import Laterality, Mammogram, Source, View

__all__ = [
    "MAX_BAND_STEP_FRACTION",
    "MAX_STEP_FRACTION",
    "STEP_JUMP",
    "read_dicom",
    "step_fractions",
]

#: A "jump": neighbouring pixels that differ by more than this fraction of the image's
#: robust range (0.5th to 99.5th percentile).
STEP_JUMP = 0.2
#: Decoded compressed pixels are refused as garbled when more than this fraction of all
#: pixels jump. Measured with :func:`step_fractions`: at most 0.7 % on the real images in
#: ../shared/data (206 mini-MIAS films with their labels, 5 CBIS-DDSM films, the DICOM WG04
#: J2K sample) and under 0.1 % on the phantoms; 1.7-15 % on JPEG-LS frames with flipped
#: bytes, where the decoder loses its place and fills the rest of the frame with blocks.
MAX_STEP_FRACTION = 0.012
#: ... or more than this fraction within any band of 64 rows (real images: at most 2.5 %,
#: phantoms 1.7 %; garbled ones 4.4-64 %, among them JPEG-LS frames with a zeroed stretch,
#: whose decoder fills the last rows with smooth blocks: 5.4 and 5.8 %), which catches a
#: corruption that starts near the end.
MAX_BAND_STEP_FRACTION = 0.045
_STEP_BAND_ROWS = 64

_MAMMOGRAPHY_CAPABLE_SOP_CLASSES = frozenset(
    {
        SecondaryCaptureImageStorage,
        DigitalMammographyXRayImageStorageForPresentation,
        DigitalMammographyXRayImageStorageForProcessing,
    }
)
_LENIENT_MODALITIES = frozenset({"RG", "OT", ""})

# CID 4014 view codes: SNOMED CT and the legacy SNOMED-RT values still found in old files.
_VIEW_CODES: dict[str, View] = {
    "399162004": View.CC,
    "399368009": View.MLO,
    "399260004": View.ML,
    "399352003": View.LM,
    "399192008": View.XCCL,
    "R-10242": View.CC,
    "R-10226": View.MLO,
    "R-10224": View.ML,
    "R-10230": View.LM,
    "R-1024A": View.XCCL,
}
_VIEW_MEANINGS: dict[str, View] = {
    "craniocaudal": View.CC,
    "mediolateraloblique": View.MLO,
    "mediolateral": View.ML,
    "mediallateral": View.ML,
    "lateromedial": View.LM,
    "craniocaudalexaggeratedlaterally": View.XCCL,
}
_PATIENT_ID_SIDE = re.compile(r"(?:^|_)(LEFT|RIGHT)(?:_|$)")
_PATIENT_ID_VIEW = re.compile(r"(?:^|_)(CC|MLO|ML|LM|XCCL)(?:_|$)")

# ---------------------------------------------------------------------------------------
# DICOM
# ---------------------------------------------------------------------------------------


def read_dicom(p: Path, config: IOConfig, user_spacing: tuple[float, float] | None) -> Mammogram:
    """Read one DICOM mammogram (see :func:`calcscope.imaging.io.read_image`).

    Parameters
    ----------
    p
        The file.
    config
        Size limits.
    user_spacing
        ``(row, col)`` spacing in mm that overrides the header's, or None.

    Returns
    -------
    Mammogram
        Pixels float32 in ``[0, 1]``, bright = dense.
    """
    name = str(p)
    ds = _read_dataset(p)
    sop_class, modality = _check_mammography(ds, name)
    photometric = str(ds.get("PhotometricInterpretation", "") or "").strip().upper()
    if photometric == "PALETTE COLOR":
        raise NotAMammogramError("colour image (PALETTE COLOR), not a grey mammogram", name)
    rows, cols = int_or(ds.get("Rows"), 0), int_or(ds.get("Columns"), 0)
    if "PixelData" not in ds or rows == 0 or cols == 0:
        raise UnreadableFileError(
            "no pixel data or no image size in the header (truncated file?)", name
        )
    check_size(rows, cols, config, name)

    spacing: tuple[float, float] | None
    origin: str | None
    if user_spacing is not None:  # the given spacing overrides the header's, right or wrong
        spacing, origin = user_spacing, "user"
    else:
        spacing, origin = _dicom_spacing(ds)
        if spacing is None or origin is None:
            raise MissingSpacingError(MISSING_SPACING, name)
        check_spacing(spacing, config, name, origin)

    _check_native_length(ds, rows, cols, name)
    frames = _split_frames(ds)
    raw = _decode(ds, name, frames)
    if raw.shape[:2] != (rows, cols):
        raise UnreadableFileError(
            f"decoded pixels have shape {raw.shape}, header says {rows} x {cols}", name
        )
    _check_decoded(raw, ds, name, frames)
    if raw.ndim == 3:
        pixels = finish(grey_from_channels(normalise_array(raw, name), name), name)
    else:
        pixels = _dicom_grey(raw, ds, photometric, name)
    return Mammogram(
        pixels=pixels,
        spacing_mm=spacing,
        laterality=_dicom_laterality(ds),
        view=_dicom_view(ds),
        source=_source(ds, name, sop_class, modality, photometric, origin),
    )


def _read_dataset(p: Path) -> Dataset:
    """The whole dataset of ``p`` (pixels not yet decoded), or UnreadableFileError."""
    name = str(p)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(p, force=True)
    except Exception as exc:  # noqa: BLE001
        detail = one_line(exc, MAX_QUOTED_CHARS)
        raise UnreadableFileError(
            f"not a readable DICOM file (truncated or corrupt?): {detail}", name
        ) from exc
    sop_class = str(ds.get("SOPClassUID", "") or "")
    if not sop_class and "PixelData" not in ds and "Rows" not in ds:
        raise UnreadableFileError(
            "not a valid DICOM file, or truncated (no SOP class, no image found)", name
        )
    return ds


def _check_mammography(ds: Dataset, name: str) -> tuple[str, str]:
    """SOP class UID and modality of a single-frame mammogram, else NotAMammogramError."""
    sop_class = str(ds.get("SOPClassUID", "") or "")
    modality = str(ds.get("Modality", "") or "").strip().upper()
    if modality != "MG" and not (
        modality in _LENIENT_MODALITIES and sop_class in _MAMMOGRAPHY_CAPABLE_SOP_CLASSES
    ):
        what = f"modality {modality}" if modality else "no modality"
        raise NotAMammogramError(
            f"not a mammogram: {what} with SOP class {uid_name(sop_class)} "
            "(accepted: modality MG, or RG/OT/none stored as Secondary Capture or "
            "Digital Mammography)",
            name,
        )
    frames = int_or(ds.get("NumberOfFrames"), 1)
    if frames > 1:
        raise NotAMammogramError(
            f"multi-frame image ({frames} frames, e.g. tomosynthesis); "
            "calcscope reads single 2-D mammograms",
            name,
        )
    return sop_class, modality


def _transfer_syntax(ds: Dataset) -> UID | None:
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    return UID(str(ts)) if ts else None


def _transfer_syntax_text(ds: Dataset) -> str:
    ts = _transfer_syntax(ds)
    return f"{ts.name} ({ts})" if ts is not None else "unknown transfer syntax"


@dataclass(frozen=True)
class _Frames:
    """Encapsulated pixel data split into frames once, for every check that reads them.

    Attributes
    ----------
    frames : tuple[bytes, ...] or None
        The frames; None where the data are not encapsulated or cannot be split.
    error : Exception or None
        Why they cannot be split.
    j2k_sizes : tuple[J2kSiz or None, ...]
        For a JPEG 2000 syntax, each frame's SIZ marker; empty otherwise.
    """

    frames: tuple[bytes, ...] | None = None
    error: Exception | None = None
    j2k_sizes: tuple[J2kSiz | None, ...] = ()


def _split_frames(ds: Dataset) -> _Frames:
    """Split ``ds``'s encapsulated pixel data into frames (``NumberOfFrames``, at least 1)
    and read each JPEG 2000 frame's SIZ marker, once."""
    ts = _transfer_syntax(ds)
    if ts is None or not ts.is_compressed or "PixelData" not in ds:
        return _Frames()
    from pydicom.encaps import generate_frames

    n = int(ds.get("NumberOfFrames", 1) or 1)
    try:
        frames = tuple(bytes(f) for f in generate_frames(ds.PixelData, number_of_frames=max(n, 1)))
    except Exception as exc:  # noqa: BLE001 - a corrupt encapsulation: reported by the checks
        return _Frames(error=exc)
    sizes = tuple(read_j2k_siz(f) for f in frames) if ts in (JPEG2000, JPEG2000Lossless) else ()
    return _Frames(frames, None, sizes)


def _decode(ds: Dataset, name: str, frames: _Frames) -> np.ndarray:
    """The stored pixel values (before any LUT), or UnreadableFileError.

    The decoder call is isolated: whatever it raises, including ``BaseException``
    subclasses such as ``pyo3_runtime.PanicException`` (a panic of a Rust decoder, e.g.
    pylibjpeg-rle on corrupt RLE segments), becomes an UnreadableFileError that names the
    file and the transfer syntax. Only an interrupt or an exit goes through.
    """
    _check_end_markers(ds, name, frames)
    problem = frame_problem(ds, frames.frames, frames.j2k_sizes or None)
    if problem is not None:
        raise UnreadableFileError(
            f"the {_transfer_syntax_text(ds)} pixel data are corrupt ({problem}); not analysed",
            name,
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if _view_is_exact(ds):
                ds.pixel_array_options(view_only=True)
            return ds.pixel_array
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - a decoder panic is not an Exception
        detail = one_line(exc, MAX_QUOTED_CHARS)
        raise UnreadableFileError(
            f"cannot decode the pixel data, {_transfer_syntax_text(ds)}: {detail}. "
            "Convert it to uncompressed DICOM with another tool (e.g. DCMTK dcmdjpeg, "
            "gdcmconv --raw) or export it as 16-bit PNG and pass --spacing-mm",
            name,
        ) from exc


def _view_is_exact(ds: Dataset) -> bool:
    """Whether pydicom can return native grey pixel data as a read-only view of the
    file's bytes (no copy; the readers never write into the stored values): not where it
    must change them (unused high bits, a colour space), where it would copy anyway and
    log that it could not give a view."""
    photometric = str(ds.get("PhotometricInterpretation", "") or "").strip().upper()
    bits_stored = int_or(ds.get("BitsStored"), 0)
    return photometric in ("MONOCHROME1", "MONOCHROME2") and bits_stored == int_or(
        ds.get("BitsAllocated"), -1
    )


def _check_end_markers(ds: Dataset, name: str, frames: _Frames) -> None:
    """Refuse a JPEG-family or JPEG 2000 frame that does not end with its end marker
    (EOI / EOC, both ``FF D9``, padding zeros allowed): a cut stream is decoded by some
    decoders without an error, the missing rows filled with whatever they hold."""
    ts = _transfer_syntax(ds)
    if ts is None or not ts.is_compressed or not str(ts).startswith("1.2.840.10008.1.2.4."):
        return
    if "PixelData" not in ds:
        return
    if frames.error is not None:  # a corrupt encapsulation: the decoder would say more
        detail = one_line(frames.error, MAX_QUOTED_CHARS)
        raise UnreadableFileError(
            f"the encapsulated pixel data cannot be split into frames: {detail}", name
        ) from frames.error
    for k, frame in enumerate(frames.frames or ()):
        if not frame.rstrip(b"\x00").endswith(b"\xff\xd9"):
            raise UnreadableFileError(
                f"frame {k + 1} of the {_transfer_syntax_text(ds)} pixel data does not end "
                "with its end marker (FF D9): the compressed data are cut or corrupt; "
                "not analysed",
                name,
            )


def _source(
    ds: Dataset, name: str, sop_class: str, modality: str, photometric: str, origin: str | None
) -> Source:
    """Where the image came from: the file and its DICOM identity."""
    return Source(
        path=name,
        study_instance_uid=str_or_none(ds.get("StudyInstanceUID")),
        series_instance_uid=str_or_none(ds.get("SeriesInstanceUID")),
        sop_instance_uid=str_or_none(ds.get("SOPInstanceUID")),
        sop_class_uid=sop_class or None,
        modality=modality or None,
        patient_id=str_or_none(ds.get("PatientID")),
        patient_name=str_or_none(ds.get("PatientName")),
        patient_birth_date=str_or_none(ds.get("PatientBirthDate")),
        presentation_intent=str_or_none(ds.get("PresentationIntentType")),
        photometric_interpretation=photometric or None,
        spacing_origin=origin,
        patient_orientation=orientation(ds.get("PatientOrientation")),
    )


def _check_native_length(ds: Dataset, rows: int, cols: int, name: str) -> None:
    """Refuse native pixel data longer than the header's frame (a wrong ``Rows`` would
    otherwise be read as a cropped image); shorter data fail in the decoder."""
    ts = _transfer_syntax(ds)
    if ts is not None and ts.is_compressed:
        return
    data = ds.get("PixelData")
    if not isinstance(data, bytes | bytearray):
        return
    samples = int_or(ds.get("SamplesPerPixel"), 1)
    bits = int_or(ds.get("BitsAllocated"), 16)
    expected = (rows * cols * samples * bits + 7) // 8
    if len(data) > expected + 1:  # one byte of padding to an even length
        raise UnreadableFileError(
            f"the pixel data hold {len(data):,} bytes, but Rows x Columns = {rows} x {cols} "
            f"at {bits} bits allocated need {expected:,}: the header does not match the data",
            name,
        )


def _check_decoded(raw: np.ndarray, ds: Dataset, name: str, frames: _Frames) -> None:
    """Refuse decoded compressed pixels that are garbled (see :data:`MAX_STEP_FRACTION`).

    Only compressed transfer syntaxes are checked: a decoder that loses its place in a
    corrupt JPEG-LS stream can return a frame of garbage without an error, while native
    pixel data are read as they are stored. (Values beyond ``BitsStored`` cannot be
    checked: pydicom masks them on decoding.)
    """
    _check_stored_bits(ds, name)
    ts = _transfer_syntax(ds)
    if ts is None or not ts.is_compressed or raw.ndim != 2 or raw.dtype.kind not in "iu":
        return
    if ts == JPEG2000Lossless and int(ds.get("NumberOfFrames", 1) or 1) == 1:
        _check_j2k_lossless(raw, ds, name, frames)
    overall, band = step_fractions(raw)
    if overall > MAX_STEP_FRACTION or band > MAX_BAND_STEP_FRACTION:
        raise ImplausibleValueError(
            f"the decoded {ts.name} pixels are garbled (corrupt compressed data?): "
            f"{overall:.1%} of the pixels, and up to {band:.1%} in a band of "
            f"{_STEP_BAND_ROWS} rows, jump by more than {STEP_JUMP:.0%} of the image's range "
            f"from a neighbour (real mammograms: under {MAX_STEP_FRACTION:.1%} and "
            f"{MAX_BAND_STEP_FRACTION:.0%}); not analysed",
            name,
        )


def _check_stored_bits(ds: Dataset, name: str) -> None:
    """Refuse native pixel data whose values do not fit ``BitsStored`` (the header
    contradicts the data: pydicom would mask the values into another image)."""
    ts = _transfer_syntax(ds)
    if ts is not None and ts.is_compressed:
        return
    bits_alloc = int(ds.get("BitsAllocated", 0) or 0)
    bits_stored = int(ds.get("BitsStored", 0) or 0)
    if bits_alloc not in (8, 16) or not 0 < bits_stored < bits_alloc:
        return
    if int(ds.get("PixelRepresentation", 0) or 0) != 0 or "PixelData" not in ds:
        return
    dtype = np.dtype("<u2") if bits_alloc == 16 else np.dtype("u1")
    data = ds.PixelData
    # the whole values in place (no copy of the data)
    stored = np.frombuffer(data, dtype=dtype, count=len(data) // dtype.itemsize)
    top = int(stored.max()) if stored.size else 0
    if top >> bits_stored:
        raise ImplausibleValueError(
            f"BitsStored is {bits_stored} but the pixel data hold values up to {top} "
            f"(which need {top.bit_length()} bits): the header contradicts the data; "
            "not analysed",
            name,
        )


def _check_j2k_lossless(raw: np.ndarray, ds: Dataset, name: str, frames: _Frames) -> None:
    """Refuse a lossless JPEG 2000 frame whose decoded pixels disagree with the stream's
    own half-resolution image (:func:`~calcscope.imaging.codec_checks.j2k_lossless_problem`:
    flipped bits in the entropy-coded data, which no header check sees)."""
    if not frames.frames:  # the decoder read it; nothing more to check here
        return
    siz = frames.j2k_sizes[0] if frames.j2k_sizes else None
    problem = j2k_lossless_problem(frames.frames[0], raw, siz)
    if problem is not None:
        raise UnreadableFileError(
            f"the {_transfer_syntax_text(ds)} pixel data are corrupt ({problem}); not analysed",
            name,
        )


def step_fractions(raw: np.ndarray) -> tuple[float, float]:
    """How much of an image jumps: the fraction of pixels that differ from their right or
    lower neighbour by more than :data:`STEP_JUMP` of the image's robust range (0.5th to
    99.5th percentile), over the whole image and at most in any band of 64 rows.

    Parameters
    ----------
    raw
        Stored pixel values, shape ``(rows, cols)``.

    Returns
    -------
    overall, band
        Fractions in ``[0, 1]``.
    """
    import cv2

    step = max(1, int(math.sqrt(raw.size / 1_000_000)))
    sample = raw[::step, ::step].astype(np.float32)
    lo, hi = (float(v) for v in np.percentile(sample, (0.5, 99.5)))
    jump = np.float32(STEP_JUMP * max(hi - lo, 1e-6))
    x: np.ndarray = raw
    limit: int | np.float32 = math.floor(float(jump))
    if raw.dtype not in (np.uint8, np.uint16):
        x, limit = raw.astype(np.float32), jump
    # 8- and 16-bit unsigned values as stored: their differences are the integers the
    # float32 image gives (exact; the absdiff of unsigned values does not saturate), and
    # an integer exceeds the jump exactly when it exceeds its floor (at most 13,107 there)
    corner = x[:-1, :-1]  # |right - pixel| or |lower - pixel| over the jump
    jumps = np.asarray(cv2.absdiff(x[:-1, 1:], corner)) > limit
    jumps |= np.asarray(cv2.absdiff(x[1:, :-1], corner)) > limit
    if jumps.size:  # OpenCV's row sums of the 0/1 bytes: the counts, a few times faster
        counts = cv2.reduce(jumps.view(np.uint8), 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S)[:, 0]
    else:
        counts = np.count_nonzero(jumps, axis=1)
    per_row = counts / jumps.shape[1]
    width = min(_STEP_BAND_ROWS, len(per_row))
    sums = np.concatenate([[0.0], np.cumsum(per_row, dtype=np.float64)])
    bands = (sums[width:] - sums[:-width]) / width  # every band of `width` rows
    return float(per_row.mean()), float(bands.max())


def _modality_lut(raw: np.ndarray, ds: Dataset, name: str) -> tuple[np.ndarray, bool]:
    """Stored values through the Modality LUT, and whether one was applied.

    Raises ImplausibleValueError for a rescale slope or intercept that is not finite, a
    zero slope, or values that overflow or lose their steps (intercept far larger than
    the slope can resolve): such an image would be analysed as a blank.
    """
    if "ModalityLUTSequence" in ds:
        with np.errstate(all="ignore"):
            values = np.asarray(apply_modality_lut(raw, ds), dtype=np.float64)
        if not np.all(np.isfinite(values)):
            raise ImplausibleValueError(
                "the Modality LUT Sequence gives pixel values that are not finite", name
            )
        return values, True
    slope, slope_text = header_number(ds, "RescaleSlope", 1.0)
    intercept, intercept_text = header_number(ds, "RescaleIntercept", 0.0)
    if slope == 1.0 and intercept == 0.0:
        return raw, False
    for keyword, value, text in (
        ("RescaleSlope", slope, slope_text),
        ("RescaleIntercept", intercept, intercept_text),
    ):
        if not math.isfinite(value) or (keyword == "RescaleSlope" and value == 0.0):
            raise ImplausibleValueError(
                f"{keyword} is {text}: the modality rescale needs a finite"
                f"{', non-zero' if keyword == 'RescaleSlope' else ''} number; "
                "the header is corrupt, not analysed",
                name,
            )
    lo_v, hi_v = float(raw.min()), float(raw.max())
    with np.errstate(all="ignore"):
        probe = slope * np.array([lo_v, lo_v + 1.0, hi_v - 1.0, hi_v]) + intercept
        values = raw.astype(np.float64)  # scaled in place: one full-size copy
        values *= slope
        values += intercept
        steps = np.diff(probe)[[0, 2]]
        # the pipeline works in float32: the steps must survive that too (a slope of
        # 1e-300 underflows to a blank image)
        probe32 = probe.astype(np.float32)
        steps32 = np.diff(probe32.astype(np.float64))[[0, 2]]
    exact = np.all(np.isfinite(probe)) and np.all(np.abs(steps - slope) <= 1e-3 * abs(slope))
    single = np.all(np.isfinite(probe32)) and np.all(np.abs(steps32 - slope) <= 1e-3 * abs(slope))
    if not (exact and single):
        raise ImplausibleValueError(
            f"RescaleSlope is {slope_text} and RescaleIntercept {intercept_text}: the "
            "rescaled pixel values overflow or lose their steps (not finite, or too large "
            "for their precision); the header is corrupt, not analysed",
            name,
        )
    return values, True


_VOI_ROWS = 256
"""Rows of pixels put through the VOI LUT at a time."""
_LOOKUP_PIXELS = 65_536
"""Pixels looked up in a table of stored values at a time."""


def _voi_function(ds: Dataset, name: str) -> Callable[[np.ndarray], np.ndarray] | None:
    """The VOI LUT (window or LUT) as a function of values to float64 with its output
    range at ``[0, 1]``; None without one or when that range is empty. Non-finite window
    values are refused."""
    has_voi = "VOILUTSequence" in ds or ("WindowCenter" in ds and "WindowWidth" in ds)
    if not has_voi:
        return None
    if not ds.get("VOILUTSequence"):
        for keyword in ("WindowCenter", "WindowWidth"):
            value, text = header_number(ds, keyword, 0.0)
            if not math.isfinite(value):
                raise ImplausibleValueError(
                    f"{keyword} is {text}: a display window needs finite numbers; "
                    "the header is corrupt, not analysed",
                    name,
                )
    lut = bool(ds.get("VOILUTSequence"))
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if lut:
            descriptor = ds.VOILUTSequence[0].LUTDescriptor
            entries, first = int(descriptor[0]) or 2**16, int(descriptor[1])
            probe = apply_voi_lut(np.arange(first, first + entries), ds, index=0)
        else:
            probe = apply_voi_lut(np.array([-1e30, 1e30]), ds, index=0)
        lo, hi = float(np.min(probe)), float(np.max(probe))
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
        return None

    def through(band: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            band = np.rint(band).astype(np.int64) if lut else band.astype(np.float64)
            windowed = np.asarray(apply_voi_lut(band, ds, index=0), dtype=np.float64)
            windowed -= lo
            windowed /= hi - lo
        return windowed

    return through


def _check_voi_finite(out: np.ndarray, name: str) -> None:
    if not np.all(np.isfinite(out)):
        raise ImplausibleValueError("the VOI LUT gives pixel values that are not finite", name)


def _stored_value_domain(values: np.ndarray) -> np.ndarray | None:
    """Every value from 0 to the maximum of ``values`` when they are stored values
    (unsigned integers, no modality rescale) under 2**16: the domain of a table that
    maps each stored value once (the same numbers as mapping every pixel, the ops being
    value by value); else None."""
    if values.dtype.kind != "u" or not values.size:
        return None
    top = int(values.max())
    return np.arange(top + 1, dtype=values.dtype) if top < 2**16 else None


def _dicom_grey(raw: np.ndarray, ds: Dataset, photometric: str, name: str) -> np.ndarray:
    """Modality LUT, VOI LUT or fallback normalisation, inversion of MONOCHROME1, as
    :func:`~calcscope.imaging._common.finish` gives them: float32 in ``[0, 1]``, read-only.

    Stored values under 2**16 are mapped as a table of each value from 0 to their maximum
    (every step below is value by value), the image then looked up in it once: no
    full-size float64 temporaries. The numbers are those of mapping every pixel.
    """
    values, rescaled = _modality_lut(raw, ds, name)
    domain = _stored_value_domain(values)  # not None: values is raw
    through = _voi_function(ds, name)
    src = values if domain is None else domain
    if through is not None:
        out = through(src) if domain is not None else _banded(through, values)
        if domain is not None and not np.all(np.isfinite(out)):
            out, domain = out[raw], None  # only the stored values that occur count
        _check_voi_finite(out, name)
    else:
        intent = str(ds.get("PresentationIntentType", "") or "").upper()
        if rescaled or intent == "FOR PROCESSING":
            bounds = robust_bounds(values)
            if bounds is None:
                out = np.zeros_like(src, dtype=np.float64)
            else:
                out = np.subtract(src, bounds[0], dtype=np.float64)
                out /= bounds[1] - bounds[0]
        else:
            bits = int_or(ds.get("BitsStored"), 8 * raw.dtype.itemsize)
            if int_or(ds.get("PixelRepresentation"), 0) == 1:
                lo_i, hi_i = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
            else:
                lo_i, hi_i = 0, 2**bits - 1
            hi_f = max(float(hi_i), float(raw.max()))
            lo_f = min(float(lo_i), float(raw.min()))
            out = src.astype(np.float64)
            out -= lo_f
            out /= hi_f - lo_f
    if photometric == "MONOCHROME1":
        out = np.subtract(1.0, out, out=out)  # out is this function's own array
    if domain is None:
        return finish(out, name)
    return _look_up(out, raw, name)


def _banded(through: Callable[[np.ndarray], np.ndarray], values: np.ndarray) -> np.ndarray:
    """``through`` of ``values`` a band of rows at a time, which keeps pydicom's float64
    temporaries small (the same values as the whole image at once)."""
    out = np.empty(values.shape, dtype=np.float64)
    for r0 in range(0, values.shape[0], _VOI_ROWS):
        out[r0 : r0 + _VOI_ROWS] = through(values[r0 : r0 + _VOI_ROWS])
    return out


def _look_up(table: np.ndarray, raw: np.ndarray, name: str) -> np.ndarray:
    """:func:`~calcscope.imaging._common.finish` of ``table[raw]``, the table finished
    first (cast and clip are value by value): float32, read-only."""
    if not np.all(np.isfinite(table)):  # only the stored values that occur count
        return finish(table[raw], name)
    small = finish(table, name)
    pixels = np.empty(raw.shape, dtype=np.float32)
    # a band of rows at a time: numpy makes a platform-integer copy of the indices,
    # which then stays in the cache (a third faster than the whole image at once)
    band = max(1, _LOOKUP_PIXELS // max(raw.shape[-1], 1))
    for r0 in range(0, raw.shape[0], band):
        np.take(small, raw[r0 : r0 + band], out=pixels[r0 : r0 + band])
    pixels.setflags(write=False)
    return pixels


def _dicom_spacing(ds: Dataset) -> tuple[tuple[float, float] | None, str | None]:
    """The first parseable, non-zero spacing (``ImagerPixelSpacing``, then ``PixelSpacing``)
    and its keyword; its plausibility is checked by the caller."""
    for keyword in ("ImagerPixelSpacing", "PixelSpacing"):
        value = ds.get(keyword)
        if value is None:
            continue
        try:
            items = list(value) if not isinstance(value, str | bytes) else [value]
            pair = (float(items[0]), float(items[-1]))
        except (TypeError, ValueError, IndexError):
            continue
        if pair != (0.0, 0.0):  # zero: "unknown" in some files; anything else is checked
            return pair, keyword
    return None, None


def _dicom_laterality(ds: Dataset) -> Laterality | None:
    for keyword in ("ImageLaterality", "Laterality"):
        text = str(ds.get(keyword, "") or "").strip().upper()
        if text in ("L", "R"):
            return Laterality(text)
    match = _PATIENT_ID_SIDE.search(str(ds.get("PatientID", "") or "").upper())
    if match:
        return Laterality.LEFT if match.group(1) == "LEFT" else Laterality.RIGHT
    return None


def _dicom_view(ds: Dataset) -> View | None:
    unknown = False
    seq = ds.get("ViewCodeSequence")
    if seq:
        item = seq[0]
        code = str(item.get("CodeValue", "") or "").strip()
        if code in _VIEW_CODES:
            return _VIEW_CODES[code]
        meaning = re.sub(r"[^a-z]", "", str(item.get("CodeMeaning", "") or "").lower())
        if meaning in _VIEW_MEANINGS:
            return _VIEW_MEANINGS[meaning]
        unknown = True
    position = str(ds.get("ViewPosition", "") or "").strip().upper()
    if position:
        try:
            return View(position)
        except ValueError:
            unknown = True
    match = _PATIENT_ID_VIEW.search(str(ds.get("PatientID", "") or "").upper())
    if match:
        return View(match.group(1))
    return View.OTHER if unknown else None
