"""
twisted_ws echo server for the benchmark (the library used directly).

Start it with C{TWISTED_WS_NO_EXTENSION=1} in the environment to measure the
pure-Python code instead of the C accelerator; the log line says which one
is in use.
"""

from __future__ import annotations

from _common import MAX_MESSAGE, announce, parseArgs
from twisted.internet import reactor

from twisted_ws import WebSocketProtocol, WebSocketServerFactory
from twisted_ws.core import masking


class Echo(WebSocketProtocol):
    def textMessageReceived(self, text: str) -> None:
        self.sendMessage(text)

    def binaryMessageReceived(self, data: bytes) -> None:
        self.sendMessage(data)


def main() -> None:
    args = parseArgs(__doc__.strip().split("\n")[0])
    # No extensions: permessage-deflate is off.  The library sets TCP_NODELAY
    # on every accepted connection itself.
    factory = WebSocketServerFactory(Echo, extensions=[], maxMessageSize=MAX_MESSAGE)
    factory.noisy = False
    port = reactor.listenTCP(args.port, factory, backlog=1024, interface=args.host)
    announce(port.getHost().port, server="twisted_ws", speedups=masking.HAVE_SPEEDUPS,
             reactor=type(reactor).__name__)
    reactor.run()


if __name__ == "__main__":
    main()
