"""
WebSocketResource in a real twisted.web Site on loopback: one port serves a
static file, a JSON resource, an ordinary resource that starts a session and
WebSocket endpoints (at the top, nested, behind a virtual host, with a
fallback page).  Clients: treq for HTTP, the C{websockets} package (an
independent implementation) and a raw-socket client built from wshelpers.
"""

from __future__ import annotations

import json
import socket
import ssl
import tempfile
import time
from pathlib import Path

from treq.client import HTTPClient
from twisted.internet import reactor, tcp
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import serverFromString
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.static import Data, File
from twisted.web.vhost import NameVirtualHost
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from twisted_ws import Reject, WebSocketProtocol, WebSocketServerFactory
from twisted_ws.core.deflate import PerMessageDeflate
from twisted_ws.core.frames import END, WHOLE, FrameParser
from twisted_ws.server.resource import WebSocketResource
from wshelpers import clientFrame, makeCertificate, upgradeRequest

OP_TEXT, OP_BINARY, OP_CLOSE = 0x1, 0x2, 0x8
DEADLINE = 10.0
FLOOD = 8 << 20


class Echo(WebSocketProtocol):
    """Echoes; C{"flood"} answers with FLOOD bytes instead."""

    instances: list[Echo] = []

    def connectionMade(self):
        Echo.instances.append(self)
        self.factory.open += 1
        self.closed = Deferred()
        self.wasPaused = False
        own = vars(self.transport)
        self.ownsTransport = own.get("wrappedProtocol", own.get("protocol")) is self

    def messageReceived(self, message):
        if message == "flood":
            self.sendMessage(b"f" * FLOOD)
        else:
            self.sendMessage(message)

    def pauseProducing(self):
        self.wasPaused = True
        super().pauseProducing()

    def connectionClosed(self, code, reason, wasClean):
        self.factory.open -= 1
        self.closed.callback((code, reason, wasClean))


class EchoFactory(WebSocketServerFactory):
    protocol = Echo
    open = 0


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


PAGE = b"<!DOCTYPE html><title>t</title><p>the page that opens the socket</p>\n"


def recvUntil(sock: socket.socket, predicate, deadline: float = DEADLINE) -> bytes:
    """Read until C{predicate(data)} or EOF; bounded by C{deadline} seconds."""
    data = b""
    end = time.monotonic() + deadline
    while not predicate(data):
        remaining = end - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"gave up after {deadline} s with {len(data)} bytes")
        sock.settimeout(remaining)
        chunk = sock.recv(1 << 16)
        if not chunk:
            break
        data += chunk
    return data


class RawClient:
    """Our minimal client: a blocking socket, driven from a thread."""

    def __init__(self, port: int, rcvbuf: int | None = None):
        self.sock = socket.socket()
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(DEADLINE)
        self.sock.connect(("127.0.0.1", port))
        self.parser = FrameParser(requireMask=False)
        self.buffered = b""
        self.message: list[bytes] = []
        self.messageType = 0
        self.control = b""

    def request(self, data: bytes) -> tuple[bytes, bytes]:
        """Send C{data}; return the response head and what followed it."""
        self.sock.sendall(data)
        data = recvUntil(self.sock, lambda d: b"\r\n\r\n" in d)
        head, _, rest = data.partition(b"\r\n\r\n")
        return head, rest

    def upgrade(self, path: str = "/ws", early: bytes = b"", extra: str = "") -> bytes:
        head, rest = self.request(upgradeRequest(path, extra) + early)
        assert head.startswith(b"HTTP/1.1 101 "), head
        self.buffered = rest
        return head

    def frames(self, count: int) -> list[tuple[int, bytes]]:
        """Read C{count} messages or control frames: (opcode, whole payload)."""
        out: list[tuple[int, bytes]] = []
        data, self.buffered = self.buffered, b""
        end = time.monotonic() + DEADLINE
        while len(out) < count:
            for opcode, fin, _rsv, payload, part in self.parser.feed(data):
                if opcode >= 0x8:
                    self.control += payload
                    if part in (WHOLE, END):
                        out.append((opcode, self.control))
                        self.control = b""
                    continue
                if opcode != 0:
                    self.messageType = opcode
                self.message.append(payload)
                if fin and part in (WHOLE, END):
                    out.append((self.messageType, b"".join(self.message)))
                    self.message = []
            assert self.parser.error is None, self.parser.error
            if len(out) >= count:
                break
            remaining = end - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("frames did not arrive")
            self.sock.settimeout(remaining)
            data = self.sock.recv(1 << 20)
            if not data:
                raise EOFError(f"connection closed after {len(out)} frames")
        return out

    def readToEOF(self) -> bytes:
        return recvUntil(self.sock, lambda d: False)

    def close(self):
        self.sock.close()


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


