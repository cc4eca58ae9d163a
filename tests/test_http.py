"""Tests for twisted_ws.core.http: strict, bounded, incremental head parsing."""

from __future__ import annotations

import signal
from typing import Any, SupportsIndex

import pytest
from hypothesis import given, settings, strategies as st

from twisted_ws.core.errors import HandshakeError
from twisted_ws.core.http import (
    RESPONSE_PARSE_ERROR_STATUS,
    Headers,
    HeadParser,
    RequestHead,
    ResponseHead,
    formatRequest,
    formatResponse,
)

REQUEST = (
    b"GET /chat?room=1&x=%2F HTTP/1.1\r\n"
    b"Host: example.com\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: keep-alive, Upgrade\r\n"
    b"X-Multi: a\r\n"
    b"x-multi: b\r\n"
    b"\r\n"
)


def parseRequest(data: bytes, **kw: int) -> RequestHead:
    parser = HeadParser(isRequest=True, **kw)
    head = parser.feed(data)
    assert isinstance(head, RequestHead)
    return head


def refused(data: bytes, isRequest: bool = True, **kw: int) -> HandshakeError:
    parser = HeadParser(isRequest=isRequest, **kw)
    with pytest.raises(HandshakeError) as info:
        parser.feed(data)
    return info.value


# Headers


def test_headersCaseInsensitiveMultiValued() -> None:
    h = Headers([("Content-Type", "a"), ("X-A", "1"), ("x-a", "2")])
    assert h.get("content-type") == "a"
    assert h.get("X-A") == "1"
    assert h.getAll("X-a") == ["1", "2"]
    assert h.get("missing") is None
    assert h.get("missing", "d") == "d"
    assert h.getAll("missing") == []
    assert "CONTENT-TYPE" in h
    assert "nope" not in h
    assert 3 not in h  # type: ignore[operator]
    assert len(h) == 3
    assert list(h) == [("Content-Type", "a"), ("X-A", "1"), ("x-a", "2")]
    assert list(h.items()) == list(h)
    assert "X-A" in repr(h)


def test_headersAdd() -> None:
    h = Headers()
    h.add("A", "1")
    h.add("a", "2")
    assert h.getAll("A") == ["1", "2"]
    assert list(h) == [("A", "1"), ("a", "2")]


def test_headersGetAllReturnsCopy() -> None:
    h = Headers([("A", "1")])
    h.getAll("a").append("x")
    assert h.getAll("a") == ["1"]


def test_getCommaList() -> None:
    h = Headers([("Connection", "keep-alive, Upgrade"), ("connection", " ,, close ,")])
    assert h.getCommaList("CONNECTION") == ["keep-alive", "Upgrade", "close"]
    assert h.getCommaList("missing") == []


# Request parsing


def test_parseRequest() -> None:
    parser = HeadParser(isRequest=True)
    head = parser.feed(REQUEST + b"\x81\x00tail")
    assert isinstance(head, RequestHead)
    assert head.method == "GET"
    assert head.target == "/chat?room=1&x=%2F"
    assert head.path == "/chat"
    assert head.query == "room=1&x=%2F"
    assert head.version == (1, 1)
    assert head.headers.get("connection") == "keep-alive, Upgrade"
    assert head.headers.getAll("X-MULTI") == ["a", "b"]
    assert parser.rest == b"\x81\x00tail"


def test_noQuery() -> None:
    head = parseRequest(b"GET /a/b HTTP/1.1\r\nHost: h\r\n\r\n")
    assert head.path == "/a/b"
    assert head.query == ""


def test_emptyQuery() -> None:
    head = parseRequest(b"GET /a? HTTP/1.1\r\n\r\n")
    assert head.path == "/a"
    assert head.query == ""


def test_needMoreData() -> None:
    parser = HeadParser(isRequest=True)
    assert parser.feed(REQUEST[:-1]) is None
    head = parser.feed(REQUEST[-1:])
    assert isinstance(head, RequestHead)
    assert parser.rest == b""


def test_bareLFAccepted() -> None:
    head = parseRequest(b"GET / HTTP/1.1\nHost: h\n\n")
    assert head.headers.get("host") == "h"


def test_valueWhitespaceStripped() -> None:
    head = parseRequest(b"GET / HTTP/1.1\r\nA: \t v a l \t \r\nB:\r\n\r\n")
    assert head.headers.get("a") == "v a l"
    assert head.headers.get("b") == ""


