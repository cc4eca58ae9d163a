"""
C{twistd websocket}: a ready-made WebSocket server (echo, broadcast rooms,
a TCP bridge, or your own protocol class), with static files and a JSON
status page on the same port.

  - L{options}: the command line (L{Options});
  - L{service}: building the service and listening (L{makeService});
  - L{tracking}: counting the connections and closing them on stop;
  - L{site}: the twisted.web site (static files, the status page);
  - L{status}: the counters and the status page.

The twistd plugin (C{twisted/plugins/twisted_ws_plugin.py}) names this
package, whose L{Options} twistd parses.
"""

from .options import DEFAULT_LISTEN, MODES, Options, TwistdOptions, loadProtocolClass
from .service import (
    EchoProtocol,
    StartupError,
    WebSocketService,
    makeService,
    makeTwistdService,
)
from .status import ConnectionStats, StatusResource
from .tracking import ConnectionTracker, ServiceFactory

__all__ = [
    "Options",
    "TwistdOptions",
    "loadProtocolClass",
    "MODES",
    "DEFAULT_LISTEN",
    "EchoProtocol",
    "StartupError",
    "WebSocketService",
    "makeService",
    "makeTwistdService",
    "ConnectionStats",
    "StatusResource",
    "ConnectionTracker",
    "ServiceFactory",
]
