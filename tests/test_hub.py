"""
The broadcast hub and its bus on memory transports: rooms, publish order,
one frame shared by every plain member, reference-counted subscriptions,
the slow-member cut-off (1008), messages from the bus, and the Redis bus's
protocol driven over a StringTransport with canned replies, its reconnect
backoff on a Clock.  Nothing here waits on the wall clock.
"""

from __future__ import annotations

import zlib

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.defer import fail, succeed
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs, formatEvent
from twisted.python.failure import Failure
from zope.interface import implementer
from zope.interface.verify import verifyObject

from twisted_ws import BroadcastHub, IBroadcastBus, LocalBus, WebSocketProtocol
from twisted_ws.apps import hub as hubModule
from twisted_ws.core.connection import WebSocketConnection
from twisted_ws.core.deflate import DeflateExtension
from twisted_ws.core.frames import OP_BINARY, OP_CLOSE, OP_TEXT, FrameParser, serializeFrame
from twisted_ws.core.options import WebSocketOptions
from wshelpers import PeerTransport

PEER = IPv4Address("TCP", "192.0.2.9", 40999)


class Member(WebSocketProtocol):
    def connectionMade(self):
        self.received = []

    def messageReceived(self, message):
        self.received.append(message)


def connect(extensions=(), highWater=1 << 30, options=None) -> Member:
    protocol = Member()
    protocol.clock = Clock()
    protocol.options = options or WebSocketOptions(pingInterval=None)
    protocol.extensions = list(extensions)
    protocol.makeConnection(PeerTransport(highWater, peer=PEER))
    return protocol


def frames(protocol, inflate=False) -> list[tuple[int, object]]:
    """The (opcode, message) pairs written to C{protocol}'s peer."""
    parser = FrameParser(requireMask=False, maxMessageSize=None, allowedRsv=0x70)
    out = []
    inflater = zlib.decompressobj(-15)
    for opcode, _fin, rsv, payload, _ in parser.feed(protocol.transport.value()):
        if rsv & 0x40:
            assert inflate, "an unexpected compressed frame"
            payload = inflater.decompress(payload + b"\x00\x00\xff\xff")
        if opcode == OP_TEXT:
            out.append((opcode, payload.decode("utf-8")))
        else:
            out.append((opcode, payload))
    return out


@implementer(IBroadcastBus)
class FakeBus:
    """Records what the hub asks of it; L{deliver} plays another hub."""

    connected = True
    publishFailures = 0

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.deliver = None

    def attach(self, deliver):
        self.deliver = deliver

    def subscribe(self, room):
        self.calls.append(("subscribe", room))

    def unsubscribe(self, room):
        self.calls.append(("unsubscribe", room))

    def publish(self, room, isText, payload):
        self.calls.append(("publish", room, isText, payload))


# -- rooms and order ------------------------------------------------------------------


def test_everyMemberGetsEveryMessageInPublishOrder() -> None:
    hub = BroadcastHub()
    members = [connect() for _ in range(3)]
    outsider = connect()
    for m in members:
        hub.join("lobby", m)
    hub.join("other", outsider)
    assert hub.publish("lobby", "one") == 3
    assert hub.publish("lobby", b"\x00two") == 3
    assert hub.publish("lobby", "thr\u00e9e") == 3
    expected = [(OP_TEXT, "one"), (OP_BINARY, b"\x00two"), (OP_TEXT, "thr\u00e9e")]
    for m in members:
        assert frames(m) == expected
    assert frames(outsider) == []
    assert hub.roomsOf(members[0]) == ["lobby"]
    assert hub.isMember("lobby", members[0]) and not hub.isMember("lobby", outsider)