def test_latin1Decoding() -> None:
    head = parseRequest(b"GET / HTTP/1.1\r\nA: caf\xe9\r\n\r\n")
    assert head.headers.get("a") == "caf\xe9"


def test_http2VersionParses() -> None:
    assert parseRequest(b"GET / HTTP/2.0\r\n\r\n").version == (2, 0)
    assert parseRequest(b"GET / HTTP/1.0\r\n\r\n").version == (1, 0)


def test_feedAfterCompletion() -> None:
    parser = HeadParser(isRequest=True)
    assert parser.feed(b"GET / HTTP/1.1\r\n\r\n") is not None
    with pytest.raises(RuntimeError):
        parser.feed(b"x")


def test_feedAfterFailure() -> None:
    parser = HeadParser(isRequest=True)
    with pytest.raises(HandshakeError):
        parser.feed(b"BAD\r\n")
    with pytest.raises(RuntimeError):
        parser.feed(b"x")


@pytest.mark.parametrize(
    "line",
    [
        b"GET / HTTP/1.1 extra",
        b"GET  / HTTP/1.1",
        b"GET /",
        b"GET / HTTP/1",
        b"GET / HTTP/1.x",
        b"GET / HTTP/11.1",
        b"GET / http/1.1",
        b"GET /\tx HTTP/1.1",
        b"GE\x00T / HTTP/1.1",
        b"G(T / HTTP/1.1",
        b" GET / HTTP/1.1",
        b"GET /a\rb HTTP/1.1",
        b"GET /\xff HTTP/1.1",
        b"",
        b"GET / HTTP/1.1 ",
    ],
)
def test_malformedRequestLine(line: bytes) -> None:
    assert refused(line + b"\r\n\r\n").status == 400


@pytest.mark.parametrize(
    "line",
    [
        b"Host : h",
        b"Host\t: h",
        b"Ho st: h",
        b": h",
        b"Host h",
        b"Ho(st: h",
        b"A: b\x00c",
        b"A: b\rc",
        b"A: b\x01c",
        b"A: b\x7fc",
    ],
)
def test_malformedHeaderLine(line: bytes) -> None:
    assert refused(b"GET / HTTP/1.1\r\n" + line + b"\r\n\r\n").status == 400


def test_tabInValueAllowed() -> None:
    assert parseRequest(b"GET / HTTP/1.1\r\nA: b\tc\r\n\r\n").headers.get("a") == "b\tc"


@pytest.mark.parametrize("fold", [b" folded", b"\tfolded"])
def test_obsFoldRefused(fold: bytes) -> None:
    error = refused(b"GET / HTTP/1.1\r\nA: b\r\n" + fold + b"\r\n\r\n")
    assert error.status == 400
    assert "fold" in error.reason


def test_obsFoldOnFirstHeaderRefused() -> None:
    assert refused(b"GET / HTTP/1.1\r\n A: b\r\n\r\n").status == 400


# Limits


def test_requestLineTooLongBeforeLineEnds() -> None:
    parser = HeadParser(isRequest=True, maxLineLength=100)
    assert parser.feed(b"GET /" + b"a" * 95) is None  # exactly 100 bytes: fine
    with pytest.raises(HandshakeError) as info:
        parser.feed(b"a")
    assert info.value.status == 414


def test_requestLineAtLimitAccepted() -> None:
    line = b"GET /" + b"a" * 86 + b" HTTP/1.1"
    assert len(line) == 100
    head = parseRequest(line + b"\r\n\r\n", maxLineLength=100)
    assert head.target == "/" + "a" * 86


def test_requestLineAtLimitTrickled() -> None:
    line = b"GET /" + b"a" * 86 + b" HTTP/1.1"
    parser = HeadParser(isRequest=True, maxLineLength=100)
    assert parser.feed(line + b"\r") is None  # pending CR is not counted
    assert parser.feed(b"\n\r\n") is not None


def test_requestLineOverLimitInOneFeed() -> None:
    line = b"GET /" + b"a" * 87 + b" HTTP/1.1"
    assert refused(line + b"\r\n\r\n", maxLineLength=100).status == 414


def test_endlessRequestLineRefusedEarly() -> None:
    parser = HeadParser(isRequest=True)
    parser.feed(b"GET /")
    with pytest.raises(HandshakeError) as info:
        for _ in range(100):
            parser.feed(b"a" * 1000)
    assert info.value.status == 414
    assert len(parser._buffer) < 8192 + 1000 + 10


