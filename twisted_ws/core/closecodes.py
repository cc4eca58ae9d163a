"""
Close codes (RFC 6455 §7.4 and the IANA registry) and Close frame payloads.

Kept apart from the frame codec because both the connection state machine and
applications need them: the application picks codes to send, the connection
must refuse codes that may never appear on the wire.
"""

from __future__ import annotations

from enum import IntEnum

from .errors import ProtocolError

__all__ = [
    "CloseCode",
    "MAX_REASON_BYTES",
    "isValidWireCode",
    "isSendableCode",
    "parseClosePayload",
    "buildClosePayload",
]


class CloseCode(IntEnum):
    """The registered close codes."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    # 1004 is reserved.
    NO_STATUS_RECEIVED = 1005  # never on the wire: "the Close frame had no code"
    ABNORMAL_CLOSURE = 1006  # never on the wire: "no Close frame at all"
    INVALID_PAYLOAD = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014
    TLS_HANDSHAKE = 1015  # never on the wire


#: A control frame payload is at most 125 bytes, two of which hold the code.
MAX_REASON_BYTES = 123


def isValidWireCode(code: int) -> bool:
    """
    May C{code} appear in a Close frame received from the peer?

    1000-1003 and 1007-1014 are registered for use on the wire, 3000-4999 are
    for libraries, frameworks and applications; everything else (1004-1006,
    1015, below 1000, 1016-2999, 5000 and above) is a protocol error.
    """
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


def isSendableCode(code: int) -> bool:
    """May an application put C{code} in a Close frame?  Same set as the wire."""
    return isValidWireCode(code)


def _truncateReason(reason: str) -> bytes:
    """Encode C{reason}, cut to fit a control frame without splitting a character."""
    data = reason.encode("utf-8")
    if len(data) <= MAX_REASON_BYTES:
        return data
    return data[:MAX_REASON_BYTES].decode("utf-8", "ignore").encode("utf-8")


def buildClosePayload(code: int | None, reason: str = "") -> bytes:
    """
    Build the payload of a Close frame.

    C{code=None} gives an empty payload (allowed by the RFC, and then no
    reason may follow).  A reason longer than 123 bytes is shortened on a
    character boundary rather than refused: it is diagnostic text.
    """
    if code is None:
        if reason:
            raise ValueError("a close reason needs a close code")
        return b""
    if not isSendableCode(code):
        raise ValueError(f"close code {code} may not be sent")
    return code.to_bytes(2, "big") + _truncateReason(reason)


def parseClosePayload(payload: bytes) -> tuple[int, str]:
    """
    Read the code and reason of a received Close frame.

    An empty payload means "no code" and gives 1005.  A one-byte payload or
    a code that is not valid on the wire is a protocol error (1002); a reason
    that is not UTF-8 is invalid data (1007).
    """
    n = len(payload)
    if n == 0:
        return CloseCode.NO_STATUS_RECEIVED, ""
    if n == 1:
        raise ProtocolError(CloseCode.PROTOCOL_ERROR, "close frame with a 1-byte payload")
    code = int.from_bytes(payload[:2], "big")
    if not isValidWireCode(code):
        raise ProtocolError(CloseCode.PROTOCOL_ERROR, f"invalid close code {code}")
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(CloseCode.INVALID_PAYLOAD, "close reason is not valid UTF-8") from None
    return code, reason


class CloseInfo:
    """
    How a connection ended, from both sides.

    @ivar code: the close code the application should act on: the code of
        the peer's Close frame, 1005 if it had none, 1006 if none arrived.
    @ivar reason: the reason text of the peer's Close frame, or C{""}.
    @ivar wasClean: C{True} when both Close frames were exchanged and the
        TCP connection then closed without a timeout.
    @ivar initiatedByPeer: C{True} if the peer sent its Close first (or
        dropped the connection), C{False} if this side started the close.
    @ivar sentCode: the code of the Close frame this side sent, or C{None}.
    @ivar sentReason: its reason.
    @ivar receivedCode: the code of the peer's Close frame, or C{None}.
    @ivar receivedReason: its reason.
    """

    __slots__ = (
        "code",
        "reason",
        "wasClean",
        "initiatedByPeer",
        "sentCode",
        "sentReason",
        "receivedCode",
        "receivedReason",
    )

    def __init__(
        self,
        code: int,
        reason: str,
        wasClean: bool,
        initiatedByPeer: bool,
        sentCode: int | None = None,
        sentReason: str = "",
        receivedCode: int | None = None,
        receivedReason: str = "",
    ) -> None:
        self.code = code
        self.reason = reason
        self.wasClean = wasClean
        self.initiatedByPeer = initiatedByPeer
        self.sentCode = sentCode
        self.sentReason = sentReason
        self.receivedCode = receivedCode
        self.receivedReason = receivedReason

    def __repr__(self) -> str:
        who = "peer" if self.initiatedByPeer else "local"
        return (
            f"<CloseInfo code={self.code} reason={self.reason!r} "
            f"clean={self.wasClean} initiatedBy={who} sent={self.sentCode}>"
        )
