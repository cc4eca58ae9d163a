"""
Our HTTP/2 WebSocket client (C{connectWS(..., http2=True)}) against real
servers on loopback TLS: node's own C{node:http2} (tests/node/h2_ws_server.js,
an HTTP/2 stack nobody here wrote, with the C{ws} package's framing) and
our server (L{enableHTTP2WebSockets} on a twisted.web C{Site}).

The server certificate is made by the test and trusted through
C{trustRoot}: verification stays on.  Node runs under the test's reactor
(C{spawnProcess}); every wait has a deadline and the process is killed in
the test's cleanup.  Needs node and C{npm ci --prefix tests/node}.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredQueue, gatherResults, inlineCallbacks
from twisted.trial.unittest import TestCase

from twisted_ws import (
    HTTP2NotSupported,
    WebSocketHandshakeRejected,
    WebSocketProtocol,
    connectWS,
)
from twisted_ws.http2.stream import H2StreamTransport
from wshelpers import makeCertificate, nodeMissing, spawnNode

DEADLINE = 10.0  # seconds for any one wait


class Client(WebSocketProtocol):
    """Messages into a queue; L{next} waits for one."""

    def connectionMade(self) -> None:
        self.messages: DeferredQueue = DeferredQueue()

    def messageReceived(self, message) -> None:
        self.messages.put(message)

    def next(self) -> Deferred:
        return self.messages.get().addTimeout(DEADLINE, reactor)


SCRIPT = [
    "hello",
    "h\u00e9llo w\u00f6rld \u2713 \U0001f600",
    "",
    bytes(range(256)),
    bytes((i * 31) & 0xFF for i in range(1 << 20)),  # beyond every h2 window
]


class H2ClientInteropMixin:
    timeout = 30

    def setUp(self) -> None:
        directory = Path(self.mktemp()).resolve()
        directory.mkdir(parents=True)
        self.certPath, self.keyPath = makeCertificate(directory, "localhost")

    def connect(self, url: str, **kwargs) -> Deferred:
        kwargs.setdefault("pingInterval", None)
        d = connectWS(
            url,
            Client,
            reactor=reactor,
            http2=True,
            trustRoot=str(self.certPath),
            maxMessageSize=4 << 20,
            openTimeout=DEADLINE,
            **kwargs,
        )
        return d.addTimeout(DEADLINE + 1, reactor)

    @inlineCallbacks
    def drop(self, protocol: WebSocketProtocol):
        """Cleanup: the WebSocket aborted if still open, then its HTTP/2 connection gone."""
        owner = protocol.transport.owner
        if protocol.closeInfo is None:
            protocol.abortConnection()
            yield protocol.whenClosed().addTimeout(DEADLINE, reactor)
        if hasattr(owner, "whenConnectionLost"):
            yield owner.whenConnectionLost().addTimeout(DEADLINE, reactor)

    @inlineCallbacks
    def converse(self, protocol: Client):
        """The script both ways and a ping."""
        self.assertIsInstance(protocol.transport, H2StreamTransport)
        rtt = yield protocol.ping(b"h2-ping").addTimeout(DEADLINE, reactor)
        self.assertLess(rtt, DEADLINE)
        for message in SCRIPT:
            protocol.sendMessage(message)
            echoed = yield protocol.next()
            self.assertEqual(echoed, message)


class NodeH2ServerTests(H2ClientInteropMixin, TestCase):
    """Our client against node:http2 with the ws package's framing."""

    def setUp(self) -> None:
        if nodeMissing() is not None:
            raise pytest.skip.Exception(nodeMissing())
        super().setUp()

    @inlineCallbacks
    def startNode(self, *args: str):
        server = spawnNode(
            self, "h2_ws_server.js", "--cert", str(self.certPath), "--key", str(self.keyPath), *args
        )
        line = yield server.waitForLine("listening ")
        return server, int(line.split()[1])

    @inlineCallbacks
    def test_echoAndClientClose(self):
        """
        The extended CONNECT reaches node as RFC 8441 says; text, binary and
        a 1 MiB message come back; our close code reaches node, clean.
        """
        node, port = yield self.startNode("--protocols", "chat.v2")
        protocol = yield self.connect(
            f"wss://localhost:{port}/chat?room=1", subprotocols=["chat.v1", "chat.v2"]
        )
        self.addCleanup(self.drop, protocol)
        opened = node.event((yield node.waitForLine("open ")))
        self.assertEqual(
            (opened["path"], opened["scheme"], opened["version"], opened["authority"]),
            ("/chat?room=1", "https", "13", f"localhost:{port}"),
        )
        self.assertEqual(protocol.subprotocol, "chat.v2")
        self.assertEqual(protocol.request.httpVersion, "2")
        yield self.converse(protocol)
        info = yield protocol.close(4001, "done").addTimeout(DEADLINE, reactor)
        self.assertTrue(info.wasClean)
        closed = node.event((yield node.waitForLine("closed ")))
        self.assertEqual((closed["code"], closed["reason"]), (4001, "done"))

    @inlineCallbacks
    def test_serverCloses(self):
        node, port = yield self.startNode()
        protocol = yield self.connect(f"wss://localhost:{port}/")
        self.addCleanup(self.drop, protocol)
        protocol.sendMessage("close-me")
        info = yield protocol.whenClosed().addTimeout(DEADLINE, reactor)
        self.assertEqual((info.receivedCode, info.receivedReason), (4000, "bye"))
        self.assertTrue(info.wasClean)
        self.assertTrue(info.initiatedByPeer)

    @inlineCallbacks
    def test_refusal(self):
        """node's 403 and body: WebSocketHandshakeRejected, as over HTTP/1.1."""
        node, port = yield self.startNode("--refuse-path", "/forbidden")
        try:
            yield self.connect(f"wss://localhost:{port}/forbidden")
        except WebSocketHandshakeRejected as e:
            self.assertEqual(e.status, 403)
            self.assertEqual(e.header("x-why"), "refused")
            self.assertEqual(e.body, b"go away\n")
        else:
            self.fail("the refusal opened a WebSocket")

    @inlineCallbacks
    def test_withoutConnectProtocolSetting(self):
        """node without enableConnectProtocol: HTTP2NotSupported, no stream opened."""
        node, port = yield self.startNode("--no-connect-protocol")
        try:
            yield self.connect(f"wss://localhost:{port}/")
        except HTTP2NotSupported as e:
            self.assertIn("SETTINGS_ENABLE_CONNECT_PROTOCOL", str(e))
        else:
            self.fail("opened without the server's setting")
        self.assertFalse([line for line in node.lines if line.startswith("open ")])


