"""
HTTP/1.1 message heads, parsed and formatted with hard limits.

The WebSocket opening handshake is the only HTTP this library speaks, so this
module knows just enough HTTP/1.1 to read one request or response head and to
write one back.  It is deliberately strict: a WebSocket endpoint has no reason
to be tolerant of malformed heads, and every leniency (obs-fold, whitespace
before the colon, odd start lines) is a request-smuggling or header-confusion
vector when a proxy in front of us parses the same bytes differently.

Parsing is incremental and bounded: limits are checked as bytes arrive, so a
peer that sends an endless line is refused as soon as it passes the cap, and
the work done per C{feed} is proportional to the new data, so a client that
trickles one byte at a time costs linear, not quadratic, time.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from twisted_ws.core.errors import HandshakeError
from twisted_ws.core.masking import extensionDisabled

__all__ = [
    "Headers",
    "RequestHead",
    "ResponseHead",
    "HeadParser",
    "formatResponse",
    "formatRequest",
    "isToken",
    "checkHeaderField",
    "RESPONSE_PARSE_ERROR_STATUS",
]

#: RFC 7230 tchar, as a regex character class body.
_TCHAR = r"!#$%&'*+\-.^_`|~0-9A-Za-z"
_TOKEN_RE = re.compile(f"[{_TCHAR}]+")
_TOKEN_BYTES_RE = re.compile(f"[{_TCHAR}]+".encode("ascii"))

_REQUEST_LINE_RE = re.compile(
    f"([{_TCHAR}]+) ([\\x21-\\x7e]+) HTTP/([0-9])\\.([0-9])".encode("ascii")
)
_STATUS_LINE_RE = re.compile(
    rb"HTTP/([0-9])\.([0-9]) ([0-9]{3})(?: ([\t\x20-\x7e\x80-\xff]*))?"
)
_HEADER_LINE_RE = re.compile(f"([{_TCHAR}]+):(.*)".encode("ascii"), re.DOTALL)
#: Controls refused in received header values: every C0 control but HTAB, and
#: DEL.  RFC 7230 field-content allows none of them.
_BAD_VALUE_BYTES_RE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
#: Characters refused in header values we send: the ones that would let an
#: application-supplied value end the line and inject headers.
_BAD_OUTPUT_RE = re.compile(r"[\x00\r\n]")
_BAD_TARGET_RE = re.compile(r"[\x00-\x20\x7f]")
#: One header line (latin-1) for the whole-head fast path: token, colon, a value free of
#: controls but HTAB, CRLF.  The value starts with a non-blank, so a line matches one way
#: only (if blanks could go to either part, a bad line would make the repeat retry every
#: split of every earlier line: exponential).  Trailing blanks are stripped after.
_FIELD = f"([{_TCHAR}]+):[ \\t]*((?:[^\\x00-\\x20\\x7f][^\\x00-\\x08\\x0a-\\x1f\\x7f]*)?)\\r\\n"
_FIELD_RE = re.compile(_FIELD)
_FIELDS_RE = re.compile(f"(?:{_FIELD})*")

_ParseHead = Callable[[bytes, bool, int, int, int], tuple[Any, ...] | None]


def _selectParseHead(environ: Mapping[str, str]) -> _ParseHead | None:
    """C{_speedups.parseHead} unless not built (or too old) or disabled (L{extensionDisabled})."""
    try:
        from ._speedups import parseHead
    except ImportError:
        return None
    fast: _ParseHead | None = None if extensionDisabled(environ) else parseHead
    return fast

_PARSE_HEAD = _selectParseHead(os.environ)

#: Status carried by every L{HandshakeError} raised while parsing a
#: I{response} head: the server (from the client's point of view, a gateway)
#: sent something that is not valid HTTP.
RESPONSE_PARSE_ERROR_STATUS = 502


def isToken(value: str) -> bool:
    """Whether C{value} is an RFC 7230 token (subprotocol, extension and header names)."""
    return _TOKEN_RE.fullmatch(value) is not None


def _indexOf(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    """The values of C{pairs} by lowercase name, in order."""
    index: dict[str, list[str]] = {}
    for name, value in pairs:
        key = name.lower()
        values = index.get(key)
        if values is None:
            index[key] = [value]
        else:
            values.append(value)
    return index


class Headers:
    """
    An ordered, case-insensitive, multi-valued collection of header fields.

    Order and original case are kept because they are what was on the wire
    (useful for logging and for re-emitting); lookups ignore case because
    HTTP field names are case-insensitive.
    """

    __slots__ = ("_pairsList", "_indexDict", "_raw")

    def __init__(self, pairs: Iterable[tuple[str, str]] = (), raw: str | None = None) -> None:
        """
        @param raw: the header block the pairs were parsed from (each field
            a well-formed C{name: value} line ending in CRLF), kept so that
            L{compact} can drop the parsed form.
        """
        self._pairsList: list[tuple[str, str]] | None = [(n, v) for n, v in pairs]
        self._indexDict: dict[str, list[str]] | None = _indexOf(self._pairsList)
        self._raw = raw

    @classmethod
    def fromFields(
        cls, fields: list[tuple[str, str]], raw: str | None = None, index: dict[str, list[str]] | None = None
    ) -> Headers:
        """
        Headers over C{fields}, a list of C{(name, value)} pairs that is
        taken over, not copied (a parser's fresh result), and C{index}, their
        values by lowercase name, when the parser made it too.
        """
        headers = cls.__new__(cls)
        headers._pairsList, headers._raw = fields, raw
        headers._indexDict = _indexOf(fields) if index is None else index
        return headers

    def compact(self) -> None:
        """
        Keep only the raw header block; parse it again if asked.

        A server keeps every connection's upgrade request for the
        application, and the parsed form costs several times the raw text:
        dropping it after the handshake keeps idle connections small.
        """
        if self._raw is not None:
            self._pairsList = self._indexDict = None

    @property
    def _pairs(self) -> list[tuple[str, str]]:
        if self._pairsList is None:
            self._expand()
        return self._pairsList  # type: ignore[return-value]

    def _expand(self) -> None:
        pairs = [(name, value.rstrip(" \t")) for name, value in _FIELD_RE.findall(self._raw or "")]
        self._pairsList, self._indexDict = pairs, _indexOf(pairs)

    def add(self, name: str, value: str) -> None:
        """Append one field, keeping any earlier ones of the same name."""
        self._pairs.append((name, value))
        self.asDict().setdefault(name.lower(), []).append(value)
        self._raw = None  # the raw block no longer tells the whole story

    def asDict(self) -> dict[str, list[str]]:
        """
        Every field's values by lowercase name, in received order: what a
        validator reading many fields uses instead of one lookup each.  The
        dictionary is the collection's own: read it, never change it.
        """
        if self._indexDict is None:
            self._expand()
        return self._indexDict  # type: ignore[return-value]

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of C{name}, or C{default} when absent."""
        values = self.asDict().get(name.lower())
        return values[0] if values else default

    def getAll(self, name: str) -> list[str]:
        """Every value of C{name}, in received order (a new list)."""
        values = self.asDict().get(name.lower())
        return list(values) if values else []

    def getCommaList(self, name: str) -> list[str]:
        """
        The comma-separated list elements across every C{name} field.

        This is how list-valued headers (Connection, Upgrade,
        Sec-WebSocket-Protocol) must be read: a sender may split one list over
        several fields or join several fields into one, and empty elements
        are allowed by RFC 7230 section 7.
        """
        result: list[str] = []
        for value in self.asDict().get(name.lower(), ()):
            for element in value.split(","):
                element = element.strip(" \t")
                if element:
                    result.append(element)
        return result

    def hasToken(self, name: str, token: str) -> bool:
        """
        Whether the list across every C{name} field (read as L{getCommaList}
        reads it) holds C{token}, given lowercase and compared case-insensitively.
        """
        for value in self.asDict().get(name.lower(), ()):
            if value.lower() == token:  # the usual one-element list
                return True
            if any(element.strip(" \t").lower() == token for element in value.split(",")):
                return True
        return False

    def items(self) -> Iterator[tuple[str, str]]:
        """(name, value) pairs in original order and case."""
        return iter(self._pairs)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._pairs)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self.asDict()

    def __len__(self) -> int:
        return len(self._pairs)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return self._pairs == other._pairs

    def __repr__(self) -> str:
        return f"Headers({self._pairs!r})"


