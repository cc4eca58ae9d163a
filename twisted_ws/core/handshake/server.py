"""
The server side of the opening handshake as an I/O-free object.

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
from enum import Enum

from twisted_ws.core.acceptance import Accept
from twisted_ws.core.errors import HandshakeError
from twisted_ws.core.extensions import ServerExtensionFactory
from twisted_ws.core.handshake.negotiation import negotiate
from twisted_ws.core.handshake.outcomes import Accepted, Rejected
from twisted_ws.core.handshake.request import HandshakeRequest, validateRequest
from twisted_ws.core.handshake.response import buildRejectResponse, formatAcceptResponse
from twisted_ws.core.http import HeadParser, RequestHead
from twisted_ws.core.options import WebSocketOptions

__all__ = ["ServerState", "ServerHandshake"]


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
            # negotiate() checked the terms: format them.
            data = formatAcceptResponse(
                request.key, negotiated.subprotocol, negotiated.extensionsHeader,
                negotiated.extraHeaders,
            )
        else:
            data = b""
        self.state = ServerState.ACCEPTED
        trailing, self._trailing = self._trailing, b""
        # Every connection keeps its request: keep only the raw headers.
        request.headers.compact()
        return Accepted(
            request,
            negotiated.subprotocol,
            negotiated.extensions,
            data,
            trailing,
            tuple(negotiated.headers),
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
