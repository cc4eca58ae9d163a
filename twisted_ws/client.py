"""
The WebSocket client: connect to a C{ws://} or C{wss://} URL and get the
application's open L{WebSocketProtocol} back in a Deferred.

Layers, from the outside in:

  - L{connectWS}: one call, one connection -- parses the URL, picks the
    transport and fires with the open protocol.
  - L{WebSocketClientEndpoint}: an C{IStreamClientEndpoint} whose
    C{connect(factory)} fires once the WebSocket is open.  Because it is an
    ordinary endpoint it composes with the rest of Twisted, e.g.
    C{ClientService} (which L{ReconnectingWebSocketClient} does).
  - L{WebSocketClientFactory}: an C{IProtocolFactory} usable with any client
    endpoint or C{reactor.connectTCP}: its protocol performs the opening
    handshake, then hands the transport to the application's protocol.

Underneath, the byte stream comes from C{HostnameEndpoint} (IPv6, happy
eyeballs), optionally through an HTTP proxy (C{CONNECT} tunnel), optionally
wrapped in TLS that verifies the server's hostname; or from any endpoint
the caller passes (UNIX sockets, SSH channels, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from twisted.internet import error
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import IDelayedCall, IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper
from twisted.python.failure import Failure
from zope.interface import implementer

from ._waiters import Waiters
from .core.errors import HandshakeError
from .core.extensions import (
    ClientExtensionFactory,
    acceptClientExtensions,
    formatExtensionHeader,
)
from .core.handshake import (
    HandshakeRequest,
    HandshakeResponse,
    buildClientRequest,
    generateKey,
    validateRequest,
    validateResponse,
)
from .core.http import HeadParser, ResponseHead
from .core.options import WebSocketOptions
from .core.urls import WebSocketURL, parseURL
from .clock import defaultClock
from .protocol import WebSocketProtocol, setNoDelay
from .proxy import WebSocketProxyError, parseProxyURL, selectProxy, HTTPTunnelEndpoint
from .switching import switchProtocol
from .tlsoptions import clientConnectionCreator

__all__ = [
    "WebSocketURL",
    "parseURL",
    "WebSocketHandshakeRejected",
    "WebSocketProxyError",
    "WebSocketOpenTimeout",
    "ClientHandshakeProtocol",
    "WebSocketClientFactory",
    "WebSocketClientEndpoint",
    "connectWS",
]

_log = Logger()

#: The most bytes of a refusal's body kept on L{WebSocketHandshakeRejected}.
MAX_REJECTION_BODY = 64 * 1024

HeaderPairs = Mapping[str, str] | Iterable[tuple[str, str]]


# -- errors -------------------------------------------------------------------


class WebSocketHandshakeRejected(HandshakeError):
    """
    The server answered the upgrade request with something other than 101.

    @ivar status: the HTTP status (403, 404, ...).
    @ivar headers: the response's header fields, as (name, value) pairs.
    @ivar body: the start of the response body (at most 64 KiB), so the
        application can show the server's explanation.
    """

    def __init__(
        self,
        status: int,
        reason: str,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> None:
        super().__init__(status, reason, headers)
        self.body = body

    def header(self, name: str) -> str | None:
        """The first value of header C{name} (case-insensitive), or C{None}."""
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return None



class WebSocketOpenTimeout(error.TimeoutError):
    """
    The WebSocket did not open within C{openTimeout} seconds (connecting,
    the proxy tunnel, TLS and the opening handshake all count).
    """

    def __init__(self, timeout: float | None) -> None:
        super().__init__(string=f"the WebSocket did not open within {timeout} seconds")
        self.timeout = timeout

    def __str__(self) -> str:
        return f"timed out: the WebSocket did not open within {self.timeout} seconds"



def _headerPairs(headers: HeaderPairs) -> list[tuple[str, str]]:
    if isinstance(headers, Mapping):
        return [(str(k), str(v)) for k, v in headers.items()]
    return [(str(k), str(v)) for k, v in headers]


def _unwrap(protocol: Any) -> Any:
    """
    The L{WebSocketProtocol} behind a protocol wrapper: C{ClientService}
    hands endpoints a proxy that keeps the real protocol in C{_protocol},
    C{ProtocolWrapper}s keep it in C{wrappedProtocol}.
    """
    for _ in range(8):
        if isinstance(protocol, WebSocketProtocol):
            return protocol
        own = getattr(protocol, "__dict__", {})
        if "_protocol" in own:
            protocol = own["_protocol"]
        elif isinstance(protocol, ProtocolWrapper):
            protocol = protocol.wrappedProtocol
        else:
            break
    return protocol




# -- the opening handshake ---------------------------------------------------------


class ClientHandshakeProtocol(Protocol):
    """
    Sends the upgrade request, reads and checks the answer, then hands the
    transport to the application's protocol.

    L{whenOpen} fires with that protocol, or fails with
    L{WebSocketHandshakeRejected} (not 101), L{HandshakeError} (a 101 with
    unacceptable headers, or an unusable answer: status 502),
    L{WebSocketOpenTimeout}, or the transport's error (e.g. TLS
    verification).
    """

    factory: WebSocketClientFactory

    def __init__(self, factory: WebSocketClientFactory, addr: Any = None) -> None:
        self.factory = factory
        self._addr = addr
        options = factory.options
        self._parser = HeadParser(
            False,
            maxLineLength=options.maxRequestLineLength,
            maxHeaderBytes=options.maxHeaderBytes,
            maxHeaderCount=options.maxHeaderCount,
        )
        self._key = generateKey()
        self._outcome = Waiters(self._cancel)
        self._timer: IDelayedCall | None = None
        self._rejection: ResponseHead | None = None
        self._body = bytearray()
        self._bodyWanted: int | None = None
        self._chunked = False
        self._delegate: Any = None

    def whenOpen(self) -> Deferred[WebSocketProtocol]:
        """A Deferred of the open application protocol (see the class doc)."""
        return self._outcome.wait()

    # -- life cycle --------------------------------------------------------

    def connectionMade(self) -> None:
        setNoDelay(self.transport)
        timeout = self.factory.options.openTimeout
        if timeout is not None:
            self._timer = self.factory.clock.callLater(timeout, self._timedOut)
        self.transport.write(self.factory.requestBytes(self._key))

    def dataReceived(self, data: bytes) -> None:
        if self._delegate is not None:
            self._delegate.dataReceived(data)
            return
        if self._outcome.done:
            return
        if self._rejection is not None:
            self._readBody(data)
            return
        try:
            head = self._parser.feed(data)
        except HandshakeError as e:
            self._failAndClose(e)
            return
        if head is None:
            return
        assert isinstance(head, ResponseHead)
        if head.status != 101:
            self._startBody(head)
            return
        try:
            response = validateResponse(
                head, self._key, self.factory.subprotocols, self.factory.extensionNames
            )
            extensions = acceptClientExtensions(response.extensions, self.factory.extensions)
        except HandshakeError as e:
            self._failAndClose(e)
            return
        self._open(response, extensions, self._parser.rest)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        if self._delegate is not None:
            self._delegate.connectionLost(reason)
            return
        self._stopTimer()
        if self._rejection is not None:
            self._finishRejection()
            return
        if self._outcome.done:
            return
        if reason is None or reason.check(error.ConnectionDone, error.ConnectionLost):
            self._fail(Failure(HandshakeError(502, "connection closed before the server answered the handshake")))
        else:
            self._fail(reason)

    # -- success -----------------------------------------------------------

    def _open(self, response: HandshakeResponse, extensions: list[Any], rest: bytes) -> None:
        factory = self.factory
        try:
            built = factory.buildWebSocketProtocol(self._addr)
            protocol = _unwrap(built)
            if not isinstance(protocol, WebSocketProtocol):
                raise TypeError(f"{built!r} is not a WebSocketProtocol")
        except Exception:
            failure = Failure()
            _log.failure("building the WebSocket protocol failed", failure)
            self._fail(failure)
            self.transport.abortConnection()
            return
        protocol.isClient = True
        protocol.request = factory.sentRequest(self._key)
        protocol.response = response  # type: ignore[attr-defined]
        protocol.subprotocol = response.subprotocol
        protocol.extensions = extensions
        protocol.options = factory.options
        protocol.clock = factory.clock
        self._stopTimer()
        transport = self.transport
        if not switchProtocol(transport, self, built):
            self._delegate = built
        built.makeConnection(transport)
        self._outcome.fire(built)
        factory._handshakeFinished(built)
        if rest and protocol.connected:
            built.dataReceived(rest)

    # -- refusal -----------------------------------------------------------

    def _startBody(self, head: ResponseHead) -> None:
        self._rejection = head
        headers = head.headers
        if head.status < 200 or head.status in (204, 304):
            self._bodyWanted = 0
        elif "chunked" in [t.lower() for t in headers.getCommaList("Transfer-Encoding")]:
            self._chunked = True
        else:
            length = headers.get("Content-Length")
            if length is not None and length.strip().isdigit():
                self._bodyWanted = min(int(length), MAX_REJECTION_BODY)
        self._readBody(self._parser.rest)

    def _readBody(self, data: bytes) -> None:
        room = MAX_REJECTION_BODY + 16 - len(self._body)
        self._body += data[:room]
        if self._chunked:
            complete = self._body.startswith(b"0\r\n\r\n") or b"\r\n0\r\n\r\n" in self._body
        elif self._bodyWanted is not None:
            complete = len(self._body) >= self._bodyWanted
        else:
            complete = False
        if complete or len(self._body) >= MAX_REJECTION_BODY:
            self._finishRejection()
            self.transport.loseConnection()

    def _finishRejection(self) -> None:
        head = self._rejection
        if head is None or self._outcome.done:
            return
        body = bytes(self._body)
        if self._chunked:
            body = _dechunk(body)
        elif self._bodyWanted is not None:
            body = body[: self._bodyWanted]
        body = body[:MAX_REJECTION_BODY]
        reason = f"server refused the upgrade: {head.status} {head.reasonPhrase}".rstrip()
        self._fail(
            Failure(WebSocketHandshakeRejected(head.status, reason, list(head.headers.items()), body))
        )

    # -- failure -----------------------------------------------------------

    def _fail(self, failure: Failure) -> None:
        self._stopTimer()
        if self._outcome.done:
            return
        self._outcome.fire(failure)
        self.factory._handshakeFinished(failure)

    def _failAndClose(self, e: Exception) -> None:
        self._fail(Failure(e))
        self.transport.loseConnection()

    def _timedOut(self) -> None:
        self._timer = None
        if self._outcome.done and self._rejection is None:
            return
        if self._rejection is not None:
            # Enough of the refusal's body: report what arrived.
            self._finishRejection()
        else:
            self._fail(Failure(WebSocketOpenTimeout(self.factory.options.openTimeout)))
        self.transport.abortConnection()

    def _cancel(self) -> None:
        if self._outcome.done:
            return
        self._fail(Failure(CancelledError("the WebSocket connection attempt was cancelled")))
        if self.transport is not None:
            self.transport.abortConnection()

    def _stopTimer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None


def _dechunk(data: bytes) -> bytes:
    """Decode a chunked body as far as it is well-formed (best effort)."""
    out = bytearray()
    pos = 0
    while pos < len(data):
        end = data.find(b"\r\n", pos)
        if end == -1:
            break
        try:
            size = int(data[pos:end].split(b";", 1)[0].strip() or b"x", 16)
        except ValueError:
            return data if not out else bytes(out)
        if size == 0:
            break
        out += data[end + 2 : end + 2 + size]
        pos = end + 2 + size + 2
    return bytes(out)


class WebSocketClientFactory(ClientFactory):
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
        self.headers = _headerPairs(headers)
        self.origin = origin
        self.extensions = list(extensions)
        self.extensionNames = [e.name for e in self.extensions]
        self._extensionsHeader = (
            formatExtensionHeader([(e.name, e.offer()) for e in self.extensions])
            if self.extensions
            else None
        )
        self.options = WebSocketOptions.fromKeywords(options, **optionValues)
        self.clock = clock or defaultClock()
        self._openWaiters: list[Deferred[Any]] = []
        # Fail now, not at connect time, on bad headers or subprotocol names.
        self.requestBytes(generateKey())

    def requestBytes(self, key: str) -> bytes:
        """The upgrade request for C{key}."""
        return buildClientRequest(
            self.url.hostHeader,
            self.url.resource,
            key,
            origin=self.origin,
            protocols=self.subprotocols,
            extensionsHeader=self._extensionsHeader,
            extraHeaders=self.headers,
        )

    def sentRequest(self, key: str) -> HandshakeRequest:
        """The request sent with C{key}, in the form servers see it."""
        data = self.requestBytes(key)
        parser = HeadParser(True, maxLineLength=len(data), maxHeaderBytes=len(data), maxHeaderCount=len(data))
        return validateRequest(parser.feed(data))  # type: ignore[arg-type]

    def buildProtocol(self, addr: Any) -> ClientHandshakeProtocol:
        return self.handshakeProtocol(self, addr)

    def buildWebSocketProtocol(self, addr: Any) -> Any:
        """Build the application's protocol once the server accepted."""
        p = self.protocol()
        p.factory = self
        return p

    def whenOpen(self) -> Deferred[WebSocketProtocol]:
        """
        A Deferred of how the next handshake made with this factory ends
        (for use with C{reactor.connectTCP} and other connectors).
        """
        d: Deferred[Any] = Deferred()
        self._openWaiters.append(d)
        return d

    def _handshakeFinished(self, result: Any) -> None:
        waiting, self._openWaiters = self._openWaiters, []
        for d in waiting:
            if isinstance(result, Failure):
                d.errback(result)
            else:
                d.callback(result)

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        self._handshakeFinished(reason)


