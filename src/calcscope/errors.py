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


#: An error message is one line of at most this many characters: a corrupt header can
#: make a value megabytes long, and it is quoted in the message.
MAX_MESSAGE_CHARS = 600

#: A decoder's or parser's own message quoted inside one of ours is cut to this many
#: characters, leaving room for the file name and the advice around it.
MAX_QUOTED_CHARS = 300


def one_line(message: str | BaseException, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``message`` as one printable line of at most ``limit`` characters.

    Parameters
    ----------
    message : str or BaseException
        The text, or an exception whose text is quoted: its whitespace runs (newlines
        included) become single spaces, and an exception without text is named by its type.
    limit : int
        The most characters returned.

    Returns
    -------
    str
        Control characters escaped, the middle of a longer text left out (and counted).
    """
    if isinstance(message, BaseException):
        message = " ".join(str(message).split()) or type(message).__name__
    text = "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in message
    )
    if len(text) <= limit:
        return text
    head = limit * 2 // 3
    tail = limit - head - 40
    return f"{text[:head]} ... ({len(text) - head - tail} characters left out) ... {text[-tail:]}"


class InputError(CalcscopeError):
    """An input cannot be analysed. ``path`` names it when known.

    The message is one printable line of at most :data:`MAX_MESSAGE_CHARS` characters
    (:func:`one_line`), whatever header values it quotes.
    """

    def __init__(self, message: str, path: str | None = None) -> None:
        self.path = path
        super().__init__(one_line(f"{path}: {message}" if path else message))


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
