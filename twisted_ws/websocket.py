"""
The coroutine API: L{WebSocket}, one open connection seen from C{async def}
code (C{async for message in ws}, C{await ws.send(message)}), on top of the
callback API.

A L{CoroutineProtocol} -- the L{WebSocketProtocol} behind a L{WebSocket} --
feeds received messages into a bounded queue (reading pauses while it is
full, so a slow consumer slows the peer instead of growing memory) and
registers the L{WebSocket} as its producer, so that C{send} waits while the
transport's buffer is above its high-water mark.  A message that arrives
while a coroutine waits in C{recv} goes straight to it, in the same read:
echoes and replies go out in the order the callback API would send them.
"""

from __future__ import annotations

import types
from collections import deque
from collections.abc import Awaitable, Generator
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer
from twisted.python.failure import Failure
from zope.interface import implementer

from .core.closecodes import CloseCode, CloseInfo
from .core.connection import State, WebSocketConnection
from .errors import ConnectionClosed
from .protocol import WebSocketProtocol
from .runner import Waiter, isCancellation, waitFor

if TYPE_CHECKING:
    from .core.handshake import HandshakeRequest
    from .writer import MessageWriter

__all__ = ["WebSocket", "IncomingMessage", "OutgoingMessage", "CoroutineProtocol"]

#: Close codes after which C{async for message in ws} simply ends: a normal
#: close, going away, and a Close frame without a code.
CLEAN_CODES = frozenset((CloseCode.NORMAL_CLOSURE, CloseCode.GOING_AWAY, CloseCode.NO_STATUS_RECEIVED))


class _Marker:
    """Queue entries of streamMessages mode around a message's pieces."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


_TEXT, _BINARY, _END = _Marker("text message"), _Marker("binary message"), _Marker("end of message")


class _Sent:
    """What C{send} returns when the message went out at once: awaiting it
    does nothing (cheaper than a fired Deferred, and shared)."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return iter(())  # type: ignore[return-value]  # an empty iterator: nothing to wait for


_SENT = _Sent()


@types.coroutine
def _ready(value: Any) -> Generator[Any, None, Any]:
    """An awaitable of a value already there."""
    return value
    yield  # a generator, never reached


@types.coroutine
def _raise(error: BaseException) -> Generator[Any, None, Any]:
    raise error
    yield  # a generator, never reached


def _stopOrRaise(e: ConnectionClosed) -> None:
    """C{async for}'s end: a clean close stops the iteration, others raise."""
    if e.info is not None and e.info.code in CLEAN_CODES:
        raise StopAsyncIteration from None
    raise e


@types.coroutine
def _endCleanly(awaitable: Any) -> Generator[Any, Any, Any]:
    try:
        return (yield from awaitable)
    except ConnectionClosed as e:
        _stopOrRaise(e)


@types.coroutine
def _nextMessage(waiter: Waiter) -> Generator[Any, Any, Any]:
    """L{waitFor} and L{_endCleanly} in one generator: the hot path."""
    try:
        return (yield waiter)
    except ConnectionClosed as e:
        _stopOrRaise(e)


