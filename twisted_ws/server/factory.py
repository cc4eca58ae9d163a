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
from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Factory
from twisted.logger import Logger

from ..clock import defaultClock
from ..core.acceptance import Accept, Reject
from ..core.errors import HandshakeError
from ..core.extensions import ServerExtensionFactory
from ..core.handshake import Accepted, HandshakeRequest, ServerHandshake
from ..core.options import WebSocketOptions
from ..handler import Handler, HandlerProtocols
from ..protocol import WebSocketProtocol
from .accepthook import AcceptHook
from .upgrade import ServerHandshakeProtocol

__all__ = ["WebSocketServerFactory"]

_log = Logger()


class WebSocketServerFactory(Factory[ServerHandshakeProtocol]):
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
    observer: Any = None  # an IConnectionObserver told of each open and close
    handshakeProtocol: type[ServerHandshakeProtocol] = ServerHandshakeProtocol

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

    @classmethod
    def forHandler(
        cls, handler: Handler, *, queueSize: int = 16, streamMessages: bool = False, **options: Any
    ) -> WebSocketServerFactory:
        """
        A factory whose every connection is run by C{async def handler(ws)}
        with a L{WebSocket}: its return closes the connection with 1000, its
        exception with 1011 (logged), its cancellation with 1001.  Handlers
        still running when the factory stops (its last port stops listening)
        are cancelled.  C{queueSize} messages may wait unread before reading
        pauses; C{streamMessages} enables C{ws.recvStream()}.  The other
        keywords are this class's.
        """
        return cls(HandlerProtocols(handler, queueSize, streamMessages), **options)

    def stopFactory(self) -> None:
        """No port listens any more: cancel the handlers of L{forHandler}."""
        cancelAll = getattr(self.protocol, "cancelAll", None)
        if cancelAll is not None:
            cancelAll()

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
        p: WebSocketProtocol = self.protocol()
        p.factory = self
        return p

    def newHandshake(self) -> ServerHandshake:
        """
        The I/O-free handshake for one connection, with this factory's
        limits, subprotocols and extensions (all negotiation happens in it).
        """
        return ServerHandshake(self.options, self.subprotocols, self.extensions)

    def completeHandshake(
        self,
        handshake: ServerHandshake,
        decision: Accept | None,
        extraHeaders: Sequence[tuple[str, str]] = (),
    ) -> tuple[WebSocketProtocol, Accepted]:
        """
        Accept C{handshake} with the accept hook's C{decision} (C{None}: the
        defaults) and build the
        application's protocol from the outcome (with its C{request},
        C{subprotocol}, C{extensions}, C{options} and C{clock} set, not yet
        connected).

        The protocol is built before the handshake is accepted, so a
        protocol that cannot be built still gets the client a refusal.

        @param extraHeaders: response headers sent after the L{Accept}'s.
        @return: the protocol and the L{Accepted} outcome, whose C{data} is
            written before the transport is handed to the protocol.
        @raise ValueError: the L{Accept} names a subprotocol the client did
            not offer, or a header the handshake sets itself.
        """
        request = handshake.request
        assert request is not None
        protocol = self.buildWebSocketProtocol(request)
        accepted = handshake.accept(decision, extraHeaders)
        protocol.request = accepted.request
        protocol.subprotocol = accepted.subprotocol
        protocol.extensions = accepted.extensions
        protocol.options = self.options
        protocol.clock = self.clock
        return protocol, accepted
