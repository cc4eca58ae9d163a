"""
Chat rooms with user names, built on twisted_ws's BroadcastHub.

    python examples/chat_rooms.py --port 9000 [--host 127.0.0.1]
        [--redis redis://127.0.0.1:6379/0]

Connect to ws://host:port/<room> (the path names the room; / is "lobby").
The first text message is your name (1 to 24 letters, digits, _ or -);
from then on every line you send goes to everyone in the room as
"name: line", and the room hears "* name joined" and "* name left".

With --redis, every chat_rooms.py using that Redis shares its rooms, so
you can run several (on other ports or machines) behind a load balancer.
It prints one line when it is listening.
"""

from __future__ import annotations

import argparse
import re
import sys

from twisted.internet import defer, reactor, task
from twisted.internet.endpoints import serverFromString

from twisted_ws import BroadcastHub, WebSocketOptions, WebSocketProtocol, WebSocketServerFactory

NAME = re.compile(r"[A-Za-z0-9_-]{1,24}")


class ChatProtocol(WebSocketProtocol):
    """One chatter: named by its first message, then a member of its room."""

    name: str | None = None

    def connectionMade(self) -> None:
        self.hub: BroadcastHub = self.factory.hub
        self.room = self.request.path.strip("/") or "lobby"
        self.sendMessage(f"* welcome to {self.room}: what is your name?")

    def textMessageReceived(self, text: str) -> None:
        text = text.strip()
        if self.name is None:
            if not NAME.fullmatch(text):
                self.sendMessage("* a name is 1 to 24 letters, digits, _ or -")
                return
            self.name = text
            self.hub.join(self.room, self)
            self.hub.publish(self.room, f"* {self.name} joined")
        elif text and self.hub.isMember(self.room, self):
            # Not a member any more: cut off for reading too slowly.
            self.hub.publish(self.room, f"{self.name}: {text}")

    def binaryMessageReceived(self, data: bytes) -> None:
        self.close(1003, "this chat takes text")

    def connectionClosed(self, code: int, reason: str, wasClean: bool) -> None:
        # The hub has already taken us out of the room.
        if self.name is not None:
            self.hub.publish(self.room, f"* {self.name} left")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--redis", metavar="URL", help="share the rooms through this Redis")
    parser.add_argument("--redis-prefix", default="chat_rooms:", help="channel name prefix")
    args = parser.parse_args(argv)

    bus = None
    if args.redis:
        try:
            from twisted_ws import RedisBus

            bus = RedisBus(args.redis, args.redis_prefix)
        except (ImportError, ValueError) as e:
            print(f"chat rooms: --redis: {e}", file=sys.stderr)
            raise SystemExit(1) from None
    factory = WebSocketServerFactory(
        ChatProtocol, options=WebSocketOptions(maxMessageSize=4096)
    )
    factory.hub = BroadcastHub(maxQueueMessages=200, bus=bus)
    host = args.host.replace(":", "\\:")
    endpoint = serverFromString(reactor, f"tcp:{args.port}:interface={host}")

    def listening(port):
        where = f"ws://{args.host}:{port.getHost().port}/<room>"
        shared = f", rooms shared through {bus.url}" if bus is not None else ""
        print(f"chat rooms listening on {where}{shared}", flush=True)

    def failed(reason):
        print(f"chat rooms could not listen: {reason.getErrorMessage()}", file=sys.stderr, flush=True)
        raise SystemExit(1)

    def serve(reactor):
        if bus is not None:
            bus.startService()
            reactor.addSystemEventTrigger("before", "shutdown", bus.stopService)
        d = endpoint.listen(factory).addCallbacks(listening, failed)
        return d.addCallback(lambda _: defer.Deferred())

    task.react(serve)


if __name__ == "__main__":
    main()
