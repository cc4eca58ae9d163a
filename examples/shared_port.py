"""
One port, one key-value service, two kinds of clients.

A line-based protocol (C{SET key value} -> C{OK}, C{GET key} -> the value
or C{NOT_FOUND}; lines end with CRLF) is served to raw TCP clients and to
WebSocket clients on the same port, from one store: what one kind of
client sets, the other reads.

The WebSocket side runs the very same C{LineReceiver} through
L{twisted_ws.StreamOverWebSocketFactory} with C{delimiter=b"\\r\\n"}:
each text message is one command (the adapter appends the CRLF the
protocol needs) and each answer line is one text message (the adapter cuts
it off again).  Try it::

    python examples/shared_port.py --port 8080
    printf 'SET color blue\\r\\n' | nc -q1 127.0.0.1 8080      # -> OK
    python -m websockets ws://127.0.0.1:8080/                # > GET color
"""

from __future__ import annotations

import argparse
import sys

from twisted.internet.protocol import Factory
from twisted.protocols.basic import LineReceiver

from twisted_ws import PortSharingFactory, StreamOverWebSocketFactory


class KeyValueProtocol(LineReceiver):
    """C{SET key value} / C{GET key}, one command per line."""

    delimiter = b"\r\n"
    MAX_LENGTH = 64 * 1024

    def lineReceived(self, line: bytes) -> None:
        command, _, rest = line.partition(b" ")
        command = command.upper()
        store = self.factory.store
        if command == b"SET":
            key, sep, value = rest.partition(b" ")
            if not key or not sep:
                self.sendLine(b"ERROR usage: SET key value")
                return
            store[key] = value
            self.sendLine(b"OK")
        elif command == b"GET":
            if not rest or b" " in rest:
                self.sendLine(b"ERROR usage: GET key")
                return
            self.sendLine(store.get(rest, b"NOT_FOUND"))
        else:
            self.sendLine(b"ERROR unknown command")

    def lineLengthExceeded(self, line: bytes) -> None:
        self.sendLine(b"ERROR line too long")
        self.transport.loseConnection()


class KeyValueFactory(Factory):
    """Builds L{KeyValueProtocol}s that share one store."""

    protocol = KeyValueProtocol

    def __init__(self) -> None:
        self.store: dict[bytes, bytes] = {}


def makeSharedFactory(store: KeyValueFactory | None = None, **options) -> PortSharingFactory:
    """The whole service: raw TCP and WebSocket clients on one port."""
    keyValue = store or KeyValueFactory()
    webSocket = StreamOverWebSocketFactory(keyValue, delimiter=b"\r\n")
    return PortSharingFactory(webSocket, keyValue, **options)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8080, help="0: let the OS pick")
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)

    from twisted.internet import defer, task
    from twisted.internet.endpoints import TCP4ServerEndpoint

    def listening(port):
        address = port.getHost()
        print(f"listening on {address.host}:{address.port}", flush=True)

    def failed(failure):
        print(f"cannot listen: {failure.getErrorMessage()}", file=sys.stderr, flush=True)
        raise SystemExit(1)

    def serve(reactor):
        # task.react exits with 1 if listening fails (even before the reactor
        # runs, where reactor.stop() would raise and leave it running), and
        # with 0 when the reactor is stopped (Ctrl-C).
        endpoint = TCP4ServerEndpoint(reactor, args.port, interface=args.host)
        d = endpoint.listen(makeSharedFactory()).addCallbacks(listening, failed)
        return d.addCallback(lambda _: defer.Deferred())

    task.react(serve)


if __name__ == "__main__":
    main()