def test_aMessageIsFramedOnceAndTheSameBytesGoToEveryPlainMember(monkeypatch) -> None:
    built = []

    def countingSerialize(opcode, payload, *args, **kwargs):
        frame = serializeFrame(opcode, payload, *args, **kwargs)
        built.append(frame)
        return frame

    monkeypatch.setattr(hubModule, "serializeFrame", countingSerialize)
    hub = BroadcastHub()
    plain = [connect() for _ in range(3)]
    deflate = connect(extensions=[DeflateExtension(threshold=0)])
    for m in [*plain, deflate]:
        hub.join("r", m)
    hub.publish("r", "hello hello hello hello")
    assert len(built) == 1
    frame = built[0]
    assert frame == serializeFrame(OP_TEXT, b"hello hello hello hello")
    for m in plain:
        # The very object: written as is, not re-framed or copied.
        assert m.transport.writes == [frame]
        assert m.transport.writes[0] is frame
        assert m.traffic.messagesOut == 1
    # The deflate member has its own compressor: its own, compressed frame.
    assert deflate.transport.writes[0] != frame
    assert frames(deflate, inflate=True) == [(OP_TEXT, "hello hello hello hello")]


def test_aMessageLargerThanAMembersFragmentSizeIsFragmentedForIt() -> None:
    hub = BroadcastHub()
    small = connect(options=WebSocketOptions(pingInterval=None, fragmentSize=4))
    plain = connect()
    hub.join("r", small)
    hub.join("r", plain)
    hub.publish("r", b"0123456789")
    assert len(plain.transport.writes) == 1
    parser = FrameParser(requireMask=False, maxMessageSize=None)
    pieces = parser.feed(small.transport.value())
    assert len(pieces) == 3
    assert b"".join(p[3] for p in pieces) == b"0123456789"


def test_aFramedMessageWaitsItsTurnBehindQueuedOutput() -> None:
    written = []
    conn = WebSocketConnection(handler=None, write=written.append)
    conn.pauseWriting()
    conn.sendMessage("first")
    conn.sendFramedMessage(serializeFrame(OP_TEXT, b"second"))
    conn.sendMessage("third")
    assert written == []
    conn.resumeWriting()
    parser = FrameParser(requireMask=False)
    assert [p[3] for p in parser.feed(b"".join(written))] == [b"first", b"second", b"third"]
    client = WebSocketConnection(handler=None, write=written.append, isClient=True)
    with pytest.raises(ValueError):
        client.sendFramedMessage(serializeFrame(OP_TEXT, b"x"))


def test_badRoomOrMessageTypesAreClearErrors() -> None:
    hub = BroadcastHub()
    m = connect()
    with pytest.raises(TypeError, match="room names are str"):
        hub.join(b"room", m)
    with pytest.raises(TypeError, match="messages are str or bytes"):
        hub.publish("room", 42)


def test_aMemberWithItsOwnProducerCannotJoin() -> None:
    hub = BroadcastHub()
    m = connect()
    m.registerProducer(object(), False)
    with pytest.raises(RuntimeError, match="has a producer registered"):
        hub.join("r", m)


# -- membership and subscriptions ---------------------------------------------------


def test_subscriptionsAreReferenceCountedPerRoom() -> None:
    bus = FakeBus()
    hub = BroadcastHub(bus=bus)
    a, b, c = connect(), connect(), connect()
    hub.join("r", a)
    hub.join("r", b)
    hub.join("r", b)  # twice: still one membership
    hub.join("s", c)
    assert bus.calls == [("subscribe", "r"), ("subscribe", "s")]
    hub.leave("r", a)
    assert bus.calls[-1] == ("subscribe", "s")
    hub.leave("r", a)  # not a member any more: nothing happens
    b.connectionLost(Failure(ConnectionDone()))  # the last member of r is gone
    assert bus.calls[-1] == ("unsubscribe", "r")
    hub.join("r", a)  # r again: subscribed again
    assert bus.calls[-1] == ("subscribe", "r")
    assert list(hub.rooms) == ["s", "r"]
    assert bus.calls.count(("unsubscribe", "r")) == 1


