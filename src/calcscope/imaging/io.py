"""Read and write mammograms: DICOM, PNG, TIFF and PGM files, and numpy arrays.

Every reader returns a :class:`~calcscope.model.Mammogram`: float32 pixels in ``[0, 1]``
with bright meaning dense (``MONOCHROME1`` and TIFF ``WhiteIsZero`` images are inverted),
the pixel spacing ``(row, col)`` in millimetres, laterality, view and a
:class:`~calcscope.model.Source` describing where the image came from.

Rejections raise the :mod:`calcscope.errors` classes with a one-line message that starts
with the file name:

* :class:`~calcscope.errors.UnreadableFileError`: missing, empty, truncated or undecodable
  files (every unexpected decoder exception is wrapped into it);
* :class:`~calcscope.errors.NotAMammogramError`: CT/MR/US/... DICOM, multi-frame volumes,
  colour images, images smaller than ``IOConfig.min_side_px``;
* :class:`~calcscope.errors.MissingSpacingError`: no pixel spacing in the file and none given;
* :class:`~calcscope.errors.ImageTooLargeError`: more than ``IOConfig.max_pixels`` pixels,
  checked on the header *before* the pixels are decoded (this is also the guard against
  decompression bombs: nothing larger than the limit is ever decompressed).

Intensity normalisation
-----------------------
DICOM: the Modality LUT (rescale slope/intercept) and the VOI LUT (window or LUT) are applied
when present and the VOI output range is mapped to ``[0, 1]``. Without a VOI LUT, ``FOR
PROCESSING`` and rescaled images are mapped by robust percentiles (see
``ROBUST_PERCENTILES``), other images by the range of their ``BitsStored``. PNG, TIFF and PGM
files are divided by the maximum of their declared bit depth (8 or 16 bits; PGM ``maxval``),
float TIFFs by their minimum and maximum. Arrays: see :func:`from_array`.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import apply_modality_lut, apply_voi_lut
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from calcscope.config import IOConfig
from calcscope.errors import (
    ImageTooLargeError,
    InputError,
    MissingSpacingError,
    NotAMammogramError,
    UnreadableFileError,
)
from calcscope.files import atomic_path
from calcscope.model import Laterality, Mammogram, Source, View

__all__ = [
    "PIXEL_FILE_SUFFIXES",
    "ROBUST_PERCENTILES",
    "read_image",
    "from_array",
    "find_images",
    "write_image",
    "sniff_format",
]

#: File name suffixes (lower case) that :func:`find_images` collects from folders.
PIXEL_FILE_SUFFIXES: frozenset[str] = frozenset({".dcm", ".dicom", ".png", ".tif", ".tiff", ".pgm"})

#: Low and high percentiles mapped to 0 and 1 for images without a display window.
#: The high one is close to 100 so that bright calcifications are not clipped.
ROBUST_PERCENTILES: tuple[float, float] = (0.05, 99.995)

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
DIGITAL_MAMMOGRAPHY_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"
DIGITAL_MAMMOGRAPHY_PROCESSING = "1.2.840.10008.5.1.4.1.1.1.2.1"
_MAMMOGRAPHY_CAPABLE_SOP_CLASSES = frozenset(
    {SECONDARY_CAPTURE, DIGITAL_MAMMOGRAPHY_PRESENTATION, DIGITAL_MAMMOGRAPHY_PROCESSING}
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

_GREY_TOLERANCE = 2.0 / 255.0  # channels closer than this (normalised) count as grey
_PERCENTILE_SAMPLE_PX = 4_000_000  # subsample larger images for percentiles

_SpacingArg = float | tuple[float, float] | None


# ---------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------


def read_image(
    path: str | Path,
    *,
    spacing_mm: float | tuple[float, float] | None = None,
    laterality: Laterality | str | None = None,
    view: View | str | None = None,
    config: IOConfig | None = None,
) -> Mammogram:
    """Read a mammogram from a DICOM, PNG, TIFF or PGM/PPM file.

    The format is recognised from the content (``DICM`` at byte 128, PNG/TIFF/PNM magic
    numbers), then from the suffix (``.dcm``/``.dicom`` files without a preamble are read
    with ``force=True``).

    Parameters
    ----------
    path
        The file.
    spacing_mm
        Pixel spacing in millimetres, one value (isotropic) or ``(row, col)``. Overrides
        the spacing stored in a DICOM file; required for PNG, TIFF and PGM.
    laterality, view
        Override the DICOM header's values (``"L"``/``"R"``, ``"CC"``/``"MLO"``/...). For
        PNG, TIFF and PGM they are the only source of laterality and view.
    config
        Limits on the image size; defaults to :class:`~calcscope.config.IOConfig`.

    Returns
    -------
    Mammogram
        Pixels of shape ``(rows, cols)``, float32 in ``[0, 1]``, bright = dense.

    Raises
    ------
    UnreadableFileError
        Missing, empty, truncated, unknown-format or undecodable file.
    NotAMammogramError
        Non-mammography modality, multi-frame, colour, or too small.
    MissingSpacingError
        No spacing in the file and ``spacing_mm`` not given.
    ImageTooLargeError
        More pixels than ``config.max_pixels``.
    """
    config = config or IOConfig()
    p = Path(path)
    name = str(p)
    user_spacing = _parse_spacing(spacing_mm, name)
    user_laterality = _parse_laterality(laterality, name)
    user_view = _parse_view(view, name)
    kind = _sniff(p)
    try:
        if kind == "dicom":
            image = _read_dicom(p, config, user_spacing)
        elif kind == "tiff":
            image = _read_tiff(p, config, user_spacing)
        else:
            image = _read_pillow(p, config, user_spacing)
    except InputError:
        raise
    except MemoryError as exc:
        raise ImageTooLargeError("not enough memory to decode the image", name) from exc
    except Exception as exc:  # noqa: BLE001 - any decoder failure is an unreadable file
        raise UnreadableFileError(f"cannot decode the image: {_one_line(exc)}", name) from exc
    if user_laterality is not None:
        image = replace(image, laterality=user_laterality)
    if user_view is not None:
        image = replace(image, view=user_view)
    return image


def from_array(
    pixels: np.ndarray,
    spacing_mm: float | tuple[float, float],
    *,
    laterality: Laterality | str | None = None,
    view: View | str | None = None,
    path: str | Path | None = None,
    config: IOConfig | None = None,
) -> Mammogram:
    """Wrap a grey-level array into a :class:`~calcscope.model.Mammogram`.

    Intensities are mapped to float32 ``[0, 1]``:

    * ``bool``: 0 and 1; ``uint8``: divided by 255;
    * other unsigned (or non-negative signed) integers: divided by the maximum of the
      smallest bit depth among 8, 10, 12, 14, 16, 32 that holds the array's maximum
      (a 12-bit image stored in ``uint16`` is divided by 4095);
    * integers with negative values: mapped by their minimum and maximum;
    * floats already within ``[0, 1]`` are kept as they are; other floats are mapped by
      their minimum and maximum.

    Parameters
    ----------
    pixels
        Array of shape ``(rows, cols)``; ``(rows, cols, 1)`` and ``(rows, cols, 3|4)``
        with identical colour channels are accepted as grey.
    spacing_mm
        Pixel spacing in millimetres, one value or ``(row, col)``.
    laterality, view
        Optional, as in :func:`read_image`.
    path
        Recorded in :attr:`Source.path` and used in error messages.
    config
        Size limits; defaults to :class:`~calcscope.config.IOConfig`.

    Returns
    -------
    Mammogram
        ``Source.spacing_origin`` is ``"user"``.

    Raises
    ------
    NotAMammogramError
        Not 2-D, colour, too small, or non-finite values.
    ImageTooLargeError
        More pixels than ``config.max_pixels``.
    MissingSpacingError
        ``spacing_mm`` is ``None``.
    """
    config = config or IOConfig()
    name = str(path) if path is not None else None
    spacing = _parse_spacing(spacing_mm, name)
    if spacing is None:
        raise MissingSpacingError(_MISSING_SPACING, name)
    arr = np.asarray(pixels)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise NotAMammogramError(
            f"expected a 2-D grey image, got an array of shape {arr.shape}", name
        )
    _check_size(arr.shape[0], arr.shape[1], config, name)
    grey = _normalise_array(arr, name)
    if grey.ndim == 3:
        grey = _grey_from_channels(grey, name)
    return Mammogram(
        pixels=_finish(grey),
        spacing_mm=spacing,
        laterality=_parse_laterality(laterality, name),
        view=_parse_view(view, name),
        source=Source(path=name, spacing_origin="user"),
    )


def find_images(paths: Iterable[str | Path]) -> list[Path]:
    """List the image files named by files and folders.

    Files are returned as given (whatever their suffix; missing ones too, so that
    :func:`read_image` reports them). Folders are searched recursively for files whose
    suffix is in :data:`PIXEL_FILE_SUFFIXES` (any case) and for suffix-less files with the
    DICOM ``DICM`` preamble; hidden files and folders (name starting with ``.``) are
    skipped.

    Parameters
    ----------
    paths
        Files and folders.

    Returns
    -------
    list of Path
        Sorted, without duplicates (two spellings of the same file count once).
    """
    found: dict[Path, Path] = {}
    for item in paths:
        p = Path(item)
        if p.is_dir():
            for root, dirs, files in os.walk(p):
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                for f in files:
                    if f.startswith("."):
                        continue
                    candidate = Path(root) / f
                    suffix = candidate.suffix.lower()
                    if suffix in PIXEL_FILE_SUFFIXES or (
                        suffix == "" and _has_dicom_preamble(candidate)
                    ):
                        found.setdefault(_identity(candidate), candidate)
        else:
            found.setdefault(_identity(p), p)
    return sorted(found.values(), key=str)


def write_image(mammogram: Mammogram, path: str | Path) -> Path:
    """Write a mammogram as 16-bit grey PNG, TIFF, PGM or DICOM (chosen by the suffix).

    Pixels ``[0, 1]`` become ``0..65535``; reading the file back with :func:`read_image`
    gives the same pixels to within ``1/65535``. PNG, TIFF and PGM do not keep the
    spacing, laterality or view: pass them again to :func:`read_image`.

    The DICOM file is a Digital Mammography X-Ray Image Storage - For Presentation
    instance: explicit VR little endian, ``MONOCHROME2``, 16 bits stored, with
    ``ImagerPixelSpacing`` and ``PixelSpacing``, ``ImageLaterality`` (``U`` if unknown),
    ``ViewPosition`` and ``ViewCodeSequence``, a full-range linear window (identity), new
    UIDs and the phantom patient ``PHANTOM^CALCSCOPE``; no patient data is copied from
    the source. The file is written to a temporary name and renamed, so a crash never
    leaves a partial file.

    Parameters
    ----------
    mammogram
        The image.
    path
        Destination ending in ``.png``, ``.tif``, ``.tiff``, ``.pgm``, ``.dcm`` or
        ``.dicom``; missing parent folders are created.

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    ValueError
        Unsupported suffix.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    writers: dict[str, Callable[[np.ndarray, Mammogram, str], None]] = {
        ".png": _write_png,
        ".tif": _write_tiff,
        ".tiff": _write_tiff,
        ".pgm": _write_pgm,
        ".dcm": _write_dicom,
        ".dicom": _write_dicom,
    }
    if suffix not in writers:
        raise ValueError(
            f"{p}: cannot write {suffix or 'suffix-less'} files; use one of "
            f"{', '.join(sorted(writers))}"
        )
    data = np.round(np.clip(np.nan_to_num(mammogram.pixels), 0.0, 1.0) * 65535.0)
    data = data.astype(np.uint16)
    with atomic_path(p) as tmp_name:
        writers[suffix](data, mammogram, tmp_name)
    return p


