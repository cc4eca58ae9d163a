"""
The RFC 6455 frame codec (§5): serialising frames and parsing a byte stream.

The parser works on whole buffers: one call parses every frame a read brought,
payloads are unmasked in one operation each, and a frame whose payload has not
fully arrived is handed on in pieces as its bytes come (so text can be checked
as it arrives and a 16 MiB frame is never copied around while it grows).

It also enforces the rules that only need frame headers: masking by role,
reserved bits and opcodes, control frame size and fragmentation, continuation
order, and the size and fragment-count limits of a message, which are checked
on the header so an oversized message is refused before its payload arrives.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from enum import IntEnum

from .closecodes import CloseCode
from .errors import ProtocolError
from .masking import MessageBuffer, mask

__all__ = [
    "Opcode",
    "OP_CONTINUATION",
    "OP_TEXT",
    "OP_BINARY",
    "OP_CLOSE",
    "OP_PING",
    "OP_PONG",
    "RSV1",
    "RSV2",
    "RSV3",
    "WHOLE",
    "START",
    "MIDDLE",
    "END",
    "MAX_CONTROL_PAYLOAD",
    "buildFrameHeader",
    "serializeFrame",
    "serializeFragments",
    "FrameParser",
]

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA


class Opcode(IntEnum):
    """Frame opcodes defined by RFC 6455 (the others are reserved)."""

    CONTINUATION = OP_CONTINUATION
    TEXT = OP_TEXT
    BINARY = OP_BINARY
    CLOSE = OP_CLOSE
    PING = OP_PING
    PONG = OP_PONG


RSV1 = 0x40
RSV2 = 0x20
RSV3 = 0x10

#: Values of the C{part} field of a parsed piece: a whole frame, or the
#: first, a middle or the last piece of a frame whose payload came in parts.
WHOLE = 0
START = 1
MIDDLE = 2
END = 3

MAX_CONTROL_PAYLOAD = 125

#: Binary frames up to this size that arrive over several reads are
#: gathered into one buffer (see L{FrameParser.gather}); larger ones, which
#: only a limit above it lets through, come in pieces as before.
GATHER_MAX = 64 * 1024 * 1024

_pack16 = struct.Struct("!BBH").pack
_pack64 = struct.Struct("!BBQ").pack
_unpack16 = struct.Struct("!H").unpack_from
_unpack64 = struct.Struct("!Q").unpack_from


def buildFrameHeader(
    opcode: int,
    length: int,
    fin: bool = True,
    rsv: int = 0,
    maskKey: bytes | None = None,
) -> bytes:
    """Build a frame header, using the shortest length encoding."""
    b0 = (0x80 if fin else 0) | rsv | opcode
    m = 0x80 if maskKey else 0
    if length < 126:
        header = bytes((b0, m | length))
    elif length < 0x10000:
        header = _pack16(b0, m | 126, length)
    else:
        header = _pack64(b0, m | 127, length)
    if maskKey:
        return header + maskKey
    return header


def serializeFrame(
    opcode: int,
    payload: bytes,
    fin: bool = True,
    rsv: int = 0,
    maskKey: bytes | None = None,
) -> bytes:
    """
    Serialise one frame.

    C{maskKey} (4 bytes) masks the payload, as a client must; servers send
    unmasked frames.  Control frames must be final and at most 125 bytes.
    """
    if opcode & 0x8:
        if not fin:
            raise ValueError("control frames cannot be fragmented")
        if len(payload) > MAX_CONTROL_PAYLOAD:
            raise ValueError("control frame payloads are limited to 125 bytes")
    if maskKey:
        if len(maskKey) != 4:
            raise ValueError("a mask key has 4 bytes")
        payload = mask(payload, maskKey)
    return buildFrameHeader(opcode, len(payload), fin, rsv, maskKey) + payload


def serializeFragments(
    opcode: int,
    payload: bytes,
    start: int,
    stop: int,
    size: int | None,
    fin: bool = True,
    rsv: int = 0,
    maskKey: Callable[[int], bytes] | None = None,
) -> bytes:
    """
    Serialise C{payload[start:stop]} as consecutive frames of at most
    C{size} bytes (C{None}: one frame) into one buffer, so that each payload
    byte is copied once (no slices, no frame by frame joins).  The first has
    C{opcode} and C{rsv}, the others are continuations; C{fin} is set on a
    frame that ends the payload.  A client passes C{maskKey}, called for a
    fresh key per frame.
    """
    view = memoryview(payload)
    parts: list[bytes | memoryview] = []
    total = len(payload)
    step = size or stop - start or 1
    # At least one frame: an empty message is one empty frame.
    for offset in range(start, max(stop, start + 1), step):
        chunk = view[offset : min(offset + step, stop)]
        last = fin and offset + len(chunk) >= total
        if maskKey is None:
            parts.append(buildFrameHeader(opcode, len(chunk), last, rsv))
            parts.append(chunk)
        else:
            key = maskKey(4)
            parts.append(buildFrameHeader(opcode, len(chunk), last, rsv, key))
            parts.append(mask(chunk, key))
        opcode, rsv = OP_CONTINUATION, 0
    return b"".join(parts)


class FrameParser:
    """
    Incremental frame parser for one direction of one connection.

    L{feed} returns a list of pieces C{(opcode, fin, rsv, payload, part)}:
    C{payload} is unmasked, C{part} is L{WHOLE} for a frame that arrived
    entirely, else L{START}, L{MIDDLE}, L{END} for the pieces of a data frame
    given out as its bytes arrive (every piece of a frame repeats its
    header fields).  Control frames are always given whole.

    When the stream breaks a rule, L{feed} stops before the offending frame
    and sets L{error} to a L{ProtocolError}; the pieces it returned came
    before the error.  From then on (or once L{lenient} is set by the
    connection, after it sent a Close) the parser only looks for the peer's
    Close frame: every other frame is skipped without being buffered.

    @ivar requireMask: C{True} on a server (client frames must be masked),
        C{False} on a client (server frames must not be).
    @ivar maxMessageSize: the largest message payload accepted, counted
        on frame headers, or C{None} for no limit.
    @ivar maxFragments: the most frames one message may have, or C{None}.
    @ivar allowedRsv: the RSV bits negotiated extensions may set on the
        first frame of a data message.
    @ivar gather: when C{True}, a final binary frame without RSV bits whose
        payload comes over several reads is unmasked straight into one
        buffer of its declared size and given out once, L{WHOLE}: no
        pieces to keep and join (set when messages are not streamed).
        Memory is only touched as the payload arrives.
    """

    __slots__ = (
        "requireMask",
        "maxMessageSize",
        "maxFragments",
        "allowedRsv",
        "lenient",
        "error",
        "errorOpcode",
        "_buf",
        "_remaining",
        "_discard",
        "_op",
        "_fin",
        "_rsv",
        "_key",
        "_keyOffset",
        "_inMessage",
        "_messageSize",
        "_fragments",
        "gather",
        "_message",
    )

    def __init__(
        self,
        requireMask: bool,
        maxMessageSize: int | None = None,
        maxFragments: int | None = None,
        allowedRsv: int = 0,
    ) -> None:
        self.requireMask = requireMask
        self.maxMessageSize = maxMessageSize
        self.maxFragments = maxFragments
        self.allowedRsv = allowedRsv
        self.lenient = False
        self.error: ProtocolError | None = None
        #: The opcode of the frame that broke the rules (a broken Close
        #: still ends the peer's side of the close handshake).
        self.errorOpcode: int | None = None
        self._buf = b""
        self._remaining = 0
        self._discard = False
        self._op = 0
        self._fin = False
        self._rsv = 0
        self._key: bytes | None = None
        self._keyOffset = 0
        self._inMessage = False
        self._messageSize = 0
        self._fragments = 0
        self.gather = False
        self._message = None

    def feed(self, data: bytes) -> list[tuple[int, bool, int, bytes, int]]:
        """Parse C{data} (appended to what came before) into frame pieces."""
        if self._buf:
            data = self._buf + data
            self._buf = b""
        out: list[tuple[int, bool, int, bytes, int]] = []
        if self._remaining:
            data = self._continuePayload(data, out)
        pos = 0
        end = len(data)
        append = out.append
        while True:
            avail = end - pos
            if avail < 2:
                break
            b0 = data[pos]
            b1 = data[pos + 1]
            length = b1 & 0x7F
            if length < 126:
                hlen = 2
            elif length == 126:
                if avail < 4:
                    break
                length = _unpack16(data, pos + 2)[0]
                hlen = 4
            else:
                if avail < 10:
                    break
                length = _unpack64(data, pos + 2)[0]
                hlen = 10
            masked = b1 & 0x80
            if masked:
                if avail < hlen + 4:
                    break
                key = data[pos + hlen : pos + hlen + 4]
                hlen += 4
            else:
                key = None
            opcode = b0 & 0x0F
            fin = b0 & 0x80 != 0
            rsv = b0 & 0x70

            if self.lenient:
                if opcode == OP_CLOSE and length <= MAX_CONTROL_PAYLOAD:
                    if avail < hlen + length:
                        break
                    start = pos + hlen
                    payload = data[start : start + length]
                    if key:
                        payload = mask(payload, key)
                    append((opcode, True, 0, payload, WHOLE))
                    pos = start + length
                    continue
                # Skip anything else without keeping it.
                if avail - hlen >= length:
                    pos += hlen + length
                    continue
                self._startPartial(opcode, fin, rsv, key, length - (avail - hlen), True)
                pos = end
                break

            reason = self._check(opcode, fin, rsv, masked, length)
            if reason is not None:
                self.error = reason
                self.errorOpcode = opcode
                self.lenient = True
                if length >> 63:
                    # The length itself is garbage: nothing after it can be framed.
                    self._startPartial(opcode, fin, rsv, key, 1 << 64, True)
                else:
                    self._startPartial(opcode, fin, rsv, key, length, True)
                self._buf = data[pos + hlen :]
                return out

            start = pos + hlen
            if avail - hlen >= length:
                stop = start + length
                payload = data[start:stop]
                if key:
                    payload = mask(payload, key)
                append((opcode, fin, rsv, payload, WHOLE))
                pos = stop
            elif opcode & 0x8:
                break  # wait for the whole control frame (at most 139 bytes)
            elif self.gather and opcode == OP_BINARY and fin and not rsv and length <= GATHER_MAX:
                got = end - start
                message = self._message = MessageBuffer(length)
                message.write(memoryview(data)[start:end], key)
                self._startPartial(opcode, fin, rsv, key, length - got, False)
                self._keyOffset = got
                pos = end
                break
            else:
                payload = data[start:end]
                got = end - start
                if key:
                    payload = mask(payload, key)
                append((opcode, fin, rsv, payload, START))
                self._startPartial(opcode, fin, rsv, key, length - got, False)
                self._keyOffset = got
                pos = end
                break
        if pos < end:
            self._buf = data[pos:]
        return out

    def _startPartial(
        self,
        opcode: int,
        fin: bool,
        rsv: int,
        key: bytes | None,
        remaining: int,
        discard: bool,
    ) -> None:
        self._op = opcode
        self._fin = fin
        self._rsv = rsv
        self._key = key
        self._keyOffset = 0
        self._remaining = remaining
        self._discard = discard

    def _continuePayload(
        self, data: bytes, out: list[tuple[int, bool, int, bytes, int]]
    ) -> bytes:
        """Take the rest of a partial frame's payload from the front of C{data}."""
        remaining = self._remaining
        n = len(data)
        message = self._message
        if message is not None:
            if n < remaining:
                message.write(data, self._key, self._keyOffset)
                self._keyOffset += n
                self._remaining = remaining - n
                return b""
            message.write(memoryview(data)[:remaining], self._key, self._keyOffset)
            self._message = None
            self._remaining = 0
            out.append((self._op, self._fin, self._rsv, message.take(), WHOLE))
            return data[remaining:]
        if n < remaining:
            chunk, rest, part = data, b"", MIDDLE
        else:
            chunk, rest, part = data[:remaining], data[remaining:], END
        self._remaining = remaining - len(chunk)
        if not self._discard:
            if self._key:
                chunk = mask(chunk, self._key, self._keyOffset)
                self._keyOffset += len(chunk)
            if chunk or part == END:
                out.append((self._op, self._fin, self._rsv, chunk, part))
        return rest

    def _check(
        self, opcode: int, fin: bool, rsv: int, masked: int, length: int
    ) -> ProtocolError | None:
        """Check one frame header; update the message state when it is fine."""
        if length >> 63:
            return ProtocolError(CloseCode.PROTOCOL_ERROR, "64-bit length with the top bit set")
        if opcode & 0x8:
            if opcode > OP_PONG:
                return ProtocolError(CloseCode.PROTOCOL_ERROR, f"reserved opcode {opcode}")
            if not fin:
                return ProtocolError(CloseCode.PROTOCOL_ERROR, "fragmented control frame")
            if length > MAX_CONTROL_PAYLOAD:
                return ProtocolError(
                    CloseCode.PROTOCOL_ERROR, "control frame payload over 125 bytes"
                )
            if rsv:
                return ProtocolError(CloseCode.PROTOCOL_ERROR, "reserved bits set on a control frame")
        else:
            if opcode == OP_CONTINUATION:
                if not self._inMessage:
                    return ProtocolError(
                        CloseCode.PROTOCOL_ERROR, "continuation frame without a message to continue"
                    )
                if rsv:
                    return ProtocolError(
                        CloseCode.PROTOCOL_ERROR, "reserved bits set on a continuation frame"
                    )
                self._fragments += 1
                if self.maxFragments is not None and self._fragments > self.maxFragments:
                    return ProtocolError(
                        CloseCode.MESSAGE_TOO_BIG,
                        f"message has more than {self.maxFragments} fragments",
                    )
                size = self._messageSize + length
            elif opcode <= OP_BINARY:
                if self._inMessage:
                    return ProtocolError(
                        CloseCode.PROTOCOL_ERROR, "new message started inside a fragmented message"
                    )
                if rsv & ~self.allowedRsv:
                    return ProtocolError(CloseCode.PROTOCOL_ERROR, "reserved bits set")
                self._fragments = 1
                size = length
            else:
                return ProtocolError(CloseCode.PROTOCOL_ERROR, f"reserved opcode {opcode}")
            if self.maxMessageSize is not None and size > self.maxMessageSize:
                return ProtocolError(
                    CloseCode.MESSAGE_TOO_BIG,
                    f"message larger than {self.maxMessageSize} bytes",
                )
            self._messageSize = size
            self._inMessage = not fin
        if self.requireMask:
            if not masked:
                return ProtocolError(CloseCode.PROTOCOL_ERROR, "client frames must be masked")
        elif masked:
            return ProtocolError(CloseCode.PROTOCOL_ERROR, "server frames must not be masked")
        return None
