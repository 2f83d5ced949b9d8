"""Shinobu, the file watcher: the content folder scanned at start, then followed through inotify and
a periodic rescan, so files that arrive, change, move or leave are reflected in the library.

One process of a cluster sharing a Redis runs it, elected by a lease with a TTL that the leader
renews (``lrrd.store.shinobu``); the others stand by and take over when the lease lapses. The rules
for each file are the importer's (LRR-NOTES §7); a file that disappears only leaves the filemap.
"""

from __future__ import annotations

import os
import secrets
import socket
import stat
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable

from twisted.application import service
from twisted.internet.defer import Deferred, DeferredLock
from twisted.internet.task import LoopingCall, deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.filepath import FilePath

from lrrd.library.identity import is_archive_filename
from lrrd.library.importer import ImportResult
from lrrd.logtext import log_text
from lrrd.store.redis import StoreUnavailable
from lrrd.store.shinobu import ShinobuStore

if TYPE_CHECKING:
    from lrrd.services import Services

__all__ = ["Watcher", "Tree", "walk_library"]

log = Logger()

#: The lease is renewed every third of its TTL, so one missed renewal does not lose it.
LEASE_TTL = 15
#: Seconds a file must keep the same size and mtime before it is hashed (a copy in progress).
SETTLE_DELAY = 1.0
#: Files that closed after writing, or were moved in whole, wait only this long (coalescing).
QUICK_DELAY = 0.05
#: A file whose archive is locked by another writer is tried again this often, this many times.
LOCKED_RETRY_DELAY = 2.0
LOCKED_RETRIES = 30

Stat = tuple[int, int]


@dataclass
class Tree:
    """A walk of the content folder: its directories and its archive files with (size, mtime_ns)."""

    dirs: list[str] = field(default_factory=list)
    files: dict[str, Stat] = field(default_factory=dict)


def walk_library(root: str, skip: Iterable[Stat] = ()) -> Tree:
    """Walk ``root`` (blocking), following symlinks but entering each real directory once.

    Directories named ``thumb`` are skipped, as the original's watcher does, and so are the
    directories whose (device, inode) is in ``skip`` (lrrd's own data folder inside the library).
    Unreadable directories are logged and passed over.
    """
    tree = Tree()
    skipped = set(skip)
    try:
        info = os.stat(root)
    except OSError as exc:
        log.warn("Cannot read the content folder {root}: {error}", root=log_text(root),
                 error=exc.strerror)
        return tree
    visited = {(info.st_dev, info.st_ino)}
    stack = [root]
    while stack:
        folder = stack.pop()
        tree.dirs.append(folder)
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            log.warn("Cannot list {folder}: {error}", folder=log_text(folder), error=exc.strerror)
            continue
        for entry in entries:
            try:
                info = entry.stat()  # follows symlinks
            except OSError:
                continue  # a dangling symlink, or removed meanwhile
            if stat.S_ISDIR(info.st_mode):
                key = (info.st_dev, info.st_ino)
                if entry.name == "thumb" or key in visited or key in skipped:
                    continue
                visited.add(key)
                stack.append(entry.path)
            elif stat.S_ISREG(info.st_mode) and is_archive_filename(entry.name):
                tree.files[entry.path] = (info.st_size, info.st_mtime_ns)
    return tree


def _stat(path: str) -> Stat | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_size, info.st_mtime_ns) if stat.S_ISREG(info.st_mode) else None


def _dir_keys(paths: Iterable[os.PathLike[str] | str]) -> list[Stat]:
    keys = []
    for path in paths:
        try:
            info = os.stat(path)
        except OSError:
            continue
        keys.append((info.st_dev, info.st_ino))
    return keys


def _make_notifier(inotify: Any, reactor: Any) -> Any:
    """Twisted's INotify, except that a deleted sub-folder does not close it.

    Twisted answers IN_DELETE_SELF (which the kernel sends whatever the mask) by dropping that
    watch and then closing the whole inotify descriptor, which would blind the watcher to the
    library because one folder of it was removed. Only an explicit ``close()`` closes it here.
    """

    class LibraryNotify(inotify.INotify):  # type: ignore[misc, name-defined]
        _closing = False

        def loseConnection(self) -> None:
            if self._closing:
                super().loseConnection()

        def close(self) -> None:
            self._closing = True
            super().loseConnection()

    return LibraryNotify(reactor)