def test_headerBlockTooLargeBeforeHeadEnds() -> None:
    parser = HeadParser(isRequest=True, maxHeaderBytes=1000, maxLineLength=10000)
    assert parser.feed(b"GET / HTTP/1.1\r\n") is None
    with pytest.raises(HandshakeError) as info:
        for _ in range(100):
            parser.feed(b"X-A: " + b"b" * 50 + b"\r\n")
    assert info.value.status == 431


def test_headerBlockTooLargeInPartialLine() -> None:
    parser = HeadParser(isRequest=True, maxHeaderBytes=100, maxLineLength=10000)
    parser.feed(b"GET / HTTP/1.1\r\nA: ")
    with pytest.raises(HandshakeError) as info:
        parser.feed(b"b" * 200)  # no line end yet
    assert info.value.status == 431


def test_headerBlockExactlyAtLimit() -> None:
    # The block counts header lines with their CRLF, not the final CRLF.
    line = b"A: " + b"b" * 95 + b"\r\n"
    assert len(line) == 100
    parseRequest(b"GET / HTTP/1.1\r\n" + line + b"\r\n", maxHeaderBytes=100)
    parser = HeadParser(isRequest=True, maxHeaderBytes=100)
    for byte in b"GET / HTTP/1.1\r\n" + line + b"\r\n":
        result = parser.feed(bytes([byte]))
    assert isinstance(result, RequestHead)
    longer = b"A: " + b"b" * 96 + b"\r\n"
    assert refused(b"GET / HTTP/1.1\r\n" + longer + b"\r\n", maxHeaderBytes=100).status == 431


def test_headerLineTooLong() -> None:
    parser = HeadParser(isRequest=True, maxLineLength=50)
    parser.feed(b"GET / HTTP/1.1\r\n")
    with pytest.raises(HandshakeError) as info:
        parser.feed(b"A: " + b"b" * 60)
    assert info.value.status == 431


def test_tooManyHeaders() -> None:
    head = b"GET / HTTP/1.1\r\n" + b"A: b\r\n" * 5
    parseRequest(head + b"\r\n", maxHeaderCount=5)
    assert refused(head + b"A: b\r\n\r\n", maxHeaderCount=5).status == 431


def test_tooManyHeadersBeforeHeadEnds() -> None:
    parser = HeadParser(isRequest=True, maxHeaderCount=5)
    parser.feed(b"GET / HTTP/1.1\r\n" + b"A: b\r\n" * 5)
    with pytest.raises(HandshakeError) as info:
        parser.feed(b"A")
    assert info.value.status == 431


class CountingBuffer(bytearray):
    """A parser buffer that counts the bytes each search and copy walks over."""

    touched = 0

    def find(  # type: ignore[override]
        self, sub: bytes, start: int | None = None, end: int | None = None
    ) -> int:
        begin = 0 if start is None else start
        stop = len(self) if end is None else end
        at = bytearray.find(self, sub, begin, stop)
        self.touched += (stop if at < 0 else at + len(sub)) - begin
        return at

    def __getitem__(self, index: SupportsIndex | slice) -> Any:
        item = bytearray.__getitem__(self, index)
        self.touched += len(item) if isinstance(item, bytearray) else 1
        return item


def bytesTouched(parser: HeadParser, data: bytes) -> int:
    """Feed C{data} one byte at a time; how many buffer bytes were searched or copied."""
    buffer = parser._buffer = CountingBuffer()
    head = None
    for i in range(len(data)):
        head = parser.feed(data[i : i + 1])
    assert head is not None
    return buffer.touched


def test_oneByteAtATimeIsLinear() -> None:
    """Trickling bytes must not make the parser rescan its buffer."""
    data = b"GET / HTTP/1.1\r\nA: " + b"b" * 5000 + b"\r\n\r\n"
    parser = HeadParser(isRequest=True, maxLineLength=10**7, maxHeaderBytes=10**7)
    # Each byte is searched once and copied once into its line, plus a look
    # at the last byte per feed; rescanning the pending line on every feed
    # would touch ~len(data)**2 / 2 bytes.
    assert bytesTouched(parser, data) <= 4 * len(data)


