"""
Counting and tracking the connections of the C{twistd websocket} service:

  - L{trackedProtocol}: puts the service's bookkeeping (structured logs,
    counters) in front of any L{WebSocketProtocol} subclass, so the
    application classes stay free of it;
  - L{ServiceFactory}: a L{WebSocketServerFactory} that logs and counts
    rejected handshakes and refuses new connections beyond a limit or
    while stopping;
  - L{ConnectionTracker}: the open connections, their counters, and the
    graceful stop (the base of L{twisted_ws.twistd.service.WebSocketService}).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from twisted.application import service
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from zope.interface import directlyProvides, providedBy

from ..clock import defaultClock
from ..core.acceptance import Reject
from ..core.closecodes import CloseCode
from ..core.errors import HandshakeError
from ..core.handshake import HandshakeRequest
from ..protocol import WebSocketProtocol
from ..server.factory import WebSocketServerFactory
from .status import ConnectionStats

__all__ = [
    "ConnectionTracker",
    "ServiceFactory",
    "trackedProtocol",
    "formatAddress",
    "connectionsText",
]

#: One namespace for every log line of the twistd service, whichever module
#: of twisted_ws.twistd writes it.
_log = Logger(namespace="twisted_ws.twistd")


def connectionsText(count: int) -> str:
    """C{1 WebSocket connection}, C{2 WebSocket connections}: log lines a person reads."""
    return f"{count} WebSocket connection" + ("" if count == 1 else "s")


def formatAddress(address: Any) -> str:
    """C{host:port} for IP addresses, the path for UNIX ones."""
    host = getattr(address, "host", None)
    if host is not None:
        return f"[{host}]:{address.port}" if ":" in host else f"{host}:{address.port}"
    name = getattr(address, "name", None)
    if name is not None:
        return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
    return str(address)


class _CountingTransport:
    """
    The transport as the service's connections see it: counts the bytes
    written and forwards everything else to the real transport (whose
    interfaces it declares, so C{ISSLTransport.providedBy} still answers).
    """

    def __init__(self, transport: Any, stats: ConnectionStats) -> None:
        self._transport = transport
        self._stats = stats
        directlyProvides(self, *providedBy(transport))

    def write(self, data: bytes) -> None:
        self._stats.bytesOut += len(data)
        self._transport.write(data)

    def writeSequence(self, data: Sequence[bytes]) -> None:
        data = list(data)
        self._stats.bytesOut += sum(map(len, data))
        self._transport.writeSequence(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _TrackedConnection:
    """
    Mixed in front of the application's protocol class (see
    L{trackedProtocol}): registers the connection with the service, logs its
    opening and closing, and counts messages and bytes.  Every method calls
    the application's, which never needs to know.
    """

    _wsService: ConnectionTracker | None = None

    def makeConnection(self, transport: Any) -> None:
        svc = getattr(self.factory, "service", None)  # type: ignore[attr-defined]
        if svc is not None:
            self._wsService = svc
            transport = _CountingTransport(transport, svc.stats)
            svc.connectionOpened(self)  # type: ignore[arg-type]
        super().makeConnection(transport)  # type: ignore[misc]

    def connectionLost(self, reason: Any = None) -> None:
        try:
            super().connectionLost(reason)  # type: ignore[misc]
        finally:
            svc = self._wsService
            if svc is not None:
                svc.connectionEnded(self)  # type: ignore[arg-type]

    def dataReceived(self, data: bytes) -> None:
        svc = self._wsService
        if svc is not None:
            svc.stats.bytesIn += len(data)
        super().dataReceived(data)  # type: ignore[misc]

    def textMessageReceived(self, text: str) -> None:
        if self._wsService is not None:
            self._wsService.stats.messagesIn += 1
        super().textMessageReceived(text)  # type: ignore[misc]

    def binaryMessageReceived(self, data: bytes) -> None:
        if self._wsService is not None:
            self._wsService.stats.messagesIn += 1
        super().binaryMessageReceived(data)  # type: ignore[misc]

    def messageEnded(self) -> None:
        if self._wsService is not None:
            self._wsService.stats.messagesIn += 1
        super().messageEnded()  # type: ignore[misc]

    def sendMessage(self, *args: Any, **kwargs: Any) -> None:
        if self._wsService is not None:
            self._wsService.stats.messagesOut += 1
        super().sendMessage(*args, **kwargs)  # type: ignore[misc]

    def beginMessage(self, *args: Any, **kwargs: Any) -> Any:
        if self._wsService is not None:
            self._wsService.stats.messagesOut += 1
        return super().beginMessage(*args, **kwargs)  # type: ignore[misc]


_trackedClasses: dict[type, type] = {}


def trackedProtocol(cls: type[WebSocketProtocol]) -> type[WebSocketProtocol]:
    """
    A subclass of C{cls} that reports to the L{ConnectionTracker} found as
    its factory's C{service} attribute (logs, counters, graceful stop).
    """
    tracked = _trackedClasses.get(cls)
    if tracked is None:
        tracked = type(cls.__name__, (_TrackedConnection, cls), {"__module__": cls.__module__})
        _trackedClasses[cls] = tracked
    return tracked  # type: ignore[return-value]


class ServiceFactory(WebSocketServerFactory):
    """
    A L{WebSocketServerFactory} working for a L{ConnectionTracker}: it
    refuses new connections (503) while the service stops or beyond
    C{maxConnections}, and reports every refusal to the service.
    """

    def __init__(
        self,
        protocol: type[WebSocketProtocol],
        service: ConnectionTracker,
        *,
        maxConnections: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(trackedProtocol(protocol), **kwargs)
        self.service = service
        self.maxConnections = maxConnections

    def acceptRequest(self, request: HandshakeRequest) -> Any:
        if self.service.stopping:
            raise Reject(503, "the server is shutting down")
        if self.maxConnections and len(self.service.connections) >= self.maxConnections:
            raise Reject(503, "too many connections, try again later")
        return super().acceptRequest(request)

    def handshakeRejected(
        self, error: HandshakeError, request: HandshakeRequest | None, peer: Any
    ) -> None:
        self.service.rejected(peer, request, error)


class ConnectionTracker(service.MultiService):
    """
    The WebSocket connections a service's listeners opened: it counts them
    (L{ConnectionStats}), logs their opening and closing, and on
    C{stopService} closes every one with 1001 (going away), waiting a
    bounded grace period before aborting the stragglers.

    @ivar connections: the open connections (L{WebSocketProtocol}s).
    @ivar stats: the service's L{ConnectionStats}.
    @ivar stopTimeout: seconds the connections get to finish their close
        handshake when the service stops, before they are aborted.
    @ivar stopping: C{True} once C{stopService} began: new upgrades get 503.
    """

    closeCode = CloseCode.GOING_AWAY
    closeReason = "server shutting down"

    def __init__(self, stopTimeout: float = 5.0, clock: IReactorTime | None = None) -> None:
        super().__init__()
        self.clock = clock or defaultClock()
        self.stopTimeout = stopTimeout
        self.connections: dict[WebSocketProtocol, None] = {}
        self.stats = ConnectionStats(self.clock)
        self.stopping = False
        self._emptyWaiters: list[Deferred[None]] = []

    # -- connection bookkeeping --------------------------------------------

    def connectionOpened(self, protocol: WebSocketProtocol) -> None:
        self.connections[protocol] = None
        self.stats.connectionsOpen = len(self.connections)
        self.stats.connectionsTotal += 1
        request = protocol.request
        _log.info(
            "WebSocket open: {peer} {path}{subprotocolText}",
            peer=formatAddress(request.peer) if request else None,
            path=request.path if request else None,
            subprotocol=protocol.subprotocol,
            subprotocolText=f" (subprotocol {protocol.subprotocol})" if protocol.subprotocol else "",
            extensions=[getattr(e, "name", repr(e)) for e in protocol.extensions],
        )
        if self.stopping:
            # Accepted just before the stop began: it goes too.
            self.clock.callLater(0, protocol.close, self.closeCode, self.closeReason)

    def connectionEnded(self, protocol: WebSocketProtocol) -> None:
        self.connections.pop(protocol, None)
        self.stats.connectionsOpen = len(self.connections)
        request = protocol.request
        info = protocol.closeInfo
        _log.info(
            "WebSocket closed: {peer} {path} code={code} reason={reason!r} "
            "clean={wasClean} by={closedBy} sent={sentCode}",
            peer=formatAddress(request.peer) if request else None,
            path=request.path if request else None,
            code=int(info.code) if info else None,
            reason=info.reason if info else "",
            wasClean=info.wasClean if info else False,
            closedBy=("peer" if info.initiatedByPeer else "server") if info else None,
            sentCode=info.sentCode if info else None,
        )
        if not self.connections:
            waiters, self._emptyWaiters = self._emptyWaiters, []
            for d in waiters:
                d.callback(None)

    def rejected(self, peer: Any, request: HandshakeRequest | None, error: HandshakeError) -> None:
        self.stats.rejected += 1
        _log.info(
            "WebSocket rejected: {peer} {path} {status} {reason}",
            peer=formatAddress(peer) if peer is not None else "-",
            # A malformed request has no HandshakeRequest: "-", as in access logs.
            path=request.path if request is not None else "-",
            origin=request.origin if request is not None else None,
            status=error.status,
            reason=error.reason,
        )

    # -- stopping -------------------------------------------------------------

    def closeAll(
        self, code: int = CloseCode.GOING_AWAY, reason: str = "", timeout: float | None = None
    ) -> Deferred[None]:
        """
        Close every open connection with C{code}; the Deferred fires once
        they are all gone.  After C{timeout} seconds (default:
        C{stopTimeout}) the remaining ones are aborted, and the Deferred
        fires at most one second later whatever happens.
        """
        if not self.connections:
            return succeed(None)
        timeout = self.stopTimeout if timeout is None else timeout
        done: Deferred[None] = Deferred()
        self._emptyWaiters.append(done)
        for protocol in list(self.connections):
            protocol.close(code, reason)
        timers: list[IDelayedCall] = []

        def giveUp() -> None:
            if not done.called:
                _log.warn(
                    "{connections} did not go away",
                    count=len(self.connections),
                    connections=connectionsText(len(self.connections)),
                )
                done.callback(None)

        def abortRest() -> None:
            if self.connections:
                _log.info(
                    "aborting {connections} that did not finish closing",
                    count=len(self.connections),
                    connections=connectionsText(len(self.connections)),
                )
                for protocol in list(self.connections):
                    protocol.abortConnection()
                timers.append(self.clock.callLater(1.0, giveUp))

        timers.append(self.clock.callLater(timeout, abortRest))

        def cancelTimers(result: None) -> None:
            for t in timers:
                if t.active():
                    t.cancel()
            return result

        return done.addBoth(cancelTimers)

    def stopService(self) -> Deferred[Any]:
        """Stop listening, then close every connection with 1001 (bounded)."""
        self.stopping = True
        if self.connections:
            _log.info(
                "stopping: closing {connections} with {code}",
                count=len(self.connections),
                connections=connectionsText(len(self.connections)),
                code=int(self.closeCode),
            )
        listeners = maybeDeferred(service.MultiService.stopService, self)
        closing = self.closeAll(self.closeCode, self.closeReason)
        return DeferredList([listeners, closing], consumeErrors=True).addCallback(lambda _: None)
