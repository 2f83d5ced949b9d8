"""The change feed: a dedicated pub/sub connection on which the stores' write notices arrive.

Every store write ends with ``PUBLISH lrrd:archives <id>`` (an archive, ``TANK_…`` or ``SET_…``
id). A process that keeps data derived from Redis in memory (the search index) subscribes here
and re-reads what changed. Pub/sub needs a connection of its own (a subscribed connection can
run no other command), so this is not part of the pools in ``lrrd.store.redis``.

Delivery is at most once: while the connection is down, notices are lost. The feed therefore
reports every (re)connection, and the subscriber re-reads everything then.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterable

import txredisapi
from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet import protocol
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint, UNIXClientEndpoint
from twisted.logger import Logger

from lrrd.store.archives import CHANGES_CHANNEL
from lrrd.store.redis import DB, RedisAddress, RedisStore

log = Logger()

#: Published on ``CHANGES_CHANNEL`` by a write too wide to list (restore, drop, clean, clearing
#: every ``isnew``): subscribers reload everything.
RELOAD_ALL = "*"


def barrier_channel() -> str:
    """A channel name private to this process, for read-your-writes barriers.

    Redis delivers the messages of one subscribed connection in publish order, whatever their
    channel, so a nonce published here after a write arrives after that write's notice.
    """
    return f"lrrd:barrier:{os.getpid()}:{os.urandom(6).hex()}"


async def publish(redis: RedisStore, channel: str, message: str) -> int:
    """``PUBLISH`` through the ordinary pool; returns how many subscribers got it."""
    return int(await redis.db(DB.MAIN).publish(channel, message) or 0)


async def publish_reload(redis: RedisStore) -> None:
    """Tell every lrrd process to reload its in-memory view of the database."""
    await publish(redis, CHANGES_CHANNEL, RELOAD_ALL)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class _Subscriber(txredisapi.SubscriberProtocol):
    """Authenticates (txredisapi does that in ``connectionMade``), subscribes, then reports."""

    feed: "ChangeFeed"

    def connectionMade(self) -> Any:
        d = super().connectionMade()
        if isinstance(d, Deferred):
            d.addCallback(lambda _: self._subscribe_all())
        return d

    def _subscribe_all(self) -> Any:
        if not self.connected:
            return None
        d = self.subscribe(list(self.feed.channels))
        d.addCallback(lambda _: self.feed._connected(self))
        d.addErrback(lambda f: log.failure("Could not subscribe to changes", f))
        return d

    def messageReceived(self, pattern: Any, channel: Any, message: Any) -> None:
        self.feed._message(_text(channel), _text(message))

    def connectionLost(self, why: Any) -> None:
        super().connectionLost(why)
        self.feed._lost(self)


class _SubscriberFactory(protocol.Factory):
    """Builds subscriber connections with the store's credentials and no database selected."""

    noisy = False

    def __init__(self, feed: "ChangeFeed", password: str | None, username: str | None) -> None:
        self.feed = feed
        self.password = password
        self.username = username

    def buildProtocol(self, addr: Any) -> _Subscriber:
        p = _Subscriber("utf-8", password=self.password, username=self.username,
                        dbid=None, convertNumbers=False)
        p.factory = self
        p.feed = self.feed
        return p

    # txredisapi's connectionMade calls these when AUTH fails.
    def stopTrying(self) -> None:
        log.error("Redis refused the change feed's credentials")

    def connectionError(self, why: str) -> None:
        log.error("Change feed: {why}", why=why)


class ChangeFeed:
    """Subscribes to channels on one reconnecting connection.

    ``on_message(channel, message)`` gets every message; ``on_connected()`` runs after each
    successful (re)subscription, which is when the subscriber must assume it missed notices.
    """

    def __init__(self, address: RedisAddress, channels: Iterable[str],
                 on_message: Callable[[str, str], None], on_connected: Callable[[], None],
                 reactor: Any) -> None:
        self.channels = tuple(channels)
        self._on_message = on_message
        self._on_connected = on_connected
        self._reactor = reactor
        if address.path:
            endpoint: Any = UNIXClientEndpoint(reactor, address.path, timeout=2)
        else:
            endpoint = HostnameEndpoint(reactor, address.host, address.port, timeout=2)
        factory = _SubscriberFactory(self, address.password, address.username)
        self._service = ClientService(endpoint, factory,
                                      retryPolicy=backoffPolicy(0.1, 1.0, 1.6), clock=reactor)
        self._protocol: _Subscriber | None = None

    @property
    def subscribed(self) -> bool:
        """Whether notices are arriving right now."""
        return self._protocol is not None

    def start(self) -> None:
        self._service.startService()

    def stop(self) -> Deferred[None]:
        self._protocol = None
        return self._service.stopService()

    def _connected(self, proto: _Subscriber) -> None:
        self._protocol = proto
        self._on_connected()

    def _lost(self, proto: _Subscriber) -> None:
        if self._protocol is proto:
            self._protocol = None

    def _message(self, channel: str, message: str) -> None:
        try:
            self._on_message(channel, message)
        except Exception:  # noqa: BLE001 - one bad notice must not kill the connection
            log.failure("While handling a change notice {message!r}", message=message)
