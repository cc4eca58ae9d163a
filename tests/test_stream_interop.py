"""
The stream-over-WebSocket adapter on real loopback sockets (the interop
tier): a line protocol behind it answers the C{websockets} client, and our
own client runs a line protocol over connectWS.
"""

from __future__ import annotations

from functools import partial

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Factory
from twisted.internet.threads import deferToThread
from twisted.protocols.basic import LineReceiver
from twisted.trial.unittest import TestCase

from twisted_ws.apps.stream import StreamOverWebSocketFactory, StreamOverWebSocketProtocol


class Commands(LineReceiver):
    """Server side: answers lines; C{quit} says bye and hangs up."""

    def lineReceived(self, line):
        if line == b"quit":
            self.sendLine(b"bye")
            self.transport.loseConnection()
        else:
            self.sendLine(b"you said " + line)


class Asker(LineReceiver):
    """Client side: asks two questions, then hangs up."""

    def connectionMade(self):
        self.answers = []
        self.factory.connected.callback(self)
        self.sendLine(b"one")
        self.sendLine(b"two")

    def lineReceived(self, line):
        self.answers.append(line)
        if len(self.answers) == 2:
            self.transport.loseConnection()

    def connectionLost(self, reason):
        self.factory.lost.callback((self.answers, reason))


class LoopbackTests(TestCase):
    timeout = 30

    @inlineCallbacks
    def listen(self):
        factory = StreamOverWebSocketFactory(
            Factory.forProtocol(Commands), delimiter=b"\r\n", pingInterval=None
        )
        port = yield serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(factory)
        self.addCleanup(port.stopListening)
        return f"ws://127.0.0.1:{port.getHost().port}/"

    @inlineCallbacks
    def test_loseConnectionClosesWith1000(self):
        from websockets.exceptions import ConnectionClosedOK
        from websockets.sync.client import connect

        url = yield self.listen()

        def client():
            with connect(url, open_timeout=10) as ws:
                ws.send("hello")
                first = ws.recv(timeout=10)
                ws.send("quit")
                second = ws.recv(timeout=10)
                try:
                    ws.recv(timeout=10)
                except ConnectionClosedOK as e:
                    return first, second, e.rcvd.code
                return first, second, None

        self.assertEqual((yield deferToThread(client)), ("you said hello", "bye", 1000))

    @inlineCallbacks
    def test_clientSideAdapterWithConnectWS(self):
        from twisted_ws.client import connectWS

        url = yield self.listen()
        factory = Factory.forProtocol(Asker)
        factory.connected, factory.lost = Deferred(), Deferred()
        ws = yield connectWS(
            url, partial(StreamOverWebSocketProtocol, factory, delimiter=b"\r\n"), pingInterval=None
        )
        self.assertTrue(ws.isClient)
        asker = yield factory.connected
        self.assertEqual(asker.transport.getPeer(), ws.transport.getPeer())
        answers, reason = yield factory.lost
        self.assertEqual(answers, [b"you said one", b"you said two"])
        self.assertTrue(reason.check(ConnectionDone), reason)
        info = yield ws.whenClosed()
        self.assertEqual((info.code, info.wasClean), (1000, True))
