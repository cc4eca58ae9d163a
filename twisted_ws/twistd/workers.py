"""
N worker processes behind the same listening sockets: the parent side of
C{twistd websocket --workers N}, usable without twistd too.

CPython runs one core per process, so a server that outgrows a core runs
several processes on one port.  The parent binds every listener once (so a
port in use is one error line before anything forks), never accepts on
them itself, and starts N children that adopt the sockets; the kernel
spreads the connections.  With C{reusePort} (Linux) each worker binds its
own socket to the port with C{SO_REUSEPORT} instead, and the kernel
balances between the sockets; the parent then only reserves the port
(bound, not listening, so it gets no connection).

L{WorkerPool} supervises: a worker that dies is restarted after a backoff
(C{minBackoff} doubling to C{maxBackoff}, back to C{minBackoff} once a
worker ran C{stableAfter} seconds), each start and end logged with the
worker's id, pid and exit status.  Stopping the pool sends SIGTERM to every
worker, which closes its connections with 1001 (its own C{stopTimeout});
stragglers get SIGKILL after C{stopTimeout + killGrace}.  The workers'
log lines come back through a pipe and are logged here as
C{worker N: ...}.

The worker side is in L{twisted_ws.twistd.worker}.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from typing import Any

from twisted.application import service
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred, succeed
from twisted.internet.error import ProcessTerminated
from twisted.internet.interfaces import IListeningPort, IStreamServerEndpoint
from twisted.internet.protocol import Factory, ProcessProtocol, Protocol
from twisted.logger import Logger, LogLevel
from zope.interface import implementer

from .worker import WORKER_ENVIRONMENT, bindReusePort

__all__ = ["WorkerPool", "ReservedPort", "reservingEndpoint", "poolForTwistd", "workerCommand"]

_log = Logger(namespace="twisted_ws.twistd")

#: Longest worker log line kept whole; longer ones are cut (bounded memory).
MAX_LINE = 64 * 1024


def workerCommand(argv: Sequence[str]) -> list[str]:
    """The command of a C{twistd websocket} worker given its C{websocket} options."""
    return [sys.executable, "-m", "twisted_ws.twistd.worker", *argv]


# -- reserving a port for --reuseport ------------------------------------------------


@implementer(IListeningPort)
class ReservedPort:
    """
    A TCP port the pool holds bound with C{SO_REUSEPORT} but does not listen
    on: it keeps the port number (chosen by the OS for port 0) for workers
    that come and go, and the kernel sends it no connection.
    """

    def __init__(self, sock: socket.socket, backlog: int) -> None:
        self.socket = sock
        self.backlog = backlog

    def startListening(self) -> None:
        """Nothing: bound already, and it never listens."""

    def stopListening(self) -> Deferred[None]:
        self.socket.close()
        return succeed(None)

    def getHost(self) -> Any:
        host, port = self.socket.getsockname()[:2]
        if self.socket.family == socket.AF_INET6:
            return IPv6Address("TCP", host, port)
        return IPv4Address("TCP", host, port)


class _ReservingReactor:
    """Stands in for the reactor so that C{serverFromString} gives us its parsed arguments."""

    def listenTCP(self, port: int, factory: Any, backlog: int = 50, interface: str = "") -> ReservedPort:
        return ReservedPort(bindReusePort(interface, port, backlog, listen=False), backlog)

    def __getattr__(self, name: str) -> Any:
        raise OSError("--reuseport works with tcp: endpoints only")


def reservingEndpoint(description: str) -> IStreamServerEndpoint:
    """
    The endpoint of a C{tcp:} description whose C{listen} reserves the port
    for C{reusePort} workers (a L{ReservedPort}) instead of listening.
    """
    from twisted.internet.endpoints import serverFromString

    endpoint: IStreamServerEndpoint = serverFromString(_ReservingReactor(), description)
    return endpoint


# -- one worker process ------------------------------------------------------------


class _WorkerProtocol(ProcessProtocol):
    """Relays a worker's output to the log and tells the pool when it ends."""

    def __init__(self, pool: WorkerPool, slot: _Slot) -> None:
        self.pool = pool
        self.slot = slot
        self._buffers = {1: b"", 2: b""}

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        if childFD not in self._buffers:
            return
        buffer = self._buffers[childFD] + data
        *lines, rest = buffer.split(b"\n")
        while len(rest) > MAX_LINE:
            lines.append(rest[:MAX_LINE])
            rest = rest[MAX_LINE:]
        self._buffers[childFD] = rest
        for line in lines:
            self.pool.workerSaid(self.slot, line, childFD)

    def processEnded(self, reason: Any) -> None:
        for fd, rest in self._buffers.items():
            if rest:
                self.pool.workerSaid(self.slot, rest, fd)
        self._buffers = {1: b"", 2: b""}
        self.pool.workerEnded(self.slot, reason.value)


