"""
The service behind C{twistd websocket}: a ready-made WebSocket server.

C{twistd -n websocket} serves an echo on C{tcp:8080}.  Options pick the
mode (echo, broadcast rooms, a TCP bridge, or the user's own protocol
class), the endpoints, static files on the same port, a JSON status page,
limits and timeouts; C{twistd websocket --help} lists them all.

The pieces, each usable on its own:

  - L{WebSocketService}: a C{MultiService} that owns the listeners, and
    (through L{ConnectionTracker}) tracks the open WebSocket connections
    and their counters and closes them, bounded, when it stops;
  - L{makeService}: builds it from parsed L{Options}; start-up problems
    are a L{StartupError} with the reason in one line.

The command line is in L{options}, the connection bookkeeping in
L{tracking}, the site (static files, status page) in L{site}.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import Any

from twisted.application import internet
from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IReactorTime, IStreamServerEndpoint
from twisted.logger import Logger
from zope.interface import implementer

from ..protocol import WebSocketProtocol
from .options import Options
from .site import buildSite
from .status import StatusResource
from .tracking import ConnectionTracker, ServiceFactory, formatAddress

__all__ = [
    "EchoProtocol",
    "StartupError",
    "WebSocketService",
    "makeService",
    "makeTwistdService",
]

#: The same namespace as L{twisted_ws.twistd.tracking}'s log lines.
_log = Logger(namespace="twisted_ws.twistd")


class EchoProtocol(WebSocketProtocol):
    """Send every message back as it came (text stays text)."""

    def textMessageReceived(self, text: str) -> None:
        self.sendMessage(text)

    def binaryMessageReceived(self, data: bytes) -> None:
        self.sendMessage(data)


@implementer(IStreamServerEndpoint)
class _AnnouncingEndpoint:
    """An endpoint that logs where it listens once it does."""

    def __init__(self, endpoint: Any, announce: Callable[[Any], None]) -> None:
        self._endpoint = endpoint
        self._announce = announce

    def listen(self, factory: Any) -> Deferred[Any]:
        def listening(port: Any) -> Any:
            self._announce(port)
            return port

        d: Deferred[Any] = self._endpoint.listen(factory)
        return d.addCallback(listening)


class StartupError(Exception):
    """
    The service cannot start (an endpoint it cannot build or listen on);
    C{str()} is the reason in one line.

    An C{Exception}, not C{SystemExit}: twistd reports only C{Exception}s
    to a daemon's waiting parent (and removes the pid file), so a
    C{SystemExit} left that parent waiting forever.
    """


_FILE_ARGUMENTS = re.compile(r"(?:^|:)(?:privateKey|certKey|extraCertChain|dhParameters)=((?:\\.|[^:])*)")


def _startupReason(error: BaseException, description: str) -> str:
    """The short, readable reason C{description} cannot be used."""
    if isinstance(error, CannotListenError) and isinstance(error.socketError, BaseException):
        error = error.socketError
    if isinstance(error, OSError) and error.strerror:
        name = error.filename2 if error.filename2 is not None else error.filename
        if name is None and isinstance(error, FileNotFoundError):
            # Reading ssl: certificate files names no file: find it.
            missing = [
                f for f in (m.replace("\\:", ":") for m in _FILE_ARGUMENTS.findall(description))
                if not os.path.exists(f)
            ]
            if missing:
                return f"no such file: {', '.join(missing)}"
        if name is None:
            return error.strerror
        name = os.fsdecode(name)
        folder = os.path.dirname(name)
        if isinstance(error, FileNotFoundError) and folder and not os.path.isdir(folder):
            return f"no such directory: {folder}"
        return f"{error.strerror}: {name}"
    return str(error) or type(error).__name__


def _systemdReason(error: BaseException, description: str, environ: Mapping[str, str]) -> str | None:
    """
    Why a C{systemd:} description finds no socket, or C{None} for another
    error: Twisted's parser raises the bare KeyError or IndexError of its
    lookup.  Twisted takes LISTEN_PID and LISTEN_FDS out of the environment
    when it adopts them, so what is left tells what systemd passed.
    """
    if description.split(":", 1)[0].lower() != "systemd" or not isinstance(error, LookupError):
        return None
    if "LISTEN_FDS" in environ:
        return "no socket was passed by systemd (LISTEN_PID is not this process)"
    names = [name for name in environ.get("LISTEN_FDNAMES", "").split(":") if name]
    if not names:
        return "no socket was passed by systemd (LISTEN_FDS and LISTEN_FDNAMES are not set)"
    if isinstance(error, KeyError):
        return f"no systemd socket named {error.args[0]} (names: {', '.join(names)})"
    return f"systemd passed {len(names)} socket(s) ({', '.join(names)}): no such index"


class _ListenerService(internet.StreamServerEndpointService):
    """
    A listener that cannot listen stops the program at start-up with the
    reason in one line, instead of a server that runs and listens nowhere.
    It can listen early (L{listenNow}): twistd then fails before it forks.
    """

    _raiseSynchronously = True
    _listenCalled = False

    def __init__(self, endpoint: Any, factory: Any, description: str) -> None:
        super().__init__(endpoint, factory)  # type: ignore[no-untyped-call]  # Twisted's StreamServerEndpointService.__init__ is unannotated
        self.description = description

    def listenNow(self) -> None:
        """
        Listen, unless this was done already.

        @raise StartupError: it cannot listen.
        """
        if self._listenCalled:
            return
        self._listenCalled = True
        try:
            super().privilegedStartService()  # type: ignore[no-untyped-call]  # Twisted's StreamServerEndpointService.privilegedStartService is unannotated
        except Exception as e:
            raise StartupError(
                f"twisted_ws: cannot listen on {self.description}: {_startupReason(e, self.description)}"
            ) from None

    def privilegedStartService(self) -> None:
        self.listenNow()


class WebSocketService(ConnectionTracker):
    """
    Listeners plus the WebSocket connections they opened (counted and
    closed on stop by L{ConnectionTracker}).

    @ivar ports: the listening ports, once listening.
    """

    def __init__(self, stopTimeout: float = 5.0, clock: IReactorTime | None = None) -> None:
        super().__init__(stopTimeout, clock)
        self.ports: list[Any] = []

    # -- listeners ----------------------------------------------------------

    def listen(
        self,
        endpoint: Any,
        factory: Any,
        describe: Callable[[Any], str],
        description: str | None = None,
    ) -> None:
        """
        Listen on C{endpoint} with C{factory} while the service runs;
        C{describe(port)} gives the text of the "listening on" log line,
        C{description} (e.g. C{tcp:8080}) names the endpoint in errors.
        """

        def announce(port: Any) -> None:
            self.ports.append(port)
            _log.info("listening on {where}", where=describe(port))

        _ListenerService(  # type: ignore[no-untyped-call]  # Twisted's Service.setServiceParent is unannotated
            _AnnouncingEndpoint(endpoint, announce), factory, description or repr(endpoint)
        ).setServiceParent(self)

    def listenNow(self) -> None:
        """
        Listen on every endpoint now instead of when the service starts.

        twistd calls this (see L{makeTwistdService}) before it daemonizes:
        a port in use then stops it in the foreground, with one line,
        before it forks or writes a pid file.

        @raise StartupError: an endpoint cannot listen.
        """
        for child in self:
            if isinstance(child, _ListenerService):
                child.listenNow()


def _scheme(description: str, secure: str, plain: str) -> str:
    kind = description.split(":", 1)[0].strip().lower()
    return secure if kind in ("ssl", "tls") else plain


def _describer(description: str, wsPath: str, siteMode: bool) -> Callable[[Any], str]:
    def describe(port: Any) -> str:
        address = port.getHost()
        if getattr(address, "host", None) is None:
            where = f"ws+unix://{formatAddress(address)}{wsPath}"
            return where + (" (and HTTP)" if siteMode else "")
        host = formatAddress(address)
        ws = f"{_scheme(description, 'wss', 'ws')}://{host}{wsPath}"
        if siteMode:
            return f"{ws} (HTTP at {_scheme(description, 'https', 'http')}://{host}/)"
        return ws

    return describe


#: The --listen kinds whose sockets worker processes can share.
_SHAREABLE = ("tcp", "tcp6", "ssl", "unix")


def _checkWorkerListeners(options: Options) -> None:
    """Refuse, in one line, a --listen that --workers or --reuseport cannot use."""
    for description in options["listen"]:
        kind = description.split(":", 1)[0].strip().lower()
        if options.get("workers", 1) > 1 and kind not in _SHAREABLE:
            raise StartupError(
                f"twisted_ws: --workers: --listen {description!r} cannot be shared by worker "
                "processes (tcp:, tcp6:, ssl: and unix: can)"
            )
        if options.get("reuseport") and kind not in ("tcp", "tcp6"):
            raise StartupError(
                f"twisted_ws: --reuseport works with tcp: endpoints only, not --listen {description!r}"
            )


def makeService(
    options: Options,
    clock: IReactorTime | None = None,
    endpointFor: Callable[[str], Any] | None = None,
) -> WebSocketService:
    """
    Build the service C{twistd websocket} runs from parsed L{Options}.

    @param endpointFor: makes the endpoint of a C{--listen} description
        (default: C{serverFromString}); a worker of C{--workers N} passes
        one that adopts its parent's sockets (L{twisted_ws.twistd.worker}).
    """
    from twisted.internet import reactor
    from twisted.internet.endpoints import serverFromString

    _checkWorkerListeners(options)
    clock = clock or reactor
    top = WebSocketService(stopTimeout=options["stop-timeout"], clock=clock)
    mode = options["mode"]
    # The worker and process id first: a callable's fields are merged in.
    extra: dict[str, Any] = {"identity": top.identity, "mode": mode}

    if mode == "echo":
        protocol: type[WebSocketProtocol] = EchoProtocol
    elif mode == "broadcast":
        from ..apps.broadcast import BroadcastHub, BroadcastProtocol

        protocol = BroadcastProtocol
        bus = None
        if options.get("redis") is not None:
            bus = _redisBus(options["redis"], options["redis-prefix"], reactor)
            bus.setServiceParent(top)  # connects when the service starts
        hub = BroadcastHub(options["max-queue-bytes"], options["max-queue-messages"], bus=bus)
    elif mode == "bridge":
        from ..apps.bridge import BridgeProtocol

        protocol = BridgeProtocol
        extra["target"] = options["target"]
    else:
        protocol = options["protocolClass"]
        extra["protocol"] = options["protocol"]

    extensions = []
    if options["deflate"]:
        try:
            from ..core.deflate import PerMessageDeflate
        except ImportError:  # pragma: no cover - the extension is part of the package
            pass
        else:
            extensions.append(PerMessageDeflate())

    factory = ServiceFactory(
        protocol,
        top,
        maxConnections=options["max-connections"],
        subprotocols=options["subprotocols"],
        allowedOrigins=options["allowedOrigins"] or None,
        extensions=extensions,
        options=options["options"],
        clock=clock,
    )
    if mode == "broadcast":
        factory.hub = hub
        extra["broadcast"] = hub.status
    elif mode == "bridge":
        from ..apps.bridge import targetEndpoint

        factory.target = targetEndpoint(reactor, options["target"])
        factory.targetDescription = options["target"]

    metrics = None
    if options.get("metrics") is not None:
        metrics = _metricsPage(top, hub if mode == "broadcast" else None, clock)
    siteMode = options["static"] is not None or options["status"] is not None or metrics is not None
    if siteMode:
        status = StatusResource(top.stats, lambda: _extraStatus(extra))
        wsPath = options["path"] if options["static"] is not None else None
        listenFactory = buildSite(
            factory, wsPath, options["static"], options["status"], status, options.get("metrics"), metrics
        )
        shownPath = wsPath if wsPath is not None else "/"
    else:
        listenFactory = factory
        shownPath = "/"
    http2Site = None
    for description in options["listen"]:
        try:
            endpoint = (
                serverFromString(reactor, description) if endpointFor is None else endpointFor(description)
            )
        except Exception as e:
            reason = _systemdReason(e, description, os.environ) or _startupReason(e, description)
            raise StartupError(f"twisted_ws: --listen {description!r}: {reason}") from None
        chosen, describeAsSite = listenFactory, siteMode
        if options.get("http2") and _scheme(description, "tls", "plain") == "tls":
            # HTTP/2 is chosen by ALPN, so it takes a Site; plain listeners
            # keep the bare factory.
            if http2Site is None:
                http2Site = _http2Site(listenFactory if siteMode else buildSite(factory, None, None, None, None))
            chosen, describeAsSite = http2Site, True
        top.listen(endpoint, chosen, _describer(description, shownPath, describeAsSite), description)
    _log.info(
        "twisted_ws {mode} service on {listen}", mode=mode, listen=", ".join(options["listen"])
    )
    return top


def _http2Site(site: Any) -> Any:
    """C{site} taking WebSockets over HTTP/2 (C{--http2}); no h2 library is a StartupError."""
    try:
        from ..http2.server import enableHTTP2WebSockets
    except ImportError as e:
        raise StartupError(
            f"twisted_ws: --http2 needs the h2 library (pip install 'Twisted[http2]'): {e}"
        ) from None
    return enableHTTP2WebSockets(site)


def _redisBus(url: str, prefix: str, reactor: Any) -> Any:
    """The bus of C{--redis}; a bad URL or a missing txredisapi is a StartupError."""
    try:
        from ..apps.redisbus import RedisBus

        return RedisBus(url, prefix, reactor=reactor)
    except (ImportError, ValueError) as e:
        raise StartupError(f"twisted_ws: --redis: {e}") from None


def _metricsPage(top: WebSocketService, hub: Any, clock: Any) -> Any:
    """The page of C{--metrics}; a missing prometheus_client is a StartupError."""
    from .metrics import metricsForService

    try:
        page, writer = metricsForService(top, hub, clock)
    except ImportError as e:
        raise StartupError(f"twisted_ws: {e}") from None
    if writer is not None:
        # A worker of a pool: shares its figures.
        writer.setServiceParent(top)  # type: ignore[no-untyped-call]  # Twisted's Service.setServiceParent is unannotated
    return page


def makeTwistdService(options: Options) -> Any:
    """
    L{makeService} for C{twistd websocket}: it also listens at once, so a
    bad endpoint or a port in use stops twistd with one line and a non-zero
    status, before it daemonizes or writes a pid file (a daemon's parent
    would otherwise only print a truncated two-line message).

    With C{--workers N} (N > 1) the same listening happens here, and the
    service returned is a L{twisted_ws.twistd.workers.WorkerPool} that runs
    the connections in N child processes sharing those sockets.
    """
    workers = options.get("workers", 1)
    endpointFor = None
    if workers > 1 and options.get("reuseport"):
        from .workers import reservingEndpoint

        endpointFor = reservingEndpoint
    try:
        top = makeService(options, endpointFor=endpointFor)
        top.listenNow()
    except StartupError as e:
        raise SystemExit(str(e)) from None
    if workers > 1:
        from .workers import poolForTwistd

        pool = poolForTwistd(options, top)
        if options.get("metrics") is not None:
            from .metrics import shareSnapshots

            shareSnapshots(pool)  # any worker's page reports every worker
        return pool
    return top


def _extraStatus(extra: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in extra.items():
        if callable(value):
            out.update(value())
        else:
            out[key] = value
    return out
