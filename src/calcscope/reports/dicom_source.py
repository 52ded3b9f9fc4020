"""The analysed image's DICOM identity, shared by the SR and GSPS exports.

* :func:`source_dataset`: the header of the analysed image, re-read from its DICOM file,
  or, for an image that was not DICOM (PNG, TIFF, array, phantom), a *synthetic* header
  whose UIDs are derived from the pixel data (:func:`derived_uid`), with no patient.
* :class:`Deidentifier`, :func:`deidentify`: the same header de-identified by DICOM
  PS3.15's Basic Application Level Confidentiality Profile (dicognito), ``--anonymize``.
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
import hmac
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
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
    "Deidentifier",
    "DEIDENTIFICATION_CODES",
    "mark_deidentified",
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

#: Attributes of PS3.15 Table E.1-1 that the Basic Profile removes ("X") and dicognito
#: keeps (it replaces names, IDs, UIDs, dates, institution and address, and removes a few).
_REMOVED = (
    "AcquisitionComments",
    "AdditionalPatientHistory",
    "AdmittingDiagnosesDescription",
    "Allergies",
    "ConsultingPhysicianName",
    "ContentCreatorName",
    "CountryOfResidence",
    "DerivationDescription",
    "DetectorID",
    "DeviceSerialNumber",
    "EthnicGroup",
    "FrameComments",
    "ImageComments",
    "InstitutionAddress",
    "InstitutionCodeSequence",
    "InstitutionalDepartmentName",
    "InstitutionalDepartmentTypeCodeSequence",
    "IssuerOfPatientIDQualifiersSequence",
    "LastMenstrualDate",
    "MedicalAlerts",
    "NameOfPhysiciansReadingStudy",
    "OperatorIdentificationSequence",
    "OperatorsName",
    "OtherPatientIDs",
    "OtherPatientIDsSequence",
    "OtherPatientNames",
    "PatientAddress",
    "PatientAge",
    "PatientBirthName",
    "PatientBirthTime",
    "PatientComments",
    "PatientMotherBirthName",
    "PatientPrimaryLanguageCodeSequence",
    "PatientSexNeutered",
    "PatientSize",
    "PatientState",
    "PatientWeight",
    "PerformedProcedureStepDescription",
    "PerformingPhysicianIdentificationSequence",
    "PerformingPhysicianName",
    "PersonAddress",
    "PersonTelephoneNumbers",
    "PhysiciansOfRecord",
    "PhysiciansOfRecordIdentificationSequence",
    "PregnancyStatus",
    "ProtocolName",
    "ReasonForStudy",
    "ReferencedPatientSequence",
    "ReferringPhysicianAddress",
    "ReferringPhysicianIdentificationSequence",
    "ReferringPhysicianTelephoneNumbers",
    "RegionOfResidence",
    "RequestAttributesSequence",
    "RequestedProcedureDescription",
    "RequestingPhysician",
    "ResponsiblePerson",
    "ScheduledPerformingPhysicianName",
    "SeriesDescription",
    "SmokingStatus",
    "StudyDescription",
)

#: Attributes the Basic Profile empties ("Z": type 2, kept present with no value).
_EMPTIED = ("PatientBirthDate", "PatientSex", "ReferringPhysicianName")

#: De-identification methods applied (CID 7050): the Basic Application Confidentiality
#: Profile, with dates shifted by a constant offset rather than removed.
DEIDENTIFICATION_CODES: tuple[tuple[str, str], ...] = (
    ("113100", "Basic Application Confidentiality Profile"),
    ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
)

#: The seed of this process's de-identification when none is given: random, never
#: written anywhere, so that pseudonyms cannot be traced back by trying identifiers.
_PROCESS_SEED = secrets.token_hex(16)


def _strip_times(item: Dataset) -> None:
    """Times of day emptied and date-times cut to their (shifted) date: dicognito shifts
    dates but keeps the time of day, which with the study's other details can identify
    an examination (PS3.15 Basic Profile: Z/X for Study, Series, Acquisition and Content
    times)."""
    for elem in item:
        if elem.VR == "TM" and elem.value:
            elem.value = ""
        elif elem.VR == "DT" and elem.value:
            elem.value = str(elem.value)[:8]


class Deidentifier:
    """De-identification by DICOM PS3.15's Basic Application Level Confidentiality Profile.

    The work is done by `dicognito <https://github.com/blairconrad/dicognito>`_ (a
    maintained implementation of the profile: it replaces every UID but class and
    transfer syntax UIDs, every person name, the patient, study, accession and station
    IDs, institution name and address, and shifts every date and time by one offset),
    completed by calcscope for the attributes that the profile removes or empties and
    dicognito keeps (:data:`_REMOVED`, :data:`_EMPTIED`, private attributes, overlays).
    The patient's name becomes :data:`ANONYMOUS_NAME`.

    One seed, one mapping: the same original UID, ID or date always gives the same
    replacement under the same seed, so the SR, the presentation state and the JSON report
    of an image (and images of one study in one run) reference each other consistently,
    and an image de-identified by ``dicognito --seed SEED`` gets the UIDs that the
    de-identified SR references.

    Parameters
    ----------
    seed
        The secret of the mapping; ``None`` uses a random seed drawn once per process.
        Anyone who knows the seed can test a guessed identifier against a pseudonym.
    """

    def __init__(self, seed: str | None = None) -> None:
        from dicognito.anonymizer import Anonymizer

        self.seed = _PROCESS_SEED if seed is None else str(seed)
        self._anonymizer = Anonymizer(seed=self.seed)

    def dataset(self, ds: Dataset) -> Dataset:
        """A de-identified copy of ``ds`` (its file meta included), marked as such.

        Sets Patient Identity Removed ``YES``, De-identification Method and its Code
        Sequence (CID 7050, :data:`DEIDENTIFICATION_CODES`) as PS3.15 E.1.1 requires.
        """
        from dicognito import __version__ as dicognito_version

        out = copy.deepcopy(ds)
        if not hasattr(out, "file_meta"):
            out.file_meta = FileMetaDataset()
        out.remove_private_tags()
        for tag in [t for t in out.keys() if 0x6000 <= t.group <= 0x60FF]:
            del out[tag]  # overlays (may hold burned-in text)
        self._anonymizer.anonymize(out)
        for item in _walk_datasets(out):
            for kw in _REMOVED:
                if kw in item:
                    delattr(item, kw)
            for kw in _EMPTIED:
                if kw in item:
                    setattr(item, kw, "")
            _strip_times(item)
        out.PatientName = ANONYMOUS_NAME
        out.PatientBirthDate = ""
        out.PatientIdentityRemoved = "YES"
        mark_deidentified(out, f"dicognito {dicognito_version}")
        return out

    def uid(self, uid: str) -> str:
        """The replacement of one UID (as in :meth:`dataset`)."""
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.SOPInstanceUID = uid
        self._anonymizer.anonymize(ds)
        return str(ds.SOPInstanceUID)

    def pseudonym(self, text: str, *, length: int = 16) -> str:
        """A keyed hash of ``text`` (hex, ``length`` characters): a name that reveals
        nothing of ``text`` without the seed, and is the same for the same ``text``."""
        digest = hmac.new(self.seed.encode(), text.encode(), hashlib.sha256).hexdigest()
        return digest[:length]

    def output_stem(self, path: str | None, sop_instance_uid: str | None) -> str:
        """The name of a de-identified image's outputs (``<stem>.json``, ...), which must not
        derive from the input's file or folder names (archives name files after patients).

        Parameters
        ----------
        path
            The input file (used only, through a keyed hash of its absolute path, when
            the image has no SOP Instance UID: PNG, TIFF, PGM).
        sop_instance_uid
            The image's original SOP Instance UID.

        Returns
        -------
        str
            The de-identified SOP Instance UID (the one the de-identified SR and GSPS
            reference), or ``anon-`` and 16 hex digits of a keyed hash of the path.
        """
        if sop_instance_uid:
            return self.uid(sop_instance_uid)
        text = str(Path(path).resolve()) if path else ""
        return f"anon-{self.pseudonym(text)}"

    def source_name(self, path: str, sop_instance_uid: str | None) -> str:
        """The de-identified report's name of its input file: :meth:`output_stem` and the
        file's suffix when it is an image suffix (``.dcm``, ``.png``, ...), else none."""
        suffix = Path(path).suffix.lower()
        known = {".dcm", ".dicom", ".png", ".tif", ".tiff", ".pgm", ".ppm", ".pnm"}
        return self.output_stem(path, sop_instance_uid) + (suffix if suffix in known else "")

    def file_name(self, path: str, uids: Iterable[str | None] = ()) -> str:
        """The file name of ``path`` (no folders), each of ``uids`` in it replaced by its
        pseudonym: archives and the DICOM node name files after their SOP Instance UID."""
        name = Path(path).name
        for uid in sorted({u for u in uids if u}, key=len, reverse=True):
            name = name.replace(uid, self.uid(uid))
        return name


