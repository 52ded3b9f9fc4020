"""The analysed image's DICOM identity, shared by the SR and GSPS exports.

* :func:`source_dataset`: the header of the analysed image, re-read from its DICOM file,
  or, for an image that was not DICOM (PNG, TIFF, array, phantom), a *synthetic* header
  whose UIDs are derived from the pixel data (:func:`derived_uid`), with no patient.
* :func:`deidentify`: the same header without the patient's name, ID, birth date and
  other identifiers (``--anonymize``).
* :func:`pixel_centre_xy` and :func:`outline_rc`: calcscope's ``(row, col)`` pixel
  geometry as DICOM image coordinates and outlines.
* :func:`view_code`, :func:`laterality_code`: the SNOMED CT codes of the image's view
  (CID 4014) and laterality (CID 6022); :func:`description_text`: what every export says
  about where it comes from.
"""

from __future__ import annotations

import copy
import datetime as _dt
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import DigitalMammographyXRayImageStorageForPresentation, generate_uid

from calcscope.about import DISCLAIMER, __version__
from calcscope.imaging.write import HeaderUIDs, mammography_header
from calcscope.model import Calcification, Laterality, Mammogram, View

if TYPE_CHECKING:
    from calcscope.reports.schema import CalcificationModel, SourceModel

__all__ = [
    "DIGITAL_MAMMOGRAPHY_PRESENTATION",
    "ANONYMOUS_NAME",
    "derived_uid",
    "pixel_digest",
    "source_dataset",
    "deidentify",
    "pixel_centre_xy",
    "outline_rc",
    "description_text",
    "view_code",
    "laterality_code",
]


#: Digital Mammography X-Ray Image Storage - For Presentation (pydicom's UID).
DIGITAL_MAMMOGRAPHY_PRESENTATION = DigitalMammographyXRayImageStorageForPresentation

#: Patient name written in de-identified exports.
ANONYMOUS_NAME = "ANONYMOUS^"

#: Attributes removed or emptied by :func:`deidentify` besides name, ID and birth date.
_IDENTIFYING = (
    "OtherPatientIDs",
    "OtherPatientIDsSequence",
    "OtherPatientNames",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "PatientMotherBirthName",
    "PatientBirthTime",
    "IssuerOfPatientID",
    "MilitaryRank",
    "MedicalRecordLocator",
    "EthnicGroup",
    "PatientComments",
    "InstitutionAddress",
    "ReferringPhysicianName",
    "PerformingPhysicianName",
    "OperatorsName",
    "NameOfPhysiciansReadingStudy",
    "AccessionNumber",
)


def derived_uid(*parts: object) -> str:
    """A UID derived from ``parts`` (same parts, same UID), under pydicom's root."""
    return generate_uid(entropy_srcs=[str(p) for p in parts])


def pixel_digest(mammo: Mammogram) -> str:
    """SHA-256 (hex) of the pixels and spacing: the key of a non-DICOM image's identity."""
    pix = np.ascontiguousarray(mammo.pixels, dtype=np.float32)
    h = hashlib.sha256(pix.tobytes())
    h.update(repr((pix.shape, mammo.spacing_mm)).encode())
    return h.hexdigest()


def _synthetic_source(src: SourceModel) -> Dataset:
    """A header for an image that was not DICOM: deterministic UIDs, no patient."""
    digest = (
        src.pixel_sha256
        or hashlib.sha256(repr((src.path, src.shape_rc, src.spacing_mm)).encode()).hexdigest()
    )  # reports before schema 1.4 hold no pixel digest
    uids = HeaderUIDs(
        sop_instance=derived_uid("calcscope-image", digest),
        study_instance=derived_uid("calcscope-study", digest),
        series_instance=derived_uid("calcscope-series", digest),
        frame_of_reference=derived_uid("calcscope-frame", digest),
    )
    return mammography_header(
        src.shape_rc,
        src.spacing_mm,
        Laterality(src.laterality) if src.laterality else None,
        View(src.view) if src.view else None,
        uids=uids,
        patient_name=ANONYMOUS_NAME,
        patient_id=f"CALCSCOPE-{digest[:12].upper()}",
        study_date=_dt.date.today().strftime("%Y%m%d"),
        study_time="000000",
    )


