"""
The RFC 6455 section 4 opening handshake, for both roles, without I/O.

L{ServerHandshake} and L{ClientHandshake} drive one handshake each: bytes
go in, an outcome comes out (L{Accepted}, L{Rejected} or L{Failed}).  They
are built from smaller pieces, each in a module of its own:

  - L{keys}: the Sec-WebSocket-Key and Sec-WebSocket-Accept values;
  - L{request}: the upgrade request, checked (server) and written (client);
  - L{response}: the answer, written (server) and checked (client);
  - L{negotiation}: the subprotocol and extensions, shared by every carrier;
  - L{extendedconnect}: the HTTP/2 carrier (RFC 8441), server side;
  - L{h2client}: the HTTP/2 carrier, client side;
  - L{body}: reading the start of a refusal's body;
  - L{outcomes}, L{server}, L{client}: the two objects and their outcomes.

Every name is importable from this package.  The submodules import each
other, never this package, so there is no cycle.
"""

from twisted_ws.core.handshake.body import MAX_REFUSAL_BODY, BodyFraming, BodyReader
from twisted_ws.core.handshake.client import ClientHandshake, ClientState
from twisted_ws.core.handshake.extendedconnect import (
    extendedConnectResponse,
    validateExtendedConnect,
)
from twisted_ws.core.handshake.h2client import H2ClientHandshake, extendedConnectRequest
from twisted_ws.core.handshake.keys import GUID, computeAcceptKey, generateKey
from twisted_ws.core.handshake.negotiation import Negotiated, negotiate, selectSubprotocol
from twisted_ws.core.handshake.outcomes import Accepted, Failed, Rejected
from twisted_ws.core.handshake.request import (
    HandshakeRequest,
    buildClientRequest,
    checkExtraHeaders,
    checkNoBody,
    clientRequestHeaders,
    isUpgradeAttempt,
    parseOffers,
    validateRequest,
)
from twisted_ws.core.handshake.response import (
    HandshakeResponse,
    buildAcceptResponse,
    buildRejectResponse,
    checkAcceptedTerms,
    validateResponse,
)
from twisted_ws.core.handshake.server import ServerHandshake, ServerState

__all__ = [
    "GUID",
    "computeAcceptKey",
    "generateKey",
    "HandshakeRequest",
    "validateRequest",
    "selectSubprotocol",
    "buildAcceptResponse",
    "buildRejectResponse",
    "buildClientRequest",
    "HandshakeResponse",
    "validateResponse",
    "isUpgradeAttempt",
    "parseOffers",
    "checkNoBody",
    "checkExtraHeaders",
    "clientRequestHeaders",
    "ServerHandshake",
    "ClientHandshake",
    "ServerState",
    "ClientState",
    "Accepted",
    "Rejected",
    "Failed",
    "Negotiated",
    "negotiate",
    "validateExtendedConnect",
    "extendedConnectResponse",
    "extendedConnectRequest",
    "H2ClientHandshake",
    "checkAcceptedTerms",
    "BodyReader",
    "BodyFraming",
    "MAX_REFUSAL_BODY",
]
