"""
The bus between broadcast hubs: what carries a room's messages to the hubs
of other processes and machines, behind one small interface so that the
backend can be swapped (L{LocalBus}: none, the default; L{RedisBus
<twisted_ws.apps.redisbus.RedisBus>}: Redis pub/sub).

A hub delivers its own publishes to its local members itself and hands
them to the bus for everyone else; the bus hands it back only what other
hubs published.  So a bus must never return a hub's own messages to it:
that would be a second copy for every local member.
"""

from __future__ import annotations

from collections.abc import Callable

from zope.interface import Attribute, Interface, implementer

__all__ = ["IBroadcastBus", "LocalBus", "RemoteDelivery"]

#: How a bus hands a message from another hub to its own: (room, isText, payload).
RemoteDelivery = Callable[[str, bool, bytes], object]


class IBroadcastBus(Interface):
    """
    Carries room messages between hubs.  The hub says which rooms have
    local members (reference counting is the hub's job: one C{subscribe}
    when a room gets its first member, one C{unsubscribe} when its last
    leaves) and publishes each message once.
    """

    connected = Attribute("C{True} while published messages can reach the other hubs.")
    publishFailures = Attribute("How many publishes could not be handed on (the link was down).")

    def attach(deliver: RemoteDelivery) -> None:
        """
        Hand messages published by other hubs to C{deliver(room, isText,
        payload)} from now on (text payloads are UTF-8 bytes, unchecked).
        """

    def subscribe(room: str) -> None:
        """Start receiving the messages other hubs publish to C{room}."""

    def unsubscribe(room: str) -> None:
        """Stop receiving C{room}'s messages."""

    def publish(room: str, isText: bool, payload: bytes) -> None:
        """
        Send a message to the other hubs' members of C{room}, in order with
        this hub's earlier publishes.  Never raises and never blocks: a
        message that cannot be sent now is counted in C{publishFailures}.
        """


@implementer(IBroadcastBus)
class LocalBus:
    """
    No bus: rooms live in this process only.  The hub's default, so that
    every hub has a bus to report on.
    """

    connected = True
    publishFailures = 0

    def attach(self, deliver: RemoteDelivery) -> None:
        pass

    def subscribe(self, room: str) -> None:
        pass

    def unsubscribe(self, room: str) -> None:
        pass

    def publish(self, room: str, isText: bool, payload: bytes) -> None:
        pass

    def __repr__(self) -> str:
        return "<LocalBus>"
