"""
Reading the body of an HTTP/1.1 response, as far as a client needs it.

A server that refuses an upgrade usually explains why in the body (a 401's
challenge text, a 403's reason).  The client keeps the start of it for the
application, so it must find where the body ends (RFC 9112 section 6.3:
no body, Content-Length, chunked, or until the connection closes) without
trusting the server about sizes: at most C{maxSize} bytes are kept, and
the reading stops there.  A malformed body ends the reading with what was
decoded so far: the refusal itself is already known, the body is a bonus.
"""

from __future__ import annotations

import re
from enum import Enum

from twisted_ws.core.http import Headers

__all__ = ["BodyReader", "BodyFraming", "MAX_REFUSAL_BODY"]

#: How much of a refusal's body is kept by default.
MAX_REFUSAL_BODY = 64 * 1024

#: A chunk size: hex digits, at most 16 of them (a 64-bit size).
_CHUNK_SIZE_RE = re.compile(rb"[0-9A-Fa-f]{1,16}")
_DIGITS_RE = re.compile(r"[0-9]{1,18}")


class BodyFraming(Enum):
    """How the end of the body is found."""

    NONE = "none"
    LENGTH = "length"
    CHUNKED = "chunked"
    CLOSE = "close"


class _Chunk(Enum):
    SIZE = "size"
    DATA = "data"
    DATA_END = "data end"


class BodyReader:
    """
    Bytes of one response body in, the (decoded, capped) body out.

    @ivar framing: the L{BodyFraming} the response's head chose.
    @ivar done: true once the body ended, was cut at C{maxSize}, turned
        out malformed, or the connection closed (L{finish}).
    @ivar malformed: true when a chunked body broke its grammar.
    """

    def __init__(
        self,
        status: int,
        headers: Headers,
        maxSize: int = MAX_REFUSAL_BODY,
        maxLineLength: int = 4096,
    ) -> None:
        self.maxSize = maxSize
        self.maxLineLength = maxLineLength
        self.done = False
        self.malformed = False
        self._body = bytearray()
        self._pending = bytearray()
        self._chunk = _Chunk.SIZE
        self._chunkLeft = 0
        self._wanted = 0
        codings = [token.lower() for token in headers.getCommaList("Transfer-Encoding")]
        lengths = set(headers.getCommaList("Content-Length"))
        if status < 200 or status in (204, 304):
            self.framing = BodyFraming.NONE
        elif codings:
            # Only a final "chunked" delimits the body; any other coding
            # leaves the end to the connection's close (RFC 9112 6.3).
            self.framing = BodyFraming.CHUNKED if codings[-1] == "chunked" else BodyFraming.CLOSE
        elif len(lengths) == 1 and _DIGITS_RE.fullmatch(next(iter(lengths))):
            self.framing = BodyFraming.LENGTH
            self._wanted = min(int(next(iter(lengths))), maxSize)
        else:
            self.framing = BodyFraming.CLOSE
        if self.framing is BodyFraming.NONE or (
            self.framing is BodyFraming.LENGTH and self._wanted == 0
        ):
            self.done = True

    @property
    def body(self) -> bytes:
        """The body decoded so far (at most C{maxSize} bytes)."""
        return bytes(self._body)

    def feed(self, data: bytes) -> bool:
        """Add bytes of the body; return whether it is complete."""
        if self.done or not data:
            return self.done
        if self.framing is BodyFraming.CHUNKED:
            self._pending += data
            self._dechunk()
        else:
            limit = self._wanted if self.framing is BodyFraming.LENGTH else self.maxSize
            self._body += data[: limit - len(self._body)]
            if len(self._body) >= limit:
                self.done = True
        return self.done

    def finish(self) -> None:
        """The connection ended: the body is whatever arrived."""
        self.done = True
        self._pending = bytearray()

    def _keep(self, data: bytes | bytearray) -> None:
        self._body += data[: self.maxSize - len(self._body)]
        if len(self._body) >= self.maxSize:
            self._stop()

    def _stop(self, malformed: bool = False) -> None:
        self.done = True
        self.malformed = malformed
        self._pending = bytearray()

    def _dechunk(self) -> None:
        pending = self._pending
        while pending and not self.done:
            if self._chunk is _Chunk.SIZE:
                newline = pending.find(b"\n")
                if newline == -1:
                    if len(pending) > self.maxLineLength:
                        self._stop(malformed=True)
                    return
                line = bytes(pending[:newline]).rstrip(b"\r")
                del pending[: newline + 1]
                sizeText = line.split(b";", 1)[0].strip(b" \t")
                if _CHUNK_SIZE_RE.fullmatch(sizeText) is None:
                    self._stop(malformed=True)
                    return
                size = int(sizeText, 16)
                if size == 0:
                    # The last chunk: trailers may follow, but the body is
                    # complete and the connection is about to close.
                    self._stop()
                    return
                self._chunkLeft = size
                self._chunk = _Chunk.DATA
            elif self._chunk is _Chunk.DATA:
                taken = pending[: self._chunkLeft]
                del pending[: len(taken)]
                self._chunkLeft -= len(taken)
                self._keep(taken)
                if self._chunkLeft == 0:
                    self._chunk = _Chunk.DATA_END
            else:
                if pending.startswith(b"\r\n"):
                    del pending[:2]
                elif pending.startswith(b"\n"):
                    del pending[:1]
                elif pending == b"\r":
                    return
                else:
                    self._stop(malformed=True)
                    return
                self._chunk = _Chunk.SIZE
