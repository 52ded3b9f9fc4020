"""The viewer's read-only routes, as FastAPI routers: the page and its facts
(:data:`pages`), the studies (:data:`studies`) and their tiles (:data:`tiles`).

Every file these routes read or serve goes through :meth:`StudyStore.safe_file`: a
regular file inside the viewer's folders, symlinks followed before the check.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

from calcscope.about import DISCLAIMER, __version__
from calcscope.apps.web.compare import compare_links, find_prior
from calcscope.apps.web.exams import (
    ExamEntry,
    exam_panels,
    exam_summary,
    find_exam,
    scan_exams,
)
from calcscope.apps.web.state import ViewerState, viewer_state
from calcscope.apps.web.studies import Study, letter_from_report, load_base_image, summary
from calcscope.apps.web.tiles import TILE_PX, Pyramid
from calcscope.apps.web.uploads import prune_uploads
from calcscope.reports.schema import AnalysisReport

__all__ = ["STATIC_DIR", "LETTER_CSP", "pages", "studies", "tiles", "exams"]

STATIC_DIR = Path(__file__).parent / "static"
#: The letter comes from a results folder: no script, no origin, inline style only.
LETTER_CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:"

State = Annotated[ViewerState, Depends(viewer_state)]

pages = APIRouter()
studies = APIRouter(prefix="/api/studies")
tiles = APIRouter(prefix="/api/studies")
exams = APIRouter(prefix="/api/exams")


def _study(state: ViewerState, study_id: str) -> tuple[Study, AnalysisReport]:
    """The study and its parsed report, or HTTP 404."""
    study = state.store.get(study_id)
    report = state.store.report(study) if study is not None else None
    if study is None or report is None:
        raise HTTPException(404, f"no study with id {study_id!r}")
    return study, report


def _pyramid(state: ViewerState, study: Study, report: AnalysisReport) -> tuple[str, Pyramid]:
    """The image's version (the report's mtime) and its pyramid, from the cache."""
    version = f"{study.json_path.stat().st_mtime_ns:x}"
    pyr = state.tiles.pyramid(
        f"{study.id}@{version}", lambda: load_base_image(study, report, state.store)
    )
    return version, pyr


# ------------------------------------------------------------------------------ page


@pages.get("/", response_class=HTMLResponse)
def index() -> HTMLResponse:
    """The page (``static/index.html``; it loads its script and style from ``/static``)."""
    return HTMLResponse((STATIC_DIR / "index.html").read_text(encoding="utf-8"))


@pages.get("/api/health")
def health() -> dict[str, str]:
    """Liveness, with the version."""
    return {"status": "ok", "version": __version__}


@pages.get("/api/info")
def info(state: State) -> dict[str, Any]:
    """Version, disclaimer, upload limit (bytes) and tile size (pixels)."""
    return {
        "version": __version__,
        "disclaimer": DISCLAIMER,
        "max_upload_bytes": state.max_upload_bytes,
        "upload_retention_hours": (
            state.upload_retention_s / 3600 if state.upload_retention_s is not None else None
        ),
        "results_dir": state.results_dir.name if state.results_dir is not None else None,
        "tile_px": TILE_PX,
    }


# --------------------------------------------------------------------------- studies


@studies.get("")
def list_studies(state: State) -> dict[str, Any]:
    """The study list: results first, then uploads (newest first)."""
    if state.upload_retention_s is not None:
        prune_uploads(state.uploads_dir, state.upload_retention_s)
    rows = []
    for study in state.store.scan():
        report = state.store.report(study)
        if report is not None:
            rows.append(summary(study, report))
    return {"studies": rows, "exams": [exam_summary(e) for e in scan_exams(state.store)]}


def _image(state: ViewerState, study: Study, report: AnalysisReport) -> dict[str, Any]:
    """The tile pyramid's shape (``levels``: (rows, cols) per level) and version."""
    try:
        version, pyr = _pyramid(state, study, report)
    except (FileNotFoundError, OSError, ValueError) as exc:
        return {"kind": None, "note": f"no image to show: {exc}", "levels": []}
    return {
        "kind": pyr.kind,
        "note": pyr.note,
        "version": version,
        "tile_px": pyr.tile_px,
        "levels": [list(s) for s in pyr.shapes],
    }


@studies.get("/{study_id}")
def get_study(study_id: str, state: State) -> JSONResponse:
    """The JSON report and the tile pyramid's shape."""
    study, report = _study(state, study_id)
    image = _image(state, study, report)
    body = {
        **summary(study, report),
        "image": image,
        "has_overlay": state.store.safe_file(study.overlay_path) is not None,
        "report": report.model_dump(mode="json"),
    }
    return JSONResponse(body)


