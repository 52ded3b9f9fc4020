"""The web viewer (``calcscope serve``): FastAPI app, tile pyramids, static page.

Needs the ``web`` extra: ``pip install 'calcscope[web]'``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["create_app"]


def create_app(*args: Any, **kwargs: Any) -> FastAPI:
    """Build the viewer app; see :func:`calcscope.apps.web.app.create_app`."""
    try:
        from calcscope.apps.web.app import create_app as _create
    except ModuleNotFoundError as exc:  # pragma: no cover - depends on the install
        raise ModuleNotFoundError(
            f"the web viewer needs the 'web' extra ({exc.name} is missing): "
            "pip install 'calcscope[web]'"
        ) from exc
    return _create(*args, **kwargs)
