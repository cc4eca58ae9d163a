"""
The client's opening handshake on a connected transport: Twisted glue
around the I/O-free L{ClientHandshake}, which builds the request and reads
the answer (and a refusal's body).  Here: the timer, the errors the
application sees, and the hand-off to the application's
L{WebSocketProtocol}.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet import error
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..core.handshake import (
    MAX_REFUSAL_BODY,
    Accepted,
    ClientHandshake,
    ClientState,
    Failed,
    H2ClientHandshake,
    HandshakeRequest,
    Rejected,
)
from ..handoff import handOff
from ..protocol import WebSocketProtocol
from ..transport import IStreamTransport, setNoDelay
from .errors import WebSocketHandshakeRejected, WebSocketOpenTimeout
from .waiters import Waiters

if TYPE_CHECKING:
    from .factory import WebSocketClientFactory

__all__ = ["ClientAttempt", "ClientHandshakeProtocol", "MAX_REJECTION_BODY", "buildClientProtocol", "rejectionError"]

_log = Logger()

#: The most bytes of a refusal's body kept on L{WebSocketHandshakeRejected}.
MAX_REJECTION_BODY = MAX_REFUSAL_BODY


def rejectionError(outcome: Rejected) -> WebSocketHandshakeRejected:
    """The error the application sees for a server's refusal."""
    reason = f"server refused the upgrade: {outcome.status} {outcome.reason}".rstrip()
    return WebSocketHandshakeRejected(outcome.status, reason, list(outcome.headers), outcome.body)


def buildClientProtocol(
    factory: WebSocketClientFactory, addr: Any, accepted: Accepted
) -> WebSocketProtocol:
    """
    The application's protocol for an accepted handshake, told what was
    negotiated -- whatever carried the handshake (HTTP/1.1 here, an HTTP/2
    stream in L{twisted_ws.http2.client}).

    @raise TypeError: the factory built something else than a
        L{WebSocketProtocol}; or whatever the factory raised.
    """
    protocol = factory.buildWebSocketProtocol(addr)
    if not isinstance(protocol, WebSocketProtocol):
        raise TypeError(f"{protocol!r} is not a WebSocketProtocol")
    protocol.isClient = True
    protocol.request = accepted.request
    protocol.response = accepted.response  # type: ignore[attr-defined]  # client-side only, not declared by WebSocketProtocol
    protocol.subprotocol = accepted.subprotocol
    protocol.extensions = list(accepted.extensions)
    protocol.options = factory.options
    protocol.clock = factory.clock
    return protocol


class ClientAttempt:
    """
    What every client handshake protocol shares (HTTP/1.1 here, HTTP/2 in
    L{twisted_ws.http2.client}): the outcome, given once; the open timeout;
    a cancel; and, when either comes while a refusal's body is still
    arriving, the refusal with what arrived as the answer.

    Subclasses set C{factory}, C{_handshake}, C{_outcome} (a L{Waiters}
    whose cancel calls L{_cancel}) and C{_timer}, and provide
    L{_concludeSlowRefusal}; L{_abort} may add to dropping the transport.
    """

    factory: WebSocketClientFactory
    transport: IStreamTransport
    _outcome: Waiters
    _timer: IDelayedCall | None
    _handshake: ClientHandshake | H2ClientHandshake

    def _concludeSlowRefusal(self) -> None:
        """End the handshake with the refusal whose body is still arriving."""
        raise NotImplementedError

    def _abort(self) -> None:
        self.transport.abortConnection()

    def _fail(self, failure: Failure) -> None:
        self._stopTimer()
        if self._outcome.done:
            return
        self._outcome.fire(failure)
        self.factory.handshakeFinished(failure)

    def _giveUp(self, failure: Failure) -> None:
        if self._handshake.state is ClientState.READING_BODY:
            # A refusal whose body is slow: report what arrived.
            self._concludeSlowRefusal()
        else:
            self._fail(failure)

    def _timedOut(self) -> None:
        self._timer = None
        if self._outcome.done:
            return
        self._giveUp(Failure(WebSocketOpenTimeout(self.factory.options.openTimeout)))
        self._abort()

    def _cancel(self) -> None:
        # Given up (e.g. the endpoint's open timeout) before an answer.
        if self._outcome.done:
            return
        self._giveUp(Failure(CancelledError("the WebSocket connection attempt was cancelled")))
        if self.transport is not None:
            self._abort()

    def _stopTimer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None


