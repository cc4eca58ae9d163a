"""
Ready-made WebSocket applications, each usable on its own and by
C{twistd websocket}:

  - L{stream}: a byte stream (any Twisted protocol) carried over a
    WebSocket, both ways;
  - L{hub}: rooms for any WebSocket app (join, leave, publish), with a
    bounded queue per slow client, over a L{bus} (in-process, or Redis
    with L{redisbus});
  - L{broadcast}: the rooms of C{--mode broadcast}, one per URL path;
  - L{bridge}: a WebSocket-to-TCP bridge in the manner of websockify.
"""

from .bridge import BackendProtocol, BridgeProtocol, targetEndpoint
from .broadcast import BroadcastProtocol
from .bus import IBroadcastBus, LocalBus
from .hub import BroadcastHub, Room
from .stream import StreamOverWebSocketFactory, StreamOverWebSocketProtocol, WebSocketStreamTransport

__all__ = [
    "StreamOverWebSocketFactory",
    "StreamOverWebSocketProtocol",
    "WebSocketStreamTransport",
    "BroadcastHub",
    "BroadcastProtocol",
    "Room",
    "IBroadcastBus",
    "LocalBus",
    "BridgeProtocol",
    "BackendProtocol",
    "targetEndpoint",
]
