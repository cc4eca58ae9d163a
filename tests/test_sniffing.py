"""
The I/O-free classifier that routes a shared port's connections.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from twisted_ws.core.sniffing import (
    HTTP_METHODS,
    Sniffed,
    classify,
    classifyHTTP,
    classifyTLS,
    headEnd,
    wantsWebSocket,
)

HTTP, NOT_HTTP, NEED_MORE, TLS = Sniffed.HTTP, Sniffed.NOT_HTTP, Sniffed.NEED_MORE, Sniffed.TLS

# A real ClientHello record header (TLS 1.0 record version, 512 bytes, type 1).
CLIENT_HELLO = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"


@pytest.mark.parametrize(
    "data, verdict",
    [
        (b"", NEED_MORE),
        (b"G", NEED_MORE),
        (b"GET", NEED_MORE),
        (b"GET ", NEED_MORE),
        (b"GET /chat HTTP/1.", NEED_MORE),
        (b"GET /chat HTTP/1.1\r", NEED_MORE),
        (b"GET /chat HTTP/1.1\r\n", HTTP),
        (b"GET /chat HTTP/1.1\n", HTTP),
        (b"GET /chat HTTP/1.1\r\nHost: x\r\n\r\n", HTTP),
        (b"OPTIONS * HTTP/1.1\r\n", HTTP),
        (b"POST http://example.com/x?y=1 HTTP/1.0\r\n", HTTP),
        # A private protocol's own GET command is not HTTP.
        (b"GET key\r\n", NOT_HTTP),
        (b"GET key value\r\n", NOT_HTTP),
        (b"GET /chat HTTP/1.1 extra\r\n", NOT_HTTP),
        (b"GET /chat HTTP/1.1\rX", NOT_HTTP),
        (b"GET /chat HTTP/x.1\r\n", NOT_HTTP),
        (b"get /chat HTTP/1.1\r\n", NOT_HTTP),  # methods are case-sensitive
        (b"GETX / HTTP/1.1\r\n", NOT_HTTP),
        (b"GET  / HTTP/1.1\r\n", NOT_HTTP),
        (b"GET /\x00 HTTP/1.1\r\n", NOT_HTTP),
        (b"SET key value\r\n", NOT_HTTP),
        (b"S", NOT_HTTP),
        (b"\x00\x01", NOT_HTTP),
        (b"HELO example.com\r\n", NOT_HTTP),
        (b"PRI * HTTP/2.0\r\n", NOT_HTTP),
        (CLIENT_HELLO, NOT_HTTP),  # without detectTLS, TLS is just "other"
    ],
)
def test_classifyHTTP(data, verdict):
    assert classifyHTTP(data) is verdict


def test_longUndecidedLineIsNotHTTP():
    assert classifyHTTP(b"GET /" + b"a" * 100, maxLineLength=200) is NEED_MORE
    assert classifyHTTP(b"GET /" + b"a" * 300, maxLineLength=200) is NOT_HTTP
    # Right at the limit a complete line is still HTTP.
    line = b"GET /" + b"a" * (200 - len(b"GET / HTTP/1.1") - 1) + b" HTTP/1.1"
    assert len(line) < 200
    assert classifyHTTP(line + b"\r\n", maxLineLength=200) is HTTP


def test_customMethods():
    assert classifyHTTP(b"GET / HTTP/1.1\r\n", methods=[b"PROPFIND"]) is NOT_HTTP
    assert classifyHTTP(b"PROPFIND / HTTP/1.1\r\n", methods=[b"PROPFIND"]) is HTTP
    assert classifyHTTP(b"PROP", methods=[b"PROPFIND"]) is NEED_MORE


@pytest.mark.parametrize(
    "data, verdict",
    [
        (b"", NEED_MORE),
        (b"\x16", NEED_MORE),
        (b"\x16\x03\x01\x02", NEED_MORE),
        (CLIENT_HELLO[:6], TLS),
        (CLIENT_HELLO, TLS),
        (b"\x16\x03\x03\x00\x30\x01", TLS),
        (b"\x16\x03\x05\x00\x30\x01", NOT_HTTP),  # no such TLS version
        (b"\x16\x02", NOT_HTTP),  # SSLv2-era major version
        (b"\x17\x03\x03\x00\x30\x01", NOT_HTTP),  # application data, not a hello
        (b"\x16\x03\x01\x00\x00\x01", NOT_HTTP),  # empty record
        (b"\x16\x03\x01\xff\xff\x01", NOT_HTTP),  # oversized record
        (b"\x16\x03\x01\x02\x00\x02", NOT_HTTP),  # ServerHello
        (b"GET / HTTP/1.1\r\n", NOT_HTTP),
    ],
)
def test_classifyTLS(data, verdict):
    assert classifyTLS(data) is verdict


def test_classifyCombines():
    assert classify(CLIENT_HELLO, detectTLS=True) is TLS
    assert classify(b"\x16", detectTLS=True) is NEED_MORE
    assert classify(b"\x16\x03\x09", detectTLS=True) is NOT_HTTP
    assert classify(b"GET / HTTP/1.1\r\n", detectTLS=True) is HTTP
    assert classify(b"G", detectTLS=True) is NEED_MORE
    assert classify(CLIENT_HELLO) is NOT_HTTP


def test_headEndAndUpgrade():
    head = b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n\r\n"
    assert headEnd(head + b"\x81\x00") == len(head)
    assert headEnd(head[:-2]) == -1
    assert headEnd(b"GET / HTTP/1.1\nHost: x\n\nrest") == len(b"GET / HTTP/1.1\nHost: x\n\n")
    assert wantsWebSocket(head)
    assert wantsWebSocket(b"GET / HTTP/1.1\r\nupgrade : h2c, websocket\r\n\r\n")
    assert not wantsWebSocket(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert not wantsWebSocket(b"GET / HTTP/1.1\r\nUpgrade: h2c\r\n\r\n")
    assert not wantsWebSocket(b"GET / HTTP/1.1\r\nX-Upgrade: websocket\r\n\r\n")
    # The request line itself is never taken for a header.
    assert not wantsWebSocket(b"GET /Upgrade:websocket HTTP/1.1\r\n\r\n")


_targets = st.one_of(
    st.just(b"*"),
    st.binary(min_size=0, max_size=60).map(
        lambda b: b"/" + bytes(0x21 + (c % 94) for c in b)
    ),
)
_requestLines = st.builds(
    lambda method, target, major, minor, lf: method
    + b" "
    + target
    + b" HTTP/"
    + str(major).encode()
    + b"."
    + str(minor).encode()
    + (b"\n" if lf else b"\r\n"),
    st.sampled_from(sorted(HTTP_METHODS)),
    _targets,
    st.integers(0, 9),
    st.integers(0, 9),
    st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(_requestLines, st.binary(max_size=40))
def test_prefixesOfARequestLineAreNeverNotHTTP(line, after):
    for i in range(len(line)):
        assert classifyHTTP(line[:i]) is NEED_MORE, line[:i]
        assert classify(line[:i], detectTLS=True) is NEED_MORE, line[:i]
    assert classifyHTTP(line) is HTTP
    assert classifyHTTP(line + after) is HTTP
    assert classify(line + after, detectTLS=True) is HTTP


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_anyBytesGetAVerdictAndExtendingKeepsADecision(data):
    # Whatever arrives, the verdict is one of the three, and once decided
    # more bytes never change it (routing happens on the first decision).
    verdict = classifyHTTP(data, maxLineLength=100)
    assert verdict in (HTTP, NOT_HTTP, NEED_MORE)
    if verdict is not NEED_MORE:
        assert classifyHTTP(data + b"more\r\n", maxLineLength=100) is verdict
    if len(data) > 120:
        assert verdict is not NEED_MORE
