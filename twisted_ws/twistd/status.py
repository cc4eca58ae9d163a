"""
Live counters of a WebSocket service and the twisted.web resource that
shows them as JSON.

The counters are kept by the service's connection observer (see
L{twisted_ws.twistd.tracking}), not by the application's protocol: messages
and bytes are the core's own plain counters (C{protocol.traffic}), added
up when a connection closes and, for the open ones, when someone asks.
Nothing runs per message.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.web.resource import Resource

from ..observer import Traffic

__all__ = ["ConnectionStats", "StatusResource"]

_NO_TRAFFIC = Traffic(0, 0, 0, 0)


class ConnectionStats:
    """
    What a service has seen so far.

    @ivar connectionsOpen: WebSocket connections open now.
    @ivar connectionsTotal: WebSocket connections opened since start.
    @ivar rejected: upgrade requests refused (origin, capacity, malformed).
    @ivar rejectedByStatus: the same, per HTTP status.
    @ivar closedByCode: connections closed since start, per close code.
    @ivar closedTraffic: the L{Traffic} of the connections closed so far.
    """

    def __init__(
        self, clock: IReactorTime, openTraffic: Callable[[], Iterable[Traffic]] | None = None
    ) -> None:
        """
        @param openTraffic: the L{Traffic} of each open connection, read
            when the counters are (L{traffic}).
        """
        self.clock = clock
        self.startedAt = clock.seconds()
        self.connectionsOpen = 0
        self.connectionsTotal = 0
        self.rejected = 0
        self.rejectedByStatus: dict[int, int] = {}
        self.closedByCode: dict[int, int] = {}
        self.closedTraffic = _NO_TRAFFIC
        self._openTraffic = openTraffic

    def refused(self, status: int) -> None:
        """An upgrade request was refused with HTTP C{status}."""
        self.rejected += 1
        self.rejectedByStatus[status] = self.rejectedByStatus.get(status, 0) + 1

    def closed(self, code: int, traffic: Traffic) -> None:
        """A connection closed with C{code} after C{traffic}."""
        code = int(code)
        self.closedByCode[code] = self.closedByCode.get(code, 0) + 1
        self.closedTraffic = Traffic(*(a + b for a, b in zip(self.closedTraffic, traffic)))

    def traffic(self) -> Traffic:
        """Messages and wire bytes, each way, of every connection so far."""
        totals = list(self.closedTraffic)
        for traffic in self._openTraffic() if self._openTraffic is not None else ():
            for i, n in enumerate(traffic):
                totals[i] += n
        return Traffic(*totals)

    @property
    def messagesIn(self) -> int:
        """Whole messages received."""
        return self.traffic().messagesIn

    @property
    def messagesOut(self) -> int:
        """Messages sent."""
        return self.traffic().messagesOut

    @property
    def bytesIn(self) -> int:
        """Bytes read from WebSocket connections (frames, on the wire)."""
        return self.traffic().bytesIn

    @property
    def bytesOut(self) -> int:
        """Bytes written to WebSocket connections (frames, on the wire)."""
        return self.traffic().bytesOut

    def snapshot(self) -> dict[str, Any]:
        """The counters and the uptime in seconds, as a JSON-ready dict."""
        traffic = self.traffic()
        return {
            "connectionsOpen": self.connectionsOpen,
            "connectionsTotal": self.connectionsTotal,
            "rejected": self.rejected,
            "messagesIn": traffic.messagesIn,
            "messagesOut": traffic.messagesOut,
            "bytesIn": traffic.bytesIn,
            "bytesOut": traffic.bytesOut,
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
        super().__init__()  # type: ignore[no-untyped-call]  # Twisted's Resource.__init__ is unannotated
        self.stats = stats
        self.extra = extra

    def render_GET(self, request: Any) -> bytes:
        body = self.stats.snapshot()
        if self.extra is not None:
            body.update(self.extra())
        request.setHeader(b"Content-Type", b"application/json")
        request.setHeader(b"Cache-Control", b"no-store")
        return json.dumps(body, sort_keys=True).encode("utf-8") + b"\n"
