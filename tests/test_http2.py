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


# -- the server: our H2Connection subclass, the h2 library as the client --------

import zlib  # noqa: E402

import h2.config  # noqa: E402
import h2.connection  # noqa: E402
import h2.events  # noqa: E402
import h2.settings  # noqa: E402
from twisted.internet.defer import Deferred  # noqa: E402
from twisted.internet.testing import StringTransport  # noqa: E402
from twisted.web.resource import Resource  # noqa: E402
from twisted.web.server import Site  # noqa: E402
from twisted.web.static import Data  # noqa: E402

from twisted_ws import (  # noqa: E402
    PerMessageDeflate,
    Reject,
    WebSocketOptions,
    WebSocketResource,
    WebSocketServerFactory,
)
from twisted_ws.http2 import enableHTTP2WebSockets  # noqa: E402
from twisted_ws.http2.server import PRIVATE_TWISTED_NAMES, WebSocketH2Connection  # noqa: E402

ENABLE_CONNECT = h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL


class Echo(WebSocketProtocol):
    instances: list[Any] = []

    def connectionMade(self):
        Echo.instances.append(self)
        self.closed: Any = None

    def messageReceived(self, message):
        self.sendMessage(message)

    def connectionClosed(self, code, reason, wasClean):
        self.closed = (code, wasClean)


class H2Client:
    """The h2 library as a client, wired to a Site over a StringTransport."""

    def __init__(self, site: Site, clock: Clock, protocol: Any = None) -> None:
        self.clock = clock
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        self.transport = StringTransport(
            hostAddress=IPv4Address("TCP", "127.0.0.1", 443),
            peerAddress=IPv4Address("TCP", "127.0.0.1", 40000),
        )
        self.transport.negotiatedProtocol = b"h2"
        self.server = protocol if protocol is not None else site.buildProtocol(None)
        self.server.makeConnection(self.transport)
        self.events: list[Any] = []
        self.conn.initiate_connection()
        self.pump()

    def pump(self) -> None:
        for _ in range(100):
            out = self.conn.data_to_send()
            if out:
                self.server.dataReceived(out)
            self.clock.advance(0)
            back = self.transport.value()
            self.transport.clear()
            if back:
                self.events += self.conn.receive_data(back)
            if not out and not back:
                return
        raise AssertionError("the connection does not settle")

    def on(self, streamID: int, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind) and getattr(e, "stream_id", None) == streamID]

    def status(self, streamID: int) -> int | None:
        for e in self.on(streamID, h2.events.ResponseReceived):
            return int(dict(e.headers)[":status"])
        return None

    def responseHeaders(self, streamID: int) -> dict[str, str]:
        return dict(self.on(streamID, h2.events.ResponseReceived)[0].headers)

    def body(self, streamID: int, ack: bool = True) -> bytes:
        return b"".join(e.data for e in self.on(streamID, h2.events.DataReceived))

    def connect(self, path: str = "/ws", extra: list[tuple[str, str]] = ()) -> int:
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, [
            (":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "https"),
            (":path", path), (":authority", "example.com"),
            ("sec-websocket-version", "13"), *extra,
        ])
        self.pump()
        return sid

    def get(self, path: str) -> int:
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, [
            (":method", "GET"), (":scheme", "https"), (":path", path), (":authority", "example.com"),
        ], end_stream=True)
        self.pump()
        return sid

    def send(self, sid: int, opcode: int, payload: bytes) -> None:
        self.conn.send_data(sid, clientFrame(opcode, payload))
        self.pump()

    def received(self, sid: int, allowedRsv: int = 0) -> list[tuple[int, bytes]]:
        parser = FrameParser(requireMask=False, allowedRsv=allowedRsv)
        return [(op, payload) for op, _f, _r, payload, _p in parser.feed(self.body(sid))]

    def ackAll(self) -> None:
        for e in self.events:
            if isinstance(e, h2.events.DataReceived) and not getattr(e, "acked", False):
                e.acked = True
                self.conn.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
        self.pump()

    def connectionAlive(self) -> bool:
        return not self.transport.disconnecting and not any(
            isinstance(e, h2.events.ConnectionTerminated) for e in self.events
        )


