"""
The WebSocket server: a factory for any Twisted listener, and the protocol
that performs the opening handshake before switching the transport.

L{WebSocketServerFactory} is an ordinary C{IProtocolFactory}: pass it to
C{reactor.listenTCP}, an endpoint's C{listen} or a strports description
(tcp, ssl, unix).  Each connection first gets a L{ServerHandshakeProtocol},
which reads the HTTP upgrade request within the configured limits, asks the
factory's accept hook, answers C{101 Switching Protocols} and then hands the
transport to the application's L{WebSocketProtocol}: that protocol becomes
the transport's protocol and receives any bytes that arrived with the
request first.
"""

from __future__ import annotations

import fnmatch
from inspect import iscoroutine
from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime, ISSLTransport
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from .core.acceptance import DEFAULT_SUBPROTOCOL, Accept, Reject
from .core.errors import HandshakeError
from .core.extensions import ServerExtensionFactory, negotiateServerExtensions
from .core.handshake import (
    HandshakeRequest,
    buildAcceptResponse,
    buildRejectResponse,
    selectSubprotocol,
    validateRequest,
)
from .core.http import HeadParser
from .core.options import WebSocketOptions
from .clock import defaultClock
from .protocol import WebSocketProtocol
from .switching import switchProtocol
from .tlsoptions import peerCertificate

__all__ = ["WebSocketServerFactory", "ServerHandshakeProtocol", "AcceptHook", "resolveDecision"]

_log = Logger()

#: An accept hook: given the request, return None / an Accept / a Reject (or
#: raise Reject), directly or through a Deferred.
AcceptHook = Callable[[HandshakeRequest], Any]


class WebSocketServerFactory(Factory):
    """
    Build server-side WebSocket connections.

    @ivar protocol: the application's L{WebSocketProtocol} subclass (or any
        callable returning one), built once a handshake is accepted.
    @ivar subprotocols: subprotocols this server speaks, in preference order.
    @ivar allowedOrigins: if not C{None}, C{Origin} values (shell-style
        patterns such as C{"https://*.example.com"}) a browser may connect
        from; requests without C{Origin} (non-browser clients) pass.
    @ivar accept: an optional accept hook (see L{acceptRequest}).
    @ivar extensions: server extension factories (e.g. permessage-deflate).
    @ivar options: the L{WebSocketOptions} in force (limits and timeouts).
    @ivar clock: the reactor used for timers.
    """

    protocol: Any = WebSocketProtocol
    handshakeProtocol: type[ServerHandshakeProtocol]

    def __init__(
        self,
        protocol: Callable[[], WebSocketProtocol] | None = None,
        *,
        subprotocols: Sequence[str] = (),
        allowedOrigins: Sequence[str] | None = None,
        accept: AcceptHook | None = None,
        extensions: Sequence[ServerExtensionFactory] = (),
        options: WebSocketOptions | None = None,
        clock: IReactorTime | None = None,
        **optionValues: Any,
    ) -> None:
        if protocol is not None:
            self.protocol = protocol
        self.subprotocols = list(subprotocols)
        self.allowedOrigins = (
            None if allowedOrigins is None else [o.lower() for o in allowedOrigins]
        )
        self.accept = accept
        self.extensions = list(extensions)
        self.options = WebSocketOptions.fromKeywords(options, **optionValues)
        self.clock = clock or defaultClock()

    def buildProtocol(self, addr: Any) -> ServerHandshakeProtocol:
        p = self.handshakeProtocol(self)
        p.factory = self
        return p

    def checkOrigin(self, request: HandshakeRequest) -> None:
        """Raise L{Reject} (403) when the browser's origin is not allowed."""
        if self.allowedOrigins is None or request.origin is None:
            return
        origin = request.origin.lower()
        for pattern in self.allowedOrigins:
            if fnmatch.fnmatchcase(origin, pattern):
                return
        raise Reject(403, f"origin {request.origin} is not allowed")

    def acceptRequest(self, request: HandshakeRequest) -> Any:
        """
        Decide on a valid upgrade request: return C{None} or an L{Accept}
        to accept, return or raise a L{Reject} to refuse, or return a
        Deferred of either.  The default checks the origin, then calls the
        C{accept} hook if there is one.  Override in a subclass, or pass
        C{accept=}.
        """
        self.checkOrigin(request)
        if self.accept is not None:
            return self.accept(request)
        return None

    def handshakeRejected(
        self, error: HandshakeError, request: HandshakeRequest | None, peer: Any
    ) -> None:
        """
        An opening handshake was refused: a malformed request (C{request}
        is then C{None}), a L{Reject} from the accept hook, a timeout.
        Nothing by default; override to log or count refusals.
        """

    def noteRejection(
        self, error: HandshakeError, request: HandshakeRequest | None, peer: Any
    ) -> None:
        """Call L{handshakeRejected}, never letting it break the answer."""
        try:
            self.handshakeRejected(error, request, peer)
        except Exception:
            _log.failure("handshakeRejected failed")

    def buildWebSocketProtocol(self, request: HandshakeRequest) -> WebSocketProtocol:
        """Build the application's protocol for an accepted request."""
        p = self.protocol()
        p.factory = self
        return p

    def completeHandshake(
        self,
        request: HandshakeRequest,
        accept: Accept,
        extraHeaders: Sequence[tuple[str, str]] = (),
    ) -> tuple[WebSocketProtocol, bytes]:
        """
        Finish an accepted handshake: pick the subprotocol, negotiate the
        extensions, build the C{101} answer and the application's protocol
        (with its C{request}, C{subprotocol}, C{extensions}, C{options} and
        C{clock} set, not yet connected).

        Every server front end (the upgrade protocol, the twisted.web
        resource) goes through here, so they negotiate identically.

        @param extraHeaders: response headers added after the L{Accept}'s.
        @return: the protocol and the response bytes to write before
            switching the transport to it.
        @raise ValueError: the L{Accept} names a subprotocol the client did
            not offer, or a header the handshake sets itself.
        """
        subprotocol = accept.subprotocol
        if subprotocol is DEFAULT_SUBPROTOCOL:
            subprotocol = selectSubprotocol(request.protocols, self.subprotocols)
        extensionsHeader, extensions = negotiateServerExtensions(
            request.extensions, self.extensions
        )
        response = buildAcceptResponse(
            request,
            subprotocol=subprotocol,  # type: ignore[arg-type]
            extensionsHeader=extensionsHeader,
            extraHeaders=[*accept.headers, *extraHeaders],
        )
        protocol = self.buildWebSocketProtocol(request)
        request.headers.compact()
        protocol.request = request
        protocol.subprotocol = subprotocol  # type: ignore[assignment]
        protocol.extensions = extensions
        protocol.options = self.options
        protocol.clock = self.clock
        return protocol, response


