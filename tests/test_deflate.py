"""
Tests for permessage-deflate (RFC 7692), the logic tier: negotiation on
both sides, compression through the I/O-free connection and the bounded
inflater (the decompression bomb).  The websockets library and Chromium on
loopback are in test_deflate_interop.py, the echo_server example's bomb and
--no-deflate in test_examples_interop.py.
"""

from __future__ import annotations

import os
import random
import tracemalloc
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from twisted_ws.core.closecodes import parseClosePayload
from twisted_ws.core.connection import WebSocketConnection
from twisted_ws.core.deflate import (
    ClientPerMessageDeflate,
    DeflateExtension,
    PerMessageDeflate,
    compressorMemory,
    decompressorMemory,
)
from twisted_ws.core.errors import HandshakeError
from twisted_ws.core.extensions import (
    acceptClientExtensions,
    negotiateServerExtensions,
    parseExtensionHeader,
)
from twisted_ws.core.frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_TEXT,
    RSV1,
    FrameParser,
    serializeFrame,
)
from wshelpers import RecordingHandler as Recorder, deflateBomb, jsonRecords

ROOT = Path(__file__).resolve().parent.parent
TAIL = b"\x00\x00\xff\xff"
#: zlib's defaults, the largest windows (the server's defaults are smaller).
ZLIB15 = {"serverMaxWindowBits": 15, "clientMaxWindowBits": 15, "memLevel": 8}


# -- helpers ----------------------------------------------------------------


class Server:
    """A server-side connection with one deflate extension, fed client frames."""

    def __init__(self, ext, **kw):
        self.handler = Recorder()
        self.written = []
        self.conn = WebSocketConnection(
            self.handler, self.written.append, extensions=[ext], **kw
        )

    def recv(self, *frames):
        self.conn.receiveData(b"".join(frames))

    @property
    def events(self):
        return self.handler.events

    def frames(self):
        """Parse what the server wrote: (opcode, fin, rsv, payload) per frame."""
        parser = FrameParser(requireMask=False, allowedRsv=RSV1, maxMessageSize=None)
        out = []
        for opcode, fin, rsv, payload, part in parser.feed(b"".join(self.written)):
            assert part == 0
            out.append((opcode, fin, rsv, payload))
        return out

    def closeCode(self):
        closes = [f for f in self.frames() if f[0] == OP_CLOSE]
        assert len(closes) == 1, self.frames()
        return parseClosePayload(closes[0][3])[0]


def cframe(opcode, payload=b"", fin=True, rsv=0):
    return serializeFrame(opcode, payload, fin, rsv, maskKey=os.urandom(4))


def deflate(data, wbits=15):
    c = zlib.compressobj(6, zlib.DEFLATED, -wbits)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(TAIL)
    return out[:-4]


def pair(serverFactory=None, clientFactory=None):
    """Negotiate both sides: (response params, server ext, client ext)."""
    serverFactory = serverFactory or PerMessageDeflate()
    clientFactory = clientFactory or ClientPerMessageDeflate()
    result = serverFactory.negotiate([clientFactory.offer()])
    assert result is not None
    params, serverExt = result
    return params, serverExt, clientFactory.accept(params)


def roundTrip(sender, receiver, message, **kw):
    """Encode with one extension, decode with the other; (wire, rsv, out)."""
    payload = message.encode() if isinstance(message, str) else message
    wire, rsv = sender.encodeMessage(payload, isinstance(message, str), **kw)
    if not rsv:
        return wire, rsv, wire
    decoder = receiver.decoder(rsv)
    out = decoder.decode(wire, None) + decoder.finish(None)
    return wire, rsv, out


# -- server negotiation ------------------------------------------------------