# ---------------------------------------------------------------------------------------
# argument parsing
# ---------------------------------------------------------------------------------------

_MISSING_SPACING = (
    "no pixel spacing in the file (no ImagerPixelSpacing or PixelSpacing); "
    "pass it with --spacing-mm (spacing_mm=...), e.g. 0.07 for FFDM, 0.2 for mini-MIAS"
)


def _parse_spacing(value: _SpacingArg, name: str | None) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        if isinstance(value, int | float | np.number):
            pair = (float(value), float(value))
        else:
            row, col = value  # type: ignore[misc]
            pair = (float(row), float(col))
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"invalid spacing {value!r}: give one number or (row, col) in mm", name
        ) from exc
    if not all(math.isfinite(v) and v > 0 for v in pair):
        raise InputError(f"invalid spacing {value!r}: must be positive millimetres", name)
    return pair


def _parse_laterality(value: Laterality | str | None, name: str | None) -> Laterality | None:
    if value is None or isinstance(value, Laterality):
        return value
    text = str(value).strip().upper()
    aliases = {"L": Laterality.LEFT, "LEFT": Laterality.LEFT}
    aliases |= {"R": Laterality.RIGHT, "RIGHT": Laterality.RIGHT}
    if text not in aliases:
        raise InputError(f"invalid laterality {value!r}: use L or R", name)
    return aliases[text]