class ServerEcho(WebSocketProtocol):
    def connectionMade(self) -> None:
        self.factory.instances.append(self)

    def messageReceived(self, message) -> None:
        self.sendMessage(message)


class OurServerTests(H2ClientInteropMixin, TestCase):
    """Our client against our server: a Site with enableHTTP2WebSockets on a TLS port."""

    def listen(self, **kwargs) -> int:
        from twisted.internet.ssl import CertificateOptions, PrivateCertificate
        from twisted.web.resource import Resource
        from twisted.web.server import Site

        from twisted_ws import WebSocketResource, WebSocketServerFactory
        from twisted_ws.http2 import enableHTTP2WebSockets

        identity = PrivateCertificate.loadPEM(self.certPath.read_bytes() + self.keyPath.read_bytes())
        self.factory = WebSocketServerFactory(ServerEcho, pingInterval=None, maxMessageSize=4 << 20, **kwargs)
        self.factory.instances = []
        root = Resource()
        root.putChild(b"ws", WebSocketResource(self.factory))
        site = enableHTTP2WebSockets(Site(root))
        options = CertificateOptions(privateKey=identity.privateKey.original, certificate=identity.original)
        port = reactor.listenSSL(0, site, options, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.addCleanup(lambda: gatherResults([self.drop(p) for p in self.factory.instances]))
        return port.getHost().port

    @inlineCallbacks
    def test_echoWithDeflateOverRealTLS(self):
        from twisted_ws import ClientPerMessageDeflate, PerMessageDeflate

        port = self.listen(extensions=[PerMessageDeflate()], subprotocols=["chat"])
        protocol = yield self.connect(
            f"wss://localhost:{port}/ws",
            subprotocols=["chat"],
            extensions=[ClientPerMessageDeflate()],
        )
        self.addCleanup(self.drop, protocol)
        [server] = self.factory.instances
        self.assertEqual(server.request.httpVersion, "2")
        self.assertEqual([e.name for e in protocol.extensions], ["permessage-deflate"])
        yield self.converse(protocol)
        info = yield protocol.close(4001, "bye").addTimeout(DEADLINE, reactor)
        self.assertTrue(info.wasClean)
        serverInfo = yield server.whenClosed().addTimeout(DEADLINE, reactor)
        self.assertEqual((serverInfo.receivedCode, serverInfo.receivedReason), (4001, "bye"))
