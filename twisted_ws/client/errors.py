"""
How opening a client WebSocket can fail, beyond the transport's own errors:
the server refused the upgrade, the whole attempt took too long, the HTTP
proxy refused the tunnel, the server's certificate was refused, or the
server cannot carry a WebSocket over HTTP/2.
"""

from __future__ import annotations

from collections.abc import Sequence

from OpenSSL import SSL
from twisted.internet import error

from ..core.errors import ClientHandshakeError, HandshakeError, WebSocketError

__all__ = [
    "WebSocketHandshakeRejected",
    "WebSocketOpenTimeout",
    "WebSocketProxyError",
    "CertificateVerificationError",
    "HTTP2NotSupported",
]


class WebSocketHandshakeRejected(HandshakeError):
    """
    The server answered the upgrade request with something other than 101.

    @ivar status: the HTTP status (403, 404, ...).
    @ivar headers: the response's header fields, as (name, value) pairs.
    @ivar body: the start of the response body (at most 64 KiB), so the
        application can show the server's explanation.
    """

    def __init__(
        self,
        status: int,
        reason: str,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> None:
        super().__init__(status, reason, headers)
        self.body = body

    def header(self, name: str) -> str | None:
        """The first value of header C{name} (case-insensitive), or C{None}."""
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return None


class WebSocketOpenTimeout(error.TimeoutError):
    """
    The WebSocket did not open within C{openTimeout} seconds (connecting,
    the proxy tunnel, TLS and the opening handshake all count).
    """

    def __init__(self, timeout: float | None) -> None:
        super().__init__(string=f"the WebSocket did not open within {timeout} seconds")  # type: ignore[no-untyped-call]  # Twisted's TimeoutError.__init__ is unannotated
        self.timeout = timeout

    def __str__(self) -> str:
        return f"timed out: the WebSocket did not open within {self.timeout} seconds"


class WebSocketProxyError(WebSocketError, error.ConnectError):
    """
    The HTTP proxy did not open the tunnel: C{status} is its HTTP status
    (407: authentication required, 403: destination forbidden, ...), or 502
    when its answer was unusable or it closed the connection.
    """

    def __init__(self, status: int, reason: str, headers: Sequence[tuple[str, str]] = ()) -> None:
        error.ConnectError.__init__(self, string=f"proxy: {status} {reason}")
        self.status = status
        self.reason = reason
        self.headers = list(headers)

    def __str__(self) -> str:
        return f"HTTP proxy refused the tunnel: {self.status} {self.reason}"


class CertificateVerificationError(WebSocketError, SSL.Error):
    """
    The server's certificate was refused: the TLS handshake was aborted.

    A subclass of C{OpenSSL.SSL.Error}, which callers already catch for
    TLS failures.  C{str()} is one readable line, e.g. C{certificate for
    'localhost' does not match (names: other.example)}.

    @ivar hostname: the name (or IP address) the client expected.
    @ivar problem: what is wrong, e.g. C{has expired}.
    @ivar verifyError: OpenSSL's X509 verify error number, or C{None} when
        the chain was fine and the hostname did not match.
    """

    def __init__(self, hostname: str, problem: str, verifyError: int | None = None) -> None:
        super().__init__(hostname, problem)
        self.hostname = hostname
        self.problem = problem
        self.verifyError = verifyError

    def __str__(self) -> str:
        return " ".join(f"certificate for {self.hostname!r} {self.problem}".split())


class HTTP2NotSupported(ClientHandshakeError):
    """
    C{http2=True} was asked for, but the server cannot carry a WebSocket
    over HTTP/2: its TLS layer did not pick C{h2} (ALPN), or its SETTINGS
    lack C{SETTINGS_ENABLE_CONNECT_PROTOCOL = 1} (RFC 8441 section 3).
    Nothing was sent on a stream; connecting without C{http2} uses
    HTTP/1.1.
    """
