"""Read raster mammograms: PNG, PGM/PPM (Pillow) and TIFF (tifffile, Pillow as fallback).

These files carry no spacing, laterality or view: the spacing must be given. Pixels are
divided by the maximum of their declared bit depth (PGM ``maxval``), float TIFFs mapped by
their minimum and maximum; TIFF ``WhiteIsZero`` is inverted.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from calcscope.config import IOConfig
from calcscope.errors import (
    MAX_QUOTED_CHARS,
    ImageTooLargeError,
    MissingSpacingError,
    NotAMammogramError,
    UnreadableFileError,
    one_line,
)
from calcscope.imaging._common import (
    MISSING_SPACING,
    check_size,
    finish,
    grey_from_channels,
    normalise_array,
)
from calcscope.model import Mammogram, Source

__all__ = ["read_pillow", "read_tiff"]

# ---------------------------------------------------------------------------------------
# PNG / PGM / PPM (Pillow) and TIFF (tifffile, Pillow as fallback)
# ---------------------------------------------------------------------------------------


def read_pillow(p: Path, config: IOConfig, spacing: tuple[float, float] | None) -> Mammogram:
    name = str(p)
    with warnings.catch_warnings():
        # our own size check below replaces Pillow's decompression-bomb warning
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            im = Image.open(p)  # lazy: reads the header only
        except Image.DecompressionBombError as exc:
            detail = one_line(exc, MAX_QUOTED_CHARS)
            raise ImageTooLargeError(f"image too large: {detail}", name) from exc
        with im:
            cols, rows = im.size
            frames = int(getattr(im, "n_frames", 1) or 1)
            if frames > 1:
                raise NotAMammogramError(f"multi-frame image ({frames} frames)", name)
            check_size(rows, cols, config, name)
            if spacing is None:
                raise MissingSpacingError(MISSING_SPACING, name)
            _check_pnm_length(im, p, name)
            im.load()  # raises OSError when truncated
            arr, depth = _pillow_array(im)
    return _from_decoded(arr, depth, spacing, name, invert=False)


def _check_pnm_length(im: Image.Image, p: Path, name: str) -> None:
    """A binary PGM/PPM has no checksum: its pixel bytes must be exactly what its header
    declares (width x height x samples x bytes per sample, 2 when maxval > 255), else the
    header is corrupt and the pixels would be read sheared or scaled into another image."""
    tiles = getattr(im, "tile", None)
    if im.format not in ("PPM", "PGM") or not tiles:
        return
    codec, offset, raw_args = tiles[0][0], int(tiles[0][2]), tiles[0][3]
    args = (raw_args,) if isinstance(raw_args, str) else tuple(raw_args or ())
    if codec == "raw":
        wide = "16" in str(args[0] if args else im.mode)
    elif codec == "ppm" and len(args) > 1:
        wide = int(args[1]) > 255
    else:  # plain (ASCII) PNM: lengths vary
        return
    expected = im.size[0] * im.size[1] * len(im.getbands()) * (2 if wide else 1)
    held = p.stat().st_size - offset
    if held != expected:
        raise UnreadableFileError(
            f"the PGM/PPM header declares {im.size[0]} x {im.size[1]} pixels "
            f"({expected} bytes of pixel data) but the file holds {held}: corrupt header "
            "or truncated file; not analysed",
            name,
        )


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


def read_tiff(p: Path, config: IOConfig, spacing: tuple[float, float] | None) -> Mammogram:
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
        check_size(rows, cols, config, name)
        if spacing is None:
            raise MissingSpacingError(MISSING_SPACING, name)
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
        norm = normalise_array(arr.astype(np.float64), name)
    else:
        norm = arr.astype(np.float64) / float(2**depth - 1)
    if norm.ndim == 3:
        norm = grey_from_channels(norm, name)
    if invert:
        norm = 1.0 - norm
    return Mammogram(
        pixels=finish(norm, name),
        spacing_mm=spacing,
        source=Source(path=name, spacing_origin="user"),
    )
