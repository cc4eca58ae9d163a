"""
twisted_ws echo server for the benchmark, in the coroutine style: one
C{async def handler(ws)} per connection (C{WebSocketServerFactory.forHandler}),
so that its cost per message can be read beside the callback echo's.

Start it with C{TWISTED_WS_NO_EXTENSION=1} in the environment to measure the
pure-Python code instead of the C accelerator.
"""

from __future__ import annotations

from _common import MAX_MESSAGE, announce, parseArgs
from twisted.internet import reactor

from twisted_ws import WebSocketServerFactory
from twisted_ws.core import masking


async def echo(ws):
    async for message in ws:
        await ws.send(message)


def main() -> None:
    args = parseArgs(__doc__.strip().split("\n")[0])
    # As twisted_ws_echo.py: no extensions, TCP_NODELAY set by the library.
    factory = WebSocketServerFactory.forHandler(echo, extensions=[], maxMessageSize=MAX_MESSAGE)
    factory.noisy = False
    port = reactor.listenTCP(args.port, factory, backlog=1024, interface=args.host)
    announce(port.getHost().port, server="twisted_ws (async)", speedups=masking.HAVE_SPEEDUPS,
             reactor=type(reactor).__name__)
    reactor.run()


if __name__ == "__main__":
    main()