def makeSite(clock: Clock, factory: WebSocketServerFactory | None = None, **kw: Any) -> Site:
    Echo.instances = []
    factory = factory or WebSocketServerFactory(Echo, clock=clock)
    root = Resource()
    root.putChild(b"ws", WebSocketResource(factory))
    root.putChild(b"page", Data(b"<html>hello</html>", "text/html"))
    site = Site(root, reactor=clock)
    return enableHTTP2WebSockets(site, **kw)


@pytest.fixture
def clock():
    return Clock()


def test_firstSettingsFrameAdvertisesConnectProtocol(clock):
    client = H2Client(makeSite(clock), clock)
    first = next(e for e in client.events if isinstance(e, h2.events.RemoteSettingsChanged))
    assert first.changed_settings[ENABLE_CONNECT].new_value == 1
    assert isinstance(client.server._channel, WebSocketH2Connection)


def test_notEnabledSiteDoesNotAdvertise(clock):
    site = Site(Resource(), reactor=clock)
    client = H2Client(site, clock)
    settings = [e for e in client.events if isinstance(e, h2.events.RemoteSettingsChanged)]
    assert settings and all(
        ENABLE_CONNECT not in e.changed_settings or e.changed_settings[ENABLE_CONNECT].new_value == 0
        for e in settings
    )
    assert not isinstance(client.server._channel, WebSocketH2Connection)


def test_extendedConnectEcho(clock):
    client = H2Client(makeSite(clock), clock)
    sid = client.connect()
    assert client.status(sid) == 200
    [server] = Echo.instances
    assert server.request.httpVersion == "2" and server.request.method == "CONNECT"
    assert server.request.secure is False and server.request.peer.port == 40000
    client.send(sid, Opcode.TEXT, b"hello h2")
    client.send(sid, Opcode.BINARY, b"\x00\x01")
    server.sendMessage("from server")
    client.pump()
    assert client.received(sid) == [
        (Opcode.TEXT, b"hello h2"), (Opcode.BINARY, b"\x00\x01"), (Opcode.TEXT, b"from server"),
    ]


def test_webSocketAndGetsInterleaved(clock):
    client = H2Client(makeSite(clock), clock)
    ws = client.connect()
    page1 = client.get("/page")
    client.send(ws, Opcode.TEXT, b"one")
    page2 = client.get("/page")
    client.send(ws, Opcode.TEXT, b"two")
    missing = client.get("/nothing")
    for sid in (page1, page2):
        assert client.status(sid) == 200 and client.body(sid) == b"<html>hello</html>"
    assert client.status(missing) == 404
    assert client.received(ws) == [(Opcode.TEXT, b"one"), (Opcode.TEXT, b"two")]
    assert client.connectionAlive()


def test_twoWebSocketsOneAborted(clock):
    client = H2Client(makeSite(clock), clock)
    a, b = client.connect(), client.connect()
    first, second = Echo.instances
    client.conn.reset_stream(a, error_code=8)
    client.pump()
    assert first.closed == (CloseCode.ABNORMAL_CLOSURE, False)
    client.send(b, Opcode.TEXT, b"still here")
    assert client.received(b) == [(Opcode.TEXT, b"still here")]
    # And the server aborting one: RST_STREAM(CANCEL), the rest goes on.
    c = client.connect()
    third = Echo.instances[2]
    third.abortConnection()
    client.pump()
    [reset] = client.on(c, h2.events.StreamReset)
    assert reset.error_code == CANCEL
    client.send(b, Opcode.TEXT, b"again")
    assert client.received(b)[-1] == (Opcode.TEXT, b"again")
    assert client.status(client.get("/page")) == 200 and client.connectionAlive()


class Firehose:
    """A streaming producer that writes 8 KiB messages until paused."""

    def __init__(self, protocol):
        self.protocol, self.paused, self.sent = protocol, False, 0

    def pauseProducing(self):
        self.paused = True

    def resumeProducing(self):
        self.paused = False
        self.run()

    def stopProducing(self):
        self.paused = True

    def run(self):
        while not self.paused and self.sent < 10_000:
            self.sent += 1
            self.protocol.sendMessage(b"f" * 8192, isText=False)


