"""
Fuzz the I/O-free core: arbitrary bytes, and arbitrary frame sequences with
random header bits, fed in random chunks into a server-side
L{WebSocketConnection}.  Nothing may escape C{receiveData}, everything
written must be valid server frames, and after a Close nothing more is
written.
"""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings, strategies as st

from twisted_ws.core.closecodes import isValidWireCode
from twisted_ws.core.connection import State, WebSocketConnection
from twisted_ws.core.frames import OP_CLOSE, WHOLE, FrameParser
from twisted_ws.core.masking import mask

SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


class Sink:
    """A handler that accepts everything and checks the types it gets."""

    def __init__(self):
        self.calls = 0

    def textMessageReceived(self, text):
        assert isinstance(text, str)
        self.calls += 1

    def binaryMessageReceived(self, data):
        assert isinstance(data, bytes)
        self.calls += 1

    def messageStarted(self, isText):
        self.calls += 1

    def messageDataReceived(self, data):
        assert isinstance(data, (str, bytes)) and data
        self.calls += 1

    def messageEnded(self):
        self.calls += 1

    def pingReceived(self, payload):
        self.calls += 1

    def pongReceived(self, payload):
        self.calls += 1

    def closeReceived(self, code, reason):
        self.calls += 1


class Watcher:
    """A write callable that checks the output as it goes."""

    def __init__(self):
        self.parser = FrameParser(requireMask=False, maxMessageSize=None, maxFragments=None)
        self.closeWritten = False
        self.writes = 0

    def __call__(self, data):
        assert isinstance(data, bytes)
        assert not self.closeWritten, "something written after our Close"
        self.writes += 1
        pieces = self.parser.feed(data)
        assert self.parser.error is None, self.parser.error
        # Each write holds whole frames (several when they were batched).
        assert pieces and all(piece[4] == WHOLE for piece in pieces), pieces
        assert self.parser._buf == b""
        for opcode, _fin, rsv, payload, _ in pieces:
            assert not self.closeWritten, "a frame after our Close"
            assert rsv == 0
            if opcode == OP_CLOSE:
                self.closeWritten = True
                if payload:
                    code = int.from_bytes(payload[:2], "big")
                    assert isValidWireCode(code), code
                    payload[2:].decode("utf-8")


def run(stream: bytes, cuts, streaming=False, maxMessageSize=1 << 20):
    handler = Sink()
    write = Watcher()
    conn = WebSocketConnection(
        handler, write, maxMessageSize=maxMessageSize, maxFragments=8, streaming=streaming
    )
    points = sorted({min(c, len(stream)) for c in cuts})
    chunks = [stream[a:b] for a, b in zip([0] + points, points + [len(stream)])]
    for chunk in chunks:
        conn.receiveData(chunk)
    conn.receiveData(b"")
    if write.closeWritten:
        assert conn.state is State.CLOSING and conn.closeSent is not None
    if conn.failure is not None:
        assert write.closeWritten
    return conn, write


cutLists = st.lists(st.integers(min_value=0, max_value=4096), max_size=20)


@SETTINGS
@given(data=st.binary(max_size=2048), cuts=cutLists, streaming=st.booleans())
def test_arbitraryBytes(data, cuts, streaming):
    run(data, cuts, streaming)


