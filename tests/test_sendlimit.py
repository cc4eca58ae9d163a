"""
Twisted's socket transports send at most C{SEND_LIMIT} bytes per reactor
turn; a WebSocket connection raises it to fit one write of the core.
"""

from __future__ import annotations

from twisted.internet import tcp
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from twisted_ws import WebSocketProtocol, WebSocketServerFactory
from twisted_ws.core.connection import WRITE_SIZE
from twisted_ws.transport import raiseSendLimit
from wshelpers import openedServer


class SocketLike(StringTransport):
    """A memory transport with a socket transport's class-level SEND_LIMIT."""

    SEND_LIMIT = 128 * 1024


class TLSLike:
    """Forwards unknown attributes to the transport beneath, as TLS does."""

    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_twistedSocketTransportsHaveSendLimit():
    # If Twisted renamed it, raiseSendLimit would silently do nothing.
    assert isinstance(tcp.Server.SEND_LIMIT, int)
    assert tcp.Server.SEND_LIMIT < WRITE_SIZE


def test_raisedOnTheInstanceOnly():
    t = SocketLike()
    raiseSendLimit(t, 300_000)
    assert t.SEND_LIMIT == 300_000
    assert SocketLike.SEND_LIMIT == 128 * 1024


def test_neverLowered():
    t = SocketLike()
    raiseSendLimit(t, 1000)
    assert t.SEND_LIMIT == 128 * 1024


def test_transportsWithoutItAreLeftAlone():
    plain = StringTransport()
    raiseSendLimit(plain, 300_000)
    assert not hasattr(plain, "SEND_LIMIT")
    wrapped = TLSLike(SocketLike())
    raiseSendLimit(wrapped, 300_000)
    assert "SEND_LIMIT" not in vars(wrapped)
    assert wrapped.inner.SEND_LIMIT == 128 * 1024


def test_openConnectionFitsOneWriteInOneSend():
    factory = WebSocketServerFactory(WebSocketProtocol, extensions=[], clock=Clock())
    transport = SocketLike()
    app = openedServer(factory, transport)
    assert isinstance(app, WebSocketProtocol)
    assert transport.SEND_LIMIT >= WRITE_SIZE + 1000
