"""
The connection's lifecycle, owned by the core (L{State}, the closeStarted
and closeTransport callbacks, L{WebSocketConnection.connectionLost}'s
CloseInfo), and the glue acting on it: the server closes TCP first, the
client only after closeTimeout (RFC 6455 §7.1.1).  Logic tier: no I/O, every
timer driven by a L{Clock}.
"""

from __future__ import annotations

import os

import pytest
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from twisted_ws import WebSocketClientFactory, WebSocketProtocol, WebSocketServerFactory
from twisted_ws.core.connection import State, WebSocketConnection
from twisted_ws.core.frames import OP_BINARY, OP_CLOSE, OP_TEXT, FrameParser, serializeFrame
from wshelpers import RecordingHandler, clientFrame, openedClient, openedServer, upgradeRequest


class Core:
    """A core connection whose writes, handler calls and lifecycle callbacks
    all land in one list, in order."""

    def __init__(self, isClient=False, **kw):
        self.events = []
        self.handler = RecordingHandler()
        self.handler.events = self.events
        self.isClient = isClient
        self.conn = WebSocketConnection(
            self.handler, lambda data: self.events.append(("write", data)), isClient=isClient, **kw
        )
        self.conn.closeStarted = lambda: self.events.append(("closeStarted",))
        self.conn.closeTransport = lambda now: self.events.append(("closeTransport", now))

    def frame(self, opcode, payload=b""):
        return serializeFrame(opcode, payload, True, 0, None if self.isClient else os.urandom(4))

    def recv(self, *frames):
        self.conn.receiveData(b"".join(frames))

    def lifecycle(self):
        return [e for e in self.events if e[0] in ("closeStarted", "closeTransport")]

    def kinds(self):
        return [e[0] for e in self.events]

    def closesWritten(self):
        parser = FrameParser(requireMask=self.isClient)
        written = b"".join(e[1] for e in self.events if e[0] == "write")
        return [payload for op, _f, _r, payload, _p in parser.feed(written) if op == OP_CLOSE]


# -- the state machine, transition by transition -------------------------------------


@pytest.mark.parametrize("isClient", [False, True])
def test_weCloseFirst(isClient):
    c = Core(isClient)
    assert c.conn.state is State.OPEN
    assert c.conn.close(4000, "done")
    assert c.conn.state is State.CLOSING
    assert c.lifecycle() == [("closeStarted",)]
    assert c.closesWritten() == [b"\x0f\xa0done"]
    assert not c.conn.close()  # once
    c.recv(c.frame(OP_CLOSE, b"\x0f\xa0ok"))
    # Server: close TCP now; client: wait for the server to.
    assert c.lifecycle() == [("closeStarted",), ("closeTransport", not isClient)]
    assert c.conn.state is State.CLOSING  # until the transport is gone
    info = c.conn.connectionLost()
    assert c.conn.state is State.CLOSED
    assert (info.code, info.reason, info.wasClean, info.initiatedByPeer) == (4000, "ok", True, False)
    assert (info.sentCode, info.sentReason, info.receivedCode, info.receivedReason) == (4000, "done", 4000, "ok")


@pytest.mark.parametrize("isClient", [False, True])
def test_peerClosesFirst(isClient):
    c = Core(isClient)
    c.recv(c.frame(OP_CLOSE, b"\x03\xe8bye"))
    # Our reply is written and the handler told before the glue is asked
    # to close anything.
    assert c.kinds() == ["close", "write", "closeStarted", "closeTransport"]
    assert c.lifecycle()[-1] == ("closeTransport", not isClient)
    assert c.closesWritten() == [b"\x03\xe8"]
    info = c.conn.connectionLost()
    assert (info.code, info.reason, info.wasClean, info.initiatedByPeer) == (1000, "bye", True, True)
    assert (info.sentCode, info.receivedCode) == (1000, 1000)


def test_peerCloseWithoutCode():
    c = Core()
    c.recv(c.frame(OP_CLOSE))
    assert c.conn.peerClose == (1005, "")
    assert c.closesWritten() == [b"\x03\xe8"]  # answered with 1000
    info = c.conn.connectionLost()
    assert (info.code, info.wasClean, info.initiatedByPeer) == (1005, True, True)
    assert (info.sentCode, info.receivedCode) == (1000, 1005)