def test_defaultOfferIsAcceptedWithNoParameters():
    params, ext = PerMessageDeflate(**ZLIB15).negotiate([[]])
    assert params == []
    assert (ext.localMaxWindowBits, ext.remoteMaxWindowBits) == (15, 15)
    assert not ext.localNoContextTakeover and not ext.remoteNoContextTakeover
    assert ext.rsvBits == RSV1 and ext.name == "permessage-deflate"


def test_defaultPolicySavesMemory():
    # 12-bit windows both ways when the client can be limited.
    params, ext = PerMessageDeflate().negotiate([[("client_max_window_bits", None)]])
    assert params == [("server_max_window_bits", "12"), ("client_max_window_bits", "12")]
    assert (ext.localMaxWindowBits, ext.remoteMaxWindowBits, ext.memLevel) == (12, 12, 5)
    # A client that cannot be limited is still accepted.
    params, ext = PerMessageDeflate().negotiate([[]])
    assert params == [("server_max_window_bits", "12")]
    assert ext.remoteMaxWindowBits == 15


def test_browserOffer():
    # What Chrome and Firefox send.
    offers = parseExtensionHeader(["permessage-deflate; client_max_window_bits"])
    header, exts = negotiateServerExtensions(offers, [PerMessageDeflate(**ZLIB15)])
    assert header == "permessage-deflate"
    assert isinstance(exts[0], DeflateExtension)
    header, exts = negotiateServerExtensions(
        offers, [PerMessageDeflate(serverMaxWindowBits=12, clientMaxWindowBits=10)]
    )
    assert header == "permessage-deflate; server_max_window_bits=12; client_max_window_bits=10"
    assert (exts[0].localMaxWindowBits, exts[0].remoteMaxWindowBits) == (12, 10)


def test_serverNoContextTakeoverRequestedOrPolicy():
    params, ext = PerMessageDeflate(**ZLIB15).negotiate([[("server_no_context_takeover", None)]])
    assert params == [("server_no_context_takeover", None)]
    assert ext.localNoContextTakeover and not ext.remoteNoContextTakeover
    params, ext = PerMessageDeflate(**ZLIB15, serverNoContextTakeover=True).negotiate([[]])
    assert params == [("server_no_context_takeover", None)]
    assert ext.localNoContextTakeover


def test_clientNoContextTakeoverPolicyAndHint():
    params, ext = PerMessageDeflate(**ZLIB15, clientNoContextTakeover=True).negotiate([[]])
    assert params == [("client_no_context_takeover", None)]
    assert ext.remoteNoContextTakeover and not ext.localNoContextTakeover
    # The client's own hint is confirmed, so we can drop the inflater.
    params, ext = PerMessageDeflate(**ZLIB15).negotiate([[("client_no_context_takeover", None)]])
    assert params == [("client_no_context_takeover", None)]
    assert ext.remoteNoContextTakeover


def test_serverMaxWindowBits():
    factory = PerMessageDeflate(**ZLIB15)
    params, ext = factory.negotiate([[("server_max_window_bits", "10")]])
    assert params == [("server_max_window_bits", "10")]
    assert ext.localMaxWindowBits == 10
    # The policy is lower than asked: answer the policy.
    params, ext = PerMessageDeflate(serverMaxWindowBits=9).negotiate(
        [[("server_max_window_bits", "12")]]
    )
    assert params == [("server_max_window_bits", "9")]
    # The client asked for 15: answered (it asked), same value.
    params, ext = factory.negotiate([[("server_max_window_bits", "15")]])
    assert params == [("server_max_window_bits", "15")]


