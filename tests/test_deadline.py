"""
The send deadline (C{writeTimeout}) on memory transports: a peer that stops
reading is aborted once our output has not drained for that long, whatever
the state of the connection, and a ping flood from it grows nothing.
Every timer is driven by C{Clock.advance}.
"""

from __future__ import annotations

import re

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.logger import capturedLogs, formatEvent

from twisted_ws import WebSocketClientFactory, WebSocketProtocol, WebSocketServerFactory
from twisted_ws.core.connection import WRITE_SIZE
from twisted_ws.core.frames import OP_CLOSE, OP_PING, OP_PONG, FrameParser
from twisted_ws.core.options import WebSocketOptions
from twisted_ws.twistd import Options
from wshelpers import PeerTransport, clientFrame, openedClient, openedServer

PEER = IPv4Address("TCP", "192.0.2.7", 40123)


class App(WebSocketProtocol):
    def connectionMade(self):
        self.closed = []

    def connectionClosed(self, code, reason, wasClean):
        self.closed.append((code, wasClean))


def openServer(highWater=4096, **kw):
    """An open server-side App on a L{PeerTransport}: (app, transport, clock)."""
    clock = Clock()
    kw.setdefault("pingInterval", None)
    transport = PeerTransport(highWater)
    app = openedServer(WebSocketServerFactory(App, clock=clock, **kw), transport)
    assert isinstance(app, App)
    assert transport.producer is app
    transport.unsent = 0
    return app, transport, clock


def peerStopsReading(app, transport):
    """Fill the transport: it pauses us, as TCP does when the peer stops reading."""
    app.sendMessage(b"x" * (transport.highWater + 1))
    assert transport.full


def sentFrames(transport):
    parser = FrameParser(requireMask=False)
    frames = [(op, payload) for op, _fin, _rsv, payload, _part in parser.feed(transport.value())]
    assert parser.error is None
    return frames


# -- each state ------------------------------------------------------------------


def test_openStateAbortsAtTheDeadline():
    app, transport, clock = openServer(writeTimeout=5, closeTimeout=None)
    peerStopsReading(app, transport)
    app.sendMessage(b"y" * 3000)  # queued here behind the full transport
    clock.advance(4.9)
    assert not transport.aborted
    clock.advance(0.2)
    assert transport.aborted
    assert app.closed == [(1006, False)]
    assert clock.getDelayedCalls() == []


def test_peerCloseUnreadIsAbortedAtTheDeadlineNotTheKeepalive():
    """
    The issue's case, with every default: the peer stopped reading and its
    Close waits unread (we stopped reading while blocked).  It used to take
    the keepalive 20 s + 20 s and the close timeout 10 s (50 s); now 10 s.
    """
    app, transport, clock = openServer(pingInterval=20.0)
    assert app.options.writeTimeout == 10.0
    peerStopsReading(app, transport)
    assert transport.producerState == "paused", "no reading: the peer's Close stays unread"
    clock.advance(9.9)
    assert not transport.aborted
    clock.advance(0.2)
    assert transport.aborted


def test_closingStateOurCloseQueuedBehindData():
    app, transport, clock = openServer(writeTimeout=3, closeTimeout=None, fragmentSize=1000)
    peerStopsReading(app, transport)
    app.sendMessage(b"z" * 5000)
    app.close()
    assert app.bufferedAmount == 5000, "our Close waits behind the queued data"
    clock.advance(3.1)
    assert transport.aborted
    assert not app.closeInfo.wasClean


def test_ourCloseItselfCannotBeWritten():
    """Nothing queued, but the peer reads nothing: even our Close fills the transport."""
    app, transport, clock = openServer(highWater=0, writeTimeout=3, closeTimeout=None)
    app.close()
    assert sentFrames(transport)[-1][0] == OP_CLOSE
    assert transport.full
    clock.advance(3.1)
    assert transport.aborted


