"""
A WebSocket echo server written as a coroutine: every message comes back as
it went out, on any path.

    python examples/async_echo.py --port 9000 [--host 127.0.0.1]
        [--max-message-size BYTES] [--no-deflate]

The same server as examples/echo_server.py, in the coroutine style: one
C{async def handler(ws)} per connection instead of a WebSocketProtocol
subclass.  It prints one line when it is listening; the conformance run
(Autobahn|TestSuite) talks to it too.
"""

from __future__ import annotations

import argparse
import sys

from twisted.internet import defer, reactor, task
from twisted.internet.endpoints import serverFromString

from twisted_ws import WebSocket, WebSocketServerFactory
from twisted_ws.core.deflate import PerMessageDeflate


async def echo(ws: WebSocket) -> None:
    # Ends when the client closes; its return closes with 1000 if needed.
    async for message in ws:
        await ws.send(message)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=9000)
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
    factory = WebSocketServerFactory.forHandler(
        echo,
        extensions=[] if args.no_deflate else [PerMessageDeflate()],
        maxMessageSize=args.max_message_size,
        maxFragments=args.max_fragments,
    )
    host = args.host.replace(":", "\\:")
    endpoint = serverFromString(reactor, f"tcp:{args.port}:interface={host}")

    def listening(port):
        address = port.getHost()
        print(f"async echo server listening on ws://{args.host}:{address.port}/", flush=True)

    def failed(reason):
        print(f"async echo server could not listen: {reason.getErrorMessage()}", file=sys.stderr, flush=True)
        raise SystemExit(1)

    def serve(reactor):
        # task.react exits with 1 if listening fails, and with 0 when the
        # reactor is stopped (Ctrl-C).
        d = endpoint.listen(factory).addCallbacks(listening, failed)
        return d.addCallback(lambda _: defer.Deferred())

    task.react(serve)


if __name__ == "__main__":
    main()
