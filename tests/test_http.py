"""Tests for twisted_ws.core.http: strict, bounded, incremental head parsing."""

from __future__ import annotations

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
