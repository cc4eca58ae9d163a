"""
Transport switching: make another protocol the receiver of a live transport.

After an HTTP upgrade (or after sniffing the first bytes of a connection)
the protocol that read the request steps aside and a new protocol takes the
transport over.  Twisted's transports keep their protocol in a public
attribute -- C{protocol} for TCP and UNIX connections, C{wrappedProtocol}
for Twisted's TLS layer and other protocol wrappers -- so the switch is a
re-assignment of that attribute; nobody else's methods are patched.  For a
transport of unknown shape, L{switchProtocol} says so and the caller keeps
forwarding bytes itself.
"""

from __future__ import annotations

from typing import Any

__all__ = ["switchProtocol"]

_ATTRIBUTES = ("wrappedProtocol", "protocol")


def switchProtocol(transport: Any, old: Any, new: Any) -> bool:
    """
    Make C{new} the protocol that C{transport} delivers data and
    C{connectionLost} to, in place of C{old}.

    Does not call C{new.makeConnection}: the caller does that once the
    switch is made (and then feeds it any bytes C{old} had read ahead).

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
