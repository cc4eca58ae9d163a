"""
The twisted.web site of the C{twistd websocket} service: static files, the
WebSocket at a path, the status page and the metrics on one port, and no C{Server}
header on any answer.
"""

from __future__ import annotations

from typing import Any

from ..server.factory import WebSocketServerFactory
from .status import StatusResource

__all__ = ["buildSite"]


def _segments(path: str) -> list[bytes]:
    return [s.encode("utf-8") for s in path.strip("/").split("/")] if path.strip("/") else []


def buildSite(
    factory: WebSocketServerFactory,
    wsPath: str | None,
    staticDir: str | None,
    statusPath: str | None,
    status: StatusResource | None,
    metricsPath: str | None = None,
    metrics: Any = None,
) -> Any:
    from twisted.web.resource import NoResource, Resource
    from twisted.web.server import Request, Site, version
    from twisted.web.static import File

    from ..server.resource import WebSocketResource

    static = File(staticDir) if staticDir is not None else None
    wsSegments = _segments(wsPath) if wsPath is not None else []
    webSocket = WebSocketResource(factory, fallback=static if not wsSegments else None)
    statusSegments = _segments(statusPath) if statusPath is not None else None
    metricsSegments = _segments(metricsPath) if metricsPath is not None else None

    class Root(Resource):
        """Routes by path: the status and metrics pages, the WebSocket, else the files."""

        def getChildWithDefault(self, name: bytes, request: Any) -> Any:
            segments = [*request.prepath, *request.postpath]
            if segments and segments[-1] == b"":
                segments = segments[:-1]
            if statusSegments is not None and segments == statusSegments:
                request.prepath, request.postpath = segments, []
                return status
            if metricsSegments is not None and segments == metricsSegments:
                request.prepath, request.postpath = segments, []
                return metrics
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
            super().setHeader(name, value)  # type: ignore[no-untyped-call]  # Twisted's Request.setHeader is unannotated

    site = Site(Root(), requestFactory=NamelessRequest)  # type: ignore[no-untyped-call]  # Twisted's Resource.__init__ is unannotated
    site.displayTracebacks = False
    return site
