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
* :class:`~calcscope.errors.ImplausibleValueError`: a rescale or window that is not finite
  (or overflows), a spacing outside ``IOConfig.min_spacing_mm``-``max_spacing_mm``, or
  decoded compressed pixels that are garbled: never analysed as if valid;
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

import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

import numpy as np
from pydicom.uid import (
    DigitalMammographyXRayImageStorageForPresentation,
    DigitalMammographyXRayImageStorageForProcessing,
    SecondaryCaptureImageStorage,
)

from calcscope.config import IOConfig
from calcscope.errors import (
    MAX_QUOTED_CHARS,
    ImageTooLargeError,
    InputError,
    MissingSpacingError,
    NotAMammogramError,
    UnreadableFileError,
    one_line,
)
from calcscope.imaging._common import (
    MISSING_SPACING,
    ROBUST_PERCENTILES,
    check_size,
    check_spacing,
    finish,
    grey_from_channels,
    normalise_array,
    parse_laterality,
    parse_spacing,
    parse_view,
)
from calcscope.imaging.dicom import read_dicom
from calcscope.imaging.raster import read_pillow, read_tiff
from calcscope.imaging.write import write_image
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

#: SOP classes, kept here for the modules that import them from this one (pydicom's UIDs).
SECONDARY_CAPTURE = SecondaryCaptureImageStorage
DIGITAL_MAMMOGRAPHY_PRESENTATION = DigitalMammographyXRayImageStorageForPresentation
DIGITAL_MAMMOGRAPHY_PROCESSING = DigitalMammographyXRayImageStorageForProcessing


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
    ImplausibleValueError
        Non-finite rescale or window, spacing outside the configured range, garbled
        decoded pixels.
    ImageTooLargeError
        More pixels than ``config.max_pixels``.
    """
    config = config or IOConfig()
    p = Path(path)
    name = str(p)
    user_spacing = parse_spacing(spacing_mm, name)
    if user_spacing is not None:
        check_spacing(user_spacing, config, name, "user")
    user_laterality = parse_laterality(laterality, name)
    user_view = parse_view(view, name)
    kind = _sniff(p)
    try:
        if kind == "dicom":
            image = read_dicom(p, config, user_spacing)
        elif kind == "tiff":
            image = read_tiff(p, config, user_spacing)
        else:
            image = read_pillow(p, config, user_spacing)
    except InputError:
        raise
    except MemoryError as exc:
        raise ImageTooLargeError("not enough memory to decode the image", name) from exc
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - any decoder failure (panics too)
        detail = one_line(exc, MAX_QUOTED_CHARS)
        raise UnreadableFileError(f"cannot decode the image: {detail}", name) from exc
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
    spacing = parse_spacing(spacing_mm, name)
    if spacing is None:
        raise MissingSpacingError(MISSING_SPACING, name)
    check_spacing(spacing, config, name, "user")
    arr = np.asarray(pixels)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise NotAMammogramError(
            f"expected a 2-D grey image, got an array of shape {arr.shape}", name
        )
    check_size(arr.shape[0], arr.shape[1], config, name)
    grey = normalise_array(arr, name)
    if grey.ndim == 3:
        grey = grey_from_channels(grey, name)
    return Mammogram(
        pixels=finish(grey, name),
        spacing_mm=spacing,
        laterality=parse_laterality(laterality, name),
        view=parse_view(view, name),
        source=Source(path=name, spacing_origin="user"),
    )


def find_images(paths: Iterable[str | Path]) -> list[Path]:
    """List the image files named by files and folders.

    Files are returned as given (whatever their suffix; missing ones too, so that
    :func:`read_image` reports them). Folders are searched recursively for files whose
    suffix is in :data:`PIXEL_FILE_SUFFIXES` (any case) and for suffix-less files with the
    DICOM ``DICM`` preamble; hidden files and folders (name starting with ``.``) are
    skipped. Special files (FIFOs, sockets, devices) are never opened, since reading one
    can block for ever: they are listed, and :func:`read_image` refuses each with a
    one-line message.

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
                    if _special_kind(candidate) is not None:
                        # never opened (a FIFO would block): listed so that read_image
                        # reports it as skipped, whatever its name
                        found.setdefault(_identity(candidate), candidate)
                    elif suffix in PIXEL_FILE_SUFFIXES or (
                        suffix == "" and _has_dicom_preamble(candidate)
                    ):
                        found.setdefault(_identity(candidate), candidate)
        else:
            found.setdefault(_identity(p), p)
    return sorted(found.values(), key=str)


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


_SPECIAL_KINDS: tuple[tuple[Callable[[int], bool], str], ...] = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _special_kind(p: Path) -> str | None:
    """What ``p`` is when it is not a regular file (symbolic links followed), else None;
    None too when it cannot be examined (missing: read_image reports that)."""
    try:
        mode = p.stat().st_mode
    except OSError:
        return None
    return _mode_kind(mode)


def _mode_kind(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    return next((text for test, text in _SPECIAL_KINDS if test(mode)), "a special file")


def _read_head(p: Path) -> bytes:
    """The first 132 bytes of a regular file, opened without blocking (a FIFO swapped in
    after the check would otherwise block the open)."""
    name = str(p)
    if not p.exists():
        raise UnreadableFileError("file not found", name)
    kind = _special_kind(p)
    if kind is not None:
        raise UnreadableFileError(f"not a regular file but {kind}; skipped", name)
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as fh:
            kind = _mode_kind(os.fstat(fh.fileno()).st_mode)
            if kind is not None:
                raise UnreadableFileError(f"not a regular file but {kind}; skipped", name)
            return fh.read(132)
    except OSError as exc:
        detail = one_line(exc, MAX_QUOTED_CHARS)
        raise UnreadableFileError(f"cannot open: {detail}", name) from exc


def _sniff(p: Path) -> str:
    name = str(p)
    head = _read_head(p)
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
        head = _read_head(p)
    except UnreadableFileError:
        return False
    return head[128:132] == b"DICM"


def _identity(p: Path) -> Path:
    try:
        return p.resolve()
    except (OSError, RuntimeError):  # RuntimeError: a symbolic link loop (Python < 3.13)
        return p.absolute()
