"""
Tests for L{twisted_ws.core.masking} and the optional C extension
C{twisted_ws.core._speedups}.

Both implementations are checked against a deliberately naive per-byte
reference.  Tests of the C functions themselves skip when the extension is
not built; set C{TWISTED_WS_REQUIRE_EXTENSION=1} to turn a missing extension
into a failure (CI does that in its with-extension run).
"""

from __future__ import annotations

import array
import importlib
import os
import random
import subprocess
import sys
import tempfile
import threading

import pytest
from hypothesis import given, settings, strategies as st

from twisted_ws.core import masking
from twisted_ws.core.masking import HAVE_SPEEDUPS, pyMask, pyMaskInto

try:
    from twisted_ws.core import _speedups
except ImportError:  # pragma: no cover - depends on the build
    _speedups = None

requiresExtension = pytest.mark.skipif(
    _speedups is None,
    reason="twisted_ws.core._speedups C extension is not built "
    "(`pip install -e .` builds it in place)",
)


def reference(data: bytes, key: bytes, offset: int = 0) -> bytes:
    """
    The obviously-correct definition from RFC 6455 section 5.3.
    """
    return bytes(b ^ key[(i + offset) % 4] for i, b in enumerate(data))


# Every (name, mask, maskInto) available in this environment.
IMPLEMENTATIONS = [pytest.param(pyMask, pyMaskInto, id="python")]
if _speedups is not None:
    IMPLEMENTATIONS.append(
        pytest.param(_speedups.mask, _speedups.maskInto, id="c")
    )
else:  # pragma: no cover - depends on the build
    IMPLEMENTATIONS.append(
        pytest.param(None, None, id="c", marks=requiresExtension)
    )

#: Each test runs against every implementation.
implementations = pytest.mark.parametrize("maskFn,maskIntoFn", IMPLEMENTATIONS)

keys = st.binary(min_size=4, max_size=4)
offsets = st.integers(min_value=0, max_value=7)
# Lengths around every SIMD chunk boundary (8, 16, 32, 64, 128 bytes).
smallData = st.binary(min_size=0, max_size=300)
LARGE_SIZES = [
    64 * 1024 - 1,
    64 * 1024,  # the C code releases the GIL from here on
    65537,
    (1 << 20) + 3,
]


def randomBytes(seed: int, n: int) -> bytes:
    return random.Random(seed).randbytes(n)


# -- Both implementations agree with L{reference}. -------------------------------


@implementations
@given(data=smallData, key=keys, offset=offsets)
def test_small(maskFn, maskIntoFn, data, key, offset):
    assert maskFn(data, key, offset) == reference(data, key, offset)


@implementations
@given(n=st.integers(0, 300), key=keys, offset=offsets, seed=st.integers())
def test_everyLength(maskFn, maskIntoFn, n, key, offset, seed):
    """
    Uniformly chosen lengths, so that long inputs (not favoured by
    C{st.binary}) get as much attention as short ones.
    """
    data = randomBytes(seed, n)
    assert maskFn(data, key, offset) == reference(data, key, offset)


@implementations
@settings(max_examples=12, deadline=None)
@given(
    n=st.sampled_from(LARGE_SIZES),
    key=keys,
    offset=offsets,
    seed=st.integers(),
)
def test_large(maskFn, maskIntoFn, n, key, offset, seed):
    data = randomBytes(seed, n)
    assert maskFn(data, key, offset) == reference(data, key, offset)


@implementations
@given(data=smallData, key=keys, offset=offsets)
def test_involution(maskFn, maskIntoFn, data, key, offset):
    """
    Masking twice with the same key and offset gives the data back.
    """
    assert maskFn(maskFn(data, key, offset), key, offset) == data


@implementations
@given(data=smallData, key=keys, offset=st.integers())
def test_onlyOffsetModFourMatters(
    maskFn, maskIntoFn, data, key, offset
):
    """
    Any integer offset is accepted, negative or beyond 64 bits, and
    behaves as C{offset % 4} (Python semantics).
    """
    expected = reference(data, key, offset % 4)
    assert maskFn(data, key, offset) == expected
    assert maskFn(data, key, offset + (1 << 70)) == expected
    assert maskFn(data, key, offset - (1 << 70)) == expected


