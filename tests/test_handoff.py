"""
handOff: the one way a front end gives its transport to the next protocol
(memory transports only).
"""

from __future__ import annotations

from twisted.internet.protocol import Protocol
from twisted.internet.testing import StringTransport

from twisted_ws.handoff import handOff


class Old(Protocol):
    """The protocol that read the handshake."""


class Recording(Protocol):
    """Records makeConnection and every dataReceived; may close on connect."""

    def __init__(self, closeOnConnect: bool = False) -> None:
        self.received: list[bytes] = []
        self.closeOnConnect = closeOnConnect
        self.madeWith = None

    def connectionMade(self) -> None:
        self.madeWith = self.transport
        if self.closeOnConnect:
            self.connected = False
            self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        self.received.append(data)


class TCPLike(StringTransport):
    """A transport that calls its C{protocol} attribute, as TCP does."""

    def __init__(self, protocol) -> None:
        super().__init__()
        self.protocol = protocol


class TLSLike(StringTransport):
    """A wrapper that calls its C{wrappedProtocol}, as Twisted's TLS layer does."""

    def __init__(self, protocol) -> None:
        super().__init__()
        self.wrappedProtocol = protocol


def test_tcpLikeTransportCallsTheNewProtocol():
    old, new = Old(), Recording()
    transport = TCPLike(old)
    assert handOff(old, new, transport) is None
    assert transport.protocol is new
    assert new.madeWith is transport and new.connected


def test_tlsLikeWrapperCallsTheNewProtocol():
    old, new = Old(), Recording()
    transport = TLSLike(old)
    assert handOff(old, new, transport, b"frame") is None
    assert transport.wrappedProtocol is new
    assert new.received == [b"frame"]


def test_unknownShapeMakesTheOldProtocolForward():
    old, new = Old(), Recording()
    transport = StringTransport()  # no protocol attribute to re-assign
    assert handOff(old, new, transport, b"x") is new
    assert new.madeWith is transport
    assert new.received == [b"x"]


def test_anotherProtocolInTheAttributeIsLeftAlone():
    # The transport's protocol is not the one handing off (a wrapper in
    # between): never overwrite someone else's protocol.
    other, old, new = Old(), Old(), Recording()
    transport = TCPLike(other)
    assert handOff(old, new, transport) is new
    assert transport.protocol is other


def test_trailingDataDeliveredOnceAfterMakeConnection():
    order = []

    class Ordered(Recording):
        def connectionMade(self):
            order.append("made")

        def dataReceived(self, data):
            order.append(data)

    old, new = Old(), Ordered()
    handOff(old, new, TCPLike(old), b"abc")
    assert order == ["made", b"abc"]


def test_noTrailingDataNoDataReceived():
    old, new = Old(), Recording()
    handOff(old, new, TCPLike(old))
    assert new.received == []


def test_trailingDataDroppedWhenTheNewProtocolClosedOnConnect():
    old, new = Old(), Recording(closeOnConnect=True)
    transport = TCPLike(old)
    assert handOff(old, new, transport, b"late") is None
    assert new.received == []
    assert transport.disconnecting
