"""
The state machine of an open WebSocket connection, free of any I/O.

L{WebSocketConnection} turns received bytes into calls on a handler (whole
messages, or pieces of them when streaming; pings, pongs, Close) and turns
the application's sends into bytes given to a C{write} callable.  It owns the
RFC 6455 rules above the frame level: reassembly (L{MessageAssembler}),
control frames between fragments, the close handshake, and failing the
connection with the right close code.

It knows nothing of sockets, timers or Deferreds, which keeps it testable
without a reactor.  It owns the connection's lifecycle: one L{State}, and two
callbacks that tell the Twisted layer what to do about it -- C{closeStarted}
(start the close timeout, keep reading) and C{closeTransport(now)} (the close
handshake is over: the server closes TCP now, the client waits for the
server to, RFC 6455 §7.1.1).  When the transport is gone, L{connectionLost}
says how the connection ended.

Outgoing data messages larger than C{fragmentSize} are cut into fragments,
written (C{writeSize} of them per write) while the transport accepts data:
when the Twisted layer calls L{WebSocketConnection.pauseWriting} (its
transport is full) the rest waits, and pongs and Closes go out between writes.
While paused, pings are answered by one held Pong carrying the most recent
ping's payload (RFC 6455 §5.5.3), so a peer flooding pings without reading
cannot make anything grow.
"""

from __future__ import annotations

import enum
import os
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol as _TypingProtocol

from .assembly import MessageAssembler
from .closecodes import CloseCode, CloseInfo, buildClosePayload, parseClosePayload
from .errors import ProtocolError
from .extensions import Extension
from .frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    WHOLE,
    FrameParser,
    buildFrameHeader,
    serializeFragments,
)
from .masking import mask

#: The queue's mark for a message framed by the caller (see sendFramedMessage).
_FRAMED = -1

#: Payload bytes of fragments per write: Twisted costs a reactor turn, a send(), a pause
#: and a resume per write.  256 KiB writes of 64 KiB frames cut the CPU of a 16 MiB echo by
#: a third; 1 MiB writes were worse for 1 MiB messages (malloc unmapped and refaulted them).
WRITE_SIZE = 256 * 1024

__all__ = ["WRITE_SIZE", "ConnectionHandler", "State", "WebSocketConnection"]


class State(enum.Enum):
    """
    Where an open WebSocket is in its life.  (Connecting is the opening
    handshake's business: see L{twisted_ws.core.handshake}.)
    """

    #: Messages flow both ways.
    OPEN = "open"
    #: A Close was sent or received, or this side failed the connection:
    #: only the close handshake goes on.
    CLOSING = "closing"
    #: The transport is gone (L{WebSocketConnection.connectionLost}).
    CLOSED = "closed"


OPEN, CLOSING, CLOSED = State.OPEN, State.CLOSING, State.CLOSED


class ConnectionHandler(_TypingProtocol):
    """What a L{WebSocketConnection} calls when something arrives."""

    def textMessageReceived(self, text: str) -> None: ...

    def binaryMessageReceived(self, data: bytes) -> None: ...

    def messageStarted(self, isText: bool) -> None: ...

    def messageDataReceived(self, data: str | bytes) -> None: ...

    def messageEnded(self) -> None: ...

    def pingReceived(self, payload: bytes) -> None: ...

    def pongReceived(self, payload: bytes) -> None: ...

    def closeReceived(self, code: int, reason: str) -> None: ...


