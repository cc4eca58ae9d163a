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

import importlib
from typing import TYPE_CHECKING, Any

# Written once, in twisted_ws/version.py (pyproject.toml reads it there).
from .version import __version__ as __version__  # the alias: a re-export

if TYPE_CHECKING:
    from .apps.broadcast import BroadcastProtocol
    from .apps.bus import IBroadcastBus, LocalBus
    from .apps.hub import BroadcastHub
    from .apps.redisbus import RedisBus
    from .apps.stream import StreamOverWebSocketFactory, StreamOverWebSocketProtocol
    from .client.endpoint import WebSocketClientEndpoint, connectWS
    from .client.errors import (
        CertificateVerificationError,
        HTTP2NotSupported,
        WebSocketHandshakeRejected,
        WebSocketOpenTimeout,
        WebSocketProxyError,
    )
    from .client.factory import WebSocketClientFactory
    from .client.reconnecting import ReconnectingWebSocketClient
    from .core.acceptance import DEFAULT_SUBPROTOCOL, Accept, Reject
    from .core.closecodes import CloseCode, CloseInfo
    from .core.deflate import ClientPerMessageDeflate, DeflateExtension, PerMessageDeflate
    from .core.errors import (
        ClientHandshakeError,
        HandshakeClosed,
        HandshakeError,
        InvalidServerResponse,
        ProtocolError,
        WebSocketError,
    )
    from .core.handshake.request import HandshakeRequest
    from .core.options import WebSocketOptions
    from .errors import ConnectionClosed
    from .protocol import WebSocketProtocol
    from .server.factory import WebSocketServerFactory
    from .server.portsharing import PortSharingFactory
    from .server.resource import WebSocketResource
    from .server.upgrade import ServerHandshakeProtocol
    from .websocket import CoroutineProtocol, WebSocket
    from .writer import MessageWriter

# Each public name and the module defining it.  The names are imported on
# first use (PEP 562) rather than here, so that importing the I/O-free
# twisted_ws.core -- which runs this file first -- does not pull in Twisted.
_EXPORTS = {
    "Accept": "twisted_ws.core.acceptance",
    "BroadcastHub": "twisted_ws.apps.hub",
    "BroadcastProtocol": "twisted_ws.apps.broadcast",
    "CertificateVerificationError": "twisted_ws.client.errors",
    "ClientHandshakeError": "twisted_ws.core.errors",
    "ClientPerMessageDeflate": "twisted_ws.core.deflate",
    "CloseCode": "twisted_ws.core.closecodes",
    "CloseInfo": "twisted_ws.core.closecodes",
    "ConnectionClosed": "twisted_ws.errors",
    "CoroutineProtocol": "twisted_ws.websocket",
    "DEFAULT_SUBPROTOCOL": "twisted_ws.core.acceptance",
    "DeflateExtension": "twisted_ws.core.deflate",
    "HandshakeClosed": "twisted_ws.core.errors",
    "HandshakeError": "twisted_ws.core.errors",
    "HandshakeRequest": "twisted_ws.core.handshake.request",
    "HTTP2NotSupported": "twisted_ws.client.errors",
    "InvalidServerResponse": "twisted_ws.core.errors",
    "IBroadcastBus": "twisted_ws.apps.bus",
    "LocalBus": "twisted_ws.apps.bus",
    "MessageWriter": "twisted_ws.writer",
    "PerMessageDeflate": "twisted_ws.core.deflate",
    "PortSharingFactory": "twisted_ws.server.portsharing",
    "ProtocolError": "twisted_ws.core.errors",
    "ReconnectingWebSocketClient": "twisted_ws.client.reconnecting",
    "RedisBus": "twisted_ws.apps.redisbus",
    "Reject": "twisted_ws.core.acceptance",
    "ServerHandshakeProtocol": "twisted_ws.server.upgrade",
    "StreamOverWebSocketFactory": "twisted_ws.apps.stream",
    "StreamOverWebSocketProtocol": "twisted_ws.apps.stream",
    "WebSocketClientEndpoint": "twisted_ws.client.endpoint",
    "WebSocketClientFactory": "twisted_ws.client.factory",
    "WebSocketError": "twisted_ws.core.errors",
    "WebSocketHandshakeRejected": "twisted_ws.client.errors",
    "WebSocketOpenTimeout": "twisted_ws.client.errors",
    "WebSocketProxyError": "twisted_ws.client.errors",
    "WebSocketOptions": "twisted_ws.core.options",
    "WebSocketProtocol": "twisted_ws.protocol",
    "WebSocketResource": "twisted_ws.server.resource",
    "WebSocketServerFactory": "twisted_ws.server.factory",
    "WebSocket": "twisted_ws.websocket",
    "connectWS": "twisted_ws.client.endpoint",
}

__all__ = [
    "Accept",
    "BroadcastHub",
    "BroadcastProtocol",
    "CertificateVerificationError",
    "ClientHandshakeError",
    "ClientPerMessageDeflate",
    "CloseCode",
    "CloseInfo",
    "ConnectionClosed",
    "CoroutineProtocol",
    "DEFAULT_SUBPROTOCOL",
    "DeflateExtension",
    "HandshakeClosed",
    "HandshakeError",
    "HandshakeRequest",
    "HTTP2NotSupported",
    "InvalidServerResponse",
    "IBroadcastBus",
    "LocalBus",
    "MessageWriter",
    "PerMessageDeflate",
    "PortSharingFactory",
    "ProtocolError",
    "ReconnectingWebSocketClient",
    "RedisBus",
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
    "WebSocket",
    "connectWS",
]


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use, then cache it."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