class _Slot:
    """One worker id and the process currently running as it."""

    def __init__(self, workerId: int, backoff: float) -> None:
        self.workerId = workerId
        self.process: Any = None
        self.pid: int | None = None
        self.startedAt = 0.0
        self.backoff = backoff
        self.restart: Any = None
        self.starts = 0


def _exitText(reason: Any) -> str:
    if isinstance(reason, ProcessTerminated) and reason.signal is not None:
        try:
            name = signal.Signals(reason.signal).name
        except ValueError:
            name = str(reason.signal)
        return f"was killed by {name}"
    return f"exited with status {getattr(reason, 'exitCode', None) or 0}"


class WorkerPool(service.Service):
    """
    Runs C{workers} copies of C{command} that serve the same listening
    sockets, and keeps them running.

        from twisted_ws.twistd.workers import WorkerPool
        pool = WorkerPool([sys.executable, "myworker.py"], workers=4, listen=["tcp:8080"])
        pool.setServiceParent(application)

    Each worker finds its sockets and id through
    L{twisted_ws.twistd.worker.inheritedEndpoints} and
    L{twisted_ws.twistd.worker.workerId}, and should run a
    L{twisted_ws.twistd.worker.WorkerLifeline} and log with
    L{twisted_ws.twistd.worker.workerLogObserver}.

    @param command: the worker program's argv (C{command[0]} is run).
    @param workers: how many worker processes.
    @param listen: endpoint descriptions (tcp:, tcp6:, ssl:, unix:) the
        pool binds when it starts (or at L{listenNow}).
    @param ports: C{(description, port)} pairs listening already (as
        C{twistd websocket} binds them before it daemonizes); the pool
        takes them over and closes them when it stops.
    @param reusePort: the workers bind their own sockets with
        C{SO_REUSEPORT} (Linux, tcp only); the pool only reserves the ports.
    @param stopTimeout: seconds a worker gets to close its connections
        after SIGTERM; it is killed C{killGrace} seconds after that.
    @param handleSignals: on start, take over SIGTERM and SIGINT: the
        reactor stops, the workers are stopped, and the process exits 0
        (twistd would otherwise kill itself with the signal once stopped).
    @ivar slots: the worker slots, by id (1..N): C{pid}, C{starts}.
    """

    def __init__(
        self,
        command: Sequence[str],
        workers: int,
        *,
        listen: Sequence[str] = (),
        ports: Sequence[tuple[str, Any]] = (),
        reusePort: bool = False,
        env: dict[str, str] | None = None,
        path: str | None = None,
        stopTimeout: float = 5.0,
        killGrace: float = 5.0,
        minBackoff: float = 0.5,
        maxBackoff: float = 30.0,
        stableAfter: float = 10.0,
        handleSignals: bool = True,
        reactor: Any = None,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        if not command:
            raise ValueError("command is empty")
        if reactor is None:
            from twisted.internet import reactor as _reactor

            reactor = _reactor
        self.command = list(command)
        self.workers = workers
        self.listenDescriptions = list(listen)
        self.ports: list[tuple[str, Any]] = list(ports)
        self.reusePort = reusePort
        self.env = dict(os.environ if env is None else env)
        self.path = path
        self.stopTimeout = stopTimeout
        self.killGrace = killGrace
        self.minBackoff = minBackoff
        self.maxBackoff = maxBackoff
        self.stableAfter = stableAfter
        self.handleSignals = handleSignals
        self.reactor = reactor
        self.slots = {i: _Slot(i, minBackoff) for i in range(1, workers + 1)}
        self.stopping = False
        self._listened = bool(ports)
        self._stopped: Deferred[None] | None = None
        self._killer: Any = None
        self._reactorStopRequested = False

    # -- the sockets ---------------------------------------------------------------

    def listenNow(self) -> None:
        """
        Bind the C{listen} descriptions now (before a fork, for example).

        @raise twisted_ws.twistd.StartupError: one cannot be bound.
        """
        if self._listened:
            return
        self._listened = True
        from twisted.internet.endpoints import serverFromString

        from .service import StartupError

        for description in self.listenDescriptions:
            found: list[Any] = []
            try:
                if self.reusePort:
                    endpoint = reservingEndpoint(description)
                else:
                    endpoint = serverFromString(self.reactor, description)
                endpoint.listen(Factory.forProtocol(Protocol)).addCallbacks(found.append, found.append)
            except Exception as e:
                found.append(e)
            result = found[0] if found else None
            if IListeningPort.providedBy(result):
                self.ports.append((description, result))
                continue
            error = getattr(result, "value", result)
            self._closePorts()
            raise StartupError(f"twisted_ws: cannot listen on {description}: {error}")

    def _socketsFor(self) -> tuple[list[dict[str, Any]], dict[int, Any]]:
        """The workers' socket list and the childFDs entries passing them (fd 3, 4, ...)."""
        sockets: list[dict[str, Any]] = []
        childFDs: dict[int, Any] = {}
        for index, (description, port) in enumerate(self.ports):
            if isinstance(port, ReservedPort):
                sockets.append({"listen": description, "port": port.getHost().port, "reusePort": True})
            else:
                fd = 3 + index
                childFDs[fd] = port.fileno()
                sockets.append({"listen": description, "fd": fd})
        return sockets, childFDs

    def _closePorts(self) -> Deferred[Any]:
        ports, self.ports = self.ports, []
        return DeferredList([maybeDeferred(port.stopListening) for _, port in ports], consumeErrors=True)

    # -- starting and restarting --------------------------------------------------

    def privilegedStartService(self) -> None:
        super().privilegedStartService()  # type: ignore[no-untyped-call]  # Twisted's Service.privilegedStartService is unannotated
        self.listenNow()

    def startService(self) -> None:
        self.listenNow()
        super().startService()  # type: ignore[no-untyped-call]  # Twisted's Service.startService is unannotated
        for _, port in self.ports:
            # The parent never accepts: only the workers do.
            stopReading = getattr(port, "stopReading", None)
            if stopReading is not None:
                stopReading()
        # Once the reactor runs: its own signal handlers are installed by
        # then (ours replace them), and so is its SIGCHLD handling.
        self.reactor.callWhenRunning(self._spawnAll)

    def _spawnAll(self) -> None:
        if not self.running or self.stopping:
            return
        if self.handleSignals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, self._signalled)
        _log.info(
            "starting {count} workers: {command}",
            count=self.workers,
            command=" ".join(self.command[:4]) + (" ..." if len(self.command) > 4 else ""),
        )
        for slot in self.slots.values():
            self._spawn(slot)

    def _signalled(self, number: int, frame: Any) -> None:
        self.reactor.callFromThread(self._stopReactor, signal.Signals(number).name)

    def _stopReactor(self, name: str) -> None:
        if self._reactorStopRequested:
            return
        self._reactorStopRequested = True
        _log.info("received {signal}: stopping the workers", signal=name)
        self.reactor.stop()

    def _spawn(self, slot: _Slot) -> None:
        slot.restart = None
        sockets, childFDs = self._socketsFor()
        env = dict(self.env)
        env[WORKER_ENVIRONMENT] = json.dumps({"id": slot.workerId, "sockets": sockets})
        # fd 0: a pipe nobody writes to; it closes when this process dies.
        childFDs.update({0: "w", 1: "r", 2: "r"})
        protocol = _WorkerProtocol(self, slot)
        try:
            slot.process = self.reactor.spawnProcess(
                protocol, self.command[0], self.command, env=env, path=self.path, childFDs=childFDs
            )
        except Exception as e:
            _log.error("worker {workerId}: cannot start: {error}", workerId=slot.workerId, error=e)
            self._scheduleRestart(slot, ran=0.0)
            return
        slot.pid = slot.process.pid
        slot.startedAt = self.reactor.seconds()
        slot.starts += 1
        _log.info(
            "worker {workerId}: started (pid {pid})", workerId=slot.workerId, pid=slot.pid
        )

    def workerEnded(self, slot: _Slot, reason: Any) -> None:
        """A worker process ended: restart it (after a backoff) unless the pool stops."""
        ran = self.reactor.seconds() - slot.startedAt
        level = LogLevel.info if self.stopping else LogLevel.warn
        _log.emit(
            level,
            "worker {workerId}: pid {pid} {exit} after {ran:.1f} s",
            workerId=slot.workerId,
            pid=slot.pid,
            exit=_exitText(reason),
            exitCode=getattr(reason, "exitCode", None),
            signal=getattr(reason, "signal", None),
            ran=ran,
        )
        slot.process = None
        slot.pid = None
        if self.stopping:
            self._checkStopped()
        else:
            self._scheduleRestart(slot, ran)

    def _scheduleRestart(self, slot: _Slot, ran: float) -> None:
        if ran >= self.stableAfter:
            slot.backoff = self.minBackoff
        delay = slot.backoff
        slot.backoff = min(slot.backoff * 2, self.maxBackoff)
        _log.info("worker {workerId}: restarting in {delay} s", workerId=slot.workerId, delay=delay)
        slot.restart = self.reactor.callLater(delay, self._spawn, slot)

    def workerSaid(self, slot: _Slot, line: bytes, childFD: int) -> None:
        """Log a line of a worker's output as C{worker N: ...}."""
        text = line.decode("utf-8", "replace").rstrip("\r")
        level, namespace = (LogLevel.info if childFD == 1 else LogLevel.warn), _log.namespace
        if text.startswith("{"):
            try:
                record = json.loads(text)
                text = str(record["text"])
                level = LogLevel.levelWithName(record.get("level", "info"))
                namespace = str(record.get("namespace") or namespace)
            except Exception:
                pass  # not one of ours: logged as it is
        if not text.strip():
            return
        Logger(namespace=namespace).emit(
            level, "worker {workerId}: {text}", workerId=slot.workerId, workerPid=slot.pid, text=text
        )

    # -- stopping ----------------------------------------------------------------------

    def stopService(self) -> Deferred[None]:
        """SIGTERM to every worker; fires once all have exited (killed if they must) and the sockets are closed."""
        super().stopService()  # type: ignore[no-untyped-call]  # Twisted's Service.stopService is unannotated
        self.stopping = True
        for slot in self.slots.values():
            if slot.restart is not None and slot.restart.active():
                slot.restart.cancel()
            slot.restart = None
        running = [s for s in self.slots.values() if s.process is not None]
        self._stopped = Deferred()
        if running:
            _log.info("stopping {count} workers", count=len(running))
            for slot in running:
                self._signal(slot, "TERM")
            self._killer = self.reactor.callLater(self.stopTimeout + self.killGrace, self._killRest)
        self._checkStopped()
        return self._stopped.addCallback(lambda _: self._closePorts()).addCallback(lambda _: None)

    def _signal(self, slot: _Slot, name: str) -> None:
        try:
            slot.process.signalProcess(name)
        except Exception:
            pass  # ended already: processEnded follows

    def _killRest(self) -> None:
        self._killer = None
        for slot in self.slots.values():
            if slot.process is not None:
                _log.warn(
                    "worker {workerId}: pid {pid} still running {timeout} s after SIGTERM: killing it",
                    workerId=slot.workerId,
                    pid=slot.pid,
                    timeout=self.stopTimeout + self.killGrace,
                )
                self._signal(slot, "KILL")

    def _checkStopped(self) -> None:
        if self._stopped is None or self._stopped.called:
            return
        if any(s.process is not None for s in self.slots.values()):
            return
        if self._killer is not None and self._killer.active():
            self._killer.cancel()
        self._killer = None
        self._stopped.callback(None)


def poolForTwistd(options: Any, top: Any) -> WorkerPool:
    """
    The pool C{twistd websocket --workers N} runs: workers started as
    C{python -m twisted_ws.twistd.worker} with the same options, on the
    sockets C{top} (a L{twisted_ws.twistd.WebSocketService}) listens on.
    The parent never starts C{top}: only its listeners are used.
    """
    return WorkerPool(
        workerCommand(getattr(options, "argv", [])),
        options["workers"],
        ports=list(zip(options["listen"], top.ports)),
        reusePort=bool(options.get("reuseport")),
        stopTimeout=options["stop-timeout"],
    )
