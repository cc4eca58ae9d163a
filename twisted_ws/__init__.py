"""
twisted_ws: a complete, fast, hardened RFC 6455 WebSocket implementation
for Twisted.

The names most applications need::

    from twisted_ws import WebSocketProtocol, WebSocketServerFactory

    class Echo(WebSocketProtocol):
        def messageReceived(self, message):
            self.sendMessage(message)

    reactor.listenTCP(8080, WebSocketServerFactory(Echo))

The I/O-free protocol logic lives in L{twisted_ws.core}; the modules here
glue it to Twisted.
"""

from .core.acceptance import DEFAULT_SUBPROTOCOL, Accept, Reject
from .core.closecodes import CloseCode, CloseInfo
from .core.deflate import ClientPerMessageDeflate, DeflateExtension, PerMessageDeflate
from .core.errors import HandshakeError, ProtocolError, WebSocketError
from .core.handshake import HandshakeRequest
from .core.options import WebSocketOptions
from .protocol import ConnectionClosed, MessageWriter, WebSocketProtocol
from .portsharing import PortSharingFactory
from .resource import WebSocketResource
from .server import ServerHandshakeProtocol, WebSocketServerFactory
from .stream import StreamOverWebSocketFactory, StreamOverWebSocketProtocol
from .client import (
    ReconnectingWebSocketClient,
    WebSocketClientEndpoint,
    WebSocketClientFactory,
    WebSocketHandshakeRejected,
    WebSocketOpenTimeout,
    WebSocketProxyError,
    connectWS,
)

__version__ = "0.1.0"

__all__ = [
    "Accept",
    "ClientPerMessageDeflate",
    "CloseCode",
    "CloseInfo",
    "ConnectionClosed",
    "DEFAULT_SUBPROTOCOL",
    "DeflateExtension",
    "HandshakeError",
    "HandshakeRequest",
    "MessageWriter",
    "PerMessageDeflate",
    "PortSharingFactory",
    "ProtocolError",
    "ReconnectingWebSocketClient",
    "Reject",
    "ServerHandshakeProtocol",
    "StreamOverWebSocketFactory",
    "StreamOverWebSocketProtocol",
    "WebSocketClientEndpoint",
    "WebSocketClientFactory",
    "WebSocketError",
    "WebSocketHandshakeRejected",
    "WebSocketOpenTimeout",
    "WebSocketProxyError",
    "WebSocketOptions",
    "WebSocketProtocol",
    "WebSocketResource",
    "WebSocketServerFactory",
    "connectWS",
]
