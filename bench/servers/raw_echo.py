"""
Raw Twisted TCP echo server: the ceiling for the benchmark.

It echoes every byte it receives as it arrives, with no WebSocket framing at
all, and closes the connection (after echoing) when a chunk ends with
C{BYE}, a masked Close frame with an all-zero key that the load generator
sends to end a handshake loop, so that the server closes first as a
WebSocket server does; it also closes when the client half-closes.  Whatever the load
generator sends (masked frames, an HTTP request) comes straight back, so
this measures the reactor and the kernel only.
"""

from __future__ import annotations

from _common import announce, parseArgs
from twisted.internet import reactor
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Factory, Protocol
from zope.interface import implementer

BYE = b"\x88\x82\x00\x00\x00\x00\x03\xe8"  # same as bench/loadgen.py RAW_BYE


@implementer(IHalfCloseableProtocol)
class RawEcho(Protocol):
    def connectionMade(self) -> None:
        self.transport.setTcpNoDelay(True)

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)
        if data[-8:] == BYE:
            self.transport.loseConnection()

    def readConnectionLost(self) -> None:
        self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        pass


def main() -> None:
    args = parseArgs(__doc__.strip().split("\n")[0])
    factory = Factory.forProtocol(RawEcho)
    factory.noisy = False
    port = reactor.listenTCP(args.port, factory, backlog=1024, interface=args.host)
    announce(port.getHost().port, server="raw", reactor=type(reactor).__name__)
    reactor.run()


if __name__ == "__main__":
    main()
