"""
Ready-made WebSocket applications, each usable on its own and by
C{twistd websocket}:

  - L{stream}: a byte stream (any Twisted protocol) carried over a
    WebSocket, both ways;
  - L{broadcast}: rooms where every message goes to every member, with a
    bounded queue per slow client;
  - L{bridge}: a WebSocket-to-TCP bridge in the manner of websockify.
"""

from .bridge import BackendProtocol, BridgeProtocol, targetEndpoint
from .broadcast import BroadcastHub, BroadcastProtocol, Room
from .stream import StreamOverWebSocketFactory, StreamOverWebSocketProtocol, WebSocketStreamTransport

__all__ = [
    "StreamOverWebSocketFactory",
    "StreamOverWebSocketProtocol",
    "WebSocketStreamTransport",
    "BroadcastHub",
    "BroadcastProtocol",
    "Room",
    "BridgeProtocol",
    "BackendProtocol",
    "targetEndpoint",
]
