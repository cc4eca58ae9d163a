"""
Tests for L{twisted_ws.core.closecodes}.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from twisted_ws.core.closecodes import (
    MAX_REASON_BYTES,
    CloseCode,
    CloseInfo,
    buildClosePayload,
    isSendableCode,
    isValidWireCode,
    parseClosePayload,
)
from twisted_ws.core.errors import ProtocolError


def rule(code: int) -> bool:
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


def test_isValidWireCodeWholeRange():
    bad = [c for c in range(65536) if isValidWireCode(c) != rule(c)]
    assert bad == []
    bad = [c for c in range(65536) if isSendableCode(c) != rule(c)]
    assert bad == []


@pytest.mark.parametrize(
    "code",
    [CloseCode.NO_STATUS_RECEIVED, CloseCode.ABNORMAL_CLOSURE, CloseCode.TLS_HANDSHAKE, 1004],
)
def test_neverOnTheWire(code):
    assert not isValidWireCode(code)


def test_registeredCodesOnTheWire():
    for code in CloseCode:
        assert isValidWireCode(code) == (code not in (1005, 1006, 1015))


def test_buildClosePayloadBasic():
    assert buildClosePayload(1000) == b"\x03\xe8"
    assert buildClosePayload(1001, "bye") == b"\x03\xe9bye"
    assert buildClosePayload(4999, "é") == b"\x13\x87" + "é".encode()
    assert buildClosePayload(None) == b""


def test_buildClosePayloadReasonWithoutCode():
    with pytest.raises(ValueError):
        buildClosePayload(None, "reason")


@pytest.mark.parametrize("code", [999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 0, 65535])
def test_buildClosePayloadRejects(code):
    with pytest.raises(ValueError):
        buildClosePayload(code, "x")


@pytest.mark.parametrize(
    "reason",
    [
        "a" * 123,
        "a" * 124,
        "a" * 500,
        "é" * 70,
        "a" + "é" * 70,
        "€" * 50,
        "a" + "€" * 50,
        "aa" + "€" * 50,
        "\U0001f600" * 40,
        "a" + "\U0001f600" * 40,
        "aa" + "\U0001f600" * 40,
        "aaa" + "\U0001f600" * 40,
    ],
)
def test_buildClosePayloadTruncates(reason):
    payload = buildClosePayload(1000, reason)
    body = payload[2:]
    assert len(body) <= MAX_REASON_BYTES
    text = body.decode("utf-8")  # still valid
    assert reason.startswith(text)
    # Cut as late as possible: the next character would not fit.
    if text != reason:
        nextChar = reason[len(text)]
        assert len(body) + len(nextChar.encode()) > MAX_REASON_BYTES
    assert len(payload) <= 125


@settings(max_examples=200, deadline=None)
@given(reason=st.text(max_size=200), code=st.sampled_from([1000, 1011, 3000, 4999]))
def test_buildParseRoundTrip(reason, code):
    payload = buildClosePayload(code, reason)
    assert len(payload) <= 125
    gotCode, gotReason = parseClosePayload(payload)
    assert gotCode == code
    assert reason.startswith(gotReason)
    if len(reason.encode()) <= MAX_REASON_BYTES:
        assert gotReason == reason


def test_parseEmpty():
    assert parseClosePayload(b"") == (1005, "")


def test_parseOneByte():
    with pytest.raises(ProtocolError) as e:
        parseClosePayload(b"\x03")
    assert e.value.code == 1002


def test_parseCodes():
    assert parseClosePayload(b"\x03\xe8") == (1000, "")
    assert parseClosePayload(b"\x0b\xb8hello") == (3000, "hello")
    assert parseClosePayload(b"\x03\xf3" + "ünï".encode()) == (1011, "ünï")


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535])
def test_parseInvalidCode(code):
    with pytest.raises(ProtocolError) as e:
        parseClosePayload(code.to_bytes(2, "big") + b"reason")
    assert e.value.code == CloseCode.PROTOCOL_ERROR


@pytest.mark.parametrize(
    "reason", [b"\xff", b"\xc0\xaf", b"ok\xed\xa0\x80", b"ok\xe2\x82", b"\xf4\x90\x80\x80"]
)
def test_parseInvalidUtf8Reason(reason):
    with pytest.raises(ProtocolError) as e:
        parseClosePayload(b"\x03\xe8" + reason)
    assert e.value.code == CloseCode.INVALID_PAYLOAD


def test_parseInvalidCodeCheckedBeforeReason():
    # A bad code and a bad reason: the code is the protocol error.
    with pytest.raises(ProtocolError) as e:
        parseClosePayload(b"\x00\x00\xff")
    assert e.value.code == 1002


def test_closeInfoRepr():
    info = CloseInfo(1000, "bye", True, False, sentCode=1000)
    r = repr(info)
    assert "1000" in r and "bye" in r and "local" in r
    assert CloseInfo(1006, "", False, True).initiatedByPeer
