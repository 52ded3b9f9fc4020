"""Uploads to the viewer: the ``POST /api/upload`` router, and their removal after the
retention time.

An upload is stored under a generated id (``u-`` and 16 hex digits), never under the name
the browser sent; it is analysed with :func:`calcscope.pipeline.analyze` and its outputs are
written by :func:`calcscope.reports.writer.write_outputs` (report, overlay, letter) beside a
small ``<id>.meta.json`` holding the name to show. Whatever goes wrong, the upload's files
are removed and the answer is JSON: 400 (cannot be analysed, with the reason), 413 (too
large, or out of memory), 415 (not DICOM, PNG, TIFF or PGM), 500 (anything unexpected,
a decoder's panic included); the server stays up.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import shutil
import time
import unicodedata
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from calcscope.apps.web.state import ViewerState, is_fatal, viewer_state
from calcscope.errors import CalcscopeError, InputError, one_line
from calcscope.imaging.io import sniff_format

__all__ = [
    "UPLOAD_PATH",
    "UploadTooLarge",
    "prune_uploads",
    "too_large_message",
    "uploads",
]

log = logging.getLogger("calcscope.web")

UPLOAD_PATH = "/api/upload"
_UPLOAD_SUFFIX = {"dicom": ".dcm", "png": ".png", "tiff": ".tif", "pnm": ".pgm"}
_LATERALITIES = {"L", "R"}
_VIEWS = {"CC", "MLO", "ML", "LM", "XCCL"}
# an upload's files: "<id>.<suffix>", and the temporary files of an atomic write ".<id>.*"
_UPLOAD_FILE = re.compile(r"^\.?(u-[0-9a-f]{16})\.")

State = Annotated[ViewerState, Depends(viewer_state)]
uploads = APIRouter()


class UploadTooLarge(Exception):
    """The request body passed the upload limit (raised while it is being read)."""


def too_large_message(limit_bytes: int) -> str:
    """The message of an HTTP 413 answer."""
    return f"the file is too large: the limit is {limit_bytes / 2**20:.0f} MB"


@dataclass(frozen=True)
class UploadForm:
    """A checked upload form: the file, the name to show and the analysis options."""

    file: UploadFile
    name: str
    kind: str
    """``"dicom"``, ``"png"``, ``"tiff"`` or ``"pnm"``, from the file's first bytes."""
    spacing_mm: float | None
    laterality: str | None
    view: str | None


@dataclass(frozen=True)
class UploadRow:
    """The answer to a successful upload (one row of the study list)."""

    id: str
    name: str
    json: str
    category: str
    follow_up_label: str
    n_calcifications: int
    n_clusters: int
    origin: str = "upload"


# --------------------------------------------------------------------------- retention


def prune_uploads(folder: Path, max_age_s: float, *, now_s: float | None = None) -> list[str]:
    """Remove the uploads in ``folder`` whose newest file is older than ``max_age_s``.

    Only files named like an upload (``u-`` and 16 hex digits) are touched; symlinks are
    removed, never followed.

    Parameters
    ----------
    folder
        The uploads folder.
    max_age_s
        The retention time, in seconds.
    now_s
        The current time (seconds since the epoch); :func:`time.time` when ``None``.

    Returns
    -------
    list of str
        The ids of the uploads removed.
    """
    cutoff = (time.time() if now_s is None else now_s) - max_age_s
    groups: dict[str, list[tuple[Path, float]]] = {}
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    for path in entries:
        match = _UPLOAD_FILE.match(path.name)
        if match is None:
            continue
        try:
            st = path.lstat()
        except OSError:
            continue
        groups.setdefault(match.group(1), []).append((path, st.st_mtime))
    removed = []
    for sid, files in sorted(groups.items()):
        if max(mtime for _, mtime in files) >= cutoff:
            continue
        for path, _ in files:
            if not path.is_dir() or path.is_symlink():
                path.unlink(missing_ok=True)
        removed.append(sid)
    if removed:
        log.info("removed %d upload(s) older than %.1f h", len(removed), max_age_s / 3600)
    return removed


def discard_upload(folder: Path, sid: str) -> None:
    """Remove every file of the upload ``sid`` (after a failure)."""
    if not re.fullmatch(r"u-[0-9a-f]{16}", sid):  # pragma: no cover - defensive
        return
    for path in folder.iterdir():
        match = _UPLOAD_FILE.match(path.name)
        if match is not None and match.group(1) == sid:
            path.unlink(missing_ok=True)


