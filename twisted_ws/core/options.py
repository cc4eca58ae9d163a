"""
The limits and timeouts of a WebSocket endpoint, with safe defaults.

Every value is a plain number so the same object configures a server
factory, a client factory and the twisted.web resource.  Each default is
there for a reason given beside it; C{None} turns a limit off.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

__all__ = ["WebSocketOptions"]


@dataclass(frozen=True)
class WebSocketOptions:
    #: Largest message (after decompression) accepted; bigger ones are
    #: refused with 1009 as soon as a frame header announces them.  1 MiB
    #: is what peer libraries use.
    maxMessageSize: int | None = 1 << 20
    #: Most frames one message may have: a flood of tiny fragments costs
    #: CPU per frame without ever reaching the byte limit.
    maxFragments: int | None = 65536
    #: Outgoing messages larger than this are sent as fragments, so pings,
    #: pongs and Close frames interleave instead of waiting behind them.
    fragmentSize: int | None = 65536
    #: Seconds a client has to complete the opening handshake (server) or
    #: the server to answer it (client); a silent peer is dropped.
    openTimeout: float | None = 10.0
    #: Seconds to wait for the peer's Close and for TCP to close after ours;
    #: then the connection is aborted (a peer that never reads cannot hold
    #: a closing connection open).
    closeTimeout: float | None = 10.0
    #: Seconds our output may stay blocked (the transport's buffer full, or
    #: frames waiting here) before the connection is aborted: a peer that
    #: stops reading cannot pin a connection, in any state.
    writeTimeout: float | None = 10.0
    #: Seconds between keepalive pings (C{None}: no pings).
    pingInterval: float | None = 20.0
    #: Seconds a keepalive pong may take before the connection is failed
    #: with 1011.
    pingTimeout: float | None = 20.0
    #: Longest HTTP request line (longer: 414).
    maxRequestLineLength: int = 8192
    #: Largest HTTP header block (larger: 431).
    maxHeaderBytes: int = 16384
    #: Most HTTP header fields (more: 431).
    maxHeaderCount: int = 100

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and value <= 0:
                raise ValueError(f"{f.name} must be positive or None, not {value!r}")

    def replace(self, **changes: Any) -> WebSocketOptions:
        """A copy with some values changed."""
        return replace(self, **changes)

    @classmethod
    def fromKeywords(cls, options: WebSocketOptions | None = None, **values: Any) -> WebSocketOptions:
        """
        C{options} (or the defaults) with some values changed: how factories
        turn their keyword arguments into options.

        @raise TypeError: a name is not an option (as for a mistyped keyword).
        """
        base = options or cls()
        unknown = set(values) - set(cls.names())
        if unknown:
            raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))}")
        return base.replace(**values) if values else base

    @classmethod
    def names(cls) -> list[str]:
        """The option names, for factories that take them as keywords."""
        return [f.name for f in fields(cls)]
