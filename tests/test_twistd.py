"""
The C{twistd websocket} service in process (the logic tier): its options
and defaults, and the service and its factory over memory transports
(iosim, StringTransport) and a Clock: the counting through the connection
observer, the log lines, the status page, the connection limit, the
graceful stop with its timeout, and no server version disclosed.
twistd as a real subprocess is in test_twistd_interop.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.python.usage import UsageError
from twisted.test import iosim

from twisted_ws import WebSocketProtocol
from twisted_ws.twistd import EchoProtocol, Options, makeService
from wshelpers import clientFrame, serverFrames, splitResponse, upgradeRequest

# -- options and defaults, in process -----------------------------------------


def test_defaultIsEchoOnPort8080() -> None:
    """With no option: echo on tcp:8080 (checked without binding 8080)."""
    options = Options()
    options.parseOptions([])
    assert options["listen"] == ["tcp:8080"]
    assert options["mode"] == "echo"
    svc = makeService(options, clock=Clock())
    listeners = list(svc)
    assert len(listeners) == 1
    endpoint = listeners[0].endpoint._endpoint
    assert endpoint._port == 8080
    assert endpoint._interface == ""
    factory = listeners[0].factory
    assert factory.protocol is EchoProtocol  # the class itself: counting is an observer
    assert factory.observer is svc
    assert not svc.running


def test_optionsValidatedInProcess() -> None:
    options = Options()
    options.parseOptions(["--mode", "broadcast", "--ping-interval", "off", "--max-queue-messages", "5"])
    assert options["options"].pingInterval is None
    assert options["max-queue-messages"] == 5
    with pytest.raises(Exception, match="max-queue-bytes"):
        Options().parseOptions(["--mode", "broadcast", "--max-queue-bytes", "10"])


def test_twistdSubcommandExitsNonZeroOnAUsageError(capsys: pytest.CaptureFixture[str]) -> None:
    """
    The options twistd gets from the plugin exit 1 on a usage error, after
    the usage and the error line: twistd before Twisted 26.10 printed those
    and exited 0.  L{Options} itself still raises for its callers.
    """
    from twisted.application.service import IServiceMaker
    from twisted.plugin import getPlugins

    (maker,) = [m for m in getPlugins(IServiceMaker) if m.tapname == "websocket"]
    with pytest.raises(SystemExit) as exited:
        maker.options().parseOptions(["--mode", "nope"])
    assert exited.value.code == 1
    out = capsys.readouterr().out
    assert "--allow-origin" in out  # the usage
    assert out.splitlines()[-1].endswith(": Parameter type enforcement failed: unknown mode 'nope'; "
                                         "choose one of echo, broadcast, bridge, custom")
    with pytest.raises(UsageError, match="unknown mode"):
        Options().parseOptions(["--mode", "nope"])


@pytest.mark.parametrize(
    ("environ", "listen", "reason"),
    [
        ({}, "index=0", "no socket was passed by systemd (LISTEN_FDS and LISTEN_FDNAMES are not set)"),
        ({"LISTEN_FDS": "1", "LISTEN_PID": "1"}, "name=wss", "no socket was passed by systemd (LISTEN_PID is not this process)"),
        # What Twisted leaves after adopting LISTEN_FDS=2 (named web and admin).
        ({"LISTEN_FDNAMES": "web:admin"}, "name=wss", "no systemd socket named wss (names: web, admin)"),
        ({"LISTEN_FDNAMES": "web:admin"}, "index=2", "systemd passed 2 socket(s) (web, admin): no such index"),
    ],
)
def test_systemdListenerWithoutItsSocketIsOneReadableLine(
    monkeypatch: pytest.MonkeyPatch, environ: dict[str, str], listen: str, reason: str
) -> None:
    """Twisted's parser only raises KeyError('wss') or IndexError: say what systemd passed."""
    from twisted_ws.twistd import StartupError

    for name in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    options = Options()
    options.parseOptions(["--listen", f"systemd:domain=INET:{listen}"])
    with pytest.raises(StartupError) as caught:
        makeService(options, clock=Clock())
    assert str(caught.value) == f"twisted_ws: --listen 'systemd:domain=INET:{listen}': {reason}"


