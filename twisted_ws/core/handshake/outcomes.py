"""
What an opening handshake ends in, for either role: L{Accepted} (the
WebSocket is open), L{Rejected} (an HTTP refusal, sent or received) or
L{Failed} (the client got no usable answer).
"""

from __future__ import annotations

from dataclasses import dataclass

from twisted_ws.core.errors import ClientHandshakeError, HandshakeError
from twisted_ws.core.extensions import Extension
from twisted_ws.core.handshake.request import HandshakeRequest
from twisted_ws.core.handshake.response import HandshakeResponse

__all__ = ["Accepted", "Rejected", "Failed", "Pairs"]

Pairs = tuple[tuple[str, str], ...]


@dataclass(slots=True)
class Accepted:
    """
    The WebSocket is open: send C{data}, switch the transport, then feed
    C{trailingData} to the WebSocket.  Read-only by convention (one is made
    per connection, and a frozen dataclass costs a microsecond more).

    @ivar request: the upgrade request (server: as received; client: as
        sent).
    @ivar subprotocol: the negotiated subprotocol, or C{None}.
    @ivar extensions: the live extensions, in the order they apply.
    @ivar data: the server's answer to write first (C{101 Switching
        Protocols}); empty for a client, and over HTTP/2, where the h2
        layer sends C{responseHeaders} itself.
    @ivar trailingData: bytes that followed the head: the first frames.
    @ivar responseHeaders: the answer's headers beyond the mechanism's own
        (server: the negotiated ones, without Upgrade, Connection and
        Sec-WebSocket-Accept; client: every header of the server's 101).
    @ivar response: the client's view of the server's 101, else C{None}.
    """

    request: HandshakeRequest
    subprotocol: str | None
    extensions: tuple[Extension, ...]
    data: bytes
    trailingData: bytes
    responseHeaders: Pairs = ()
    response: HandshakeResponse | None = None


@dataclass(frozen=True)
class Rejected:
    """
    The handshake ended in an HTTP refusal: one we send (server) or one
    we received (client).  Either way the connection closes after it.

    @ivar status: the HTTP status.
    @ivar reason: server: the free-text reason (the body's text unless one
        was given); client: the status line's reason phrase.
    @ivar headers: server: the refusal's own headers (e.g. C{Allow}, a
        C{WWW-Authenticate}); client: every header received.
    @ivar body: the body sent, or the start of the body received (decoded,
        at most C{maxBodySize} bytes).
    @ivar data: the server's whole answer to write (empty for a client and
        over HTTP/2).
    @ivar request: the request refused (C{None} when the server could not
        read a valid one).
    @ivar error: the server's L{HandshakeError} (a L{Reject} from the
        application keeps its type), for logging; C{None} for a client.
    """

    status: int
    reason: str
    headers: Pairs
    body: bytes
    data: bytes = b""
    request: HandshakeRequest | None = None
    error: HandshakeError | None = None


@dataclass(frozen=True)
class Failed:
    """The client got no usable answer (see L{ClientHandshakeError})."""

    error: ClientHandshakeError

