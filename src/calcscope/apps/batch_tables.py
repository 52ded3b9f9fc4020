"""The tables of a batch (``summary.csv``, ``images.csv``, ``exams.csv``, ``breasts.csv``)
and the small per-image records they are built from.

``exams.csv`` (one row per exam finding) and ``breasts.csv`` (the clusters seen on both
views of a breast) both come from the exam model (:func:`calcscope.exam.build.build_exam`)
built from the images' view records: one computation of the pairing.

Every row is read from the typed report model
(:class:`calcscope.reports.schema.AnalysisReport`; older ``analysis.json`` files through
``AnalysisReport.model_validate_json``), never by walking a report's dict. The per-image
files (``image.json``, ``views.json``, ``clusters.csv``) keep the layout earlier versions
wrote, so their folders still count as done and their tables come out the same.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from calcscope.exam.build import build_exam
from calcscope.exam.model import Change, Exam, ExamFinding, ExamImage
from calcscope.exam.pairing import ViewFinding
from calcscope.exam.views import ExamView, ViewRole
from calcscope.files import atomic_path
from calcscope.model import Laterality, View

if TYPE_CHECKING:
    from calcscope.reports.schema import AnalysisReport

__all__ = [
    "SUMMARY_COLUMNS",
    "IMAGE_COLUMNS",
    "BREAST_COLUMNS",
    "EXAM_COLUMNS",
    "DONE",
    "REPORT_STEM",
    "ImageRecord",
    "ViewRecord",
    "csv_text",
    "cluster_rows",
    "write_summaries",
    "write_breasts",
    "write_exams",
    "batch_exams",
    "header_identity",
    "header_issuer",
    "report_key",
]

SUMMARY_COLUMNS = (
    "image",
    "cluster_id",
    "center_row",
    "center_col",
    "n_members",
    "n_detected",
    "extent_mm",
    "morphology",
    "distribution",
    "half",
    "depth",
    "nipple_distance_mm",
    "category",
    "likelihood",
    "follow_up",
    "score",
)
IMAGE_COLUMNS = (
    "image",
    "path",
    "status",
    "n_calcifications",
    "n_microcalcifications",
    "n_clusters",
    "n_macro_findings",
    "category",
    "follow_up",
    "familiar",
    "scan_sharpness",
    "error",
)
"""``familiar``: whether the detector's measured figures cover the image (the report's
``domain``; blank for images analysed by versions without it); ``scan_sharpness``: the
scan's grain sharpness where measured (scanned film at fine pixels)."""
BREAST_COLUMNS = (
    "study",
    "laterality",
    "cc_image",
    "cc_cluster_id",
    "mlo_image",
    "mlo_cluster_id",
    "nipple_distance_mm",
    "distance_difference_mm",
    "quadrant",
    "clock",
    "morphology",
    "category",
    "likelihood",
)
EXAM_COLUMNS = (
    "exam",
    "laterality",
    "finding_id",
    "kind",
    "cc_image",
    "cc_finding_id",
    "mlo_image",
    "mlo_finding_id",
    "distance_from_nipple_mm",
    "quadrant",
    "clock",
    "depth",
    "morphology",
    "description",
    "category",
    "follow_up",
    "likelihood",
    "score",
    "breast_category",
    "exam_category",
    "change",
    "prior_finding_id",
    "prior_study_date",
    "interval_months",
    "n_new",
    "n_increased",
    "n_stable",
    "n_decreased",
    "n_resolved",
)
DONE = "_done"
REPORT_STEM = "analysis"
"""Stem of each image's outputs in its folder: ``OUT/<id>/analysis.json`` (the name
earlier versions used, so their folders still count as done)."""