def test_protocolErrorFailsThenPeerAnswers():
    c = Core()
    c.recv(b"\x81\x02hi")  # unmasked from a client: 1002
    assert c.conn.state is State.CLOSING
    assert c.conn.failure.code == 1002
    assert c.lifecycle() == [("closeStarted",)]
    assert c.closesWritten()[0][:2] == b"\x03\xea"
    c.recv(c.frame(OP_CLOSE, b"\x03\xea"))
    assert c.lifecycle() == [("closeStarted",), ("closeTransport", True)]
    info = c.conn.connectionLost()
    assert (info.code, info.wasClean, info.initiatedByPeer, info.sentCode) == (1002, True, False, 1002)


def test_protocolErrorPeerNeverAnswers():
    c = Core()
    c.recv(c.frame(OP_TEXT, b"\xff"))  # invalid UTF-8: 1007
    assert c.lifecycle() == [("closeStarted",)]
    info = c.conn.connectionLost()
    assert (info.code, info.wasClean, info.initiatedByPeer, info.sentCode) == (1006, False, False, 1007)
    assert info.receivedCode is None


def test_tcpLostWhileOpenWasThePeer():
    c = Core()
    info = c.conn.connectionLost()
    assert c.conn.state is State.CLOSED
    assert c.lifecycle() == []
    assert (info.code, info.wasClean, info.initiatedByPeer, info.sentCode) == (1006, False, True, None)


def test_abortWhileOpenWasUs():
    c = Core()
    c.conn.abort()
    info = c.conn.connectionLost()
    assert (info.code, info.wasClean, info.initiatedByPeer) == (1006, False, False)


def test_abortAfterTheHandshakeIsNotClean():
    c = Core(isClient=True)
    c.conn.close()
    c.recv(c.frame(OP_CLOSE, b"\x03\xe8"))
    c.conn.abort()  # the server kept TCP open too long
    info = c.conn.connectionLost()
    assert (info.code, info.wasClean, info.initiatedByPeer) == (1000, False, False)


def test_nothingAfterClosed():
    c = Core()
    c.conn.connectionLost()
    assert c.conn.close() is False
    assert c.conn.sendMessage("late") is False
    assert c.conn.ping() is False
    c.conn.fail(1011, "late")
    assert c.conn.state is State.CLOSED
    assert c.events == []


def test_closeFromAHandlerIsAnnouncedAfterTheRead():
    c = Core()

    class Closer(RecordingHandler):
        def textMessageReceived(self, text):
            super().textMessageReceived(text)
            c.conn.close(1000, "enough")
            c.events.append(("closed-in-handler",))

    c.conn.handler = Closer()
    c.conn.handler.events = c.events
    c.recv(c.frame(OP_TEXT, b"a"), c.frame(OP_TEXT, b"b"))
    # The second message is ignored (closing); closeStarted comes once the
    # read is done and the Close is written.
    assert c.kinds() == ["text", "closed-in-handler", "write", "closeStarted"]


def test_malformedPeerCloseWhileOurCloseWaitsEndsOnResume():
    c = Core(fragmentSize=4)
    c.conn.pauseWriting()
    c.conn.sendMessage(b"x" * 10)
    c.conn.close()
    assert c.lifecycle() == [("closeStarted",)]
    c.recv(c.frame(OP_CLOSE, b"\x03"))  # a one-byte Close payload is malformed
    assert c.conn.peerClose is not None and c.conn.closeSent is None
    assert c.lifecycle() == [("closeStarted",)]
    assert c.conn.resumeWriting()
    assert c.conn.closeSent is not None
    assert c.lifecycle() == [("closeStarted",), ("closeTransport", True)]


def test_resumeWritingSaysWhetherStillWritable():
    written = []

    def write(data):
        written.append(data)
        conn.pauseWriting()  # the transport fills at once

    conn = WebSocketConnection(RecordingHandler(), write, fragmentSize=4)
    conn.pauseWriting()
    conn.sendMessage(b"y" * 10)
    assert conn.resumeWriting() is False
    assert len(written) == 1


# -- the glue acts on it ------------------------------------------------------------