def test_peerThatGrantsNoWindowIsNotBufferedWithoutBound(clock):
    factory = WebSocketServerFactory(Echo, clock=clock, writeTimeout=30)
    client = H2Client(makeSite(clock, factory), clock)
    ws = client.connect()
    [server] = Echo.instances
    hose = Firehose(server)
    server.registerProducer(hose, True)
    hose.run()
    client.pump()
    # The client never acknowledges: one stream window (64 KiB) went out.
    assert hose.paused and hose.sent < 20
    sent = len(client.body(ws))
    assert sent <= 65535
    stream = client.server._channel.webSocketStreams[ws]
    assert stream.bufferedAmount <= 8192 + 14
    # The peer still grants the connection's window (it reads other streams).
    client.conn.increment_flow_control_window(sent)
    client.pump()
    assert len(client.body(ws)) == sent
    # The send deadline (the protocol's own, on the clock) resets the stream only.
    clock.advance(31)
    client.pump()
    [reset] = client.on(ws, h2.events.StreamReset)
    assert reset.error_code == CANCEL and server.closed[1] is False
    assert client.status(client.get("/page")) == 200 and client.connectionAlive()


def test_windowGrantedResumesProducer(clock):
    client = H2Client(makeSite(clock), clock)
    client.connect()
    [server] = Echo.instances
    hose = Firehose(server)
    server.registerProducer(hose, True)
    hose.run()
    client.pump()
    before = hose.sent
    client.ackAll()
    assert hose.sent > before


def test_protocolWithoutTheSettingIsRefused(clock):
    site = makeSite(clock)
    connection = WebSocketH2Connection(clock)
    connection.conn.local_settings = h2.settings.Settings(client=False)
    connection.site, connection.factory, connection.requestFactory = site, site, site.requestFactory
    connection.callLater = clock.callLater
    client = H2Client(site, clock, protocol=connection)
    sid = client.connect()
    assert client.status(sid) == 400
    assert b"SETTINGS_ENABLE_CONNECT_PROTOCOL" in client.body(sid)
    assert Echo.instances == [] and client.connectionAlive()


def test_framesAfterOurEndStreamDoNotDropConnection(clock):
    client = H2Client(makeSite(clock), clock)
    ws, other = client.connect(), client.connect()
    first = Echo.instances[0]
    first.close(CloseCode.GOING_AWAY, "bye")
    client.pump()
    client.send(ws, Opcode.CLOSE, b"\x03\xe9")  # the Close reply: we end the stream
    assert client.on(ws, h2.events.StreamEnded)
    assert first.closed == (CloseCode.GOING_AWAY, True)
    # The peer's own DATA and END_STREAM now reach a stream we forgot.
    client.conn.send_data(ws, b"late", end_stream=True)
    client.pump()
    client.send(other, Opcode.TEXT, b"fine")
    assert client.received(other) == [(Opcode.TEXT, b"fine")]
    assert client.status(client.get("/page")) == 200 and client.connectionAlive()


def test_webSocketStreamLimit(clock):
    client = H2Client(makeSite(clock, maxWebSocketStreams=2), clock)
    a, b, c = client.connect(), client.connect(), client.connect()
    assert [client.status(s) for s in (a, b, c)] == [200, 200, 503]
    assert b"limit 2" in client.body(c)
    client.conn.reset_stream(a)
    client.pump()
    assert client.status(client.connect()) == 200


def test_acceptHookRejection(clock):
    def refuse(request):
        assert request.httpVersion == "2"
        raise Reject(403, "members only")

    factory = WebSocketServerFactory(Echo, clock=clock, accept=refuse)
    client = H2Client(makeSite(clock, factory), clock)
    sid = client.connect()
    assert client.status(sid) == 403 and b"members only" in client.body(sid)
    assert client.on(sid, h2.events.StreamEnded) and client.connectionAlive()
    assert client.status(client.get("/page")) == 200


