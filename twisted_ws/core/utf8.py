"""
Incremental UTF-8 validation that fails as soon as the bytes are wrong.

RFC 6455 §8.1 asks an endpoint to fail the connection on invalid text, and
the conformance suite checks that it does so *fast*: when the offending bytes
arrive, not when the message ends.  CPython's incremental decoder already
rejects most bad prefixes eagerly; the one prefix it keeps pending is
C{ED A0..BF}, the start of a UTF-16 surrogate, which no continuation can
make valid, so it is checked here.
"""

from __future__ import annotations

import codecs

__all__ = ["Utf8Decoder"]

_IncrementalDecoder = codecs.getincrementaldecoder("utf-8")


class Utf8Decoder:
    """Decode UTF-8 text piece by piece, strictly."""

    __slots__ = ("_decoder",)

    def __init__(self) -> None:
        self._decoder = _IncrementalDecoder("strict")

    def decode(self, data: bytes, final: bool = False) -> str:
        """
        Decode more bytes; a character split over pieces is kept for later.

        @raise UnicodeDecodeError: as soon as C{data} cannot be part of valid
            UTF-8, or at C{final} when the text ends inside a character.
        """
        text = self._decoder.decode(data, final)
        if not final:
            pending = self._decoder.getstate()[0]
            if len(pending) >= 2 and pending[0] == 0xED and pending[1] >= 0xA0:
                raise UnicodeDecodeError(
                    "utf-8", bytes(pending), 0, 2, "encoded surrogate"
                )
        return text
