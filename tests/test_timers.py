"""
The shared timer service (twisted_ws.timers): exact deadlines on a Clock,
one delayed call for any number of timers and none once they are all
cancelled, and the connections' timeouts running on it.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs

from twisted_ws import WebSocketProtocol, WebSocketServerFactory
from twisted_ws.core.frames import OP_PING
from twisted_ws.timers import TimerService, timersFor
from wshelpers import openedServer, serverFrames


def test_firesAtItsExactDeadline():
    clock = Clock()
    clock.advance(0.3)  # deadlines off any round grid
    fired = []
    timer = TimerService(clock).callLater(4.9, lambda: fired.append(clock.seconds()))
    assert timer.active()
    clock.advance(4.9 - 1e-6)
    assert fired == []
    clock.advance(1e-6)
    assert fired == [clock.seconds()]
    assert not timer.active()
    assert clock.getDelayedCalls() == []


def test_oneDelayedCallForManyTimersAndNoneWhenAllAreCancelled():
    clock = Clock()
    service = TimerService(clock)
    timers = []
    for i in range(100):
        clock.advance(0.01)
        timers.append(service.callLater(10 if i % 2 else 20, lambda: None))
    assert len(clock.getDelayedCalls()) == 1
    for timer in timers:
        timer.cancel()
        timer.cancel()  # a second cancel does nothing
    assert clock.getDelayedCalls() == []
    assert service.armed() == []


def test_deadlinesOfSeveralDelaysInOrderAfterTheHeadIsCancelled():
    clock = Clock()
    service = TimerService(clock)
    fired = []
    head = service.callLater(1, lambda: fired.append("head"))
    service.callLater(3, lambda: fired.append(3))
    clock.advance(0.5)
    service.callLater(1, lambda: fired.append(1.5))
    service.callLater(0.25, lambda: fired.append(0.75))  # earlier than every other
    head.cancel()
    clock.advance(0.25)
    assert fired == [0.75]
    clock.advance(0.625)
    assert fired == [0.75]
    clock.advance(0.125)
    assert fired == [0.75, 1.5]
    clock.advance(1.5)
    assert fired == [0.75, 1.5, 3]
    assert clock.getDelayedCalls() == []


def test_aCallbackArmingALaterTimerDoesNotDelayAnEarlierOne():
    clock = Clock()
    service = TimerService(clock)
    fired = []
    service.callLater(1, lambda: service.callLater(20, lambda: fired.append(21)))
    service.callLater(2, lambda: fired.append(2))
    clock.advance(1)
    clock.advance(1)
    assert fired == [2]
    clock.advance(19)
    assert fired == [2, 21]


def test_aFailingCallbackIsLoggedAndTheOthersStillFire():
    clock = Clock()
    service = TimerService(clock)
    fired = []
    service.callLater(1, lambda: 1 / 0)
    service.callLater(1, lambda: fired.append(1))
    with capturedLogs() as events:
        clock.advance(1)
    assert fired == [1]
    assert any(e.get("log_failure") is not None for e in events)
    assert clock.getDelayedCalls() == []


def test_oneServicePerClock():
    clock = Clock()
    assert timersFor(clock) is timersFor(clock)
    assert timersFor(clock) is not timersFor(Clock())


class App(WebSocketProtocol):
    pass


def test_connectionsShareOneDelayedCallAndKeepaliveStillRuns():
    """
    A hundred open connections with keepalive and an open timeout in
    progress hold one delayed call on the clock, not one per timeout.
    """
    clock = Clock()
    factory = WebSocketServerFactory(App, clock=clock, pingInterval=10, pingTimeout=5)
    transports = []
    for _ in range(100):
        transport = StringTransport()
        openedServer(factory, transport)
        transports.append(transport)
        clock.advance(0.01)
    pending = factory.buildProtocol(None)  # a handshake still being read
    pending.makeConnection(StringTransport())
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(10)  # 10 s after the last connection opened
    pinged = [t for t in transports if any(op == OP_PING for op, _, _ in serverFrames(t.value()))]
    assert len(pinged) == 100
    assert len(clock.getDelayedCalls()) == 1
