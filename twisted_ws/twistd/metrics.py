"""
Prometheus metrics of the C{twistd websocket} service (C{--metrics PATH}),
with C{prometheus_client} as an optional extra (C{pip install
'twisted_ws[metrics]'}).

Nothing is counted for the metrics themselves: the service already keeps
its counters (L{twisted_ws.twistd.status.ConnectionStats}, the hub's and
the bus's), so a scrape reads them then (L{takeSnapshot}), as the JSON
status page does, and the connections pay nothing per message.

Every series carries the C{worker} label (C{"0"} for a single process).
With C{--workers N} the port is shared and a scrape lands on one worker,
which must answer for all of them: each worker writes its snapshot, a small
JSON file, into a directory its parent made for the pool
(L{shareSnapshots}, passed in the environment as L{METRICS_DIRECTORY}),
every L{SNAPSHOT_INTERVAL} seconds, replacing the file atomically.  The
worker that is scraped reports its own live figures and the other
workers' files.  A file is named after its worker and pid: a worker that
starts removes the files its predecessors under the same id left, and the
files of a pid that is gone are removed by whoever reads them, so a dead
worker's figures disappear instead of lingering, and a restarted one
starts its counters again (a counter reset, which Prometheus handles).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from twisted.application.service import Service
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.web.resource import Resource

from ..apps.bus import LocalBus

__all__ = [
    "METRICS_DIRECTORY",
    "SNAPSHOT_INTERVAL",
    "MetricsResource",
    "SnapshotDirectory",
    "SnapshotWriter",
    "WebSocketCollector",
    "metricsForService",
    "requirePrometheusClient",
    "shareSnapshots",
    "takeSnapshot",
]

_log = Logger(namespace="twisted_ws.twistd")

#: The environment variable naming the pool's snapshot directory.
METRICS_DIRECTORY = "TWISTED_WS_METRICS_DIR"

#: Seconds between two snapshots a worker writes for the others.
SNAPSHOT_INTERVAL = 1.0

#: A snapshot older than this many seconds is not reported (a worker stuck
#: that long is not answering for its figures).
STALE_AFTER = 30.0

#: Snapshot files are small; anything bigger is not one of ours.
_MAX_SNAPSHOT_BYTES = 1 << 20

_SNAPSHOT_FILE = re.compile(r"^worker-([A-Za-z0-9_.-]{1,64})-(\d{1,10})\.json$")

_PREFIX = "twisted_ws_"


def requirePrometheusClient() -> None:
    """
    @raise ImportError: C{prometheus_client} is missing; the message names
        the extra to install, in one line.
    """
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        raise ImportError(
            "--metrics needs prometheus_client: pip install 'twisted_ws[metrics]'"
        ) from None


# -- one worker's figures ---------------------------------------------------------------


def takeSnapshot(tracker: Any, hub: Any = None, now: float | None = None) -> dict[str, Any]:
    """
    The figures of one service (a L{ConnectionTracker}) and, in broadcast
    mode, of its hub and the hub's bus, as a JSON-ready dict: what a
    scrape reports for this worker, and what it writes for the others.
    C{now} (default: the service's clock) dates it.
    """
    stats = tracker.stats
    identity = tracker.identity()
    traffic = stats.traffic()
    snapshot: dict[str, Any] = {
        "worker": str(identity["worker"]),
        "pid": identity["pid"],
        "time": tracker.clock.seconds() if now is None else now,
        "startTime": stats.startedAt,
        "connectionsOpen": stats.connectionsOpen,
        "handshakesAccepted": stats.connectionsTotal,
        "rejectedByStatus": {str(k): v for k, v in stats.rejectedByStatus.items()},
        "closedByCode": {str(k): v for k, v in stats.closedByCode.items()},
        "messagesIn": traffic.messagesIn,
        "messagesOut": traffic.messagesOut,
        "bytesIn": traffic.bytesIn,
        "bytesOut": traffic.bytesOut,
        "broadcast": None,
        "bus": None,
    }
    if hub is not None:
        snapshot["broadcast"] = {
            "rooms": len(hub.rooms),
            "published": hub.published,
            "deliveries": hub.deliveries,
            "slowClients": hub.slowClients,
            "remoteReceived": hub.remoteReceived,
            "remoteInvalid": hub.remoteInvalid,
        }
        bus = hub.bus
        if not isinstance(bus, LocalBus):  # no bus: nothing to tell
            snapshot["bus"] = {
                "backend": type(bus).__name__,
                "connected": bool(bus.connected),
                "publishFailures": bus.publishFailures,
                "published": getattr(bus, "published", None),
                "received": getattr(bus, "received", None),
            }
    return snapshot


# -- the pool's snapshot directory -------------------------------------------------------


def _pidAlive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's: alive
    except OSError:
        return False
    return True


class SnapshotDirectory:
    """
    The directory where the workers of one pool leave their snapshots, one
    file per worker process (C{worker-<id>-<pid>.json}).

    @param isAlive: whether a pid still runs (replaceable for tests).
    """

    def __init__(self, path: str, isAlive: Callable[[int], bool] = _pidAlive) -> None:
        self.path = path
        self.isAlive = isAlive

    def _file(self, worker: str, pid: int) -> str:
        return os.path.join(self.path, f"worker-{worker}-{pid}.json")

    def write(self, snapshot: dict[str, Any]) -> None:
        """Replace this worker process's file, atomically (readers never see half of it)."""
        target = self._file(snapshot["worker"], snapshot["pid"])
        temporary = os.path.join(self.path, f".{os.path.basename(target)}.tmp")
        with open(temporary, "w", encoding="utf-8") as f:
            json.dump(snapshot, f, separators=(",", ":"))
        os.replace(temporary, target)

    def remove(self, worker: str, pid: int | None = None) -> None:
        """
        Remove this worker's file (C{pid}), or every file of worker
        C{worker} (a new process under that id removes its predecessors').
        """
        for name, fileWorker, filePid in self._entries():
            if fileWorker == worker and (pid is None or filePid == pid):
                self._unlink(name)

    def read(self, now: float | None = None, excludeWorker: str | None = None) -> list[dict[str, Any]]:
        """
        The snapshots of the live workers, but C{excludeWorker}'s: one per
        worker id (the newest), none older than L{STALE_AFTER} seconds.
        The files of pids that are gone are removed.
        """
        now = time.time() if now is None else now
        newest: dict[str, dict[str, Any]] = {}
        for name, worker, pid in self._entries():
            if worker == excludeWorker:
                continue
            if not self.isAlive(pid):
                self._unlink(name)
                continue
            snapshot = self._load(name, worker, pid)
            if snapshot is None or now - snapshot["time"] > STALE_AFTER:
                continue
            seen = newest.get(worker)
            if seen is None or snapshot["time"] > seen["time"]:
                newest[worker] = snapshot
        return [newest[w] for w in sorted(newest, key=_workerOrder)]

    def _entries(self) -> Iterator[tuple[str, str, int]]:
        try:
            names = os.listdir(self.path)
        except OSError:
            return
        for name in names:
            match = _SNAPSHOT_FILE.match(name)
            if match is not None:
                yield name, match.group(1), int(match.group(2))

    def _load(self, name: str, worker: str, pid: int) -> dict[str, Any] | None:
        try:
            with open(os.path.join(self.path, name), "rb") as f:
                data = f.read(_MAX_SNAPSHOT_BYTES + 1)
            snapshot = json.loads(data) if len(data) <= _MAX_SNAPSHOT_BYTES else None
        except (OSError, ValueError):
            return None  # removed meanwhile, or not ours
        if (
            not isinstance(snapshot, dict)
            or snapshot.get("worker") != worker
            or snapshot.get("pid") != pid
            or not isinstance(snapshot.get("time"), (int, float))
        ):
            return None
        return snapshot

    def _unlink(self, name: str) -> None:
        try:
            os.unlink(os.path.join(self.path, name))
        except OSError:
            pass  # removed by another reader meanwhile


class SnapshotWriter(Service):
    """
    Writes this worker's snapshot into the pool's directory every
    C{interval} seconds while the service runs; removes its predecessors'
    files when it starts and its own when it stops.
    """

    def __init__(
        self,
        directory: SnapshotDirectory,
        snapshot: Callable[[], dict[str, Any]],
        clock: IReactorTime,
        interval: float = SNAPSHOT_INTERVAL,
    ) -> None:
        self.directory = directory
        self.snapshot = snapshot
        self.clock = clock
        self.interval = interval
        self._loop: LoopingCall | None = None
        self._written: tuple[str, int] | None = None
        self._failing = False

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]  # Twisted's Service.startService is unannotated
        first = self.snapshot()
        self.directory.remove(first["worker"])
        loop = self._loop = LoopingCall(self.write)
        loop.clock = self.clock
        loop.start(self.interval, now=True)

    def write(self) -> None:
        snapshot = self.snapshot()
        try:
            self.directory.write(snapshot)
        except OSError as e:
            if not self._failing:  # once per outage, not once a second
                self._failing = True
                _log.warn(
                    "metrics: cannot write this worker's snapshot in {path}: {error}",
                    path=self.directory.path,
                    error=e.strerror or e,
                )
            return
        self._failing = False
        self._written = (snapshot["worker"], snapshot["pid"])

    def stopService(self) -> None:
        super().stopService()  # type: ignore[no-untyped-call]  # Twisted's Service.stopService is unannotated
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        if self._written is not None:
            self.directory.remove(*self._written)
            self._written = None


