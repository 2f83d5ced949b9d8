"""The Redis connection: one txredisapi pool per logical database, failing fast when Redis is down.

LANraragi spreads its data over five logical databases (§2.1 of the notes); lrrd keeps the same
numbers so an existing database works unchanged. Every command goes through ``Db`` so that an
outage turns into ``StoreUnavailable`` at once (the API answers 503) instead of a request that
waits forever for a connection.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import unquote, urlsplit

import txredisapi
from twisted.internet.defer import Deferred, FirstError, fail, gatherResults
from twisted.logger import Logger

log = Logger()


class DB(enum.IntEnum):
    """LANraragi's logical databases, by purpose (offsets from the configured base)."""

    MAIN = 0
    MINION = 1
    CONFIG = 2
    SEARCH = 3
    METRICS = 4


class StoreUnavailable(Exception):
    """Redis cannot be reached right now; callers answer 503 and try again later."""


class StoreError(Exception):
    """Redis answered with an error to a command lrrd sent (a bug or a foreign data shape)."""


@dataclass(frozen=True)
class RedisAddress:
    """Where Redis listens: a TCP host/port or a unix socket, plus the base database number."""

    host: str = "127.0.0.1"
    port: int = 6379
    path: str | None = None
    base_db: int = 0
    password: str | None = None
    username: str | None = None

    @classmethod
    def parse(cls, url: str) -> "RedisAddress":
        """Accept ``redis://[user:pw@]host[:port][/db]`` and ``unix:///path[?db=N]``."""
        parts = urlsplit(url)
        password = unquote(parts.password) if parts.password else None
        username = unquote(parts.username) if parts.username else None
        if parts.scheme == "unix":
            if not parts.path:
                raise ValueError(f"redis: no socket path in {url!r}")
            db = 0
            for item in parts.query.split("&"):
                key, _, value = item.partition("=")
                if key == "db" and value:
                    db = _parse_db(value, url)
            return cls(path=parts.path, base_db=db, password=password, username=username)
        if parts.scheme not in ("redis", ""):
            raise ValueError(f"redis: unsupported scheme in {url!r} (use redis:// or unix://)")
        try:
            port = parts.port or 6379
        except ValueError:
            raise ValueError(f"redis: bad port in {url!r}") from None
        path = parts.path.strip("/")
        db = _parse_db(path, url) if path else 0
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=port,
            base_db=db,
            password=password,
            username=username,
        )

    def describe(self) -> str:
        return f"unix://{self.path}" if self.path else f"redis://{self.host}:{self.port}/{self.base_db}"


def _parse_db(text: str, url: str) -> int:
    try:
        db = int(text)
    except ValueError:
        raise ValueError(f"redis: database must be a number in {url!r}") from None
    if not 0 <= db <= 11:
        raise ValueError(f"redis: base database must be 0..11 in {url!r} (lrrd uses base..base+4)")
    return db


def _to_store_error(failure: Any) -> Any:
    if failure.check(txredisapi.ConnectionError):
        raise StoreUnavailable(str(failure.value))
    if failure.check(txredisapi.ResponseError):
        raise StoreError(str(failure.value))
    return failure


class Db:
    """One logical database; attribute access yields txredisapi commands returning Deferreds.

    ``await db.hget(key, field)`` works like txredisapi's own call, but fails immediately with
    ``StoreUnavailable`` when no connection is up.
    """

    def __init__(self, handler: Any, number: int) -> None:
        self._handler = handler
        self.number = number

    @property
    def connected(self) -> bool:
        return bool(self._handler._factory.size)

    def __getattr__(self, name: str) -> Callable[..., Deferred[Any]]:
        method = getattr(self._handler, name)

        def command(*args: Any, **kwargs: Any) -> Deferred[Any]:
            if not self._handler._factory.size:
                return fail(StoreUnavailable("Redis is not connected"))
            try:
                d = method(*args, **kwargs)
            except txredisapi.ConnectionError as exc:
                return fail(StoreUnavailable(str(exc)))
            return d.addErrback(_to_store_error)

        command.__name__ = name
        return command


