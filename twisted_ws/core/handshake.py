"""
The RFC 6455 section 4 opening handshake, for both roles, without I/O.

Server side: L{validateRequest} turns a parsed request head into a
L{HandshakeRequest} or raises L{HandshakeError} carrying the HTTP answer;
L{buildAcceptResponse} and L{buildRejectResponse} produce the bytes to send.

Client side: L{buildClientRequest} produces the request; L{validateResponse}
checks the server's answer.  Client-side errors carry the HTTP status the
server sent when it was not 101, and status B{0} when the server said 101 but
the rest of its answer is unacceptable (there is no meaningful HTTP status
for "the server is broken" and 0 can never be mistaken for a real one).

These functions are the building blocks; L{twisted_ws.core.opening} drives
them as one object per role (L{ServerHandshake}, L{ClientHandshake}, whose
client-side failures have their own error types), L{negotiation} holds what
every carrier shares, and L{extendedconnect} the HTTP/2 carrier.  Those
names are importable from here too.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from twisted_ws.core.errors import HandshakeError
from twisted_ws.core.extensions import ExtensionOffer, parseExtensionHeader
from twisted_ws.core.http import (
    Headers,
    RequestHead,
    ResponseHead,
    formatRequest,
    formatResponse,
    isToken,
)

__all__ = [
    "GUID",
    "computeAcceptKey",
    "generateKey",
    "HandshakeRequest",
    "validateRequest",
    "selectSubprotocol",
    "buildAcceptResponse",
    "buildRejectResponse",
    "buildClientRequest",
    "HandshakeResponse",
    "validateResponse",
    "isUpgradeAttempt",
    "parseOffers",
    "checkNoBody",
    "checkExtraHeaders",
    "clientRequestHeaders",
]

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

#: Headers the handshake functions write themselves; letting the application
#: pass them as extra headers would produce contradictory duplicates.
_RESERVED_HEADERS = frozenset(
    {
        "upgrade",
        "connection",
        "sec-websocket-accept",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-protocol",
        "sec-websocket-extensions",
        "content-length",
        "transfer-encoding",
        "host",
    }
)

_UPGRADE_REQUIRED_HEADERS = (
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Version", "13"),
)


def computeAcceptKey(key: str) -> str:
    """The Sec-WebSocket-Accept value proving the server read C{key}."""
    digest = hashlib.sha1((key + GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def generateKey() -> str:
    """A fresh random Sec-WebSocket-Key (16 random bytes, base64)."""
    return base64.b64encode(os.urandom(16)).decode("ascii")


def _isValidKey(key: str) -> bool:
    try:
        return len(base64.b64decode(key, validate=True)) == 16
    except (binascii.Error, ValueError):
        return False


@dataclass
class HandshakeRequest:
    """
    A validated WebSocket upgrade request, as the application sees it.

    C{peer}, C{local} and C{secure} describe the transport; the I/O-free
    core cannot know them, so the Twisted layer fills them in.
    C{webRequest} is the C{twisted.web} request when the upgrade arrived
    through a resource (cookies, session, args), else C{None}.
    C{peerCertificate} is the client's TLS certificate (a
    C{cryptography.x509.Certificate}) when it presented one, else C{None}:
    what an accept hook checks for mutual-TLS authentication.  It is typed
    C{object} because the core imports no TLS library.

    C{httpVersion} names the mechanism that carried the WebSocket: C{"1.1"}
    for an HTTP/1.1 C{Upgrade} request, C{"2"} for an RFC 8441 extended
    C{CONNECT} on an HTTP/2 stream (whose C{key} is then empty, as that
    mechanism has none).  C{version} is the request line's own version,
    C{(1, 1)} as a rule, and C{(2, 0)} for HTTP/2.
    """

    method: str
    target: str
    path: str
    query: str
    version: tuple[int, int]
    headers: Headers
    host: str
    origin: str | None
    key: str
    protocols: list[str]
    extensions: list[ExtensionOffer]
    httpVersion: str = "1.1"
    peer: object = None
    local: object = None
    secure: bool = False
    webRequest: object = None
    peerCertificate: object = None

    def header(self, name: str) -> str | None:
        """The first value of header C{name} (case-insensitive), or None."""
        return self.headers.get(name)


def _single(headers: Headers, name: str) -> str:
    """The one value of C{name}; 400 when it is absent, repeated or empty."""
    values = headers.getAll(name)
    if not values:
        raise HandshakeError(400, f"missing {name} header")
    if len(values) > 1:
        raise HandshakeError(400, f"more than one {name} header")
    if not values[0]:
        raise HandshakeError(400, f"empty {name} header")
    return values[0]


def validateRequest(head: RequestHead) -> HandshakeRequest:
    """
    Check a request head against RFC 6455 section 4.2.1.

    The Sec-WebSocket-Version check comes before the key check so that a
    client speaking an older draft learns which version to retry with.

    @raise HandshakeError: with the status, reason and headers to answer.
    """
    headers = head.headers
    if head.method != "GET":
        raise HandshakeError(
            405, f"method {head.method} not allowed, use GET", headers=[("Allow", "GET")]
        )
    if head.version < (1, 1):
        raise HandshakeError(
            400, f"HTTP/{head.version[0]}.{head.version[1]} cannot upgrade, HTTP/1.1 is required"
        )
    if not head.path.startswith("/"):
        raise HandshakeError(400, "request target must be an absolute path")
    host = _single(headers, "Host")

    if "Upgrade" not in headers:
        raise HandshakeError(
            426, "this is a WebSocket endpoint, Upgrade: websocket required",
            headers=_UPGRADE_REQUIRED_HEADERS,
        )
    if not any(token.lower() == "websocket" for token in headers.getCommaList("Upgrade")):
        raise HandshakeError(400, "Upgrade header does not contain websocket")
    if not any(token.lower() == "upgrade" for token in headers.getCommaList("Connection")):
        raise HandshakeError(400, "Connection header does not contain Upgrade")

    if headers.getAll("Sec-WebSocket-Version") != ["13"]:
        raise HandshakeError(
            426, "unsupported or missing Sec-WebSocket-Version, 13 is required",
            headers=[("Sec-WebSocket-Version", "13")],
        )

    key = _single(headers, "Sec-WebSocket-Key")
    if not _isValidKey(key):
        raise HandshakeError(400, "Sec-WebSocket-Key is not 16 bytes of base64")

    origin, protocols, extensions = parseOffers(headers)
    checkNoBody(headers)

    return HandshakeRequest(
        method=head.method,
        target=head.target,
        path=head.path,
        query=head.query,
        version=head.version,
        headers=headers,
        host=host,
        origin=origin,
        key=key,
        protocols=protocols,
        extensions=extensions,
    )


def selectSubprotocol(offered: Sequence[str], supported: Sequence[str]) -> str | None:
    """
    The first of C{supported} the client offered, or None.

    The server's order wins because the server knows which of its protocols
    is best; matching is case-sensitive as subprotocol tokens are.
    """
    offeredSet = set(offered)
    for protocol in supported:
        if protocol in offeredSet:
            return protocol
    return None


#: What a formatted Sec-WebSocket-Extensions value may contain: tokens,
#: separators and quotes, never a line break.
_EXTENSIONS_VALUE_RE = re.compile(r'[!#$%&\'*+\-.^_`|~0-9A-Za-z ;,="\t]*')

_ACCEPT_HEAD = (
    b"HTTP/1.1 101 Switching Protocols\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: "
)


def checkExtraHeaders(extraHeaders: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """
    The application's extra headers as a list, refusing the ones the
    handshake writes itself (they would contradict it).

    @raise ValueError: a reserved header name.
    """
    extra = list(extraHeaders)
    for name, _ in extra:
        if name.lower() in _RESERVED_HEADERS:
            raise ValueError(f"header {name!r} is set by the handshake itself")
    return extra


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
    if not extra:
        # The common case, built directly: every value here is already
        # known to be safe (the key was validated, the subprotocol is one
        # of the client's validated tokens, the extensions header was
        # formatted from tokens).
        parts = [_ACCEPT_HEAD, computeAcceptKey(request.key).encode("ascii"), b"\r\n"]
        if subprotocol is not None:
            parts += (b"Sec-WebSocket-Protocol: ", subprotocol.encode("ascii"), b"\r\n")
        if extensionsHeader is not None:
            parts += (b"Sec-WebSocket-Extensions: ", extensionsHeader.encode("latin-1"), b"\r\n")
        parts.append(b"\r\n")
        return b"".join(parts)
    headers = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", computeAcceptKey(request.key)),
    ]
    if subprotocol is not None:
        headers.append(("Sec-WebSocket-Protocol", subprotocol))
    if extensionsHeader is not None:
        headers.append(("Sec-WebSocket-Extensions", extensionsHeader))
    headers += extra
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


def buildClientRequest(
    host: str,
    path: str,
    key: str,
    origin: str | None = None,
    protocols: Sequence[str] = (),
    extensionsHeader: str | None = None,
    extraHeaders: Iterable[tuple[str, str]] = (),
) -> bytes:
    """
    The client's upgrade request.

    @param path: the request target (path and optional query), starting
        with C{/}.
    @raise ValueError: a subprotocol is not a token, the path is invalid,
        an extra header is one the handshake sets itself, or a value holds
        CR/LF/NUL.
    """
    headers = clientRequestHeaders(
        host, path, key, origin, protocols, extensionsHeader, extraHeaders
    )
    return formatRequest("GET", path, headers)


def clientRequestHeaders(
    host: str,
    path: str,
    key: str,
    origin: str | None = None,
    protocols: Sequence[str] = (),
    extensionsHeader: str | None = None,
    extraHeaders: Iterable[tuple[str, str]] = (),
) -> list[tuple[str, str]]:
    """
    The header fields of the client's upgrade request, in sending order
    (see L{buildClientRequest}, which formats them; the values themselves
    are checked when formatted).

    @raise ValueError: as L{buildClientRequest}, except for bad values.
    """
    if not path.startswith("/"):
        raise ValueError(f"request path must start with '/': {path!r}")
    for protocol in protocols:
        if not isToken(protocol):
            raise ValueError(f"invalid subprotocol name {protocol!r}")
    headers = [
        ("Host", host),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", key),
        ("Sec-WebSocket-Version", "13"),
    ]
    if origin is not None:
        headers.append(("Origin", origin))
    if protocols:
        headers.append(("Sec-WebSocket-Protocol", ", ".join(protocols)))
    if extensionsHeader is not None:
        headers.append(("Sec-WebSocket-Extensions", extensionsHeader))
    headers += checkExtraHeaders(extraHeaders)
    return headers


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
    if not any(token.lower() == "websocket" for token in headers.getCommaList("Upgrade")):
        raise HandshakeError(0, "server response lacks Upgrade: websocket")
    if not any(token.lower() == "upgrade" for token in headers.getCommaList("Connection")):
        raise HandshakeError(0, "server response lacks Connection: Upgrade")
    if headers.getAll("Sec-WebSocket-Accept") != [computeAcceptKey(key)]:
        raise HandshakeError(0, "server sent a wrong or missing Sec-WebSocket-Accept")

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

    return HandshakeResponse(
        status=head.status, headers=headers, subprotocol=subprotocol, extensions=extensions
    )


def isUpgradeAttempt(headers: Headers) -> bool:
    """
    Whether a request is trying to open a WebSocket (not a page load).

    Front ends that also serve ordinary HTTP (the twisted.web resource)
    use it to choose between the WebSocket refusal (the connection closes)
    and an ordinary answer; any WebSocket header, or C{Upgrade: websocket},
    counts.
    """
    if "Sec-WebSocket-Key" in headers or "Sec-WebSocket-Version" in headers:
        return True
    return any(token.lower() == "websocket" for token in headers.getCommaList("Upgrade"))


def parseOffers(headers: Headers) -> tuple[str | None, list[str], list[ExtensionOffer]]:
    """
    The client's origin, subprotocols and extension offers, checked.

    The same for every carrier of the handshake (HTTP/1.1 Upgrade, HTTP/2
    extended CONNECT), so it is read in this one place.

    @raise HandshakeError: 400 for a repeated Origin, a subprotocol that
        is not a token, or a malformed Sec-WebSocket-Extensions.
    """
    origins = headers.getAll("Origin")
    if len(origins) > 1:
        raise HandshakeError(400, "more than one Origin header")
    protocols = headers.getCommaList("Sec-WebSocket-Protocol")
    for protocol in protocols:
        if not isToken(protocol):
            raise HandshakeError(400, f"invalid subprotocol name {protocol!r}")
    try:
        extensions = parseExtensionHeader(headers.getAll("Sec-WebSocket-Extensions"))
    except ValueError:
        raise HandshakeError(400, "malformed Sec-WebSocket-Extensions header") from None
    return origins[0] if origins else None, protocols, extensions


def checkNoBody(headers: Headers) -> None:
    """
    Refuse an upgrade request announcing a body.

    Whatever follows the head is WebSocket frames: a body would be read as
    frames by us and as a body by any proxy in between (smuggling).

    @raise HandshakeError: 400 for any Transfer-Encoding, or a
        Content-Length other than 0.
    """
    if "Transfer-Encoding" in headers or any(
        value != "0" for value in headers.getAll("Content-Length")
    ):
        raise HandshakeError(400, "an upgrade request cannot have a body")


#: The I/O-free handshake objects and the negotiation, defined in modules of
#: their own (they build on this one), are also importable from here; they
#: are looked up on first use so that those modules can import this one.
_LAZY_EXPORTS = {
    "ServerHandshake": "twisted_ws.core.opening",
    "ClientHandshake": "twisted_ws.core.opening",
    "ServerState": "twisted_ws.core.opening",
    "ClientState": "twisted_ws.core.opening",
    "Accepted": "twisted_ws.core.opening",
    "Rejected": "twisted_ws.core.opening",
    "Failed": "twisted_ws.core.opening",
    "Negotiated": "twisted_ws.core.negotiation",
    "negotiate": "twisted_ws.core.negotiation",
    "validateExtendedConnect": "twisted_ws.core.extendedconnect",
    "extendedConnectResponse": "twisted_ws.core.extendedconnect",
}


def __getattr__(name: str) -> object:
    module = _LAZY_EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