@implementations
@given(
    data=st.binary(min_size=1, max_size=300),
    key=keys,
    split=st.integers(0, 300),
)
def test_piecewise(maskFn, maskIntoFn, data, key, split):
    """
    Masking a payload in two pieces, the second with C{offset} set to
    the length of the first, gives the same as masking it in one go.
    """
    split = min(split, len(data))
    pieces = maskFn(data[:split], key, 0) + maskFn(data[split:], key, split)
    assert pieces == maskFn(data, key)


@implementations
def test_defaultOffset(maskFn, maskIntoFn):
    assert maskFn(b"\x00" * 6, b"\x01\x02\x03\x04") == b"\x01\x02\x03\x04\x01\x02"


@implementations
def test_keywordArguments(maskFn, maskIntoFn):
    assert maskFn(data=b"abcdef", key=b"wxyz", offset=3) == reference(
        b"abcdef", b"wxyz", 3
    )
    target = bytearray(b"abcdef")
    maskIntoFn(target=target, key=b"wxyz", offset=3)
    assert target == reference(b"abcdef", b"wxyz", 3)


@implementations
def test_empty(maskFn, maskIntoFn):
    assert maskFn(b"", b"abcd", 3) == b""
    target = bytearray()
    maskIntoFn(target, b"abcd", 3)
    assert target == bytearray()


@implementations
def test_returnsBytes(maskFn, maskIntoFn):
    for data in (b"abc", bytearray(b"abc"), memoryview(b"abc"), b""):
        assert type(maskFn(data, b"abcd")) is bytes


@implementations
@given(data=smallData, key=keys, offset=offsets)
def test_bytearrayAndMemoryview(maskFn, maskIntoFn, data, key, offset):
    expected = reference(data, key, offset)
    assert maskFn(bytearray(data), key, offset) == expected
    assert maskFn(memoryview(data), key, offset) == expected
    assert maskFn(data, bytearray(key), offset) == expected
    assert maskFn(data, memoryview(key), offset) == expected


@implementations
@given(
    data=st.binary(min_size=0, max_size=300),
    start=st.integers(1, 40),
    key=keys,
    offset=offsets,
)
def test_memoryviewSlice(maskFn, maskIntoFn, data, start, key, offset):
    """
    A memoryview that starts part-way into its buffer (so is usually not
    aligned) is masked from its own first byte.
    """
    backing = bytes(range(start)) + data
    view = memoryview(backing)[start:]
    assert maskFn(view, key, offset) == reference(data, key, offset)
    keyView = memoryview(b"??" + key)[2:]
    assert maskFn(view, keyView, offset) == reference(data, key, offset)


@implementations
def test_largeMemoryviewSlice(maskFn, maskIntoFn):
    backing = randomBytes(1, (1 << 20) + 10)
    view = memoryview(backing)[3 : (1 << 20) + 6]
    assert maskFn(view, b"\x9a\xbc\xde\xf0", 5) == reference(
        view.tobytes(), b"\x9a\xbc\xde\xf0", 5
    )


@implementations
def test_multiByteFormat(maskFn, maskIntoFn):
    """
    A buffer whose items are wider than a byte is masked as its raw
    bytes.
    """
    items = array.array("I", range(37))
    raw = items.tobytes()
    assert maskFn(items, b"abcd", 1) == reference(raw, b"abcd", 1)
    assert maskFn(memoryview(items), b"abcd", 1) == reference(raw, b"abcd", 1)


@implementations
@given(data=smallData, key=keys, offset=offsets)
def test_maskIntoEqualsMask(maskFn, maskIntoFn, data, key, offset):
    target = bytearray(data)
    assert maskIntoFn(target, key, offset) is None
    assert bytes(target) == maskFn(data, key, offset)


@implementations
@given(
    data=smallData,
    start=st.integers(0, 20),
    key=keys,
    offset=offsets,
)
def test_maskIntoMemoryviewSlice(
    maskFn, maskIntoFn, data, start, key, offset
):
    """
    maskInto on a writable memoryview slice touches only that slice.
    """
    backing = bytearray(b"\xee" * start + data + b"\xff" * 5)
    maskIntoFn(memoryview(backing)[start : start + len(data)], key, offset)
    assert backing == (
        b"\xee" * start + reference(data, key, offset) + b"\xff" * 5
    )


