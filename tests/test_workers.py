"""
C{twistd websocket --workers N}: the supervisor (L{WorkerPool}), the worker
side (L{twisted_ws.twistd.worker}) and the options.

Logic tier: the pool runs on a L{MemoryReactorClock} that records
C{spawnProcess} calls (argv, environment, childFDs); process ends are fed to
its process protocols and every delay is driven by C{Clock.advance}.

Interop tier: C{twistd -n websocket --workers 2} as a subprocess with a tiny
protocol that sends its pid on connect, real clients on 127.0.0.1, SIGKILL
and SIGTERM.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import ssl
import sys
import time
from contextlib import ExitStack
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
        (["--workers", "2", "--listen", "systemd:domain=INET:index=0"], "cannot be shared by worker processes"),
        (["--reuseport"], "--reuseport needs --workers 2 or more"),
        (["--workers", "2", "--reuseport", "--listen", "unix:/tmp/x.sock"], "tcp: endpoints only"),
        (["--workers", "2", "--reuseport", "--listen", "ssl:8443:privateKey=k:certKey=c"], "tcp: endpoints only"),
    ],
)
def test_badWorkerOptions(args: list[str], message: str) -> None:
    with pytest.raises(usage.UsageError, match=re.escape(message)):
        parse(*args)


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
    from wshelpers import makeCertificate


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


# -- interop: twistd websocket --workers 2 as a subprocess ------------------------------

from websockets.exceptions import ConnectionClosed  # noqa: E402
from websockets.sync.client import connect, unix_connect  # noqa: E402

from test_twistd import DEADLINE, LOCAL, Server, twistd  # noqa: E402,F401 (twistd: the fixture)

interop = pytest.mark.interop

PID_MODULE = """
import os
from twisted_ws import WebSocketProtocol

class Pid(WebSocketProtocol):
    def connectionMade(self):
        self.sendMessage(str(os.getpid()))

    def messageReceived(self, message):
        self.sendMessage(message)
