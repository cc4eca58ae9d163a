"""
WebSockets over HTTP/2 (RFC 8441 extended CONNECT).

L{stream} makes one HTTP/2 stream the transport of a L{WebSocketProtocol}
(shared by the server and the client); L{server} lets a twisted.web
C{Site} accept WebSockets on HTTP/2 connections beside its ordinary
requests (C{enableHTTP2WebSockets}).  The server side needs the C{h2}
library (C{pip install twisted_ws[http2]}, i.e. C{Twisted[http2]}), so it
is imported only when used.
"""

from typing import Any

from .stream import CANCEL, H2StreamTransport, IStreamOwner

__all__ = ["H2StreamTransport", "IStreamOwner", "CANCEL", "enableHTTP2WebSockets"]


def __getattr__(name: str) -> Any:
    if name == "enableHTTP2WebSockets":
        from .server import enableHTTP2WebSockets

        return enableHTTP2WebSockets
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
