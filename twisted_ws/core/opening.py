"""
The opening handshake as two I/O-free objects, one per role.

Bytes go in, and out comes an outcome: L{Accepted} (with the bytes to send,
the negotiated subprotocol and extensions, and the C{trailingData} that
arrived after the head, which belongs to the WebSocket), L{Rejected} (an
HTTP refusal, sent or received) or L{Failed} (the client could not get a
usable answer).  Every front end (the upgrade protocol, the twisted.web
resource, the client, a proxy tunnel, port sharing, later HTTP/2) drives
these instead of sequencing parser, validation and negotiation itself, so
they cannot disagree.

Neither object does I/O or keeps time: the glue writes the bytes, switches
the transport, runs the timers and asks the application; each object only
says what the bytes mean.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

from twisted_ws.core.acceptance import Accept
from twisted_ws.core.body import MAX_REFUSAL_BODY, BodyReader
from twisted_ws.core.errors import (
    ClientHandshakeError,
    HandshakeClosed,
    HandshakeError,
    InvalidServerResponse,
)
from twisted_ws.core.extensions import (
    ClientExtensionFactory,
    Extension,
    ServerExtensionFactory,
    acceptClientExtensions,
    formatExtensionHeader,
)
from twisted_ws.core.handshake import (
    HandshakeRequest,
    HandshakeResponse,
    buildAcceptResponse,
    buildRejectResponse,
    clientRequestHeaders,
    generateKey,
    validateRequest,
    validateResponse,
)
from twisted_ws.core.http import HeadParser, Headers, RequestHead, ResponseHead, formatRequest
from twisted_ws.core.negotiation import negotiate
from twisted_ws.core.options import WebSocketOptions

__all__ = [
    "Accepted",
    "Rejected",
    "Failed",
    "ServerState",
    "ServerHandshake",
    "ClientState",
    "ClientHandshake",
]

Pairs = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Accepted:
    """
    The WebSocket is open: send C{data}, switch the transport, then feed
    C{trailingData} to the WebSocket.

    @ivar request: the upgrade request (server: as received; client: as
        sent).
    @ivar subprotocol: the negotiated subprotocol, or C{None}.
    @ivar extensions: the live extensions, in the order they apply.
    @ivar data: the server's answer to write first (C{101 Switching
        Protocols}); empty for a client, and over HTTP/2, where the h2
        layer sends C{responseHeaders} itself.
    @ivar trailingData: bytes that followed the head: the first frames.
    @ivar responseHeaders: the answer's headers beyond the mechanism's own
        (server: the negotiated ones, without Upgrade, Connection and
        Sec-WebSocket-Accept; client: every header of the server's 101).
    @ivar response: the client's view of the server's 101, else C{None}.
    """

    request: HandshakeRequest
    subprotocol: str | None
    extensions: tuple[Extension, ...]
    data: bytes
    trailingData: bytes
    responseHeaders: Pairs = ()
    response: HandshakeResponse | None = None


@dataclass(frozen=True)
class Rejected:
    """
    The handshake ended in an HTTP refusal: one we send (server) or one
    we received (client).  Either way the connection closes after it.

    @ivar status: the HTTP status.
    @ivar reason: server: the free-text reason (the body's text unless one
        was given); client: the status line's reason phrase.
    @ivar headers: server: the refusal's own headers (e.g. C{Allow}, a
        C{WWW-Authenticate}); client: every header received.
    @ivar body: the body sent, or the start of the body received (decoded,
        at most C{maxBodySize} bytes).
    @ivar data: the server's whole answer to write (empty for a client and
        over HTTP/2).
    @ivar request: the request refused (C{None} when the server could not
        read a valid one).
    @ivar error: the server's L{HandshakeError} (a L{Reject} from the
        application keeps its type), for logging; C{None} for a client.
    """

    status: int
    reason: str
    headers: Pairs
    body: bytes
    data: bytes = b""
    request: HandshakeRequest | None = None
    error: HandshakeError | None = None


@dataclass(frozen=True)
class Failed:
    """The client got no usable answer (see L{ClientHandshakeError})."""

    error: ClientHandshakeError


class ServerState(Enum):
    """Where a L{ServerHandshake} is; each state says what may come next."""

    #: Reading the request head: L{ServerHandshake.receiveData} (or
    #: L{ServerHandshake.reject}, e.g. on a timeout).
    READING = "reading"
    #: A valid request awaits the application's decision: L{accept} or
    #: L{reject}; bytes still arriving are kept for the WebSocket.
    DECIDING = "deciding"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class ServerHandshake:
    """
    The server side of one opening handshake.

    Feed it the connection's bytes with L{receiveData}: once the head is
    complete it returns the validated L{HandshakeRequest} (or a L{Rejected}
    to send for a malformed one).  Ask the application, then call
    L{accept} or L{reject}.  Front ends that parse the head themselves
    (twisted.web, HTTP/2) start from L{fromRequest} instead.
    """

    def __init__(
        self,
        options: WebSocketOptions | None = None,
        subprotocols: Sequence[str] = (),
        extensions: Sequence[ServerExtensionFactory] = (),
    ) -> None:
        """
        @param subprotocols: the server's subprotocols, in preference order
            (what L{DEFAULT_SUBPROTOCOL} picks from).
        @param extensions: the server's extension factories, in order.
        """
        options = options or WebSocketOptions()
        self.subprotocols = subprotocols
        self.extensions = extensions
        self.state = ServerState.READING
        self.request: HandshakeRequest | None = None
        self._parser: HeadParser | None = HeadParser(
            True,
            maxLineLength=options.maxRequestLineLength,
            maxHeaderBytes=options.maxHeaderBytes,
            maxHeaderCount=options.maxHeaderCount,
        )
        self._trailing = b""

    @classmethod
    def fromRequest(
        cls,
        request: HandshakeRequest,
        subprotocols: Sequence[str] = (),
        extensions: Sequence[ServerExtensionFactory] = (),
        trailingData: bytes = b"",
    ) -> ServerHandshake:
        """
        A handshake whose request was read and validated elsewhere (with
        L{validateRequest} or L{validateExtendedConnect}), now awaiting the
        application's decision.
        """
        handshake = cls(None, subprotocols, extensions)
        handshake._parser = None
        handshake.request = request
        handshake.state = ServerState.DECIDING
        handshake._trailing = trailingData
        return handshake

    def receiveData(self, data: bytes) -> HandshakeRequest | Rejected | None:
        """
        Add bytes from the client.

        @return: the validated request once the head is complete (fill in
            its C{peer}, C{local} and C{secure}, then decide); a
            L{Rejected} to send when the head is malformed, too large or
            not a valid upgrade; else C{None}.
        @raise RuntimeError: after L{accept}: those bytes are the
            WebSocket's.  (After a refusal bytes are ignored.)
        """
        state = self.state
        if state is ServerState.DECIDING:
            # The glue pauses reading while the application decides, so
            # this stays within a read or two.
            self._trailing += data
            return None
        if state is ServerState.REJECTED:
            return None
        if state is ServerState.ACCEPTED:
            raise RuntimeError("the handshake is over: feed the WebSocket")
        parser = self._parser
        assert parser is not None
        try:
            head = parser.feed(data)
            if head is None:
                return None
            assert isinstance(head, RequestHead)
            request = validateRequest(head)
        except HandshakeError as e:
            return self.reject(e)
        self.request = request
        self._trailing = parser.rest
        self._parser = None
        self.state = ServerState.DECIDING
        return request

    def accept(
        self, decision: Accept | None = None, extraHeaders: Iterable[tuple[str, str]] = ()
    ) -> Accepted:
        """
        Accept the request: negotiate, and build the answer.

        @param decision: the application's L{Accept} (C{None}: defaults).
        @param extraHeaders: headers sent after the decision's own.
        @raise ValueError: the decision names a subprotocol the client did
            not offer, or a header the handshake sets itself, or an invalid
            one; the handshake still awaits a decision (refuse it).
        @raise RuntimeError: not awaiting a decision.
        """
        if self.state is not ServerState.DECIDING:
            raise RuntimeError(f"cannot accept a handshake that is {self.state.value}")
        request = self.request
        assert request is not None
        negotiated = negotiate(
            request, decision, self.subprotocols, self.extensions, extraHeaders
        )
        if request.httpVersion == "1.1":
            data = buildAcceptResponse(
                request,
                negotiated.subprotocol,
                negotiated.extensionsHeader,
                negotiated.extraHeaders,
            )
        else:
            data = b""
        self.state = ServerState.ACCEPTED
        trailing, self._trailing = self._trailing, b""
        # Every connection keeps its request: keep only the raw headers.
        request.headers.compact()
        return Accepted(
            request=request,
            subprotocol=negotiated.subprotocol,
            extensions=negotiated.extensions,
            data=data,
            trailingData=trailing,
            responseHeaders=tuple(negotiated.headers),
        )

    def reject(self, error: HandshakeError) -> Rejected:
        """
        Refuse with C{error}'s status, reason and headers (and C{body}, as
        a L{Reject} may carry): a timeout, the application's refusal, or a
        failure while accepting.

        @raise RuntimeError: the handshake is already over.
        """
        if self.state in (ServerState.ACCEPTED, ServerState.REJECTED):
            raise RuntimeError(f"cannot reject a handshake that is {self.state.value}")
        self.state = ServerState.REJECTED
        self._parser = None
        self._trailing = b""
        body = getattr(error, "body", None)
        if body is None:
            payload = (error.reason + "\n").encode("utf-8")
        elif isinstance(body, str):
            payload = body.encode("utf-8")
        else:
            payload = bytes(body)
        request = self.request
        overHTTP2 = request is not None and request.httpVersion != "1.1"
        return Rejected(
            status=error.status,
            reason=error.reason,
            headers=tuple(error.headers),
            body=payload,
            data=b"" if overHTTP2 else buildRejectResponse(
                error.status, error.reason, error.headers, payload
            ),
            request=request,
            error=error,
        )


class ClientState(Enum):
    """Where a L{ClientHandshake} is."""

    #: The request is ready to send; the answer's head is not complete.
    WAITING = "waiting"
    #: The server refused; reading the start of its explanation.
    READING_BODY = "reading body"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    FAILED = "failed"


class ClientHandshake:
    """
    The client side of one opening handshake.

    Send L{requestBytes}, then feed the server's bytes to L{receiveData}
    and tell L{connectionLost} when the stream ends (or when giving up on
    a slow refusal: what arrived is reported).

    @ivar key: the Sec-WebSocket-Key sent.
    @ivar requestBytes: the upgrade request to send, built once.
    @ivar request: the same request as a L{HandshakeRequest}, as the server
        sees it (built directly, not parsed back).
    """

    def __init__(
        self,
        host: str,
        resource: str = "/",
        *,
        subprotocols: Sequence[str] = (),
        extensions: Sequence[ClientExtensionFactory] = (),
        origin: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        key: str | None = None,
        options: WebSocketOptions | None = None,
        maxBodySize: int = MAX_REFUSAL_BODY,
    ) -> None:
        """
        @param host: the Host header's value (C{host[:port]}).
        @param resource: the request target, path and query, from C{/}.
        @param subprotocols: subprotocols to offer, in preference order.
        @param extensions: extension factories to offer, in order.
        @param headers: extra request headers.
        @param key: the Sec-WebSocket-Key (default: a fresh random one).
        @param maxBodySize: most bytes of a refusal's body kept.
        @raise ValueError: an invalid resource, subprotocol or header.
        """
        options = options or WebSocketOptions()
        self.key = key if key is not None else generateKey()
        self.subprotocols = list(subprotocols)
        self.extensionFactories = list(extensions)
        self.maxBodySize = maxBodySize
        offers = [(factory.name, list(factory.offer())) for factory in self.extensionFactories]
        pairs = clientRequestHeaders(
            host,
            resource,
            self.key,
            origin=origin,
            protocols=self.subprotocols,
            extensionsHeader=formatExtensionHeader(offers) if offers else None,
            extraHeaders=headers,
        )
        self.requestBytes = formatRequest("GET", resource, pairs)
        requestHeaders = Headers(pairs)
        path, _, query = resource.partition("?")
        self.request = HandshakeRequest(
            method="GET",
            target=resource,
            path=path,
            query=query,
            version=(1, 1),
            headers=requestHeaders,
            host=host,
            origin=requestHeaders.get("Origin"),
            key=self.key,
            protocols=list(self.subprotocols),
            extensions=offers,
        )
        self.state = ClientState.WAITING
        self._parser = HeadParser(
            False,
            maxLineLength=options.maxRequestLineLength,
            maxHeaderBytes=options.maxHeaderBytes,
            maxHeaderCount=options.maxHeaderCount,
        )
        self._refusal: ResponseHead | None = None
        self._body: BodyReader | None = None

    def receiveData(self, data: bytes) -> Accepted | Rejected | Failed | None:
        """
        Add bytes from the server.

        @return: C{None} until decided, then (once) the outcome.  After a
            refusal or a failure, bytes are ignored.
        @raise RuntimeError: after L{Accepted}: those bytes are the
            WebSocket's.
        """
        state = self.state
        if state is ClientState.READING_BODY:
            assert self._body is not None
            return self._refused() if self._body.feed(data) else None
        if state is ClientState.WAITING:
            return self._readHead(data)
        if state is ClientState.ACCEPTED:
            raise RuntimeError("the handshake is over: feed the WebSocket")
        return None

    def connectionLost(self) -> Rejected | Failed | None:
        """
        The stream ended (or the glue gave up waiting).

        @return: the refusal with the body that arrived, when one was being
            read; a L{Failed} with L{HandshakeClosed} when no answer came;
            C{None} when the outcome was already given.
        """
        if self.state is ClientState.READING_BODY:
            assert self._body is not None
            self._body.finish()
            return self._refused()
        if self.state is ClientState.WAITING:
            return self._fail(
                HandshakeClosed("connection closed before the server answered the handshake")
            )
        return None

    def _readHead(self, data: bytes) -> Accepted | Rejected | Failed | None:
        try:
            head = self._parser.feed(data)
        except HandshakeError as e:
            return self._fail(InvalidServerResponse(e.reason))
        if head is None:
            return None
        assert isinstance(head, ResponseHead)
        if head.status != 101:
            self._refusal = head
            self._body = BodyReader(head.status, head.headers, self.maxBodySize)
            self.state = ClientState.READING_BODY
            return self._refused() if self._body.feed(self._parser.rest) else None
        try:
            response = validateResponse(
                head,
                self.key,
                self.subprotocols,
                [factory.name for factory in self.extensionFactories],
            )
            extensions = acceptClientExtensions(response.extensions, self.extensionFactories)
        except (HandshakeError, ValueError) as e:
            reason = e.reason if isinstance(e, HandshakeError) else str(e)
            return self._fail(InvalidServerResponse(reason))
        self.state = ClientState.ACCEPTED
        return Accepted(
            request=self.request,
            subprotocol=response.subprotocol,
            extensions=tuple(extensions),
            data=b"",
            trailingData=self._parser.rest,
            responseHeaders=tuple(head.headers.items()),
            response=response,
        )

    def _refused(self) -> Rejected:
        head, body = self._refusal, self._body
        assert head is not None and body is not None
        self.state = ClientState.REJECTED
        return Rejected(
            status=head.status,
            reason=head.reasonPhrase,
            headers=tuple(head.headers.items()),
            body=body.body,
            request=self.request,
        )

    def _fail(self, error: ClientHandshakeError) -> Failed:
        self.state = ClientState.FAILED
        return Failed(error)
