"""
L{WebSocketClientFactory}: an C{IProtocolFactory} for one WebSocket URL,
usable with any client endpoint or C{reactor.connectTCP}: its protocol
performs the opening handshake, then hands the transport to the
application's protocol.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import ClientFactory
from twisted.python.failure import Failure

from ..clock import defaultClock
from ..core.extensions import ClientExtensionFactory
from ..core.handshake import MAX_REFUSAL_BODY, ClientHandshake
from ..core.options import WebSocketOptions
from ..core.urls import WebSocketURL, parseURL
from ..protocol import WebSocketProtocol
from .handshake import ClientHandshakeProtocol

__all__ = ["WebSocketClientFactory", "HeaderPairs", "headerPairs"]

HeaderPairs = Mapping[str, str] | Iterable[tuple[str, str]]


def headerPairs(headers: HeaderPairs) -> list[tuple[str, str]]:
    """Extra request headers, given as a mapping or as pairs, as a list of pairs."""
    if isinstance(headers, Mapping):
        return [(str(k), str(v)) for k, v in headers.items()]
    return [(str(k), str(v)) for k, v in headers]


class WebSocketClientFactory(ClientFactory[ClientHandshakeProtocol]):
    """
    Build client-side WebSocket connections to one URL.

    Usable with any client endpoint or connector: its protocol sends the
    upgrade request for C{url} and, once the server accepted it, makes the
    application's protocol (C{protocol()}) the transport's protocol.  Each
    connection's L{ClientHandshakeProtocol.whenOpen} tells how the
    handshake ended; L{whenOpen} here is the same for the next connection
    made with this factory.

    @ivar protocol: the application's L{WebSocketProtocol} subclass or a
        zero-argument callable returning one.
    @ivar url: the L{WebSocketURL} (only its host, port and resource are
        used here: the transport is up to whoever connects the factory).
    """

    protocol: Any = WebSocketProtocol
    observer: Any = None  # an IConnectionObserver told of each open and close
    handshakeProtocol: type[ClientHandshakeProtocol] = ClientHandshakeProtocol

    def __init__(
        self,
        protocol: Callable[[], WebSocketProtocol] | None = None,
        url: str | WebSocketURL = "ws://localhost/",
        *,
        subprotocols: Sequence[str] = (),
        headers: HeaderPairs = (),
        origin: str | None = None,
        extensions: Sequence[ClientExtensionFactory] = (),
        options: WebSocketOptions | None = None,
        clock: IReactorTime | None = None,
        **optionValues: Any,
    ) -> None:
        if protocol is not None:
            self.protocol = protocol
        self.url = parseURL(url)
        if isinstance(subprotocols, str):
            subprotocols = [subprotocols]
        self.subprotocols = list(subprotocols)
        self.headers = headerPairs(headers)
        self.origin = origin
        self.extensions = list(extensions)
        self.options = WebSocketOptions.fromKeywords(options, **optionValues)
        self.clock = clock or defaultClock()
        self._openWaiters: list[Deferred[Any]] = []
        # Fail now, not at connect time, on bad headers or subprotocol names.
        self.buildHandshake()

    def buildHandshake(self) -> ClientHandshake:
        """The I/O-free handshake of one connection (with a fresh key)."""
        return ClientHandshake(
            self.url.hostHeader,
            self.url.resource,
            subprotocols=self.subprotocols,
            extensions=self.extensions,
            origin=self.origin,
            headers=self.headers,
            options=self.options,
            maxBodySize=MAX_REFUSAL_BODY,
        )

    def buildProtocol(self, addr: Any) -> ClientHandshakeProtocol:
        return self.handshakeProtocol(self, addr)

    def buildWebSocketProtocol(self, addr: Any) -> WebSocketProtocol:
        """
        Build the application's protocol once the server accepted; the
        handshake protocol then tells it what was negotiated, so this must
        return the L{WebSocketProtocol} itself, not a wrapper of it.
        """
        p: WebSocketProtocol = self.protocol()  # checked by the handshake protocol
        p.factory = self
        return p

    def wrapWebSocketProtocol(self, protocol: WebSocketProtocol, addr: Any) -> Any:
        """
        What the transport is handed to once the WebSocket is open: the
        protocol itself, or (overridden) a wrapper that forwards to it, for
        whoever must see the connection's end (e.g. C{ClientService}).
        """
        return protocol

    def whenOpen(self) -> Deferred[WebSocketProtocol]:
        """
        A Deferred of how the next handshake made with this factory ends
        (for use with C{reactor.connectTCP} and other connectors).
        """
        d: Deferred[Any] = Deferred()
        self._openWaiters.append(d)
        return d

    def handshakeFinished(self, result: Any) -> None:
        """Called by each handshake protocol with its outcome (or failure)."""
        waiting, self._openWaiters = self._openWaiters, []
        for d in waiting:
            if isinstance(result, Failure):
                d.errback(result)
            else:
                d.callback(result)

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        self.handshakeFinished(reason)
