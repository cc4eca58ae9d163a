"""
The hand-off: make another protocol the receiver of a live transport.

After an HTTP upgrade (or after sniffing the first bytes of a connection)
the protocol that read the request steps aside and a new protocol takes the
transport over, starting with the bytes that arrived after the request.
Every front end -- the server upgrade protocol, the twisted.web resource,
the client handshake, the proxy tunnel and port sharing -- does this the
same way, through L{handOff}.

Twisted's transports keep their protocol in a public attribute --
C{protocol} for TCP and UNIX connections, C{wrappedProtocol} for Twisted's
TLS layer and other protocol wrappers -- so the switch is a re-assignment
of that attribute; nobody else's methods are patched.  For a transport of
unknown shape the old protocol stays in place and forwards.
"""

from __future__ import annotations

from typing import Any

__all__ = ["handOff"]

_ATTRIBUTES = ("wrappedProtocol", "protocol")


def _switchProtocol(transport: Any, old: Any, new: Any) -> bool:
    """
    Make C{new} the protocol that C{transport} delivers data and
    C{connectionLost} to, in place of C{old}: the first step of L{handOff}.

    @return: C{True} if the transport now calls C{new} directly; C{False}
        if the transport's shape is unknown and C{old} must forward.
    """
    # Only look at the transport's own attributes: protocol wrappers forward
    # unknown attribute lookups to the transport they wrap.
    own = getattr(transport, "__dict__", {})
    for name in _ATTRIBUTES:
        if own.get(name) is old:
            setattr(transport, name, new)
            return True
    return False


def handOff(old: Any, new: Any, transport: Any, trailingData: bytes = b"") -> Any | None:
    """
    Give C{transport} to C{new} in place of C{old}: switch the transport's
    protocol, call C{new.makeConnection(transport)}, then feed it
    C{trailingData} (the bytes read past the handshake) if it is still
    connected.

    @return: C{None} when the transport now calls C{new} directly;
        otherwise C{new}, and C{old} must keep forwarding C{dataReceived}
        and C{connectionLost} to it.
    """
    switched = _switchProtocol(transport, old, new)
    new.makeConnection(transport)
    # makeConnection may have closed the connection (an app that refuses in
    # connectionMade): then the bytes have nobody to go to.
    if trailingData and getattr(new, "connected", True):
        new.dataReceived(trailingData)
    return None if switched else new