def test_clientMaxWindowBits():
    factory = PerMessageDeflate(serverMaxWindowBits=15, clientMaxWindowBits=11)
    params, ext = factory.negotiate([[("client_max_window_bits", None)]])
    assert params == [("client_max_window_bits", "11")]
    assert ext.remoteMaxWindowBits == 11
    params, ext = factory.negotiate([[("client_max_window_bits", "9")]])
    assert params == [("client_max_window_bits", "9")]
    assert ext.remoteMaxWindowBits == 9
    # No client_max_window_bits: it cannot be limited, so a 15-bit inflater...
    params, ext = factory.negotiate([[]])
    assert params == [] and ext.remoteMaxWindowBits == 15
    # ... unless the policy requires the limit.
    strict = PerMessageDeflate(
        serverMaxWindowBits=15, clientMaxWindowBits=11, requireClientMaxWindowBits=True
    )
    assert strict.negotiate([[]]) is None
    assert strict.negotiate([[], [("client_max_window_bits", None)]])[0] == [
        ("client_max_window_bits", "11")
    ]
    # A 15-bit policy never answers client_max_window_bits.
    params, ext = PerMessageDeflate(**ZLIB15).negotiate([[("client_max_window_bits", "15")]])
    assert params == [] and ext.remoteMaxWindowBits == 15
    params, ext = PerMessageDeflate(**ZLIB15).negotiate([[("client_max_window_bits", "8")]])
    assert params == [("client_max_window_bits", "8")] and ext.remoteMaxWindowBits == 8


@pytest.mark.parametrize(
    "bad",
    [
        [("x_unknown", None)],
        [("server_no_context_takeover", None), ("server_no_context_takeover", None)],
        [("server_max_window_bits", "10"), ("Server_Max_Window_Bits", "10")],
        [("server_no_context_takeover", "1")],
        [("client_no_context_takeover", "")],
        [("server_max_window_bits", None)],
        [("server_max_window_bits", "7")],
        [("server_max_window_bits", "16")],
        [("server_max_window_bits", "08")],
        [("server_max_window_bits", "1O")],
        [("server_max_window_bits", "-9")],
        [("client_max_window_bits", "16")],
        [("client_max_window_bits", "")],
        [("client_max_window_bits", "9.0")],
    ],
)
def test_malformedOfferIsDeclinedAndTheNextAccepted(bad):
    factory = PerMessageDeflate(**ZLIB15)
    assert factory.negotiate([bad]) is None
    params, ext = factory.negotiate([bad, [("server_no_context_takeover", None)]])
    assert params == [("server_no_context_takeover", None)]


def test_firstAcceptableOfferWins():
    # Autobahn 13.7's offer list.
    offers = parseExtensionHeader(
        [
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=9; "
            "client_max_window_bits, permessage-deflate; server_no_context_takeover; "
            "client_max_window_bits, permessage-deflate; client_max_window_bits"
        ]
    )
    header, exts = negotiateServerExtensions(offers, [PerMessageDeflate()])
    assert header == (
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=9; "
        "client_max_window_bits=12"
    )
    assert exts[0].localMaxWindowBits == 9 and exts[0].localNoContextTakeover


def test_parameterNamesAreCaseInsensitive():
    params, ext = PerMessageDeflate().negotiate([[("Server_No_Context_Takeover", None)]])
    assert ext.localNoContextTakeover


_names = st.sampled_from(
    [
        "server_no_context_takeover",
        "client_no_context_takeover",
        "server_max_window_bits",
        "client_max_window_bits",
        "SERVER_MAX_WINDOW_BITS",
        "x",
    ]
)
_values = st.one_of(
    st.none(),
    st.sampled_from(["8", "9", "15", "16", "7", "0", "08", "", "abc"]),
    st.text(max_size=6),
)
_offer = st.lists(st.tuples(_names, _values), max_size=6)


