"""
Connecting a client WebSocket: L{WebSocketClientEndpoint}, an
C{IStreamClientEndpoint} whose C{connect(factory)} fires once the WebSocket
is open (so it composes with the rest of Twisted, e.g. C{ClientService}),
and L{connectWS}, one call for one connection.

Underneath, the byte stream comes from C{HostnameEndpoint} (IPv6, happy
eyeballs), optionally through an HTTP proxy (C{CONNECT} tunnel), optionally
wrapped in TLS that verifies the server's hostname; or from any endpoint
the caller passes (UNIX sockets, SSH channels, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet import error
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.python.failure import Failure
from zope.interface import implementer

from ..core.extensions import ClientExtensionFactory
from ..core.options import WebSocketOptions
from ..core.urls import WebSocketURL, parseURL
from ..protocol import WebSocketProtocol
from ..websocket import CoroutineProtocol
from .errors import WebSocketOpenTimeout
from .factory import HeaderPairs, WebSocketClientFactory, headerPairs
from .proxy import HTTPTunnelEndpoint, parseProxyURL, selectProxy
from .tls import TLSClientEndpoint, clientConnectionCreator

__all__ = ["WebSocketClientEndpoint", "connectWS"]


class _EndpointHandshakeFactory(WebSocketClientFactory):
    """The factory L{WebSocketClientEndpoint} uses: the application's
    protocol comes from the factory given to C{connect}."""

    appFactory: Any = None

    def buildWebSocketProtocol(self, addr: Any) -> Any:
        return self.appFactory.buildProtocol(addr)  # checked by the handshake protocol


def _h2ClientProtocol() -> Any:
    """The HTTP/2 handshake protocol, imported only when asked for: it
    needs the optional C{h2} library."""
    try:
        from ..http2.client import H2ClientProtocol
    except ImportError as e:
        raise ImportError(
            f"http2=True needs the h2 library ({e}): pip install 'Twisted[http2]'"
        ) from None
    return H2ClientProtocol


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
        http2: bool = False,
        **optionValues: Any,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as defaultReactor

            reactor = defaultReactor
        self.reactor = reactor
        self.url = url = parseURL(url)
        if http2 and not url.secure:
            raise ValueError(
                "http2=True needs a wss:// URL: WebSockets over HTTP/2 are offered over TLS "
                "only (h2c is not supported)"
            )
        self.http2 = http2
        self._h2Protocol: Any = _h2ClientProtocol() if http2 else None
        self._handshake = dict(
            subprotocols=subprotocols,
            headers=headerPairs(headers),
            origin=origin,
            extensions=extensions,
            options=options,
            clock=reactor,
            **optionValues,
        )
        # Validate every option now, so mistakes surface at the call site.
        self.options = WebSocketClientFactory(None, url, **self._handshake).options
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
            creator = clientConnectionCreator(
                url.host,
                contextFactory,
                trustRoot,
                clientCertificate,
                acceptableProtocols=[b"h2"] if http2 else None,
            )
            endpoint = TLSClientEndpoint(creator, endpoint, reactor)
        self.transportEndpoint = endpoint

    def buildFactory(
        self,
        protocol: Callable[[], WebSocketProtocol] = WebSocketProtocol,
        factoryClass: type[WebSocketClientFactory] = WebSocketClientFactory,
    ) -> WebSocketClientFactory:
        """
        A C{factoryClass} with this endpoint's URL and handshake settings
        (and, with C{http2}, the HTTP/2 handshake protocol).
        """
        factory = factoryClass(protocol, self.url, **self._handshake)
        if self.http2:
            factory.handshakeProtocol = self._h2Protocol
        return factory

    def connect(self, protocolFactory: Any) -> Deferred[Any]:
        """
        Connect, handshake, fire with C{protocolFactory}'s open protocol.

        C{protocolFactory.buildProtocol} must return the L{WebSocketProtocol}
        itself (it is told what the handshake negotiated), not a wrapper of
        it: for C{ClientService}, use L{ReconnectingWebSocketClient}.
        """
        factory = self.buildFactory(factoryClass=_EndpointHandshakeFactory)
        factory.appFactory = protocolFactory  # type: ignore[attr-defined]  # buildFactory made an _EndpointHandshakeFactory
        return self.connectFactory(factory)

    def connectFactory(self, factory: WebSocketClientFactory) -> Deferred[Any]:
        """
        Connect with a L{WebSocketClientFactory} of your own; fire with the
        open protocol (or the wrapper its C{wrapWebSocketProtocol} made).
        With C{http2}, the factory's C{handshakeProtocol} becomes the
        HTTP/2 one.
        """
        if self.http2:
            factory.handshakeProtocol = self._h2Protocol
        d = self.transportEndpoint.connect(factory)

        def opened(handshake: Any) -> Deferred[WebSocketProtocol]:
            # The factory's handshakeProtocol: HTTP/1.1's or HTTP/2's.
            whenOpen: Deferred[WebSocketProtocol] = handshake.whenOpen()
            return whenOpen

        d.addCallback(opened)
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
    protocol: Callable[[], WebSocketProtocol] | None = None,
    *,
    reactor: Any = None,
    **endpointOptions: Any,
) -> Deferred[Any]:
    """
    Open a WebSocket to C{url}; the Deferred fires with the open protocol,
    or, without C{protocol}, with a L{WebSocket} for coroutines
    (C{ws = await connectWS(url)}).

    The keywords are L{WebSocketClientEndpoint}'s::

        connectWS(url, protocol=None, *, reactor=None,
                  endpoint=None, contextFactory=None, trustRoot=None,
                  clientCertificate=None, proxy=None, useProxyEnvironment=False,
                  subprotocols=(), headers=(), origin=None, extensions=(),
                  options=None, http2=False, **optionValues)

    @param protocol: a L{WebSocketProtocol} subclass or a zero-argument
        callable returning an instance; when omitted, a L{CoroutineProtocol}
        and the Deferred fires with its C{websocket}.
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
    @param http2: open the WebSocket over HTTP/2 (RFC 8441): TLS offers
        ALPN C{h2} only, and the server must advertise
        C{SETTINGS_ENABLE_CONNECT_PROTOCOL}, else the attempt fails with
        L{HTTP2NotSupported} (no fallback to HTTP/1.1); C{wss://} only.
        A proxy tunnel, C{endpoint} and the TLS parameters work as usual.
    @param options: L{WebSocketOptions}; keyword arguments named after its
        fields (C{openTimeout=5}, C{maxMessageSize=...}) override them.

    @raise ValueError: (synchronously) a bad URL, header or option value.
    @raise TypeError: (synchronously) an unknown keyword, named.
    """
    clientEndpoint = WebSocketClientEndpoint(reactor, url, **endpointOptions)
    if protocol is None:
        d = clientEndpoint.connectFactory(clientEndpoint.buildFactory(CoroutineProtocol))
        return d.addCallback(lambda p: p.websocket)
    return clientEndpoint.connectFactory(clientEndpoint.buildFactory(protocol))
