"""
WebSockets over HTTP/2 (RFC 8441), logic tier: the stream transport against
a recording owner, and the server (our H2Connection subclass) driven by the
h2 library as the client in memory, every timeout on a Clock.
"""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionAborted, ConnectionDone, ConnectionLost
from twisted.internet.task import Clock
from zope.interface import implementer
from zope.interface.verify import verifyObject

from twisted_ws import CloseCode, WebSocketProtocol
from twisted_ws.core.frames import FrameParser, Opcode
from twisted_ws.http2.stream import CANCEL, H2StreamTransport, IStreamOwner
from wshelpers import clientFrame


# -- the stream transport against a recording owner ------------------------


@implementer(IStreamOwner)
class FakeOwner:
    """An owner with explicit windows that records what the stream did."""

    transport = None

    def __init__(self, window: int = 65535) -> None:
        self.window = window
        self.sent: list[tuple[bytes, bool]] = []
        self.acked = 0
        self.resets: list[int] = []
        self.closed: list[int] = []

    def outboundWindow(self, streamID):
        return self.window

    def sendData(self, streamID, data, endStream):
        assert len(data) <= self.window
        self.window -= len(data)
        self.sent.append((bytes(data), endStream))

    def acknowledgeData(self, streamID, size):
        self.acked += size

    def resetStream(self, streamID, errorCode):
        self.resets.append(errorCode)

    def streamClosed(self, streamID):
        self.closed.append(streamID)

    def getPeer(self):
        return IPv4Address("TCP", "127.0.0.1", 5555)

    def getHost(self):
        return IPv4Address("TCP", "127.0.0.1", 443)

    def data(self) -> bytes:
        return b"".join(d for d, _ in self.sent)


class Recorder(WebSocketProtocol):
    def connectionMade(self):
        self.messages: list[Any] = []
        self.lost: Any = None

    def messageReceived(self, message):
        self.messages.append(message)

    def connectionLost(self, reason=None):
        self.lost = reason
        super().connectionLost(reason)


def serverProtocol(clock: Clock | None = None) -> Recorder:
    p = Recorder()
    p.clock = clock or Clock()
    return p


def frames(data: bytes) -> list[tuple[int, bytes]]:
    parser = FrameParser(requireMask=False)
    return [(op, payload) for op, _fin, _rsv, payload, _part in parser.feed(data)]


def test_streamProvidesInterfaces():
    from twisted.internet.interfaces import IConsumer, IPushProducer

    stream = H2StreamTransport(FakeOwner(), 1)
    assert IPushProducer.providedBy(stream) and IConsumer.providedBy(stream)
    verifyObject(IStreamOwner, FakeOwner())


def test_writesBecomeDataAndDataReachesProtocol():
    owner = FakeOwner()
    stream = H2StreamTransport(owner, 1)
    p = serverProtocol()
    stream.attach(p)
    frame = clientFrame(Opcode.TEXT, b"hello")
    stream.dataReceived(frame, len(frame) + 3)
    assert p.messages == ["hello"]
    assert owner.acked == len(frame) + 3
    p.sendMessage("back")
    assert frames(owner.data()) == [(Opcode.TEXT, b"back")]
    assert stream.getPeer().port == 5555 and stream.getHost().port == 443


def test_dataBeforeAttachIsHeldAndNotAcknowledged():
    owner = FakeOwner()
    stream = H2StreamTransport(owner, 1)
    frame = clientFrame(Opcode.TEXT, b"early")
    stream.dataReceived(frame, len(frame))
    assert owner.acked == 0
    p = serverProtocol()
    stream.attach(p)
    assert p.messages == ["early"] and owner.acked == len(frame)


def test_emptyWindowPausesProtocolAndBoundsBuffer():
    """
    A peer that grants no window: the stream keeps at most one write and
    the protocol is paused (its own queue and send deadline take over).
    """
    owner = FakeOwner(window=10)
    clock = Clock()
    stream = H2StreamTransport(owner, 1)
    p = serverProtocol(clock)
    stream.attach(p)
    for _ in range(100):
        p.sendMessage(b"x" * 1000, isText=False)
    assert owner.window == 0
    assert stream.bufferedAmount <= 1010
    assert p.bufferedAmount >= 90 * 1000
    # The window opens: everything goes out, in order.
    owner.window = 10**9
    stream.windowUpdated()
    assert stream.bufferedAmount == 0 and p.bufferedAmount == 0
    assert frames(owner.data()) == [(Opcode.BINARY, b"x" * 1000)] * 100