@st.composite
def rawFrame(draw):
    """One frame with random header bits, valid-ish payload and length."""
    b0 = draw(
        st.one_of(
            st.integers(min_value=0, max_value=255),
            st.sampled_from([0x81, 0x82, 0x01, 0x02, 0x00, 0x80, 0x88, 0x89, 0x8A, 0xC1]),
        )
    )
    kind = draw(st.sampled_from(["text", "utf8ish", "binary", "close"]))
    if kind == "text":
        payload = draw(st.text(max_size=40)).encode("utf-8")
    elif kind == "close":
        payload = draw(st.integers(min_value=0, max_value=65535)).to_bytes(2, "big") + draw(
            st.text(max_size=10)
        ).encode()
    elif kind == "utf8ish":
        payload = draw(
            st.lists(
                st.sampled_from(
                    [b"a", b"\xc3\xa9", b"\xe2\x82\xac", b"\xf0\x9f\x98\x80", b"\xed\xa0",
                     b"\x80", b"\xff", b"\xf4\x90", b"\xe2\x82", b"\xc3"]
                ),
                max_size=12,
            )
        )
        payload = b"".join(payload)
    else:
        payload = draw(st.binary(max_size=300))
    masked = draw(st.booleans()) or draw(st.booleans())  # mostly masked
    lengthMode = draw(st.sampled_from(["exact", "exact", "exact", "16", "64", "huge", "msb"]))
    n = len(payload)
    if lengthMode == "exact" and n < 126:
        lenBytes = bytes([n])
    elif lengthMode in ("exact", "16"):
        lenBytes = bytes([126]) + struct.pack("!H", n)
    elif lengthMode == "64":
        lenBytes = bytes([127]) + struct.pack("!Q", n)
    elif lengthMode == "huge":
        lenBytes = bytes([127]) + struct.pack("!Q", draw(st.integers(min_value=n, max_value=1 << 40)))
    else:
        lenBytes = bytes([127]) + struct.pack("!Q", (1 << 63) | n)
    head = bytes([b0, (0x80 if masked else 0) | lenBytes[0]]) + lenBytes[1:]
    if masked:
        key = draw(st.binary(min_size=4, max_size=4))
        return head + key + mask(payload, key)
    return head + payload


@st.composite
def validMessageFrames(draw):
    """Mostly-valid traffic: fragmented messages, pings, a Close at the end."""
    out = []
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        nFrag = draw(st.integers(min_value=1, max_value=4))
        op = draw(st.sampled_from([1, 2]))
        text = draw(st.text(max_size=30)).encode()
        bounds = sorted(draw(st.lists(st.integers(0, len(text)), min_size=nFrag - 1, max_size=nFrag - 1)))
        parts = [text[a:b] for a, b in zip([0] + bounds, bounds + [len(text)])]
        for i, part in enumerate(parts):
            b0 = (0x80 if i == len(parts) - 1 else 0) | (op if i == 0 else 0)
            key = draw(st.binary(min_size=4, max_size=4))
            out.append(bytes([b0, 0x80 | len(part)]) + key + mask(part, key))
            if draw(st.integers(0, 4)) == 0:
                out.append(bytes([0x89, 0x80]) + key)
    return out


@SETTINGS
@given(
    frames=st.lists(st.one_of(rawFrame(), validMessageFrames().map(b"".join)), max_size=8),
    cuts=cutLists,
    streaming=st.booleans(),
    limit=st.sampled_from([None, 64, 1 << 20]),
)
def test_frameSequences(frames, cuts, streaming, limit):
    run(b"".join(frames), cuts, streaming, limit)


@SETTINGS
@given(frames=validMessageFrames(), cuts=cutLists, streaming=st.booleans())
def test_validTrafficNeverFails(frames, cuts, streaming):
    conn, write = run(b"".join(frames), cuts, streaming)
    assert conn.failure is None
    assert not write.closeWritten


@SETTINGS
@given(
    frames=st.lists(rawFrame(), max_size=6),
    cuts=cutLists,
    action=st.sampled_from(["close", "fail", "send", "pause"]),
)
def test_localActionsInterleaved(frames, cuts, action):
    """Local sends, closes and pauses mixed with arbitrary input."""
    handler = Sink()
    write = Watcher()
    conn = WebSocketConnection(handler, write, fragmentSize=16)
    stream = b"".join(frames)
    points = sorted({min(c, len(stream)) for c in cuts})
    chunks = [stream[a:b] for a, b in zip([0] + points, points + [len(stream)])]
    for i, chunk in enumerate(chunks):
        if i == 1:
            if action == "close":
                conn.close(1000, "bye")
            elif action == "fail":
                conn.fail(1011, "oops")
            elif action == "pause":
                conn.pauseWriting()
                conn.sendMessage(b"x" * 50)
            else:
                conn.sendMessage("hello" * 10)
        conn.receiveData(chunk)
    conn.resumeWriting()
    conn.sendMessage(b"end")
    conn.receiveData(b"")
    if conn.state is State.CLOSING:
        assert conn.closeSent is not None or conn._queue
