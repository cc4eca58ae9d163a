"""
RedisBus against a real C{redis-server} (the Debian package), started on
127.0.0.1 on a free port with persistence off: two hubs with their own
buses in one reactor stand for two processes.  Every member of a room gets
every message exactly once, in each publisher's order; other rooms get
nothing; and when Redis stops and starts again, local delivery goes on,
failed publishes are counted, and the rooms are shared again by
themselves.  Every wait is bounded.  examples/chat_rooms.py on Redis is in
test_examples_interop.py.
"""

from __future__ import annotations

import shutil
import time

import pytest
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import Clock, deferLater
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SkipTest, TestCase

from twisted_ws import BroadcastHub, WebSocketProtocol
from twisted_ws.core.frames import OP_TEXT, FrameParser
from twisted_ws.core.options import WebSocketOptions
from wshelpers import RedisServer, freePort

REDIS = shutil.which("redis-server")


class Member(WebSocketProtocol):
    """A room member on a memory transport: the bus is what is real here."""

    def connectionMade(self):
        self.parser = FrameParser(requireMask=False, maxMessageSize=None)

    def received(self) -> list[str]:
        value = self.transport.value()
        self.transport.clear()
        self._got = getattr(self, "_got", []) + [
            p[3].decode() for p in self.parser.feed(value) if p[0] == OP_TEXT
        ]
        return self._got


def member() -> Member:
    m = Member()
    m.clock = Clock()
    m.options = WebSocketOptions(pingInterval=None)
    m.makeConnection(StringTransport())
    return m


@inlineCallbacks
def waitFor(predicate, what: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        yield deferLater(reactor, 0.02, lambda: None)


class RedisBusTests(TestCase):
    def setUp(self):
        if REDIS is None:
            raise SkipTest("redis-server is not installed (apt-get install redis-server)")
        pytest.importorskip("txredisapi")
        from twisted_ws import RedisBus

        self.redis = RedisServer(freePort())
        self.redis.start()
        self.addCleanup(self.redis.stop)
        url = f"redis://127.0.0.1:{self.redis.port}/0"
        self.buses = [RedisBus(url, reactor=reactor, initialDelay=0.1, maxDelay=0.5) for _ in range(2)]
        self.hubs = [BroadcastHub(bus=bus) for bus in self.buses]
        for bus in self.buses:
            bus.startService()
            self.addCleanup(bus.stopService)

    def connected(self) -> bool:
        return all(bus.connected for bus in self.buses)

    @inlineCallbacks
    def test_twoInstancesShareARoomExactlyOnceInPublishOrder(self):
        yield waitFor(self.connected, "both buses to connect")
        hubA, hubB = self.hubs
        a1, a2, aOther = member(), member(), member()
        b1, bElsewhere = member(), member()
        hubA.join("room", a1)
        hubA.join("room", a2)
        hubA.join("other", aOther)
        hubB.join("room", b1)
        hubB.join("elsewhere", bElsewhere)
        yield waitFor(lambda: self.redis.subscribers("twisted_ws:room:room") == 2, "both subscriptions")
        for i in range(20):
            hubA.publish("room", f"A{i}")
            hubB.publish("room", f"B{i}")
        everyone = [a1, a2, b1]
        yield waitFor(lambda: all(len(m.received()) >= 40 for m in everyone), "40 messages each")
        yield deferLater(reactor, 0.3, lambda: None)  # room for a duplicate to show up
        for m in everyone:
            got = m.received()
            assert len(got) == 40, got
            assert [x for x in got if x[0] == "A"] == [f"A{i}" for i in range(20)]
            assert [x for x in got if x[0] == "B"] == [f"B{i}" for i in range(20)]
        assert aOther.received() == [] and bElsewhere.received() == []
        assert self.buses[0].publishFailures == 0 and self.buses[1].publishFailures == 0
        # The last member leaving unsubscribes.
        hubB.leave("room", b1)
        yield waitFor(lambda: self.redis.subscribers("twisted_ws:room:room") == 1, "an unsubscription")

    @inlineCallbacks
    def test_aBurstReachesTheHubInTheReadsItArrivedIn(self):
        """
        Every message is handed to the hub inside the read that brought it
        (none a reactor round later), so a burst from Redis arrives several
        messages per read, which a member's transport then sends together.
        """
        yield waitFor(self.connected, "both buses to connect")
        hubA, hubB = self.hubs
        b1 = member()
        hubB.join("room", b1)
        yield waitFor(lambda: self.redis.subscribers("twisted_ws:room:room") == 1, "the subscription")
        busB = self.buses[1]
        sub = busB._subscriber.protocol
        perRead: list[int] = []  # messages handed to hub B during each read
        original = sub.dataReceived

        def dataReceived(data, *more):
            before = busB.received
            original(data, *more)
            perRead.append(busB.received - before)

        sub.dataReceived = dataReceived
        for i in range(500):
            hubA.publish("room", f"burst {i:04d} " + "x" * 80)
        yield waitFor(lambda: len(b1.received()) >= 500, "500 messages")
        yield deferLater(reactor, 0.3, lambda: None)  # room for a duplicate to show up
        assert b1.received() == [f"burst {i:04d} " + "x" * 80 for i in range(500)]
        # (txredisapi handed one per reactor round, through a callLater(0).)
        assert max(perRead) > 1, perRead

    @inlineCallbacks
    def test_redisStopsAndStartsAgainMidRun(self):
        yield waitFor(self.connected, "both buses to connect")
        hubA, hubB = self.hubs
        busA = self.buses[0]
        a1, b1 = member(), member()
        hubA.join("room", a1)
        hubB.join("room", b1)
        yield waitFor(lambda: self.redis.subscribers("twisted_ws:room:room") == 2, "both subscriptions")
        hubA.publish("room", "before")
        yield waitFor(lambda: b1.received() == ["before"], "the first message across")

        self.redis.stop()
        yield waitFor(lambda: not any(bus.connected for bus in self.buses), "both buses to notice")
        for i in range(5):
            assert hubA.publish("room", f"during{i}") == 1  # local members still get it
        assert a1.received() == ["before"] + [f"during{i}" for i in range(5)]
        assert busA.publishFailures == 5

        self.redis.start()  # the same port
        yield waitFor(self.connected, "both buses to reconnect")
        yield waitFor(
            lambda: self.redis.subscribers("twisted_ws:room:room") == 2, "both rooms subscribed again"
        )
        hubA.publish("room", "afterA")
        hubB.publish("room", "afterB")
        # Two publishers: each member sees its own hub's message first.
        yield waitFor(lambda: len(b1.received()) == 3, "delivery to B again")
        yield waitFor(lambda: len(a1.received()) == 8, "delivery to A again")
        yield deferLater(reactor, 0.3, lambda: None)  # room for a duplicate to show up
        assert b1.received() == ["before", "afterB", "afterA"]
        assert a1.received()[-2:] == ["afterA", "afterB"]
        assert busA.publishFailures == 5
