"""
TLS on real loopback connections (the interop tier): one connection per
client entry path (connectWS, the endpoint, the reconnecting client, the
proxy tunnel, the bridge's ssl: target) refusing a certificate that does
not match, the echo_client example as a subprocess, and the server exposing
the client's certificate for mutual TLS (examples/mutual_tls.py).  Every
certificate shape is checked in memory in test_tls.py.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.endpoints import serverFromString
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from twisted_ws import CertificateVerificationError, WebSocketProtocol, WebSocketServerFactory
from twisted_ws.client import WebSocketClientEndpoint, connectWS
from twisted_ws.client.reconnecting import ReconnectingWebSocketClient
from wshelpers import Client, ConnectProxy, Echo, Recorder, loadExample, makeCA, makeIssuedCertificate

ROOT = Path(__file__).resolve().parent.parent


# -- every client path refuses a certificate that does not match ---------------------


class Sink(Protocol):
    """A raw TLS server app: records what a client sent (the bridge's backend)."""

    def dataReceived(self, data):
        self.factory.received.append(data)


class EntryPathTests(TestCase):
    """A trusted certificate with CN=other.example and no subjectAltName:
    every path refuses it with the readable error and sends nothing."""

    timeout = 30

    @inlineCallbacks
    def setUp(self):
        self.directory = Path(tempfile.mkdtemp())
        self.ca = makeCA(self.directory)
        cert, key = makeIssuedCertificate(self.directory, self.ca, "bad", commonName="other.example")
        self.serverFactory = WebSocketServerFactory(Echo, pingInterval=None)
        self.opened = []
        original = self.serverFactory.buildProtocol

        def build(addr):
            p = original(addr)
            self.opened.append(p)
            return p

        self.serverFactory.buildProtocol = build
        self.port = yield serverFromString(
            reactor, f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}"
        ).listen(self.serverFactory)
        self.addCleanup(self.port.stopListening)
        self.url = f"wss://localhost:{self.port.getHost().port}/"
        self.expected = "certificate for 'localhost' does not match (no subjectAltName; CN other.example is not used)"

    def checkRefusal(self, error):
        self.assertIsInstance(error, CertificateVerificationError)
        self.assertEqual(str(error), self.expected)

    @inlineCallbacks
    def test_connectWS(self):
        d = connectWS(self.url, trustRoot=self.ca[0], pingInterval=None)
        error = yield self.assertFailure(d, Exception)
        self.checkRefusal(error)

    @inlineCallbacks
    def test_endpoint(self):
        endpoint = WebSocketClientEndpoint(reactor, self.url, trustRoot=self.ca[0], pingInterval=None)
        error = yield self.assertFailure(endpoint.connect(Factory.forProtocol(WebSocketProtocol)), Exception)
        self.checkRefusal(error)

    @inlineCallbacks
    def test_reconnecting(self):
        service = ReconnectingWebSocketClient(
            self.url, trustRoot=self.ca[0], retryPolicy=lambda attempt: 0.01, pingInterval=None
        )
        service.startService()
        error = yield self.assertFailure(service.whenConnected(failAfterFailures=1), Exception)
        self.checkRefusal(error)
        # Leave ClientService's failure transition before stopping it.
        yield deferLater(reactor, 0)
        yield service.stopService()

    @inlineCallbacks
    def test_proxyTunnel(self):
        proxyFactory = Factory.forProtocol(ConnectProxy)
        proxyFactory.requests = []
        proxyFactory.auth = None
        proxy = yield serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(proxyFactory)
        self.addCleanup(proxy.stopListening)
        d = connectWS(
            self.url, trustRoot=self.ca[0], proxy=f"http://127.0.0.1:{proxy.getHost().port}", pingInterval=None
        )
        error = yield self.assertFailure(d, Exception)
        self.checkRefusal(error)
        self.assertEqual(proxyFactory.requests[0][0], "CONNECT")

    @inlineCallbacks
    def test_bridgeSSLTarget(self):
        """C{--target ssl:...}: the bridge's backend connection verifies the
        hostname too (Twisted's own ssl: client endpoint fails open)."""
        from twisted_ws.apps.bridge import targetEndpoint

        caDir = self.directory / "cas"
        caDir.mkdir()
        (caDir / "ca.pem").write_bytes(self.ca[0].read_bytes())
        sink = Factory.forProtocol(Sink)
        sink.received = []
        cert, key = self.directory / "bad.pem", self.directory / "bad.key"
        port = yield serverFromString(
            reactor, f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}"
        ).listen(sink)
        self.addCleanup(port.stopListening)
        number = port.getHost().port
        for description in (
            f"ssl:host=localhost:port={number}:caCertsDir={caDir}",
            f"ssl:localhost:{number}:caCertsDir={caDir}:hostname=localhost",
        ):
            endpoint = targetEndpoint(reactor, description)
            client = Recorder(b"must not arrive")
            # The TLS wrapper fires once TCP connects; the refusal is the
            # reason the connection is then lost.
            yield endpoint.connect(Factory.forProtocol(lambda: client))  # noqa: B023 - built before this iteration ends
            for _ in range(300):
                if client.lost is not None:
                    break
                yield deferLater(reactor, 0.01)
            self.assertIsNotNone(client.lost)
            self.checkRefusal(client.lost.value)
        self.assertEqual(sink.received, [])

    @inlineCallbacks
    def test_echoClientExample(self):
        out, err, code = yield getProcessOutputAndValue(
            sys.executable,
            [str(ROOT / "examples" / "echo_client.py"), self.url, "hi", "--cafile", str(self.ca[0]), "--timeout", "5"],
            env={"PYTHONPATH": str(ROOT)},
        )
        self.assertNotEqual(code, 0)
        self.assertEqual(out, b"")  # "hi" was not echoed
        lines = err.decode().strip().splitlines()
        self.assertEqual(len(lines), 1, err)
        self.assertIn(self.expected, lines[0])
        self.assertNotIn("Traceback", err.decode())


