"""
WebSocketResource in a twisted.web Site on real sockets (the interop tier):
the C{websockets} package with permessage-deflate, an C{ssl:} listener, and
HTTP/2 over TLS (ALPN, the h2 package).
"""

from __future__ import annotations

import socket
import ssl
import tempfile
import time
from pathlib import Path

from twisted.internet import reactor, tcp
from twisted.internet.defer import inlineCallbacks
from twisted.internet.endpoints import serverFromString
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.static import Data
from websockets.sync.client import connect

from twisted_ws import WebSocketServerFactory
from twisted_ws.core.deflate import PerMessageDeflate
from twisted_ws.server.resource import WebSocketResource
from wshelpers import EchoFactory, makeCertificate

DEADLINE = 10.0
PAGE = b"<!DOCTYPE html><title>t</title><p>the page that opens the socket</p>\n"


def site(factory: WebSocketServerFactory) -> Site:
    """/page and the WebSocket at /ws."""
    root = Resource()
    root.putChild(b"ws", WebSocketResource(factory))
    root.putChild(b"page", Data(PAGE, "text/html"))
    return Site(root)


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


class LoopbackSiteTests(TestCase):
    """A Site on a real listener, for C{websockets} and TLS."""

    timeout = 60

    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp())
        self.factory = EchoFactory(pingInterval=None, extensions=[PerMessageDeflate()])
        self.site = site(self.factory)

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
        port = yield serverFromString(
            reactor, f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}"
        ).listen(site(factory))
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
