"""
The twistd plugin of twisted_ws: C{twistd websocket}.

Kept tiny on purpose: twistd imports every plugin module to list them, so
the real code is only imported when the service is made.
"""

from twisted.application.service import ServiceMaker


class _WebSocketServiceMaker(ServiceMaker):
    """Listens before twistd daemonizes: see L{twisted_ws.twistd.makeTwistdService}."""

    @property
    def options(self):
        # A usage error exits 1 on every Twisted (see TwistdOptions).
        from twisted_ws.twistd import TwistdOptions

        return TwistdOptions

    def makeService(self, options):  # type: ignore[override]
        from twisted_ws.twistd import makeTwistdService

        return makeTwistdService(options)


websocket = _WebSocketServiceMaker(
    "twisted_ws WebSocket server",
    "twisted_ws.twistd",
    "A WebSocket server: echo, broadcast rooms, TCP bridge, static files or your own protocol.",
    "websocket",
)
