"""Exceptions raised where data enters calcscope.

Hierarchy::

    CalcscopeError                 base of everything calcscope raises on purpose
    ├── InputError                 a file or array cannot be analysed
    │   ├── UnreadableFileError    missing, empty, truncated or undecodable file
    │   ├── NotAMammogramError     readable, but not a mammogram (CT, RGB photo, ...)
    │   ├── MissingSpacingError    no pixel spacing in the file and none given
    │   ├── ImplausibleValueError  a header value or decoded image that cannot be a mammogram's
    │   │                          (non-finite rescale, spacing out of range, garbled pixels)
    │   ├── ImageTooLargeError     above the configured pixel limit
    │   └── ReportError            a JSON report that is not JSON or not the report schema
    └── ConfigError                an invalid configuration value

Messages name the file and say what the user can do; the CLI prints them on one line.
"""

from __future__ import annotations

__all__ = [
    "CalcscopeError",
    "InputError",
    "UnreadableFileError",
    "NotAMammogramError",
    "MissingSpacingError",
    "ImplausibleValueError",
    "ImageTooLargeError",
    "ReportError",
    "ConfigError",
]


class CalcscopeError(Exception):
    """Base class of every error calcscope raises on purpose."""


class InputError(CalcscopeError):
    """An input cannot be analysed. ``path`` names it when known."""

    def __init__(self, message: str, path: str | None = None) -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class UnreadableFileError(InputError):
    """The file is missing, empty, truncated, or its pixels cannot be decoded."""


class NotAMammogramError(InputError):
    """The file is readable but is not a mammogram."""


class MissingSpacingError(InputError):
    """No pixel spacing is known: pass ``spacing_mm`` (``--spacing-mm`` on the CLI)."""


class ImplausibleValueError(InputError):
    """A header value or the decoded pixels cannot belong to a real mammogram.

    Raised instead of analysing an image that would give a wrong answer: a non-finite or
    zero rescale slope, pixel values that are not finite after a LUT, a pixel spacing
    outside the configured plausible range, or decoded pixels that are garbled (corrupt
    compressed data).
    """


class ImageTooLargeError(InputError):
    """The image exceeds the configured maximum number of pixels."""


class ReportError(InputError):
    """A JSON report cannot be read: not JSON, or not the report schema."""


class ConfigError(CalcscopeError):
    """A configuration value is invalid."""