@implementations
@pytest.mark.parametrize("n", LARGE_SIZES)
def test_maskIntoLarge(maskFn, maskIntoFn, n):
    data = randomBytes(n, n)
    target = bytearray(data)
    maskIntoFn(target, b"\x01\x80\xff\x7f", 3)
    assert bytes(target) == maskFn(data, b"\x01\x80\xff\x7f", 3)
    maskIntoFn(target, b"\x01\x80\xff\x7f", 3)
    assert bytes(target) == data


@implementations
def test_maskIntoKeyAliasesTarget(maskFn, maskIntoFn):
    """
    The key is read before the target is changed, even when the key is a
    view of the target.
    """
    data = bytes(range(40))
    target = bytearray(data)
    key = memoryview(target)[:4]
    maskIntoFn(target, key, 2)
    assert bytes(target) == reference(data, data[:4], 2)


@implementations
@pytest.mark.parametrize(
    "key", [b"", b"abc", b"abcde", bytearray(b"ab"), memoryview(b"abcdefgh")]
)
def test_badKeyLength(maskFn, maskIntoFn, key):
    with pytest.raises(ValueError, match="4 bytes"):
        maskFn(b"data", key)
    with pytest.raises(ValueError, match="4 bytes"):
        maskFn(b"", key)
    with pytest.raises(ValueError, match="4 bytes"):
        maskIntoFn(bytearray(b"data"), key)


@implementations
@pytest.mark.parametrize("key", [1234, "abcd", None, [1, 2, 3, 4]])
def test_keyNotBytes(maskFn, maskIntoFn, key):
    with pytest.raises(TypeError):
        maskFn(b"data", key)


@implementations
@pytest.mark.parametrize("data", [1234, "text", None, [1, 2, 3]])
def test_dataNotBytes(maskFn, maskIntoFn, data):
    with pytest.raises(TypeError):
        maskFn(data, b"abcd")


@implementations
@pytest.mark.parametrize("offset", [1.0, "1", None, b"1"])
def test_offsetNotInt(maskFn, maskIntoFn, offset):
    with pytest.raises(TypeError):
        maskFn(b"data", b"abcd", offset)


@implementations
def test_nonContiguous(maskFn, maskIntoFn):
    strided = memoryview(b"abcdefgh")[::2]
    with pytest.raises((TypeError, BufferError)):
        maskFn(strided, b"abcd")
    with pytest.raises((TypeError, BufferError)):
        maskIntoFn(memoryview(bytearray(b"abcdefgh"))[::2], b"abcd")


@implementations
@pytest.mark.parametrize("target", [b"readonly", memoryview(b"readonly")])
def test_maskIntoReadOnly(maskFn, maskIntoFn, target):
    with pytest.raises((TypeError, BufferError)):
        maskIntoFn(target, b"abcd")


@implementations
def test_wrongArguments(maskFn, maskIntoFn):
    with pytest.raises(TypeError):
        maskFn(b"data")
    with pytest.raises(TypeError):
        maskFn(b"data", b"abcd", 0, 1)
    with pytest.raises(TypeError):
        maskFn(b"data", b"abcd", bogus=1)
    with pytest.raises(TypeError):
        maskFn(b"data", b"abcd", 1, offset=2)
    with pytest.raises(TypeError):
        maskIntoFn(bytearray(b"data"))


# -- Properties of the C functions beyond agreeing with the reference. -----------


@requiresExtension
def test_kernel():
    assert _speedups.KERNEL in ("avx2", "sse2", "portable")


@requiresExtension
def test_bytearrayExportLockedDuringCall():
    """
    A bytearray being masked with the GIL released can still be read by
    other threads, and the result is correct.
    """
    data = bytearray(randomBytes(7, 8 << 20))
    expected = pyMask(data, b"abcd", 1)
    results = []

    def worker():
        results.append(_speedups.mask(data, b"abcd", 1))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [expected] * 4


@requiresExtension
def test_noReferenceLeak():
    """
    Repeated calls, including failing ones, do not leak the data
    object.
    """
    data = bytearray(b"x" * 100)
    before = sys.getrefcount(data)
    for _ in range(1000):
        _speedups.mask(data, b"abcd", 1)
        _speedups.maskInto(data, b"abcd", 1)
        with pytest.raises(ValueError):
            _speedups.mask(data, b"abc")
        with pytest.raises(TypeError):
            _speedups.mask(data, b"abcd", "x")
    assert sys.getrefcount(data) == before
    # No buffer export was left behind: resizing would fail otherwise.
    data.extend(b"y")


# -- Which implementation L{masking.mask} is bound to. ---------------------------


