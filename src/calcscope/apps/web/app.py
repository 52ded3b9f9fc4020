"""The web viewer: a FastAPI app serving a study list, a tiled zoom-and-pan viewer with
the findings drawn over it, the findings table, the patient letter, and uploads.

Routes (all JSON errors are ``{"detail": "<readable message>"}``)::

    GET  /                                       the page (static/index.html)
    GET  /static/...                             its script and style sheet
    GET  /api/info                               version, disclaimer, upload limit
    GET  /api/health                             {"status": "ok"}
    GET  /api/studies                            the study list
    GET  /api/studies/{id}                       the JSON report and the tile pyramid's shape
    GET  /api/studies/{id}/tiles/{level}/{row}/{col}.png   one 256-pixel tile
    GET  /api/studies/{id}/letter                the patient letter (HTML, sandboxed)
    GET  /api/studies/{id}/overlay.png           the overlay PNG, when written
    GET  /api/studies/{id}/report.json           the JSON report file
    POST /api/upload                             multipart: file, spacing_mm, laterality, view

The app does no image work of its own: uploads go through :func:`calcscope.pipeline.analyze`
and the report writers, and tiles are cut from the image :func:`calcscope.imaging.io.read_image`
reads. It fetches nothing from the network: every script and style is served by itself,
and the Content-Security-Policy header forbids anything else. An upload is refused
(HTTP 413) above ``max_upload_bytes``, (415) when its content is not DICOM, PNG, TIFF or
PGM, and (400) when it cannot be analysed, with the reason; the server stays up. Uploaded
files are stored under generated names, never under the name the browser sent.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import shutil
import tempfile
import threading
import unicodedata
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from calcscope.about import DISCLAIMER, __version__
from calcscope.apps.web.studies import (
    Study,
    StudyStore,
    letter_from_report,
    load_base_image,
    summary,
)
from calcscope.apps.web.tiles import TILE_PX, Pyramid, TileCache
from calcscope.config import Config
from calcscope.errors import CalcscopeError, InputError
from calcscope.imaging.io import sniff_format

__all__ = ["create_app", "DEFAULT_MAX_UPLOAD_BYTES", "LOOPBACK_HOSTS"]

log = logging.getLogger("calcscope.web")

STATIC_DIR = Path(__file__).parent / "static"
DEFAULT_MAX_UPLOAD_BYTES = 200 * 2**20
#: Host names accepted when the server listens on the loopback interface (a guard
#: against DNS rebinding: a web page cannot reach the viewer under another name).
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")

_CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'self'"
)
# the letter comes from a results folder: no script, no origin, inline style only
_LETTER_CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:"
_SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"SAMEORIGIN"),
    (b"content-security-policy", _CSP.encode("ascii")),
)
_UPLOAD_PATH = "/api/upload"
_UPLOAD_SUFFIX = {"dicom": ".dcm", "png": ".png", "tiff": ".tif", "pnm": ".pgm"}
_LATERALITIES = {"L", "R"}
_VIEWS = {"CC", "MLO", "ML", "LM", "XCCL"}


class _TooLarge(Exception):
    """The request body passed the upload limit."""


class _Guard:
    """ASGI middleware: security headers on every response, and the upload size limit
    (from ``Content-Length`` at once, and by counting the bytes as they arrive)."""

    def __init__(self, app: ASGIApp, *, max_upload_bytes: int) -> None:
        self.app = app
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in _SECURITY_HEADERS if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        if scope["path"] != _UPLOAD_PATH or scope["method"] != "POST":
            await self.app(scope, receive, send_with_headers)
            return
        limit = self.max_upload_bytes
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _send_json(send_with_headers, 413, _too_large_message(limit))
            return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, counting_receive, send_with_headers)
        except _TooLarge:
            if started:  # pragma: no cover - the endpoint answers before reading all
                raise
            await _send_json(send_with_headers, 413, _too_large_message(limit))


async def _send_json(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode("ascii")),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _too_large_message(limit: int) -> str:
    return f"the file is too large: the limit is {limit / 2**20:.0f} MB"


def _display_name(filename: str | None) -> str:
    """The browser's file name reduced to something safe to show (never used as a path)."""
    name = (filename or "upload").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    return name[:120] or "upload"


def _form_text(form: Any, key: str) -> str:
    value = form.get(key)
    return value.strip() if isinstance(value, str) else ""


