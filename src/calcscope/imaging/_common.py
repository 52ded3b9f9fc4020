"""Helpers shared by the image readers: argument parsing, size checks, normalisation.

Private to :mod:`calcscope.imaging`; the public entry points are in :mod:`calcscope.imaging.io`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pydicom

from calcscope.config import IOConfig
from calcscope.errors import (
    ImageTooLargeError,
    ImplausibleValueError,
    InputError,
    NotAMammogramError,
)
from calcscope.model import Laterality, View

#: Low and high percentiles mapped to 0 and 1 for images without a display window.
#: The high one is close to 100 so that bright calcifications are not clipped.
ROBUST_PERCENTILES: tuple[float, float] = (0.05, 99.995)

_GREY_TOLERANCE = 2.0 / 255.0  # channels closer than this (normalised) count as grey
_PERCENTILE_SAMPLE_PX = 4_000_000  # subsample larger images for percentiles

SpacingArg = float | tuple[float, float] | None

# ---------------------------------------------------------------------------------------
# argument parsing
# ---------------------------------------------------------------------------------------

MISSING_SPACING = (
    "no pixel spacing in the file (no ImagerPixelSpacing or PixelSpacing); "
    "pass it with --spacing-mm (spacing_mm=...), e.g. 0.07 for FFDM, 0.2 for mini-MIAS"
)


def parse_spacing(value: SpacingArg, name: str | None) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        if isinstance(value, int | float | np.number):
            pair = (float(value), float(value))
        else:
            row, col = value
            pair = (float(row), float(col))
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"invalid spacing {value!r}: give one number or (row, col) in mm", name
        ) from exc
    if not all(math.isfinite(v) and v > 0 for v in pair):
        raise InputError(f"invalid spacing {value!r}: must be positive millimetres", name)
    return pair


def check_spacing(
    spacing_mm: tuple[float, float], config: IOConfig, name: str | None, origin: str
) -> None:
    """Refuse a pixel spacing outside ``[config.min_spacing_mm, config.max_spacing_mm]``.

    Parameters
    ----------
    spacing_mm
        ``(row, col)`` spacing in millimetres.
    config
        The plausible range.
    name
        The file, for the message.
    origin
        Where the spacing came from: a DICOM keyword, or ``"user"`` for a given one.

    Raises
    ------
    ImplausibleValueError
        A value that is not finite or lies outside the range.
    """
    lo, hi = config.min_spacing_mm, config.max_spacing_mm
    if all(math.isfinite(v) and lo <= v <= hi for v in spacing_mm):
        return
    shown = " x ".join(f"{v:g}" for v in spacing_mm)
    where = "the given spacing" if origin == "user" else origin
    remedy = (
        "give the real spacing (or set io.min_spacing_mm / io.max_spacing_mm if intended)"
        if origin == "user"
        else "the header is wrong: pass the real spacing with --spacing-mm (spacing_mm=...)"
    )
    raise ImplausibleValueError(
        f"{where} is {shown} mm, outside the plausible range for a mammogram "
        f"({lo:g}-{hi:g} mm); {remedy}",
        name,
    )


def parse_laterality(value: Laterality | str | None, name: str | None) -> Laterality | None:
    if value is None or isinstance(value, Laterality):
        return value
    text = str(value).strip().upper()
    aliases = {"L": Laterality.LEFT, "LEFT": Laterality.LEFT}
    aliases |= {"R": Laterality.RIGHT, "RIGHT": Laterality.RIGHT}
    if text not in aliases:
        raise InputError(f"invalid laterality {value!r}: use L or R", name)
    return aliases[text]


def parse_view(value: View | str | None, name: str | None) -> View | None:
    if value is None or isinstance(value, View):
        return value
    try:
        return View(str(value).strip().upper())
    except ValueError as exc:
        allowed = ", ".join(v.value for v in View)
        raise InputError(f"invalid view {value!r}: use one of {allowed}", name) from exc


# ---------------------------------------------------------------------------------------
# normalisation and checks
# ---------------------------------------------------------------------------------------


def check_size(rows: int, cols: int, config: IOConfig, name: str | None) -> None:
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


def normalise_array(arr: np.ndarray, name: str | None) -> np.ndarray:
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


def robust_bounds(values: np.ndarray) -> tuple[float, float] | None:
    """The values to map to 0 and 1 where an image has no display window: its
    :data:`ROBUST_PERCENTILES` (on a subsample of a large image), or its minimum and
    maximum when they coincide; None when all values are equal."""
    sample = values
    if values.size > _PERCENTILE_SAMPLE_PX:
        step = int(math.ceil(math.sqrt(values.size / _PERCENTILE_SAMPLE_PX)))
        sample = values[::step, ::step]
    lo, hi = (float(v) for v in np.percentile(sample, ROBUST_PERCENTILES))
    if hi <= lo:
        lo, hi = float(values.min()), float(values.max())
    return (lo, hi) if hi > lo else None


def grey_from_channels(arr: np.ndarray, name: str | None) -> np.ndarray:
    """Grey image from normalised colour channels; reject real colour."""
    channels = arr[:, :, :3]
    spread = float(np.max(np.ptp(channels, axis=2))) if channels.size else 0.0
    if spread > _GREY_TOLERANCE:
        raise NotAMammogramError(
            "colour image (the red, green and blue channels differ); "
            "a mammogram is a grey-level image",
            name,
        )
    grey: np.ndarray = channels.mean(axis=2)
    return grey


def finish(values: np.ndarray, name: str | None = None) -> np.ndarray:
    """Clip to ``[0, 1]`` as read-only float32; refuse non-finite values (never analysed)."""
    if not np.all(np.isfinite(values)):
        raise ImplausibleValueError(
            "the pixel values are not finite numbers after normalisation (NaN or infinity)",
            name,
        )
    # cast, then clip: the same values as clipping first (the cast is monotonic and 0
    # and 1 are exact), without a float64 temporary
    out: np.ndarray = values.astype(np.float32)
    np.clip(out, 0.0, 1.0, out=out)
    out.setflags(write=False)
    return out


def int_or(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def orientation(value: Any) -> str | None:
    """PatientOrientation as its DICOM text, e.g. ``"A\\R"`` (None when empty)."""
    if value is None:
        return None
    parts = [str(v).strip() for v in value] if not isinstance(value, str) else [value.strip()]
    text = "\\".join(p for p in parts if p)
    return text or None


def str_or_none(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def uid_name(uid: str) -> str:
    if not uid:
        return "(none)"
    name = pydicom.uid.UID(uid).name
    return f"{name} ({uid})" if name != uid else uid
