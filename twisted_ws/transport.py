"""
Small helpers about a connection's transport that the protocol, the server
and the client share: they read or tune the transport without owning it.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IConsumer, IPushProducer, ITCPTransport

from .core.connection import WRITE_SIZE

__all__ = [
    "IStreamTransport", "setNoDelay", "raiseSendLimit", "tuneForFrames", "transportBacklog",
    "peerCertificate",
]  # fmt: skip


class IStreamTransport(ITCPTransport, IConsumer, IPushProducer):
    """
    For the type checker: what the protocols here use of the transport that
    makeConnection gives them (writing, closing and aborting, flow control
    both ways, the addresses).  Twisted's TCP and TLS transports and
    twisted_ws's HTTP/2 stream transport all have it.  Protocols declare
    C{transport: IStreamTransport}: their methods run once connected.
    """


def setNoDelay(transport: Any) -> None:
    """
    Turn Nagle's algorithm off: a small frame must leave at once.

    Works through TLS (Twisted's TLS protocol forwards to the TCP
    transport) and does nothing on transports without TCP (UNIX sockets).
    """
    setter = getattr(transport, "setTcpNoDelay", None)
    if setter is not None:
        try:
            setter(True)
        except (OSError, AttributeError, NotImplementedError):
            pass


def raiseSendLimit(transport: Any, size: int = WRITE_SIZE + WRITE_SIZE // 8) -> None:
    """
    Let a socket transport hand up to C{size} bytes to one send() instead of
    Twisted's 128 KiB (its C{SEND_LIMIT}), so that a write of the core (up to
    C{WRITE_SIZE} of payload and the frame headers) leaves in one reactor
    turn.  Transports without that attribute (TLS, HTTP/2 streams) are left
    alone.
    """
    # Looked up on the class: a TLS wrapper forwards unknown attributes to
    # the TCP transport beneath, where setting it here would not reach.
    limit = getattr(type(transport), "SEND_LIMIT", None)
    if isinstance(limit, int) and limit < size:
        transport.SEND_LIMIT = size


def tuneForFrames(transport: Any) -> None:
    """Tune an open WebSocket's transport: no Nagle, one send() per write of the core."""
    setNoDelay(transport)
    raiseSendLimit(transport)


def transportBacklog(transport: Any) -> int | None:
    """
    Bytes a transport holds unsent, for the log only: Twisted offers no
    public count, so read its file descriptor's buffers (under TLS, those of
    the TCP transport beneath), or return C{None}.
    """
    for _ in range(3):
        if transport is None:
            return None
        data = getattr(transport, "dataBuffer", None)
        if isinstance(data, (bytes, bytearray, memoryview)):
            extra = getattr(transport, "_tempDataLen", 0)
            return len(data) + (extra if isinstance(extra, int) else 0)
        transport = getattr(transport, "transport", None)
    return None



def peerCertificate(transport: Any) -> Any:
    """
    The certificate the peer of a TLS C{transport} presented, as a
    C{cryptography.x509.Certificate}; C{None} for plain transports and
    peers without one.  Servers use it for mutual-TLS authentication.
    """
    from twisted.internet.interfaces import ISSLTransport

    if transport is None or not ISSLTransport.providedBy(transport):
        return None
    try:
        certificate = transport.getPeerCertificate()
    except Exception:  # no handshake yet, or the connection is gone
        return None
    if certificate is None:
        return None
    toCryptography = getattr(certificate, "to_cryptography", None)
    return toCryptography() if toCryptography is not None else certificate
