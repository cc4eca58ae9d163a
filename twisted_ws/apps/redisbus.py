"""
L{RedisBus}: broadcast rooms shared by every process and machine that
talks to one Redis server, through its pub/sub (C{pip install
'twisted_ws[redis]'}, which brings C{txredisapi}).

Each room is a channel, C{<prefix><room>} (default prefix
C{twisted_ws:room:}).  Each message travels in a compact binary envelope:
a version byte, the publishing bus's 8-byte instance id, a flags byte
(text or binary) and the payload as is -- no JSON, no base64.  A bus drops
its own messages on receipt: its hub has already given them to its local
members.  Redis keeps the order of one connection's publishes, so
every member sees one publisher's messages in publish order.

Two connections: one publishes, one subscribes (a subscribed Redis
connection can do nothing else).  Each is re-established when lost, with
capped exponential backoff on the given clock, and the subscriber then
subscribes every room again.  Meanwhile the hub goes on delivering to its
local members; publishes that cannot reach Redis are counted
(C{publishFailures}) and logged, at most once per C{logInterval}.

Why not txredisapi's own connection factories: they run on the global
reactor (not a test clock) with a jittered retry policy of their own,
C{SubscriberFactory} cannot authenticate, and their default reply
conversion turns a payload such as C{b"12"} into the integer 12 and
valid UTF-8 into C{str}.  So the bus uses txredisapi's protocols (AUTH,
SELECT, SUBSCRIBE, the reply queue) with raw bytes replies, over
endpoints and a reconnect loop of its own, and splits replies with a
parser of its own (L{RespReader}): every message of one read reaches the
hub in that read, so each member gets them in one write.  Redis pub/sub
ignores the database number: use the prefix to keep deployments on one
server apart.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from functools import cache
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from .bus import IBroadcastBus, RemoteDelivery
from .resp import RespError, RespReader

__all__ = ["RedisBus", "RedisURL", "parseRedisURL"]

_log = Logger(namespace="twisted_ws.apps.redisbus")

DEFAULT_PREFIX = "twisted_ws:room:"

#: version, sender's instance id, flags; then the payload.
_ENVELOPE = struct.Struct("!B8sB")
_VERSION = 1
_TEXT = 0x01


class RedisURL(NamedTuple):
    """A parsed C{redis://} or C{rediss://} URL."""

    host: str
    port: int
    db: int
    password: str | None
    username: str | None
    tls: bool

    def __str__(self) -> str:
        """The URL without its password, for logs."""
        auth = "***@" if self.password is not None else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'rediss' if self.tls else 'redis'}://{auth}{host}:{self.port}/{self.db}"


def parseRedisURL(url: str) -> RedisURL:
    """
    Parse C{redis://[[user]:password@]host[:port][/db]} (C{rediss://} for
    TLS).  Port 6379 and database 0 by default.

    @raise ValueError: with a message fit for one line of output.
    """
    try:
        parts = urlsplit(url)
        shown = repr(parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]).geturl()
                     if "@" in parts.netloc else url)
        port = parts.port
    except ValueError as e:
        raise ValueError(f"bad Redis URL: {e}") from None
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError(f"bad Redis URL {shown}: use redis:// or rediss://")
    if not parts.hostname:
        raise ValueError(f"bad Redis URL {shown}: no host")
    if parts.query or parts.fragment:
        raise ValueError(f"bad Redis URL {shown}: query and fragment are not supported")
    path = parts.path.strip("/")
    if path and not (path.isdigit() and path.isascii()):
        raise ValueError(f"bad Redis URL {shown}: the path is a database number, as in /0")
    return RedisURL(
        host=parts.hostname,
        port=port if port is not None else 6379,
        db=int(path) if path else 0,
        password=unquote(parts.password) if parts.password is not None else None,
        username=unquote(parts.username) if parts.username else None,
        tls=parts.scheme == "rediss",
    )


