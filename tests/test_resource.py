"""
WebSocketResource in a twisted.web Site.

The logic tier drives one Site over memory transports with a Clock: a
static file, a JSON resource, an ordinary resource that starts a session
and WebSocket endpoints (at the top, nested, behind a virtual host, with a
fallback page); every timeout is driven by clock.advance.  The interop tier
(marked) keeps what needs a real socket: the C{websockets} package with
permessage-deflate, an C{ssl:} listener, HTTP/2 over TLS (ALPN, the h2
package) and the example program as a subprocess.
"""

from __future__ import annotations

import io
import json
import socket
import ssl
import tempfile
import time
from pathlib import Path

import pytest
from twisted.internet import reactor, tcp
from twisted.internet.defer import Deferred, inlineCallbacks, succeed
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.task import deferLater
from twisted.internet.testing import MemoryReactorClock
from twisted.internet.threads import deferToThread
from twisted.test import iosim
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.static import Data
from twisted.web.vhost import NameVirtualHost
from websockets.sync.client import connect
from zope.interface import implementer

from twisted_ws import Reject, WebSocketProtocol, WebSocketServerFactory
from twisted_ws.core.deflate import PerMessageDeflate
from twisted_ws.server.resource import WebSocketResource
from wshelpers import (
    Echo,
    MemoryPeer,
    clientFrame,
    makeCertificate,
    parseResponse,
    serverFrames,
    splitResponse,
    upgradeRequest,
)

OP_TEXT, OP_BINARY, OP_CLOSE = 0x1, 0x2, 0x8
DEADLINE = 10.0
PAGE = b"<!DOCTYPE html><title>t</title><p>the page that opens the socket</p>\n"


class EchoFactory(WebSocketServerFactory):
    protocol = Echo

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.instances: list[Echo] = []

    @property
    def open(self) -> int:
        return sum(1 for p in self.instances if not p.closed.called)


class Status(Resource):
    isLeaf = True

    def __init__(self, factory):
        super().__init__()
        self.factory = factory

    def render_GET(self, request):
        request.setHeader(b"Content-Type", b"application/json")
        return json.dumps({"connections": self.factory.open}).encode()


class Login(Resource):
    """An ordinary resource that starts a session and tells its uid."""

    isLeaf = True

    def render_GET(self, request):
        session = request.getSession()
        return session.uid


def buildRoot(factory: WebSocketServerFactory) -> Resource:
    """/ (the page), /api/status, /login, /ws, /deep/er/ws, /both (with a fallback page), /vh/ws."""
    # Data, not static.File: File streams through the global reactor's
    # cooperator, which a memory Site never runs.
    root = Resource()
    root.putChild(b"", Data(PAGE, "text/html"))
    api = Resource()
    api.putChild(b"status", Status(factory))
    root.putChild(b"api", api)
    root.putChild(b"login", Login())
    root.putChild(b"ws", WebSocketResource(factory))
    deep = Resource()
    deeper = Resource()
    deep.putChild(b"er", deeper)
    deeper.putChild(b"ws", WebSocketResource(factory))
    root.putChild(b"deep", deep)
    root.putChild(b"both", WebSocketResource(factory, fallback=Data(PAGE, "text/html")))
    host = Resource()
    host.putChild(b"ws", WebSocketResource(factory))
    vhost = NameVirtualHost()
    vhost.addHost(b"example.com", host)
    root.putChild(b"vh", vhost)
    return root


# -- the logic tier: a Site on memory transports --------------------------------