class ClientHandshakeProtocol(ClientAttempt, Protocol):
    """
    Sends the upgrade request, reads the answer, then hands the transport
    to the application's protocol, which it builds itself (through the
    factory that built it) and tells what the handshake decided.

    L{whenOpen} fires with that protocol (or the wrapper of it that the
    factory's C{wrapWebSocketProtocol} made), or fails with
    L{WebSocketHandshakeRejected} (an HTTP refusal: status, headers, body),
    L{InvalidServerResponse} (not HTTP, or a 101 that breaks RFC 6455),
    L{HandshakeClosed} (no answer before the connection ended),
    L{WebSocketOpenTimeout}, or the transport's error (e.g. TLS
    verification).

    @ivar request: the L{HandshakeRequest} sent.
    """

    _handshake: ClientHandshake
    factory: WebSocketClientFactory
    transport: IStreamTransport

    def __init__(self, factory: WebSocketClientFactory, addr: Any = None) -> None:
        self.factory = factory
        self._addr = addr
        self._handshake = factory.buildHandshake()
        self._outcome = Waiters(self._cancel)
        self._timer: IDelayedCall | None = None
        self._delegate: Any = None

    @property
    def request(self) -> HandshakeRequest:
        return self._handshake.request

    def whenOpen(self) -> Deferred[WebSocketProtocol]:
        """A Deferred of the open application protocol (see the class doc)."""
        return self._outcome.wait()

    # -- life cycle --------------------------------------------------------

    def connectionMade(self) -> None:
        setNoDelay(self.transport)
        timeout = self.factory.options.openTimeout
        if timeout is not None:
            self._timer = self.factory.clock.callLater(timeout, self._timedOut)
        self.transport.write(self._handshake.requestBytes)

    def dataReceived(self, data: bytes) -> None:
        if self._delegate is not None:
            self._delegate.dataReceived(data)
        elif not self._outcome.done:
            self._conclude(self._handshake.receiveData(data))

    def connectionLost(self, reason: Failure | None = None) -> None:
        if self._delegate is not None:
            self._delegate.connectionLost(reason)
            return
        self._stopTimer()
        if self._outcome.done:
            return
        outcome = self._handshake.connectionLost()
        if isinstance(outcome, Failed) and not (
            reason is None or reason.check(error.ConnectionDone, error.ConnectionLost)
        ):
            # The transport's own error (TLS verification, a reset) says more.
            self._fail(reason)
        else:
            self._conclude(outcome, close=False)

    def _conclude(self, outcome: Accepted | Rejected | Failed | None, close: bool = True) -> None:
        if outcome is None:
            return
        if isinstance(outcome, Accepted):
            self._open(outcome)
            return
        if isinstance(outcome, Rejected):
            self._fail(Failure(rejectionError(outcome)))
        else:
            self._fail(Failure(outcome.error))
        if close:
            self.transport.loseConnection()

    # -- success -----------------------------------------------------------

    def _open(self, accepted: Accepted) -> None:
        factory = self.factory
        try:
            protocol = buildClientProtocol(factory, self._addr, accepted)
        except Exception:
            failure = Failure()
            _log.failure("building the WebSocket protocol failed", failure)
            self._fail(failure)
            self.transport.abortConnection()
            return
        self._stopTimer()
        receiver = factory.wrapWebSocketProtocol(protocol, self._addr)
        # The protocol gets the first frames (read with the 101) before
        # whenOpen fires.
        self._delegate = handOff(self, receiver, self.transport, accepted.trailingData)
        self._outcome.fire(receiver)
        factory.handshakeFinished(receiver)

    # -- failure -----------------------------------------------------------

    def _concludeSlowRefusal(self) -> None:
        self._conclude(self._handshake.connectionLost(), close=False)
