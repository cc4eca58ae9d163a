"""
The worker side of a L{twisted_ws.twistd.workers.WorkerPool}: a process
that serves connections on listening sockets its parent bound.

The pool tells a worker who it is in one environment variable
(L{WORKER_ENVIRONMENT}, JSON: its id and, for each C{--listen}
description, the inherited file descriptor or, with C{reusePort}, the port
to bind again with C{SO_REUSEPORT}).  Standard input is a pipe from the
parent that nobody writes to: when it closes, the parent is gone and the
worker stops instead of lingering (portable, unlike C{PR_SET_PDEATHSIG}).
Standard output carries the worker's log events, one JSON object a line
(L{workerLogObserver}); the parent writes them to its own log.

Public API, usable without twistd (see C{examples/workers.tac}):

  - L{workerId}: this worker's id (1..N), or C{None} outside a pool;
  - L{inheritedEndpoints}: one L{IStreamServerEndpoint} per listener of
    the pool; listening on it adopts the inherited socket
    (C{IReactorSocket.adoptStreamPort}), with TLS for C{ssl:} ones;
  - L{WorkerLifeline}: a service that stops the worker when its parent
    is gone;
  - L{workerLogObserver}: the log observer a worker writes its log with
    (for twistd: C{--logger twisted_ws.twistd.worker.workerLogObserver}).

C{python -m twisted_ws.twistd.worker [twistd websocket options]} is the
worker of C{twistd websocket --workers N}: the same service as
C{twistd websocket}, on the inherited sockets.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import sys
from collections.abc import Sequence
from typing import IO, Any, cast

from twisted.application import service
from twisted.internet import tcp, unix
from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IStreamServerEndpoint
from twisted.logger import (
    ILogObserver,
    Logger,
    formatEvent,
    globalLogBeginner,
)
from twisted.protocols.tls import TLSMemoryBIOFactory
from zope.interface import implementer

__all__ = [
    "WORKER_ENVIRONMENT",
    "WorkerLifeline",
    "bindReusePort",
    "inheritedEndpoints",
    "workerConfig",
    "workerId",
    "workerLogObserver",
    "main",
]

#: The environment variable a pool passes its worker's configuration in.
WORKER_ENVIRONMENT = "TWISTED_WS_WORKER"

_log = Logger(namespace="twisted_ws.twistd")


class WorkerConfigError(Exception):
    """The worker configuration is missing or malformed; C{str()} says why in one line."""


def workerConfig(environ: Any = None) -> dict[str, Any] | None:
    """
    This worker's configuration from its pool (C{{"id": int, "sockets":
    [{"listen": description, "fd": int} or {"listen": description,
    "port": int, "reusePort": True}]}}), or C{None} outside a pool.

    @raise WorkerConfigError: the variable is set but not valid.
    """
    text = (os.environ if environ is None else environ).get(WORKER_ENVIRONMENT)
    if text is None:
        return None
    try:
        config = json.loads(text)
        ok = (
            isinstance(config, dict)
            and isinstance(config.get("id"), int)
            and isinstance(config.get("sockets"), list)
            and all(
                isinstance(s, dict)
                and isinstance(s.get("listen"), str)
                and (isinstance(s.get("fd"), int) or isinstance(s.get("port"), int))
                for s in config["sockets"]
            )
        )
    except ValueError:
        ok = False
    if not ok:
        raise WorkerConfigError(f"{WORKER_ENVIRONMENT} is not a valid worker configuration")
    return cast("dict[str, Any]", config)


def workerId(environ: Any = None) -> int | None:
    """This process's worker id (1..N) when a L{WorkerPool} started it, else C{None}."""
    config = workerConfig(environ)
    return None if config is None else config["id"]


# -- adopting the pool's sockets -----------------------------------------------


class _SharedUNIXPort(unix.Port):
    """
    A worker's side of the pool's UNIX socket: the parent owns the file,
    so the worker neither removes it when it stops (C{unix.Port} would,
    under the other workers' feet) nor changes its mode.

    Relies on Twisted's private C{unix.Port._fromListeningDescriptor} (what
    C{adoptStreamPort} uses), checked before use: C{adoptStreamPort} itself
    would chmod the file to 0666 and remove it on stop.  And on stop it
    would C{shutdown()} the socket, which stops it listening in every
    process that shares it: C{_shouldShutdown} is the private switch Twisted
    itself clears for adopted TCP ports (C{tcp._SocketCloser}), not for
    UNIX ones.
    """

    _shouldShutdown = False

    def connectionLost(self, reason: Any) -> None:
        tcp.Port.connectionLost(self, reason)


def _adoptUNIX(reactor: Any, fd: int, factory: Any) -> Any:
    adopt = getattr(_SharedUNIXPort, "_fromListeningDescriptor", None)
    if adopt is None:  # pragma: no cover - a Twisted without it
        raise OSError("this Twisted cannot adopt a UNIX listening socket")
    with socket.socket(fileno=os.dup(fd)) as probe:
        path = probe.getsockname()
    port = adopt(reactor, fd, factory)
    if isinstance(path, str) and path and not path.startswith("\0"):
        # startListening chmods the file to port.mode: keep the parent's.
        port.mode = stat.S_IMODE(os.stat(path).st_mode)
    port.startListening()
    return port


