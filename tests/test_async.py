"""
The coroutine API (L{WebSocket}, C{forHandler}, C{connectWS} without a
protocol, L{runCoroutine}).  Logic tier: a server connection on a memory
transport driven frame by frame, our client against our server over iosim,
every timer on a L{Clock}.
"""

from __future__ import annotations

import gc

import pytest
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import capturedLogs
from twisted.test.iosim import ConnectionCompleter

from twisted_ws import ConnectionClosed, WebSocket, WebSocketServerFactory, connectWS
from twisted_ws.core.frames import OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT
from twisted_ws.runner import Waiter, runCoroutine
from wshelpers import (
    Echo,
    MemoryPeer,
    clientFrame,
    failure,
    result,
    serverFrames,
    splitResponse,
    upgradeRequest,
)


class Served:
    """One server connection run by C{handler}, on a memory transport."""

    def __init__(self, handler, **kwargs):
        kwargs.setdefault("pingInterval", None)
        self.clock = Clock()
        self.factory = WebSocketServerFactory.forHandler(handler, clock=self.clock, **kwargs)
        self.peer = MemoryPeer(self.factory)
        self.peer.send(upgradeRequest())
        head, self.pending = splitResponse(self.peer.received())
        self.seen = 0
        assert head.startswith(b"HTTP/1.1 101"), head
        self.protocol = self.peer.transport.protocol
        self.ws = self.protocol.websocket

    def send(self, *frames):
        self.peer.send(b"".join(frames))

    def text(self, text):
        self.send(clientFrame(OP_TEXT, text.encode()))

    def frames(self):
        """The frames written since the last call."""
        self.pending += self.peer.received()
        frames = serverFrames(self.pending)  # parsed from the start: continuations need it
        new, self.seen = frames[self.seen :], len(frames)
        return new

    @property
    def readingPaused(self):
        return self.peer.transport.producerState == "paused"

    def closeCode(self):
        closes = [payload for op, _fin, payload in self.frames() if op == OP_CLOSE]
        assert len(closes) == 1, closes
        return int.from_bytes(closes[0][:2], "big")


async def echo(ws):
    async for message in ws:
        await ws.send(message)


# -- receiving ------------------------------------------------------------------------


def test_echoKeepsOrderAndTypes():
    s = Served(echo)
    s.text("one")
    s.send(clientFrame(OP_BINARY, b"\x00two"), clientFrame(OP_TEXT, "thrée".encode()))
    s.send(clientFrame(OP_TEXT, b"fo", fin=False), clientFrame(OP_CONTINUATION, b"ur"))
    assert s.frames() == [
        (OP_TEXT, True, b"one"),
        (OP_BINARY, True, b"\x00two"),
        (OP_TEXT, True, "thrée".encode()),
        (OP_TEXT, True, b"four"),
    ]


def test_echoGoesOutBeforeAProtocolErrorInTheSameRead():
    # The waiting handler gets each message as it is parsed, so its echo
    # is written before the bad frame that follows fails the connection
    # (what Autobahn's strict cases 3.2, 4.1.3... check).
    s = Served(echo)
    s.send(clientFrame(OP_TEXT, b"first"), clientFrame(0x3, b"reserved opcode"))
    frames = s.frames()
    assert frames[0] == (OP_TEXT, True, b"first")
    assert frames[1][0] == OP_CLOSE and frames[1][2][:2] == (1002).to_bytes(2, "big")


def test_slowHandlerPausesReadingAtTheQueueSize():
    gate = Deferred()
    got = []

    async def slow(ws):
        await gate
        async for message in ws:
            got.append(message)

    s = Served(slow)
    for n in range(15):
        s.text(f"m{n}")
    assert not s.readingPaused
    s.text("m15")  # the 16th waits: reading stops
    assert s.readingPaused
    s.text("m16")  # what the transport had already read still queues
    gate.callback(None)
    # The handler drained the queue in order and reading resumed.
    assert got == [f"m{n}" for n in range(17)]
    assert not s.readingPaused


def test_readingResumesAtHalfTheQueue():
    steps = []

    async def stepwise(ws):
        while True:
            d = Deferred()
            steps.append(d)
            await d
            await ws.recv()

    s = Served(stepwise, queueSize=4)
    for n in range(4):
        s.text(f"m{n}")
    assert s.readingPaused
    steps[-1].callback(None)  # one read: 3 left
    assert s.readingPaused
    steps[-1].callback(None)  # 2 left: half of 4
    assert not s.readingPaused


