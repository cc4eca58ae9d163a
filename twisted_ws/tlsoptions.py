"""
TLS settings for C{wss://} clients: trust roots and client certificates
given as paths, PEM bytes or Twisted objects, turned into the connection
creator that C{optionsForClientTLS} builds (hostname verification on).
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["clientConnectionCreator", "loadTrustRoot", "loadClientCertificate"]


def _readPEM(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    with open(os.fspath(value), "rb") as f:
        return f.read()


def loadTrustRoot(trustRoot: Any) -> Any:
    """
    C{None} (the platform's CAs), an C{IOpenSSLTrustRoot}, a
    C{Certificate}, or a path to / bytes of PEM CA certificates.
    """
    from twisted.internet import ssl

    if trustRoot is None:
        return None
    if isinstance(trustRoot, ssl.Certificate):
        return ssl.trustRootFromCertificates([trustRoot])
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


def clientConnectionCreator(hostname: str, contextFactory: Any, trustRoot: Any, clientCertificate: Any) -> Any:
    """The connection creator for C{hostname}: C{contextFactory} if given, else
    C{optionsForClientTLS} with the trust root and client certificate."""
    if contextFactory is not None:
        return contextFactory
    from twisted.internet.ssl import optionsForClientTLS

    return optionsForClientTLS(
        hostname,
        trustRoot=loadTrustRoot(trustRoot),
        clientCertificate=loadClientCertificate(clientCertificate),
    )
