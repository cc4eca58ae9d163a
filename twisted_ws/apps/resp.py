"""
A reader of RESP2, the Redis serialization protocol, without I/O: the
bytes a Redis server sends in, every complete reply of them out at once.

L{RedisBus} parses its links' replies with it instead of txredisapi's
line-based parser, which hands over one reply per reactor round and copies
the rest of the read for each line (see L{RespReader}).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["RespError", "RespReader"]


class RespError(Exception):
    """Redis sent bytes that are not RESP: the connection cannot be trusted further."""


class _Incomplete(Exception):
    """The reply goes on past the bytes received; C{need} is where it may end."""

    def __init__(self, need: int) -> None:
        self.need = need


#: Longest status, error or header line accepted, and largest bulk string
#: (Redis's own default proto-max-bulk-len, 512 MiB).
_MAX_LINE = 65536
_MAX_BULK = 512 << 20
#: Deepest array nesting accepted (Redis's replies to our commands have 2).
_MAX_DEPTH = 8


class RespReader:
    """
    Splits the bytes Redis sends into replies (RESP2), every complete one
    of a read at once.  Why not txredisapi's parser: it hands over one
    reply per reactor round (the rest of the read waits for a callLater),
    so messages that came in one read were fanned out one round each, one
    write per member per message; and it copies the rest of the read for
    each line, which is quadratic in the read's size.

    Replies are given as txredisapi's parser gives them with C{charset=None}:
    bulk strings as bytes, status lines as str, integers as int, nulls as
    None, arrays as lists, errors as C{errorClass(message)}.
    """

    __slots__ = ("_errorClass", "_chunks", "_size", "_need")

    def __init__(self, errorClass: Callable[[str], Exception]) -> None:
        self._errorClass = errorClass
        self._chunks: list[bytes] = []
        self._size = 0  # bytes in _chunks
        self._need = 0  # no reply can be complete before _chunks hold this many

    def feed(self, data: bytes) -> list[Any]:
        """
        The replies completed by C{data}, in order.

        @raise RespError: for bytes that are not RESP.
        """
        chunks = self._chunks
        chunks.append(data)
        self._size += len(data)
        if self._size < self._need:
            return []  # the middle of a large bulk string: join once, at its end
        buf = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        replies = []
        pos = 0
        end = len(buf)
        parse = self._parse
        try:
            while pos < end:
                reply, pos = parse(buf, pos, 0)
                replies.append(reply)
            self._need = 0
        except _Incomplete as e:
            self._need = e.need - pos
        rest = buf[pos:] if pos else buf
        self._chunks = [rest] if rest else []
        self._size = len(rest)
        return replies

    def _parse(self, buf: bytes, pos: int, depth: int) -> tuple[Any, int]:
        """The reply starting at C{pos} and the position after it."""
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            if len(buf) - pos > _MAX_LINE:
                raise RespError(f"a line longer than {_MAX_LINE} bytes")
            raise _Incomplete(len(buf) + 1)
        if eol - pos > _MAX_LINE:
            raise RespError(f"a line longer than {_MAX_LINE} bytes")
        kind = buf[pos]
        if kind == 0x24:  # $: bulk string
            n = _count(buf, pos, eol)
            if n < 0:
                return None, eol + 2
            if n > _MAX_BULK:
                raise RespError(f"a bulk string of {n} bytes")
            start = eol + 2
            stop = start + n
            if stop + 2 > len(buf):
                raise _Incomplete(stop + 2)
            if buf[stop : stop + 2] != b"\r\n":
                raise RespError("a bulk string longer than announced")
            return buf[start:stop], stop + 2
        if kind == 0x2A:  # *: array
            n = _count(buf, pos, eol)
            if n < 0:
                return None, eol + 2
            if depth >= _MAX_DEPTH:
                raise RespError(f"arrays nested deeper than {_MAX_DEPTH}")
            items = []
            pos = eol + 2
            for _ in range(n):
                item, pos = self._parse(buf, pos, depth + 1)
                items.append(item)
            return items, pos
        if kind == 0x3A:  # :: integer
            return _count(buf, pos, eol), eol + 2
        if kind == 0x2B:  # +: status
            return buf[pos + 1 : eol].decode("utf-8", "replace"), eol + 2
        if kind == 0x2D:  # -: error
            return self._errorClass(buf[pos + 1 : eol].decode("utf-8", "replace")), eol + 2
        raise RespError(f"a reply starting with {bytes([kind])!r}")


def _count(buf: bytes, pos: int, eol: int) -> int:
    """The decimal integer between a reply's type byte and its CRLF."""
    digits = buf[pos + 1 : eol]
    if not (digits.isdigit() or (digits[:1] == b"-" and digits[1:].isdigit())):
        raise RespError(f"{digits[:40]!r} is not an integer")
    return int(digits)