def test_requireExtension():
    """
    With C{TWISTED_WS_REQUIRE_EXTENSION=1} (set by CI when the extension
    is supposed to be built), a missing extension is a failure rather
    than a skip.
    """
    if os.environ.get("TWISTED_WS_REQUIRE_EXTENSION", "") in ("", "0"):
        pytest.skip("TWISTED_WS_REQUIRE_EXTENSION is not set")
    importlib.import_module("twisted_ws.core._speedups")
    if not masking.extensionDisabled(os.environ):
        assert HAVE_SPEEDUPS


def test_boundImplementation():
    if HAVE_SPEEDUPS:
        assert masking.mask is _speedups.mask
        assert masking.maskInto is _speedups.maskInto
    else:
        assert masking.mask is pyMask
        assert masking.maskInto is pyMaskInto
    assert HAVE_SPEEDUPS == (
        _speedups is not None and not masking.extensionDisabled(os.environ)
    )


@pytest.mark.parametrize(
    "value,disabled",
    [(None, False), ("", False), ("0", False), ("1", True), ("yes", True)],
)
def testextensionDisabled(value, disabled):
    environ = {} if value is None else {"TWISTED_WS_NO_EXTENSION": value}
    assert masking.extensionDisabled(environ) is disabled


def test_selectDisabled():
    assert masking._select({"TWISTED_WS_NO_EXTENSION": "1"}) == (
        False,
        pyMask,
        pyMaskInto,
        masking.PyMessageBuffer,
    )


@requiresExtension
def test_selectEnabled():
    for environ in ({}, {"TWISTED_WS_NO_EXTENSION": "0"}):
        assert masking._select(environ) == (
            True,
            _speedups.mask,
            _speedups.maskInto,
            _speedups.MessageBuffer,
        )


@pytest.mark.parametrize("value", ["1", "0"])
def test_importHonoursEnvironment(value):
    """
    The choice is made from C{os.environ} when the module is imported.
    (Checked in a fresh interpreter, so this process's module is left
    alone.)
    """
    env = dict(os.environ, TWISTED_WS_NO_EXTENSION=value)
    out = subprocess.run(
        [
            sys.executable,
            "-P",  # import the installed package, not a checkout in cwd
            "-c",
            "from twisted_ws.core import masking as m;"
            "print(m.HAVE_SPEEDUPS, m.mask is m.pyMask)",
        ],
        env=env,
        cwd=tempfile.gettempdir(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    if value == "1" or _speedups is None:
        assert out == ["False", "True"]
    else:
        assert out == ["True", "False"]


# -- MessageBuffer: a message filled piece by piece, unmasked on the way in --


def _messageBuffers():
    kinds = [masking.PyMessageBuffer]
    if _speedups is not None:
        kinds.append(_speedups.MessageBuffer)
    return kinds


@pytest.mark.parametrize("kind", _messageBuffers())
def test_messageBufferUnmasksPieces(kind):
    """
    Pieces written with the frame's key and their offset in the payload
    come out as C{bytes} equal to unmasking the whole payload at once.
    """
    key = b"\x8a\x01\xfe\x37"
    payload = bytes(range(256)) * 41 + b"tail"
    masked = pyMask(payload, key)
    buf = kind(len(masked))
    pos = 0
    for size in (1, 2, 3, 100, 4097, 5000):
        buf.write(memoryview(masked)[pos : pos + size], key, pos)
        pos += size
    buf.write(masked[pos:], key=key, offset=pos)
    assert buf.filled == buf.size == len(payload)
    out = buf.take()
    assert type(out) is bytes
    assert out == payload


@pytest.mark.parametrize("kind", _messageBuffers())
def test_messageBufferRefusesMisuse(kind):
    """
    Overflowing, taking a partial message and taking twice are errors;
    data without a key is copied as is.
    """
    buf = kind(4)
    buf.write(b"ab")
    with pytest.raises(ValueError):
        buf.write(b"cde")
    with pytest.raises(ValueError):
        buf.take()
    buf.write(bytearray(b"cd"))
    assert buf.take() == b"abcd"
    with pytest.raises(ValueError):
        buf.take()
    with pytest.raises(ValueError):
        buf.write(b"")
    with pytest.raises(ValueError):
        kind(-1)
    with pytest.raises(ValueError):
        kind(1).write(b"x", b"abc")
    assert kind(0).take() == b""
