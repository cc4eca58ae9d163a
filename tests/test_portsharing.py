"""
One port for a private TCP protocol, WebSocket and HTTP: the sniffing
protocol on memory transports, then end to end on loopback with raw
sockets, the C{websockets} client, treq, TLS and the example program.
"""

from __future__ import annotations

import importlib.util
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport, StringTransportWithDisconnection
from twisted.internet.threads import deferToThread
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase
from websockets.sync.client import connect

from twisted_ws import WebSocketProtocol, WebSocketServerFactory
from twisted_ws.core.frames import OP_TEXT
from twisted_ws.server.portsharing import PortSharingFactory, PortSharingProtocol
from twisted_ws.server import ServerHandshakeProtocol
from wshelpers import clientFrame, makeCertificate, serverFrames, splitResponse, upgradeRequest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "shared_port.py"


def loadExample():
    spec = importlib.util.spec_from_file_location("shared_port_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


example = loadExample()


# -- memory transports ---------------------------------------------------------


class Recorder(Protocol):
    """A fallback protocol that records what it gets."""

    def __init__(self):
        self.chunks: list[bytes] = []
        self.made = False
        self.lost = None

    def connectionMade(self):
        self.made = True

    def dataReceived(self, data):
        self.chunks.append(data)

    def connectionLost(self, reason):
        self.lost = reason


class RecorderFactory(Factory):
    protocol = Recorder

    def __init__(self):
        self.built: list[Recorder] = []

    def buildProtocol(self, addr):
        p = super().buildProtocol(addr)
        self.built.append(p)
        return p


class Echo(WebSocketProtocol):
    def messageReceived(self, message):
        self.sendMessage(message)


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


# -- loopback ------------------------------------------------------------------


class Greeter(LineReceiver):
    """A protocol whose server speaks first."""

    def connectionMade(self):
        self.sendLine(b"HELLO")

    def lineReceived(self, line):
        self.sendLine(b"ECHO " + line)


def lineClient(port, commands, context=None, barrier=None, readFirst=0):
    """Send lines, read one answer line each (plus C{readFirst} greeting lines)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        if context is not None:
            sock = context.wrap_socket(sock, server_hostname="localhost")
        if barrier is not None:
            barrier.wait()
        reader = sock.makefile("rb")
        answers = [reader.readline().rstrip(b"\r\n") for _ in range(readFirst)]
        for command in commands:
            sock.sendall(command + b"\r\n")
            answers.append(reader.readline().rstrip(b"\r\n"))
        return answers
    finally:
        sock.close()


def wsTLSContext(cafile):
    """
    A client context for the C{websockets} sync client, limited to TLS 1.2.

    That client reads and writes one TLS socket from two threads at once;
    with TLS 1.3 (post-handshake session tickets) this loses its upgrade
    request about once in a few hundred connections, whatever the server
    (reproduced against a plain C{ssl:} WebSocketServerFactory too).
    The raw TLS clients here are single-threaded and keep TLS 1.3.
    """
    context = ssl.create_default_context(cafile=str(cafile))
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    return context


def wsClient(url, commands, context=None, barrier=None):
    kw = {"ssl": context, "server_hostname": "localhost"} if context else {}
    with connect(url, open_timeout=10, **kw) as ws:
        if barrier is not None:
            barrier.wait()
        answers = []
        for command in commands:
            ws.send(command)
            answers.append(ws.recv(timeout=10))
        return answers


class LoopbackMixin:
    timeout = 60

    @inlineCallbacks
    def listen(self, factory, description="tcp:0:interface=127.0.0.1"):
        port = yield serverFromString(reactor, description).listen(factory)
        self.addCleanup(port.stopListening)
        return port.getHost().port

    def certificate(self):
        directory = Path(self.mktemp())
        directory.mkdir()
        return makeCertificate(directory)


class SharedPortTests(LoopbackMixin, TestCase):
    @inlineCallbacks
    def test_tcpAndWebSocketClientsAtTheSameTime(self):
        store = example.KeyValueFactory()
        port = yield self.listen(example.makeSharedFactory(store))
        url = f"ws://127.0.0.1:{port}/"
        n = 4
        barrier = threading.Barrier(2 * n, timeout=10)
        clients = []
        for i in range(n):
            clients.append(
                deferToThread(
                    lineClient,
                    port,
                    [b"SET tcp%d value%d" % (i, i), b"GET tcp%d" % i, b"GET missing", b"BOGUS"],
                    barrier=barrier,
                )
            )
            clients.append(
                deferToThread(
                    wsClient, url, [f"SET ws{i} v\u00e9{i}", f"GET ws{i}", "GET missing"], barrier=barrier
                )
            )
        results = yield gatherResults(clients)
        for i in range(n):
            assert results[2 * i] == [b"OK", b"value%d" % i, b"NOT_FOUND", b"ERROR unknown command"]
            assert results[2 * i + 1] == ["OK", f"v\u00e9{i}", "NOT_FOUND"]
        # What one kind of client set, the other reads.
        tcpView = yield deferToThread(lineClient, port, [b"GET ws%d" % i for i in range(n)])
        wsView = yield deferToThread(wsClient, url, [f"GET tcp{i}" for i in range(n)])
        self.assertEqual(tcpView, [f"v\u00e9{i}".encode() for i in range(n)])
        self.assertEqual(wsView, [f"value{i}" for i in range(n)])
        self.assertEqual(store.store[b"tcp0"], b"value0")

    @inlineCallbacks
    def test_firstPacketByteByByte(self):
        chunks: list[int] = []
        arrived = threading.Condition()

        class CountingSniffer(PortSharingProtocol):
            def dataReceived(self, data):
                if self.routedTo is None:
                    with arrived:
                        chunks.append(len(data))
                        arrived.notify_all()
                super().dataReceived(data)

        class CountingFactory(PortSharingFactory):
            def buildProtocol(self, addr):
                return CountingSniffer(self, addr, detectTLS=False)

        store = example.KeyValueFactory()
        store.store[b"key"] = b"value"
        webSocket = example.StreamOverWebSocketFactory(store, delimiter=b"\r\n")
        port = yield self.listen(CountingFactory(webSocket, store))

        def trickle(data, sniffed):
            """Send one byte per segment; wait until the sniffer saw each."""
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            del chunks[:]
            try:
                for i in range(len(data)):
                    sock.sendall(data[i : i + 1])
                    if i < sniffed:
                        with arrived:
                            assert arrived.wait_for(lambda: len(chunks) > i, timeout=10)
            except BaseException:
                sock.close()
                raise
            return sock, list(chunks)

        def private():
            # "GET key\r" already cannot be HTTP: the "\n" goes to the fallback.
            sock, seen = trickle(b"GET key\r\n", 8)
            with sock:
                return sock.makefile("rb").readline(), seen

        def webSocketUpgrade():
            request = upgradeRequest("/")
            firstLine = request.index(b"\r\n") + 2
            sock, seen = trickle(request, firstLine)
            with sock:
                reader = sock.makefile("rb")
                head = b""
                while not head.endswith(b"\r\n\r\n") and len(head) < 4096:
                    head += reader.readline()
                frame = clientFrame(OP_TEXT, b"GET key")
                for i in range(len(frame)):
                    sock.sendall(frame[i : i + 1])
                answer = reader.read(2 + len(b"value"))
                return head, answer, seen, firstLine

        line, seen = yield deferToThread(private)
        self.assertEqual(line, b"value\r\n")
        self.assertEqual(seen, [1] * 8)
        head, answer, seen, firstLine = yield deferToThread(webSocketUpgrade)
        self.assertTrue(head.startswith(b"HTTP/1.1 101 "), head)
        self.assertEqual(serverFrames(answer), [(OP_TEXT, True, b"value")])
        self.assertEqual(seen, [1] * firstLine)

    @inlineCallbacks
    def test_serverSpeaksFirstFallback(self):
        delay = 0.2
        ws = WebSocketServerFactory(Echo, pingInterval=None)
        port = yield self.listen(PortSharingFactory(ws, Factory.forProtocol(Greeter), sniffTimeout=delay))

        def silent():
            started = time.monotonic()
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            with sock:
                reader = sock.makefile("rb")
                greeting = reader.readline()
                elapsed = time.monotonic() - started
                sock.sendall(b"hi\r\n")
                return greeting, elapsed, reader.readline()

        greeting, elapsed, echo = yield deferToThread(silent)
        self.assertEqual((greeting, echo), (b"HELLO\r\n", b"ECHO hi\r\n"))
        self.assertGreaterEqual(elapsed, delay * 0.9)
        # WebSocket clients on the same port are not held up.
        answers = yield deferToThread(wsClient, f"ws://127.0.0.1:{port}/", ["ping"])
        self.assertEqual(answers, ["ping"])

    @inlineCallbacks
    def test_clientThatSpeaksFirstIsNotDelayed(self):
        # With a sniff timeout far beyond the client's own timeout, only
        # routing on the bytes can answer in time.
        ws = WebSocketServerFactory(Echo, pingInterval=None)
        port = yield self.listen(PortSharingFactory(ws, Factory.forProtocol(Greeter), sniffTimeout=300))
        def speakFirst():
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(b"hi\r\n")
                reader = sock.makefile("rb")
                return [reader.readline(), reader.readline()]

        answers = yield deferToThread(speakFirst)
        self.assertEqual(answers, [b"HELLO\r\n", b"ECHO hi\r\n"])

    @inlineCallbacks
    def test_tlsOnTheSharedPort(self):
        cert, key = self.certificate()
        context = ssl.create_default_context(cafile=str(cert))
        port = yield self.listen(
            example.makeSharedFactory(),
            f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}",
        )
        tcp = yield deferToThread(lineClient, port, [b"SET secret 42", b"GET secret"], context)
        self.assertEqual(tcp, [b"OK", b"42"])
        wss = yield deferToThread(
            wsClient, f"wss://127.0.0.1:{port}/", ["GET secret", "SET other 7"], wsTLSContext(cert)
        )
        self.assertEqual(wss, ["42", "OK"])
        tcp = yield deferToThread(lineClient, port, [b"GET other"], context)
        self.assertEqual(tcp, [b"7"])

    @inlineCallbacks
    def test_serverSpeaksFirstUnderTLS(self):
        cert, key = self.certificate()
        context = ssl.create_default_context(cafile=str(cert))
        ws = WebSocketServerFactory(Echo, pingInterval=None)
        port = yield self.listen(
            PortSharingFactory(ws, Factory.forProtocol(Greeter), sniffTimeout=0.2),
            f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}",
        )
        answers = yield deferToThread(lineClient, port, [b"x"], context, readFirst=1)
        self.assertEqual(answers, [b"HELLO", b"ECHO x"])

    @inlineCallbacks
    def test_clientHelloDetection(self):
        from twisted.internet.ssl import PrivateCertificate

        cert, key = self.certificate()
        options = PrivateCertificate.loadPEM(cert.read_bytes() + key.read_bytes()).options()
        context = ssl.create_default_context(cafile=str(cert))
        port = yield self.listen(example.makeSharedFactory(tlsOptions=options))
        url = f"127.0.0.1:{port}/"
        plain = yield deferToThread(lineClient, port, [b"SET a plain"])
        secure = yield deferToThread(lineClient, port, [b"SET b secure", b"GET a"], context)
        ws = yield deferToThread(wsClient, "ws://" + url, ["GET b"])
        wss = yield deferToThread(wsClient, "wss://" + url, ["GET a"], wsTLSContext(cert))
        again = yield deferToThread(lineClient, port, [b"GET b"])
        self.assertEqual((plain, secure, ws, wss, again), ([b"OK"], [b"OK", b"plain"], ["secure"], ["plain"], [b"secure"]))

    @inlineCallbacks
    def test_ordinaryHTTPGoesToTheSite(self):
        import treq
        from twisted.web.client import HTTPConnectionPool
        from twisted.web.resource import Resource
        from twisted.web.server import Site
        from twisted.web.static import Data

        root = Resource()
        root.putChild(b"page", Data(b"hello from the site", "text/plain"))
        store = example.KeyValueFactory()
        webSocket = example.StreamOverWebSocketFactory(store, delimiter=b"\r\n")
        port = yield self.listen(PortSharingFactory(webSocket, store, site=Site(root)))
        pool = HTTPConnectionPool(reactor, persistent=False)
        response = yield treq.get(f"http://127.0.0.1:{port}/page", pool=pool)
        body = yield treq.content(response)
        self.assertEqual((response.code, body), (200, b"hello from the site"))
        ws = yield deferToThread(wsClient, f"ws://127.0.0.1:{port}/", ["SET k v", "GET k"])
        tcp = yield deferToThread(lineClient, port, [b"GET k"])
        self.assertEqual((ws, tcp), (["OK", "v"], [b"v"]))

    @inlineCallbacks
    def test_hugeGarbageFirstLineGoesToTheFallback(self):
        size = 1 << 20
        done: Deferred[list[int]] = Deferred()

        class Counter(Protocol):
            def connectionMade(self):
                self.sizes = []

            def dataReceived(self, data):
                self.sizes.append(len(data))
                if sum(self.sizes) >= size and not done.called:
                    done.callback(self.sizes)

        ws = WebSocketServerFactory(Echo, pingInterval=None)
        port = yield self.listen(
            PortSharingFactory(ws, Factory.forProtocol(Counter), maxRequestLineLength=8192)
        )

        def send():
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(b"GET /" + b"a" * (size - 5))

        yield deferToThread(send)
        sizes = yield done
        self.assertEqual(sum(sizes), size)
        # The sniffer gave up after the line limit plus at most one read.
        self.assertLessEqual(sizes[0], 8192 + 2 + 65536)

    @inlineCallbacks
    def test_exampleProgram(self):
        def run():
            process = subprocess.Popen(
                [sys.executable, str(EXAMPLE), "--port", "0"],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            try:
                line = process.stdout.readline().decode()
                assert line.startswith("listening on 127.0.0.1:"), line
                port = int(line.rsplit(":", 1)[1])
                tcp = lineClient(port, [b"SET lang python", b"GET nothing"])
                ws = wsClient(f"ws://127.0.0.1:{port}/", ["GET lang", "SET x y"])
                tcp += lineClient(port, [b"GET x"])
                return tcp, ws
            finally:
                process.terminate()
                process.wait(10)
                process.stdout.close()

        tcp, ws = yield deferToThread(run)
        self.assertEqual(tcp, [b"OK", b"NOT_FOUND", b"y"])
        self.assertEqual(ws, ["python", "OK"])