def bindReusePort(interface: str, port: int, backlog: int, *, listen: bool) -> socket.socket:
    """
    A TCP socket bound to C{(interface, port)} with C{SO_REUSEPORT}:
    listening and non-blocking for a worker, only bound for the pool's
    reservation of the port (a bound socket that does not listen gets no
    connection).
    """
    family = socket.AF_INET6 if ":" in interface else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((interface or ("::" if family == socket.AF_INET6 else ""), port))
        if listen:
            sock.listen(backlog)
            sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class _AdoptingReactor:
    """
    Stands in for the reactor while C{serverFromString} parses and listens
    on a C{--listen} description: its C{listenTCP}/C{listenSSL}/C{listenUNIX}
    get exactly the arguments Twisted parsed (interface, backlog, the TLS
    context built from the certificate options) and adopt the socket the
    pool passed instead of binding a new one.  Any other endpoint type is
    refused: it could not be shared.
    """

    def __init__(self, reactor: Any, entry: dict[str, Any]) -> None:
        self._reactor = reactor
        self._entry = entry

    def _adoptTCP(self, factory: Any, interface: str, backlog: int) -> Any:
        entry = self._entry
        if entry.get("reusePort"):
            sock = bindReusePort(interface, entry["port"], backlog, listen=True)
        else:
            sock = socket.socket(fileno=os.dup(entry["fd"]))
        try:
            return self._reactor.adoptStreamPort(sock.fileno(), sock.family, factory)
        finally:
            sock.close()  # adoptStreamPort keeps its own copy

    def listenTCP(self, port: int, factory: Any, backlog: int = 50, interface: str = "") -> Any:
        return self._adoptTCP(factory, interface, backlog)

    def listenSSL(
        self, port: int, factory: Any, contextFactory: Any, backlog: int = 50, interface: str = ""
    ) -> Any:
        # What IReactorSSL.listenSSL does on a fresh socket: TLS per connection.
        return self._adoptTCP(TLSMemoryBIOFactory(contextFactory, False, factory), interface, backlog)

    def listenUNIX(self, address: Any, factory: Any, backlog: int = 50, mode: int = 0o666, wantPID: int = 0) -> Any:
        if self._entry.get("reusePort"):
            raise OSError("--reuseport works with tcp: endpoints only")
        fd = os.dup(self._entry["fd"])
        try:
            return _adoptUNIX(self._reactor, fd, factory)
        finally:
            os.close(fd)

    def __getattr__(self, name: str) -> Any:
        raise OSError(
            f"--listen {self._entry['listen']!r}: only tcp:, ssl: and unix: endpoints can be shared by workers"
        )


@implementer(IStreamServerEndpoint)
class _InheritedEndpoint:
    """Listening adopts the pool's socket for one C{--listen} description."""

    def __init__(self, reactor: Any, entry: dict[str, Any]) -> None:
        self._reactor = reactor
        self.entry = entry
        self.description = entry["listen"]

    def listen(self, factory: Any) -> Deferred[Any]:
        from twisted.internet.endpoints import serverFromString

        try:
            endpoint = serverFromString(_AdoptingReactor(self._reactor, self.entry), self.description)
        except Exception:
            return fail()
        # The parsed endpoint calls our listenTCP/listenSSL/listenUNIX.
        listening: Deferred[Any] = endpoint.listen(factory)
        return listening

    def __repr__(self) -> str:
        return f"<inherited {self.description}>"


def inheritedEndpoints(reactor: Any = None, config: dict[str, Any] | None = None) -> list[Any]:
    """
    One L{IStreamServerEndpoint} for each listener of this worker's pool,
    in the pool's order (e.g. the C{--listen} options).  Listening on one
    adopts the inherited socket with the factory given (wrapped in TLS for
    C{ssl:} descriptions, with the certificate options they name), or, in
    C{reusePort} mode, binds a new socket to the same port with
    C{SO_REUSEPORT}.  Outside a pool: an empty list.
    """
    if reactor is None:
        from twisted.internet import reactor as _reactor

        reactor = _reactor
    config = workerConfig() if config is None else config
    if config is None:
        return []
    return [_InheritedEndpoint(reactor, entry) for entry in config["sockets"]]


# -- the parent's lifeline -----------------------------------------------------


class _LifelineReader:
    """Reads the pipe from the parent; end of file means the parent is gone."""

    def __init__(self, fd: int, gone: Any) -> None:
        self._fd = fd
        self._gone = gone

    def fileno(self) -> int:
        return self._fd

    def logPrefix(self) -> str:
        return "WorkerLifeline"

    def doRead(self) -> Any:
        try:
            data = os.read(self._fd, 4096)
        except BlockingIOError:
            return None
        except OSError:
            data = b""
        if not data:
            from twisted.internet.main import CONNECTION_DONE

            return CONNECTION_DONE
        return None

    def connectionLost(self, reason: Any) -> None:
        self._gone()