def test_queueSizeIsChecked():
    with pytest.raises(ValueError):
        WebSocketServerFactory.forHandler(echo, queueSize=0)
    with pytest.raises(TypeError):
        WebSocketServerFactory.forHandler("not callable")


def test_oneReaderAtATime():
    seen = []

    async def handler(ws):
        first = runCoroutine(_recv(ws))
        try:
            await ws.recv()
        except RuntimeError as e:
            seen.append(str(e))
        seen.append(await first)

    s = Served(handler)
    s.text("x")
    assert seen == ["another coroutine is already waiting for a message", "x"]


async def _recv(ws):
    return await ws.recv()


def test_queuedMessagesOutliveTheConnection():
    gate = Deferred()
    got = []

    async def handler(ws):
        await gate
        try:
            while True:
                got.append(await ws.recv())
        except ConnectionClosed as e:
            got.append(e.info.code)

    s = Served(handler)
    s.text("a")
    s.text("b")
    s.peer.transport.loseConnection()
    gate.callback(None)
    assert got == ["a", "b", 1006]


@pytest.mark.parametrize(
    "code, clean", [(1000, True), (1001, True), (None, True), (4000, False), (1011, False)]
)
def test_asyncForEndsCleanlyOnNormalCloses(code, clean):
    outcome = []

    async def handler(ws):
        try:
            async for message in ws:
                outcome.append(message)
        except ConnectionClosed as e:
            outcome.append(("raised", e.info.code))
        else:
            outcome.append("ended")

    s = Served(handler)
    s.text("hi")
    payload = b"" if code is None else code.to_bytes(2, "big")
    s.send(clientFrame(OP_CLOSE, payload))  # the server then drops TCP
    assert outcome == ["hi", "ended" if clean else ("raised", code)]


def test_recvAfterTheCloseRaises():
    errors = []

    async def handler(ws):
        await ws.close()
        try:
            await ws.recv()
        except ConnectionClosed as e:
            errors.append(e.info.code)

    s = Served(handler)
    s.send(clientFrame(OP_CLOSE, (1000).to_bytes(2, "big")))
    assert errors == [1000]


# -- sending: the transport's flow control --------------------------------------------


def test_sendWaitsWhileTheTransportIsFull():
    progress = []

    async def producer(ws):
        for n in range(3):
            await ws.send(f"m{n}")
            progress.append(n)

    s = Served(producer, )  # the handler ran at once: 3 sent, then closed 1000
    assert [p for op, _f, p in s.frames() if op == OP_TEXT] == [b"m0", b"m1", b"m2"]

    gate = Deferred()

    async def gated(ws):
        await gate
        for n in range(3):
            await ws.send(f"m{n}")
            progress.append(n)
            if n == 0:
                ws.protocol.pauseProducing()  # as the transport does when its buffer fills

    progress.clear()
    s = Served(gated)
    gate.callback(None)
    assert progress == [0]
    assert [p for op, _f, p in s.frames()] == [b"m0"]  # m1 waits in send()
    assert s.readingPaused  # and the peer is not read meanwhile (the glue's rule)
    s.protocol.resumeProducing()
    assert progress == [0, 1, 2]
    frames = s.frames()
    assert [p for op, _f, p in frames if op == OP_TEXT] == [b"m1", b"m2"]


def test_sendersGoInOrder():
    order = []

    async def handler(ws):
        ws.protocol.pauseProducing()
        sends = [ws.send(f"m{n}") for n in range(3)]  # all wait, in order
        for n, d in enumerate(sends):
            d.addCallback(lambda _, n=n: order.append(n))
        await sends[-1]

    s = Served(handler)
    assert s.frames() == []
    s.protocol.resumeProducing()
    assert order == [0, 1, 2]
    assert [p for op, _f, p in s.frames() if op == OP_TEXT] == [b"m0", b"m1", b"m2"]


def test_sendAfterTheCloseRaises():
    errors = []

    async def handler(ws):
        ws.close()
        try:
            await ws.send("late")
        except ConnectionClosed:
            errors.append("send")

    Served(handler)
    assert errors == ["send"]


def test_lossFailsPendingRecvAndSend():
    outcomes = []

    async def reader(ws):
        try:
            await ws.recv()
        except ConnectionClosed as e:
            outcomes.append(("recv", e.info.code))

    async def handler(ws):
        ws.protocol.pauseProducing()
        runCoroutine(reader(ws))
        try:
            await ws.send("stuck")
        except ConnectionClosed as e:
            outcomes.append(("send", e.info.code))

    s = Served(handler)
    assert outcomes == []
    s.peer.transport.loseConnection()
    assert sorted(outcomes) == [("recv", 1006), ("send", 1006)]
    assert s.ws.closeInfo.code == 1006


