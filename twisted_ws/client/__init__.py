"""
The WebSocket client: connect to a C{ws://} or C{wss://} URL and get the
application's open L{WebSocketProtocol} back in a Deferred.

Layers, from the outside in:

  - L{connectWS}: one call, one connection -- parses the URL, picks the
    transport and fires with the open protocol (L{endpoint}).
  - L{WebSocketClientEndpoint}: an C{IStreamClientEndpoint} whose
    C{connect(factory)} fires once the WebSocket is open, so it composes
    with C{ClientService} (which L{ReconnectingWebSocketClient} does).
  - L{WebSocketClientFactory}: an C{IProtocolFactory} usable with any client
    endpoint or C{reactor.connectTCP} (L{factory}); its protocol performs
    the opening handshake (L{handshake}), then hands the transport to the
    application's protocol.

Underneath: an HTTP proxy tunnel (L{proxy}) and TLS that fails closed
(L{tls}); the ways opening can fail are in L{errors}.
"""

from ..core.errors import ClientHandshakeError, HandshakeClosed, InvalidServerResponse
from ..core.urls import WebSocketURL, parseURL
from .endpoint import WebSocketClientEndpoint, connectWS
from .errors import (
    CertificateVerificationError,
    HTTP2NotSupported,
    WebSocketHandshakeRejected,
    WebSocketOpenTimeout,
    WebSocketProxyError,
)
from .factory import WebSocketClientFactory
from .handshake import MAX_REJECTION_BODY, ClientHandshakeProtocol
from .reconnecting import ReconnectingWebSocketClient
from .tls import VerifyingClientTLSOptions

__all__ = [
    "WebSocketURL",
    "parseURL",
    "WebSocketHandshakeRejected",
    "ClientHandshakeError",
    "InvalidServerResponse",
    "HandshakeClosed",
    "WebSocketProxyError",
    "WebSocketOpenTimeout",
    "CertificateVerificationError",
    "HTTP2NotSupported",
    "ClientHandshakeProtocol",
    "MAX_REJECTION_BODY",
    "WebSocketClientFactory",
    "WebSocketClientEndpoint",
    "VerifyingClientTLSOptions",
    "ReconnectingWebSocketClient",
    "connectWS",
]