class _EndpointHandshakeFactory(WebSocketClientFactory):
    """The factory L{WebSocketClientEndpoint} uses: the application's
    protocol comes from the factory given to C{connect}."""

    appFactory: Any = None

    def buildWebSocketProtocol(self, addr: Any) -> Any:
        return self.appFactory.buildProtocol(addr)



# -- the endpoint -------------------------------------------------------------------


@implementer(IStreamClientEndpoint)
class WebSocketClientEndpoint:
    """
    An endpoint for WebSocket connections to one URL.

    C{connect(factory)} connects the transport (direct, through an HTTP
    proxy, or over C{endpoint}), adds TLS for C{wss://} (verified against
    the URL's hostname), performs the opening handshake and fires with the
    protocol C{factory.buildProtocol(addr)} returned -- a
    L{WebSocketProtocol}, open -- or fails (see L{ClientHandshakeProtocol}
    and L{WebSocketProxyError}).  The whole sequence is bounded by
    C{openTimeout}.

    See L{connectWS} for the parameters.
    """

    def __init__(
        self,
        reactor: Any,
        url: str | WebSocketURL,
        *,
        endpoint: IStreamClientEndpoint | None = None,
        contextFactory: Any = None,
        trustRoot: Any = None,
        clientCertificate: Any = None,
        proxy: str | None = None,
        useProxyEnvironment: bool = False,
        subprotocols: Sequence[str] = (),
        headers: HeaderPairs = (),
        origin: str | None = None,
        extensions: Sequence[ClientExtensionFactory] = (),
        options: WebSocketOptions | None = None,
        **optionValues: Any,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as defaultReactor

            reactor = defaultReactor
        self.reactor = reactor
        self.url = url = parseURL(url)
        self._handshake = dict(
            subprotocols=subprotocols,
            headers=_headerPairs(headers),
            origin=origin,
            extensions=extensions,
            options=options,
            clock=reactor,
            **optionValues,
        )
        # Validate every option now, so mistakes surface at the call site.
        self.options = WebSocketClientFactory(None, url, **self._handshake).options  # type: ignore[arg-type]
        connectTimeout = self.options.openTimeout or 30
        if endpoint is None:
            proxyURL = selectProxy(url, proxy, useProxyEnvironment)
            if proxyURL is not None:
                proxyHost, proxyPort, proxyHeaders = parseProxyURL(proxyURL)
                endpoint = HTTPTunnelEndpoint(
                    HostnameEndpoint(reactor, proxyHost, proxyPort, timeout=connectTimeout),
                    url.authority,
                    proxyHeaders,
                    self.options,
                )
            else:
                endpoint = HostnameEndpoint(reactor, url.host, url.port, timeout=connectTimeout)
        elif proxy is not None:
            raise ValueError("pass either endpoint or proxy, not both")
        if url.secure:
            creator = clientConnectionCreator(url.host, contextFactory, trustRoot, clientCertificate)
            endpoint = wrapClientTLS(creator, endpoint)
        self.transportEndpoint = endpoint

    def connect(self, protocolFactory: Any) -> Deferred[Any]:
        """Connect, handshake, fire with C{protocolFactory}'s open protocol."""
        factory = _EndpointHandshakeFactory(None, self.url, **self._handshake)  # type: ignore[arg-type]
        factory.appFactory = protocolFactory
        return self.connectFactory(factory)

    def connectFactory(self, factory: WebSocketClientFactory) -> Deferred[Any]:
        """Connect with a L{WebSocketClientFactory} of your own."""
        d = self.transportEndpoint.connect(factory)
        d.addCallback(lambda handshake: handshake.whenOpen())
        timeout = factory.options.openTimeout
        if timeout is not None:

            def timedOut(result: Any, _timeout: float) -> Any:
                if isinstance(result, Failure) and result.check(
                    CancelledError, error.ConnectingCancelledError
                ):
                    return Failure(WebSocketOpenTimeout(timeout))
                return result

            d.addTimeout(timeout, self.reactor, onTimeoutCancel=timedOut)
        return d


def connectWS(
    url: str | WebSocketURL,
    protocol: Callable[[], WebSocketProtocol] = WebSocketProtocol,
    *,
    reactor: Any = None,
    endpoint: IStreamClientEndpoint | None = None,
    contextFactory: Any = None,
    trustRoot: Any = None,
    clientCertificate: Any = None,
    proxy: str | None = None,
    useProxyEnvironment: bool = False,
    subprotocols: Sequence[str] = (),
    headers: HeaderPairs = (),
    origin: str | None = None,
    extensions: Sequence[ClientExtensionFactory] = (),
    options: WebSocketOptions | None = None,
    **optionValues: Any,
) -> Deferred[WebSocketProtocol]:
    """
    Open a WebSocket to C{url}; the Deferred fires with the open protocol.

    @param protocol: a L{WebSocketProtocol} subclass or a zero-argument
        callable returning an instance.
    @param endpoint: connect over this endpoint instead of to the URL's host
        and port (UNIX sockets, tests); the URL still supplies C{Host} and
        the path, and C{wss://} still adds TLS on top.
    @param contextFactory: an C{IOpenSSLClientConnectionCreator} for
        C{wss://}, replacing the default (L{VerifyingClientTLSOptions} for
        the URL's host with C{trustRoot} and C{clientCertificate}, which
        fails with L{CertificateVerificationError} on any certificate
        problem); a replacement is trusted to verify on its own.
    @param trustRoot: CAs to trust: a path to PEM, a C{Certificate}, or an
        C{IOpenSSLTrustRoot}; default: the platform's.
    @param clientCertificate: a C{PrivateCertificate}, a PEM path holding
        certificate and key, or a (cert path, key path) pair.
    @param proxy: C{http://[user:password@]host:port} of an HTTP proxy to
        tunnel through (C{CONNECT}).
    @param useProxyEnvironment: honour C{https_proxy} (for C{wss://}),
        C{http_proxy} (for C{ws://}), C{all_proxy} and C{no_proxy}.
    @param subprotocols: subprotocols to offer, in preference order.
    @param headers: extra request headers (mapping or pairs), e.g.
        C{Authorization} or C{Cookie}.
    @param origin: the C{Origin} header to send, if any.
    @param extensions: L{ClientExtensionFactory}s to offer.
    @param options: L{WebSocketOptions}; keyword arguments named after its
        fields (C{openTimeout=5}, C{maxMessageSize=...}) override them.

    @raise ValueError: (synchronously) a bad URL, header or option.
    """
    clientEndpoint = WebSocketClientEndpoint(
        reactor,
        url,
        endpoint=endpoint,
        contextFactory=contextFactory,
        trustRoot=trustRoot,
        clientCertificate=clientCertificate,
        proxy=proxy,
        useProxyEnvironment=useProxyEnvironment,
        subprotocols=subprotocols,
        headers=headers,
        origin=origin,
        extensions=extensions,
        options=options,
        **optionValues,
    )
    return clientEndpoint.connectFactory(
        WebSocketClientFactory(protocol, clientEndpoint.url, **clientEndpoint._handshake)  # type: ignore[arg-type]
    )

