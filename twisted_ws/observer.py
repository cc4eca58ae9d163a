"""
Watching connections from outside the application: L{IConnectionObserver}
and the L{Traffic} counters.

A factory's C{observer} is told when each of its WebSocket connections opens
and closes, so that counting connections (twistd's status page, metrics) needs
no subclass of the application's protocol and no wrapped transport.  Traffic
is counted by the core connection with plain integer additions and read only
when someone asks, so the counters cost nothing measurable on the hot path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from zope.interface import Interface

if TYPE_CHECKING:
    from .core.closecodes import CloseInfo
    from .protocol import WebSocketProtocol

__all__ = ["IConnectionObserver", "Traffic"]


class IConnectionObserver(Interface):
    """
    Told about each WebSocket connection of a factory (its C{observer}
    attribute).  Exceptions raised here are logged and never break the
    connection.
    """

    def connectionOpened(protocol: WebSocketProtocol) -> None:
        """The WebSocket is open (after the handshake)."""

    def connectionClosed(protocol: WebSocketProtocol, info: CloseInfo) -> None:
        """
        The connection is gone; C{info} is its L{CloseInfo}.  Called before
        the application's C{connectionClosed}.
        """


class Traffic(NamedTuple):
    """What went over one connection so far."""

    #: Bytes received on the wire (frame headers included).
    bytesIn: int
    #: Bytes written to the wire (frame headers included).
    bytesOut: int
    #: Data messages received (a streamed message counts once, at its end).
    messagesIn: int
    #: Data messages sent (a streamed message counts once, at its last fragment).
    messagesOut: int
