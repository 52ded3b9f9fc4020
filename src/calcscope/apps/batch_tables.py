"""The tables of a batch (``summary.csv``, ``images.csv``, ``breasts.csv``) and the small
per-image records they are built from.

Every row is read from the typed report model
(:class:`calcscope.reports.schema.AnalysisReport`; older ``analysis.json`` files through
``AnalysisReport.model_validate_json``), never by walking a report's dict. The per-image
files (``image.json``, ``views.json``, ``clusters.csv``) keep the layout earlier versions
wrote, so their folders still count as done and their tables come out the same.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from calcscope.files import atomic_path
from calcscope.model import Laterality
from calcscope.reading.assess import Category
from calcscope.reading.location import ViewFinding, clock_face, pair_views

if TYPE_CHECKING:
    from calcscope.reports.schema import AnalysisReport

__all__ = [
    "SUMMARY_COLUMNS",
    "IMAGE_COLUMNS",
    "BREAST_COLUMNS",
    "DONE",
    "REPORT_STEM",
    "ImageRecord",
    "ViewRecord",
    "csv_text",
    "cluster_rows",
    "write_summaries",
    "write_breasts",
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
    "error",
)
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
DONE = "_done"
REPORT_STEM = "analysis"
"""Stem of each image's outputs in its folder: ``OUT/<id>/analysis.json`` (the name
earlier versions used, so their folders still count as done)."""
_CC_VIEWS = ("CC", "XCCL")
_MLO_VIEWS = ("MLO", "ML", "LM")


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
    """What :func:`write_breasts` needs of one image (its folder's ``views.json``).

    Written by the task, so that the end of a batch does not read every full report again.
    ``findings`` are :class:`~calcscope.reading.location.ViewFinding` field values without
    the image (it is the folder's name).
    """

    study: str
    laterality: str  # "L" or "R"
    view: str
    findings: tuple[dict[str, Any], ...]

    @classmethod
    def from_report(cls, report: AnalysisReport) -> ViewRecord | None:
        """The record of ``report``; None for an image that cannot be paired (no study,
        laterality or view)."""
        src = report.source
        study = src.study_instance_uid or (report.patient.id if report.patient else None)
        lat, view = src.laterality, src.view
        if not study or lat not in ("L", "R") or view not in _CC_VIEWS + _MLO_VIEWS:
            return None
        findings = []
        for c in report.clusters:
            loc = c.location
            if loc is None or loc.nipple_distance_mm is None or loc.offset_mm is None:
                continue
            findings.append(
                {
                    "finding_id": int(c.id),
                    "nipple_distance_mm": float(loc.nipple_distance_mm),
                    "offset_mm": float(loc.offset_mm),
                    "morphology": str(c.morphology),
                    "category": str(c.assessment.category),
                    "likelihood": float(c.assessment.likelihood),
                }
            )
        return cls(study=str(study), laterality=lat, view=view, findings=tuple(findings))

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
                study=str(data["study"]),
                laterality=str(data["laterality"]),
                view=str(data["view"]),
                findings=tuple(data["findings"]),
            )
        if full.exists():
            from calcscope.reports.schema import AnalysisReport

            return cls.from_report(AnalysisReport.model_validate_json(full.read_text()))
        return None

    def to_json(self) -> str:
        """``views.json`` (the layout earlier versions wrote)."""
        return json.dumps({**asdict(self), "findings": list(self.findings)}) + "\n"

    def view_findings(self, key: str) -> list[ViewFinding]:
        """The findings as :class:`~calcscope.reading.location.ViewFinding` of image ``key``."""
        return [ViewFinding(image=key, **f) for f in self.findings]


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


def _breast_row(study: str, lat: str, a: ViewFinding, b: ViewFinding) -> dict[str, Any]:
    """The ``breasts.csv`` row of the CC finding ``a`` paired with the MLO finding ``b``."""
    quadrant, hour = clock_face(Laterality(lat), a.offset_mm, b.offset_mm)
    worse = max((a, b), key=lambda f: (Category(f.category).rank, f.likelihood))
    return {
        "study": study,
        "laterality": lat,
        "cc_image": a.image,
        "cc_cluster_id": a.finding_id,
        "mlo_image": b.image,
        "mlo_cluster_id": b.finding_id,
        "nipple_distance_mm": round((a.nipple_distance_mm + b.nipple_distance_mm) / 2, 1),
        "distance_difference_mm": round(abs(a.nipple_distance_mm - b.nipple_distance_mm), 1),
        "quadrant": quadrant,
        "clock": "" if hour is None else hour,
        "morphology": worse.morphology,
        "category": worse.category,
        "likelihood": worse.likelihood,
    }


def write_breasts(out_dir: str | Path, keys: list[str]) -> Path:
    """Write ``breasts.csv``: clusters seen on both the CC and the MLO view of one breast.

    Images are grouped by study (Study Instance UID, else patient id) and laterality; in
    each group the clusters of the CC views and of the MLO (ML, LM) views are paired by
    their distance from the nipple (:func:`calcscope.reading.location.pair_views`), and each
    pair gets its quadrant and clock face (:func:`calcscope.reading.location.clock_face`):
    the CC view tells outer from inner, the MLO view upper from lower. Each row gives the
    worse of the two calls. Images without a study, laterality or view are left out. Each
    image's ``views.json`` is read, or its ``analysis.json`` (as the report model) for
    folders written without it.
    """
    out = Path(out_dir)
    groups: dict[tuple[str, str], tuple[list[ViewFinding], list[ViewFinding]]] = {}
    for key in keys:
        record = ViewRecord.read(out / key)
        if record is None:
            continue
        cc, mlo = groups.setdefault((record.study, record.laterality), ([], []))
        (cc if record.view in _CC_VIEWS else mlo).extend(record.view_findings(key))
    path = out / "breasts.csv"
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=BREAST_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for (study, lat), (cc, mlo) in sorted(groups.items()):
            writer.writerows(_breast_row(study, lat, a, b) for a, b in pair_views(cc, mlo))
    return path
