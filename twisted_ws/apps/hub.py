"""
Rooms for WebSocket applications: L{BroadcastHub}.

Any L{WebSocketProtocol} can join rooms (C{hub.join(room, self)}); a
message published to a room (C{hub.publish(room, message)}: C{str} as
text, C{bytes} as binary) goes to every member, in publish order.  A
connection leaves every room by itself when it is gone.  With a bus
(L{twisted_ws.apps.bus}), rooms span processes and machines.

Encode once: a message is framed once, and that same frame is written to
every member that has no per-connection state for it (no extension such
as permessage-deflate, whose compressor belongs to one connection);
those members get an ordinary C{sendMessage}.

A slow member must not stall or bloat the room.  Sending never blocks, so
the danger is memory: each member has a bounded backlog.  Messages go
straight to the connection while its transport accepts them; once the
transport reports that it is full (the hub is the connection's streaming
producer and gets C{pauseProducing}), they wait in the member's own queue
and are fed to it as the transport drains (C{resumeProducing}).  When the
backlog -- the queue plus what the connection already holds unsent
(C{bufferedAmount}) -- passes C{maxQueueBytes} bytes or
C{maxQueueMessages} messages, the member leaves every room at once and is
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
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from zope.interface import implementer

from ..core.closecodes import CloseCode
from ..core.frames import OP_BINARY, OP_TEXT, serializeFrame
from .bus import IBroadcastBus, LocalBus

if TYPE_CHECKING:
    from ..protocol import WebSocketProtocol

__all__ = ["BroadcastHub", "Room", "SLOW_CLIENT_CODE"]

_log = Logger(namespace="twisted_ws.apps.broadcast")

#: The close code a member too slow for its rooms gets (see the module docstring).
SLOW_CLIENT_CODE = CloseCode.POLICY_VIOLATION


def _formatPeer(protocol: Any) -> str:
    try:
        address = protocol.transport.getPeer()
    except Exception:
        return "?"
    host = getattr(address, "host", None)
    return f"{host}:{address.port}" if host is not None else str(address)


class Room:
    """The local members of one room, in the order they joined."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.members: dict[WebSocketProtocol, _Member] = {}

    def __len__(self) -> int:
        return len(self.members)

    def __repr__(self) -> str:
        return f"<Room {self.name!r} ({len(self.members)} members)>"


class _Message:
    """One published message, framed on first need and then shared."""

    __slots__ = ("isText", "payload", "message", "_frame")

    def __init__(self, isText: bool, payload: bytes, message: str | bytes) -> None:
        self.isText = isText
        self.payload = payload
        self.message = message
        self._frame: bytes | None = None

    def frame(self) -> bytes:
        frame = self._frame
        if frame is None:
            frame = self._frame = serializeFrame(OP_TEXT if self.isText else OP_BINARY, self.payload)
        return frame


@implementer(IPushProducer)
class _Member:
    """
    A connection's place in the hub: its rooms and its backlog.  It is the
    connection's producer, which tells it when the transport is full,
    when it drained, and when the connection is gone.
    """

    __slots__ = ("hub", "protocol", "rooms", "queue", "queuedBytes", "full", "cutOff", "framed", "fragmentSize")

    def __init__(self, hub: BroadcastHub, protocol: WebSocketProtocol) -> None:
        self.hub = hub
        self.protocol = protocol
        self.rooms: dict[str, Room] = {}
        self.queue: deque[_Message] = deque()
        self.queuedBytes = 0
        self.full = False
        self.cutOff = False
        # The shared frame fits a server connection with no extension,
        # for messages it would not have fragmented itself.
        self.framed = not protocol.isClient and not protocol.extensions
        options = protocol.options
        self.fragmentSize = options.fragmentSize if options is not None else None

    def pauseProducing(self) -> None:
        self.full = True

    def resumeProducing(self) -> None:
        self.full = False
        self.hub._drain(self)

    def stopProducing(self) -> None:
        self.full = True
        self.hub._gone(self)


