"""
One port for a private TCP protocol, WebSocket and HTTP (the logic tier):
the sniffing protocol and the example's key-value service on memory
transports (StringTransport, iosim, TLS in memory BIOs) with a Clock.  An
C{ssl:} listener with the C{websockets} client and the example program are
in test_portsharing_interop.py.
"""

from __future__ import annotations

import pytest
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import Certificate, PrivateCertificate, optionsForClientTLS
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport, StringTransportWithDisconnection
from twisted.protocols.basic import LineReceiver
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.test import iosim
from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.static import Data

from twisted_ws import StreamOverWebSocketFactory, WebSocketServerFactory
from twisted_ws.core.frames import OP_TEXT
from twisted_ws.server import ServerHandshakeProtocol
from twisted_ws.server.portsharing import PortSharingFactory, PortSharingProtocol
from wshelpers import (
    Echo,
    MemoryPeer,
    Recorder,
    RecorderFactory,
    clientFrame,
    loadExample,
    makeCertificate,
    parseResponse,
    serverFrames,
    splitResponse,
    upgradeRequest,
)

example = loadExample("shared_port")


# -- memory transports ---------------------------------------------------------


def sharing(**kw):
    clock = Clock()
    ws = kw.pop("ws", None) or WebSocketServerFactory(Echo, clock=clock, pingInterval=None)
    fallback = kw.pop("fallback", None) or RecorderFactory()
    factory = PortSharingFactory(ws, fallback, clock=clock, **kw)
    transport = StringTransportWithDisconnection()
    sniffer = factory.buildProtocol(None)
    transport.protocol = sniffer
    sniffer.makeConnection(transport)
    return sniffer, transport, fallback, clock


def test_privateBytesGoToTheFallbackExactly():
    sniffer, transport, fallback, clock = sharing()
    sniffer.dataReceived(b"GE")
    sniffer.dataReceived(b"T ke")
    assert fallback.built == []
    sniffer.dataReceived(b"y\r\nSET a b\r\n")
    proto = fallback.built[0]
    assert transport.protocol is proto and proto.transport is transport
    assert proto.made and proto.chunks == [b"GET key\r\nSET a b\r\n"]
    assert sniffer.routedTo == "fallback"
    assert clock.getDelayedCalls() == []
    # Later bytes go straight to the new protocol.
    transport.protocol.dataReceived(b"more")
    assert proto.chunks[-1] == b"more"


def test_httpGoesToTheWebSocketHandshake():
    sniffer, transport, fallback, clock = sharing()
    request = upgradeRequest("/x")
    for i in range(len(request)):
        transport.protocol.dataReceived(request[i : i + 1])
    head, _ = splitResponse(transport.value())
    assert head.startswith(b"HTTP/1.1 101 ")
    assert isinstance(transport.protocol, Echo)
    assert sniffer.routedTo == "websocket"
    transport.clear()
    transport.protocol.dataReceived(clientFrame(OP_TEXT, b"hi"))
    assert serverFrames(transport.value()) == [(OP_TEXT, True, b"hi")]
    assert fallback.built == []


def test_silenceGoesToTheFallbackAfterTheTimeout():
    sniffer, transport, fallback, clock = sharing(sniffTimeout=0.5)
    clock.advance(0.4)
    assert fallback.built == []
    clock.advance(0.1)
    proto = fallback.built[0]
    assert proto.made and proto.chunks == [] and transport.protocol is proto


def test_undecidedBytesAtTheTimeoutGoToTheFallback():
    sniffer, transport, fallback, clock = sharing(sniffTimeout=1)
    sniffer.dataReceived(b"GET /x HTT")
    clock.advance(1)
    assert fallback.built[0].chunks == [b"GET /x HTT"]


def test_tlsHandshakeRestartsTheClock():
    sniffer, transport, fallback, clock = sharing(sniffTimeout=1)
    clock.advance(0.9)
    sniffer.handshakeCompleted()
    clock.advance(0.9)
    assert fallback.built == []
    clock.advance(0.1)
    assert len(fallback.built) == 1


def test_longUndecidedLineIsBounded():
    sniffer, transport, fallback, clock = sharing(maxRequestLineLength=100)
    for _ in range(20):
        if fallback.built:
            break
        sniffer.dataReceived(b"GET /" + b"a" * 10)
    assert fallback.built, "the sniffer kept buffering"
    assert len(fallback.built[0].chunks[0]) <= 120


