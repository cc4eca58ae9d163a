"""
Interop with node's C{ws} package, a third WebSocket implementation nobody
here wrote: its client against our server, our client against its server,
with and without permessage-deflate, subprotocols, pings and close codes
started by either side.

The node programs are tests/node/ws_client.js and ws_echo_server.js; they
need C{ws} installed (C{npm ci --prefix tests/node}, which C{.ci/run}
does) or a C{node_modules} directory holding it named by
C{TWISTED_WS_NODE_MODULES}.  They run under the test's reactor
(C{spawnProcess}), every wait has a deadline and every process is killed
in the test's cleanup.
"""

from __future__ import annotations

import json

import pytest
from twisted.internet import reactor
from twisted.internet.defer import gatherResults, inlineCallbacks, succeed
from twisted.trial.unittest import TestCase

from twisted_ws import (
    ClientPerMessageDeflate,
    CloseCode,
    PerMessageDeflate,
    WebSocketProtocol,
    WebSocketServerFactory,
    connectWS,
)
from wshelpers import NODE_DEADLINE, Client, Echo, NodeProcess, nodeMissing, spawnNode

DEADLINE = NODE_DEADLINE  # seconds for any one wait; a run takes well under one

if nodeMissing() is not None:
    pytest.skip(nodeMissing(), allow_module_level=True)


def script() -> list[str | bytes]:
    """The messages ws_client.js sends; our client sends the same."""
    big = bytes((i * 31 + (i >> 12)) & 0xFF for i in range(1 << 20))
    return [
        "hello",
        "h\u00e9llo w\u00f6rld \u2713 \U0001f600 \u65e5\u672c\u8a9e",
        "",
        bytes(range(256)),
        "\u00fcn\u00efc\u00f8d\u00e9 \u2713 \U0001f600 " * 10000,
        big,
    ]


SCRIPT = script()


class PingingEcho(Echo):
    """The shared Echo, also keeping what it got; "close-me" closes with 4000 'bye'; pings on open."""

    def connectionMade(self) -> None:
        super().connectionMade()
        self.received: list[str | bytes] = []
        self.pinged = self.ping(b"twisted-ping")

    def messageReceived(self, message: str | bytes) -> None:
        self.received.append(message)
        if message == "close-me":
            self.close(4000, "bye")
        else:
            super().messageReceived(message)


class NodeInteropMixin:
    timeout = 30

    def spawnNode(self, name: str, *args: str) -> NodeProcess:
        """Run tests/node/C{name}; the test's cleanup kills it if still running."""
        return spawnNode(self, name, *args)

    def drop(self, protocol: WebSocketProtocol):
        """Cleanup: a connection a failed test left open is aborted."""
        if protocol.closeInfo is not None:
            return succeed(None)
        protocol.abortConnection()
        return protocol.whenClosed().addTimeout(DEADLINE, reactor)


class NodeClientTests(NodeInteropMixin, TestCase):
    """node's ws client against our server."""

    def listen(self, **kwargs) -> str:
        factory = WebSocketServerFactory(PingingEcho, pingInterval=None, maxMessageSize=4 << 20, **kwargs)
        factory.instances = []
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.addCleanup(lambda: gatherResults([self.drop(p) for p in factory.instances]))
        self.factory = factory
        return f"ws://127.0.0.1:{port.getHost().port}/"

    @inlineCallbacks
    def runClient(self, url: str, *args: str):
        """Run ws_client.js to the end; its JSON summary and our protocol."""
        process = self.spawnNode("ws_client.js", url, "--timeout", str(DEADLINE), *args)
        code = yield process.whenEnded(DEADLINE + 5)  # after its own timeout
        self.assertEqual(code, 0, process.describe())
        summary = json.loads(process.lines[-1])
        self.assertEqual(len(self.factory.instances), 1)
        server = self.factory.instances[0]
        info = yield server.whenClosed().addTimeout(DEADLINE, reactor)
        self.assertTrue(summary["ok"])
        self.assertEqual(summary["messages"], len(SCRIPT))
        self.assertEqual(server.received, SCRIPT + (["close-me"] if "--server-close" in args else []))
        # node auto-pongs our Ping, and the Deferred fires with the RTT.
        rtt = yield server.pinged.addTimeout(DEADLINE, reactor)
        self.assertGreaterEqual(rtt, 0)
        self.assertLess(rtt, DEADLINE)
        return summary, server, info

    @inlineCallbacks
    def test_deflate(self):
        """
        permessage-deflate negotiated on both sides, every message echoed
        intact; the client's close code and reason reach us and come back.
        """
        url = self.listen(extensions=[PerMessageDeflate()])
        summary, server, info = yield self.runClient(
            url, "--close-code", "4001", "--close-reason", "done \u2713"
        )
        self.assertEqual([e.name for e in server.extensions], ["permessage-deflate"])
        self.assertIn("permessage-deflate", summary["extensions"])
        self.assertIn("client_max_window_bits=12", summary["extensions"])
        self.assertEqual((info.receivedCode, info.receivedReason), (4001, "done \u2713"))
        # We echo the code (RFC 6455 section 5.5.1); node sees what we sent.
        self.assertEqual(info.sentCode, 4001)
        self.assertEqual((summary["closeCode"], summary["closeReason"]), (4001, info.sentReason))
        self.assertTrue(info.initiatedByPeer)
        self.assertTrue(info.wasClean)

    @inlineCallbacks
    def test_noDeflate(self):
        """Neither side offers permessage-deflate: plain frames, a 1000 close."""
        url = self.listen()
        summary, server, info = yield self.runClient(url, "--no-deflate")
        self.assertEqual(list(server.extensions), [])
        self.assertEqual(summary["extensions"], "")
        self.assertEqual((summary["closeCode"], summary["closeReason"]), (1000, ""))
        self.assertEqual((info.code, info.wasClean), (CloseCode.NORMAL_CLOSURE, True))

    @inlineCallbacks
    def test_deflateDeclined(self):
        """node offers permessage-deflate, our server has none: declined, still works."""
        url = self.listen()
        summary, server, info = yield self.runClient(url)
        self.assertEqual(list(server.extensions), [])
        self.assertEqual(summary["extensions"], "")

    @inlineCallbacks
    def test_serverCloseAndSubprotocol(self):
        """
        Our server picks its preferred subprotocol among node's offer, and
        closes with 4000 'bye' when asked; node sees that code and reason.
        """
        url = self.listen(extensions=[PerMessageDeflate()], subprotocols=["chat.v2", "chat.v1"])
        summary, server, info = yield self.runClient(
            url, "--protocols", "chat.v1,chat.v2", "--server-close", "--ping"
        )
        self.assertEqual(server.subprotocol, "chat.v2")
        self.assertEqual(summary["protocol"], "chat.v2")
        self.assertEqual(summary["pong"], "node-ping")
        self.assertEqual((summary["closeCode"], summary["closeReason"]), (4000, "bye"))
        self.assertEqual((info.sentCode, info.sentReason), (4000, "bye"))
        self.assertEqual(info.receivedCode, 4000)
        self.assertFalse(info.initiatedByPeer)
        self.assertTrue(info.wasClean)


