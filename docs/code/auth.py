"""How-to: authenticating in the accept hook (a token, a cookie session)."""

import hmac
from urllib.parse import parse_qs

from twisted.internet import defer
from twisted.web.resource import Resource
from twisted.web.server import Site

from twisted_ws import Accept, Reject, WebSocketProtocol, WebSocketResource, WebSocketServerFactory

# -- a bearer token, checked by a service that answers later --------------------------

TOKENS = {"s3cret-token": "alice"}  # stands for your token service


def lookUpToken(token):
    """Your token service: a Deferred firing with the user, or None."""
    return defer.succeed(next((user for known, user in TOKENS.items() if hmac.compare_digest(known, token)), None))


def tokenOf(request):
    """The token from 'Authorization: Bearer ...', or from ?token=... (browsers cannot set headers)."""
    scheme, _, token = (request.header("authorization") or "").partition(" ")
    if scheme.lower() == "bearer" and token:
        return token.strip()
    return parse_qs(request.query).get("token", [""])[0]


async def checkToken(request):
    user = await lookUpToken(tokenOf(request))  # the connection waits, reading nothing
    if user is None:
        raise Reject(401, "a valid token is required", headers=[("WWW-Authenticate", "Bearer")])
    return Accept(headers=[("X-User", user)])


class Greeter(WebSocketProtocol):
    def connectionMade(self):
        self.sendMessage(f"hello, {TOKENS[tokenOf(self.request)]}")


tokenFactory = WebSocketServerFactory(Greeter, accept=checkToken)

# -- a cookie session, with WebSocketResource in a twisted.web Site ---------------------


def checkSession(request):
    web = request.webRequest  # the twisted.web Request behind the upgrade
    if web.getCookie(b"TWISTED_SESSION") is None:
        raise Reject(401, "log in first")
    if web.getSession().sessionNamespaces.get("user") is None:
        raise Reject(403, "this session has not logged in")
    return None  # accept with the defaults


class SessionGreeter(WebSocketProtocol):
    def connectionMade(self):
        user = self.request.webRequest.getSession().sessionNamespaces["user"]
        self.sendMessage(f"hello, {user}")


def makeSite():
    root = Resource()  # your pages, including the login that sets session.sessionNamespaces["user"]
    root.putChild(b"ws", WebSocketResource(WebSocketServerFactory(SessionGreeter, accept=checkSession)))
    return Site(root)
