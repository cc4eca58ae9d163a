"""
Running a coroutine on Twisted with a short path for WebSocket waits.

L{runCoroutine} does what C{Deferred.fromCoroutine} does -- drive a
coroutine that awaits Deferreds, return a cancellable Deferred of its
result -- and two things more:

  - A L{Waiter} (a Deferred that a WebSocket hands to a coroutine waiting
    for the next message or for room to send) is resumed by a direct
    C{coroutine.send}, without a callback chain: that is most of the cost
    of C{async for message in ws} otherwise.  Under any other driver a
    Waiter is an ordinary Deferred.
  - An asyncio future (C{await asyncio.sleep(1)}, an C{asyncio.Task}) is
    awaited through C{Deferred.fromFuture}, so a handler can await asyncio
    code when the reactor is C{asyncioreactor}.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Coroutine, Generator
from contextvars import copy_context
from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.python.failure import Failure

__all__ = ["Waiter", "isCancellation", "runCoroutine", "waitFor"]


class Waiter(Deferred[Any]):
    """
    A Deferred a coroutine awaits through L{waitFor}.  L{resume} delivers
    the result: straight into the coroutine when L{runCoroutine} drives it,
    else by firing the Deferred.
    """

    #: Set by the runner that took this waiter on: called with the result.
    resumer: Callable[[object], None] | None = None

    def resume(self, result: object) -> bool:
        """
        Deliver C{result} (a L{Failure} to raise it); C{True} when it went
        straight into the coroutine and the waiter stayed unfired (so it
        can be used again).
        """
        resumer = self.resumer
        if resumer is not None:
            self.resumer = None
            resumer(result)
            return True
        if isinstance(result, Failure):
            self.errback(result)
        else:
            self.callback(result)
        return False


@types.coroutine
def waitFor(waiter: Waiter) -> Generator[Waiter, Any, Any]:
    """
    Await C{waiter}.  (Awaiting a Deferred directly would read its result
    back from the Deferred, which a direct resume leaves unset.)
    """
    return (yield waiter)


def isCancellation(excType: type[BaseException]) -> bool:
    """Is C{excType} Twisted's or asyncio's C{CancelledError}?"""
    if issubclass(excType, CancelledError):
        return True
    asyncio = sys.modules.get("asyncio")
    return asyncio is not None and issubclass(excType, asyncio.CancelledError)


def _asyncioFuture(value: object) -> bool:
    asyncio = sys.modules.get("asyncio")
    return asyncio is not None and asyncio.isfuture(value)


class _Run:
    """One coroutine being driven: see L{runCoroutine}."""

    __slots__ = ("coro", "context", "deferred", "awaiting", "resumer")

    def __init__(self, coro: Coroutine[Any, Any, Any]) -> None:
        self.coro = coro
        self.context = copy_context()
        self.deferred: Deferred[Any] = Deferred(self._cancel)
        self.awaiting: Deferred[Any] | None = None
        self.resumer = self.step  # bound once, handed to every Waiter

    def step(self, result: object) -> None:
        """Send C{result} in (raise it if a L{Failure}); run to the next wait."""
        coro, run = self.coro, self.context.run
        self.awaiting = None
        while True:
            try:
                if isinstance(result, Failure):
                    yielded = run(result.throwExceptionIntoGenerator, coro)
                else:
                    yielded = run(coro.send, result)
            except StopIteration as e:
                if not self.deferred.called:  # not if cancelled meanwhile
                    self.deferred.callback(e.value)
                return
            except BaseException:
                failure = Failure()
                if not self.deferred.called:
                    self.deferred.errback(failure)
                return
            if type(yielded) is Waiter:
                self.awaiting = yielded
                yielded.resumer = self.resumer
                return
            if not isinstance(yielded, Deferred):
                if not _asyncioFuture(yielded):
                    result = yielded  # as inlineCallbacks: a plain value comes back
                    continue
                yielded = Deferred.fromFuture(yielded)
            # The callback runs while the Deferred still holds the result,
            # which is what Deferred.__await__ reads on resumption.
            box: list[Any] = [True]  # True while addBoth runs
            self.awaiting = yielded
            yielded.addBoth(self._fired, box)
            if box[0]:
                box[0] = False
                return  # _fired resumes us later
            self.awaiting = None
            result = box[1]

    def _fired(self, result: object, box: list[Any]) -> None:
        if box[0]:
            box[0] = False
            box.append(result)  # fired during addBoth: the loop goes on
        else:
            self.step(result)

    def _cancel(self, deferred: Deferred[Any]) -> None:
        """Cancel what the coroutine awaits: it sees CancelledError there."""
        awaiting = self.awaiting
        if awaiting is None:
            return
        if type(awaiting) is Waiter and awaiting.resumer is not None:
            awaiting.resumer = None
            awaiting.addBoth(self._fired, [False])
        awaiting.cancel()


def runCoroutine(coro: Coroutine[Any, Any, Any]) -> Deferred[Any]:
    """
    Start C{coro} now; return a Deferred of its result.  Cancelling the
    Deferred cancels what the coroutine awaits (it sees C{CancelledError}
    there, as with C{Deferred.fromCoroutine}).
    """
    run = _Run(coro)
    run.step(None)
    return run.deferred
