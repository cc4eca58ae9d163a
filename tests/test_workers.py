"""
C{twistd websocket --workers N}: the supervisor (L{WorkerPool}), the worker
side (L{twisted_ws.twistd.worker}) and the options.

The logic tier: the pool runs on a L{MemoryReactorClock} that records
C{spawnProcess} calls (argv, environment, childFDs); process ends are fed to
its process protocols and every delay is driven by C{Clock.advance}.

C{twistd -n websocket --workers 2} as a subprocess is in
test_workers_interop.py.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.protocol import Factory
from twisted.internet.testing import MemoryReactor, MemoryReactorClock
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python import usage
from twisted.python.failure import Failure

from twisted_ws.twistd import Options
from twisted_ws.twistd.worker import (
    WORKER_ENVIRONMENT,
    WorkerLifeline,
    inheritedEndpoints,
    workerConfig,
    workerId,
)
from twisted_ws.twistd.workers import MAX_LINE, WorkerPool
from wshelpers import makeCertificate

# -- a fake process spawner ----------------------------------------------------------


class FakeProcess:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.signals: list[str] = []

    def signalProcess(self, name: str) -> None:
        self.signals.append(name)


class ProcessReactor(MemoryReactorClock):
    """A MemoryReactorClock whose spawnProcess records the call and returns a FakeProcess."""

    def __init__(self) -> None:
        super().__init__()
        self.spawned: list[dict[str, Any]] = []
        self.stops = 0

    def spawnProcess(self, protocol, executable, args=(), env=None, path=None, uid=None, gid=None,
                     usePTY=False, childFDs=None):
        process = FakeProcess(1000 + len(self.spawned))
        self.spawned.append(
            {"protocol": protocol, "executable": executable, "args": list(args), "env": env,
             "childFDs": childFDs, "process": process}
        )
        protocol.makeConnection(process)
        return process

    def end(self, index: int, reason: Exception) -> None:
        """The process of spawn number C{index} ends."""
        self.spawned[index]["protocol"].processEnded(Failure(reason))


class FakePort:
    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.reading = True
        self.listening = True

    def fileno(self) -> int:
        return self.fd

    def stopReading(self) -> None:
        self.reading = False

    def stopListening(self) -> None:
        self.listening = False


def killed(sig: int = signal.SIGKILL) -> ProcessTerminated:
    return ProcessTerminated(None, sig, None)


@pytest.fixture
def logged():
    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


def texts(events: list[dict]) -> list[str]:
    return [formatEvent(e) for e in events]


def makePool(reactor: ProcessReactor, workers: int = 2, **kwargs: Any) -> tuple[WorkerPool, list[FakePort]]:
    ports = [FakePort(7), FakePort(9)]
    reactor.run()  # the pool starts its workers once the reactor runs
    pool = WorkerPool(
        [sys.executable, "worker.py", "--x"], workers,
        ports=[("tcp:8080", ports[0]), ("unix:/tmp/ws.sock", ports[1])],
        env={"KEEP": "1"}, handleSignals=False, reactor=reactor, **kwargs,
    )
    return pool, ports


# -- the supervisor: spawning --------------------------------------------------------


def test_spawnsEveryWorkerWithTheSocketsAsChildFDs() -> None:
    reactor = ProcessReactor()
    pool, ports = makePool(reactor)
    pool.startService()
    assert len(reactor.spawned) == 2
    for n, call in enumerate(reactor.spawned, start=1):
        assert call["executable"] == sys.executable
        assert call["args"] == [sys.executable, "worker.py", "--x"]
        # stdin: the lifeline pipe; stdout/stderr: the log; then the sockets.
        assert call["childFDs"] == {0: "w", 1: "r", 2: "r", 3: 7, 4: 9}
        assert call["env"]["KEEP"] == "1"
        config = workerConfig(call["env"])
        assert config == {
            "id": n,
            "sockets": [{"listen": "tcp:8080", "fd": 3}, {"listen": "unix:/tmp/ws.sock", "fd": 4}],
        }
        assert workerId(call["env"]) == n
    # The parent never accepts a connection itself.
    assert not any(p.reading for p in ports)
    assert {s.pid for s in pool.slots.values()} == {1000, 1001}


# -- restarts and backoff -----------------------------------------------------------


def test_aDeadWorkerIsRestartedWithBackoff(logged) -> None:
    reactor = ProcessReactor()
    pool, _ = makePool(reactor, minBackoff=0.5, maxBackoff=4.0, stableAfter=10.0)
    pool.startService()
    reactor.advance(1)
    reactor.end(0, killed())
    assert "worker 1: pid 1000 was killed by SIGKILL after 1.0 s" in texts(logged)
    assert len(reactor.spawned) == 2
    reactor.advance(0.49)
    assert len(reactor.spawned) == 2
    reactor.advance(0.01)
    assert len(reactor.spawned) == 3
    assert workerConfig(reactor.spawned[2]["env"])["id"] == 1
    assert "worker 1: started (pid 1002)" in texts(logged)

    # Dying again at once: 1 s, 2 s, 4 s, then capped at 4 s.
    delays = []
    for _ in range(5):
        before = len(reactor.spawned)
        reactor.end(before - 1, ProcessTerminated(3, None, None))
        waited = 0.0
        while len(reactor.spawned) == before and waited < 100:
            reactor.advance(0.25)
            waited += 0.25
        delays.append(waited)
    assert delays == [1.0, 2.0, 4.0, 4.0, 4.0]
    assert "worker 1: pid 1003 exited with status 3 after 0.0 s" in texts(logged)

    # After it ran long enough, the backoff starts over.
    reactor.advance(10)
    before = len(reactor.spawned)
    reactor.end(before - 1, killed(signal.SIGSEGV))
    reactor.advance(0.5)
    assert len(reactor.spawned) == before + 1
    # The other worker was never touched.
    assert reactor.spawned[1]["process"].signals == []
    assert [e for e in logged if "was killed by SIGSEGV" in formatEvent(e)][0]["log_level"] == LogLevel.warn


# -- stopping -------------------------------------------------------------------------


def test_stopSignalsEveryWorkerAndWaitsForAll(logged) -> None:
    reactor = ProcessReactor()
    pool, ports = makePool(reactor, stopTimeout=2.0, killGrace=1.0)
    pool.startService()
    # Worker 1 dies and waits for its restart when the stop begins.
    reactor.end(0, killed())
    stopped = pool.stopService()
    results: list = []
    stopped.addBoth(results.append)
    assert reactor.spawned[1]["process"].signals == ["TERM"]
    reactor.advance(60)  # the pending restart was cancelled...
    assert len(reactor.spawned) == 2
    # ... but worker 2 ignored SIGTERM: after stopTimeout + killGrace, SIGKILL.
    assert reactor.spawned[1]["process"].signals == ["TERM", "KILL"]
    assert results == []
    assert all(p.listening for p in ports)
    reactor.end(1, killed())
    assert results == [None]
    assert not any(p.listening for p in ports)
    assert "worker 2: pid 1001 still running 3.0 s after SIGTERM: killing it" in texts(logged)


def test_stopBeforeTheDeadline() -> None:
    reactor = ProcessReactor()
    pool, ports = makePool(reactor, stopTimeout=5.0)
    pool.startService()
    results: list = []
    pool.stopService().addBoth(results.append)
    for call in reactor.spawned:
        assert call["process"].signals == ["TERM"]
    reactor.advance(1)
    reactor.end(0, ProcessDone(0))
    assert results == []
    reactor.end(1, ProcessDone(0))
    assert results == [None]
    assert not reactor.getDelayedCalls()  # the kill timer is gone
    reactor.advance(100)
    assert len(reactor.spawned) == 2
    assert all(call["process"].signals == ["TERM"] for call in reactor.spawned)


# -- the workers' log -----------------------------------------------------------------


def test_workerLinesAreLoggedWithTheWorkerId(logged) -> None:
    reactor = ProcessReactor()
    pool, _ = makePool(reactor, workers=1)
    pool.startService()
    protocol = reactor.spawned[0]["protocol"]
    record = {"level": "warn", "namespace": "my.app", "text": "listening on ws://x/"}
    line = json.dumps(record).encode()
    protocol.childDataReceived(1, line[:10])
    protocol.childDataReceived(1, line[10:] + b"\n")
    protocol.childDataReceived(2, b"Traceback (most recent call last):\n")
    protocol.childDataReceived(1, b"x" * (3 * MAX_LINE + 5))
    mine = [e for e in logged if e.get("workerId") == 1 and "text" in e]
    assert formatEvent(mine[0]) == "worker 1: listening on ws://x/"
    assert mine[0]["log_namespace"] == "my.app"
    assert mine[0]["log_level"] == LogLevel.warn
    assert mine[0]["workerPid"] == 1000
    assert formatEvent(mine[1]) == "worker 1: Traceback (most recent call last):"
    assert mine[1]["log_level"] == LogLevel.warn
    # A line without end: cut at MAX_LINE, the rest kept for later.
    assert [len(e["text"]) for e in mine[2:]] == [MAX_LINE] * 3
    reactor.end(0, ProcessDone(0))
    assert formatEvent([e for e in logged if e.get("text") == "xxxxx"][0]) == "worker 1: xxxxx"


# -- options ---------------------------------------------------------------------------


def parse(*args: str) -> Options:
    options = Options()
    options.parseOptions(list(args))
    return options


def test_workersOption(monkeypatch) -> None:
    assert parse()["workers"] == 1
    assert parse("--workers", "3")["workers"] == 3
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert parse("--workers", "auto")["workers"] == 6
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert parse("--workers", "auto")["workers"] == 1
    options = parse("--workers", "2", "--listen", "tcp:0")
    assert options.argv == ["--workers", "2", "--listen", "tcp:0"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--workers", "0"], "'0': give 1 to 256 processes (or auto)"),
        (["--workers", "-2"], "give 1 to 256"),
        (["--workers", "100000"], "give 1 to 256"),
        (["--workers", "many"], "'many' is not a number of processes (or auto)"),
        (["--reuseport"], "--reuseport needs --workers 2 or more"),
    ],
)
def test_badWorkerOptions(args: list[str], message: str) -> None:
    with pytest.raises(usage.UsageError, match=re.escape(message)):
        parse(*args)


SHARED = "cannot be shared by worker processes (tcp:, tcp6:, ssl: and unix: can)"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--workers", "2", "--listen", "haproxy:tcp:0"], f"--workers: --listen 'haproxy:tcp:0' {SHARED}"),
        (
            ["--workers", "2", "--listen", "tcp:0", "--listen", "systemd:domain=INET:index=0"],
            f"--workers: --listen 'systemd:domain=INET:index=0' {SHARED}",
        ),
        (
            ["--workers", "2", "--reuseport", "--listen", "unix:/tmp/x.sock"],
            "--reuseport works with tcp: endpoints only, not --listen 'unix:/tmp/x.sock'",
        ),
        (
            ["--workers", "2", "--reuseport", "--listen", "ssl:8443:privateKey=k:certKey=c"],
            "--reuseport works with tcp: endpoints only, not --listen 'ssl:8443:privateKey=k:certKey=c'",
        ),
    ],
)
def test_listenersWorkersCannotUseAreOneLineStartupErrors(args: list[str], message: str) -> None:
    """Like the other --listen errors: one line, not a usage error printing the whole --help."""
    from twisted_ws.twistd import StartupError, makeService

    options = parse(*args)  # the options themselves are fine
    with pytest.raises(StartupError) as caught:
        makeService(options, clock=MemoryReactorClock())
    assert str(caught.value) == f"twisted_ws: {message}"


def test_reuseportNeedsLinux(monkeypatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    with pytest.raises(usage.UsageError, match="--reuseport needs Linux"):
        parse("--workers", "2", "--reuseport")


# -- the worker side ----------------------------------------------------------------------


def test_workerConfig() -> None:
    assert workerConfig({}) is None and workerId({}) is None
    for bad in ["{", "[]", '{"id": "1", "sockets": []}', '{"id": 1, "sockets": [{"listen": "tcp:1"}]}']:
        with pytest.raises(Exception, match=f"{WORKER_ENVIRONMENT} is not a valid worker configuration"):
            workerConfig({WORKER_ENVIRONMENT: bad})


def test_inheritedEndpointsAdoptTheSockets(tmp_path: Path) -> None:
    cert, key = makeCertificate(tmp_path)
    reactor = MemoryReactor()
    with socket.socket() as tcpSock, socket.socket(socket.AF_INET6) as sslSock:
        config = {"id": 2, "sockets": [
            {"listen": "tcp:8080", "fd": tcpSock.fileno()},
            {"listen": f"ssl:8443:privateKey={key}:certKey={cert}", "fd": sslSock.fileno()},
            {"listen": "systemd:domain=INET:index=0", "fd": tcpSock.fileno()},
        ]}
        plain, secure, other = inheritedEndpoints(reactor, config)
        factory = Factory()
        ports: list = []
        plain.listen(factory).addCallback(ports.append)
        secure.listen(factory).addCallback(ports.append)
        failures: list = []
        other.listen(factory).addErrback(failures.append)
        assert len(ports) == 2
        (fd1, family1, f1), (fd2, family2, f2) = reactor.adoptedPorts
        assert (family1, f1) == (socket.AF_INET, factory)
        # ssl: TLS in front of the factory, with the description's certificate.
        assert family2 == socket.AF_INET6
        assert isinstance(f2, TLSMemoryBIOFactory) and f2.wrappedFactory is factory
        # Any other kind fails (Options refuses it before anything starts).
        assert len(failures) == 1
        # The inherited descriptors stay open (a copy is adopted and closed).
        assert fd1 != tcpSock.fileno()
        os.fstat(tcpSock.fileno())


def test_lifelineStopsTheWorkerWhenTheParentIsGone() -> None:
    reactor = MemoryReactor()
    readEnd, writeEnd = os.pipe()
    try:
        lifeline = WorkerLifeline(reactor, fd=readEnd, handleSignals=False)
        lifeline.startService()
        (reader,) = [r for r in reactor.readers if getattr(r, "fileno", lambda: None)() == readEnd]
        assert reader.doRead() is None  # nothing to read yet
        assert not reactor.hasStopped
        os.close(writeEnd)
        writeEnd = -1
        lost = reader.doRead()
        assert lost is not None
        reader.connectionLost(Failure(lost))
        assert reactor.hasStopped
        lifeline.stopService()
        assert reader not in reactor.readers
    finally:
        os.close(readEnd)
        if writeEnd != -1:
            os.close(writeEnd)