def test_unknownTransportIsForwarded():
    clock = Clock()
    fallback = RecorderFactory()
    factory = PortSharingFactory(
        WebSocketServerFactory(Echo, clock=clock), fallback, clock=clock
    )
    transport = StringTransport()  # no "protocol" attribute to switch
    sniffer = factory.buildProtocol(None)
    sniffer.makeConnection(transport)
    sniffer.dataReceived(b"hello")
    sniffer.dataReceived(b" world")
    proto = fallback.built[0]
    assert proto.chunks == [b"hello", b" world"]
    reason = Failure(ConnectionDone())
    sniffer.connectionLost(reason)
    assert proto.lost is reason


def test_siteGetsOrdinaryRequestsAndWebSocketGetsUpgrades():
    site = RecorderFactory()
    sniffer, transport, fallback, clock = sharing(site=site)
    request = b"GET /page HTTP/1.1\r\nHost: x\r\n\r\n"
    sniffer.dataReceived(request[:20])
    assert site.built == []
    sniffer.dataReceived(request[20:])
    assert sniffer.routedTo == "site"
    assert site.built[0].chunks == [request]

    sniffer, transport, fallback, clock = sharing(site=site)
    sniffer.dataReceived(upgradeRequest())
    assert sniffer.routedTo == "websocket"
    assert transport.value().startswith(b"HTTP/1.1 101 ")


def test_slowHeadGets408AndHugeHeadGoesToTheHandshake():
    site = RecorderFactory()
    sniffer, transport, fallback, clock = sharing(site=site, headTimeout=3)
    sniffer.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n")
    clock.advance(3)
    assert transport.value().startswith(b"HTTP/1.1 408 ")
    assert not transport.connected

    sniffer, transport, fallback, clock = sharing(site=site, maxHeadBytes=1000)
    sniffer.dataReceived(b"GET / HTTP/1.1\r\n" + b"X-Long: " + b"a" * 2000)
    assert sniffer.routedTo == "websocket"
    assert isinstance(transport.protocol, ServerHandshakeProtocol)


def test_siteOnly():
    site = RecorderFactory()
    clock = Clock()
    factory = PortSharingFactory(None, RecorderFactory(), site=site, clock=clock)
    sniffer = factory.buildProtocol(None)
    transport = StringTransportWithDisconnection()
    transport.protocol = sniffer
    sniffer.makeConnection(transport)
    sniffer.dataReceived(b"GET / HTTP/1.1\r\n")
    assert sniffer.routedTo == "site"


def test_refusedByTheTargetFactoryDrops():
    class Refusing(Factory):
        def buildProtocol(self, addr):
            return None

    sniffer, transport, _, _ = sharing(fallback=Refusing())
    sniffer.dataReceived(b"\x00")
    assert not transport.connected


def test_badArguments():
    with pytest.raises(ValueError):
        PortSharingFactory(None, RecorderFactory())
    with pytest.raises(ValueError):
        PortSharingFactory(WebSocketServerFactory(Echo), RecorderFactory(), sniffTimeout=0)


def test_startAndStopReachTheTargets():
    ws = WebSocketServerFactory(Echo)
    fallback = RecorderFactory()
    factory = PortSharingFactory(ws, fallback)
    factory.doStart()
    assert ws.numPorts == 1 and fallback.numPorts == 1
    factory.doStop()
    assert ws.numPorts == 0 and fallback.numPorts == 0


# -- the example's service on memory transports ----------------------------------


class Greeter(LineReceiver):
    """A protocol whose server speaks first."""

    def connectionMade(self):
        self.sendLine(b"HELLO")

    def lineReceived(self, line):
        self.sendLine(b"ECHO " + line)


def keyValue(clock, store=None, **kw):
    """The example's service (key-value lines and the same over WebSocket), on C{clock}."""
    store = store or example.KeyValueFactory()
    webSocket = StreamOverWebSocketFactory(store, delimiter=b"\r\n", clock=clock, pingInterval=None)
    return PortSharingFactory(webSocket, store, clock=clock, **kw), store


def lines(peer, commands):
    """Send lines one by one on a MemoryPeer; the answer line to each."""
    answers = []
    for command in commands:
        peer.send(command + b"\r\n")
        answers.append(peer.received().rstrip(b"\r\n"))
    return answers


def webSocket(peer, path="/"):
    """Upgrade a MemoryPeer; return a function sending one text message and answering the reply."""
    peer.send(upgradeRequest(path))
    head, rest = splitResponse(peer.received())
    assert head.startswith(b"HTTP/1.1 101 "), head
    assert rest == b""

    def ask(text):
        peer.send(clientFrame(OP_TEXT, text.encode()))
        [(opcode, fin, payload)] = serverFrames(peer.received())
        assert (opcode, fin) == (OP_TEXT, True)
        return payload.decode()

    return ask


