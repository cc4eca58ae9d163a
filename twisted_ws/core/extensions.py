"""
WebSocket extensions: the Sec-WebSocket-Extensions grammar and the
negotiation interfaces (RFC 6455 section 9.1).

Extension and parameter names are kept exactly as sent; every lookup (offer
to factory, answer to factory) compares them case-insensitively, as they are
tokens in an HTTP header and RFC 6455 gives no case rule of its own.

The interfaces are C{typing.Protocol} classes so that an implementation (such
as permessage-deflate) needs no base class and no import from here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

from twisted_ws.core.errors import HandshakeError
from twisted_ws.core.http import isToken

__all__ = [
    "ExtensionParams",
    "ExtensionOffer",
    "parseExtensionHeader",
    "formatExtensionHeader",
    "Extension",
    "MessageDecoder",
    "ServerExtensionFactory",
    "ClientExtensionFactory",
    "negotiateServerExtensions",
    "acceptClientExtensions",
]

#: An extension's parameters: (name, value or None for a bare parameter).
ExtensionParams = list[tuple[str, str | None]]
#: One element of the header: (extension name, parameters).
ExtensionOffer = tuple[str, ExtensionParams]

_TCHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_OWS = " \t"

# The fast path of parseExtensionHeader: one list element whose parameter
# values are tokens, bare or quoted (what every client sends).  Commas
# cannot occur inside such an element, so splitting the value on commas
# finds the elements.  Anything else goes through the scanner.
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_PARAM = rf"[ \t]*;[ \t]*({_TOKEN})(?:[ \t]*=[ \t]*(?:({_TOKEN})|\"({_TOKEN})\"))?"
_SIMPLE_ELEMENT_RE = re.compile(rf"[ \t]*({_TOKEN})((?:{_PARAM})*)[ \t]*")
_PARAM_RE = re.compile(_PARAM)


def _isQdtext(char: str) -> bool:
    """RFC 7230 qdtext: HTAB, SP, VCHAR except DQUOTE and backslash, obs-text."""
    code = ord(char)
    return (
        char in "\t "
        or (0x21 <= code <= 0x7E and char not in '"\\')
        or 0x80 <= code <= 0xFF
    )


class _Scanner:
    """A cursor over one header value; every grammar error is a ValueError."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def skipOWS(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in _OWS:
            self.pos += 1

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def token(self, what: str) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in _TCHARS:
            self.pos += 1
        if self.pos == start:
            raise ValueError(f"expected {what} at offset {start} in {self.text!r}")
        return self.text[start : self.pos]

    def quotedString(self) -> str:
        # Called with the cursor on the opening DQUOTE.
        self.pos += 1
        chars: list[str] = []
        while True:
            if self.pos >= len(self.text):
                raise ValueError(f"unterminated quoted string in {self.text!r}")
            char = self.text[self.pos]
            self.pos += 1
            if char == '"':
                return "".join(chars)
            if char == "\\":
                if self.pos >= len(self.text):
                    raise ValueError(f"unterminated quoted string in {self.text!r}")
                escaped = self.text[self.pos]
                self.pos += 1
                if not (escaped in "\t " or _isQdtext(escaped) or escaped in '"\\'):
                    raise ValueError(f"invalid escape in quoted string in {self.text!r}")
                chars.append(escaped)
            elif _isQdtext(char):
                chars.append(char)
            else:
                raise ValueError(f"invalid character in quoted string in {self.text!r}")


def _parseOne(text: str, result: list[ExtensionOffer]) -> None:
    scanner = _Scanner(text)
    elements = 0
    while True:
        scanner.skipOWS()
        # RFC 7230 section 7: empty list elements are allowed and ignored.
        if scanner.peek() == ",":
            scanner.pos += 1
            continue
        if scanner.peek() == "":
            break
        name = scanner.token("extension name")
        params: ExtensionParams = []
        scanner.skipOWS()
        while scanner.peek() == ";":
            scanner.pos += 1
            scanner.skipOWS()
            paramName = scanner.token("parameter name")
            scanner.skipOWS()
            value: str | None = None
            if scanner.peek() == "=":
                scanner.pos += 1
                scanner.skipOWS()
                if scanner.peek() == '"':
                    value = scanner.quotedString()
                    if not isToken(value):
                        raise ValueError(
                            f"quoted value of {paramName!r} is not a token in {text!r}"
                        )
                else:
                    value = scanner.token(f"value of {paramName!r}")
                scanner.skipOWS()
            params.append((paramName, value))
        result.append((name, params))
        elements += 1
        if scanner.peek() not in (",", ""):
            raise ValueError(f"unexpected {scanner.peek()!r} at offset {scanner.pos} in {text!r}")
    if elements == 0:
        raise ValueError("empty Sec-WebSocket-Extensions value")