# -- in process: no server version, readable logs ----------------------------------


def _serve(factory, request: bytes):
    """Feed one request to a fresh connection of C{factory}; return it and its transport."""
    from twisted.internet.address import IPv4Address
    from twisted.internet.testing import StringTransport

    peer = IPv4Address("TCP", "203.0.113.7", 50000)
    if hasattr(factory, "timeOut"):
        factory.timeOut = None  # a Site's idle timer would run on the real reactor
    protocol = factory.buildProtocol(peer)
    transport = StringTransport(peerAddress=peer, hostAddress=IPv4Address("TCP", "203.0.113.1", 80))
    transport.protocol = protocol  # where the WebSocket resource finds the channel
    protocol.makeConnection(transport)
    protocol.dataReceived(request)
    return protocol, transport


def _head(transport) -> bytes:
    return transport.value().partition(b"\r\n\r\n")[0]


def test_serviceSiteDisclosesNoServerVersion(tmp_path: Path) -> None:
    """
    Files, the status page, the 426 and the 101 of --static: no Server
    header at all.  (A file's body comes from a producer the real reactor
    drives: HEAD gets its head; the directory listing is a GET.)
    """
    from twisted.internet.task import Clock

    (tmp_path / "hello.txt").write_text("hello")
    options = Options()
    options.parseOptions(["--static", str(tmp_path), "--listen", "tcp:0"])
    site = list(makeService(options, clock=Clock()))[0].factory
    heads = {}
    for name, request in [
        ("file", b"HEAD /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("listing", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("status", b"GET /_status HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("426", b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("101", upgradeRequest("/ws")),
    ]:
        _, transport = _serve(site, request)
        heads[name] = _head(transport)
    assert heads["file"].startswith(b"HTTP/1.1 200 "), heads
    assert heads["listing"].startswith(b"HTTP/1.1 200 "), heads
    assert heads["status"].startswith(b"HTTP/1.1 200 "), heads
    assert heads["426"].startswith(b"HTTP/1.1 426 "), heads
    assert heads["101"].startswith(b"HTTP/1.1 101 "), heads
    for name, head in heads.items():
        assert b"\r\nserver:" not in head.lower(), (name, head)
        assert b"TwistedWeb" not in head, (name, head)


def test_webSocketResourceInAUserSiteDisclosesNoServerVersion() -> None:
    """A WebSocketResource in the user's own Site: its 101 and 426 name no version."""
    from twisted.internet.task import Clock
    from twisted.web.server import Site

    from twisted_ws import WebSocketServerFactory
    from twisted_ws.server.resource import WebSocketResource

    site = Site(WebSocketResource(WebSocketServerFactory(EchoProtocol, clock=Clock())))
    _, accepted = _serve(site, upgradeRequest("/"))
    _, refused = _serve(site, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert _head(accepted).startswith(b"HTTP/1.1 101 "), accepted.value()
    assert _head(refused).startswith(b"HTTP/1.1 426 "), refused.value()
    for transport in (accepted, refused):
        assert b"TwistedWeb" not in _head(transport), transport.value()


def _captureLog(test):
    """Run C{test()}; return the formatted log lines of twisted_ws.twistd."""
    from twisted.logger import formatEvent, globalLogPublisher

    events: list[dict] = []

    def observer(event: dict) -> None:
        if event.get("log_namespace") == "twisted_ws.twistd":
            events.append(event)

    globalLogPublisher.addObserver(observer)
    try:
        test()
    finally:
        globalLogPublisher.removeObserver(observer)
    return [formatEvent(e) for e in events]


def test_refusedMalformedHandshakeLogsNoNone() -> None:
    """A request refused before it is a HandshakeRequest logs '-' for its path."""
    from twisted.internet.task import Clock

    from twisted_ws.twistd import ServiceFactory, WebSocketService

    clock = Clock()
    svc = WebSocketService(clock=clock)
    factory = ServiceFactory(EchoProtocol, svc, clock=clock)
    lines = _captureLog(lambda: _serve(factory, upgradeRequest("/chat").replace(b"Version: 13", b"Version: 8")))
    rejected = [line for line in lines if line.startswith("WebSocket rejected")]
    assert rejected == [rejected[0]] and rejected[0].startswith("WebSocket rejected: 203.0.113.7:50000 - 426 "), lines
    assert "None" not in rejected[0]


def test_shutdownLogCountsInTheSingular() -> None:
    """One connection left: 'closing 1 WebSocket connection', then 'aborting 1 WebSocket connection'."""
    from twisted.internet.task import Clock

    from twisted_ws.twistd import ServiceFactory, WebSocketService

    clock = Clock()
    svc = WebSocketService(stopTimeout=2, clock=clock)
    factory = ServiceFactory(EchoProtocol, svc, clock=clock)
    svc.startService()
    _serve(factory, upgradeRequest("/room"))
    assert len(svc.connections) == 1

    def stop():
        svc.stopService()
        clock.advance(2)  # the peer never answers the Close: aborted

    lines = _captureLog(stop)
    assert "stopping: closing 1 WebSocket connection with 1001" in lines, lines
    assert "aborting 1 WebSocket connection that did not finish closing" in lines, lines


# -- logic tier: the service's factory over memory transports (iosim, Clock) -------


class _Peer(Protocol):
    """A WebSocket client played by hand: it sends frames and keeps what it gets."""

    def __init__(self) -> None:
        self.data = b""
        self.lost = False

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: Any = None) -> None:
        self.lost = True

    def send(self, opcode: int, payload: bytes) -> bytes:
        frame = clientFrame(opcode, payload)
        self.transport.write(frame)
        return frame

    def closeWith(self, code: int, reason: str = "") -> bytes:
        return self.send(0x8, code.to_bytes(2, "big") + reason.encode())

    @property
    def head(self) -> bytes:
        return splitResponse(self.data)[0]

    @property
    def frameBytes(self) -> int:
        """The bytes of the frames the server sent, after its 101."""
        return len(splitResponse(self.data)[1])

    def frames(self) -> list[tuple[int, bytes]]:
        return [(opcode, payload) for opcode, _fin, payload in serverFrames(splitResponse(self.data)[1])]

    def closeFrames(self) -> list[tuple[int, str]]:
        return [
            (int.from_bytes(p[:2], "big"), p[2:].decode()) for opcode, p in self.frames() if opcode == 0x8
        ]


def _logicService(protocol=EchoProtocol, stopTimeout: float = 5.0, **kwargs):
    """A service and its factory on a Clock: nothing touches the reactor."""
    from twisted_ws.twistd import ServiceFactory, WebSocketService

    clock = Clock()
    svc = WebSocketService(stopTimeout=stopTimeout, clock=clock)
    factory = ServiceFactory(protocol, svc, clock=clock, **kwargs)
    return svc, factory, clock


def _open(factory, clock, path: str = "/", port: int = 50000, extra: str = ""):
    """Connect a L{_Peer} to C{factory} over iosim and send an upgrade request."""
    address = IPv4Address("TCP", "203.0.113.7", port)
    server = factory.buildProtocol(address)
    peer = _Peer()
    pump = iosim.connect(
        server,
        iosim.FakeTransport(server, True, IPv4Address("TCP", "203.0.113.1", 80), address),
        peer,
        iosim.FakeTransport(peer, False),
        greet=False,
        clock=clock,
    )
    peer.transport.write(upgradeRequest(path, extra))
    pump.flush()
    return peer, pump


def test_theServiceCountsThroughTheObserver() -> None:
    """
    Opens, closes, messages and bytes reach the counters through the
    observer hook and protocol.traffic: the connection is an instance of
    the app's class itself, not of a subclass made for counting.
    """
    svc, factory, clock = _logicService()
    a, pumpA = _open(factory, clock, "/a", 50000)
    b, pumpB = _open(factory, clock, "/b", 50001)
    assert factory.protocol is EchoProtocol
    protocols = list(svc.connections)
    assert len(protocols) == 2
    for protocol in protocols:
        assert type(protocol) is EchoProtocol
        assert protocol.observer is svc
    assert EchoProtocol.__subclasses__() == []

    sentA = a.send(0x1, b"hello") + a.send(0x2, b"\x00\x01\x02")
    pumpA.flush()
    sentB = b.send(0x1, "héllo".encode())
    pumpB.flush()
    assert [p for _, p in a.frames()] == [b"hello", b"\x00\x01\x02"]
    stats = svc.stats.snapshot()
    assert (stats["connectionsOpen"], stats["connectionsTotal"]) == (2, 2)
    assert (stats["messagesIn"], stats["messagesOut"]) == (3, 3)
    # Open connections are summed when asked: frames on the wire, each way.
    assert stats["bytesIn"] == len(sentA) + len(sentB)
    assert stats["bytesOut"] == a.frameBytes + b.frameBytes

    sentA += a.closeWith(1000, "bye")
    pumpA.flush()
    assert a.lost
    assert a.closeFrames() == [(1000, "")]  # the code echoed
    assert list(svc.connections) == [protocols[1]]
    # A closed connection's traffic stays in the totals.
    stats = svc.stats.snapshot()
    assert (stats["connectionsOpen"], stats["connectionsTotal"]) == (1, 2)
    assert (stats["messagesIn"], stats["messagesOut"]) == (3, 3)
    assert stats["bytesIn"] == len(sentA) + len(sentB)
    assert stats["bytesOut"] == a.frameBytes + b.frameBytes
    assert svc.stats.closedByCode == {1000: 1}


CHAT_SUBPROTOCOL = "chat.v1"


class _Shout(WebSocketProtocol):
    """A user's protocol class, as --protocol loads it."""

    def messageReceived(self, message):
        self.sendMessage(message.upper())


def test_theUsersProtocolClassIsUsedAsItIs() -> None:
    svc, factory, clock = _logicService(_Shout, subprotocols=[CHAT_SUBPROTOCOL])
    peer, pump = _open(factory, clock, "/hall", extra=f"Sec-WebSocket-Protocol: {CHAT_SUBPROTOCOL}\r\n")
    assert factory.protocol is _Shout
    [protocol] = svc.connections
    assert type(protocol) is _Shout
    assert _Shout.__subclasses__() == []
    peer.send(0x1, b"quiet")
    pump.flush()
    assert peer.frames() == [(0x1, b"QUIET")]
    assert svc.stats.snapshot()["messagesOut"] == 1


def test_openAndCloseAreLoggedWithPeerPathCodeAndReason() -> None:
    svc, factory, clock = _logicService(subprotocols=[CHAT_SUBPROTOCOL])

    def talk():
        peer, pump = _open(factory, clock, "/chat", extra=f"Sec-WebSocket-Protocol: {CHAT_SUBPROTOCOL}\r\n")
        peer.closeWith(4001, "bye now")
        pump.flush()
        assert peer.lost
        other, pump = _open(factory, clock, "/other", 50001)
        [protocol] = svc.connections
        protocol.close(1000, "done")
        pump.flush()
        other.closeWith(1000)
        pump.flush()
        assert other.lost

    lines = _captureLog(talk)
    assert lines == [
        f"WebSocket open: 203.0.113.7:50000 /chat (subprotocol {CHAT_SUBPROTOCOL})",
        "WebSocket closed: 203.0.113.7:50000 /chat code=4001 reason='bye now' clean=True by=peer sent=4001",
        "WebSocket open: 203.0.113.7:50001 /other",
        "WebSocket closed: 203.0.113.7:50001 /other code=1000 reason='' clean=True by=server sent=1000",
    ], lines


def test_maxConnectionsRefusesWith503() -> None:
    svc, factory, clock = _logicService(maxConnections=2)
    first, pump = _open(factory, clock, "/", 50000)
    _open(factory, clock, "/", 50001)
    lines = _captureLog(lambda: _open(factory, clock, "/full", 50002))
    assert len(svc.connections) == 2
    assert lines == ["WebSocket rejected: 203.0.113.7:50002 /full 503 too many connections, try again later"]
    assert svc.stats.rejected == 1
    assert svc.stats.rejectedByStatus == {503: 1}
    # One leaves: there is room again.
    first.closeWith(1000)
    pump.flush()
    peer, _ = _open(factory, clock, "/", 50003)
    assert peer.head.startswith(b"HTTP/1.1 101 "), peer.data
    assert svc.stats.snapshot()["connectionsTotal"] == 3


def test_stopClosesWith1001ThenAbortsStragglersOnTheClock() -> None:
    """
    stopService: every connection gets 1001; a peer that answers is gone at
    once, one that never does is aborted after --stop-timeout (on the
    Clock), and only then does the stop finish.  New upgrades get 503.
    """
    svc, factory, clock = _logicService(stopTimeout=3)
    svc.startService()
    polite, politePump = _open(factory, clock, "/room", 50000)
    silent, silentPump = _open(factory, clock, "/room", 50001)
    stopped = []

    def stop():
        svc.stopService().addCallback(stopped.append)
        politePump.flush()
        silentPump.flush()

    lines = _captureLog(stop)
    assert lines == ["stopping: closing 2 WebSocket connections with 1001"], lines
    for peer in (polite, silent):
        assert peer.closeFrames() == [(1001, "server shutting down")]
    polite.closeWith(1001)
    politePump.flush()
    assert polite.lost
    assert list(svc.connections) and not silent.lost and not stopped

    late, _ = _open(factory, clock, "/room", 50002)
    assert late.head.startswith(b"HTTP/1.1 503 "), late.data
    assert b"the server is shutting down" in late.data

    clock.advance(2.9)
    silentPump.flush()
    assert not silent.lost and not stopped
    lines = _captureLog(lambda: (clock.advance(0.1), silentPump.flush()))
    assert "aborting 1 WebSocket connection that did not finish closing" in lines, lines
    assert silent.lost
    assert stopped == [None]
    assert not svc.connections
    assert svc.stats.closedByCode == {1001: 1, 1006: 1}


def test_statusPageJson() -> None:
    """
    --status: the counters (open connections' traffic summed when the page
    is read), the uptime on the service's clock, the mode, and which worker
    and process answer.
    """
    clock = Clock()
    options = Options()
    options.parseOptions(["--status", "/_status", "--listen", "tcp:0", "--no-deflate"])
    svc = makeService(options, clock=clock)
    site = list(svc)[0].factory
    site.timeOut = None  # a Site's idle timer would run on the real reactor
    peer, pump = _open(site, clock, "/anywhere")
    assert peer.head.startswith(b"HTTP/1.1 101 "), peer.data
    sent = peer.send(0x1, b"counted while open")
    pump.flush()
    clock.advance(7)

    def status() -> dict:
        _, transport = _serve(site, b"GET /_status HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _, body = transport.value().partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 "), head
        assert b"\r\nContent-Type: application/json\r\n" in head, head
        return json.loads(body)

    body = status()
    assert body == {
        "connectionsOpen": 1,
        "connectionsTotal": 1,
        "rejected": 0,
        "messagesIn": 1,
        "messagesOut": 1,
        "bytesIn": len(sent),
        "bytesOut": peer.frameBytes,
        "uptime": 7.0,
        "mode": "echo",
        "worker": 0,
        "pid": os.getpid(),
    }
    svc.workerId = 3
    assert status()["worker"] == 3