def test_cancelledRecvAndSendLeaveTheConnectionUsable():
    log = []

    async def handler(ws):
        pending = runCoroutine(_recv(ws))
        pending.cancel()
        log.append(type(failure(pending, CancelledError)).__name__)
        ws.protocol.pauseProducing()
        sending = ws.send("dropped")
        sending.cancel()
        failure(sending, CancelledError)
        ws.protocol.resumeProducing()
        log.append(await ws.recv())
        await ws.send("after")

    s = Served(handler)
    s.text("next")
    assert log == ["CancelledError", "next"]
    assert [p for op, _f, p in s.frames() if op == OP_TEXT] == [b"after"]


# -- the handler's outcome ------------------------------------------------------------


def test_handlerReturnClosesWith1000():
    async def handler(ws):
        await ws.send("bye")

    s = Served(handler)
    assert s.frames()[0] == (OP_TEXT, True, b"bye")
    s.send(clientFrame(OP_CLOSE, (1000).to_bytes(2, "big")))
    assert s.ws.closeInfo.code == 1000 and s.ws.closeInfo.sentCode == 1000


def test_handlerReturnFromThePeersCloseIsQuiet():
    s = Served(echo)
    with capturedLogs() as events:
        s.send(clientFrame(OP_CLOSE, (4000).to_bytes(2, "big")))
    assert [e for e in events if e.get("log_failure")] == []
    assert s.ws.closeInfo.code == 4000


def test_handlerExceptionClosesWith1011AndIsLogged():
    async def handler(ws):
        await ws.recv()
        raise KeyError("boom")

    s = Served(handler)
    with capturedLogs() as events:
        s.text("go")
    assert s.closeCode() == 1011
    failures = [e for e in events if e.get("log_failure")]
    assert len(failures) == 1
    assert failures[0]["log_failure"].check(KeyError)
    assert "handler" in failures[0]["log_format"]
    assert "boom" in failures[0]["log_failure"].getTraceback()


def test_synchronousHandlerErrorClosesWith1011():
    def handler(ws):
        raise ValueError("not even a coroutine")

    with capturedLogs() as events:
        s = Served(handler)
    assert s.closeCode() == 1011
    assert [e["log_failure"].type for e in events if e.get("log_failure")] == [ValueError]


def test_connectionClosedFromALostConnectionIsNotLogged():
    async def handler(ws):
        while True:
            await ws.recv()

    s = Served(handler)
    with capturedLogs() as events:
        s.peer.transport.loseConnection()
    assert [e for e in events if e.get("log_failure")] == []


def test_cancelledHandlerClosesWith1001():
    s = Served(echo)
    s.protocol.handled.cancel()
    assert s.closeCode() == 1001


def test_factoryStopCancelsRunningHandlers():
    s = Served(echo)
    other = MemoryPeer(s.factory)
    other.send(upgradeRequest())
    other.received()
    s.factory.doStart()
    s.factory.doStop()  # its last port stopped listening
    assert s.closeCode() == 1001
    assert [op for op, _f, _p in serverFrames(other.received())] == [OP_CLOSE]
    assert s.factory.protocol.running == set()


def test_handlerCatchingTheCancellationMayFinish():
    async def polite(ws):
        try:
            await ws.recv()
        except CancelledError:
            await ws.send("shutting down")

    s = Served(polite)
    s.protocol.handled.cancel()
    frames = s.frames()
    assert frames[0] == (OP_TEXT, True, b"shutting down")
    assert frames[1][0] == OP_CLOSE


def test_requestAndSubprotocol():
    seen = []

    async def handler(ws):
        seen.append((ws.request.path, ws.subprotocol, ws.closeInfo, ws.isOpen))

    clock = Clock()
    factory = WebSocketServerFactory.forHandler(handler, clock=clock, subprotocols=["chat"])
    peer = MemoryPeer(factory)
    peer.send(upgradeRequest("/room", "Sec-WebSocket-Protocol: chat\r\n"))
    assert seen == [("/room", "chat", None, True)]


# -- ping -----------------------------------------------------------------------------


def test_pingGivesTheRoundTripTime():
    rtts = []

    async def handler(ws):
        rtts.append(await ws.ping(b"p1"))

    s = Served(handler)
    assert s.frames() == [(OP_PING, True, b"p1")]
    s.clock.advance(0.25)
    s.send(clientFrame(OP_PONG, b"p1"))
    assert rtts == [0.25]


# -- streaming ------------------------------------------------------------------------