class WorkerLifeline(service.Service):
    """
    Stops this worker (C{reactor.stop()}, so its services close their
    connections with 1001) when the pipe from the parent on C{fd}
    (standard input) closes: a parent killed with SIGKILL leaves no worker
    behind.  While it runs, SIGINT is ignored (a Ctrl-C reaches the whole
    process group, and the parent stops its workers itself, with SIGTERM)
    and a SIGTERM stops the reactor once: a second one during the stop is
    not an error, and the worker exits 0 once stopped.  C{handleSignals=False}
    leaves the signal handlers alone.
    """

    def __init__(self, reactor: Any = None, fd: int = 0, handleSignals: bool = True) -> None:
        if reactor is None:
            from twisted.internet import reactor as _reactor

            reactor = _reactor
        self._reactor = reactor
        self._fd = fd
        self._reader: _LifelineReader | None = None
        self._stopRequested = False
        self._handleSignals = handleSignals

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]  # Twisted's Service.startService is unannotated
        if self._handleSignals:
            # Once the reactor runs: it installs its own handlers then.
            self._reactor.callWhenRunning(self._takeSignals)
        os.set_blocking(self._fd, False)
        self._reader = _LifelineReader(self._fd, self._parentGone)
        self._reactor.addReader(self._reader)

    def _takeSignals(self) -> None:
        if not self.running:
            return
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(
                signal.SIGTERM, lambda n, f: self._reactor.callFromThread(self._stop, "SIGTERM received")
            )
        except ValueError:  # pragma: no cover - not the main thread
            pass

    def _parentGone(self) -> None:
        if self.running:
            self._stop("the parent process is gone", warn=True)

    def _stop(self, why: str, warn: bool = False) -> None:
        if self._stopRequested:
            return
        self._stopRequested = True
        (_log.warn if warn else _log.info)("{why}: stopping", why=why)
        self._reactor.stop()

    def stopService(self) -> None:
        super().stopService()  # type: ignore[no-untyped-call]  # Twisted's Service.stopService is unannotated
        if self._reader is not None:
            self._reactor.removeReader(self._reader)
            self._reader = None


# -- logging -------------------------------------------------------------------------


@implementer(ILogObserver)
class _JSONLineObserver:
    def __init__(self, out: IO[str]) -> None:
        self._out = out

    def __call__(self, event: dict[str, Any]) -> None:
        text = formatEvent(event)
        failure = event.get("log_failure")
        if failure is not None:
            try:
                text = f"{text}\n{failure.getTraceback()}".rstrip("\n")
            except Exception:
                pass
        record = {
            "level": getattr(event.get("log_level"), "name", "info"),
            "namespace": event.get("log_namespace") or "-",
            "text": text,
        }
        try:
            self._out.write(json.dumps(record) + "\n")
            self._out.flush()
        except (OSError, ValueError):
            pass  # the parent is gone: the lifeline stops us


def workerLogObserver(out: IO[str] | None = None) -> ILogObserver:
    """
    A log observer writing one JSON object per event and line
    (C{level}, C{namespace}, C{text}) to C{out} (standard output), flushed
    at once: the pool re-logs each one in the parent's log as
    C{worker N: text}, with its level and namespace.
    """
    return _JSONLineObserver(out if out is not None else sys.stdout)


# -- python -m twisted_ws.twistd.worker ----------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run one worker of C{twistd websocket --workers N}: C{argv} are the
    C{websocket} options; the sockets and the id come from the pool.
    """
    from twisted.internet import reactor
    from twisted.python import usage

    from .options import Options
    from .service import StartupError, makeService

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        config = workerConfig()
    except WorkerConfigError as e:
        print(f"twisted_ws worker: {e}", file=sys.stderr)
        return 2
    if config is None:
        print(
            "twisted_ws worker: started outside a worker pool (use twistd websocket --workers N)",
            file=sys.stderr,
        )
        return 2
    globalLogBeginner.beginLoggingTo([workerLogObserver()], redirectStandardIO=False)
    options = Options()
    try:
        options.parseOptions(argv)
    except usage.UsageError as e:
        _log.error("twisted_ws worker: {error}", error=str(e))
        return 2
    endpoints = iter(inheritedEndpoints(reactor, config))
    try:
        top = makeService(options, endpointFor=lambda description: next(endpoints))
        top.workerId = config["id"]
    except (StartupError, StopIteration) as e:
        _log.error("{error}", error=str(e) or "the pool passed fewer sockets than --listen options")
        return 3
    lifeline = WorkerLifeline(reactor)
    failed: list[str] = []

    def start() -> None:
        try:
            top.listenNow()
        except StartupError as e:
            failed.append(str(e))
            _log.error("{error}", error=str(e))
            reactor.stop()
            return
        top.startService()  # type: ignore[no-untyped-call]  # Twisted's MultiService.startService is unannotated
        lifeline.startService()

    def stop() -> Any:
        lifeline.stopService() if lifeline.running else None
        return top.stopService() if top.running else None

    reactor.callWhenRunning(start)
    reactor.addSystemEventTrigger("before", "shutdown", stop)
    reactor.run()
    return 3 if failed else 0


if __name__ == "__main__":  # pragma: no cover - run by the pool
    sys.exit(main())
