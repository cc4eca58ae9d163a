"""
The WebSocket client (the logic tier): connectWS, the endpoint, the proxy
tunnel and the reconnecting client run on a C{MemoryReactorClock}: their
endpoints connect into memory, where our server, a hand-written broken
server or an HTTP proxy written here answers over iosim or a string
transport, and every timeout is driven by C{clock.advance}.  Real sockets
are in test_client_interop.py.
"""

from __future__ import annotations

import base64
import hashlib
import os

import pytest
from twisted.internet import error
from twisted.internet.address import IPv4Address, UNIXAddress
from twisted.internet.endpoints import UNIXClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransportWithDisconnection
from twisted.python.failure import Failure
from twisted.test.iosim import ConnectionCompleter, FakeTransport, connect

from twisted_ws import (
    ClientHandshakeError,
    HandshakeClosed,
    HandshakeError,
    InvalidServerResponse,
    Reject,
    WebSocketServerFactory,
)
from twisted_ws.client import (
    MAX_REJECTION_BODY,
    WebSocketClientEndpoint,
    WebSocketHandshakeRejected,
    WebSocketOpenTimeout,
    WebSocketProxyError,
    connectWS,
    parseURL,
)
from twisted_ws.client.reconnecting import ReconnectingWebSocketClient
from twisted_ws.core.frames import FrameParser
from wshelpers import Client, Echo, failure, memoryProxy, pending, result

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
URL = "ws://127.0.0.1/echo"


