"""
The client's opening handshake on a connected transport: send the upgrade
request, read and check the answer (and the start of a refusal's body),
then hand the transport to the application's L{WebSocketProtocol}.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet import error
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper
from twisted.python.failure import Failure

from ..core.errors import HandshakeError
from ..core.extensions import acceptClientExtensions
from ..core.handshake import HandshakeResponse, generateKey, validateResponse
from ..core.http import HeadParser, ResponseHead
from ..handoff import switchProtocol
from ..protocol import WebSocketProtocol
from ..transport import setNoDelay
from .errors import WebSocketHandshakeRejected, WebSocketOpenTimeout
from .waiters import Waiters

if TYPE_CHECKING:
    from .factory import WebSocketClientFactory

__all__ = ["ClientHandshakeProtocol", "MAX_REJECTION_BODY"]

_log = Logger()

#: The most bytes of a refusal's body kept on L{WebSocketHandshakeRejected}.
MAX_REJECTION_BODY = 64 * 1024


def _unwrap(protocol: Any) -> Any:
    """
    The L{WebSocketProtocol} behind a protocol wrapper: C{ClientService}
    hands endpoints a proxy that keeps the real protocol in C{_protocol},
    C{ProtocolWrapper}s keep it in C{wrappedProtocol}.
    """
    for _ in range(8):
        if isinstance(protocol, WebSocketProtocol):
            return protocol
        own = getattr(protocol, "__dict__", {})
        if "_protocol" in own:
            protocol = own["_protocol"]
        elif isinstance(protocol, ProtocolWrapper):
            protocol = protocol.wrappedProtocol
        else:
            break
    return protocol


class ClientHandshakeProtocol(Protocol):
    """
    Sends the upgrade request, reads and checks the answer, then hands the
    transport to the application's protocol.

    L{whenOpen} fires with that protocol, or fails with
    L{WebSocketHandshakeRejected} (not 101), L{HandshakeError} (a 101 with
    unacceptable headers, or an unusable answer: status 502),
    L{WebSocketOpenTimeout}, or the transport's error (e.g. TLS
    verification).
    """

    factory: WebSocketClientFactory

    def __init__(self, factory: WebSocketClientFactory, addr: Any = None) -> None:
        self.factory = factory
        self._addr = addr
        options = factory.options
        self._parser = HeadParser(
            False,
            maxLineLength=options.maxRequestLineLength,
            maxHeaderBytes=options.maxHeaderBytes,
            maxHeaderCount=options.maxHeaderCount,
        )
        self._key = generateKey()
        self._outcome = Waiters(self._cancel)
        self._timer: IDelayedCall | None = None
        self._rejection: ResponseHead | None = None
        self._body = bytearray()
        self._bodyWanted: int | None = None
        self._chunked = False
        self._delegate: Any = None

    def whenOpen(self) -> Deferred[WebSocketProtocol]:
        """A Deferred of the open application protocol (see the class doc)."""
        return self._outcome.wait()

    # -- life cycle --------------------------------------------------------

    def connectionMade(self) -> None:
        setNoDelay(self.transport)
        timeout = self.factory.options.openTimeout
        if timeout is not None:
            self._timer = self.factory.clock.callLater(timeout, self._timedOut)
        self.transport.write(self.factory.requestBytes(self._key))

    def dataReceived(self, data: bytes) -> None:
        if self._delegate is not None:
            self._delegate.dataReceived(data)
            return
        if self._outcome.done:
            return
        if self._rejection is not None:
            self._readBody(data)
            return
        try:
            head = self._parser.feed(data)
        except HandshakeError as e:
            self._failAndClose(e)
            return
        if head is None:
            return
        assert isinstance(head, ResponseHead)
        if head.status != 101:
            self._startBody(head)
            return
        try:
            response = validateResponse(
                head, self._key, self.factory.subprotocols, self.factory.extensionNames
            )
            extensions = acceptClientExtensions(response.extensions, self.factory.extensions)
        except HandshakeError as e:
            self._failAndClose(e)
            return
        self._open(response, extensions, self._parser.rest)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        if self._delegate is not None:
            self._delegate.connectionLost(reason)
            return
        self._stopTimer()
        if self._rejection is not None:
            self._finishRejection()
            return
        if self._outcome.done:
            return
        if reason is None or reason.check(error.ConnectionDone, error.ConnectionLost):
            self._fail(Failure(HandshakeError(502, "connection closed before the server answered the handshake")))
        else:
            self._fail(reason)

    # -- success -----------------------------------------------------------

    def _open(self, response: HandshakeResponse, extensions: list[Any], rest: bytes) -> None:
        factory = self.factory
        try:
            built = factory.buildWebSocketProtocol(self._addr)
            protocol = _unwrap(built)
            if not isinstance(protocol, WebSocketProtocol):
                raise TypeError(f"{built!r} is not a WebSocketProtocol")
        except Exception:
            failure = Failure()
            _log.failure("building the WebSocket protocol failed", failure)
            self._fail(failure)
            self.transport.abortConnection()
            return
        protocol.isClient = True
        protocol.request = factory.sentRequest(self._key)
        protocol.response = response  # type: ignore[attr-defined]
        protocol.subprotocol = response.subprotocol
        protocol.extensions = extensions
        protocol.options = factory.options
        protocol.clock = factory.clock
        self._stopTimer()
        transport = self.transport
        if not switchProtocol(transport, self, built):
            self._delegate = built
        built.makeConnection(transport)
        self._outcome.fire(built)
        factory._handshakeFinished(built)
        if rest and protocol.connected:
            built.dataReceived(rest)

    # -- refusal -----------------------------------------------------------

    def _startBody(self, head: ResponseHead) -> None:
        self._rejection = head
        headers = head.headers
        if head.status < 200 or head.status in (204, 304):
            self._bodyWanted = 0
        elif "chunked" in [t.lower() for t in headers.getCommaList("Transfer-Encoding")]:
            self._chunked = True
        else:
            length = headers.get("Content-Length")
            if length is not None and length.strip().isdigit():
                self._bodyWanted = min(int(length), MAX_REJECTION_BODY)
        self._readBody(self._parser.rest)

    def _readBody(self, data: bytes) -> None:
        room = MAX_REJECTION_BODY + 16 - len(self._body)
        self._body += data[:room]
        if self._chunked:
            complete = self._body.startswith(b"0\r\n\r\n") or b"\r\n0\r\n\r\n" in self._body
        elif self._bodyWanted is not None:
            complete = len(self._body) >= self._bodyWanted
        else:
            complete = False
        if complete or len(self._body) >= MAX_REJECTION_BODY:
            self._finishRejection()
            self.transport.loseConnection()

    def _finishRejection(self) -> None:
        head = self._rejection
        if head is None or self._outcome.done:
            return
        body = bytes(self._body)
        if self._chunked:
            body = _dechunk(body)
        elif self._bodyWanted is not None:
            body = body[: self._bodyWanted]
        body = body[:MAX_REJECTION_BODY]
        reason = f"server refused the upgrade: {head.status} {head.reasonPhrase}".rstrip()
        self._fail(
            Failure(WebSocketHandshakeRejected(head.status, reason, list(head.headers.items()), body))
        )

    # -- failure -----------------------------------------------------------

    def _fail(self, failure: Failure) -> None:
        self._stopTimer()
        if self._outcome.done:
            return
        self._outcome.fire(failure)
        self.factory._handshakeFinished(failure)

    def _failAndClose(self, e: Exception) -> None:
        self._fail(Failure(e))
        self.transport.loseConnection()

    def _timedOut(self) -> None:
        self._timer = None
        if self._outcome.done and self._rejection is None:
            return
        if self._rejection is not None:
            # Enough of the refusal's body: report what arrived.
            self._finishRejection()
        else:
            self._fail(Failure(WebSocketOpenTimeout(self.factory.options.openTimeout)))
        self.transport.abortConnection()

    def _cancel(self) -> None:
        if self._outcome.done:
            return
        self._fail(Failure(CancelledError("the WebSocket connection attempt was cancelled")))
        if self.transport is not None:
            self.transport.abortConnection()

    def _stopTimer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None


def _dechunk(data: bytes) -> bytes:
    """Decode a chunked body as far as it is well-formed (best effort)."""
    out = bytearray()
    pos = 0
    while pos < len(data):
        end = data.find(b"\r\n", pos)
        if end == -1:
            break
        try:
            size = int(data[pos:end].split(b";", 1)[0].strip() or b"x", 16)
        except ValueError:
            return data if not out else bytes(out)
        if size == 0:
            break
        out += data[end + 2 : end + 2 + size]
        pos = end + 2 + size + 2
    return bytes(out)
