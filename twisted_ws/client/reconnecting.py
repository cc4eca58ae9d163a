"""
A long-lived client: reconnect and re-handshake with back-off whenever the
WebSocket drops, built on Twisted's C{ClientService}.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from twisted.application.internet import ClientService
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Factory
from zope.interface import implementer

from ..core.closecodes import CloseCode
from ..core.urls import WebSocketURL
from ..protocol import WebSocketProtocol
from .endpoint import WebSocketClientEndpoint
from .factory import WebSocketClientFactory

__all__ = ["ReconnectingWebSocketClient"]


class _Handover(Factory):
    """
    The factory C{ClientService} is given: it hands back the protocol the
    handshake just built and set up (C{ClientService} makes one attempt at
    a time), for C{ClientService} to wrap in its proxy.
    """

    ready: WebSocketProtocol | None = None
    handed: WebSocketProtocol | None = None

    def buildProtocol(self, addr: Any) -> WebSocketProtocol | None:
        self.handed, self.ready = self.ready, None
        return self.handed


class _ServiceHandshakeFactory(WebSocketClientFactory):
    """Hands the open WebSocket to C{ClientService}'s proxy of it."""

    handover: _Handover
    serviceFactory: Any

    def wrapWebSocketProtocol(self, protocol: WebSocketProtocol, addr: Any) -> Any:
        self.handover.ready = protocol
        return self.serviceFactory.buildProtocol(addr)


@implementer(IStreamClientEndpoint)
class _OpeningEndpoint:
    """
    The endpoint C{ClientService} connects through.  C{ClientService}
    wraps what its factory builds in a proxy that tells it of the
    connection's end, and expects that proxy to see only connections that
    opened; so our handshake runs first and builds the application's
    protocol itself, and C{ClientService}'s factory wraps it once open.
    """

    def __init__(self, endpoint: WebSocketClientEndpoint, protocol: Any, handover: _Handover) -> None:
        self._endpoint = endpoint
        self._protocol = protocol
        self._handover = handover

    def connect(self, serviceFactory: Any) -> Deferred[Any]:
        factory = cast(
            _ServiceHandshakeFactory,
            self._endpoint.buildFactory(self._protocol, _ServiceHandshakeFactory),
        )
        factory.handover = self._handover
        factory.serviceFactory = serviceFactory
        return self._endpoint.connectFactory(factory)


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
        self._prepare = prepareConnection
        self._handover = _Handover()
        self._current: WebSocketProtocol | None = None
        self._service = ClientService(
            _OpeningEndpoint(self.endpoint, protocol, self._handover),
            self._handover,
            retryPolicy=retryPolicy,
            clock=reactor,
            prepareConnection=self._prepareConnection,
        )

    def _prepareConnection(self, wrapped: Any) -> Any:
        # ClientService passes its proxy; the protocol inside is the one
        # the handover just gave it.
        current = self._current = self._handover.handed
        assert current is not None, "ClientService prepares only what the handover built"
        if self._prepare is not None:
            return self._prepare(current)
        return None

    def whenConnected(self, failAfterFailures: int | None = None) -> Deferred[WebSocketProtocol]:
        """
        A Deferred of the open protocol: at once if connected, else at the
        next successful handshake (or a failure after C{failAfterFailures}
        failed attempts).
        """
        # ClientService.whenConnected fires with its factory's own protocol,
        # not its proxy.
        return cast(
            "Deferred[WebSocketProtocol]",
            self._service.whenConnected(failAfterFailures=failAfterFailures),
        )

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]  # Twisted's Service.startService is unannotated
        self._service.startService()

    def stopService(self) -> Deferred[None]:
        """Close the WebSocket (1001) and stop reconnecting."""
        super().stopService()  # type: ignore[no-untyped-call]  # Twisted's Service.stopService is unannotated
        current = self._current
        if current is not None and current.connected and current.closeInfo is None:
            d = current.close(CloseCode.GOING_AWAY, "going away")
            return d.addBoth(lambda _: self._service.stopService())
        return self._service.stopService()
