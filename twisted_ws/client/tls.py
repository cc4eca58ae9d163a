"""
TLS settings for C{wss://} clients: trust roots and client certificates
given as paths, PEM bytes or Twisted objects, turned into a connection
creator that verifies the chain and the server's hostname and B{fails
closed}.

Why not C{optionsForClientTLS}: its verify callback only turns
C{service_identity}'s C{VerificationError} into a failed handshake; any
other exception (C{CertificateError} for a certificate without
subjectAltName, for one) is logged and the handshake goes on -- a
connection to an unverified server.  L{VerifyingClientTLSOptions} refuses
the handshake on every verification problem and says why in one line
(L{CertificateVerificationError}).
"""

from __future__ import annotations

import ipaddress
import os
from typing import Any

from OpenSSL import SSL
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator, IStreamClientEndpoint
from zope.interface import implementer

from .errors import CertificateVerificationError

__all__ = [
    "VerifyingClientTLSOptions",
    "TLSClientEndpoint",
    "clientConnectionCreator",
    "loadTrustRoot",
    "loadClientCertificate",
]



#: OpenSSL X509_V_ERR_* numbers -> what they mean to a user.
_VERIFY_PROBLEMS = {
    2: "is not trusted (its issuer is not among the trusted CAs)",
    7: "is not trusted (bad signature)",
    9: "is not yet valid",
    10: "has expired",
    18: "is not trusted (self-signed, not issued by a trusted CA)",
    19: "is not trusted (self-signed certificate in the chain)",
    20: "is not trusted (its issuer is not among the trusted CAs)",
    21: "is not trusted (the leaf's signature cannot be verified)",
    23: "has been revoked",
    24: "is not trusted (an issuer is not a valid CA)",
    26: "is not meant for TLS servers (key usage)",
}


def _chainProblem(error: int, depth: int, certificate: Any) -> str:
    problem = _VERIFY_PROBLEMS.get(error, f"is not trusted (OpenSSL verify error {error})")
    if depth:
        subject = certificate.get_subject().commonName or "?"
        problem += f" [issuer certificate {subject!r} at depth {depth}]"
    return problem


