"""
One HTTP/2 stream as the transport of a WebSocket (RFC 8441).

Once an extended CONNECT is answered with C{:status 200}, the stream
carries the WebSocket's frames both ways in DATA frames.  L{H2StreamTransport}
makes that stream look like a TCP transport to L{WebSocketProtocol}, so the
protocol, its timers (open, close, keepalive, send deadline) and its flow
control work per stream unchanged:

  - C{write}/C{writeSequence} become DATA frames within the stream's and
    the connection's send windows.  What does not fit waits here, and the
    protocol (our producer) is paused until it has gone: at most one write
    waits here, the rest stays in the protocol, whose send deadline runs.
  - C{pauseProducing} (the protocol's read gate: the application's
    C{pauseReading}, or its own output blocked) holds received DATA back
    and does not acknowledge it, so no WINDOW_UPDATE goes out and the peer
    can send at most one stream window more.
  - C{loseConnection} sends END_STREAM once what waits here is sent (the
    protocol calls it after the Close exchange); the WebSocket is then over
    for us.  C{abortConnection} sends RST_STREAM(CANCEL).
  - The peer's END_STREAM, its RST_STREAM or the loss of the whole
    connection end the WebSocket with C{connectionLost}; no other stream
    is affected.

The stream does not know h2: it talks to the object that owns the HTTP/2
connection through the small L{IStreamOwner} interface, so the server
(C{twisted_ws.http2.server}) and the client can both drive it.  The owner
calls the stream's event methods (L{H2StreamTransport.dataReceived},
C{endReceived}, C{resetReceived}, C{windowUpdated}, C{transportPaused},
C{transportResumed}, C{connectionLost}) and the stream calls the owner's
C{outboundWindow}, C{sendData}, C{acknowledgeData}, C{resetStream},
C{streamClosed}, C{getPeer} and C{getHost}.  Typical use by an owner::

    stream = H2StreamTransport(owner, streamID)
    # ... send the 200 HEADERS, then:
    stream.attach(protocol)   # protocol.makeConnection(stream)
"""

from __future__ import annotations

from collections import deque
from typing import Any

from twisted.internet.error import ConnectionAborted, ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IConsumer, IPushProducer, ITransport
from twisted.python.failure import Failure
from zope.interface import Attribute, Interface, implementer

__all__ = ["IStreamOwner", "H2StreamTransport", "CANCEL", "NO_ERROR"]

#: HTTP/2 error codes (RFC 9113 section 7) used by streams.
NO_ERROR = 0x0
CANCEL = 0x8


class IStreamOwner(Interface):
    """
    The HTTP/2 connection that owns a L{H2StreamTransport}: what the stream
    needs from it.  Every method takes the stream's id.
    """

    transport = Attribute(
        "The connection's own transport (TCP or TLS): the stream reads "
        "getTcpNoDelay/setTcpNoDelay and the TLS attributes through it."
    )

    def outboundWindow(streamID: int) -> int:
        """
        How many bytes of DATA may be sent on the stream now: the smaller
        of the stream's and the connection's send windows (h2's
        C{local_flow_control_window}); 0 or less when blocked.
        """

    def sendData(streamID: int, data: bytes, endStream: bool) -> None:
        """
        Send C{data} (at most L{outboundWindow} bytes; possibly empty) as
        DATA frames no larger than the peer's maximum frame size, the last
        one with END_STREAM when C{endStream}, and write them out.
        """

    def acknowledgeData(streamID: int, size: int) -> None:
        """
        C{size} flow-controlled bytes of the stream were consumed: give the
        credit back (WINDOW_UPDATE, batched as the h2 library sees fit).
        """

    def resetStream(streamID: int, errorCode: int) -> None:
        """Send RST_STREAM with C{errorCode} (never raise if already closed)."""

    def streamClosed(streamID: int) -> None:
        """
        The stream is over for us (END_STREAM sent, reset, or lost): forget
        it.  Frames the peer still sends for it must be ignored gracefully
        (acknowledging their DATA at the connection level).
        """

    def getPeer() -> Any:
        """The peer address of the connection."""

    def getHost() -> Any:
        """The local address of the connection."""


