"""
L{MessageAssembler}: turns the data frames of one incoming message at a time
into handler calls, for the messages the connection's fast path does not
take whole (fragmented, compressed, or delivered piece by piece).

It applies the extension's decoder (bounded by C{maxMessageSize} as it
inflates), checks UTF-8 as the pieces arrive (so bad text fails fast, and a
streamed piece never splits a character), and either gathers the message or
hands each piece on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .extensions import Extension, MessageDecoder
from .frames import END, OP_CONTINUATION, OP_TEXT, START, WHOLE
from .utf8 import Utf8Decoder

__all__ = ["MessageAssembler"]


class MessageAssembler:
    """The message being received, between its first and its last frame."""

    __slots__ = (
        "maxMessageSize",
        "streaming",
        "_extensions",
        "_text",
        "_decoder",
        "_utf8",
        "_chunks",
        "_size",
    )

    def __init__(
        self,
        extensions: Sequence[Extension],
        maxMessageSize: int | None,
        streaming: bool,
    ) -> None:
        self.maxMessageSize = maxMessageSize
        self.streaming = streaming
        self._extensions = extensions
        self._text = False
        self._decoder: MessageDecoder | None = None
        self._utf8: Utf8Decoder | None = None
        # str pieces of a text message, bytes of a binary one.
        self._chunks: list[Any] | None = None
        self._size = 0

    def reset(self) -> None:
        """Forget the message under way (the connection failed)."""
        self._chunks = None
        self._decoder = self._utf8 = None

    def add(self, handler: Any, opcode: int, fin: bool, rsv: int, payload: bytes, part: int) -> bool:
        """
        Take one piece of a data frame and tell C{handler} what it makes;
        C{True} when it ended a message.

        Raises L{ProtocolError} (too large once inflated, bad compressed
        data) or C{UnicodeDecodeError} (bad text).
        """
        if opcode != OP_CONTINUATION and (part == WHOLE or part == START):
            self._text = opcode == OP_TEXT
            self._decoder = None
            if rsv:
                for ext in self._extensions:
                    if rsv & ext.rsvBits:
                        self._decoder = ext.decoder(rsv)
                        break
            self._utf8 = Utf8Decoder() if self._text else None
            self._chunks = None if self.streaming else []
            self._size = 0
            if self.streaming:
                handler.messageStarted(self._text)
        done = fin and (part == WHOLE or part == END)
        data = payload
        decoder = self._decoder
        if decoder is not None:
            limit = self.maxMessageSize
            if limit is None:
                data = decoder.decode(payload, None)
                if done:
                    data += decoder.finish(None)
            else:
                data = decoder.decode(payload, limit - self._size)
                self._size += len(data)
                if done:
                    tail = decoder.finish(limit - self._size)
                    self._size += len(tail)
                    data += tail
        piece: str | bytes = data
        if self._utf8 is not None:
            piece = self._utf8.decode(data, done)
        if self._chunks is None:
            if piece:
                handler.messageDataReceived(piece)
            if done:
                self._decoder = self._utf8 = None
                handler.messageEnded()
            return done
        if piece:
            self._chunks.append(piece)
        if done:
            chunks = self._chunks
            self._chunks = None
            self._decoder = self._utf8 = None
            if self._text:
                handler.textMessageReceived("".join(chunks))
            else:
                handler.binaryMessageReceived(b"".join(chunks))
        return done