def _namesOf(certificate: Any) -> str:
    """The names a certificate is valid for, for the error message."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        cn = [a.value for a in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        shown = ", ".join(str(v) for v in cn) or "none"
        return f"no subjectAltName; CN {shown} is not used"
    names = [*san.get_values_for_type(x509.DNSName)]
    names += [str(a) for a in san.get_values_for_type(x509.IPAddress)]
    return "names: " + (", ".join(names) or "none")


def _asciiHostname(hostname: str) -> tuple[str, bool]:
    """(the form certificates use, is it an IP address): IDNA for names."""
    try:
        return str(ipaddress.ip_address(hostname.strip("[]"))), True
    except ValueError:
        pass
    try:
        import idna

        return idna.encode(hostname, uts46=True).decode("ascii"), False
    except (ImportError, UnicodeError, ValueError) as e:
        try:
            return hostname.encode("idna").decode("ascii"), False
        except UnicodeError:
            raise ValueError(f"invalid hostname {hostname!r}: {e}") from None


@implementer(IOpenSSLClientConnectionCreator)
class VerifyingClientTLSOptions:
    """
    Client TLS for one hostname (or IP address) that fails closed: the
    chain must lead to C{trustRoot} (default: the platform's CAs) and the
    leaf's subjectAltName must match the hostname (DNS names with
    wildcards and IDNA, IP addresses); the common name is never used.
    C{acceptableProtocols} are offered in ALPN (e.g. C{[b"h2"]}).
    Every failure -- including exceptions while checking -- aborts the
    handshake with a L{CertificateVerificationError}.
    """

    def __init__(
        self,
        hostname: str,
        trustRoot: Any = None,
        clientCertificate: Any = None,
        acceptableProtocols: Any = None,
    ) -> None:
        from twisted.internet.ssl import CertificateOptions, platformTrust

        self.hostname = hostname
        self.acceptableProtocols = list(acceptableProtocols or ())
        self._ascii, self._isIP = _asciiHostname(hostname)
        extra: dict[str, Any] = {}
        if clientCertificate is not None:
            extra = dict(
                privateKey=clientCertificate.privateKey.original,
                certificate=clientCertificate.original,
            )
        self._options = CertificateOptions(
            trustRoot=platformTrust() if trustRoot is None else trustRoot,
            acceptableProtocols=acceptableProtocols,
            **extra,
        )

    def clientConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        connection = SSL.Connection(self._options.getContext(), None)
        if not self._isIP:
            connection.set_tlsext_host_name(self._ascii.encode("ascii"))
        if self.acceptableProtocols:
            # Per connection: recent Twisted sets ALPN on the connection it
            # makes, not on the shared context, so ours would offer none.
            connection.set_alpn_protos(self.acceptableProtocols)
        connection.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, self._verifier(tlsProtocol))
        return connection

    def _shownHostname(self) -> str:
        if self._isIP or self._ascii == self.hostname:
            return self.hostname
        return f"{self.hostname} ({self._ascii})"

    def _verifier(self, tlsProtocol: Any) -> Any:
        protocolRef: list[Any] = [tlsProtocol]

        def verify(connection: Any, certificate: Any, error: int, depth: int, ok: int) -> bool:
            # An exception must not escape into OpenSSL (it would be lost
            # and the handshake's fate undefined): everything ends here.
            problem = verifyError = None
            try:
                if not ok:
                    verifyError = error
                    problem = _chainProblem(error, depth, certificate)
                elif depth == 0:
                    problem = self._identityProblem(certificate)
            except Exception as e:
                problem = f"could not be verified ({type(e).__name__}: {e})"
            if problem is None:
                return True
            if protocolRef:
                from twisted.python.failure import Failure

                failure = Failure(CertificateVerificationError(self._shownHostname(), problem, verifyError))
                try:
                    protocolRef.pop().failVerification(failure)
                except Exception:
                    pass
            return False

        return verify

    def _identityProblem(self, certificate: Any) -> str | None:
        """C{None} when the leaf is valid for our hostname, else why not."""
        from service_identity import CertificateError, VerificationError
        from service_identity.cryptography import (
            verify_certificate_hostname,
            verify_certificate_ip_address,
        )

        leaf = certificate.to_cryptography()
        try:
            if self._isIP:
                verify_certificate_ip_address(leaf, self._ascii)
            else:
                verify_certificate_hostname(leaf, self._ascii)
        except (VerificationError, CertificateError):
            return f"does not match ({_namesOf(leaf)})"
        return None


def _readPEM(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    with open(os.fspath(value), "rb") as f:
        return f.read()


def loadTrustRoot(trustRoot: Any) -> Any:
    """
    C{None} (the platform's CAs), an C{IOpenSSLTrustRoot}, a
    C{Certificate}, a path to / bytes of PEM CA certificates, or a
    directory of such files (C{*.pem}, C{*.crt}).
    """
    from twisted.internet import ssl

    if trustRoot is None:
        return None
    if isinstance(trustRoot, ssl.Certificate):
        return ssl.trustRootFromCertificates([trustRoot])
    if isinstance(trustRoot, (str, os.PathLike)) and os.path.isdir(trustRoot):
        # A directory of CA files, as Twisted's caCertsDir= takes.
        files = sorted(
            os.path.join(trustRoot, name)
            for name in os.listdir(trustRoot)
            if name.lower().endswith((".pem", ".crt"))
        )
        trustRoot = b"\n".join(_readPEM(name) for name in files)
    if isinstance(trustRoot, (str, bytes, os.PathLike)):
        pem = _readPEM(trustRoot)
        marker = b"-----END CERTIFICATE-----"
        certificates = [
            ssl.Certificate.loadPEM(block + marker)
            for block in pem.split(marker)
            if b"-----BEGIN CERTIFICATE-----" in block
        ]
        if not certificates:
            raise ValueError("no PEM certificate in trustRoot")
        return ssl.trustRootFromCertificates(certificates)
    return trustRoot


def loadClientCertificate(clientCertificate: Any) -> Any:
    """
    C{None}, a C{PrivateCertificate}, a path to / bytes of PEM holding both
    certificate and key, or a (certificate path, key path) pair.
    """
    from twisted.internet import ssl

    if clientCertificate is None or isinstance(clientCertificate, ssl.PrivateCertificate):
        return clientCertificate
    if isinstance(clientCertificate, tuple):
        certPath, keyPath = clientCertificate
        return ssl.PrivateCertificate.loadPEM(_readPEM(certPath) + b"\n" + _readPEM(keyPath))
    return ssl.PrivateCertificate.loadPEM(_readPEM(clientCertificate))


def clientConnectionCreator(
    hostname: str,
    contextFactory: Any,
    trustRoot: Any,
    clientCertificate: Any,
    acceptableProtocols: Any = None,
) -> Any:
    """The connection creator for C{hostname}: C{contextFactory} if given
    (the caller's responsibility), else L{VerifyingClientTLSOptions} with
    the trust root, client certificate and ALPN protocols to offer."""
    if contextFactory is not None:
        return contextFactory
    return VerifyingClientTLSOptions(
        hostname,
        trustRoot=loadTrustRoot(trustRoot),
        clientCertificate=loadClientCertificate(clientCertificate),
        acceptableProtocols=acceptableProtocols,
    )


@implementer(IStreamClientEndpoint)
class TLSClientEndpoint:
    """
    C{wrapClientTLS} on a given clock: Twisted's TLS layer gathers small
    writes until the next turn of its clock, the global reactor unless
    told otherwise, so a connection made with another reactor (a
    C{MemoryReactorClock} in tests) would hold them back.
    """

    def __init__(self, creator: Any, endpoint: Any, clock: Any) -> None:
        self.creator = creator
        self.endpoint = endpoint
        self.clock = clock

    def connect(self, protocolFactory: Any) -> Any:
        from twisted.protocols.tls import TLSMemoryBIOFactory

        tlsFactory = TLSMemoryBIOFactory(self.creator, True, protocolFactory, self.clock)
        return self.endpoint.connect(tlsFactory).addCallback(lambda tls: tls.wrappedProtocol)