@implementer(ITransport, IConsumer, IPushProducer)
class H2StreamTransport:
    """
    A WebSocket's transport that is one stream of an HTTP/2 connection.

    @ivar streamID: the stream's id.
    @ivar owner: the L{IStreamOwner}.
    @ivar protocol: the attached protocol, or C{None} before L{attach}.
    @ivar disconnecting: L{loseConnection} was called.
    @ivar ended: the stream is over for us (no more events go to the
        protocol).
    """

    def __init__(self, owner: Any, streamID: int) -> None:
        self.owner = owner
        self.streamID = streamID
        self.protocol: Any = None
        self.disconnecting = False
        self.ended = False
        self.remoteEnded = False
        self._out: deque[bytes] = deque()  # bytes waiting for window
        self._outSize = 0
        self._in: deque[tuple[bytes, int]] = deque()  # DATA held while paused
        self._readPaused = False
        self._transportBlocked = False
        self._producer: Any = None
        self._producerStreaming = True
        self._producerPaused = False

    def __repr__(self) -> str:
        return f"<H2StreamTransport stream {self.streamID} of {self.owner!r}>"

    # -- set-up ----------------------------------------------------------

    def attach(self, protocol: Any) -> None:
        """
        Start C{protocol} on this stream (C{makeConnection}); DATA that
        arrived before is delivered now, unless the protocol paused us.
        """
        self.protocol = protocol
        protocol.makeConnection(self)
        self._deliver()
        if self.remoteEnded and not self.ended and not self._in:
            self._peerEnded()

    @property
    def bufferedAmount(self) -> int:
        """Bytes written but not yet sent for lack of window."""
        return self._outSize

    # -- ITransport ------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.ended or self.disconnecting or not data:
            return
        data = bytes(data)
        if not self._out and not self._transportBlocked:
            window = self.owner.outboundWindow(self.streamID)
            if len(data) <= window:
                # The common case: it all fits, no copy and no queue.
                self.owner.sendData(self.streamID, data, False)
                return
        self._out.append(data)
        self._outSize += len(data)
        self._flush()
        if self._out:
            self._pauseProducer()

    def writeSequence(self, data: Any) -> None:
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        """END_STREAM once what waits here is sent (the clean close)."""
        if self.ended or self.disconnecting:
            return
        self.disconnecting = True
        self._flush()

    def abortConnection(self) -> None:
        """RST_STREAM(CANCEL): drop the stream now."""
        if self.ended:
            return
        self._out.clear()
        self._outSize = 0
        self.owner.resetStream(self.streamID, CANCEL)
        self._end(Failure(ConnectionAborted("HTTP/2 stream reset (CANCEL)")))

    def getPeer(self) -> Any:
        return self.owner.getPeer()

    def getHost(self) -> Any:
        return self.owner.getHost()

    def _connectionTransport(self) -> Any:
        return getattr(self.owner, "transport", None)

    def getTcpNoDelay(self) -> bool:
        getter = getattr(self._connectionTransport(), "getTcpNoDelay", None)
        return bool(getter()) if getter is not None else False

    def setTcpNoDelay(self, enabled: bool) -> None:
        """Nagle is the connection's: every stream wants it off anyway."""
        setter = getattr(self._connectionTransport(), "setTcpNoDelay", None)
        if setter is not None:
            setter(enabled)

    def getTcpKeepAlive(self) -> bool:
        getter = getattr(self._connectionTransport(), "getTcpKeepAlive", None)
        return bool(getter()) if getter is not None else False

    def setTcpKeepAlive(self, enabled: bool) -> None:
        setter = getattr(self._connectionTransport(), "setTcpKeepAlive", None)
        if setter is not None:
            setter(enabled)

    @property
    def negotiatedProtocol(self) -> bytes:
        return b"h2"

    # -- IConsumer: the protocol as our producer ---------------------------

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        if self._producer is not None:
            raise RuntimeError(f"a producer is already registered on {self!r}")
        self._producer = producer
        self._producerStreaming = streaming
        self._producerPaused = False
        if self._out or self._transportBlocked:
            self._pauseProducer()
        elif not streaming:
            producer.resumeProducing()

    def unregisterProducer(self) -> None:
        self._producer = None
        self._producerPaused = False

    def _pauseProducer(self) -> None:
        producer = self._producer
        if producer is not None and self._producerStreaming and not self._producerPaused:
            self._producerPaused = True
            producer.pauseProducing()

    def _resumeProducer(self) -> None:
        producer = self._producer
        if producer is None or self.ended:
            return
        if self._producerStreaming:
            if self._producerPaused:
                self._producerPaused = False
                producer.resumeProducing()
        else:
            producer.resumeProducing()

    # -- IPushProducer: reading -------------------------------------------

    def pauseProducing(self) -> None:
        """Hold received DATA, and its flow-control credit, until resumed."""
        self._readPaused = True

    def resumeProducing(self) -> None:
        if not self._readPaused:
            return
        self._readPaused = False
        self._deliver()
        if self.remoteEnded and not self.ended and not self._in:
            self._peerEnded()

    def stopProducing(self) -> None:
        self.abortConnection()

    # -- events from the owner --------------------------------------------

    def dataReceived(self, data: bytes, flowControlledLength: int) -> None:
        """DATA for this stream (C{flowControlledLength} includes padding)."""
        if self.ended:
            self.owner.acknowledgeData(self.streamID, flowControlledLength)
            return
        if self._readPaused or self.protocol is None or self._in:
            self._in.append((data, flowControlledLength))
            return
        self.owner.acknowledgeData(self.streamID, flowControlledLength)
        if data:
            self.protocol.dataReceived(data)

    def endReceived(self) -> None:
        """The peer sent END_STREAM: like a TCP FIN, the WebSocket is over."""
        self.remoteEnded = True
        if self.ended or self.protocol is None or self._in:
            return  # delivered once the held DATA is
        self._peerEnded()

    def resetReceived(self, errorCode: int) -> None:
        """The peer reset the stream."""
        self._out.clear()
        self._outSize = 0
        self._end(Failure(ConnectionLost(f"HTTP/2 stream reset by the peer (error code {errorCode})")))

    def windowUpdated(self) -> None:
        """The send window may have grown: send what waits."""
        if self._out or self.disconnecting:
            self._flush()

    def transportPaused(self) -> None:
        """The connection's transport is full: send nothing more for now."""
        self._transportBlocked = True
        self._pauseProducer()

    def transportResumed(self) -> None:
        self._transportBlocked = False
        self._flush()

    def connectionLost(self, reason: Failure) -> None:
        """The whole HTTP/2 connection is gone."""
        self._out.clear()
        self._outSize = 0
        self._end(reason)

    # -- internals ------------------------------------------------------------

    def _deliver(self) -> None:
        """Hand held DATA to the protocol while it is not paused."""
        while self._in and not self._readPaused and not self.ended and self.protocol is not None:
            data, length = self._in.popleft()
            self.owner.acknowledgeData(self.streamID, length)
            if data:
                self.protocol.dataReceived(data)

    def _peerEnded(self) -> None:
        # What fits still goes out; what cannot is dropped, as TCP drops
        # its buffer when the peer has closed.
        self._flush()
        if self.ended:
            return
        if self._out:
            self.abortConnection()
            return
        self.owner.sendData(self.streamID, b"", True)
        self._end(Failure(ConnectionDone("the peer ended the HTTP/2 stream")))

    def _flush(self) -> None:
        """Send what waits, as far as the windows allow; then END_STREAM."""
        if self.ended:
            return
        owner, streamID, out = self.owner, self.streamID, self._out
        while out and not self._transportBlocked:
            window = owner.outboundWindow(streamID)
            if window <= 0:
                break
            data = out.popleft()
            if len(data) > window:
                out.appendleft(data[window:])
                data = data[:window]
            self._outSize -= len(data)
            owner.sendData(streamID, data, False)
            if self.ended:
                return
        if out:
            return
        if self.disconnecting:
            owner.sendData(streamID, b"", True)
            self._end(Failure(ConnectionDone("HTTP/2 stream ended")))
            return
        self._resumeProducer()

    def _end(self, reason: Failure) -> None:
        if self.ended:
            return
        self.ended = True
        self._producer = None
        held, self._in = self._in, deque()
        acknowledge = self.owner.acknowledgeData
        for _, length in held:
            acknowledge(self.streamID, length)
        self.owner.streamClosed(self.streamID)
        protocol, self.protocol = self.protocol, None
        if protocol is not None:
            protocol.connectionLost(reason)