def parseExtensionHeader(values: Iterable[str]) -> list[ExtensionOffer]:
    """
    Parse every Sec-WebSocket-Extensions value into (name, params) elements.

    Quoted parameter values are unquoted and must then be tokens (RFC 6455
    section 9.1).  Empty list elements are ignored, but each header value must
    hold at least one extension (the grammar is C{1#extension}).

    @raise ValueError: any grammar error.
    """
    result: list[ExtensionOffer] = []
    for value in values:
        if not _parseSimple(value, result):
            _parseOne(value, result)
    return result


def _parseSimple(text: str, result: list[ExtensionOffer]) -> bool:
    """
    Parse C{text} with whole-element regular expressions if every element
    is simple (see L{_SIMPLE_ELEMENT_RE}); return C{False}, adding nothing,
    otherwise (the scanner then parses it, or names the error).
    """
    parsed: list[ExtensionOffer] = []
    for element in text.split(","):
        match = _SIMPLE_ELEMENT_RE.fullmatch(element)
        if match is None:
            if element.strip(_OWS):
                return False
            continue  # an empty element, allowed
        name, rest = match.group(1, 2)
        params: ExtensionParams = (
            [(p, bare or quoted or None) for p, bare, quoted in _PARAM_RE.findall(rest)]
            if rest
            else []
        )
        parsed.append((name, params))
    if not parsed:
        return False
    result += parsed
    return True


def formatExtensionHeader(
    extensions: Iterable[tuple[str, Iterable[tuple[str, str | None]]]],
) -> str:
    """
    Serialise (name, params) elements into one header value.

    Values are always written bare, since they must be tokens anyway.

    @raise ValueError: a name or value is not a token.
    """
    elements: list[str] = []
    for name, params in extensions:
        if not isToken(name):
            raise ValueError(f"invalid extension name {name!r}")
        parts = [name]
        for paramName, value in params:
            if not isToken(paramName):
                raise ValueError(f"invalid parameter name {paramName!r}")
            if value is None:
                parts.append(paramName)
            elif isToken(value):
                parts.append(f"{paramName}={value}")
            else:
                raise ValueError(f"invalid value {value!r} for parameter {paramName!r}")
        elements.append("; ".join(parts))
    return ", ".join(elements)


class MessageDecoder(Protocol):
    """
    Undoes an extension's transform for one incoming message.

    Implementations must enforce C{maxSize} while decoding, not after,
    because a compressed message can expand enormously: the limit exists to
    bound memory, so producing the oversized output first defeats it.
    """

    def decode(self, data: bytes, maxSize: int | None) -> bytes:
        """
        Decode the next chunk of the message's payload.

        @param maxSize: cap on the total decoded size of the whole message,
            or None for no cap.
        @raise twisted_ws.core.errors.ProtocolError: code 1009 as soon as the
            message would exceed C{maxSize}; code 1007 for undecodable data.
        """
        ...

    def finish(self, maxSize: int | None) -> bytes:
        """Signal the end of the message; return any remaining output."""
        ...