@dataclass
class RequestHead:
    """A parsed HTTP request head; C{target} is exactly as received."""

    method: str
    target: str
    version: tuple[int, int]
    headers: Headers

    @property
    def path(self) -> str:
        """
        The target without its query string (not percent-decoded).

        Decoding is left to the application because decoding here would
        make C{%2F} and C{/} indistinguishable.  An absolute-form target
        (C{http://host/path}, which RFC 7230 §5.3.2 says servers must
        accept) gives its path.
        """
        return self._originForm().partition("?")[0]

    @property
    def query(self) -> str:
        """The part of the target after the first C{?}, or C{""}."""
        return self.target.partition("?")[2]

    def _originForm(self) -> str:
        target = self.target
        if target.startswith("/"):
            return target
        scheme, sep, rest = target.partition("://")
        if sep and scheme.lower() in ("http", "https", "ws", "wss"):
            path = rest[len(rest.split("/", 1)[0].split("?", 1)[0]) :]
            if not path.startswith("/"):
                path = "/" + path
            return path
        return target


@dataclass
class ResponseHead:
    """A parsed HTTP response head."""

    version: tuple[int, int]
    status: int
    reasonPhrase: str
    headers: Headers


class HeadParser:
    """
    Incremental parser for one HTTP/1.1 request or response head.

    Lines must end with CRLF; a bare LF is also accepted as a line end (RFC
    7230 section 3.5 allows it, and it cannot hide a line from a CRLF-only
    parser since such a parser would see one longer, invalid line).  A bare CR
    anywhere else is refused.  Leading empty lines before the start line are
    refused rather than skipped.

    Limits: C{maxLineLength} caps the start line (414 for a request) and each
    header line (431); C{maxHeaderBytes} caps the header block, i.e. every
    header line with its line end, excluding the start line and the final
    empty line (431); C{maxHeaderCount} caps the number of fields (431).
    Other malformations are 400.  When parsing a response every error carries
    status L{RESPONSE_PARSE_ERROR_STATUS} (502) instead, as the client layer
    only needs to know the server's answer was unusable.

    Once a head is returned, C{rest} holds the bytes that followed it.
    """

    #: The bytes that followed the head, once it is complete.
    rest = b""
    # The line-by-line state, made once a piece is not a whole head (most are).
    _buffer: bytearray | None = None
    _headers: Headers | None = None
    # Where the current (incomplete) line starts, and where the search for LF resumes.
    _lineStart = 0
    _scanFrom = 0
    # Offset of the first header line; None until the start line is read.
    _headerStart: int | None = None
    _startLine: tuple[object, ...] | None = None
    _finished = False
    #: The C twin of L{_parseWhole} (C{None}: not built; tests set it so to compare).
    _parseHead: _ParseHead | None = _PARSE_HEAD

    def __init__(
        self,
        isRequest: bool,
        maxLineLength: int = 8192,
        maxHeaderBytes: int = 16384,
        maxHeaderCount: int = 100,
    ) -> None:
        self.isRequest = isRequest
        self.maxLineLength = maxLineLength
        self.maxHeaderBytes = maxHeaderBytes
        self.maxHeaderCount = maxHeaderCount
        # On the instance: CPython 3.11 specialises reads of instance attributes only.
        self._finished, self._buffer, self._parseHead = False, None, _PARSE_HEAD

    def feed(self, data: bytes) -> RequestHead | ResponseHead | None:
        """
        Add C{data}; return the head once complete, else C{None}.

        @raise HandshakeError: the head is malformed or exceeds a limit.
        @raise RuntimeError: the parser already returned a head or failed.
        """
        if self._finished:
            raise RuntimeError("HeadParser.feed called after the head ended")
        parse = self._parseHead
        if parse is not None and self._buffer is None:
            parsed = parse(data, self.isRequest, self.maxLineLength, self.maxHeaderBytes, self.maxHeaderCount)
            if parsed is not None:
                a, b, c, fields, index, raw, self.rest = parsed
                self._finished, headers = True, Headers.fromFields(fields, raw, index)
                return RequestHead(a, b, c, headers) if self.isRequest else ResponseHead(a, b, c, headers)
            self._buffer = bytearray()  # no whole head: on to the line parser
        try:
            return self._feed(data)
        except HandshakeError:
            self._finished = True
            raise

    def _fail(self, status: int, reason: str) -> HandshakeError:
        if not self.isRequest:
            status = RESPONSE_PARSE_ERROR_STATUS
        return HandshakeError(status, reason)

    def _feed(self, data: bytes) -> RequestHead | ResponseHead | None:
        buf = self._buffer
        if buf is None:
            head = self._parseWhole(data)
            if head is not None:
                return head
            buf = self._buffer = bytearray()
        headers = self._headers
        if headers is None:
            headers = self._headers = Headers()
        buf += data
        while True:
            newline = buf.find(b"\n", self._scanFrom)
            if newline == -1:
                self._scanFrom = len(buf)
                self._checkPending()
                return None
            lineEnd = newline
            if lineEnd > self._lineStart and buf[lineEnd - 1] == 0x0D:
                lineEnd -= 1
            line = bytes(buf[self._lineStart : lineEnd])
            self._lineStart = self._scanFrom = newline + 1

            if self._headerStart is None:
                if len(line) > self.maxLineLength:
                    raise self._fail(414, "request line too long")
                self._parseStartLine(line)
                self._headerStart = newline + 1
                continue

            if not line:
                self._finished = True
                self.rest = bytes(buf[newline + 1 :])
                return self._makeHead()
            if newline + 1 - self._headerStart > self.maxHeaderBytes:
                raise self._fail(431, "request header fields too large")
            if len(line) > self.maxLineLength:
                raise self._fail(431, "request header field too large")
            if len(headers) >= self.maxHeaderCount:
                raise self._fail(431, "too many request header fields")
            self._parseHeaderLine(line, headers)

    def _parseWhole(self, data: bytes) -> RequestHead | ResponseHead | None:
        """
        The fast path: a whole, well-formed head in one piece (what real
        clients send) is checked with a few whole-buffer operations instead
        of line by line.  Anything unusual returns C{None} and goes through
        the line parser, which finds and names the problem.
        """
        end = data.find(b"\r\n\r\n")
        if end < 0:
            return None
        firstEnd = data.find(b"\r\n")
        if firstEnd > self.maxLineLength:
            return None
        block = data[firstEnd + 2 : end + 2] if firstEnd < end else b""
        if len(block) > self.maxHeaderBytes:
            return None
        text = block.decode("latin-1")
        lines = text.count("\n")
        if (
            lines > self.maxHeaderCount
            or text.count("\r") != lines
            or _FIELDS_RE.fullmatch(text) is None
            or b"\n" in data[:firstEnd]
            or b"\r" in data[:firstEnd]
        ):
            return None
        if len(text) > self.maxLineLength and (
            max(map(len, text.split("\r\n"))) > self.maxLineLength
        ):
            return None
        fields = _FIELD_RE.findall(text)
        if len(fields) != lines:
            return None
        if " \r" in text or "\t\r" in text:
            fields = [(name, value.rstrip(" \t")) for name, value in fields]
        self._parseStartLine(data[:firstEnd])
        self._headers = Headers.fromFields(fields, text)
        self._finished = True
        self.rest = data[end + 4 :]
        return self._makeHead()

    def _checkPending(self) -> None:
        """Refuse an incomplete line that is already certain to break a cap."""
        buf, headers = self._buffer, self._headers
        assert buf is not None and headers is not None
        pending = len(buf) - self._lineStart
        if pending == 0:
            return
        # A trailing CR may be the first half of the CRLF: don't count it.
        lineLength = pending - 1 if buf[-1] == 0x0D else pending
        if self._headerStart is None:
            if lineLength > self.maxLineLength:
                raise self._fail(414, "request line too long")
            return
        if lineLength == 0:
            return  # possibly the final empty line
        if lineLength > self.maxLineLength:
            raise self._fail(431, "request header field too large")
        # This line will take at least pending + 1 (LF) bytes in the block.
        if self._lineStart - self._headerStart + pending + 1 > self.maxHeaderBytes:
            raise self._fail(431, "request header fields too large")
        if len(headers) >= self.maxHeaderCount:
            raise self._fail(431, "too many request header fields")

    def _parseStartLine(self, line: bytes) -> None:
        if self.isRequest:
            match = _REQUEST_LINE_RE.fullmatch(line)
            if match is None:
                raise self._fail(400, "malformed request line")
            method, target, major, minor = match.groups()
            self._startLine = (
                method.decode("ascii"),
                target.decode("ascii"),
                (int(major), int(minor)),
            )
        else:
            match = _STATUS_LINE_RE.fullmatch(line)
            if match is None:
                raise self._fail(502, "malformed status line")
            major, minor, status, reason = match.groups()
            self._startLine = (
                (int(major), int(minor)),
                int(status),
                (reason or b"").decode("latin-1"),
            )

    def _parseHeaderLine(self, line: bytes, headers: Headers) -> None:
        if line[:1] in (b" ", b"\t"):
            raise self._fail(400, "obsolete line folding in header field")
        match = _HEADER_LINE_RE.fullmatch(line)
        if match is None:
            raise self._fail(400, "malformed header field")
        name, value = match.groups()
        value = value.strip(b" \t")
        if _BAD_VALUE_BYTES_RE.search(value):
            raise self._fail(400, "control character in header field value")
        headers.add(name.decode("ascii"), value.decode("latin-1"))

    def _makeHead(self) -> RequestHead | ResponseHead:
        assert self._startLine is not None and self._headers is not None
        if self.isRequest:
            method, target, version = self._startLine
            return RequestHead(method, target, version, self._headers)  # type: ignore[arg-type]
        version, status, reason = self._startLine
        return ResponseHead(version, status, reason, self._headers)  # type: ignore[arg-type]