@cache
def _protocols() -> tuple[type, type]:
    """
    txredisapi's publisher and subscriber protocols, imported on first
    use: importing txredisapi installs the default reactor.
    """
    try:
        import txredisapi
    except ImportError:
        raise ImportError("RedisBus needs txredisapi: pip install 'twisted_ws[redis]'") from None

    class Mixin:
        link: _Link
        # Declared for the type checker; the txredisapi protocol after Mixin has them.
        transport: Any
        replyReceived: Callable[[Any], None]

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.reader = RespReader(txredisapi.ResponseError)

        def dataReceived(self, data: bytes) -> None:
            """Every reply of this read now, in order (txredisapi's parser is bypassed)."""
            try:
                replies = self.reader.feed(data)
            except RespError as e:
                _log.error(
                    "Redis {link} link to {url}: {why}; reconnecting", link=self.link.name, url=self.link.bus.url, why=e
                )
                self.transport.abortConnection()
                return
            replyReceived = self.replyReceived
            for reply in replies:
                try:
                    replyReceived(reply)
                except Exception:
                    # A bug in one message's delivery must not lose the others.
                    _log.failure("Redis {link} link: handling a reply failed", link=self.link.name)

        def connectionLost(self, reason: Failure) -> None:
            super().connectionLost(reason)  # type: ignore[misc]  # the txredisapi protocol after Mixin in the MRO has it
            self.link.lost(self, reason)

    class Publisher(Mixin, txredisapi.BaseRedisProtocol):  # type: ignore[misc]  # txredisapi is untyped: the base is Any
        pass

    class Subscriber(Mixin, txredisapi.SubscriberProtocol):  # type: ignore[misc]  # txredisapi is untyped: the base is Any
        def messageReceived(self, pattern: Any, channel: bytes, message: bytes) -> None:
            self.link.bus._received(channel, message)

    return Publisher, Subscriber


class _LinkFactory(Factory):
    """
    Builds one Redis protocol for a link, and answers the calls
    txredisapi's protocol makes on its factory when AUTH or SELECT fail.
    """

    isLazy = True
    noisy = False

    def __init__(self, link: _Link) -> None:
        self.link = link

    def buildProtocol(self, addr: Any) -> Any:
        link = self.link
        bus = link.bus
        url = bus.url
        protocol = link.protocolClass(
            charset=None,  # raw bytes in and out
            convertNumbers=False,
            password=url.password,
            dbid=url.db if link.selectDb and url.db else None,
            username=url.username,
        )
        protocol.factory = self
        protocol.link = link
        protocol.callLater = bus.clock.callLater  # txredisapi's own is the global reactor's
        return protocol

    def stopTrying(self) -> None:
        """AUTH or SELECT failed; the link retries with backoff all the same."""

    def connectionError(self, why: str) -> None:
        _log.error("Redis {link} link to {url}: {why}", link=self.link.name, url=self.link.bus.url, why=why)


class _Link:
    """
    One Redis connection, kept up: connect, wait until it is usable (AUTH,
    SELECT done), and after a failure or a loss try again with capped
    exponential backoff on the bus's clock.
    """

    def __init__(self, bus: RedisBus, name: str, protocolClass: type, selectDb: bool) -> None:
        self.bus = bus
        self.name = name
        self.protocolClass = protocolClass
        self.selectDb = selectDb
        self.protocol: Any = None  # while usable
        self.attempt = 0
        self.running = False
        self._pending: Deferred[Any] | None = None
        self._retry: Any = None
        self._transport: Any = None
        self._lostWaiters: list[Deferred[None]] = []

    def start(self) -> None:
        self.running = True
        self._connect()

    def _connect(self) -> None:
        self._retry = None
        if not self.running:
            return
        d = self.bus.endpoint.connect(_LinkFactory(self))
        self._pending = d
        d.addCallbacks(self._connected, self._failed)

    def _connected(self, protocol: Any) -> None:
        self._pending = None
        self._transport = protocol.transport
        if not self.running:
            protocol.transport.loseConnection()
            return
        protocol.whenConnected().addCallback(self._usable)

    def _usable(self, protocol: Any) -> None:
        if not protocol.connected or not self.running:
            return
        self.protocol = protocol
        self.attempt = 0
        self.bus._linkUp(self)

    def _failed(self, failure: Failure) -> None:
        self._pending = None
        if not self.running:
            return
        delay = self._scheduleRetry()
        _log.warn(
            "Redis {link} link: cannot connect to {url}: {why}; retrying in {delay:.1f} s",
            link=self.name,
            url=self.bus.url,
            why=failure.getErrorMessage(),
            delay=delay,
        )

    def lost(self, protocol: Any, reason: Failure) -> None:
        self._transport = None
        wasUp = protocol is self.protocol
        if wasUp:
            self.protocol = None
            self.bus._linkDown(self)
        waiters, self._lostWaiters = self._lostWaiters, []
        for d in waiters:
            d.callback(None)
        if not self.running:
            return
        delay = self._scheduleRetry()
        _log.warn(
            "Redis {link} link to {url} {what}: {why}; reconnecting in {delay:.1f} s",
            link=self.name,
            url=self.bus.url,
            what="lost" if wasUp else "closed before it was usable",
            why=reason.getErrorMessage(),
            delay=delay,
        )

    def _scheduleRetry(self) -> float:
        bus = self.bus
        delay = min(bus.maxDelay, bus.initialDelay * (2.0 ** min(self.attempt, 32)))
        self.attempt += 1
        self._retry = bus.clock.callLater(delay, self._connect)
        return delay

    def stop(self) -> Deferred[None]:
        self.running = False
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.cancel()
        if self._transport is None:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._lostWaiters.append(d)
        self._transport.loseConnection()
        return d