def test_rescanningIsCounted() -> None:
    """The count above sees a parser that searches its whole line again on every feed."""

    class Rescanning(HeadParser):
        def feed(self, data: bytes) -> RequestHead | ResponseHead | None:
            self._scanFrom = self._lineStart
            return super().feed(data)

    data = b"GET / HTTP/1.1\r\nA: " + b"b" * 5000 + b"\r\n\r\n"
    parser = Rescanning(isRequest=True, maxLineLength=10**7, maxHeaderBytes=10**7)
    assert bytesTouched(parser, data) > 1000 * len(data)


# Responses


def test_parseResponse() -> None:
    parser = HeadParser(isRequest=False)
    head = parser.feed(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81")
    assert isinstance(head, ResponseHead)
    assert head.version == (1, 1)
    assert head.status == 101
    assert head.reasonPhrase == "Switching Protocols"
    assert head.headers.get("upgrade") == "websocket"
    assert parser.rest == b"\x81"


@pytest.mark.parametrize(
    ("line", "reason"),
    [(b"HTTP/1.1 101", ""), (b"HTTP/1.1 101 ", ""), (b"HTTP/1.1 404 Not  Found", "Not  Found")],
)
def test_statusLineVariants(line: bytes, reason: str) -> None:
    head = HeadParser(isRequest=False).feed(line + b"\r\n\r\n")
    assert isinstance(head, ResponseHead)
    assert head.reasonPhrase == reason


@pytest.mark.parametrize(
    "line", [b"HTTP/1.1 10 OK", b"HTTP/1.1 1010 OK", b"HTTP/1.1  101 OK", b"FOO 101 OK", b"HTTP/1.1 101 a\x00b"]
)
def test_malformedStatusLine(line: bytes) -> None:
    error = refused(line + b"\r\n\r\n", isRequest=False)
    assert error.status == RESPONSE_PARSE_ERROR_STATUS


def test_responseLimitsUseResponseStatus() -> None:
    parser = HeadParser(isRequest=False, maxLineLength=20)
    with pytest.raises(HandshakeError) as info:
        parser.feed(b"HTTP/1.1 101 " + b"x" * 50)
    assert info.value.status == RESPONSE_PARSE_ERROR_STATUS


# Incremental feeding (property-based)

_headerName = st.text(alphabet="abcXYZ-_019!#", min_size=1, max_size=8)
_headerValue = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f"), max_size=20).map(lambda v: v.strip(" "))


@settings(max_examples=200, deadline=None)
@given(
    headers=st.lists(st.tuples(_headerName, _headerValue), max_size=8),
    rest=st.binary(max_size=30),
    data=st.data(),
)
def test_splitFeedingMatchesSingleFeed(
    headers: list[tuple[str, str]], rest: bytes, data: st.DataObject
) -> None:
    raw = formatRequest("GET", "/p?q=1", headers) + rest
    whole = HeadParser(isRequest=True)
    expected = whole.feed(raw)
    assert isinstance(expected, RequestHead)
    assert list(expected.headers) == headers
    assert whole.rest == rest

    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=10)))
    pieces = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)])]
    parser = HeadParser(isRequest=True)
    result = None
    for i, piece in enumerate(pieces):  # noqa: B007 - i is read after the loop
        result = parser.feed(piece)
        if result is not None:
            break
    assert result == expected
    assert parser.rest + b"".join(pieces[i + 1 :]) == rest


def test_oneByteAtATimeMatches() -> None:
    raw = REQUEST + b"\x00\r\n\r\nleftover"
    expected = HeadParser(isRequest=True).feed(raw)
    parser = HeadParser(isRequest=True)
    for i in range(len(raw)):
        result = parser.feed(raw[i : i + 1])
        if result is not None:
            break
    assert result == expected
    assert raw[i + 1 :] == b"\x00\r\n\r\nleftover"
    assert parser.rest == b""


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitraryBytesOnlyRaiseHandshakeError(data: bytes) -> None:
    for isRequest in (True, False):
        try:
            HeadParser(isRequest=isRequest, maxLineLength=64, maxHeaderBytes=128).feed(data)
        except HandshakeError as e:
            assert e.status in (400, 414, 431, 502)


# Formatting


def test_formatResponse101() -> None:
    out = formatResponse(101, None, [("Upgrade", "websocket")])
    assert out == b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"


def test_formatResponseBody() -> None:
    out = formatResponse(400, None, [("Content-Length", "999")], b"bad\n")
    assert out == b"HTTP/1.1 400 Bad Request\r\nContent-Length: 4\r\n\r\nbad\n"


