"""
The frame protocol applications subclass: one open WebSocket connection.

A L{WebSocketProtocol} becomes the transport's protocol once the opening
handshake is over (the server's upgrade protocol, the twisted.web resource
and the client all hand the live transport to it), so from then on every
byte goes straight to it.  It drives the I/O-free
L{twisted_ws.core.connection.WebSocketConnection} and adds what needs a
reactor: timers (close timeout, keepalive, write deadline), Deferreds (L{ping},
L{close}), producer/consumer flow control and C{TCP_NODELAY}.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from .clock import defaultClock
from .core.closecodes import CloseCode, CloseInfo
from .core.connection import State, WebSocketConnection
from .core.options import WebSocketOptions
from .errors import ConnectionClosed
from .observer import Traffic
from .readgate import ReadGate
from .timers import Timer, TimerService, timersFor
from .transport import IStreamTransport, transportBacklog, tuneForFrames
from .writer import MessageWriter

if TYPE_CHECKING:
    from .core.extensions import Extension
    from .core.handshake import HandshakeRequest

__all__ = ["WebSocketProtocol"]

_log = Logger()


@implementer(IPushProducer)
class WebSocketProtocol(Protocol):
    """
    Subclass me to handle one WebSocket connection.

    Callbacks (override what you need):
      - C{connectionMade()}: the WebSocket is open; C{self.request},
        C{self.subprotocol} and C{self.extensions} are set.
      - C{textMessageReceived(text: str)}, C{binaryMessageReceived(data:
        bytes)}: a whole message arrived.  Both call
        C{messageReceived(message)} unless overridden, so one method can
        handle both (the type tells them apart).
      - With C{streamMessages = True}: C{messageStarted(isText)},
        C{messageDataReceived(data)} (C{str} pieces that never split a
        character, or C{bytes}), C{messageEnded()} instead.
      - C{pingReceived(payload)}, C{pongReceived(payload)} (the Pong reply
        is sent for you), C{closeReceived(code, reason)} (the peer's Close
        arrived).
      - C{connectionClosed(code, reason, wasClean)}: the TCP connection is
        gone; C{self.closeInfo} holds both sides of the story.

    Actions: L{sendMessage}, L{beginMessage} (streaming), L{ping},
    L{close}, L{registerProducer} (flow control).

    A subclass that overrides C{makeConnection} or C{connectionLost} must
    call the base implementation; C{connectionMade} and
    C{connectionClosed} are the hooks meant for applications.

    @ivar factory: the factory that built me.
    @ivar request: the L{HandshakeRequest} of the opening handshake (on a
        server; on a client, the request we sent).
    @ivar subprotocol: the negotiated subprotocol, or C{None}.
    @ivar extensions: the negotiated extensions.
    @ivar options: the L{WebSocketOptions} in force.
    @ivar closeInfo: a L{CloseInfo} once the connection is gone.
    """

    #: Deliver messages piece by piece (see the class docstring).
    streamMessages: bool = False
    #: C{True} on the client side (frames are masked, the server closes TCP).
    isClient: bool = False

    factory: Any = None
    request: HandshakeRequest | None = None
    subprotocol: str | None = None
    extensions: Sequence[Extension] = ()
    options: WebSocketOptions | None = None
    clock: IReactorTime | None = None
    transport: IStreamTransport
    closeInfo: CloseInfo | None = None
    #: An L{IConnectionObserver}; when C{None}, the factory's C{observer}.
    observer: Any = None

    _conn: WebSocketConnection | None = None
    _timers: TimerService | None = None  # the clock's, shared (twisted_ws.timers)
    _closeTimer: Timer | None = None
    _writeTimer: Timer | None = None  # armed while our output is blocked
    _pingTimer: Timer | None = None
    _pongTimer: Timer | None = None
    _keepalivePayload: bytes | None = None
    _pings: dict[bytes, tuple[Deferred[float], float]] | None = None
    _closeWaiters: list[Deferred[CloseInfo]] | None = None
    _producer: Any = None
    _producerStreaming = True
    _producerPaused = False
    _pullCall: IDelayedCall | None = None
    _readGate: ReadGate | None = None
    _writer: MessageWriter | None = None

    # -- connection set-up and tear-down ----------------------------------

    def makeConnection(self, transport: Any) -> None:
        """
        Start the WebSocket on C{transport}: the opening handshake is done
        and this protocol now receives every byte.
        """
        options = self.options
        if options is None:
            options = getattr(self.factory, "options", None) or WebSocketOptions()
            self.options = options
        if self.clock is None:
            self.clock = getattr(self.factory, "clock", None) or defaultClock()
        timers = self._timers = timersFor(self.clock)
        conn = self._conn = WebSocketConnection(
            self,
            transport.write,
            isClient=self.isClient,
            maxMessageSize=options.maxMessageSize,
            maxFragments=options.maxFragments,
            fragmentSize=options.fragmentSize,
            extensions=self.extensions,
            streaming=self.streamMessages,
        )
        # The core says when the close starts and when TCP should close.
        conn.pongWatcher, conn.closeStarted, conn.closeTransport = (
            self._matchPong, self._closeStarted, self._closeTransport
        )  # fmt: skip
        # (_writer as an instance attribute: sendMessage reads it per message.)
        self._readGate, self._writer = ReadGate(transport), None
        tuneForFrames(transport)
        transport.registerProducer(self, True)
        if options.pingInterval:
            self._pingTimer = timers.callLater(options.pingInterval, self._sendKeepalive)
        if self.observer is None:
            self.observer = getattr(self.factory, "observer", None)
        # Protocol.makeConnection; the observer sees the open before the app.
        self.connected, self.transport = 1, transport
        if self.observer is not None:
            self._notifyObserver("connectionOpened")
        self.connectionMade()  # type: ignore[no-untyped-call]  # Twisted's Protocol.connectionMade is unannotated

    def dataReceived(self, data: bytes) -> None:
        conn = self._conn
        try:
            conn.receiveData(data)  # type: ignore[union-attr]  # set by makeConnection
        except Exception:
            # A bug in a callback: log it and fail the connection with 1011
            # (internal error) instead of dropping it without a Close.
            _log.failure("Unhandled error in WebSocket protocol {protocol!r}", protocol=self)
            conn.fail(CloseCode.INTERNAL_ERROR, "internal error")  # type: ignore[union-attr]  # set by makeConnection

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.connected, producer = False, self._producer
        self._stopKeepalive()
        for timer in (self._closeTimer, self._writeTimer):
            if timer is not None:
                timer.cancel()  # one that fired or was cancelled ignores it
        self._closeTimer = self._writeTimer = None
        self.unregisterProducer()  # (its producer is stopped below)
        conn = self._conn
        if conn is None:
            info = CloseInfo(CloseCode.ABNORMAL_CLOSURE, "", False, True)
        else:
            self._readGate.detach()  # type: ignore[union-attr]  # set by makeConnection
            info = conn.connectionLost()  # the core says how it ended
        self.closeInfo = info
        if producer is not None:
            producer.stopProducing()
        pings, self._pings = self._pings, None
        if conn is not None and self.observer is not None:
            self._notifyObserver("connectionClosed", info)
        try:
            self.connectionClosed(info.code, info.reason, info.wasClean)
        finally:
            for d, _ in (pings or {}).values():
                d.errback(ConnectionClosed(info))
            waiters, self._closeWaiters = self._closeWaiters, None
            for waiter in waiters or ():
                waiter.callback(info)

    # -- application callbacks ---------------------------------------------

    def textMessageReceived(self, text: str) -> None:
        """A text message arrived; by default passed to L{messageReceived}."""
        self.messageReceived(text)

    def binaryMessageReceived(self, data: bytes) -> None:
        """A binary message arrived; by default passed to L{messageReceived}."""
        self.messageReceived(data)

    def messageReceived(self, message: str | bytes) -> None:
        """A whole message arrived: C{str} for text, C{bytes} for binary."""

    def messageStarted(self, isText: bool) -> None:
        """(C{streamMessages}) A message starts."""

    def messageDataReceived(self, data: str | bytes) -> None:
        """(C{streamMessages}) More of the current message."""

    def messageEnded(self) -> None:
        """(C{streamMessages}) The current message is complete."""

    def pingReceived(self, payload: bytes) -> None:
        """The peer pinged; the Pong has already been sent."""

    def pongReceived(self, payload: bytes) -> None:
        """A Pong arrived (L{ping} Deferreds are fired for you)."""

    def closeReceived(self, code: int, reason: str) -> None:
        """The peer's Close frame arrived (1005: it carried no code)."""

    def connectionClosed(self, code: int, reason: str, wasClean: bool) -> None:
        """
        The connection is gone.  C{code} is the peer's close code (1005: its
        Close had none, 1006: no Close arrived); see C{self.closeInfo}.
        """

    # -- actions -----------------------------------------------------------

    def sendMessage(
        self, message: str | bytes, isText: bool | None = None, compress: bool | None = None,
        isBinary: bool | None = None,  # not keyword-only: CPython 3.11 would not specialise calls here
    ) -> None:  # fmt: skip
        """
        Send a message: C{str} as text, C{bytes} (or any buffer) as binary.

        Large messages go out as fragments of C{options.fragmentSize} while
        the transport takes them.  After L{close} (or the peer's Close),
        messages are silently dropped, as writes after C{loseConnection}.
        C{isText=False} sends a C{str} as binary (UTF-8 encoded),
        C{isText=True} bytes as text.  (C{isBinary=} is the deprecated
        spelling of C{isText=not isBinary}.)
        With permessage-deflate negotiated, C{compress=False} sends this
        message uncompressed (for already-compressed data such as images)
        and C{compress=True} compresses it even below the threshold.
        """
        conn = self._conn
        if conn is None:
            raise RuntimeError("the WebSocket is not open yet")
        if self._writer is not None:
            raise RuntimeError("a streamed message is being sent; finish it first")
        if isBinary is not None:
            warnings.warn(
                "sendMessage(isBinary=) is deprecated; use isText=", DeprecationWarning, stacklevel=2
            )
            if isText is None:
                isText = not isBinary
        conn.sendMessage(message, isText, compress)

    def sendFramedMessage(self, frame: bytes) -> None:
        """
        Send a message already serialised as one final, unmasked frame (see
        L{twisted_ws.core.frames.serializeFrame}): a broadcast hub frames a
        message once for all its members.  Only on a server connection with
        no extension negotiated; flow control and ordering are as for
        L{sendMessage}.
        """
        conn = self._conn
        if conn is None:
            raise RuntimeError("the WebSocket is not open yet")
        if self._writer is not None:
            raise RuntimeError("a streamed message is being sent; finish it first")
        conn.sendFramedMessage(frame)

    def beginMessage(self, isText: bool = False) -> MessageWriter:
        """
        Start sending a message piece by piece; see L{MessageWriter}.
        """
        if self._conn is None:
            raise RuntimeError("the WebSocket is not open yet")
        if self._writer is not None:
            raise RuntimeError("a streamed message is already being sent")
        self._writer = MessageWriter(self, isText)
        return self._writer

    def ping(self, payload: bytes | None = None) -> Deferred[float]:
        """
        Send a Ping.  The Deferred fires with the round-trip time in seconds
        when the matching Pong arrives (a Pong also answers earlier pings,
        RFC 6455 §5.5.3), or fails with L{ConnectionClosed}.
        """
        conn = self._conn
        if conn is None:
            return fail(ConnectionClosed(self.closeInfo))
        if self._pings is None:
            self._pings = {}
        if payload is None:
            payload = os.urandom(4)
            while payload in self._pings:
                payload = os.urandom(4)
        elif payload in self._pings:
            raise ValueError("a ping with this payload is already waiting for its pong")
        if not conn.ping(payload):
            return fail(ConnectionClosed(self.closeInfo))
        d: Deferred[float] = Deferred()
        self._pings[payload] = (d, self.clock.seconds())  # type: ignore[union-attr]  # set by makeConnection
        return d

    def close(self, code: int | None = CloseCode.NORMAL_CLOSURE, reason: str = "") -> Deferred[CloseInfo]:
        """
        Start the close handshake (queued data goes out first).  The
        Deferred fires with a L{CloseInfo} once the TCP connection is gone.
        """
        d = self.whenClosed()
        if self._conn is None:
            self.transport.loseConnection()
        else:
            self._conn.close(code, reason)  # the core calls _closeStarted
        return d

    def whenClosed(self) -> Deferred[CloseInfo]:
        """A Deferred that fires with a L{CloseInfo} when the connection is gone."""
        if self.closeInfo is not None:
            return succeed(self.closeInfo)
        if self._closeWaiters is None:
            self._closeWaiters = []
        d: Deferred[CloseInfo] = Deferred()
        self._closeWaiters.append(d)
        return d

    def abortConnection(self) -> None:
        """Drop the TCP connection now, without a close handshake."""
        if self._conn is not None:
            self._conn.abort()
        self.transport.abortConnection()

    @property
    def traffic(self) -> Traffic:
        """Wire bytes and data messages in each direction so far."""
        conn = self._conn
        if conn is None:
            return Traffic(0, 0, 0, 0)
        return Traffic(conn.bytesReceived, conn.bytesSent, conn.messagesReceived, conn.messagesSent)

    def _notifyObserver(self, event: str, *args: Any) -> None:
        """Tell the observer (the caller checked there is one) of C{event}."""
        try:
            getattr(self.observer, event)(self, *args)
        except Exception:
            _log.failure("WebSocket connection observer {observer!r} failed", observer=self.observer)

    @property
    def bufferedAmount(self) -> int:
        """Bytes of outgoing messages waiting for the transport to drain."""
        return self._conn.bufferedAmount if self._conn is not None else 0

    # -- close handshake machinery -------------------------------------------

    def _closeStarted(self) -> None:
        """
        The core left OPEN: keepalives stop, the close timeout starts, and
        reading goes on whatever flow control says, so the peer's Close
        gets through.
        """
        if not self.connected:
            return
        self._stopKeepalive()
        self._armCloseTimer(self._closeTimedOut)
        self._readGate.setClosing()  # type: ignore[union-attr]  # set by makeConnection

    def _closeTransport(self, now: bool) -> None:
        """
        The close handshake is over.  A server drops TCP now; a client
        gives the server closeTimeout to do it first (RFC 6455 §7.1.1).
        """
        if not self.connected:
            return
        if now:
            self._dropTcp()
        else:
            self._armCloseTimer(self._serverKeptTcpOpen)

    def _armCloseTimer(self, then: Any) -> None:
        timer = self._closeTimer
        if timer is not None:
            timer.cancel()
        timeout = self.options.closeTimeout  # type: ignore[union-attr]  # set by makeConnection
        self._closeTimer = None if timeout is None else self._timers.callLater(timeout, then)  # type: ignore[union-attr]  # set by makeConnection

    def _dropTcp(self) -> None:
        # A registered producer would hold loseConnection() up.  TCP closes
        # once the transport's buffer drains, and no resumeProducing tells
        # us it did: a write deadline from here (or from the pause) aborts a
        # peer that never reads our Close -- unless the close timeout,
        # which aborts as well, is due first.
        self.transport.unregisterProducer()
        timer, timeout = self._closeTimer, self.options.writeTimeout  # type: ignore[union-attr]  # set by makeConnection
        if timer is None or not timer.active() or timeout is None or (
            timer.deadline > self.clock.seconds() + timeout  # type: ignore[union-attr]  # set by makeConnection
        ):
            self._armWriteDeadline()
        self.transport.loseConnection()

    def _serverKeptTcpOpen(self) -> None:
        self._dropTcp()
        self._armCloseTimer(self._closeTimedOut)

    def _closeTimedOut(self) -> None:
        self._closeTimer = None
        _log.debug("WebSocket close timed out; aborting {peer}", peer=self._peer())
        self.abortConnection()

    # -- write deadline ------------------------------------------------------

    def _armWriteDeadline(self) -> None:
        if self._writeTimer is None and self.connected:
            timeout = self.options.writeTimeout  # type: ignore[union-attr]  # set by makeConnection
            if timeout is not None:
                self._writeTimer = self._timers.callLater(timeout, self._writeTimedOut)  # type: ignore[union-attr]  # set by makeConnection

    def _writeTimedOut(self) -> None:
        self._writeTimer = None
        conn = self._conn
        queued = conn.pendingBytes if conn is not None else 0
        buffered = transportBacklog(self.transport)
        _log.info(
            "WebSocket write timed out: output to {peer} blocked for {timeout} s; "
            "aborting ({queued} bytes queued here, {buffered} in the transport)",
            peer=self._peer(),
            timeout=self.options.writeTimeout,  # type: ignore[union-attr]  # set by makeConnection
            queued=queued,
            buffered="unknown" if buffered is None else buffered,
        )
        self.abortConnection()

    def _peer(self) -> object:
        try:
            return self.transport.getPeer()
        except Exception:
            return None

    # -- keepalive and pings ----------------------------------------------

    def _sendKeepalive(self) -> None:
        self._pingTimer = None
        conn = self._conn
        payload = os.urandom(4)
        if conn is None or not conn.ping(payload):
            return
        options = self.options
        self._keepalivePayload = payload
        if options.pingTimeout:  # type: ignore[union-attr]  # set by makeConnection
            self._pongTimer = self._timers.callLater(options.pingTimeout, self._keepaliveTimedOut)  # type: ignore[union-attr]  # set by makeConnection
        self._pingTimer = self._timers.callLater(options.pingInterval, self._sendKeepalive)  # type: ignore[union-attr, arg-type]  # set by makeConnection; keepalives run only with a pingInterval

    def _keepaliveTimedOut(self) -> None:
        self._pongTimer = None
        _log.info("WebSocket keepalive timed out: {peer}", peer=self._peer())
        if self._conn is not None:
            self._conn.fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")

    def _stopKeepalive(self) -> None:
        for timer in (self._pingTimer, self._pongTimer):
            if timer is not None:
                timer.cancel()
        self._pingTimer = self._pongTimer = None

    def _matchPong(self, payload: bytes) -> None:
        """Fire the Deferreds of the ping this Pong answers, and earlier ones."""
        if payload == self._keepalivePayload:
            self._keepalivePayload = None
            if self._pongTimer is not None:
                self._pongTimer.cancel()
                self._pongTimer = None
        pings = self._pings
        if not pings or payload not in pings:
            return
        now = self.clock.seconds()  # type: ignore[union-attr]  # set by makeConnection
        answered = []
        for key in pings:
            answered.append(key)
            if key == payload:
                break
        for key in answered:
            d, sentAt = pings.pop(key)
            d.callback(now - sentAt)

    # -- flow control: reading ----------------------------------------------------

    def pauseReading(self) -> None:
        """
        Stop reading from the peer until L{resumeReading}: for an
        application that cannot take more messages for now (a full
        backend, say).  It composes with the pause flow control applies
        while the peer does not read our output; once closing, reading goes
        on regardless so the peer's Close gets through.
        """
        if self._readGate is not None:
            self._readGate.setAppPaused(True)

    def resumeReading(self) -> None:
        """Undo L{pauseReading}."""
        if self._readGate is not None:
            self._readGate.setAppPaused(False)

    # -- flow control: producer towards the transport -------------------------

    def pauseProducing(self) -> None:
        """
        The transport's buffer is full: hold queued frames, stop reading
        from the peer (so a peer that sends but never reads cannot make us
        buffer without bound) and pause the application's producer.
        """
        conn = self._conn
        if conn is not None:
            conn.pauseWriting()
            self._readGate.setOutputBlocked(True)  # type: ignore[union-attr]  # set by makeConnection
            if self._writeTimer is None:
                self._armWriteDeadline()
        if self._producer is not None and self._producerStreaming and not self._producerPaused:
            self._producerPaused = True
            self._producer.pauseProducing()

    def resumeProducing(self) -> None:
        """The transport drained: write what waited, then read again."""
        conn = self._conn
        if conn is not None:
            # The peer took everything the transport held: the deadline
            # starts afresh if what waited here fills the transport again.
            timer = self._writeTimer
            if timer is not None:
                self._writeTimer = None
                timer.cancel()
            if not conn.resumeWriting():
                return  # what waited filled the transport again
            self._readGate.setOutputBlocked(False)  # type: ignore[union-attr]  # set by makeConnection
        if self._producer is not None:
            if self._producerStreaming:
                if self._producerPaused:
                    self._producerPaused = False
                    self._producer.resumeProducing()
            else:
                self._schedulePull()

    def stopProducing(self) -> None:
        """The transport is going away."""
        producer = self._producer
        if producer is not None:
            self._producer = None
            producer.stopProducing()

    # -- flow control: consumer for the application ----------------------------

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """
        Register a producer of outgoing messages: a streaming producer is
        paused while the transport's buffer is full; a pull producer is
        asked for more each time it has room.
        """
        if self._producer is not None:
            raise RuntimeError("a producer is already registered")
        self._producer = producer
        self._producerStreaming = streaming
        self._producerPaused = False
        gate = self._readGate
        if streaming:
            if gate is not None and gate.outputBlocked:
                self._producerPaused = True
                producer.pauseProducing()
        else:
            self._schedulePull()

    def unregisterProducer(self) -> None:
        """Forget the application's producer."""
        self._producer = None
        if self._pullCall is not None and self._pullCall.active():
            self._pullCall.cancel()
        self._pullCall = None

    def _schedulePull(self) -> None:
        if self._pullCall is None and self.clock is not None:
            self._pullCall = self.clock.callLater(0, self._pull)

    def _pull(self) -> None:
        self._pullCall = None
        producer = self._producer
        conn = self._conn
        if producer is None or self._producerStreaming or conn is None or conn.state is not State.OPEN:
            return
        gate = self._readGate
        if not gate.outputBlocked:  # type: ignore[union-attr]  # set by makeConnection
            producer.resumeProducing()
            if self._producer is producer and not gate.outputBlocked:  # type: ignore[union-attr]  # set by makeConnection
                self._schedulePull()