def _parse_view(value: View | str | None, name: str | None) -> View | None:
    if value is None or isinstance(value, View):
        return value
    try:
        return View(str(value).strip().upper())
    except ValueError as exc:
        allowed = ", ".join(v.value for v in View)
        raise InputError(f"invalid view {value!r}: use one of {allowed}", name) from exc


# ---------------------------------------------------------------------------------------
# format detection
# ---------------------------------------------------------------------------------------


def sniff_format(head: bytes) -> str | None:
    """Image format from a file's first 132 bytes by its signature: ``"dicom"`` (128-byte
    preamble then ``DICM``), ``"png"``, ``"tiff"``, ``"pnm"`` (PGM/PPM/PBM), or None."""
    if head[128:132] == b"DICM":
        return "dicom"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head[:1] == b"P" and head[1:2] in b"123456" and head[1:2]:
        return "pnm"
    return None


def _sniff(p: Path) -> str:
    name = str(p)
    if not p.exists():
        raise UnreadableFileError("file not found", name)
    if not p.is_file():
        raise UnreadableFileError("not a regular file", name)
    try:
        with p.open("rb") as fh:
            head = fh.read(132)
    except OSError as exc:
        raise UnreadableFileError(f"cannot open: {_one_line(exc)}", name) from exc
    if not head:
        raise UnreadableFileError("the file is empty", name)
    kind = sniff_format(head)
    if kind is not None:
        return kind
    suffix = p.suffix.lower()
    if suffix in (".dcm", ".dicom"):
        return "dicom"
    if suffix in (".png", ".tif", ".tiff", ".pgm", ".ppm", ".pnm"):
        raise UnreadableFileError(
            f"the content is not a valid {suffix[1:].upper()} file (wrong signature)", name
        )
    raise UnreadableFileError("unknown image format; expected DICOM, PNG, TIFF or PGM", name)


