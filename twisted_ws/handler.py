"""
A server connection run by one coroutine: C{async def handler(ws)} (see
L{WebSocketServerFactory.forHandler}).

The handler's outcome ends the connection: its return closes with 1000,
its exception with 1011 (logged with the traceback), its cancellation with
1001.  The handlers still running when the factory stops (its last port
stops listening, e.g. on service stop) are cancelled.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from .core.closecodes import CloseCode
from .errors import ConnectionClosed
from .runner import isCancellation, runCoroutine
from .websocket import CoroutineProtocol, WebSocket

__all__ = ["Handler", "HandlerProtocol", "HandlerProtocols"]

_log = Logger()

#: What C{forHandler} takes: C{async def handler(ws)}.
Handler = Callable[[WebSocket], Awaitable[Any]]


def startHandler(handler: Handler, websocket: WebSocket) -> Deferred[Any]:
    """Call C{handler(websocket)}; a Deferred of its outcome."""
    try:
        result = handler(websocket)
    except BaseException:
        return fail()
    if inspect.iscoroutine(result):
        return runCoroutine(result)
    if isinstance(result, Deferred):
        return result
    return succeed(result)


class HandlerProtocol(CoroutineProtocol):
    """A L{CoroutineProtocol} whose connection is run by C{handler}."""

    def __init__(
        self,
        handler: Handler,
        running: set[Deferred[Any]] | None = None,
        queueSize: int | None = None,
        streamMessages: bool | None = None,
    ) -> None:
        super().__init__(queueSize, streamMessages)
        self.handler = handler
        self._running = running
        self.handled: Deferred[Any] | None = None

    def connectionMade(self) -> None:
        super().connectionMade()
        d = self.handled = startHandler(self.handler, self.websocket)  # type: ignore[arg-type]  # made by super().connectionMade()
        running = self._running
        if running is not None and not d.called:
            running.add(d)
            d.addBoth(self._forget, d)
        d.addCallbacks(self._handlerReturned, self._handlerFailed)

    def _forget(self, result: object, d: Deferred[Any]) -> object:
        self._running.discard(d)  # type: ignore[union-attr]  # added only when there is a _running set
        return result

    def _handlerReturned(self, result: object) -> None:
        if self.isOpen:
            self.close(CloseCode.NORMAL_CLOSURE)

    def _handlerFailed(self, failure: Failure) -> None:
        if isCancellation(failure.type):  # type: ignore[arg-type]  # a Failure always has its type
            if self.isOpen:
                self.close(CloseCode.GOING_AWAY)
            return
        if failure.check(ConnectionClosed) and not self.isOpen:
            return  # the connection ended under it: nothing went wrong here
        _log.failure(
            "WebSocket handler {handler!r} failed; closing the connection with 1011",
            failure,
            handler=self.handler,
        )
        if self.isOpen:
            self.close(CloseCode.INTERNAL_ERROR, "internal error")


class HandlerProtocols:
    """
    The C{protocol} of a factory made by C{forHandler}: builds a
    L{HandlerProtocol} per connection and keeps the handlers running, so
    that L{cancelAll} can stop them.
    """

    def __init__(self, handler: Handler, queueSize: int = 16, streamMessages: bool = False) -> None:
        if not callable(handler):
            raise TypeError(f"the handler must be callable, not {handler!r}")
        if queueSize < 1:
            raise ValueError("queueSize must be at least 1")
        self.handler = handler
        self.queueSize = queueSize
        self.streamMessages = streamMessages
        self.running: set[Deferred[Any]] = set()

    def __call__(self) -> HandlerProtocol:
        return HandlerProtocol(self.handler, self.running, self.queueSize, self.streamMessages)

    def cancelAll(self) -> None:
        """Cancel every running handler: each connection closes with 1001."""
        for d in list(self.running):
            d.cancel()
