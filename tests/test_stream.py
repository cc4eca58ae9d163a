"""
The stream-over-WebSocket adapter on memory transports (the logic tier):
writes become frames, messages become dataReceived, close and flow control
map both ways.  Real sockets are in test_stream_interop.py.
"""

from __future__ import annotations

import struct

import pytest
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IConsumer, IPushProducer, ITransport
from twisted.internet.protocol import Factory
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransportWithDisconnection
from twisted.protocols.basic import LineReceiver
from zope.interface.verify import verifyObject

from twisted_ws.apps.stream import (
    StreamOverWebSocketFactory,
    StreamOverWebSocketProtocol,
    WebSocketStreamTransport,
)
from twisted_ws.core.frames import OP_BINARY, OP_CLOSE, OP_TEXT, FrameParser
from wshelpers import Producer, RecorderFactory, clientFrame, serverFrames, splitResponse, upgradeRequest


def openStream(**kw):
    """An open adapter on a memory transport: (websocket, inner, transport, clock)."""
    clock = Clock()
    inner = kw.pop("innerFactory", None) or RecorderFactory()
    factory = StreamOverWebSocketFactory(inner, clock=clock, pingInterval=None, **kw)
    transport = StringTransportWithDisconnection()
    handshake = factory.buildProtocol(None)
    transport.protocol = handshake
    handshake.makeConnection(transport)
    handshake.dataReceived(upgradeRequest())
    ws = transport.protocol
    assert isinstance(ws, StreamOverWebSocketProtocol)
    head, rest = splitResponse(transport.value())
    assert head.startswith(b"HTTP/1.1 101 ")
    transport.clear()
    transport.io.write(rest)  # frames sent as the connection opened
    return ws, ws.wrappedProtocol, transport, clock


def frames(transport):
    out = serverFrames(transport.value())
    transport.clear()
    return out


def closeFrame(code: int, reason: bytes = b"") -> bytes:
    return clientFrame(OP_CLOSE, struct.pack("!H", code) + reason)


def test_innerGetsATransportWithPeerAndHost():
    ws, inner, transport, _ = openStream()
    assert inner.made
    assert isinstance(inner.transport, WebSocketStreamTransport)
    verifyObject(ITransport, inner.transport)
    verifyObject(IConsumer, inner.transport)
    verifyObject(IPushProducer, inner.transport)
    assert inner.transport.getPeer() == transport.getPeer()
    assert inner.transport.getHost() == transport.getHost()
    assert inner.transport.webSocket is ws


def test_writesBecomeTextMessages():
    ws, inner, transport, _ = openStream()
    inner.transport.write(b"hello")
    inner.transport.writeSequence([b"a", b"b", b"c"])
    inner.transport.write(b"")  # nothing to send
    inner.transport.write("caf\u00e9".encode())
    assert frames(transport) == [
        (OP_TEXT, True, b"hello"),
        (OP_TEXT, True, b"abc"),
        (OP_TEXT, True, "caf\u00e9".encode()),
    ]


def test_writeOfStrIsATypeError():
    ws, inner, transport, _ = openStream()
    with pytest.raises(TypeError):
        inner.transport.write("text")


def test_characterSplitAcrossWritesIsHeldBack():
    ws, inner, transport, _ = openStream()
    inner.transport.write(b"a\xc3")
    inner.transport.write(b"\xa9b")
    assert frames(transport) == [(OP_TEXT, True, b"a"), (OP_TEXT, True, "\u00e9b".encode())]


def test_invalidUtf8InTextModeClosesWith1011():
    ws, inner, transport, _ = openStream()
    inner.transport.write(b"ok")
    inner.transport.write(b"\xff\xfe")
    inner.transport.write(b"dropped")
    out = frames(transport)
    assert out[0] == (OP_TEXT, True, b"ok")
    assert out[1][0] == OP_CLOSE
    assert struct.unpack("!H", out[1][2][:2])[0] == 1011
    assert len(out) == 2


def test_binaryMode():
    ws, inner, transport, _ = openStream(binary=True)
    inner.transport.write(b"\xff\x00")
    assert frames(transport) == [(OP_BINARY, True, b"\xff\x00")]


def test_messagesGoToDataReceived():
    ws, inner, transport, _ = openStream()
    ws.dataReceived(clientFrame(OP_TEXT, "h\u00e9".encode()))
    ws.dataReceived(clientFrame(OP_BINARY, b"\x00\xff"))
    assert inner.chunks == ["h\u00e9".encode(), b"\x00\xff"]


def test_lineModeAppendsAndCutsTheDelimiter():
    ws, inner, transport, _ = openStream(delimiter=b"\r\n")
    ws.dataReceived(clientFrame(OP_TEXT, b"GET key"))
    assert inner.chunks == [b"GET key\r\n"]
    inner.transport.write(b"OK\r\nhal")
    inner.transport.write(b"f\r\n\r\ntail")
    assert frames(transport) == [
        (OP_TEXT, True, b"OK"),
        (OP_TEXT, True, b"half"),
        (OP_TEXT, True, b""),
    ]
    # An unfinished last line is sent before the Close.
    inner.transport.loseConnection()
    out = frames(transport)
    assert out[0] == (OP_TEXT, True, b"tail")
    assert out[1][0] == OP_CLOSE


