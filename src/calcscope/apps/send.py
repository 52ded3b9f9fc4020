"""Sending DICOM files to a PACS by C-STORE (the node's SCU side).

:class:`Forward` is where results go (``HOST:PORT:AET``, as given to ``calcscope node
--forward``); :func:`send_files` sends files on one association and raises
:class:`ForwardError` when the association fails or the PACS answers with a failure
status (warnings, ``0xBxxx``, count as success); :func:`wait_for_echo` waits until a node
answers a Verification association.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from calcscope.errors import CalcscopeError, ConfigError

__all__ = ["Forward", "ForwardError", "send_files", "wait_for_echo"]

SUCCESS = 0x0000


class ForwardError(CalcscopeError):
    """The results could not be sent to the PACS (no association, or a failure status)."""


@dataclass(frozen=True)
class Forward:
    """Where to send the SR and the presentation state: ``HOST:PORT:AET``."""

    host: str
    port: int
    ae_title: str

    @classmethod
    def parse(cls, text: str) -> Forward:
        """Parse ``HOST:PORT:AET`` (an IPv6 host in brackets: ``[::1]:104:PACS``)."""
        host, sep, rest = text.rpartition(":")
        host2, sep2, port_text = host.rpartition(":")
        if not sep or not sep2 or not host2 or not rest:
            raise ConfigError(f"--forward {text!r}: expected HOST:PORT:AET, e.g. pacs:104:ORTHANC")
        try:
            port = int(port_text)
        except ValueError:
            port = -1
        if not 0 < port < 65536:
            raise ConfigError(f"--forward {text!r}: the port must be a number in 1-65535")
        if len(rest) > 16:
            raise ConfigError(f"--forward {text!r}: an AE title has at most 16 characters")
        return cls(host2.strip("[]"), port, rest)

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


def send_files(
    files: Sequence[str | Path],
    forward: Forward,
    *,
    calling_ae_title: str = "CALCSCOPE",
    timeout_s: float = 30.0,
) -> None:
    """Send DICOM files by C-STORE on one association; raise :class:`ForwardError`."""
    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
    from pynetdicom import AE

    datasets = [pydicom.dcmread(f) for f in files]
    ae = AE(ae_title=calling_ae_title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout_s
    for cls in sorted({str(ds.SOPClassUID) for ds in datasets}):
        ae.add_requested_context(cls, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    assoc = ae.associate(forward.host, forward.port, ae_title=forward.ae_title)
    if not assoc.is_established:
        raise ForwardError(f"no association with {forward} (rejected, aborted or unreachable)")
    try:
        for f, ds in zip(files, datasets, strict=True):
            try:
                status = assoc.send_c_store(ds)
            except (ValueError, RuntimeError) as exc:
                raise ForwardError(f"{forward} refused {Path(f).name}: {exc}") from exc
            code = int(status.Status) if status and "Status" in status else None
            if code is None:
                raise ForwardError(f"no answer from {forward} for {Path(f).name}")
            if code != SUCCESS and not 0xB000 <= code <= 0xBFFF:
                raise ForwardError(f"{forward} answered 0x{code:04X} for {Path(f).name}")
    finally:
        if assoc.is_established:
            assoc.release()


def wait_for_echo(
    host: str,
    port: int,
    ae_title: str,
    *,
    timeout_s: float = 60.0,
    calling_ae_title: str = "CALCSCOPE",
    interval_s: float = 0.2,
) -> bool:
    """Wait until a DICOM node accepts a Verification association (e.g. a node just started).

    Parameters
    ----------
    host, port, ae_title
        The node's address and AE title.
    timeout_s
        How long to keep trying, seconds.
    calling_ae_title
        This side's AE title.
    interval_s
        Pause between tries, seconds.

    Returns
    -------
    bool
        True as soon as an association is established (and released); False when none was
        within ``timeout_s``.
    """
    import time

    from pynetdicom import AE
    from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

    ae = AE(ae_title=calling_ae_title)
    ae.add_requested_context(Verification)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assoc = ae.associate(host, port, ae_title=ae_title)
        if assoc.is_established:
            assoc.release()
            return True
        time.sleep(interval_s)
    return False
