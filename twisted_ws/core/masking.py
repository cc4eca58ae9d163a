"""
WebSocket payload masking (RFC 6455, section 5.3).

Every frame a client sends is masked: byte C{i} of the payload is XORed with
C{key[(i + offset) % 4]}, where C{key} is the frame's 4-byte masking key and
C{offset} is how many payload bytes came before (non-zero when a payload is
masked piece by piece as it arrives).  Masking is its own inverse, so the
same functions unmask.

This runs over every byte of client traffic, so it is a hot path.  Two
implementations are provided:

  - L{pyMask} / L{pyMaskInto}: pure Python, always available and always
    correct.  They XOR the whole buffer as one big integer instead of looping
    per byte, which is roughly 0.25 GB/s.
  - C{twisted_ws.core._speedups.mask} / C{maskInto}: the optional C
    extension (SIMD, GIL released for large inputs), more than 10 GB/s.  It
    lives inside the core, next to this module, so the core finds its own
    accelerator without importing its parent package.

L{mask} and L{maskInto} are bound to the C functions when the extension can
be imported, and to the pure-Python ones otherwise; L{HAVE_SPEEDUPS} tells
which.  Setting the environment variable C{TWISTED_WS_NO_EXTENSION} to
anything other than C{""} or C{"0"} forces the pure-Python code even when the
extension is built, which is how the fallback gets tested and how a
suspected extension bug can be ruled out.

This module is part of the I/O-free core and imports nothing from Twisted.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from operator import index
from typing import Any

__all__ = [
    "HAVE_SPEEDUPS",
    "extensionDisabled",
    "MessageBuffer",
    "PyMessageBuffer",
    "mask",
    "maskInto",
    "pyMask",
    "pyMaskInto",
]

_ENV_DISABLE = "TWISTED_WS_NO_EXTENSION"


def _rotatedKey(key: Any, offset: int) -> bytes:
    """
    Check C{key} and rotate it so that the payload starts at key phase 0.

    @return: C{k} with C{k[i] == key[(i + offset) % 4]}.
    @raise ValueError: C{key} is not exactly 4 bytes long.
    @raise TypeError: C{key} is not a bytes-like object, or C{offset} is not
        an integer.
    """
    k = memoryview(key).cast("B").tobytes()
    if len(k) != 4:
        raise ValueError(f"masking key must be exactly 4 bytes, not {len(k)}")
    shift = index(offset) % 4
    return k[shift:] + k[:shift]


def pyMask(data: Any, key: bytes, offset: int = 0) -> bytes:
    """
    Mask (or unmask) C{data} with C{key}, in pure Python.

    Byte C{i} of the result is C{data[i] ^ key[(i + offset) % 4]}.  The whole
    buffer is XORed at once as a single integer against a repeated key, so
    the per-byte work happens inside CPython's C code rather than in a Python
    loop.

    @param data: Any C-contiguous bytes-like object (C{bytes}, C{bytearray},
        C{memoryview}, ...).  Its raw bytes are masked, whatever its format.
    @param key: The 4-byte masking key, as any bytes-like object.
    @param offset: How many payload bytes precede C{data}; only
        C{offset % 4} matters.
    @return: The masked bytes, as a new C{bytes} object.
    @raise ValueError: C{key} is not exactly 4 bytes long.
    @raise TypeError: C{data} or C{key} is not a C-contiguous bytes-like
        object, or C{offset} is not an integer.
    """
    view = memoryview(data).cast("B")
    k = _rotatedKey(key, offset)
    n = view.nbytes
    if n == 0:
        return b""
    # Enough whole copies of the key to cover n bytes, cut to length.
    stream = (k * (n // 4 + 1))[:n]
    masked = int.from_bytes(view, "little") ^ int.from_bytes(stream, "little")
    return masked.to_bytes(n, "little")


def pyMaskInto(target: Any, key: bytes, offset: int = 0) -> None:
    """
    Mask (or unmask) the writable buffer C{target} in place, in pure Python.

    Same result as C{target[:] = pyMask(target, key, offset)}.

    @param target: A writable C-contiguous bytes-like object (C{bytearray},
        writable C{memoryview}, ...).
    @param key: The 4-byte masking key.
    @param offset: How many payload bytes precede C{target}; only
        C{offset % 4} matters.
    @raise ValueError: C{key} is not exactly 4 bytes long.
    @raise TypeError: C{target} is read-only or not a C-contiguous bytes-like
        object, or C{key} or C{offset} is unusable.
    """
    view = memoryview(target).cast("B")
    if view.readonly:
        raise TypeError("maskInto() needs a writable buffer")
    view[:] = pyMask(view, key, offset)


class PyMessageBuffer:
    """
    A message of a known size filled piece by piece, unmasked on the way
    in, and handed out whole as C{bytes}: a large frame arriving over many
    reads is written into one buffer instead of kept as pieces and joined.

    The C accelerator's C{MessageBuffer} fills the C{bytes} object itself
    (no final copy); this pure-Python one fills a C{bytearray} and copies
    it once in L{take}.
    """

    __slots__ = ("_buf", "size", "filled")

    def __init__(self, size: int) -> None:
        if size < 0:
            raise ValueError("size must not be negative")
        self._buf: bytearray | None = bytearray(size)
        self.size = size
        self.filled = 0

    def write(self, data: Any, key: bytes | None = None, offset: int = 0) -> None:
        """Append C{data}, XORed with C{key} (see L{pyMask}) when given."""
        buf = self._buf
        if buf is None:
            raise ValueError("the message was already taken")
        n = memoryview(data).nbytes
        start = self.filled
        if n > self.size - start:
            raise ValueError(f"{n} bytes do not fit: {start} of {self.size} are filled")
        buf[start : start + n] = data if key is None else pyMask(data, key, offset)
        self.filled = start + n

    def take(self) -> bytes:
        """The full message, once."""
        buf = self._buf
        if buf is None:
            raise ValueError("the message was already taken")
        if self.filled != self.size:
            raise ValueError(f"only {self.filled} of {self.size} bytes are filled")
        self._buf = None
        return bytes(buf)


def extensionDisabled(environ: Mapping[str, str]) -> bool:
    """
    Whether C{environ} asks for the pure-Python code (for every part of
    the C accelerator: masking here, head parsing in L{twisted_ws.core.http}).

    @return: C{True} when C{TWISTED_WS_NO_EXTENSION} is set to anything other
        than C{""} or C{"0"}.
    """
    return environ.get(_ENV_DISABLE, "") not in ("", "0")


def _select(
    environ: Mapping[str, str],
) -> tuple[bool, Callable[..., bytes], Callable[..., None], Callable[[int], Any]]:
    """
    Pick the masking implementation.

    @return: C{(haveSpeedups, mask, maskInto, MessageBuffer)}.
    """
    if not extensionDisabled(environ):
        try:
            from ._speedups import (
                MessageBuffer as cMessageBuffer,
                mask as cMask,
                maskInto as cMaskInto,
            )
        except ImportError:
            pass
        else:
            return True, cMask, cMaskInto, cMessageBuffer
    return False, pyMask, pyMaskInto, PyMessageBuffer


HAVE_SPEEDUPS: bool
"""
C{True} when L{mask} and L{maskInto} are the C extension's functions,
C{False} when they are the pure-Python L{pyMask} and L{pyMaskInto} (extension
not built, or disabled with C{TWISTED_WS_NO_EXTENSION}).
"""

mask: Callable[..., bytes]
"""
C{mask(data, key, offset=0) -> bytes}: the fastest available implementation
of L{pyMask}.  Bound directly to the C function when available (no Python
wrapper in between, which matters for small frames).
"""

maskInto: Callable[..., None]
"""
C{maskInto(target, key, offset=0) -> None}: the fastest available
implementation of L{pyMaskInto}.
"""

MessageBuffer: Callable[[int], Any]
"""
C{MessageBuffer(size)}: the C accelerator's buffer (filling the C{bytes}
it hands out, no copy at the end) or L{PyMessageBuffer}; both have
C{write(data, key=None, offset=0)}, C{take()}, C{size} and C{filled}.
"""

HAVE_SPEEDUPS, mask, maskInto, MessageBuffer = _select(os.environ)
