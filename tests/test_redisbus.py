"""
RedisBus against a real C{redis-server} (the Debian package), started on
127.0.0.1 on a free port with persistence off: two hubs with their own
buses in one reactor stand for two processes.  Every member of a room gets
every message exactly once, in each publisher's order; other rooms get
nothing; and when Redis stops and starts again, local delivery goes on,
failed publishes are counted, and the rooms are shared again by
themselves.  Every wait is bounded.
"""

from __future__ import annotations

import shutil
import subprocess
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

pytestmark = pytest.mark.interop

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


# -- examples/chat_rooms.py: two processes, one Redis -------------------------------------


def startChat(redisPort: int) -> tuple[subprocess.Popen, str]:
    import select
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "examples" / "chat_rooms.py"
    proc = subprocess.Popen(
        [sys.executable, str(script), "--port", "0", "--redis", f"redis://127.0.0.1:{redisPort}/0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 30
    line = ""
    while "ws://" not in line:
        ready, _, _ = select.select([proc.stdout], [], [], max(deadline - time.monotonic(), 0))
        if not ready or proc.poll() is not None:
            proc.kill()
            raise AssertionError(f"chat_rooms.py did not start: {line!r}")
        line = proc.stdout.readline()
    return proc, "ws://" + line.split("ws://", 1)[1].split("/<room>")[0]


def test_chatRoomsExampleSharesRoomsBetweenTwoProcesses() -> None:
    if REDIS is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    pytest.importorskip("txredisapi")
    from websockets.sync.client import connect as wsConnect

    redis = RedisServer(freePort())
    redis.start()
    procs = []
    try:
        for _ in range(2):
            procs.append(startChat(redis.port))
        (_, url1), (_, url2) = procs
        with wsConnect(url1 + "/tea") as alice, wsConnect(url2 + "/tea") as bob, wsConnect(
            url2 + "/coffee"
        ) as carol:
            for ws, name in ((alice, "alice"), (bob, "bob"), (carol, "carol")):
                assert "what is your name" in ws.recv(10)
                ws.send(name)
            assert alice.recv(10) == "* alice joined"
            assert bob.recv(10) == "* bob joined"
            assert carol.recv(10) == "* carol joined"
            # Both chat processes subscribe to the room's channel.
            deadline = time.monotonic() + 10
            while redis.subscribers("chat_rooms:tea") < 2:
                assert time.monotonic() < deadline, "the room was not subscribed in both processes"
                time.sleep(0.02)
            alice.send("hello from process 1")
            bob.send("hello from process 2")
            expected = ["alice: hello from process 1", "bob: hello from process 2"]
            for ws in (alice, bob):
                lines: list[str] = []
                while not all(x in lines for x in expected):  # bounded by recv's 10 s
                    lines.append(ws.recv(10))
                    assert len(lines) < 50
                while True:  # then until a quiet 0.3 s: a duplicate would show here
                    try:
                        lines.append(ws.recv(0.3))
                    except TimeoutError:
                        break
                    assert len(lines) < 50
                # "* bob joined" may reach alice or not, as bob joined while
                # her process was subscribing: only the chat lines count.
                assert sorted(x for x in lines if not x.startswith("* ")) == expected, lines
            with pytest.raises(TimeoutError):
                carol.recv(0.3)  # another room: nothing
    finally:
        for proc, _ in procs:
            proc.kill()
            proc.wait(10)
            proc.stdout.close()
        redis.stop()
