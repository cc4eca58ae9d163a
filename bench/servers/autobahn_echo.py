"""
autobahn (Twisted flavour) echo server for the benchmark.

TCP_NODELAY: autobahn 26.x calls C{transport.setTcpNoDelay(self.tcpNoDelay)}
in C{connectionMade} before the protocol has copied its options from the
factory, so the attribute does not exist yet, the C{AttributeError} is
swallowed, and Nagle's algorithm stays on.  We set it ourselves afterwards.
"""

from __future__ import annotations

from _common import MAX_MESSAGE, announce, parseArgs
from autobahn import __version__ as autobahnVersion
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from twisted.internet import reactor


class Echo(WebSocketServerProtocol):
    def connectionMade(self) -> None:
        super().connectionMade()
        self.transport.setTcpNoDelay(True)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.sendMessage(payload, isBinary)


def main() -> None:
    args = parseArgs(__doc__.strip().split("\n")[0])
    factory = WebSocketServerFactory(f"ws://{args.host}")
    factory.protocol = Echo
    factory.noisy = False
    factory.setProtocolOptions(
        maxMessagePayloadSize=MAX_MESSAGE,
        maxFramePayloadSize=MAX_MESSAGE,
        perMessageCompressionAccept=lambda offers: None,  # no deflate
        tcpNoDelay=True,
    )
    try:
        from autobahn.websocket import USES_NVX as nvx
    except ImportError:
        nvx = "?"
    port = reactor.listenTCP(args.port, factory, backlog=1024, interface=args.host)
    factory.setSessionParameters(url=f"ws://{args.host}:{port.getHost().port}")
    announce(port.getHost().port, server="autobahn", version=autobahnVersion, nvx=nvx,
             reactor=type(reactor).__name__)
    reactor.run()


if __name__ == "__main__":
    main()
