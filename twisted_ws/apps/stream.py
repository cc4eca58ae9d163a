"""
Run an ordinary Twisted stream protocol over a WebSocket connection.

A business protocol written for TCP (a C{LineReceiver}, an C{AMP}, any
C{IProtocol}) can serve browsers unchanged: L{StreamOverWebSocketProtocol}
builds it from its factory once the WebSocket is open and gives it a
transport whose C{write} sends messages and whose C{loseConnection} runs
the close handshake, while each received message is passed to its
C{dataReceived}.

Mapping of bytes to messages:

  - By default each C{write} (or C{writeSequence}) is one message, and
    each received message is handed over as it is.
  - With C{delimiter} (e.g. C{b"\\r\\n"} for a C{LineReceiver}) messages
    are lines: each received message gets the delimiter appended (browser
    clients send C{"GET key"}, not C{"GET key\\r\\n"}), and outgoing bytes
    are cut at the delimiter, one message per line without it, however the
    protocol split its writes.

In text mode (the default) messages are text frames.  Bytes that are not
UTF-8 cannot be sent as text: the connection is then closed with 1011
(internal error) and the problem logged, since it is a bug on our side,
not the peer's.  A character split across two writes is fine (the tail is
held back until the rest arrives).  In binary mode (C{binary=True}) every
write is a binary message.  Both modes accept text and binary messages
from the peer (text is handed over UTF-8 encoded).
"""

from __future__ import annotations

import codecs
from collections import deque
from collections.abc import Iterable
from functools import partial
from typing import Any

from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import (
    IAddress,
    IConsumer,
    IProtocol,
    IProtocolFactory,
    IPushProducer,
    ITransport,
)
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ..core.closecodes import CloseCode
from ..protocol import WebSocketProtocol
from ..server.factory import WebSocketServerFactory

__all__ = [
    "StreamOverWebSocketFactory",
    "StreamOverWebSocketProtocol",
    "WebSocketStreamTransport",
]

_log = Logger()

#: Close codes after which the stream protocol sees a normal end
#: (C{ConnectionDone}) rather than a lost connection.
_NORMAL_CODES = frozenset(
    {CloseCode.NORMAL_CLOSURE, CloseCode.GOING_AWAY, CloseCode.NO_STATUS_RECEIVED}
)


@implementer(ITransport, IConsumer, IPushProducer)
class WebSocketStreamTransport:
    """
    The transport a wrapped stream protocol sees: writes become messages,
    C{loseConnection} closes the WebSocket with 1000.

    As a push producer it lets the protocol stop and restart the flow of
    received messages (C{pauseProducing}/C{resumeProducing}), as it would
    on TCP; producers it registers are paused while the WebSocket's
    transport is full.

    @ivar webSocket: the L{StreamOverWebSocketProtocol} underneath (its
        C{request}, C{subprotocol} etc. describe the WebSocket).
    """

    disconnecting = False

    def __init__(self, webSocket: StreamOverWebSocketProtocol) -> None:
        self.webSocket = webSocket

    def write(self, data: bytes) -> None:
        """Send C{data}: one message, or one per completed line."""
        if isinstance(data, str) or not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data must be bytes, not {type(data).__name__}")
        if not self.disconnecting:
            self.webSocket._streamWrite(bytes(data))

    def writeSequence(self, data: Iterable[bytes]) -> None:
        """Send the pieces together, as one C{write}."""
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        """Flush what was written, then run the close handshake (1000)."""
        if self.disconnecting:
            return
        self.disconnecting = True
        self.webSocket._streamClose()

    def abortConnection(self) -> None:
        """Drop the connection now, without a close handshake."""
        self.disconnecting = True
        self.webSocket.abortConnection()

    def getPeer(self) -> IAddress:
        return self.webSocket.transport.getPeer()

    def getHost(self) -> IAddress:
        return self.webSocket.transport.getHost()

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self.webSocket.registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:
        self.webSocket.unregisterProducer()

    def pauseProducing(self) -> None:
        """Stop delivering received data until L{resumeProducing}."""
        self.webSocket._pauseDelivery()

    def resumeProducing(self) -> None:
        self.webSocket._resumeDelivery()

    def stopProducing(self) -> None:
        self.loseConnection()


