"""
TLS verification fails closed, for every certificate shape (the logic
tier): our client connection creator against a server context over iosim
memory transports, no sockets.  Every client entry path on real loopback
connections, the echo_client example and mutual TLS are in
test_tls_interop.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.internet import ssl
from twisted.internet.protocol import Factory
from twisted.internet.task import Clock
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.test.iosim import connectedServerAndClient

import twisted_ws
from twisted_ws.client import tls
from wshelpers import Recorder, makeCA, makeIssuedCertificate


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


class Shapes:
    """Certificates of every shape from one test CA, and the handshake
    verdicts: accepted, or refused with the one-line reason."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.ca = makeCA(directory)

    def issue(self, name, **kwargs):
        ca = kwargs.pop("ca", self.ca)
        return makeIssuedCertificate(self.directory, ca, name, **kwargs)

    def handshake(self, hostname, cert, key):
        creator = tls.clientConnectionCreator(hostname, None, self.ca[0], None)
        return memoryHandshake(cert, key, creator)

    def accepted(self, hostname, cert, key):
        server, client = self.handshake(hostname, cert, key)
        assert server.received == b"secret"
        assert client.lost is None

    def refused(self, hostname, cert, key, message):
        server, client = self.handshake(hostname, cert, key)
        # Fail closed: not one application byte reached the server.
        assert server.received == b""
        assert client.lost is not None, "the connection is still open"
        errorType = verificationError()
        assert errorType is not None, "no CertificateVerificationError type"
        assert isinstance(client.lost.value, errorType)
        text = str(client.lost.value)
        assert text == message
        assert "\n" not in text
        return client.lost.value


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Shapes:
    """Each certificate shape, the hostname the client asks for, and either
    success or the one-line reason it must fail with."""
    return Shapes(tmp_path_factory.mktemp("shapes"))


def test_noSubjectAltName(shapes):
    # The issue's repro: a trusted certificate with CN=other.example only.
    cert, key = shapes.issue("cn-only", commonName="other.example")
    shapes.refused(
        "localhost", cert, key,
        "certificate for 'localhost' does not match (no subjectAltName; CN other.example is not used)",
    )


def test_commonNameMatchesButNoSubjectAltName(shapes):
    cert, key = shapes.issue("cn-match", commonName="localhost")
    shapes.refused(
        "localhost", cert, key,
        "certificate for 'localhost' does not match (no subjectAltName; CN localhost is not used)",
    )


def test_subjectAltNameMismatch(shapes):
    cert, key = shapes.issue("other", commonName="localhost", dnsNames=["other.example"])
    shapes.refused(
        "localhost", cert, key, "certificate for 'localhost' does not match (names: other.example)"
    )


def test_wildcardMatches(shapes):
    cert, key = shapes.issue("wild", commonName="x", dnsNames=["*.example.com"])
    shapes.accepted("a.example.com", cert, key)


def test_wildcardCoversOneLabelOnly(shapes):
    cert, key = shapes.issue("wild2", commonName="x", dnsNames=["*.example.com"])
    shapes.refused(
        "a.b.example.com", cert, key,
        "certificate for 'a.b.example.com' does not match (names: *.example.com)",
    )


def test_wildcardDoesNotCoverTheBareDomain(shapes):
    cert, key = shapes.issue("wild3", commonName="x", dnsNames=["*.example.com"])
    shapes.refused(
        "example.com", cert, key, "certificate for 'example.com' does not match (names: *.example.com)"
    )


def test_ipAddressMatches(shapes):
    cert, key = shapes.issue("ip", commonName="x", ipAddresses=["127.0.0.1"])
    shapes.accepted("127.0.0.1", cert, key)


def test_ipAddressMismatch(shapes):
    cert, key = shapes.issue("ip2", commonName="127.0.0.1", ipAddresses=["127.0.0.2"])
    shapes.refused(
        "127.0.0.1", cert, key, "certificate for '127.0.0.1' does not match (names: 127.0.0.2)"
    )


def test_ipAddressIsNotMatchedByDNSName(shapes):
    cert, key = shapes.issue("ip3", commonName="127.0.0.1", dnsNames=["127.0.0.1", "localhost"])
    shapes.refused(
        "127.0.0.1", cert, key,
        "certificate for '127.0.0.1' does not match (names: 127.0.0.1, localhost)",
    )


def test_idnaMatches(shapes):
    cert, key = shapes.issue("idna", commonName="x", dnsNames=["xn--bcher-kva.example"])
    shapes.accepted("bücher.example", cert, key)


def test_idnaMismatch(shapes):
    cert, key = shapes.issue("idna2", commonName="x", dnsNames=["xn--bchr-5qa.example"])
    shapes.refused(
        "bücher.example", cert, key,
        "certificate for 'bücher.example (xn--bcher-kva.example)' does not match "
        "(names: xn--bchr-5qa.example)",
    )


def test_expired(shapes):
    cert, key = shapes.issue("expired", dnsNames=["localhost"], validDays=(-30, -1))
    error = shapes.refused("localhost", cert, key, "certificate for 'localhost' has expired")
    assert error.verifyError == 10


def test_notYetValid(shapes):
    cert, key = shapes.issue("future", dnsNames=["localhost"], validDays=(2, 30))
    shapes.refused("localhost", cert, key, "certificate for 'localhost' is not yet valid")


def test_selfSignedNotTrusted(shapes):
    cert, key = shapes.issue("self", ca=None, dnsNames=["localhost"])
    shapes.refused(
        "localhost", cert, key,
        "certificate for 'localhost' is not trusted (self-signed, not issued by a trusted CA)",
    )


def test_unknownIssuer(shapes):
    # An issuer with a name of its own, not in the trusted CA file.
    otherCert, otherKey = shapes.issue("other-ca", ca=None, commonName="Other CA")
    other = (otherCert, loadCertificate(otherCert), loadKey(otherKey))
    cert, key = shapes.issue("stranger", ca=other, dnsNames=["localhost"])
    shapes.refused(
        "localhost", cert, key,
        "certificate for 'localhost' is not trusted (its issuer is not among the trusted CAs)",
    )


def test_exceptionWhileCheckingFailsClosed(shapes):
    """Whatever the identity check raises, the handshake is refused."""
    cert, key = shapes.issue("boom", dnsNames=["localhost"])
    creator = tls.clientConnectionCreator("localhost", None, shapes.ca[0], None)

    def explode(certificate):
        raise RuntimeError("unexpected")

    creator._identityProblem = explode
    server, client = memoryHandshake(cert, key, creator)
    assert server.received == b""
    assert isinstance(client.lost.value, verificationError())
    assert str(client.lost.value) == (
        "certificate for 'localhost' could not be verified (RuntimeError: unexpected)"
    )


def test_exported(shapes):
    assert twisted_ws.CertificateVerificationError is verificationError()
    from OpenSSL.SSL import Error

    assert issubclass(twisted_ws.CertificateVerificationError, (Error, twisted_ws.WebSocketError))
