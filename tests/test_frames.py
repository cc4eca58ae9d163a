"""
Tests for L{twisted_ws.core.frames}: serialising frames and the incremental
L{FrameParser} (round trips, arbitrary splits of the stream, every framing
rule with its close code, lenient mode after an error).
"""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import given, settings, strategies as st

from twisted_ws.core.closecodes import CloseCode
from twisted_ws.core.frames import (
    END,
    MIDDLE,
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    RSV1,
    RSV2,
    RSV3,
    START,
    WHOLE,
    FrameParser,
    buildFrameHeader,
    serializeFragments,
    serializeFrame,
)

BOUNDARY_LENGTHS = [0, 1, 125, 126, 127, 65535, 65536, 65537]


def key() -> bytes:
    return os.urandom(4)


def joinPieces(pieces):
    """
    Turn parser pieces into whole frames C{(opcode, fin, rsv, payload)},
    checking that the pieces of one frame are consistent and that control
    frames are never split.
    """
    frames = []
    current = None
    for opcode, fin, rsv, payload, part in pieces:
        assert isinstance(payload, bytes)
        if part == WHOLE:
            assert current is None, "WHOLE piece inside a partial frame"
            frames.append((opcode, fin, rsv, payload))
        elif part == START:
            assert current is None, "START inside a partial frame"
            assert not opcode & 0x8, "control frame split into pieces"
            current = [opcode, fin, rsv, [payload]]
        else:
            assert part in (MIDDLE, END)
            assert current is not None, "MIDDLE/END without START"
            assert (opcode, fin, rsv) == tuple(current[:3]), "piece header changed"
            current[3].append(payload)
            if part == END:
                frames.append((current[0], current[1], current[2], b"".join(current[3])))
                current = None
    return frames, current


def parseChunks(parser, chunks):
    pieces = []
    for c in chunks:
        pieces.extend(parser.feed(c))
    return pieces


# -- strategies -----------------------------------------------------------

payloadLengths = st.one_of(
    st.sampled_from(BOUNDARY_LENGTHS),
    st.integers(min_value=0, max_value=300),
    st.integers(min_value=0, max_value=70000),
)


