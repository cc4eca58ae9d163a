"""
One twisted.web Site serving a static page, a JSON resource and a WebSocket
echo on the same port.

    python examples/web_site.py --port 8080 [--host 127.0.0.1] [--no-deflate]

  /            the page in examples/web_site/ (it opens the socket at /ws)
  /api/status  JSON: open WebSocket connections, messages echoed, uptime
  /ws          WebSocket echo (a plain GET answers 426 Upgrade Required)

It prints one line when it is listening.  The echo accepts messages up to
16 MiB in up to 100000 fragments and permessage-deflate (unless
--no-deflate), like examples/echo_server.py, so the conformance run
(Autobahn|TestSuite) can run against /ws.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from twisted.internet import defer, reactor, task
from twisted.internet.endpoints import serverFromString
from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.static import File

from twisted_ws import WebSocketProtocol, WebSocketResource, WebSocketServerFactory
from twisted_ws.core.deflate import PerMessageDeflate

STATIC = Path(__file__).resolve().parent / "web_site"


class Echo(WebSocketProtocol):
    def connectionMade(self) -> None:
        self.factory.connections += 1

    def textMessageReceived(self, text: str) -> None:
        self.factory.echoed += 1
        self.sendMessage(text)

    def binaryMessageReceived(self, data: bytes) -> None:
        self.factory.echoed += 1
        self.sendMessage(data)

    def connectionClosed(self, code: int, reason: str, wasClean: bool) -> None:
        self.factory.connections -= 1


class EchoFactory(WebSocketServerFactory):
    protocol = Echo
    connections = 0
    echoed = 0


class Status(Resource):
    """What the echo is doing, as JSON."""

    isLeaf = True

    def __init__(self, factory: EchoFactory) -> None:
        super().__init__()
        self.factory = factory
        self.started = time.monotonic()

    def render_GET(self, request):
        request.setHeader(b"Content-Type", b"application/json")
        request.setHeader(b"Cache-Control", b"no-store")
        status = {
            "connections": self.factory.connections,
            "echoed": self.factory.echoed,
            "uptime": round(time.monotonic() - self.started, 3),
        }
        return json.dumps(status).encode("utf-8")


def makeSite(factory: EchoFactory, staticDir: Path = STATIC, **siteOptions) -> Site:
    """The resource tree: the static page, /api/status and /ws."""
    root = File(str(staticDir))
    api = Resource()
    api.putChild(b"status", Status(factory))
    root.putChild(b"api", api)
    root.putChild(b"ws", WebSocketResource(factory))
    return Site(root, **siteOptions)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--max-message-size",
        type=int,
        default=16 * 1024 * 1024,
        help="largest message accepted, in bytes (default 16 MiB)",
    )
    parser.add_argument(
        "--max-fragments", type=int, default=100_000, help="most frames per message"
    )
    parser.add_argument(
        "--no-deflate",
        action="store_true",
        help="do not accept permessage-deflate (compression)",
    )
    args = parser.parse_args(argv)
    factory = EchoFactory(
        extensions=[] if args.no_deflate else [PerMessageDeflate()],
        maxMessageSize=args.max_message_size,
        maxFragments=args.max_fragments,
    )
    site = makeSite(factory)
    host = args.host.replace(":", "\\:")
    endpoint = serverFromString(reactor, f"tcp:{args.port}:interface={host}")

    def listening(port):
        address = port.getHost()
        base = f"{args.host}:{address.port}"
        # No punctuation right after the ws:// URL: CI takes the first
        # "ws://" up to the next space as the address to test.
        print(
            f"web site listening on http://{base}/ with a WebSocket echo at ws://{base}/ws",
            flush=True,
        )

    def failed(reason):
        print(f"web site could not listen: {reason.getErrorMessage()}", file=sys.stderr, flush=True)
        raise SystemExit(1)

    def serve(reactor):
        # task.react exits with 1 if listening fails (even before the reactor
        # runs, where reactor.stop() would raise and leave it running), and
        # with 0 when the reactor is stopped (Ctrl-C).
        d = endpoint.listen(site).addCallbacks(listening, failed)
        return d.addCallback(lambda _: defer.Deferred())

    task.react(serve)


if __name__ == "__main__":
    main()