@runtime_checkable
class Extension(Protocol):
    """
    One negotiated extension, live for a single connection.

    C{rsvBits} is the mask of RSV bits (in the frame's first byte: 0x40,
    0x20, 0x10) the extension owns; the frame layer refuses any RSV bit no
    negotiated extension owns, and negotiation refuses two extensions that
    claim the same bit.
    """

    name: str
    rsvBits: int

    def decoder(self, rsv: int) -> MessageDecoder | None:
        """
        Called at the first frame of each incoming data message.

        @param rsv: that frame's RSV bits (already masked to 0x70).
        @return: a decoder for this message, or None when this extension
            did not transform it.
        """
        ...

    def encodeMessage(
        self, payload: bytes, isText: bool, compress: bool | None = None
    ) -> tuple[bytes, int]:
        """
        Transform an outgoing message.

        @param compress: the sender's per-message choice (C{False}: the data
            is already compressed; C{True}: compress regardless of size);
            passed only when the sender made one, so an extension that
            compresses nothing may leave the parameter out.
        @return: the payload to send and the RSV bits to set on its first
            frame; C{(payload, 0)} when left untouched.
        """
        ...


class ServerExtensionFactory(Protocol):
    """Decides, on the server, whether and how to accept an extension."""

    name: str

    def negotiate(
        self, offers: list[list[tuple[str, str | None]]]
    ) -> tuple[list[tuple[str, str | None]], Extension] | None:
        """
        Pick among the client's offers of this extension.

        @param offers: the parameter list of every offer of this extension,
            in the client's preference order.
        @return: the parameters for the response and the extension instance,
            or None to decline.
        """
        ...


class ClientExtensionFactory(Protocol):
    """Offers an extension from the client and accepts the server's terms."""

    name: str

    def offer(self) -> list[tuple[str, str | None]]:
        """The parameters to offer."""
        ...

    def accept(self, params: list[tuple[str, str | None]]) -> Extension:
        """
        Build the extension from the server's response parameters.

        @raise HandshakeError: the server's parameters are unacceptable.
        """
        ...


def negotiateServerExtensions(
    offered: Iterable[tuple[str, Sequence[tuple[str, str | None]]]],
    factories: Sequence[ServerExtensionFactory],
) -> tuple[str | None, list[Extension]]:
    """
    Run server-side negotiation, the server's factory order deciding.

    Each factory sees every offer bearing its name (case-insensitively).  A
    factory whose extension claims RSV bits already claimed by an accepted
    one is skipped, since two extensions cannot share a bit.

    @return: the Sec-WebSocket-Extensions response value (None when nothing
        was accepted) and the accepted extensions, in the order they apply.
    """
    offeredList = list(offered)
    accepted: list[Extension] = []
    response: list[tuple[str, list[tuple[str, str | None]]]] = []
    usedBits = 0
    for factory in factories:
        wanted = factory.name.lower()
        offers = [list(params) for name, params in offeredList if name.lower() == wanted]
        if not offers:
            continue
        result = factory.negotiate(offers)
        if result is None:
            continue
        params, extension = result
        if extension.rsvBits & usedBits:
            continue
        usedBits |= extension.rsvBits
        accepted.append(extension)
        response.append((factory.name, list(params)))
    if not response:
        return None, []
    return formatExtensionHeader(response), accepted


def acceptClientExtensions(
    responseExtensions: Iterable[tuple[str, Sequence[tuple[str, str | None]]]],
    factories: Sequence[ClientExtensionFactory],
) -> list[Extension]:
    """
    Turn the server's Sec-WebSocket-Extensions answer into extensions.

    Failures use L{HandshakeError} status 0, the client-side convention for
    "the server said 101 but its headers are unacceptable".

    @raise HandshakeError: an extension was not offered, appears twice, or
        claims RSV bits already claimed; or a factory refused the params.
    """
    byName = {factory.name.lower(): factory for factory in factories}
    seen: set[str] = set()
    usedBits = 0
    extensions: list[Extension] = []
    for name, params in responseExtensions:
        key = name.lower()
        factory = byName.get(key)
        if factory is None:
            raise HandshakeError(0, f"server accepted extension {name!r} that was not offered")
        if key in seen:
            raise HandshakeError(0, f"server accepted extension {name!r} twice")
        seen.add(key)
        extension = factory.accept(list(params))
        if extension.rsvBits & usedBits:
            raise HandshakeError(0, f"extension {name!r} reuses an RSV bit")
        usedBits |= extension.rsvBits
        extensions.append(extension)
    return extensions
