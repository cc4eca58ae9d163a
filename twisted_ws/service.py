"""
The service behind C{twistd websocket}: a ready-made WebSocket server.

C{twistd -n websocket} serves an echo on C{tcp:8080}; options choose other
modes and endpoints.
"""

from __future__ import annotations

from twisted.application import service, strports
from twisted.python import usage

from .protocol import WebSocketProtocol
from .server import WebSocketServerFactory

__all__ = ["Options", "makeService", "EchoProtocol"]


class EchoProtocol(WebSocketProtocol):
    """Send every message back as it came (text stays text)."""

    def textMessageReceived(self, text: str) -> None:
        self.sendMessage(text)

    def binaryMessageReceived(self, data: bytes) -> None:
        self.sendMessage(data)


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = "Serve WebSocket connections (default: an echo on tcp:8080)."

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []

    def opt_listen(self, description: str) -> None:
        """Endpoint to listen on (repeatable), e.g. tcp:8080, ssl:8443:privateKey=k.pem, unix:/tmp/ws.sock. [default: tcp:8080]"""
        self["listen"].append(description)

    def postOptions(self) -> None:
        if not self["listen"]:
            self["listen"] = ["tcp:8080"]


def makeService(options: Options) -> service.MultiService:
    top = service.MultiService()
    factory = WebSocketServerFactory(EchoProtocol)
    for description in options["listen"]:
        strports.service(description, factory).setServiceParent(top)
    return top
