"""How-to: an existing line protocol, reachable from browsers over WebSocket."""

from twisted.internet.protocol import Factory
from twisted.protocols.basic import LineReceiver

from twisted_ws import StreamOverWebSocketFactory


class Calculator(LineReceiver):
    """An existing TCP protocol: 'add 1 2' -> '3'.  It knows nothing of WebSocket."""

    def lineReceived(self, line):
        op, *args = line.decode("ascii", "replace").split()
        if op == "add" and args:
            self.sendLine(str(sum(int(a) for a in args)).encode())
        elif op == "quit":
            self.transport.loseConnection()  # closes the WebSocket with 1000
        else:
            self.sendLine(b"error")


calculator = Factory.forProtocol(Calculator)

# Each text message is a line (browsers send "add 1 2", without CRLF), and
# each line the protocol writes is one message.  It is a WebSocket server
# factory: any endpoint, and the limits and hooks of WebSocketServerFactory.
#   serverFromString(reactor, "tcp:8080").listen(webFactory)
webFactory = StreamOverWebSocketFactory(
    calculator, delimiter=b"\r\n", maxMessageSize=1024, allowedOrigins=["https://example.com"]
)