def resolveDecision(decision: Any) -> Accept:
    """
    Normalise what an accept hook answered: C{None} or C{True} accept with
    the defaults, an L{Accept} is returned as is, and a L{Reject} (or
    C{False}, a plain 403) is raised.

    @raise Reject: the hook refused.
    @raise TypeError: the hook answered something else.
    """
    if decision is None or decision is True:
        return Accept()
    if isinstance(decision, Accept):
        return decision
    if isinstance(decision, Reject):
        raise decision
    if decision is False:
        raise Reject()
    raise TypeError(f"an accept hook must answer None, Accept or Reject, not {decision!r}")


def runAcceptHook(
    factory: WebSocketServerFactory,
    request: HandshakeRequest,
    accepted: Callable[[Accept], None],
    refused: Callable[[HandshakeError], None],
) -> Deferred[Any] | None:
    """
    Ask C{factory.acceptRequest} about C{request} and report the answer
    exactly once: C{accepted(Accept)} or C{refused(HandshakeError)}.

    Shared by every server front end (the upgrade protocol, the twisted.web
    resource).  A hook that answers at once (the common case) is handled
    without any Deferred; one that returns a Deferred or a coroutine is
    waited for.  A crash in the hook, or in C{accepted}, is logged and
    refused with 500, telling the client nothing about the server.

    @return: the Deferred still pending (cancel it to give up), or C{None}
        once decided.
    """

    def decide(result: Any) -> None:
        if isinstance(result, Failure):
            if result.check(CancelledError):
                return  # the caller gave up (timeout, connection lost)
            if result.check(HandshakeError):
                refused(result.value)  # type: ignore[arg-type]
                return
            _log.failure("WebSocket accept hook failed", result)
            refused(HandshakeError(500, "Internal Server Error"))
            return
        try:
            accept = resolveDecision(result)
        except HandshakeError as e:
            refused(e)
            return
        except TypeError:
            _log.failure("WebSocket accept hook gave an invalid answer")
            refused(HandshakeError(500, "Internal Server Error"))
            return
        try:
            accepted(accept)
        except BaseException:
            _log.failure("WebSocket handshake failed")
            refused(HandshakeError(500, "Internal Server Error"))

    try:
        decision = factory.acceptRequest(request)
    except BaseException:
        decide(Failure())
        return None
    if iscoroutine(decision):
        decision = Deferred.fromCoroutine(decision)
    if isinstance(decision, Deferred):
        decision.addBoth(decide)
        return decision
    decide(decision)
    return None


class PendingHandshake:
    """
    The open timeout and the accept hook's pending answer of one opening
    handshake, shared by the upgrade protocol and the twisted.web resource.

    Subclasses provide C{factory} and C{_reject(error)}; C{_done} turns
    true once the handshake is answered either way.
    """

    factory: WebSocketServerFactory
    _done = False
    _timer: IDelayedCall | None = None
    _decision: Deferred[Any] | None = None

    def _reject(self, error: HandshakeError) -> None:
        raise NotImplementedError

    def _startTimer(self) -> None:
        timeout = self.factory.options.openTimeout
        if timeout is not None:
            self._timer = self.factory.clock.callLater(timeout, self._timedOut)

    def _finish(self) -> None:
        self._done = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _timedOut(self) -> None:
        self._timer = None
        if self._done:
            return
        d = self._decision
        self._reject(HandshakeError(408, "opening handshake timed out"))
        if d is not None:
            d.cancel()

    def _abandon(self) -> None:
        """The client went away: stop the timer, cancel a pending hook."""
        self._finish()
        d, self._decision = self._decision, None
        if d is not None:
            d.cancel()


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


WebSocketServerFactory.handshakeProtocol = ServerHandshakeProtocol
