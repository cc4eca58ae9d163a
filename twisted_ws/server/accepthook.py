"""
Asking the application about an upgrade request: the accept hook's answer
(now or through a Deferred or coroutine) and the open timeout while it
decides, shared by every server front end (the upgrade protocol, the
twisted.web resource).
"""

from __future__ import annotations

from collections.abc import Callable
from inspect import iscoroutine
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..core.acceptance import Accept, Reject
from ..core.errors import HandshakeError
from ..core.handshake import Accepted, HandshakeRequest, Rejected, ServerHandshake
from ..timers import Timer, timersFor

if TYPE_CHECKING:
    from ..protocol import WebSocketProtocol
    from .factory import WebSocketServerFactory

__all__ = [
    "AcceptHook", "resolveDecision", "runAcceptHook", "PendingHandshake", "WebRequestHandshake"]

_log = Logger()

#: An accept hook: given the request, return None / an Accept / a Reject (or
#: raise Reject), directly or through a Deferred.
AcceptHook = Callable[[HandshakeRequest], Any]


def resolveDecision(decision: Any) -> Accept:
    """
    Normalise what an accept hook answered: C{None} or C{True} accept with
    the defaults, an L{Accept} is returned as is, and a L{Reject} (or
    C{False}, a plain 403) is raised.

    @raise Reject: the hook refused.
    @raise TypeError: the hook answered something else.
    """
    if decision is None or decision is True:
        return Accept()
    if isinstance(decision, Accept):
        return decision
    if isinstance(decision, Reject):
        raise decision
    if decision is False:
        raise Reject()
    raise TypeError(f"an accept hook must answer None, Accept or Reject, not {decision!r}")


def runAcceptHook(
    factory: WebSocketServerFactory,
    request: HandshakeRequest,
    accepted: Callable[[Accept | None], None],
    refused: Callable[[HandshakeError], None],
) -> Deferred[Any] | None:
    """
    Ask C{factory.acceptRequest} about C{request} and report the answer
    exactly once: C{accepted(Accept or None)} (C{None}: the defaults) or
    C{refused(HandshakeError)}.

    Shared by every server front end (the upgrade protocol, the twisted.web
    resource).  A hook that answers at once (the common case) is handled
    without any Deferred; one that returns a Deferred or a coroutine is
    waited for.  A crash in the hook, or in C{accepted}, is logged and
    refused with 500, telling the client nothing about the server.

    @return: the Deferred still pending (cancel it to give up), or C{None}
        once decided.
    """
    try:
        decision = factory.acceptRequest(request)
    except BaseException:
        _decide(Failure(), accepted, refused)
        return None
    if decision is None:
        # Accepted with the defaults: what a server without a hook answers
        # every time, so it skips the general path.
        _proceed(None, accepted, refused)
        return None
    if iscoroutine(decision):
        decision = Deferred.fromCoroutine(decision)
    if isinstance(decision, Deferred):
        decision.addBoth(_decide, accepted, refused)
        return decision
    _decide(decision, accepted, refused)
    return None


def _decide(
    result: Any,
    accepted: Callable[[Accept | None], None],
    refused: Callable[[HandshakeError], None],
) -> None:
    """Report an accept hook's answer (or failure) to L{runAcceptHook}'s caller."""
    if isinstance(result, Failure):
        if result.check(CancelledError):
            return  # the caller gave up (timeout, connection lost)
        if result.check(HandshakeError):
            refused(result.value)  # type: ignore[arg-type]  # check() said HandshakeError
            return
        _log.failure("WebSocket accept hook failed", result)
        refused(HandshakeError(500, "Internal Server Error"))
        return
    try:
        accept = resolveDecision(result)
    except HandshakeError as e:
        refused(e)
        return
    except TypeError:
        _log.failure("WebSocket accept hook gave an invalid answer")
        refused(HandshakeError(500, "Internal Server Error"))
        return
    _proceed(accept, accepted, refused)


