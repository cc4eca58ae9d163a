"""
permessage-deflate (RFC 7692): negotiation and per-message compression.

Three objects, all free of I/O:

  - L{PerMessageDeflate}, the server's extension factory: it reads the
    client's offers, declines the malformed ones, accepts the first it can
    honour under the server's policy and answers with the agreed parameters;
  - L{ClientPerMessageDeflate}, the client's: it builds the offer and checks
    the server's answer strictly;
  - L{DeflateExtension}, the live extension of one connection: it compresses
    outgoing messages and inflates incoming ones, bounded by the message size
    limit.

Decompression is where a WebSocket server is easiest to hurt: a 1 MiB frame
can inflate to 1 GiB.  The inflater is therefore never asked for more than
the rest of the message limit plus one byte (C{max_length}), so it stops as
soon as the limit is passed and the connection is failed with 1009 while at
most the limit has been produced.  Corrupt deflate data fails it with 1007.

Memory per connection
=====================

zlib's own figures, checked with C{tracemalloc} (CPython's zlib allocates
through the traced raw allocator), for one connection:

  - compressor (our sending side): M{2^(w+2) + 2^(m+9)} bytes plus about
    6 KiB of state, M{w} our window bits, M{m} the C{memLevel};
  - decompressor (the peer's side): M{2^w} bytes plus about 7 KiB,
    M{w} the peer's window bits.

    =================================== ============ ==============
    setting (window bits / memLevel)    compressor   decompressor
    =================================== ============ ==============
    15 / 8 (zlib's defaults; client's)  262 KiB      39 KiB
    12 / 5 (server defaults)            38 KiB       11 KiB
    10 / 4                              18 KiB       8 KiB
    9 / 1                               9 KiB        8 KiB
    =================================== ============ ==============

Both objects are created lazily, on the first message that needs them, so an
idle connection that never exchanged a compressed message costs nothing
beyond the small L{DeflateExtension} object.  With context takeover a side's
object then lives as long as the connection (that is the point: later
messages refer to earlier ones).  With C{no_context_takeover} for a side,
its object is created for each message and dropped after it, so an idle
connection holds nothing and only connections in the middle of a message
pay.  Hence the levers, by how much memory they save: C{serverNoContextTakeover}
(the compressor is the big one), C{serverMaxWindowBits} and C{memLevel}, then
C{clientNoContextTakeover} and C{clientMaxWindowBits}.

Measured server RSS (500 and 200 C{websockets} clients with compression, one
Twisted process): a connected idle connection costs the same with deflate
negotiated as without (about 6 KiB, all of it Twisted and the connection);
after compressed traffic both ways, about 54 KiB more per connection with
the server defaults (12 bits, memLevel 5), 292 KiB with zlib's defaults
(15 bits, memLevel 8), and nothing more with no context takeover both ways.

Window bits 8
=============

zlib (since 1.2.9) refuses a raw deflate compressor with an 8-bit window.
When 8 is agreed for our side we compress with a 9-bit zlib window, which is
still within the agreement: zlib never emits a match further back than
M{2^w - 262} bytes (C{MAX_DIST}: it keeps C{MIN_LOOKAHEAD} bytes of the
window for lookahead), 250 bytes for M{w = 9}, below the 256 an 8-bit window
allows.  (The tests decode such output with an 8-bit inflater.)  Our
inflater uses at least 9 bits too: a larger window only accepts more, and it
copes with peers whose zlib had the same quirk.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence

from .closecodes import CloseCode
from .errors import HandshakeError, ProtocolError

__all__ = [
    "EXTENSION_NAME",
    "PerMessageDeflate",
    "ClientPerMessageDeflate",
    "DeflateExtension",
    "compressorMemory",
    "decompressorMemory",
]

EXTENSION_NAME = "permessage-deflate"

_TAIL = b"\x00\x00\xff\xff"
_RSV1 = 0x40
_SERVER_NCT = "server_no_context_takeover"
_CLIENT_NCT = "client_no_context_takeover"
_SERVER_MWB = "server_max_window_bits"
_CLIENT_MWB = "client_max_window_bits"
_KNOWN = frozenset((_SERVER_NCT, _CLIENT_NCT, _SERVER_MWB, _CLIENT_MWB))
# RFC 7692 section 7.1.2: a decimal integer from 8 to 15, no leading zeros.
_WINDOW_BITS = re.compile(r"(?:[89]|1[0-5])\Z")

Params = list[tuple[str, str | None]]


def compressorMemory(windowBits: int, memLevel: int) -> int:
    """Approximate bytes one zlib compressor holds (zlib's formula + state)."""
    return (1 << (max(windowBits, 9) + 2)) + (1 << (memLevel + 9)) + 6 * 1024


def decompressorMemory(windowBits: int) -> int:
    """Approximate bytes one zlib decompressor holds (window + state)."""
    return (1 << max(windowBits, 9)) + 7 * 1024


def _checkBits(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 8 <= value <= 15:
        raise ValueError(f"{name} must be an integer from 8 to 15, not {value!r}")


def _checkSettings(memLevel: int, compressLevel: int, threshold: int) -> None:
    if not isinstance(memLevel, int) or not 1 <= memLevel <= 9:
        raise ValueError(f"memLevel must be from 1 to 9, not {memLevel!r}")
    if not isinstance(compressLevel, int) or not -1 <= compressLevel <= 9:
        raise ValueError(f"compressLevel must be from -1 to 9, not {compressLevel!r}")
    if not isinstance(threshold, int) or threshold < 0:
        raise ValueError(f"threshold must be a non-negative integer, not {threshold!r}")


def _parseParams(params: Sequence[tuple[str, str | None]]) -> dict[str, str | None]:
    """
    Check one offer's or answer's parameters against RFC 7692 section 7.1.

    @return: lower-cased name -> value (None for a bare parameter).
    @raise ValueError: unknown or repeated parameter, or a bad value.
    """
    seen: dict[str, str | None] = {}
    for rawName, value in params:
        name = rawName.lower()
        if name not in _KNOWN:
            raise ValueError(f"unknown parameter {rawName!r}")
        if name in seen:
            raise ValueError(f"parameter {rawName!r} given twice")
        if name in (_SERVER_NCT, _CLIENT_NCT):
            if value is not None:
                raise ValueError(f"{name} takes no value")
        elif name == _SERVER_MWB:
            if value is None or not _WINDOW_BITS.match(value):
                raise ValueError(f"{name} needs a value from 8 to 15, not {value!r}")
        elif value is not None and not _WINDOW_BITS.match(value):
            # client_max_window_bits: bare, or a value from 8 to 15.
            raise ValueError(f"{name} must be bare or from 8 to 15, not {value!r}")
        seen[name] = value
    return seen


class PerMessageDeflate:
    """
    The server's permessage-deflate policy (a C{ServerExtensionFactory}).

    The defaults trade a little ratio for memory, as a server multiplies
    it by its connections: 12-bit windows and memLevel 5 hold about 50 KiB
    per connection once both sides have compressed (zlib's own defaults,
    15 bits and memLevel 8, about 300 KiB) and cost about 10% more bytes
    on the wire for small JSON messages.  See the module docstring.

    @param serverNoContextTakeover: compress every message on its own.
        Costs ratio, saves the compressor's memory between messages (see the
        module docstring).  Always done when the client asks for it.
    @param clientNoContextTakeover: require the client to compress every
        message on its own, so we keep no decompressor between messages.
    @param serverMaxWindowBits: the largest LZ77 window we compress with
        (8 to 15); lower when the client asks.  Below 15 it is announced.
    @param clientMaxWindowBits: the largest window we let the client use,
        which sizes our decompressor.  Enforceable only when the client
        offers C{client_max_window_bits} (browsers and common libraries
        do); see C{requireClientMaxWindowBits}.
    @param requireClientMaxWindowBits: with C{clientMaxWindowBits} below 15,
        decline offers that cannot limit the client's window, instead of
        accepting them with a 15-bit decompressor.
    @param memLevel: zlib's memLevel (1 to 9) for our compressor.
    @param compressLevel: zlib's level (0 to 9, -1 for its default).
    @param threshold: messages shorter than this many bytes (after UTF-8
        encoding) are sent uncompressed; deflate gains nothing on them.
    """

    name = EXTENSION_NAME

    def __init__(
        self,
        *,
        serverNoContextTakeover: bool = False,
        clientNoContextTakeover: bool = False,
        serverMaxWindowBits: int = 12,
        clientMaxWindowBits: int = 12,
        requireClientMaxWindowBits: bool = False,
        memLevel: int = 5,
        compressLevel: int = 6,
        threshold: int = 32,
    ) -> None:
        _checkBits("serverMaxWindowBits", serverMaxWindowBits)
        _checkBits("clientMaxWindowBits", clientMaxWindowBits)
        _checkSettings(memLevel, compressLevel, threshold)
        self.serverNoContextTakeover = serverNoContextTakeover
        self.clientNoContextTakeover = clientNoContextTakeover
        self.serverMaxWindowBits = serverMaxWindowBits
        self.clientMaxWindowBits = clientMaxWindowBits
        self.requireClientMaxWindowBits = requireClientMaxWindowBits
        self.memLevel = memLevel
        self.compressLevel = compressLevel
        self.threshold = threshold

    def __repr__(self) -> str:
        return (
            f"PerMessageDeflate(serverNoContextTakeover={self.serverNoContextTakeover}, "
            f"clientNoContextTakeover={self.clientNoContextTakeover}, "
            f"serverMaxWindowBits={self.serverMaxWindowBits}, "
            f"clientMaxWindowBits={self.clientMaxWindowBits}, memLevel={self.memLevel}, "
            f"compressLevel={self.compressLevel}, threshold={self.threshold})"
        )

    def negotiate(
        self, offers: list[list[tuple[str, str | None]]]
    ) -> tuple[list[tuple[str, str | None]], DeflateExtension] | None:
        """
        Accept the first offer we can honour (RFC 7692 section 7.1).

        Offers with unknown, repeated or malformed parameters are skipped,
        as are offers this policy cannot meet; None when none is left.
        """
        for offer in offers:
            result = self._accept(offer)
            if result is not None:
                return result
        return None

    def _accept(
        self, offer: Sequence[tuple[str, str | None]]
    ) -> tuple[list[tuple[str, str | None]], DeflateExtension] | None:
        try:
            params = _parseParams(offer)
        except ValueError:
            return None
        response: Params = []

        serverNct = self.serverNoContextTakeover or _SERVER_NCT in params
        if serverNct:
            response.append((_SERVER_NCT, None))
        # A client that offers client_no_context_takeover does it anyway;
        # confirming it lets us drop the decompressor between messages.
        clientNct = self.clientNoContextTakeover or _CLIENT_NCT in params
        if clientNct:
            response.append((_CLIENT_NCT, None))

        serverBits = self.serverMaxWindowBits
        asked = params.get(_SERVER_MWB)
        if asked is not None:
            serverBits = min(serverBits, int(asked))
        if asked is not None or serverBits < 15:
            response.append((_SERVER_MWB, str(serverBits)))

        if _CLIENT_MWB in params:
            hint = params[_CLIENT_MWB]
            clientBits = self.clientMaxWindowBits
            if hint is not None:
                clientBits = min(clientBits, int(hint))
            if clientBits < 15:
                response.append((_CLIENT_MWB, str(clientBits)))
        elif self.clientMaxWindowBits < 15 and self.requireClientMaxWindowBits:
            return None
        else:
            # The client cannot be limited: it may use the full window.
            clientBits = 15

        extension = DeflateExtension(
            localNoContextTakeover=serverNct,
            remoteNoContextTakeover=clientNct,
            localMaxWindowBits=serverBits,
            remoteMaxWindowBits=clientBits,
            memLevel=self.memLevel,
            compressLevel=self.compressLevel,
            threshold=self.threshold,
        )
        return response, extension


class ClientPerMessageDeflate:
    """
    The client's permessage-deflate offer (a C{ClientExtensionFactory}).

    @param serverNoContextTakeover: ask the server to compress every message
        on its own (we then keep no decompressor between messages).
    @param clientNoContextTakeover: compress every message on our own, and
        say so in the offer.
    @param serverMaxWindowBits: ask the server for at most this window
        (8 to 15), which sizes our decompressor; None asks nothing.
    @param clientMaxWindowBits: the largest window we compress with; the
        offer always carries C{client_max_window_bits} (bare at 15) so the
        server may ask for less.
    @param memLevel: zlib's memLevel (1 to 9) for our compressor.
    @param compressLevel: zlib's level (0 to 9, -1 for its default).
    @param threshold: messages shorter than this many bytes are sent
        uncompressed.
    """

    name = EXTENSION_NAME

    def __init__(
        self,
        *,
        serverNoContextTakeover: bool = False,
        clientNoContextTakeover: bool = False,
        serverMaxWindowBits: int | None = None,
        clientMaxWindowBits: int = 15,
        memLevel: int = 8,
        compressLevel: int = 6,
        threshold: int = 32,
    ) -> None:
        if serverMaxWindowBits is not None:
            _checkBits("serverMaxWindowBits", serverMaxWindowBits)
        _checkBits("clientMaxWindowBits", clientMaxWindowBits)
        _checkSettings(memLevel, compressLevel, threshold)
        self.serverNoContextTakeover = serverNoContextTakeover
        self.clientNoContextTakeover = clientNoContextTakeover
        self.serverMaxWindowBits = serverMaxWindowBits
        self.clientMaxWindowBits = clientMaxWindowBits
        self.memLevel = memLevel
        self.compressLevel = compressLevel
        self.threshold = threshold

    def offer(self) -> list[tuple[str, str | None]]:
        """The offer's parameters."""
        params: Params = []
        if self.serverNoContextTakeover:
            params.append((_SERVER_NCT, None))
        if self.clientNoContextTakeover:
            params.append((_CLIENT_NCT, None))
        if self.serverMaxWindowBits is not None:
            params.append((_SERVER_MWB, str(self.serverMaxWindowBits)))
        if self.clientMaxWindowBits < 15:
            params.append((_CLIENT_MWB, str(self.clientMaxWindowBits)))
        else:
            params.append((_CLIENT_MWB, None))
        return params

    def accept(self, params: list[tuple[str, str | None]]) -> DeflateExtension:
        """
        Check the server's answer against our offer and build the extension.

        @raise HandshakeError: (status 0) the answer is malformed or does not
            honour what we asked.
        """
        try:
            answer = _parseParams(params)
        except ValueError as e:
            raise HandshakeError(0, f"invalid permessage-deflate response: {e}") from None
        if self.serverNoContextTakeover and _SERVER_NCT not in answer:
            raise HandshakeError(
                0, "permessage-deflate response lacks the server_no_context_takeover we asked for"
            )
        serverBits = 15
        if _SERVER_MWB in answer:
            serverBits = int(answer[_SERVER_MWB])  # type: ignore[arg-type]  # _parseParams: never bare
            if self.serverMaxWindowBits is not None and serverBits > self.serverMaxWindowBits:
                raise HandshakeError(
                    0,
                    f"permessage-deflate server_max_window_bits={serverBits} exceeds "
                    f"the {self.serverMaxWindowBits} we asked for",
                )
        elif self.serverMaxWindowBits is not None:
            raise HandshakeError(
                0, "permessage-deflate response lacks the server_max_window_bits we asked for"
            )
        clientBits = self.clientMaxWindowBits
        if _CLIENT_MWB in answer:
            value = answer[_CLIENT_MWB]
            if value is None:
                raise HandshakeError(
                    0, "permessage-deflate response has client_max_window_bits without a value"
                )
            clientBits = min(clientBits, int(value))
        return DeflateExtension(
            localNoContextTakeover=self.clientNoContextTakeover or _CLIENT_NCT in answer,
            remoteNoContextTakeover=_SERVER_NCT in answer,
            localMaxWindowBits=clientBits,
            remoteMaxWindowBits=serverBits,
            memLevel=self.memLevel,
            compressLevel=self.compressLevel,
            threshold=self.threshold,
        )


class _MessageInflater:
    """Inflates one incoming message; see L{DeflateExtension.decoder}."""

    __slots__ = ("_ext", "_inflater", "_fed", "_ended")

    def __init__(self, ext: DeflateExtension) -> None:
        self._ext = ext
        self._inflater = ext._getInflater()
        self._fed = False
        self._ended = False

    def _inflate(self, data: bytes, maxSize: int | None, last: bool) -> bytes:
        inflater = self._inflater
        if self._ended:
            # A final block (BFINAL) ended the deflate stream: only our own
            # tail may follow it.
            if data and not (last and data == _TAIL):
                raise ProtocolError(CloseCode.INVALID_PAYLOAD, "data after the final deflate block")
            return b""
        try:
            if maxSize is None:
                out = inflater.decompress(data)
            else:
                # Ask for one byte more than allowed: getting it proves the
                # message is too big, and zlib stops right there.
                out = inflater.decompress(data, maxSize + 1)
        except zlib.error as e:
            raise ProtocolError(
                CloseCode.INVALID_PAYLOAD, f"invalid compressed data: {e}"
            ) from None
        if maxSize is not None and len(out) > maxSize:
            raise ProtocolError(
                CloseCode.MESSAGE_TOO_BIG, "message is too big once decompressed"
            )
        # Below the cap zlib consumed all input (it stops early only when
        # the output is full), so there is no unconsumed_tail to feed back.
        if inflater.eof:
            self._ended = True
            extra = inflater.unused_data
            if extra and not (last and extra == _TAIL):
                raise ProtocolError(CloseCode.INVALID_PAYLOAD, "data after the final deflate block")
        return out

    def decode(self, data: bytes, maxSize: int | None) -> bytes:
        if not data:
            return b""
        self._fed = True
        return self._inflate(data, maxSize, False)

    def finish(self, maxSize: int | None) -> bytes:
        ext = self._ext
        try:
            if not self._fed:
                # An empty payload with RSV1: no deflate data at all.  Feeding
                # the bare tail would leave the inflater mid-block, so treat
                # it as the empty message it means.
                return b""
            return self._inflate(_TAIL, maxSize, True)
        finally:
            if self._ended or ext.remoteNoContextTakeover:
                # No context to keep: a fresh inflater for the next message.
                ext._inflater = None


class DeflateExtension:
    """
    permessage-deflate on one connection (an C{Extension}).

    "Local" is our sending side, "remote" the peer's: on a server local is
    the server_* parameters, on a client the client_* ones.

    @ivar localNoContextTakeover: we compress each message on its own.
    @ivar remoteNoContextTakeover: the peer does (we keep no inflater).
    @ivar localMaxWindowBits: our compressor's agreed window.
    @ivar remoteMaxWindowBits: the peer's agreed window (our inflater's).
    """

    name = EXTENSION_NAME
    rsvBits = _RSV1

    def __init__(
        self,
        *,
        localNoContextTakeover: bool = False,
        remoteNoContextTakeover: bool = False,
        localMaxWindowBits: int = 15,
        remoteMaxWindowBits: int = 15,
        memLevel: int = 8,
        compressLevel: int = 6,
        threshold: int = 32,
    ) -> None:
        _checkBits("localMaxWindowBits", localMaxWindowBits)
        _checkBits("remoteMaxWindowBits", remoteMaxWindowBits)
        _checkSettings(memLevel, compressLevel, threshold)
        self.localNoContextTakeover = localNoContextTakeover
        self.remoteNoContextTakeover = remoteNoContextTakeover
        self.localMaxWindowBits = localMaxWindowBits
        self.remoteMaxWindowBits = remoteMaxWindowBits
        self.memLevel = memLevel
        self.compressLevel = compressLevel
        self.threshold = threshold
        self._deflater: zlib._Compress | None = None
        self._inflater: zlib._Decompress | None = None

    def __repr__(self) -> str:
        return (
            f"DeflateExtension(localNoContextTakeover={self.localNoContextTakeover}, "
            f"remoteNoContextTakeover={self.remoteNoContextTakeover}, "
            f"localMaxWindowBits={self.localMaxWindowBits}, "
            f"remoteMaxWindowBits={self.remoteMaxWindowBits})"
        )

    @property
    def idleMemory(self) -> int:
        """Approximate bytes of zlib state this connection holds right now."""
        total = 0
        if self._deflater is not None:
            total += compressorMemory(self.localMaxWindowBits, self.memLevel)
        if self._inflater is not None:
            total += decompressorMemory(self.remoteMaxWindowBits)
        return total

    def _getInflater(self) -> zlib._Decompress:
        inflater = self._inflater
        if inflater is None:
            inflater = zlib.decompressobj(-max(self.remoteMaxWindowBits, 9))
            if not self.remoteNoContextTakeover:
                self._inflater = inflater
        return inflater

    def decoder(self, rsv: int) -> _MessageInflater | None:
        """A bounded inflater for a message with RSV1, else None."""
        if not rsv & _RSV1:
            return None
        return _MessageInflater(self)

    def encodeMessage(
        self, payload: bytes, isText: bool, compress: bool | None = None
    ) -> tuple[bytes, int]:
        """
        Compress one outgoing message (RSV1 on its first frame).

        @param compress: C{False} sends it as is (already-compressed data),
            C{True} compresses even below the threshold, C{None} decides by
            the threshold.
        """
        if compress is False or (compress is None and len(payload) < self.threshold):
            return payload, 0
        deflater = self._deflater
        if deflater is None:
            # zlib refuses 8 bits for raw deflate; 9 stays within an 8-bit
            # agreement (see the module docstring).
            deflater = zlib.compressobj(
                self.compressLevel,
                zlib.DEFLATED,
                -max(self.localMaxWindowBits, 9),
                self.memLevel,
            )
        data = deflater.compress(payload) + deflater.flush(zlib.Z_SYNC_FLUSH)
        if self.localNoContextTakeover:
            # Nothing to carry over: the next message gets a fresh
            # compressor, and an idle connection holds none.
            self._deflater = None
            if len(data) - 4 >= len(payload) and compress is None:
                # Incompressible: the peer's inflater is reset per message,
                # so sending it plain loses nothing.
                return payload, 0
        else:
            self._deflater = deflater
        # A sync flush always ends with an empty stored block's 00 00 ff ff,
        # which RFC 7692 section 7.2.1 has us remove.
        return data[:-4], _RSV1