class App(WebSocketProtocol):
    def connectionMade(self):
        self.closed = []

    def connectionClosed(self, code, reason, wasClean):
        self.closed.append((code, wasClean))


def openServer(**kw):
    clock = Clock()
    factory = WebSocketServerFactory(App, clock=clock, pingInterval=None, **kw)
    transport = StringTransport()
    app = openedServer(factory, transport)
    assert isinstance(app, App)
    return app, transport, clock


def openClient(**kw):
    clock = Clock()
    factory = WebSocketClientFactory(App, "ws://example.com/", clock=clock, pingInterval=None, **kw)
    transport = StringTransport()
    app = openedClient(factory, transport)
    assert isinstance(app, App) and app.isClient
    return app, transport, clock


def test_serverDropsTcpAsSoonAsTheHandshakeIsOver():
    app, transport, clock = openServer(closeTimeout=5)
    app.close()
    assert not transport.disconnecting
    app.dataReceived(clientFrame(OP_CLOSE, b"\x03\xe8"))
    assert transport.disconnecting
    assert transport.producer is None  # unregistered, so loseConnection is not held up


def test_clientWaitsForTheServerThenClosesThenAborts():
    app, transport, clock = openClient(closeTimeout=5)
    app.close()
    app.dataReceived(serializeFrame(OP_CLOSE, b"\x03\xe8", True, 0, None))
    assert not transport.disconnecting, "the server closes TCP first"
    clock.advance(4.9)
    assert not transport.disconnecting
    clock.advance(0.1)
    assert transport.disconnecting, "closeTimeout later, the client closes TCP itself"
    assert app.closed == []
    clock.advance(5)  # and if even that does not end it, aborts
    app.connectionLost(None)
    assert app.closed == [(1000, False)]


def test_clientWhoseServerClosesTcpIsClean():
    app, transport, clock = openClient(closeTimeout=5)
    app.dataReceived(serializeFrame(OP_CLOSE, b"\x03\xe8", True, 0, None))  # the server starts
    assert not transport.disconnecting
    app.connectionLost(None)  # the server closed TCP
    assert app.closed == [(1000, True)]
    assert app.closeInfo.initiatedByPeer
    assert clock.getDelayedCalls() == []


def test_readingResumesWhenTheCloseStarts():
    app, transport, clock = openServer(closeTimeout=5)
    app.pauseReading()
    assert transport.producerState == "paused"
    app.close()
    assert transport.producerState == "producing", "the peer's Close must get through"
    app.dataReceived(clientFrame(OP_BINARY, b"ignored") + clientFrame(OP_CLOSE, b"\x03\xe8"))
    assert transport.disconnecting


def test_keepaliveStopsWhenTheCloseStarts():
    clock = Clock()
    factory = WebSocketServerFactory(App, clock=clock, pingInterval=10, pingTimeout=5, closeTimeout=30)
    transport = StringTransport()
    handshake = factory.buildProtocol(None)
    transport.protocol = handshake
    handshake.makeConnection(transport)
    handshake.dataReceived(upgradeRequest("/"))
    app = transport.protocol
    app.close()
    # Only the close timeout is left.
    assert [round(c.getTime()) for c in clock.getDelayedCalls()] == [30]


# -- naming (sendMessage's isText, the core's peerClose) -------------------------------


def test_sendMessageIsTextAndDeprecatedIsBinary():
    app, transport, clock = openServer()
    app.sendMessage(b"as text", isText=True)
    app.sendMessage("as binary", isText=False)
    with pytest.warns(DeprecationWarning, match="isText"):
        app.sendMessage("old spelling", isBinary=True)
    parser = FrameParser(requireMask=False)
    sent = [(op, payload) for op, _f, _r, payload, _p in parser.feed(transport.value())]
    assert sent == [(OP_TEXT, b"as text"), (OP_BINARY, b"as binary"), (OP_BINARY, b"old spelling")]


def test_closeReceivedIsOnlyTheCallback():
    c = Core()
    assert not hasattr(c.conn, "closeReceived")
    c.recv(c.frame(OP_CLOSE, b"\x03\xe8x"))
    assert c.conn.peerClose == (1000, "x")
