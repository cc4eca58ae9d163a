"""
L{MessageWriter}: one outgoing message sent piece by piece (see
L{WebSocketProtocol.beginMessage}), for messages too large, or produced too
slowly, to build whole.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .protocol import WebSocketProtocol

__all__ = ["MessageWriter"]


class MessageWriter:
    """
    Sends one message in fragments: C{write(data)} sends a fragment,
    C{finish(data=b"")} sends the last one.  Text pieces are C{str} (each
    must be whole characters), binary pieces C{bytes}.  No other message can
    be sent until C{finish}.
    """

    def __init__(self, protocol: WebSocketProtocol, isText: bool) -> None:
        self._protocol = protocol
        self.isText = isText
        self.finished = False

    def _send(self, data: str | bytes, fin: bool) -> None:
        if self.finished:
            raise RuntimeError("this message is finished")
        if isinstance(data, str):
            if not self.isText:
                raise TypeError("binary messages take bytes")
            payload = data.encode("utf-8")
        else:
            if self.isText:
                raise TypeError("text messages take str")
            payload = bytes(data)
        if fin:
            self.finished = True
            self._protocol._writer = None
        conn = self._protocol._conn
        assert conn is not None
        conn.sendFragment(payload, self.isText, fin)

    def write(self, data: str | bytes) -> None:
        """Send the next fragment."""
        self._send(data, False)

    def finish(self, data: str | bytes = b"") -> None:
        """Send the final fragment (possibly empty) and end the message."""
        if data == b"" and self.isText:
            data = ""
        self._send(data, True)