class SiteTests(TestCase):
    timeout = 60

    @inlineCallbacks
    def setUp(self):
        Echo.instances = []
        self.hookCalls = []
        self.tmp = Path(tempfile.mkdtemp())
        (self.tmp / "index.html").write_bytes(PAGE)
        self.logPath = self.tmp / "access.log"
        self.factory = EchoFactory(
            accept=self.accept, pingInterval=None, extensions=[PerMessageDeflate()]
        )
        self.site = self.makeSite()
        yield self.listen("tcp:0:interface=127.0.0.1")

    def makeSite(self):
        factory = self.factory
        root = File(str(self.tmp))
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
        site = Site(root, logPath=str(self.logPath), timeout=0.5)
        self.addCleanup(self.expireSessions, site)
        return site

    def expireSessions(self, site):
        for session in list(site.sessions.values()):
            session.expire()

    def accept(self, request):
        """The accept hook: records what it saw; ?deny=N rejects, ?slow=1 defers."""
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
            reactor.callLater(0, d.errback, Reject(status, "denied", body=f"denied with {status}\n"))
            return d
        if b"newsession" in web.args:
            self.newSession = web.getSession().uid
        if b"slow" in web.args:
            d = Deferred()
            reactor.callLater(0, d.callback, None)
            return d
        return None

    @inlineCallbacks
    def listen(self, description):
        self.port = yield serverFromString(reactor, description).listen(self.site)
        self.addCleanup(waitForServerConnections, self, self.port.getHost().port)
        self.addCleanup(self.port.stopListening)
        pool = HTTPConnectionPool(reactor, persistent=False)
        self.addCleanup(pool.closeCachedConnections)
        self.http = HTTPClient(Agent(reactor, pool=pool))

    def url(self, path="/ws", scheme="http"):
        return f"{scheme}://127.0.0.1:{self.port.getHost().port}{path}"

    def raw(self, **kw):
        return RawClient(self.port.getHost().port, **kw)

    # -- sharing the port ------------------------------------------------------

    @inlineCallbacks
    def test_httpAndWebSocketsOnOnePort(self):
        """
        treq fetches the static page and the JSON resource while our client
        and websockets' exchange messages on the same port.
        """
        ours = yield deferToThread(self.raw)
        self.addCleanup(ours.close)
        yield deferToThread(ours.upgrade, "/ws")

        page = yield self.http.get(self.url("/"))
        self.assertEqual(page.code, 200)
        self.assertEqual((yield page.content()), PAGE)
        status = yield self.http.get(self.url("/api/status"))
        self.assertEqual(json.loads((yield status.content())), {"connections": 1})

        def independent(url):
            with connect(url) as ws:
                ws.send("from websockets")
                first = ws.recv(timeout=DEADLINE)
                ws.send(b"\x00\xff")
                return first, ws.recv(timeout=DEADLINE)

        echoed = yield deferToThread(independent, self.url(scheme="ws"))
        self.assertEqual(echoed, ("from websockets", b"\x00\xff"))

        def exchange():
            ours.sock.sendall(clientFrame(OP_TEXT, "from ours ✓".encode()))
            echoed = ours.frames(1)
            ours.sock.sendall(clientFrame(OP_CLOSE, b"\x03\xe8"))
            return echoed, ours.frames(1), ours.readToEOF()

        echoed, close, rest = yield deferToThread(exchange)
        self.assertEqual(echoed, [(OP_TEXT, "from ours ✓".encode())])
        self.assertEqual(close, [(OP_CLOSE, b"\x03\xe8")])
        self.assertEqual(rest, b"")
        results = yield Echo.instances[0].closed
        self.assertEqual(results, (1000, "", True))
        self.assertTrue(Echo.instances[0].ownsTransport)
        status = yield self.http.get(self.url("/api/status"))
        self.assertEqual(json.loads((yield status.content())), {"connections": 0})

    @inlineCallbacks
    def test_ourClient(self):
        """twisted_ws's own client: an echo, and a refusal's status and body."""
        try:
            from twisted_ws.client import WebSocketHandshakeRejected, connectWS
        except ImportError:  # pragma: no cover
            raise self.skipTest("twisted_ws.client is not available")

        class Client(WebSocketProtocol):
            def connectionMade(self):
                self.received = Deferred()

            def messageReceived(self, message):
                self.received.callback(message)

        client = yield connectWS(self.url("/deep/er/ws", "ws"), Client, reactor=reactor)
        client.sendMessage("ours ✓")
        self.assertEqual((yield client.received), "ours ✓")
        info = yield client.close()
        self.assertTrue(info.wasClean)
        yield Echo.instances[0].closed

        refused = yield self.assertFailure(
            connectWS(self.url("/ws?deny=403", "ws"), Client, reactor=reactor),
            WebSocketHandshakeRejected,
        )
        self.assertEqual((refused.status, refused.body), (403, b"denied with 403\n"))

    @inlineCallbacks
    def test_extensionsNegotiatedAsOnAPlainListener(self):
        """websockets offers permessage-deflate; the factory's extension answers."""

        def client(url):
            with connect(url) as ws:
                ws.send("squeeze me " * 100)
                return ws.response.headers.get("Sec-WebSocket-Extensions"), ws.recv(timeout=DEADLINE)

        extensions, echoed = yield deferToThread(client, self.url(scheme="ws"))
        self.assertIn("permessage-deflate", extensions)
        self.assertEqual(echoed, "squeeze me " * 100)
        yield Echo.instances[0].closed
        self.assertEqual(len(Echo.instances[0].extensions), 1)

    @inlineCallbacks
    def test_nestedPathAndVirtualHost(self):
        for path in ("/deep/er/ws", "/vh/ws"):
            client = yield deferToThread(self.raw)
            self.addCleanup(client.close)
            yield deferToThread(client.upgrade, path)

            def exchange(client=client):
                client.sock.sendall(clientFrame(OP_BINARY, b"nested"))
                return client.frames(1)

            self.assertEqual((yield deferToThread(exchange)), [(OP_BINARY, b"nested")])
            client.close()
        self.assertEqual([c["path"] for c in self.hookCalls], ["/deep/er/ws", "/vh/ws"])
        self.assertEqual(self.hookCalls[0]["prepath"], [b"deep", b"er", b"ws"])
        for protocol in Echo.instances:
            yield protocol.closed

    @inlineCallbacks
    def test_tls(self):
        """The same Site behind an ssl: endpoint (the frame protocol takes over the TLS layer)."""
        cert, key = makeCertificate(self.tmp)
        yield self.listen(f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}")
        context = ssl.create_default_context(cafile=str(cert))

        def client(url):
            with connect(url, ssl=context) as ws:
                ws.send("over TLS")
                return ws.recv(timeout=DEADLINE)

        self.assertEqual((yield deferToThread(client, self.url(scheme="wss"))), "over TLS")
        yield Echo.instances[0].closed
        self.assertTrue(Echo.instances[0].ownsTransport)
        self.assertTrue(Echo.instances[0].request.secure)

    # -- the accept hook sees twisted.web ------------------------------------------

    @inlineCallbacks
    def test_sessionFromOrdinaryResourceSeenByHook(self):
        response = yield self.http.get(self.url("/login"))
        uid = yield response.content()
        cookies = {c.name: c.value for c in response.cookies()}
        self.assertIn("TWISTED_SESSION", cookies)

        def client(url, cookie):
            with connect(url, additional_headers={"Cookie": f"TWISTED_SESSION={cookie}"}) as ws:
                ws.send("hi")
                return ws.recv(timeout=DEADLINE)

        yield deferToThread(client, self.url("/ws?room=blue", "ws"), cookies["TWISTED_SESSION"])
        [call] = self.hookCalls
        self.assertEqual(call["session"], uid)
        self.assertEqual(call["args"], {b"room": [b"blue"]})
        yield Echo.instances[0].closed

    @inlineCallbacks
    def test_cookiesSetByTheHookGoOutWithThe101(self):
        def client(url):
            with connect(url) as ws:
                return ws.response.headers.get_all("Set-Cookie")

        cookies = yield deferToThread(client, self.url("/ws?newsession=1", "ws"))
        self.assertEqual(len(cookies), 1, cookies)
        self.assertTrue(cookies[0].startswith("TWISTED_SESSION=" + self.newSession.decode()), cookies)
        yield Echo.instances[0].closed

    @inlineCallbacks
    def test_rejectFromDeferredWithChosenStatusAndBody(self):
        def client(url):
            try:
                with connect(url):
                    return None
            except InvalidStatus as e:
                return e.response.status_code, e.response.body, e.response.headers.get("Connection")

        status, body, connection = yield deferToThread(client, self.url("/ws?deny=451", "ws"))
        self.assertEqual((status, body, connection), (451, b"denied with 451\n", "close"))
        self.assertEqual(Echo.instances, [])
        self.assertIn('"GET /ws?deny=451 HTTP/1.1" 451', self.logPath.read_text())

    @inlineCallbacks
    def test_accessLogRecords101(self):
        def client(url):
            with connect(url) as ws:
                ws.send("x")
                ws.recv(timeout=DEADLINE)

        yield deferToThread(client, self.url("/ws?log=1", "ws"))
        yield Echo.instances[0].closed
        lines = self.logPath.read_text().splitlines()
        self.assertTrue(
            any('"GET /ws?log=1 HTTP/1.1" 101 ' in line for line in lines), lines
        )

    # -- leaving the HTTP channel ------------------------------------------------

    @inlineCallbacks
    def test_idleLongerThanSiteTimeoutStaysOpen(self):
        # Control: the Site's 0.5 s timeout does close an idle HTTP connection.
        http = yield deferToThread(self.raw)
        self.addCleanup(http.close)
        started = time.monotonic()

        def keepAliveThenWait():
            http.request(b"GET /api/status HTTP/1.1\r\nHost: x\r\n\r\n")
            return http.readToEOF()

        yield deferToThread(keepAliveThenWait)
        self.assertLess(time.monotonic() - started, DEADLINE)

        ws = yield deferToThread(self.raw)
        self.addCleanup(ws.close)
        yield deferToThread(ws.upgrade, "/ws")
        yield deferLater(reactor, 1.5)  # three Site timeouts, idle

        def exchange():
            ws.sock.sendall(clientFrame(OP_TEXT, b"still here"))
            return ws.frames(1)

        self.assertEqual((yield deferToThread(exchange)), [(OP_TEXT, b"still here")])
        self.assertEqual(self.factory.open, 1)
        ws.close()
        yield Echo.instances[0].closed

    @inlineCallbacks
    def test_bytesAfterTheHeadReachTheFrameProtocol(self):
        """Frames sent with the request (same packet) are not lost, whether
        the hook answers at once or later (40 KiB: the channel pauses reading)."""
        for path, size in (("/ws", 10), ("/ws?slow=1", 10), ("/ws?slow=1", 40000)):
            client = yield deferToThread(self.raw)
            self.addCleanup(client.close)
            payload = b"e" * size
            early = clientFrame(OP_BINARY, payload) + clientFrame(OP_TEXT, b"second")
            yield deferToThread(client.upgrade, path, early)
            frames = yield deferToThread(client.frames, 2)
            self.assertEqual(frames, [(OP_BINARY, payload), (OP_TEXT, b"second")], path)
            client.close()
        for protocol in Echo.instances:
            yield protocol.closed

    @inlineCallbacks
    def test_closeWhileTransportBufferIsFullClosesTCP(self):
        """
        The client asks for 8 MiB and sends Close in the same packet, without
        reading: the Close is handled while the transport's buffer is full
        (the HTTP channel must not be left registered as the transport's
        producer, or the connection would never close).  Once the client
        reads, it gets the server's Close and then EOF, and the server's
        side ends cleanly (not by its close timeout's abort).
        """
        client = yield deferToThread(self.raw, rcvbuf=16384)
        self.addCleanup(client.close)
        yield deferToThread(client.upgrade, "/ws")
        client.sock.sendall(clientFrame(OP_TEXT, b"flood") + clientFrame(OP_CLOSE, b"\x03\xe8"))
        server = yield self.waitForInstance()
        yield deferLater(reactor, 0.2)  # let the server fill its buffer while nobody reads
        self.assertTrue(server.wasPaused, "the transport's buffer filled up")

        def drain():
            data = client.buffered + client.readToEOF()
            parser = FrameParser(requireMask=False)
            frames = [(op, payload) for op, _fin, _rsv, payload, _part in parser.feed(data)]
            return frames, parser.error

        frames, error = yield deferToThread(drain)
        self.assertIsNone(error)
        self.assertEqual(frames[-1], (OP_CLOSE, b"\x03\xe8"))
        code, _, wasClean = yield server.closed
        self.assertEqual((code, wasClean), (1000, True))

    @inlineCallbacks
    def waitForInstance(self):
        end = time.monotonic() + DEADLINE
        while not Echo.instances and time.monotonic() < end:
            yield deferLater(reactor, 0.01)
        return Echo.instances[0]

    # -- answers without an upgrade ----------------------------------------------

    @inlineCallbacks
    def test_plainGetIs426(self):
        response = yield self.http.get(self.url("/ws"))
        body = yield response.text()
        self.assertEqual(response.code, 426)
        self.assertIn("WebSocket endpoint", body)
        self.assertIn(f'new WebSocket("ws://127.0.0.1:{self.port.getHost().port}/ws")', body)
        # treq's Agent hides the hop-by-hop headers; look at the wire.
        client = yield deferToThread(self.raw)
        self.addCleanup(client.close)
        head, _ = yield deferToThread(client.request, b"GET /ws HTTP/1.1\r\nHost: h\r\n\r\n")
        self.assertIn(b"\r\nUpgrade: websocket\r\n", head)
        self.assertIn(b"\r\nSec-Websocket-Version: 13", head)
        client.close()

    @inlineCallbacks
    def test_fallbackServesPlainGetAndWebSocketStillWorks(self):
        response = yield self.http.get(self.url("/both"))
        self.assertEqual(response.code, 200)
        self.assertEqual((yield response.content()), PAGE)

        def client(url):
            with connect(url) as ws:
                ws.send("via fallback url")
                return ws.recv(timeout=DEADLINE)

        self.assertEqual(
            (yield deferToThread(client, self.url("/both", "ws"))), "via fallback url"
        )
        yield Echo.instances[0].closed

    @inlineCallbacks
    def test_otherMethodsAre405(self):
        for method in ("POST", "PUT", "HEAD"):
            response = yield self.http.request(method, self.url("/ws"), data=b"x")
            yield response.content()
            self.assertEqual(response.code, 405, method)
            self.assertEqual(response.headers.getRawHeaders(b"Allow"), [b"GET"])

    @inlineCallbacks
    def test_http10AndMalformedUpgradesAre400(self):
        valid = upgradeRequest("/ws").decode()
        cases = {
            "HTTP/1.0": valid.replace("HTTP/1.1", "HTTP/1.0"),
            "Sec-WebSocket-Key": valid.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", ""),
            "16 bytes": valid.replace("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ="),
            "Connection header": valid.replace("Connection: Upgrade", "Connection: keep-alive"),
            "body": valid.replace("\r\n\r\n", "\r\nContent-Length: 2\r\n\r\nhi"),
        }
        for expected, request in cases.items():
            client = yield deferToThread(self.raw)
            self.addCleanup(client.close)

            def exchange(client=client, request=request):
                client.sock.sendall(request.encode())
                return client.readToEOF()

            response = yield deferToThread(exchange)
            head, _, body = response.partition(b"\r\n\r\n")
            self.assertRegex(head, rb"^HTTP/1\.[01] 400 ", expected)
            self.assertIn(b"\r\nConnection: close", head)
            self.assertIn(expected, body.decode(), expected)
            client.close()
        self.assertEqual(self.hookCalls, [])


try:
    import h2.config
    import h2.connection
    import h2.events
except ImportError:  # pragma: no cover
    h2 = None


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
        self.assertEqual(factory.open, 0)


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