# ------------------------------------------------------------------------------ route


@uploads.post(UPLOAD_PATH, status_code=201)
async def upload(request: Request, state: State) -> JSONResponse:
    """Analyse one uploaded image (multipart: ``file``, ``spacing_mm``, ``laterality``,
    ``view``) and answer its row of the study list (HTTP 201)."""
    # a custom header makes a cross-site form post impossible without CORS approval
    if request.headers.get("x-calcscope") != "1":
        raise HTTPException(403, "uploads must come from the calcscope page")
    if state.upload_retention_s is not None:
        await run_in_threadpool(prune_uploads, state.uploads_dir, state.upload_retention_s)
    form = await _read_form(request, state.max_upload_bytes)
    sid = "u-" + secrets.token_hex(8)
    dest = state.uploads_dir / f"{sid}{_UPLOAD_SUFFIX[form.kind]}"
    try:
        await run_in_threadpool(_save, form.file, dest)
        row = await run_in_threadpool(_analyse_upload, state, dest, sid, form)
    except BaseException as exc:  # noqa: BLE001 - a decoder's panic must not leave files
        discard_upload(state.uploads_dir, sid)
        if is_fatal(exc):
            raise
        raise _http_error(exc, form.name, dest) from None
    finally:
        await form.file.close()
    state.store.scan()
    return JSONResponse(asdict(row), status_code=201)


def _http_error(exc: BaseException, name: str, dest: Path) -> HTTPException:
    """The answer to an upload whose analysis raised ``exc``."""
    if isinstance(exc, CalcscopeError):
        msg = str(exc).replace(str(dest), name)
        if isinstance(exc, InputError) and exc.path is None:
            msg = f"{name}: {msg}"
        return HTTPException(400, msg)
    if isinstance(exc, MemoryError):
        return HTTPException(413, f"{name}: not enough memory to analyse this image")
    log.error("analysis of upload %s failed", name, exc_info=exc)
    return HTTPException(
        500, one_line(f"{name}: the analysis failed unexpectedly ({type(exc).__name__}: {exc})")
    )


async def _read_form(request: Request, max_upload_bytes: int) -> UploadForm:
    """The checked form of an upload request, or an HTTP 400, 413 or 415."""
    try:
        form = await request.form(max_files=1, max_fields=8)
    except UploadTooLarge:
        raise HTTPException(413, too_large_message(max_upload_bytes)) from None
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
    spacing_mm = _parse_spacing(_form_text(form, "spacing_mm"), kind, name)
    laterality = _form_text(form, "laterality").upper() or None
    view = _form_text(form, "view").upper() or None
    if laterality is not None and laterality not in _LATERALITIES:
        raise HTTPException(400, f"laterality must be L or R, not {laterality[:10]!r}")
    if view is not None and view not in _VIEWS:
        raise HTTPException(400, f"view must be one of {', '.join(sorted(_VIEWS))}")
    return UploadForm(file, name, kind, spacing_mm, laterality, view)


def _display_name(filename: str | None) -> str:
    """The browser's file name reduced to something safe to show (never used as a path)."""
    name = (filename or "upload").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    return name[:120] or "upload"


def _form_text(form: FormData, key: str) -> str:
    value = form.get(key)
    return value.strip() if isinstance(value, str) else ""


def _parse_spacing(text: str, kind: str, name: str) -> float | None:
    """The pixel spacing typed in the form, in mm (``None``: from the DICOM header)."""
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


def _analyse_upload(state: ViewerState, path: Path, sid: str, form: UploadForm) -> UploadRow:
    """Analyse one stored upload and write its outputs (the JSON report last)."""
    from calcscope import pipeline
    from calcscope.files import write_atomic
    from calcscope.reports import writer

    with state.analyses:
        analysis = pipeline.analyze(
            path,
            spacing_mm=form.spacing_mm,
            config=state.config,
            laterality=form.laterality,
            view=form.view,
        )
        meta: dict[str, Any] = {"original_name": form.name}
        write_atomic(state.uploads_dir / f"{sid}.meta.json", json.dumps(meta))
        out = writer.write_outputs(
            analysis, state.uploads_dir, sid, writer.OutputOptions(letter=True)
        )
    a = analysis.assessment
    return UploadRow(
        id=sid,
        name=form.name,
        json=out.json.name,
        category=a.category.value,
        follow_up_label=a.follow_up.label,
        n_calcifications=len(analysis.detected),
        n_clusters=len(analysis.clusters),
    )
