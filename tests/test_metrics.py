"""
C{twistd websocket --metrics PATH}, logic tier: the series a scrape reports
for a service, a hub and a bus in a known state (parsed back with
prometheus_client's own parser), the worker label, the snapshots the
workers of a pool share (merge, dead and stale ones, a restarted worker),
the option and its one-line error when prometheus_client is missing.
Memory transports and a Clock only; the real thing (twistd processes,
Redis, faults) is in test_scaleout_interop.py.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python import usage
from zope.interface import implementer

from twisted_ws import BroadcastHub
from twisted_ws.apps.bus import IBroadcastBus
from twisted_ws.twistd import ConnectionTracker, Options, StartupError, makeService, makeTwistdService
from wshelpers import MemoryPeer, clientFrame, upgradeRequest

prometheus_client = pytest.importorskip("prometheus_client")

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from twisted_ws.twistd.metrics import (  # noqa: E402
    METRICS_DIRECTORY,
    SnapshotDirectory,
    SnapshotWriter,
    WebSocketCollector,
    metricsForService,
    shareSnapshots,
    takeSnapshot,
)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of a scrape: (name, sorted labels) -> value."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def scrape(collector: WebSocketCollector) -> Samples:
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return parse(generate_latest(registry).decode())


def get(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def service(*args: str) -> tuple[Any, Any, Clock]:
    clock = Clock()
    options = Options()
    options.parseOptions(["--listen", "tcp:0", "--no-deflate", *args])
    svc = makeService(options, clock=clock)
    site = list(svc)[0].factory
    site.timeOut = None  # a Site's idle timer would run on the real reactor
    return svc, site, clock


def httpGet(site: Any, path: str, accept: str | None = None) -> tuple[bytes, bytes]:
    """One GET on a fresh connection of C{site}: the response's head and body."""
    peer = IPv4Address("TCP", "10.0.0.7", 50000)
    protocol = site.buildProtocol(peer)
    transport = StringTransport(peerAddress=peer, hostAddress=IPv4Address("TCP", "10.0.0.1", 80))
    transport.protocol = protocol
    protocol.makeConnection(transport)
    headers = f"Accept: {accept}\r\n" if accept else ""
    protocol.dataReceived(f"GET {path} HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode())
    head, _, body = transport.value().partition(b"\r\n\r\n")
    return head, body


def member(site: Any, path: str, port: int) -> MemoryPeer:
    peer = MemoryPeer(site, peer=port)
    peer.send(upgradeRequest(path))
    assert peer.received().startswith(b"HTTP/1.1 101 ")
    return peer


# -- the series of one service ---------------------------------------------------------


def test_theScrapeReportsTheServiceHubAndTraffic() -> None:
    svc, site, clock = service("--mode", "broadcast", "--metrics", "/metrics")
    a, b = member(site, "/room", 50001), member(site, "/room", 50002)
    c = member(site, "/other", 50003)
    sent = clientFrame(0x1, b"hello room")
    a.send(sent)
    c.send(clientFrame(0x8, (1000).to_bytes(2, "big")))  # c leaves cleanly
    refused = MemoryPeer(site, peer=50004)
    refused.send(upgradeRequest("/room").replace(b"Version: 13", b"Version: 8"))
    assert refused.received().startswith(b"HTTP/1.1 426 ")

    head, body = httpGet(site, "/metrics")
    assert head.startswith(b"HTTP/1.1 200 "), head
    assert b"\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n" in head, head
    assert b"\r\nCache-Control: no-store\r\n" in head, head
    samples = parse(body.decode())
    traffic = svc.stats.traffic()
    expected = {
        "twisted_ws_connections_open": 2,
        "twisted_ws_handshakes_accepted_total": 3,
        "twisted_ws_messages_received_total": 1,
        "twisted_ws_messages_sent_total": 2,  # a and b: the room
        "twisted_ws_bytes_received_total": traffic.bytesIn,
        "twisted_ws_bytes_sent_total": traffic.bytesOut,
        "twisted_ws_broadcast_rooms": 1,
        "twisted_ws_broadcast_published_total": 1,
        "twisted_ws_broadcast_deliveries_total": 2,
        "twisted_ws_broadcast_slow_clients_total": 0,
        "twisted_ws_broadcast_remote_received_total": 0,
        "twisted_ws_broadcast_remote_dropped_total": 0,
    }
    assert {name: get(samples, name, worker="0") for name in expected} == expected
    assert traffic.bytesIn >= len(sent) and traffic.bytesOut > 0
    assert get(samples, "twisted_ws_handshakes_rejected_total", worker="0", status="426") == 1
    assert get(samples, "twisted_ws_closes_total", worker="0", code="1000") == 1
    assert get(samples, "twisted_ws_worker_start_time_seconds", worker="0") == 0  # the Clock's start
    # No bus was given: no bus series.
    assert not [key for key in samples if key[0].startswith("twisted_ws_bus_")]

    # Read at scrape time: what changed since shows in the next one.
    b.send(clientFrame(0x8, (1001).to_bytes(2, "big")))
    samples = parse(httpGet(site, "/metrics")[1].decode())
    assert get(samples, "twisted_ws_connections_open", worker="0") == 1
    assert get(samples, "twisted_ws_closes_total", worker="0", code="1001") == 1
    assert a.connected and not b.connected and not c.connected
    # The JSON status page is not replaced.
    svc2, site2, _ = service("--metrics", "/metrics", "--status", "/_status")
    status = json.loads(httpGet(site2, "/_status")[1])
    assert status["connectionsOpen"] == 0 and status["mode"] == "echo"


def test_everySeriesNamesTheWorker() -> None:
    svc, site, _ = service("--mode", "broadcast", "--metrics", "/metrics")
    member(site, "/room", 50001)
    svc.workerId = 2
    samples = parse(httpGet(site, "/metrics")[1].decode())
    assert samples
    assert {dict(labels).get("worker") for _, labels in samples} == {"2"}
    assert get(samples, "twisted_ws_connections_open", worker="2") == 1


def test_openMetricsWhenTheScraperAsksForIt() -> None:
    _, site, _ = service("--metrics", "/metrics")
    head, body = httpGet(site, "/metrics", accept="application/openmetrics-text; version=1.0.0")
    assert b"Content-Type: application/openmetrics-text" in head, head
    assert body.rstrip().endswith(b"# EOF")


def test_theWebSocketStillAnswersEveryOtherPath() -> None:
    _, site, _ = service("--metrics", "/metrics")
    peer = member(site, "/metrics/room", 50001)  # below the page: the WebSocket
    peer.send(clientFrame(0x1, b"echo"))
    assert b"echo" in peer.received()


@implementer(IBroadcastBus)
class FakeBus:
    """A bus whose state the test sets."""

    def __init__(self) -> None:
        self.connected = False
        self.publishFailures = 4
        self.published = 10
        self.received = 7

    def attach(self, deliver: Any) -> None:
        pass

    def subscribe(self, room: str) -> None:
        pass

    def unsubscribe(self, room: str) -> None:
        pass

    def publish(self, room: str, isText: bool, payload: bytes) -> None:
        pass


def test_busAndHubCounters() -> None:
    tracker = ConnectionTracker(clock=Clock())
    bus = FakeBus()
    hub = BroadcastHub(bus=bus)
    hub.slowClients, hub.remoteReceived, hub.remoteInvalid = 3, 5, 1
    tracker.stats.refused(503)
    tracker.stats.refused(503)
    tracker.stats.refused(403)
    collector = WebSocketCollector(lambda: [takeSnapshot(tracker, hub)])
    samples = scrape(collector)
    bus_ = {"worker": "0", "backend": "FakeBus"}
    assert get(samples, "twisted_ws_bus_connected", **bus_) == 0
    assert get(samples, "twisted_ws_bus_publish_failures_total", **bus_) == 4
    assert get(samples, "twisted_ws_bus_published_total", **bus_) == 10
    assert get(samples, "twisted_ws_bus_received_total", **bus_) == 7
    assert get(samples, "twisted_ws_broadcast_slow_clients_total", worker="0") == 3
    assert get(samples, "twisted_ws_broadcast_remote_received_total", worker="0") == 5
    assert get(samples, "twisted_ws_broadcast_remote_dropped_total", worker="0") == 1
    assert get(samples, "twisted_ws_handshakes_rejected_total", worker="0", status="503") == 2
    assert get(samples, "twisted_ws_handshakes_rejected_total", worker="0", status="403") == 1
    bus.connected = True
    bus.publishFailures = 6
    samples = scrape(collector)
    assert get(samples, "twisted_ws_bus_connected", **bus_) == 1
    assert get(samples, "twisted_ws_bus_publish_failures_total", **bus_) == 6


# -- several workers: shared snapshots ------------------------------------------------


def tracker(workerId: int, open: int) -> ConnectionTracker:
    t = ConnectionTracker(clock=Clock())
    t.workerId = workerId
    t.stats.connectionsOpen = open
    return t


def snapshotOf(workerId: int, open: int, pid: int, now: float) -> dict[str, Any]:
    snapshot = takeSnapshot(tracker(workerId, open), now=now)
    snapshot["pid"] = pid
    return snapshot


def test_oneScrapeReportsEveryWorker(tmp_path: Path) -> None:
    """
    Worker 1 is scraped: its own figures are live, worker 2's come from its
    snapshot file (even when worker 1 left an older file of its own).
    """
    directory = SnapshotDirectory(str(tmp_path))
    clock = Clock()
    clock.advance(5000)
    directory.write(snapshotOf(2, 7, os.getppid(), now=4999))  # a live pid
    directory.write(snapshotOf(1, 99, os.getppid(), now=4999))  # worker 1's stale own file
    directory.write(snapshotOf(3, 5, os.getppid(), now=10))  # too old
    mine = tracker(1, 3)
    page, writer = metricsForService(mine, directory=str(tmp_path), clock=clock)
    assert isinstance(writer, SnapshotWriter)
    samples = scrape(page.collector)
    assert get(samples, "twisted_ws_connections_open", worker="1") == 3
    assert get(samples, "twisted_ws_connections_open", worker="2") == 7
    workers = {dict(labels)["worker"] for name, labels in samples if name == "twisted_ws_connections_open"}
    assert workers == {"1", "2"}
    mine.stats.connectionsOpen = 4
    assert get(scrape(page.collector), "twisted_ws_connections_open", worker="1") == 4


def test_deadAndStaleSnapshotsAreNotReported(tmp_path: Path) -> None:
    alive = {101, 102, 104}
    directory = SnapshotDirectory(str(tmp_path), isAlive=lambda pid: pid in alive)
    now = 1000.0
    directory.write(snapshotOf(1, 1, 101, now))
    directory.write(snapshotOf(2, 2, 102, now - 5))
    directory.write(snapshotOf(3, 3, 103, now))  # its pid is gone
    directory.write(snapshotOf(4, 4, 104, now - 3600))  # alive but silent for an hour
    (tmp_path / "worker-5-105.json").write_text("{not json")
    (tmp_path / "notes.txt").write_text("not a snapshot")
    got = directory.read(now=now)
    assert [(s["worker"], s["connectionsOpen"]) for s in got] == [("1", 1), ("2", 2)]
    assert not (tmp_path / "worker-3-103.json").exists()  # removed by the reader
    assert (tmp_path / "worker-4-104.json").exists()  # its process lives: left alone
    assert directory.read(now=now, excludeWorker="1") == [got[1]]


def test_aRestartedWorkerReplacesItsPredecessorsSnapshot(tmp_path: Path) -> None:
    directory = SnapshotDirectory(str(tmp_path))
    directory.write(snapshotOf(2, 50, os.getppid(), now=0))  # the killed worker 2's (pid reused)
    directory.write(snapshotOf(1, 1, os.getppid(), now=0))
    clock = Clock()
    replacement = tracker(2, 0)
    replacement.clock = clock
    writer = SnapshotWriter(directory, lambda: takeSnapshot(replacement), clock, interval=1.0)
    writer.startService()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"worker-1-{os.getppid()}.json", f"worker-2-{os.getpid()}.json"]
    assert [s["connectionsOpen"] for s in directory.read(now=clock.seconds()) if s["worker"] == "2"] == [0]
    replacement.stats.connectionsOpen = 6
    clock.advance(0.5)
    assert [s["connectionsOpen"] for s in directory.read(now=clock.seconds()) if s["worker"] == "2"] == [0]
    clock.advance(0.5)  # the next write
    assert [s["connectionsOpen"] for s in directory.read(now=clock.seconds()) if s["worker"] == "2"] == [6]
    writer.stopService()
    assert [s["worker"] for s in directory.read(now=clock.seconds())] == ["1"]
    assert not clock.getDelayedCalls()