class WebSocketConnection:
    """
    One endpoint of an open WebSocket connection.

    @ivar state: the L{State}: C{CLOSING} from the moment a Close is asked
        for (ours, queued or sent, or the reply to the peer's).
    @ivar closeSent: C{(code, reason)} of the Close frame written, or C{None}.
    @ivar peerClose: C{(code, reason)} of the peer's Close frame, or
        C{None}; code 1005 when the frame had no code.
    @ivar failure: the L{ProtocolError} for which this side failed the
        connection, or C{None}.
    @ivar paused: C{True} while the transport asked us to stop writing.
    """

    __slots__ = (
        # configuration and callbacks
        "handler", "pongWatcher", "closeStarted", "closeTransport",
        "isClient", "maxMessageSize", "fragmentSize", "writeSize", "streaming",
        "_write", "_parser", "_extensions", "_maskKey", "_assembler",
        # lifecycle
        "state", "closeSent", "peerClose", "failure", "_startedByPeer", "_aborted", "_told",
        # sending and flow control
        "paused", "_queue", "_queuedBytes", "_pendingPong", "_sendingStream",
        "_parserErrorSeen", "_batch", "_batchSize",
        # traffic
        "bytesReceived", "bytesSent", "messagesReceived", "messagesSent",
    )  # fmt: skip

    def __init__(
        self,
        handler: ConnectionHandler,
        write: Callable[[bytes], object],
        isClient: bool = False,
        maxMessageSize: int | None = 1 << 20,
        maxFragments: int | None = 65536,
        fragmentSize: int | None = 65536,
        extensions: Sequence[Extension] = (),
        streaming: bool = False,
        maskKey: Callable[[int], bytes] = os.urandom,
        writeSize: int = WRITE_SIZE,
    ) -> None:
        self.handler = handler
        #: Called with each Pong's payload before the handler (the Twisted
        #: layer matches pongs to its ping Deferreds there).
        self.pongWatcher: Callable[[bytes], object] | None = None
        self._write = write
        self.isClient = isClient
        self.maxMessageSize = maxMessageSize
        self.fragmentSize = fragmentSize
        self.writeSize = writeSize
        self.streaming = streaming
        self._extensions = list(extensions)
        allowedRsv = 0
        for ext in self._extensions:
            allowedRsv |= ext.rsvBits
        self._parser = FrameParser(
            requireMask=not isClient,
            maxMessageSize=maxMessageSize,
            maxFragments=maxFragments,
            allowedRsv=allowedRsv,
        )
        # Whole messages: a large binary frame is unmasked into one buffer.
        self._parser.gather = not streaming
        self.state = OPEN
        #: Called once when the state leaves OPEN (by a Close either way,
        #: or a failure): the Twisted layer starts its close timeout.
        self.closeStarted: Callable[[], object] | None = None
        #: Called once when the close handshake is over, with C{now}: C{True}
        #: on a server (close TCP now), C{False} on a client (the server
        #: closes TCP first; close it yourself only after a timeout).
        self.closeTransport: Callable[[bool], object] | None = None
        self.closeSent: tuple[int | None, str] | None = None
        self.peerClose: tuple[int, str] | None = None
        self.failure: ProtocolError | None = None
        self.paused = False
        self._startedByPeer = False
        self._aborted = False
        # What the callbacks have been told: 0 nothing, 1 closeStarted,
        # 2 closeTransport too.
        self._told = 0
        # Created when something must wait (most connections never queue).
        self._queue: deque[list[Any]] | None = None
        self._queuedBytes = 0
        # The Pong owed while paused: only the latest ping is answered.
        self._pendingPong: bytes | None = None
        self._sendingStream = False
        self._maskKey = maskKey
        self._assembler = MessageAssembler(self._extensions, maxMessageSize, streaming)
        self._parserErrorSeen = False
        self._batch: list[bytes] | None = None
        self._batchSize = 0
        # Traffic counters: plain additions, read when someone asks.
        self.bytesReceived = 0
        self.bytesSent = 0
        self.messagesReceived = 0
        self.messagesSent = 0

    # -- receiving --------------------------------------------------------

    def receiveData(self, data: bytes) -> None:
        """
        Process bytes received from the peer.

        Everything written meanwhile (echoes, pongs, a Close) is gathered and
        handed to C{write} in one piece at the end, or every 64 KiB: one
        transport write per read rather than one per frame.
        """
        self.bytesReceived += len(data)
        if self._batch is not None:
            self._receive(data)  # re-entered from a handler callback
            return
        self._batch = []
        try:
            self._receive(data)
        finally:
            self.flushPending()
            if self.state is not OPEN:
                self._progress()

    def flushPending(self) -> None:
        """Write what L{receiveData} has gathered so far, now."""
        batch = self._batch
        if batch is not None:
            self._batch = None
            self.bytesSent += self._batchSize
            self._batchSize = 0
            if batch:
                self._write(batch[0] if len(batch) == 1 else b"".join(batch))

    def _emit(self, data: bytes) -> None:
        batch = self._batch
        if batch is None:
            self.bytesSent += len(data)
            self._write(data)
            return
        batch.append(data)
        self._batchSize += len(data)
        if self._batchSize >= 65536:
            # Hand large output over early: the transport's flow control (pauseWriting) applies.
            self.flushPending()
            self._batch = []

    def _receive(self, data: bytes) -> None:
        parser = self._parser
        handler = self.handler
        streaming = self.streaming
        isOpen = OPEN
        for opcode, fin, rsv, payload, part in parser.feed(data):
            if self.state is not isOpen:
                # After our Close only the peer's Close matters (RFC 6455 §5.5.1).
                if opcode == OP_CLOSE:
                    self._closeFrameReceived(payload)
                continue
            if part == WHOLE and fin and not rsv and not streaming:
                if opcode == OP_TEXT:
                    try:
                        text = payload.decode("utf-8")
                    except UnicodeDecodeError:
                        self.fail(CloseCode.INVALID_PAYLOAD, "text message is not valid UTF-8")
                        continue
                    self.messagesReceived += 1
                    handler.textMessageReceived(text)
                    continue
                if opcode == OP_BINARY:
                    self.messagesReceived += 1
                    handler.binaryMessageReceived(payload)
                    continue
            if opcode & 0x8:
                self._controlFrameReceived(opcode, payload)
            else:
                try:
                    if self._assembler.add(handler, opcode, fin, rsv, payload, part):
                        self.messagesReceived += 1
                except ProtocolError as e:
                    self.fail(e.code, e.reason)
                except UnicodeDecodeError:
                    self.fail(CloseCode.INVALID_PAYLOAD, "text message is not valid UTF-8")
        if parser.error is not None and self._parserErrorSeen is False:
            self._parserErrorSeen = True
            error = parser.error
            if parser.errorOpcode == OP_CLOSE and self.peerClose is None:
                # A malformed Close is still the peer's Close: once ours is
                # sent the handshake is over and TCP can go.
                self.peerClose = (error.code, error.reason)
            if self.state is OPEN:
                self.fail(error.code, error.reason)
            # The parser stopped at the bad frame; the peer's Close may
            # already be in what followed it.
            for opcode, _fin, _rsv, payload, _part in parser.feed(b""):
                if opcode == OP_CLOSE:
                    self._closeFrameReceived(payload)

    def _controlFrameReceived(self, opcode: int, payload: bytes) -> None:
        if opcode == OP_PING:
            if self.paused:
                # Nothing is written while paused; the Pong for the latest
                # ping replaces any earlier one, and goes first on resume.
                self._pendingPong = payload
            else:
                self._writeFrame(OP_PONG, payload)
            self.handler.pingReceived(payload)
        elif opcode == OP_PONG:
            if self.pongWatcher is not None:
                self.pongWatcher(payload)
            self.handler.pongReceived(payload)
        else:
            self._closeFrameReceived(payload)

    def _closeFrameReceived(self, payload: bytes) -> None:
        if self.peerClose is not None:
            return
        try:
            code, reason = parseClosePayload(payload)
        except ProtocolError as e:
            self.peerClose = (e.code, e.reason)
            if self.state is OPEN:
                self.fail(e.code, e.reason)
            return
        self.peerClose = (code, reason)
        self._parser.lenient = True
        if self.closeSent is None:
            # Answer at once, even when data is still queued: the peer has
            # stopped and will not read further messages (RFC 6455 §5.5.1).
            self._queue = None
            self._queuedBytes = 0
            if self.state is OPEN:
                self.state = CLOSING
                self._startedByPeer = True
            replyCode = CloseCode.NORMAL_CLOSURE if code == CloseCode.NO_STATUS_RECEIVED else code
            self._sendClose(replyCode, "")
        self.handler.closeReceived(code, reason)

    # -- sending ----------------------------------------------------------

    @property
    def bufferedAmount(self) -> int:
        """Bytes of data messages waiting for the transport to accept them."""
        return self._queuedBytes

    @property
    def pendingBytes(self) -> int:
        """Payload bytes held here, waiting to be written: data and a held Pong."""
        pong = self._pendingPong
        return self._queuedBytes if pong is None else self._queuedBytes + len(pong)

    def sendMessage(
        self, data: bytes | str, isText: bool | None = None, compress: bool | None = None
    ) -> bool:
        """
        Send one data message: C{str} as text, bytes as binary.  Returns
        C{False} (and sends nothing) once the connection is closing, as writes
        after C{loseConnection} are dropped in Twisted.  C{compress} is passed
        on to the extensions: C{False} for data that is already compressed,
        C{True} to compress even a small message, C{None} to let the extension
        decide.
        """
        if self.state is not OPEN:
            return False
        if self._sendingStream:
            raise RuntimeError("a streamed message is being sent; finish it first")
        if isinstance(data, str):
            payload = data.encode("utf-8")
            opcode = OP_TEXT if isText is None or isText else OP_BINARY
        else:
            payload = bytes(data) if not isinstance(data, bytes) else data
            opcode = OP_TEXT if isText else OP_BINARY
        rsv = 0
        if self._extensions:  # (a loop over none would still build an iterator per message)
            for ext in self._extensions:
                if compress is None:
                    payload, extRsv = ext.encodeMessage(payload, opcode == OP_TEXT)
                else:
                    payload, extRsv = ext.encodeMessage(payload, opcode == OP_TEXT, compress=compress)
                rsv |= extRsv
        self.messagesSent += 1
        size = self.fragmentSize
        if self._queue or self.paused or (size is not None and len(payload) > size):
            self._enqueue([opcode, rsv, payload, 0, True])
        elif self.isClient:
            self._writeFrame(opcode, payload, True, rsv)
        else:  # _writeFrame's server case, inlined: one Python call less per message
            self._emit(buildFrameHeader(opcode, len(payload), True, rsv) + payload)
        return True

    def sendFramedMessage(self, frame: bytes) -> bool:
        """
        Send a data message the caller has already serialised as one final,
        unmasked frame with no RSV bits, so that a broadcast frames a
        message once for all its recipients.  It keeps its place among the
        other messages and waits, as they do, while writing is paused.

        Only for a server connection without extensions (no payload
        transform is applied here); returns C{False} once closing.
        """
        if self.isClient or self._extensions:
            raise ValueError("framed messages are for server connections without extensions")
        if self.state is not OPEN:
            return False
        if self._sendingStream:
            raise RuntimeError("a streamed message is being sent; finish it first")
        self.messagesSent += 1
        if not self._queue and not self.paused:
            self._emit(frame)
        else:
            self._enqueue([_FRAMED, 0, frame, 0, True])
        return True

    def sendFragment(self, data: bytes, isText: bool, fin: bool) -> bool:
        """
        Send the next fragment of a streamed message.

        The first call starts a message of the given type; the one with
        C{fin=True} ends it.  No other data message may be sent meanwhile.
        """
        if self.state is not OPEN:
            return False
        opcode = OP_CONTINUATION if self._sendingStream else (OP_TEXT if isText else OP_BINARY)
        self._sendingStream = not fin
        if fin:
            self.messagesSent += 1
        self._enqueue([opcode, 0, data, 0, fin])
        return True

    def _enqueue(self, entry: list[Any]) -> None:
        if self._queue is None:
            self._queue = deque()
        self._queue.append(entry)
        self._queuedBytes += len(entry[2])
        if not self.paused:
            self._flush()

    def _flush(self) -> None:
        """Write queued frames until the queue is empty or the transport is full."""
        size = self.fragmentSize
        while not self.paused:
            queue = self._queue  # fail() or a peer's Close may drop it meanwhile
            if not queue:
                self._queue = None
                return
            entry = queue[0]
            opcode, rsv, payload, offset, fin = entry
            if opcode == OP_CLOSE:
                queue.popleft()
                self._sendClose(*payload)
                continue
            if opcode == _FRAMED:
                queue.popleft()
                self._queuedBytes -= len(payload)
                self._emit(payload)
                continue
            total = len(payload)
            stop = total if size is None else min(total, offset + size * max(1, self.writeSize // size))
            if stop == total:
                queue.popleft()
            else:
                entry[0], entry[1], entry[3] = OP_CONTINUATION, 0, stop
            self._queuedBytes -= stop - offset
            key = self._maskKey if self.isClient else None
            self._emit(serializeFragments(opcode, payload, offset, stop, size, fin, rsv, key))

    def _writeFrame(self, opcode: int, payload: bytes | memoryview, fin: bool = True, rsv: int = 0) -> None:
        if self.isClient:
            key = self._maskKey(4)
            self._emit(buildFrameHeader(opcode, len(payload), fin, rsv, key) + mask(payload, key))
        else:
            self._emit(buildFrameHeader(opcode, len(payload), fin, rsv) + payload)

    def ping(self, payload: bytes = b"") -> bool:
        """Send a Ping (at most 125 bytes); C{False} once closing."""
        if len(payload) > 125:
            raise ValueError("ping payloads are limited to 125 bytes")
        if self.state is not OPEN:
            return False
        self._writeFrame(OP_PING, payload)
        return True

    def pong(self, payload: bytes = b"") -> bool:
        """Send an unsolicited Pong (a one-way heartbeat)."""
        if len(payload) > 125:
            raise ValueError("pong payloads are limited to 125 bytes")
        if self.state is not OPEN:
            return False
        self._writeFrame(OP_PONG, payload)
        return True

    def close(self, code: int | None = CloseCode.NORMAL_CLOSURE, reason: str = "") -> bool:
        """
        Start the close handshake.

        Data already queued goes out first, then the Close.  Returns
        C{False} when a close was already under way.
        """
        if self.state is not OPEN:
            return False
        buildClosePayload(code, reason)  # validate before changing state
        self.state = CLOSING
        if self._queue:
            self._queue.append([OP_CLOSE, 0, (code, reason), 0, True])
        else:
            self._sendClose(code, reason)
        if self._batch is None:
            self._progress()
        return True

    def fail(self, code: int, reason: str) -> None:
        """
        Fail the connection (RFC 6455 §7.1.7): send a Close with C{code} now,
        dropping queued data, and ignore everything but the peer's Close.
        """
        if self.state is CLOSED:
            return
        if self.failure is None:
            self.failure = ProtocolError(code, reason)
        self._assembler.reset()
        self._queue = None
        self._queuedBytes = 0
        self.state = CLOSING
        if self.closeSent is None:
            self._sendClose(code, reason)
        if self._batch is None:
            self._progress()

    def abort(self) -> None:
        """
        The transport is being dropped without waiting for the close
        handshake: however it ends, the close will not count as clean.
        """
        self._aborted = True

    def connectionLost(self) -> CloseInfo:
        """The transport is gone: the connection is CLOSED.  Say how it ended."""
        if self.state is OPEN:
            # No Close either way: the peer dropped TCP, unless we aborted.
            self._startedByPeer = not self._aborted
        self.state = CLOSED
        self._told = 2
        received, sent = self.peerClose, self.closeSent
        code, reason = received if received is not None else (CloseCode.ABNORMAL_CLOSURE, "")
        clean = self.closeHandshakeDone and not self._aborted
        return CloseInfo(
            code, reason, clean, self._startedByPeer,
            sentCode=sent[0] if sent else None, sentReason=sent[1] if sent else "",
            receivedCode=received[0] if received else None,
            receivedReason=received[1] if received else "",
        )  # fmt: skip

    def _progress(self) -> None:
        """
        Tell the Twisted layer, once each, that the close has started and
        that the close handshake is over.  Called when no read is being
        processed, so the layer acts after the output is written and the
        handler has seen everything.
        """
        if self._told == 0:
            self._told = 1
            if self.closeStarted is not None:
                self.closeStarted()
        if self._told == 1 and self.closeSent is not None and self.peerClose is not None:
            self._told = 2
            if self.closeTransport is not None:
                # RFC 6455 §7.1.1: the server closes the TCP connection first.
                self.closeTransport(not self.isClient)

    def _sendClose(self, code: int | None, reason: str) -> None:
        if self._pendingPong is not None:
            # Answer the ping before the Close: nothing may follow a Close.
            self._writeFrame(OP_PONG, self._pendingPong)
            self._pendingPong = None
        self.closeSent = (code, reason)
        self._parser.lenient = True
        self._writeFrame(OP_CLOSE, buildClosePayload(code, reason))

    # -- flow control -----------------------------------------------------

    def pauseWriting(self) -> None:
        """The transport is full: keep further data frames queued."""
        self.paused = True

    def resumeWriting(self) -> bool:
        """
        The transport drained: write what is queued.  Returns C{False} when
        that filled the transport again (it called L{pauseWriting}).
        """
        self.paused = False
        pong = self._pendingPong
        if pong is not None:
            self._pendingPong = None
            self._writeFrame(OP_PONG, pong)
        if self._queue:
            self._flush()
            if self.state is CLOSING and self._batch is None:
                self._progress()  # a queued Close may have gone out
        return not self.paused

    @property
    def closeHandshakeDone(self) -> bool:
        """Both Close frames have been exchanged."""
        return self.closeSent is not None and self.peerClose is not None
