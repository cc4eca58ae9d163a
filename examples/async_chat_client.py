"""
A line-based WebSocket chat client written with coroutines: each line typed
(standard input) goes out as a text message, each message received is
printed.  End of input closes the connection (1000) and exits.

    python examples/async_chat_client.py ws://127.0.0.1:9000/room
    python examples/async_chat_client.py --subprotocol chat wss://example.com/chat

Try it against examples/async_echo.py or examples/chat_rooms.py.  It exits
0 after a normal close, 1 (with one line) when it cannot connect or the
connection ends otherwise.
"""

from __future__ import annotations

import argparse

from twisted.internet import stdio, task
from twisted.internet.defer import Deferred, DeferredQueue
from twisted.protocols.basic import LineReceiver

from twisted_ws import ConnectionClosed, WebSocket, connectWS


class StdinLines(LineReceiver):
    """Standard input as a queue of lines; C{None} at the end of input."""

    delimiter = b"\n"

    def __init__(self) -> None:
        self.lines: DeferredQueue[str | None] = DeferredQueue()

    def lineReceived(self, line: bytes) -> None:
        self.lines.put(line.decode("utf-8", "replace").rstrip("\r"))

    def connectionLost(self, reason: object = None) -> None:
        self.lines.put(None)


async def typing(ws: WebSocket, stdin: StdinLines) -> None:
    """Send each line typed; close at the end of input."""
    while (line := await stdin.lines.get()) is not None:
        await ws.send(line)  # waits while the server is slow to read
    await ws.close()


async def printing(ws: WebSocket) -> None:
    """Print each message until the connection closes."""
    async for message in ws:
        text = message if isinstance(message, str) else f"<{len(message)} bytes>"
        print(text, flush=True)


async def chat(reactor: object, url: str, subprotocols: list[str]) -> None:
    try:
        ws = await connectWS(url, reactor=reactor, subprotocols=subprotocols)
    except Exception as e:
        raise SystemExit(f"cannot connect to {url}: {e}") from None
    stdin = StdinLines()
    stdio.StandardIO(stdin, reactor=reactor)
    sending = Deferred.fromCoroutine(typing(ws, stdin))
    try:
        await printing(ws)
    except ConnectionClosed as e:
        raise SystemExit(f"connection closed: {e.info.code} {e.info.reason}".rstrip()) from None
    finally:
        sending.cancel()  # the server closed first: stop reading input
        sending.addErrback(lambda _: None)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="ws:// or wss:// URL")
    parser.add_argument("--subprotocol", action="append", default=[], help="offer this subprotocol")
    args = parser.parse_args(argv)
    task.react(lambda reactor: Deferred.fromCoroutine(chat(reactor, args.url, args.subprotocol)))


if __name__ == "__main__":
    main()
