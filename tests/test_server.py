"""
The server side on memory transports: the upgrade protocol, the switch to
the application's protocol, the accept hook, limits and timeouts.
"""

from __future__ import annotations

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransportWithDisconnection

from twisted_ws import Accept, Reject, WebSocketServerFactory
from twisted_ws.core.frames import OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT
from twisted_ws.core.handshake import computeAcceptKey
from wshelpers import KEY, Echo, Producer, clientFrame, serverFrames, splitResponse, upgradeRequest


class EventEcho(Echo):
    """
    The shared Echo, recording what happens to it in C{events} (instead of
    its C{closed} Deferred: some tests here lose the connection twice).
    """

    def __init__(self) -> None:
        self.events: list[tuple] = []

    def connectionMade(self) -> None:
        super().connectionMade()
        self.events.append(("open", self.request.path, self.subprotocol))

    def messageReceived(self, message) -> None:
        self.events.append(("message", message))
        super().messageReceived(message)

    def connectionClosed(self, code, reason, wasClean) -> None:
        self.events.append(("closed", code, reason, wasClean))


def connect(factory: WebSocketServerFactory):
    """A handshake protocol on a memory transport: (protocol, transport)."""
    transport = StringTransportWithDisconnection()
    protocol = factory.buildProtocol(None)
    transport.protocol = protocol
    protocol.makeConnection(transport)
    return protocol, transport


def makeFactory(**kw) -> tuple[WebSocketServerFactory, Clock]:
    clock = Clock()
    kw.setdefault("pingInterval", None)
    return WebSocketServerFactory(EventEcho, clock=clock, **kw), clock


def openConnection(**kw):
    factory, clock = makeFactory(**kw)
    handshake, transport = connect(factory)
    handshake.dataReceived(upgradeRequest("/chat"))
    app = transport.protocol
    assert isinstance(app, EventEcho)
    head, rest = splitResponse(transport.value())
    assert head.startswith(b"HTTP/1.1 101 ")
    transport.clear()
    return app, transport, clock


def test_upgradeSwitchesTheTransport():
    factory, clock = makeFactory()
    handshake, transport = connect(factory)
    handshake.dataReceived(upgradeRequest("/chat?room=1"))
    head, rest = splitResponse(transport.value())
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert f"Sec-WebSocket-Accept: {computeAcceptKey(KEY)}".encode() in head
    assert b"Server:" not in head
    app = transport.protocol
    assert isinstance(app, EventEcho)
    assert app.transport is transport
    assert app.events == [("open", "/chat", None)]
    # The open timeout was cancelled with the switch.
    assert clock.getDelayedCalls() == []


def test_bytesInTheSamePacketGoToTheFrameProtocol():
    factory, _ = makeFactory()
    handshake, transport = connect(factory)
    frames = clientFrame(OP_TEXT, b"first") + clientFrame(OP_BINARY, b"\x00second")
    data = upgradeRequest() + frames
    # Split in the middle of the second frame, too.
    handshake.dataReceived(data[:-3])
    transport.protocol.dataReceived(data[-3:])
    app = transport.protocol
    assert [e for e in app.events if e[0] == "message"] == [
        ("message", "first"),
        ("message", b"\x00second"),
    ]
    _, rest = splitResponse(transport.value())
    assert serverFrames(rest) == [(OP_TEXT, True, b"first"), (OP_BINARY, True, b"\x00second")]


def test_requestByteByByte():
    factory, _ = makeFactory()
    handshake, transport = connect(factory)
    data = upgradeRequest() + clientFrame(OP_TEXT, b"hi")
    for i in range(len(data)):
        transport.protocol.dataReceived(data[i : i + 1])
    assert ("message", "hi") in transport.protocol.events


