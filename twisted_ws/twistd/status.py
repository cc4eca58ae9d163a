"""
Live counters of a WebSocket service and the twisted.web resource that
shows them as JSON.

The counters are plain integers bumped by the service's connection classes
(see L{twisted_ws.twistd.tracking}), not by the core: an application that does not
want them pays nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.web.resource import Resource

__all__ = ["ConnectionStats", "StatusResource"]


class ConnectionStats:
    """
    What a service has seen so far.

    @ivar connectionsOpen: WebSocket connections open now.
    @ivar connectionsTotal: WebSocket connections opened since start.
    @ivar rejected: upgrade requests refused (origin, capacity, malformed).
    @ivar messagesIn: whole messages received.
    @ivar messagesOut: messages sent.
    @ivar bytesIn: bytes read from WebSocket connections (frames, on the wire).
    @ivar bytesOut: bytes written to WebSocket connections (frames, on the wire).
    """

    def __init__(self, clock: IReactorTime) -> None:
        self.clock = clock
        self.startedAt = clock.seconds()
        self.connectionsOpen = 0
        self.connectionsTotal = 0
        self.rejected = 0
        self.messagesIn = 0
        self.messagesOut = 0
        self.bytesIn = 0
        self.bytesOut = 0

    def snapshot(self) -> dict[str, Any]:
        """The counters and the uptime in seconds, as a JSON-ready dict."""
        return {
            "connectionsOpen": self.connectionsOpen,
            "connectionsTotal": self.connectionsTotal,
            "rejected": self.rejected,
            "messagesIn": self.messagesIn,
            "messagesOut": self.messagesOut,
            "bytesIn": self.bytesIn,
            "bytesOut": self.bytesOut,
            "uptime": round(self.clock.seconds() - self.startedAt, 3),
        }


class StatusResource(Resource):
    """
    C{GET} answers the counters as a JSON object, never cached.

    @param stats: the counters to show.
    @param extra: called on every request for more fields (e.g. the mode
        and the number of rooms); they are merged into the answer.
    """

    isLeaf = True

    def __init__(
        self, stats: ConnectionStats, extra: Callable[[], dict[str, Any]] | None = None
    ) -> None:
        super().__init__()
        self.stats = stats
        self.extra = extra

    def render_GET(self, request: Any) -> bytes:
        body = self.stats.snapshot()
        if self.extra is not None:
            body.update(self.extra())
        request.setHeader(b"Content-Type", b"application/json")
        request.setHeader(b"Cache-Control", b"no-store")
        return json.dumps(body, sort_keys=True).encode("utf-8") + b"\n"