def test_formatResponseEmptyBodyGetsContentLength() -> None:
    assert b"Content-Length: 0\r\n" in formatResponse(403, None, [])
    assert b"Content-Length" not in formatResponse(204, None, [])
    assert b"Content-Length" not in formatResponse(304, None, [])
    assert b"Content-Length" not in formatResponse(100, None, [])


def test_formatResponseCustomAndUnknownPhrase() -> None:
    assert formatResponse(403, "Go Away", []).startswith(b"HTTP/1.1 403 Go Away\r\n")
    assert formatResponse(599, None, []).startswith(b"HTTP/1.1 599 \r\n")


def test_formatResponseNoDisclosure() -> None:
    out = formatResponse(200, None, [], b"x").lower()
    assert b"server:" not in out
    assert b"date:" not in out


def test_formatRoundTrip() -> None:
    out = formatResponse(404, None, [("X-A", "1"), ("x-a", "2")], b"body")
    parser = HeadParser(isRequest=False)
    head = parser.feed(out)
    assert isinstance(head, ResponseHead)
    assert head.status == 404
    assert head.reasonPhrase == "Not Found"
    assert head.headers.getAll("x-a") == ["1", "2"]
    assert parser.rest == b"body"


@pytest.mark.parametrize("value", ["a\r\nInjected: yes", "a\nb", "a\rb", "a\x00b"])
def test_headerInjectionRefused(value: str) -> None:
    with pytest.raises(ValueError):
        formatResponse(200, None, [("X-A", value)])
    with pytest.raises(ValueError):
        formatRequest("GET", "/", [("X-A", value)])


@pytest.mark.parametrize("name", ["Bad Name", "A:B", "", "A\r\nB", "Ä"])
def test_badHeaderNameRefused(name: str) -> None:
    with pytest.raises(ValueError):
        formatResponse(200, None, [(name, "v")])


def test_reasonPhraseInjectionRefused() -> None:
    with pytest.raises(ValueError):
        formatResponse(200, "OK\r\nX: y", [])


def test_nonLatin1ValueRefused() -> None:
    with pytest.raises(ValueError):
        formatResponse(200, None, [("A", "\u20ac")])


def test_badStatusRefused() -> None:
    with pytest.raises(ValueError):
        formatResponse(42, None, [])


def test_formatRequest() -> None:
    out = formatRequest("GET", "/a?b", [("Host", "h")])
    assert out == b"GET /a?b HTTP/1.1\r\nHost: h\r\n\r\n"


@pytest.mark.parametrize("target", ["", "/a b", "/a\r\n", "/\x00", "/\u00e9"])
def test_formatRequestBadTarget(target: str) -> None:
    with pytest.raises(ValueError):
        formatRequest("GET", target, [])


def test_formatRequestBadMethod() -> None:
    with pytest.raises(ValueError):
        formatRequest("G T", "/", [])


def test_compactHeadersAreParsedAgainOnDemand() -> None:
    """
    A server keeps every request's headers; compact() drops the parsed
    form of a head that came through the fast path and gives the same
    answers afterwards.
    """
    parser = HeadParser(True)
    head = parser.feed(
        b"GET / HTTP/1.1\r\nHost: h\r\nX-Multi: a\r\nx-multi:  b \r\nConnection: keep-alive, Upgrade\r\n\r\n"
    )
    headers = head.headers
    before = (list(headers.items()), headers.getAll("X-MULTI"), headers.getCommaList("connection"))
    headers.compact()
    assert headers._pairsList is None, "the parsed form was dropped"
    assert (list(headers.items()), headers.getAll("X-MULTI"), headers.getCommaList("connection")) == before
    assert before[1] == ["a", "b"]
    headers.add("X-New", "1")
    headers.compact()  # no raw block any more: nothing is dropped
    assert headers.get("x-new") == "1" and len(headers) == 5


# The C twin of the whole-head fast path (twisted_ws.core._speedups.parseHead)
#
# A parser whose _parseHead is None takes the pure-Python path (_parseWhole);
# one given the C function takes the C path.  Both must come to the same
# result on every input: the same head, the same rest, and the same choice
# between the fast path and the line parser (or the same refusal).  These
# tests run whether or not TWISTED_WS_NO_EXTENSION is set, as they pick the
# path themselves; they skip only when the extension is not built.

try:
    from twisted_ws.core._speedups import parseHead as cParseHead
except ImportError:  # pragma: no cover - depends on the build
    cParseHead = None