def test_tcpNoDelayIsSet():
    factory, _ = makeFactory()
    transport = StringTransportWithDisconnection()
    calls = []
    transport.setTcpNoDelay = calls.append
    protocol = factory.buildProtocol(None)
    transport.protocol = protocol
    protocol.makeConnection(transport)
    protocol.dataReceived(upgradeRequest())
    # Set when the WebSocket opens, before the 101 leaves the buffer.
    assert calls == [True]


@pytest.mark.parametrize(
    "request_, status",
    [
        (upgradeRequest().replace(b"GET", b"POST"), b"405"),
        (upgradeRequest().replace(b"HTTP/1.1", b"HTTP/1.0"), b"400"),
        (upgradeRequest().replace(b"Version: 13", b"Version: 8"), b"426"),
        (upgradeRequest().replace(b"Upgrade: websocket\r\n", b""), b"426"),
        (upgradeRequest().replace(KEY.encode(), b"c2hvcnQ="), b"400"),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n", b"414"),
        (b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * 200, b"431"),
        (b"garbage\r\n\r\n", b"400"),
    ],
)
def test_badRequestsAreRefusedWithAStatus(request_, status):
    factory, _ = makeFactory()
    handshake, transport = connect(factory)
    handshake.dataReceived(request_)
    out = transport.value()
    assert out.startswith(b"HTTP/1.1 " + status), out
    assert b"\r\n\r\n" in out and out.split(b"\r\n\r\n", 1)[1], "a plain-text reason"
    assert not transport.connected
    if status == b"426":
        assert b"Sec-WebSocket-Version: 13" in out


def test_openTimeoutDropsASilentClient():
    factory, clock = makeFactory(openTimeout=5)
    handshake, transport = connect(factory)
    handshake.dataReceived(b"GET / HTTP/1.1\r\n")
    clock.advance(4.9)
    assert transport.connected
    clock.advance(0.2)
    assert transport.value().startswith(b"HTTP/1.1 408")
    assert not transport.connected


def test_acceptHookPicksSubprotocolAndHeaders():
    seen = []

    def accept(request):
        seen.append((request.path, request.query, request.header("x-token"), request.peer))
        return Accept(subprotocol="b", headers=[("Set-Cookie", "a=1")])

    factory, _ = makeFactory(accept=accept, subprotocols=["a"])
    handshake, transport = connect(factory)
    handshake.dataReceived(
        upgradeRequest("/p?x=1", "Sec-WebSocket-Protocol: a, b\r\nX-Token: t\r\n")
    )
    head, _ = splitResponse(transport.value())
    assert b"Sec-WebSocket-Protocol: b\r\n" in head
    assert b"Set-Cookie: a=1\r\n" in head
    assert seen[0][:3] == ("/p", "x=1", "t")
    assert seen[0][3] is not None
    assert transport.protocol.subprotocol == "b"


def test_requestAddressesComeFromTheTransport():
    """
    The request's addresses are the transport's, each asked of it only
    when read (a system call or an address object most applications never
    need), and then once.
    """
    factory, _ = makeFactory()
    handshake, transport = connect(factory)
    asked = []
    getHost, getPeer = transport.getHost, transport.getPeer
    transport.getHost = lambda: asked.append("host") or getHost()  # type: ignore[method-assign]
    transport.getPeer = lambda: asked.append("peer") or getPeer()  # type: ignore[method-assign]
    handshake.dataReceived(upgradeRequest())
    request = transport.protocol.request
    assert asked == []
    assert request.peer == getPeer() and request.peer == getPeer()
    assert asked == ["peer"]
    assert request.local == getHost() and request.local == getHost()
    assert asked == ["peer", "host"]


def test_defaultSubprotocolFollowsServerPreference():
    factory, _ = makeFactory(subprotocols=["v2", "v1"])
    handshake, transport = connect(factory)
    handshake.dataReceived(upgradeRequest(extra="Sec-WebSocket-Protocol: v1, v2\r\n"))
    assert b"Sec-WebSocket-Protocol: v2\r\n" in transport.value()


