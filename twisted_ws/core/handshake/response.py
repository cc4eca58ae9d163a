"""
The server's answer to an upgrade request: written by a server (the
C{101} acceptance or a refusal), read and checked by a client (RFC 6455
section 4.1).

Client-side errors carry the HTTP status the server sent when it was not
101, and status B{0} when the server said 101 but the rest of its answer is
unacceptable (there is no meaningful HTTP status for "the server is broken"
and 0 can never be mistaken for a real one).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from twisted_ws.core.errors import HandshakeError
from twisted_ws.core.extensions import ExtensionOffer, parseExtensionHeader
from twisted_ws.core.handshake.keys import acceptKeyBytes, computeAcceptKey
from twisted_ws.core.handshake.request import HandshakeRequest, checkExtraHeaders
from twisted_ws.core.http import Headers, ResponseHead, formatResponse

__all__ = [
    "buildAcceptResponse",
    "formatAcceptResponse",
    "buildRejectResponse",
    "HandshakeResponse",
    "validateResponse",
    "checkAcceptedTerms",
]

#: What a formatted Sec-WebSocket-Extensions value may contain: tokens,
#: separators and quotes, never a line break.
_EXTENSIONS_VALUE_RE = re.compile(r'[!#$%&\'*+\-.^_`|~0-9A-Za-z ;,="\t]*')

_ACCEPT_HEAD = (
    b"HTTP/1.1 101 Switching Protocols\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: "
)


def buildAcceptResponse(
    request: HandshakeRequest,
    subprotocol: str | None = None,
    extensionsHeader: str | None = None,
    extraHeaders: Iterable[tuple[str, str]] = (),
) -> bytes:
    """
    The C{101 Switching Protocols} answer accepting C{request}.

    @raise ValueError: C{subprotocol} was not offered by the client (RFC
        6455 lets a server pick only an offered one), or an extra header is
        one the handshake sets itself, or is invalid (header injection).
    """
    if subprotocol is not None and subprotocol not in request.protocols:
        raise ValueError(f"subprotocol {subprotocol!r} was not offered by the client")
    extra = checkExtraHeaders(extraHeaders)
    if extensionsHeader is not None and _EXTENSIONS_VALUE_RE.fullmatch(extensionsHeader) is None:
        raise ValueError(f"invalid Sec-WebSocket-Extensions value {extensionsHeader!r}")
    return formatAcceptResponse(request.key, subprotocol, extensionsHeader, extra)


def formatAcceptResponse(
    key: str,
    subprotocol: str | None,
    extensionsHeader: str | None,
    extraHeaders: Sequence[tuple[str, str]],
) -> bytes:
    """
    The C{101} for terms already checked (L{negotiate}'s, or
    L{buildAcceptResponse}'s checks): C{key} is the request's validated
    key, C{subprotocol} one the client offered, C{extensionsHeader}
    formatted from tokens; the extra headers are still checked as they are
    formatted.
    """
    if not extraHeaders:
        # The common case, built directly: every value here is already
        # known to be safe.
        parts = [_ACCEPT_HEAD, acceptKeyBytes(key), b"\r\n"]
        if subprotocol is not None:
            parts += (b"Sec-WebSocket-Protocol: ", subprotocol.encode("ascii"), b"\r\n")
        if extensionsHeader is not None:
            parts += (b"Sec-WebSocket-Extensions: ", extensionsHeader.encode("latin-1"), b"\r\n")
        parts.append(b"\r\n")
        return b"".join(parts)
    headers = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", computeAcceptKey(key)),
    ]
    if subprotocol is not None:
        headers.append(("Sec-WebSocket-Protocol", subprotocol))
    if extensionsHeader is not None:
        headers.append(("Sec-WebSocket-Extensions", extensionsHeader))
    headers += extraHeaders
    return formatResponse(101, None, headers)


def buildRejectResponse(
    status: int,
    reason: str,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes | str | None = None,
) -> bytes:
    """
    A short plain-text refusal; the connection is to be closed after it.

    The status line carries the standard phrase, not C{reason}, so the
    reason is free text (it goes in the body, never in a header).
    """
    if body is None:
        payload = (reason + "\n").encode("utf-8")
    elif isinstance(body, str):
        payload = body.encode("utf-8")
    else:
        payload = body
    extra = [(name, value) for name, value in headers if name.lower() != "connection"]
    allHeaders: list[tuple[str, str]] = []
    if not any(name.lower() == "content-type" for name, _ in extra):
        allHeaders.append(("Content-Type", "text/plain; charset=utf-8"))
    allHeaders.append(("Connection", "close"))
    allHeaders += extra
    return formatResponse(status, None, allHeaders, payload)



@dataclass
class HandshakeResponse:
    """The server's validated acceptance, as the client sees it."""

    status: int
    headers: Headers
    subprotocol: str | None
    extensions: list[ExtensionOffer] = field(default_factory=list)


def validateResponse(
    head: ResponseHead,
    key: str,
    offeredProtocols: Sequence[str],
    offeredExtensions: Sequence[str],
) -> HandshakeResponse:
    """
    Check the server's answer per RFC 6455 section 4.1.

    @param offeredExtensions: the names of the extensions the client
        offered (compared case-insensitively).
    @raise HandshakeError: status = the server's status when it was not
        101; status 0 when it was 101 but the headers are unacceptable.
    """
    headers = head.headers
    if head.status != 101:
        raise HandshakeError(
            head.status, f"server refused the upgrade: {head.status} {head.reasonPhrase}".rstrip()
        )
    if head.version < (1, 1):
        raise HandshakeError(0, "server answered with HTTP/1.0")
    if not headers.hasToken("Upgrade", "websocket"):
        raise HandshakeError(0, "server response lacks Upgrade: websocket")
    if not headers.hasToken("Connection", "upgrade"):
        raise HandshakeError(0, "server response lacks Connection: Upgrade")
    if headers.getAll("Sec-WebSocket-Accept") != [computeAcceptKey(key)]:
        raise HandshakeError(0, "server sent a wrong or missing Sec-WebSocket-Accept")

    subprotocol, extensions = checkAcceptedTerms(headers, offeredProtocols, offeredExtensions)
    return HandshakeResponse(
        status=head.status, headers=headers, subprotocol=subprotocol, extensions=extensions
    )


def checkAcceptedTerms(
    headers: Headers,
    offeredProtocols: Sequence[str],
    offeredExtensions: Sequence[str],
) -> tuple[str | None, list[ExtensionOffer]]:
    """
    The subprotocol and extensions a server's acceptance chose, checked
    against the offer: the same for a 101 (HTTP/1.1) and a C{:status 200}
    (HTTP/2 extended CONNECT), so both clients read them here.

    @raise HandshakeError: status 0: more than one subprotocol, or one or
        an extension that was not offered, or a malformed extensions header.
    """
    subprotocol: str | None = None
    if "Sec-WebSocket-Protocol" in headers:
        chosen = headers.getCommaList("Sec-WebSocket-Protocol")
        if len(chosen) != 1:
            raise HandshakeError(0, "server must select exactly one subprotocol")
        if chosen[0] not in offeredProtocols:
            raise HandshakeError(0, f"server selected unrequested subprotocol {chosen[0]!r}")
        subprotocol = chosen[0]

    try:
        extensions = parseExtensionHeader(headers.getAll("Sec-WebSocket-Extensions"))
    except ValueError:
        raise HandshakeError(0, "server sent a malformed Sec-WebSocket-Extensions header") from None
    offeredNames = {name.lower() for name in offeredExtensions}
    for name, _ in extensions:
        if name.lower() not in offeredNames:
            raise HandshakeError(0, f"server accepted unrequested extension {name!r}")
    return subprotocol, extensions

