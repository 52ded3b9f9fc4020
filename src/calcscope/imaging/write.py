"""Write mammograms as 16-bit grey PNG, TIFF, PGM or DICOM, and the one builder of a
mammography DICOM header (:func:`mammography_header`) that the DICOM writer and the
synthetic source header of the SR and GSPS exports
(:func:`calcscope.reports.dicom_source.source_dataset`) share.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    DigitalMammographyXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    generate_uid,
)

from calcscope.files import atomic_path
from calcscope.model import Laterality, Mammogram, View

__all__ = ["HeaderUIDs", "mammography_header", "write_image"]


@dataclass(frozen=True)
class HeaderUIDs:
    """The UIDs of a DICOM image header: instance, study, series, frame of reference."""

    sop_instance: str
    study_instance: str
    series_instance: str
    frame_of_reference: str

    @classmethod
    def new(cls) -> HeaderUIDs:
        """Four fresh UIDs under pydicom's root."""
        return cls(generate_uid(), generate_uid(), generate_uid(), generate_uid())


def mammography_header(
    shape_rc: tuple[int, int],
    spacing_mm: tuple[float, float],
    laterality: Laterality | None,
    view: View | None,
    *,
    uids: HeaderUIDs,
    patient_name: str,
    patient_id: str,
    study_date: str,
    study_time: str,
) -> Dataset:
    """The DICOM header of a 16-bit grey Digital Mammography X-Ray image (For Presentation).

    Sets the SOP class and UIDs, a patient without birth date (sex ``F``), the study
    (``StudyID`` 1, empty accession number and referring physician), modality ``MG``,
    series and instance number 1, the image pixel module of a 16-bit unsigned
    ``MONOCHROME2`` image of the mammogram's shape, ``ImageLaterality`` (``U`` if
    unknown), ``ViewPosition`` (empty for an unknown or other view) and ``PixelSpacing``
    in millimetres. No file meta and no pixel data: the callers add what they need.

    Parameters
    ----------
    shape_rc, spacing_mm, laterality, view
        The image described: its shape in pixels, its pixel spacing in millimetres
        (row, col), its laterality and view (``None`` when unknown).
    uids
        The instance, study, series and frame-of-reference UIDs.
    patient_name, patient_id
        Never a real patient's: calcscope's own images are phantoms or pseudonymous.
    study_date, study_time
        ``YYYYMMDD`` and ``HHMMSS``.

    Returns
    -------
    Dataset
        A new dataset without file meta information.
    """
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = DigitalMammographyXRayImageStorageForPresentation
    ds.SOPInstanceUID = uids.sop_instance
    ds.StudyInstanceUID = uids.study_instance
    ds.SeriesInstanceUID = uids.series_instance
    ds.FrameOfReferenceUID = uids.frame_of_reference
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = "F"
    ds.StudyDate = study_date
    ds.StudyTime = study_time
    ds.StudyID = "1"
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.Modality = "MG"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.Rows, ds.Columns = (int(v) for v in shape_rc)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.ImageLaterality = laterality.value if laterality is not None else "U"
    ds.ViewPosition = view.value if view is not None and view is not View.OTHER else ""
    ds.PixelSpacing = [f"{v:.6g}" for v in spacing_mm]
    return ds


def write_image(mammogram: Mammogram, path: str | Path) -> Path:
    """Write a mammogram as 16-bit grey PNG, TIFF, PGM or DICOM (chosen by the suffix).

    Pixels ``[0, 1]`` become ``0..65535``; reading the file back with
    :func:`~calcscope.imaging.io.read_image` gives the same pixels to within ``1/65535``.
    PNG, TIFF and PGM do not keep the spacing, laterality or view: pass them again to
    :func:`~calcscope.imaging.io.read_image`.

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
    """The full DICOM file of :func:`write_image`: header, mammography attributes, pixels."""
    now = _dt.datetime.now()
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    uids = HeaderUIDs.new()
    ds = mammography_header(
        mammogram.shape,
        mammogram.spacing_mm,
        mammogram.laterality,
        mammogram.view,
        uids=uids,
        patient_name="PHANTOM^CALCSCOPE",
        patient_id="CALCSCOPE-PHANTOM",
        study_date=date,
        study_time=time,
    )
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = UID(uids.sop_instance)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.InstanceCreationDate = ds.SeriesDate = ds.ContentDate = date
    ds.InstanceCreationTime = ds.SeriesTime = ds.ContentTime = time
    ds.StudyDescription = "calcscope image (research software, not a medical device)"
    # series and equipment
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.Manufacturer = "calcscope"
    ds.SoftwareVersions = "calcscope"
    ds.BurnedInAnnotation = "NO"
    # image
    ds.ImageType = ["DERIVED", "PRIMARY"]
    ds.PatientOrientation = ""
    ds.Laterality = ds.ImageLaterality if mammogram.laterality is not None else ""
    _add_view_code(ds, mammogram.view)
    ds.ImagerPixelSpacing = [f"{v:.6g}" for v in mammogram.spacing_mm]
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
    ds.PixelData = np.ascontiguousarray(data, dtype="<u2").tobytes()
    return ds


def _add_view_code(ds: Dataset, view: View | None) -> None:
    """``ViewCodeSequence`` (CID 4014) with an empty modifier sequence; empty if unknown."""
    ds.ViewCodeSequence = []
    code = view.code if view is not None else None
    if code is not None:
        item = Dataset()
        item.CodeValue, item.CodeMeaning = code.value, code.meaning
        item.CodingSchemeDesignator = code.scheme_designator
        item.ViewModifierCodeSequence = []
        ds.ViewCodeSequence = [item]