def test_noCommonSubprotocolMeansNone():
    factory, _ = makeFactory(subprotocols=["v3"])
    handshake, transport = connect(factory)
    handshake.dataReceived(upgradeRequest(extra="Sec-WebSocket-Protocol: v1\r\n"))
    assert transport.value().startswith(b"HTTP/1.1 101")
    assert b"Sec-WebSocket-Protocol" not in transport.value()


def test_acceptHookDeferredAccept():
    pending: list[Deferred] = []

    def accept(request):
        d = Deferred()
        pending.append(d)
        return d

    factory, _ = makeFactory(accept=accept)
    handshake, transport = connect(factory)
    frame = clientFrame(OP_TEXT, b"early")
    handshake.dataReceived(upgradeRequest() + frame)
    assert transport.value() == b""
    assert transport.producerState == "paused", "no reading while the hook decides"
    pending[0].callback(None)
    assert transport.value().startswith(b"HTTP/1.1 101")
    assert transport.producerState == "producing"
    assert ("message", "early") in transport.protocol.events



def test_pauseAskedAtOpenSurvivesADeferredAccept():
    # The transport, paused while the hook decided, is resumed before the
    # WebSocket starts, so the WebSocket's own pause is not undone.
    class Holder(EventEcho):
        def connectionMade(self):
            super().connectionMade()
            self.pauseReading()

    d = Deferred()
    factory = WebSocketServerFactory(Holder, clock=Clock(), accept=lambda r: d, pingInterval=None)
    handshake, transport = connect(factory)
    handshake.dataReceived(upgradeRequest())
    assert transport.producerState == "paused"
    d.callback(None)
    assert transport.value().startswith(b"HTTP/1.1 101")
    assert transport.producerState == "paused"


def test_protocolThatCannotBeBuiltGets500():
    def broken():
        raise RuntimeError("no protocol today")

    factory = WebSocketServerFactory(broken, clock=Clock())
    handshake, transport = connect(factory)
    handshake.dataReceived(upgradeRequest())
    out = transport.value()
    assert out.startswith(b"HTTP/1.1 500 ")
    assert b"no protocol today" not in out
    assert not transport.connected

@pytest.mark.parametrize("how", ["raise", "return", "deferred"])
def test_acceptHookRejects(how):
    def accept(request):
        error = Reject(401, "token missing", headers=[("WWW-Authenticate", "Bearer")])
        if how == "raise":
            raise error
        if how == "return":
            return error
        d = Deferred()
        d.errback(error)
        return d

    factory, _ = makeFactory(accept=accept)
    handshake, transport = connect(factory)
    handshake.dataReceived(upgradeRequest())
    out = transport.value()
    assert out.startswith(b"HTTP/1.1 401 ")
    assert b"WWW-Authenticate: Bearer\r\n" in out
    assert out.endswith(b"token missing\n")
    assert not transport.connected


def test_acceptHookCrashGives500():
    def accept(request):
        raise ZeroDivisionError()

    factory, _ = makeFactory(accept=accept)
    handshake, transport = connect(factory)
    handshake.dataReceived(upgradeRequest())
    out = transport.value()
    assert out.startswith(b"HTTP/1.1 500 ")
    assert b"ZeroDivision" not in out, "no internals leak to the client"


def test_slowAcceptHookTimesOut():
    d = Deferred()
    factory, clock = makeFactory(accept=lambda r: d, openTimeout=3)
    handshake, transport = connect(factory)
    handshake.dataReceived(upgradeRequest())
    clock.advance(3)
    assert transport.value().startswith(b"HTTP/1.1 408")
    assert d.called, "the hook's Deferred was cancelled"