def shareSnapshots(pool: Any, reactor: Any = None) -> None:
    """
    Give the workers of C{pool} (a L{twisted_ws.twistd.workers.WorkerPool})
    a directory to share their snapshots in, so that a scrape of any worker
    reports them all.  It is made once the reactor runs, before the workers
    start (so after twistd dropped its privileges, if it does: the workers
    can write in it), and removed at shutdown.
    """
    import shutil
    import tempfile

    if reactor is None:
        from twisted.internet import reactor as _reactor

        reactor = _reactor

    def make() -> None:
        try:
            path = tempfile.mkdtemp(prefix="twisted_ws-metrics-")
        except OSError as e:
            _log.error(
                "metrics: cannot make the workers' snapshot directory ({error}); "
                "each scrape reports the worker it reaches only",
                error=e,
            )
            return
        pool.env[METRICS_DIRECTORY] = path
        reactor.addSystemEventTrigger("after", "shutdown", shutil.rmtree, path, True)

    reactor.callWhenRunning(make)


# -- the Prometheus side ----------------------------------------------------------------


def _workerOrder(worker: str) -> tuple[int, Any]:
    return (0, int(worker)) if worker.isdigit() else (1, worker)


#: (snapshot key, series name without the prefix, kind, help)
_PLAIN = [
    ("connectionsOpen", "connections_open", "gauge", "WebSocket connections open now."),
    ("handshakesAccepted", "handshakes_accepted", "counter", "Opening handshakes accepted."),
    ("messagesIn", "messages_received", "counter", "Data messages received."),
    ("messagesOut", "messages_sent", "counter", "Data messages sent."),
    ("bytesIn", "bytes_received", "counter", "Bytes received on WebSocket connections (frames, on the wire)."),
    ("bytesOut", "bytes_sent", "counter", "Bytes sent on WebSocket connections (frames, on the wire)."),
    ("startTime", "worker_start_time_seconds", "gauge",
     "When the worker's service started, in seconds since the epoch (a change: a restart)."),
]