class Web:
    """
    The Site, its clock and its access log, and the accept hook: it records
    what it saw; ?deny=N refuses later, ?slow=1 accepts later (one clock
    tick), ?newsession=1 starts a session.
    """

    def __init__(self) -> None:
        self.clock = MemoryReactorClock()
        self.hookCalls: list[dict] = []
        self.newSession = None
        self.factory = EchoFactory(
            accept=self.accept,
            pingInterval=None,
            extensions=[PerMessageDeflate()],
            clock=self.clock,
        )
        self.site = Site(buildRoot(self.factory), timeout=0.5, reactor=self.clock)
        self.site.doStart()
        self.log = io.StringIO()
        self.site.logFile = self.log

    def close(self) -> None:
        for session in list(self.site.sessions.values()):
            session.expire()
        self.site.doStop()

    def accept(self, request):
        web = request.webRequest
        session = web.getSession() if web.getCookie(b"TWISTED_SESSION") else None
        self.hookCalls.append(
            {
                "path": request.path,
                "prepath": list(web.prepath),
                "args": dict(web.args),
                "session": session.uid if session else None,
            }
        )
        if b"deny" in web.args:
            status = int(web.args[b"deny"][0])
            d = Deferred()
            self.clock.callLater(0, d.errback, Reject(status, "denied", body=f"denied with {status}\n"))
            return d
        if b"newsession" in web.args:
            self.newSession = web.getSession().uid
        if b"slow" in web.args:
            d = Deferred()
            self.clock.callLater(0, d.callback, None)
            return d
        return None

    def connect(self) -> MemoryPeer:
        return MemoryPeer(self.site)

    def request(self, target: str, method: str = "GET", headers: str = "", body: bytes = b""):
        """One request on a new connection: (status, headers, body, peer)."""
        peer = self.connect()
        length = f"Content-Length: {len(body)}\r\n" if body else ""
        peer.send(
            f"{method} {target} HTTP/1.1\r\nHost: example.com\r\n{headers}{length}\r\n".encode()
            + body
        )
        status, responseHeaders, responseBody = parseResponse(peer.received(), method)
        return status, responseHeaders, responseBody, peer

    def upgrade(self, path: str = "/ws", early: bytes = b"", extra: str = "") -> tuple[MemoryPeer, bytes, bytes]:
        """An accepted upgrade: (peer, the 101's head, what followed it)."""
        peer = self.connect()
        peer.send(upgradeRequest(path, extra) + early)
        self.clock.advance(0)
        head, rest = splitResponse(peer.received())
        assert head.startswith(b"HTTP/1.1 101 "), head
        return peer, head, rest


@pytest.fixture
def web():
    web = Web()
    yield web
    web.close()


def closeFromClient(web: Web, peer: MemoryPeer, server: Echo) -> None:
    peer.send(clientFrame(OP_CLOSE, b"\x03\xe8"))
    assert serverFrames(peer.received()) == [(OP_CLOSE, True, b"\x03\xe8")]
    assert not peer.connected, "the server closes TCP first"
    assert server.closed.result == (1000, "", True)


def test_httpAndWebSocketsOnOnePort(web):
    peer, _, _ = web.upgrade("/ws")
    [server] = web.factory.instances
    assert server.ownsTransport

    status, headers, body, _ = web.request("/")
    assert (status, body) == (200, PAGE)
    status, headers, body, _ = web.request("/api/status")
    assert json.loads(body) == {"connections": 1}

    peer.send(clientFrame(OP_TEXT, "from ours ✓".encode()) + clientFrame(OP_BINARY, b"\x00\xff"))
    assert serverFrames(peer.received()) == [
        (OP_TEXT, True, "from ours ✓".encode()),
        (OP_BINARY, True, b"\x00\xff"),
    ]
    closeFromClient(web, peer, server)
    _, _, body, _ = web.request("/api/status")
    assert json.loads(body) == {"connections": 0}


