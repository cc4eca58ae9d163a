"""
WebSocketResource in a twisted.web Site (the logic tier): one Site over
memory transports with a Clock: a static file, a JSON resource, an ordinary
resource that starts a session and WebSocket endpoints (at the top,
nested, behind a virtual host, with a fallback page); every timeout is
driven by clock.advance.  Real sockets are in test_resource_interop.py,
the example program in test_examples_interop.py.
"""

from __future__ import annotations

import io
import json

import pytest
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.testing import MemoryReactorClock
from twisted.test import iosim
from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.static import Data
from twisted.web.vhost import NameVirtualHost
from zope.interface import implementer

from twisted_ws import Reject, WebSocketServerFactory
from twisted_ws.core.deflate import PerMessageDeflate
from twisted_ws.server.resource import WebSocketResource
from wshelpers import (
    Client,
    Echo,
    EchoFactory,
    MemoryPeer,
    clientFrame,
    parseResponse,
    serverFrames,
    splitResponse,
    upgradeRequest,
)

OP_TEXT, OP_BINARY, OP_CLOSE = 0x1, 0x2, 0x8
PAGE = b"<!DOCTYPE html><title>t</title><p>the page that opens the socket</p>\n"


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
    assert client.messages.pending == ["ours ✓"]
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