requiresParseHead = pytest.mark.skipif(
    cParseHead is None,
    reason="twisted_ws.core._speedups is not built, or is older than parseHead "
    "(`pip install -e .` builds it in place)",
)

DEFAULT_LIMITS = (8192, 16384, 100)


def describe(parser: HeadParser, head: RequestHead | ResponseHead) -> tuple[object, ...]:
    """Everything a head and its parser hold after the head, in comparable form."""
    headers = head.headers
    if isinstance(head, RequestHead):
        start: tuple[object, ...] = (head.method, head.target, head.version)
    else:
        start = (head.version, head.status, head.reasonPhrase)
    return (
        type(head).__name__,
        start,
        list(headers.items()),
        list(headers.asDict().items()),
        headers._raw,
        parser.rest,
    )


def feedOutcome(data: bytes, isRequest: bool, limits: tuple[int, int, int], fast: bool) -> tuple[object, ...]:
    """What one C{feed} of C{data} gives, through the C twin (C{fast}) or the Python fast path."""
    parser = HeadParser(isRequest, *limits)
    parser._parseHead = cParseHead if fast else None
    try:
        head = parser.feed(data)
    except HandshakeError as e:
        return ("refused", e.status, e.reason)
    if head is None:
        return ("incomplete", bytes(parser._buffer or b""))
    # _buffer stays None when the fast path took the head.
    return ("head", parser._buffer is None, *describe(parser, head))


def pythonWhole(data: bytes, isRequest: bool, limits: tuple[int, int, int]) -> tuple[object, ...] | None:
    """The pure-Python fast path's head (C{None} when it gives none or raises)."""
    parser = HeadParser(isRequest, *limits)
    try:
        head = parser._parseWhole(data)
    except HandshakeError:
        return None
    return None if head is None else describe(parser, head)


def cWhole(data: bytes, isRequest: bool, limits: tuple[int, int, int]) -> tuple[object, ...] | None:
    """The C twin's answer, in the form of L{pythonWhole}'s."""
    parsed = cParseHead(data, isRequest, *limits)
    if parsed is None:
        return None
    a, b, c, fields, index, raw, rest = parsed
    assert list(index.items()) == list(Headers.fromFields(list(fields)).asDict().items())
    return ("RequestHead" if isRequest else "ResponseHead", (a, b, c), fields, list(index.items()), raw, rest)


def assertSame(data: bytes, isRequest: bool, limits: tuple[int, int, int] = DEFAULT_LIMITS) -> bool:
    """Both paths agree on C{data}; whether the fast path took a head."""
    expected = pythonWhole(data, isRequest, limits)
    assert cWhole(data, isRequest, limits) == expected
    assert feedOutcome(data, isRequest, limits, fast=True) == feedOutcome(data, isRequest, limits, fast=False)
    return expected is not None


