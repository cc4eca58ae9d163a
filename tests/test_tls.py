"""
TLS verification fails closed, for every certificate shape and on every
path that opens TLS as a client; and the server exposes the client's
certificate for mutual TLS.

Logic tier: our client connection creator against a server context over
iosim memory transports (no sockets).  Interop tier: one real loopback
connection per entry path (connectWS, the endpoint, the reconnecting
client, the proxy tunnel, the bridge's ssl: target), the echo_client
example as a subprocess, and the mutual-TLS example.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import pytest
from twisted.internet import reactor, ssl
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.task import Clock, deferLater
from twisted.internet.endpoints import serverFromString
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.utils import getProcessOutputAndValue
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.test.iosim import connectedServerAndClient
from twisted.trial.unittest import SynchronousTestCase, TestCase

import twisted_ws
from twisted_ws import WebSocketProtocol, WebSocketServerFactory
from twisted_ws.client import tls
from twisted_ws.client import WebSocketClientEndpoint, connectWS
from twisted_ws.client.reconnecting import ReconnectingWebSocketClient

from wshelpers import makeCA, makeIssuedCertificate  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def verificationError():
    """The exception type the client must fail with (absent before the fix)."""
    return getattr(tls, "CertificateVerificationError", None)


def loadCertificate(path: Path):
    from cryptography import x509

    return x509.load_pem_x509_certificate(path.read_bytes())


def loadKey(path: Path):
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    return load_pem_private_key(path.read_bytes(), None)


def serverOptions(cert: Path, key: Path, **kwargs) -> ssl.CertificateOptions:
    return ssl.PrivateCertificate.loadPEM(cert.read_bytes() + key.read_bytes()).options(**kwargs)


# -- logic tier: memory TLS ------------------------------------------------------


class Recorder(Protocol):
    def __init__(self, greeting: bytes = b""):
        self.greeting = greeting
        self.received = b""
        self.reason = None

    def connectionMade(self):
        if self.greeting:
            self.transport.write(self.greeting)

    def dataReceived(self, data):
        self.received += data

    def connectionLost(self, reason):
        self.reason = reason


def memoryHandshake(serverCert: Path, serverKey: Path, creator):
    """Run a TLS handshake between C{creator} and a server using the given
    certificate over memory transports: (server app, client app)."""
    server, client = Recorder(), Recorder(b"secret")
    clock = Clock()  # TLSMemoryBIOProtocol batches its writes on a clock
    serverTLS = TLSMemoryBIOFactory(
        serverOptions(serverCert, serverKey), False, Factory.forProtocol(lambda: server), clock
    )
    clientTLS = TLSMemoryBIOFactory(creator, True, Factory.forProtocol(lambda: client), clock)
    _, _, pump = connectedServerAndClient(
        lambda: serverTLS.buildProtocol(None), lambda: clientTLS.buildProtocol(None), clock=clock
    )
    for _ in range(50):
        clock.advance(0)
        if not pump.pump() and not clock.getDelayedCalls():
            break
    return server, client


class CertificateShapeTests(SynchronousTestCase):
    """Each certificate shape, the hostname the client asks for, and either
    success or the one-line reason it must fail with."""

    @classmethod
    def setUpClass(cls):
        cls.directory = Path(tempfile.mkdtemp())
        cls.ca = makeCA(cls.directory)

    def issue(self, name, **kwargs):
        ca = kwargs.pop("ca", self.ca)
        return makeIssuedCertificate(self.directory, ca, name, **kwargs)

    def connect(self, hostname, cert, key):
        creator = tls.clientConnectionCreator(hostname, None, self.ca[0], None)
        return memoryHandshake(cert, key, creator)

    def assertAccepted(self, hostname, cert, key):
        server, client = self.connect(hostname, cert, key)
        self.assertEqual(server.received, b"secret")
        self.assertIsNone(client.reason)

    def assertRefused(self, hostname, cert, key, message):
        server, client = self.connect(hostname, cert, key)
        # Fail closed: not one application byte reached the server.
        self.assertEqual(server.received, b"")
        self.assertIsNotNone(client.reason, "the connection is still open")
        errorType = verificationError()
        self.assertIsNotNone(errorType, "no CertificateVerificationError type")
        self.assertIsInstance(client.reason.value, errorType)
        text = str(client.reason.value)
        self.assertEqual(text, message)
        self.assertNotIn("\n", text)
        return client.reason.value

    def test_noSubjectAltName(self):
        # The issue's repro: a trusted certificate with CN=other.example only.
        cert, key = self.issue("cn-only", commonName="other.example")
        self.assertRefused(
            "localhost", cert, key,
            "certificate for 'localhost' does not match (no subjectAltName; CN other.example is not used)",
        )

    def test_commonNameMatchesButNoSubjectAltName(self):
        cert, key = self.issue("cn-match", commonName="localhost")
        self.assertRefused(
            "localhost", cert, key,
            "certificate for 'localhost' does not match (no subjectAltName; CN localhost is not used)",
        )

    def test_subjectAltNameMismatch(self):
        cert, key = self.issue("other", commonName="localhost", dnsNames=["other.example"])
        self.assertRefused(
            "localhost", cert, key, "certificate for 'localhost' does not match (names: other.example)"
        )

    def test_wildcardMatches(self):
        cert, key = self.issue("wild", commonName="x", dnsNames=["*.example.com"])
        self.assertAccepted("a.example.com", cert, key)

    def test_wildcardCoversOneLabelOnly(self):
        cert, key = self.issue("wild2", commonName="x", dnsNames=["*.example.com"])
        self.assertRefused(
            "a.b.example.com", cert, key,
            "certificate for 'a.b.example.com' does not match (names: *.example.com)",
        )

    def test_wildcardDoesNotCoverTheBareDomain(self):
        cert, key = self.issue("wild3", commonName="x", dnsNames=["*.example.com"])
        self.assertRefused(
            "example.com", cert, key, "certificate for 'example.com' does not match (names: *.example.com)"
        )

    def test_ipAddressMatches(self):
        cert, key = self.issue("ip", commonName="x", ipAddresses=["127.0.0.1"])
        self.assertAccepted("127.0.0.1", cert, key)

    def test_ipAddressMismatch(self):
        cert, key = self.issue("ip2", commonName="127.0.0.1", ipAddresses=["127.0.0.2"])
        self.assertRefused(
            "127.0.0.1", cert, key, "certificate for '127.0.0.1' does not match (names: 127.0.0.2)"
        )

    def test_ipAddressIsNotMatchedByDNSName(self):
        cert, key = self.issue("ip3", commonName="127.0.0.1", dnsNames=["127.0.0.1", "localhost"])
        self.assertRefused(
            "127.0.0.1", cert, key,
            "certificate for '127.0.0.1' does not match (names: 127.0.0.1, localhost)",
        )

    def test_idnaMatches(self):
        cert, key = self.issue("idna", commonName="x", dnsNames=["xn--bcher-kva.example"])
        self.assertAccepted("bücher.example", cert, key)

    def test_idnaMismatch(self):
        cert, key = self.issue("idna2", commonName="x", dnsNames=["xn--bchr-5qa.example"])
        self.assertRefused(
            "bücher.example", cert, key,
            "certificate for 'bücher.example (xn--bcher-kva.example)' does not match "
            "(names: xn--bchr-5qa.example)",
        )

    def test_expired(self):
        cert, key = self.issue("expired", dnsNames=["localhost"], validDays=(-30, -1))
        error = self.assertRefused("localhost", cert, key, "certificate for 'localhost' has expired")
        self.assertEqual(error.verifyError, 10)

    def test_notYetValid(self):
        cert, key = self.issue("future", dnsNames=["localhost"], validDays=(2, 30))
        self.assertRefused("localhost", cert, key, "certificate for 'localhost' is not yet valid")

    def test_selfSignedNotTrusted(self):
        cert, key = self.issue("self", ca=None, dnsNames=["localhost"])
        self.assertRefused(
            "localhost", cert, key,
            "certificate for 'localhost' is not trusted (self-signed, not issued by a trusted CA)",
        )

    def test_unknownIssuer(self):
        # An issuer with a name of its own, not in the trusted CA file.
        otherCert, otherKey = self.issue("other-ca", ca=None, commonName="Other CA")
        other = (otherCert, loadCertificate(otherCert), loadKey(otherKey))
        cert, key = self.issue("stranger", ca=other, dnsNames=["localhost"])
        self.assertRefused(
            "localhost", cert, key,
            "certificate for 'localhost' is not trusted (its issuer is not among the trusted CAs)",
        )

    def test_exceptionWhileCheckingFailsClosed(self):
        """Whatever the identity check raises, the handshake is refused."""
        cert, key = self.issue("boom", dnsNames=["localhost"])
        creator = tls.clientConnectionCreator("localhost", None, self.ca[0], None)

        def explode(certificate):
            raise RuntimeError("unexpected")

        creator._identityProblem = explode
        server, client = memoryHandshake(cert, key, creator)
        self.assertEqual(server.received, b"")
        self.assertIsInstance(client.reason.value, verificationError())
        self.assertEqual(
            str(client.reason.value),
            "certificate for 'localhost' could not be verified (RuntimeError: unexpected)",
        )

    def test_exported(self):
        self.assertIs(twisted_ws.CertificateVerificationError, verificationError())
        from OpenSSL.SSL import Error

        self.assertTrue(issubclass(twisted_ws.CertificateVerificationError, (Error, twisted_ws.WebSocketError)))


# -- interop tier: every client path on real loopback sockets ------------------------


class Echo(WebSocketProtocol):
    def messageReceived(self, message):
        self.sendMessage(message)


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
        self.assertIsInstance(error, verificationError() or ())
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
        from test_client import ConnectProxy

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
            yield endpoint.connect(Factory.forProtocol(lambda: client))
            for _ in range(300):
                if client.reason is not None:
                    break
                yield deferLater(reactor, 0.01)
            self.assertIsNotNone(client.reason)
            self.checkRefusal(client.reason.value)
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


def loadExample(name):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"example_{name}", ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Client(WebSocketProtocol):
    def connectionMade(self):
        self.messages = []
        self.got = Deferred()

    def messageReceived(self, message):
        self.got.callback(message)


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
            self.assertEqual((yield p.got), "hello")
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