@studies.get("/{study_id}/letter", response_class=HTMLResponse)
def get_letter(study_id: str, state: State) -> HTMLResponse:
    """The patient letter (sandboxed HTML): the one written beside the report, or rebuilt."""
    study, report = _study(state, study_id)
    letter = state.store.safe_file(study.letter_path)
    if letter is not None:
        text = letter.read_text(encoding="utf-8", errors="replace")
    else:
        try:
            text = letter_from_report(report)
        except (KeyError, TypeError, ValueError) as exc:
            raise HTTPException(404, f"no patient letter for this study ({exc})") from exc
    return HTMLResponse(text, headers={"Content-Security-Policy": LETTER_CSP})


@studies.get("/{study_id}/overlay.png")
def get_overlay(study_id: str, state: State) -> FileResponse:
    """The overlay PNG, when one was written inside the viewer's folders."""
    study, _ = _study(state, study_id)
    overlay = state.store.safe_file(study.overlay_path)
    if overlay is None:
        raise HTTPException(404, "no overlay PNG was written for this study")
    return FileResponse(overlay, media_type="image/png")


@studies.get("/{study_id}/report.json")
def get_report(study_id: str, state: State) -> FileResponse:
    """The JSON report file."""
    study, _ = _study(state, study_id)
    path = state.store.safe_file(study.json_path)
    if path is None:  # pragma: no cover - removed or replaced since the lookup
        raise HTTPException(404, f"no study with id {study_id!r}")
    return FileResponse(path, media_type="application/json", filename=f"{study.id}.json")


# ----------------------------------------------------------------------------- exams


@exams.get("")
def list_exams(state: State) -> dict[str, Any]:
    """The exams of the results folder."""
    return {"exams": [exam_summary(e) for e in scan_exams(state.store)]}


def _exam_body(state: ViewerState, entry: ExamEntry) -> dict[str, Any]:
    """An exam's document and its hanging: one panel per CC and MLO image (slot, study id
    for the tiles, whether it is shown mirrored, the tile pyramid's shape, the image's
    report), and the id of its prior exam in the viewer (``prior_id``, or null)."""
    panels = []
    for p in exam_panels(state.store, entry):
        report = state.store.report(p.study) if p.study is not None else None
        panel: dict[str, Any] = {
            "slot": p.slot,
            "laterality": p.laterality,
            "view": p.view,
            "report_key": p.report_key,
            "sop_instance_uid": p.sop_instance_uid,
            "flip": p.flip,
            "study_id": p.study.id if p.study is not None else None,
            "image": None,
            "report": None,
        }
        if p.study is not None and report is not None:
            panel["image"] = _image(state, p.study, report)
            panel["report"] = report.model_dump(mode="json")
        panels.append(panel)
    prior = find_prior(state.store, entry)
    return {
        **exam_summary(entry),
        "exam": entry.report.model_dump(mode="json"),
        "panels": panels,
        "prior_id": prior.id if prior is not None else None,
    }


def _exam_entry(state: ViewerState, exam_id: str) -> ExamEntry:
    entry = find_exam(state.store, exam_id)
    if entry is None:
        raise HTTPException(404, f"no exam with id {exam_id!r}")
    return entry


@exams.get("/{exam_id}")
def get_exam(exam_id: str, state: State) -> JSONResponse:
    """The exam document, its hanging and its prior's id (:func:`_exam_body`)."""
    return JSONResponse(_exam_body(state, _exam_entry(state, exam_id)))


@exams.get("/{exam_id}/compare")
def get_comparison(exam_id: str, state: State) -> JSONResponse:
    """The exam and its prior side by side: both exams' bodies (:func:`_exam_body`) and
    the links between their findings (:func:`calcscope.apps.web.compare.compare_links`);
    HTTP 404 when the exam has no prior in the viewer's folders."""
    entry = _exam_entry(state, exam_id)
    prior = find_prior(state.store, entry)
    if prior is None:
        raise HTTPException(404, "this exam has no prior exam in the viewer's folders")
    links = compare_links(entry.report, prior.report)
    body = {
        "id": entry.id,
        "comparison": entry.report.comparison.model_dump(mode="json")
        if entry.report.comparison is not None
        else None,
        "current": _exam_body(state, entry),
        "prior": _exam_body(state, prior),
        "links": [asdict(link) for link in links],
    }
    return JSONResponse(body)


# ----------------------------------------------------------------------------- tiles


@tiles.get("/{study_id}/tiles/{level}/{row}/{col}.png")
def get_tile(study_id: str, level: int, row: int, col: int, state: State) -> Response:
    """One PNG tile (256 pixels) of the pyramid's ``level`` (0 = full resolution)."""
    study, report = _study(state, study_id)
    try:
        version, pyr = _pyramid(state, study, report)
    except (FileNotFoundError, OSError, ValueError) as exc:
        raise HTTPException(404, f"no image to show: {exc}") from exc
    if not 0 <= level < pyr.n_levels:
        raise HTTPException(404, f"no level {level} (0-{pyr.n_levels - 1})")
    try:
        data = state.tiles.tile_png(f"{study.id}@{version}", pyr, level, row, col)
    except IndexError as exc:
        raise HTTPException(404, str(exc)) from exc
    return Response(
        data, media_type="image/png", headers={"Cache-Control": "private, max-age=86400"}
    )
