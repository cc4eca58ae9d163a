"""
Tutorial, step 2: a browser chat with rooms.

    python docs/code/chat.py examples/chat

then open http://127.0.0.1:8080/?room=lobby in two browser tabs.
"""

import json
import sys

from twisted.internet import defer, task
from twisted.internet.endpoints import serverFromString
from twisted.web.server import Site
from twisted.web.static import File

from twisted_ws import BroadcastHub, WebSocketProtocol, WebSocketResource, WebSocketServerFactory


class ChatMember(WebSocketProtocol):
    """One browser tab: a member of the room its URL names (/ws/<room>)."""

    def connectionMade(self):
        self.hub = self.factory.hub
        self.room = self.request.path.removeprefix("/ws").strip("/") or "lobby"
        self.hub.join(self.room, self)

    def textMessageReceived(self, text):
        try:
            message = json.loads(text)
            name, line = str(message["name"])[:24], str(message["text"])
        except (ValueError, KeyError, TypeError):
            self.close(1003, "send JSON: {name, text}")
            return
        if self.hub.isMember(self.room, self):  # not after a slow-reader cut-off
            # Everyone in the room gets it once, the sender included.
            self.hub.publish(self.room, json.dumps({"name": name, "text": line}))

    def binaryMessageReceived(self, data):
        self.close(1003, "this chat takes text")


def makeSite(staticDirectory):
    factory = WebSocketServerFactory(ChatMember, maxMessageSize=4096)
    factory.hub = BroadcastHub()  # rooms: joined, left when the tab closes
    root = File(staticDirectory)  # index.html, chat.js, style.css
    root.putChild(b"ws", WebSocketResource(factory))
    return Site(root)


async def main(reactor, staticDirectory="examples/chat", description="tcp:8080:interface=127.0.0.1"):
    port = await serverFromString(reactor, description).listen(makeSite(staticDirectory))
    print(f"chat on http://127.0.0.1:{port.getHost().port}/?room=lobby")
    await defer.Deferred()


if __name__ == "__main__":
    task.react(lambda reactor: defer.Deferred.fromCoroutine(main(reactor, *sys.argv[1:])))
