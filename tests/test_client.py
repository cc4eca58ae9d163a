"""
The WebSocket client end to end on real loopback sockets: against our own
server, against a server nobody here wrote (the C{websockets} package, in a
thread), against hand-written broken servers, over TLS with a CA made here,
over a UNIX socket, through an HTTP CONNECT proxy written here, the
reconnecting service, and the example script as a subprocess.
"""

from __future__ import annotations

import base64
import hashlib
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from twisted.internet import error, reactor
from twisted.internet.defer import Deferred, DeferredQueue, inlineCallbacks
from twisted.internet.endpoints import (
    TCP4ClientEndpoint,
    UNIXClientEndpoint,
    connectProtocol,
    serverFromString,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from twisted_ws import (
    HandshakeClosed,
    HandshakeError,
    InvalidServerResponse,
    Reject,
    WebSocketProtocol,
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

from wshelpers import makeCA, makeLeaf  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
BIG = 16 * 1024 * 1024


# -- protocols ---------------------------------------------------------------


class Client(WebSocketProtocol):
    def connectionMade(self):
        self.messages = DeferredQueue()
        self.closed = Deferred()

    def messageReceived(self, message):
        self.messages.put(message)

    def connectionClosed(self, code, reason, wasClean):
        self.closed.callback((code, reason, wasClean))


class Echo(WebSocketProtocol):
    instances: list[Echo] = []

    def connectionMade(self):
        Echo.instances.append(self)
        self.closed = Deferred()

    def messageReceived(self, message):
        if message == "close-please":
            self.close(4001, "as you wish")
        else:
            self.sendMessage(message)

    def connectionClosed(self, code, reason, wasClean):
        self.closed.callback((code, reason, wasClean))


def accept(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


class RawServer(Protocol):
    """Reads the request head, answers with C{factory.respond(key)}."""

    def connectionMade(self):
        self.buffer = b""
        self.answered = False
        self.factory.connections.append(self)

    def dataReceived(self, data):
        if self.answered:
            self.factory.afterwards(self, data)
            return
        self.buffer += data
        if b"\r\n\r\n" not in self.buffer:
            return
        key = ""
        for line in self.buffer.split(b"\r\n"):
            if line.lower().startswith(b"sec-websocket-key:"):
                key = line.split(b":", 1)[1].strip().decode()
        self.answered = True
        response = self.factory.respond(key)
        if response is not None:
            self.transport.write(response)

    def connectionLost(self, reason):
        self.factory.lost.callback(None) if not self.factory.lost.called else None


def rawFactory(respond, afterwards=lambda proto, data: None):
    factory = Factory.forProtocol(RawServer)
    factory.respond = respond
    factory.afterwards = afterwards
    factory.connections = []
    factory.lost = Deferred()
    return factory


def switching(key: str, extra: str = "", acceptKey: str | None = None) -> bytes:
    return (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {acceptKey or accept(key)}\r\n{extra}\r\n"
    ).encode()


# -- a tiny HTTP CONNECT proxy ------------------------------------------------------


class Pipe(Protocol):
    def __init__(self, front):
        self.front = front

    def dataReceived(self, data):
        self.front.transport.write(data)

    def connectionLost(self, reason):
        self.front.transport.loseConnection()


class ConnectProxy(Protocol):
    def connectionMade(self):
        self.buffer = b""
        self.peer = None
        self.pending = None

    def dataReceived(self, data):
        if self.peer is not None:
            self.peer.transport.write(data)
            return
        if self.pending is not None:
            self.pending.append(data)
            return
        self.buffer += data
        if b"\r\n\r\n" not in self.buffer:
            return
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ")
        headers = dict(line.split(": ", 1) for line in lines[1:])
        self.factory.requests.append((method, target, headers))
        if self.factory.auth and headers.get("Proxy-Authorization") != self.factory.auth:
            self.transport.write(
                b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                b'Proxy-Authenticate: Basic realm="test"\r\nContent-Length: 0\r\n\r\n'
            )
            self.transport.loseConnection()
            return
        host, _, port = target.rpartition(":")
        self.pending = [rest] if rest else []
        endpoint = TCP4ClientEndpoint(reactor, host.strip("[]"), int(port))
        connectProtocol(endpoint, Pipe(self)).addCallbacks(self._connected, self._failed)

    def _connected(self, pipe):
        self.peer = pipe
        self.transport.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        for data in self.pending:
            pipe.transport.write(data)

    def _failed(self, reason):
        self.transport.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
        self.transport.loseConnection()

    def connectionLost(self, reason):
        if self.peer is not None:
            self.peer.transport.loseConnection()


# -- the websockets package's server, in a thread -----------------------------------


class WebsocketsServer:
    def __init__(self, **kwargs):
        from websockets.sync.server import serve

        self.closes: list[tuple[int | None, str | None]] = []
        self.closed = Deferred()
        kwargs.setdefault("compression", None)
        kwargs.setdefault("ping_interval", None)
        kwargs.setdefault("max_size", None)
        self.server = serve(self.handler, "127.0.0.1", 0, **kwargs)
        self.port = self.server.socket.getsockname()[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def handler(self, ws):
        from websockets.exceptions import ConnectionClosed

        try:
            for message in ws:
                if message == "close-please":
                    ws.close(4002, "bye from websockets")
                    break
                ws.send(message)
        except ConnectionClosed:
            pass
        finally:
            rcvd = ws.protocol.close_rcvd
            result = (rcvd.code, rcvd.reason) if rcvd is not None else (None, None)
            self.closes.append(result)
            reactor.callFromThread(self.closed.callback, result)

    def stop(self):
        return deferToThread(lambda: (self.server.shutdown(), self.thread.join(10)))


# -- shared scenarios ---------------------------------------------------------------


class Scenarios:
    """Run against our server and against websockets."""

    timeout = 60
    #: websockets refuses clients that offer none of its subprotocols.
    extra: dict = {}

    def url(self):
        raise NotImplementedError

    @inlineCallbacks
    def test_textBinaryFragmentedPing(self):
        p = yield connectWS(self.url(), Client, pingInterval=None, **self.extra)
        self.assertTrue(p.isClient)
        p.sendMessage("héllo wörld")
        self.assertEqual((yield p.messages.get()), "héllo wörld")
        p.sendMessage(bytes(range(256)))
        self.assertEqual((yield p.messages.get()), bytes(range(256)))
        writer = p.beginMessage(isText=True)
        writer.write("frag")
        writer.write("men")
        writer.finish("ted ✓")
        self.assertEqual((yield p.messages.get()), "fragmented ✓")
        writer = p.beginMessage()
        writer.write(b"\x00\x01")
        writer.finish(b"\x02")
        self.assertEqual((yield p.messages.get()), b"\x00\x01\x02")
        rtt = yield p.ping(b"are you there")
        self.assertGreaterEqual(rtt, 0.0)
        info = yield p.close()
        self.assertTrue(info.wasClean)
        self.assertEqual(info.code, 1000)

    @inlineCallbacks
    def test_sixteenMiB(self):
        p = yield connectWS(self.url(), Client, pingInterval=None, **self.extra, maxMessageSize=2 * BIG)
        payload = os.urandom(BIG)
        p.sendMessage(payload)
        echoed = yield p.messages.get()
        self.assertEqual(len(echoed), BIG)
        self.assertEqual(echoed, payload)
        text = "ü" * (BIG // 2)
        p.sendMessage(text)
        self.assertEqual((yield p.messages.get()), text)
        yield p.close()

    @inlineCallbacks
    def test_clientCloses(self):
        p = yield connectWS(self.url(), Client, pingInterval=None, **self.extra)
        p.sendMessage("x")
        yield p.messages.get()
        info = yield p.close(4000, "client bye")
        self.assertTrue(info.wasClean)
        self.assertFalse(info.initiatedByPeer)
        self.assertEqual((yield p.closed)[2], True)
        self.assertEqual((yield self.serverSawClose()), (4000, "client bye"))

    @inlineCallbacks
    def test_serverCloses(self):
        p = yield connectWS(self.url(), Client, pingInterval=None, **self.extra)
        p.sendMessage("close-please")
        code, reason, wasClean = yield p.closed
        self.assertEqual((code, reason, wasClean), self.serverCloseCode)
        self.assertTrue(p.closeInfo.initiatedByPeer)


class OurServerTests(Scenarios, TestCase):
    serverCloseCode = (4001, "as you wish", True)

    @inlineCallbacks
    def setUp(self):
        Echo.instances = []
        self.factory = WebSocketServerFactory(
            Echo, pingInterval=None, maxMessageSize=2 * BIG, subprotocols=["beta", "gamma"],
            accept=self.acceptHook,
        )
        self.port = yield serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(self.factory)
        self.addCleanup(self.port.stopListening)

    def acceptHook(self, request):
        if request.path == "/forbidden":
            raise Reject(403, "nope", headers=[("X-Why", "testing")], body=b"go away, " + request.host.encode())
        return None

    def url(self, path="/echo"):
        return f"ws://127.0.0.1:{self.port.getHost().port}{path}"

    @inlineCallbacks
    def serverSawClose(self):
        code, reason, clean = yield Echo.instances[-1].closed
        self.assertTrue(clean)
        return code, reason

    @inlineCallbacks
    def test_requestDetails(self):
        p = yield connectWS(
            self.url("/echo?x=1&y=%20"), Client, pingInterval=None, origin="https://app.example",
            headers={"Authorization": "Bearer t0ken", "Cookie": "a=b"}, subprotocols=["alpha", "gamma"],
        )
        server = Echo.instances[-1]
        self.assertEqual(server.request.target, "/echo?x=1&y=%20")
        self.assertEqual(server.request.origin, "https://app.example")
        self.assertEqual(server.request.header("authorization"), "Bearer t0ken")
        self.assertEqual(server.request.header("cookie"), "a=b")
        self.assertEqual(server.request.host, f"127.0.0.1:{self.port.getHost().port}")
        self.assertEqual(p.subprotocol, "gamma")
        self.assertEqual(server.subprotocol, "gamma")
        self.assertEqual(p.request.key, server.request.key)
        self.assertEqual(p.response.status, 101)
        yield p.close()

    @inlineCallbacks
    def test_keepalive(self):
        pongs = DeferredQueue()

        class Pinging(Client):
            def pongReceived(self, payload):
                pongs.put(payload)

        p = yield connectWS(self.url(), Pinging, pingInterval=0.05, pingTimeout=5)
        first = yield pongs.get()
        second = yield pongs.get()
        self.assertEqual((len(first), len(second)), (4, 4))
        self.assertNotEqual(first, second)
        yield p.close()

    @inlineCallbacks
    def test_rejected403(self):
        d = connectWS(self.url("/forbidden"), Client)
        e = yield self.assertFailure(d, WebSocketHandshakeRejected)
        self.assertIsInstance(e, HandshakeError)
        self.assertEqual(e.status, 403)
        self.assertEqual(e.header("x-why"), "testing")
        self.assertEqual(e.body, f"go away, 127.0.0.1:{self.port.getHost().port}".encode())
        self.assertIn("403", str(e))

    @inlineCallbacks
    def test_unix(self):
        path = os.path.join(tempfile.mkdtemp(), "ws.sock")
        port = yield serverFromString(reactor, f"unix:{path}").listen(self.factory)
        self.addCleanup(port.stopListening)
        p = yield connectWS("ws://localhost/over-unix", Client, endpoint=UNIXClientEndpoint(reactor, path))
        p.sendMessage("via unix")
        self.assertEqual((yield p.messages.get()), "via unix")
        self.assertEqual(Echo.instances[-1].request.path, "/over-unix")
        info = yield p.close()
        self.assertTrue(info.wasClean)

    @inlineCallbacks
    def test_endpointWithFactory(self):
        """The endpoint works with any factory, as endpoints do."""
        endpoint = WebSocketClientEndpoint(reactor, self.url(), pingInterval=None)
        p = yield endpoint.connect(Factory.forProtocol(Client))
        self.assertIsInstance(p, Client)
        p.sendMessage("endpoint")
        self.assertEqual((yield p.messages.get()), "endpoint")
        yield p.close()


class WebsocketsServerTests(Scenarios, TestCase):
    serverCloseCode = (4002, "bye from websockets", True)
    extra = {"subprotocols": ["chat"]}

    def setUp(self):
        self.server = WebsocketsServer(
            subprotocols=["chat"], process_request=self.processRequest
        )
        self.addCleanup(self.server.stop)

    def processRequest(self, connection, request):
        if request.path == "/forbidden":
            response = connection.respond(403, "go away\n")
            response.headers["X-Why"] = "testing"
            return response
        return None

    def url(self, path="/echo"):
        return f"ws://127.0.0.1:{self.server.port}{path}"

    def serverSawClose(self):
        return self.server.closed

    @inlineCallbacks
    def test_rejected403(self):
        e = yield self.assertFailure(connectWS(self.url("/forbidden"), Client), WebSocketHandshakeRejected)
        self.assertEqual(e.status, 403)
        self.assertEqual(e.header("X-Why"), "testing")
        self.assertEqual(e.body, b"go away\n")

    @inlineCallbacks
    def test_permessageDeflate(self):
        from twisted_ws.core.deflate import ClientPerMessageDeflate

        server = WebsocketsServer(compression="deflate")
        self.addCleanup(server.stop)
        p = yield connectWS(
            f"ws://127.0.0.1:{server.port}/", Client, pingInterval=None,
            extensions=[ClientPerMessageDeflate()],
        )
        self.assertEqual([e.name for e in p.extensions], ["permessage-deflate"])
        text = "compress me " * 1000
        p.sendMessage(text)
        self.assertEqual((yield p.messages.get()), text)
        yield p.close()

    @inlineCallbacks
    def test_subprotocol(self):
        p = yield connectWS(self.url(), Client, subprotocols=["superchat", "chat"], pingInterval=None)
        self.assertEqual(p.subprotocol, "chat")
        yield p.close()


# -- broken and slow servers ------------------------------------------------------


class BrokenServerTests(TestCase):
    timeout = 30

    @inlineCallbacks
    def serve(self, respond, afterwards=lambda proto, data: None):
        factory = rawFactory(respond, afterwards)
        port = yield serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(factory)
        self.addCleanup(port.stopListening)
        self.rawFactory = factory
        return f"ws://127.0.0.1:{port.getHost().port}/"

    @inlineCallbacks
    def test_subprotocolNotOffered(self):
        url = yield self.serve(lambda key: switching(key, "Sec-WebSocket-Protocol: evil\r\n"))
        e = yield self.assertFailure(connectWS(url, Client, subprotocols=["good"]), InvalidServerResponse)
        self.assertIn("evil", e.reason)

    @inlineCallbacks
    def test_subprotocolWhenNoneOffered(self):
        url = yield self.serve(lambda key: switching(key, "Sec-WebSocket-Protocol: chat\r\n"))
        yield self.assertFailure(connectWS(url, Client), InvalidServerResponse)

    @inlineCallbacks
    def test_wrongAcceptKey(self):
        url = yield self.serve(lambda key: switching(key, acceptKey=accept("x" * 24)))
        e = yield self.assertFailure(connectWS(url, Client), InvalidServerResponse)
        self.assertIn("Accept", e.reason)

    @inlineCallbacks
    def test_unrequestedExtension(self):
        url = yield self.serve(lambda key: switching(key, "Sec-WebSocket-Extensions: permessage-deflate\r\n"))
        yield self.assertFailure(connectWS(url, Client), InvalidServerResponse)

    @inlineCallbacks
    def test_garbageAnswer(self):
        url = yield self.serve(lambda key: b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        yield self.assertFailure(connectWS(url, Client), InvalidServerResponse)

    @inlineCallbacks
    def test_closedWithoutAnswer(self):
        url = yield self.serve(lambda key: None)
        self.rawFactory.respond = lambda key: self.rawFactory.connections[-1].transport.loseConnection()
        yield self.assertFailure(connectWS(url, Client), HandshakeClosed)

    @inlineCallbacks
    def test_rejectionBodyBounded(self):
        body = b"z" * (4 * MAX_REJECTION_BODY)
        url = yield self.serve(
            lambda key: b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body) + body
        )
        e = yield self.assertFailure(connectWS(url, Client), WebSocketHandshakeRejected)
        self.assertEqual(e.status, 401)
        self.assertEqual(e.header("www-authenticate"), "Bearer")
        self.assertEqual(e.body, body[:MAX_REJECTION_BODY])

    @inlineCallbacks
    def test_rejectionChunkedBody(self):
        url = yield self.serve(
            lambda key: b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        )
        e = yield self.assertFailure(connectWS(url, Client), WebSocketHandshakeRejected)
        self.assertEqual((e.status, e.body), (404, b"hello world"))

    @inlineCallbacks
    def test_openTimeout(self):
        url = yield self.serve(lambda key: None)
        started = time.monotonic()
        e = yield self.assertFailure(connectWS(url, Client, openTimeout=0.3), WebSocketOpenTimeout)
        self.assertIsInstance(e, error.TimeoutError)
        self.assertGreaterEqual(time.monotonic() - started, 0.25)
        yield self.rawFactory.lost  # and the connection was dropped

    @inlineCallbacks
    def test_serverNeverClosesTcp(self):
        """After the close handshake the client waits closeTimeout for the
        server to close TCP, then closes it itself (RFC 6455 7.1.1)."""

        def afterwards(proto, data):
            if data and data[0] == 0x88:  # the client's Close: answer, keep TCP open
                proto.transport.write(b"\x88\x02\x03\xe8")

        url = yield self.serve(switching, afterwards)
        p = yield connectWS(url, Client, closeTimeout=0.3, pingInterval=None)
        started = time.monotonic()
        info = yield p.close()
        self.assertGreaterEqual(time.monotonic() - started, 0.25)
        self.assertTrue(info.wasClean)
        self.assertEqual(info.code, 1000)
        yield self.rawFactory.lost

    @inlineCallbacks
    def test_readAheadAfter101(self):
        """A frame that arrives with the 101 reaches the protocol."""
        url = yield self.serve(lambda key: switching(key) + b"\x81\x05hello")
        p = yield connectWS(url, Client, pingInterval=None)
        self.assertEqual((yield p.messages.get()), "hello")
        p.transport.abortConnection()

    @inlineCallbacks
    def test_refused(self):
        port = yield serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(Factory())
        number = port.getHost().port
        yield port.stopListening()
        yield self.assertFailure(connectWS(f"ws://127.0.0.1:{number}/", Client), error.ConnectError)

    @inlineCallbacks
    def test_clientFramesMasked(self):
        frames = []

        def afterwards(proto, data):
            frames.append(data)
            if len(frames) == 1:
                proto.transport.loseConnection()

        url = yield self.serve(switching, afterwards)
        p = yield connectWS(url, Client, pingInterval=None)
        p.sendMessage(b"\x00" * 8)
        yield p.closed
        frame = frames[0]
        self.assertEqual(frame[0], 0x82)
        self.assertEqual(frame[1], 0x80 | 8)  # mask bit set
        key = frame[2:6]
        self.assertEqual(frame[6:14], key * 2)  # zeros masked = the key


# -- TLS ----------------------------------------------------------------------------


class TLSTests(TestCase):
    timeout = 30

    @inlineCallbacks
    def setUp(self):
        directory = Path(tempfile.mkdtemp())
        ca = makeCA(directory)
        self.caPath = ca[0]
        cert, key = makeLeaf(directory, ca, "localhost")
        factory = WebSocketServerFactory(Echo, pingInterval=None)
        self.port = yield serverFromString(
            reactor, f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}"
        ).listen(factory)
        self.addCleanup(self.port.stopListening)
        self.number = self.port.getHost().port

    @inlineCallbacks
    def test_verifiedWithCA(self):
        p = yield connectWS(f"wss://localhost:{self.number}/tls", Client, trustRoot=str(self.caPath), pingInterval=None)
        p.sendMessage("secure")
        self.assertEqual((yield p.messages.get()), "secure")
        self.assertTrue(Echo.instances[-1].request.secure)
        info = yield p.close()
        self.assertTrue(info.wasClean)

    @inlineCallbacks
    def test_ipAddressVerifiedWithCA(self):
        p = yield connectWS(f"wss://127.0.0.1:{self.number}/", Client, trustRoot=self.caPath, pingInterval=None)
        yield p.close()

    @inlineCallbacks
    def test_failsWithoutCA(self):
        from OpenSSL.SSL import Error as SSLError

        d = connectWS(f"wss://localhost:{self.number}/", Client)
        yield self.assertFailure(d, SSLError)

    @inlineCallbacks
    def test_failsOnWrongHostname(self):
        from twisted_ws import CertificateVerificationError

        d = connectWS(
            f"wss://wrong.example:{self.number}/",
            Client,
            trustRoot=str(self.caPath),
            endpoint=TCP4ClientEndpoint(reactor, "127.0.0.1", self.number),
        )
        yield self.assertFailure(d, CertificateVerificationError)


# -- proxy --------------------------------------------------------------------------

_PROXY_VARIABLES = [
    v for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy") for v in (name, name.upper())
]


class ProxyTests(TestCase):
    timeout = 30

    @inlineCallbacks
    def setUp(self):
        Echo.instances = []
        self.server = yield serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(
            WebSocketServerFactory(Echo, pingInterval=None)
        )
        self.addCleanup(self.server.stopListening)
        self.proxyFactory = Factory.forProtocol(ConnectProxy)
        self.proxyFactory.requests = []
        self.proxyFactory.auth = None
        self.proxy = yield serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(self.proxyFactory)
        self.addCleanup(self.proxy.stopListening)
        self.proxyURL = f"http://127.0.0.1:{self.proxy.getHost().port}"
        saved = {name: os.environ.pop(name) for name in _PROXY_VARIABLES if name in os.environ}

        def restore():
            for name in _PROXY_VARIABLES:
                os.environ.pop(name, None)
            os.environ.update(saved)

        self.addCleanup(restore)

    def url(self, scheme="ws"):
        return f"{scheme}://127.0.0.1:{self.server.getHost().port}/via-proxy"

    @inlineCallbacks
    def roundTrip(self, url, **kwargs):
        p = yield connectWS(url, Client, pingInterval=None, **kwargs)
        p.sendMessage("through the tunnel")
        self.assertEqual((yield p.messages.get()), "through the tunnel")
        info = yield p.close()
        self.assertTrue(info.wasClean)

    @inlineCallbacks
    def test_ws(self):
        yield self.roundTrip(self.url(), proxy=self.proxyURL)
        method, target, headers = self.proxyFactory.requests[0]
        self.assertEqual((method, target), ("CONNECT", f"127.0.0.1:{self.server.getHost().port}"))
        self.assertEqual(headers["Host"], target)
        self.assertNotIn("Proxy-Authorization", headers)

    @inlineCallbacks
    def test_wss(self):
        directory = Path(tempfile.mkdtemp())
        ca = makeCA(directory)
        cert, key = makeLeaf(directory, ca, "localhost")
        tls = yield serverFromString(
            reactor, f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}"
        ).listen(WebSocketServerFactory(Echo, pingInterval=None))
        self.addCleanup(tls.stopListening)
        url = f"wss://localhost:{tls.getHost().port}/secure-tunnel"
        yield self.roundTrip(url, proxy=self.proxyURL, trustRoot=ca[0])
        self.assertEqual(self.proxyFactory.requests[0][1], f"localhost:{tls.getHost().port}")
        self.assertTrue(Echo.instances[-1].request.secure)

    @inlineCallbacks
    def test_authentication(self):
        self.proxyFactory.auth = "Basic " + base64.b64encode(b"user:p@ss").decode()
        yield self.roundTrip(self.url(), proxy=self.proxyURL.replace("://", "://user:p%40ss@"))
        e = yield self.assertFailure(
            connectWS(self.url(), Client, proxy=self.proxyURL.replace("://", "://user:wrong@")),
            WebSocketProxyError,
        )
        self.assertEqual(e.status, 407)
        self.assertIn(("Proxy-Authenticate", 'Basic realm="test"'), e.headers)

    @inlineCallbacks
    def test_environment(self):
        os.environ["http_proxy"] = self.proxyURL
        yield self.roundTrip(self.url(), useProxyEnvironment=True)
        self.assertEqual(len(self.proxyFactory.requests), 1)
        # Not asked: the environment is ignored.
        yield self.roundTrip(self.url())
        # no_proxy wins.
        os.environ["no_proxy"] = "localhost,127.0.0.1"
        yield self.roundTrip(self.url(), useProxyEnvironment=True)
        self.assertEqual(len(self.proxyFactory.requests), 1)
        # https_proxy is for wss:// only; all_proxy is the fallback.
        del os.environ["no_proxy"], os.environ["http_proxy"]
        os.environ["https_proxy"] = "http://127.0.0.1:1"
        os.environ["all_proxy"] = self.proxyURL
        yield self.roundTrip(self.url(), useProxyEnvironment=True)
        self.assertEqual(len(self.proxyFactory.requests), 2)


    @inlineCallbacks
    def test_silentProxyTimesOut(self):
        silent = yield serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(
            Factory.forProtocol(Protocol)
        )
        self.addCleanup(silent.stopListening)
        d = connectWS(self.url(), Client, proxy=f"127.0.0.1:{silent.getHost().port}", openTimeout=0.3)
        yield self.assertFailure(d, WebSocketOpenTimeout)

    @inlineCallbacks
    def test_proxyUnreachableTarget(self):
        port = yield serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(Factory())
        number = port.getHost().port
        yield port.stopListening()
        d = connectWS(f"ws://127.0.0.1:{number}/", Client, proxy=self.proxyURL)
        e = yield self.assertFailure(d, WebSocketProxyError)
        self.assertEqual(e.status, 502)


# -- reconnecting ----------------------------------------------------------------


class ReconnectingTests(TestCase):
    timeout = 30

    @inlineCallbacks
    def test_survivesServerRestart(self):
        Echo.instances = []
        factory = WebSocketServerFactory(Echo, pingInterval=None)
        port = yield serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(factory)
        number = port.getHost().port
        service = ReconnectingWebSocketClient(
            f"ws://127.0.0.1:{number}/again", Client, retryPolicy=lambda attempt: 0.05, pingInterval=None
        )
        service.startService()
        first = yield service.whenConnected()
        self.assertIsInstance(first, Client)
        first.sendMessage("one")
        self.assertEqual((yield first.messages.get()), "one")

        # The server goes away (1012: service restart) ...
        yield port.stopListening()
        Echo.instances[-1].close(1012, "restarting")
        self.assertEqual((yield first.closed)[0], 1012)
        yield deferLater(reactor, 0, lambda: None)  # let ClientService notice
        # ... and comes back on the same port.
        port = yield serverFromString(reactor, f"tcp:{number}:interface=127.0.0.1").listen(factory)
        self.addCleanup(port.stopListening)
        second = yield service.whenConnected()
        self.assertIsNot(second, first)
        second.sendMessage("two")
        self.assertEqual((yield second.messages.get()), "two")
        self.assertEqual(len(Echo.instances), 2)

        yield service.stopService()
        self.assertEqual((yield Echo.instances[-1].closed), (1001, "going away", True))
        self.assertTrue(second.closeInfo.wasClean)


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


def test_badArgumentsFailEarly():
    with pytest.raises(ValueError):
        connectWS("ws://h/", headers={"X-Evil": "a\r\nInjected: yes"})
    with pytest.raises(ValueError):
        connectWS("ws://h/", headers={"Sec-WebSocket-Key": "x"})
    with pytest.raises(ValueError):
        connectWS("ws://h/", subprotocols=["bad name"])
    with pytest.raises(TypeError):
        connectWS("ws://h/", noSuchOption=1)
    with pytest.raises(ValueError):
        connectWS("ws://h/", proxy="socks5://127.0.0.1:1080")


# -- the example script -----------------------------------------------------------


class ExampleTests(TestCase):
    timeout = 60

    def run_(self, *args):
        script = str(ROOT / "examples" / "echo_client.py")
        return getProcessOutputAndValue(sys.executable, [script, *args], env=dict(os.environ), path=str(ROOT))

    @inlineCallbacks
    def test_echo(self):
        port = yield serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(
            WebSocketServerFactory(Echo, pingInterval=None)
        )
        self.addCleanup(port.stopListening)
        out, err, code = yield self.run_(f"ws://127.0.0.1:{port.getHost().port}/", "hello", "wörld ✓")
        self.assertEqual((out.decode("utf-8").splitlines(), code), (["hello", "wörld ✓"], 0), err)

    @inlineCallbacks
    def test_cafile(self):
        directory = Path(tempfile.mkdtemp())
        ca = makeCA(directory)
        cert, key = makeLeaf(directory, ca, "localhost")
        port = yield serverFromString(
            reactor, f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}"
        ).listen(WebSocketServerFactory(Echo, pingInterval=None))
        self.addCleanup(port.stopListening)
        url = f"wss://localhost:{port.getHost().port}/"
        out, err, code = yield self.run_(url, "tls", "--cafile", str(ca[0]))
        self.assertEqual((out, code), (b"tls\n", 0), err)
        out, err, code = yield self.run_(url, "tls")
        self.assertNotEqual(code, 0)
        self.assertEqual(len(err.decode().strip().splitlines()), 1, err)

    @inlineCallbacks
    def test_refused(self):
        port = yield serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(Factory())
        number = port.getHost().port
        yield port.stopListening()
        out, err, code = yield self.run_(f"ws://127.0.0.1:{number}/", "x")
        self.assertNotEqual(code, 0)
        lines = err.decode().strip().splitlines()
        self.assertEqual(len(lines), 1, err)
        self.assertIn("refused", lines[0].lower())
        self.assertEqual(out, b"")
