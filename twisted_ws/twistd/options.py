"""
The command line of C{twistd websocket}: L{Options} (every option, checked
in one place, so a mistake is a one-line usage error) and
L{loadProtocolClass} for C{--protocol}.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from typing import Any

from twisted.python import usage
from twisted.python.reflect import namedAny

from ..core.options import WebSocketOptions
from ..protocol import WebSocketProtocol

__all__ = ["Options", "TwistdOptions", "loadProtocolClass", "MODES", "DEFAULT_LISTEN"]

MODES = ("echo", "broadcast", "bridge", "custom")
DEFAULT_LISTEN = "tcp:8080"

_DEFAULTS = WebSocketOptions()


def _positiveInt(value: str) -> int:
    n = int(value)
    if n <= 0:
        raise ValueError(f"{value!r} is not a positive integer")
    return n


_positiveInt.coerceDoc = "A positive integer."  # type: ignore[attr-defined]  # usage.Options reads it off the function


def _intOrOff(value: str) -> int | None:
    if value.lower() in ("0", "off", "none"):
        return None
    return _positiveInt(value)


_intOrOff.coerceDoc = "A positive integer, or 0/off for no limit."  # type: ignore[attr-defined]  # usage.Options reads it off the function


def _seconds(value: str) -> float:
    n = float(value)
    if not n > 0 or n == float("inf"):
        raise ValueError(f"{value!r} is not a positive number of seconds")
    return n


_seconds.coerceDoc = "Seconds (a positive number)."  # type: ignore[attr-defined]  # usage.Options reads it off the function


def _secondsOrOff(value: str) -> float | None:
    if value.lower() in ("0", "off", "none"):
        return None
    return _seconds(value)


_secondsOrOff.coerceDoc = "Seconds, or 0/off to disable."  # type: ignore[attr-defined]  # usage.Options reads it off the function


def _mode(value: str) -> str:
    if value not in MODES:
        raise ValueError(f"unknown mode {value!r}; choose one of {', '.join(MODES)}")
    return value


_mode.coerceDoc = "One of: " + ", ".join(MODES) + "."  # type: ignore[attr-defined]  # usage.Options reads it off the function

#: More worker processes than this is a typo, not a deployment.
MAX_WORKERS = 256


def _workers(value: str) -> int:
    if value.strip().lower() == "auto":
        return max(1, min(os.cpu_count() or 1, MAX_WORKERS))
    try:
        n = int(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a number of processes (or auto)") from None
    if not 1 <= n <= MAX_WORKERS:
        raise ValueError(f"{value!r}: give 1 to {MAX_WORKERS} processes (or auto)")
    return n


_workers.coerceDoc = "A number of processes, or auto: one per CPU."  # type: ignore[attr-defined]  # usage.Options reads it off the function

def _urlPath(value: str) -> str:
    if not value.startswith("/") or any(c in value for c in "?# \t\r\n"):
        raise ValueError(f"{value!r} is not a URL path (it must start with /)")
    return value.rstrip("/") or "/"


_urlPath.coerceDoc = "A URL path starting with /."  # type: ignore[attr-defined]  # usage.Options reads it off the function

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
        "Without --static/--status/--metrics the WebSocket answers on every path; with --static "
        "it lives at --path (and below) and the files are served on the same port."
    )

    optFlags = [
        ["no-deflate", None, "Do not offer permessage-deflate compression (on by default)."],
        ["http2", None,
         "On ssl: listeners, also accept WebSockets over HTTP/2 (RFC 8441 extended "
         "CONNECT, what browsers use on an h2 connection), chosen by ALPN beside HTTP/1.1."],
        ["reuseport", None,
         "With --workers: each worker binds its own socket to the --listen port with "
         "SO_REUSEPORT (Linux, tcp: only) instead of sharing the parent's."],
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
        ["metrics", None, None,
         "Serve Prometheus metrics at this URL path (e.g. /metrics; needs "
         "pip install 'twisted_ws[metrics]'); with --workers, every worker's.", _urlPath],
        ["max-queue-bytes", None, 1 << 20,
         "Broadcast mode: most bytes waiting for one slow client before it is closed "
         "with 1008 (at least --max-message-size).", _positiveInt],
        ["max-queue-messages", None, 1000,
         "Broadcast mode: most messages waiting for one slow client before it is "
         "closed with 1008.", _positiveInt],
        ["redis", None, None,
         "Broadcast mode: share the rooms with every server using this Redis (pub/sub): "
         "redis://[[user]:password@]host[:port][/db], or rediss:// for TLS (verified)."],
        ["redis-prefix", None, "twisted_ws:room:",
         "With --redis: the Redis channel of a room is this prefix and the room's name."],
        ["max-connections", None, None,
         "Most open WebSocket connections; more are refused with 503 [default: no limit]", _intOrOff],
        ["workers", None, 1,
         "Serve from this many processes sharing the --listen sockets (auto: one per "
         "CPU); the twistd process supervises them and restarts any that dies.", _workers],
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
        super().__init__()  # type: ignore[no-untyped-call]  # Twisted's usage.Options.__init__ is unannotated
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
        from ..version import versionText

        print(versionText())
        sys.exit(0)

    def parseOptions(self, options: Any = None) -> None:
        # Kept for --workers: each worker parses the same command line.
        self.argv = list(sys.argv[1:] if options is None else options)
        super().parseOptions(options)  # type: ignore[no-untyped-call]  # Twisted's usage.Options.parseOptions is unannotated

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
        if self["metrics"] is not None:
            if self["metrics"] == self["status"]:
                raise usage.UsageError("--metrics and --status must be different paths")
            if self["static"] is not None and self["metrics"] == self["path"]:
                raise usage.UsageError("--metrics and --path must be different paths")
        for name in self["subprotocols"]:
            from ..core.http import isToken

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
        if self["http2"] and not any(
            d.split(":", 1)[0].strip().lower() in ("ssl", "tls") for d in self["listen"]
        ):
            raise usage.UsageError("--http2 needs an ssl: --listen (HTTP/2 is chosen by ALPN over TLS)")
        self._checkWorkers()

    def _checkWorkers(self) -> None:
        # Which --listen kinds --workers and --reuseport can use is checked by
        # makeService, with the other --listen checks: one line, not the --help.
        if not self["reuseport"]:
            return
        if self["workers"] < 2:
            raise usage.UsageError("--reuseport needs --workers 2 or more")
        if not sys.platform.startswith("linux"):
            raise usage.UsageError(f"--reuseport needs Linux (SO_REUSEPORT), not {sys.platform}")

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
            from ..apps.bridge import targetEndpoint

            try:
                targetEndpoint(_ParsingOnly(), self["target"])
            except Exception as e:
                raise usage.UsageError(f"--target {self['target']!r}: {e}") from None
        elif self["target"] is not None:
            raise usage.UsageError("--target is only used with --mode bridge")
        if self["redis"] is not None and mode != "broadcast":
            raise usage.UsageError("--redis is only used with --mode broadcast")


class TwistdOptions(Options):
    """
    L{Options} as twistd's subcommand: a usage error exits with status 1.

    twistd before Twisted 26.10 printed the usage and the error and then
    exited 0, so a script or a service manager saw a broken command line
    succeed.  This prints what twistd 26.10 prints and exits 1 on every
    Twisted; L{Options} itself still raises C{UsageError} for callers.
    """

    def parseOptions(self, options: Any = None) -> None:
        try:
            super().parseOptions(options)
        except usage.UsageError as e:
            print(self.parent if self.parent is not None else self)
            print(f"{' '.join(sys.argv[0:2])}: {e}")
            raise SystemExit(1) from None


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