def test_lineReceiverOverTheAdapter():
    class Upper(LineReceiver):
        def lineReceived(self, line):
            self.sendLine(line.upper())

    ws, _, transport, _ = openStream(innerFactory=Factory.forProtocol(Upper), delimiter=b"\r\n")
    ws.dataReceived(clientFrame(OP_TEXT, b"one") + clientFrame(OP_TEXT, b"two"))
    assert frames(transport) == [(OP_TEXT, True, b"ONE"), (OP_TEXT, True, b"TWO")]


def test_loseConnectionRunsTheCloseHandshake():
    ws, inner, transport, _ = openStream()
    inner.transport.write(b"last words")
    inner.transport.loseConnection()
    inner.transport.write(b"after close")  # dropped, as on TCP
    out = frames(transport)
    assert out[0] == (OP_TEXT, True, b"last words")
    assert out[1][0] == OP_CLOSE and struct.unpack("!H", out[1][2][:2])[0] == 1000
    assert len(out) == 2
    assert inner.lost is None
    ws.dataReceived(closeFrame(1000))
    assert not transport.connected
    assert inner.lost is not None and inner.lost.check(ConnectionDone)


def test_abnormalEndIsConnectionLost():
    ws, inner, transport, _ = openStream()
    transport.loseConnection()  # the TCP connection goes without a Close
    assert inner.lost is not None and inner.lost.check(ConnectionLost)
    assert "1006" in str(inner.lost.value)


def test_peerCloseWithAnErrorCodeIsConnectionLost():
    ws, inner, transport, _ = openStream()
    ws.dataReceived(closeFrame(4000, b"go away"))
    assert inner.lost is not None and inner.lost.check(ConnectionLost)


def test_abortConnection():
    ws, inner, transport, _ = openStream()
    aborted = []
    transport.abortConnection = lambda: aborted.append(True)
    inner.transport.abortConnection()
    assert aborted == [True]


def test_refusedByTheWrappedFactoryCloses():
    class Refusing(Factory):
        def buildProtocol(self, addr):
            return None

    ws, inner, transport, _ = openStream(innerFactory=Refusing())
    out = frames(transport)
    assert out[0][0] == OP_CLOSE and struct.unpack("!H", out[0][2][:2])[0] == 1013

def test_producerOnTheStreamTransportFollowsTheWebSocket():
    ws, inner, transport, _ = openStream()
    producer = Producer()
    inner.transport.registerProducer(producer, True)
    # The TCP transport's buffer fills: it pauses the WebSocket, which
    # pauses the stream protocol's producer.
    ws.pauseProducing()
    assert producer.state == "paused"
    ws.resumeProducing()
    assert producer.state == "producing"
    inner.transport.unregisterProducer()
    ws.pauseProducing()
    assert producer.state == "producing"


def test_pausingTheStreamTransportHoldsMessages():
    ws, inner, transport, _ = openStream()
    inner.transport.pauseProducing()
    assert transport.producerState == "paused"
    ws.dataReceived(clientFrame(OP_TEXT, b"1") + clientFrame(OP_TEXT, b"2"))
    assert inner.chunks == []
    inner.transport.resumeProducing()
    assert inner.chunks == [b"1", b"2"]
    assert transport.producerState == "producing"
    ws.dataReceived(clientFrame(OP_TEXT, b"3"))
    assert inner.chunks == [b"1", b"2", b"3"]


def test_resumingTheStreamKeepsReadingPausedWhileTheWebSocketIsFull():
    ws, inner, transport, _ = openStream()
    inner.transport.pauseProducing()
    ws.pauseProducing()  # the WebSocket's own output is backed up
    inner.transport.resumeProducing()
    assert transport.producerState == "paused"
    ws.resumeProducing()
    assert transport.producerState == "producing"


def test_stopProducingLosesTheConnection():
    ws, inner, transport, _ = openStream()
    inner.transport.stopProducing()
    out = frames(transport)
    assert out[0][0] == OP_CLOSE


def test_clientSideAdapterMasksFrames():
    inner = RecorderFactory()
    ws = StreamOverWebSocketProtocol(inner, isClient=True, binary=True)
    ws.clock = Clock()
    transport = StringTransportWithDisconnection()
    transport.protocol = ws
    from twisted_ws.core.options import WebSocketOptions

    ws.options = WebSocketOptions(pingInterval=None)
    ws.makeConnection(transport)
    stream = inner.built[0]
    stream.transport.write(b"\x01\x02")
    parser = FrameParser(requireMask=True)
    pieces = parser.feed(transport.value())
    assert parser.error is None
    assert [(op, payload) for op, _, _, payload, _ in pieces] == [(OP_BINARY, b"\x01\x02")]
    # Unmasked server frames reach the stream protocol.
    ws.dataReceived(b"\x82\x02\x03\x04")
    assert stream.chunks == [b"\x03\x04"]


def test_badDelimiterIsRefused():
    with pytest.raises(ValueError):
        StreamOverWebSocketProtocol(RecorderFactory(), delimiter=b"")