# -- mutual TLS: the client's certificate on the request ---------------------------


class MutualTLSTests(TestCase):
    """examples/mutual_tls.py: TLS requires a certificate from the client CA,
    the accept hook admits only the allow-listed names."""

    timeout = 30

    @inlineCallbacks
    def setUp(self):
        self.example = loadExample("mutual_tls")
        d = self.directory = Path(tempfile.mkdtemp())
        serverCA = makeCA(d)
        self.serverCA = serverCA[0]
        serverCert, serverKey = makeIssuedCertificate(d, serverCA, "server", dnsNames=["localhost"])
        clientCADir = d / "clients"
        clientCADir.mkdir()
        clientCA = makeCA(clientCADir)
        self.alice = makeIssuedCertificate(d, clientCA, "alice", commonName="alice", dnsNames=["alice.example"], clientAuth=True)
        self.mallory = makeIssuedCertificate(d, clientCA, "mallory", commonName="mallory", clientAuth=True)
        self.bob = makeIssuedCertificate(d, clientCA, "bob", commonName="bob", clientAuth=True)
        factory = self.example.buildFactory({"alice.example", "bob"})
        self.opened = []
        factory.protocol = type("Recorded", (self.example.Echo,), {"connectionMade": lambda p: self.opened.append(p)})
        options = self.example.serverTLSOptions(str(serverCert), str(serverKey), str(clientCA[0]))
        from twisted.internet.endpoints import SSL4ServerEndpoint

        self.port = yield SSL4ServerEndpoint(reactor, 0, options, interface="127.0.0.1").listen(factory)
        self.addCleanup(self.port.stopListening)
        self.url = f"wss://localhost:{self.port.getHost().port}/"

    @inlineCallbacks
    def test_allowedCertificate(self):
        for who, name in ((self.alice, "alice.example"), (self.bob, "bob")):
            p = yield connectWS(self.url, Client, trustRoot=self.serverCA, clientCertificate=who, pingInterval=None)
            p.sendMessage("hello")
            self.assertEqual((yield p.messages.get()), "hello")
            request = self.opened[-1].request
            self.assertIn(name, self.example.certificateNames(request.peerCertificate))
            from cryptography import x509

            self.assertIsInstance(request.peerCertificate, x509.Certificate)
            yield p.close()

    @inlineCallbacks
    def test_certificateNotOnTheAllowList(self):
        from twisted_ws.client import WebSocketHandshakeRejected

        d = connectWS(self.url, Client, trustRoot=self.serverCA, clientCertificate=self.mallory, pingInterval=None)
        error = yield self.assertFailure(d, WebSocketHandshakeRejected)
        self.assertEqual(error.status, 403)
        self.assertEqual(self.opened, [])

    @inlineCallbacks
    def test_noCertificate(self):
        d = connectWS(self.url, Client, trustRoot=self.serverCA, pingInterval=None)
        yield self.assertFailure(d, Exception)
        self.assertEqual(self.opened, [])

    @inlineCallbacks
    def test_plainTransportHasNoPeerCertificate(self):
        seen = []
        factory = WebSocketServerFactory(Echo, accept=lambda request: seen.append(request), pingInterval=None)
        port = yield serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(factory)
        self.addCleanup(port.stopListening)
        p = yield connectWS(f"ws://127.0.0.1:{port.getHost().port}/", Client, pingInterval=None)
        yield p.close()
        self.assertIsNone(seen[0].peerCertificate)

    @inlineCallbacks
    def test_webResourceRequestHasPeerCertificate(self):
        from twisted.internet.endpoints import SSL4ServerEndpoint
        from twisted.web.server import Site

        from twisted_ws import WebSocketResource

        seen = []
        factory = WebSocketServerFactory(Echo, accept=lambda request: seen.append(request), pingInterval=None)
        d = self.directory
        serverCert, serverKey = d / "server.pem", d / "server.key"
        options = self.example.serverTLSOptions(str(serverCert), str(serverKey), str(d / "clients" / "ca.pem"))
        port = yield SSL4ServerEndpoint(reactor, 0, options, interface="127.0.0.1").listen(
            Site(WebSocketResource(factory))
        )
        self.addCleanup(port.stopListening)
        p = yield connectWS(
            f"wss://localhost:{port.getHost().port}/",
            Client,
            trustRoot=self.serverCA,
            clientCertificate=self.alice,
            pingInterval=None,
        )
        yield p.close()
        self.assertIsNotNone(seen[0].webRequest)
        self.assertEqual(self.example.certificateNames(seen[0].peerCertificate), ["alice.example"])
