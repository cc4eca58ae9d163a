"""Tests for the RFC 6455 section 4 opening handshake (both roles)."""

from __future__ import annotations

import base64

import pytest

from twisted_ws.core.errors import HandshakeError
from twisted_ws.core.handshake import (
    GUID,
    HandshakeRequest,
    buildAcceptResponse,
    buildClientRequest,
    buildRejectResponse,
    computeAcceptKey,
    generateKey,
    selectSubprotocol,
    validateRequest,
    validateResponse,
)
from twisted_ws.core.http import HeadParser, Headers, RequestHead, ResponseHead

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