#: How many connections each logical database gets: the hot ones more.
POOL_SIZES = {DB.MAIN: 4, DB.MINION: 2, DB.CONFIG: 3, DB.SEARCH: 3, DB.METRICS: 1}


class RedisStore:
    """Owns the pools of all five databases; ``db(DB.MAIN)`` hands out a ``Db``."""

    #: Reconnection backoff: quick, so an embedded redis-server restarted by its supervisor
    #: is found again within a second or two.
    initial_delay = 0.1
    max_delay = 1.0
    factor = 1.6

    def __init__(self, address: RedisAddress, reply_timeout: float = 30.0) -> None:
        self.address = address
        self._reply_timeout = reply_timeout
        self._handlers: dict[DB, Any] = {}
        self._dbs: dict[DB, Db] = {}

    def connect(self) -> None:
        """Start the lazy pools; they connect (and reconnect) in the background."""
        for which in DB:
            number = self.address.base_db + int(which)
            common = dict(
                dbid=number,
                poolsize=POOL_SIZES[which],
                reconnect=True,
                charset="utf-8",
                password=self.address.password,
                replyTimeout=self._reply_timeout,
                convertNumbers=False,
            )
            if self.address.path:
                handler = txredisapi.lazyUnixConnectionPool(self.address.path, **common)
            else:
                handler = txredisapi.lazyConnectionPool(
                    self.address.host, self.address.port, connectTimeout=2, **common
                )
            factory = handler._factory
            factory.initialDelay = self.initial_delay
            factory.maxDelay = self.max_delay
            factory.factor = self.factor
            factory.jitter = 0.1
            self._handlers[which] = handler
            self._dbs[which] = Db(handler, number)

    def db(self, which: DB) -> Db:
        try:
            return self._dbs[which]
        except KeyError:
            raise StoreUnavailable("Redis is not connected yet") from None

    @property
    def connected(self) -> bool:
        return all(db.connected for db in self._dbs.values())

    async def wait_connected(self, clock: Any, timeout: float = 10.0) -> None:
        """Wait (without blocking) until every pool has a live connection."""
        from twisted.internet.task import deferLater

        waited = 0.0
        while not self.connected:
            if waited >= timeout:
                raise StoreUnavailable(f"Redis at {self.address.describe()} not reachable")
            await deferLater(clock, 0.01, lambda: None)
            waited += 0.01

    def connection_handler(self, which: DB) -> Any:
        """The raw txredisapi handler, for the rare caller that needs MULTI or a blocking pop."""
        return self._handlers[which]

    async def disconnect(self) -> None:
        for handler in self._handlers.values():
            try:
                await handler.disconnect()
            except Exception:  # noqa: BLE001 - shutting down; nothing useful to do with it
                log.failure("while disconnecting from Redis")
        self._handlers.clear()
        self._dbs.clear()


async def gather(*deferreds: Deferred[Any]) -> list[Any]:
    """Await commands sent together: one round trip instead of one per command.

    txredisapi writes each command at once, so commands issued in the same reactor turn are
    pipelined; this waits for all and re-raises the first real error (not ``FirstError``).
    """
    try:
        return await gatherResults(list(deferreds), consumeErrors=True)
    except FirstError as exc:
        exc.subFailure.raiseException()
        raise  # unreachable; keeps type checkers content


class ScriptedStore:
    """Base of the stores whose multi-key writes are Lua scripts run in the main database.

    Their scripts take the main and search database numbers first (a script SELECTs the search
    database to keep its indexes in step) and stamp writes with the store's clock.
    """

    def __init__(self, redis: RedisStore, clock: Any = None) -> None:
        self._redis = redis
        self._clock = clock

    def _now(self) -> str:
        return str(int(self._clock.seconds() if self._clock is not None else time.time()))

    @property
    def _main(self) -> Db:
        return self._redis.db(DB.MAIN)

    def _dbs(self) -> list[str]:
        return [str(self._redis.db(DB.MAIN).number), str(self._redis.db(DB.SEARCH).number)]
