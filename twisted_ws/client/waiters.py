"""
A one-shot outcome that any number of callers can wait for, each with its
own Deferred (so one caller cancelling does not take the result from the
others, but cancels the underlying attempt through the canceller).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.python.failure import Failure

__all__ = ["Waiters"]


class Waiters:
    """Deferreds waiting for one outcome; each caller gets its own."""

    def __init__(self, canceller: Callable[[], None]) -> None:
        self._canceller = canceller
        self._waiting: list[Deferred[Any]] = []
        self.result: Any = None
        self.done = False

    def wait(self) -> Deferred[Any]:
        if self.done:
            return fail(self.result) if isinstance(self.result, Failure) else succeed(self.result)
        d: Deferred[Any] = Deferred(lambda _: self._canceller())
        self._waiting.append(d)
        return d

    def fire(self, result: Any) -> None:
        if self.done:
            return
        self.done = True
        self.result = result
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            if isinstance(result, Failure):
                d.errback(result)
            else:
                d.callback(result)