@implementer(IPushProducer)
class WebSocket:
    """
    One open WebSocket connection for coroutines.

        async def handler(ws):
            async for message in ws:      # str (text) or bytes (binary)
                await ws.send(message)

    C{async for} ends when the connection closes with 1000, 1001 or no
    code; otherwise it raises L{ConnectionClosed}, whose C{info} is the
    L{CloseInfo}.  C{recv} raises L{ConnectionClosed} once the connection
    is gone and every queued message has been read.

    @ivar protocol: the L{CoroutineProtocol} underneath (traffic counters,
        the transport, C{pauseReading}...).
    @ivar queueSize: how many received messages (or, with
        C{streamMessages}, pieces) may wait to be read before reading
        pauses; it resumes at half that.
    """

    def __init__(self, protocol: CoroutineProtocol, connection: WebSocketConnection, queueSize: int = 16) -> None:
        if queueSize < 1:
            raise ValueError("queueSize must be at least 1")
        self.protocol = protocol
        self._conn = connection
        self.queueSize = queueSize
        self._lowWater = queueSize // 2
        self._streaming = bool(protocol.streamMessages)
        self._queue: deque[Any] = deque()
        self._recvWaiter: Waiter | None = None
        self._spare: Waiter | None = None  # left unfired by a direct resume
        self._readingPaused = False
        self._blocked = False  # the transport paused us: its buffer is full
        # Sends waiting their turn: (Deferred, message, isText, compress),
        # or (Deferred, OutgoingMessage, None, None) for a streamed one.
        self._pending: deque[tuple[Deferred[None], Any, bool | None, bool | None]] = deque()
        self._writeWaiter: Waiter | None = None
        self._outgoing: OutgoingMessage | None = None
        self._incoming: IncomingMessage | None = None
        self._lost: CloseInfo | None = None

    def __repr__(self) -> str:
        state = "open" if self._lost is None else f"closed {self._lost.code}"
        return f"<WebSocket {state} {self.protocol.transport and self.protocol.transport.getPeer()}>"

    # -- what the handshake settled -----------------------------------------

    @property
    def request(self) -> HandshakeRequest | None:
        """The opening handshake's request (on a client, the one sent)."""
        return self.protocol.request

    @property
    def subprotocol(self) -> str | None:
        """The negotiated subprotocol, or C{None}."""
        return self.protocol.subprotocol

    @property
    def closeInfo(self) -> CloseInfo | None:
        """How the connection ended, once it has; else C{None}."""
        return self.protocol.closeInfo

    @property
    def isOpen(self) -> bool:
        """C{True} until a Close is sent or received (messages may go out)."""
        return self.protocol.isOpen

    # -- receiving ------------------------------------------------------------

    def recv(self) -> Awaitable[str | bytes]:
        """
        Await the next message: C{str} for text, C{bytes} for binary.
        Raises L{ConnectionClosed} once the connection is gone and nothing
        is left to read.  One coroutine at a time may wait here.
        """
        if self._streaming:
            return self._recvWhole()
        if self._queue:
            return _ready(self._take())
        return waitFor(self._waiter())

    def __aiter__(self) -> WebSocket:
        return self

    def __anext__(self) -> Awaitable[str | bytes]:
        # Plain generators rather than a coroutine per message: this is
        # the hot path of "async for message in ws".
        if self._streaming:
            return _endCleanly(self._recvWhole())
        if self._queue:
            return _ready(self._take())
        if self._lost is not None:
            return _endCleanly(_raise(ConnectionClosed(self._lost)))
        return _nextMessage(self._waiter())

    async def recvStream(self) -> IncomingMessage:
        """
        The next message as an L{IncomingMessage}: its pieces come as they
        arrive (C{async for piece in message}).  Needs
        C{streamMessages=True}; a message left unread is skipped by the
        next C{recv} or C{recvStream}.
        """
        if not self._streaming:
            raise RuntimeError("recvStream() needs streamMessages=True")
        isText = await self._startOfMessage()
        message = self._incoming = IncomingMessage(self, isText)
        return message

    async def _recvWhole(self) -> str | bytes:
        isText = await self._startOfMessage()
        pieces: list[Any] = []  # str pieces of a text message, bytes of a binary one
        while True:
            item = self._take() if self._queue else await waitFor(self._waiter())
            if item is _END:
                return "".join(pieces) if isText else b"".join(pieces)
            pieces.append(item)

    async def _startOfMessage(self) -> bool:
        incoming, self._incoming = self._incoming, None
        if incoming is not None:
            incoming.done = True
        while True:
            item = self._take() if self._queue else await waitFor(self._waiter())
            if item is _TEXT:
                return True
            if item is _BINARY:
                return False
            # else: a piece or the end of a message left unread

    def _take(self) -> Any:
        queue = self._queue
        item = queue.popleft()
        if self._readingPaused and len(queue) <= self._lowWater:
            self._readingPaused = False
            self.protocol.resumeReading()
        return item

    def _waiter(self) -> Waiter:
        """The L{Waiter} of the next queue entry (the queue is empty)."""
        if self._lost is not None:
            raise ConnectionClosed(self._lost)
        if self._recvWaiter is not None:
            raise RuntimeError("another coroutine is already waiting for a message")
        waiter = self._spare
        if waiter is None:
            waiter = Waiter(self._cancelRecv)
        else:
            self._spare = None
        self._recvWaiter = waiter
        return waiter

    def _cancelRecv(self, waiter: Deferred[Any]) -> None:
        if self._recvWaiter is waiter:
            self._recvWaiter = None

    def _deliver(self, item: Any) -> None:
        """A message (or a piece or marker) arrived from the protocol."""
        waiter = self._recvWaiter
        if waiter is not None:
            self._recvWaiter = None
            resumer = waiter.resumer
            if resumer is not None:  # Waiter.resume, inlined: the hot path
                waiter.resumer = None
                self._spare = waiter  # still unfired: used again
                resumer(item)
            else:
                waiter.resume(item)
            return
        queue = self._queue
        queue.append(item)
        if len(queue) >= self.queueSize and not self._readingPaused:
            self._readingPaused = True
            self.protocol.pauseReading()

    # -- sending ----------------------------------------------------------------

    def send(
        self, message: str | bytes, isText: bool | None = None, compress: bool | None = None
    ) -> Awaitable[None]:
        """
        Send a message (C{str} as text, C{bytes} as binary; C{isText} and
        C{compress} as for L{WebSocketProtocol.sendMessage}).  Await the
        result: while the transport's buffer is full (or a streamed message
        is being sent) the message waits its turn here, and the await ends
        once it is handed to the transport.  Raises L{ConnectionClosed}
        once a Close was sent or received.
        """
        if not (self._blocked or self._outgoing is not None or self._pending):
            if not self._conn.sendMessage(message, isText, compress):
                raise ConnectionClosed(self.protocol.closeInfo)
            return _SENT
        if self._lost is not None or not self.protocol.isOpen:
            raise ConnectionClosed(self.protocol.closeInfo)
        d: Deferred[None] = Deferred(self._cancelPending)
        self._pending.append((d, message, isText, compress))
        return d

    def sendStream(self, isText: bool = False) -> OutgoingMessage:
        """
        Send one message piece by piece::

            async with ws.sendStream(isText=True) as message:
                async for line in lines:
                    await message.write(line)

        Other sends wait until the block ends, which ends the message.  If
        the block raises, the message cannot be completed: the connection
        closes (1011, or 1001 when cancelled).
        """
        return OutgoingMessage(self, isText)

    def _room(self) -> Any:
        """An awaitable: until the transport takes data again."""
        if self._lost is not None:
            raise ConnectionClosed(self._lost)
        waiter = self._writeWaiter = Waiter(self._cancelRoom)
        return waitFor(waiter)

    def _cancelRoom(self, waiter: Deferred[Any]) -> None:
        if self._writeWaiter is waiter:
            self._writeWaiter = None

    def _cancelPending(self, d: Deferred[Any]) -> None:
        for entry in self._pending:
            if entry[0] is d:
                self._pending.remove(entry)
                return

    def _wake(self) -> None:
        """Send what waits, in order, while the transport takes data."""
        pending = self._pending
        while not self._blocked and self._lost is None:
            waiter = self._writeWaiter
            if waiter is not None:
                self._writeWaiter = None
                waiter.resume(None)
                continue
            if self._outgoing is not None or not pending:
                return
            d, message, isText, compress = pending.popleft()
            if type(message) is OutgoingMessage:
                self._outgoing = message  # its turn: it runs until its block ends
                d.callback(None)
            elif self._conn.sendMessage(message, isText, compress):
                d.callback(None)
            else:
                d.errback(ConnectionClosed(self.protocol.closeInfo))

    # IPushProducer, registered with the protocol: the transport's flow control.

    def pauseProducing(self) -> None:
        self._blocked = True

    def resumeProducing(self) -> None:
        self._blocked = False
        self._wake()

    def stopProducing(self) -> None:
        """The connection is going away (L{connectionLost} says how)."""

    # -- control --------------------------------------------------------------------

    def ping(self, payload: bytes | None = None) -> Deferred[float]:
        """
        Send a Ping; the Deferred fires with the round-trip time in
        seconds, or fails with L{ConnectionClosed}.
        """
        return self.protocol.ping(payload)

    def close(self, code: int | None = CloseCode.NORMAL_CLOSURE, reason: str = "") -> Deferred[CloseInfo]:
        """
        Start the close handshake (messages already sent go out first);
        the Deferred fires with the L{CloseInfo} once the connection is
        gone.
        """
        return self.protocol.close(code, reason)

    def connectionLost(self, info: CloseInfo) -> None:
        """
        The connection is gone: waiting C{recv}, C{send} and C{write}
        calls fail with L{ConnectionClosed}; queued messages can still be
        read.
        """
        self._lost = info
        self._spare = None
        waiters = [self._recvWaiter, self._writeWaiter, *(entry[0] for entry in self._pending)]
        self._recvWaiter = self._writeWaiter = None
        self._pending.clear()
        for waiter in waiters:
            if type(waiter) is Waiter:
                waiter.resume(Failure(ConnectionClosed(info)))
            elif waiter is not None:
                waiter.errback(ConnectionClosed(info))