_TCHARS = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_tokens = st.text(alphabet=_TCHARS, min_size=1, max_size=10)
#: Names the C parser makes one str for (as usually spelt, and lowercase),
#: in any case, and near misses.
_COMMON = ["Host", "Upgrade", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Version", "User-Agent", "Date"]
_COMMON += ["Hos", "Hosts", "Sec-WebSocket_Key", "Sec-WebSocket-Ke^", "Upgrad~"]
_names = st.one_of(
    _tokens,
    st.sampled_from(_COMMON),
    st.tuples(st.sampled_from(_COMMON), st.randoms(use_true_random=False)).map(
        lambda nr: "".join(c.upper() if nr[1].random() < 0.5 else c.lower() for c in nr[0])
    ),
)
_blanks = st.text(alphabet=" \t", max_size=3)
_text = st.text(
    alphabet=st.one_of(
        st.characters(min_codepoint=0x20, max_codepoint=0x7E),
        st.characters(min_codepoint=0x80, max_codepoint=0xFF),
        st.just("\t"),
    ),
    max_size=20,
)
_digit = st.sampled_from("0123456789")
#: What the mutations put in: line ends, bare CR and LF, controls, NUL, DEL,
#: blanks, colons, non-ASCII bytes, obs-fold starts and a whole head end.
_PIECES = [b"\r", b"\n", b"\r\n", b"\x00", b"\x01", b"\x1f", b"\x7f", b"\t", b" ", b":", b"\x80", b"\xff"]
_PIECES += [b"\r\n ", b"\r\n\t", b"\r\n\r\n", b"A: b\r\n", b"HTTP/1.1"]
_mutations = st.tuples(
    st.sampled_from(["insert", "replace", "delete", "truncate", "bareLF", "bareCR", "repeatLine"]),
    st.integers(0, 10**6),
    st.sampled_from(_PIECES),
)


def mutate(data: bytes, op: str, at: int, piece: bytes) -> bytes:
    at %= len(data) + 1
    if op == "insert":
        return data[:at] + piece + data[at:]
    if op == "replace":
        return data[:at] + piece + data[at + 1 :]
    if op == "delete":
        return data[:at] + data[at + 1 :]
    if op == "truncate":
        return data[:at]
    crlfs = [i for i in range(len(data) - 1) if data[i : i + 2] == b"\r\n"]
    if not crlfs:
        return data
    i = crlfs[at % len(crlfs)]
    if op == "bareLF":
        return data[:i] + data[i + 1 :]
    if op == "bareCR":
        return data[: i + 1] + data[i + 2 :]
    # repeatLine: the line ending at that CRLF, 2 to 13 times over.
    start = data.rfind(b"\r\n", 0, i) + 2 if i else 0
    return data[:start] + data[start : i + 2] * (2 + at % 12) + data[i + 2 :]


@st.composite
def headCases(draw: st.DrawFn) -> tuple[bytes, bool, tuple[int, int, int]]:
    """A head (request or response), maybe mutated, what to parse it as, and limits."""
    isRequest = draw(st.booleans())
    version = f"HTTP/{draw(_digit)}.{draw(_digit)}"
    if isRequest:
        method = draw(st.one_of(st.just("GET"), _tokens))
        target = draw(st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=20))
        start = f"{method} {target} {version}"
    else:
        reason = draw(st.one_of(st.just(""), st.just(" "), _text.map(lambda t: " " + t)))
        start = f"{version} {draw(_digit)}{draw(_digit)}{draw(_digit)}{reason}"
    fields = draw(st.lists(st.tuples(_names, _blanks, _text, _blanks), max_size=8))
    lines = [start] + [f"{name}:{before}{value}{after}" for name, before, value, after in fields]
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + draw(st.binary(max_size=12))
    for op, at, piece in draw(st.lists(_mutations, max_size=3)):
        data = mutate(data, op, at, piece)
    parseAs = draw(st.one_of(st.just(isRequest), st.booleans()))
    limits = draw(
        st.one_of(
            st.just(DEFAULT_LIMITS),
            st.tuples(st.integers(-1, 80), st.integers(-1, 300), st.integers(-1, 10)),
        )
    )
    return data, parseAs, limits


@requiresParseHead
@settings(max_examples=500, deadline=None)
@given(headCases())
def test_cParseHeadMatchesPython(case: tuple[bytes, bool, tuple[int, int, int]]) -> None:
    """
    On generated heads, valid and broken (bare LF or CR, controls, NUL,
    obs-fold, non-ASCII, long lines, many fields, no end, the other kind
    of head), the C twin and the Python fast path give the same head and
    rest, or both leave the head to the line parser.
    """
    assertSame(*case)


@requiresParseHead
@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=120), st.booleans())
def test_cParseHeadArbitraryBytes(data: bytes, isRequest: bool) -> None:
    assertSame(data, isRequest, (64, 128, 4))
    assertSame(b"GET / HTTP/1.1\r\n" + data, isRequest, (64, 128, 4))


@requiresParseHead
@pytest.mark.parametrize("isRequest", [True, False])
def test_cParseHeadTakesWellFormedHeads(isRequest: bool) -> None:
    """The C twin takes what the Python fast path takes: a property test that never compared heads would pass."""
    start = b"GET /p?q HTTP/1.1" if isRequest else b"HTTP/1.1 101 Switching Protocols \xe9"
    data = start + b"\r\nHost: h\r\nX-A:\t caf\xe9 \t\r\nx-a:\r\nE: a\tb\r\nhOST: 2\r\nhost: 3\r\n\r\n\x81\x00"
    assert assertSame(data, isRequest)
    parsed = cParseHead(data, isRequest, *DEFAULT_LIMITS)
    fields = [("Host", "h"), ("X-A", "caf\xe9"), ("x-a", ""), ("E", "a\tb"), ("hOST", "2"), ("host", "3")]
    assert parsed[3] == fields
    assert parsed[4] == {"host": ["h", "2", "3"], "x-a": ["caf\xe9", ""], "e": ["a\tb"]}
    assert parsed[6] == b"\x81\x00"
    if not isRequest:
        assert parsed[:3] == ((1, 1), 101, "Switching Protocols \xe9")
    assert assertSame(start + b"\r\n\r\n", isRequest)
    assert cParseHead(start + b"\r\n\r\n", isRequest, *DEFAULT_LIMITS)[3:6] == ([], {}, "")


