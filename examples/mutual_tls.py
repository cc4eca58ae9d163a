"""
A WebSocket echo server with mutual TLS: the TLS layer accepts only clients
presenting a certificate issued by CLIENT_CA, and an accept hook lets in
only those whose certificate names (subjectAltName DNS names, else the
common name) are on the allow list; the others get 403.

    python examples/mutual_tls.py --cert server.pem --key server.key \
        --client-ca clients-ca.pem --allow alice.example --allow bob \
        [--port 8443] [--interface 127.0.0.1]

A client connects with its certificate and key:

    connectWS("wss://localhost:8443/", trustRoot="server-ca.pem",
              clientCertificate=("alice.pem", "alice.key"))

Why two layers: TLS proves the client holds a key the CA vouched for; the
accept hook decides which of those identities may use this service, and
can answer with an HTTP status the client sees (TLS can only hang up).
"""

from __future__ import annotations

import argparse
import sys

from twisted.internet import defer, task
from twisted.internet.endpoints import SSL4ServerEndpoint

from twisted_ws import Reject, WebSocketProtocol, WebSocketServerFactory


class Echo(WebSocketProtocol):
    def messageReceived(self, message: str | bytes) -> None:
        self.sendMessage(message)


def certificateNames(certificate) -> list[str]:  # type: ignore[no-untyped-def]
    """The names a client certificate carries: SAN DNS names, else its CN."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = list(san.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        names = []
    if not names:
        names = [str(a.value) for a in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return names


def allowListHook(allowed: set[str]):  # type: ignore[no-untyped-def]
    """An accept hook admitting clients whose certificate names one of C{allowed}."""

    def accept(request):  # type: ignore[no-untyped-def]
        certificate = request.peerCertificate  # cryptography x509.Certificate or None
        if certificate is None:
            raise Reject(403, "a client certificate is required")
        if not allowed.intersection(certificateNames(certificate)):
            raise Reject(403, "this certificate is not allowed here")
        return None  # accept

    return accept


def serverTLSOptions(certPath: str, keyPath: str, clientCAPath: str):  # type: ignore[no-untyped-def]
    """TLS options that require a client certificate issued by the client CA."""
    from twisted.internet import ssl

    with open(certPath, "rb") as c, open(keyPath, "rb") as k, open(clientCAPath, "rb") as ca:
        server = ssl.PrivateCertificate.loadPEM(c.read() + b"\n" + k.read())
        clientCA = ssl.Certificate.loadPEM(ca.read())
    return server.options(clientCA)  # trusting a CA means: verify and require client certs


def buildFactory(allowed: set[str]) -> WebSocketServerFactory:
    return WebSocketServerFactory(Echo, accept=allowListHook(allowed))


@defer.inlineCallbacks
def main(reactor, *argv: str):  # type: ignore[no-untyped-def]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cert", required=True, help="server certificate (PEM)")
    parser.add_argument("--key", required=True, help="server private key (PEM)")
    parser.add_argument("--client-ca", required=True, help="CA that issues client certificates (PEM)")
    parser.add_argument("--allow", action="append", default=[], help="a client name to admit; repeat")
    parser.add_argument("--port", type=int, default=8443, help="TCP port (default 8443; 0: any)")
    parser.add_argument("--interface", default="", help="address to listen on (default: all)")
    args = parser.parse_args(argv)
    try:
        options = serverTLSOptions(args.cert, args.key, args.client_ca)
        endpoint = SSL4ServerEndpoint(reactor, args.port, options, interface=args.interface)
        port = yield endpoint.listen(buildFactory(set(args.allow)))
    except Exception as e:
        print(f"mutual_tls: could not listen: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    print(f"mutual_tls: listening on wss://localhost:{port.getHost().port}/", flush=True)
    yield defer.Deferred()  # serve until interrupted


if __name__ == "__main__":
    task.react(main, sys.argv[1:])
