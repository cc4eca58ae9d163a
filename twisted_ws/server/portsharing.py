"""
One listening port for an existing TCP protocol and WebSocket (and HTTP).

L{PortSharingFactory} is an ordinary C{IProtocolFactory}: listen with it on
any endpoint (C{tcp:}, C{ssl:}, C{unix:}).  Each connection starts with a
L{PortSharingProtocol} that buffers the first bytes (a bounded amount, for
a bounded time) and routes the connection:

  - an HTTP request line goes to the WebSocket factory's handshake (or,
    when a twisted.web C{Site} is given and the request is not a WebSocket
    upgrade, to the site);
  - anything else goes to the fallback factory -- the existing protocol;
  - nothing at all within C{sniffTimeout} (a protocol whose server speaks
    first) goes to the fallback too;
  - optionally, a TLS ClientHello starts TLS on the connection and the
    same sniffing happens again on the decrypted bytes.

The chosen protocol is built with its factory's C{buildProtocol(addr)} and
handed the transport (L{twisted_ws.handoff.handOff}): it becomes the
transport's protocol, gets C{makeConnection(transport)} and then exactly the
bytes read so far, in one C{dataReceived} call; from then on the sniffer is
out of the path.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import (
    IDelayedCall,
    IHandshakeListener,
    IProtocolFactory,
    IReactorTime,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ..clock import defaultClock
from ..core.sniffing import HTTP_METHODS, Sniffed, classify, headEnd, wantsWebSocket
from ..handoff import handOff
from ..transport import IStreamTransport

__all__ = ["PortSharingFactory", "PortSharingProtocol"]

_log = Logger()

#: Default wait for a client's first byte (and for the first bytes to
#: decide): short enough for a server-speaks-first client not to notice
#: much, long enough for a client's first packet over a slow link.
DEFAULT_SNIFF_TIMEOUT = 2.0


class PortSharingFactory(Factory):
    """
    Serve WebSocket (and optionally plain HTTP) and another protocol on one
    port, telling them apart by the client's first bytes.

    @param webSocketFactory: gets HTTP connections (a
        L{twisted_ws.WebSocketServerFactory}, or any factory that reads an
        HTTP request); C{None} if only C{site} serves HTTP.
    @param fallbackFactory: the existing protocol's factory; gets every
        connection that is not HTTP, with the bytes already read.
    @param site: a twisted.web C{Site} (any factory) for HTTP requests that
        are not WebSocket upgrades.  Without it, all HTTP goes to
        C{webSocketFactory}, which answers non-upgrades with an error.
    @param sniffTimeout: seconds from the connection's start (or from the
        end of its TLS handshake) within which the routing must be decided;
        when it expires the connection goes to the fallback with whatever
        was read (nothing, for a protocol whose server speaks first).
    @param tlsOptions: server TLS settings (C{CertificateOptions} or an
        C{IOpenSSLServerConnectionCreator}): a connection that starts with a
        TLS ClientHello is then decrypted with them and sniffed again, so
        TLS and plain clients share the port.  Leave it C{None} when the
        port itself is TLS (an C{ssl:} endpoint).
    @param maxRequestLineLength: a first line still undecided after this
        many bytes goes to the fallback (bounds the sniff buffer).
    @param maxHeadBytes: with a C{site}, an HTTP head larger than this is
        routed to C{webSocketFactory} without further reading (it refuses
        it with 431).
    @param headTimeout: with a C{site}, seconds an HTTP head may take once
        its request line is known; then the client gets a 408.
    @param methods: request methods that mark a connection as HTTP.
    @param clock: the reactor used for timers.
    """

    protocol = None

    def __init__(
        self,
        webSocketFactory: IProtocolFactory | None,
        fallbackFactory: IProtocolFactory,
        *,
        site: IProtocolFactory | None = None,
        sniffTimeout: float = DEFAULT_SNIFF_TIMEOUT,
        tlsOptions: Any = None,
        maxRequestLineLength: int = 8192,
        maxHeadBytes: int = 65536,
        headTimeout: float = 10.0,
        methods: frozenset[bytes] = HTTP_METHODS,
        clock: IReactorTime | None = None,
    ) -> None:
        if webSocketFactory is None and site is None:
            raise ValueError("give a webSocketFactory, a site, or both")
        if fallbackFactory is None:
            raise ValueError("a fallbackFactory is required")
        if sniffTimeout is None or sniffTimeout <= 0:
            raise ValueError("sniffTimeout must be a positive number of seconds")
        if maxRequestLineLength <= 0 or maxHeadBytes <= 0 or headTimeout <= 0:
            raise ValueError("limits must be positive")
        self.webSocketFactory = webSocketFactory
        self.fallbackFactory = fallbackFactory
        self.site = site
        self.sniffTimeout = sniffTimeout
        self.maxRequestLineLength = maxRequestLineLength
        self.maxHeadBytes = maxHeadBytes
        self.headTimeout = headTimeout
        self.methods = frozenset(methods)
        self.clock = clock or defaultClock()
        self.tlsOptions = tlsOptions
        self._tlsFactory: Any = None
        if tlsOptions is not None:
            from twisted.protocols.tls import TLSMemoryBIOFactory

            # Its writes are gathered and flushed on our clock too.
            self._tlsFactory = TLSMemoryBIOFactory(
                tlsOptions, False, _InsideTLSFactory(self), clock=self.clock
            )

    def _targets(self) -> list[Any]:
        out: list[Any] = []
        for f in (self.webSocketFactory, self.site, self.fallbackFactory):
            if f is not None and all(f is not o for o in out):
                out.append(f)
        return out

    def startFactory(self) -> None:
        # The targets never see the port, so start and stop them with us
        # (a Site opens its log file, for example).
        for f in self._targets():
            f.doStart()

    def stopFactory(self) -> None:
        for f in self._targets():
            f.doStop()

    def buildProtocol(self, addr: Any) -> PortSharingProtocol:
        return PortSharingProtocol(self, addr, detectTLS=self._tlsFactory is not None)


class _InsideTLSFactory(Factory):
    """Builds the sniffer that runs again on the decrypted stream."""

    def __init__(self, parent: PortSharingFactory) -> None:
        self.parent = parent

    def buildProtocol(self, addr: Any) -> PortSharingProtocol:
        return PortSharingProtocol(self.parent, addr, detectTLS=False)

    def logPrefix(self) -> str:
        return str(self.parent.logPrefix())  # type: ignore[no-untyped-call]  # Factory.logPrefix is unannotated in Twisted


@implementer(IHandshakeListener)
class PortSharingProtocol(Protocol):
    """
    Reads the first bytes of one connection and hands it to the right
    protocol; see L{PortSharingFactory}.

    @ivar routedTo: C{"websocket"}, C{"site"}, C{"fallback"} or C{"tls"}
        once decided (for logs and tests).
    """

    routedTo: str | None = None
    transport: IStreamTransport

    def __init__(self, factory: PortSharingFactory, addr: Any, detectTLS: bool) -> None:
        self.factory = factory
        self.addr = addr
        self.detectTLS = detectTLS
        self._buffer = b""
        self._timer: IDelayedCall | None = None
        self._isHTTP = False
        self._delegate: Any = None

    # -- connection events ------------------------------------------------

    def connectionMade(self) -> None:
        self._timer = self.factory.clock.callLater(self.factory.sniffTimeout, self._timedOut)

    def handshakeCompleted(self) -> None:
        """
        The TLS handshake (of an C{ssl:} port) is over: the client can only
        now send its first bytes, so its time starts now.
        """
        delegate = self._delegate
        if delegate is not None:
            if IHandshakeListener.providedBy(delegate):
                delegate.handshakeCompleted()
            return
        if self.routedTo is None and not self._buffer and self._timer is not None:
            self._timer.reset(self.factory.sniffTimeout)

    def dataReceived(self, data: bytes) -> None:
        if self._delegate is not None:
            self._delegate.dataReceived(data)
            return
        if self.routedTo is not None:
            return
        self._buffer += data
        self._decide()

    def connectionLost(self, reason: Failure | None = None) -> None:
        self._cancelTimer()
        delegate, self._delegate = self._delegate, None
        if delegate is not None:
            delegate.connectionLost(reason)

    # -- routing ----------------------------------------------------------

    def _decide(self) -> None:
        factory = self.factory
        buffer = self._buffer
        if not self._isHTTP:
            verdict = classify(
                buffer,
                detectTLS=self.detectTLS,
                maxLineLength=factory.maxRequestLineLength,
                methods=factory.methods,
            )
            if verdict is Sniffed.NEED_MORE:
                return
            if verdict is Sniffed.TLS:
                self._route("tls", factory._tlsFactory)
                return
            if verdict is Sniffed.NOT_HTTP:
                self._route("fallback", factory.fallbackFactory)
                return
            self._isHTTP = True
            if factory.site is None:
                self._route("websocket", factory.webSocketFactory)
                return
            if factory.webSocketFactory is None:
                self._route("site", factory.site)
                return
            # Both serve HTTP: the head says which one this request is for.
            self._cancelTimer()
            self._timer = factory.clock.callLater(factory.headTimeout, self._headTimedOut)
        end = headEnd(buffer)
        if end < 0:
            if len(buffer) > factory.maxHeadBytes:
                # Let the WebSocket handshake refuse it properly (431).
                self._route("websocket", factory.webSocketFactory)
            return
        if wantsWebSocket(buffer[:end]):
            self._route("websocket", factory.webSocketFactory)
        else:
            self._route("site", factory.site)

    def _timedOut(self) -> None:
        self._timer = None
        if self.routedTo is None:
            self._route("fallback", self.factory.fallbackFactory)

    def _headTimedOut(self) -> None:
        self._timer = None
        if self.routedTo is None:
            self.routedTo = "timeout"
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            self.transport.loseConnection()

    def _cancelTimer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def _route(self, name: str, targetFactory: Any) -> None:
        """Hand the transport and the bytes read so far to a new protocol."""
        self._cancelTimer()
        self.routedTo = name
        data, self._buffer = self._buffer, b""
        transport = self.transport
        try:
            protocol = targetFactory.buildProtocol(self.addr)
        except Exception:
            _log.failure("building the {name} protocol failed", name=name)
            protocol = None
        if protocol is None:
            transport.loseConnection()
            return
        # Forward to it while it starts, in case the transport is of a shape
        # that keeps calling us (handOff then says so).
        self._delegate = protocol
        self._delegate = handOff(self, protocol, transport, data)