@settings(max_examples=300, deadline=None)
@given(
    offers=st.lists(_offer, min_size=1, max_size=4),
    serverBits=st.integers(8, 15),
    clientBits=st.integers(8, 15),
    serverNct=st.booleans(),
    require=st.booleans(),
)
def test_negotiationNeverRaises(offers, serverBits, clientBits, serverNct, require):
    factory = PerMessageDeflate(
        serverMaxWindowBits=serverBits,
        clientMaxWindowBits=clientBits,
        serverNoContextTakeover=serverNct,
        requireClientMaxWindowBits=require,
    )
    result = factory.negotiate(offers)
    if result is None:
        return
    params, ext = result
    answer = dict(params)
    assert len(answer) == len(params)
    accepted = next(o for o in offers if factory.negotiate([o]) is not None)
    offered = {n.lower(): v for n, v in accepted}
    assert ext.localMaxWindowBits <= serverBits
    if offered.get("server_max_window_bits"):
        assert int(answer["server_max_window_bits"]) <= int(offered["server_max_window_bits"])
    if "client_max_window_bits" in answer:
        assert "client_max_window_bits" in offered
        assert int(answer["client_max_window_bits"]) == ext.remoteMaxWindowBits
    if "server_no_context_takeover" in offered:
        assert "server_no_context_takeover" in answer
    # The answer is one a strict client accepts.
    client = ClientPerMessageDeflate(
        serverNoContextTakeover="server_no_context_takeover" in offered,
        serverMaxWindowBits=(
            int(offered["server_max_window_bits"]) if "server_max_window_bits" in offered else None
        ),
    )
    clientExt = client.accept(params)
    assert clientExt.remoteMaxWindowBits == ext.localMaxWindowBits


def test_invalidPolicyIsRefused():
    with pytest.raises(ValueError):
        PerMessageDeflate(serverMaxWindowBits=16)
    with pytest.raises(ValueError):
        PerMessageDeflate(clientMaxWindowBits=7)
    with pytest.raises(ValueError):
        PerMessageDeflate(memLevel=10)
    with pytest.raises(ValueError):
        PerMessageDeflate(threshold=-1)
    with pytest.raises(ValueError):
        ClientPerMessageDeflate(serverMaxWindowBits=20)


# -- client negotiation -------------------------------------------------------


def test_clientOffer():
    assert ClientPerMessageDeflate().offer() == [("client_max_window_bits", None)]
    assert ClientPerMessageDeflate(
        serverNoContextTakeover=True,
        clientNoContextTakeover=True,
        serverMaxWindowBits=10,
        clientMaxWindowBits=12,
    ).offer() == [
        ("server_no_context_takeover", None),
        ("client_no_context_takeover", None),
        ("server_max_window_bits", "10"),
        ("client_max_window_bits", "12"),
    ]


def test_clientAcceptsValidAnswers():
    ext = ClientPerMessageDeflate().accept([])
    assert (ext.localMaxWindowBits, ext.remoteMaxWindowBits) == (15, 15)
    ext = ClientPerMessageDeflate().accept(
        [("client_no_context_takeover", None), ("client_max_window_bits", "10"),
         ("server_max_window_bits", "12"), ("server_no_context_takeover", None)]
    )
    assert ext.localNoContextTakeover and ext.remoteNoContextTakeover
    assert (ext.localMaxWindowBits, ext.remoteMaxWindowBits) == (10, 12)
    ext = ClientPerMessageDeflate(serverMaxWindowBits=12).accept(
        [("server_max_window_bits", "9")]
    )
    assert ext.remoteMaxWindowBits == 9


@pytest.mark.parametrize(
    "client, answer",
    [
        (ClientPerMessageDeflate(), [("x_foo", None)]),
        (ClientPerMessageDeflate(), [("server_no_context_takeover", None)] * 2),
        (ClientPerMessageDeflate(), [("server_max_window_bits", "16")]),
        (ClientPerMessageDeflate(), [("server_max_window_bits", None)]),
        (ClientPerMessageDeflate(), [("client_max_window_bits", None)]),
        (ClientPerMessageDeflate(), [("client_no_context_takeover", "yes")]),
        (ClientPerMessageDeflate(serverNoContextTakeover=True), []),
        (ClientPerMessageDeflate(serverMaxWindowBits=10), []),
        (ClientPerMessageDeflate(serverMaxWindowBits=10), [("server_max_window_bits", "11")]),
    ],
)
def test_clientRefusesBadAnswers(client, answer):
    with pytest.raises(HandshakeError) as info:
        client.accept(answer)
    assert info.value.status == 0
    # Through the header machinery too.
    with pytest.raises(HandshakeError):
        acceptClientExtensions([("permessage-deflate", answer)], [client])