class IncomingMessage:
    """
    A message received piece by piece (see L{WebSocket.recvStream}):
    C{async for piece in message} gives C{str} pieces (never splitting a
    character) for text, C{bytes} for binary.  A connection lost before
    the end raises L{ConnectionClosed}.

    @ivar isText: C{True} for a text message.
    @ivar done: C{True} once the last piece was read (or the message was
        skipped).
    """

    def __init__(self, websocket: WebSocket, isText: bool) -> None:
        self._ws = websocket
        self.isText = isText
        self.done = False

    def __aiter__(self) -> IncomingMessage:
        return self

    async def __anext__(self) -> str | bytes:
        if self.done:
            raise StopAsyncIteration
        ws = self._ws
        item = ws._take() if ws._queue else await waitFor(ws._waiter())
        if item is _END:
            self.done = True
            ws._incoming = None
            raise StopAsyncIteration
        piece: str | bytes = item
        return piece

    async def read(self) -> str | bytes:
        """The rest of the message, joined."""
        pieces: list[Any] = [piece async for piece in self]  # all str, or all bytes
        return "".join(pieces) if self.isText else b"".join(pieces)


class OutgoingMessage:
    """
    A message sent piece by piece, as an C{async with} block (see
    L{WebSocket.sendStream}); built on L{MessageWriter}.
    """

    def __init__(self, websocket: WebSocket, isText: bool) -> None:
        self._ws = websocket
        self.isText = isText
        self._writer: MessageWriter | None = None

    async def __aenter__(self) -> OutgoingMessage:
        ws = self._ws
        if not ws.protocol.isOpen:
            raise ConnectionClosed(ws.protocol.closeInfo)
        if ws._blocked or ws._outgoing is not None or ws._pending:
            d: Deferred[None] = Deferred(ws._cancelPending)
            ws._pending.append((d, self, None, None))
            await d  # _wake makes this the outgoing message first
            if not ws.protocol.isOpen:
                ws._outgoing = None
                raise ConnectionClosed(ws.protocol.closeInfo)
        ws._outgoing = self
        self._writer = ws.protocol.beginMessage(self.isText)
        return self

    async def write(self, piece: str | bytes) -> None:
        """
        Send the next piece (C{str} for text, C{bytes} for binary), first
        waiting while the transport's buffer is full.
        """
        ws = self._ws
        if self._writer is None or ws._outgoing is not self:
            raise RuntimeError("write() outside its async with block")
        if ws._blocked:
            await ws._room()
        if not ws.protocol.isOpen:
            raise ConnectionClosed(ws.protocol.closeInfo)
        self._writer.write(piece)

    async def __aexit__(self, excType: Any, exc: Any, tb: Any) -> None:
        ws = self._ws
        ws._outgoing = None
        protocol = ws.protocol
        if excType is None:
            if not protocol.isOpen:
                raise ConnectionClosed(protocol.closeInfo)
            self._writer.finish()  # type: ignore[union-attr]  # set when the message started
        elif protocol.isOpen:
            # Half a message cannot be taken back: end the connection.
            cancelled = isCancellation(excType)
            protocol.close(
                CloseCode.GOING_AWAY if cancelled else CloseCode.INTERNAL_ERROR,
                "" if cancelled else "message left unfinished",
            )
        ws._wake()