def test_aConnectionThatIsGoneLeavesEveryRoom() -> None:
    hub = BroadcastHub()
    a, b = connect(), connect()
    for room in ("x", "y"):
        hub.join(room, a)
    hub.join("x", b)
    a.connectionLost(Failure(ConnectionDone()))
    assert hub.roomsOf(a) == []
    assert list(hub.rooms) == ["x"] and len(hub.rooms["x"]) == 1
    assert hub.publish("y", "nobody") == 0
    assert hub.publish("x", "b only") == 1
    # Once gone, it joins nothing.
    hub.join("x", a)
    assert len(hub.rooms["x"]) == 1


def test_leavingEveryRoomHandsTheProducerSlotBack() -> None:
    hub = BroadcastHub()
    a = connect()
    hub.join("x", a)
    hub.leaveAll(a)
    a.registerProducer(object(), False)  # free again for the app's own use


# -- the slow member -----------------------------------------------------------------------


def test_aPausedMemberQueuesAndGetsEverythingInOrderWhenItDrains() -> None:
    hub = BroadcastHub(maxQueueMessages=10)
    slow, fast = connect(highWater=0), connect()
    hub.join("r", slow)
    hub.join("r", fast)
    hub.publish("r", "m0")  # fills slow's transport: it is paused now
    for i in range(1, 5):
        hub.publish("r", f"m{i}")
    assert frames(slow) == [(OP_TEXT, "m0")]
    assert [m for _, m in frames(fast)] == [f"m{i}" for i in range(5)]
    slow.transport.highWater = 1 << 30
    slow.transport.drain()
    assert [m for _, m in frames(slow)] == [f"m{i}" for i in range(5)]


def test_aMemberTooSlowForTheRoomIsCutOffWith1008AndTheRoomGoesOn() -> None:
    hub = BroadcastHub(maxQueueMessages=3)
    slow, fast = connect(highWater=0), connect()
    hub.join("r", slow)
    hub.join("r", fast)
    with capturedLogs() as events:
        for i in range(6):
            hub.publish("r", f"m{i}")
    assert hub.slowClients == 1
    assert not hub.isMember("r", slow)
    assert [m for _, m in frames(fast)] == [f"m{i}" for i in range(6)]
    slow.transport.drain()
    got = frames(slow)
    assert got[0] == (OP_TEXT, "m0")
    assert got[-1][0] == OP_CLOSE and got[-1][1][:2] == (1008).to_bytes(2, "big")
    assert len(got) < 6  # the queued messages were dropped, not sent
    lines = [formatEvent(e) for e in events]
    assert any("192.0.2.9:40999 in room r is too slow" in line and "1008" in line for line in lines)


def test_theByteLimitCutsOffToo() -> None:
    hub = BroadcastHub(maxQueueBytes=100)
    slow = connect(highWater=0)
    hub.join("r", slow)
    hub.publish("r", b"x" * 10)
    hub.publish("r", b"x" * 60)
    assert hub.isMember("r", slow)
    hub.publish("r", b"x" * 60)
    assert not hub.isMember("r", slow) and hub.slowClients == 1


# -- the bus ----------------------------------------------------------------------------


def test_publishesGoToTheBusOnceEvenWithNoLocalMember() -> None:
    bus = FakeBus()
    hub = BroadcastHub(bus=bus)
    hub.publish("empty", "hi")
    hub.publish("empty", b"\x01")
    assert bus.calls == [("publish", "empty", True, b"hi"), ("publish", "empty", False, b"\x01")]


def test_messagesFromTheBusReachLocalMembersOnly() -> None:
    bus = FakeBus()
    hub = BroadcastHub(bus=bus)
    a, b = connect(), connect()
    hub.join("r", a)
    hub.join("s", b)
    bus.deliver("r", True, "caf\u00e9".encode())
    bus.deliver("r", False, b"\xff\x00")
    bus.deliver("nowhere", True, b"lost")
    with capturedLogs() as events:
        bus.deliver("r", True, b"\xff not utf-8")
    assert frames(a) == [(OP_TEXT, "caf\u00e9"), (OP_BINARY, b"\xff\x00")]
    assert frames(b) == []
    assert hub.remoteReceived == 2 and hub.remoteInvalid == 1
    assert any("invalid UTF-8" in formatEvent(e) for e in events)
    # Nothing from the bus goes back to it.
    assert [c for c in bus.calls if c[0] == "publish"] == []