def test_negotiatedPairsInteroperate():
    cases = [
        (PerMessageDeflate(), ClientPerMessageDeflate()),
        (PerMessageDeflate(serverNoContextTakeover=True, clientNoContextTakeover=True),
         ClientPerMessageDeflate()),
        (PerMessageDeflate(serverMaxWindowBits=9, clientMaxWindowBits=8),
         ClientPerMessageDeflate(serverMaxWindowBits=10)),
        (PerMessageDeflate(memLevel=1, compressLevel=1),
         ClientPerMessageDeflate(clientMaxWindowBits=8, serverNoContextTakeover=True)),
    ]
    messages = jsonRecords(30) + ["", "x", "é" * 5000] + [os.urandom(3000)]
    for serverFactory, clientFactory in cases:
        _, serverExt, clientExt = pair(serverFactory, clientFactory)
        for message in messages:
            payload = message.encode() if isinstance(message, str) else message
            for a, b in ((serverExt, clientExt), (clientExt, serverExt)):
                _, _, out = roundTrip(a, b, message)
                assert out == payload


# -- compression -------------------------------------------------------------


def test_contextTakeoverShrinksRepeatedMessages():
    _, serverExt, clientExt = pair()
    message = jsonRecords(1)[0]
    first, rsv, out = roundTrip(serverExt, clientExt, message)
    second, rsv2, out2 = roundTrip(serverExt, clientExt, message)
    assert rsv == rsv2 == RSV1 and out == out2 == message.encode()
    # The second refers back to the first.
    assert len(second) < len(first) / 4


def test_noContextTakeoverCompressesEachMessageAlone():
    _, serverExt, clientExt = pair(PerMessageDeflate(serverNoContextTakeover=True))
    message = jsonRecords(1)[0]
    first, _, _ = roundTrip(serverExt, clientExt, message)
    second, _, out = roundTrip(serverExt, clientExt, message)
    assert first == second == deflate(message.encode())
    assert out == message.encode()
    # Each compressed message decodes with a fresh inflater.
    assert zlib.decompressobj(-15).decompress(second + TAIL) == message.encode()
    # Between messages the server keeps no compressor.
    assert serverExt._deflater is None


def test_lazyZlibObjectsAndIdleMemory():
    _, serverExt, clientExt = pair(PerMessageDeflate(**ZLIB15))
    assert serverExt.idleMemory == 0 and serverExt._deflater is None
    roundTrip(serverExt, clientExt, "x" * 100)
    roundTrip(clientExt, serverExt, "y" * 100)
    assert serverExt._deflater is not None and serverExt._inflater is not None
    assert serverExt.idleMemory == compressorMemory(15, 8) + decompressorMemory(15)
    _, serverExt, clientExt = pair(
        PerMessageDeflate(serverNoContextTakeover=True, clientNoContextTakeover=True)
    )
    roundTrip(serverExt, clientExt, "x" * 100)
    roundTrip(clientExt, serverExt, "y" * 100)
    assert serverExt.idleMemory == 0


def test_memoryFormulasMatchZlib():
    # The documented figures, within 25% of what zlib really allocates.
    for bits, memLevel in ((15, 8), (12, 5), (9, 1)):
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            c = zlib.compressobj(6, zlib.DEFLATED, -bits, memLevel)
            c.compress(b"a")
            middle = tracemalloc.get_traced_memory()[0]
            d = zlib.decompressobj(-bits)
            d.decompress(deflate(b"hello" * 100, bits) + TAIL)
            after = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        assert abs((middle - before) - compressorMemory(bits, memLevel)) < 0.25 * compressorMemory(bits, memLevel)
        assert abs((after - middle) - decompressorMemory(bits)) < 0.25 * decompressorMemory(bits) + 1000