class BroadcastHub:
    """
    Rooms of WebSocket connections, and the backlog limits of their members.

    @param maxQueueBytes: most bytes a member may have waiting to be sent.
    @param maxQueueMessages: most messages a member may have waiting.
    @param bus: an L{IBroadcastBus} joining this hub's rooms to other
        hubs' (another process, another machine); none by default.

    A member must not register a producer of its own: the hub is its
    producer, to follow its flow control.
    """

    def __init__(
        self,
        maxQueueBytes: int = 1 << 20,
        maxQueueMessages: int = 1000,
        bus: IBroadcastBus | None = None,
    ) -> None:
        if maxQueueBytes <= 0 or maxQueueMessages <= 0:
            raise ValueError("queue limits must be positive")
        self.maxQueueBytes = maxQueueBytes
        self.maxQueueMessages = maxQueueMessages
        self.rooms: dict[str, Room] = {}
        self._members: dict[WebSocketProtocol, _Member] = {}
        self.bus: IBroadcastBus = bus if bus is not None else LocalBus()
        self.bus.attach(self._remoteMessage)
        #: Members cut off for being too slow, since start.
        self.slowClients = 0
        #: Messages published here.
        self.published = 0
        #: Messages received from other hubs through the bus.
        self.remoteReceived = 0
        #: Messages from the bus dropped for invalid UTF-8 text.
        self.remoteInvalid = 0
        #: Messages handed to members (sent or queued), one per member.
        self.deliveries = 0

    # -- membership ----------------------------------------------------------

    def join(self, room: str, protocol: WebSocketProtocol) -> None:
        """
        Make C{protocol} a member of C{room} (created when needed).  A
        connection that is already gone joins nothing.
        """
        if not isinstance(room, str):
            raise TypeError(f"room names are str, not {type(room).__name__}")
        if not protocol.connected:
            return
        member = self._members.get(protocol)
        if member is None:
            member = _Member(self, protocol)
            try:
                protocol.registerProducer(member, True)
            except RuntimeError:
                raise RuntimeError(
                    f"{protocol!r} has a producer registered; a hub member cannot have its own"
                ) from None
            self._members[protocol] = member
        if room in member.rooms:
            return
        r = self.rooms.get(room)
        if r is None:
            r = self.rooms[room] = Room(room)
            self.bus.subscribe(room)
        r.members[protocol] = member
        member.rooms[room] = r

    def leave(self, room: str, protocol: WebSocketProtocol) -> None:
        """Take C{protocol} out of C{room}; messages already queued still go."""
        member = self._members.get(protocol)
        if member is None:
            return
        r = member.rooms.pop(room, None)
        if r is not None:
            self._removeFrom(r, protocol)
        if not member.rooms and not member.queue:
            self._release(member)

    def leaveAll(self, protocol: WebSocketProtocol) -> None:
        """Take C{protocol} out of every room (done for you when it is gone)."""
        member = self._members.get(protocol)
        if member is None:
            return
        self._leaveRooms(member)
        if not member.queue:
            self._release(member)

    def isMember(self, room: str, protocol: WebSocketProtocol) -> bool:
        """Whether C{protocol} is in C{room}."""
        member = self._members.get(protocol)
        return member is not None and room in member.rooms

    def roomsOf(self, protocol: WebSocketProtocol) -> list[str]:
        """The rooms C{protocol} is in, in the order it joined them."""
        member = self._members.get(protocol)
        return list(member.rooms) if member is not None else []

    def _leaveRooms(self, member: _Member) -> None:
        rooms, member.rooms = member.rooms, {}
        for r in rooms.values():
            self._removeFrom(r, member.protocol)

    def _removeFrom(self, r: Room, protocol: WebSocketProtocol) -> None:
        r.members.pop(protocol, None)
        if not r.members and self.rooms.get(r.name) is r:
            del self.rooms[r.name]
            self.bus.unsubscribe(r.name)

    def _release(self, member: _Member) -> None:
        protocol = member.protocol
        if self._members.get(protocol) is member:
            del self._members[protocol]
            if protocol.connected:
                protocol.unregisterProducer()

    def _gone(self, member: _Member) -> None:
        """The connection is going away: forget it everywhere."""
        member.queue.clear()
        member.queuedBytes = 0
        self._leaveRooms(member)
        self._release(member)

    # -- publishing ----------------------------------------------------------

    def publish(self, room: str, message: str | bytes) -> int:
        """
        Send C{message} (C{str}: text, C{bytes}: binary) to every member of
        C{room}, here and, through the bus, elsewhere.  Never blocks: slow
        members queue it or are cut off.

        @return: how many local members it was given to.
        """
        if not isinstance(room, str):
            raise TypeError(f"room names are str, not {type(room).__name__}")
        if isinstance(message, str):
            msg = _Message(True, message.encode("utf-8"), message)
        elif isinstance(message, (bytes, bytearray, memoryview)):
            payload = bytes(message)
            msg = _Message(False, payload, payload)
        else:
            raise TypeError(f"messages are str or bytes, not {type(message).__name__}")
        self.published += 1
        r = self.rooms.get(room)
        given = self._fanOut(r, msg) if r is not None else 0
        self.bus.publish(room, msg.isText, msg.payload)
        return given

    def _remoteMessage(self, room: str, isText: bool, payload: bytes) -> None:
        """A message another hub published: to the local members only."""
        r = self.rooms.get(room)
        if r is None:
            return
        message: str | bytes = payload
        if isText:
            try:
                message = payload.decode("utf-8")
            except UnicodeDecodeError:
                self.remoteInvalid += 1
                count = self.remoteInvalid
                if count & (count - 1) == 0:  # 1, 2, 4, 8...: bounded logging
                    _log.warn(
                        "broadcast: dropped a text message for room {room} from the bus: "
                        "invalid UTF-8 ({count} so far)",
                        room=room,
                        count=count,
                    )
                return
        self.remoteReceived += 1
        self._fanOut(r, _Message(isText, payload, message))

    def _fanOut(self, r: Room, msg: _Message) -> int:
        given = 0
        # A copy: delivering may cut a slow member off, which leaves the room.
        for member in tuple(r.members.values()):
            if self._deliver(member, msg):
                given += 1
        self.deliveries += given
        return given

    # -- delivery with a bounded backlog -----------------------------------------

    def _deliver(self, member: _Member, msg: _Message) -> bool:
        if member.cutOff:
            return False
        queue = member.queue
        if not member.full and not queue:
            if not self._send(member, msg):
                return False
        else:
            queue.append(msg)
            member.queuedBytes += len(msg.payload)
        backlog = member.queuedBytes + member.protocol.bufferedAmount
        if backlog > self.maxQueueBytes or len(queue) > self.maxQueueMessages:
            self._tooSlow(member, backlog)
            return False
        return True

    def _send(self, member: _Member, msg: _Message) -> bool:
        protocol = member.protocol
        size = member.fragmentSize
        try:
            if member.framed and (size is None or len(msg.payload) <= size):
                protocol.sendFramedMessage(msg.frame())
            else:
                protocol.sendMessage(msg.message)
        except Exception:
            # One member's trouble (a streamed message of its own under
            # way, a bug) must not stop the room.
            _log.failure("broadcast: could not send to {protocol!r}", protocol=protocol)
            return False
        return True

    def _drain(self, member: _Member) -> None:
        queue = member.queue
        while queue and not member.full and not member.cutOff:
            msg = queue.popleft()
            member.queuedBytes -= len(msg.payload)
            self._send(member, msg)
        if not queue and not member.rooms:
            self._release(member)

    def _tooSlow(self, member: _Member, backlog: int) -> None:
        member.cutOff = True
        self.slowClients += 1
        _log.warn(
            "broadcast: {peer} in room {room} is too slow ({backlog} bytes, "
            "{messages} messages waiting); closing with {code}",
            peer=_formatPeer(member.protocol),
            room=", ".join(member.rooms) or None,
            backlog=backlog,
            messages=len(member.queue),
            code=int(SLOW_CLIENT_CODE),
        )
        member.queue.clear()
        member.queuedBytes = 0
        self._leaveRooms(member)
        self._release(member)
        member.protocol.close(SLOW_CLIENT_CODE, "too slow: send queue overflow")

    # -- reporting -------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Figures for the status page."""
        bus = self.bus
        return {
            "rooms": len(self.rooms),
            "roomMembers": {name: len(room) for name, room in self.rooms.items()},
            "slowClientsClosed": self.slowClients,
            "published": self.published,
            "deliveries": self.deliveries,
            "bus": {
                "backend": type(bus).__name__,
                "connected": bool(bus.connected),
                "publishFailures": bus.publishFailures,
                "remoteReceived": self.remoteReceived,
            },
        }