def test_theDefaultBusIsLocalAndStatusReportsIt() -> None:
    hub = BroadcastHub()
    assert isinstance(hub.bus, LocalBus)
    verifyObject(IBroadcastBus, hub.bus)
    a = connect()
    hub.join("r", a)
    hub.publish("r", "x")
    status = hub.status()
    assert status["rooms"] == 1 and status["roomMembers"] == {"r": 1}
    assert status["published"] == 1 and status["deliveries"] == 1
    assert status["bus"] == {
        "backend": "LocalBus",
        "connected": True,
        "publishFailures": 0,
        "remoteReceived": 0,
    }


# -- the Redis bus's logic, over StringTransports ------------------------------------------


def resp(*items: bytes) -> bytes:
    """A RESP array of bulk strings (what Redis sends a subscriber)."""
    out = [b"*%d\r\n" % len(items)]
    for item in items:
        out.append(b"$%d\r\n%s\r\n" % (len(item), item))
    return b"".join(out)


def command(*items: bytes) -> bytes:
    """A command as a client sends it: the same encoding."""
    return resp(*items)


class FakeRedisEndpoint:
    """Connects each link to a StringTransport, or refuses while C{refuse}."""

    def __init__(self) -> None:
        self.protocols: list = []
        self.refuse = 0
        self.attempts = 0

    def connect(self, factory):
        self.attempts += 1
        if self.refuse:
            self.refuse -= 1
            return fail(ConnectionRefusedError())
        protocol = factory.buildProtocol(None)
        protocol.makeConnection(StringTransport())
        self.protocols.append(protocol)
        return succeed(protocol)

    def latest(self, name):
        return [p for p in self.protocols if p.link.name == name][-1]


def redisBus(**kwargs):
    pytest.importorskip("txredisapi")
    from twisted_ws.apps.redisbus import RedisBus

    clock = Clock()
    endpoint = FakeRedisEndpoint()
    bus = RedisBus(
        "redis://127.0.0.1:6379/0", reactor=clock, endpoint=endpoint, instanceId=b"ME" * 4, **kwargs
    )
    return bus, clock, endpoint


def feed(clock, protocol, data: bytes) -> None:
    """Hand Redis's bytes over: every reply in them is handled at once, no clock turn."""
    protocol.dataReceived(data)


def envelope(sender: bytes, isText: bool, payload: bytes) -> bytes:
    return bytes([1]) + sender + bytes([1 if isText else 0]) + payload


def test_redisBusPublishesSubscribesPerRoomAndDropsItsOwnMessages() -> None:
    bus, clock, endpoint = redisBus()
    verifyObject(IBroadcastBus, bus)
    hub = BroadcastHub(bus=bus)
    bus.startService()
    assert bus.connected
    sub, pub = endpoint.latest("subscribe"), endpoint.latest("publish")
    a, b = connect(), connect()
    hub.join("r", a)
    hub.join("r", b)
    assert sub.transport.value() == command(b"SUBSCRIBE", b"twisted_ws:room:r")
    feed(clock, sub, b"*3\r\n$9\r\nsubscribe\r\n$17\r\ntwisted_ws:room:r\r\n:1\r\n")

    hub.publish("r", "hi")
    mine = envelope(b"ME" * 4, True, b"hi")
    assert pub.transport.value() == command(b"PUBLISH", b"twisted_ws:room:r", mine)
    # Redis sends our own message back to us: dropped, no second copy.
    feed(clock, sub, resp(b"message", b"twisted_ws:room:r", mine))
    # Another instance's messages, text and binary, in order.
    feed(clock, sub, resp(b"message", b"twisted_ws:room:r", envelope(b"XX" * 4, True, b"12")))
    feed(clock, sub, resp(b"message", b"twisted_ws:room:r", envelope(b"XX" * 4, False, b"\x00\xff")))
    # Not ours to read: counted and ignored.
    feed(clock, sub, resp(b"message", b"twisted_ws:room:r", b"junk"))
    for m in (a, b):
        assert frames(m) == [(OP_TEXT, "hi"), (OP_TEXT, "12"), (OP_BINARY, b"\x00\xff")]
    assert bus.received == 2 and bus.malformed == 1 and bus.published == 1

    hub.leave("r", a)
    assert sub.transport.value().endswith(command(b"SUBSCRIBE", b"twisted_ws:room:r"))
    hub.leave("r", b)
    assert sub.transport.value().endswith(command(b"UNSUBSCRIBE", b"twisted_ws:room:r"))