@implementer(IStreamClientEndpoint)
class SiteEndpoint:
    """Connects a client factory to the Site over iosim's memory transports."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.pumps: list[iosim.IOPump] = []

    def connect(self, factory):
        client = factory.buildProtocol(None)
        server = self.site.buildProtocol(None)
        self.pumps.append(
            iosim.connect(server, iosim.makeFakeServer(server), client, iosim.makeFakeClient(client), greet=False)
        )
        return succeed(client)


def test_ourClient(web):
    """twisted_ws's own client: an echo, and a refusal's status and body."""
    from twisted_ws.client import WebSocketHandshakeRejected, connectWS

    class Client(WebSocketProtocol):
        def connectionMade(self):
            self.received = []

        def messageReceived(self, message):
            self.received.append(message)

    endpoint = SiteEndpoint(web.site)

    def run(d):
        for _ in range(5):
            for pump in endpoint.pumps:
                pump.flush()
            web.clock.advance(0)
        results = []
        d.addBoth(results.append)
        assert results, "the handshake did not finish"
        return results[0]

    client = run(connectWS("ws://example.com/deep/er/ws", Client, reactor=web.clock, endpoint=endpoint))
    assert isinstance(client, Client), client
    client.sendMessage("ours ✓")
    endpoint.pumps[0].flush()
    assert client.received == ["ours ✓"]
    info = run(client.close())
    assert info.wasClean
    assert web.factory.instances[0].closed.called

    refused = run(connectWS("ws://example.com/ws?deny=403", Client, reactor=web.clock, endpoint=endpoint))
    refused.trap(WebSocketHandshakeRejected)
    assert (refused.value.status, refused.value.body) == (403, b"denied with 403\n")


def test_nestedPathAndVirtualHost(web):
    for path in ("/deep/er/ws", "/vh/ws"):
        peer, _, _ = web.upgrade(path)
        peer.send(clientFrame(OP_BINARY, b"nested"))
        assert serverFrames(peer.received()) == [(OP_BINARY, True, b"nested")]
    assert [c["path"] for c in web.hookCalls] == ["/deep/er/ws", "/vh/ws"]
    assert web.hookCalls[0]["prepath"] == [b"deep", b"er", b"ws"]


# -- the accept hook sees twisted.web ----------------------------------------------


def test_sessionFromOrdinaryResourceSeenByHook(web):
    status, headers, uid, _ = web.request("/login")
    cookie = headers["set-cookie"][0].split(";")[0]
    assert cookie.startswith("TWISTED_SESSION=")
    web.upgrade("/ws?room=blue", extra=f"Cookie: {cookie}\r\n")
    [call] = web.hookCalls
    assert call["session"] == uid
    assert call["args"] == {b"room": [b"blue"]}


def test_cookiesSetByTheHookGoOutWithThe101(web):
    _, head, _ = web.upgrade("/ws?newsession=1")
    cookies = [line for line in head.split(b"\r\n") if line.lower().startswith(b"set-cookie:")]
    assert len(cookies) == 1, head
    assert cookies[0].split(b":", 1)[1].strip().startswith(b"TWISTED_SESSION=" + web.newSession)


def test_rejectFromDeferredWithChosenStatusAndBody(web):
    peer = web.connect()
    peer.send(upgradeRequest("/ws?deny=451"))
    assert peer.received() == b"", "the hook answers later"
    web.clock.advance(0)
    status, headers, body = parseResponse(peer.received())
    assert (status, body, headers["connection"]) == (451, b"denied with 451\n", ["close"])
    assert not peer.connected
    assert web.factory.instances == []
    assert '"GET /ws?deny=451 HTTP/1.1" 451' in web.log.getvalue()


def test_accessLogRecords101(web):
    web.upgrade("/ws?log=1")
    assert '"GET /ws?log=1 HTTP/1.1" 101 ' in web.log.getvalue()


# -- leaving the HTTP channel ------------------------------------------------------


def test_idleLongerThanSiteTimeoutStaysOpen(web):
    # Control: the Site's 0.5 s timeout does close an idle HTTP connection.
    _, _, _, http = web.request("/api/status")
    assert http.connected
    web.clock.advance(0.5)
    assert not http.connected

    peer, _, _ = web.upgrade("/ws")
    web.clock.advance(1.5)  # three Site timeouts, idle
    assert peer.connected
    peer.send(clientFrame(OP_TEXT, b"still here"))
    assert serverFrames(peer.received()) == [(OP_TEXT, True, b"still here")]
    assert web.factory.open == 1


@pytest.mark.parametrize(
    "path, size, separately",
    [
        ("/ws", 10, False),  # the hook answers at once: bytes in the channel's line buffer
        ("/ws?slow=1", 10, False),
        ("/ws?slow=1", 10, True),  # bytes that come while the hook decides: the channel's queue
        ("/ws?slow=1", 40000, True),  # enough for the channel to pause reading
    ],
)
def test_bytesAfterTheHeadReachTheFrameProtocol(web, path, size, separately):
    payload = b"e" * size
    early = clientFrame(OP_BINARY, payload) + clientFrame(OP_TEXT, b"second")
    peer = web.connect()
    if separately:
        peer.send(upgradeRequest(path))
        peer.send(early)
    else:
        peer.send(upgradeRequest(path) + early)
    web.clock.advance(0)
    head, rest = splitResponse(peer.received())
    assert head.startswith(b"HTTP/1.1 101 ")
    assert serverFrames(rest) == [(OP_BINARY, True, payload), (OP_TEXT, True, b"second")]
    assert peer.transport.producerState == "producing"


def test_theWebSocketIsTheTransportsProducerAndClosesUnderBackpressure(web):
    """
    Once upgraded, the WebSocket, not the HTTP channel, is the transport's
    producer: a channel left registered, paused, would hold loseConnection
    up forever.  A Close read while the transport's buffer is full is
    answered after what waited, the producer is unregistered and TCP
    closes, cleanly (not by the close timeout's abort).
    """
    peer, _, _ = web.upgrade("/ws")
    [server] = web.factory.instances
    transport = peer.transport
    assert transport.producer is server and transport.streaming
    server.pauseProducing()  # as the reactor does when the buffer is full
    peer.send(clientFrame(OP_TEXT, b"x" * 100000) + clientFrame(OP_CLOSE, b"\x03\xe8"))
    assert serverFrames(peer.received())[-1] == (OP_CLOSE, True, b"\x03\xe8")
    assert transport.producer is None
    assert not peer.connected
    assert server.closed.result == (1000, "", True)


# -- answers without an upgrade ------------------------------------------------------


def test_plainGetIs426(web):
    status, headers, body, _ = web.request("/ws")
    assert status == 426
    text = body.decode()
    assert "WebSocket endpoint" in text
    assert 'new WebSocket("ws://example.com/ws")' in text
    assert headers["upgrade"] == ["websocket"]
    assert headers["sec-websocket-version"] == ["13"]


def test_fallbackServesPlainGetAndWebSocketStillWorks(web):
    status, _, body, _ = web.request("/both")
    assert (status, body) == (200, PAGE)
    peer, _, _ = web.upgrade("/both")
    peer.send(clientFrame(OP_TEXT, b"via fallback url"))
    assert serverFrames(peer.received()) == [(OP_TEXT, True, b"via fallback url")]


@pytest.mark.parametrize("method", ["POST", "PUT", "HEAD"])
def test_otherMethodsAre405(web, method):
    status, headers, _, _ = web.request("/ws", method, body=b"x")
    assert status == 405
    assert headers["allow"] == ["GET"]


VALID = upgradeRequest("/ws").decode()


@pytest.mark.parametrize(
    "expected, request_",
    [
        ("HTTP/1.0", VALID.replace("HTTP/1.1", "HTTP/1.0")),
        ("Sec-WebSocket-Key", VALID.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "")),
        ("16 bytes", VALID.replace("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ=")),
        ("Connection header", VALID.replace("Connection: Upgrade", "Connection: keep-alive")),
        ("body", VALID.replace("\r\n\r\n", "\r\nContent-Length: 2\r\n\r\nhi")),
    ],
)
def test_http10AndMalformedUpgradesAre400(web, expected, request_):
    peer = web.connect()
    peer.send(request_.encode())
    response = peer.received()
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith((b"HTTP/1.1 400 ", b"HTTP/1.0 400 ")), head
    assert b"\r\nConnection: close" in head
    assert expected in body.decode()
    assert not peer.connected
    assert web.hookCalls == []


# -- the interop tier: real sockets, peers nobody here wrote -------------------------


@inlineCallbacks
def waitForServerConnections(testCase, portNumber):
    """
    Every test closes its clients; wait (bounded) until the server side
    has noticed, so no connection outlives the test.
    """
    end = time.monotonic() + DEADLINE
    while True:
        live = [
            s for s in set(reactor.getReaders()) | set(reactor.getWriters())
            if isinstance(s, tcp.Server) and s.getHost().port == portNumber
        ]
        if not live or time.monotonic() > end:
            break
        yield deferLater(reactor, 0.01)
    testCase.assertEqual(live, [], "server connections left open")


@pytest.mark.interop
class LoopbackSiteTests(TestCase):
    """The same Site on a real listener, for C{websockets} and TLS."""

    timeout = 60

    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp())
        self.factory = EchoFactory(pingInterval=None, extensions=[PerMessageDeflate()])
        self.site = Site(buildRoot(self.factory))

    @inlineCallbacks
    def listen(self, description):
        self.port = yield serverFromString(reactor, description).listen(self.site)
        self.addCleanup(waitForServerConnections, self, self.port.getHost().port)
        self.addCleanup(self.port.stopListening)

    def url(self, path="/ws", scheme="ws"):
        return f"{scheme}://127.0.0.1:{self.port.getHost().port}{path}"

    @inlineCallbacks
    def test_extensionsNegotiatedAsOnAPlainListener(self):
        """websockets offers permessage-deflate; the factory's extension answers."""
        yield self.listen("tcp:0:interface=127.0.0.1")

        def client(url):
            with connect(url) as ws:
                ws.send("squeeze me " * 100)
                return ws.response.headers.get("Sec-WebSocket-Extensions"), ws.recv(timeout=DEADLINE)

        extensions, echoed = yield deferToThread(client, self.url())
        self.assertIn("permessage-deflate", extensions)
        self.assertEqual(echoed, "squeeze me " * 100)
        yield self.factory.instances[0].closed
        self.assertEqual(len(self.factory.instances[0].extensions), 1)

    @inlineCallbacks
    def test_tls(self):
        """The Site behind an ssl: endpoint (the frame protocol takes over the TLS layer)."""
        cert, key = makeCertificate(self.tmp)
        yield self.listen(f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}")
        context = ssl.create_default_context(cafile=str(cert))

        def client(url):
            with connect(url, ssl=context) as ws:
                ws.send("over TLS")
                return ws.recv(timeout=DEADLINE)

        self.assertEqual((yield deferToThread(client, self.url(scheme="wss"))), "over TLS")
        [server] = self.factory.instances
        yield server.closed
        self.assertTrue(server.ownsTransport)
        self.assertTrue(server.request.secure)


try:
    import h2.config
    import h2.connection
    import h2.events
except ImportError:  # pragma: no cover
    h2 = None


@pytest.mark.interop
class HTTP2Refusal(TestCase):
    timeout = 60

    def setUp(self):
        if h2 is None:
            self.skipTest("the h2 package is not installed")

    @inlineCallbacks
    def test_webSocketOverHTTP2IsRefused(self):
        tmp = Path(tempfile.mkdtemp())
        cert, key = makeCertificate(tmp)
        factory = EchoFactory(pingInterval=None)
        root = Resource()
        root.putChild(b"ws", WebSocketResource(factory))
        root.putChild(b"page", Data(PAGE, "text/html"))
        port = yield serverFromString(
            reactor, f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}"
        ).listen(Site(root))
        self.addCleanup(waitForServerConnections, self, port.getHost().port)
        self.addCleanup(port.stopListening)

        def client(portNumber):
            context = ssl.create_default_context(cafile=str(cert))
            context.set_alpn_protocols(["h2"])
            with socket.create_connection(("127.0.0.1", portNumber), timeout=DEADLINE) as raw:
                with context.wrap_socket(raw, server_hostname="localhost") as sock:
                    assert sock.selected_alpn_protocol() == "h2"
                    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
                    conn.initiate_connection()
                    common = [(":method", "GET"), (":scheme", "https"), (":authority", "localhost")]
                    conn.send_headers(1, common + [(":path", "/page")], end_stream=True)
                    conn.send_headers(
                        3,
                        common
                        + [
                            (":path", "/ws"),
                            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
                            ("sec-websocket-version", "13"),
                        ],
                        end_stream=True,
                    )
                    sock.sendall(conn.data_to_send())
                    results: dict[int, dict] = {1: {"body": b""}, 3: {"body": b""}}
                    ended: set[int] = set()
                    end = time.monotonic() + DEADLINE
                    while len(ended) < 2 and time.monotonic() < end:
                        data = sock.recv(65536)
                        if not data:
                            break
                        for event in conn.receive_data(data):
                            if isinstance(event, h2.events.ResponseReceived):
                                results[event.stream_id]["status"] = dict(event.headers)[b":status"]
                            elif isinstance(event, h2.events.DataReceived):
                                results[event.stream_id]["body"] += event.data
                                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                            elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)):
                                ended.add(event.stream_id)
                        sock.sendall(conn.data_to_send())
                    conn.close_connection()
                    sock.sendall(conn.data_to_send())
                    return results

        results = yield deferToThread(client, port.getHost().port)
        self.assertEqual(results[1], {"status": b"200", "body": PAGE})
        self.assertEqual(results[3]["status"], b"505")
        self.assertIn(b"HTTP/1.1", results[3]["body"])
        self.assertEqual(factory.instances, [])