def _proceed(
    accept: Accept | None,
    accepted: Callable[[Accept | None], None],
    refused: Callable[[HandshakeError], None],
) -> None:
    """Call C{accepted}; a crash in it is logged and refused with 500."""
    try:
        accepted(accept)
    except BaseException:
        _log.failure("WebSocket handshake failed")
        refused(HandshakeError(500, "Internal Server Error"))


class PendingHandshake:
    """
    One opening handshake between a valid request and its answer, shared
    by the upgrade protocol and the twisted.web resource: the open timeout,
    the accept hook's pending answer, and turning the answer into the
    core's L{Accepted} or L{Rejected} outcome.

    Subclasses provide C{factory}, C{handshake} (a L{ServerHandshake}) and
    the I/O: C{_peer()}, C{_sendRefusal(rejected)} and
    C{_switch(protocol, accepted)}, and may add C{_extraHeaders()}.
    C{_done} turns true once the handshake is answered either way.
    """

    factory: WebSocketServerFactory
    handshake: ServerHandshake
    _done = False
    _timer: Timer | None = None
    _decision: Deferred[Any] | None = None

    def _peer(self) -> Any:
        raise NotImplementedError

    def _sendRefusal(self, rejected: Rejected) -> None:
        raise NotImplementedError

    def _switch(self, protocol: WebSocketProtocol, accepted: Accepted) -> None:
        raise NotImplementedError

    def _extraHeaders(self) -> list[tuple[str, str]]:
        return []

    def _askApplication(self, request: HandshakeRequest) -> None:
        """Run the accept hook; its answer comes to L{_accepted} or L{_reject}."""
        self._decision = runAcceptHook(self.factory, request, self._accepted, self._reject)

    def _accepted(self, decision: Accept | None) -> None:
        self._decision = None
        if self._done:
            return
        protocol, accepted = self.factory.completeHandshake(
            self.handshake, decision, self._extraHeaders()
        )
        self._finish()
        self._switch(protocol, accepted)

    def _reject(self, error: HandshakeError) -> None:
        self._decision = None
        if self._done:
            return
        self._refuse(self.handshake.reject(error))

    def _refuse(self, rejected: Rejected) -> None:
        """Send the core's refusal and tell the factory about it."""
        self._finish()
        assert rejected.error is not None
        self.factory.noteRejection(rejected.error, rejected.request, self._peer())
        self._sendRefusal(rejected)

    def _startTimer(self) -> None:
        timeout = self.factory.options.openTimeout
        if timeout is not None:
            self._timer = timersFor(self.factory.clock).callLater(timeout, self._timedOut)

    def _finish(self) -> None:
        self._done = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timedOut(self) -> None:
        self._timer = None
        if self._done:
            return
        d = self._decision
        self._reject(HandshakeError(408, "opening handshake timed out"))
        if d is not None:
            d.cancel()

    def _abandon(self) -> None:
        """The client went away: stop the timer, cancel a pending hook."""
        self._finish()
        d, self._decision = self._decision, None
        if d is not None:
            d.cancel()


class WebRequestHandshake(PendingHandshake):
    """
    A L{PendingHandshake} whose request came through twisted.web (an HTTP/1.1
    upgrade to a L{WebSocketResource}, or an HTTP/2 extended CONNECT): the
    web request gives the peer, and its end while the hook decides abandons
    the handshake.  Subclasses set C{request} and provide the refusal and
    the switch.
    """

    request: Any

    def start(self) -> None:
        """Start the open timeout and ask the application."""
        self._startTimer()
        self.request.notifyFinish().addErrback(self._requestEnded)
        request = self.handshake.request
        assert request is not None
        self._askApplication(request)

    def _requestEnded(self, failure: Failure) -> None:
        # The client went away while the hook was deciding.
        if not self._done:
            self._abandon()

    def _peer(self) -> Any:
        return self.request.getClientAddress()

