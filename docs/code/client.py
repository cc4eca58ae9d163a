"""
Tutorial, step 3: a client.  Sends each line of its input, prints what comes back.

    printf "hello\nworld\n" | python docs/code/client.py ws://127.0.0.1:8080/
"""

import sys

from twisted.internet import defer, task

from twisted_ws import connectWS


async def chat(reactor, url, lines):
    ws = await connectWS(url, reactor=reactor)  # no protocol: a WebSocket to await on
    replies = []
    for line in lines:
        await ws.send(line)  # waits while the socket's buffer is full
        replies.append(await ws.recv())
        print(replies[-1])
    info = await ws.close()  # the close handshake; fires once TCP is closed
    print(f"closed: {info.code}, clean: {info.wasClean}")
    return replies


if __name__ == "__main__":
    url = sys.argv[1] if len(sys.argv) > 1 else "ws://127.0.0.1:8080/"
    task.react(lambda reactor: defer.Deferred.fromCoroutine(chat(reactor, url, sys.stdin.read().splitlines())))
