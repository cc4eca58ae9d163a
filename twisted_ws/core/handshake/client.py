"""
The client side of the opening handshake as an I/O-free object: it builds
the request, reads the server's answer (and the start of a refusal's body)
and says what it means; see L{twisted_ws.core.handshake.outcomes} for the
outcomes both roles share.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import Enum

from twisted_ws.core.errors import (
    ClientHandshakeError,
    HandshakeClosed,
    HandshakeError,
    InvalidServerResponse,
)
from twisted_ws.core.extensions import (
    ClientExtensionFactory,
    acceptClientExtensions,
    formatExtensionHeader,
)
from twisted_ws.core.handshake.body import MAX_REFUSAL_BODY, BodyReader
from twisted_ws.core.handshake.keys import generateKey
from twisted_ws.core.handshake.outcomes import Accepted, Failed, Rejected
from twisted_ws.core.handshake.request import HandshakeRequest, clientRequestHeaders
from twisted_ws.core.handshake.response import validateResponse
from twisted_ws.core.http import Headers, HeadParser, ResponseHead, formatRequest
from twisted_ws.core.options import WebSocketOptions

__all__ = ["ClientState", "ClientHandshake", "invalidAnswer"]


class ClientState(Enum):
    """Where a L{ClientHandshake} is."""

    #: The request is ready to send; the answer's head is not complete.
    WAITING = "waiting"
    #: The server refused; reading the start of its explanation.
    READING_BODY = "reading body"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    FAILED = "failed"


def invalidAnswer(error: HandshakeError | ValueError) -> InvalidServerResponse:
    """
    The client's error for an accepting answer (101, or 200 over HTTP/2)
    that breaks the terms offered: a wrong accept key, a subprotocol or an
    extension that was not offered, or extension parameters refused.
    """
    return InvalidServerResponse(error.reason if isinstance(error, HandshakeError) else str(error))


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
            return self._fail(invalidAnswer(e))
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
