"""
Telling protocols apart from the first bytes of a connection (I/O-free).

A port shared between HTTP (WebSocket) and some private protocol has to
route each connection on what its client sends first.  The rules here are
deliberately conservative, because a wrong "HTTP" verdict hands a private
client to the HTTP parser, which then answers it with an error:

  - a connection is HTTP only once its whole request line has arrived and
    has the shape C{METHOD SP target SP HTTP/d.d CRLF} with a known method
    (so a private command such as C{GET key\\r\\n} is I{not} HTTP);
  - as long as the bytes are a prefix of such a line the verdict is
    L{Sniffed.NEED_MORE} (the caller waits, within its time and size
    bounds);
  - as soon as they can no longer be, the verdict is L{Sniffed.NOT_HTTP}.

A TLS ClientHello is recognised from its record header, so one port can
also take TLS and plain clients.  Nothing here does I/O or keeps state: the
caller passes everything it has buffered so far.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable

__all__ = [
    "Sniffed",
    "HTTP_METHODS",
    "classifyHTTP",
    "classifyTLS",
    "classify",
    "headEnd",
    "wantsWebSocket",
]


class Sniffed(enum.Enum):
    """A verdict on the first bytes of a connection."""

    #: A complete HTTP/1.x request line.
    HTTP = "http"
    #: The start of a TLS handshake (a ClientHello record).
    TLS = "tls"
    #: Cannot be HTTP (or TLS, when asked): some other protocol.
    NOT_HTTP = "not-http"
    #: Still a prefix of what we look for: wait for more bytes.
    NEED_MORE = "need-more"


#: Request methods that mark a connection as HTTP (RFC 9110 and PATCH).
HTTP_METHODS: frozenset[bytes] = frozenset(
    {b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"CONNECT", b"OPTIONS", b"TRACE", b"PATCH"}
)

#: Characters a request target may contain (visible US-ASCII).
_TARGET_RE = re.compile(rb"[\x21-\x7e]*")
_DIGITS = frozenset(b"0123456789")
#: The tail of a request line after the target; C{None} stands for a digit.
_VERSION = (b" "[0], *b"HTTP/", None, b"."[0], None)


def _versionVerdict(tail: bytes) -> Sniffed:
    """Check C{ SP HTTP/d.d CRLF} (or bare LF) against what has arrived."""
    for i, expected in enumerate(_VERSION):
        if i >= len(tail):
            return Sniffed.NEED_MORE
        byte = tail[i]
        if expected is None:
            if byte not in _DIGITS:
                return Sniffed.NOT_HTTP
        elif byte != expected:
            return Sniffed.NOT_HTTP
    end = tail[len(_VERSION) :]
    if not end:
        return Sniffed.NEED_MORE
    if end[:1] == b"\n":
        return Sniffed.HTTP
    if end[:1] != b"\r":
        return Sniffed.NOT_HTTP
    if len(end) < 2:
        return Sniffed.NEED_MORE
    return Sniffed.HTTP if end[1:2] == b"\n" else Sniffed.NOT_HTTP


def classifyHTTP(
    data: bytes,
    *,
    maxLineLength: int = 8192,
    methods: Iterable[bytes] = HTTP_METHODS,
) -> Sniffed:
    """
    Whether C{data} (everything received so far) starts with an HTTP/1.x
    request line.

    @param maxLineLength: a request line still undecided after this many
        bytes is L{Sniffed.NOT_HTTP}, which bounds what a caller buffers.
    @return: L{Sniffed.HTTP}, L{Sniffed.NOT_HTTP} or L{Sniffed.NEED_MORE}.
    """
    methods = methods if isinstance(methods, (set, frozenset)) else frozenset(methods)
    longest = max((len(m) for m in methods), default=0)
    space = data.find(b" ", 0, longest + 1)
    if space < 0:
        head = data[: longest + 1]
        if len(head) > longest or not any(m.startswith(head) for m in methods):
            return Sniffed.NOT_HTTP
        return Sniffed.NEED_MORE
    if data[:space] not in methods:
        return Sniffed.NOT_HTTP
    start = space + 1
    limit = maxLineLength + 2  # the line plus its CRLF
    targetEnd = _TARGET_RE.match(data, start, limit).end()  # type: ignore[union-attr]  # [..]* always matches
    if targetEnd >= limit:
        return Sniffed.NOT_HTTP
    if targetEnd == len(data):
        return Sniffed.NEED_MORE
    if targetEnd == start:
        return Sniffed.NOT_HTTP  # empty target, or a control character
    verdict = _versionVerdict(data[targetEnd : targetEnd + len(_VERSION) + 2])
    if verdict is Sniffed.NEED_MORE and len(data) >= limit:
        return Sniffed.NOT_HTTP
    return verdict


#: TLS record content type "handshake", then protocol major version 3.
_TLS_HANDSHAKE = 0x16
_TLS_MAJOR = 0x03
#: Largest TLS record a ClientHello may come in (2^14 plus expansion).
_TLS_MAX_RECORD = (1 << 14) + 2048
#: Handshake message type of a ClientHello.
_CLIENT_HELLO = 0x01


def classifyTLS(data: bytes) -> Sniffed:
    """
    Whether C{data} starts with a TLS record carrying a ClientHello.

    Checks the 5-byte record header (type 0x16, version 3.0-3.4, a
    plausible length) and the handshake type of the first message.

    @return: L{Sniffed.TLS}, L{Sniffed.NOT_HTTP} (meaning "not TLS") or
        L{Sniffed.NEED_MORE}.
    """
    checks: tuple[Callable[[int], bool], ...] = (
        lambda b: b == _TLS_HANDSHAKE,
        lambda b: b == _TLS_MAJOR,
        lambda b: b <= 0x04,
    )
    for i, check in enumerate(checks):
        if i >= len(data):
            return Sniffed.NEED_MORE
        if not check(data[i]):
            return Sniffed.NOT_HTTP
    if len(data) < 6:
        return Sniffed.NEED_MORE
    length = int.from_bytes(data[3:5], "big")
    if not 0 < length <= _TLS_MAX_RECORD or data[5] != _CLIENT_HELLO:
        return Sniffed.NOT_HTTP
    return Sniffed.TLS


def classify(
    data: bytes,
    *,
    detectTLS: bool = False,
    maxLineLength: int = 8192,
    methods: Iterable[bytes] = HTTP_METHODS,
) -> Sniffed:
    """
    Route on the first bytes: L{Sniffed.TLS} (only with C{detectTLS}),
    L{Sniffed.HTTP}, L{Sniffed.NOT_HTTP} or L{Sniffed.NEED_MORE}.
    """
    if detectTLS:
        tls = classifyTLS(data)
        if tls is not Sniffed.NOT_HTTP:
            return tls
    return classifyHTTP(data, maxLineLength=maxLineLength, methods=methods)


def headEnd(data: bytes) -> int:
    """
    Where the HTTP head in C{data} ends (the offset just past its empty
    line), or -1 if the empty line has not arrived yet.
    """
    best = -1
    for marker in (b"\r\n\r\n", b"\n\n", b"\n\r\n"):
        i = data.find(marker)
        if i >= 0 and (best < 0 or i + len(marker) < best):
            best = i + len(marker)
    return best


def wantsWebSocket(head: bytes) -> bool:
    """
    Whether an HTTP request head asks for a WebSocket upgrade (an
    C{Upgrade} header listing C{websocket}).

    Only a routing hint: the WebSocket handshake validates the request
    strictly afterwards, and anything else goes to ordinary HTTP.
    """
    for line in head.split(b"\n")[1:]:
        name, sep, value = line.partition(b":")
        if not sep or name.strip().lower() != b"upgrade":
            continue
        for token in value.split(b","):
            if token.strip().split(b"/", 1)[0].lower() == b"websocket":
                return True
    return False