@implementer(IBroadcastBus)
class RedisBus(Service):
    """
    An L{IBroadcastBus} over Redis pub/sub.  A Twisted service: start it
    (or add it to your application) to connect, stop it to disconnect.

        bus = RedisBus("redis://127.0.0.1:6379/0")
        hub = BroadcastHub(bus=bus)
        bus.startService()

    @param url: C{redis://[[user]:password@]host[:port][/db]}, or
        C{rediss://} for TLS, verified against C{trustRoot} (default: the
        platform's CAs) and the host name, failing closed.
    @param prefix: the channel name before the room's.
    @param reactor: the reactor (its clock drives the backoff).
    @param endpoint: connect here instead of to the URL's host and port.
    @param initialDelay: seconds before the first reconnection attempt,
        doubled after each failure up to C{maxDelay}.
    @param logInterval: failed publishes are logged at most this often.

    @ivar connected: C{True} while both connections are usable.
    @ivar publishFailures: publishes that could not reach Redis.
    @ivar published: publishes handed to Redis.
    @ivar received: messages received from other instances.
    @ivar malformed: messages on our channels that were not ours to read.
    """

    def __init__(
        self,
        url: str | RedisURL,
        prefix: str = DEFAULT_PREFIX,
        *,
        reactor: Any = None,
        endpoint: IStreamClientEndpoint | None = None,
        trustRoot: Any = None,
        clientCertificate: Any = None,
        connectTimeout: float = 10.0,
        initialDelay: float = 0.5,
        maxDelay: float = 30.0,
        logInterval: float = 10.0,
        instanceId: bytes | None = None,
    ) -> None:
        self.url = url if isinstance(url, RedisURL) else parseRedisURL(url)
        publisher, subscriber = _protocols()
        if reactor is None:
            from twisted.internet import reactor
        self.clock: IReactorTime = reactor
        if endpoint is None:
            endpoint = self._endpoint(reactor, connectTimeout, trustRoot, clientCertificate)
        self.endpoint = endpoint
        if initialDelay <= 0 or maxDelay < initialDelay:
            raise ValueError("need 0 < initialDelay <= maxDelay")
        self.initialDelay = initialDelay
        self.maxDelay = maxDelay
        self.logInterval = logInterval
        self.prefix = prefix
        self._prefix = prefix.encode("utf-8")
        self.instanceId = instanceId if instanceId is not None else os.urandom(8)
        if len(self.instanceId) != 8:
            raise ValueError("an instance id has 8 bytes")
        self._deliver: RemoteDelivery | None = None
        #: The rooms to be subscribed to (the hub counts their members).
        self.rooms: set[str] = set()
        self.publishFailures = 0
        self.published = 0
        self.received = 0
        self.malformed = 0
        self._failuresUnlogged = 0
        self._lastFailureLog: float | None = None
        self._publisher = _Link(self, "publish", publisher, selectDb=True)
        self._subscriber = _Link(self, "subscribe", subscriber, selectDb=False)

    def _endpoint(self, reactor: Any, timeout: float, trustRoot: Any, clientCertificate: Any) -> Any:
        from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS

        url = self.url
        endpoint: Any = HostnameEndpoint(reactor, url.host, url.port, timeout=timeout)
        if url.tls:
            from ..client.tls import clientConnectionCreator

            creator = clientConnectionCreator(url.host, None, trustRoot, clientCertificate)
            endpoint = wrapClientTLS(creator, endpoint)
        return endpoint

    def __repr__(self) -> str:
        state = "connected" if self.connected else "not connected"
        return f"<RedisBus {self.url} {self.prefix!r} {state}>"

    # -- the service ------------------------------------------------------------

    def startService(self) -> None:
        Service.startService(self)
        self._publisher.start()
        self._subscriber.start()

    def stopService(self) -> Deferred[Any]:
        Service.stopService(self)
        from twisted.internet.defer import gatherResults

        return gatherResults([self._publisher.stop(), self._subscriber.stop()])

    @property
    def connected(self) -> bool:
        return self._publisher.protocol is not None and self._subscriber.protocol is not None

    # -- IBroadcastBus ---------------------------------------------------------------

    def attach(self, deliver: RemoteDelivery) -> None:
        self._deliver = deliver

    def subscribe(self, room: str) -> None:
        if room in self.rooms:
            return
        self.rooms.add(room)
        protocol = self._subscriber.protocol
        if protocol is not None:
            self._command(protocol.subscribe, room)

    def unsubscribe(self, room: str) -> None:
        if room not in self.rooms:
            return
        self.rooms.discard(room)
        protocol = self._subscriber.protocol
        if protocol is not None:
            self._command(protocol.unsubscribe, room)

    def publish(self, room: str, isText: bool, payload: bytes) -> None:
        protocol = self._publisher.protocol
        if protocol is None:
            self._publishFailed("the Redis link is down")
            return
        envelope = _ENVELOPE.pack(_VERSION, self.instanceId, _TEXT if isText else 0) + payload
        try:
            d = protocol.publish(self._prefix + room.encode("utf-8"), envelope)
        except Exception as e:  # txredisapi raises when not connected
            self._publishFailed(str(e))
            return
        self.published += 1
        d.addErrback(lambda f: self._publishFailed(f.getErrorMessage()))

    # -- inside ---------------------------------------------------------------------

    def _command(self, method: Callable[[list[bytes]], Deferred[Any]], room: str) -> None:
        """SUBSCRIBE or UNSUBSCRIBE one room; a failure is the link's to mend."""
        try:
            # A list: txredisapi would take bytes for a sequence of channels.
            d = method([self._prefix + room.encode("utf-8")])
        except Exception as e:
            _log.warn("Redis: {command} {room!r} failed: {why}", command=method.__name__, room=room, why=e)
            return
        d.addErrback(
            lambda f: _log.warn(
                "Redis: {command} {room!r} failed: {why}",
                command=method.__name__,
                room=room,
                why=f.getErrorMessage(),
            )
        )

    def _linkUp(self, link: _Link) -> None:
        if link is self._subscriber:
            for room in sorted(self.rooms):
                self._command(link.protocol.subscribe, room)
        unlogged, self._failuresUnlogged = self._failuresUnlogged, 0
        _log.info(
            "Redis {link} link to {url} is up{more}",
            link=link.name,
            url=self.url,
            more=f" ({len(self.rooms)} rooms subscribed)" if link is self._subscriber else "",
        )
        if unlogged:
            _log.warn(
                "Redis: {count} publishes could not reach Redis while the link was down ({total} in all)",
                count=unlogged,
                total=self.publishFailures,
            )

    def _linkDown(self, link: _Link) -> None:
        pass  # lost() logs it; local delivery goes on regardless

    def _publishFailed(self, why: str) -> None:
        self.publishFailures += 1
        self._failuresUnlogged += 1
        now = self.clock.seconds()
        last = self._lastFailureLog
        if last is None or now - last >= self.logInterval:
            self._lastFailureLog = now
            count, self._failuresUnlogged = self._failuresUnlogged, 0
            _log.warn(
                "Redis: {count} publishes could not reach Redis ({why}); {total} in all; "
                "local members still get them",
                count=count,
                why=why,
                total=self.publishFailures,
            )

    def _received(self, channel: bytes, message: bytes) -> None:
        prefix = self._prefix
        if (
            not isinstance(channel, bytes)
            or not isinstance(message, bytes)
            or not channel.startswith(prefix)
            or len(message) < _ENVELOPE.size
        ):
            self._malformed(channel)
            return
        version, sender, flags = _ENVELOPE.unpack_from(message)
        if version != _VERSION:
            self._malformed(channel)
            return
        if sender == self.instanceId:
            return  # ours: the hub gave it to its members already
        try:
            room = channel[len(prefix) :].decode("utf-8")
        except UnicodeDecodeError:
            self._malformed(channel)
            return
        self.received += 1
        if self._deliver is not None:
            self._deliver(room, bool(flags & _TEXT), message[_ENVELOPE.size :])

    def _malformed(self, channel: Any) -> None:
        self.malformed += 1
        count = self.malformed
        if count & (count - 1) == 0:  # 1, 2, 4, 8...: bounded logging
            _log.warn(
                "Redis: ignored a message on {channel!r} that is not a twisted_ws envelope ({count} so far)",
                channel=channel,
                count=count,
            )
