"""The Jinja2 environment of the HTML pages (report and patient letter).

Templates live in ``calcscope/reports/templates/`` (package data); every value is
escaped on output (``autoescape``), so tag values read from a file (patient name, paths,
reasons) cannot inject markup.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

__all__ = ["environment", "render_template"]


@cache
def environment() -> Environment:
    """The shared environment: package templates, autoescape for ``.html.j2`` files."""
    return Environment(
        loader=PackageLoader("calcscope.reports", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html", "html.j2"), default=True),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )


def render_template(name: str, **context: Any) -> str:
    """Render the template ``name`` with ``context``."""
    return environment().get_template(name).render(**context)