def test_tcpAndWebSocketClientsInterleaved():
    clock = Clock()
    factory, store = keyValue(clock)
    n = 4
    tcp = [MemoryPeer(factory) for _ in range(n)]
    ws = [webSocket(MemoryPeer(factory)) for _ in range(n)]
    for i in range(n):
        assert lines(tcp[i], [b"SET tcp%d value%d" % (i, i)]) == [b"OK"]
        assert ws[i](f"SET ws{i} v\u00e9{i}") == "OK"
    for i in range(n):
        assert lines(tcp[i], [b"GET tcp%d" % i, b"GET missing", b"BOGUS"]) == [
            b"value%d" % i, b"NOT_FOUND", b"ERROR unknown command"
        ]
        assert [ws[i](c) for c in (f"GET ws{i}", "GET missing")] == [f"v\u00e9{i}", "NOT_FOUND"]
    # What one kind of client set, the other reads.
    assert lines(MemoryPeer(factory), [b"GET ws%d" % i for i in range(n)]) == [
        f"v\u00e9{i}".encode() for i in range(n)
    ]
    ask = webSocket(MemoryPeer(factory))
    assert [ask(f"GET tcp{i}") for i in range(n)] == [f"value{i}" for i in range(n)]
    assert store.store[b"tcp0"] == b"value0"
    assert clock.getDelayedCalls() == [], "every sniff timer was cancelled"


def test_firstPacketByteByByte():
    seen: list[int] = []

    class CountingSniffer(PortSharingProtocol):
        def dataReceived(self, data):
            if self.routedTo is None:
                seen.append(len(data))
            super().dataReceived(data)

    class CountingFactory(PortSharingFactory):
        def buildProtocol(self, addr):
            return CountingSniffer(self, addr, detectTLS=False)

    clock = Clock()
    store = example.KeyValueFactory()
    store.store[b"key"] = b"value"
    factory = CountingFactory(
        StreamOverWebSocketFactory(store, delimiter=b"\r\n", clock=clock, pingInterval=None),
        store,
        clock=clock,
    )

    # "GET key\r" already cannot be HTTP: the "\n" goes to the fallback.
    private = MemoryPeer(factory)
    for byte in b"GET key\r\n":
        private.send(bytes([byte]))
    assert private.received() == b"value\r\n"
    assert seen == [1] * 8

    del seen[:]
    peer = MemoryPeer(factory)
    request = upgradeRequest("/")
    for byte in request:
        peer.send(bytes([byte]))
    head, _ = splitResponse(peer.received())
    assert head.startswith(b"HTTP/1.1 101 "), head
    assert seen == [1] * (request.index(b"\r\n") + 2), "routed once the request line was complete"
    for byte in clientFrame(OP_TEXT, b"GET key"):
        peer.send(bytes([byte]))
    assert serverFrames(peer.received()) == [(OP_TEXT, True, b"value")]


def test_serverSpeaksFirstFallbackAfterTheSniffTimeout():
    clock = Clock()
    ws = WebSocketServerFactory(Echo, clock=clock, pingInterval=None)
    factory = PortSharingFactory(ws, Factory.forProtocol(Greeter), sniffTimeout=0.2, clock=clock)
    silent = MemoryPeer(factory)
    clock.advance(0.19)
    assert silent.received() == b""
    clock.advance(0.01)
    assert silent.received() == b"HELLO\r\n"
    assert lines(silent, [b"hi"]) == [b"ECHO hi"]
    # WebSocket clients on the same port are not held up.
    assert webSocket(MemoryPeer(factory))("ping") == "ping"


def test_clientThatSpeaksFirstIsNotDelayed():
    # With a sniff timeout far beyond any client's patience, only routing
    # on the bytes can answer in time: no clock time passes here.
    clock = Clock()
    ws = WebSocketServerFactory(Echo, clock=clock, pingInterval=None)
    factory = PortSharingFactory(ws, Factory.forProtocol(Greeter), sniffTimeout=300, clock=clock)
    peer = MemoryPeer(factory)
    peer.send(b"hi\r\n")
    assert peer.received() == b"HELLO\r\nECHO hi\r\n"


def test_ordinaryHTTPGoesToTheSite():
    clock = Clock()
    root = Resource()
    root.putChild(b"page", Data(b"hello from the site", "text/plain"))
    factory, _ = keyValue(clock, site=Site(root, reactor=clock))
    peer = MemoryPeer(factory)
    peer.send(b"GET /page HTTP/1.1\r\nHost: x\r\n\r\n")
    status, _, body = parseResponse(peer.received())
    assert (status, body) == (200, b"hello from the site")
    ask = webSocket(MemoryPeer(factory))
    assert [ask("SET k v"), ask("GET k")] == ["OK", "v"]
    assert lines(MemoryPeer(factory), [b"GET k"]) == [b"v"]


