"""
Counting and tracking the connections of the C{twistd websocket} service:

  - L{ServiceFactory}: a L{WebSocketServerFactory} that logs and counts
    rejected handshakes, refuses new connections beyond a limit or while
    stopping, and makes the service the C{observer} of every connection;
  - L{ConnectionTracker}: the L{IConnectionObserver} that keeps the open
    connections, their counters and the logs, and stops them gracefully
    (the base of L{twisted_ws.twistd.service.WebSocketService}).

The application's protocol class is used as it is: the service learns of
opens and closes through the protocol's observer hook and reads the
message and byte counts from C{protocol.traffic}, so nothing is wrapped
and nothing runs per message.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from twisted.application import service
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime, IStreamClientEndpoint
from twisted.logger import Logger
from zope.interface import implementer

from ..clock import defaultClock
from ..core.acceptance import Reject
from ..core.closecodes import CloseCode, CloseInfo
from ..core.errors import HandshakeError
from ..core.handshake import HandshakeRequest
from ..observer import IConnectionObserver
from ..protocol import WebSocketProtocol
from ..server.factory import WebSocketServerFactory
from .status import ConnectionStats

if TYPE_CHECKING:
    from ..apps.hub import BroadcastHub

__all__ = [
    "ConnectionTracker",
    "ServiceFactory",
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


class ServiceFactory(WebSocketServerFactory):
    """
    A L{WebSocketServerFactory} working for a L{ConnectionTracker}: it
    refuses new connections (503) while the service stops or beyond
    C{maxConnections}, reports every refusal to the service, and makes the
    service the C{observer} of the connections it builds (instances of
    C{protocol} itself, not of a subclass).
    """

    # Set by makeService for the mode's protocol: --mode broadcast's hub
    # (read by BroadcastProtocol), --mode bridge's backend and its
    # description (read by BridgeProtocol).
    hub: BroadcastHub
    target: IStreamClientEndpoint
    targetDescription: str

    def __init__(
        self,
        protocol: type[WebSocketProtocol],
        service: ConnectionTracker,
        *,
        maxConnections: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(protocol, **kwargs)
        self.service = service
        self.observer = service
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


@implementer(IConnectionObserver)
class ConnectionTracker(service.MultiService):
    """
    The WebSocket connections a service's listeners opened: as their
    L{IConnectionObserver} it counts them (L{ConnectionStats}), logs their
    opening and closing, and on C{stopService} closes every one with 1001
    (going away), waiting a bounded grace period before aborting the
    stragglers.

    @ivar connections: the open connections (L{WebSocketProtocol}s).
    @ivar stats: the service's L{ConnectionStats}; messages and bytes come
        from each connection's C{traffic}, added up at close and, for the
        open ones, whenever someone reads them.
    @ivar stopTimeout: seconds the connections get to finish their close
        handshake when the service stops, before they are aborted.
    @ivar stopping: C{True} once C{stopService} began: new upgrades get 503.
    @ivar workerId: which worker process this is, when there are several
        (C{--workers}); C{None} for the only one.  The status page shows it.
    """

    closeCode = CloseCode.GOING_AWAY
    closeReason = "server shutting down"
    workerId: int | str | None = None

    def __init__(self, stopTimeout: float = 5.0, clock: IReactorTime | None = None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # Twisted's MultiService.__init__ is unannotated
        self.clock = clock or defaultClock()
        self.stopTimeout = stopTimeout
        self.connections: dict[WebSocketProtocol, None] = {}
        self.stats = ConnectionStats(self.clock, lambda: [p.traffic for p in self.connections])
        self.stopping = False
        self._emptyWaiters: list[Deferred[None]] = []

    def identity(self) -> dict[str, Any]:
        """
        Which process answers: the worker (0 when there is only one) and
        the process id, so that the status pages of several workers behind
        one port can be told apart.
        """
        return {"worker": 0 if self.workerId is None else self.workerId, "pid": os.getpid()}

    # -- IConnectionObserver --------------------------------------------------

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

    def connectionClosed(self, protocol: WebSocketProtocol, info: CloseInfo) -> None:
        self.connections.pop(protocol, None)
        self.stats.connectionsOpen = len(self.connections)
        self.stats.closed(info.code, protocol.traffic)
        request = protocol.request
        _log.info(
            "WebSocket closed: {peer} {path} code={code} reason={reason!r} "
            "clean={wasClean} by={closedBy} sent={sentCode}",
            peer=formatAddress(request.peer) if request else None,
            path=request.path if request else None,
            code=int(info.code),
            reason=info.reason,
            wasClean=info.wasClean,
            closedBy="peer" if info.initiatedByPeer else "server",
            sentCode=info.sentCode,
        )
        if not self.connections:
            waiters, self._emptyWaiters = self._emptyWaiters, []
            for d in waiters:
                d.callback(None)

    # -- refusals -------------------------------------------------------------

    def rejected(self, peer: Any, request: HandshakeRequest | None, error: HandshakeError) -> None:
        self.stats.refused(error.status)
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
