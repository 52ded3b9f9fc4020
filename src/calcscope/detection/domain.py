"""Whether an image lies inside what the detector was trained and measured on.

The detector's figures (docs/accuracy.md) come from scanned film at 0.2 mm (mini-MIAS,
206 images, real calcifications), scanned film at about 0.05 mm (six CBIS-DDSM / DDSM films:
false clusters, and synthetic clusters inserted into their tissue; no real calcification
with its outline) and synthetic phantoms at 0.05-0.2 mm. Full-field digital mammograms
(quantum noise, vendor processing) were never measured, nor raw ("FOR PROCESSING") images,
nor pixels outside 0.04-0.21 mm. :func:`image_domain` says which of these an image is, from
its header and pixel spacing, and words a warning when the figures do not cover it, so that
a report does not read as confidently there as on familiar data.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from calcscope.model import Mammogram

__all__ = ["Acquisition", "ImageDomain", "image_domain"]

_DIGITAL_SOP_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.1.2",  # Digital Mammography X-Ray, for presentation
        "1.2.840.10008.5.1.4.1.1.1.2.1",  # Digital Mammography X-Ray, for processing
        "1.2.840.10008.5.1.4.1.1.1.1",  # Digital X-Ray, for presentation
        "1.2.840.10008.5.1.4.1.1.1.1.1",  # Digital X-Ray, for processing
    }
)
_SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"
_FILM_MM = ((0.19, 0.21), (0.04, 0.056))
"""Pixel sizes (mm) of the real film the detector was measured on: mini-MIAS at 0.2 mm,
DDSM scans at 0.042-0.05 mm."""
_PHANTOM_MM = (0.04, 0.21)
"""Pixel sizes (mm) of the phantoms the detector was measured on."""


class Acquisition(enum.Enum):
    """How the image was made, as far as its header tells."""

    FILM = "film"  # a scanned film (Secondary Capture, or a PGM/PNG scan)
    DIGITAL = "digital"  # a full-field digital mammogram (DX/MG image storage)
    UNKNOWN = "unknown"  # an array or a file without a telling header


@dataclass(frozen=True)
class ImageDomain:
    """An image's place relative to the detector's training and measurements.

    Attributes
    ----------
    pixel_mm : float
        Isotropic pixel size, mm.
    acquisition : Acquisition
        Film, digital or unknown.
    processing : str or None
        DICOM Presentation Intent ("FOR PRESENTATION" / "FOR PROCESSING") when given.
    familiar : bool
        Whether the detector's figures cover such an image.
    warning : str or None
        Why they do not (None when ``familiar``).
    """

    pixel_mm: float
    acquisition: Acquisition
    processing: str | None
    familiar: bool
    warning: str | None


def _acquisition(mammogram: Mammogram) -> Acquisition:
    src = mammogram.source
    sop = src.sop_class_uid or ""
    if sop in _DIGITAL_SOP_CLASSES or src.presentation_intent:
        return Acquisition.DIGITAL
    if sop.startswith(_SECONDARY_CAPTURE_PREFIX):
        return Acquisition.FILM
    if src.path and src.path.lower().endswith((".pgm", ".pnm")):
        return Acquisition.FILM  # the public film sets (MIAS) come as PGM scans
    return Acquisition.UNKNOWN


def image_domain(mammogram: Mammogram) -> ImageDomain:
    """Where ``mammogram`` lies relative to the detector's training and measurements.

    Parameters
    ----------
    mammogram
        The image as read (its :class:`~calcscope.model.Source` header and spacing).

    Returns
    -------
    ImageDomain
        ``familiar`` for scanned film at 0.19-0.21 mm (mini-MIAS) or 0.04-0.056 mm (DDSM
        scans) and for images of unknown origin inside the phantoms' 0.04-0.21 mm; otherwise
        a warning naming what the figures do not cover.
    """
    px = mammogram.pixel_mm
    acq = _acquisition(mammogram)
    processing = mammogram.source.presentation_intent
    reasons: list[str] = []
    if not _PHANTOM_MM[0] <= px <= _PHANTOM_MM[1]:
        reasons.append(
            f"pixel size {px:.3f} mm lies outside the 0.04-0.21 mm the detector was measured at"
        )
    if acq is Acquisition.DIGITAL:
        reasons.append(
            "a digital mammogram: the detector was trained and measured on scanned film and "
            "phantoms only (no real digital image with truth)"
        )
    elif acq is Acquisition.FILM and not reasons:
        if not any(lo <= px <= hi for lo, hi in _FILM_MM):
            reasons.append(
                f"scanned film at {px:.3f} mm: real film was measured at 0.2 mm and "
                "0.042-0.05 mm only"
            )
    if processing and processing.upper() == "FOR PROCESSING":
        reasons.append("a raw (FOR PROCESSING) image: its contrast differs from what was learnt")
    warning = None
    if reasons:
        warning = (
            "Outside the detector's measured domain: "
            + "; ".join(reasons)
            + ". Findings on this image are less certain than the published figures."
        )
    return ImageDomain(px, acq, processing, not reasons, warning)