_BROADCAST = [
    ("rooms", "broadcast_rooms", "gauge", "Broadcast rooms with members in this worker."),
    ("published", "broadcast_published", "counter", "Messages published to rooms in this worker."),
    ("deliveries", "broadcast_deliveries", "counter",
     "Messages handed to room members (one per member: sent or queued)."),
    ("slowClients", "broadcast_slow_clients", "counter",
     "Members closed with 1008 for falling too far behind (their backlog is dropped)."),
    ("remoteReceived", "broadcast_remote_received", "counter", "Messages received from other hubs through the bus."),
    ("remoteInvalid", "broadcast_remote_dropped", "counter",
     "Text messages from the bus dropped for invalid UTF-8."),
]

_BUS = [
    ("connected", "bus_connected", "gauge", "1 while the bus (e.g. the Redis link) is connected, else 0."),
    ("publishFailures", "bus_publish_failures", "counter",
     "Publishes that could not reach the bus (the link was down); local members still got them."),
    ("published", "bus_published", "counter", "Publishes handed to the bus."),
    ("received", "bus_received", "counter", "Messages received from the bus."),
]


def _family(kind: str, name: str, help: str, labels: list[str]) -> Any:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    cls = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
    return cls(_PREFIX + name, help, labels=labels)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    return None


