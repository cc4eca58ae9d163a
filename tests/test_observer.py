"""
The connection observer and the traffic counters (L{twisted_ws.observer}),
logic tier: a server and a client over iosim memory transports, every timer
driven by a L{Clock}.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.test.iosim import connectedServerAndClient
from zope.interface import implementer
from zope.interface.verify import verifyObject

from twisted_ws import WebSocketClientFactory, WebSocketProtocol, WebSocketServerFactory
from twisted_ws.observer import IConnectionObserver, Traffic


@implementer(IConnectionObserver)
class EventLog:
    """Records what it is told, with the app's own events in the same list."""

    def __init__(self, events, name, failOn=None):
        self.events = events
        self.name = name
        self.failOn = failOn

    def connectionOpened(self, protocol):
        self.events.append((self.name, "opened", protocol))
        if self.failOn == "opened":
            raise RuntimeError("observer bug")

    def connectionClosed(self, protocol, info):
        self.events.append((self.name, "closed", protocol, info.code, info.wasClean))
        if self.failOn == "closed":
            raise RuntimeError("observer bug")


class App(WebSocketProtocol):
    events: list = []

    def connectionMade(self):
        self.events.append(("app", "made", self))

    def messageReceived(self, message):
        if not self.isClient:
            self.sendMessage(message)

    def connectionClosed(self, code, reason, wasClean):
        self.events.append(("app", "closed", self))


def connect(serverObserver=None, clientObserver=None, events=None):
    """An open (server, client, pump, clock) pair over memory transports."""
    clock = Clock()
    app = type("App", (App,), {"events": events if events is not None else []})
    serverFactory = WebSocketServerFactory(app, clock=clock, pingInterval=None)
    serverFactory.observer = serverObserver
    clientFactory = WebSocketClientFactory(app, "ws://example.com/", clock=clock, pingInterval=None)
    clientFactory.observer = clientObserver
    clientHandshake, serverHandshake, pump = connectedServerAndClient(
        lambda: serverFactory.buildProtocol(None), lambda: clientFactory.buildProtocol(None), clock=clock
    )
    pump.flush()
    server, client = serverHandshake.transport.protocol, clientHandshake.transport.protocol
    assert isinstance(server, App) and isinstance(client, App)
    return server, client, pump, clock


def settle(pump, clock):
    for _ in range(20):
        clock.advance(1)
        pump.flush()


def test_observerToldOfOpenAndCloseBeforeTheApp():
    events = []
    log = EventLog(events, "server")
    assert verifyObject(IConnectionObserver, log)
    server, client, pump, clock = connect(serverObserver=log, events=events)
    assert server.observer is log
    assert client.observer is None
    assert [e[:2] for e in events if e[2] is server] == [("server", "opened"), ("app", "made")]
    client.close(1000, "bye")
    settle(pump, clock)
    serverEvents = [e for e in events if e[2] is server]
    assert [e[:2] for e in serverEvents] == [
        ("server", "opened"),
        ("app", "made"),
        ("server", "closed"),
        ("app", "closed"),
    ]
    assert serverEvents[2][3:] == (1000, True)


def test_clientFactoryObserver():
    events = []
    server, client, pump, clock = connect(clientObserver=EventLog(events, "client"), events=events)
    server.close()
    settle(pump, clock)
    assert [e[:2] for e in events if e[0] == "client"] == [("client", "opened"), ("client", "closed")]
    assert all(e[2] is client for e in events if e[0] == "client")


def test_protocolObserverOverridesTheFactory():
    events = []
    mine = EventLog(events, "mine")
    app = type("Watched", (App,), {"events": events, "observer": mine})
    clock = Clock()
    factory = WebSocketServerFactory(app, clock=clock, pingInterval=None)
    factory.observer = EventLog(events, "factory")
    clientFactory = WebSocketClientFactory(App, "ws://example.com/", clock=clock, pingInterval=None)
    _, serverHandshake, pump = connectedServerAndClient(
        lambda: factory.buildProtocol(None), lambda: clientFactory.buildProtocol(None), clock=clock
    )
    pump.flush()
    assert serverHandshake.transport.protocol.observer is mine
    assert [e[0] for e in events if e[1] == "opened"] == ["mine"]


def test_observerErrorsAreLoggedAndDoNotBreakTheConnection():
    events = []
    with capturedLogs() as logged:
        server, client, pump, clock = connect(
            serverObserver=EventLog(events, "server", failOn="opened"), events=events
        )
        client.sendMessage("still works")
        pump.flush()
        assert server.traffic.messagesIn == 1
        server.observer.failOn = "closed"
        client.close()
        settle(pump, clock)
    # The app was still told, and the close was clean.
    assert ("app", "made", server) in events
    assert ("app", "closed", server) in events
    assert server.closeInfo.wasClean
    failures = [e for e in logged if "log_failure" in e]
    assert len(failures) == 2
    assert all(isinstance(e["log_failure"].value, RuntimeError) for e in failures)


def test_trafficCountsBothDirections():
    server, client, pump, clock = connect()
    assert server.traffic == Traffic(0, 0, 0, 0)
    client.sendMessage("hello")  # 6 + 5 bytes masked
    client.sendMessage(b"\x00" * 200)  # 8 + 200 bytes masked
    pump.flush()
    assert client.traffic.messagesOut == 2
    assert server.traffic.messagesIn == 2
    assert server.traffic.messagesOut == 2  # echoed
    assert client.traffic.messagesIn == 2
    assert client.traffic.bytesOut == 11 + 208
    assert server.traffic.bytesIn == client.traffic.bytesOut
    assert server.traffic.bytesOut == 7 + 204  # unmasked echoes
    assert client.traffic.bytesIn == server.traffic.bytesOut
    server.ping(b"p")
    pump.flush()
    # Control frames count as bytes, not messages.
    assert server.traffic.messagesOut == 2
    assert server.traffic.bytesOut == 7 + 204 + 3
    assert client.traffic.bytesOut == 11 + 208 + 7  # its masked Pong


def test_trafficCountsStreamedMessagesOnceAndStaysReadableAfterClose():
    server, client, pump, clock = connect()
    writer = client.beginMessage(isText=False)
    writer.write(b"a" * 10)
    writer.write(b"b" * 10)
    assert client.traffic.messagesOut == 0
    writer.finish(b"c")
    pump.flush()
    assert client.traffic.messagesOut == 1
    assert server.traffic.messagesIn == 1
    client.close()
    settle(pump, clock)
    assert server.closeInfo is not None
    assert server.traffic.messagesIn == 1
    assert server.traffic.bytesIn == client.traffic.bytesOut
