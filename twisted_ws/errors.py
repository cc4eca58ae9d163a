"""
Errors of the Twisted glue that are not about the handshake or the wire
(those live in L{twisted_ws.core.errors}, and the client's own in
L{twisted_ws.client.errors}).
"""

from __future__ import annotations

from .core.closecodes import CloseInfo
from .core.errors import WebSocketError

__all__ = ["ConnectionClosed"]


class ConnectionClosed(WebSocketError):
    """
    The connection is closed (or closing) so the operation cannot complete;
    C{info} tells how it ended when that is known.
    """

    def __init__(self, info: CloseInfo | None = None) -> None:
        super().__init__(info)
        self.info = info
