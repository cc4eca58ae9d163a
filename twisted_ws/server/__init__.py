"""
The WebSocket server.

L{WebSocketServerFactory} (L{factory}) is an ordinary C{IProtocolFactory}:
pass it to C{reactor.listenTCP}, an endpoint's C{listen} or a strports
description.  Each connection first gets a L{ServerHandshakeProtocol}
(L{upgrade}), which reads the upgrade request, asks the accept hook
(L{accepthook}) and hands the transport to the application's protocol.
L{WebSocketResource} (L{resource}) does the same inside a twisted.web
site, and L{PortSharingFactory} (L{portsharing}) serves WebSockets and a
web site on one port.
"""

from .accepthook import AcceptHook, PendingHandshake, resolveDecision, runAcceptHook
from .factory import WebSocketServerFactory
from .portsharing import PortSharingFactory, PortSharingProtocol
from .resource import WebSocketResource
from .upgrade import ServerHandshakeProtocol

__all__ = [
    "WebSocketServerFactory",
    "ServerHandshakeProtocol",
    "WebSocketResource",
    "PortSharingFactory",
    "PortSharingProtocol",
    "AcceptHook",
    "resolveDecision",
    "runAcceptHook",
    "PendingHandshake",
]