def test_aWriterThatCannotWriteWarnsOnceAndGoesOn(tmp_path: Path) -> None:
    from twisted.logger import globalLogPublisher

    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    try:
        clock = Clock()
        directory = SnapshotDirectory(str(tmp_path / "gone"))
        writer = SnapshotWriter(directory, lambda: takeSnapshot(tracker(1, 0)), clock)
        writer.startService()
        clock.advance(1)
        clock.advance(1)
        (tmp_path / "gone").mkdir()
        clock.advance(1)
        assert [s["worker"] for s in directory.read(now=clock.seconds())] == ["1"]
        writer.stopService()
    finally:
        globalLogPublisher.removeObserver(events.append)
    warnings = [e for e in events if "cannot write this worker's snapshot" in e.get("log_format", "")]
    assert len(warnings) == 1


def test_sharedSnapshotDirectoryIsMadeWhenTheReactorRunsAndRemovedAtShutdown() -> None:
    class Reactor:
        def __init__(self) -> None:
            self.running: list[Any] = []
            self.triggers: list[tuple[Any, ...]] = []

        def callWhenRunning(self, f: Any, *a: Any) -> None:
            self.running.append((f, a))

        def addSystemEventTrigger(self, phase: str, event: str, f: Any, *a: Any) -> None:
            self.triggers.append((phase, event, f, a))

    class Pool:
        env: dict[str, str] = {}

    reactor, pool = Reactor(), Pool()
    shareSnapshots(pool, reactor)
    assert METRICS_DIRECTORY not in pool.env  # not before the reactor runs
    for f, a in reactor.running:
        f(*a)
    path = Path(pool.env[METRICS_DIRECTORY])
    assert path.is_dir() and oct(path.stat().st_mode & 0o777) == oct(0o700)
    [(phase, event, f, a)] = reactor.triggers
    assert (phase, event) == ("after", "shutdown")
    f(*a)
    assert not path.exists()


# -- the option ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (["--metrics", "metrics"], "must start with /"),
        (["--metrics", "/x", "--status", "/x"], "--metrics and --status must be different paths"),
    ],
)
def test_badMetricsOptions(args: list[str], message: str) -> None:
    with pytest.raises(usage.UsageError, match=message):
        Options().parseOptions(args)


def test_metricsAndPathWithStatic(tmp_path: Path) -> None:
    with pytest.raises(usage.UsageError, match="--metrics and --path must be different"):
        Options().parseOptions(["--static", str(tmp_path), "--metrics", "/ws"])


MISSING = "twisted_ws: --metrics needs prometheus_client: pip install 'twisted_ws[metrics]'"


def test_missingPrometheusClientIsOneLine(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # import raises ImportError
    options = Options()
    options.parseOptions(["--listen", "tcp:0", "--metrics", "/metrics"])
    with pytest.raises(StartupError) as caught:
        makeService(options, clock=Clock())
    assert str(caught.value) == MISSING
    with pytest.raises(SystemExit) as exited:
        makeTwistdService(options)
    assert str(exited.value) == MISSING
    # Without --metrics nothing needs it.
    options = Options()
    options.parseOptions(["--listen", "tcp:0"])
    makeService(options, clock=Clock())