def test_streamingIn():
    seen = []

    async def handler(ws):
        message = await ws.recvStream()
        seen.append(("start", message.isText))
        async for piece in message:
            seen.append(piece)
        seen.append("end")
        seen.append(await ws.recv())  # whole messages still work in this mode

    s = Served(handler, streamMessages=True)
    s.send(clientFrame(OP_TEXT, "hé".encode(), fin=False))
    assert seen == [("start", True), "hé"]  # the first piece before the rest arrives
    s.send(clientFrame(OP_CONTINUATION, b"llo", fin=False))
    s.send(clientFrame(OP_CONTINUATION, b"!"))
    assert seen == [("start", True), "hé", "llo", "!", "end"]
    s.send(clientFrame(OP_BINARY, b"\x01", fin=False), clientFrame(OP_CONTINUATION, b"\x02"))
    assert seen[-1] == b"\x01\x02"


def test_asyncForJoinsPiecesInStreamingMode():
    got = []

    async def handler(ws):
        async for message in ws:
            got.append(message)
        got.append("end")

    s = Served(handler, streamMessages=True)
    s.send(clientFrame(OP_TEXT, b"a", fin=False), clientFrame(OP_CONTINUATION, b"b"))
    s.text("c")
    s.send(clientFrame(OP_CLOSE, (1000).to_bytes(2, "big")))
    assert got == ["ab", "c", "end"]


def test_streamingInSkipsAnUnreadMessage():
    seen = []

    async def handler(ws):
        await ws.recvStream()  # never read
        seen.append(await ws.recv())

    s = Served(handler, streamMessages=True)
    s.send(clientFrame(OP_BINARY, b"skipped", fin=False), clientFrame(OP_CONTINUATION, b"!"))
    s.text("next")
    assert seen == ["next"]


def test_recvStreamNeedsStreamingMode():
    errors = []

    async def handler(ws):
        try:
            await ws.recvStream()
        except RuntimeError as e:
            errors.append(str(e))

    Served(handler)
    assert errors == ["recvStream() needs streamMessages=True"]


def test_streamingOutWaitsForTheTransportAndHoldsOtherSends():
    gate = Deferred()
    progress = []

    async def other(ws):
        await ws.send("after")
        progress.append("other sent")

    async def handler(ws):
        async with ws.sendStream(isText=True) as message:
            await message.write("a")
            runCoroutine(other(ws))  # waits for the message to end
            ws.protocol.pauseProducing()
            await message.write("b")  # waits for room
            progress.append("b written")
            await gate
            await message.write("c")
        progress.append("finished")

    s = Served(handler)
    assert s.frames() == [(OP_TEXT, False, b"a")]
    s.protocol.resumeProducing()
    assert progress == ["b written"]
    gate.callback(None)
    assert progress == ["b written", "other sent", "finished"]
    frames = s.frames()
    assert frames[:4] == [
        (OP_CONTINUATION, False, b"b"),
        (OP_CONTINUATION, False, b"c"),
        (OP_CONTINUATION, True, b""),
        (OP_TEXT, True, b"after"),
    ]


def test_streamingOutFailureClosesTheConnection():
    async def handler(ws):
        async with ws.sendStream() as message:
            await message.write(b"half")
            raise RuntimeError("the source failed")

    with capturedLogs():
        s = Served(handler)
    frames = s.frames()
    assert frames[0] == (OP_BINARY, False, b"half")
    assert frames[1][0] == OP_CLOSE and frames[1][2][:2] == (1011).to_bytes(2, "big")


# -- the client: connectWS without a protocol, against our server -----------------------


def connectPair(serverProtocol=Echo, **kwargs):
    reactor = MemoryReactorClock()
    factory = WebSocketServerFactory(serverProtocol, clock=reactor, pingInterval=None)
    reactor.listenTCP(80, factory)
    d = connectWS("ws://127.0.0.1/chat", reactor=reactor, pingInterval=None, **kwargs)
    pump = ConnectionCompleter(reactor).succeedOnce()
    pump.flush()
    return result(d), pump, reactor


def test_clientGivesAWebSocket():
    ws, pump, reactor = connectPair()
    assert isinstance(ws, WebSocket)
    assert ws.protocol.isClient and ws.request.path == "/chat"
    got = []

    async def client():
        await ws.send("hello")
        await ws.send(b"\x00\x01")
        got.append(await ws.recv())
        got.append(await ws.recv())
        return await ws.close(4000, "done")

    d = runCoroutine(client())
    pump.flush()
    reactor.advance(10)
    pump.flush()
    info = result(d)
    assert got == ["hello", b"\x00\x01"]
    assert (info.code, info.wasClean, info.initiatedByPeer) == (4000, True, False)