@dataclass(frozen=True)
class ImageRecord:
    """One image's row of ``images.csv`` (also its folder's ``image.json``)."""

    image: str
    path: str
    status: str  # "ok" or "failed"
    n_calcifications: int | None = None
    n_microcalcifications: int | None = None
    n_clusters: int | None = None
    n_macro_findings: int | None = None
    category: str | None = None
    follow_up: str | None = None
    familiar: bool | None = None
    scan_sharpness: float | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @classmethod
    def from_report(cls, key: str, path: str, report: AnalysisReport) -> ImageRecord:
        """The record of an analysed image."""
        return cls(
            image=key,
            path=path,
            status="ok",
            n_calcifications=report.n_calcifications,
            n_microcalcifications=report.n_microcalcifications,
            n_clusters=len(report.clusters),
            n_macro_findings=len(report.macro_findings),
            category=report.assessment.category,
            follow_up=report.assessment.follow_up,
            familiar=report.domain.familiar if report.domain is not None else None,
            scan_sharpness=report.domain.scan_sharpness if report.domain is not None else None,
        )

    @classmethod
    def failed(cls, key: str, path: str, message: str) -> ImageRecord:
        """The record of an image that could not be analysed."""
        return cls(image=key, path=path, status="failed", error=message)

    def to_json(self) -> str:
        """``image.json``: the fields that are set (as earlier versions wrote it)."""
        return json.dumps({k: v for k, v in asdict(self).items() if v is not None}) + "\n"

    def row(self) -> dict[str, Any]:
        """The ``images.csv`` row (unset fields blank)."""
        return {k: _blank_none(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class ViewRecord:
    """What the exam tables need of one image (its folder's ``views.json``).

    Written by the task, so that the end of a batch does not read every full report again.
    ``findings`` are :class:`~calcscope.exam.pairing.ViewFinding` field values without
    the image (it is the folder's name). ``study`` is the Study Instance UID, else the
    patient id, else None (the image is an exam of its own); records written by earlier
    versions hold clusters only and no SOP Instance UID.
    """

    study: str | None
    laterality: str | None  # "L" or "R"
    view: str | None
    findings: tuple[dict[str, Any], ...]
    sop_instance_uid: str | None = None
    patient_id: str | None = None  # from the DICOM header, de-identified with the outputs
    study_date: str | None = None  # YYYYMMDD, likewise (shifted when de-identified)
    issuer_of_patient_id: str | None = None  # likewise (a keyed digest when de-identified)

    @classmethod
    def from_report(
        cls,
        report: AnalysisReport,
        *,
        patient_id: str | None = None,
        study_date: str | None = None,
        issuer_of_patient_id: str | None = None,
    ) -> ViewRecord:
        """The record of ``report``: its identity and its clusters and macro findings;
        ``patient_id``, ``study_date`` (:func:`header_identity`) and
        ``issuer_of_patient_id`` (:func:`header_issuer`) find the exam's priors."""
        from calcscope.reports.exam import exam_image_from_report

        src = report.source
        study = src.study_instance_uid or (report.patient.id if report.patient else None)
        image = exam_image_from_report(report, "")
        findings = tuple(
            {k: v for k, v in asdict(f).items() if k != "image"} for f in image.findings
        )
        return cls(
            study=str(study) if study else None,
            laterality=src.laterality,
            view=src.view,
            findings=findings,
            sop_instance_uid=src.sop_instance_uid,
            patient_id=patient_id,
            study_date=study_date,
            issuer_of_patient_id=issuer_of_patient_id,
        )

    @classmethod
    def read(cls, folder: Path) -> ViewRecord | None:
        """The record of a result folder: its ``views.json``, else its ``analysis.json``
        (folders written without ``views.json``); None when neither gives one."""
        views, full = folder / "views.json", folder / f"{REPORT_STEM}.json"
        if views.exists():
            data = json.loads(views.read_text())
            if data is None:
                return None
            return cls(
                study=data.get("study"),
                laterality=data.get("laterality"),
                view=data.get("view"),
                findings=tuple(data["findings"]),
                sop_instance_uid=data.get("sop_instance_uid"),
                patient_id=data.get("patient_id"),
                study_date=data.get("study_date"),
                issuer_of_patient_id=data.get("issuer_of_patient_id"),
            )
        if full.exists():
            from calcscope.reports.schema import AnalysisReport

            return cls.from_report(AnalysisReport.model_validate_json(full.read_text()))
        return None

    def to_json(self) -> str:
        """``views.json`` (without the patient id and study date where both are unknown,
        nor the issuer where it is, as earlier versions wrote it)."""
        data = {**asdict(self), "findings": list(self.findings)}
        if self.patient_id is None and self.study_date is None:
            del data["patient_id"], data["study_date"]
        if self.issuer_of_patient_id is None:
            del data["issuer_of_patient_id"]
        return json.dumps(data) + "\n"

    def view_findings(self, key: str) -> list[ViewFinding]:
        """The findings as :class:`~calcscope.exam.pairing.ViewFinding` of image ``key``."""
        return [ViewFinding(image=key, **f) for f in self.findings]

    def exam_image(self, key: str) -> ExamImage:
        """The exam's view of this image (``key``: its folder)."""
        view = View(self.view) if self.view in {v.value for v in View} else None
        lat = Laterality(self.laterality) if self.laterality in ("L", "R") else None
        return ExamImage(
            key, self.sop_instance_uid, lat, ExamView(view), tuple(self.view_findings(key))
        )


def csv_text(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def _blank_none(value: Any) -> Any:
    return "" if value is None else value


def cluster_rows(key: str, report: AnalysisReport) -> list[dict[str, Any]]:
    """The ``summary.csv`` rows of one report (one per cluster)."""
    rows = []
    for c in report.clusters:
        where = c.location
        rows.append(
            {
                "image": key,
                "cluster_id": c.id,
                "center_row": c.center_rc[0],
                "center_col": c.center_rc[1],
                "n_members": c.n_members,
                "n_detected": c.n_detected,
                "extent_mm": c.extent_mm,
                "morphology": c.morphology,
                "distribution": c.distribution,
                "half": (where.half if where else None) or "",
                "depth": (where.depth if where else None) or "",
                "nipple_distance_mm": _blank_none(where.nipple_distance_mm if where else None),
                "category": c.assessment.category,
                "likelihood": c.assessment.likelihood,
                "follow_up": c.assessment.follow_up,
                "score": c.score,
            }
        )
    return rows


def write_summaries(out_dir: str | Path, keys: list[str]) -> tuple[Path, Path]:
    """Write ``summary.csv`` (one row per cluster) and ``images.csv`` from the folders.

    Streams the per-image files in the order of ``keys`` (sorted by the caller), through
    temporary files renamed at the end (:func:`calcscope.files.atomic_path`).
    """
    out = Path(out_dir)
    summary, images = out / "summary.csv", out / "images.csv"
    with (
        atomic_path(summary) as tmp_s,
        atomic_path(images) as tmp_i,
        open(tmp_s, "w", newline="") as fs,
        open(tmp_i, "w", newline="") as fi,
    ):
        ws = csv.DictWriter(fs, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
        wi = csv.DictWriter(fi, fieldnames=IMAGE_COLUMNS, lineterminator="\n")
        ws.writeheader()
        wi.writeheader()
        for key in keys:
            folder = out / key
            if not (folder / DONE).exists():
                wi.writerow({"image": key, "status": "missing"})
                continue
            with (folder / "clusters.csv").open(newline="") as fh:
                ws.writerows(csv.DictReader(fh))
            record = ImageRecord(**json.loads((folder / "image.json").read_text()))
            wi.writerow(record.row())
    return summary, images


def header_identity(path: str, anonymize_seed: str | None = None) -> tuple[str | None, str | None]:
    """The patient id and study date (YYYYMMDD) of an image file's DICOM header (None for
    a file without them), which decide its exam's priors; with ``anonymize_seed`` both
    de-identified as the image's outputs are (dicognito: the id replaced, the date
    shifted by the seed's offset, so that intervals between exams hold)."""
    from calcscope.exam.grouping import read_header

    header = read_header(path)
    patient_id, study_date = header.patient_id, header.study_date
    if anonymize_seed is None or (patient_id is None and study_date is None):
        return patient_id, study_date
    from pydicom import Dataset

    from calcscope.reports.dicom_source import Deidentifier

    ds = Dataset()
    ds.PatientID = patient_id or ""
    ds.StudyDate = study_date or ""
    out = Deidentifier(anonymize_seed).dataset(ds)
    return (str(out.PatientID) or None) if patient_id else None, (
        (str(out.StudyDate) or None) if study_date else None
    )


def header_issuer(path: str, anonymize_seed: str | None = None) -> str | None:
    """The Issuer of Patient ID of an image file's DICOM header (None: none), which with
    the patient id decides its exam's priors; with ``anonymize_seed`` a digest of it keyed
    by the seed (the same issuer, the same digest; the issuer not told)."""
    from calcscope.exam.grouping import read_header

    issuer = read_header(path).issuer_of_patient_id
    if issuer is None or anonymize_seed is None:
        return issuer
    key = f"{anonymize_seed}|IssuerOfPatientID|{issuer}".encode()
    return "issuer-" + hashlib.sha256(key).hexdigest()[:16]


def report_key(key: str) -> str:
    """How an exam names the report of image folder ``key``: its path relative to the
    batch's output folder."""
    return f"{key}/{REPORT_STEM}.json"


def _folder(image: str) -> str:
    """The image folder of an exam's report key (the tables name the folder)."""
    return image.removesuffix(f"/{REPORT_STEM}.json")


def _safe_name(exam_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", exam_id)[:128] or "exam"


def batch_exams(out_dir: str | Path, keys: list[str]) -> list[Exam]:
    """The exams of a batch: its images grouped by study (Study Instance UID, else patient
    id and study date, else patient id; an image without either is an exam of its own),
    as ``calcscope analyze`` groups them, read from each folder's
    ``views.json`` (or ``analysis.json``), each exam read with
    :func:`calcscope.exam.build.build_exam` with its patient id and study date (not yet
    compared with its priors: :func:`calcscope.apps.exams.write_compared_exams`); in
    study order."""
    out = Path(out_dir)
    groups: dict[str, list[tuple[ViewRecord, ExamImage]]] = {}
    for key in keys:
        record = ViewRecord.read(out / key)
        if record is None:
            continue
        study = record.study or key
        if record.study is not None and record.study == record.patient_id and record.study_date:
            study = f"{record.patient_id}-{record.study_date}"  # no UID: patient and date
            if record.issuer_of_patient_id:
                study = f"{record.patient_id}-{record.issuer_of_patient_id}-{record.study_date}"
        groups.setdefault(study, []).append((record, record.exam_image(report_key(key))))
    exams = []
    for study, members in sorted(groups.items()):
        patient_id = next((r.patient_id for r, _ in members if r.patient_id), None)
        study_date = next((r.study_date for r, _ in members if r.study_date), None)
        issuer = next((r.issuer_of_patient_id for r, _ in members if r.issuer_of_patient_id), None)
        uid = next((r.study for r, _ in members if r.study and r.study != r.patient_id), None)
        exams.append(
            build_exam(
                [image for _, image in members],
                exam_id=study,
                name=_safe_name(study),
                study_instance_uid=uid,
                patient_id=patient_id,
                study_date=study_date,
                issuer_of_patient_id=issuer,
            )
        )
    return exams


def _hour(clock: str | None) -> int | str:
    return "" if clock is None else int(clock.split()[0])


def _breast_row(exam: Exam, f: ExamFinding) -> dict[str, Any]:
    """The ``breasts.csv`` row of a cluster seen on both views."""
    cc, mlo = f.views[ViewRole.CC], f.views[ViewRole.MLO]
    a, b = cc.nipple_distance_mm or 0.0, mlo.nipple_distance_mm or 0.0
    return {
        "study": exam.exam_id,
        "laterality": f.laterality.value if f.laterality else "",
        "cc_image": _folder(cc.image),
        "cc_cluster_id": cc.finding_id,
        "mlo_image": _folder(mlo.image),
        "mlo_cluster_id": mlo.finding_id,
        "nipple_distance_mm": f.distance_from_nipple_mm,
        "distance_difference_mm": round(abs(a - b), 1),
        "quadrant": "central" if f.quadrant == "subareolar" else f.quadrant,
        "clock": _hour(f.clock),
        "morphology": f.morphology,
        "category": f.assessment.category.value,
        "likelihood": f.assessment.likelihood,
    }


def _exam_row(exam: Exam, f: ExamFinding) -> dict[str, Any]:
    """The ``exams.csv`` row of one exam finding."""
    cc, mlo = f.views.get(ViewRole.CC), f.views.get(ViewRole.MLO)
    breast = exam.breasts[f.laterality].assessment if f.laterality else None
    return {
        "exam": exam.exam_id,
        "laterality": f.laterality.value if f.laterality else "",
        "finding_id": f.id,
        "kind": f.kind.value,
        "cc_image": _folder(cc.image) if cc else "",
        "cc_finding_id": cc.finding_id if cc else "",
        "mlo_image": _folder(mlo.image) if mlo else "",
        "mlo_finding_id": mlo.finding_id if mlo else "",
        "distance_from_nipple_mm": _blank_none(f.distance_from_nipple_mm),
        "quadrant": _blank_none(f.quadrant),
        "clock": _blank_none(f.clock),
        "depth": _blank_none(f.depth),
        "morphology": f.morphology,
        "description": f.description,
        "category": f.assessment.category.value,
        "follow_up": f.assessment.follow_up.value,
        "likelihood": round(f.assessment.likelihood, 4),
        "score": f.score,
        "breast_category": breast.category.value if breast else "",
        "exam_category": exam.assessment.category.value,
        **_comparison_cells(exam, f),
    }


def _comparison_cells(exam: Exam, f: ExamFinding) -> dict[str, Any]:
    """The comparison columns of an ``exams.csv`` row: the finding's change and its
    prior finding, the prior's date, the interval and the exam's counts of each change
    (blank where the exam was not compared with a prior)."""
    c = exam.comparison
    if c is None or c.prior_exam_id is None:
        return {k: "" for k in EXAM_COLUMNS[EXAM_COLUMNS.index("change") :]}
    changes = [g.change.change.value for g in exam.findings if g.change is not None]
    return {
        "change": f.change.change.value if f.change is not None else "",
        "prior_finding_id": _blank_none(f.change.prior_finding_id if f.change else None),
        "prior_study_date": _blank_none(c.prior_study_date),
        "interval_months": _blank_none(c.interval_months),
        **{f"n_{k.value}": changes.count(k.value) for k in Change},
        "n_resolved": sum(len(b.resolved) for b in exam.breasts.values()),
    }


def write_exams(
    out_dir: str | Path, keys: list[str], exams: list[Exam] | None = None
) -> tuple[Path, Path]:
    """Write ``exams.csv`` (one row per exam finding) and ``breasts.csv`` (the clusters
    seen on both the CC and the MLO view of a breast, with their quadrant and clock face)
    from the exam model of the batch (:func:`batch_exams`). Both are written through
    temporary files renamed at the end."""
    out = Path(out_dir)
    if exams is None:
        from calcscope.exam.priors import compare_with_priors

        exams = compare_with_priors(batch_exams(out, keys))
    exam_rows = [_exam_row(e, f) for e in exams for f in e.findings]
    breast_rows = [
        _breast_row(e, f)
        for e in exams
        for f in e.findings
        if f.kind.value == "cluster" and f.both_views
    ]
    breast_rows.sort(key=lambda r: (r["study"], r["laterality"], r["cc_image"], r["cc_cluster_id"]))
    paths = []
    for name, columns, rows in (
        ("exams.csv", EXAM_COLUMNS, exam_rows),
        ("breasts.csv", BREAST_COLUMNS, breast_rows),
    ):
        path = out / name
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        paths.append(path)
    return paths[0], paths[1]


def write_breasts(out_dir: str | Path, keys: list[str]) -> Path:
    """Write ``breasts.csv`` (and ``exams.csv``): see :func:`write_exams`."""
    return write_exams(out_dir, keys)[1]
