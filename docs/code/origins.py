"""How-to: Origin checks."""

from twisted_ws import Reject, WebSocketProtocol, WebSocketServerFactory


class App(WebSocketProtocol):
    def messageReceived(self, message):
        self.sendMessage(message)


# Browsers from these origins only (shell patterns); others get 403.
# Clients that send no Origin (not browsers) pass: Origin protects users'
# browsers from other sites' pages, it does not authenticate programs.
factory = WebSocketServerFactory(App, allowedOrigins=["https://example.com", "https://*.example.com"])


def sameSiteOnly(request):
    """Stricter: a browser must come from the site it connects to; programs must name one."""
    if request.origin is None:
        raise Reject(403, "an Origin header is required")
    scheme = "https" if request.secure else "http"
    if request.origin != f"{scheme}://{request.host}":
        raise Reject(403, "cross-site WebSocket refused")


strictFactory = WebSocketServerFactory(App, accept=sameSiteOnly)
