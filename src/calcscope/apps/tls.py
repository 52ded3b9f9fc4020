"""TLS for the DICOM node: its certificate files and the server context made from them."""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from calcscope.errors import ConfigError

__all__ = ["TLSFiles"]


class _ServerTLSContext(ssl.SSLContext):
    """A server TLS context whose handshake happens in the association's own thread.

    pynetdicom wraps each accepted connection in its accept loop; with the handshake
    there, one client that connects and sends nothing would stop the node accepting
    anyone. Here the handshake runs at the association's first read, and every read has
    a time limit (:attr:`io_timeout_s`, in seconds).
    """

    io_timeout_s: float = 60.0

    def wrap_socket(
        self,
        sock: socket.socket,
        server_side: bool = False,
        do_handshake_on_connect: bool = True,
        suppress_ragged_eofs: bool = True,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLSocket:
        sock.settimeout(self.io_timeout_s)
        return super().wrap_socket(
            sock,
            server_side=server_side,
            do_handshake_on_connect=False,
            suppress_ragged_eofs=suppress_ragged_eofs,
            server_hostname=server_hostname,
            session=session,
        )


@dataclass(frozen=True)
class TLSFiles:
    """The node's TLS certificate and key (PEM), and optionally the CA of its clients."""

    cert: Path
    key: Path
    ca: Path | None = None
    """With a CA file, a client must present a certificate signed by it."""

    @classmethod
    def from_options(
        cls, cert: Path | None, key: Path | None, ca: Path | None = None
    ) -> TLSFiles | None:
        """The files of ``--tls-cert/--tls-key/--tls-ca``; ``None`` without them."""
        if cert is None and key is None and ca is None:
            return None
        if cert is None or key is None:
            raise ConfigError("TLS needs both --tls-cert and --tls-key (--tls-ca with them)")
        return cls(cert, key, ca)

    def server_context(self) -> ssl.SSLContext:
        """The server's TLS context (TLS 1.2 or later); raise :class:`ConfigError`."""
        ctx = _ServerTLSContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            ctx.load_cert_chain(self.cert, self.key)
            if self.ca is not None:
                ctx.load_verify_locations(cafile=self.ca)
                ctx.verify_mode = ssl.CERT_REQUIRED
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"TLS files {self.cert}, {self.key}: {exc}") from exc
        return ctx