def test_afterPeerCloseOurReplyCannotBeWritten():
    """
    Blocked, then the peer's Close arrives: our reply goes into the full
    transport, TCP closing waits for a drain that never comes (no producer
    is registered any more, so no resumeProducing either).
    """
    app, transport, clock = openServer(writeTimeout=4, closeTimeout=None)
    peerStopsReading(app, transport)
    clock.advance(1)
    app.dataReceived(clientFrame(OP_CLOSE, b"\x03\xe8"))
    assert sentFrames(transport)[-1] == (OP_CLOSE, b"\x03\xe8")
    assert transport.producer is None and transport.disconnecting and transport.connected
    clock.advance(2.9)
    assert not transport.aborted
    clock.advance(0.2)  # 4 s after the pause
    assert transport.aborted


def test_afterPeerCloseReplyFillsTheTransport():
    """Not blocked before the peer's Close; our reply is what cannot drain."""
    app, transport, clock = openServer(highWater=10**9, writeTimeout=4, closeTimeout=None)
    app.sendMessage(b"x" * 1000)  # unsent: loseConnection must wait for it
    app.dataReceived(clientFrame(OP_CLOSE, b"\x03\xe8"))
    assert transport.disconnecting and transport.connected
    clock.advance(4.1)
    assert transport.aborted


def test_afterPeerCloseDrainEndsCleanly():
    app, transport, clock = openServer(writeTimeout=4, closeTimeout=None)
    peerStopsReading(app, transport)
    app.dataReceived(clientFrame(OP_CLOSE, b"\x03\xe8"))
    transport.drain()
    assert not transport.connected and not transport.aborted
    assert app.closeInfo.wasClean
    assert clock.getDelayedCalls() == []


def test_keepalivePingCannotBeWritten():
    """The peer reads nothing: the keepalive ping itself fills the transport."""
    app, transport, clock = openServer(
        highWater=0, pingInterval=2, pingTimeout=100, closeTimeout=None, writeTimeout=5
    )
    clock.advance(2)
    assert sentFrames(transport)[0][0] == OP_PING
    assert transport.full
    clock.advance(4.9)
    assert not transport.aborted
    clock.advance(0.2)
    assert transport.aborted


# -- drain and re-arm ------------------------------------------------------------


def test_drainCancelsThenANewBlockRearms():
    app, transport, clock = openServer(writeTimeout=5, closeTimeout=None)
    peerStopsReading(app, transport)
    clock.advance(4)
    transport.drain()
    assert clock.getDelayedCalls() == [], "the deadline is cancelled on drain"
    clock.advance(100)
    assert not transport.aborted
    peerStopsReading(app, transport)
    clock.advance(4.9)
    assert not transport.aborted, "a fresh deadline, not the old one"
    clock.advance(0.2)
    assert transport.aborted


def test_slowButSteadyReaderIsNotCutOff():
    """
    A large queued message to a peer that keeps reading: each drain restarts
    the deadline, even though the queue refills the transport at once.
    """
    app, transport, clock = openServer(writeTimeout=5, closeTimeout=None, fragmentSize=1000)
    # Several writes of the core's WRITE_SIZE: the rest waits each time.
    app.sendMessage(b"s" * (3 * WRITE_SIZE + 1000))
    assert app.bufferedAmount > 0
    for _ in range(100):
        clock.advance(4)
        transport.drain()
        if not app.bufferedAmount and not transport.full:
            break
    assert not transport.aborted
    assert app.bufferedAmount == 0
    assert clock.getDelayedCalls() == []


def test_noneDisables():
    app, transport, clock = openServer(writeTimeout=None, closeTimeout=None)
    peerStopsReading(app, transport)
    app.close()
    assert clock.getDelayedCalls() == []
    clock.advance(10_000)
    assert not transport.aborted


# -- the log ---------------------------------------------------------------------