def _walk_datasets(ds: Dataset) -> Iterator[Dataset]:
    """``ds`` and every item of its sequences, recursively."""
    yield ds
    for elem in list(ds):
        if elem.VR == "SQ" and elem.value:
            for item in elem.value:
                yield from _walk_datasets(item)


def mark_deidentified(ds: Dataset, method: str = "") -> None:
    """Mark ``ds`` (an export of a de-identified image) as PS3.15 E.1.1 requires:
    Patient Identity Removed ``YES``, De-identification Method (LO, 64 characters a
    value) and its Code Sequence with the codes of :data:`DEIDENTIFICATION_CODES`."""
    ds.PatientIdentityRemoved = "YES"
    values = ["calcscope --anonymize: PS3.15 Basic Profile, dates shifted"]
    if method:
        values.insert(0, method[:64])
    ds.DeidentificationMethod = values
    codes = []
    for value, meaning in DEIDENTIFICATION_CODES:
        item = Dataset()
        item.CodeValue = value
        item.CodingSchemeDesignator = "DCM"
        item.CodeMeaning = meaning
        codes.append(item)
    ds.DeidentificationMethodCodeSequence = codes


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


def deidentify(ds: Dataset, *, seed: str | None = None) -> Dataset:
    """A de-identified copy of ``ds`` (:meth:`Deidentifier.dataset` under ``seed``).

    Every UID but class UIDs is replaced, so the exports reference the image as it is
    after the same de-identification (``dicognito --seed SEED``), never the original.
    """
    return Deidentifier(seed).dataset(ds)


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
