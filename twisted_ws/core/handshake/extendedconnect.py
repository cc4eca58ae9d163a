"""
The HTTP/2 carrier of the opening handshake (RFC 8441 extended CONNECT).

Over HTTP/2 a WebSocket is one stream, opened by a CONNECT request with a
C{:protocol} of C{websocket} and accepted with C{:status 200}: there is no
Upgrade, no key and no accept hash.  Everything else -- origin,
subprotocols, extensions, the application's decision -- is the HTTP/1.1
handshake's, so this module only turns the h2 header list into the same
L{HandshakeRequest} (with C{httpVersion} C{"2"}) and formats the answer;
L{ServerHandshake.fromRequest} and L{negotiate} do the rest.  HPACK, flow
control and streams are the h2 layer's business.
"""

from __future__ import annotations

from collections.abc import Iterable

from twisted_ws.core.errors import HandshakeError
from twisted_ws.core.handshake.request import HandshakeRequest, parseOffers
from twisted_ws.core.http import Headers, checkHeaderField

__all__ = ["validateExtendedConnect", "extendedConnectResponse"]

_PSEUDO = frozenset({":method", ":protocol", ":scheme", ":path", ":authority"})

#: Connection-specific fields, which HTTP/2 forbids (RFC 9113 8.2.2); an
#: HTTP/1.1 upgrade smuggled onto a stream is refused, not half-honoured.
_CONNECTION_SPECIFIC = frozenset(
    {"connection", "upgrade", "keep-alive", "proxy-connection", "transfer-encoding"}
)


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


def validateExtendedConnect(
    fields: Iterable[tuple[str | bytes, str | bytes]],
) -> HandshakeRequest:
    """
    Check an HTTP/2 request's header list against RFC 8441 section 4/5.

    @param fields: the stream's header list as the h2 layer decoded it
        (pseudo-header fields included; names and values as C{str} or
        C{bytes}).
    @return: the request, with C{method} C{"CONNECT"}, C{httpVersion}
        C{"2"}, C{version} C{(2, 0)}, C{host} from C{:authority}, an
        empty C{key}, and C{headers} holding only the regular fields.
    @raise HandshakeError: 405 for another method, 400 for a CONNECT
        that is not a valid WebSocket one (no C{:protocol}, another
        protocol, a missing pseudo-header, a version other than 13,
        a connection-specific field).  Over HTTP/2 there is no 426: an
        Upgrade header is meaningless there.
    """
    pseudo: dict[str, str] = {}
    regular: list[tuple[str, str]] = []
    for rawName, rawValue in fields:
        name, value = _text(rawName), _text(rawValue)
        if name.startswith(":"):
            if name not in _PSEUDO:
                raise HandshakeError(400, f"unknown pseudo-header {name}")
            if name in pseudo:
                raise HandshakeError(400, f"more than one {name}")
            if regular:
                raise HandshakeError(400, f"pseudo-header {name} after a regular field")
            pseudo[name] = value
            continue
        if name.lower() in _CONNECTION_SPECIFIC:
            raise HandshakeError(400, f"connection-specific field {name} in an HTTP/2 request")
        regular.append((name, value))

    method = pseudo.get(":method")
    if method != "CONNECT":
        raise HandshakeError(
            405, f"method {method} not allowed, use an extended CONNECT",
            headers=[("Allow", "CONNECT")],
        )
    protocol = pseudo.get(":protocol")
    if protocol is None:
        raise HandshakeError(400, "CONNECT without :protocol is not a WebSocket request")
    if protocol.lower() != "websocket":
        raise HandshakeError(400, f"unsupported :protocol {protocol}")
    for name in (":scheme", ":path", ":authority"):
        if not pseudo.get(name):
            raise HandshakeError(400, f"missing {name} in an extended CONNECT")
    target = pseudo[":path"]
    if not target.startswith("/"):
        raise HandshakeError(400, "the :path of an extended CONNECT must be an absolute path")

    headers = Headers(regular)
    if headers.getAll("Sec-WebSocket-Version") != ["13"]:
        raise HandshakeError(
            400, "unsupported or missing Sec-WebSocket-Version, 13 is required",
            headers=[("Sec-WebSocket-Version", "13")],
        )
    # RFC 8441 section 5: Sec-WebSocket-Key is "not used" over HTTP/2, so it
    # is ignored, not refused: proxies such as HAProxy, turning an HTTP/1.1
    # upgrade into an extended CONNECT, pass the client's key along.
    origin, protocols, extensions = parseOffers(headers)
    path, _, query = target.partition("?")
    return HandshakeRequest(
        method="CONNECT",
        target=target,
        path=path,
        query=query,
        version=(2, 0),
        headers=headers,
        host=pseudo[":authority"],
        origin=origin,
        key="",
        protocols=protocols,
        extensions=extensions,
        httpVersion="2",
    )


def extendedConnectResponse(
    status: int, headers: Iterable[tuple[str, str]] = ()
) -> list[tuple[str, str]]:
    """
    The HTTP/2 header list answering an extended CONNECT: C{:status} then
    C{headers} with lower-case names (HTTP/2 requires them).

    Accepting is C{extendedConnectResponse(200, accepted.responseHeaders)};
    a refusal sends its status and headers, then its body as DATA.

    @raise ValueError: an invalid status or header (injection).
    """
    if not 200 <= status <= 599:
        raise ValueError(f"invalid status {status!r} for an extended CONNECT answer")
    result = [(":status", str(status))]
    for name, value in headers:
        checkHeaderField(name, value)
        result.append((name.lower(), value))
    return result
