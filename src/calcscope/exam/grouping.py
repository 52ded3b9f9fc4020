"""Which images form an exam.

Images of one study form an exam: the same ``StudyInstanceUID``; else, without it, the
same ``PatientID`` and ``StudyDate``. A file without DICOM headers (PNG, TIFF, PGM) is an
exam of its own, unless an exam manifest says otherwise: a CSV file with the columns
``file``, ``exam`` (or ``exam_id``), ``laterality`` and ``view``, one row per image; its
rows win over the headers (``file`` relative to the manifest's folder, or a bare file
name).
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import stat
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from calcscope.errors import ConfigError
from calcscope.exam.views import ExamView, ViewModifier, view_from_dataset
from calcscope.model import Laterality, View

__all__ = [
    "ImageHeader",
    "ExamGroup",
    "ManifestRow",
    "read_header",
    "read_manifest",
    "group_exams",
]


@dataclass(frozen=True)
class ImageHeader:
    """What grouping needs of one image file (read without its pixels)."""

    path: Path
    study_instance_uid: str | None = None
    patient_id: str | None = None
    study_date: str | None = None
    sop_instance_uid: str | None = None
    laterality: Laterality | None = None
    view: ExamView = field(default_factory=lambda: ExamView(None))
    exam_id: str | None = None  # from a manifest
    issuer_of_patient_id: str | None = None  # with patient_id, who the patient is


@dataclass(frozen=True)
class ManifestRow:
    """One row of an exam manifest."""

    exam_id: str
    laterality: Laterality | None
    view: View | None
    modifiers: tuple[ViewModifier, ...] = ()


@dataclass(frozen=True)
class ExamGroup:
    """The images of one exam and what identifies it."""

    exam_id: str
    name: str  # file-name safe: ``<name>.exam.json``
    images: tuple[ImageHeader, ...]
    study_instance_uid: str | None = None
    patient_id: str | None = None
    study_date: str | None = None
    grouped_by: str = "file"  # "study_instance_uid", "patient_id+study_date", "manifest", "file"
    issuer_of_patient_id: str | None = None


def _str(value: object) -> str | None:
    text = str(value or "").strip()
    return text or None


HEADER_BYTES = 4 * 2**20
"""Grouping reads at most this many bytes of a file (headers come before the pixels)."""
_TAGS = (
    "StudyInstanceUID",
    "PatientID",
    "IssuerOfPatientID",
    "StudyDate",
    "SOPInstanceUID",
    "ImageLaterality",
    "Laterality",
    "ViewPosition",
    "ViewCodeSequence",
    "ViewModifierCodeSequence",
    "AcquisitionDeviceProcessingDescription",
    "SeriesDescription",
    "EstimatedRadiographicMagnificationFactor",
)


def _head(p: Path) -> bytes | None:
    """The first :data:`HEADER_BYTES` of a regular file that looks like DICOM (``DICM`` at
    byte 128, or a .dcm / .dicom name), opened without blocking; None for anything else
    (a FIFO, a device, a missing or unreadable file: the analysis reports those)."""
    try:
        if not stat.S_ISREG(p.stat().st_mode):
            return None
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                return None
            data = fh.read(HEADER_BYTES)
    except (OSError, RuntimeError):
        return None
    if data[128:132] != b"DICM" and p.suffix.lower() not in (".dcm", ".dicom"):
        return None
    return data


def read_header(path: str | Path) -> ImageHeader:
    """The grouping header of ``path``: its DICOM attributes, or nothing for a file that
    is not DICOM or cannot be read (the analysis says what is wrong with it).

    Hostile input is safe here: only a regular file is opened (never a FIFO), only its
    first :data:`HEADER_BYTES` are parsed, only the grouping attributes are read, and a
    deflated data set is not inflated.
    """
    import pydicom

    p = Path(path)
    data = _head(p)
    if data is None:
        return ImageHeader(p)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(
                io.BytesIO(data), stop_before_pixels=True, force=True, specific_tags=list(_TAGS)
            )
            ts = str(getattr(ds.get("file_meta"), "TransferSyntaxUID", "") or "")
            if ts == "1.2.840.10008.1.2.1.99":  # deflated: not inflated for grouping
                return ImageHeader(p)
            header = _header_of(p, ds)
    except Exception:  # noqa: BLE001 - a garbled header: the analysis says what is wrong
        return ImageHeader(p)
    return header


def _header_of(p: Path, ds: Any) -> ImageHeader:
    lat = _str(ds.get("ImageLaterality")) or _str(ds.get("Laterality"))
    return ImageHeader(
        path=p,
        study_instance_uid=_str(ds.get("StudyInstanceUID")),
        patient_id=_str(ds.get("PatientID")),
        study_date=_str(ds.get("StudyDate")),
        sop_instance_uid=_str(ds.get("SOPInstanceUID")),
        laterality=Laterality(lat.upper()) if lat and lat.upper() in ("L", "R") else None,
        view=view_from_dataset(ds),
        issuer_of_patient_id=_str(ds.get("IssuerOfPatientID")),
    )


def _manifest_view(text: str) -> tuple[View | None, tuple[ViewModifier, ...]]:
    words = re.sub(r"[^A-Z]", " ", text.upper()).split()
    mods: list[ViewModifier] = []
    view: View | None = None
    for w in words:
        if w in ("SPOT", "S"):
            mods.append(ViewModifier.SPOT_COMPRESSION)
        elif w in ("MAG", "M", "MAGNIFICATION"):
            mods.append(ViewModifier.MAGNIFICATION)
        elif w in View.__members__ or w in {v.value for v in View}:
            view = View(w)
    return view, tuple(mods)


def read_manifest(path: str | Path) -> dict[str, ManifestRow]:
    """Read an exam manifest: resolved file path (and bare file name) -> its row.

    Raises
    ------
    ConfigError
        When the file cannot be read or lacks the ``file`` and ``exam`` columns, or a
        laterality is not L or R.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read the exam manifest ({exc})") from exc
    reader = csv.DictReader(text.splitlines())
    columns = {c.strip().lower(): c for c in reader.fieldnames or []}
    exam_col = columns.get("exam") or columns.get("exam_id") or columns.get("exam id")
    if "file" not in columns or exam_col is None:
        raise ConfigError(f"{p}: an exam manifest needs the columns file, exam, laterality, view")
    rows: dict[str, ManifestRow] = {}
    for n, raw in enumerate(reader, start=2):
        name = (raw.get(columns["file"]) or "").strip()
        exam = (raw.get(exam_col) or "").strip()
        if not name or not exam:
            continue
        lat_text = (raw.get(columns.get("laterality", ""), "") or "").strip().upper()
        if lat_text and lat_text not in ("L", "R"):
            raise ConfigError(f"{p}, line {n}: laterality {lat_text!r} is not L or R")
        view, mods = _manifest_view(raw.get(columns.get("view", ""), "") or "")
        row = ManifestRow(exam, Laterality(lat_text) if lat_text else None, view, mods)
        rows[_resolved(p.parent / name)] = row
        rows.setdefault(Path(name).name, row)
    return rows


