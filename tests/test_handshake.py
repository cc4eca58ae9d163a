"""Tests for the RFC 6455 section 4 opening handshake (both roles)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings, strategies as st

from twisted_ws.core.acceptance import Accept, Reject
from twisted_ws.core.deflate import (
    ClientPerMessageDeflate,
    DeflateExtension,
    PerMessageDeflate,
)
from twisted_ws.core.errors import (
    ClientHandshakeError,
    HandshakeClosed,
    HandshakeError,
    InvalidServerResponse,
    WebSocketError,
)
from twisted_ws.core.handshake import (
    GUID,
    Accepted,
    ClientHandshake,
    ClientState,
    Failed,
    HandshakeRequest,
    Rejected,
    ServerHandshake,
    ServerState,
    buildAcceptResponse,
    buildClientRequest,
    buildRejectResponse,
    checkNoBody,
    computeAcceptKey,
    generateKey,
    isUpgradeAttempt,
    selectSubprotocol,
    validateRequest,
    validateResponse,
)
from twisted_ws.core.handshake.body import BodyFraming, BodyReader
from twisted_ws.core.handshake.extendedconnect import (
    extendedConnectResponse,
    validateExtendedConnect,
)
from twisted_ws.core.handshake.keys import isValidKey
from twisted_ws.core.handshake.negotiation import negotiate
from twisted_ws.core.http import Headers, HeadParser, RequestHead, ResponseHead
from twisted_ws.core.options import WebSocketOptions

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

BASE_HEADERS = [
    ("Host", "server.example.com"),
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Key", KEY),
    ("Origin", "http://example.com"),
    ("Sec-WebSocket-Protocol", "chat, superchat"),
    ("Sec-WebSocket-Version", "13"),
]


def makeHead(
    headers: list[tuple[str, str]] | None = None,
    method: str = "GET",
    target: str = "/chat?x=1",
    version: tuple[int, int] = (1, 1),
    drop: tuple[str, ...] = (),
    replace: dict[str, str] | None = None,
    add: list[tuple[str, str]] = (),  # type: ignore[assignment]
) -> RequestHead:
    pairs = list(BASE_HEADERS if headers is None else headers)
    replace = replace or {}
    result = []
    for name, value in pairs:
        if name.lower() in {d.lower() for d in drop}:
            continue
        result.append((name, replace.get(name, value)))
    result += list(add)
    return RequestHead(method, target, version, Headers(result))


def refusal(head: RequestHead) -> HandshakeError:
    with pytest.raises(HandshakeError) as info:
        validateRequest(head)
    return info.value


def parseResponse(data: bytes) -> tuple[ResponseHead, bytes]:
    parser = HeadParser(isRequest=False)
    head = parser.feed(data)
    assert isinstance(head, ResponseHead)
    return head, parser.rest


# Keys


def test_rfcExampleAcceptKey() -> None:
    assert GUID == "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
    assert computeAcceptKey(KEY) == ACCEPT


@settings(max_examples=2000, deadline=None)
@given(
    st.one_of(
        st.binary(min_size=14, max_size=18).map(lambda b: base64.b64encode(b).decode()),
        st.text(alphabet="AQgw+/=-_ \n\xe9", min_size=20, max_size=26),
    )
)
def test_keyCheckIsBase64Of16Bytes(key: str) -> None:
    """isValidKey accepts exactly what strict base64 decodes to 16 bytes."""
    try:
        expected = len(base64.b64decode(key, validate=True)) == 16
    except ValueError:  # binascii.Error too
        expected = False
    assert isValidKey(key) is expected


def test_generateKey() -> None:
    key = generateKey()
    assert len(base64.b64decode(key, validate=True)) == 16
    assert generateKey() != key


# Server: validation


def test_validRequest() -> None:
    request = validateRequest(makeHead())
    assert isinstance(request, HandshakeRequest)
    assert request.method == "GET"
    assert request.target == "/chat?x=1"
    assert request.path == "/chat"
    assert request.query == "x=1"
    assert request.version == (1, 1)
    assert request.host == "server.example.com"
    assert request.origin == "http://example.com"
    assert request.key == KEY
    assert request.protocols == ["chat", "superchat"]
    assert request.extensions == []
    assert request.peer is None and request.local is None and request.secure is False
    assert request.header("sec-websocket-version") == "13"
    assert request.header("missing") is None


def test_validRequestFromWire() -> None:
    raw = buildClientRequest("h:8080", "/a", KEY, protocols=["p"], extensionsHeader="x; y=1")
    head = HeadParser(isRequest=True).feed(raw)
    assert isinstance(head, RequestHead)
    request = validateRequest(head)
    assert request.host == "h:8080"
    assert request.origin is None
    assert request.protocols == ["p"]
    assert request.extensions == [("x", [("y", "1")])]


def test_caseInsensitiveHeaders() -> None:
    headers = [(n.upper(), v) for n, v in BASE_HEADERS]
    head = makeHead(headers, replace={"UPGRADE": "WebSocket", "CONNECTION": "UPGRADE"})
    assert validateRequest(head).key == KEY


def test_connectionKeepAliveUpgrade() -> None:
    validateRequest(makeHead(replace={"Connection": "keep-alive, Upgrade"}))


def test_connectionSplitOverFields() -> None:
    head = makeHead(drop=("Connection",), add=[("Connection", "keep-alive"), ("Connection", "upgrade")])
    validateRequest(head)


def test_upgradeList() -> None:
    validateRequest(makeHead(replace={"Upgrade": "foo/2, websocket"}))


def test_postRefused() -> None:
    error = refusal(makeHead(method="POST"))
    assert error.status == 405
    assert ("Allow", "GET") in error.headers


def test_http10Refused() -> None:
    error = refusal(makeHead(version=(1, 0)))
    assert error.status == 400
    assert "HTTP/1.0" in error.reason


def test_http2StartLineAccepted() -> None:
    # Version >= 1.1 is all RFC 6455 asks; the start line already parsed.
    validateRequest(makeHead(version=(2, 0)))


def test_missingHost() -> None:
    error = refusal(makeHead(drop=("Host",)))
    assert error.status == 400
    assert "Host" in error.reason


def test_duplicateHost() -> None:
    assert refusal(makeHead(add=[("host", "other")])).status == 400


def test_emptyHost() -> None:
    assert refusal(makeHead(replace={"Host": ""})).status == 400


def test_plainGetGets426() -> None:
    head = makeHead(
        drop=("Upgrade", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Version")
    )
    error = refusal(head)
    assert error.status == 426
    headers = dict(error.headers)
    assert headers["Upgrade"] == "websocket"
    assert headers["Connection"] == "Upgrade"
    assert headers["Sec-WebSocket-Version"] == "13"


def test_wrongUpgrade() -> None:
    error = refusal(makeHead(replace={"Upgrade": "h2c"}))
    assert error.status == 400
    assert "Upgrade" in error.reason


def test_wrongConnection() -> None:
    error = refusal(makeHead(replace={"Connection": "keep-alive"}))
    assert error.status == 400
    assert "Connection" in error.reason


def test_missingConnection() -> None:
    assert refusal(makeHead(drop=("Connection",))).status == 400


@pytest.mark.parametrize("version", ["8", "12", "13, 8", "", " 14"])
def test_wrongVersion(version: str) -> None:
    error = refusal(makeHead(replace={"Sec-WebSocket-Version": version}))
    assert error.status == 426
    assert ("Sec-WebSocket-Version", "13") in error.headers


def test_missingVersion() -> None:
    error = refusal(makeHead(drop=("Sec-WebSocket-Version",)))
    assert error.status == 426
    assert ("Sec-WebSocket-Version", "13") in error.headers


def test_duplicateVersion() -> None:
    assert refusal(makeHead(add=[("Sec-WebSocket-Version", "13")])).status == 426


@pytest.mark.parametrize(
    "key",
    [
        "",
        "not base64!",
        base64.b64encode(b"x" * 15).decode(),
        base64.b64encode(b"x" * 17).decode(),
        "dGhlIHNhbXBsZSBub25jZQ",  # padding missing
        "dGhlIHNhbXBsZSBub25jZQ==x",
        "dGhlIHNhbXBs ZSBub25jZQ==",
        "dGhlIHNhbXBsZSBub25jZQ\u00e9=",
    ],
)
def test_badKey(key: str) -> None:
    error = refusal(makeHead(replace={"Sec-WebSocket-Key": key}))
    assert error.status == 400
    assert "Sec-WebSocket-Key" in error.reason


def test_missingKey() -> None:
    assert refusal(makeHead(drop=("Sec-WebSocket-Key",))).status == 400


def test_duplicateKey() -> None:
    error = refusal(makeHead(add=[("Sec-WebSocket-Key", KEY)]))
    assert error.status == 400


def test_duplicateOrigin() -> None:
    assert refusal(makeHead(add=[("Origin", "http://evil")])).status == 400


def test_noOrigin() -> None:
    assert validateRequest(makeHead(drop=("Origin",))).origin is None


def test_protocolsAcrossFields() -> None:
    head = makeHead(add=[("sec-websocket-protocol", "v2,, v3")])
    assert validateRequest(head).protocols == ["chat", "superchat", "v2", "v3"]


@pytest.mark.parametrize("value", ["chat, sup/er", "a b", 'x"y'])
def test_badProtocolToken(value: str) -> None:
    assert refusal(makeHead(replace={"Sec-WebSocket-Protocol": value})).status == 400


def test_extensionsParsed() -> None:
    head = makeHead(add=[("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits, x-foo")])
    assert validateRequest(head).extensions == [
        ("permessage-deflate", [("client_max_window_bits", None)]),
        ("x-foo", []),
    ]


def test_malformedExtensions() -> None:
    head = makeHead(add=[("Sec-WebSocket-Extensions", "permessage-deflate; =")])
    assert refusal(head).status == 400


def test_targetMustBePath() -> None:
    assert refusal(makeHead(target="*")).status == 400
    assert refusal(makeHead(target="ftp://h/chat")).status == 400


def test_absoluteFormTargetIsAccepted() -> None:
    # RFC 7230 section 5.3.2: a server must accept the absolute form.
    request = validateRequest(makeHead(target="http://h/chat?room=1"))
    assert (request.path, request.query) == ("/chat", "room=1")


# Subprotocol selection


def test_selectSubprotocolServerPreference() -> None:
    assert selectSubprotocol(["a", "b", "c"], ["c", "b"]) == "c"
    assert selectSubprotocol(["b", "c"], ["x", "b", "c"]) == "b"


def test_selectSubprotocolNone() -> None:
    assert selectSubprotocol(["a"], ["b"]) is None
    assert selectSubprotocol([], ["b"]) is None
    assert selectSubprotocol(["a"], []) is None


def test_selectSubprotocolCaseSensitive() -> None:
    assert selectSubprotocol(["Chat"], ["chat"]) is None


# Server: responses


def test_acceptResponse() -> None:
    request = validateRequest(makeHead())
    raw = buildAcceptResponse(
        request, subprotocol="chat", extensionsHeader="x-foo", extraHeaders=[("Set-Cookie", "a=b")]
    )
    assert raw.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    head, rest = parseResponse(raw)
    assert rest == b""
    assert head.headers.get("Upgrade") == "websocket"
    assert head.headers.get("Connection") == "Upgrade"
    assert head.headers.get("Sec-WebSocket-Accept") == ACCEPT
    assert head.headers.get("Sec-WebSocket-Protocol") == "chat"
    assert head.headers.get("Sec-WebSocket-Extensions") == "x-foo"
    assert head.headers.get("Set-Cookie") == "a=b"
    assert "Server" not in head.headers
    assert "Date" not in head.headers
    assert "Content-Length" not in head.headers


def test_acceptResponseMinimal() -> None:
    head, _ = parseResponse(buildAcceptResponse(validateRequest(makeHead())))
    assert "Sec-WebSocket-Protocol" not in head.headers
    assert "Sec-WebSocket-Extensions" not in head.headers


def test_acceptUnofferedSubprotocol() -> None:
    with pytest.raises(ValueError):
        buildAcceptResponse(validateRequest(makeHead()), subprotocol="other")


def test_acceptHeaderInjection() -> None:
    request = validateRequest(makeHead())
    with pytest.raises(ValueError):
        buildAcceptResponse(request, extraHeaders=[("X-A", "1\r\nX-Evil: 1")])
    with pytest.raises(ValueError):
        buildAcceptResponse(request, extensionsHeader="a\r\nX-Evil: 1")


def test_acceptReservedExtraHeader() -> None:
    request = validateRequest(makeHead())
    with pytest.raises(ValueError):
        buildAcceptResponse(request, extraHeaders=[("sec-websocket-accept", "x")])


def test_rejectResponse() -> None:
    raw = buildRejectResponse(426, "need websocket", [("Sec-WebSocket-Version", "13")])
    head, body = parseResponse(raw)
    assert head.status == 426
    assert head.reasonPhrase == "Upgrade Required"
    assert head.headers.get("Content-Type") == "text/plain; charset=utf-8"
    assert head.headers.get("Connection") == "close"
    assert head.headers.get("Sec-WebSocket-Version") == "13"
    assert head.headers.get("Content-Length") == str(len(body))
    assert body == b"need websocket\n"
    assert "Server" not in head.headers


def test_rejectResponseBody() -> None:
    _, body = parseResponse(buildRejectResponse(403, "no", body="caf\u00e9"))
    assert body == "caf\u00e9".encode()
    _, body = parseResponse(buildRejectResponse(403, "no", body=b"\x00raw"))
    assert body == b"\x00raw"


def test_rejectReasonWithNewlineStaysInBody() -> None:
    head, body = parseResponse(buildRejectResponse(400, "bad\r\nX-Evil: 1"))
    assert "X-Evil" not in head.headers
    assert body == b"bad\r\nX-Evil: 1\n"


def test_rejectFromHandshakeError() -> None:
    error = refusal(makeHead(method="POST"))
    head, body = parseResponse(buildRejectResponse(error.status, error.reason, error.headers))
    assert head.status == 405
    assert head.headers.get("Allow") == "GET"
    assert body.decode().rstrip("\n") == error.reason


def test_rejectHeaderInjection() -> None:
    with pytest.raises(ValueError):
        buildRejectResponse(400, "x", [("X-A", "1\nX-Evil: 1")])


# Client: request


def test_clientRequest() -> None:
    raw = buildClientRequest(
        "example.com",
        "/chat?a=1",
        KEY,
        origin="http://example.com",
        protocols=["chat", "superchat"],
        extensionsHeader="permessage-deflate",
        extraHeaders=[("Authorization", "Bearer x")],
    )
    assert raw.startswith(b"GET /chat?a=1 HTTP/1.1\r\n")
    parser = HeadParser(isRequest=True)
    head = parser.feed(raw)
    assert isinstance(head, RequestHead)
    h = head.headers
    assert h.get("Host") == "example.com"
    assert h.get("Upgrade") == "websocket"
    assert h.get("Connection") == "Upgrade"
    assert h.get("Sec-WebSocket-Key") == KEY
    assert h.get("Sec-WebSocket-Version") == "13"
    assert h.get("Origin") == "http://example.com"
    assert h.getCommaList("Sec-WebSocket-Protocol") == ["chat", "superchat"]
    assert h.get("Sec-WebSocket-Extensions") == "permessage-deflate"
    assert h.get("Authorization") == "Bearer x"


def test_clientRequestMinimal() -> None:
    head = HeadParser(isRequest=True).feed(buildClientRequest("h", "/", KEY))
    assert isinstance(head, RequestHead)
    assert "Origin" not in head.headers
    assert "Sec-WebSocket-Protocol" not in head.headers


@pytest.mark.parametrize("protocols", [["a b"], ["a,b"], [""]])
def test_clientRequestBadProtocol(protocols: list[str]) -> None:
    with pytest.raises(ValueError):
        buildClientRequest("h", "/", KEY, protocols=protocols)


def test_clientRequestInjection() -> None:
    with pytest.raises(ValueError):
        buildClientRequest("h\r\nX-Evil: 1", "/", KEY)
    with pytest.raises(ValueError):
        buildClientRequest("h", "/ HTTP/1.1\r\nX: y", KEY)
    with pytest.raises(ValueError):
        buildClientRequest("h", "chat", KEY)
    with pytest.raises(ValueError):
        buildClientRequest("h", "/", KEY, extraHeaders=[("Host", "x")])


# Client: response validation


def goodResponse(**extra: str) -> ResponseHead:
    headers = [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", ACCEPT)]
    headers += list(extra.items())
    return ResponseHead((1, 1), 101, "Switching Protocols", Headers(headers))


def test_serverResponseRoundTrip() -> None:
    request = validateRequest(makeHead(add=[("Sec-WebSocket-Extensions", "x-foo; a=1")]))
    raw = buildAcceptResponse(request, subprotocol="superchat", extensionsHeader="x-foo; a=1")
    head, _ = parseResponse(raw)
    response = validateResponse(head, KEY, ["chat", "superchat"], ["X-Foo"])
    assert response.status == 101
    assert response.subprotocol == "superchat"
    assert response.extensions == [("x-foo", [("a", "1")])]
    assert response.headers is head.headers


def test_responseNoSubprotocol() -> None:
    response = validateResponse(goodResponse(), KEY, ["chat"], [])
    assert response.subprotocol is None
    assert response.extensions == []


def test_responseNon101() -> None:
    head = ResponseHead((1, 1), 403, "Forbidden", Headers())
    with pytest.raises(HandshakeError) as info:
        validateResponse(head, KEY, [], [])
    assert info.value.status == 403
    assert info.value.reason == "server refused the upgrade: 403 Forbidden"


def test_responseWrongAccept() -> None:
    head = goodResponse()
    with pytest.raises(HandshakeError) as info:
        validateResponse(head, generateKey(), [], [])
    assert info.value.status == 0
    assert "Accept" in info.value.reason


def test_responseDuplicateAccept() -> None:
    head = goodResponse()
    head.headers.add("Sec-WebSocket-Accept", ACCEPT)
    with pytest.raises(HandshakeError):
        validateResponse(head, KEY, [], [])


@pytest.mark.parametrize("drop", ["Upgrade", "Connection", "Sec-WebSocket-Accept"])
def test_responseMissingHeader(drop: str) -> None:
    headers = Headers([(n, v) for n, v in goodResponse().headers if n != drop])
    head = ResponseHead((1, 1), 101, "Switching Protocols", headers)
    with pytest.raises(HandshakeError) as info:
        validateResponse(head, KEY, [], [])
    assert info.value.status == 0


def test_responseHttp10() -> None:
    head = goodResponse()
    head.version = (1, 0)
    with pytest.raises(HandshakeError):
        validateResponse(head, KEY, [], [])


def test_responseCaseInsensitive() -> None:
    head = ResponseHead(
        (1, 1),
        101,
        "",
        Headers([("UPGRADE", "WebSocket"), ("connection", "keep-alive, upgrade"), ("sec-websocket-accept", ACCEPT)]),
    )
    validateResponse(head, KEY, [], [])


def test_responseUnrequestedSubprotocol() -> None:
    with pytest.raises(HandshakeError) as info:
        validateResponse(goodResponse(**{"Sec-WebSocket-Protocol": "other"}), KEY, ["chat"], [])
    assert info.value.status == 0


def test_responseSubprotocolWhenNoneOffered() -> None:
    with pytest.raises(HandshakeError):
        validateResponse(goodResponse(**{"Sec-WebSocket-Protocol": "chat"}), KEY, [], [])


@pytest.mark.parametrize("value", ["chat, superchat", "", "Chat"])
def test_responseBadSubprotocolValue(value: str) -> None:
    with pytest.raises(HandshakeError):
        validateResponse(goodResponse(**{"Sec-WebSocket-Protocol": value}), KEY, ["chat", "superchat"], [])


def test_responseUnrequestedExtension() -> None:
    with pytest.raises(HandshakeError) as info:
        validateResponse(goodResponse(**{"Sec-WebSocket-Extensions": "x-bar"}), KEY, [], ["x-foo"])
    assert info.value.status == 0


def test_responseMalformedExtension() -> None:
    with pytest.raises(HandshakeError):
        validateResponse(goodResponse(**{"Sec-WebSocket-Extensions": "x-foo;"}), KEY, [], ["x-foo"])


def test_responseExtensionCaseInsensitive() -> None:
    response = validateResponse(goodResponse(**{"Sec-WebSocket-Extensions": "X-FOO"}), KEY, [], ["x-foo"])
    assert response.extensions == [("X-FOO", [])]


# The I/O-free handshake objects (twisted_ws.core.handshake) and what they
# share with every front end: negotiation, the upgrade check, HTTP/2.

WIRE_REQUEST = (
    b"GET /chat?x=1 HTTP/1.1\r\n"
    b"Host: server.example.com\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: " + KEY.encode() + b"\r\n"
    b"Origin: http://example.com\r\n"
    b"Sec-WebSocket-Protocol: chat, superchat\r\n"
    b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"\r\n"
)
FRAME = b"\x81\x82abcd\x00\x00"


def serverHandshake(**kw: object) -> ServerHandshake:
    kw.setdefault("subprotocols", ["superchat", "chat"])
    kw.setdefault("extensions", [PerMessageDeflate()])
    return ServerHandshake(**kw)  # type: ignore[arg-type]


def feedInPieces(handshake: ServerHandshake | ClientHandshake, data: bytes, cuts: list[int]) -> list[object]:
    """Feed C{data} cut at C{cuts}; return every non-None result."""
    results = []
    bounds = [0, *sorted(set(c for c in cuts if 0 < c < len(data))), len(data)]
    for start, end in zip(bounds, bounds[1:]):
        result = handshake.receiveData(data[start:end])
        if result is not None:
            results.append(result)
    return results


# ServerHandshake


def test_serverHandshakeAccepts() -> None:
    handshake = serverHandshake()
    assert handshake.state is ServerState.READING
    request = handshake.receiveData(WIRE_REQUEST + FRAME)
    assert isinstance(request, HandshakeRequest)
    assert handshake.state is ServerState.DECIDING
    assert request.httpVersion == "1.1"
    assert request.protocols == ["chat", "superchat"]
    accepted = handshake.accept()
    assert handshake.state is ServerState.ACCEPTED
    assert isinstance(accepted, Accepted)
    assert accepted.request is request
    # The server's preference wins among the offered subprotocols.
    assert accepted.subprotocol == "superchat"
    assert len(accepted.extensions) == 1 and isinstance(accepted.extensions[0], DeflateExtension)
    assert accepted.trailingData == FRAME
    head, rest = parseResponse(accepted.data)
    assert rest == b""
    assert head.status == 101
    assert head.headers.get("Sec-WebSocket-Accept") == ACCEPT
    assert head.headers.get("Sec-WebSocket-Protocol") == "superchat"
    answer = head.headers.get("Sec-WebSocket-Extensions")
    assert answer is not None and answer.startswith("permessage-deflate")
    # Without the HTTP/1.1-only headers, for other carriers (HTTP/2).
    assert accepted.responseHeaders == (
        ("Sec-WebSocket-Protocol", "superchat"),
        ("Sec-WebSocket-Extensions", answer),
    )


def test_serverHandshakeAcceptSameBytesAsBuildAcceptResponse() -> None:
    handshake = ServerHandshake(subprotocols=["chat"])
    request = handshake.receiveData(WIRE_REQUEST)
    assert isinstance(request, HandshakeRequest)
    accepted = handshake.accept(Accept(headers=[("Set-Cookie", "a=b")]), [("X-Extra", "1")])
    assert accepted.data == buildAcceptResponse(
        request, "chat", None, [("Set-Cookie", "a=b"), ("X-Extra", "1")]
    )
    assert accepted.extensions == ()
    assert accepted.trailingData == b""


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(WIRE_REQUEST) + len(FRAME) - 1), max_size=40))
def test_serverHandshakeInPiecesSameAsWhole(cuts: list[int]) -> None:
    handshake = serverHandshake()
    results = feedInPieces(handshake, WIRE_REQUEST + FRAME, cuts)
    assert len(results) == 1 and isinstance(results[0], HandshakeRequest)
    accepted = handshake.accept()
    whole = serverHandshake()
    whole.receiveData(WIRE_REQUEST + FRAME)
    expected = whole.accept()
    assert accepted.data == expected.data
    # Bytes that arrived while deciding belong to the WebSocket too.
    assert accepted.trailingData == FRAME


def test_serverHandshakeKeepsBytesWhileDeciding() -> None:
    handshake = serverHandshake()
    handshake.receiveData(WIRE_REQUEST + b"ab")
    assert handshake.receiveData(b"cd") is None
    assert handshake.accept().trailingData == b"abcd"


@pytest.mark.parametrize(
    "data, status",
    [
        (b"BREW /pot HTTP/1.1\r\n\r\n", 405),
        (b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", 426),
        (b"GET / HTTP/1.1\r\nHost h\r\n\r\n", 400),
        (b"GET /" + b"a" * 200 + b" HTTP/1.1\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\n" + b"X: 1\r\n" * 5 + b"\r\n", 431),
    ],
)
def test_serverHandshakeRefusesBadRequests(data: bytes, status: int) -> None:
    options = WebSocketOptions(maxRequestLineLength=100, maxHeaderCount=4)
    handshake = ServerHandshake(options)
    rejected = handshake.receiveData(data)
    assert isinstance(rejected, Rejected)
    assert handshake.state is ServerState.REJECTED
    assert rejected.status == status
    assert rejected.request is None
    assert isinstance(rejected.error, HandshakeError) and rejected.error.status == status
    head, body = parseResponse(rejected.data)
    assert head.status == status
    assert head.headers.get("Connection") == "close"
    assert body == rejected.body
    # Whatever follows a refusal is ignored.
    assert handshake.receiveData(b"more") is None


@pytest.mark.parametrize(
    "header",
    [("Content-Length", "5"), ("Transfer-Encoding", "chunked"), ("Content-Length", "00")],
)
def test_upgradeRequestWithBodyRefused(header: tuple[str, str]) -> None:
    # What follows the head is frames: a body would be read two ways.
    error = refusal(makeHead(add=[header]))
    assert error.status == 400
    assert "body" in error.reason
    handshake = ServerHandshake()
    data = WIRE_REQUEST[:-2] + f"{header[0]}: {header[1]}\r\n\r\n".encode()
    rejected = handshake.receiveData(data)
    assert isinstance(rejected, Rejected) and rejected.status == 400


def test_upgradeRequestWithContentLengthZeroAccepted() -> None:
    request = validateRequest(makeHead(add=[("Content-Length", "0")]))
    assert request.key == KEY
    checkNoBody(Headers([("Content-Length", "0")]))


def test_serverHandshakeReject() -> None:
    handshake = serverHandshake()
    request = handshake.receiveData(WIRE_REQUEST)
    error = Reject(401, "who are you?", headers=[("WWW-Authenticate", "Basic")], body="log in")
    rejected = handshake.reject(error)
    assert rejected.error is error
    assert rejected.request is request
    assert rejected.body == b"log in"
    assert rejected.headers == (("WWW-Authenticate", "Basic"),)
    assert rejected.data == buildRejectResponse(401, "who are you?", error.headers, "log in")
    with pytest.raises(RuntimeError):
        handshake.accept()
    with pytest.raises(RuntimeError):
        handshake.reject(HandshakeError(500, "again"))


def test_serverHandshakeRejectWhileReading() -> None:
    # A timeout arrives before the head is complete.
    handshake = serverHandshake()
    assert handshake.receiveData(WIRE_REQUEST[:10]) is None
    with pytest.raises(RuntimeError):
        handshake.accept()
    rejected = handshake.reject(HandshakeError(408, "opening handshake timed out"))
    assert rejected.status == 408 and rejected.body == b"opening handshake timed out\n"
    assert rejected.data.startswith(b"HTTP/1.1 408 Request Timeout\r\n")


@pytest.mark.parametrize(
    "decision",
    [Accept(subprotocol="nope"), Accept(headers=[("Upgrade", "x")]), Accept(headers=[("X", "a\r\nB: c")])],
)
def test_serverHandshakeInvalidAcceptKeepsDeciding(decision: Accept) -> None:
    handshake = serverHandshake()
    handshake.receiveData(WIRE_REQUEST)
    with pytest.raises(ValueError):
        handshake.accept(decision)
    # The glue then refuses with 500: the handshake still allows it.
    assert handshake.state is ServerState.DECIDING
    assert handshake.reject(HandshakeError(500, "Internal Server Error")).status == 500


def test_serverHandshakeBytesAfterAcceptAreNotItsOwn() -> None:
    handshake = serverHandshake()
    handshake.receiveData(WIRE_REQUEST)
    handshake.accept()
    with pytest.raises(RuntimeError):
        handshake.receiveData(FRAME)


def test_serverHandshakeFromRequest() -> None:
    # twisted.web parsed the head: the same negotiation, the same answer.
    request = validateRequest(HeadParser(isRequest=True).feed(WIRE_REQUEST))  # type: ignore[arg-type]
    handshake = ServerHandshake.fromRequest(
        request, ["superchat"], [PerMessageDeflate()], trailingData=FRAME
    )
    assert handshake.state is ServerState.DECIDING
    accepted = handshake.accept(None, [("Set-Cookie", "s=1")])
    streamed = serverHandshake()
    streamed.receiveData(WIRE_REQUEST)
    assert accepted.data == streamed.accept(None, [("Set-Cookie", "s=1")]).data
    assert accepted.trailingData == FRAME


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=8))
def test_serverHandshakeRandomBytesNeverRaise(chunks: list[bytes]) -> None:
    handshake = ServerHandshake(WebSocketOptions(maxRequestLineLength=64, maxHeaderBytes=128))
    for chunk in chunks:
        result = handshake.receiveData(chunk)
        assert result is None or isinstance(result, (HandshakeRequest, Rejected))
        if isinstance(result, Rejected):
            assert 400 <= result.status < 500 and result.data.startswith(b"HTTP/1.1 4")


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_serverHandshakeRandomBytesAfterValidStart(tail: bytes) -> None:
    handshake = ServerHandshake()
    result = handshake.receiveData(WIRE_REQUEST[:60] + tail)
    assert result is None or isinstance(result, (HandshakeRequest, Rejected))


# Negotiation, shared by every front end


def test_negotiateWithoutHTTP11Parts() -> None:
    request = validateRequest(
        makeHead(add=[("Sec-WebSocket-Extensions", "permessage-deflate")])
    )
    negotiated = negotiate(
        request, Accept(headers=[("Set-Cookie", "a=b")]), ["chat"], [PerMessageDeflate()]
    )
    assert negotiated.subprotocol == "chat"
    answer = negotiated.extensionsHeader
    assert answer is not None and answer.startswith("permessage-deflate")
    assert len(negotiated.extensions) == 1
    assert negotiated.headers == [
        ("Sec-WebSocket-Protocol", "chat"),
        ("Sec-WebSocket-Extensions", answer),
        ("Set-Cookie", "a=b"),
    ]


def test_negotiateExplicitAndNoSubprotocol() -> None:
    request = validateRequest(makeHead())
    assert negotiate(request, Accept(subprotocol="superchat"), ["chat"]).subprotocol == "superchat"
    assert negotiate(request, Accept(subprotocol=None), ["chat"]).subprotocol is None
    assert negotiate(request, None, ["other"]).headers == []


def test_negotiateRefusesInjection() -> None:
    request = validateRequest(makeHead())
    with pytest.raises(ValueError):
        negotiate(request, Accept(headers=[("X-A", "b\nc")]))
    with pytest.raises(ValueError):
        negotiate(request, None, extraHeaders=[("Sec-WebSocket-Accept", "x")])


@pytest.mark.parametrize(
    "headers, expected",
    [
        ([("Upgrade", "WebSocket")], True),
        ([("Upgrade", "h2c, websocket")], True),
        ([("Sec-WebSocket-Key", KEY)], True),
        ([("Sec-WebSocket-Version", "8")], True),
        ([("Upgrade", "h2c")], False),
        ([("Accept", "text/html")], False),
    ],
)
def test_isUpgradeAttempt(headers: list[tuple[str, str]], expected: bool) -> None:
    assert isUpgradeAttempt(Headers(headers)) is expected


# HTTP/2 (RFC 8441 extended CONNECT)

H2_FIELDS = [
    (b":method", b"CONNECT"),
    (b":protocol", b"websocket"),
    (b":scheme", b"https"),
    (b":path", b"/chat?room=1"),
    (b":authority", b"server.example.com"),
    (b"sec-websocket-version", b"13"),
    (b"origin", b"https://example.com"),
    (b"sec-websocket-protocol", b"chat, superchat"),
    (b"sec-websocket-extensions", b"permessage-deflate"),
]


def test_extendedConnectValid() -> None:
    request = validateExtendedConnect(H2_FIELDS)
    assert request.httpVersion == "2"
    assert request.version == (2, 0)
    assert request.method == "CONNECT"
    assert (request.target, request.path, request.query) == ("/chat?room=1", "/chat", "room=1")
    assert request.host == "server.example.com"
    assert request.origin == "https://example.com"
    assert request.key == ""
    assert request.protocols == ["chat", "superchat"]
    assert request.extensions == [("permessage-deflate", [])]
    assert ":path" not in request.headers and len(request.headers) == 4


def fields(drop: tuple[str, ...] = (), **replace: str) -> list[tuple[str, str]]:
    result = []
    for name, value in H2_FIELDS:
        text = name.decode()
        if text in drop:
            continue
        result.append((text, replace.get(text.strip(":").replace("-", "_"), value.decode())))
    return result


@pytest.mark.parametrize(
    "h2fields, status",
    [
        (fields(method="GET"), 405),
        (fields(drop=(":protocol",)), 400),
        (fields(protocol="h2c"), 400),
        (fields(drop=(":scheme",)), 400),
        (fields(drop=(":path",)), 400),
        (fields(drop=(":authority",)), 400),
        (fields(path="chat"), 400),
        (fields(sec_websocket_version="8"), 400),
        (fields(drop=("sec-websocket-version",)), 400),
        (fields() + [("connection", "upgrade")], 400),
        (fields() + [(":status", "200")], 400),
        (fields() + [(":path", "/other")], 400),
        ([("x", "1"), *fields()], 400),
        (fields(sec_websocket_protocol="a b"), 400),
    ],
)
def test_extendedConnectRefused(h2fields: list[tuple[str, str]], status: int) -> None:
    with pytest.raises(HandshakeError) as info:
        validateExtendedConnect(h2fields)
    assert info.value.status == status


def test_extendedConnectIgnoresKey() -> None:
    """
    RFC 8441 section 5: the key is "not used" over HTTP/2; HAProxy 2.6, which
    turns an HTTP/1.1 upgrade into an extended CONNECT, passes it along.
    """
    request = validateExtendedConnect(fields() + [("sec-websocket-key", KEY)])
    assert request.httpVersion == "2" and request.key == ""


def test_extendedConnectThroughServerHandshake() -> None:
    handshake = ServerHandshake.fromRequest(
        validateExtendedConnect(H2_FIELDS), ["chat"], [PerMessageDeflate()]
    )
    accepted = handshake.accept(Accept(headers=[("Set-Cookie", "a=b")]))
    # No 101, no accept hash: the h2 layer sends the header list.
    assert accepted.data == b""
    assert accepted.subprotocol == "chat"
    assert isinstance(accepted.extensions[0], DeflateExtension)
    answer = accepted.responseHeaders[1][1]
    assert answer.startswith("permessage-deflate")
    assert extendedConnectResponse(200, accepted.responseHeaders) == [
        (":status", "200"),
        ("sec-websocket-protocol", "chat"),
        ("sec-websocket-extensions", answer),
        ("set-cookie", "a=b"),
    ]


def test_extendedConnectRejected() -> None:
    handshake = ServerHandshake.fromRequest(validateExtendedConnect(H2_FIELDS))
    rejected = handshake.reject(Reject(403, "no"))
    assert rejected.data == b"" and rejected.body == b"no\n"
    assert extendedConnectResponse(rejected.status, rejected.headers) == [(":status", "403")]
    with pytest.raises(ValueError):
        extendedConnectResponse(101)
    with pytest.raises(ValueError):
        extendedConnectResponse(200, [("x", "a\r\nb")])


# ClientHandshake


def clientHandshake(**kw: object) -> ClientHandshake:
    kw.setdefault("subprotocols", ["chat", "superchat"])
    kw.setdefault("extensions", [ClientPerMessageDeflate()])
    kw.setdefault("key", KEY)
    return ClientHandshake("server.example.com", "/chat?x=1", **kw)  # type: ignore[arg-type]


def serverAnswer(client: ClientHandshake, **kw: object) -> bytes:
    server = serverHandshake(**kw)
    assert isinstance(server.receiveData(client.requestBytes), HandshakeRequest)
    return server.accept().data


def test_clientRequestBuiltOnce() -> None:
    client = clientHandshake(origin="http://example.com", headers=[("Cookie", "a=b")])
    assert client.state is ClientState.WAITING
    assert client.requestBytes == buildClientRequest(
        "server.example.com",
        "/chat?x=1",
        KEY,
        origin="http://example.com",
        protocols=["chat", "superchat"],
        extensionsHeader="permessage-deflate; client_max_window_bits",
        extraHeaders=[("Cookie", "a=b")],
    )
    # The request as built equals the request as a server reads it.
    parsed = validateRequest(HeadParser(isRequest=True).feed(client.requestBytes))  # type: ignore[arg-type]
    request = client.request
    for name in ("method", "target", "path", "query", "version", "host", "origin", "key",
                 "protocols", "extensions", "httpVersion"):
        assert getattr(request, name) == getattr(parsed, name), name
    assert list(request.headers) == list(parsed.headers)


def test_clientRequestFreshKeyAndErrors() -> None:
    a, b = ClientHandshake("h"), ClientHandshake("h")
    assert a.key != b.key and len(base64.b64decode(a.key)) == 16
    assert a.request.origin is None and a.request.target == "/"
    with pytest.raises(ValueError):
        ClientHandshake("h", "nopath")
    with pytest.raises(ValueError):
        ClientHandshake("h", subprotocols=["a b"])
    with pytest.raises(ValueError):
        ClientHandshake("h", headers=[("Sec-WebSocket-Key", KEY)])
    with pytest.raises(ValueError):
        ClientHandshake("h", headers=[("X", "a\r\nb")])


def test_clientAccepted() -> None:
    client = clientHandshake()
    answer = serverAnswer(client)
    outcome = client.receiveData(answer + FRAME)
    assert isinstance(outcome, Accepted)
    assert client.state is ClientState.ACCEPTED
    assert outcome.request is client.request
    assert outcome.subprotocol == "superchat"
    assert len(outcome.extensions) == 1 and isinstance(outcome.extensions[0], DeflateExtension)
    assert outcome.trailingData == FRAME
    assert outcome.data == b""
    assert outcome.response is not None and outcome.response.status == 101
    assert ("Sec-WebSocket-Accept", ACCEPT) in outcome.responseHeaders
    with pytest.raises(RuntimeError):
        client.receiveData(FRAME)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=250), max_size=30))
def test_clientAcceptedInPiecesSameAsWhole(cuts: list[int]) -> None:
    client = clientHandshake()
    answer = serverAnswer(client) + FRAME
    bounds = [0, *sorted(set(c for c in cuts if 0 < c < len(answer))), len(answer)]
    outcomes = []
    trailing = b""
    for start, end in zip(bounds, bounds[1:]):
        if outcomes:
            # Once open, the rest is the WebSocket's, not the handshake's.
            trailing += answer[start:end]
            continue
        outcome = client.receiveData(answer[start:end])
        if outcome is not None:
            outcomes.append(outcome)
            assert isinstance(outcome, Accepted)
            trailing = outcome.trailingData
    assert len(outcomes) == 1
    assert outcomes[0].subprotocol == "superchat"
    assert trailing == FRAME


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: wrong\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + ACCEPT.encode() + b"\r\nSec-WebSocket-Protocol: other\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + ACCEPT.encode() + b"\r\nSec-WebSocket-Extensions: x-other\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + ACCEPT.encode()
        + b"\r\nSec-WebSocket-Extensions: permessage-deflate; bogus\r\n\r\n",
        b"HTTP/1.0 101 Switching Protocols\r\n\r\n",
        b"HTTP/1.1 1011 Nope\r\n\r\n",
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b"HTTP/1.1 101 OK\r\nBad Header\r\n\r\n",
    ],
)
def test_clientInvalidAnswer(answer: bytes) -> None:
    client = clientHandshake()
    outcome = client.receiveData(answer)
    assert isinstance(outcome, Failed)
    assert client.state is ClientState.FAILED
    # Its own error type, not a HandshakeError with a made-up status.
    assert isinstance(outcome.error, InvalidServerResponse)
    assert isinstance(outcome.error, ClientHandshakeError) and isinstance(outcome.error, WebSocketError)
    assert not isinstance(outcome.error, HandshakeError)
    assert outcome.error.reason
    assert client.receiveData(b"more") is None
    assert client.connectionLost() is None


@pytest.mark.parametrize("received", [b"", b"HTTP/1.1 101 Switching"])
def test_clientClosedBeforeAnswer(received: bytes) -> None:
    client = clientHandshake()
    assert client.receiveData(received) is None
    outcome = client.connectionLost()
    assert isinstance(outcome, Failed) and isinstance(outcome.error, HandshakeClosed)
    assert "closed before" in str(outcome.error)
    assert client.connectionLost() is None


def test_clientRejectedWithContentLength() -> None:
    client = clientHandshake()
    head = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\nX-Why: origin\r\n\r\n"
    assert client.receiveData(head + b"no") is None
    assert client.state is ClientState.READING_BODY
    outcome = client.receiveData(b"pe!and more")
    assert isinstance(outcome, Rejected)
    assert client.state is ClientState.REJECTED
    assert (outcome.status, outcome.reason, outcome.body) == (403, "Forbidden", b"nope!")
    assert ("X-Why", "origin") in outcome.headers
    assert outcome.request is client.request and outcome.error is None
    assert client.receiveData(b"x") is None and client.connectionLost() is None


def test_clientRejectedWithoutBody() -> None:
    for head in (b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
                 b"HTTP/1.1 204 No Content\r\n\r\n", b"HTTP/1.1 100 Continue\r\n\r\n"):
        outcome = clientHandshake().receiveData(head)
        assert isinstance(outcome, Rejected) and outcome.body == b""


def test_clientRejectedUntilClose() -> None:
    client = clientHandshake()
    assert client.receiveData(b"HTTP/1.1 500 Oops\r\n\r\nsomething ") is None
    assert client.receiveData(b"broke") is None
    outcome = client.connectionLost()
    assert isinstance(outcome, Rejected)
    assert (outcome.status, outcome.reason, outcome.body) == (500, "Oops", b"something broke")


@pytest.mark.parametrize(
    "head",
    [b"HTTP/1.1 403 Forbidden\r\nContent-Length: 1000\r\n\r\n", b"HTTP/1.1 403 Forbidden\r\n\r\n",
     b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n3e8\r\n"],
)
def test_clientRejectionBodyCapped(head: bytes) -> None:
    client = clientHandshake(maxBodySize=10)
    outcome = client.receiveData(head + b"x" * 9)
    assert outcome is None
    outcome = client.receiveData(b"y" * 500)
    assert isinstance(outcome, Rejected) and outcome.body == b"x" * 9 + b"y"


CHUNKED_HEAD = b"HTTP/1.1 401 Unauthorized\r\nTransfer-Encoding: chunked\r\n\r\n"
CHUNKED_BODY = b"5;ext=1\r\nhello\r\n1\r\n \r\nA\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\n"


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(CHUNKED_HEAD + CHUNKED_BODY) - 1), max_size=30))
def test_clientChunkedRejectionSplitAnywhere(cuts: list[int]) -> None:
    client = clientHandshake()
    results = feedInPieces(client, CHUNKED_HEAD + CHUNKED_BODY, cuts)
    assert len(results) == 1 and isinstance(results[0], Rejected)
    assert results[0].body == b"hello 0123456789"
    assert results[0].status == 401


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=8), st.booleans())
def test_clientRandomBytesNeverRaise(chunks: list[bytes], withHead: bool) -> None:
    client = clientHandshake(maxBodySize=100)
    if withHead:
        chunks = [b"HTTP/1.1 403 X\r\nTransfer-Encoding: chunked\r\n\r\n", *chunks]
    outcomes = [client.receiveData(chunk) for chunk in chunks]
    outcomes.append(client.connectionLost())
    decided = [o for o in outcomes if o is not None]
    # Exactly one outcome, whatever the bytes, once the stream has ended.
    assert len(decided) == 1
    assert isinstance(decided[0], (Rejected, Failed, Accepted))


# The refusal's body


@pytest.mark.parametrize(
    "headers, framing",
    [
        ([("Transfer-Encoding", "gzip, chunked")], BodyFraming.CHUNKED),
        ([("Transfer-Encoding", "gzip")], BodyFraming.CLOSE),
        ([("Content-Length", "3"), ("Content-Length", "4")], BodyFraming.CLOSE),
        ([("Content-Length", "3, 3")], BodyFraming.LENGTH),
        ([("Content-Length", "-3")], BodyFraming.CLOSE),
        ([("Transfer-Encoding", "chunked"), ("Content-Length", "3")], BodyFraming.CHUNKED),
        ([], BodyFraming.CLOSE),
    ],
)
def test_bodyFraming(headers: list[tuple[str, str]], framing: BodyFraming) -> None:
    assert BodyReader(200, Headers(headers)).framing is framing
    assert BodyReader(304, Headers(headers)).framing is BodyFraming.NONE


@pytest.mark.parametrize(
    "data, body",
    [
        (b"3\r\nabc\r\nzz\r\n", b"abc"),  # not hex
        (b"3\r\nabcX\r\n", b"abc"),  # no CRLF after the data
        (b"11111111111111111\r\n", b""),  # more than 64 bits
        (b"3" * 5000, b""),  # an endless size line
    ],
)
def test_malformedChunkedBodyKeepsWhatWasDecoded(data: bytes, body: bytes) -> None:
    reader = BodyReader(400, Headers([("Transfer-Encoding", "chunked")]))
    assert reader.feed(data) is True
    assert reader.malformed and reader.body == body


def test_chunkedBareLineFeeds() -> None:
    reader = BodyReader(400, Headers([("Transfer-Encoding", "chunked")]))
    assert reader.feed(b"2\nab\n0\n") is True
    assert not reader.malformed and reader.body == b"ab"
