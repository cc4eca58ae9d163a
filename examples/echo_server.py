"""
A WebSocket echo server: every message comes back as it went out (text stays
text, binary stays binary), on any path.

    python examples/echo_server.py --port 9000 [--host 127.0.0.1]
        [--max-message-size BYTES] [--no-deflate]

It accepts permessage-deflate (RFC 7692) unless --no-deflate is given, as
browsers offer it on every connection.
It prints one line when it is listening.  This is the server the conformance
run (Autobahn|TestSuite) and the benchmarks talk to.
"""

from __future__ import annotations

import argparse
import sys

from twisted.internet import defer, reactor, task
from twisted.internet.endpoints import serverFromString

from twisted_ws import WebSocketProtocol, WebSocketServerFactory
from twisted_ws.core.deflate import PerMessageDeflate


class Echo(WebSocketProtocol):
    def textMessageReceived(self, text: str) -> None:
        self.sendMessage(text)

    def binaryMessageReceived(self, data: bytes) -> None:
        self.sendMessage(data)


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
    factory = WebSocketServerFactory(
        Echo,
        extensions=[] if args.no_deflate else [PerMessageDeflate()],
        maxMessageSize=args.max_message_size,
        maxFragments=args.max_fragments,
    )
    host = args.host.replace(":", "\\:")
    endpoint = serverFromString(reactor, f"tcp:{args.port}:interface={host}")

    def listening(port):
        address = port.getHost()
        print(f"echo server listening on ws://{args.host}:{address.port}/", flush=True)

    def failed(reason):
        print(f"echo server could not listen: {reason.getErrorMessage()}", file=sys.stderr, flush=True)
        raise SystemExit(1)

    def serve(reactor):
        # task.react exits with 1 if listening fails (even before the reactor
        # runs, where reactor.stop() would raise and leave it running), and
        # with 0 when the reactor is stopped (Ctrl-C).
        d = endpoint.listen(factory).addCallbacks(listening, failed)
        return d.addCallback(lambda _: defer.Deferred())

    task.react(serve)


if __name__ == "__main__":
    main()
