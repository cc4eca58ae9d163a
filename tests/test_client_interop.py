"""
The WebSocket client on real sockets (the interop tier): a server nobody
here wrote (the C{websockets} package, in a thread), TLS against a real
listener, wss:// through a real CONNECT proxy, and the example script as a
subprocess.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, serverFromString
from twisted.internet.protocol import Factory
from twisted.internet.threads import deferToThread
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from twisted_ws import WebSocketServerFactory
from twisted_ws.client import WebSocketHandshakeRejected, connectWS
from wshelpers import Client, ConnectProxy, Echo, makeCA, makeLeaf

ROOT = Path(__file__).resolve().parent.parent
BIG = 16 * 1024 * 1024


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


class Scenarios:
    """Run against a server nobody here wrote."""

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


class TLSTests(TestCase):
    timeout = 30

    @inlineCallbacks
    def setUp(self):
        directory = Path(tempfile.mkdtemp())
        ca = makeCA(directory)
        self.caPath = ca[0]
        cert, key = makeLeaf(directory, ca, "localhost")
        factory = WebSocketServerFactory(Echo, pingInterval=None)
        factory.instances = self.instances = []
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
        self.assertTrue(self.instances[-1].request.secure)
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


class ProxyTLSTests(TestCase):
    """wss:// through a tunnel: TLS runs inside the CONNECT tunnel."""

    timeout = 30

    @inlineCallbacks
    def setUp(self):
        self.instances = []
        self.proxyFactory = Factory.forProtocol(ConnectProxy)
        self.proxyFactory.requests = []
        self.proxyFactory.auth = None
        self.proxy = yield serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(self.proxyFactory)
        self.addCleanup(self.proxy.stopListening)
        self.proxyURL = f"http://127.0.0.1:{self.proxy.getHost().port}"

    @inlineCallbacks
    def roundTrip(self, url, **kwargs):
        p = yield connectWS(url, Client, pingInterval=None, **kwargs)
        p.sendMessage("through the tunnel")
        self.assertEqual((yield p.messages.get()), "through the tunnel")
        info = yield p.close()
        self.assertTrue(info.wasClean)

    @inlineCallbacks
    def test_wss(self):
        directory = Path(tempfile.mkdtemp())
        ca = makeCA(directory)
        cert, key = makeLeaf(directory, ca, "localhost")
        tls = yield serverFromString(
            reactor, f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}"
        ).listen(self.echoFactory())
        self.addCleanup(tls.stopListening)
        url = f"wss://localhost:{tls.getHost().port}/secure-tunnel"
        yield self.roundTrip(url, proxy=self.proxyURL, trustRoot=ca[0])
        self.assertEqual(self.proxyFactory.requests[0][1], f"localhost:{tls.getHost().port}")
        self.assertTrue(self.instances[-1].request.secure)

    def echoFactory(self):
        factory = WebSocketServerFactory(Echo, pingInterval=None)
        factory.instances = self.instances
        return factory


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