"""

#: Connections opened per round, and rounds at most, to see every worker serve.
BATCH, ROUNDS = 10, 6


def startPool(twistd, tmp_path: Path, *args: str, listen: list[str] = LOCAL, workers: int = 2) -> Server:
    (tmp_path / "pidapp.py").write_text(PID_MODULE)
    server = Server(
        twistd, [*listen, "--protocol", "pidapp.Pid", "--workers", str(workers), *args], tmp_path
    )
    try:
        for n in range(1, workers + 1):
            server.waitFor(rf"worker {n}: listening on ")
    except BaseException:
        server.stop()
        raise
    return server


def workerPid(server: Server, n: int, nth: int = 0) -> int:
    return int(server.waitFor(rf"worker {n}: started \(pid (\d+)\)", nth=nth).group(1))


def openClients(stack: ExitStack, url: str, want: set[int], **kwargs: Any) -> list[tuple[Any, int]]:
    """Connect in rounds (bounded) until every pid in C{want} served one; all stay open."""
    clients: list[tuple[Any, int]] = []
    for _ in range(ROUNDS):
        for _ in range(BATCH):
            ws = stack.enter_context(connect(url, open_timeout=DEADLINE, **kwargs))
            clients.append((ws, int(ws.recv(DEADLINE))))
        if want <= {pid for _, pid in clients}:
            break
    return clients


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def waitGone(pids: list[int], timeout: float = DEADLINE) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(gone(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


def assertClosedWith(ws: Any, code: int) -> None:
    with pytest.raises(ConnectionClosed):
        while True:
            ws.recv(DEADLINE)
    assert ws.close_code == code, (ws.close_code, ws.close_reason)


@interop
def test_workersShareThePortAndADeadWorkerIsReplaced(twistd, tmp_path: Path) -> None:
    server = startPool(twistd, tmp_path, "--stop-timeout", "3")
    try:
        first, second = workerPid(server, 1), workerPid(server, 2)
        with ExitStack() as stack:
            clients = openClients(stack, server.url("/"), {first, second})
            assert {pid for _, pid in clients} == {first, second}, clients

            os.kill(first, signal.SIGKILL)
            server.waitFor(rf"worker 1: pid {first} was killed by SIGKILL")
            replacement = workerPid(server, 1, nth=1)
            assert replacement not in (first, second)
            # The other worker's clients did not notice.
            for ws, pid in clients:
                if pid == second:
                    ws.send("still here")
                    assert ws.recv(DEADLINE) == "still here"
                else:
                    with pytest.raises(ConnectionClosed):
                        ws.recv(DEADLINE)
            server.waitFor(r"worker 1: listening on ", nth=1)
            fresh = openClients(stack, server.url("/"), {replacement})
            assert replacement in {pid for _, pid in fresh}, fresh

            # SIGTERM to the parent: every open client of every worker gets 1001.
            started = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            for ws, pid in [c for c in clients if c[1] == second] + fresh:
                assertClosedWith(ws, 1001)
            assert server.proc.wait(DEADLINE) == 0
            assert time.monotonic() - started < 3 + 5
        assert waitGone([second, replacement])
        server.waitFor(r"received SIGTERM: stopping the workers")
        server.waitFor(rf"worker 2: pid {second} exited with status 0")
    finally:
        server.stop()


@interop
def test_reuseport(twistd, tmp_path: Path) -> None:
    server = startPool(twistd, tmp_path, "--reuseport")
    try:
        pids = {workerPid(server, 1), workerPid(server, 2)}
        with ExitStack() as stack:
            clients = openClients(stack, server.url("/"), pids)
            assert {pid for _, pid in clients} == pids
            server.proc.send_signal(signal.SIGTERM)
            for ws, _ in clients:
                assertClosedWith(ws, 1001)
        assert server.proc.wait(DEADLINE) == 0
    finally:
        server.stop()


@interop
@pytest.mark.parametrize("extra", [[], ["--reuseport"]], ids=["shared", "reuseport"])
def test_busyPortIsOneLineWithWorkers(twistd, tmp_path: Path, extra: list[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = twistd.run(
            ["-n", "--pidfile=", "websocket", "--listen", f"tcp:{port}:interface=127.0.0.1",
             "--workers", "2", *extra],
            tmp_path, timeout=60,
        )
    output = (result.stdout + result.stderr).strip()
    assert result.returncode != 0
    assert output == f"twisted_ws: cannot listen on tcp:{port}:interface=127.0.0.1: Address already in use"


@interop
def test_aKilledParentLeavesNoWorker(twistd, tmp_path: Path) -> None:
    server = startPool(twistd, tmp_path)
    pids = [workerPid(server, 1), workerPid(server, 2)]
    try:
        with connect(server.url("/"), open_timeout=DEADLINE) as ws:
            pid = int(ws.recv(DEADLINE))
            server.proc.kill()
            # The worker sees its lifeline close and stops as it would on SIGTERM.
            assertClosedWith(ws, 1001)
        assert pid in pids
        assert waitGone(pids), [p for p in pids if not gone(p)]
    finally:
        server.stop()
        for p in pids:
            if not gone(p):
                os.kill(p, signal.SIGKILL)


@interop
def test_tlsUnixAndStatusAcrossWorkers(twistd, tmp_path: Path) -> None:
    import urllib.request

    from wshelpers import makeCertificate

    cert, key = makeCertificate(tmp_path)
    sock = tmp_path / "ws.sock"
    server = startPool(
        twistd, tmp_path, "--status", "/_status",
        listen=[*LOCAL, "--listen", f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}",
                "--listen", f"unix:{sock}:mode=600"],
    )
    try:
        schemes = {scheme: where for scheme, where, _ in server.listening}
        assert set(schemes) == {"ws", "wss", "ws+unix"}, server.listening
        context = ssl.create_default_context(cafile=str(cert))
        with connect(f"wss://{schemes['wss']}/", ssl=context, server_hostname="localhost") as ws:
            assert int(ws.recv(DEADLINE)) in (workerPid(server, 1), workerPid(server, 2))
            ws.send("over TLS")
            assert ws.recv(DEADLINE) == "over TLS"
        assert oct(sock.stat().st_mode & 0o777) == oct(0o600)

        # The status page names the worker that answered.
        seen = {}
        for _ in range(BATCH * 2):
            with urllib.request.urlopen(f"http://{schemes['ws']}/_status", timeout=DEADLINE) as r:
                status = json.loads(r.read())
            seen[status["worker"]] = status["pid"]
        assert set(seen) <= {1, 2} and seen, seen
        for n, pid in seen.items():
            assert pid == workerPid(server, n)

        # One worker stopped on its own (SIGTERM) and restarted: the UNIX
        # socket file the parent owns is still there, with its mode.
        first = workerPid(server, 1)
        os.kill(first, signal.SIGTERM)
        server.waitFor(rf"worker 1: pid {first} exited with status 0")
        # Before worker 1 is back, worker 2 alone serves: the shared TCP and
        # TLS sockets still listen (no shutdown() on a shared socket).
        second = workerPid(server, 2)
        served = []
        with connect(server.url("/"), open_timeout=DEADLINE) as ws:
            served.append(int(ws.recv(DEADLINE)))
        with connect(f"wss://{schemes['wss']}/", ssl=context, server_hostname="localhost") as ws:
            served.append(int(ws.recv(DEADLINE)))
        if sum("worker 1: started" in line for line in list(server.lines)) == 1:
            assert served == [second, second]  # (worker 1 was not back yet)
        server.waitFor(r"worker 1: listening on ", nth=1)
        assert sock.exists()
        assert oct(sock.stat().st_mode & 0o777) == oct(0o600)
        with unix_connect(str(sock), "ws://localhost/") as ws:
            ws.recv(DEADLINE)
            ws.send(b"over unix")
            assert ws.recv(DEADLINE) == b"over unix"
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(DEADLINE) == 0
        assert not sock.exists()  # the parent removes it when it stops
    finally:
        server.stop()


@interop
def test_tacExample(twistd, tmp_path: Path) -> None:
    """examples/workers.tac: the API without the plugin, under twistd -ny."""
    import subprocess

    tac = Path(__file__).resolve().parent.parent / "examples" / "workers.tac"
    log = tmp_path / "tac.log"
    env = dict(twistd.env, WS_LISTEN="tcp:0:interface=127.0.0.1", WS_WORKERS="2")
    with open(log, "w") as out:
        proc = subprocess.Popen(
            twistd.command + ["-n", "--pidfile=", "--logfile=-", "-y", str(tac)],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + DEADLINE
        found: list[str] = []
        while len(set(found)) < 2 and time.monotonic() < deadline and proc.poll() is None:
            found = re.findall(r"worker (\d): listening on ws://127\.0\.0\.1:(\d+)/", log.read_text())
            time.sleep(0.05)
        assert len(set(found)) == 2, log.read_text()
        port = found[0][1]
        with connect(f"ws://127.0.0.1:{port}/", open_timeout=DEADLINE) as ws:
            assert re.match(r"hello from worker [12] \(pid \d+\)", ws.recv(DEADLINE))
            ws.send("echo")
            assert ws.recv(DEADLINE) == "echo"
            proc.send_signal(signal.SIGTERM)
            assertClosedWith(ws, 1001)
        assert proc.wait(DEADLINE) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(DEADLINE)
