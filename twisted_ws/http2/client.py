"""
The client side of WebSockets over HTTP/2 (RFC 8441): one TLS connection
(ALPN C{h2}), one extended CONNECT on its first stream, and the
application's L{WebSocketProtocol} running on that stream.

L{H2ClientProtocol} takes the place of the HTTP/1.1
L{ClientHandshakeProtocol} under a L{WebSocketClientFactory}
(C{connectWS(..., http2=True)} puts it there), with the same outcome: its
L{whenOpen} fires with the open protocol or fails with the same errors
(L{WebSocketHandshakeRejected}, L{InvalidServerResponse},
L{HandshakeClosed}, L{WebSocketOpenTimeout}, C{CancelledError}, the TLS
layer's own), plus L{HTTP2NotSupported} when the server cannot do it.

The request and the reading of the answer are the I/O-free
L{H2ClientHandshake}'s; the stream is the shared L{H2StreamTransport}, for
which this connection is the L{IStreamOwner}.  The connection carries
this one WebSocket: when its stream is over, the connection closes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    RemoteSettingsChanged,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    WindowUpdated,
)
from h2.exceptions import H2Error
from h2.settings import SettingCodes, Settings
from twisted.internet import error
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IHandshakeListener, IPushProducer
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ..client.errors import HTTP2NotSupported
from ..client.handshake import ClientAttempt, buildClientProtocol, rejectionError
from ..client.waiters import Waiters
from ..core.errors import HandshakeClosed, InvalidServerResponse
from ..core.handshake import (
    MAX_REFUSAL_BODY,
    Accepted,
    ClientState,
    Failed,
    H2ClientHandshake,
    HandshakeRequest,
    Rejected,
)
from ..protocol import WebSocketProtocol
from ..transport import IStreamTransport, setNoDelay
from .stream import H2StreamTransport, IStreamOwner

if TYPE_CHECKING:
    from ..client.factory import WebSocketClientFactory

__all__ = ["H2ClientProtocol", "ALPN_H2", "STREAM_WINDOW"]

_log = Logger()

#: The only protocol the client offers in ALPN when C{http2=True}.
ALPN_H2 = b"h2"

#: Our receive window per stream (and the connection's): what a server may
#: send before the application has read it -- the bound on what a paused
#: reader buffers.
STREAM_WINDOW = 1 << 18


def buildHandshake(factory: WebSocketClientFactory) -> H2ClientHandshake:
    """The extended CONNECT of one connection made with C{factory}."""
    url = factory.url
    return H2ClientHandshake(
        url.hostHeader,
        url.resource,
        subprotocols=factory.subprotocols,
        extensions=factory.extensions,
        origin=factory.origin,
        headers=factory.headers,
        maxBodySize=MAX_REFUSAL_BODY,
    )


@implementer(IHandshakeListener, IPushProducer, IStreamOwner)
class H2ClientProtocol(ClientAttempt, Protocol):
    """
    An HTTP/2 client connection that opens one WebSocket (RFC 8441).

    It sends the connection preface at once, checks that TLS picked C{h2}
    once the TLS handshake is done, waits for the server's SETTINGS and
    requires C{SETTINGS_ENABLE_CONNECT_PROTOCOL = 1} before it sends the
    extended CONNECT (section 3: a client must not send one before).  A
    C{:status 200} makes the stream the application protocol's transport.

    @ivar request: the L{HandshakeRequest} sent (C{httpVersion} C{"2"}).
    @ivar streamID: the WebSocket's stream, once the CONNECT was sent.
    @ivar stream: its L{H2StreamTransport}, once open.
    """

    _handshake: H2ClientHandshake
    factory: WebSocketClientFactory
    transport: IStreamTransport

    def __init__(self, factory: WebSocketClientFactory, addr: Any = None) -> None:
        self.factory = factory
        self._addr = addr
        # Built now so bad headers fail here, not after TLS.
        self._handshake = buildHandshake(factory)
        self._outcome = Waiters(self._cancel)
        self._timer: IDelayedCall | None = None
        self._h2: H2Connection | None = None
        self._alpnChecked = False
        self._closing = False
        self.streamID: int | None = None
        self.stream: H2StreamTransport | None = None
        self._lostWaiters: list[Deferred[None]] | None = []

    @property
    def request(self) -> HandshakeRequest:
        return self._handshake.request

    def whenOpen(self) -> Deferred[WebSocketProtocol]:
        """A Deferred of the open application protocol (see the module doc)."""
        return self._outcome.wait()

    def whenConnectionLost(self) -> Deferred[None]:
        """
        A Deferred that fires once the HTTP/2 connection itself is gone,
        which is a little after the WebSocket closed (GOAWAY and TLS's
        close_notify still go out); reach it as C{protocol.transport.owner}.
        """
        if self._lostWaiters is None:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._lostWaiters.append(d)
        return d

    # -- life cycle --------------------------------------------------------

    def connectionMade(self) -> None:
        setNoDelay(self.transport)
        timeout = self.factory.options.openTimeout
        if timeout is not None:
            self._timer = self.factory.clock.callLater(timeout, self._timedOut)
        config = H2Configuration(client_side=True, header_encoding=None)
        h2 = self._h2 = H2Connection(config=config)
        # In the first SETTINGS (h2 sends only the values in force, not
        # pending ones): no server push, our stream window.
        h2.local_settings = Settings(
            client=True,
            initial_values={
                SettingCodes.ENABLE_PUSH: 0,
                SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
                SettingCodes.MAX_CONCURRENT_STREAMS: 100,
                SettingCodes.MAX_HEADER_LIST_SIZE: h2.DEFAULT_MAX_HEADER_LIST_SIZE,
            },
        )
        h2.initiate_connection()
        h2.increment_flow_control_window(STREAM_WINDOW - 65535)
        self.transport.registerProducer(self, True)
        self._flush()

    def handshakeCompleted(self) -> None:
        """TLS is up: the server must have picked h2 (fail closed)."""
        self._checkALPN()

    def _checkALPN(self) -> bool:
        if self._alpnChecked:
            return True
        self._alpnChecked = True
        negotiated = getattr(self.transport, "negotiatedProtocol", ALPN_H2)
        if negotiated == ALPN_H2:
            return True
        shown = "none" if negotiated is None else negotiated.decode("ascii", "replace")
        self._failHandshake(
            HTTP2NotSupported(f"the server does not speak HTTP/2: TLS ALPN chose {shown}, not h2"),
            abort=True,
        )
        return False

    def dataReceived(self, data: bytes) -> None:
        h2 = self._h2
        if h2 is None or self._closing or not self._checkALPN():
            return
        try:
            events = h2.receive_data(data)
        except H2Error as e:
            self._protocolError(f"HTTP/2 protocol error from the server: {e}")
            return
        for event in events:
            if self._closing:
                break
            self._event(event)
        self._flush()

    def connectionLost(self, reason: Failure | None = None) -> None:
        self._closing = True
        self._stopTimer()
        waiters, self._lostWaiters = self._lostWaiters or [], None
        for d in waiters:
            d.callback(None)
        if self.stream is not None:
            stream, self.stream = self.stream, None
            if not stream.ended:
                stream.connectionLost(reason if reason is not None else Failure(error.ConnectionDone()))
            return
        if self._outcome.done:
            return
        outcome = self._handshake.streamEnded()
        if isinstance(outcome, Failed) and not (
            reason is None or reason.check(error.ConnectionDone, error.ConnectionLost)
        ):
            # The transport's own error (TLS verification, a reset) says more.
            self._fail(reason)
        else:
            self._conclude(outcome)

    # -- h2 events -----------------------------------------------------------

    def _event(self, event: Any) -> None:
        streamID = getattr(event, "stream_id", None)
        mine = streamID is not None and streamID == self.streamID
        if isinstance(event, DataReceived):
            if mine and self.stream is not None:
                self.stream.dataReceived(event.data, event.flow_controlled_length)
                return
            if mine:
                self._handshake.receiveData(event.data)
            self._acknowledge(streamID, event.flow_controlled_length)
        elif isinstance(event, RemoteSettingsChanged):
            if self.streamID is None:
                self._sendConnect()
            elif self.stream is not None:
                self.stream.windowUpdated()  # the initial window may have grown
        elif isinstance(event, WindowUpdated):
            if self.stream is not None and streamID in (0, self.streamID):
                self.stream.windowUpdated()
        elif not mine:
            if isinstance(event, ConnectionTerminated):
                self._terminated(event)
        elif isinstance(event, ResponseReceived):
            self._conclude(self._handshake.receiveHeaders(event.headers))
        elif isinstance(event, StreamEnded):
            if self.stream is not None:
                self.stream.endReceived()
            else:
                self._conclude(self._handshake.streamEnded())
        elif isinstance(event, StreamReset):
            if self.stream is not None:
                self.stream.resetReceived(event.error_code)
            elif self._handshake.state is ClientState.READING_BODY:
                self._conclude(self._handshake.streamEnded())
            else:
                self._failHandshake(
                    HandshakeClosed(
                        "the server reset the stream before answering the extended CONNECT "
                        f"({_errorName(event.error_code)})"
                    )
                )

    def _sendConnect(self) -> None:
        """The server's first SETTINGS arrived: may we, and then do, CONNECT."""
        h2 = self._h2
        assert h2 is not None
        if h2.remote_settings.enable_connect_protocol != 1:
            self._failHandshake(
                HTTP2NotSupported(
                    "the server does not accept WebSockets over HTTP/2: its SETTINGS lack "
                    "SETTINGS_ENABLE_CONNECT_PROTOCOL=1 (RFC 8441)"
                )
            )
            return
        fields = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in self._handshake.headers]
        try:
            streamID = h2.get_next_available_stream_id()
            h2.send_headers(streamID, fields, end_stream=False)
        except H2Error as e:  # e.g. SETTINGS_MAX_CONCURRENT_STREAMS 0
            self._failHandshake(InvalidServerResponse(f"cannot open an HTTP/2 stream: {e}"))
            return
        self.streamID = streamID

    def _terminated(self, event: ConnectionTerminated) -> None:
        """GOAWAY: h2 allows nothing more on this connection."""
        why = f"the server closed the HTTP/2 connection (GOAWAY, {_errorName(event.error_code)})"
        if self.stream is not None:
            stream, self.stream = self.stream, None
            self._closeConnection()
            stream.connectionLost(Failure(error.ConnectionLost(why)))
        elif self._handshake.state is ClientState.READING_BODY:
            self._conclude(self._handshake.streamEnded())
        else:
            self._failHandshake(HandshakeClosed(why))

    def _protocolError(self, why: str) -> None:
        """The server broke HTTP/2: h2 queued a GOAWAY; send it and close."""
        if self.stream is not None:
            stream, self.stream = self.stream, None
            self._closeConnection()
            stream.connectionLost(Failure(error.ConnectionLost(why)))
        else:
            self._failHandshake(InvalidServerResponse(why))

    # -- the outcome -------------------------------------------------------

    def _conclude(self, outcome: Accepted | Rejected | Failed | None) -> None:
        if outcome is None or self._outcome.done:
            return
        if isinstance(outcome, Accepted):
            self._open(outcome)
        elif isinstance(outcome, Rejected):
            self._fail(Failure(rejectionError(outcome)))
            self._closeConnection()
        else:
            self._failHandshake(outcome.error)

    def _open(self, accepted: Accepted) -> None:
        factory = self.factory
        assert self.streamID is not None
        try:
            protocol = buildClientProtocol(factory, self._addr, accepted)
        except Exception:
            failure = Failure()
            _log.failure("building the WebSocket protocol failed", failure)
            self._fail(failure)
            self.resetStream(self.streamID, ErrorCodes.CANCEL)
            self._closeConnection()
            return
        self._stopTimer()
        receiver = factory.wrapWebSocketProtocol(protocol, self._addr)
        self.stream = H2StreamTransport(self, self.streamID)
        self.stream.attach(receiver)
        self._outcome.fire(receiver)
        factory.handshakeFinished(receiver)

    def _failHandshake(self, reason: Exception, abort: bool = False) -> None:
        """The attempt is over without a WebSocket: say why, then close."""
        self._fail(Failure(reason))
        if self.streamID is not None:
            self.resetStream(self.streamID, ErrorCodes.CANCEL)
        if abort:
            self._closing = True
            self.transport.abortConnection()
        else:
            self._closeConnection()

    def _concludeSlowRefusal(self) -> None:
        self._conclude(self._handshake.streamEnded())

    def _abort(self) -> None:
        self._closing = True
        self.transport.abortConnection()

    # -- writing -----------------------------------------------------------

    def _flush(self) -> None:
        h2 = self._h2
        if h2 is None or self.transport is None:
            return
        data = h2.data_to_send()
        if data:
            self.transport.write(data)

    def _acknowledge(self, streamID: int | None, size: int) -> None:
        if self._h2 is not None and size:
            self._h2.acknowledge_received_data(size, streamID or 0)

    def _closeConnection(self) -> None:
        """GOAWAY, then close once it is written."""
        if self._closing:
            return
        self._closing = True
        if self._h2 is not None:
            try:
                self._h2.close_connection()
            except H2Error:
                pass  # already closed on the h2 side (a GOAWAY received)
            self._flush()
        # TLS waits for a registered producer to leave before it closes.
        self.transport.unregisterProducer()
        self.transport.loseConnection()

    # -- IStreamOwner -------------------------------------------------------

    def outboundWindow(self, streamID: int) -> int:
        if self._h2 is None or self._closing:
            return 0
        try:
            return self._h2.local_flow_control_window(streamID)
        except (H2Error, KeyError):
            return 0

    def sendData(self, streamID: int, data: bytes, endStream: bool) -> None:
        h2 = self._h2
        if h2 is None or self._closing:
            return
        try:
            size = h2.max_outbound_frame_size
            for offset in range(0, len(data), size):
                last = offset + size >= len(data)
                h2.send_data(streamID, data[offset : offset + size], end_stream=endStream and last)
            if endStream and not data:
                h2.end_stream(streamID)
        except H2Error as e:
            _log.debug("HTTP/2 stream {id}: data not sent ({e})", id=streamID, e=e)
        self._flush()

    def acknowledgeData(self, streamID: int, size: int) -> None:
        if self._closing:
            return
        self._acknowledge(streamID, size)
        self._flush()

    def resetStream(self, streamID: int, errorCode: int) -> None:
        if self._h2 is None or self._closing:
            return
        try:
            self._h2.reset_stream(streamID, errorCode)
        except H2Error:
            pass  # already closed
        self._flush()

    def streamClosed(self, streamID: int) -> None:
        """The WebSocket's stream is over: so is this connection."""
        if streamID == self.streamID:
            self.stream = None
            self._closeConnection()

    def getPeer(self) -> Any:
        return self.transport.getPeer()

    def getHost(self) -> Any:
        return self.transport.getHost()

    # -- IPushProducer: the transport's write buffer -------------------------

    def pauseProducing(self) -> None:
        if self.stream is not None:
            self.stream.transportPaused()

    def resumeProducing(self) -> None:
        if self.stream is not None:
            self.stream.transportResumed()

    def stopProducing(self) -> None:
        pass  # connectionLost follows


def _errorName(code: Any) -> str:
    try:
        return ErrorCodes(code).name
    except ValueError:
        return f"error code {code}"