def source_dataset(src: SourceModel) -> Dataset:
    """The header of the analysed image (without pixels) for referencing it.

    DICOM input is re-read from the report's ``source.path``; anything else, or a DICOM
    file that has gone, gets a synthetic header (see the module docstring).
    """
    if src.path and src.sop_instance_uid and Path(src.path).is_file():
        try:
            ds = pydicom.dcmread(src.path, stop_before_pixels=True)
        except Exception:  # noqa: BLE001 - fall back to the synthetic header
            ds = None
        if ds is not None and ds.get("SOPInstanceUID") == src.sop_instance_uid:
            for kw in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex"):
                if kw not in ds:
                    setattr(ds, kw, "")
            for kw in ("StudyDate", "StudyTime", "StudyID", "AccessionNumber"):
                if kw not in ds:
                    setattr(ds, kw, "")
            if "Rows" not in ds:
                ds.Rows, ds.Columns = src.shape_rc
            return ds
    return _synthetic_source(src)


def deidentify(ds: Dataset) -> Dataset:
    """A copy of ``ds`` without the patient's name, ID, birth date and other identifiers.

    The name becomes :data:`ANONYMOUS_NAME`, the ID a pseudonym derived from the Study
    Instance UID (not from the ID, so that it cannot be traced back by trying IDs), the
    birth date empty. UIDs are kept: the exports must still reference the image.
    """
    out = copy.deepcopy(ds)
    out.PatientName = ANONYMOUS_NAME
    study = str(out.get("StudyInstanceUID", ""))
    out.PatientID = "ANON-" + hashlib.sha256(study.encode()).hexdigest()[:12].upper()
    out.PatientBirthDate = ""
    for kw in _IDENTIFYING:
        if kw in out:
            if kw in ("AccessionNumber", "ReferringPhysicianName"):
                setattr(out, kw, "")
            else:
                delattr(out, kw)
    out.PatientIdentityRemoved = "YES"
    out.DeidentificationMethod = "calcscope --anonymize: patient name, ID, birth date removed"
    return out


def pixel_centre_xy(rc: np.ndarray | tuple[float, float]) -> np.ndarray:
    """``(row, col)`` pixel indices to DICOM image coordinates ``(x=col, y=row)``.

    DICOM 2-D coordinates (PS3.3 C.10.5.1.2, C.18.6.1.1) put the top-left corner of the
    top-left pixel at (0, 0), so the centre of pixel (r, c) is (c + 0.5, r + 0.5).
    """
    a = np.asarray(rc, dtype=np.float64).reshape(-1, 2)
    return np.stack([a[:, 1] + 0.5, a[:, 0] + 0.5], axis=1)


def description_text() -> str:
    """What every DICOM export says about where it comes from."""
    return f"calcscope {__version__}. {DISCLAIMER}"


def view_code(view: View | None) -> tuple[str, str] | None:
    """SNOMED CT code (value, meaning) of a view (CID 4014), or None."""
    code = view.code if view is not None else None
    return None if code is None else (code.value, code.meaning)


def laterality_code(lat: Laterality | None) -> tuple[str, str] | None:
    """SNOMED CT code (value, meaning) of the image laterality (CID 6022), or None."""
    if lat is Laterality.LEFT:
        return ("80248007", "Left breast")
    if lat is Laterality.RIGHT:
        return ("73056007", "Right breast")
    return None


def outline_rc(calc: Calcification | CalcificationModel) -> np.ndarray:
    """Outline of a calcification as an ``(N, 2)`` (row, col) array, at least 3 points.

    The detected contour when it has 3 or more points, else the corners of its bounding
    box (a speck of one or two pixels).
    """
    pts = np.asarray(calc.contour_rc, dtype=np.float64).reshape(-1, 2)
    if len(np.unique(pts, axis=0)) >= 3:
        return pts
    r0, c0, r1, c1 = calc.bbox_rc
    return np.array([[r0, c0], [r0, c1 - 1], [r1 - 1, c1 - 1], [r1 - 1, c0]], dtype=np.float64)