def test_windowBits8():
    """8 agreed: zlib compresses with 9, which an 8-bit inflater decodes."""
    _, serverExt, clientExt = pair(
        PerMessageDeflate(serverMaxWindowBits=8), ClientPerMessageDeflate(serverMaxWindowBits=8)
    )
    assert serverExt.localMaxWindowBits == 8
    strict = zlib.decompressobj(-8)  # exactly the agreed window
    rnd = random.Random(3)
    for _ in range(400):
        # Repeats at distances around 256 tempt a matcher to reach too far.
        period = rnd.randint(200, 320)
        base = rnd.randbytes(period)
        message = (base * 8)[: rnd.randint(1, 2500)]
        wire, rsv, out = roundTrip(serverExt, clientExt, message, compress=True)
        assert out == message
        assert strict.decompress(wire + TAIL) == message


def test_emptyMessage():
    _, serverExt, clientExt = pair()
    wire, rsv, out = roundTrip(serverExt, clientExt, b"", compress=True)
    assert (wire, rsv, out) == (b"\x00", RSV1, b"")
    # An empty payload with RSV1 (no deflate data at all) is an empty message
    # and leaves the inflater usable.
    server = Server(DeflateExtension())
    server.recv(cframe(OP_TEXT, b"", rsv=RSV1), cframe(OP_TEXT, deflate(b"after"), rsv=RSV1))
    assert server.events == [("text", ""), ("text", "after")]


def test_connectionSendsRsv1OnFirstFrameOnly():
    ext = DeflateExtension()
    server = Server(ext, fragmentSize=100)
    message = os.urandom(300).hex()  # 600 hex digits, compresses to > 100 bytes
    server.conn.sendMessage(message)
    frames = server.frames()
    assert len(frames) > 1
    assert frames[0][:3] == (OP_TEXT, False, RSV1)
    assert all(f[0] == OP_CONTINUATION and f[2] == 0 for f in frames[1:])
    assert frames[-1][1] is True
    wire = b"".join(f[3] for f in frames)
    assert zlib.decompressobj(-15).decompress(wire + TAIL) == message.encode()
    # Control frames never carry RSV1.
    server.written.clear()
    server.conn.ping(b"p")
    assert server.frames() == [(OP_PING, True, 0, b"p")]


def test_fragmentedCompressedMessage():
    message = ("fragmented and compressed " * 200).encode()
    for splits in ([1], [5, 9], [1, 2, 3, 4, 5, 6]):
        compressed = deflate(message)
        cut = [0, *splits, len(compressed)]
        pieces = [compressed[a:b] for a, b in zip(cut, cut[1:])]
        server = Server(DeflateExtension())
        frames = [cframe(OP_TEXT, pieces[0], fin=False, rsv=RSV1)]
        frames += [cframe(OP_CONTINUATION, p, fin=False) for p in pieces[1:-1]]
        frames.append(cframe(OP_CONTINUATION, pieces[-1]))
        # A ping in the middle of the message is fine.
        frames.insert(1, cframe(OP_PING, b"hi"))
        server.recv(*frames)
        assert server.events == [("ping", b"hi"), ("text", message.decode())]


def test_streamingDeliversDecompressedPieces():
    message = b"stream " * 1000
    compressed = deflate(message)
    server = Server(DeflateExtension(), streaming=True)
    server.recv(
        cframe(OP_BINARY, compressed[:10], fin=False, rsv=RSV1),
        cframe(OP_CONTINUATION, compressed[10:]),
    )
    events = server.events
    assert events[0] == ("started", False) and events[-1] == ("ended",)
    assert b"".join(e[1] for e in events if e[0] == "data") == message


