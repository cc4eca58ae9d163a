"""
How-to: testing your own WebSocket app in memory.  Run: python -m pytest docs/code/testing_example.py

Your server and a real twisted_ws client talk through iosim (memory
transports) on a MemoryReactorClock: no socket, no wall clock, every timer
moved by reactor.advance().
"""

from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock
from twisted.test.iosim import ConnectionCompleter

from twisted_ws import WebSocketProtocol, WebSocketServerFactory, connectWS


class Shout(WebSocketProtocol):
    """The app under test: answers in capitals, closes idle clients after 60 s."""

    def connectionMade(self):
        self.idle = self.factory.clock.callLater(60, self.close, 4000, "idle")

    def textMessageReceived(self, text):
        self.idle.reset(60)
        self.sendMessage(text.upper())

    def connectionClosed(self, code, reason, wasClean):
        if self.idle.active():
            self.idle.cancel()


def connected(reactor):
    """A client connected to a Shout server, and the pump that moves bytes."""
    factory = WebSocketServerFactory(Shout, clock=reactor, pingInterval=None)
    reactor.listenTCP(80, factory)
    d = connectWS("ws://127.0.0.1/", reactor=reactor, pingInterval=None)
    pump = ConnectionCompleter(reactor).succeedOnce()  # connect client and server
    pump.flush()  # the handshake, both ways
    return d, pump


def fired(d):
    """What a Deferred fired with; it must have."""
    results = []
    d.addBoth(results.append)
    assert results, "the Deferred has not fired"
    return results[0]


def test_shouts():
    reactor = MemoryReactorClock()
    d, pump = connected(reactor)
    ws = fired(d)  # a WebSocket: the client's coroutine API

    async def conversation():
        await ws.send("hello")
        return await ws.recv()

    reply = Deferred.fromCoroutine(conversation())
    pump.flush()  # the message to the server, the answer back
    assert fired(reply) == "HELLO"


def test_idleClientsAreClosed():
    reactor = MemoryReactorClock()
    d, pump = connected(reactor)
    ws = fired(d)
    reactor.advance(59)
    pump.flush()
    assert ws.closeInfo is None  # still open
    reactor.advance(1)  # the server's 60 s timer fires
    pump.flush()
    assert (ws.closeInfo.code, ws.closeInfo.reason) == (4000, "idle")