@pytest.mark.parametrize(
    "origin, allowed",
    [
        ("https://app.example.com", True),
        ("https://evil.example.net", False),
        ("HTTPS://APP.EXAMPLE.COM", True),
        (None, True),
    ],
)
def test_allowedOrigins(origin, allowed):
    factory, _ = makeFactory(allowedOrigins=["https://*.example.com"])
    handshake, transport = connect(factory)
    extra = f"Origin: {origin}\r\n" if origin else ""
    handshake.dataReceived(upgradeRequest(extra=extra))
    assert transport.value().startswith(b"HTTP/1.1 101" if allowed else b"HTTP/1.1 403")


def test_unknownOptionIsAnError():
    with pytest.raises(TypeError):
        WebSocketServerFactory(EventEcho, maxMesageSize=3)


def test_connectionLostDuringHook():
    d = Deferred()
    factory, clock = makeFactory(accept=lambda r: d)
    handshake, transport = connect(factory)
    handshake.dataReceived(upgradeRequest())
    transport.loseConnection()
    assert d.called  # cancelled
    assert clock.getDelayedCalls() == []


# -- the frame protocol after the switch ------------------------------------


def test_echoAndPingPong():
    app, transport, _ = openConnection()
    app.dataReceived(clientFrame(OP_TEXT, "héllo".encode()) + clientFrame(OP_PING, b"xyz"))
    assert serverFrames(transport.value()) == [
        (OP_TEXT, True, "héllo".encode()),
        (OP_PONG, True, b"xyz"),
    ]


def test_peerClosesServerDropsTcp():
    app, transport, _ = openConnection()
    app.dataReceived(clientFrame(OP_CLOSE, b"\x03\xe8bye"))
    assert serverFrames(transport.value()) == [(OP_CLOSE, True, b"\x03\xe8")]
    assert not transport.connected
    assert app.events[-1] == ("closed", 1000, "bye", True)
    assert app.closeInfo.initiatedByPeer


def test_serverInitiatedClose():
    app, transport, clock = openConnection()
    d = app.close(4000, "done")
    assert serverFrames(transport.value()) == [(OP_CLOSE, True, b"\x0f\xa0done")]
    assert transport.connected, "waiting for the peer's Close"
    app.dataReceived(clientFrame(OP_CLOSE, b"\x0f\xa0"))
    assert not transport.connected
    info = d.result
    assert (info.code, info.wasClean, info.initiatedByPeer, info.sentCode) == (4000, True, False, 4000)


def test_closeTimeoutAbortsSilentPeer():
    app, transport, clock = openConnection(closeTimeout=2)
    d = app.close()
    clock.advance(2)
    assert transport.disconnected, "aborted"
    transport.protocol.connectionLost(None)
    assert d.result.code == 1006 and not d.result.wasClean


def test_protocolErrorSendsCloseBeforeDropping():
    app, transport, clock = openConnection(closeTimeout=2)
    unmasked = b"\x81\x02hi"
    app.dataReceived(unmasked)
    frames = serverFrames(transport.value())
    assert frames[0][0] == OP_CLOSE and frames[0][2][:2] == (1002).to_bytes(2, "big")
    # The peer answers; then the server closes TCP.
    app.dataReceived(clientFrame(OP_CLOSE, b"\x03\xea"))
    assert not transport.connected


@pytest.mark.parametrize(
    "frames, code",
    [
        ([clientFrame(OP_TEXT, b"\xff")], 1007),
        ([clientFrame(OP_BINARY, b"x" * 2000)], 1009),
        ([clientFrame(OP_CLOSE, b"\x03")], 1002),
        ([clientFrame(0x3, b"")], 1002),
    ],
)
def test_closeCodes(frames, code):
    app, transport, _ = openConnection(maxMessageSize=1000)
    for f in frames:
        app.dataReceived(f)
    out = serverFrames(transport.value())
    assert out[-1][0] == OP_CLOSE
    assert int.from_bytes(out[-1][2][:2], "big") == code