def test_clientAsyncForRaisesOnAnUnusualClose():
    ws, pump, _ = connectPair()
    outcome = []

    async def client():
        await ws.send("close-please")  # the Echo closes with 4001
        try:
            async for message in ws:
                outcome.append(message)
        except ConnectionClosed as e:
            outcome.append((e.info.code, e.info.reason))

    runCoroutine(client())
    pump.flush()
    assert outcome == [(4001, "as you wish")]


def test_clientAgainstAHandler():
    reactor = MemoryReactorClock()
    factory = WebSocketServerFactory.forHandler(echo, clock=reactor, pingInterval=None)
    reactor.listenTCP(80, factory)
    d = connectWS("ws://127.0.0.1/", reactor=reactor, pingInterval=None)
    pump = ConnectionCompleter(reactor).succeedOnce()
    pump.flush()
    ws = result(d)
    got = []

    async def client():
        for n in range(50):
            await ws.send(f"n{n}")
        async for message in ws:
            got.append(message)
            if len(got) == 50:
                await ws.close()

    done = runCoroutine(client())
    pump.flush()
    result(done)
    assert got == [f"n{n}" for n in range(50)]
    assert ws.closeInfo.code == 1000


def test_connectWSWithAProtocolStillFiresWithIt():
    p, _, _ = connectPair(protocol=Echo)
    assert isinstance(p, Echo)


# -- the runner -----------------------------------------------------------------------


def test_runnerAwaitsDeferredsAndRaisesTheirFailures():
    later = Deferred()

    async def body():
        first = await succeed(1)
        second = await later
        try:
            await Deferred.fromCoroutine(_fails())
        except KeyError:
            return first + second

    d = runCoroutine(body())
    assert not d.called
    later.callback(2)
    assert result(d) == 3


async def _fails():
    raise KeyError("x")


def test_runnerCancelsWhatIsAwaited():
    awaited = Deferred()
    seen = []

    async def body():
        try:
            await awaited
        except CancelledError:
            seen.append("cancelled where it waited")
            raise

    d = runCoroutine(body())
    d.cancel()
    failure(d, CancelledError)
    assert awaited.called and seen == ["cancelled where it waited"]


def test_waiterUnderTwistedsOwnDriver():
    # Deferred.fromCoroutine drives recv too: the Waiter is then fired.
    s = Served(lambda ws: None)  # a handler that returns at once
    s2 = Served(_idle)
    d = Deferred.fromCoroutine(_recv(s2.ws))
    s2.text("via fromCoroutine")
    assert result(d) == "via fromCoroutine"
    assert s.ws.closeInfo is None  # closing: the handler returned


async def _idle(ws):
    await Deferred()


# -- nothing left behind --------------------------------------------------------------


def _unfired():
    gc.collect()
    return [o for o in gc.get_objects() if isinstance(o, Deferred) and not o.called]


def _scenario():
    """Connections that end in every way the API knows, with calls pending."""
    # a handler waiting in recv, a sender waiting on a full transport and a
    # ping waiting for its pong when the connection is lost
    async def busy(ws):
        ws.protocol.pauseProducing()
        runCoroutine(_recv(ws)).addErrback(lambda f: None)
        ws.ping().addErrback(lambda f: None)
        await ws.send("stuck")

    lost = Served(busy)
    lost.peer.transport.loseConnection()
    # a normal echo session closed by the peer
    closed = Served(echo)
    for n in range(20):
        closed.text(f"m{n}")
    closed.send(clientFrame(OP_CLOSE, (1000).to_bytes(2, "big")))
    # a handler cancelled by the factory's stop
    stopped = Served(echo)
    stopped.factory.doStart()
    stopped.factory.doStop()
    stopped.peer.transport.loseConnection()
    # a client whose recv is pending when the server goes away
    ws, pump, reactor = connectPair()
    pending = runCoroutine(_recv(ws))
    ws.protocol.transport.loseConnection()
    pump.flush()
    failure(pending, ConnectionClosed)
    # Everything stays referenced: what they hold must all have fired.
    return [lost, closed, stopped, ws, pump, reactor]


def _waiters():
    gc.collect()
    return [o for o in gc.get_objects() if type(o) is Waiter]


def test_noUnfiredDeferredsLeftBehind():
    before = {id(d) for d in _unfired() + _waiters()}
    alive = _scenario()
    assert alive
    assert [d for d in _unfired() if id(d) not in before] == []
    assert [w for w in _waiters() if id(w) not in before] == []
