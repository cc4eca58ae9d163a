"""
A long-lived client: reconnect and re-handshake with back-off whenever the
WebSocket drops, built on Twisted's C{ClientService}.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.application.internet import ClientService
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory

from ..core.closecodes import CloseCode
from ..core.urls import WebSocketURL
from ..protocol import WebSocketProtocol
from .endpoint import WebSocketClientEndpoint

__all__ = ["ReconnectingWebSocketClient"]


class ReconnectingWebSocketClient(Service):
    """
    Keep a WebSocket to C{url} open: reconnect (and re-handshake) with
    back-off whenever it drops or cannot be opened, built on Twisted's
    C{ClientService}.

    Start it with C{startService()} (or by adding it to an application),
    get the current open protocol with L{whenConnected};
    C{stopService()} closes the WebSocket with 1001 (going away) and
    stops reconnecting.

    @param retryPolicy: C{ClientService}'s: attempt number -> seconds to
        wait (default: exponential back-off with jitter).
    @param prepareConnection: called with each newly opened protocol
        before L{whenConnected} fires; may return a Deferred.
    @param connectOptions: everything L{connectWS} takes.
    """

    def __init__(
        self,
        url: str | WebSocketURL,
        protocol: Callable[[], WebSocketProtocol] = WebSocketProtocol,
        *,
        reactor: Any = None,
        retryPolicy: Callable[[int], float] | None = None,
        prepareConnection: Callable[[WebSocketProtocol], Any] | None = None,
        **connectOptions: Any,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as defaultReactor

            reactor = defaultReactor
        self.endpoint = WebSocketClientEndpoint(reactor, url, **connectOptions)
        self._protocol = protocol
        self._prepare = prepareConnection
        self._built: WebSocketProtocol | None = None
        self._current: WebSocketProtocol | None = None
        self._service = ClientService(
            self.endpoint,
            Factory.forProtocol(self._buildProtocol),
            retryPolicy=retryPolicy,
            clock=reactor,
            prepareConnection=self._prepareConnection,
        )

    def _buildProtocol(self) -> WebSocketProtocol:
        """
        Build the application's protocol and remember it: C{ClientService}
        hands C{prepareConnection} a proxy of its own, and this is how we get
        our protocol back without reaching into the proxy.
        """
        self._built = self._protocol()
        return self._built

    def _prepareConnection(self, wrapped: Any) -> Any:
        # ClientService makes one attempt at a time, so the protocol built
        # last is the one whose connection just opened.
        protocol, self._built = self._built, None
        assert protocol is not None
        self._current = protocol
        if self._prepare is not None:
            return self._prepare(protocol)
        return None

    def whenConnected(self, failAfterFailures: int | None = None) -> Deferred[WebSocketProtocol]:
        """
        A Deferred of the open protocol: at once if connected, else at the
        next successful handshake (or a failure after C{failAfterFailures}
        failed attempts).
        """
        # ClientService.whenConnected fires with the factory's own protocol,
        # not its proxy.
        return self._service.whenConnected(failAfterFailures=failAfterFailures)

    def startService(self) -> None:
        super().startService()
        self._service.startService()

    def stopService(self) -> Deferred[None]:
        """Close the WebSocket (1001) and stop reconnecting."""
        super().stopService()
        current = self._current
        if current is not None and current.connected and current.closeInfo is None:
            d = current.close(CloseCode.GOING_AWAY, "going away")
            return d.addBoth(lambda _: self._service.stopService())
        return self._service.stopService()
