"""
Twisted's own twisted.web.websocket (WebSocketResource over wsproto) echo
server for the benchmark, served by a twisted.web Site on every path.

twisted.web does not set TCP_NODELAY on its connections; we do, when the
WebSocket protocol is built.  wsproto has no message-size limit and does not
negotiate permessage-deflate unless asked to.
"""

from __future__ import annotations

from _common import announce, parseArgs
from twisted import __version__ as twistedVersion
from twisted.internet import reactor
from twisted.web.server import Site
from twisted.web.websocket import WebSocketResource


class Echo:
    transport = None

    def negotiationStarted(self, transport) -> None:
        self.transport = transport

    def negotiationFinished(self) -> None:
        pass

    def pongReceived(self, payload: bytes) -> None:
        pass

    def textMessageReceived(self, message: str) -> None:
        self.transport.sendTextMessage(message)

    def bytesMessageReceived(self, data: bytes) -> None:
        self.transport.sendBytesMessage(data)

    def connectionLost(self, reason) -> None:
        self.transport = None


class EchoFactory:
    def buildProtocol(self, request) -> Echo:
        request.channel.transport.setTcpNoDelay(True)
        return Echo()


def main() -> None:
    args = parseArgs(__doc__.strip().split("\n")[0])
    resource = WebSocketResource(EchoFactory())
    resource.isLeaf = True  # answer on any path
    site = Site(resource)
    site.noisy = False
    site.log = lambda request: None  # no access log line per handshake
    port = reactor.listenTCP(args.port, site, backlog=1024, interface=args.host)
    announce(port.getHost().port, server="twisted.web.websocket", twisted=twistedVersion,
             reactor=type(reactor).__name__)
    reactor.run()


if __name__ == "__main__":
    main()
