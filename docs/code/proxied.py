"""How-to: behind HAProxy (PROXY protocol) or nginx (X-Forwarded-For)."""

from ipaddress import ip_address

from twisted.protocols.haproxy import proxyEndpoint

from twisted_ws import WebSocketProtocol, WebSocketServerFactory


class WhoAmI(WebSocketProtocol):
    def connectionMade(self):
        # Behind haproxy: the client's address from the PROXY header.
        self.sendMessage(f"you are {self.request.peer.host}")


factory = WebSocketServerFactory(WhoAmI)


def listenBehindHAProxy(reactor, description="tcp:8080:interface=127.0.0.1"):
    """The same as serverFromString(reactor, "haproxy:" + description)."""
    from twisted.internet.endpoints import serverFromString

    return proxyEndpoint(serverFromString(reactor, description)).listen(factory)


TRUSTED_PROXIES = {"127.0.0.1", "::1"}  # nginx runs on this machine


def clientAddress(request):
    """
    The client's address behind nginx: the last X-Forwarded-For entry, which
    the proxy itself appended, and only when the connection comes from it.
    """
    peer = request.peer.host
    forwarded = request.header("x-forwarded-for")
    if peer in TRUSTED_PROXIES and forwarded:
        candidate = forwarded.split(",")[-1].strip()
        try:
            return str(ip_address(candidate))
        except ValueError:
            pass
    return peer


class WhoAmIBehindNginx(WebSocketProtocol):
    def connectionMade(self):
        self.sendMessage(f"you are {clientAddress(self.request)}")
