"""
The coroutine API on real loopback sockets (the interop tier): the
C{websockets} package's client against an C{async def} handler, our
C{ws = await connectWS(url)} against a C{websockets} asyncio server (in a
thread with its own event loop), backpressure through a real socket, the
asyncio reactor in a subprocess (a handler awaiting asyncio code), and the
two example programs as subprocesses.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import serverFromString
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase
from websockets.exceptions import ConnectionClosed as WebsocketsClosed
from websockets.sync.client import connect

from twisted_ws import ConnectionClosed, WebSocketServerFactory, connectWS

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 30  # seconds for any subprocess or thread here


class HandlerServer:
    """An C{async def} handler behind a real 127.0.0.1 listener (port 0)."""

    @inlineCallbacks
    def listen(self, handler, **options):
        options.setdefault("pingInterval", None)
        factory = WebSocketServerFactory.forHandler(handler, **options)
        port = yield serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(factory)
        self.addCleanup(port.stopListening)
        return f"ws://127.0.0.1:{port.getHost().port}/"


async def echo(ws):
    async for message in ws:
        await ws.send(message)


class WebsocketsClientTests(HandlerServer, TestCase):
    timeout = 60

    @inlineCallbacks
    def test_echo(self):
        url = yield self.listen(echo, maxMessageSize=4 << 20)
        big = os.urandom(1 << 20)

        def client():
            with connect(url, max_size=None, compression=None) as ws:
                out = []
                for message in ["héllo", b"\x00\x01", big, "x" * 70000]:
                    ws.send(message)
                    out.append(ws.recv(timeout=TIMEOUT) == message)
                ws.send(["frag", "ment"])  # one message in two frames
                out.append(ws.recv(timeout=TIMEOUT))
                ws.ping(b"p").wait(TIMEOUT)
                ws.close(1000, "done")
                return out, ws.protocol.close_rcvd.code

        out, code = yield deferToThread(client)
        self.assertEqual(out, [True, True, True, True, "fragment"])
        self.assertEqual(code, 1000)

    @inlineCallbacks
    def test_handlerOutcomes(self):
        async def returns(ws):
            await ws.send("bye")

        async def raises(ws):
            await ws.recv()
            raise KeyError("boom")

        def client(url, send=None):
            with connect(url) as ws:
                if send:
                    ws.send(send)
                got = []
                try:
                    while True:
                        got.append(ws.recv(timeout=TIMEOUT))
                except WebsocketsClosed:
                    return got, ws.protocol.close_rcvd.code

        got = yield deferToThread(client, (yield self.listen(returns)))
        self.assertEqual(got, (["bye"], 1000))
        got = yield deferToThread(client, (yield self.listen(raises)), "go")
        self.assertEqual(got, ([], 1011))
        self.assertEqual(len(self.flushLoggedErrors(KeyError)), 1)

    @inlineCallbacks
    def test_slowClientHoldsTheHandlersSends(self):
        # The handler sends 32 MiB while the client does not read: send()
        # waits on the socket's flow control instead of queueing it all.
        chunk, count = b"x" * (256 << 10), 128
        progress = {"sent": 0, "queued": []}

        async def producer(ws):
            for _ in range(count):
                await ws.send(chunk)
                progress["sent"] += 1
                progress["queued"].append(ws.protocol.bufferedAmount)

        url = yield self.listen(producer)
        reading = threading.Event()

        def client():
            with connect(url, max_size=None, compression=None) as ws:
                reading.wait(TIMEOUT)
                total = 0
                try:
                    while True:
                        total += len(ws.recv(timeout=TIMEOUT))
                except WebsocketsClosed:
                    return total

        received = deferToThread(client)
        stalled = None
        for _ in range(50):  # up to 5 s for the send loop to stall
            yield deferLater(reactor, 0.1, lambda: None)
            before = progress["sent"]
            yield deferLater(reactor, 0.2, lambda: None)
            if 0 < progress["sent"] == before:
                stalled = before
                break
        self.assertIsNotNone(stalled, "the handler never waited")
        self.assertLess(stalled, count)
        reading.set()
        total = yield received
        self.assertEqual(total, len(chunk) * count)
        self.assertEqual(progress["sent"], count)
        # Never more than one message held back in the library.
        self.assertLessEqual(max(progress["queued"]), len(chunk))


class AsyncioWebsocketsServer:
    """The websockets asyncio server, in a thread running its own loop."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        if not ready.wait(TIMEOUT):
            raise RuntimeError("the websockets server did not start")

    def _run(self, ready):
        from websockets.asyncio.server import serve

        async def main():
            async with serve(
                self.handler, "127.0.0.1", 0, compression=None, ping_interval=None, max_size=None
            ) as server:
                self.server = server
                self.port = server.sockets[0].getsockname()[1]
                ready.set()
                await server.serve_forever()

        try:
            self.loop.run_until_complete(main())
        except asyncio.CancelledError:
            pass

    async def handler(self, ws):
        async for message in ws:
            if message == "close-please":
                await ws.close(4002, "bye from websockets")
                return
            await ws.send(message)

    def stop(self):
        self.loop.call_soon_threadsafe(self.server.close)
        return deferToThread(self.thread.join, TIMEOUT)


