"""
HTTP proxies for the client: a C{CONNECT} tunnel as a client endpoint.

Clients behind corporate proxies reach WebSocket servers through an HTTP
C{CONNECT} tunnel; for C{wss://}, TLS then runs inside the tunnel.  The
proxy comes from an explicit URL or, when asked, from the usual
C{http_proxy} / C{https_proxy} / C{all_proxy} / C{no_proxy} variables.
"""

from __future__ import annotations

import base64
import urllib.request
from typing import Any, cast
from urllib.parse import unquote, urlsplit

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IProtocol, IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from ..core.errors import HandshakeError
from ..core.http import HeadParser, ResponseHead, formatRequest
from ..core.options import WebSocketOptions
from ..core.urls import WebSocketURL
from ..handoff import handOff
from ..transport import IStreamTransport
from .errors import WebSocketProxyError
from .waiters import Waiters

__all__ = ["HTTPTunnelEndpoint", "selectProxy", "parseProxyURL"]



def selectProxy(url: WebSocketURL, proxy: str | None, useEnvironment: bool) -> str | None:
    """The proxy URL to use for C{url}, or C{None} for a direct connection."""
    if proxy is not None:
        return proxy
    if not useEnvironment:
        return None
    proxies = urllib.request.getproxies_environment()
    chosen = proxies.get("https" if url.secure else "http") or proxies.get("all")
    if not chosen:
        return None
    hostport = url.host if ":" in url.host else f"{url.host}:{url.port}"
    # The NO_PROXY check alone (proxy_bypass would also ask the OS on macOS and Windows).
    if urllib.request.proxy_bypass_environment(hostport, proxies):  # type: ignore[attr-defined]  # undocumented, missing from typeshed
        return None
    return chosen


def parseProxyURL(proxy: str) -> tuple[str, int, list[tuple[str, str]]]:
    """(host, port, extra CONNECT headers) from C{http://[user:pass@]host[:port]}."""
    if "://" not in proxy:
        proxy = "http://" + proxy
    parts = urlsplit(proxy)
    if parts.scheme.lower() != "http":
        raise ValueError(f"only http:// proxies (HTTP CONNECT) are supported, not {proxy!r}")
    if not parts.hostname:
        raise ValueError(f"proxy URL has no host: {proxy!r}")
    try:
        port = parts.port or 80
    except ValueError:
        raise ValueError(f"invalid port in proxy URL: {proxy!r}") from None
    headers = []
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        token = base64.b64encode(credentials.encode("utf-8")).decode("ascii")
        headers.append(("Proxy-Authorization", f"Basic {token}"))
    return parts.hostname, port, headers


class _TunnelProtocol(Protocol):
    """Asks an HTTP proxy for a tunnel, then hands the transport over to
    the protocol of the next layer (TLS or the WebSocket handshake)."""

    transport: IStreamTransport

    def __init__(self, tunnel: HTTPTunnelEndpoint, nextFactory: Any, addr: Any) -> None:
        self._tunnel = tunnel
        self._nextFactory = nextFactory
        self._addr = addr
        options = tunnel.options
        self._parser = HeadParser(
            False,
            maxLineLength=options.maxRequestLineLength,
            maxHeaderBytes=options.maxHeaderBytes,
            maxHeaderCount=options.maxHeaderCount,
        )
        self._outcome = Waiters(self._cancel)
        self._next: Any = None

    def connectionMade(self) -> None:
        authority = self._tunnel.authority
        headers = [("Host", authority), *self._tunnel.headers]
        self.transport.write(formatRequest("CONNECT", authority, headers))

    def dataReceived(self, data: bytes) -> None:
        if self._next is not None:
            self._next.dataReceived(data)
            return
        if self._outcome.done:
            return
        try:
            head = self._parser.feed(data)
        except HandshakeError as e:
            self._outcome.fire(Failure(WebSocketProxyError(502, f"unusable answer ({e.reason})")))
            self.transport.loseConnection()
            return
        if head is None:
            return
        assert isinstance(head, ResponseHead)
        if not 200 <= head.status < 300:
            self._outcome.fire(
                Failure(WebSocketProxyError(head.status, head.reasonPhrase, list(head.headers.items())))
            )
            self.transport.loseConnection()
            return
        nextProtocol = self._nextFactory.buildProtocol(self._addr)
        self._next = handOff(self, nextProtocol, self.transport, self._parser.rest)
        self._outcome.fire(nextProtocol)

    def connectionLost(self, reason: Failure | None = None) -> None:
        if self._next is not None:
            self._next.connectionLost(reason)
            return
        self._outcome.fire(Failure(WebSocketProxyError(502, "proxy closed the connection")))

    def _cancel(self) -> None:
        if not self._outcome.done:
            self._outcome.fire(Failure(CancelledError("tunnel cancelled")))
            if self.transport is not None:
                self.transport.abortConnection()


class _TunnelFactory(Factory):
    def __init__(self, tunnel: HTTPTunnelEndpoint, nextFactory: Any) -> None:
        self._tunnel = tunnel
        self._nextFactory = nextFactory

    def buildProtocol(self, addr: Any) -> _TunnelProtocol:
        return _TunnelProtocol(self._tunnel, self._nextFactory, addr)


@implementer(IStreamClientEndpoint)
class HTTPTunnelEndpoint:
    """Connects through an HTTP proxy's CONNECT tunnel to C{authority}."""

    def __init__(
        self,
        proxyEndpoint: IStreamClientEndpoint,
        authority: str,
        headers: list[tuple[str, str]],
        options: WebSocketOptions,
    ) -> None:
        self.proxyEndpoint = proxyEndpoint
        self.authority = authority
        self.headers = headers
        self.options = options

    def connect(self, protocolFactory: Any) -> Deferred[Any]:
        d = self.proxyEndpoint.connect(_TunnelFactory(self, protocolFactory))

        def tunnelled(tunnel: IProtocol) -> Deferred[Any]:
            return cast(_TunnelProtocol, tunnel)._outcome.wait()

        return d.addCallback(tunnelled)
