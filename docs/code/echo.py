"""Tutorial, step 1: an echo server.  Run: python docs/code/echo.py"""

import sys

from twisted.internet import defer, task
from twisted.internet.endpoints import serverFromString

from twisted_ws import WebSocketProtocol, WebSocketServerFactory


class Echo(WebSocketProtocol):
    def connectionMade(self):
        # The handshake is done: the request is known.
        print(f"opened {self.request.path} from {self.request.peer}")

    def textMessageReceived(self, text):
        self.sendMessage(text)  # str goes out as a text message

    def binaryMessageReceived(self, data):
        self.sendMessage(data)  # bytes go out as a binary message

    def connectionClosed(self, code, reason, wasClean):
        print(f"closed with {code} {reason!r}")


def makeFactory():
    return WebSocketServerFactory(Echo)


async def main(reactor, description="tcp:8080:interface=127.0.0.1"):
    port = await serverFromString(reactor, description).listen(makeFactory())
    print(f"listening on ws://127.0.0.1:{port.getHost().port}/")
    await defer.Deferred()  # serve until Ctrl-C


if __name__ == "__main__":
    task.react(lambda reactor: defer.Deferred.fromCoroutine(main(reactor, *sys.argv[1:])))
