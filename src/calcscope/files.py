"""Atomic file writes: the one way calcscope puts a file on disk.

Readers never see a half-written file and a failure leaves no debris: every output goes
to a temporary file beside its destination and is renamed over it (``os.replace``).
With ``durable=True`` the data and the folder entry are also flushed to disk
(``fsync``), for a node that acknowledges a DICOM transfer only once it is safe.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "write_atomic", "fsync_dir"]


def fsync_dir(path: str | Path) -> None:
    """Flush a folder's entries to disk (a rename inside it survives a power cut)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | Path, *, durable: bool = False) -> Iterator[str]:
    """Yield a temporary file name beside ``path``; on success it replaces ``path``.

    The file gets the usual permissions (``0666`` less the umask), not ``mkstemp``'s
    ``0600``. With ``durable`` the file and its folder are fsynced before and after the
    rename.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    os.close(fd)
    try:
        yield tmp_name
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_name, 0o666 & ~umask)
        if durable:
            with open(tmp_name, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp_name, p)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(p.parent)


def write_atomic(path: str | Path, data: bytes | str, *, durable: bool = False) -> Path:
    """Write ``data`` (text is UTF-8) to ``path`` through a temporary file and a rename."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_path(path, durable=durable) as tmp:
        Path(tmp).write_bytes(payload)
    return Path(path)
