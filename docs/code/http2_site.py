"""
How-to: WebSockets over HTTP/2 (RFC 8441), server and client.

    python docs/code/http2_site.py server.pem server.key    # wss://localhost:8443/ws
"""

import sys

from twisted.internet import defer, task
from twisted.internet.endpoints import serverFromString
from twisted.web.resource import Resource
from twisted.web.server import Site

from twisted_ws import WebSocketProtocol, WebSocketResource, WebSocketServerFactory, connectWS
from twisted_ws.http2 import enableHTTP2WebSockets


class Echo(WebSocketProtocol):
    def connectionMade(self):
        # "2" over an HTTP/2 stream, "1.1" after an Upgrade: same code either way.
        self.sendMessage(f"over HTTP/{self.request.httpVersion}")

    def messageReceived(self, message):
        self.sendMessage(message)


def makeSite():
    root = Resource()
    root.putChild(b"ws", WebSocketResource(WebSocketServerFactory(Echo)))
    # Opt in: the Site's HTTP/2 connections now take extended CONNECTs.
    return enableHTTP2WebSockets(Site(root))


async def openOverHTTP2(reactor, url="wss://localhost:8443/ws", trustRoot="ca.pem"):
    """The client: one TLS connection offering ALPN h2 only; no fallback."""
    ws = await connectWS(url, reactor=reactor, http2=True, trustRoot=trustRoot)
    return ws, await ws.recv()


async def main(reactor, cert, key, port="8443"):
    # HTTP/2 is picked by ALPN, so it needs TLS: an ssl: endpoint.
    endpoint = serverFromString(reactor, f"ssl:{port}:privateKey={key}:certKey={cert}")
    await endpoint.listen(makeSite())
    print(f"HTTP/1.1 and HTTP/2 WebSockets on wss://localhost:{port}/ws")
    await defer.Deferred()


if __name__ == "__main__":
    task.react(lambda reactor: defer.Deferred.fromCoroutine(main(reactor, *sys.argv[1:])))