@pytest.mark.interop
def test_exampleWebSite():
    """examples/web_site.py: one port, the page, the JSON status, 426 and the echo."""
    import select
    import subprocess
    import sys
    import urllib.error
    import urllib.request

    example = Path(__file__).resolve().parent.parent / "examples" / "web_site.py"
    process = subprocess.Popen(
        [sys.executable, str(example), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        ready, _, _ = select.select([process.stdout], [], [], DEADLINE)
        assert ready, "the example did not start"
        line = process.stdout.readline()
        base = line.split("listening on ")[1].split()[0]
        wsURL = line.split()[-1]
        assert wsURL == base.replace("http://", "ws://") + "ws", line
        with urllib.request.urlopen(base, timeout=DEADLINE) as page:
            assert b"new WebSocket" in page.read()
        try:
            urllib.request.urlopen(base + "ws", timeout=DEADLINE)
        except urllib.error.HTTPError as e:
            assert e.code == 426
        else:
            raise AssertionError("a plain GET to /ws should answer 426")
        with connect(wsURL) as ws:
            ws.send("example")
            assert ws.recv(timeout=DEADLINE) == "example"
            with urllib.request.urlopen(base + "api/status", timeout=DEADLINE) as status:
                assert json.loads(status.read())["connections"] == 1
    finally:
        process.terminate()
        process.wait(timeout=DEADLINE)
        process.stdout.close()
