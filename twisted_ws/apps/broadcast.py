"""
Broadcast rooms: every message a client sends goes to every client in the
same room (the sender included, so a chat page can show its own lines in
the order the room saw them).  A room is named by the URL path the client
connected to (C{/chat/lobby}); it exists while it has members.

A slow client must not stall or bloat the room.  Sending never blocks, so
the danger is memory: each client has a bounded backlog.  Messages go
straight to the connection while its transport accepts them; once the
transport reports that it is full (Twisted's producer/consumer
C{pauseProducing}), they wait in the client's own queue and are fed to it
as the transport drains (C{resumeProducing}).  When the backlog -- the
queue plus what the connection already holds unsent
(C{bufferedAmount}) -- passes C{maxQueueBytes} bytes or
C{maxQueueMessages} messages, the client leaves the room at once and is
closed with B{1008 (policy violation)}.

Why 1008 and not 1013 (try again later): 1013 says the I{server} is
overloaded and that retrying later may work; here the server is fine and
the client broke the room's rule (read at the pace of the room), which is
what 1008 is for.  A client that reconnects and reads no faster will be
cut off again.  The Close frame is queued behind the data the client has
not read; a client that never reads is aborted after the close timeout.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from zope.interface import implementer

from ..core.closecodes import CloseCode
from ..protocol import WebSocketProtocol

__all__ = ["BroadcastHub", "BroadcastProtocol", "Room"]

_log = Logger()

#: The close code a client too slow for its room gets (see the module docstring).
SLOW_CLIENT_CODE = CloseCode.POLICY_VIOLATION


def _formatPeer(address: Any) -> str:
    host = getattr(address, "host", None)
    return f"{host}:{address.port}" if host is not None else str(address)


class Room:
    """The clients connected to one path, in the order they joined."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.members: dict[BroadcastProtocol, None] = {}

    def __len__(self) -> int:
        return len(self.members)

    def __repr__(self) -> str:
        return f"<Room {self.name!r} ({len(self.members)} members)>"


class BroadcastHub:
    """
    The rooms of one server and the backlog limits of their clients.

    @param maxQueueBytes: most bytes a client may have waiting to be sent.
    @param maxQueueMessages: most messages a client may have waiting.
    """

    def __init__(self, maxQueueBytes: int = 1 << 20, maxQueueMessages: int = 1000) -> None:
        if maxQueueBytes <= 0 or maxQueueMessages <= 0:
            raise ValueError("queue limits must be positive")
        self.maxQueueBytes = maxQueueBytes
        self.maxQueueMessages = maxQueueMessages
        self.rooms: dict[str, Room] = {}
        #: Clients cut off for being too slow, since start.
        self.slowClients = 0

    def join(self, client: BroadcastProtocol, name: str) -> Room:
        """Add C{client} to room C{name}, creating the room if needed."""
        room = self.rooms.get(name)
        if room is None:
            room = self.rooms[name] = Room(name)
        room.members[client] = None
        return room

    def leave(self, client: BroadcastProtocol, room: Room) -> None:
        """Take C{client} out of C{room}; an empty room is forgotten."""
        room.members.pop(client, None)
        if not room.members and self.rooms.get(room.name) is room:
            del self.rooms[room.name]

    def broadcast(self, room: Room, message: str | bytes) -> int:
        """
        Send C{message} (C{str}: text, C{bytes}: binary) to everyone in
        C{room}.  Never blocks: slow members queue it or are cut off.

        @return: how many members it was given to.
        """
        isText = isinstance(message, str)
        payload = message.encode("utf-8") if isText else bytes(message)
        delivered = 0
        # A copy: delivering may cut a slow member off, which leaves the room.
        for client in tuple(room.members):
            if client.deliver(payload, isText):
                delivered += 1
        return delivered

    def status(self) -> dict[str, Any]:
        """Figures for the status page."""
        return {
            "rooms": len(self.rooms),
            "roomMembers": {name: len(room) for name, room in self.rooms.items()},
            "slowClientsClosed": self.slowClients,
        }


@implementer(IPushProducer)
class _DrainWatcher:
    """
    Registered as the connection's producer so that it learns when the
    transport is full (pause) and when it drained (resume).
    """

    def __init__(self, client: BroadcastProtocol) -> None:
        self.client = client

    def pauseProducing(self) -> None:
        self.client._transportFull = True

    def resumeProducing(self) -> None:
        self.client._transportFull = False
        self.client._drain()

    def stopProducing(self) -> None:
        self.client._transportFull = True


class BroadcastProtocol(WebSocketProtocol):
    """
    A member of the room named by its URL path.

    Its factory must have a C{hub} attribute (a L{BroadcastHub}).  Override
    L{roomName} to name rooms differently.
    """

    hub: BroadcastHub
    room: Room | None = None
    _transportFull = False
    _cutOff = False

    def roomName(self) -> str:
        """The room this connection joins: the request's path."""
        return self.request.path if self.request is not None else "/"

    def connectionMade(self) -> None:
        self.hub = self.factory.hub
        self._queue: deque[tuple[bytes, bool]] = deque()
        self._queuedBytes = 0
        self.registerProducer(_DrainWatcher(self), True)
        self.room = self.hub.join(self, self.roomName())

    def messageReceived(self, message: str | bytes) -> None:
        if self.room is not None:
            self.hub.broadcast(self.room, message)

    def connectionClosed(self, code: int, reason: str, wasClean: bool) -> None:
        self._leave()

    # -- delivery with a bounded backlog ------------------------------------

    def deliver(self, payload: bytes, isText: bool) -> bool:
        """
        Send one room message (UTF-8 C{payload} when C{isText}), now or once
        the transport drains.  Returns C{False} when this client is gone or
        was just cut off for being too slow.
        """
        if self._cutOff or not self.connected:
            return False
        if not self._transportFull and not self._queue:
            self.sendMessage(payload, isBinary=not isText)
        else:
            self._queue.append((payload, isText))
            self._queuedBytes += len(payload)
        hub = self.hub
        backlog = self._queuedBytes + self.bufferedAmount
        if backlog > hub.maxQueueBytes or len(self._queue) > hub.maxQueueMessages:
            self._tooSlow(backlog)
            return False
        return True

    def _drain(self) -> None:
        queue = self._queue
        while queue and not self._transportFull and not self._cutOff:
            payload, isText = queue.popleft()
            self._queuedBytes -= len(payload)
            self.sendMessage(payload, isBinary=not isText)

    def _tooSlow(self, backlog: int) -> None:
        self._cutOff = True
        self.hub.slowClients += 1
        room = self.room
        _log.warn(
            "broadcast: {peer} in room {room} is too slow ({backlog} bytes, "
            "{messages} messages waiting); closing with {code}",
            peer=_formatPeer(self._peer()),
            room=room.name if room else None,
            backlog=backlog,
            messages=len(self._queue),
            code=int(SLOW_CLIENT_CODE),
        )
        self._leave()
        self._queue.clear()
        self._queuedBytes = 0
        self.close(SLOW_CLIENT_CODE, "too slow: send queue overflow")

    def _leave(self) -> None:
        room, self.room = self.room, None
        if room is not None:
            self.hub.leave(self, room)