def test_tooBigIsRefusedOnTheHeader():
    app, transport, _ = openConnection(maxMessageSize=1000)
    frame = clientFrame(OP_BINARY, b"x" * 100_000)
    app.dataReceived(frame[:14])  # just the header
    out = serverFrames(transport.value())
    assert out == [(OP_CLOSE, True, (1009).to_bytes(2, "big") + b"message larger than 1000 bytes")]


def test_keepalivePingsAndDropsDeadPeer():
    app, transport, clock = openConnection(pingInterval=10, pingTimeout=5, closeTimeout=3)
    clock.advance(10)
    frames = serverFrames(transport.value())
    assert frames[0][0] == OP_PING
    payload = frames[0][2]
    transport.clear()
    app.dataReceived(clientFrame(OP_PONG, payload))
    clock.advance(5)
    assert transport.value() == b"", "the pong arrived in time"
    clock.advance(5)  # second ping at t=20
    assert serverFrames(transport.value())[0][0] == OP_PING
    transport.clear()
    clock.advance(5)  # no pong: fail with 1011
    frames = serverFrames(transport.value())
    assert frames == [(OP_CLOSE, True, (1011).to_bytes(2, "big") + b"keepalive ping timeout")]
    clock.advance(3)
    assert transport.disconnected


def test_pingDeferredFiresWithRoundTrip():
    app, transport, clock = openConnection()
    d1 = app.ping(b"one")
    d2 = app.ping(b"two")
    clock.advance(0.25)
    app.dataReceived(clientFrame(OP_PONG, b"two"))  # answers both
    assert d1.result == pytest.approx(0.25) and d2.result == pytest.approx(0.25)
    d3 = app.ping()
    app.dataReceived(clientFrame(OP_CLOSE, b""))
    failures = []
    d3.addErrback(failures.append)
    assert failures and "ConnectionClosed" in repr(failures[0])


def test_sendAfterCloseIsDropped():
    app, transport, _ = openConnection()
    app.close()
    transport.clear()
    app.sendMessage("late")
    assert transport.value() == b""


def test_streamingSend():
    app, transport, _ = openConnection()
    writer = app.beginMessage(isText=True)
    writer.write("ab")
    with pytest.raises(RuntimeError):
        app.sendMessage("interleaved")
    writer.finish("c")
    app.sendMessage("next")
    assert serverFrames(transport.value()) == [
        (OP_TEXT, False, b"ab"),
        (0, True, b"c"),
        (OP_TEXT, True, b"next"),
    ]


class Streamer(EventEcho):
    streamMessages = True

    def messageStarted(self, isText):
        self.events.append(("start", isText))

    def messageDataReceived(self, data):
        self.events.append(("data", data))

    def messageEnded(self):
        self.events.append(("end",))


def test_streamingReceive():
    factory = WebSocketServerFactory(Streamer, clock=Clock(), pingInterval=None)
    handshake, transport = connect(factory)
    text = "añb".encode()
    handshake.dataReceived(
        upgradeRequest()
        + clientFrame(OP_TEXT, text[:2], fin=False)
        + clientFrame(0, text[2:], fin=True)
    )
    events = [e for e in transport.protocol.events if e[0] != "open"]
    assert events == [("start", True), ("data", "a"), ("data", "ñb"), ("end",)]


# -- flow control -------------------------------------------------------------


def test_fullTransportPausesReadingAndQueues():
    app, transport, _ = openConnection(fragmentSize=1000)
    assert transport.producer is app and transport.streaming
    app.pauseProducing()  # what the transport does when its buffer is full
    assert transport.producerState == "paused", "stopped reading from the peer"
    app.sendMessage(b"x" * 3000)
    assert transport.value() == b"", "held while paused"
    assert app.bufferedAmount == 3000
    # A ping is answered on resume, first (held meanwhile: a ping flood
    # cannot grow anything while the peer does not read).
    app.dataReceived(clientFrame(OP_PING, b"p"))
    assert transport.value() == b""
    app.resumeProducing()
    assert transport.producerState == "producing"
    frames = serverFrames(transport.value())
    assert frames[0] == (OP_PONG, True, b"p")
    assert [(op, fin, len(p)) for op, fin, p in frames[1:]] == [
        (OP_BINARY, False, 1000),
        (0, False, 1000),
        (0, True, 1000),
    ]


