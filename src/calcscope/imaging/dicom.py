"""Read DICOM mammograms: header checks, pixel decoding, modality and VOI LUTs, geometry.

:func:`read_dicom` is called by :func:`calcscope.imaging.io.read_image`; it returns a
:class:`~calcscope.model.Mammogram` or raises a :mod:`calcscope.errors` class.
"""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut, apply_voi_lut
from pydicom.uid import (
    DigitalMammographyXRayImageStorageForPresentation,
    DigitalMammographyXRayImageStorageForProcessing,
    SecondaryCaptureImageStorage,
)

from calcscope.config import IOConfig
from calcscope.errors import MissingSpacingError, NotAMammogramError, UnreadableFileError
from calcscope.imaging._common import (
    MISSING_SPACING,
    check_size,
    finish,
    grey_from_channels,
    int_or,
    normalise_array,
    one_line,
    orientation,
    robust_normalise,
    str_or_none,
    uid_name,
)
from calcscope.model import Laterality, Mammogram, Source, View

__all__ = ["read_dicom"]

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

    spacing, origin = _dicom_spacing(ds)
    if user_spacing is not None:
        spacing, origin = user_spacing, "user"
    if spacing is None:
        raise MissingSpacingError(MISSING_SPACING, name)

    raw = _decode(ds, name)
    if raw.shape[:2] != (rows, cols):
        raise UnreadableFileError(
            f"decoded pixels have shape {raw.shape}, header says {rows} x {cols}", name
        )
    if raw.ndim == 3:
        grey = grey_from_channels(normalise_array(raw, name), name)
    else:
        grey = _dicom_grey(raw, ds, photometric)
    return Mammogram(
        pixels=finish(grey),
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
        raise UnreadableFileError(
            f"not a readable DICOM file (truncated or corrupt?): {one_line(exc)}", name
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


def _decode(ds: Dataset, name: str) -> np.ndarray:
    """The stored pixel values (before any LUT), or UnreadableFileError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ds.pixel_array
    except Exception as exc:  # noqa: BLE001
        meta = getattr(ds, "file_meta", None)
        ts = meta.get("TransferSyntaxUID") if meta is not None else None
        ts_text = f"{ts.name} ({ts})" if ts is not None else "unknown transfer syntax"
        raise UnreadableFileError(
            f"cannot decode the pixel data, {ts_text}: {one_line(exc)}. "
            "Convert it to uncompressed DICOM with another tool (e.g. DCMTK dcmdjpeg, "
            "gdcmconv --raw) or export it as 16-bit PNG and pass --spacing-mm",
            name,
        ) from exc


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
            out = robust_normalise(values.astype(np.float64))
        else:
            bits = int_or(ds.get("BitsStored"), 8 * raw.dtype.itemsize)
            if int_or(ds.get("PixelRepresentation"), 0) == 1:
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
