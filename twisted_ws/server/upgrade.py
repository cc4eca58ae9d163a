"""
The protocol each server connection starts with: it reads the HTTP
upgrade request within the configured limits, asks the factory's accept
hook, answers C{101 Switching Protocols} (or refuses), then hands the
transport to the application's L{WebSocketProtocol}, which receives any
bytes that arrived with the request first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.interfaces import ISSLTransport
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

from ..core.acceptance import Accept
from ..core.errors import HandshakeError
from ..core.handshake import HandshakeRequest, buildRejectResponse, validateRequest
from ..core.http import HeadParser
from ..handoff import switchProtocol
from ..protocol import WebSocketProtocol
from ..transport import peerCertificate
from .accepthook import PendingHandshake, runAcceptHook

if TYPE_CHECKING:
    from .factory import WebSocketServerFactory

__all__ = ["ServerHandshakeProtocol"]


class ServerHandshakeProtocol(Protocol, PendingHandshake):
    """
    Reads one upgrade request, answers it, and steps aside.

    Its life ends either with a rejection (an HTTP error response and a
    closed connection) or with the transport switched to the application's
    protocol.
    """

    factory: WebSocketServerFactory

    def __init__(self, factory: WebSocketServerFactory) -> None:
        self.factory = factory
        options = factory.options
        self._parser = HeadParser(
            True,
            maxLineLength=options.maxRequestLineLength,
            maxHeaderBytes=options.maxHeaderBytes,
            maxHeaderCount=options.maxHeaderCount,
        )
        self._request: HandshakeRequest | None = None
        self._readAhead = b""
        self._paused = False
        self._delegate: WebSocketProtocol | None = None

    def connectionMade(self) -> None:
        self._startTimer()

    def dataReceived(self, data: bytes) -> None:
        if self._delegate is not None:
            self._delegate.dataReceived(data)
            return
        if self._done:
            return
        if self._request is not None:
            # The accept hook is still deciding; keep what arrives for the
            # WebSocket (reading is paused, so this stays small).
            self._readAhead += data
            return
        try:
            head = self._parser.feed(data)
            if head is None:
                return
            request = validateRequest(head)  # type: ignore[arg-type]
        except HandshakeError as e:
            self._reject(e)
            return
        request.peer = self.transport.getPeer()
        request.local = self.transport.getHost()
        request.secure = ISSLTransport.providedBy(self.transport)
        request.peerCertificate = peerCertificate(self.transport)
        self._request = request
        self._readAhead = self._parser.rest
        decision = runAcceptHook(self.factory, request, self._accepted, self._reject)
        if decision is not None and not self._done:
            # The hook is deciding: read no more meanwhile.
            self.transport.pauseProducing()
            self._paused = True
            self._decision = decision

    def _accepted(self, accept: Accept) -> None:
        self._decision = None
        if self._done:
            return
        request = self._request
        assert request is not None
        protocol, response = self.factory.completeHandshake(request, accept)
        self._finish()
        transport = self.transport
        transport.write(response)
        if not switchProtocol(transport, self, protocol):
            self._delegate = protocol
        protocol.makeConnection(transport)
        if self._paused:
            transport.resumeProducing()
        rest, self._readAhead = self._readAhead, b""
        if rest and protocol.connected:
            protocol.dataReceived(rest)

    def _reject(self, error: HandshakeError) -> None:
        self._decision = None
        if self._done:
            return
        self._finish()
        self.factory.noteRejection(error, self._request, self.transport.getPeer())
        body = getattr(error, "body", None)
        self.transport.write(buildRejectResponse(error.status, error.reason, error.headers, body))
        self.transport.loseConnection()

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        if self._delegate is not None:
            self._delegate.connectionLost(reason)
            return
        self._abandon()
