"""
The twistd plugin of twisted_ws: C{twistd websocket}.

Kept tiny on purpose: twistd imports every plugin module to list them, so
the real code is only imported when the service is made.
"""

from twisted.application.service import ServiceMaker

websocket = ServiceMaker(
    "twisted_ws WebSocket server",
    "twisted_ws.service",
    "A WebSocket server: echo, broadcast rooms, TCP bridge, static files or your own protocol.",
    "websocket",
)