def _has_dicom_preamble(p: Path) -> bool:
    try:
        with p.open("rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return head[128:132] == b"DICM"


def _identity(p: Path) -> Path:
    try:
        return p.resolve()
    except OSError:
        return p.absolute()


# ---------------------------------------------------------------------------------------
# DICOM
# ---------------------------------------------------------------------------------------


def _read_dicom(p: Path, config: IOConfig, user_spacing: tuple[float, float] | None) -> Mammogram:
    name = str(p)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(p, force=True)
    except Exception as exc:  # noqa: BLE001
        raise UnreadableFileError(
            f"not a readable DICOM file (truncated or corrupt?): {_one_line(exc)}", name
        ) from exc
    sop_class = str(ds.get("SOPClassUID", "") or "")
    if not sop_class and "PixelData" not in ds and "Rows" not in ds:
        raise UnreadableFileError(
            "not a valid DICOM file, or truncated (no SOP class, no image found)", name
        )

    modality = str(ds.get("Modality", "") or "").strip().upper()
    if modality != "MG" and not (
        modality in _LENIENT_MODALITIES and sop_class in _MAMMOGRAPHY_CAPABLE_SOP_CLASSES
    ):
        what = f"modality {modality}" if modality else "no modality"
        raise NotAMammogramError(
            f"not a mammogram: {what} with SOP class {_uid_name(sop_class)} "
            "(accepted: modality MG, or RG/OT/none stored as Secondary Capture or "
            "Digital Mammography)",
            name,
        )
    frames = _int_or(ds.get("NumberOfFrames"), 1)
    if frames > 1:
        raise NotAMammogramError(
            f"multi-frame image ({frames} frames, e.g. tomosynthesis); "
            "calcscope reads single 2-D mammograms",
            name,
        )
    photometric = str(ds.get("PhotometricInterpretation", "") or "").strip().upper()
    if photometric == "PALETTE COLOR":
        raise NotAMammogramError("colour image (PALETTE COLOR), not a grey mammogram", name)
    rows, cols = _int_or(ds.get("Rows"), 0), _int_or(ds.get("Columns"), 0)
    if "PixelData" not in ds or rows == 0 or cols == 0:
        raise UnreadableFileError(
            "no pixel data or no image size in the header (truncated file?)", name
        )
    _check_size(rows, cols, config, name)

    spacing, origin = _dicom_spacing(ds)
    if user_spacing is not None:
        spacing, origin = user_spacing, "user"
    if spacing is None:
        raise MissingSpacingError(_MISSING_SPACING, name)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            raw = ds.pixel_array
    except Exception as exc:  # noqa: BLE001
        meta = getattr(ds, "file_meta", None)
        ts = meta.get("TransferSyntaxUID") if meta is not None else None
        ts_text = f"{ts.name} ({ts})" if ts is not None else "unknown transfer syntax"
        raise UnreadableFileError(
            f"cannot decode the pixel data, {ts_text}: {_one_line(exc)}. "
            "Convert it to uncompressed DICOM with another tool (e.g. DCMTK dcmdjpeg, "
            "gdcmconv --raw) or export it as 16-bit PNG and pass --spacing-mm",
            name,
        ) from exc
    if raw.shape[:2] != (rows, cols):
        raise UnreadableFileError(
            f"decoded pixels have shape {raw.shape}, header says {rows} x {cols}", name
        )
    if raw.ndim == 3:
        grey = _grey_from_channels(_normalise_array(raw, name), name)
    else:
        grey = _dicom_grey(raw, ds, photometric)

    src = Source(
        path=name,
        study_instance_uid=_str_or_none(ds.get("StudyInstanceUID")),
        series_instance_uid=_str_or_none(ds.get("SeriesInstanceUID")),
        sop_instance_uid=_str_or_none(ds.get("SOPInstanceUID")),
        sop_class_uid=sop_class or None,
        modality=modality or None,
        patient_id=_str_or_none(ds.get("PatientID")),
        patient_name=_str_or_none(ds.get("PatientName")),
        patient_birth_date=_str_or_none(ds.get("PatientBirthDate")),
        presentation_intent=_str_or_none(ds.get("PresentationIntentType")),
        photometric_interpretation=photometric or None,
        spacing_origin=origin,
        patient_orientation=_orientation(ds.get("PatientOrientation")),
    )
    return Mammogram(
        pixels=_finish(grey),
        spacing_mm=spacing,
        laterality=_dicom_laterality(ds),
        view=_dicom_view(ds),
        source=src,
    )


def _dicom_grey(raw: np.ndarray, ds: Dataset, photometric: str) -> np.ndarray:
    """Modality LUT, VOI LUT or fallback normalisation, inversion of MONOCHROME1."""
    values: np.ndarray = raw
    rescaled = "ModalityLUTSequence" in ds or (
        float(ds.get("RescaleSlope", 1) or 1) != 1.0
        or float(ds.get("RescaleIntercept", 0) or 0) != 0.0
    )
    if rescaled:
        values = apply_modality_lut(raw, ds)
    has_voi = "VOILUTSequence" in ds or ("WindowCenter" in ds and "WindowWidth" in ds)
    out: np.ndarray | None = None
    if has_voi:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if ds.get("VOILUTSequence"):
                descriptor = ds.VOILUTSequence[0].LUTDescriptor
                entries, first = int(descriptor[0]) or 2**16, int(descriptor[1])
                probe = apply_voi_lut(np.arange(first, first + entries), ds, index=0)
                windowed = apply_voi_lut(np.rint(values).astype(np.int64), ds, index=0)
            else:
                probe = apply_voi_lut(np.array([-1e30, 1e30]), ds, index=0)
                windowed = apply_voi_lut(values.astype(np.float64), ds, index=0)
        lo, hi = float(np.min(probe)), float(np.max(probe))
        if math.isfinite(lo) and math.isfinite(hi) and hi > lo:
            out = (np.asarray(windowed, dtype=np.float64) - lo) / (hi - lo)
    if out is None:
        intent = str(ds.get("PresentationIntentType", "") or "").upper()
        if rescaled or intent == "FOR PROCESSING":
            out = _robust_normalise(values.astype(np.float64))
        else:
            bits = _int_or(ds.get("BitsStored"), 8 * raw.dtype.itemsize)
            if _int_or(ds.get("PixelRepresentation"), 0) == 1:
                lo_i, hi_i = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
            else:
                lo_i, hi_i = 0, 2**bits - 1
            hi_f = max(float(hi_i), float(raw.max()))
            lo_f = min(float(lo_i), float(raw.min()))
            out = (raw.astype(np.float64) - lo_f) / (hi_f - lo_f)
    if photometric == "MONOCHROME1":
        out = 1.0 - out
    return out


def _dicom_spacing(ds: Dataset) -> tuple[tuple[float, float] | None, str | None]:
    for keyword in ("ImagerPixelSpacing", "PixelSpacing"):
        value = ds.get(keyword)
        if value is None:
            continue
        try:
            items = list(value) if not isinstance(value, str | bytes) else [value]
            pair = (float(items[0]), float(items[-1]))
        except (TypeError, ValueError, IndexError):
            continue
        if all(math.isfinite(v) and v > 0 for v in pair):
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


# ---------------------------------------------------------------------------------------
# PNG / PGM / PPM (Pillow) and TIFF (tifffile, Pillow as fallback)
# ---------------------------------------------------------------------------------------


def _read_pillow(p: Path, config: IOConfig, spacing: tuple[float, float] | None) -> Mammogram:
    name = str(p)
    with warnings.catch_warnings():
        # our own size check below replaces Pillow's decompression-bomb warning
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            im = Image.open(p)  # lazy: reads the header only
        except Image.DecompressionBombError as exc:
            raise ImageTooLargeError(f"image too large: {_one_line(exc)}", name) from exc
        with im:
            cols, rows = im.size
            frames = int(getattr(im, "n_frames", 1) or 1)
            if frames > 1:
                raise NotAMammogramError(f"multi-frame image ({frames} frames)", name)
            _check_size(rows, cols, config, name)
            if spacing is None:
                raise MissingSpacingError(_MISSING_SPACING, name)
            im.load()  # raises OSError when truncated
            arr, depth = _pillow_array(im)
    return _from_decoded(arr, depth, spacing, name, invert=False)


def _pillow_array(im: Image.Image) -> tuple[np.ndarray, int | None]:
    """Pixels of a loaded Pillow image and their declared bit depth (None: float)."""
    mode = im.mode
    if mode in ("1", "L", "LA"):
        arr = np.asarray(im.convert("L"))
        return arr, 8
    if mode.startswith("I;16"):
        return np.asarray(im).astype(np.uint16), 16
    if mode == "I":
        arr = np.asarray(im)
        depth = 16 if arr.size and arr.min() >= 0 and arr.max() <= 65535 else 32
        return arr, depth
    if mode == "F":
        return np.asarray(im), None
    if mode in ("RGB", "RGBA"):
        return np.asarray(im)[:, :, :3], 8
    return np.asarray(im.convert("RGB")), 8


def _read_tiff(p: Path, config: IOConfig, spacing: tuple[float, float] | None) -> Mammogram:
    import tifffile

    name = str(p)
    with tifffile.TiffFile(p) as tif:
        page = tif.pages.first
        rows, cols = int(page.imagelength), int(page.imagewidth)
        series_shape = tuple(tif.series[0].shape) if tif.series else (rows, cols)
        samples = int(page.samplesperpixel)
        grid = series_shape[:-1] if samples > 1 else series_shape
        if len(grid) > 2 and math.prod(grid[:-2]) > 1:
            raise NotAMammogramError(f"multi-frame image ({math.prod(grid[:-2])} frames)", name)
        _check_size(rows, cols, config, name)
        if spacing is None:
            raise MissingSpacingError(_MISSING_SPACING, name)
        invert = page.photometric == tifffile.PHOTOMETRIC.MINISWHITE
        depth: int | None = int(page.bitspersample)
        try:
            arr = page.asarray()
        except Exception as exc:  # noqa: BLE001 - e.g. a codec tifffile lacks: try Pillow
            try:
                with Image.open(p) as im:
                    im.load()
                    arr, depth = _pillow_array(im)
            except Exception:  # noqa: BLE001
                raise exc from None
    if arr.dtype.kind == "f":
        depth = None
    if arr.ndim == 3 and arr.shape[0] == samples > 1 and arr.shape[2] != samples:
        arr = np.moveaxis(arr, 0, -1)  # planar configuration "separate"
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 3 and arr.shape[2] >= 3:
        arr = arr[:, :, :3]
    return _from_decoded(arr, depth, spacing, name, invert=invert)


def _from_decoded(
    arr: np.ndarray,
    depth: int | None,
    spacing: tuple[float, float],
    name: str,
    *,
    invert: bool,
) -> Mammogram:
    if depth is None or arr.dtype.kind == "f":
        norm = _normalise_array(arr.astype(np.float64), name)
    else:
        norm = arr.astype(np.float64) / float(2**depth - 1)
    if norm.ndim == 3:
        norm = _grey_from_channels(norm, name)
    if invert:
        norm = 1.0 - norm
    return Mammogram(
        pixels=_finish(norm),
        spacing_mm=spacing,
        source=Source(path=name, spacing_origin="user"),
    )


# ---------------------------------------------------------------------------------------
# normalisation and checks
# ---------------------------------------------------------------------------------------


def _check_size(rows: int, cols: int, config: IOConfig, name: str | None) -> None:
    if rows * cols > config.max_pixels:
        raise ImageTooLargeError(
            f"image of {rows} x {cols} = {rows * cols:,} pixels is larger than the limit of "
            f"{config.max_pixels:,} (raise io.max_pixels in the configuration if intended)",
            name,
        )
    if min(rows, cols) < config.min_side_px:
        raise NotAMammogramError(
            f"image of {rows} x {cols} pixels is too small for a mammogram "
            f"(minimum {config.min_side_px} pixels a side)",
            name,
        )


def _normalise_array(arr: np.ndarray, name: str | None) -> np.ndarray:
    """Map any numeric array to float64 in [0, 1] (rules in :func:`from_array`)."""
    kind = arr.dtype.kind
    if kind == "b":
        return arr.astype(np.float64)
    if kind not in "uif":
        raise NotAMammogramError(f"unsupported pixel type {arr.dtype}", name)
    if arr.size == 0:
        raise NotAMammogramError("empty image", name)
    if kind == "f":
        values = arr.astype(np.float64)
        if not np.all(np.isfinite(values)):
            raise NotAMammogramError("the image contains NaN or infinite values", name)
        lo, hi = float(values.min()), float(values.max())
        if lo >= 0.0 and hi <= 1.0:
            return values
        return (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)
    if arr.dtype == np.uint8:
        return arr.astype(np.float64) / 255.0
    lo_i, hi_i = int(arr.min()), int(arr.max())
    if lo_i < 0:
        values = arr.astype(np.float64)
        return (values - lo_i) / (hi_i - lo_i) if hi_i > lo_i else np.zeros_like(values)
    depth = next((b for b in (8, 10, 12, 14, 16, 32) if hi_i <= 2**b - 1), 64)
    return arr.astype(np.float64) / float(2**depth - 1)


def _robust_normalise(values: np.ndarray) -> np.ndarray:
    sample = values
    if values.size > _PERCENTILE_SAMPLE_PX:
        step = int(math.ceil(math.sqrt(values.size / _PERCENTILE_SAMPLE_PX)))
        sample = values[::step, ::step]
    lo, hi = (float(v) for v in np.percentile(sample, ROBUST_PERCENTILES))
    if hi <= lo:
        lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return np.zeros_like(values, dtype=np.float64)
    return (values - lo) / (hi - lo)


def _grey_from_channels(arr: np.ndarray, name: str | None) -> np.ndarray:
    """Grey image from normalised colour channels; reject real colour."""
    channels = arr[:, :, :3]
    spread = float(np.max(np.ptp(channels, axis=2))) if channels.size else 0.0
    if spread > _GREY_TOLERANCE:
        raise NotAMammogramError(
            "colour image (the red, green and blue channels differ); "
            "a mammogram is a grey-level image",
            name,
        )
    return channels.mean(axis=2)


def _finish(values: np.ndarray) -> np.ndarray:
    out = np.clip(values, 0.0, 1.0).astype(np.float32)
    out.setflags(write=False)
    return out


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _int_or(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _orientation(value: Any) -> str | None:
    """PatientOrientation as its DICOM text, e.g. ``"A\\R"`` (None when empty)."""
    if value is None:
        return None
    parts = [str(v).strip() for v in value] if not isinstance(value, str) else [value.strip()]
    text = "\\".join(p for p in parts if p)
    return text or None


def _str_or_none(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def _uid_name(uid: str) -> str:
    if not uid:
        return "(none)"
    name = pydicom.uid.UID(uid).name
    return f"{name} ({uid})" if name != uid else uid


# ---------------------------------------------------------------------------------------
# writers
# ---------------------------------------------------------------------------------------


def _write_png(data: np.ndarray, mammogram: Mammogram, target: str) -> None:
    Image.fromarray(data).save(target, format="PNG")


def _write_tiff(data: np.ndarray, mammogram: Mammogram, target: str) -> None:
    import tifffile

    tifffile.imwrite(target, data, photometric="minisblack")


def _write_pgm(data: np.ndarray, mammogram: Mammogram, target: str) -> None:
    rows, cols = data.shape
    with open(target, "wb") as fh:
        fh.write(f"P5\n{cols} {rows}\n65535\n".encode("ascii"))
        fh.write(data.astype(">u2").tobytes())


def _write_dicom(data: np.ndarray, mammogram: Mammogram, target: str) -> None:
    ds = _mammography_dataset(data, mammogram)
    ds.save_as(target, enforce_file_format=True)


def _mammography_dataset(data: np.ndarray, mammogram: Mammogram) -> Dataset:
    import datetime as _dt

    now = _dt.datetime.now()
    sop_instance = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DIGITAL_MAMMOGRAPHY_PRESENTATION
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = ExplicitVRLittleEndian

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = DIGITAL_MAMMOGRAPHY_PRESENTATION
    ds.SOPInstanceUID = sop_instance
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.FrameOfReferenceUID = generate_uid()
    ds.InstanceCreationDate = ds.StudyDate = ds.SeriesDate = ds.ContentDate = now.strftime("%Y%m%d")
    ds.InstanceCreationTime = ds.StudyTime = ds.SeriesTime = ds.ContentTime = now.strftime("%H%M%S")
    # patient and study: a phantom, never the source's patient
    ds.PatientName = "PHANTOM^CALCSCOPE"
    ds.PatientID = "CALCSCOPE-PHANTOM"
    ds.PatientBirthDate = ""
    ds.PatientSex = "F"
    ds.StudyID = "1"
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "calcscope image (research software, not a medical device)"
    # series and equipment
    ds.Modality = "MG"
    ds.SeriesNumber = 1
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.Manufacturer = "calcscope"
    ds.SoftwareVersions = "calcscope"
    ds.BurnedInAnnotation = "NO"
    # image
    ds.InstanceNumber = 1
    ds.ImageType = ["DERIVED", "PRIMARY"]
    ds.PatientOrientation = ""
    lat = mammogram.laterality
    ds.ImageLaterality = lat.value if lat is not None else "U"
    ds.Laterality = ds.ImageLaterality if lat is not None else ""
    view = mammogram.view
    ds.ViewPosition = view.value if view is not None and view is not View.OTHER else ""
    ds.ViewCodeSequence = []
    code = view.code if view is not None else None
    if code is not None:
        item = Dataset()
        item.CodeValue, item.CodeMeaning = code.value, code.meaning
        item.CodingSchemeDesignator = code.scheme_designator
        item.ViewModifierCodeSequence = []
        ds.ViewCodeSequence = [item]
    spacing = [f"{v:.6g}" for v in mammogram.spacing_mm]
    ds.ImagerPixelSpacing = spacing
    ds.PixelSpacing = spacing
    ds.PixelSpacingCalibrationType = ""
    ds.PositionerType = "MAMMOGRAPHIC"
    ds.BodyPartExamined = "BREAST"
    ds.DetectorType = ""
    ds.PixelIntensityRelationship = "LOG"
    ds.PixelIntensityRelationshipSign = 1
    ds.RescaleIntercept = 0
    ds.RescaleSlope = 1
    ds.RescaleType = "US"
    ds.WindowCenter = 32768
    ds.WindowWidth = 65536
    ds.VOILUTFunction = "LINEAR"
    ds.LossyImageCompression = "00"
    ds.QualityControlImage = "NO"
    # pixels
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = (int(v) for v in data.shape)
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = np.ascontiguousarray(data, dtype="<u2").tobytes()
    return ds