def _resolved(path: Path) -> str:
    try:
        return str(path.resolve())
    except (OSError, RuntimeError):  # a symbolic link loop
        return str(path.absolute())


def _apply_manifest(header: ImageHeader, manifest: Mapping[str, ManifestRow]) -> ImageHeader:
    row = manifest.get(_resolved(header.path)) or manifest.get(header.path.name)
    if row is None:
        return header
    view = header.view
    if row.view is not None or row.modifiers:
        view = ExamView(row.view or view.view, row.modifiers or view.modifiers)
    return replace(
        header, exam_id=row.exam_id, laterality=row.laterality or header.laterality, view=view
    )


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "exam"


def _key(h: ImageHeader) -> tuple[str, str, str]:
    """(how, exam id, file-name safe name) of one image."""
    if h.exam_id is not None:
        return "manifest", h.exam_id, _safe(h.exam_id)
    if h.study_instance_uid:
        return "study_instance_uid", h.study_instance_uid, _safe(h.study_instance_uid)
    if h.patient_id and h.study_date:
        ident = f"{h.patient_id}|{h.study_date}"
        if h.issuer_of_patient_id:  # the same id from another issuer is another patient
            ident = f"{h.patient_id}|{h.issuer_of_patient_id}|{h.study_date}"
        digest = hashlib.sha256(ident.encode("utf-8")).hexdigest()[:12]
        return "patient_id+study_date", ident, f"exam-{h.study_date}-{digest}"
    return "file", str(h.path), _safe(h.path.name)


def group_exams(
    paths: Iterable[str | Path], manifest: Mapping[str, ManifestRow] | None = None
) -> list[ExamGroup]:
    """Group image files into exams (see the module docstring), in the order of their first
    image; names are unique (a suffix ``_2``, ... where two exams would share one)."""
    groups: dict[tuple[str, str], list[ImageHeader]] = {}
    names: dict[tuple[str, str], str] = {}
    for path in paths:
        header = read_header(path)
        if manifest:
            header = _apply_manifest(header, manifest)
        how, ident, name = _key(header)
        groups.setdefault((how, ident), []).append(header)
        names.setdefault((how, ident), name)
    used: set[str] = set()
    out = []
    for (how, ident), headers in groups.items():
        name, k = names[(how, ident)], 2
        while name in used:
            name = f"{names[(how, ident)]}_{k}"
            k += 1
        used.add(name)
        first = headers[0]
        out.append(
            ExamGroup(
                exam_id=ident if how != "patient_id+study_date" else name,
                name=name,
                images=tuple(headers),
                study_instance_uid=first.study_instance_uid,
                patient_id=first.patient_id,
                study_date=first.study_date,
                grouped_by=how,
                issuer_of_patient_id=first.issuer_of_patient_id,
            )
        )
    return out