class Watcher(service.Service):
    """The file watcher service; ``status``/``stop``/``restart``/``rescan`` back ``/api/shinobu``.

    Built in every process (``Services.watcher``) so any process can answer the API; only
    processes of role ``all`` or ``worker`` start it, and of those only the lease holder watches.
    """

    def __init__(
        self,
        services: Services,
        *,
        clock: Any = None,
        rescan_interval: float | None = None,
        settle_delay: float = SETTLE_DELAY,
        lease_ttl: int = LEASE_TTL,
        use_inotify: bool = True,
        ready: Callable[[], Deferred[None]] | None = None,
    ) -> None:
        self.services = services
        self.store = ShinobuStore(services.redis)
        self.setName("watcher")
        self._clock = clock if clock is not None else services.reactor
        self.rescan_interval = (services.settings.rescan_interval if rescan_interval is None
                                else rescan_interval)
        self.settle_delay = settle_delay
        self.lease_ttl = lease_ttl
        self.use_inotify = use_inotify
        #: Awaited before the first contact with Redis (the store's start-up), when set.
        self.ready = ready
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.root = os.path.abspath(os.fspath(services.settings.content))

        self.active = False
        self._epoch = 0
        self._generation: int | None = None
        self._tick_lock = DeferredLock()
        self._lease_loop: LoopingCall | None = None
        self._rescan_loop: LoopingCall | None = None
        self._notifier: Any = None
        self._watched: set[str] = set()
        self._pending: dict[str, Any] = {}
        self._quick: set[str] = set()
        self._last_stat: dict[str, Stat] = {}
        self._locked_tries: dict[str, int] = {}
        self._seen: dict[str, Stat] = {}
        self._rejected: dict[str, Stat] = {}
        self._scan: Deferred[None] | None = None
        self._scan_again = False
        self._busy: set[Deferred[Any]] = set()

    # -- service lifecycle ---------------------------------------------------------------------
    def startService(self) -> None:
        super().startService()
        d = Deferred.fromCoroutine(self._start())
        d.addErrback(lambda f: log.failure("The file watcher failed to start", f))

    async def _start(self) -> None:
        if self.ready is not None:
            await self.ready()
        if not self.running:
            return
        # "stop" is a runtime switch, as the original's kill of its Shinobu process was: a
        # process that starts brings the watcher back, as restarting LANraragi does.
        try:
            await self.store.set_stopped(False)
        except StoreUnavailable:
            pass
        self._lease_loop = LoopingCall(self._lease_tick)
        self._lease_loop.clock = self._clock
        self._lease_loop.start(max(0.2, self.lease_ttl / 3), now=True)

    def stopService(self) -> Deferred[None]:
        super().stopService()
        if self._lease_loop is not None and self._lease_loop.running:
            self._lease_loop.stop()
        self._lease_loop = None
        was_active = self.active
        self._deactivate()
        d = Deferred.fromCoroutine(self._stopped(was_active))
        d.addErrback(lambda f: None if f.check(StoreUnavailable) else log.failure(
            "While stopping the file watcher", f))
        return d

    async def _stopped(self, was_active: bool) -> None:
        for busy in list(self._busy):
            try:
                await busy
            except Exception:  # noqa: BLE001 - already logged where it failed
                pass
        if was_active:
            await self.store.release(self.owner)

    # -- leadership ----------------------------------------------------------------------------
    def _lease_tick(self) -> Deferred[None]:
        d = Deferred.fromCoroutine(self.tick())
        d.addErrback(self._tick_failed)
        return d

    def _tick_failed(self, failure: Failure) -> None:
        if failure.check(StoreUnavailable):
            log.debug("File watcher: Redis unavailable; will try again")
        else:
            log.failure("File watcher lease renewal failed", failure)

    async def tick(self) -> None:
        """Renew or claim the lease; start, restart or stop watching to match it."""
        await self._tick_lock.acquire()
        try:
            if not self.running:
                return
            lease = await self.store.heartbeat(self.owner, self.lease_ttl)
            if lease.leader and not self.active:
                self._activate(lease.generation)
            elif lease.leader and lease.generation != self._generation:
                log.info("File watcher restarting on request")
                self._deactivate()
                self._activate(lease.generation)
            elif not lease.leader and self.active:
                log.info("File watcher stops: {why}",
                         why="stopped on request" if lease.stopped else "lease lost")
                self._deactivate()
        finally:
            self._tick_lock.release()

    def _activate(self, generation: int) -> None:
        self.active = True
        self._epoch += 1
        self._generation = generation
        log.info("File watcher started on {root} (pid {pid})", root=log_text(self.root),
                 pid=os.getpid())
        if self.use_inotify:
            self._start_notifier()
        if self.rescan_interval > 0:
            self._rescan_loop = LoopingCall(self._periodic_rescan)
            self._rescan_loop.clock = self._clock
            self._rescan_loop.start(self.rescan_interval, now=False)
        self._track(self.scan())

    def _deactivate(self) -> None:
        if not self.active:
            return
        self.active = False
        self._epoch += 1
        if self._rescan_loop is not None and self._rescan_loop.running:
            self._rescan_loop.stop()
        self._rescan_loop = None
        if self._notifier is not None:
            self._notifier.close()
            self._notifier = None
        self._watched.clear()
        for call in self._pending.values():
            if call.active():
                call.cancel()
        self._pending.clear()
        self._quick.clear()
        self._last_stat.clear()

    # -- control (the /api/shinobu operations) -------------------------------------------------
    async def status(self) -> bool:
        """Whether a watcher runs: this one, or the lease holder elsewhere."""
        if self.active:
            return True
        if await self.store.is_stopped():
            return False
        return await self.store.holder() is not None

    async def stop(self) -> None:
        """Stop watching everywhere until a restart (the flag is shared through Redis)."""
        await self.store.set_stopped(True)
        if self.running:
            await self.tick()

    async def restart(self) -> bool:
        """Start watching again with a fresh startup scan; returns whether a watcher runs."""
        await self.store.set_stopped(False)
        await self.store.request_restart()
        if self.running:
            await self.tick()
        return await self.status()

    async def rescan(self) -> bool:
        """Forget the filemap and restart, so every file is hashed again."""
        await self.services.archives.filemap_clear()
        return await self.restart()

    # -- scanning ------------------------------------------------------------------------------
    def scan(self) -> Deferred[None]:
        """Compare the folder with the filemap and import what is new or changed.

        Scans do not overlap: asking during one runs exactly one more after it.
        """
        if self._scan is not None:
            self._scan_again = True
            return self._scan
        self._scan = Deferred.fromCoroutine(self._scan_loop())

        def done(result: Any) -> Any:
            self._scan = None
            return result

        self._scan.addBoth(done)
        return self._scan

    async def _scan_loop(self) -> None:
        while True:
            self._scan_again = False
            try:
                await self._scan_once()
            except StoreUnavailable:
                log.warn("File watcher: Redis unavailable during a scan; the next one retries")
            except Exception:  # noqa: BLE001 - a scan must not kill the watcher
                log.failure("File watcher scan failed")
            if not self._scan_again or not self.active:
                return

    def _periodic_rescan(self) -> Deferred[None]:
        d = self.scan()
        d.addErrback(lambda f: log.failure("Periodic rescan failed", f))
        return d

    async def _scan_once(self) -> None:
        if not self.active:
            return
        epoch = self._epoch
        pools = self.services.pools
        started = time.monotonic()
        skip = await pools.run_io(_dir_keys, [self.services.settings.data,
                                              self.services.settings.thumb_dir,
                                              self.services.settings.temp_dir])
        tree: Tree = await pools.run_io(walk_library, self.root, skip)
        if self._notifier is not None:
            # Watch first, then look again: a file that lands between the two walks is seen by
            # the second, and one that lands after it by inotify.
            self._watch_dirs(tree.dirs)
            tree = await pools.run_io(walk_library, self.root, skip)
            self._watch_dirs(tree.dirs)
        if epoch != self._epoch:
            return
        filemap = await self.services.archives.filemap()
        gone = [path for path in filemap if path not in tree.files]
        if gone:
            await self.services.importer.forget(*gone)
            for path in gone:
                self._seen.pop(path, None)
            log.info("File watcher: {count} files gone from the library", count=len(gone))
        now_ns = time.time_ns()
        settle_ns = int(self.settle_delay * 2e9)
        ready: dict[str, Stat] = {}
        for path, info in tree.files.items():
            if path in filemap and self._seen.get(path, info) == info:
                self._seen[path] = info
                continue
            if self._rejected.get(path) == info:
                continue
            if now_ns - info[1] < settle_ns:
                self._schedule(path, quick=False)
            else:
                ready[path] = info
        for known in (self._seen, self._rejected):
            for path in [p for p in known if p not in tree.files]:
                del known[path]
        if ready:
            await self._import(ready, epoch)
        log.info("File watcher scan: {files} files, {new} imported or checked in {secs:.1f}s",
                 files=len(tree.files), new=len(ready), secs=time.monotonic() - started)

    async def _import(self, files: dict[str, Stat], epoch: int) -> None:
        results = await self.services.importer.import_many(list(files))
        for result in results:
            self._record(result, files.get(result.path), epoch)

    def _record(self, result: ImportResult, info: Stat | None, epoch: int) -> None:
        path = result.path
        if result.status == "locked":
            tries = self._locked_tries.get(path, 0) + 1
            self._locked_tries[path] = tries
            if tries <= LOCKED_RETRIES and epoch == self._epoch:
                self._schedule(path, quick=True, delay=LOCKED_RETRY_DELAY)
            return
        self._locked_tries.pop(path, None)
        if info is None:
            return
        if result.status == "skipped":
            self._rejected[path] = info
        else:
            self._rejected.pop(path, None)
            self._seen[path] = info

    # -- inotify -------------------------------------------------------------------------------
    def _start_notifier(self) -> None:
        try:
            from twisted.internet import inotify
        except ImportError:
            log.warn("inotify is not available here; the library is rescanned every {s}s only",
                     s=self.rescan_interval)
            return
        notifier = _make_notifier(inotify, self.services.reactor)
        notifier.startReading()
        self._notifier = notifier

    def _watch_dirs(self, dirs: Iterable[str]) -> None:
        from twisted.internet import inotify

        if self._notifier is None:
            return
        mask = (inotify.IN_CREATE | inotify.IN_CLOSE_WRITE | inotify.IN_MOVED_TO
                | inotify.IN_MOVED_FROM | inotify.IN_DELETE | inotify.IN_MODIFY)
        for folder in dirs:
            if folder in self._watched:
                continue
            try:
                self._notifier.watch(FilePath(os.fsencode(folder)), mask=mask,
                                     callbacks=[self._on_event])
            except Exception as exc:  # noqa: BLE001 - INotifyError, or ENOSPC on max_user_watches
                log.warn("Cannot watch {folder}: {error}; it is rescanned periodically only",
                         folder=log_text(folder), error=log_text(str(exc)))
                continue
            self._watched.add(folder)

    def _unwatch_tree(self, folder: str) -> None:
        prefix = folder + os.sep
        for watched in [w for w in self._watched if w == folder or w.startswith(prefix)]:
            self._watched.discard(watched)
            if self._notifier is not None:
                try:
                    self._notifier.ignore(FilePath(os.fsencode(watched)))
                except KeyError:
                    pass

    def _on_event(self, _ignored: Any, filepath: FilePath[Any], mask: int) -> None:
        from twisted.internet import inotify

        if not self.active:
            return
        path = os.fsdecode(filepath.path)
        name = os.path.basename(path)
        if mask & inotify.IN_ISDIR:
            if name == "thumb":
                return
            if mask & (inotify.IN_CREATE | inotify.IN_MOVED_TO):
                self._track(Deferred.fromCoroutine(self._new_folder(path)))
            elif mask & (inotify.IN_DELETE | inotify.IN_MOVED_FROM):
                self._unwatch_tree(path)
                self._track(Deferred.fromCoroutine(self._folder_gone(path)))
            return
        if not is_archive_filename(name):
            return
        self._rejected.pop(path, None)
        if mask & (inotify.IN_DELETE | inotify.IN_MOVED_FROM):
            call = self._pending.pop(path, None)
            if call is not None and call.active():
                call.cancel()
            self._seen.pop(path, None)
            self._track(Deferred.fromCoroutine(self.services.importer.forget(path)))
        elif mask & (inotify.IN_CLOSE_WRITE | inotify.IN_MOVED_TO):
            self._schedule(path, quick=True)
        elif mask & (inotify.IN_CREATE | inotify.IN_MODIFY):
            self._schedule(path, quick=False)

    async def _new_folder(self, folder: str) -> None:
        """A folder created or moved in: watch it and everything under it, import its files."""
        epoch = self._epoch
        self._watch_dirs([folder])
        tree: Tree = await self.services.pools.run_io(walk_library, folder)
        if epoch != self._epoch:
            return
        self._watch_dirs(tree.dirs)
        for path in tree.files:
            self._schedule(path, quick=True)

    async def _folder_gone(self, folder: str) -> None:
        """A folder deleted or moved out: its files leave the filemap (their metadata stays)."""
        prefix = folder + os.sep
        filemap = await self.services.archives.filemap()
        gone = [path for path in filemap if path.startswith(prefix)]
        for path in gone:
            self._seen.pop(path, None)
        if gone:
            await self.services.importer.forget(*gone)

    # -- waiting for files to settle -----------------------------------------------------------
    def _schedule(self, path: str, quick: bool, delay: float | None = None) -> None:
        if quick:
            self._quick.add(path)
        call = self._pending.pop(path, None)
        if call is not None and call.active():
            call.cancel()
        if delay is None:
            delay = QUICK_DELAY if path in self._quick else self.settle_delay
        self._pending[path] = self._clock.callLater(delay, self._due, path, self._epoch)

    def _due(self, path: str, epoch: int) -> None:
        self._pending.pop(path, None)
        if epoch == self._epoch and self.active:
            self._track(Deferred.fromCoroutine(self._check(path, epoch)))

    async def _check(self, path: str, epoch: int) -> None:
        """Import ``path`` once it is complete: closed after writing, moved in, or unchanged
        over ``settle_delay`` (a copy that is still growing waits)."""
        info = await self.services.pools.run_io(_stat, path)
        if epoch != self._epoch or path in self._pending:
            return  # stopped meanwhile, or a newer event rescheduled it
        if info is None:
            self._last_stat.pop(path, None)
            self._quick.discard(path)
            return
        quick = path in self._quick
        if not quick and self._last_stat.get(path) != info:
            self._last_stat[path] = info
            self._schedule(path, quick=False)
            return
        self._quick.discard(path)
        self._last_stat.pop(path, None)
        await self._import({path: info}, epoch)

    # -- bookkeeping ---------------------------------------------------------------------------
    def _track(self, d: Deferred[Any]) -> Deferred[Any]:
        self._busy.add(d)

        def done(result: Any) -> None:
            self._busy.discard(d)
            if isinstance(result, Failure) and not result.check(StoreUnavailable):
                log.failure("File watcher task failed", result)

        d.addBoth(done)
        return d

    @property
    def idle(self) -> bool:
        """Nothing pending, importing or scanning (tests and benchmarks wait for this)."""
        return not self._pending and not self._busy and self._scan is None

    async def when_idle(self, timeout: float = 30.0, step: float = 0.02) -> None:
        deadline = time.monotonic() + timeout
        while not self.idle:
            if time.monotonic() > deadline:
                raise TimeoutError("the file watcher did not settle")
            await deferLater(self.services.reactor, step, lambda: None)
