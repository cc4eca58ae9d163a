"""
Helpers shared by the tests: client-side frames, parsing what a server wrote,
a loopback server fixture and a self-signed certificate.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

from twisted_ws.core.frames import FrameParser, serializeFrame
from twisted_ws.core.handshake import generateKey

KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def upgradeRequest(path: str = "/", extra: str = "", key: str = KEY) -> bytes:
    """A valid client upgrade request (extra: more header lines, CRLF-ended)."""
    return (
        f"GET {path} HTTP/1.1\r\n"
        "Host: example.com\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        f"{extra}\r\n"
    ).encode("latin-1")


def clientFrame(opcode: int, payload: bytes, fin: bool = True, rsv: int = 0) -> bytes:
    """A masked frame, as a client sends it."""
    return serializeFrame(opcode, payload, fin, rsv, maskKey=os.urandom(4))


def serverFrames(data: bytes) -> list[tuple[int, bool, bytes]]:
    """Parse the frames a server wrote (after its handshake response)."""
    parser = FrameParser(requireMask=False)
    out = []
    for opcode, fin, _rsv, payload, part in parser.feed(data):
        assert part == 0, "test helper expects whole frames"
        out.append((opcode, fin, payload))
    assert parser.error is None, parser.error
    return out


def splitResponse(data: bytes) -> tuple[bytes, bytes]:
    """Split a server's output into the HTTP head and what follows."""
    head, sep, rest = data.partition(b"\r\n\r\n")
    assert sep, data
    return head + sep, rest


def makeCertificate(directory: Path, hostname: str = "localhost") -> tuple[Path, Path]:
    """A self-signed certificate for C{hostname} and 127.0.0.1: (cert, key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(hostname), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certPath = directory / "cert.pem"
    keyPath = directory / "key.pem"
    certPath.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyPath.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return certPath, keyPath


__all__ = [
    "KEY",
    "upgradeRequest",
    "clientFrame",
    "serverFrames",
    "splitResponse",
    "makeCertificate",
    "generateKey",
]
