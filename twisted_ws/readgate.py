"""
L{ReadGate}: whether a WebSocket reads from its transport, decided from the
two reasons to stop and the one reason to go on regardless.

Reading stops while our output is backed up (the transport paused us because
the peer does not read: a peer that sends but never reads must not make us
buffer without bound) or while the application asked for a pause
(C{pauseReading}); once the connection is closing it goes on whatever the
reasons, so the peer's Close gets through.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ReadGate"]


class ReadGate:
    """
    Pauses and resumes a transport's reading as the reasons change; the
    transport is told only when the outcome changes.

    @ivar outputBlocked: the transport paused us: the peer is not reading.
    @ivar appPaused: the application called C{pauseReading}.
    @ivar closing: the close handshake is under way: always read.
    """

    __slots__ = ("transport", "outputBlocked", "appPaused", "closing", "_stopped")

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.outputBlocked = False
        self.appPaused = False
        self.closing = False
        self._stopped = False

    def setOutputBlocked(self, blocked: bool) -> None:
        self.outputBlocked = blocked
        self._apply()

    def setAppPaused(self, paused: bool) -> None:
        self.appPaused = paused
        self._apply()

    def setClosing(self) -> None:
        self.closing = True
        self._apply()

    def detach(self) -> None:
        """The transport is gone: tell it nothing more."""
        self.transport = None

    def _apply(self) -> None:
        stop = (self.outputBlocked or self.appPaused) and not self.closing
        if stop != self._stopped and self.transport is not None:
            self._stopped = stop
            if stop:
                self.transport.pauseProducing()
            else:
                self.transport.resumeProducing()
