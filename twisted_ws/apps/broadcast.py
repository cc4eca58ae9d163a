"""
Broadcast rooms, the C{twistd websocket --mode broadcast} application:
every message a client sends goes to every client in the same room (the
sender included, so a chat page can show its own lines in the order the
room saw them).  A room is named by the URL path the client connected to
(C{/chat/lobby}); it exists while it has members.

The rooms themselves are a L{BroadcastHub} (L{twisted_ws.apps.hub}): a
bounded backlog per client (a slow one is closed with 1008), each message
framed once for all, and with a bus (L{twisted_ws.apps.redisbus}) rooms
shared across processes and machines.
"""

from __future__ import annotations

from ..protocol import WebSocketProtocol
from .hub import SLOW_CLIENT_CODE, BroadcastHub, Room

__all__ = ["BroadcastHub", "BroadcastProtocol", "Room", "SLOW_CLIENT_CODE"]


class BroadcastProtocol(WebSocketProtocol):
    """
    A member of the room named by its URL path.

    Its factory must have a C{hub} attribute (a L{BroadcastHub}).  Override
    L{roomName} to name rooms differently.

    @ivar room: the name of the room it joined.
    """

    hub: BroadcastHub
    room: str | None = None

    def roomName(self) -> str:
        """The room this connection joins: the request's path."""
        return self.request.path if self.request is not None else "/"

    def connectionMade(self) -> None:
        self.hub = self.factory.hub
        self.room = self.roomName()
        self.hub.join(self.room, self)

    def messageReceived(self, message: str | bytes) -> None:
        # A client cut off for being too slow is no longer a member: what it
        # still sends while closing goes nowhere.
        if self.room is not None and self.hub.isMember(self.room, self):
            self.hub.publish(self.room, message)
