"""Tests for the Sec-WebSocket-Extensions grammar and negotiation helpers."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings, strategies as st

from twisted_ws.core.errors import HandshakeError
from twisted_ws.core.extensions import (
    Extension,
    MessageDecoder,
    acceptClientExtensions,
    formatExtensionHeader,
    negotiateServerExtensions,
    parseExtensionHeader,
)

# Parsing


def test_parseSimple() -> None:
    assert parseExtensionHeader(["permessage-deflate"]) == [("permessage-deflate", [])]


def test_parseParams() -> None:
    value = "permessage-deflate; client_max_window_bits; server_max_window_bits=10"
    assert parseExtensionHeader([value]) == [
        (
            "permessage-deflate",
            [("client_max_window_bits", None), ("server_max_window_bits", "10")],
        )
    ]


def test_parseListAndMultipleValues() -> None:
    result = parseExtensionHeader(["a; x=1, b", "c;y"])
    assert result == [("a", [("x", "1")]), ("b", []), ("c", [("y", None)])]


def test_parseWhitespace() -> None:
    result = parseExtensionHeader(["  a ;\tx = 1 ;y ,\t b  "])
    assert result == [("a", [("x", "1"), ("y", None)]), ("b", [])]


def test_parseQuoted() -> None:
    assert parseExtensionHeader(['a; x="10"']) == [("a", [("x", "10")])]
    assert parseExtensionHeader(['a; x="1\\0"']) == [("a", [("x", "10")])]


def test_caseKept() -> None:
    assert parseExtensionHeader(["Foo; Bar=Baz"]) == [("Foo", [("Bar", "Baz")])]


def test_emptyElementsIgnored() -> None:
    assert parseExtensionHeader([", a ,, b,"]) == [("a", []), ("b", [])]


def test_noValues() -> None:
    assert parseExtensionHeader([]) == []


@pytest.mark.parametrize(
    "value",
    [
        "",
        " , ",
        "a;",
        "a; ;x",
        ";a",
        "a b",
        "a; x=",
        "a; x=1 2",
        "a; x=\"\"",
        'a; x="1 0"',
        'a; x="a,b"',
        'a; x="10',
        'a; x="1\\',
        "a; x==1",
        "a=1",
        "a; x=1=2",
        "a/b",
        "a; x=(1)",
        "é",
        'a; x="\x01"',
    ],
)
def test_parseMalformed(value: str) -> None:
    with pytest.raises(ValueError):
        parseExtensionHeader([value])


def test_malformedInSecondValue() -> None:
    with pytest.raises(ValueError):
        parseExtensionHeader(["a", "b c"])


# Formatting


def test_format() -> None:
    assert formatExtensionHeader([("a", [("x", "1"), ("y", None)]), ("b", [])]) == "a; x=1; y, b"
    assert formatExtensionHeader([]) == ""


@pytest.mark.parametrize(
    "extensions",
    [[("a b", [])], [("a", [("x y", None)])], [("a", [("x", "1 2")])], [("a", [("x", "")])], [("", [])]],
)
def test_formatRefusesNonTokens(extensions: list) -> None:
    with pytest.raises(ValueError):
        formatExtensionHeader(extensions)


_token = st.text(alphabet="abcXYZ019!#$%&'*+-.^_`|~", min_size=1, max_size=6)
_params = st.lists(st.tuples(_token, st.none() | _token), max_size=4)


@settings(max_examples=300)
@given(st.lists(st.tuples(_token, _params), min_size=1, max_size=5))
def test_formatParseRoundTrip(extensions: list) -> None:
    assert parseExtensionHeader([formatExtensionHeader(extensions)]) == extensions


@settings(max_examples=300)
@given(st.lists(st.tuples(_token, _params), min_size=1, max_size=5))
def test_quotedValuesRoundTrip(extensions: list) -> None:
    parts = []
    for name, params in extensions:
        text = name
        for pname, value in params:
            if value is None:
                text += f";{pname}"
            else:
                quoted = "".join("\\" + c if c in "1a" else c for c in value)
                text += f' ; {pname} = "{quoted}"'
        parts.append(text)
    assert parseExtensionHeader([" ,".join(parts)]) == extensions


@settings(max_examples=500)
@given(st.lists(st.text(max_size=40), max_size=3))
def test_arbitraryTextOnlyRaisesValueError(values: list[str]) -> None:
    try:
        parseExtensionHeader(values)
    except ValueError:
        pass


@settings(max_examples=500)
@given(st.lists(st.text(alphabet='ab;=", \t\\x', max_size=30), max_size=3))
def test_grammarCharactersOnlyRaiseValueError(values: list[str]) -> None:
    try:
        result = parseExtensionHeader(values)
    except ValueError:
        return
    if not result:
        return
    # Whatever parsed must format and re-parse identically.
    assert parseExtensionHeader([formatExtensionHeader(result)]) == result


# Negotiation


@dataclass
class FakeExtension:
    name: str
    rsvBits: int
    params: list = field(default_factory=list)

    def decoder(self, rsv: int) -> MessageDecoder | None:
        return None

    def encodeMessage(self, payload: bytes, isText: bool) -> tuple[bytes, int]:
        return payload, 0


@dataclass
class FakeServerFactory:
    name: str
    rsvBits: int = 0x40
    decline: bool = False
    seen: list = field(default_factory=list)

    def negotiate(self, offers):  # type: ignore[no-untyped-def]
        self.seen.append(offers)
        if self.decline:
            return None
        return offers[-1], FakeExtension(self.name, self.rsvBits, offers[-1])


@dataclass
class FakeClientFactory:
    name: str
    rsvBits: int = 0x40
    refuse: bool = False

    def offer(self) -> list:
        return []

    def accept(self, params):  # type: ignore[no-untyped-def]
        if self.refuse:
            raise HandshakeError(0, "bad params")
        return FakeExtension(self.name, self.rsvBits, params)


def test_fakeExtensionMatchesProtocol() -> None:
    assert isinstance(FakeExtension("a", 0x40), Extension)


def test_negotiateCollectsOffersCaseInsensitively() -> None:
    factory = FakeServerFactory("permessage-deflate")
    offered = parseExtensionHeader(["Permessage-Deflate; a=1, other, permessage-deflate; b"])
    header, extensions = negotiateServerExtensions(offered, [factory])
    assert factory.seen == [[[("a", "1")], [("b", None)]]]
    assert header == "permessage-deflate; b"
    assert [e.name for e in extensions] == ["permessage-deflate"]


def test_negotiateNothingOffered() -> None:
    factory = FakeServerFactory("x")
    assert negotiateServerExtensions([("y", [])], [factory]) == (None, [])
    assert factory.seen == []


def test_negotiateDeclined() -> None:
    assert negotiateServerExtensions([("x", [])], [FakeServerFactory("x", decline=True)]) == (None, [])


def test_negotiateServerOrderAndRsvConflict() -> None:
    first = FakeServerFactory("b", rsvBits=0x40)
    clash = FakeServerFactory("a", rsvBits=0x40)
    other = FakeServerFactory("c", rsvBits=0x20)
    offered = [("a", []), ("b", []), ("c", [])]
    header, extensions = negotiateServerExtensions(offered, [first, clash, other])
    assert header == "b, c"
    assert [e.name for e in extensions] == ["b", "c"]


def test_acceptClientExtensions() -> None:
    factories = [FakeClientFactory("a", 0x40), FakeClientFactory("b", 0x20)]
    extensions = acceptClientExtensions([("B", [("x", "1")]), ("a", [])], factories)
    assert [e.name for e in extensions] == ["b", "a"]
    assert extensions[0].params == [("x", "1")]  # type: ignore[attr-defined]


def test_acceptClientExtensionsUnknown() -> None:
    with pytest.raises(HandshakeError):
        acceptClientExtensions([("z", [])], [FakeClientFactory("a")])


def test_acceptClientExtensionsRepeated() -> None:
    with pytest.raises(HandshakeError):
        acceptClientExtensions([("a", []), ("A", [])], [FakeClientFactory("a")])


def test_acceptClientExtensionsRsvClash() -> None:
    factories = [FakeClientFactory("a", 0x40), FakeClientFactory("b", 0x40)]
    with pytest.raises(HandshakeError):
        acceptClientExtensions([("a", []), ("b", [])], factories)


def test_acceptClientExtensionsFactoryRefuses() -> None:
    with pytest.raises(HandshakeError):
        acceptClientExtensions([("a", [])], [FakeClientFactory("a", refuse=True)])


_PIECES = st.sampled_from(
    ["permessage-deflate", "x", "client_max_window_bits", "15", '"10"', '"a b"', '"a,b"',
     '"\\a"', ";", "=", ",", " ", "\t", '"', "\\", "\x01", "é", "; a=1", '; b="2"', ";c"]
)  # fmt: skip


@settings(max_examples=2000, deadline=None)
@given(st.lists(_PIECES, max_size=8).map("".join))
def test_regexPathAgreesWithScanner(value: str) -> None:
    """
    The whole-element fast path gives the scanner's result on everything
    it accepts, and leaves everything else (and every error) to it.
    """
    from twisted_ws.core import extensions

    expected: list[object] = []
    try:
        extensions._parseOne(value, expected)
    except ValueError:
        expected = ["error"]
    try:
        got: list[object] = list(parseExtensionHeader([value]))
    except ValueError:
        got = ["error"]
    assert got == expected