def test_abortIsLoggedWithPeerAndBytesPending():
    app, transport, clock = openServer(writeTimeout=2, closeTimeout=None)
    peerStopsReading(app, transport)
    app.sendMessage(b"q" * 3000)
    app.dataReceived(clientFrame(OP_PING, b"p" * 10))
    with capturedLogs() as events:
        clock.advance(2)
    lines = [formatEvent(e) for e in events]
    [line] = [text for text in lines if "write timed out" in text]
    assert "192.0.2.7" in line and "40123" in line
    # 3000 bytes of data and the held Pong's 10.
    assert re.search(r"\b3010 bytes queued here\b", line), line


# -- ping flood ------------------------------------------------------------------


def test_pingFloodWhileBlockedKeepsOnePong():
    app, transport, clock = openServer(writeTimeout=None)
    peerStopsReading(app, transport)
    before = transport.value()
    pings = b"".join(clientFrame(OP_PING, b"%d" % i) for i in range(10_000))
    app.dataReceived(pings)  # already read when the transport filled up
    assert transport.value() == before, "nothing written while blocked"
    assert app._conn.pendingBytes == len(b"9999") + app.bufferedAmount
    transport.clear()
    transport.drain()
    frames = sentFrames(transport)
    assert [f for f in frames if f[0] == OP_PONG] == [(OP_PONG, b"9999")]
    assert frames[0] == (OP_PONG, b"9999"), "the Pong goes before queued data"


def test_heldPongAnsweredBeforeOurClose():
    app, transport, clock = openServer(writeTimeout=None)
    peerStopsReading(app, transport)
    app.dataReceived(clientFrame(OP_PING, b"a") + clientFrame(OP_PING, b"b"))
    transport.clear()
    app.close()
    transport.drain()
    ops = [(op, p) for op, p in sentFrames(transport) if op in (OP_PONG, OP_CLOSE)]
    assert ops == [(OP_PONG, b"b"), (OP_CLOSE, b"\x03\xe8")]


# -- configuration -------------------------------------------------------------


def test_optionDefaultsAndValidation():
    assert WebSocketOptions().writeTimeout == 10.0
    assert WebSocketOptions(writeTimeout=None).writeTimeout is None
    with pytest.raises(ValueError, match="writeTimeout"):
        WebSocketOptions(writeTimeout=0)
    assert WebSocketServerFactory(App, writeTimeout=3).options.writeTimeout == 3
    assert WebSocketClientFactory(App, "ws://h/", writeTimeout=None).options.writeTimeout is None


@pytest.mark.parametrize(
    "args, expected",
    [([], 10.0), (["--write-timeout", "2.5"], 2.5), (["--write-timeout", "0"], None),
     (["--write-timeout", "none"], None)],
)
def test_twistdOption(args, expected):
    options = Options()
    options.parseOptions(args)
    assert options["options"].writeTimeout == expected


def test_clientSideAbortsAtTheDeadline():
    clock = Clock()
    factory = WebSocketClientFactory(
        App, "ws://example.com/", clock=clock, pingInterval=None, closeTimeout=None, writeTimeout=3
    )
    transport = PeerTransport()
    app = openedClient(factory, transport)
    assert isinstance(app, App) and app.isClient
    transport.unsent = 0
    app.sendMessage(b"c" * 10_000)
    assert transport.full
    clock.advance(2.9)
    assert not transport.aborted
    clock.advance(0.2)
    assert transport.aborted
    assert app.closed == [(1006, False)]


def test_pingFloodThatFillsTheTransportStopsGrowingThere():
    """
    Not blocked when the flood arrives: the Pongs go out (in 64 KiB
    batches) until the transport is full, then only the latest is held.
    """
    app, transport, clock = openServer(writeTimeout=None)
    flood = clientFrame(OP_PING, b"") * 100_000 + clientFrame(OP_PING, b"last")
    app.dataReceived(flood)
    assert transport.full
    written = len(transport.value())
    assert written < 65536 + 4096 + 2, written
    transport.clear()
    transport.drain()
    assert sentFrames(transport) == [(OP_PONG, b"last")]