@st.composite
def payloads(draw, maxLen=None):
    n = draw(payloadLengths)
    if maxLen is not None:
        n = min(n, maxLen)
    if n <= 64:
        return draw(st.binary(min_size=n, max_size=n))
    seed = draw(st.binary(min_size=1, max_size=16))
    return (seed * (n // len(seed) + 1))[:n]


@st.composite
def frameSequences(draw, allowedRsv=0):
    """A valid sequence of frames: messages (maybe fragmented) and control frames."""
    frames = []
    nMessages = draw(st.integers(min_value=1, max_value=4))
    for _ in range(nMessages):
        op = draw(st.sampled_from([OP_TEXT, OP_BINARY]))
        nFrag = draw(st.integers(min_value=1, max_value=3))
        for i in range(nFrag):
            rsv = draw(st.sampled_from([0, allowedRsv])) if i == 0 else 0
            frames.append(
                (op if i == 0 else OP_CONTINUATION, i == nFrag - 1, rsv, draw(payloads()))
            )
            if draw(st.booleans()):
                cop = draw(st.sampled_from([OP_PING, OP_PONG]))
                frames.append((cop, True, 0, draw(st.binary(max_size=125))))
    if draw(st.booleans()):
        frames.append((OP_CLOSE, True, 0, b"\x03\xe8" + draw(st.binary(max_size=20))))
    return frames


def serialize(frames, masked):
    return b"".join(
        serializeFrame(op, payload, fin, rsv, key() if masked else None)
        for op, fin, rsv, payload in frames
    )


# -- round trips ------------------------------------------------------------


@pytest.mark.parametrize("length", BOUNDARY_LENGTHS)
@pytest.mark.parametrize("masked", [True, False])
def test_boundaryLengths(length, masked):
    payload = bytes(range(256)) * (length // 256 + 1)
    payload = payload[:length]
    data = serializeFrame(OP_BINARY, payload, maskKey=key() if masked else None)
    # Shortest encoding: 2, 4 or 10 header bytes (+4 for the mask key).
    hlen = 2 if length < 126 else 4 if length < 65536 else 10
    assert len(data) == hlen + (4 if masked else 0) + length
    parser = FrameParser(requireMask=masked)
    assert parser.feed(data) == [(OP_BINARY, True, 0, payload, WHOLE)]
    assert parser.error is None
    assert parser._buf == b""


def test_buildFrameHeaderEncodings():
    assert buildFrameHeader(OP_TEXT, 0) == b"\x81\x00"
    assert buildFrameHeader(OP_TEXT, 125) == b"\x81\x7d"
    assert buildFrameHeader(OP_TEXT, 126) == b"\x81\x7e\x00\x7e"
    assert buildFrameHeader(OP_BINARY, 65535, fin=False) == b"\x02\x7e\xff\xff"
    assert buildFrameHeader(OP_BINARY, 65536) == b"\x82\x7f" + struct.pack("!Q", 65536)
    assert buildFrameHeader(OP_PING, 3, rsv=RSV1, maskKey=b"abcd") == b"\xc9\x83abcd"


def test_serializeFrameRejectsBadControlFrames():
    with pytest.raises(ValueError):
        serializeFrame(OP_PING, b"x", fin=False)
    with pytest.raises(ValueError):
        serializeFrame(OP_CLOSE, b"x" * 126)
    with pytest.raises(ValueError):
        serializeFrame(OP_TEXT, b"x", maskKey=b"abc")
    serializeFrame(OP_PING, b"x" * 125)


def test_maskedPayloadIsMaskedOnTheWire():
    k = b"\x01\x02\x03\x04"
    data = serializeFrame(OP_BINARY, b"\x00" * 8, maskKey=k)
    assert data[1] & 0x80
    assert data[2:6] == k
    assert data[6:] == k * 2


@settings(max_examples=60, deadline=None)
@given(frames=frameSequences(allowedRsv=RSV1), masked=st.booleans())
def test_roundTripSequence(frames, masked):
    data = serialize(frames, masked)
    parser = FrameParser(requireMask=masked, allowedRsv=RSV1)
    got, partial = joinPieces(parser.feed(data))
    assert parser.error is None
    assert partial is None
    assert got == frames
    assert parser._buf == b""


@settings(max_examples=60, deadline=None)
@given(
    frames=frameSequences(allowedRsv=RSV2),
    masked=st.booleans(),
    data=st.data(),
)
def test_randomSplits(frames, masked, data):
    stream = serialize(frames, masked)
    cuts = sorted(
        data.draw(
            st.lists(st.integers(min_value=0, max_value=len(stream)), max_size=12),
            label="cuts",
        )
    )
    chunks = [stream[a:b] for a, b in zip([0] + cuts, cuts + [len(stream)])]
    parser = FrameParser(requireMask=masked, allowedRsv=RSV2)
    got, partial = joinPieces(parseChunks(parser, chunks))
    assert parser.error is None
    assert partial is None
    assert got == frames


@settings(max_examples=30, deadline=None)
@given(frames=frameSequences(), masked=st.booleans())
def test_byteByByte(frames, masked):
    stream = serialize(frames, masked)
    if len(stream) > 3000:
        stream = stream[:3000]
        # Only a prefix: frames up to the cut must come out, the rest partial.
    parser = FrameParser(requireMask=masked)
    pieces = []
    for i in range(len(stream)):
        pieces.extend(parser.feed(stream[i : i + 1]))
    got, _partial = joinPieces(pieces)
    assert parser.error is None
    assert got == frames[: len(got)]
    # The buffered remainder never grows past one header + control payload.
    assert len(parser._buf) <= 14 + 125


def test_controlFramesAreNeverSplit():
    ping = serializeFrame(OP_PING, b"p" * 125, maskKey=key())
    parser = FrameParser(requireMask=True)
    for i in range(len(ping) - 1):
        assert parser.feed(ping[i : i + 1]) == []
    assert parser.feed(ping[-1:]) == [(OP_PING, True, 0, b"p" * 125, WHOLE)]


def test_dataFramePiecesUnmaskAtAnyOffset():
    payload = os.urandom(1001)
    data = serializeFrame(OP_BINARY, payload, maskKey=key())
    parser = FrameParser(requireMask=True)
    pieces = []
    for size in (7, 1, 2, 3, 5, 11, 13):
        pieces.extend(parser.feed(data[:size]))
        data = data[size:]
    pieces.extend(parser.feed(data))
    assert pieces[0][4] == START
    assert pieces[-1][4] == END
    assert all(p[4] == MIDDLE for p in pieces[1:-1])
    assert b"".join(p[3] for p in pieces) == payload


def test_headerOnlyGivesEmptyStart():
    data = serializeFrame(OP_TEXT, b"hello", maskKey=key())
    parser = FrameParser(requireMask=True)
    out = parser.feed(data[:6])
    assert out in ([], [(OP_TEXT, True, 0, b"", START)])
    rest = joinPieces(out + parser.feed(data[6:]))[0]
    assert rest == [(OP_TEXT, True, 0, b"hello")]


def test_tenThousandSmallFrames():
    frame = serializeFrame(OP_BINARY, b"abc", maskKey=b"\x01\x02\x03\x04")
    parser = FrameParser(requireMask=True)
    out = parser.feed(frame * 10000)
    assert len(out) == 10000
    assert all(p == (OP_BINARY, True, 0, b"abc", WHOLE) for p in out)
    assert parser._buf == b""


# -- rules ----------------------------------------------------------------


def feedExpectError(parser, data, code):
    out = parser.feed(data)
    assert parser.error is not None, out
    assert parser.error.code == code, parser.error
    assert parser.lenient
    return out


def test_serverRejectsUnmasked():
    parser = FrameParser(requireMask=True)
    feedExpectError(parser, serializeFrame(OP_TEXT, b"hi"), CloseCode.PROTOCOL_ERROR)
    assert parser.errorOpcode == OP_TEXT


def test_serverRejectsUnmaskedControl():
    parser = FrameParser(requireMask=True)
    feedExpectError(parser, serializeFrame(OP_PING, b"hi"), CloseCode.PROTOCOL_ERROR)


def test_clientRejectsMasked():
    parser = FrameParser(requireMask=False)
    feedExpectError(parser, serializeFrame(OP_BINARY, b"hi", maskKey=key()), 1002)


@pytest.mark.parametrize("rsv", [RSV1, RSV2, RSV3, RSV1 | RSV3, 0x70])
def test_rsvWithoutExtension(rsv):
    parser = FrameParser(requireMask=True)
    feedExpectError(parser, serializeFrame(OP_TEXT, b"x", rsv=rsv, maskKey=key()), 1002)


def test_rsvAllowedOnFirstFrameOnly():
    parser = FrameParser(requireMask=True, allowedRsv=RSV1)
    first = serializeFrame(OP_TEXT, b"ab", fin=False, rsv=RSV1, maskKey=key())
    assert parser.feed(first) == [(OP_TEXT, False, RSV1, b"ab", WHOLE)]
    assert parser.error is None
    cont = serializeFrame(OP_CONTINUATION, b"cd", rsv=RSV1, maskKey=key())
    feedExpectError(parser, cont, 1002)


def test_rsvNotNegotiatedBitRefused():
    parser = FrameParser(requireMask=True, allowedRsv=RSV1)
    feedExpectError(parser, serializeFrame(OP_BINARY, b"x", rsv=RSV2, maskKey=key()), 1002)


def test_rsvOnControlFrameRefusedEvenWhenAllowed():
    parser = FrameParser(requireMask=True, allowedRsv=RSV1)
    feedExpectError(parser, serializeFrame(OP_PING, b"x", rsv=RSV1, maskKey=key()), 1002)


@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 11, 12, 13, 14, 15])
def test_reservedOpcodes(opcode):
    parser = FrameParser(requireMask=True)
    feedExpectError(parser, buildFrameHeader(opcode, 0, maskKey=key()), 1002)
    assert parser.errorOpcode == opcode


@pytest.mark.parametrize("opcode", [OP_CLOSE, OP_PING, OP_PONG])
def test_controlFrameTooLong(opcode):
    parser = FrameParser(requireMask=True)
    # Refused on the header alone.
    feedExpectError(parser, buildFrameHeader(opcode, 126, maskKey=key()), 1002)


@pytest.mark.parametrize("opcode", [OP_CLOSE, OP_PING, OP_PONG])
def test_controlFrameNotFin(opcode):
    parser = FrameParser(requireMask=True)
    feedExpectError(parser, buildFrameHeader(opcode, 0, fin=False, maskKey=key()), 1002)


def test_continuationWithoutMessage():
    parser = FrameParser(requireMask=True)
    feedExpectError(parser, serializeFrame(OP_CONTINUATION, b"x", maskKey=key()), 1002)


def test_continuationAfterFinishedMessage():
    parser = FrameParser(requireMask=True)
    data = serializeFrame(OP_TEXT, b"a", maskKey=key()) + serializeFrame(
        OP_CONTINUATION, b"b", maskKey=key()
    )
    out = feedExpectError(parser, data, 1002)
    assert out == [(OP_TEXT, True, 0, b"a", WHOLE)]


@pytest.mark.parametrize("second", [OP_TEXT, OP_BINARY])
def test_newDataFrameInsideFragmentedMessage(second):
    parser = FrameParser(requireMask=True)
    data = serializeFrame(OP_TEXT, b"a", fin=False, maskKey=key()) + serializeFrame(
        second, b"b", maskKey=key()
    )
    out = feedExpectError(parser, data, 1002)
    assert out == [(OP_TEXT, False, 0, b"a", WHOLE)]


def test_interleavedControlFrames():
    frames = [
        (OP_BINARY, False, 0, b"a"),
        (OP_PING, True, 0, b"p"),
        (OP_CONTINUATION, False, 0, b"b"),
        (OP_PONG, True, 0, b""),
        (OP_CONTINUATION, True, 0, b"c"),
        (OP_TEXT, True, 0, b"next"),
    ]
    parser = FrameParser(requireMask=True)
    got, partial = joinPieces(parser.feed(serialize(frames, True)))
    assert parser.error is None
    assert got == frames


@pytest.mark.parametrize("limit", [None, 1 << 20])
def test_64bitLengthMSBSet(limit):
    parser = FrameParser(requireMask=False, maxMessageSize=limit)
    header = bytes((0x82, 127)) + struct.pack("!Q", (1 << 63) | 5)
    out = parser.feed(header + b"hello")
    assert out == []
    assert parser.error is not None
    assert parser.error.code == CloseCode.PROTOCOL_ERROR


def test_64bitLengthMSBSetOnControlFrame():
    parser = FrameParser(requireMask=False)
    header = bytes((0x89, 127)) + struct.pack("!Q", (1 << 63) | 5)
    feedExpectError(parser, header, 1002)
    # Nothing after a garbage length can be framed.
    assert parser.feed(serializeFrame(OP_CLOSE, b"\x03\xe8")) == []


@pytest.mark.parametrize("masked", [True, False])
@pytest.mark.parametrize("size", [100, 125, 126, 65535, 65536, 1 << 20])
def test_maxMessageSizeOneFrameHeaderOnly(masked, size):
    parser = FrameParser(requireMask=masked, maxMessageSize=size)
    k = key() if masked else None
    # Exactly the limit is fine (header only: a START with no payload or nothing).
    out = parser.feed(buildFrameHeader(OP_BINARY, size, maskKey=k))
    assert parser.error is None
    assert out in ([], [(OP_BINARY, True, 0, b"", START)])
    parser = FrameParser(requireMask=masked, maxMessageSize=size)
    out = feedExpectError(parser, buildFrameHeader(OP_BINARY, size + 1, maskKey=k), 1009)
    assert out == []


def test_maxMessageSizeCumulativeFragmentsHeaderOnly():
    parser = FrameParser(requireMask=True, maxMessageSize=100)
    data = serializeFrame(OP_TEXT, b"a" * 40, fin=False, maskKey=key())
    data += serializeFrame(OP_CONTINUATION, b"b" * 40, fin=False, maskKey=key())
    assert len(parser.feed(data)) == 2
    assert parser.error is None
    out = feedExpectError(
        parser, buildFrameHeader(OP_CONTINUATION, 21, maskKey=key()), 1009
    )
    assert out == []


def test_maxMessageSizeCumulativeExactlyAtLimit():
    parser = FrameParser(requireMask=True, maxMessageSize=100)
    data = serializeFrame(OP_TEXT, b"a" * 60, fin=False, maskKey=key())
    data += serializeFrame(OP_CONTINUATION, b"b" * 40, maskKey=key())
    # Then a new message starts the count again.
    data += serializeFrame(OP_BINARY, b"c" * 100, maskKey=key())
    assert len(parser.feed(data)) == 3
    assert parser.error is None


def test_maxMessageSizeIgnoresControlFrames():
    parser = FrameParser(requireMask=True, maxMessageSize=10)
    data = serializeFrame(OP_TEXT, b"a" * 10, fin=False, maskKey=key())
    data += serializeFrame(OP_PING, b"p" * 100, maskKey=key())
    data += serializeFrame(OP_CONTINUATION, b"", maskKey=key())
    assert len(parser.feed(data)) == 3
    assert parser.error is None


def test_maxFragments():
    parser = FrameParser(requireMask=True, maxFragments=3)
    data = serializeFrame(OP_BINARY, b"a", fin=False, maskKey=key())
    data += serializeFrame(OP_CONTINUATION, b"b", fin=False, maskKey=key())
    data += serializeFrame(OP_CONTINUATION, b"c", fin=False, maskKey=key())
    assert len(parser.feed(data)) == 3
    assert parser.error is None
    out = feedExpectError(parser, serializeFrame(OP_CONTINUATION, b"d", maskKey=key()), 1009)
    assert out == []


def test_maxFragmentsExactly():
    parser = FrameParser(requireMask=True, maxFragments=2)
    data = serializeFrame(OP_BINARY, b"a", fin=False, maskKey=key())
    data += serializeFrame(OP_CONTINUATION, b"b", maskKey=key())
    data += serializeFrame(OP_BINARY, b"a", fin=False, maskKey=key())
    data += serializeFrame(OP_CONTINUATION, b"b", maskKey=key())
    assert len(parser.feed(data)) == 4
    assert parser.error is None


# -- after an error ---------------------------------------------------------


def test_piecesBeforeErrorReturnedAndCloseFoundLater():
    good = serializeFrame(OP_TEXT, b"ok", maskKey=key())
    bad = serializeFrame(OP_TEXT, b"unmasked")
    skipped = serializeFrame(OP_BINARY, b"x" * 1000, maskKey=key())
    ping = serializeFrame(OP_PING, b"p", maskKey=key())
    close = serializeFrame(OP_CLOSE, b"\x03\xe8bye", maskKey=key())
    parser = FrameParser(requireMask=True)
    out = feedExpectError(parser, good + bad + skipped + ping + close, 1002)
    assert out == [(OP_TEXT, True, 0, b"ok", WHOLE)]
    assert parser.feed(b"") == [(OP_CLOSE, True, 0, b"\x03\xe8bye", WHOLE)]


def test_closeFoundInLaterFeedsAfterError():
    parser = FrameParser(requireMask=True)
    feedExpectError(parser, serializeFrame(7, b"", maskKey=key()), 1002)
    assert parser.feed(serializeFrame(OP_BINARY, b"x" * 300, maskKey=key())) == []
    close = serializeFrame(OP_CLOSE, b"\x03\xe8", maskKey=key())
    assert parser.feed(close[:3]) == []
    assert parser.feed(close[3:]) == [(OP_CLOSE, True, 0, b"\x03\xe8", WHOLE)]


def test_lenientSkipsEverythingButClose():
    parser = FrameParser(requireMask=True)
    parser.lenient = True
    frames = [
        (OP_TEXT, True, 0, b"a"),
        (OP_BINARY, False, 0, b"b" * 200),
        (OP_PING, True, 0, b"p"),
        (OP_CONTINUATION, True, 0, b"c"),
        (OP_CLOSE, True, 0, b""),
    ]
    assert parser.feed(serialize(frames, True)) == [(OP_CLOSE, True, 0, b"", WHOLE)]


@pytest.mark.parametrize("viaError", [True, False])
def test_hugeSkippedFrameIsNotBuffered(viaError):
    parser = FrameParser(requireMask=True, maxMessageSize=1 << 20)
    size = 10 << 20
    k = key()
    if not viaError:
        parser.lenient = True
    stream = buildFrameHeader(OP_BINARY, size, maskKey=k)
    out = parser.feed(stream)
    if viaError:
        assert parser.error is not None and parser.error.code == 1009
    assert out == []
    chunk = b"\x00" * 65536
    for _ in range(size // 65536):
        assert parser.feed(chunk) == []
        assert len(parser._buf) < 1024
    close = serializeFrame(OP_CLOSE, b"\x03\xe8", maskKey=key())
    assert parser.feed(close) == [(OP_CLOSE, True, 0, b"\x03\xe8", WHOLE)]


def test_hugeSkippedFrameSentWithHeaderInChunk():
    # The error is found in the middle of a chunk: what follows its header
    # is dropped, not buffered.
    parser = FrameParser(requireMask=True)
    stream = buildFrameHeader(OP_BINARY, 10 << 20)  # unmasked -> 1002
    out = parser.feed(stream + b"\x00" * 65000)
    assert parser.error.code == 1002
    assert out == []
    for _ in range(160):
        parser.feed(b"\x00" * 65536)
        assert len(parser._buf) < 1024


# -- gathering: a large binary frame unmasked straight into one buffer ------


@pytest.mark.parametrize("requireMask", [True, False])
def test_gatherGivesSplitBinaryFrameWhole(requireMask):
    """
    With C{gather}, a final binary frame arriving over several reads comes
    out once, L{WHOLE}, as C{bytes} equal to its payload, with a ping
    behind it in the same read still parsed; without it, in pieces.
    """
    payload = os.urandom(200_000)
    frameKey = key() if requireMask else None
    stream = serializeFrame(OP_BINARY, payload, maskKey=frameKey)
    stream += serializeFrame(OP_PING, b"p", maskKey=key() if requireMask else None)
    cuts = [0, 7, 65536, 65537, 131072, len(stream)]
    for gather, expected in ((True, [WHOLE, WHOLE]), (False, [START, MIDDLE, MIDDLE, END, WHOLE])):
        parser = FrameParser(requireMask=requireMask)
        parser.gather = gather
        pieces = []
        for a, b in zip(cuts, cuts[1:]):
            pieces += parser.feed(stream[a:b])
        assert parser.error is None
        assert [p[4] for p in pieces] == expected
        assert joinPieces(pieces) == ([(OP_BINARY, True, 0, payload), (OP_PING, True, 0, b"p")], None)
        assert type(pieces[0][3]) is bytes


def test_gatherLeavesTextFragmentsAndReservedBitsInPieces():
    """
    Text (checked as UTF-8 while it arrives), non-final frames and frames
    with RSV bits (an extension's) still come in pieces.
    """
    for opcode, fin, rsv in ((OP_TEXT, True, 0), (OP_BINARY, False, 0), (OP_BINARY, True, RSV1)):
        parser = FrameParser(requireMask=True, allowedRsv=RSV1)
        parser.gather = True
        stream = serializeFrame(opcode, b"a" * 1000, fin=fin, rsv=rsv, maskKey=key())
        pieces = parser.feed(stream[:500]) + parser.feed(stream[500:])
        assert [p[4] for p in pieces] == [START, END]


def test_gatherAboveLimitComesInPieces(monkeypatch):
    """
    A frame above GATHER_MAX (possible with a higher or no size limit) is
    not allocated whole on its header's word.
    """
    from twisted_ws.core import frames

    monkeypatch.setattr(frames, "GATHER_MAX", 999)
    parser = FrameParser(requireMask=True)
    parser.gather = True
    stream = serializeFrame(OP_BINARY, b"b" * 1000, maskKey=key())
    pieces = parser.feed(stream[:500]) + parser.feed(stream[500:])
    assert [p[4] for p in pieces] == [START, END]


# -- several fragments serialised into one buffer ----------------------------


def test_serializeFragmentsMatchesFrameByFrame():
    payload = bytes(range(256)) * 40  # 10,240 bytes
    out = serializeFragments(OP_TEXT, payload, 1000, 9000, 3000, fin=True, rsv=RSV1)
    assert out == (
        serializeFrame(OP_TEXT, payload[1000:4000], fin=False, rsv=RSV1)
        + serializeFrame(OP_CONTINUATION, payload[4000:7000], fin=False)
        + serializeFrame(OP_CONTINUATION, payload[7000:9000], fin=False)
    ), "stops before the payload's end: no frame is final"
    tail = serializeFragments(OP_CONTINUATION, payload, 9000, len(payload), 3000, fin=True)
    assert tail == serializeFrame(OP_CONTINUATION, payload[9000:], fin=True)


def test_serializeFragmentsOneFrameAndEmpty():
    assert serializeFragments(OP_BINARY, b"abc", 0, 3, None) == serializeFrame(OP_BINARY, b"abc")
    assert serializeFragments(OP_BINARY, b"", 0, 0, 10) == serializeFrame(OP_BINARY, b"")
    assert serializeFragments(OP_BINARY, b"", 0, 0, None) == serializeFrame(OP_BINARY, b"")


def test_serializeFragmentsMasksEachFrameWithItsOwnKey():
    keys = iter([b"\x01\x02\x03\x04", b"\xf0\xf1\xf2\xf3"])
    out = serializeFragments(OP_BINARY, b"abcdef", 0, 6, 4, maskKey=lambda n: next(keys))
    assert out == serializeFrame(OP_BINARY, b"abcd", False, maskKey=b"\x01\x02\x03\x04") + serializeFrame(
        OP_CONTINUATION, b"ef", maskKey=b"\xf0\xf1\xf2\xf3"
    )
