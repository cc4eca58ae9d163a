"""
The clock a factory or protocol uses when the caller gave none: the global
reactor.

It is looked up when first needed, not when a module is imported: importing
C{twisted.internet.reactor} installs the default reactor, and an application
(or C{twistd --reactor}) must still be free to install another one after
importing twisted_ws.
"""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime

__all__ = ["defaultClock"]


def defaultClock() -> IReactorTime:
    """
    The global reactor, as an L{IReactorTime}.

    Tests pass a C{Clock} or C{MemoryReactorClock} instead, so that every
    timeout is driven by C{Clock.advance}.
    """
    from twisted.internet import reactor

    return reactor