def create_app(
    results_dir: str | Path | None = None,
    *,
    uploads_dir: str | Path | None = None,
    config: Config | None = None,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    allowed_hosts: list[str] | tuple[str, ...] | None = None,
    max_concurrent_analyses: int = 2,
    tile_cache: TileCache | None = None,
) -> FastAPI:
    """Build the viewer app.

    Parameters
    ----------
    results_dir
        A folder written by ``calcscope analyze --out``; ``None`` shows uploads only.
    uploads_dir
        Where uploads and their reports are written; a new temporary folder by default.
    config
        The pipeline configuration used for uploads.
    max_upload_bytes
        Larger uploads are refused with HTTP 413.
    allowed_hosts
        Host names the server answers to (``None``: any). Pass :data:`LOOPBACK_HOSTS`
        when listening on 127.0.0.1.
    max_concurrent_analyses
        Uploads analysed at the same time; further ones wait.
    tile_cache
        The LRU cache of tile pyramids (a default one when ``None``).
    """
    results = Path(results_dir) if results_dir is not None else None
    if results is not None and not results.is_dir():
        raise FileNotFoundError(f"{results}: no such folder")
    uploads = (
        Path(uploads_dir)
        if uploads_dir is not None
        else Path(tempfile.mkdtemp(prefix="calcscope-uploads-"))
    )
    uploads.mkdir(parents=True, exist_ok=True)
    cfg = config or Config()
    store = StudyStore(results, uploads)
    tiles = tile_cache or TileCache()
    analyses = threading.BoundedSemaphore(max(1, max_concurrent_analyses))

    app = FastAPI(
        title="calcscope viewer",
        version=__version__,
        description=DISCLAIMER,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.store = store
    app.state.uploads_dir = uploads
    app.state.tiles = tiles
    app.add_middleware(_Guard, max_upload_bytes=max_upload_bytes)
    if allowed_hosts is not None:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return JSONResponse(
            {"detail": f"internal error ({type(exc).__name__}); the server is still running"},
            status_code=500,
        )

    def _study(study_id: str) -> tuple[Study, dict[str, Any]]:
        study = store.get(study_id)
        report = store.report(study) if study is not None else None
        if study is None or report is None:
            raise HTTPException(404, f"no study with id {study_id!r}")
        return study, report

    def _pyramid(study: Study, report: dict[str, Any]) -> tuple[str, Pyramid]:
        """The image's version (the report's mtime) and its pyramid, from the cache."""
        version = f"{study.json_path.stat().st_mtime_ns:x}"
        pyr = tiles.pyramid(f"{study.id}@{version}", lambda: load_base_image(study, report))
        return version, pyr

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        return HTMLResponse((STATIC_DIR / "index.html").read_text(encoding="utf-8"))

    @app.get("/api/health")
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.get("/api/info")
    def info() -> dict[str, Any]:
        return {
            "version": __version__,
            "disclaimer": DISCLAIMER,
            "max_upload_bytes": max_upload_bytes,
            "results_dir": results.name if results is not None else None,
            "tile_px": TILE_PX,
        }

    @app.get("/api/studies")
    def list_studies() -> dict[str, Any]:
        rows = []
        for study in store.scan():
            report = store.report(study)
            if report is not None:
                rows.append(summary(study, report))
        return {"studies": rows}

    @app.get("/api/studies/{study_id}")
    def get_study(study_id: str) -> JSONResponse:
        study, report = _study(study_id)
        try:
            version, pyr = _pyramid(study, report)
            image: dict[str, Any] = {
                "kind": pyr.kind,
                "note": pyr.note,
                "version": version,
                "tile_px": pyr.tile_px,
                "levels": [list(s) for s in pyr.shapes],
            }
        except (FileNotFoundError, OSError, ValueError) as exc:
            image = {"kind": None, "note": f"no image to show: {exc}", "levels": []}
        body = {
            **summary(study, report),
            "image": image,
            "has_overlay": study.overlay_path.is_file(),
            "report": report.model_dump(mode="json"),
        }
        return JSONResponse(body)

    @app.get("/api/studies/{study_id}/tiles/{level}/{row}/{col}.png")
    def get_tile(study_id: str, level: int, row: int, col: int) -> Response:
        study, report = _study(study_id)
        try:
            version, pyr = _pyramid(study, report)
        except (FileNotFoundError, OSError, ValueError) as exc:
            raise HTTPException(404, f"no image to show: {exc}") from exc
        if not 0 <= level < pyr.n_levels:
            raise HTTPException(404, f"no level {level} (0-{pyr.n_levels - 1})")
        try:
            data = tiles.tile_png(f"{study.id}@{version}", pyr, level, row, col)
        except IndexError as exc:
            raise HTTPException(404, str(exc)) from exc
        return Response(
            data, media_type="image/png", headers={"Cache-Control": "private, max-age=86400"}
        )

    @app.get("/api/studies/{study_id}/letter", response_class=HTMLResponse)
    def get_letter(study_id: str) -> HTMLResponse:
        study, report = _study(study_id)
        headers = {"Content-Security-Policy": _LETTER_CSP}
        if study.letter_path.is_file():
            text = study.letter_path.read_text(encoding="utf-8", errors="replace")
        else:
            try:
                text = letter_from_report(report)
            except (KeyError, TypeError, ValueError) as exc:
                raise HTTPException(404, f"no patient letter for this study ({exc})") from exc
        return HTMLResponse(text, headers=headers)

    @app.get("/api/studies/{study_id}/overlay.png")
    def get_overlay(study_id: str) -> FileResponse:
        study, _ = _study(study_id)
        if not study.overlay_path.is_file():
            raise HTTPException(404, "no overlay PNG was written for this study")
        return FileResponse(study.overlay_path, media_type="image/png")

    @app.get("/api/studies/{study_id}/report.json")
    def get_report(study_id: str) -> FileResponse:
        study, _ = _study(study_id)
        return FileResponse(
            study.json_path, media_type="application/json", filename=f"{study.id}.json"
        )

    @app.post("/api/upload", status_code=201)
    async def upload(request: Request) -> JSONResponse:
        # a custom header makes a cross-site form post impossible without CORS approval
        if request.headers.get("x-calcscope") != "1":
            raise HTTPException(403, "uploads must come from the calcscope page")
        try:
            form = await request.form(max_files=1, max_fields=8)
        except _TooLarge:
            raise HTTPException(413, _too_large_message(max_upload_bytes)) from None
        file = form.get("file")
        if not isinstance(file, UploadFile):
            raise HTTPException(400, "choose a file to upload (DICOM, PNG, TIFF or PGM)")
        name = _display_name(file.filename)
        head = await file.read(132)
        await file.seek(0)
        if not head:
            raise HTTPException(400, f"{name}: the file is empty")
        kind = sniff_format(head)
        if kind is None:
            raise HTTPException(
                415,
                f"{name}: not a supported image; expected DICOM (with its 128-byte preamble "
                "and DICM), PNG, TIFF or PGM",
            )
        spacing = _parse_spacing(_form_text(form, "spacing_mm"), kind, name)
        laterality = _form_text(form, "laterality").upper() or None
        view = _form_text(form, "view").upper() or None
        if laterality is not None and laterality not in _LATERALITIES:
            raise HTTPException(400, f"laterality must be L or R, not {laterality[:10]!r}")
        if view is not None and view not in _VIEWS:
            raise HTTPException(400, f"view must be one of {', '.join(sorted(_VIEWS))}")
        sid = "u-" + secrets.token_hex(8)
        dest = uploads / f"{sid}{_UPLOAD_SUFFIX[kind]}"
        await run_in_threadpool(_save, file, dest)
        await file.close()

        def work() -> dict[str, Any]:
            with analyses:
                return _analyse_upload(
                    dest, sid, name, spacing=spacing, laterality=laterality, view=view, cfg=cfg
                )

        try:
            row = await run_in_threadpool(work)
        except CalcscopeError as exc:
            _discard(uploads, sid)
            msg = str(exc).replace(str(dest), name)
            if isinstance(exc, InputError) and exc.path is None:
                msg = f"{name}: {msg}"
            raise HTTPException(400, msg) from None
        except MemoryError:
            _discard(uploads, sid)
            raise HTTPException(413, f"{name}: not enough memory to analyse this image") from None
        except Exception as exc:  # noqa: BLE001 - one bad upload must not stop the server
            _discard(uploads, sid)
            log.exception("analysis of upload %s failed", name)
            raise HTTPException(
                500, f"{name}: the analysis failed unexpectedly ({type(exc).__name__}: {exc})"
            ) from None
        store.scan()
        return JSONResponse(row, status_code=201)

    return app


def _parse_spacing(text: str, kind: str, name: str) -> float | None:
    if not text:
        if kind != "dicom":
            raise HTTPException(
                400,
                f"{name}: PNG, TIFF and PGM files carry no pixel spacing; enter the pixel "
                "spacing in mm (for example 0.07)",
            )
        return None
    try:
        value = float(text)
    except ValueError:
        raise HTTPException(400, f"pixel spacing {text[:20]!r} is not a number (mm)") from None
    if not 0.01 <= value <= 1.0:
        raise HTTPException(400, f"pixel spacing {value:g} mm is outside 0.01-1 mm")
    return value


def _save(file: UploadFile, dest: Path) -> None:
    file.file.seek(0)
    with dest.open("xb") as out:
        shutil.copyfileobj(file.file, out, length=2**20)


def _discard(folder: Path, sid: str) -> None:
    if not re.fullmatch(r"u-[0-9a-f]{16}", sid):  # pragma: no cover - defensive
        return
    for path in folder.glob(f"{sid}.*"):
        path.unlink(missing_ok=True)


def _analyse_upload(
    path: Path,
    sid: str,
    name: str,
    *,
    spacing: float | None,
    laterality: str | None,
    view: str | None,
    cfg: Config,
) -> dict[str, Any]:
    """Analyse one uploaded file and write its report, overlay, letter and name."""
    from calcscope.files import write_atomic
    from calcscope.pipeline import analyze
    from calcscope.reports.letter import write_letter
    from calcscope.reports.schema import to_report, write_json, write_overlay

    analysis = analyze(path, spacing_mm=spacing, config=cfg, laterality=laterality, view=view)
    stem = path.with_suffix("")
    write_overlay(analysis, stem.with_name(stem.name + ".overlay.png"))
    write_letter(to_report(analysis), stem)
    meta = {"original_name": name}
    write_atomic(stem.with_name(stem.name + ".meta.json"), json.dumps(meta).encode("utf-8"))
    json_path = write_json(analysis, stem.with_name(stem.name + ".json"))
    a = analysis.assessment
    return {
        "id": sid,
        "name": name,
        "origin": "upload",
        "json": json_path.name,
        "category": a.category.value,
        "follow_up_label": a.follow_up.label,
        "n_calcifications": len(analysis.detected),
        "n_clusters": len(analysis.clusters),
    }