def test_invalidExtendedConnectRefused(clock):
    client = H2Client(makeSite(clock), clock)
    sid = client.conn.get_next_available_stream_id()
    client.conn.send_headers(sid, [
        (":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "https"),
        (":path", "/ws"), (":authority", "example.com"), ("sec-websocket-version", "8"),
    ])
    client.pump()
    assert client.status(sid) == 400 and client.connectionAlive()


def test_permessageDeflateOverH2(clock):
    factory = WebSocketServerFactory(Echo, clock=clock, extensions=[PerMessageDeflate()])
    client = H2Client(makeSite(clock, factory), clock)
    sid = client.connect(extra=[("sec-websocket-extensions", "permessage-deflate")])
    assert client.status(sid) == 200
    assert client.responseHeaders(sid)["sec-websocket-extensions"].startswith("permessage-deflate")
    client.send(sid, Opcode.TEXT, b"squeeze me " * 20)
    [(opcode, payload)] = client.received(sid, allowedRsv=0x40)
    assert opcode == Opcode.TEXT and len(payload) < 100
    assert zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff") == b"squeeze me " * 20


def test_clientCloseEndsStream(clock):
    client = H2Client(makeSite(clock), clock)
    sid = client.connect()
    [server] = Echo.instances
    client.send(sid, Opcode.CLOSE, b"\x03\xe8")
    assert client.received(sid) == [(Opcode.CLOSE, b"\x03\xe8")]
    assert client.on(sid, h2.events.StreamEnded)
    assert server.closed == (CloseCode.NORMAL_CLOSURE, True)
    assert client.server._channel.webSocketStreams == {}


def test_timeoutsPerStreamOnClock(clock):
    pending = Deferred()
    factory = WebSocketServerFactory(
        Echo, clock=clock, accept=lambda r: pending if r.path == "/ws/slow" else None,
        openTimeout=5, pingInterval=10, pingTimeout=3,
    )
    site = makeSite(clock, factory)
    site.timeOut = 60
    client = H2Client(site, clock)
    slow = client.connect("/ws/slow")
    fast = client.connect("/ws")
    clock.advance(5)
    client.pump()
    assert client.status(slow) == 408
    assert client.status(fast) == 200
    clock.advance(5)  # keepalive ping on the WebSocket
    client.pump()
    assert client.received(fast)[0][0] == Opcode.PING
    clock.advance(3)  # no pong: 1011 on that stream only
    client.pump()
    [server] = Echo.instances
    assert client.received(fast)[-1] == (Opcode.CLOSE, b"\x03\xf3keepalive ping timeout")
    assert client.connectionAlive()


def test_openWebSocketKeepsIdleConnection(clock):
    """The Site's idle timeout does not cut an open WebSocket off."""
    factory = WebSocketServerFactory(Echo, clock=clock, pingInterval=None)
    site = makeSite(clock, factory)
    site.timeOut = 60
    client = H2Client(site, clock)
    sid = client.connect("/ws")
    for _ in range(5):
        clock.advance(59)
    client.pump()
    assert client.connectionAlive()
    client.send(sid, Opcode.TEXT, b"awake")
    assert client.received(sid) == [(Opcode.TEXT, b"awake")]


def test_privateTwistedNamesStillExist(clock):
    """
    twisted_ws.http2.server relies on these private Twisted names: if this
    fails, Twisted changed its HTTP/2 internals and the server must follow.
    """
    import importlib

    from twisted.web._http2 import H2Connection

    site = Site(Resource(), reactor=clock)
    generic = site.buildProtocol(None)
    generic.makeConnection(StringTransport())
    instances = {
        "twisted.web.http._GenericHTTPChannelProtocol": generic,
        "twisted.web.http.HTTPChannel": generic._channel,
        "twisted.web._http2.H2Connection": H2Connection(clock),
    }
    missing = []
    for owner, name in PRIVATE_TWISTED_NAMES:
        if owner in instances:
            if not hasattr(instances[owner], name):
                missing.append(f"{owner}.{name}")
        elif not hasattr(importlib.import_module(owner), name):
            missing.append(f"{owner}.{name}")
    assert not missing, (
        "Twisted's private HTTP/2 names that twisted_ws.http2.server relies on are gone: "
        + ", ".join(missing)
    )
    assert type(generic).dataReceived is not None


def test_twistdHttp2NeedsTlsListener():
    from twisted.python import usage

    from twisted_ws.twistd.options import Options

    with pytest.raises(usage.UsageError, match="--http2 needs an ssl: --listen"):
        Options().parseOptions(["--http2", "--listen", "tcp:0"])
    options = Options()
    options.parseOptions(["--http2", "--listen", "tcp:0", "--listen", "ssl:0:privateKey=k.pem"])
    assert options["http2"]
