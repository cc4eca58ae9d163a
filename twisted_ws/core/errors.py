"""
Errors raised by the I/O-free core.

Each error carries what the Twisted layer needs to answer the peer: an HTTP
status for a refused handshake, a close code for a broken WebSocket stream.
"""

from __future__ import annotations

from collections.abc import Sequence


class WebSocketError(Exception):
    """Base class of every error raised by twisted_ws."""


class HandshakeError(WebSocketError):
    """
    The opening handshake cannot go on.

    On the server side, C{status} and C{headers} form the HTTP answer sent
    back (with C{reason} as a short plain-text body).  On the client side the
    error describes why the server's answer was refused.
    """

    def __init__(
        self,
        status: int,
        reason: str,
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason
        self.headers = list(headers)

    def __str__(self) -> str:
        return f"{self.status} {self.reason}"


class ProtocolError(WebSocketError):
    """
    The peer broke RFC 6455 (or a configured limit): fail the connection.

    C{code} is the close code to send (1002, 1007, 1009, ...), C{reason} a
    short text for the Close frame and the logs.
    """

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.code} {self.reason}"


class ClientHandshakeError(WebSocketError):
    """
    The client's opening handshake failed without an HTTP refusal.

    A refusal (any status but 101) is not an error of this kind: it is an
    answer, reported with its status, headers and body.  These errors have
    no HTTP status of their own, so none is made up for them.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


class InvalidServerResponse(ClientHandshakeError):
    """
    The server's answer is not valid HTTP, or is a 101 that breaks RFC 6455
    section 4.1 (wrong accept key, unrequested subprotocol or extension).
    """


class HandshakeClosed(ClientHandshakeError):
    """The connection ended before the server answered the upgrade request."""