def test_redisBusHandsTheHubEveryMessageOfOneReadInThatRead() -> None:
    """
    Messages arriving in one read are fanned out in that read (txredisapi's
    parser gave one per reactor round, each its own write to every member),
    however the bytes are split, exactly once and in order.
    """
    bus, clock, endpoint = redisBus()
    hub = BroadcastHub(bus=bus)
    bus.startService()
    sub = endpoint.latest("subscribe")
    a, b = connect(), connect()
    hub.join("r", a)
    hub.join("r", b)
    texts = [f"m{i}" * (i + 1) for i in range(16)]
    read = b"*3\r\n$9\r\nsubscribe\r\n$17\r\ntwisted_ws:room:r\r\n:1\r\n" + b"".join(
        resp(b"message", b"twisted_ws:room:r", envelope(b"XX" * 4, True, t.encode())) for t in texts
    )
    sub.dataReceived(read)  # no clock turn
    for m in (a, b):
        assert frames(m) == [(OP_TEXT, t) for t in texts]
    assert bus.received == 16

    # The same bytes split at every place: each message once, in order.
    for cut in range(1, len(read)):
        bus2, _, endpoint2 = redisBus()
        got = []
        bus2.attach(lambda room, isText, payload, got=got: got.append(payload.decode()))
        bus2.startService()
        sub2 = endpoint2.latest("subscribe")
        sub2.dataReceived(read[:cut])
        sub2.dataReceived(read[cut:])
        assert got == texts, cut


def test_redisBusReadsALargeMessageArrivingInManyReads() -> None:
    bus, clock, endpoint = redisBus()
    got = []
    bus.attach(lambda room, isText, payload: got.append(payload))
    bus.startService()
    sub = endpoint.latest("subscribe")
    big = bytes(range(256)) * 4096  # 1 MiB
    data = resp(b"message", b"twisted_ws:room:r", envelope(b"XX" * 4, False, big)) + resp(
        b"message", b"twisted_ws:room:r", envelope(b"XX" * 4, False, b"after")
    )
    for i in range(0, len(data), 65536):
        assert not got
        sub.dataReceived(data[i : i + 65536])
    assert got == [big, b"after"]


def test_redisBusDropsALinkThatSendsSomethingNotRESPAndComesBack() -> None:
    bus, clock, endpoint = redisBus(initialDelay=0.5)
    hub = BroadcastHub(bus=bus)
    bus.startService()
    hub.join("r", connect())
    sub = endpoint.latest("subscribe")
    for junk in (b"?what\r\n", b"$abc\r\n", b"*1\r\n$3\r\nabcdef\r\n", b"x" * 70000, b"*1\r\n" * 9 + b":1\r\n"):
        sub = endpoint.latest("subscribe")
        with capturedLogs() as events:
            sub.dataReceived(junk)
        assert sub.transport.disconnecting, junk
        sub.connectionLost(Failure(ConnectionDone()))
        assert [formatEvent(e) for e in events if e.get("log_level").name == "error"][0].startswith(
            "Redis subscribe link to redis://127.0.0.1:6379/0: "
        )
        assert not bus.connected
        clock.advance(0.5)
        assert bus.connected
        assert endpoint.latest("subscribe").transport.value() == command(b"SUBSCRIBE", b"twisted_ws:room:r")


