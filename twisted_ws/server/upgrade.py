"""
The protocol each server connection starts with: it reads the HTTP
upgrade request within the configured limits, asks the factory's accept
hook, answers C{101 Switching Protocols} (or refuses), then hands the
transport to the application's L{WebSocketProtocol}, which receives any
bytes that arrived with the request first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import ISSLTransport
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

from ..core.handshake import Accepted, Rejected
from ..handoff import handOff
from ..protocol import WebSocketProtocol
from ..transport import IStreamTransport, peerCertificate
from .accepthook import PendingHandshake

if TYPE_CHECKING:
    from .factory import WebSocketServerFactory

__all__ = ["ServerHandshakeProtocol"]


class ServerHandshakeProtocol(Protocol, PendingHandshake):
    """
    Reads one upgrade request, answers it, and steps aside.

    The factory's L{ServerHandshake} says what the bytes mean (and keeps
    what arrives while the accept hook decides); this protocol only does
    the I/O.  Its life ends either with a rejection (an HTTP error response
    and a closed connection) or with the transport handed to the
    application's protocol.
    """

    factory: WebSocketServerFactory
    transport: IStreamTransport

    def __init__(self, factory: WebSocketServerFactory) -> None:
        self.factory = factory
        self.handshake = factory.newHandshake()
        self._paused = False
        self._delegate: WebSocketProtocol | None = None
        # PendingHandshake's state, on the instance (faster to read on CPython 3.11).
        self._done, self._timer, self._decision = False, None, None

    def connectionMade(self) -> None:
        self._startTimer()

    def dataReceived(self, data: bytes) -> None:
        if self._delegate is not None:
            self._delegate.dataReceived(data)
            return
        if self._done:
            return
        outcome = self.handshake.receiveData(data)
        if outcome is None:
            return
        if isinstance(outcome, Rejected):
            self._refuse(outcome)
            return
        transport = self.transport
        outcome.addressesFrom(transport.getPeer, transport.getHost)
        if ISSLTransport.providedBy(transport):
            outcome.secure = True
            outcome.peerCertificate = peerCertificate(transport)
        self._askApplication(outcome)
        if self._decision is not None and not self._done:
            # The hook is deciding: read no more meanwhile.
            transport.pauseProducing()
            self._paused = True

    def _peer(self) -> Any:
        return self.transport.getPeer()

    def _switch(self, protocol: WebSocketProtocol, accepted: Accepted) -> None:
        transport = self.transport
        transport.write(accepted.data)
        if self._paused:
            # Before the hand-off, so that a pause the WebSocket asks for
            # while it starts up is not undone.
            transport.resumeProducing()
        # Forward to it while it starts, in case the transport is of a shape
        # that keeps calling us (handOff then says so).
        self._delegate = protocol
        self._delegate = handOff(self, protocol, transport, accepted.trailingData)

    def _sendRefusal(self, rejected: Rejected) -> None:
        self.transport.write(rejected.data)
        self.transport.loseConnection()

    def connectionLost(self, reason: Failure | None = None) -> None:
        if self._delegate is not None:
            self._delegate.connectionLost(reason)
            return
        self._abandon()