class NodeServerTests(NodeInteropMixin, TestCase):
    """Our client against node's ws server."""

    @inlineCallbacks
    def startServer(self, *args: str):
        server = self.spawnNode("ws_echo_server.js", *args)
        line = yield server.waitForLine("listening ")
        return server, f"ws://127.0.0.1:{int(line.split()[1])}/"

    @inlineCallbacks
    def converse(self, url: str, **kwargs):
        """Connect, ping, send the script and check every echo."""
        protocol = yield connectWS(
            url, Client, reactor=reactor, pingInterval=None, maxMessageSize=4 << 20, **kwargs
        ).addTimeout(DEADLINE, reactor)
        self.addCleanup(self.drop, protocol)
        rtt = yield protocol.ping(b"from-twisted").addTimeout(DEADLINE, reactor)
        self.assertGreaterEqual(rtt, 0)
        self.assertLess(rtt, DEADLINE)
        for message in SCRIPT:
            protocol.sendMessage(message)
            echo = yield protocol.messages.get().addTimeout(DEADLINE, reactor)
            self.assertEqual(type(echo), type(message))
            self.assertEqual(echo, message)
        return protocol

    @inlineCallbacks
    def stopServer(self, server: NodeProcess, how: str):
        """The echo server exits 0 on end of stdin and on SIGTERM."""
        if how == "stdin":
            server.transport.closeStdin()
        else:
            server.transport.signalProcess("TERM")
        code = yield server.whenEnded()
        self.assertEqual(code, 0, server.describe())

    @inlineCallbacks
    def test_deflate(self):
        """
        permessage-deflate on both sides; our close code and reason reach
        node and its echo comes back; the server exits 0 on end of stdin.
        """
        server, url = yield self.startServer()
        protocol = yield self.converse(url, extensions=[ClientPerMessageDeflate()])
        self.assertEqual([e.name for e in protocol.extensions], ["permessage-deflate"])
        info = yield protocol.close(4002, "client done \u2713").addTimeout(DEADLINE, reactor)
        self.assertEqual((info.receivedCode, info.receivedReason), (4002, "client done \u2713"))
        self.assertFalse(info.initiatedByPeer)
        self.assertTrue(info.wasClean)
        yield server.waitForLine("closed ")
        self.assertEqual(server.events("open")[0]["extensions"], "permessage-deflate")
        self.assertEqual(server.events("closed"), [{"code": 4002, "reason": "client done \u2713"}])
        yield self.stopServer(server, "stdin")

    @inlineCallbacks
    def test_noDeflate(self):
        """Node's server without permessage-deflate declines our offer."""
        server, url = yield self.startServer("--no-deflate")
        protocol = yield self.converse(url, extensions=[ClientPerMessageDeflate()])
        self.assertEqual(list(protocol.extensions), [])
        info = yield protocol.close().addTimeout(DEADLINE, reactor)
        self.assertEqual((info.code, info.wasClean), (CloseCode.NORMAL_CLOSURE, True))
        yield server.waitForLine("closed ")
        self.assertEqual(server.events("open")[0]["extensions"], "")
        self.assertEqual(server.events("closed"), [{"code": 1000, "reason": ""}])
        yield self.stopServer(server, "term")

    @inlineCallbacks
    def test_serverCloseAndSubprotocol(self):
        """
        Node's server picks its preferred subprotocol among ours and closes
        with 4000 'bye' when asked; we echo that code back.
        """
        server, url = yield self.startServer("--protocols", "chat.v2,chat.v1")
        protocol = yield self.converse(url, subprotocols=["chat.v1", "chat.v2"])
        self.assertEqual(protocol.subprotocol, "chat.v2")
        closed = protocol.whenClosed()
        protocol.sendMessage("close-me")
        info = yield closed.addTimeout(DEADLINE, reactor)
        self.assertEqual((info.code, info.reason), (4000, "bye"))
        self.assertTrue(info.initiatedByPeer)
        self.assertTrue(info.wasClean)
        self.assertEqual(info.sentCode, 4000)
        yield server.waitForLine("closed ")
        self.assertEqual(server.events("open")[0]["protocol"], "chat.v2")
        self.assertEqual(server.events("closed"), [{"code": 4000, "reason": info.sentReason}])
        yield self.stopServer(server, "stdin")
