"""The web viewer: a FastAPI app serving a study list, a tiled zoom-and-pan viewer with
the findings drawn over it, the findings table, the patient letter, and uploads.

Routes (every error answer is JSON, ``{"error": "<readable message>"}``)::

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
    GET  /api/exams                              the exams (``*.exam.json``)
    GET  /api/exams/{id}                         an exam, its four panels and their reports
    POST /api/upload                             multipart: file, spacing_mm, laterality, view

The routes live in routers (:mod:`calcscope.apps.web.routes`: page, studies, tiles;
:mod:`calcscope.apps.web.uploads`: uploads) that share one
:class:`~calcscope.apps.web.state.ViewerState` through a dependency. This module builds the
app: the state, the routers, the JSON error answers and the guard middleware (security
headers, host names, the upload size limit, and a JSON 500 for anything unexpected).

The app does no image work of its own: uploads go through :func:`calcscope.pipeline.analyze`
and :func:`calcscope.reports.writer.write_outputs`, and tiles are cut from the image
:func:`calcscope.imaging.io.read_image` reads. It serves only regular files whose resolved
path lies inside the folders it was given. It fetches nothing from the network: every
script and style is served by itself, and the Content-Security-Policy header forbids
anything else. Uploads are removed after ``upload_retention_hours``.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from calcscope.about import DISCLAIMER, __version__
from calcscope.apps.web import routes
from calcscope.apps.web.state import ViewerState, is_fatal
from calcscope.apps.web.studies import StudyStore
from calcscope.apps.web.tiles import TileCache
from calcscope.apps.web.uploads import (
    UPLOAD_PATH,
    UploadTooLarge,
    prune_uploads,
    too_large_message,
    uploads,
)
from calcscope.config import Config

__all__ = [
    "create_app",
    "DEFAULT_MAX_UPLOAD_BYTES",
    "DEFAULT_UPLOAD_RETENTION_HOURS",
    "LOOPBACK_HOSTS",
]

log = logging.getLogger("calcscope.web")

DEFAULT_MAX_UPLOAD_BYTES = 200 * 2**20
DEFAULT_UPLOAD_RETENTION_HOURS = 24.0
#: Host names accepted when the server listens on the loopback interface (a guard
#: against DNS rebinding: a web page cannot reach the viewer under another name).
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")

_CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'self'"
)
_SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"SAMEORIGIN"),
    (b"content-security-policy", _CSP.encode("ascii")),
)


def create_app(
    results_dir: str | Path | None = None,
    *,
    uploads_dir: str | Path | None = None,
    image_dirs: Sequence[str | Path] = (),
    config: Config | None = None,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    upload_retention_hours: float | None = DEFAULT_UPLOAD_RETENTION_HOURS,
    allowed_hosts: Sequence[str] | None = None,
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
    image_dirs
        Further folders where the reports' source images are looked up (by file name);
        no image outside ``results_dir``, ``uploads_dir`` and these is ever read.
    config
        The pipeline configuration used for uploads.
    max_upload_bytes
        Larger uploads are refused with HTTP 413, in bytes.
    upload_retention_hours
        Uploads are removed this many hours after they were written (at start-up, on the
        study list and on each upload); ``None`` keeps them.
    allowed_hosts
        Host names the server answers to (``None``: any). Pass :data:`LOOPBACK_HOSTS`
        when listening on 127.0.0.1.
    max_concurrent_analyses
        Uploads analysed at the same time; further ones wait.
    tile_cache
        The LRU cache of tile pyramids (a default one when ``None``).
    """
    state = _make_state(
        results_dir,
        uploads_dir=uploads_dir,
        image_dirs=image_dirs,
        config=config,
        max_upload_bytes=max_upload_bytes,
        upload_retention_hours=upload_retention_hours,
        max_concurrent_analyses=max_concurrent_analyses,
        tile_cache=tile_cache,
    )
    if state.upload_retention_s is not None:
        prune_uploads(state.uploads_dir, state.upload_retention_s)
    app = FastAPI(
        title="calcscope viewer",
        version=__version__,
        description=DISCLAIMER,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.viewer = state
    app.state.store = state.store
    app.state.uploads_dir = state.uploads_dir
    app.state.tiles = state.tiles
    app.add_middleware(
        _Guard,
        max_upload_bytes=max_upload_bytes,
        allowed_hosts=tuple(allowed_hosts) if allowed_hosts is not None else None,
    )
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.mount("/static", StaticFiles(directory=routes.STATIC_DIR), name="static")
    for router in (routes.pages, routes.tiles, routes.studies, routes.exams, uploads):
        app.include_router(router)
    return app


def _make_state(
    results_dir: str | Path | None,
    *,
    uploads_dir: str | Path | None,
    image_dirs: Sequence[str | Path],
    config: Config | None,
    max_upload_bytes: int,
    upload_retention_hours: float | None,
    max_concurrent_analyses: int,
    tile_cache: TileCache | None,
) -> ViewerState:
    """Check the folders (creating the uploads folder) and build the shared state."""
    results = Path(results_dir) if results_dir is not None else None
    if results is not None and not results.is_dir():
        raise FileNotFoundError(f"{results}: no such folder")
    images = [Path(d) for d in image_dirs]
    for folder in images:
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: no such folder")
    if upload_retention_hours is not None and not upload_retention_hours > 0:
        raise ValueError("upload_retention_hours must be positive (or None to keep uploads)")
    uploads_path = (
        Path(uploads_dir)
        if uploads_dir is not None
        else Path(tempfile.mkdtemp(prefix="calcscope-uploads-"))
    )
    uploads_path.mkdir(parents=True, exist_ok=True)
    return ViewerState(
        store=StudyStore(results, uploads_path, images),
        tiles=tile_cache or TileCache(),
        results_dir=results,
        uploads_dir=uploads_path,
        config=config or Config(),
        max_upload_bytes=max_upload_bytes,
        upload_retention_s=(
            upload_retention_hours * 3600 if upload_retention_hours is not None else None
        ),
        analyses=threading.BoundedSemaphore(max(1, max_concurrent_analyses)),
    )


# ------------------------------------------------------------------------ error answers


def _error_response(
    status: int, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """The JSON answer of every error: ``{"error": message}``."""
    return JSONResponse(
        {"error": message}, status_code=status, headers=dict(headers) if headers else None
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return _error_response(exc.status_code, str(exc.detail), exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    parts = []
    for err in exc.errors():
        where = ".".join(str(x) for x in err.get("loc", ())[1:])
        parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else err.get("msg", ""))
    return _error_response(422, "; ".join(parts) or "invalid request")


class _Guard:
    """ASGI middleware around the whole app: security headers on every response, the host
    names answered to, the upload size limit (from ``Content-Length`` at once, and by
    counting the bytes as they arrive), and a JSON 500 for any exception a route lets out.
    """

    def __init__(
        self, app: ASGIApp, *, max_upload_bytes: int, allowed_hosts: tuple[str, ...] | None
    ) -> None:
        self.app = app
        self.max_upload_bytes = max_upload_bytes
        self.allowed_hosts = allowed_hosts

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

        headers = dict(scope.get("headers", []))
        if self.allowed_hosts is not None and _host(headers) not in self.allowed_hosts:
            await _send_json(
                send_with_headers, 400, "this server does not answer to that host name"
            )
            return
        try:
            await self._call(scope, receive, send_with_headers, headers)
        except BaseException as exc:  # noqa: BLE001 - one bad request must not stop the server
            if started or is_fatal(exc):
                raise
            log.error("unexpected error on %s", scope.get("path"), exc_info=exc)
            message = f"internal error ({type(exc).__name__}); the server is still running"
            await _send_json(send_with_headers, 500, message)

    async def _call(
        self, scope: Scope, receive: Receive, send: Send, headers: dict[bytes, bytes]
    ) -> None:
        """Pass the request on, counting an upload's bytes against the limit."""
        if scope["path"] != UPLOAD_PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        limit = self.max_upload_bytes
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _send_json(send, 413, too_large_message(limit))
            return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise UploadTooLarge
            return message

        try:
            await self.app(scope, counting_receive, send)
        except UploadTooLarge:
            await _send_json(send, 413, too_large_message(limit))


def _host(headers: dict[bytes, bytes]) -> str:
    """The host name of the ``Host`` header, without its port."""
    host = headers.get(b"host", b"").decode("latin-1").strip().lower()
    if host.startswith("["):  # [::1]:8000
        return host.split("]", 1)[0] + "]"
    return host.split(":", 1)[0] if host.count(":") <= 1 else host


async def _send_json(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode("utf-8")
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