def test_contextTakeoverAcrossReceivedMessages():
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    server = Server(DeflateExtension())
    message = b"the same message again and again"
    frames = []
    for _ in range(3):
        frames.append(cframe(OP_BINARY, (c.compress(message) + c.flush(zlib.Z_SYNC_FLUSH))[:-4], rsv=RSV1))
    server.recv(*frames)
    assert server.events == [("binary", message)] * 3


def test_finalBlockMessages():
    # A peer may end each message with a BFINAL block (RFC 7692 section
    # 7.2.3.3); each then starts a new deflate stream.
    server = Server(DeflateExtension())
    for text in (b"first", b"second"):
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        server.recv(cframe(OP_TEXT, c.compress(text) + c.flush(zlib.Z_FINISH), rsv=RSV1))
    assert server.events == [("text", "first"), ("text", "second")]


@pytest.mark.parametrize(
    "frames",
    [
        # RSV1 on a continuation frame.
        [cframe(OP_TEXT, deflate(b"ab"), fin=False, rsv=RSV1), cframe(OP_CONTINUATION, b"", rsv=RSV1)],
        # RSV1 on a continuation of an uncompressed message.
        [cframe(OP_TEXT, b"ab", fin=False), cframe(OP_CONTINUATION, b"cd", rsv=RSV1)],
        # RSV1 on a control frame.
        [cframe(OP_PING, b"", rsv=RSV1)],
        # RSV2 / RSV3 are not ours.
        [cframe(OP_TEXT, deflate(b"ab"), rsv=RSV1 | 0x20)],
        [cframe(OP_TEXT, b"ab", rsv=0x10)],
    ],
)
def test_misplacedRsvBitsAre1002(frames):
    server = Server(DeflateExtension())
    server.recv(*frames)
    assert server.closeCode() == 1002
    assert all(e[0] != "text" for e in server.events)


def test_rsv1WithoutNegotiationIs1002():
    handler = Recorder()
    written = []
    conn = WebSocketConnection(handler, written.append)
    conn.receiveData(cframe(OP_TEXT, deflate(b"abc"), rsv=RSV1))
    assert conn.failure is not None and conn.failure.code == 1002


@pytest.mark.parametrize(
    "payload",
    [
        b"\xff\xff\xff\xff",  # reserved block type
        deflate(b"good")[:-1] + b"\x07\x00",  # a block header of type 3
        b"\x02" + os.urandom(50),  # dynamic block with junk tables (most likely)
        zlib.compress(b"zlib header, not raw deflate"),
    ],
)
def test_corruptDataIs1007(payload):
    server = Server(DeflateExtension())
    server.recv(cframe(OP_BINARY, payload, rsv=RSV1))
    if not server.conn.failure:
        # Some junk happens to be a valid prefix; the tail cannot complete it
        # into a valid stream and a following message must fail.
        server.recv(cframe(OP_BINARY, b"\xff\xff\xff", rsv=RSV1))
    assert server.closeCode() == 1007
    assert all(e[0] != "binary" for e in server.events)


def test_dataAfterFinalBlockIs1007():
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    ended = c.compress(b"done") + c.flush(zlib.Z_FINISH)
    server = Server(DeflateExtension())
    server.recv(cframe(OP_TEXT, ended + b"more", rsv=RSV1))
    assert server.closeCode() == 1007
    server = Server(DeflateExtension())
    server.recv(
        cframe(OP_TEXT, ended, fin=False, rsv=RSV1), cframe(OP_CONTINUATION, deflate(b"x"))
    )
    assert server.closeCode() == 1007


def test_invalidUtf8AfterDecompressionIs1007():
    server = Server(DeflateExtension())
    server.recv(cframe(OP_TEXT, deflate(b"ok \xff\xfe"), rsv=RSV1))
    assert server.closeCode() == 1007