def test_applicationProducerIsPaused():
    app, transport, _ = openConnection()
    producer = Producer()
    app.registerProducer(producer, True)
    app.pauseProducing()
    assert producer.state == "paused"
    app.resumeProducing()
    assert producer.state == "producing"
    transport.loseConnection()
    assert producer.state == "stopped"


def test_closeUnderBackpressureStillCompletes():
    """
    A Close arriving while the transport is paused (send buffer full) is
    answered, reading resumes, and TCP is closed with the producer
    unregistered so nothing holds loseConnection() up.
    """
    app, transport, clock = openConnection(closeTimeout=2)
    app.pauseProducing()
    app.sendMessage(b"x" * 200_000)
    app.dataReceived(clientFrame(OP_CLOSE, b"\x03\xe8"))
    frames = serverFrames(transport.value())
    assert frames[-1] == (OP_CLOSE, True, b"\x03\xe8")
    assert transport.producer is None
    assert not transport.connected


def test_handshakeRejectedHookSeesEveryRefusal():
    seen = []

    class Counting(WebSocketServerFactory):
        def handshakeRejected(self, error, request, peer):
            seen.append((error.status, request.path if request else None, peer is not None))

    def accept(request):
        if request.path == "/private":
            raise Reject(403, "no")

    clock = Clock()
    factory = Counting(EventEcho, clock=clock, accept=accept, pingInterval=None, openTimeout=1)
    handshake, _ = connect(factory)
    handshake.dataReceived(b"POST / HTTP/1.1\r\n\r\n")
    handshake, _ = connect(factory)
    handshake.dataReceived(upgradeRequest("/private"))
    connect(factory)
    clock.advance(1)
    handshake, transport = connect(factory)
    handshake.dataReceived(upgradeRequest("/public"))
    assert transport.value().startswith(b"HTTP/1.1 101")
    assert seen == [(405, None, True), (403, "/private", True), (408, None, True)]


def test_pauseReadingComposesWithFlowControl():
    app, transport, _ = openConnection()
    app.pauseReading()
    assert transport.producerState == "paused"
    app.pauseProducing()  # the transport is full as well
    app.resumeProducing()  # ...and drains: the application's hold stays
    assert transport.producerState == "paused"
    app.resumeReading()
    assert transport.producerState == "producing"
    app.pauseProducing()
    app.resumeReading()  # the flow-control pause stays
    assert transport.producerState == "paused"
    app.resumeProducing()
    assert transport.producerState == "producing"
    # Once closing, reading goes on whatever holds it: the peer's Close
    # must get through.
    app.pauseReading()
    app.close()
    assert transport.producerState == "producing"


class Buggy(EventEcho):
    def messageReceived(self, message):
        raise ZeroDivisionError("bug in the application")


def test_callbackErrorFailsWith1011():
    from twisted.logger import globalLogPublisher

    logged = []
    globalLogPublisher.addObserver(logged.append)
    try:
        factory = WebSocketServerFactory(Buggy, clock=Clock(), pingInterval=None)
        handshake, transport = connect(factory)
        handshake.dataReceived(upgradeRequest() + clientFrame(OP_TEXT, b"boom"))
    finally:
        globalLogPublisher.removeObserver(logged.append)
    _, rest = splitResponse(transport.value())
    frames = serverFrames(rest)
    assert frames == [(OP_CLOSE, True, (1011).to_bytes(2, "big") + b"internal error")]
    assert any("log_failure" in event for event in logged), "the error is logged"
    assert transport.connected, "waiting for the peer's Close"
