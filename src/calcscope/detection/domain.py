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

import numpy as np

from calcscope.model import Mammogram

__all__ = [
    "Acquisition",
    "ImageDomain",
    "MEASURED_SHARPNESS",
    "SOFTEST_SCAN",
    "image_domain",
    "scan_sharpness",
]

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
MEASURED_SHARPNESS = (0.49, 0.56)
"""Range of :func:`scan_sharpness` on the six DDSM films the detector was measured on."""
SOFTEST_SCAN = 0.40
"""Lowest :func:`scan_sharpness` of the scans the detector was measured on: the six DDSM films
read 0.49-0.56 (:data:`MEASURED_SHARPNESS`), and the five calcification-free ones blurred by
0.025 mm 0.42-0.44, where false clusters stayed as rare; blurred by 0.05 mm (0.29) they were
not (docs/accuracy.md)."""


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
    scan_sharpness : float or None
        The scan's grain sharpness (:func:`scan_sharpness`) where it was measured (scanned
        film at fine pixels), else None.
    """

    pixel_mm: float
    acquisition: Acquisition
    processing: str | None
    familiar: bool
    warning: str | None
    scan_sharpness: float | None = None


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


def scan_sharpness(pixels: np.ndarray, mask: np.ndarray, step: int = 8) -> float | None:
    """How sharply the scanner drew the film's grain: ``(s1 / s2)^2``, with ``s1`` and ``s2``
    the mean absolute differences between pixels one and two columns apart inside ``mask``
    (every ``step``-th row). Uncorrelated noise gives 1; a scanner's blur correlates
    neighbours and gives less (values measured: :data:`SOFTEST_SCAN`). None with too few
    pixels."""
    sub = np.asarray(pixels)[::step].astype(np.float32, copy=False)
    m = np.asarray(mask, dtype=bool)[::step]
    if sub.ndim != 2 or sub.shape[1] < 3:
        return None
    both1 = m[:, 1:-1] & m[:, :-2]
    both2 = m[:, 2:] & m[:, :-2]
    if int(both2.sum()) < 1000:
        return None
    d1 = np.abs(sub[:, 1:-1] - sub[:, :-2])[both1]
    d2 = np.abs(sub[:, 2:] - sub[:, :-2])[both2]
    s2 = float(d2.mean())
    return float((float(d1.mean()) / s2) ** 2) if s2 > 0 else None


def image_domain(mammogram: Mammogram, sharpness: float | None = None) -> ImageDomain:
    """Where ``mammogram`` lies relative to the detector's training and measurements.

    Parameters
    ----------
    mammogram
        The image as read (its :class:`~calcscope.model.Source` header and spacing).
    sharpness
        Its :func:`scan_sharpness`, where measured (scanned film at fine pixels); under
        :data:`SOFTEST_SCAN` the image is outside the measured domain.

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
    if sharpness is not None and acq is not Acquisition.DIGITAL and sharpness < SOFTEST_SCAN:
        reasons.append(
            f"a softer scan than any measured (grain sharpness {sharpness:.2f}, measured "
            f"{SOFTEST_SCAN:.2f} or more): dust and grain may pass for calcifications more often"
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
    return ImageDomain(px, acq, processing, not reasons, warning, sharpness)
