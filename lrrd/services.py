"""The collaborators of one lrrd process, built once and handed to the API areas and the jobs.

Each is created on first use, so a test (or the worker role) only builds what it touches, and
adding a service is one property here rather than new wiring in several places.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from lrrd.config import Settings
from lrrd.pools import Pools
from lrrd.store.archives import ArchiveStore
from lrrd.store.categories import CategoryStore
from lrrd.store.config import ConfigStore
from lrrd.store.locks import LockStore
from lrrd.store.redis import RedisStore
from lrrd.store.tankoubons import TankoubonStore

if TYPE_CHECKING:
    from lrrd.download import GuardedHttpClient
    from lrrd.plugins.runner import PluginRunner
    from lrrd.library.importer import Importer
    from lrrd.library.reader import ArchiveReaders
    from lrrd.search.index import SearchIndex
    from lrrd.store.stamps import StampStore
    from lrrd.watcher import Watcher


class Services:
    """Stores, pools and domain services for one process."""

    def __init__(self, settings: Settings, redis: RedisStore, reactor: Any) -> None:
        self.settings = settings
        self.redis = redis
        self.reactor = reactor

    @cached_property
    def config(self) -> ConfigStore:
        return ConfigStore(self.redis)

    @cached_property
    def archives(self) -> ArchiveStore:
        return ArchiveStore(self.redis, clock=self.reactor)

    @cached_property
    def categories(self) -> CategoryStore:
        return CategoryStore(self.redis, clock=self.reactor)

    @cached_property
    def tankoubons(self) -> TankoubonStore:
        return TankoubonStore(self.redis, clock=self.reactor)

    @cached_property
    def locks(self) -> LockStore:
        return LockStore(self.redis)

    @cached_property
    def pools(self) -> Pools:
        return Pools(self.reactor, io_threads=self.settings.thread_pool_size)

    @cached_property
    def importer(self) -> Importer:
        """The one import path of the watcher, uploads and downloads."""
        from lrrd.library.importer import Importer
        from lrrd.plugins.runner import auto_plugins_hook

        return Importer(self, concurrency=self.settings.thread_pool_size,
                        auto_plugins=auto_plugins_hook(self))

    @cached_property
    def plugins(self) -> PluginRunner:
        """The plugins found in ``lrrd_plugins`` and the configured folders, and their runner."""
        from lrrd.plugins.runner import PluginRunner

        return PluginRunner(self)

    @cached_property
    def http(self) -> GuardedHttpClient:
        """The one outbound HTTP client: private addresses refused unless allowed, size and
        time capped (DESIGN.md decision 8)."""
        from lrrd.download import GuardedHttpClient, HttpLimits

        limits = HttpLimits(max_size=self.settings.download_max_size,
                            total_timeout=self.settings.download_timeout)
        return GuardedHttpClient(self.reactor, allow_private=self.settings.allow_private_downloads,
                                 limits=limits, run_io=self.pools.run_io)

    @cached_property
    def readers(self) -> ArchiveReaders:
        """Open archive readers per id for page requests; solid archives share the
        thumbnailer's extraction folder, so a 7z extracted once serves both."""
        from lrrd.library.reader import ArchiveReaders

        return ArchiveReaders(self.settings.temp_dir / "extracted")

    @cached_property
    def stamps(self) -> StampStore:
        from lrrd.store.stamps import StampStore

        return StampStore(self.redis, clock=self.reactor)

    @cached_property
    def watcher(self) -> Watcher:
        """The file watcher; every process has one for ``/api/shinobu``, only role all/worker
        starts it (and then only the lease holder watches)."""
        from lrrd.watcher import Watcher

        return Watcher(self)

    @cached_property
    def search_index(self) -> SearchIndex:
        """The in-memory search index; a service (tap.py starts it in web roles): it loads at
        start and follows the change feed. Until loaded, search answers 204."""
        from lrrd.search.index import SearchIndex

        return SearchIndex(self.redis, self.reactor)