def test_sendDeadlineAbortsBlockedStream():
    owner = FakeOwner(window=0)
    clock = Clock()
    stream = H2StreamTransport(owner, 1)
    p = serverProtocol(clock)
    from twisted_ws import WebSocketOptions

    p.options = WebSocketOptions(writeTimeout=5)
    stream.attach(p)
    p.sendMessage(b"y" * 100, isText=False)
    clock.advance(4)
    assert owner.resets == []
    clock.advance(2)
    assert owner.resets == [CANCEL]
    assert p.lost.check(ConnectionAborted) and owner.closed == [1]


def test_pauseReadingHoldsWindowUpdates():
    owner = FakeOwner()
    stream = H2StreamTransport(owner, 1)
    p = serverProtocol()
    stream.attach(p)
    p.pauseReading()
    frame = clientFrame(Opcode.TEXT, b"held")
    stream.dataReceived(frame, len(frame))
    assert p.messages == [] and owner.acked == 0
    p.resumeReading()
    assert p.messages == ["held"] and owner.acked == len(frame)


def test_cleanCloseEndsStreamAfterCloseExchange():
    owner = FakeOwner()
    stream = H2StreamTransport(owner, 1)
    p = serverProtocol()
    stream.attach(p)
    p.close(CloseCode.NORMAL_CLOSURE)
    assert owner.sent[-1][1] is False  # our Close, not yet END_STREAM
    reply = clientFrame(Opcode.CLOSE, b"\x03\xe8")
    stream.dataReceived(reply, len(reply))
    assert owner.sent[-1] == (b"", True)
    assert p.lost.check(ConnectionDone) and p.closeInfo.wasClean
    assert owner.closed == [1] and owner.resets == []


def test_closeWaitsForWindowBeforeEndStream():
    owner = FakeOwner(window=3)
    stream = H2StreamTransport(owner, 1)
    p = serverProtocol()
    stream.attach(p)
    stream.write(b"abcdef")
    stream.loseConnection()
    assert all(not end for _, end in owner.sent) and not stream.ended
    owner.window = 100
    stream.windowUpdated()
    assert owner.data() == b"abcdef" and owner.sent[-1] == (b"", True)
    assert stream.ended


def test_peerEndStreamEndsWebSocket():
    owner = FakeOwner()
    stream = H2StreamTransport(owner, 1)
    p = serverProtocol()
    stream.attach(p)
    stream.endReceived()
    assert owner.sent[-1] == (b"", True)
    assert p.lost.check(ConnectionDone) and not p.closeInfo.wasClean


def test_abortSendsResetCancel():
    owner = FakeOwner()
    stream = H2StreamTransport(owner, 1)
    p = serverProtocol()
    stream.attach(p)
    p.abortConnection()
    assert owner.resets == [CANCEL] and p.lost.check(ConnectionAborted)
    stream.write(b"more")  # after the end: ignored
    assert owner.data() == b""


def test_peerResetAndConnectionLoss():
    owner = FakeOwner()
    stream = H2StreamTransport(owner, 1)
    p = serverProtocol()
    stream.attach(p)
    stream.resetReceived(CANCEL)
    assert p.lost.check(ConnectionLost) and owner.resets == []
    assert p.closeInfo.code == CloseCode.ABNORMAL_CLOSURE
    stream.connectionLost(ConnectionLost("again"))  # idempotent
    assert owner.closed == [1]


def test_transportPausePausesProducer():
    owner = FakeOwner()
    stream = H2StreamTransport(owner, 1)
    p = serverProtocol()
    stream.attach(p)
    stream.transportPaused()
    p.sendMessage(b"z", isText=False)
    assert owner.data() == b"" and p.bufferedAmount > 0
    stream.transportResumed()
    assert frames(owner.data()) == [(Opcode.BINARY, b"z")] and p.bufferedAmount == 0


def test_heldDataIsAcknowledgedWhenStreamEnds():
    """Credit held for a paused stream is returned when it ends."""
    owner = FakeOwner()
    stream = H2StreamTransport(owner, 1)
    p = serverProtocol()
    stream.attach(p)
    p.pauseReading()
    stream.dataReceived(b"\x81", 50)
    stream.abortConnection()
    assert owner.acked == 50