def checkHeaderField(name: str, value: str) -> bytes:
    """
    Check one header field we are about to send; return its encoded value.

    Shared by every way a response leaves (HTTP/1.1 bytes here, an HTTP/2
    header list elsewhere), so an application-supplied header is refused
    the same way whatever carries it.

    @raise ValueError: the name is not a token, or the value holds CR, LF
        or NUL (header injection) or is not latin-1.
    """
    if not isToken(name):
        raise ValueError(f"invalid header name {name!r}")
    if _BAD_OUTPUT_RE.search(value):
        raise ValueError(f"invalid character in value of header {name!r}")
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"value of header {name!r} is not latin-1") from None


def _formatHeaders(headers: Iterable[tuple[str, str]], skip: frozenset[str] = frozenset()) -> list[bytes]:
    """Validate and encode header lines; refuse anything that could inject."""
    lines: list[bytes] = []
    for name, value in headers:
        encoded = checkHeaderField(name, value)
        if name.lower() in skip:
            continue
        lines.append(name.encode("ascii") + b": " + encoded + b"\r\n")
    return lines


def formatResponse(
    status: int,
    reasonPhrase: str | None,
    headers: Iterable[tuple[str, str]],
    body: bytes = b"",
) -> bytes:
    """
    Serialise an HTTP/1.1 response head (and body).

    Content-Length is computed here, not trusted from the caller: any
    caller-supplied Content-Length is dropped, and the real length is added
    unless the status forbids a body (1xx, 204, 304) and the body is empty.
    No Server or Date header is ever added, so nothing about the
    implementation is disclosed.

    @raise ValueError: a header name is not a token, or a value or the
        reason phrase contains CR, LF or NUL (header injection).
    """
    if not 100 <= status <= 999:
        raise ValueError(f"invalid HTTP status {status!r}")
    if reasonPhrase is None:
        try:
            reasonPhrase = HTTPStatus(status).phrase
        except ValueError:
            reasonPhrase = ""
    if _BAD_OUTPUT_RE.search(reasonPhrase):
        raise ValueError("invalid character in reason phrase")
    try:
        statusLine = f"HTTP/1.1 {status} {reasonPhrase}\r\n".encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError("reason phrase is not latin-1") from None
    lines = [statusLine]
    lines += _formatHeaders(headers, skip=frozenset({"content-length"}))
    if body or not (100 <= status < 200 or status in (204, 304)):
        lines.append(b"Content-Length: %d\r\n" % (len(body),))
    lines.append(b"\r\n")
    return b"".join(lines) + body


def formatRequest(method: str, target: str, headers: Iterable[tuple[str, str]]) -> bytes:
    """
    Serialise an HTTP/1.1 request head (no body: the handshake has none).

    @raise ValueError: the method is not a token, the target is empty or
        contains whitespace or control characters, or a header is invalid.
    """
    if not isToken(method):
        raise ValueError(f"invalid method {method!r}")
    if not target or _BAD_TARGET_RE.search(target) or not target.isascii():
        raise ValueError(f"invalid request target {target!r}")
    lines = [f"{method} {target} HTTP/1.1\r\n".encode("ascii")]
    lines += _formatHeaders(headers)
    lines.append(b"\r\n")
    return b"".join(lines)
