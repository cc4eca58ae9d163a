"""
The upgrade request: read and checked by a server (RFC 6455 section
4.2.1), written by a client (section 4.1).

Server-side errors are L{HandshakeError}s carrying the HTTP answer to send.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from twisted_ws.core.errors import HandshakeError
from twisted_ws.core.extensions import ExtensionOffer, parseExtensionHeader
from twisted_ws.core.handshake.keys import isValidKey
from twisted_ws.core.http import Headers, RequestHead, formatRequest, isToken

__all__ = [
    "HandshakeRequest",
    "validateRequest",
    "isUpgradeAttempt",
    "parseOffers",
    "checkNoBody",
    "checkExtraHeaders",
    "buildClientRequest",
    "clientRequestHeaders",
]

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


class _ReadLazily:
    """
    A dataclass field whose value may be left to a function, called the
    first time the field is read (see L{HandshakeRequest.addressesFrom}).
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self._slot = "_" + name

    def __get__(self, instance: object, owner: type | None = None) -> object:
        if instance is None:
            return None  # the field's default
        values = instance.__dict__
        value = values.get(self._slot)
        if type(value) is _Later:
            value = values[self._slot] = value.source()
        return value

    def __set__(self, instance: object, value: object) -> None:
        instance.__dict__[self._slot] = value


class _Later:
    """A field's value to come: C{source()}."""

    __slots__ = ("source",)

    def __init__(self, source: Callable[[], object]) -> None:
        self.source = source


@dataclass
class HandshakeRequest:
    """
    A validated WebSocket upgrade request, as the application sees it.

    C{peer}, C{local} and C{secure} describe the transport; the I/O-free
    core cannot know them, so the Twisted layer fills them in (the
    addresses when first read, see L{addressesFrom}).
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
    peer: object = _ReadLazily()
    local: object = _ReadLazily()
    secure: bool = False
    webRequest: object = None
    peerCertificate: object = None

    def header(self, name: str) -> str | None:
        """The first value of header C{name} (case-insensitive), or None."""
        return self.headers.get(name)

    def addressesFrom(
        self, peer: Callable[[], object], local: Callable[[], object]
    ) -> None:
        """
        Let C{peer} and C{local} be C{peer()} and C{local()}, each called
        the first time its field is read: most applications read neither,
        and each costs the transport a system call or an address object.
        """
        self.__dict__["_peer"], self.__dict__["_local"] = _Later(peer), _Later(local)



def _single(fields: dict[str, list[str]], key: str, name: str) -> str:
    """
    The one value of field C{key} (lowercase) in C{fields} (see
    L{Headers.asDict}); 400, naming C{name}, when it is absent, repeated
    or empty.
    """
    values = fields.get(key)
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
    fields = headers.asDict()
    if head.method != "GET":
        raise HandshakeError(
            405, f"method {head.method} not allowed, use GET", headers=[("Allow", "GET")]
        )
    if head.version < (1, 1):
        raise HandshakeError(
            400, f"HTTP/{head.version[0]}.{head.version[1]} cannot upgrade, HTTP/1.1 is required"
        )
    path = head.path
    if not path.startswith("/"):
        raise HandshakeError(400, "request target must be an absolute path")
    host = _single(fields, "host", "Host")

    if "upgrade" not in fields:
        raise HandshakeError(
            426, "this is a WebSocket endpoint, Upgrade: websocket required",
            headers=_UPGRADE_REQUIRED_HEADERS,
        )
    if not headers.hasToken("Upgrade", "websocket"):
        raise HandshakeError(400, "Upgrade header does not contain websocket")
    if not headers.hasToken("Connection", "upgrade"):
        raise HandshakeError(400, "Connection header does not contain Upgrade")

    if fields.get("sec-websocket-version") != ["13"]:
        raise HandshakeError(
            426, "unsupported or missing Sec-WebSocket-Version, 13 is required",
            headers=[("Sec-WebSocket-Version", "13")],
        )

    key = _single(fields, "sec-websocket-key", "Sec-WebSocket-Key")
    if not isValidKey(key):
        raise HandshakeError(400, "Sec-WebSocket-Key is not 16 bytes of base64")

    origin, protocols, extensions = parseOffers(headers)
    checkNoBody(headers)

    target = head.target
    return HandshakeRequest(
        method="GET",
        target=target,
        path=path,
        query=target.partition("?")[2],
        version=head.version,
        headers=headers,
        host=host,
        origin=origin,
        key=key,
        protocols=protocols,
        extensions=extensions,
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
    return headers.hasToken("Upgrade", "websocket")


def parseOffers(headers: Headers) -> tuple[str | None, list[str], list[ExtensionOffer]]:
    """
    The client's origin, subprotocols and extension offers, checked.

    The same for every carrier of the handshake (HTTP/1.1 Upgrade, HTTP/2
    extended CONNECT), so it is read in this one place.

    @raise HandshakeError: 400 for a repeated Origin, a subprotocol that
        is not a token, or a malformed Sec-WebSocket-Extensions.
    """
    fields = headers.asDict()
    origins = fields.get("origin")
    if origins is not None and len(origins) > 1:
        raise HandshakeError(400, "more than one Origin header")
    offered = fields.get("sec-websocket-protocol")
    protocols = headers.getCommaList("Sec-WebSocket-Protocol") if offered else []
    for protocol in protocols:
        if not isToken(protocol):
            raise HandshakeError(400, f"invalid subprotocol name {protocol!r}")
    offers = fields.get("sec-websocket-extensions")
    try:
        extensions = parseExtensionHeader(offers) if offers else []
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
    fields = headers.asDict()
    if "transfer-encoding" in fields or any(
        value != "0" for value in fields.get("content-length", ())
    ):
        raise HandshakeError(400, "an upgrade request cannot have a body")



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

