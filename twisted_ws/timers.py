"""
One shared timer service per clock for the per-connection timeouts (open,
close, write deadline, keepalive): arming and cancelling cost a dict
insertion and deletion, and the clock holds ONE delayed call however many
connections are timed (none while no timer is armed).

Why not a C{callLater} each: a connection arms and cancels several timeouts
in its life (three on even the shortest), and almost none of them ever
fires.  Each Twisted C{DelayedCall} is a large object pushed onto, and
later lazily dropped from, the reactor's heap; at 10,000 connections those
are 10,000 heap entries the reactor sifts through for nothing.

Why it stays exact (no coarse wheel): every connection of a factory uses
the same few timeout values, and timers armed with the same delay expire in
the order they were armed.  So each distinct delay gets a FIFO queue (an
C{OrderedDict}: its first key is found in constant time however many were
deleted before it, unlike a plain dict's), whose head is its earliest
deadline, and the one delayed call is set for the earliest head.  A timer fires at its exact
deadline, as with C{callLater}, which the timeout tests (driven by
C{Clock.advance}) rely on.

The trade-offs: cancelling a queue's head does not move the delayed call
(that would cost a reschedule per cancel); the call then fires early,
finds nothing due and is set for the new earliest head: at most one spare
wake-up per cancelled head, and about one per timeout period when, as
usual, timeouts are cancelled long before they are due.  And should the clock
step backwards, a timer armed after the step waits behind earlier ones of
its queue and may fire late by up to the step.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any
from weakref import WeakKeyDictionary

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

__all__ = ["Timer", "TimerService", "timersFor"]

#: Deadlines this close to "now" are due: the delayed call's own time is
#: computed as now + delay and may round a hair below the deadline.
_SLACK = 1e-9

_log = Logger()


_Queue = OrderedDict  # of Timer -> None, in arming order


class Timer:
    """
    One armed timeout; L{cancel} it when it is no longer needed.

    @ivar deadline: when it fires, in the clock's seconds.
    """

    __slots__ = ("deadline", "_function", "_queue", "_service")

    def __init__(
        self, deadline: float, function: Callable[[], Any], queue: _Queue[Timer, None], service: TimerService
    ) -> None:
        self.deadline = deadline
        self._function = function
        self._queue: _Queue[Timer, None] | None = queue
        self._service = service

    def active(self) -> bool:
        """Whether it is still armed (neither fired nor cancelled)."""
        return self._queue is not None

    def cancel(self) -> None:
        """Disarm it; nothing happens if it already fired or was cancelled."""
        queue = self._queue
        if queue is None:
            return
        self._queue = None
        del queue[self]
        service = self._service
        service._armed -= 1
        if not service._armed:
            service._idle()

    def __repr__(self) -> str:
        state = "active" if self._queue is not None else "inactive"
        return f"<Timer {state} at {self.deadline!r}: {self._function!r}>"


class TimerService:
    """
    The timeouts of every connection on one clock (see the module
    docstring); get the shared one with L{timersFor}.
    """

    def __init__(self, clock: IReactorTime) -> None:
        self.clock = clock
        self._queues: dict[float, OrderedDict[Timer, None]] = {}
        self._call: IDelayedCall | None = None
        self._callTime = 0.0
        self._armed = 0

    def callLater(self, delay: float, function: Callable[[], Any]) -> Timer:
        """
        Call C{function()} in C{delay} seconds, unless the returned
        L{Timer} is cancelled first.
        """
        queue = self._queues.get(delay)
        if queue is None:
            queue = self._queues[delay] = OrderedDict()
        deadline = self.clock.seconds() + delay
        timer = Timer(deadline, function, queue, self)
        queue[timer] = None
        self._armed += 1
        if self._call is None or deadline < self._callTime:
            self._schedule(deadline)
        return timer

    def armed(self) -> list[Timer]:
        """The armed timers, earliest first (for tests and debugging)."""
        return sorted((t for q in self._queues.values() for t in q), key=lambda t: t.deadline)

    def _earliest(self) -> float | None:
        """The earliest deadline armed, dropping the queues left empty."""
        earliest = None
        empty = None
        for delay, queue in self._queues.items():
            if queue:
                deadline = next(iter(queue)).deadline
                if earliest is None or deadline < earliest:
                    earliest = deadline
            else:
                empty = [delay] if empty is None else [*empty, delay]
        for delay in empty or ():
            del self._queues[delay]
        return earliest

    def _idle(self) -> None:
        """The last timer was cancelled: the clock holds nothing for us."""
        call, self._call = self._call, None
        if call is not None and call.active():
            call.cancel()

    def _schedule(self, deadline: float) -> None:
        delay = max(0.0, deadline - self.clock.seconds())
        call = self._call
        self._callTime = deadline
        if call is not None and call.active():
            call.reset(delay)
        else:
            self._call = self.clock.callLater(delay, self._fire)

    def _fire(self) -> None:
        self._call = None
        now = self.clock.seconds() + _SLACK
        # Fire what is due, queue by queue; a callback may arm or cancel
        # timers meanwhile, so each queue's head is looked up afresh.
        for queue in list(self._queues.values()):
            while queue:
                timer = next(iter(queue))
                if timer.deadline > now:
                    break
                del queue[timer]
                timer._queue = None
                self._armed -= 1
                try:
                    timer._function()
                except Exception:
                    _log.failure("Unhandled error in timer {timer!r}", timer=timer)
        # Callbacks may have armed timers (scheduling the call for theirs,
        # perhaps later than a head still waiting): follow the earliest.
        earliest = self._earliest()
        if earliest is None:
            self._idle()
        elif self._call is None or earliest != self._callTime:
            self._schedule(earliest)


_services: WeakKeyDictionary[Any, TimerService] = WeakKeyDictionary()
#: The service last looked up: a process has one reactor, and a weak
#: dictionary lookup costs a new weak reference each time.
_last: TimerService | None = None


def timersFor(clock: IReactorTime) -> TimerService:
    """The L{TimerService} shared by everything timed on C{clock}."""
    global _last
    last = _last
    if last is not None and last.clock is clock:
        return last
    try:
        service = _services.get(clock)
        if service is None:
            service = _services[clock] = TimerService(clock)
    except TypeError:  # a clock that cannot be weakly referenced
        return TimerService(clock)
    _last = service
    return service