class OurClientTests(TestCase):
    timeout = 60

    def setUp(self):
        self.server = AsyncioWebsocketsServer()
        self.addCleanup(self.server.stop)
        self.url = f"ws://127.0.0.1:{self.server.port}/"

    def test_conversation(self):
        async def body():
            ws = await connectWS(self.url, pingInterval=None, maxMessageSize=4 << 20)
            self.assertTrue(ws.isOpen)
            await ws.send("héllo")
            self.assertEqual(await ws.recv(), "héllo")
            big = os.urandom(2 << 20)
            await ws.send(big)
            self.assertEqual(await ws.recv(), big)
            async with ws.sendStream(isText=True) as message:
                await message.write("frag")
                await message.write("ment")
            self.assertEqual(await ws.recv(), "fragment")
            self.assertGreaterEqual(await ws.ping(), 0.0)
            info = await ws.close(4000, "client bye")
            self.assertEqual((info.code, info.wasClean, info.initiatedByPeer), (4000, True, False))

        return Deferred.fromCoroutine(body())

    def test_serverClosesWithAnUnusualCode(self):
        async def body():
            ws = await connectWS(self.url, pingInterval=None)
            await ws.send("close-please")
            with self.assertRaises(ConnectionClosed) as caught:
                async for _ in ws:
                    pass
            self.assertEqual((caught.exception.info.code, caught.exception.info.reason), (4002, "bye from websockets"))

        return Deferred.fromCoroutine(body())


# -- the asyncio reactor, in a fresh process ------------------------------------------

ASYNCIO_SCRIPT = r"""
import asyncio, json, sys
from twisted.internet import asyncioreactor
asyncioreactor.install(asyncio.new_event_loop())
from twisted.internet import reactor, task
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted_ws import WebSocketServerFactory, connectWS

async def shout(text):
    await asyncio.sleep(0)
    return text.upper()

async def handler(ws):
    async for message in ws:
        await asyncio.sleep(0.01)  # an asyncio future, awaited as it is
        loop = asyncio.get_running_loop()
        reply = await Deferred.fromFuture(asyncio.ensure_future(shout(message)))
        await ws.send(f"{reply} {loop is reactor._asyncioEventloop}")

async def main(reactor):
    factory = WebSocketServerFactory.forHandler(handler, pingInterval=None)
    port = await serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(factory)
    ws = await connectWS(f"ws://127.0.0.1:{port.getHost().port}/", reactor=reactor, pingInterval=None)
    replies = []
    for word in ("one", "two"):
        await ws.send(word)
        replies.append(await ws.recv())
    info = await ws.close()
    await port.stopListening()
    print(json.dumps({"reactor": type(reactor).__name__, "replies": replies, "code": info.code}))

task.react(lambda reactor: Deferred.fromCoroutine(main(reactor)))
"""


def test_asyncioReactorHandlerAwaitsAsyncioCode():
    done = subprocess.run(
        [sys.executable, "-c", ASYNCIO_SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "reactor": "AsyncioSelectorReactor",
        "replies": ["ONE True", "TWO True"],
        "code": 1000,
    }


# -- the examples -----------------------------------------------------------------------


def startAsyncEcho():
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "async_echo.py"), "--port", "0"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    line = proc.stdout.readline()
    assert "listening on ws://127.0.0.1:" in line, (line, proc.stderr.read())
    return proc, line.split()[-1]


def test_asyncEchoAndChatClient():
    server, url = startAsyncEcho()
    try:
        with connect(url, max_size=None) as ws:  # what Autobahn and bench rely on
            big = os.urandom(8 << 20)  # above the 1 MiB default limit
            ws.send(big)
            assert ws.recv(timeout=TIMEOUT) == big
        client = subprocess.Popen(
            [sys.executable, str(ROOT / "examples" / "async_chat_client.py"), url],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            client.stdin.write("hello wörld\n")
            client.stdin.flush()
            assert client.stdout.readline() == "hello wörld\n"
            client.stdin.close()  # end of input: close 1000, exit 0
            assert client.wait(TIMEOUT) == 0, client.stderr.read()
        finally:
            if client.poll() is None:
                client.kill()
                client.wait(TIMEOUT)
    finally:
        server.terminate()
        server.wait(TIMEOUT)


def test_examplesFailInOneLine():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        busy = holder.getsockname()[1]
        done = subprocess.run(
            [sys.executable, str(ROOT / "examples" / "async_echo.py"), "--port", str(busy)],
            cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT,
        )  # fmt: skip
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "async_chat_client.py"), f"ws://127.0.0.1:{busy}/"],
        cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip().startswith("cannot connect to"), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
