"""
The service behind C{twistd websocket}: a ready-made WebSocket server.

C{twistd -n websocket} serves an echo on C{tcp:8080}.  Options pick the
mode (echo, broadcast rooms, a TCP bridge, or the user's own protocol
class), the endpoints, static files on the same port, a JSON status page,
limits and timeouts; C{twistd websocket --help} lists them all.

The pieces, each usable on its own:

  - L{WebSocketService}: a C{MultiService} that owns the listeners, tracks
    the open WebSocket connections and their counters, and on
    C{stopService} closes every connection with 1001 (going away), waiting
    a bounded grace period before aborting the stragglers;
  - L{trackedProtocol}: puts the service's bookkeeping (structured logs,
    counters) in front of any L{WebSocketProtocol} subclass, so the
    application classes stay free of it;
  - L{ServiceFactory}: a L{WebSocketServerFactory} that logs and counts
    rejected handshakes and refuses new connections beyond a limit or
    while stopping.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any

from twisted.application import internet, service
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred, succeed
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import (
    IDelayedCall,
    IReactorTime,
    IStreamServerEndpoint,
)
from twisted.logger import Logger
from twisted.python import usage
from twisted.python.reflect import namedAny
from zope.interface import directlyProvides, implementer, providedBy

from .core.acceptance import Reject
from .core.closecodes import CloseCode
from .core.errors import HandshakeError
from .core.handshake import HandshakeRequest
from .core.options import WebSocketOptions
from .clock import defaultClock
from .protocol import WebSocketProtocol
from .server.factory import WebSocketServerFactory
from .status import ConnectionStats, StatusResource

__all__ = [
    "EchoProtocol",
    "Options",
    "ServiceFactory",
    "StartupError",
    "WebSocketService",
    "makeService",
    "makeTwistdService",
    "trackedProtocol",
]

_log = Logger()

MODES = ("echo", "broadcast", "bridge", "custom")
DEFAULT_LISTEN = "tcp:8080"


class EchoProtocol(WebSocketProtocol):
    """Send every message back as it came (text stays text)."""

    def textMessageReceived(self, text: str) -> None:
        self.sendMessage(text)

    def binaryMessageReceived(self, data: bytes) -> None:
        self.sendMessage(data)


def _connections(count: int) -> str:
    """C{1 WebSocket connection}, C{2 WebSocket connections}: log lines a person reads."""
    return f"{count} WebSocket connection" + ("" if count == 1 else "s")


def _formatAddress(address: Any) -> str:
    """C{host:port} for IP addresses, the path for UNIX ones."""
    host = getattr(address, "host", None)
    if host is not None:
        return f"[{host}]:{address.port}" if ":" in host else f"{host}:{address.port}"
    name = getattr(address, "name", None)
    if name is not None:
        return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
    return str(address)


# -- per-connection bookkeeping ------------------------------------------------


class _CountingTransport:
    """
    The transport as the service's connections see it: counts the bytes
    written and forwards everything else to the real transport (whose
    interfaces it declares, so C{ISSLTransport.providedBy} still answers).
    """

    def __init__(self, transport: Any, stats: ConnectionStats) -> None:
        self._transport = transport
        self._stats = stats
        directlyProvides(self, *providedBy(transport))

    def write(self, data: bytes) -> None:
        self._stats.bytesOut += len(data)
        self._transport.write(data)

    def writeSequence(self, data: Sequence[bytes]) -> None:
        data = list(data)
        self._stats.bytesOut += sum(map(len, data))
        self._transport.writeSequence(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _TrackedConnection:
    """
    Mixed in front of the application's protocol class (see
    L{trackedProtocol}): registers the connection with the service, logs its
    opening and closing, and counts messages and bytes.  Every method calls
    the application's, which never needs to know.
    """

    _wsService: WebSocketService | None = None

    def makeConnection(self, transport: Any) -> None:
        svc = getattr(self.factory, "service", None)  # type: ignore[attr-defined]
        if svc is not None:
            self._wsService = svc
            transport = _CountingTransport(transport, svc.stats)
            svc.connectionOpened(self)  # type: ignore[arg-type]
        super().makeConnection(transport)  # type: ignore[misc]

    def connectionLost(self, reason: Any = None) -> None:
        try:
            super().connectionLost(reason)  # type: ignore[misc]
        finally:
            svc = self._wsService
            if svc is not None:
                svc.connectionEnded(self)  # type: ignore[arg-type]

    def dataReceived(self, data: bytes) -> None:
        svc = self._wsService
        if svc is not None:
            svc.stats.bytesIn += len(data)
        super().dataReceived(data)  # type: ignore[misc]

    def textMessageReceived(self, text: str) -> None:
        if self._wsService is not None:
            self._wsService.stats.messagesIn += 1
        super().textMessageReceived(text)  # type: ignore[misc]

    def binaryMessageReceived(self, data: bytes) -> None:
        if self._wsService is not None:
            self._wsService.stats.messagesIn += 1
        super().binaryMessageReceived(data)  # type: ignore[misc]

    def messageEnded(self) -> None:
        if self._wsService is not None:
            self._wsService.stats.messagesIn += 1
        super().messageEnded()  # type: ignore[misc]

    def sendMessage(self, *args: Any, **kwargs: Any) -> None:
        if self._wsService is not None:
            self._wsService.stats.messagesOut += 1
        super().sendMessage(*args, **kwargs)  # type: ignore[misc]

    def beginMessage(self, *args: Any, **kwargs: Any) -> Any:
        if self._wsService is not None:
            self._wsService.stats.messagesOut += 1
        return super().beginMessage(*args, **kwargs)  # type: ignore[misc]


_trackedClasses: dict[type, type] = {}


def trackedProtocol(cls: type[WebSocketProtocol]) -> type[WebSocketProtocol]:
    """
    A subclass of C{cls} that reports to the L{WebSocketService} found as
    its factory's C{service} attribute (logs, counters, graceful stop).
    """
    tracked = _trackedClasses.get(cls)
    if tracked is None:
        tracked = type(cls.__name__, (_TrackedConnection, cls), {"__module__": cls.__module__})
        _trackedClasses[cls] = tracked
    return tracked  # type: ignore[return-value]


# -- the factory ------------------------------------------------------------


class ServiceFactory(WebSocketServerFactory):
    """
    A L{WebSocketServerFactory} working for a L{WebSocketService}: it
    refuses new connections (503) while the service stops or beyond
    C{maxConnections}, and reports every refusal to the service.
    """

    def __init__(
        self,
        protocol: type[WebSocketProtocol],
        service: WebSocketService,
        *,
        maxConnections: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(trackedProtocol(protocol), **kwargs)
        self.service = service
        self.maxConnections = maxConnections

    def acceptRequest(self, request: HandshakeRequest) -> Any:
        if self.service.stopping:
            raise Reject(503, "the server is shutting down")
        if self.maxConnections and len(self.service.connections) >= self.maxConnections:
            raise Reject(503, "too many connections, try again later")
        return super().acceptRequest(request)

    def handshakeRejected(
        self, error: HandshakeError, request: HandshakeRequest | None, peer: Any
    ) -> None:
        self.service.rejected(peer, request, error)


# -- the service --------------------------------------------------------------


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

        return self._endpoint.listen(factory).addCallback(listening)


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


class _ListenerService(internet.StreamServerEndpointService):
    """
    A listener that cannot listen stops the program at start-up with the
    reason in one line, instead of a server that runs and listens nowhere.
    It can listen early (L{listenNow}): twistd then fails before it forks.
    """

    _raiseSynchronously = True
    _listenCalled = False

    def __init__(self, endpoint: Any, factory: Any, description: str) -> None:
        super().__init__(endpoint, factory)
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
            super().privilegedStartService()
        except Exception as e:
            raise StartupError(
                f"twisted_ws: cannot listen on {self.description}: {_startupReason(e, self.description)}"
            ) from None

    def privilegedStartService(self) -> None:
        self.listenNow()


class WebSocketService(service.MultiService):
    """
    Listeners plus the WebSocket connections they opened.

    @ivar connections: the open connections (L{WebSocketProtocol}s).
    @ivar stats: the service's L{ConnectionStats}.
    @ivar stopTimeout: seconds the connections get to finish their close
        handshake when the service stops, before they are aborted.
    @ivar stopping: C{True} once C{stopService} began: new upgrades get 503.
    """

    closeCode = CloseCode.GOING_AWAY
    closeReason = "server shutting down"

    def __init__(self, stopTimeout: float = 5.0, clock: IReactorTime | None = None) -> None:
        super().__init__()
        self.clock = clock or defaultClock()
        self.stopTimeout = stopTimeout
        self.connections: dict[WebSocketProtocol, None] = {}
        self.stats = ConnectionStats(self.clock)
        self.stopping = False
        self.ports: list[Any] = []
        self._emptyWaiters: list[Deferred[None]] = []

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

        _ListenerService(
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

    # -- connection bookkeeping --------------------------------------------

    def connectionOpened(self, protocol: WebSocketProtocol) -> None:
        self.connections[protocol] = None
        self.stats.connectionsOpen = len(self.connections)
        self.stats.connectionsTotal += 1
        request = protocol.request
        _log.info(
            "WebSocket open: {peer} {path}{subprotocolText}",
            peer=_formatAddress(request.peer) if request else None,
            path=request.path if request else None,
            subprotocol=protocol.subprotocol,
            subprotocolText=f" (subprotocol {protocol.subprotocol})" if protocol.subprotocol else "",
            extensions=[getattr(e, "name", repr(e)) for e in protocol.extensions],
        )
        if self.stopping:
            # Accepted just before the stop began: it goes too.
            self.clock.callLater(0, protocol.close, self.closeCode, self.closeReason)

    def connectionEnded(self, protocol: WebSocketProtocol) -> None:
        self.connections.pop(protocol, None)
        self.stats.connectionsOpen = len(self.connections)
        request = protocol.request
        info = protocol.closeInfo
        _log.info(
            "WebSocket closed: {peer} {path} code={code} reason={reason!r} "
            "clean={wasClean} by={closedBy} sent={sentCode}",
            peer=_formatAddress(request.peer) if request else None,
            path=request.path if request else None,
            code=int(info.code) if info else None,
            reason=info.reason if info else "",
            wasClean=info.wasClean if info else False,
            closedBy=("peer" if info.initiatedByPeer else "server") if info else None,
            sentCode=info.sentCode if info else None,
        )
        if not self.connections:
            waiters, self._emptyWaiters = self._emptyWaiters, []
            for d in waiters:
                d.callback(None)

    def rejected(self, peer: Any, request: HandshakeRequest | None, error: HandshakeError) -> None:
        self.stats.rejected += 1
        _log.info(
            "WebSocket rejected: {peer} {path} {status} {reason}",
            peer=_formatAddress(peer) if peer is not None else "-",
            # A malformed request has no HandshakeRequest: "-", as in access logs.
            path=request.path if request is not None else "-",
            origin=request.origin if request is not None else None,
            status=error.status,
            reason=error.reason,
        )

    # -- stopping -------------------------------------------------------------

    def closeAll(
        self, code: int = CloseCode.GOING_AWAY, reason: str = "", timeout: float | None = None
    ) -> Deferred[None]:
        """
        Close every open connection with C{code}; the Deferred fires once
        they are all gone.  After C{timeout} seconds (default:
        C{stopTimeout}) the remaining ones are aborted, and the Deferred
        fires at most one second later whatever happens.
        """
        if not self.connections:
            return succeed(None)
        timeout = self.stopTimeout if timeout is None else timeout
        done: Deferred[None] = Deferred()
        self._emptyWaiters.append(done)
        for protocol in list(self.connections):
            protocol.close(code, reason)
        timers: list[IDelayedCall] = []

        def giveUp() -> None:
            if not done.called:
                _log.warn(
                    "{connections} did not go away",
                    count=len(self.connections),
                    connections=_connections(len(self.connections)),
                )
                done.callback(None)

        def abortRest() -> None:
            if self.connections:
                _log.info(
                    "aborting {connections} that did not finish closing",
                    count=len(self.connections),
                    connections=_connections(len(self.connections)),
                )
                for protocol in list(self.connections):
                    protocol.abortConnection()
                timers.append(self.clock.callLater(1.0, giveUp))

        timers.append(self.clock.callLater(timeout, abortRest))

        def cancelTimers(result: None) -> None:
            for t in timers:
                if t.active():
                    t.cancel()
            return result

        return done.addBoth(cancelTimers)

    def stopService(self) -> Deferred[Any]:
        """Stop listening, then close every connection with 1001 (bounded)."""
        self.stopping = True
        if self.connections:
            _log.info(
                "stopping: closing {connections} with {code}",
                count=len(self.connections),
                connections=_connections(len(self.connections)),
                code=int(self.closeCode),
            )
        listeners = maybeDeferred(service.MultiService.stopService, self)
        closing = self.closeAll(self.closeCode, self.closeReason)
        return DeferredList([listeners, closing], consumeErrors=True).addCallback(lambda _: None)


# -- the site: static files, the WebSocket at a path, the status page ----------


def _segments(path: str) -> list[bytes]:
    return [s.encode("utf-8") for s in path.strip("/").split("/")] if path.strip("/") else []


def _buildSite(
    factory: WebSocketServerFactory,
    wsPath: str | None,
    staticDir: str | None,
    statusPath: str | None,
    status: StatusResource | None,
) -> Any:
    from twisted.web.resource import NoResource, Resource
    from twisted.web.server import Request, Site, version
    from twisted.web.static import File

    from .server.resource import WebSocketResource

    static = File(staticDir) if staticDir is not None else None
    wsSegments = _segments(wsPath) if wsPath is not None else []
    webSocket = WebSocketResource(factory, fallback=static if not wsSegments else None)
    statusSegments = _segments(statusPath) if statusPath is not None else None

    class Root(Resource):
        """Routes by path: the status page, the WebSocket, else the files."""

        def getChildWithDefault(self, name: bytes, request: Any) -> Any:
            segments = [*request.prepath, *request.postpath]
            if segments and segments[-1] == b"":
                segments = segments[:-1]
            if statusSegments is not None and segments == statusSegments:
                request.prepath, request.postpath = segments, []
                return status
            if segments[: len(wsSegments)] == wsSegments:
                if not wsSegments:
                    # The WebSocket (and its fallback, the files) own the
                    # root: give the leaf the whole path.
                    request.postpath.insert(0, request.prepath.pop())
                return webSocket
            if static is not None:
                return static.getChildWithDefault(name, request)
            return NoResource()

    class NamelessRequest(Request):
        """
        Sends no C{Server} header: twisted.web's would name it and its
        version (C{TwistedWeb/26.10.0}), and no response of ours, files
        and status page included, tells the server's name or version.
        """

        def setHeader(self, name: bytes | str, value: bytes | str) -> None:
            if value == version and name in (b"Server", "Server"):
                return
            super().setHeader(name, value)

    site = Site(Root(), requestFactory=NamelessRequest)
    site.displayTracebacks = False
    return site


# -- options ----------------------------------------------------------------

_DEFAULTS = WebSocketOptions()


def _positiveInt(value: str) -> int:
    n = int(value)
    if n <= 0:
        raise ValueError(f"{value!r} is not a positive integer")
    return n


_positiveInt.coerceDoc = "A positive integer."  # type: ignore[attr-defined]


def _intOrOff(value: str) -> int | None:
    if value.lower() in ("0", "off", "none"):
        return None
    return _positiveInt(value)


_intOrOff.coerceDoc = "A positive integer, or 0/off for no limit."  # type: ignore[attr-defined]


def _seconds(value: str) -> float:
    n = float(value)
    if not n > 0 or n == float("inf"):
        raise ValueError(f"{value!r} is not a positive number of seconds")
    return n


_seconds.coerceDoc = "Seconds (a positive number)."  # type: ignore[attr-defined]


def _secondsOrOff(value: str) -> float | None:
    if value.lower() in ("0", "off", "none"):
        return None
    return _seconds(value)


_secondsOrOff.coerceDoc = "Seconds, or 0/off to disable."  # type: ignore[attr-defined]


def _mode(value: str) -> str:
    if value not in MODES:
        raise ValueError(f"unknown mode {value!r}; choose one of {', '.join(MODES)}")
    return value


_mode.coerceDoc = "One of: " + ", ".join(MODES) + "."  # type: ignore[attr-defined]


def _urlPath(value: str) -> str:
    if not value.startswith("/") or any(c in value for c in "?# \t\r\n"):
        raise ValueError(f"{value!r} is not a URL path (it must start with /)")
    return value.rstrip("/") or "/"


_urlPath.coerceDoc = "A URL path starting with /."  # type: ignore[attr-defined]

#: (option name, WebSocketOptions field, coerce, help)
_LIMIT_OPTIONS: list[tuple[str, str, Callable[[str], Any], str]] = [
    ("max-message-size", "maxMessageSize", _intOrOff,
     "Largest message accepted, in bytes (after decompression); bigger ones close the connection with 1009."),
    ("max-fragments", "maxFragments", _intOrOff, "Most frames one message may be split into."),
    ("fragment-size", "fragmentSize", _intOrOff,
     "Outgoing messages larger than this many bytes are sent in fragments."),
    ("open-timeout", "openTimeout", _secondsOrOff, "Seconds a client has to complete the opening handshake."),
    ("close-timeout", "closeTimeout", _secondsOrOff,
     "Seconds to wait for the close handshake before aborting the connection."),
    ("write-timeout", "writeTimeout", _secondsOrOff,
     "Seconds output may stay unsent (a peer that stops reading) before the connection is aborted."),
    ("ping-interval", "pingInterval", _secondsOrOff, "Seconds between keepalive pings."),
    ("ping-timeout", "pingTimeout", _secondsOrOff,
     "Seconds a keepalive pong may take before the connection is closed with 1011."),
    ("max-request-line", "maxRequestLineLength", _positiveInt, "Longest HTTP request line, in bytes (longer: 414)."),
    ("max-header-bytes", "maxHeaderBytes", _positiveInt, "Largest HTTP header block, in bytes (larger: 431)."),
    ("max-header-count", "maxHeaderCount", _positiveInt, "Most HTTP header fields (more: 431)."),
]


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = (
        "Serve WebSocket connections.  With no option: an echo on tcp:8080.\n"
        "Modes: echo (send every message back), broadcast (every message goes to "
        "every client connected to the same URL path, a 'room'), bridge (relay each "
        "connection to a TCP backend, binary, like websockify), custom (--protocol: "
        "your own WebSocketProtocol subclass).\n"
        "Without --static/--status the WebSocket answers on every path; with --static "
        "it lives at --path (and below) and the files are served on the same port."
    )

    optFlags = [
        ["no-deflate", None, "Do not offer permessage-deflate compression (on by default)."],
    ]

    optParameters = [
        ["mode", "m", "echo", "What the server does with messages.", _mode],
        ["target", "t", None,
         "Bridge mode: the backend's client endpoint, e.g. tcp:localhost:5900 "
         "(tcp:host:port:timeout=5 bounds the connection attempt). "
         "ssl:host:port[:caCertsDir=PATH][:hostname=NAME][:certKey=PEM:privateKey=PEM] "
         "verifies the backend's certificate and hostname (default CAs: the platform's)."],
        ["protocol", "p", None,
         "Custom mode: the dotted name of your WebSocketProtocol subclass, "
         "e.g. myapp.chat.ChatProtocol (it must be importable)."],
        ["path", None, "/ws",
         "With --static or --status: the URL path of the WebSocket (broadcast rooms "
         "live below it, e.g. /ws/lobby).", _urlPath],
        ["static", "s", None, "Serve the files of this directory on the same port(s)."],
        ["status", None, None,
         "Serve live counters as JSON at this URL path (default /_status when --static "
         "is used)", _urlPath],
        ["max-queue-bytes", None, 1 << 20,
         "Broadcast mode: most bytes waiting for one slow client before it is closed "
         "with 1008 (at least --max-message-size).", _positiveInt],
        ["max-queue-messages", None, 1000,
         "Broadcast mode: most messages waiting for one slow client before it is "
         "closed with 1008.", _positiveInt],
        ["max-connections", None, None,
         "Most open WebSocket connections; more are refused with 503 [default: no limit]", _intOrOff],
        ["stop-timeout", None, 5.0,
         "When stopping: seconds open connections get to finish closing (1001) "
         "before they are aborted.", _seconds],
    ] + [[name, None, getattr(_DEFAULTS, field), help, coerce] for name, field, coerce, help in _LIMIT_OPTIONS]

    compData = usage.Completions(
        optActions={
            "mode": usage.CompleteList(list(MODES)),
            "static": usage.CompleteDirs(),
        }
    )

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []
        self["subprotocols"] = []
        self["allowedOrigins"] = []

    def opt_listen(self, description: str) -> None:
        """Endpoint to listen on; repeat for several. E.g. tcp:8080, tcp:0:interface=127.0.0.1, ssl:8443:privateKey=key.pem:certKey=cert.pem, unix:/tmp/ws.sock [default: tcp:8080]"""
        self["listen"].append(description)

    opt_l = opt_listen

    def opt_subprotocol(self, name: str) -> None:
        """A subprotocol to offer (Sec-WebSocket-Protocol), in preference order; repeat for several."""
        self["subprotocols"].append(name)

    def opt_allow_origin(self, pattern: str) -> None:
        """Accept browsers from this Origin only (shell pattern, e.g. https://*.example.com); repeat for several. Others get 403; clients sending no Origin (non-browsers) always pass. [default: any origin]"""
        self["allowedOrigins"].append(pattern)

    def opt_version(self) -> None:
        """Print the versions of twisted_ws, Twisted and Python, whether the C accelerator is in use, and exit."""
        # Replaces usage.Options.opt_version, which names Twisted's version only.
        from .version import versionText

        print(versionText())
        sys.exit(0)

    def postOptions(self) -> None:
        if not self["listen"]:
            self["listen"] = [DEFAULT_LISTEN]
        # The --listen endpoints are checked by makeService: a bad one is a
        # one-line error there, not the whole --help.
        self._checkMode()
        if self["static"] is not None:
            if not os.path.isdir(self["static"]):
                raise usage.UsageError(f"--static {self['static']}: not a directory")
            if self["status"] is None:
                self["status"] = "/_status"
        if self["status"] is not None and self["static"] is not None and self["status"] == self["path"]:
            raise usage.UsageError("--status and --path must be different paths")
        for name in self["subprotocols"]:
            from .core.http import isToken

            if not isToken(name):
                raise usage.UsageError(f"--subprotocol {name!r}: not a valid token")
        try:
            self["options"] = WebSocketOptions(
                **{field: self[name] for name, field, _, _ in _LIMIT_OPTIONS}
            )
        except ValueError as e:
            raise usage.UsageError(str(e)) from None
        maxMessage = self["options"].maxMessageSize
        if self["mode"] == "broadcast" and maxMessage is not None and self["max-queue-bytes"] < maxMessage:
            raise usage.UsageError(
                f"--max-queue-bytes ({self['max-queue-bytes']}) must be at least "
                f"--max-message-size ({maxMessage}), or one message could cut every "
                "busy client off"
            )
        self["deflate"] = not self["no-deflate"]

    def _checkMode(self) -> None:
        mode = self["mode"]
        if self["protocol"] is not None:
            if mode not in ("echo", "custom"):
                raise usage.UsageError(f"--protocol cannot be used with --mode {mode}")
            mode = self["mode"] = "custom"
            self["protocolClass"] = loadProtocolClass(self["protocol"])
        elif mode == "custom":
            raise usage.UsageError("--mode custom needs --protocol package.module.ClassName")
        if mode == "bridge":
            if self["target"] is None:
                raise usage.UsageError("--mode bridge needs --target, e.g. --target tcp:localhost:5900")
            from .bridge import targetEndpoint

            try:
                targetEndpoint(_ParsingOnly(), self["target"])
            except Exception as e:
                raise usage.UsageError(f"--target {self['target']!r}: {e}") from None
        elif self["target"] is not None:
            raise usage.UsageError("--target is only used with --mode bridge")


class _ParsingOnly:
    """Stands in for the reactor while endpoint strings are checked."""


def loadProtocolClass(name: str) -> type[WebSocketProtocol]:
    """
    Import C{package.module.ClassName} and check it is a
    L{WebSocketProtocol} subclass.

    @raise usage.UsageError: with the reason, when it is not.
    """
    if "." not in name:
        raise usage.UsageError(f"--protocol {name!r}: give the full dotted name, package.module.ClassName")
    # As with python -m: a module in the current directory is importable
    # (the twistd script puts its own directory on sys.path, not this one).
    here = os.getcwd()
    if here not in sys.path and "" not in sys.path:
        sys.path.insert(0, here)
    topLevel = name.split(".", 1)[0]
    try:
        found = importlib.util.find_spec(topLevel) is not None
    except Exception:
        found = True  # let the import below say what is wrong
    if not found:
        searched = ", ".join(p for p in (p or here for p in sys.path) if os.path.exists(p))
        raise usage.UsageError(
            f"--protocol {name!r} cannot be imported: no module named {topLevel!r} "
            f"(searched: {searched})"
        )
    try:
        cls = namedAny(name)
    except Exception as e:
        raise usage.UsageError(f"--protocol {name!r} cannot be imported: {type(e).__name__}: {e}") from None
    if not (isinstance(cls, type) and issubclass(cls, WebSocketProtocol)):
        raise usage.UsageError(
            f"--protocol {name!r} is {cls!r}, not a subclass of twisted_ws.WebSocketProtocol"
        )
    return cls


# -- building the service ---------------------------------------------------


def _scheme(description: str, secure: str, plain: str) -> str:
    kind = description.split(":", 1)[0].strip().lower()
    return secure if kind in ("ssl", "tls") else plain


def _describer(description: str, wsPath: str, siteMode: bool) -> Callable[[Any], str]:
    def describe(port: Any) -> str:
        address = port.getHost()
        if getattr(address, "host", None) is None:
            where = f"ws+unix://{_formatAddress(address)}{wsPath}"
            return where + (" (and HTTP)" if siteMode else "")
        host = _formatAddress(address)
        ws = f"{_scheme(description, 'wss', 'ws')}://{host}{wsPath}"
        if siteMode:
            return f"{ws} (HTTP at {_scheme(description, 'https', 'http')}://{host}/)"
        return ws

    return describe


def makeService(options: Options, clock: IReactorTime | None = None) -> WebSocketService:
    """Build the service C{twistd websocket} runs from parsed L{Options}."""
    from twisted.internet import reactor
    from twisted.internet.endpoints import serverFromString

    clock = clock or reactor  # type: ignore[assignment]
    top = WebSocketService(stopTimeout=options["stop-timeout"], clock=clock)
    mode = options["mode"]
    extra: dict[str, Any] = {"mode": mode}

    if mode == "echo":
        protocol: type[WebSocketProtocol] = EchoProtocol
    elif mode == "broadcast":
        from .broadcast import BroadcastHub, BroadcastProtocol

        protocol = BroadcastProtocol
        hub = BroadcastHub(options["max-queue-bytes"], options["max-queue-messages"])
    elif mode == "bridge":
        from .bridge import BridgeProtocol

        protocol = BridgeProtocol
        extra["target"] = options["target"]
    else:
        protocol = options["protocolClass"]
        extra["protocol"] = options["protocol"]

    extensions = []
    if options["deflate"]:
        try:
            from .core.deflate import PerMessageDeflate
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
        from .bridge import targetEndpoint

        factory.target = targetEndpoint(reactor, options["target"])
        factory.targetDescription = options["target"]

    siteMode = options["static"] is not None or options["status"] is not None
    if siteMode:
        status = StatusResource(top.stats, lambda: _extraStatus(extra))
        wsPath = options["path"] if options["static"] is not None else None
        listenFactory = _buildSite(factory, wsPath, options["static"], options["status"], status)
        shownPath = wsPath if wsPath is not None else "/"
    else:
        listenFactory = factory
        shownPath = "/"
    for description in options["listen"]:
        try:
            endpoint = serverFromString(reactor, description)
        except Exception as e:
            raise StartupError(
                f"twisted_ws: --listen {description!r}: {_startupReason(e, description)}"
            ) from None
        top.listen(endpoint, listenFactory, _describer(description, shownPath, siteMode), description)
    _log.info(
        "twisted_ws {mode} service on {listen}", mode=mode, listen=", ".join(options["listen"])
    )
    return top


def makeTwistdService(options: Options) -> WebSocketService:
    """
    L{makeService} for C{twistd websocket}: it also listens at once, so a
    bad endpoint or a port in use stops twistd with one line and a non-zero
    status, before it daemonizes or writes a pid file (a daemon's parent
    would otherwise only print a truncated two-line message).
    """
    try:
        top = makeService(options)
        top.listenNow()
    except StartupError as e:
        raise SystemExit(str(e)) from None
    return top


def _extraStatus(extra: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in extra.items():
        if callable(value):
            out.update(value())
        else:
            out[key] = value
    return out