def test_redisBusRepliesOfEveryKindReachTheirCommands() -> None:
    bus, clock, endpoint = redisBus()
    bus.startService()
    pub = endpoint.latest("publish")
    results = []
    for _ in range(4):
        pub.publish(b"c", b"x").addBoth(results.append)
    pub.dataReceived(b":3\r\n-ERR no\r\n+OK\r\n$-1\r\n")
    assert results[0] == 3 and results[2] == "OK" and results[3] is None
    assert str(results[1].value) == "ERR no"
    # A failed publish is counted.
    hub = BroadcastHub(bus=bus)
    hub.publish("r", "x")
    with capturedLogs():
        pub.dataReceived(b"-NOPERM no\r\n")
    assert bus.publishFailures == 1


def test_redisBusKeepsDeliveringAfterOneMessageFails() -> None:
    bus, clock, endpoint = redisBus()
    got = []

    def deliver(room, isText, payload):
        if payload == b"bad":
            raise RuntimeError("a bug")
        got.append(payload)

    bus.attach(deliver)
    bus.startService()
    sub = endpoint.latest("subscribe")
    with capturedLogs() as events:
        sub.dataReceived(
            b"".join(resp(b"message", b"twisted_ws:room:r", envelope(b"XX" * 4, False, p)) for p in (b"1", b"bad", b"2"))
        )
    assert got == [b"1", b"2"]
    assert any(e.get("log_failure") is not None for e in events)
    assert not sub.transport.disconnecting


def test_redisBusReconnectsWithCappedBackoffAndSubscribesEveryRoomAgain() -> None:
    bus, clock, endpoint = redisBus(initialDelay=0.5, maxDelay=2.0)
    hub = BroadcastHub(bus=bus)
    bus.startService()
    members = {room: connect() for room in ("a", "b", "c")}
    for room, m in members.items():
        hub.join(room, m)
    hub.leave("c", members["c"])
    sub, pub = endpoint.latest("subscribe"), endpoint.latest("publish")
    endpoint.refuse = 4
    with capturedLogs() as events:
        sub.connectionLost(Failure(ConnectionDone()))
        pub.connectionLost(Failure(ConnectionDone()))
    assert not bus.connected
    assert any("subscribe link to redis://127.0.0.1:6379/0 lost" in formatEvent(e) for e in events)
    # Local delivery goes on; the publish that cannot reach Redis is counted.
    assert hub.publish("a", "still here") == 1
    assert frames(members["a"]) == [(OP_TEXT, "still here")]
    assert bus.publishFailures == 1

    attempts = endpoint.attempts
    clock.advance(0.49)
    assert endpoint.attempts == attempts
    clock.advance(0.01)  # 0.5 s: both links try, and are refused
    assert endpoint.attempts == attempts + 2
    clock.advance(1.0)  # then 1 s: refused again
    assert endpoint.attempts == attempts + 4
    clock.advance(1.99)  # then 2 s (capped), not 4
    assert endpoint.attempts == attempts + 4
    clock.advance(0.01)
    assert endpoint.attempts == attempts + 6
    assert bus.connected
    newSub = endpoint.latest("subscribe")
    assert newSub is not sub
    assert newSub.transport.value() == command(b"SUBSCRIBE", b"twisted_ws:room:a") + command(
        b"SUBSCRIBE", b"twisted_ws:room:b"
    )
    # And the backoff starts afresh after a success.
    newSub.connectionLost(Failure(ConnectionDone()))
    clock.advance(0.5)
    assert endpoint.latest("subscribe") is not newSub


