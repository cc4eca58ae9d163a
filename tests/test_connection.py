"""
Tests for L{twisted_ws.core.connection.WebSocketConnection}, driven without
any I/O: bytes in through C{receiveData}, handler calls and written bytes out.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings, strategies as st

from twisted_ws.core.closecodes import CloseCode
from twisted_ws.core.connection import State, WebSocketConnection
from twisted_ws.core.errors import ProtocolError
from twisted_ws.core.frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    RSV1,
    WHOLE,
    FrameParser,
    buildFrameHeader,
    serializeFrame,
)
from wshelpers import RecordingHandler as Recorder


class Endpoint:
    """A connection, its handler and what it wrote."""

    def __init__(self, isClient=False, **kw):
        self.handler = Recorder()
        self.written = []
        self.conn = WebSocketConnection(self.handler, self.written.append, isClient=isClient, **kw)
        self.isClient = isClient

    def frame(self, opcode, payload=b"", fin=True, rsv=0):
        """A frame as the peer would send it."""
        return serializeFrame(
            opcode, payload, fin, rsv, None if self.isClient else os.urandom(4)
        )

    def recv(self, *frames):
        self.conn.receiveData(b"".join(frames))

    def sentFrames(self):
        """Parse everything written, as the peer would."""
        parser = FrameParser(requireMask=self.isClient)
        out = parser.feed(b"".join(self.written))
        assert parser.error is None, parser.error
        assert all(p[4] == WHOLE for p in out)
        return [(op, fin, rsv, payload) for op, fin, rsv, payload, _ in out]

    def sentCloseCodes(self):
        return [
            int.from_bytes(p[:2], "big") if p else None
            for op, _, _, p in self.sentFrames()
            if op == OP_CLOSE
        ]

    @property
    def events(self):
        return self.handler.events


def closeCode(frames):
    closes = [p for op, _, _, p in frames if op == OP_CLOSE]
    assert len(closes) == 1, frames
    return int.from_bytes(closes[0][:2], "big")


# -- receiving messages -----------------------------------------------------


def test_textAndBinaryMessages():
    e = Endpoint()
    e.recv(e.frame(OP_TEXT, "héllo €".encode()), e.frame(OP_BINARY, b"\x00\xff"))
    e.recv(e.frame(OP_TEXT, b""), e.frame(OP_BINARY, b""))
    assert e.events == [
        ("text", "héllo €"),
        ("binary", b"\x00\xff"),
        ("text", ""),
        ("binary", b""),
    ]
    assert e.written == []


def test_fragmentedMessages():
    e = Endpoint()
    e.recv(
        e.frame(OP_BINARY, b"ab", fin=False),
        e.frame(OP_CONTINUATION, b"", fin=False),
        e.frame(OP_CONTINUATION, b"cd"),
    )
    assert e.events == [("binary", b"abcd")]


def test_fourByteCharacterSplitAcrossFragments():
    e = Endpoint()
    data = "a\U0001f600b".encode()  # F0 9F 98 80
    e.recv(
        e.frame(OP_TEXT, data[:2], fin=False),
        e.frame(OP_CONTINUATION, data[2:3], fin=False),
        e.frame(OP_CONTINUATION, data[3:4], fin=False),
        e.frame(OP_CONTINUATION, data[4:]),
    )
    assert e.events == [("text", "a\U0001f600b")]
    assert e.written == []


def test_bigMessageFedInChops():
    e = Endpoint()
    payload = "ü€\U0001f600".encode() * 10000
    data = e.frame(OP_TEXT, payload)
    for i in range(0, len(data), 777):
        e.recv(data[i : i + 777])
    assert e.events == [("text", payload.decode())]


def test_invalidUtf8WholeFrame():
    e = Endpoint()
    e.recv(e.frame(OP_TEXT, b"ab\xffcd"))
    assert e.events == []
    assert closeCode(e.sentFrames()) == CloseCode.INVALID_PAYLOAD
    assert e.conn.failure.code == 1007


def test_invalidUtf8FailsFastInsideAFrame():
    e = Endpoint()
    payload = b"a" * 100 + b"\xc0\xaf" + b"b" * 100
    data = e.frame(OP_TEXT, payload)
    hlen = 4 + 4  # 16-bit length + mask key
    assert len(data) == hlen + len(payload)
    # Header + mask key + 50 bytes: fine so far.
    e.recv(data[: hlen + 50])
    assert e.written == []
    # Up to just past the bad bytes: the frame is far from complete.
    e.recv(data[hlen + 50 : hlen + 102])
    assert closeCode(e.sentFrames()) == 1007
    assert e.events == []
    before = list(e.written)
    e.recv(data[hlen + 102 :])
    assert e.written == before


def test_invalidUtf8FailsWhenBadFragmentArrives():
    e = Endpoint()
    e.recv(e.frame(OP_TEXT, b"hello", fin=False))
    assert e.written == []
    e.recv(e.frame(OP_CONTINUATION, b"\x80", fin=False))
    assert closeCode(e.sentFrames()) == 1007
    assert e.events == []


@pytest.mark.parametrize("fragmented", [True, False])
def test_surrogatePrefixFailsImmediately(fragmented):
    e = Endpoint()
    if fragmented:
        e.recv(e.frame(OP_TEXT, b"ok\xed\xa0", fin=False))
    else:
        data = e.frame(OP_TEXT, b"ok\xed\xa0\x80 and more")
        e.recv(data[: 6 + 4])
    assert closeCode(e.sentFrames()) == 1007


def test_validPrefixEndingAPieceIsNotFailed():
    e = Endpoint()
    e.recv(e.frame(OP_TEXT, b"ok\xed\x9f", fin=False))  # U+D7FF prefix
    e.recv(e.frame(OP_CONTINUATION, b"\xbf"))
    assert e.events == [("text", "ok\ud7ff")]


def test_textEndingInsideCharacter():
    e = Endpoint()
    e.recv(e.frame(OP_TEXT, b"ok\xe2\x82", fin=False))
    assert e.written == []
    e.recv(e.frame(OP_CONTINUATION, b""))
    assert closeCode(e.sentFrames()) == 1007
    assert e.events == []


def test_textFrameEndingInsideCharacterWhole():
    e = Endpoint()
    e.recv(e.frame(OP_TEXT, b"ok\xf0\x9f\x98"))
    assert closeCode(e.sentFrames()) == 1007


# Reference UTF-8 automaton (RFC 3629 table): for each lead byte, the
# allowed range of the first continuation byte and the number of them.
def _lead(b):
    if b < 0x80:
        return None, 0
    if 0xC2 <= b <= 0xDF:
        return (0x80, 0xBF), 1
    if b == 0xE0:
        return (0xA0, 0xBF), 2
    if b == 0xED:
        return (0x80, 0x9F), 2
    if 0xE1 <= b <= 0xEF:
        return (0x80, 0xBF), 2
    if b == 0xF0:
        return (0x90, 0xBF), 3
    if 0xF1 <= b <= 0xF3:
        return (0x80, 0xBF), 3
    if b == 0xF4:
        return (0x80, 0x8F), 3
    raise ValueError


def firstBadIndex(data: bytes):
    """
    The index of the byte after which C{data[:i+1]} can no longer be the
    start of valid UTF-8; C{len(data)} if it ends inside a character; else
    C{None}.
    """
    need = 0
    first = None
    for i, b in enumerate(data):
        if need:
            lo, hi = first if first else (0x80, 0xBF)
            if not lo <= b <= hi:
                return i
            first = None
            need -= 1
            continue
        try:
            first, need = _lead(b)
        except ValueError:
            return i
    return len(data) if need else None


INTERESTING = [0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2,
               0xDF, 0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4,
               0xF5, 0xFF]


@settings(max_examples=300, deadline=None)
@given(
    data=st.lists(st.sampled_from(INTERESTING), max_size=12).map(bytes)
    | st.text(max_size=6).map(lambda t: t.encode("utf-8")),
    fragmented=st.booleans(),
)
def test_failFastAtTheExactByte(data, fragmented):
    """
    Fed one byte at a time (as one-byte fragments, or as one frame arriving
    byte by byte), the connection fails with 1007 exactly when the byte that
    makes the text invalid arrives.
    """
    e = Endpoint(streaming=False)
    bad = firstBadIndex(data)
    if fragmented:
        chunks = [
            e.frame(OP_TEXT if i == 0 else OP_CONTINUATION, data[i : i + 1], fin=False)
            for i in range(len(data))
        ]
        chunks.append(e.frame(OP_CONTINUATION if data else OP_TEXT, b""))
    else:
        frame = e.frame(OP_TEXT, data)
        hlen = len(frame) - len(data)
        chunks = [frame[:hlen]] + [frame[hlen + i : hlen + i + 1] for i in range(len(data))]
    failedAt = None
    for i, chunk in enumerate(chunks):
        e.recv(chunk)
        if e.written and failedAt is None:
            failedAt = i
    if fragmented:
        expected = bad  # chunk i carries byte i; the empty final frame is len(data)
    else:
        # Chunk 0 is the header; byte i comes with chunk i + 1.  A frame
        # ending inside a character fails with its last byte.
        expected = None if bad is None else min(bad, len(data) - 1) + 1
    assert failedAt == expected, (data, bad)
    if bad is None:
        assert e.events == [("text", data.decode("utf-8"))]
        assert e.written == []
    else:
        assert e.sentCloseCodes() == [1007]
        assert e.events == []


# -- control frames ---------------------------------------------------------


def test_pingAnsweredWithExactPayload():
    e = Endpoint()
    payload = bytes(range(125))
    e.recv(e.frame(OP_PING, payload))
    assert e.sentFrames() == [(OP_PONG, True, 0, payload)]
    assert e.events == [("ping", payload)]


def test_pingInterleavedInFragmentedMessage():
    e = Endpoint()
    e.recv(
        e.frame(OP_TEXT, b"ab", fin=False),
        e.frame(OP_PING, b"1"),
        e.frame(OP_CONTINUATION, b"cd", fin=False),
        e.frame(OP_PONG, b"2"),
        e.frame(OP_CONTINUATION, b"ef"),
    )
    assert e.events == [("ping", b"1"), ("pong", b"2"), ("text", "abcdef")]
    assert e.sentFrames() == [(OP_PONG, True, 0, b"1")]


def test_pongCallsWatcherThenHandler():
    e = Endpoint()
    order = []
    e.conn.pongWatcher = lambda p: order.append(("watcher", p, len(e.events)))
    e.recv(e.frame(OP_PONG, b"beat"))
    assert order == [("watcher", b"beat", 0)]
    assert e.events == [("pong", b"beat")]
    assert e.written == []


# -- close handshake --------------------------------------------------------


def test_peerClose():
    e = Endpoint()
    e.recv(e.frame(OP_CLOSE, b"\x03\xe8bye"))
    assert e.conn.peerClose == (1000, "bye")
    assert e.sentFrames() == [(OP_CLOSE, True, 0, b"\x03\xe8")]
    assert e.conn.closeHandshakeDone
    assert e.conn.state is State.CLOSING
    assert e.events == [("close", 1000, "bye")]


def test_peerEmptyClose():
    e = Endpoint()
    e.recv(e.frame(OP_CLOSE, b""))
    assert e.conn.peerClose == (1005, "")
    assert e.sentCloseCodes() == [1000]
    assert e.events == [("close", 1005, "")]


def _validCode(code):
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


def _checkPeerCloseCode(code):
    e = Endpoint()
    e.recv(e.frame(OP_CLOSE, code.to_bytes(2, "big") + b"why"))
    if _validCode(code):
        assert e.conn.peerClose == (code, "why")
        assert e.sentCloseCodes() == [code]
        assert e.events == [("close", code, "why")]
        assert e.conn.failure is None
    else:
        assert e.sentCloseCodes() == [1002], code
        assert e.conn.failure.code == 1002
        assert e.conn.peerClose is not None
        assert e.conn.closeHandshakeDone


@pytest.mark.parametrize(
    "code",
    [0, 999, 1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008, 1009, 1010,
     1011, 1012, 1013, 1014, 1015, 1016, 2999, 3000, 4999, 5000, 65535],
)
def test_closeCodeSample(code):
    _checkPeerCloseCode(code)


def test_closeCodesWholeRange():
    for code in list(range(6000)) + [65535]:
        _checkPeerCloseCode(code)


def test_oneByteClosePayload():
    e = Endpoint()
    e.recv(e.frame(OP_CLOSE, b"\x03"))
    assert e.sentCloseCodes() == [1002]


def test_closeReasonInvalidUtf8():
    e = Endpoint()
    e.recv(e.frame(OP_CLOSE, b"\x03\xe8\xff"))
    assert e.sentCloseCodes() == [1007]


def test_afterOurCloseDataIgnored():
    e = Endpoint()
    assert e.conn.close(1001, "away")
    assert e.sentFrames() == [(OP_CLOSE, True, 0, b"\x03\xe9away")]
    assert e.conn.closeSent == (1001, "away")
    n = len(e.written)
    e.recv(
        e.frame(OP_TEXT, b"late"),
        e.frame(OP_PING, b"p"),
        e.frame(OP_BINARY, b"x", fin=False),
        e.frame(7, b"reserved"),
    )
    assert len(e.written) == n
    assert e.events == []
    e.recv(e.frame(OP_CLOSE, b"\x03\xe8"))
    assert len(e.written) == n
    assert e.conn.closeHandshakeDone
    assert e.events == [("close", 1000, "")]
    # A second Close is ignored.
    e.recv(e.frame(OP_CLOSE, b"\x03\xe9"))
    assert e.events == [("close", 1000, "")]
    assert e.conn.peerClose == (1000, "")
    assert len(e.written) == n


def test_secondCloseCallIgnored():
    e = Endpoint()
    assert e.conn.close()
    assert not e.conn.close(1001)
    assert e.sentCloseCodes() == [1000]


def test_sendAfterClose():
    e = Endpoint()
    e.conn.close()
    n = len(e.written)
    assert e.conn.sendMessage("x") is False
    assert e.conn.sendMessage(b"x") is False
    assert e.conn.sendFragment(b"x", False, True) is False
    assert e.conn.ping(b"x") is False
    assert e.conn.pong(b"x") is False
    assert len(e.written) == n


def test_closeRejectsUnsendableCode():
    e = Endpoint()
    with pytest.raises(ValueError):
        e.conn.close(1005)
    assert e.conn.state is State.OPEN
    assert e.written == []


def test_closeWithoutCode():
    e = Endpoint()
    e.conn.close(None)
    assert e.sentFrames() == [(OP_CLOSE, True, 0, b"")]


# -- fail() -----------------------------------------------------------------


def test_fail():
    e = Endpoint()
    e.conn.fail(1008, "policy")
    e.conn.fail(1011, "again")
    assert e.sentFrames() == [(OP_CLOSE, True, 0, b"\x03\xf0policy")]
    assert e.conn.failure.code == 1008
    n = len(e.written)
    e.recv(e.frame(OP_TEXT, b"data"), e.frame(OP_PING, b""))
    assert len(e.written) == n
    assert e.events == []
    e.recv(e.frame(OP_CLOSE, b"\x03\xe8"))
    assert e.conn.peerClose == (1000, "")
    assert e.conn.closeHandshakeDone
    assert len(e.written) == n


def test_protocolErrorThenPeerCloseInSameRead():
    e = Endpoint()
    e.recv(
        e.frame(OP_TEXT, b"ok"),
        serializeFrame(OP_TEXT, b"unmasked"),
        e.frame(OP_BINARY, b"x" * 500),
        e.frame(OP_CLOSE, b"\x03\xe8"),
    )
    assert e.events == [("text", "ok"), ("close", 1000, "")]
    assert e.sentCloseCodes() == [1002]
    assert e.conn.closeHandshakeDone


def test_utf8FailureThenParserErrorThenPeerCloseInSameRead():
    e = Endpoint()
    e.recv(
        e.frame(OP_TEXT, b"\xff"),
        e.frame(7, b""),
        e.frame(OP_CLOSE, b"\x03\xe8"),
    )
    assert e.sentCloseCodes() == [1007]
    assert e.conn.peerClose == (1000, "")


def test_malformedPeerCloseStillEndsItsSide():
    e = Endpoint()
    e.recv(buildFrameHeader(OP_CLOSE, 126, maskKey=b"abcd") + b"\x00" * 126)
    assert e.sentCloseCodes() == [1002]
    assert e.conn.peerClose is not None
    assert e.conn.closeHandshakeDone


# -- limits -----------------------------------------------------------------


def test_maxMessageSizeSingleFrame():
    e = Endpoint(maxMessageSize=100)
    e.recv(e.frame(OP_BINARY, b"x" * 100))
    assert e.events == [("binary", b"x" * 100)]
    # Only the header of the too big frame: refused already.
    e.recv(buildFrameHeader(OP_BINARY, 101, maskKey=b"abcd"))
    assert e.sentCloseCodes() == [1009]
    e.recv(b"x" * 101)
    assert e.events == [("binary", b"x" * 100)]


def test_maxMessageSizeFragments():
    e = Endpoint(maxMessageSize=100)
    e.recv(e.frame(OP_TEXT, b"x" * 60, fin=False))
    e.recv(e.frame(OP_CONTINUATION, b"x" * 41))
    assert e.sentCloseCodes() == [1009]
    assert e.events == []


def test_maxMessageSizeStreaming():
    e = Endpoint(maxMessageSize=100, streaming=True)
    e.recv(e.frame(OP_BINARY, b"x" * 101))
    assert e.sentCloseCodes() == [1009]
    assert e.events == []


def test_maxFragments():
    e = Endpoint(maxFragments=2)
    e.recv(
        e.frame(OP_BINARY, b"a", fin=False),
        e.frame(OP_CONTINUATION, b"b", fin=False),
        e.frame(OP_CONTINUATION, b"c"),
    )
    assert e.sentCloseCodes() == [1009]
    assert e.events == []


# -- streaming --------------------------------------------------------------


def test_streamingText():
    e = Endpoint(streaming=True)
    data = "aé€\U0001f600z".encode()
    frame = e.frame(OP_TEXT, data[:5], fin=False)
    e.recv(frame[:8])
    for i in range(8, len(frame)):
        e.recv(frame[i : i + 1])
    e.recv(e.frame(OP_CONTINUATION, data[5:]))
    assert e.events[0] == ("started", True)
    assert e.events[-1] == ("ended",)
    pieces = [ev[1] for ev in e.events[1:-1]]
    assert all(ev[0] == "data" and isinstance(ev[1], str) and ev[1] for ev in e.events[1:-1])
    assert "".join(pieces) == data.decode()


def test_streamingBinary():
    e = Endpoint(streaming=True)
    frame = e.frame(OP_BINARY, b"0123456789", fin=False)
    e.recv(frame[:9])
    e.recv(frame[9:])
    e.recv(e.frame(OP_PING, b"p"), e.frame(OP_CONTINUATION, b"ab"))
    e.recv(e.frame(OP_BINARY, b""))
    assert e.events[0] == ("started", False)
    assert all(isinstance(ev[1], bytes) for ev in e.events if ev[0] == "data")
    assert b"".join(ev[1] for ev in e.events[: e.events.index(("ended",))] if ev[0] == "data") == (
        b"0123456789ab"
    )
    assert ("ping", b"p") in e.events
    assert e.events[-2:] == [("started", False), ("ended",)]


def test_streamingInvalidUtf8FailsFast():
    e = Endpoint(streaming=True)
    e.recv(e.frame(OP_TEXT, b"abc", fin=False))
    e.recv(e.frame(OP_CONTINUATION, b"\xed\xa0", fin=False))
    assert e.sentCloseCodes() == [1007]
    assert ("ended",) not in e.events


# -- sending ----------------------------------------------------------------


def test_sendMessageTypes():
    e = Endpoint()
    assert e.conn.sendMessage("héllo")
    assert e.conn.sendMessage(b"\x00\x01")
    assert e.conn.sendMessage(bytearray(b"ba"))
    assert e.conn.sendMessage(b"as text", isText=True)
    assert e.conn.sendMessage("as binary", isText=False)
    assert e.sentFrames() == [
        (OP_TEXT, True, 0, "héllo".encode()),
        (OP_BINARY, True, 0, b"\x00\x01"),
        (OP_BINARY, True, 0, b"ba"),
        (OP_TEXT, True, 0, b"as text"),
        (OP_BINARY, True, 0, b"as binary"),
    ]
    # A server never masks.
    assert not any(w[1] & 0x80 for w in e.written)


def test_clientMasksItsFrames():
    e = Endpoint(isClient=True)
    payload = os.urandom(300)
    e.conn.sendMessage(payload)
    e.conn.ping(b"pp")
    e.conn.close(1000, "done")
    assert all(w[1] & 0x80 for w in e.written)
    assert e.sentFrames() == [
        (OP_BINARY, True, 0, payload),
        (OP_PING, True, 0, b"pp"),
        (OP_CLOSE, True, 0, b"\x03\xe8done"),
    ]


def test_clientPongToServerPing():
    e = Endpoint(isClient=True)
    e.recv(e.frame(OP_PING, b"abc"))
    assert e.sentFrames() == [(OP_PONG, True, 0, b"abc")]
    assert e.written[0][1] & 0x80


def test_clientRejectsMaskedServerFrame():
    e = Endpoint(isClient=True)
    e.recv(serializeFrame(OP_TEXT, b"x", maskKey=b"abcd"))
    assert e.sentCloseCodes() == [1002]


def test_fragmentSize():
    e = Endpoint(fragmentSize=64 * 1024)
    payload = os.urandom(200 * 1024)
    e.conn.sendMessage(payload)
    frames = e.sentFrames()
    assert [(op, fin) for op, fin, _, _ in frames] == [
        (OP_BINARY, False),
        (OP_CONTINUATION, False),
        (OP_CONTINUATION, False),
        (OP_CONTINUATION, True),
    ]
    assert [len(p) for *_, p in frames] == [65536, 65536, 65536, 200 * 1024 - 3 * 65536]
    assert b"".join(p for *_, p in frames) == payload
    assert e.conn.bufferedAmount == 0


def test_exactlyFragmentSizeIsOneFrame():
    e = Endpoint(fragmentSize=100)
    e.conn.sendMessage(b"x" * 100)
    assert e.sentFrames() == [(OP_BINARY, True, 0, b"x" * 100)]


def test_pauseWritingMidMessage():
    e = Endpoint(fragmentSize=64 * 1024, writeSize=64 * 1024)
    conn = e.conn

    def write(data):
        e.written.append(data)
        if len(e.written) == 1:
            conn.pauseWriting()

    conn._write = write
    payload = os.urandom(200 * 1024)
    conn.sendMessage(payload)
    assert len(e.written) == 1
    assert conn.paused
    assert conn.bufferedAmount == 200 * 1024 - 65536
    # Another message waits behind the first.
    conn.sendMessage("after")
    assert len(e.written) == 1
    # A pong is held while paused (nothing grows) and goes out first on
    # resume, between fragments.
    e.recv(e.frame(OP_PING, b"hb"))
    assert len(e.written) == 1
    assert conn.pendingBytes == conn.bufferedAmount + 2
    conn.resumeWriting()
    frames = e.sentFrames()
    assert [(op, fin) for op, fin, _, _ in frames] == [
        (OP_BINARY, False),
        (OP_PONG, True),
        (OP_CONTINUATION, False),
        (OP_CONTINUATION, False),
        (OP_CONTINUATION, True),
        (OP_TEXT, True),
    ]
    assert frames[1][3] == b"hb"
    assert b"".join(p for op, _, _, p in frames if op in (OP_BINARY, OP_CONTINUATION)) == payload
    assert frames[-1][3] == b"after"
    assert conn.bufferedAmount == 0


def test_largeMessageWrittenSeveralFragmentsPerWrite():
    """
    Up to writeSize of payload goes into each write, as whole fragments of
    fragmentSize: fewer writes (Twisted spends a reactor turn on each), same
    frames on the wire, and a Pong still goes out between two writes.
    """
    e = Endpoint(fragmentSize=64 * 1024, writeSize=128 * 1024)
    conn = e.conn

    def write(data):
        e.written.append(data)
        if len(data) > 1000:
            conn.pauseWriting()  # each write of data fills the transport

    conn._write = write
    payload = os.urandom(300 * 1024)
    conn.sendMessage(payload)
    assert len(e.written) == 1
    assert conn.bufferedAmount == 300 * 1024 - 128 * 1024
    e.recv(e.frame(OP_PING, b"hb"))
    conn.resumeWriting()
    assert len(e.written) == 3  # the Pong, then the next two fragments
    conn.resumeWriting()
    assert len(e.written) == 4
    assert conn.bufferedAmount == 0
    frames = e.sentFrames()
    assert [(op, fin, len(p)) for op, fin, _, p in frames] == [
        (OP_BINARY, False, 65536),
        (OP_CONTINUATION, False, 65536),
        (OP_PONG, True, 2),
        (OP_CONTINUATION, False, 65536),
        (OP_CONTINUATION, False, 65536),
        (OP_CONTINUATION, True, 300 * 1024 - 4 * 65536),
    ]
    assert b"".join(p for op, _, _, p in frames if op != OP_PONG) == payload


def test_clientLargeMessageEachFragmentMaskedWithItsOwnKey():
    keys = iter([b"\x01\x02\x03\x04", b"\x05\x06\x07\x08", b"\x09\x0a\x0b\x0c"])
    e = Endpoint(isClient=True, fragmentSize=4, writeSize=1024, maskKey=lambda n: next(keys))
    e.conn.sendMessage(b"abcdefghij")
    assert len(e.written) == 1
    frames = e.sentFrames()
    assert [(op, fin, p) for op, fin, _, p in frames] == [
        (OP_BINARY, False, b"abcd"),
        (OP_CONTINUATION, False, b"efgh"),
        (OP_CONTINUATION, True, b"ij"),
    ]
    assert [e.written[0][i : i + 4] for i in (2, 2 + 8 + 2, 2 + 16 + 4)] == [
        b"\x01\x02\x03\x04", b"\x05\x06\x07\x08", b"\x09\x0a\x0b\x0c"
    ]


def test_sendWhilePausedQueues():
    e = Endpoint()
    e.conn.pauseWriting()
    e.conn.sendMessage(b"small")
    assert e.written == []
    assert e.conn.bufferedAmount == 5
    e.conn.ping(b"x")
    assert e.sentFrames() == [(OP_PING, True, 0, b"x")]
    e.conn.resumeWriting()
    assert e.sentFrames()[-1] == (OP_BINARY, True, 0, b"small")


def test_closeWhileQueuedSendsCloseAfterData():
    e = Endpoint(fragmentSize=10)
    e.conn.pauseWriting()
    e.conn.sendMessage(b"a" * 25)
    assert e.conn.close(1001, "bye")
    assert e.conn.state is State.CLOSING
    assert e.conn.closeSent is None
    assert e.written == []
    assert e.conn.sendMessage(b"dropped") is False
    e.conn.resumeWriting()
    frames = e.sentFrames()
    assert [(op, fin) for op, fin, _, _ in frames] == [
        (OP_BINARY, False),
        (OP_CONTINUATION, False),
        (OP_CONTINUATION, True),
        (OP_CLOSE, True),
    ]
    assert frames[-1][3] == b"\x03\xe9bye"
    assert e.conn.closeSent == (1001, "bye")


def test_peerCloseWhileQueuedAnswersAtOnce():
    e = Endpoint(fragmentSize=10)
    e.conn.pauseWriting()
    e.conn.sendMessage(b"a" * 25)
    e.recv(e.frame(OP_CLOSE, b"\x03\xe8"))
    assert e.sentFrames() == [(OP_CLOSE, True, 0, b"\x03\xe8")]
    assert e.conn.bufferedAmount == 0
    e.conn.resumeWriting()
    assert e.sentFrames() == [(OP_CLOSE, True, 0, b"\x03\xe8")]
    assert e.conn.closeHandshakeDone


def test_peerCloseAfterOurQueuedClose():
    e = Endpoint(fragmentSize=10)
    e.conn.pauseWriting()
    e.conn.sendMessage(b"a" * 25)
    e.conn.close(1001)
    e.recv(e.frame(OP_CLOSE, b"\x03\xe8"))
    # Exactly one Close goes out, even after resuming.
    e.conn.resumeWriting()
    assert e.sentCloseCodes() == [1000] or e.sentCloseCodes() == [1001]
    assert len(e.sentCloseCodes()) == 1


def test_failDropsQueue():
    e = Endpoint(fragmentSize=10)
    e.conn.pauseWriting()
    e.conn.sendMessage(b"a" * 25)
    e.conn.fail(1011, "oops")
    e.conn.resumeWriting()
    assert e.sentCloseCodes() == [1011]
    assert len(e.sentFrames()) == 1


def test_sendFragment():
    e = Endpoint()
    assert e.conn.sendFragment(b"ab", isText=True, fin=False)
    with pytest.raises(RuntimeError):
        e.conn.sendMessage(b"in between")
    e.conn.ping(b"")
    assert e.conn.sendFragment(b"cd", isText=True, fin=False)
    assert e.conn.sendFragment(b"ef", isText=True, fin=True)
    assert e.conn.sendMessage(b"next")
    assert e.conn.sendFragment(b"x", isText=False, fin=True)
    assert e.sentFrames() == [
        (OP_TEXT, False, 0, b"ab"),
        (OP_PING, True, 0, b""),
        (OP_CONTINUATION, False, 0, b"cd"),
        (OP_CONTINUATION, True, 0, b"ef"),
        (OP_BINARY, True, 0, b"next"),
        (OP_BINARY, True, 0, b"x"),
    ]


def test_sendFragmentLargerThanFragmentSize():
    e = Endpoint(fragmentSize=4)
    e.conn.sendFragment(b"abcdef", isText=False, fin=False)
    e.conn.sendFragment(b"ghij", isText=False, fin=True)
    frames = e.sentFrames()
    assert [(op, fin) for op, fin, _, _ in frames] == [
        (OP_BINARY, False),
        (OP_CONTINUATION, False),
        (OP_CONTINUATION, True),
    ]
    assert b"".join(p for *_, p in frames) == b"abcdefghij"


def test_pingTooLong():
    e = Endpoint()
    with pytest.raises(ValueError):
        e.conn.ping(b"x" * 126)
    with pytest.raises(ValueError):
        e.conn.pong(b"x" * 126)


# -- extensions -------------------------------------------------------------


class ReverseDecoder:
    def __init__(self, ext):
        self.ext = ext
        self.buf = b""

    def _check(self, data, maxSize):
        self.ext.limits.append(maxSize)
        if maxSize is not None and len(data) > maxSize:
            raise ProtocolError(CloseCode.MESSAGE_TOO_BIG, "too big after decoding")
        return data

    def decode(self, data, maxSize):
        # "Decompresses" to twice the size, reversed.
        return self._check((data * 2)[::-1], maxSize)

    def finish(self, maxSize):
        return self._check(b"", maxSize)


class ReverseExtension:
    name = "x-reverse"
    rsvBits = RSV1

    def __init__(self):
        self.limits = []
        self.decoders = []

    def decoder(self, rsv):
        assert rsv & RSV1
        d = ReverseDecoder(self)
        self.decoders.append(d)
        return d

    def encodeMessage(self, payload, isText):
        return payload, RSV1


def test_extensionRsvAcceptedAndDecoded():
    ext = ReverseExtension()
    e = Endpoint(extensions=[ext], maxMessageSize=1000)
    e.recv(e.frame(OP_BINARY, b"abc", rsv=RSV1))
    assert e.events == [("binary", b"cbacba")]
    assert e.written == []
    # The limit passed is what remains of maxMessageSize.
    assert ext.limits == [1000, 1000 - 6]


def test_extensionLimitsAcrossFragments():
    ext = ReverseExtension()
    e = Endpoint(extensions=[ext], maxMessageSize=1000)
    e.recv(e.frame(OP_BINARY, b"a" * 100, rsv=RSV1, fin=False))
    e.recv(e.frame(OP_CONTINUATION, b"b" * 100, fin=False))
    assert ext.limits == [1000, 800]
    e.recv(e.frame(OP_CONTINUATION, b"c" * 10))
    assert ext.limits == [1000, 800, 600, 580]
    assert e.events == [
        ("binary", (b"a" * 200)[::-1] + (b"b" * 200)[::-1] + (b"c" * 20)[::-1])
    ]


def test_extensionDecoderRaisesMessageTooBig():
    ext = ReverseExtension()
    e = Endpoint(extensions=[ext], maxMessageSize=1000)
    e.recv(e.frame(OP_BINARY, b"a" * 400, rsv=RSV1, fin=False))
    e.recv(e.frame(OP_CONTINUATION, b"b" * 101))
    assert e.sentCloseCodes() == [1009]
    assert e.events == []


def test_extensionTextDecodedThenUtf8Checked():
    ext = ReverseExtension()
    e = Endpoint(extensions=[ext])
    e.recv(e.frame(OP_TEXT, "é".encode()[::-1], rsv=RSV1))
    # decode gives reversed double: "é" twice reversed -> bytes of "éé".
    assert e.events == [("text", "éé")]


def test_extensionMessageWithoutRsvNotDecoded():
    ext = ReverseExtension()
    e = Endpoint(extensions=[ext])
    e.recv(e.frame(OP_BINARY, b"abc"))
    assert e.events == [("binary", b"abc")]
    assert ext.decoders == []


def test_extensionRsvOnContinuationRefused():
    ext = ReverseExtension()
    e = Endpoint(extensions=[ext])
    e.recv(e.frame(OP_BINARY, b"a", rsv=RSV1, fin=False))
    e.recv(e.frame(OP_CONTINUATION, b"b", rsv=RSV1))
    assert e.sentCloseCodes() == [1002]


def test_extensionOtherRsvRefused():
    e = Endpoint(extensions=[ReverseExtension()])
    e.recv(e.frame(OP_BINARY, b"a", rsv=0x20))
    assert e.sentCloseCodes() == [1002]


def test_extensionSetsRsvOnSentFrames():
    e = Endpoint(extensions=[ReverseExtension()], fragmentSize=4)
    e.conn.sendMessage(b"abcdefghij")
    e.conn.sendMessage("t")
    parser = FrameParser(requireMask=False, allowedRsv=RSV1)
    frames = [p[:4] for p in parser.feed(b"".join(e.written))]
    assert parser.error is None
    assert frames == [
        (OP_BINARY, False, RSV1, b"abcd"),
        (OP_CONTINUATION, False, 0, b"efgh"),
        (OP_CONTINUATION, True, 0, b"ij"),
        (OP_TEXT, True, RSV1, b"t"),
    ]


def test_noExtensionMeansRsvRefused():
    e = Endpoint()
    e.recv(e.frame(OP_BINARY, b"a", rsv=RSV1))
    assert e.sentCloseCodes() == [1002]


def test_writeThatPausesAndResumesReentrantly():
    """A transport that pauses and drains at once inside write keeps the order."""
    e = Endpoint(fragmentSize=5)
    conn = e.conn

    def write(data):
        e.written.append(data)
        conn.pauseWriting()
        conn.resumeWriting()

    conn._write = write
    conn.sendMessage(b"0123456789abcdefghij!")
    conn.sendMessage(b"tail")
    frames = e.sentFrames()
    assert [(op, fin) for op, fin, _, _ in frames] == [
        (OP_BINARY, False),
        (OP_CONTINUATION, False),
        (OP_CONTINUATION, False),
        (OP_CONTINUATION, False),
        (OP_CONTINUATION, True),
        (OP_BINARY, True),
    ]
    assert b"".join(p for *_, p in frames[:-1]) == b"0123456789abcdefghij!"
    assert conn.bufferedAmount == 0


def test_handlerRepliesFromCallback():
    e = Endpoint()

    class Echo(Recorder):
        def textMessageReceived(self, text):
            super().textMessageReceived(text)
            e.conn.sendMessage(text.upper())

    e.conn.handler = e.handler = Echo()
    e.recv(e.frame(OP_TEXT, b"a"), e.frame(OP_TEXT, b"b"), e.frame(OP_CLOSE, b"\x03\xe8"))
    assert e.sentFrames() == [
        (OP_TEXT, True, 0, b"A"),
        (OP_TEXT, True, 0, b"B"),
        (OP_CLOSE, True, 0, b"\x03\xe8"),
    ]


# -- write batching -----------------------------------------------------------


class EchoRecorder(Recorder):
    def __init__(self):
        super().__init__()
        self.conn = None

    def textMessageReceived(self, text):
        super().textMessageReceived(text)
        self.conn.sendMessage(text)


def test_writesAreBatchedPerRead():
    """Echoes and pongs produced while one read is processed go out in one write."""
    e = Endpoint()
    e.handler = EchoRecorder()
    e.conn = WebSocketConnection(e.handler, e.written.append)
    e.handler.conn = e.conn
    e.recv(e.frame(OP_TEXT, b"a"), e.frame(OP_PING, b"p"), e.frame(OP_TEXT, b"b"))
    assert len(e.written) == 1
    assert e.sentFrames() == [
        (OP_TEXT, True, 0, b"a"),
        (OP_PONG, True, 0, b"p"),
        (OP_TEXT, True, 0, b"b"),
    ]
    # Outside receiveData, writes go straight out.
    e.conn.sendMessage("c")
    assert len(e.written) == 2


def test_largeBatchesAreHandedOverEarly():
    """A read that makes a lot of output writes it every 64 KiB, so the
    transport can ask us to pause before everything is produced."""
    e = Endpoint()
    e.handler = EchoRecorder()
    sizes = []

    def write(data):
        sizes.append(len(data))
        e.written.append(data)

    e.conn = WebSocketConnection(e.handler, write)
    e.handler.conn = e.conn
    e.recv(*[e.frame(OP_TEXT, b"x" * 10_000) for _ in range(20)])
    assert len(sizes) > 2
    assert max(sizes) < 65536 + 10_010
    assert sum(sizes) == sum(len(w) for w in e.written)
    assert [len(p) for op, _, _, p in e.sentFrames()] == [10_000] * 20


# -- ping flood while paused ---------------------------------------------------


def test_pingFloodWhilePausedHoldsOnePong():
    """
    10,000 pings from a peer whose transport is full: nothing is written or
    queued but one Pong, for the most recent ping (RFC 6455 §5.5.3).
    """
    e = Endpoint()
    e.conn.pauseWriting()
    e.recv(*[e.frame(OP_PING, b"%d" % i) for i in range(10_000)])
    assert e.written == []
    assert e.conn.bufferedAmount == 0
    assert e.conn.pendingBytes == len(b"9999")
    assert len([ev for ev in e.events if ev[0] == "ping"]) == 10_000
    e.conn.resumeWriting()
    assert e.sentFrames() == [(OP_PONG, True, 0, b"9999")]
    e.conn.resumeWriting()
    assert len(e.sentFrames()) == 1, "the held Pong is written once"


def test_heldPongGoesBeforeTheCloseOfAFailure():
    e = Endpoint()
    e.conn.pauseWriting()
    e.recv(e.frame(OP_PING, b"a"), e.frame(OP_PING, b"b"))
    e.conn.fail(CloseCode.POLICY_VIOLATION, "")
    assert [(op, p) for op, _, _, p in e.sentFrames()] == [(OP_PONG, b"b"), (OP_CLOSE, b"\x03\xf0")]
    assert e.conn.pendingBytes == 0


def test_heldPongGoesBeforeTheReplyToPeerClose():
    e = Endpoint()
    e.conn.pauseWriting()
    e.recv(e.frame(OP_PING, b"a"), e.frame(OP_CLOSE, b"\x03\xe8"), e.frame(OP_PING, b"late"))
    assert [(op, p) for op, _, _, p in e.sentFrames()] == [(OP_PONG, b"a"), (OP_CLOSE, b"\x03\xe8")]
    e.conn.resumeWriting()
    assert len(e.sentFrames()) == 2, "no Pong after our Close"
