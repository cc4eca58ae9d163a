"""
The floor of a WebSocket opening and closing handshake on Twisted: what any
Twisted server pays per connection for the same reactor events as a real
one, with almost no Python of its own.

Per connection it sets TCP_NODELAY, reads the upgrade request (assumed
whole and valid: no parsing, no limits, no timers, no application), answers
C{101} with the right Sec-WebSocket-Accept, reads the client's Close (any
frame with opcode 8), answers Close and closes TCP first; anything else is
ignored.  Not a WebSocket server (it checks nothing): it exists to
measure, beside twisted_ws and the raw TCP echo, how much of a handshake's
cost is Twisted's own -- the ``hs`` workload of ``bench/run.py`` and of
``../shared/bench`` (run there with ``--cmd 'floor=python
bench/servers/handshake_floor.py --port {port}' --workloads hs``).
"""

from __future__ import annotations

import base64
import hashlib

from _common import announce, parseArgs
from twisted.internet import reactor
from twisted.internet.protocol import Factory, Protocol

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
KEY = b"Sec-WebSocket-Key: "


class Floor(Protocol):
    opened = False

    def connectionMade(self) -> None:
        self.transport.setTcpNoDelay(True)

    def dataReceived(self, data: bytes) -> None:
        if not self.opened:
            self.opened = True
            start = data.find(KEY) + len(KEY)
            key = data[start : data.find(b"\r", start)]
            accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
            self.transport.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            )
        elif data[0] & 0x0F == 8:
            self.transport.write(b"\x88\x02\x03\xe8")
            self.transport.loseConnection()


def main() -> None:
    args = parseArgs(__doc__.strip().split("\n")[0])
    factory = Factory.forProtocol(Floor)
    factory.noisy = False
    port = reactor.listenTCP(args.port, factory, backlog=1024, interface=args.host)
    announce(port.getHost().port, server="handshake floor")
    reactor.run()


if __name__ == "__main__":
    main()