def test_limitCountsDecompressedBytes():
    limit = 10_000
    server = Server(DeflateExtension(), maxMessageSize=limit)
    server.recv(cframe(OP_BINARY, deflate(b"a" * limit), rsv=RSV1))
    assert server.events == [("binary", b"a" * limit)]
    server.recv(cframe(OP_BINARY, deflate(b"a" * (limit + 1)), rsv=RSV1))
    assert server.closeCode() == 1009
    # Across fragments.
    server = Server(DeflateExtension(), maxMessageSize=limit)
    compressed = deflate(b"b" * (limit + 1))
    server.recv(
        cframe(OP_BINARY, compressed[:3], fin=False, rsv=RSV1),
        cframe(OP_CONTINUATION, compressed[3:]),
    )
    assert server.closeCode() == 1009


def test_limitHitByTheTail():
    # All the data decodes within the limit except what the tail flushes.
    limit = 1000
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    full = c.compress(b"z" * (limit + 1)) + c.flush(zlib.Z_SYNC_FLUSH)
    server = Server(DeflateExtension(), maxMessageSize=limit)
    server.recv(cframe(OP_BINARY, full[:-4], rsv=RSV1))
    assert server.closeCode() == 1009


def test_bombIsWhatItClaims():
    data = deflateBomb()
    assert len(data) < 1 << 20
    # The first two chunks are 32 MiB of zeros (inflated in bounded steps).
    chunk = len(data) // 64 + 1
    d = zlib.decompressobj(-15)
    total = 0
    pending = data[: 2 * chunk]
    while pending:
        out = d.decompress(pending, 1 << 22)
        assert out.count(0) == len(out)
        total += len(out)
        pending = d.unconsumed_tail
    assert total >= 30 << 20


def test_bombIsRefusedWithSmallMemory():
    data = deflateBomb()
    frame = cframe(OP_BINARY, data, rsv=RSV1)
    server = Server(DeflateExtension(), maxMessageSize=1 << 20)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        # As it would arrive from TCP, in 64 KiB reads.
        for i in range(0, len(frame), 65536):
            server.recv(frame[i : i + 65536])
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert server.closeCode() == 1009
    assert "decompressed" in server.conn.failure.reason
    assert server.events == []
    assert peak < 8 << 20, peak


def test_thresholdAndOptOut():
    ext = DeflateExtension(threshold=100)
    assert ext.encodeMessage(b"a" * 99, True) == (b"a" * 99, 0)
    assert ext.encodeMessage(b"a" * 100, True)[1] == RSV1
    assert ext.encodeMessage(b"b" * 10, True, compress=True)[1] == RSV1
    assert ext.encodeMessage(b"c" * 10000, False, compress=False) == (b"c" * 10000, 0)
    # Uncompressed messages do not disturb the context.
    ext = DeflateExtension(threshold=0)
    server = Server(DeflateExtension())
    for message, compress in ((b"one" * 50, None), (b"raw" * 50, False), (b"one" * 50, None)):
        payload, rsv = ext.encodeMessage(message, False, compress=compress)
        server.recv(cframe(OP_BINARY, payload, rsv=rsv))
    assert server.events == [("binary", b"one" * 50), ("binary", b"raw" * 50), ("binary", b"one" * 50)]


def test_incompressibleSentPlainWithoutContextTakeover():
    ext = DeflateExtension(localNoContextTakeover=True)
    noise = os.urandom(1000)
    assert ext.encodeMessage(noise, False) == (noise, 0)
    # Forced compression is honoured.
    assert ext.encodeMessage(noise, False, compress=True)[1] == RSV1


def test_connectionPassesCompressThrough():
    server = Server(DeflateExtension())
    server.conn.sendMessage(b"x" * 1000, compress=False)
    server.conn.sendMessage(b"x" * 1000)
    server.conn.sendMessage("x", compress=True)
    frames = server.frames()
    assert [f[2] for f in frames] == [0, RSV1, RSV1]
    assert frames[0][3] == b"x" * 1000 and len(frames[1][3]) < 50
