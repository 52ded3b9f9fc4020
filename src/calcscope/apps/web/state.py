"""The state the viewer's routes share, handed to them as a FastAPI dependency.

:func:`calcscope.apps.web.app.create_app` builds one :class:`ViewerState` and stores it on
``app.state.viewer``; every route asks for it with ``Depends(viewer_state)``, so no route
reads a global or a closure.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request

from calcscope.apps.web.studies import StudyStore
from calcscope.apps.web.tiles import TileCache
from calcscope.config import Config

__all__ = ["ViewerState", "is_fatal", "viewer_state"]


@dataclass(frozen=True)
class ViewerState:
    """Everything the routes of one viewer app share.

    Attributes
    ----------
    store
        The index of the studies in the results folder and the uploads folder.
    tiles
        The LRU cache of tile pyramids.
    results_dir
        The results folder, or ``None`` when the viewer shows uploads only.
    uploads_dir
        Where uploads and their outputs are written.
    config
        The pipeline configuration used for uploads.
    max_upload_bytes
        Larger uploads are refused (HTTP 413), in bytes.
    upload_retention_s
        Uploads older than this are removed, in seconds; ``None`` keeps them.
    analyses
        Bounds the number of uploads analysed at the same time.
    """

    store: StudyStore
    tiles: TileCache
    results_dir: Path | None
    uploads_dir: Path
    config: Config
    max_upload_bytes: int
    upload_retention_s: float | None
    analyses: threading.BoundedSemaphore


def viewer_state(request: Request) -> ViewerState:
    """The dependency that hands a route its app's :class:`ViewerState`."""
    state: ViewerState = request.app.state.viewer
    return state


def is_fatal(exc: BaseException) -> bool:
    """Whether ``exc`` must stop the request rather than become an error answer: an
    interrupt, an exit or a cancellation. Anything else, a Rust decoder's panic
    (``pyo3_runtime.PanicException``, a ``BaseException``) included, is answered as an error.
    """
    return isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit, asyncio.CancelledError))