class CoroutineProtocol(WebSocketProtocol):
    """
    The L{WebSocketProtocol} behind a L{WebSocket}: its callbacks feed the
    WebSocket (C{self.websocket}, made when the connection opens).

    C{queueSize} and C{streamMessages} may be given per instance (or set
    in a subclass).  A client made by C{connectWS(url)} without a protocol
    is one of these; the Deferred fires with its C{websocket}.
    """

    queueSize: int = 16
    websocket: WebSocket | None = None

    def __init__(self, queueSize: int | None = None, streamMessages: bool | None = None) -> None:
        if queueSize is not None:
            self.queueSize = queueSize
        if streamMessages is not None:
            self.streamMessages = streamMessages

    @property
    def isOpen(self) -> bool:
        """Messages may be sent: no Close was sent or received yet."""
        conn = self._conn
        return conn is not None and conn.state is State.OPEN

    def connectionMade(self) -> None:
        ws = self.websocket = WebSocket(self, self._conn, self.queueSize)  # type: ignore[arg-type]  # set by makeConnection
        self.registerProducer(ws, True)
        if not self.streamMessages:
            # Whole messages go straight to the WebSocket: one call less each.
            self.textMessageReceived = self.binaryMessageReceived = ws._deliver  # type: ignore[method-assign, assignment]  # _deliver takes str and bytes

    def textMessageReceived(self, text: str) -> None:
        self.websocket._deliver(text)  # type: ignore[union-attr]  # set by connectionMade

    def binaryMessageReceived(self, data: bytes) -> None:
        self.websocket._deliver(data)  # type: ignore[union-attr]  # set by connectionMade

    def messageStarted(self, isText: bool) -> None:
        self.websocket._deliver(_TEXT if isText else _BINARY)  # type: ignore[union-attr]  # set by connectionMade

    def messageDataReceived(self, data: str | bytes) -> None:
        self.websocket._deliver(data)  # type: ignore[union-attr]  # set by connectionMade

    def messageEnded(self) -> None:
        self.websocket._deliver(_END)  # type: ignore[union-attr]  # set by connectionMade

    def connectionClosed(self, code: int, reason: str, wasClean: bool) -> None:
        if self.websocket is not None:
            self.websocket.connectionLost(self.closeInfo)  # type: ignore[arg-type]  # set before connectionClosed