def test_hugeGarbageFirstLineGoesToTheFallback():
    size, read = 1 << 20, 65536

    class Counter(Protocol):
        def connectionMade(self):
            self.factory.sizes = self.sizes = []

        def dataReceived(self, data):
            self.sizes.append(len(data))

    clock = Clock()
    fallback = Factory.forProtocol(Counter)
    ws = WebSocketServerFactory(Echo, clock=clock, pingInterval=None)
    factory = PortSharingFactory(ws, fallback, maxRequestLineLength=8192, clock=clock)
    peer = MemoryPeer(factory)
    data = b"GET /" + b"a" * (size - 5)
    for start in range(0, size, read):  # as the reactor reads: 64 KiB at a time
        peer.send(data[start : start + read])
    assert sum(fallback.sizes) == size
    # The sniffer gave up after the line limit plus at most one read.
    assert fallback.sizes[0] <= 8192 + 2 + read


# -- TLS in memory: iosim between Twisted's TLS layers -----------------------------

class Collector(Recorder):
    """A client that keeps what it receives until it is taken."""

    def take(self) -> bytes:
        data = self.received
        self.chunks.clear()
        return data


class TLSPeer:
    """
    A client over iosim, through client-side TLS (trusting C{cert}) when
    given; Twisted's TLS layers gather small writes until C{clock} ticks.
    """

    def __init__(self, serverFactory, clock, cert=None):
        self.clock = clock
        self.client = Collector()
        clientProtocol = self.client
        if cert is not None:
            creator = optionsForClientTLS("localhost", trustRoot=Certificate.loadPEM(cert.read_bytes()))
            clientProtocol = TLSMemoryBIOFactory(
                creator, True, Factory.forProtocol(lambda: self.client), clock=clock
            ).buildProtocol(None)
        server = serverFactory.buildProtocol(None)
        self.pump = iosim.connect(
            server, iosim.makeFakeServer(server), clientProtocol, iosim.makeFakeClient(clientProtocol), greet=False
        )

    def flush(self) -> None:
        """Move bytes both ways until nothing moves after a clock tick."""
        for _ in range(50):
            self.clock.advance(0)
            if not self.pump.pump():
                return
        raise AssertionError("the connection never settled")

    def send(self, data: bytes) -> bytes:
        self.client.transport.write(data)
        self.flush()
        return self.client.take()

    def lines(self, commands):
        return [self.send(c + b"\r\n").rstrip(b"\r\n") for c in commands]

    def webSocket(self):
        head, rest = splitResponse(self.send(upgradeRequest("/")))
        assert head.startswith(b"HTTP/1.1 101 "), head

        def ask(text):
            [(_, _, payload)] = serverFrames(self.send(clientFrame(OP_TEXT, text.encode())))
            return payload.decode()

        return ask


@pytest.fixture
def certificate(tmp_path):
    cert, key = makeCertificate(tmp_path)
    return cert, PrivateCertificate.loadPEM(cert.read_bytes() + key.read_bytes()).options()


def test_serverSpeaksFirstUnderTLSCountsFromTheHandshake(certificate):
    """On a TLS port the sniff timeout starts when the TLS handshake ends."""
    cert, options = certificate
    clock = Clock()
    ws = WebSocketServerFactory(Echo, clock=clock, pingInterval=None)
    sharing = PortSharingFactory(ws, Factory.forProtocol(Greeter), sniffTimeout=0.2, clock=clock)
    peer = TLSPeer(TLSMemoryBIOFactory(options, False, sharing, clock=clock), clock, cert)
    clock.advance(0.15)  # the TLS handshake takes its time
    peer.flush()
    assert peer.client.take() == b""
    clock.advance(0.15)
    peer.flush()
    assert peer.client.take() == b"", "the timeout restarted at the handshake's end"
    clock.advance(0.05)
    peer.flush()
    assert peer.client.take() == b"HELLO\r\n"
    assert peer.lines([b"x"]) == [b"ECHO x"]


def test_clientHelloDetection(certificate):
    """With tlsOptions a plain port also takes TLS clients, for both protocols."""
    cert, options = certificate
    clock = Clock()
    factory, _ = keyValue(clock, tlsOptions=options)
    plain = TLSPeer(factory, clock).lines([b"SET a plain"])
    secure = TLSPeer(factory, clock, cert).lines([b"SET b secure", b"GET a"])
    ws = TLSPeer(factory, clock).webSocket()("GET b")
    wss = TLSPeer(factory, clock, cert).webSocket()("GET a")
    again = TLSPeer(factory, clock).lines([b"GET b"])
    assert (plain, secure, ws, wss, again) == ([b"OK"], [b"OK", b"plain"], "secure", "plain", [b"secure"])