@requiresParseHead
def test_cParseHeadLimitsAtTheEdge() -> None:
    """Each limit exactly kept takes the fast path; one past it does not (in both paths)."""
    line = b"GET /" + b"a" * 86 + b" HTTP/1.1"  # 100 bytes
    field = b"A: " + b"b" * 95  # 98 bytes, 100 with its CRLF
    head = line + b"\r\n" + field + b"\r\n" + field + b"\r\n\r\n"
    assert assertSame(head, True, (100, 200, 2))
    assert not assertSame(head, True, (99, 200, 2))  # the request line
    assert not assertSame(head, True, (100, 199, 2))  # the header block
    assert not assertSame(head, True, (100, 200, 1))  # the field count
    short = b"GET / HTTP/1.1\r\n" + field + b"\r\n\r\n"
    assert assertSame(short, True, (98, 100, 1))
    assert not assertSame(short, True, (97, 100, 1))  # the header line
    for limits in [(-1, 0, 0), (100, -1, 0), (100, 0, -1)]:
        assertSame(b"GET / HTTP/1.1\r\n\r\n", True, limits)


@requiresParseHead
def test_cParseHeadLeavesOddInputToPython() -> None:
    """Not bytes, or limits that are not ints fitting a C size: the Python code decides."""
    data = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"
    assert cParseHead(data, True, *DEFAULT_LIMITS) is not None
    assert cParseHead(bytearray(data), True, *DEFAULT_LIMITS) is None
    assert cParseHead(memoryview(data), True, *DEFAULT_LIMITS) is None
    assert cParseHead(data, True, 8192.0, 16384, 100) is None
    assert cParseHead(data, True, 8192, 2**100, 100) is None
    assert cParseHead(data, True, 8192, 16384, -(2**100)) is None
    head = HeadParser(True, 8192, 2**100, 100).feed(data)
    assert isinstance(head, RequestHead) and head.headers.get("host") == "h"
    with pytest.raises(TypeError):
        cParseHead(data, True, 8192, 16384)
    with pytest.raises(TypeError):
        cParseHead(data, True, 8192, 16384, 100, 1)


def test_parseHeadSelection() -> None:
    """The C twin is used unless TWISTED_WS_NO_EXTENSION says not to, as for masking."""
    from twisted_ws.core import http

    for value in ("1", "yes"):
        assert http._selectParseHead({"TWISTED_WS_NO_EXTENSION": value}) is None
    for environ in ({}, {"TWISTED_WS_NO_EXTENSION": ""}, {"TWISTED_WS_NO_EXTENSION": "0"}):
        assert http._selectParseHead(environ) is cParseHead
    from twisted_ws.core.masking import HAVE_SPEEDUPS

    assert (HeadParser._parseHead is not None) == (HAVE_SPEEDUPS and cParseHead is not None)


def test_badLineAfterBlankLedValuesFailsFast() -> None:
    """
    The pure-Python fast path refuses a head whose last line is bad, after
    many lines whose values start with blanks, at once: when the line
    pattern let blanks go to either of two parts, the repeated pattern
    retried every split of every earlier line (10 such lines took 44 s, 40
    would never end).  SIGALRM turns a regression into a failure, not a
    hang; the parse itself takes microseconds.
    """
    alarm = getattr(signal, "SIGALRM", None)
    if alarm is None:
        pytest.skip("no SIGALRM on this platform")
    data = b"GET / HTTP/1.1\r\n" + b"A:      x\r\n" * 40 + b"B:\x01\r\n\r\n"

    def hung(signum: int, frame: object) -> None:
        raise AssertionError("the head parser backtracked exponentially")

    previous = signal.signal(alarm, hung)
    signal.alarm(10)
    try:
        assert HeadParser(True)._parseWhole(data) is None
        with pytest.raises(HandshakeError) as e:
            HeadParser(True).feed(data)
        assert e.value.status == 400
    finally:
        signal.alarm(0)
        signal.signal(alarm, previous)