class StreamOverWebSocketProtocol(WebSocketProtocol):
    """
    A WebSocket connection that runs a stream protocol built by
    C{wrappedFactory.buildProtocol(peerAddress)}.

    Works on either side: pass C{isClient=True} (or use it from a client
    factory that sets C{isClient}) to run a client protocol over a
    WebSocket client connection.

    @ivar wrappedProtocol: the stream protocol, once the WebSocket is open.
    """

    wrappedFactory: IProtocolFactory | None = None
    binary: bool = False
    delimiter: bytes | None = None
    wrappedProtocol: IProtocol | None = None
    streamTransport: WebSocketStreamTransport | None = None

    _deliveryPaused = False
    _inbox: deque[bytes] | None = None
    _pendingLine = b""
    _decoder: Any = None
    _broken = False

    def __init__(
        self,
        wrappedFactory: IProtocolFactory | None = None,
        *,
        binary: bool | None = None,
        delimiter: bytes | None = None,
        isClient: bool | None = None,
    ) -> None:
        if wrappedFactory is not None:
            self.wrappedFactory = wrappedFactory
        if binary is not None:
            self.binary = binary
        if delimiter is not None:
            if not isinstance(delimiter, bytes) or not delimiter:
                raise ValueError("delimiter must be non-empty bytes")
            self.delimiter = delimiter
        if isClient is not None:
            self.isClient = isClient

    # -- WebSocket callbacks -------------------------------------------------

    def connectionMade(self) -> None:
        factory = self.wrappedFactory
        if factory is None:
            factory = getattr(self.factory, "wrappedFactory", None)
        if factory is None:
            raise RuntimeError("StreamOverWebSocketProtocol needs a wrappedFactory")
        self._inbox = deque()
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self.streamTransport = WebSocketStreamTransport(self)
        try:
            protocol = factory.buildProtocol(self.transport.getPeer())
        except Exception:
            _log.failure("building the stream protocol failed")
            protocol = None
        if protocol is None:
            self.close(CloseCode.TRY_AGAIN_LATER, "connection refused")
            return
        self.wrappedProtocol = protocol
        protocol.makeConnection(self.streamTransport)

    def messageReceived(self, message: str | bytes) -> None:
        protocol = self.wrappedProtocol
        if protocol is None or self._inbox is None:
            return
        data = message.encode("utf-8") if isinstance(message, str) else bytes(message)
        if self.delimiter is not None:
            data += self.delimiter
        if self._deliveryPaused or self._inbox:
            self._inbox.append(data)
            self.pauseReading()
            return
        protocol.dataReceived(data)

    def connectionClosed(self, code: int, reason: str, wasClean: bool) -> None:
        protocol, self.wrappedProtocol = self.wrappedProtocol, None
        if self._inbox is not None:
            self._inbox.clear()
        if self.streamTransport is not None:
            self.streamTransport.disconnecting = True
        if protocol is None:
            return
        why = f"WebSocket closed: {code} {reason}".rstrip()
        if wasClean and code in _NORMAL_CODES:
            failure = Failure(ConnectionDone(why))
        else:
            failure = Failure(ConnectionLost(why))
        protocol.connectionLost(failure)

    # -- outgoing ----------------------------------------------------------

    def _streamWrite(self, data: bytes) -> None:
        if self._broken:
            return
        delimiter = self.delimiter
        if delimiter is None:
            if data:
                self._sendChunk(data, final=False)
            return
        lines = (self._pendingLine + data).split(delimiter)
        self._pendingLine = lines.pop()
        for line in lines:
            if not self._sendChunk(line, final=True):
                return

    def _sendChunk(self, data: bytes, final: bool) -> bool:
        """Send one message; C{False} if the connection had to be failed."""
        if self.binary:
            self.sendMessage(data, isText=False)
            return True
        try:
            if final:
                text = data.decode("utf-8")
            else:
                text = self._decoder.decode(data)
        except UnicodeDecodeError:
            self._failText()
            return False
        if text or final:
            self.sendMessage(text)
        return True

    def _failText(self) -> None:
        self._broken = True
        _log.error(
            "a stream protocol in text mode wrote bytes that are not UTF-8; "
            "closing the WebSocket with 1011 (use binary=True for binary data)"
        )
        self.close(CloseCode.INTERNAL_ERROR, "invalid UTF-8 from the application")

    def _streamClose(self) -> None:
        if not self._broken:
            if self.delimiter is not None and self._pendingLine:
                line, self._pendingLine = self._pendingLine, b""
                self._sendChunk(line, final=True)
            elif not self.binary and self._decoder is not None:
                try:
                    self._decoder.decode(b"", True)
                except UnicodeDecodeError:
                    self._failText()
        if not self._broken:
            self.close(CloseCode.NORMAL_CLOSURE)

    # -- incoming flow control -------------------------------------------------

    def _pauseDelivery(self) -> None:
        if self._deliveryPaused:
            return
        self._deliveryPaused = True
        self.pauseReading()

    def _resumeDelivery(self) -> None:
        if not self._deliveryPaused:
            return
        self._deliveryPaused = False
        inbox = self._inbox
        while inbox and not self._deliveryPaused and self.wrappedProtocol is not None:
            self.wrappedProtocol.dataReceived(inbox.popleft())
        if self._deliveryPaused or not self.connected:
            return
        self.resumeReading()


class StreamOverWebSocketFactory(WebSocketServerFactory):
    """
    A WebSocket server factory whose connections each run a protocol from
    C{wrappedFactory}, so one business protocol serves TCP and browser
    clients alike.

    @param wrappedFactory: the stream protocol's factory (the one you would
        pass to C{listenTCP}).
    @param binary: send binary messages instead of text.
    @param delimiter: treat messages as lines ending with this delimiter
        (see the module docstring).
    @param serverFactoryOptions: anything L{WebSocketServerFactory} takes
        (C{subprotocols}, C{allowedOrigins}, limits...).
    """

    def __init__(
        self,
        wrappedFactory: IProtocolFactory,
        *,
        binary: bool = False,
        delimiter: bytes | None = None,
        **serverFactoryOptions: Any,
    ) -> None:
        protocol = partial(
            StreamOverWebSocketProtocol, wrappedFactory, binary=binary, delimiter=delimiter
        )
        super().__init__(protocol, **serverFactoryOptions)
        self.wrappedFactory = wrappedFactory
        self.binary = binary
        self.delimiter = delimiter

    def startFactory(self) -> None:
        self.wrappedFactory.doStart()

    def stopFactory(self) -> None:
        self.wrappedFactory.doStop()