def accept(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def switching(key: str, extra: str = "", acceptKey: str | None = None) -> bytes:
    return (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {acceptKey or accept(key)}\r\n{extra}\r\n"
    ).encode()


# -- memory networks -----------------------------------------------------------------


class Net:
    """
    A C{MemoryReactorClock} for the client to connect with: C{complete()}
    joins its next connection to the listener on the same port over iosim.
    """

    def __init__(self):
        self.reactor = self.clock = MemoryReactorClock()
        self.instances = []

    def serve(self, port=80, protocol=Echo, **kwargs):
        kwargs.setdefault("pingInterval", None)
        factory = WebSocketServerFactory(protocol, clock=self.reactor, **kwargs)
        factory.instances = self.instances
        self.reactor.listenTCP(port, factory)
        return factory

    def complete(self):
        pump = ConnectionCompleter(self.reactor).succeedOnce()
        assert pump is not None, "no connection attempt to a listener"
        return pump

    def connectWS(self, url=URL, protocol=Client, **kwargs):
        kwargs.setdefault("pingInterval", None)
        return connectWS(url, protocol, reactor=self.reactor, **kwargs)


class RawServer:
    """
    The server end of the client's next connection, on a string transport:
    the test reads the request and writes whatever answer it wants.
    """

    def __init__(self, reactor):
        host, port, factory, _timeout, _bind = reactor.tcpClients.pop(0)
        reactor.connectors.pop(0)
        self.transport = StringTransportWithDisconnection(
            IPv4Address("TCP", "127.0.0.1", 50000), IPv4Address("TCP", host, port)
        )
        protocol = factory.buildProtocol(self.transport.getPeer())
        self.transport.protocol = protocol
        protocol.makeConnection(self.transport)

    def received(self):
        data = self.transport.value()
        self.transport.clear()
        return data

    @property
    def key(self):
        for line in self.transport.value().split(b"\r\n"):
            if line.lower().startswith(b"sec-websocket-key:"):
                return line.split(b":", 1)[1].strip().decode()
        raise AssertionError("no request yet")

    def send(self, data):
        self.transport.protocol.dataReceived(data)

    def close(self):
        self.transport.loseConnection()


@pytest.fixture
def net():
    return Net()


def rawServer(net, **kwargs):
    """connectWS to a L{RawServer}: (Deferred, server)."""
    d = net.connectWS(**kwargs)
    return d, RawServer(net.reactor)


# -- against our server, in memory -------------------------------------------------


def opened(net, url=URL, protocol=Client, **kwargs):
    d = net.connectWS(url, protocol, **kwargs)
    pump = net.complete()
    return result(d), pump


def test_textBinaryFragmentedPing(net):
    net.serve()
    p, pump = opened(net)
    assert p.isClient
    p.sendMessage("héllo wörld")
    p.sendMessage(bytes(range(256)))
    writer = p.beginMessage(isText=True)
    writer.write("frag")
    writer.write("men")
    writer.finish("ted ✓")
    rtt = p.ping(b"are you there")
    pump.flush()
    assert [result(p.messages.get()) for _ in range(3)] == ["héllo wörld", bytes(range(256)), "fragmented ✓"]
    assert result(rtt) >= 0.0
    closing = p.close()
    pump.flush()
    info = result(closing)
    assert (info.code, info.wasClean) == (1000, True)


def test_largeMessage(net):
    net.serve(maxMessageSize=2 * 2**20)
    p, pump = opened(net, maxMessageSize=2 * 2**20)
    payload = os.urandom(2**20)
    p.sendMessage(payload)
    pump.flush()
    assert result(p.messages.get()) == payload


def test_clientCloses(net):
    net.serve()
    p, pump = opened(net)
    closing = p.close(4000, "client bye")
    pump.flush()
    info = result(closing)
    assert info.wasClean and not info.initiatedByPeer
    assert result(p.closed)[2] is True
    assert result(net.instances[-1].closed) == (4000, "client bye", True)


def test_serverCloses(net):
    net.serve()
    p, pump = opened(net)
    p.sendMessage("close-please")
    pump.flush()
    assert result(p.closed) == (4001, "as you wish", True)
    assert p.closeInfo.initiatedByPeer


def test_requestDetails(net):
    net.serve(subprotocols=["beta", "gamma"])
    p, _ = opened(
        net, "ws://127.0.0.1/echo?x=1&y=%20", origin="https://app.example",
        headers={"Authorization": "Bearer t0ken", "Cookie": "a=b"}, subprotocols=["alpha", "gamma"],
    )
    server = net.instances[-1]
    assert server.request.target == "/echo?x=1&y=%20"
    assert server.request.origin == "https://app.example"
    assert server.request.header("authorization") == "Bearer t0ken"
    assert server.request.header("cookie") == "a=b"
    assert server.request.host == "127.0.0.1"
    assert (p.subprotocol, server.subprotocol) == ("gamma", "gamma")
    # The client's request is the one the core built (not parsed back), and
    # the server read the same one.
    assert p.request.key == server.request.key
    assert p.request.target == "/echo?x=1&y=%20"
    assert p.request.protocols == ["alpha", "gamma"]
    assert p.response.status == 101


def test_keepalive(net):
    pongs = []

    class Pinging(Client):
        def pongReceived(self, payload):
            pongs.append(payload)

    net.serve()
    p, pump = opened(net, protocol=Pinging, pingInterval=5, pingTimeout=5)
    pump.flush()
    assert pongs == []
    for _ in range(2):
        net.clock.advance(5)
        pump.flush()
    assert [len(pong) for pong in pongs] == [4, 4]
    assert pongs[0] != pongs[1]
    assert p.connected


def test_rejected403(net):
    def hook(request):
        raise Reject(403, "nope", headers=[("X-Why", "testing")], body=b"go away, " + request.host.encode())

    net.serve(accept=hook)
    d = net.connectWS()
    net.complete()
    e = failure(d, WebSocketHandshakeRejected)
    assert isinstance(e, HandshakeError)
    assert (e.status, e.header("x-why"), e.body) == (403, "testing", b"go away, 127.0.0.1")
    assert "403" in str(e)


def test_otherEndpoint(net):
    """endpoint= carries the connection (here a UNIX one); the URL still
    gives Host and path."""
    net.serve()
    endpoint = UNIXClientEndpoint(net.reactor, "/nowhere/ws.sock")
    d = net.connectWS("ws://localhost/over-unix", endpoint=endpoint)
    address, factory = net.reactor.unixClients.pop(0)[:2]
    assert address == "/nowhere/ws.sock"
    client = factory.buildProtocol(UNIXAddress(address))
    server = net.reactor.tcpServers[0][1].buildProtocol(None)
    pump = connect(server, FakeTransport(server, True), client, FakeTransport(client, False), clock=net.clock)
    p = result(d)
    p.sendMessage("via another endpoint")
    pump.flush()
    assert result(p.messages.get()) == "via another endpoint"
    assert net.instances[-1].request.path == "/over-unix"
    assert net.instances[-1].request.host == "localhost"


def test_endpointWithFactory(net):
    """The endpoint works with any factory whose protocols are WebSocketProtocols."""
    net.serve()
    endpoint = WebSocketClientEndpoint(net.reactor, URL, pingInterval=None)
    d = endpoint.connect(Factory.forProtocol(Client))
    pump = net.complete()
    p = result(d)
    assert isinstance(p, Client) and p.isClient
    p.sendMessage("endpoint")
    pump.flush()
    assert result(p.messages.get()) == "endpoint"


def test_endpointRefusesAWrappedProtocol(net):
    """A factory that wraps its protocols (ClientService's does) gets a
    clear error: the handshake could not tell the protocol what it
    negotiated."""

    class Wrapper(Protocol):
        pass

    net.serve()
    endpoint = WebSocketClientEndpoint(net.reactor, URL)
    d = endpoint.connect(Factory.forProtocol(Wrapper))
    net.complete()
    e = failure(d, TypeError)
    assert "is not a WebSocketProtocol" in str(e)


def test_factoryWhenOpen(net):
    """WebSocketClientFactory with a plain connector: whenOpen fires."""
    from twisted_ws import WebSocketClientFactory

    net.serve()
    factory = WebSocketClientFactory(Client, URL, clock=net.clock, pingInterval=None)
    d = factory.whenOpen()
    net.reactor.connectTCP("127.0.0.1", 80, factory)
    net.complete()
    assert isinstance(result(d), Client)


# -- broken and slow servers ------------------------------------------------------


@pytest.mark.parametrize(
    "extra, offered",
    [
        ("Sec-WebSocket-Protocol: evil\r\n", ["good"]),
        ("Sec-WebSocket-Protocol: chat\r\n", []),
        ("Sec-WebSocket-Extensions: permessage-deflate\r\n", []),
    ],
)
def test_unofferedSubprotocolOrExtension(net, extra, offered):
    d, server = rawServer(net, subprotocols=offered)
    server.send(switching(server.key, extra))
    e = failure(d, InvalidServerResponse)
    assert isinstance(e, ClientHandshakeError) and not isinstance(e, HandshakeError)
    assert not hasattr(e, "status")
    assert not server.transport.connected


def test_wrongAcceptKey(net):
    d, server = rawServer(net)
    server.send(switching(server.key, acceptKey=accept("x" * 24)))
    assert "Accept" in failure(d, InvalidServerResponse).reason


@pytest.mark.parametrize("answer", [b"SSH-2.0-OpenSSH_9.6\r\n\r\n", b"HTTP/1.1 abc Nope\r\n\r\n"])
def test_garbageAnswer(net, answer):
    d, server = rawServer(net)
    server.send(answer)
    failure(d, InvalidServerResponse)
    assert not server.transport.connected


@pytest.mark.parametrize("partial", [b"", b"HTTP/1.1 101 Switching"])
def test_closedWithoutAnswer(net, partial):
    d, server = rawServer(net)
    server.send(partial)
    assert pending(d)
    server.close()
    e = failure(d, HandshakeClosed)
    assert "closed before" in str(e)


def test_transportErrorIsKept(net):
    """A connection that ends with an error (a reset, TLS) reports it."""
    d, server = rawServer(net)
    from OpenSSL import SSL

    server.transport.protocol.connectionLost(Failure(SSL.Error("certificate verify failed")))
    failure(d, SSL.Error)


REFUSAL = b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\n"


def test_rejectionWithContentLength(net):
    d, server = rawServer(net)
    server.send(REFUSAL + b"Content-Length: 11\r\n\r\nhello")
    assert pending(d)  # the body is not complete
    server.send(b" world and more")
    e = failure(d, WebSocketHandshakeRejected)
    assert (e.status, e.header("www-authenticate"), e.body) == (401, "Bearer", b"hello world")
    assert not server.transport.connected


def test_rejectionBodyBounded(net):
    body = b"z" * (4 * MAX_REJECTION_BODY)
    d, server = rawServer(net)
    server.send(REFUSAL + b"Content-Length: %d\r\n\r\n" % len(body) + body)
    assert failure(d, WebSocketHandshakeRejected).body == body[:MAX_REJECTION_BODY]


def test_rejectionBodyUntilClose(net):
    d, server = rawServer(net)
    server.send(REFUSAL + b"\r\nno length, ")
    server.send(b"until the end")
    assert pending(d)
    server.close()
    assert failure(d, WebSocketHandshakeRejected).body == b"no length, until the end"


def test_rejectionBodyUntilCloseOversized(net):
    d, server = rawServer(net)
    server.send(REFUSAL + b"\r\n")
    for _ in range(5):
        server.send(b"y" * (MAX_REJECTION_BODY // 2))
    e = failure(d, WebSocketHandshakeRejected)
    assert e.body == b"y" * MAX_REJECTION_BODY
    assert not server.transport.connected


CHUNKED = (
    b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n"
)


@pytest.mark.parametrize("cut", range(1, len(CHUNKED)))
def test_rejectionChunkedSplitAnywhere(cut):
    net = Net()
    d, server = rawServer(net)
    server.send(CHUNKED[:cut])
    if cut < len(CHUNKED) - 5:  # not yet at the last chunk
        assert pending(d)
    server.send(CHUNKED[cut:])
    e = failure(d, WebSocketHandshakeRejected)
    assert (e.status, e.body) == (404, b"hello world")


def test_slowRejectionBodyReportedAtTheOpenTimeout(net):
    d, server = rawServer(net, openTimeout=5)
    server.send(REFUSAL + b"Content-Length: 100\r\n\r\nthe start")
    net.clock.advance(4.9)
    assert pending(d)
    net.clock.advance(0.1)
    assert failure(d, WebSocketHandshakeRejected).body == b"the start"
    assert not server.transport.connected


def test_openTimeout(net):
    d, server = rawServer(net, openTimeout=10)
    net.clock.advance(9.9)
    assert pending(d)
    net.clock.advance(0.1)
    e = failure(d, WebSocketOpenTimeout)
    assert isinstance(e, error.TimeoutError)
    assert not server.transport.connected  # and the connection was dropped


def test_openTimeoutWhileConnecting(net):
    """The open timeout also bounds the TCP connect (nobody answers)."""
    d = net.connectWS(openTimeout=10)
    net.clock.advance(10)
    failure(d, WebSocketOpenTimeout)


def test_serverNeverClosesTcp(net):
    """After the close handshake the client waits closeTimeout for the
    server to close TCP, then closes it itself (RFC 6455 7.1.1)."""
    d, server = rawServer(net, closeTimeout=3)
    server.send(switching(server.key))
    p = result(d)
    server.received()
    closing = p.close()
    assert server.received()[0] == 0x88  # the client's Close
    server.send(b"\x88\x02\x03\xe8")  # answered; TCP stays open
    net.clock.advance(2.9)
    assert pending(closing) and server.transport.connected
    net.clock.advance(0.1)
    assert not server.transport.connected
    info = result(closing)
    assert (info.code, info.wasClean) == (1000, True)


def test_readAheadAfter101(net):
    """A frame that arrives with the 101 reaches the protocol."""
    d, server = rawServer(net)
    server.send(switching(server.key) + b"\x81\x05hello")
    p = result(d)
    assert result(p.messages.get()) == "hello"


def test_refused(net):
    d = net.connectWS()
    ConnectionCompleter(net.reactor).failOnce()
    net.clock.advance(1)
    failure(d, error.ConnectError)


def test_clientFramesMasked(net):
    d, server = rawServer(net)
    server.send(switching(server.key))
    p = result(d)
    server.received()
    p.sendMessage(b"\x00" * 8)
    frame = server.received()
    assert frame[0] == 0x82
    assert frame[1] == 0x80 | 8  # mask bit set
    assert frame[6:14] == frame[2:6] * 2  # zeros masked = the key
    parser = FrameParser(requireMask=True)
    assert [f[3] for f in parser.feed(frame)] == [b"\x00" * 8]


def test_requestSentOnce(net):
    d, server = rawServer(net, headers={"X-Token": "t"})
    request = server.transport.value()
    assert request.count(b"GET /echo HTTP/1.1\r\n") == 1
    assert b"X-Token: t\r\n" in request
    server.send(switching(server.key))
    assert result(d).request.header("x-token") == "t"


# -- proxy, in memory ------------------------------------------------------------------

PROXY = "http://127.0.0.1:3128"


def test_proxyTunnel(net):
    proxy = memoryProxy(net.reactor, net.serve(port=9000))
    p, pump = opened(net, "ws://127.0.0.1:80/via-proxy", proxy=PROXY)
    p.sendMessage("through the tunnel")
    pump.flush()
    assert result(p.messages.get()) == "through the tunnel"
    method, target, headers = proxy.requests[0]
    assert (method, target) == ("CONNECT", "127.0.0.1:80")
    assert headers["Host"] == target
    assert "Proxy-Authorization" not in headers
    assert net.instances[-1].request.path == "/via-proxy"


def test_proxyAuthentication(net):
    expected = "Basic " + base64.b64encode(b"user:p@ss").decode()

    def answer(headers):
        if headers.get("Proxy-Authorization") != expected:
            return (
                b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                b'Proxy-Authenticate: Basic realm="test"\r\nContent-Length: 0\r\n\r\n'
            )
        return b"HTTP/1.1 200 Connection established\r\n\r\n"

    memoryProxy(net.reactor, net.serve(port=9000), answer)
    opened(net, proxy=PROXY.replace("://", "://user:p%40ss@"))
    d = net.connectWS(proxy=PROXY.replace("://", "://user:wrong@"))
    net.complete()
    e = failure(d, WebSocketProxyError)
    assert e.status == 407
    assert ("Proxy-Authenticate", 'Basic realm="test"') in e.headers


def test_proxyUnreachableTarget(net):
    memoryProxy(net.reactor, None, lambda headers: b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
    d = net.connectWS(proxy=PROXY)
    net.complete()
    assert failure(d, WebSocketProxyError).status == 502


def test_proxyEnvironment(net, monkeypatch):
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    proxy = memoryProxy(net.reactor, net.serve(port=9000))
    net.serve(port=80)

    def roundTrip(**kwargs):
        opened(net, **kwargs)

    monkeypatch.setenv("http_proxy", PROXY)
    roundTrip(useProxyEnvironment=True)
    assert len(proxy.requests) == 1
    roundTrip()  # not asked: the environment is ignored
    monkeypatch.setenv("no_proxy", "localhost,127.0.0.1")
    roundTrip(useProxyEnvironment=True)  # no_proxy wins
    assert len(proxy.requests) == 1
    # https_proxy is for wss:// only; all_proxy is the fallback.
    monkeypatch.delenv("no_proxy")
    monkeypatch.delenv("http_proxy")
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:1")
    monkeypatch.setenv("all_proxy", PROXY)
    roundTrip(useProxyEnvironment=True)
    assert len(proxy.requests) == 2


@pytest.mark.parametrize(
    "proxy",
    [
        {"target": None, "answer": lambda headers: None},
        {"target": Factory.forProtocol(Protocol)},
    ],
    ids=["the proxy never answers", "the server behind the tunnel never answers"],
)
def test_openTimeoutThroughTheProxy(net, proxy):
    """The open timeout covers the CONNECT and, once the tunnel is open, the upgrade."""
    memoryProxy(net.reactor, **proxy)
    d = net.connectWS(proxy=PROXY, openTimeout=10)
    pump = net.complete()
    net.clock.advance(9.9)
    assert pending(d)
    net.clock.advance(0.1)
    failure(d, WebSocketOpenTimeout)
    pump.flush()
    assert pump.clientIO.disconnected


def test_proxyClosesTheConnection(net):
    class Hangup(Protocol):
        def dataReceived(self, data):
            self.transport.loseConnection()

    net.reactor.listenTCP(3128, Factory.forProtocol(Hangup))
    d = net.connectWS(proxy=PROXY)
    net.complete()
    assert failure(d, WebSocketProxyError).status == 502


# -- reconnecting, in memory ---------------------------------------------------------


def test_reconnectingSurvivesServerRestart(net):
    net.serve()
    service = ReconnectingWebSocketClient(
        "ws://127.0.0.1/again", Client, reactor=net.reactor, retryPolicy=lambda attempt: 2, pingInterval=None
    )
    service.startService()
    pump = net.complete()
    first = result(service.whenConnected())
    assert isinstance(first, Client) and first.isClient
    assert first.request.path == "/again"
    first.sendMessage("one")
    pump.flush()
    assert result(first.messages.get()) == "one"

    # The server goes away (1012: service restart) ...
    net.instances[-1].close(1012, "restarting")
    pump.flush()
    assert result(first.closed)[0] == 1012
    nextOne = service.whenConnected()
    assert pending(nextOne)
    # ... and is back for the retry.
    net.clock.advance(2)
    pump = net.complete()
    second = result(nextOne)
    assert second is not first
    second.sendMessage("two")
    pump.flush()
    assert result(second.messages.get()) == "two"
    assert len(net.instances) == 2

    stopped = service.stopService()
    pump.flush()
    result(stopped)
    assert result(net.instances[-1].closed) == (1001, "going away", True)
    assert second.closeInfo.wasClean


def test_reconnectingRetriesARefusal(net):
    """A refused or failed handshake is a failed attempt: retried, and the
    protocol ClientService sees is only ever an open one."""
    refusals = [1]

    def hook(request):
        if refusals:
            refusals.pop()
            raise Reject(503, "not yet")

    net.serve(accept=hook)
    prepared = []
    service = ReconnectingWebSocketClient(
        URL, Client, reactor=net.reactor, retryPolicy=lambda attempt: 1, pingInterval=None,
        prepareConnection=prepared.append,
    )
    failed = service.whenConnected(failAfterFailures=1)
    service.startService()
    net.complete()
    assert failure(failed, WebSocketHandshakeRejected).status == 503
    assert prepared == []
    connected = service.whenConnected()
    net.clock.advance(1)
    pump = net.complete()
    p = result(connected)
    assert prepared == [p] and p.isClient
    stopped = service.stopService()
    pump.flush()
    result(stopped)
    assert p.closeInfo.code == 1001


# -- argument checking --------------------------------------------------------------------
def test_badArgumentsFailEarly():
    with pytest.raises(ValueError):
        connectWS("ws://h/", headers={"X-Evil": "a\r\nInjected: yes"})
    with pytest.raises(ValueError):
        connectWS("ws://h/", headers={"Sec-WebSocket-Key": "x"})
    with pytest.raises(ValueError):
        connectWS("ws://h/", subprotocols=["bad name"])
    with pytest.raises(ValueError):
        connectWS("ws://h/", proxy="socks5://127.0.0.1:1080")


@pytest.mark.parametrize("keyword", ["noSuchOption", "endpont", "trustroot"])
def test_unknownKeywordIsNamed(keyword):
    """connectWS forwards its keywords to the endpoint; a mistyped one is
    still a TypeError that names it."""
    with pytest.raises(TypeError, match=keyword):
        connectWS("ws://h/", **{keyword: 1})


def test_connectWSTakesTheEndpointsKeywords():
    import inspect

    endpointKeywords = {
        name for name, parameter in inspect.signature(WebSocketClientEndpoint).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    }
    doc = connectWS.__doc__
    for name in endpointKeywords:
        assert f"{name}=" in doc, name


# -- URLs -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, expected",
    [
        ("ws://example.com", (False, "example.com", 80, "/", "example.com")),
        ("wss://example.com/chat?room=1", (True, "example.com", 443, "/chat?room=1", "example.com")),
        ("ws://Example.com:8080/a b", (False, "example.com", 8080, "/a%20b", "example.com:8080")),
        ("wss://[::1]:9000/", (True, "::1", 9000, "/", "[::1]:9000")),
        ("ws://[::1]/", (False, "::1", 80, "/", "[::1]")),
        ("WSS://bücher.example/", (True, "xn--bcher-kva.example", 443, "/", "xn--bcher-kva.example")),
        ("ws://h:443/", (False, "h", 443, "/", "h:443")),
    ],
)
def test_parseURL(url, expected):
    parsed = parseURL(url)
    assert (parsed.secure, parsed.host, parsed.port, parsed.resource, parsed.hostHeader) == expected


@pytest.mark.parametrize(
    "url",
    ["http://example.com/", "ws:///path", "ws://example.com/#frag", "ws://u:p@example.com/", "ws://h:99999/", "example.com"],
)
def test_parseURLRejects(url):
    with pytest.raises(ValueError):
        parseURL(url)