def test_redisBusCountsFailedPublishesAndLogsThemAtMostOncePerInterval() -> None:
    bus, clock, endpoint = redisBus(logInterval=10.0)
    hub = BroadcastHub(bus=bus)
    endpoint.refuse = 1000
    with capturedLogs() as events:
        bus.startService()  # both links refused: down
        assert not bus.connected
        for _ in range(5):
            hub.publish("r", "x")
        clock.advance(9.9)
        hub.publish("r", "x")
        clock.advance(0.1)
        hub.publish("r", "x")  # 10 s after the first line: the next one
    lines = [formatEvent(e) for e in events if "could not reach Redis" in formatEvent(e)]
    assert bus.publishFailures == 7
    assert len(lines) == 2
    assert lines[0].startswith("Redis: 1 publishes could not reach Redis (the Redis link is down); 1 in all")
    assert lines[1].startswith("Redis: 6 publishes could not reach Redis (the Redis link is down); 7 in all")
    hub.publish("r", "x")
    endpoint.refuse = 0
    with capturedLogs() as events:
        clock.advance(30)
    assert bus.connected
    # Back up: the failures not yet reported are, once.
    lines = [formatEvent(e) for e in events if "could not reach Redis" in formatEvent(e)]
    assert lines == ["Redis: 1 publishes could not reach Redis while the link was down (8 in all)"]
    hub.publish("r", "x")
    assert bus.publishFailures == 8 and bus.published == 1


def test_redisBusStopsCleanly() -> None:
    bus, clock, endpoint = redisBus()
    bus.startService()
    d = bus.stopService()
    for p in endpoint.protocols:
        assert p.transport.disconnecting
        p.connectionLost(Failure(ConnectionDone()))
    assert d.called
    clock.advance(60)
    assert len(endpoint.protocols) == 2  # no reconnection after stop


def test_redisURLs() -> None:
    pytest.importorskip("txredisapi")
    from twisted_ws.apps.redisbus import RedisURL, parseRedisURL

    assert parseRedisURL("redis://localhost") == RedisURL("localhost", 6379, 0, None, None, False)
    assert parseRedisURL("rediss://:s%40cret@h.example:6380/3") == RedisURL(
        "h.example", 6380, 3, "s@cret", None, True
    )
    assert parseRedisURL("redis://user:pw@[::1]:7000/1") == RedisURL("::1", 7000, 1, "pw", "user", False)
    assert str(parseRedisURL("redis://:pw@[::1]:7000/1")) == "redis://***@[::1]:7000/1"
    for bad, why in [
        ("http://localhost", "use redis:// or rediss://"),
        ("redis://", "no host"),
        ("redis://h:99999", "out of range"),
        ("redis://h/x", "database number"),
        ("redis://h/0?db=1", "not supported"),
        ("localhost:6379", "use redis://"),
    ]:
        with pytest.raises(ValueError, match=why):
            parseRedisURL(bad)


def test_twistdRedisOptionWiresABusIntoTheBroadcastServiceOrFailsInOneLine() -> None:
    pytest.importorskip("txredisapi")
    from twisted.python import usage

    from twisted_ws import RedisBus
    from twisted_ws.twistd import Options
    from twisted_ws.twistd.service import StartupError, makeService

    options = Options()
    options.parseOptions(
        ["--mode", "broadcast", "--listen", "tcp:0:interface=127.0.0.1", "--redis", "redis://127.0.0.1:1/2"]
    )
    service = makeService(options, clock=Clock())
    buses = [s for s in service if isinstance(s, RedisBus)]
    assert len(buses) == 1 and buses[0].url.db == 2 and buses[0].prefix == "twisted_ws:room:"
    assert not buses[0].running  # it connects when the service starts

    options = Options()
    options.parseOptions(["--mode", "broadcast", "--redis", "redis://:hunter2@h/x"])
    with pytest.raises(StartupError) as e:
        makeService(options, clock=Clock())
    assert str(e.value) == "twisted_ws: --redis: bad Redis URL 'redis://***@h/x': the path is a database number, as in /0"
    with pytest.raises(usage.UsageError, match="--redis is only used with --mode broadcast"):
        Options().parseOptions(["--redis", "redis://h"])