class WebSocketCollector:
    """
    A C{prometheus_client} collector of the service's series, built at
    scrape time from snapshots (L{takeSnapshot}), one per worker.

    @param snapshots: returns the snapshots to report, e.g. this worker's
        and the other workers' (L{SnapshotDirectory.read}).
    """

    def __init__(self, snapshots: Callable[[], Iterable[dict[str, Any]]]) -> None:
        self.snapshots = snapshots

    def describe(self) -> list[Any]:
        # No collect() at registration: the figures are read at scrape time.
        return []

    def collect(self) -> Iterator[Any]:
        snapshots = list(self.snapshots())
        for key, name, kind, help in _PLAIN:
            family = _family(kind, name, help, ["worker"])
            for s in snapshots:
                value = _number(s.get(key))
                if value is not None:
                    family.add_metric([s["worker"]], value)
            yield family
        yield self._byLabel(
            snapshots, "rejectedByStatus", "handshakes_rejected", "status",
            "Opening handshakes refused, by HTTP status.",
        )
        yield self._byLabel(
            snapshots, "closedByCode", "closes", "code", "Connections closed, by close code.",
        )
        broadcast = [s for s in snapshots if isinstance(s.get("broadcast"), dict)]
        if broadcast:
            for key, name, kind, help in _BROADCAST:
                family = _family(kind, name, help, ["worker"])
                for s in broadcast:
                    value = _number(s["broadcast"].get(key))
                    if value is not None:
                        family.add_metric([s["worker"]], value)
                yield family
        buses = [s for s in snapshots if isinstance(s.get("bus"), dict)]
        if buses:
            for key, name, kind, help in _BUS:
                family = _family(kind, name, help, ["worker", "backend"])
                for s in buses:
                    value = _number(s["bus"].get(key))
                    if value is not None:
                        family.add_metric([s["worker"], str(s["bus"].get("backend", "?"))], value)
                yield family

    @staticmethod
    def _byLabel(snapshots: list[dict[str, Any]], key: str, name: str, label: str, help: str) -> Any:
        family = _family("counter", name, help, ["worker", label])
        for s in snapshots:
            counts = s.get(key)
            if not isinstance(counts, dict):
                continue
            for value, count in sorted(counts.items(), key=lambda kv: _workerOrder(str(kv[0]))):
                number = _number(count)
                if number is not None:
                    family.add_metric([s["worker"], str(value)], number)
        return family


class MetricsResource(Resource):
    """
    C{GET} answers the collector's series in the Prometheus text format
    (or OpenMetrics, when the scraper asks for it), never cached.  Only
    this collector: the process's own series (CPU, memory) would describe
    whichever worker happened to answer.
    """

    isLeaf = True

    def __init__(self, collector: WebSocketCollector) -> None:
        from prometheus_client import CollectorRegistry

        super().__init__()  # type: ignore[no-untyped-call]  # Twisted's Resource.__init__ is unannotated
        self.collector = collector
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(collector)

    def render_GET(self, request: Any) -> bytes:
        from prometheus_client.exposition import choose_encoder

        accept = request.getHeader(b"accept")
        encoder, contentType = choose_encoder(accept.decode("latin-1") if accept else "")
        body = encoder(self.registry)
        request.setHeader(b"Content-Type", contentType.encode("ascii"))
        request.setHeader(b"Cache-Control", b"no-store")
        return body


def metricsForService(
    tracker: Any,
    hub: Any = None,
    clock: IReactorTime | None = None,
    directory: str | None = None,
) -> tuple[MetricsResource, SnapshotWriter | None]:
    """
    The metrics page of a service (and, in broadcast mode, its hub), and,
    when the service is a worker of a pool sharing snapshots (C{directory},
    by default from L{METRICS_DIRECTORY}), the service that writes its
    snapshot for the other workers: make it a child of the service.

    @raise ImportError: C{prometheus_client} is missing (one line).
    """
    requirePrometheusClient()
    if directory is None:
        directory = os.environ.get(METRICS_DIRECTORY) or None

    def local() -> dict[str, Any]:
        # Dated by the tracker's clock: the reactor's, i.e. the time of day,
        # which the workers of one machine share.
        return takeSnapshot(tracker, hub)

    if directory is None:
        return MetricsResource(WebSocketCollector(lambda: [local()])), None
    shared = SnapshotDirectory(directory)
    clock = clock if clock is not None else _reactorClock()

    def everyWorker() -> list[dict[str, Any]]:
        mine = local()
        others = shared.read(now=clock.seconds(), excludeWorker=mine["worker"])
        return sorted([mine, *others], key=lambda s: _workerOrder(s["worker"]))

    writer = SnapshotWriter(shared, local, clock)
    return MetricsResource(WebSocketCollector(everyWorker)), writer


def _reactorClock() -> IReactorTime:
    from twisted.internet import reactor

    return reactor
