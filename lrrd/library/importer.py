"""Bringing files into the library: the watcher's, the uploads' and the downloads' one import path.

It follows Shinobu's ``add_to_filemap`` (LRR-NOTES §7): hash the file, then under the
``archive-write:<id>`` lock decide whether the file is new, a known archive under a new path
(rename, move or copy: keep the metadata, update ``file``/``name``), or a known path whose content
changed (a new id that inherits the metadata). New archives get ``add_archive_to_redis``, the
``date_added`` tag, ``pagecount``, ``arcsize`` and an HQ cover, then the auto-plugins hook.
Hashing, archive listing and image work run in the pools; several files are imported at once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Awaitable, Callable, Iterable

from twisted.internet.defer import Deferred, DeferredSemaphore
from twisted.logger import Logger

from lrrd.library.formats import ArchiveError
from lrrd.library.identity import EmptyArchiveError, compute_id
from lrrd.library.tank_upkeep import set_archive_tags
from lrrd.library.thumbnails import (
    ThumbnailError,
    move_thumbnails,
    open_reader,
    store_cover,
    thumbnail_format,
    write_cover,
)
from lrrd.logtext import log_text
from lrrd.store.archives import ArchiveNotFound, as_text, filename_stem, nfc
from lrrd.store.config import flag
from lrrd.store.locks import LockBusy
from lrrd.store.redis import gather

if TYPE_CHECKING:
    from lrrd.services import Services

__all__ = [
    "AutoPluginReport",
    "ImportResult",
    "Importer",
    "Probe",
    "probe_file",
    "read_contents",
]

log = Logger()

#: Shinobu holds the archive's write lock this long at most (seconds).
IMPORT_LOCK_TTL = 60
#: How long the import settings (date_added, thumbnail format) are reused, in seconds.
OPTIONS_TTL = 1.0


@dataclass(frozen=True)
class _ImportOptions:
    date_added: bool
    use_mtime: bool
    fmt: str


@dataclass(frozen=True)
class Probe:
    """What hashing a file tells: its id, size and modification time."""

    arcid: str
    size: int
    mtime: int


@dataclass(frozen=True)
class Contents:
    """What listing an archive tells: its page count and, if asked, the bytes of page 1."""

    pagecount: int
    first_page: bytes | None


@dataclass(frozen=True)
class ImportResult:
    """How one file went. ``status`` is one of:

    ``added`` (a new archive), ``moved`` (a known id at a new path: file/name updated),
    ``modified`` (a known path with new content: the metadata moved to the new id),
    ``unchanged``, ``skipped`` (unreadable, empty, vanished or not an archive), ``locked``
    (another writer holds ``archive-write:<id>``; try again later).
    """

    path: str
    status: str
    arcid: str | None = None
    message: str = ""
    old_id: str | None = None


@dataclass(frozen=True)
class AutoPluginReport:
    """What the auto-plugins did to a new archive (the upload message quotes it)."""

    succeeded: int = 0
    failed: int = 0
    tags_added: int = 0
    new_title: str = ""

    def message(self) -> str:
        return (f"{self.succeeded} Plugins used successfully, {self.failed} Plugins failed, "
                f"{self.tags_added} tags added. ")


AutoPlugins = Callable[[str], Awaitable[AutoPluginReport]]


def probe_file(path: str) -> Probe:
    """Stat and hash a file (blocking). Raises OSError or EmptyArchiveError."""
    info = os.stat(path)
    return Probe(arcid=compute_id(path), size=info.st_size, mtime=int(info.st_mtime))


def read_contents(services: Services, path: str, first_page: bool) -> Contents:
    """List an archive's pages and read page 1 if asked (blocking). Raises ArchiveError."""
    with open_reader(services, path) as reader:
        pages = reader.pages()
        data = reader.read(pages[0]) if first_page and pages else None
        return Contents(pagecount=len(pages), first_page=data)


@dataclass
class Importer:
    """Imports files into the store; one per process (``Services.importer``).

    ``covers`` turns cover making off for bulk imports (thumbnails can be built later by
    ``regen_all_thumbnails``); ``concurrency`` bounds how many files are in flight at once.
    """

    services: Services
    concurrency: int = 8
    covers: bool = True
    #: Issue 6 sets this to run the enabled metadata plugins on every new archive.
    auto_plugins: AutoPlugins | None = None
    _semaphore: DeferredSemaphore = field(init=False)
    _options_cache: tuple[float, _ImportOptions] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self._semaphore = DeferredSemaphore(max(1, self.concurrency))

    # -- many files ----------------------------------------------------------------------------
    async def import_many(self, paths: Iterable[str]) -> list[ImportResult]:
        """Import several files, ``concurrency`` at a time; results in the order given."""
        deferreds = [self._semaphore.run(self._import_deferred, path) for path in paths]
        return [await d for d in deferreds]

    def _import_deferred(self, path: str) -> Deferred[ImportResult]:
        return Deferred.fromCoroutine(self.import_file(path))

    # -- one file -------------------------------------------------------------------------------
    async def import_file(self, path: str) -> ImportResult:
        """Shinobu's ``add_to_filemap`` for one absolute path; never raises for a bad file."""
        pools = self.services.pools
        try:
            probe: Probe = await pools.run_io(probe_file, path)
        except EmptyArchiveError:
            log.warn("Skipping {path}: the file is empty", path=log_text(path))
            return ImportResult(path, "skipped", message="empty file")
        except OSError as exc:
            log.warn("Skipping {path}: {error}", path=log_text(path),
                     error=log_text(exc.strerror or str(exc)))
            return ImportResult(path, "skipped", message=str(exc))
        try:
            async with self.services.locks.held(f"archive-write:{probe.arcid}", IMPORT_LOCK_TTL):
                return await self._update_filemap_entry(path, probe)
        except LockBusy:
            log.warn("{path}: archive {arcid} is locked by another writer; not importing now",
                     path=log_text(path), arcid=probe.arcid)
            return ImportResult(path, "locked", probe.arcid)

    async def _update_filemap_entry(self, path: str, probe: Probe) -> ImportResult:
        archives = self.services.archives
        arcid = probe.arcid
        known_id, fields = await gather(Deferred.fromCoroutine(archives.filemap_get(path)),
                                        Deferred.fromCoroutine(archives.get(arcid)))
        if known_id is not None and known_id != arcid and fields is None \
                and await archives.exists(known_id):
            return await self._modified(path, probe, known_id)
        if fields is None:
            return await self._add_new(path, probe)
        return await self._known(path, probe, fields, known_id)

    async def _known(self, path: str, probe: Probe, fields: dict[str, object],
                     known_id: str | None) -> ImportResult:
        """A known id: a rename, move or copy points the archive at this path; title kept."""
        archives = self.services.archives
        arcid = probe.arcid
        if known_id != arcid:
            await archives.filemap_set(path, arcid)
        updates: dict[str, str] = {}
        if as_text(fields.get("file")) != path:
            updates["file"] = path
        name = nfc(filename_stem(path))
        if as_text(fields.get("name")) != name:
            updates["name"] = name
        if updates:
            await archives.set_fields(arcid, updates, invalidate=True)
        await self._fill_missing(arcid, path, probe, fields)
        if updates:
            log.info("{path} is known archive {arcid}: file and name updated", path=log_text(path),
                     arcid=arcid)
            return ImportResult(path, "moved", arcid, old_id=known_id)
        return ImportResult(path, "unchanged", arcid)

    async def _fill_missing(self, arcid: str, path: str, probe: Probe,
                            fields: dict[str, object]) -> None:
        """Shinobu fills ``arcsize``/``pagecount`` of a known archive when they are missing."""
        updates: dict[str, str] = {}
        if not as_text(fields.get("arcsize")):
            updates["arcsize"] = str(probe.size)
        if not as_text(fields.get("pagecount")):
            try:
                contents = await self.services.pools.run_io(read_contents, self.services, path,
                                                            False)
                updates["pagecount"] = str(contents.pagecount)
            except (ArchiveError, OSError):
                pass
        if updates:
            await self.services.archives.set_fields(arcid, updates)

    async def _modified(self, path: str, probe: Probe, old_id: str) -> ImportResult:
        """A known path with new content: move the metadata to the new id (``change_archive_id``)."""
        archives = self.services.archives
        arcid = probe.arcid
        try:
            contents = await self.services.pools.run_io(read_contents, self.services, path, False)
        except (ArchiveError, OSError) as exc:
            log.warn("Skipping modified {path}: {error}", path=log_text(path),
                     error=log_text(str(exc)))
            return ImportResult(path, "skipped", arcid, str(exc), old_id)
        if not await archives.change_id(old_id, arcid):
            # Someone added the new id meanwhile: it is then simply a known archive here.
            fields = await archives.get(arcid)
            if fields is None:
                return ImportResult(path, "skipped", arcid, "archive vanished", old_id)
            return await self._known(path, probe, fields, old_id)
        await archives.set_fields(arcid, {"arcsize": str(probe.size),
                                          "pagecount": str(contents.pagecount),
                                          "file": path}, invalidate=True)
        await archives.filemap_set(path, arcid)
        await move_thumbnails(self.services, old_id, arcid)
        log.info("{path} changed: archive {old} is now {new}", path=log_text(path), old=old_id,
                 new=arcid)
        return ImportResult(path, "modified", arcid, old_id=old_id)

    async def _add_new(self, path: str, probe: Probe) -> ImportResult:
        """A file never seen: read it first, so an unreadable one leaves no trace in the store.

        The cover is written before the entry exists, so that the entry, its tags, page count,
        thumbhash and filemap line go to Redis in one script: a new file costs one round trip.
        """
        services = self.services
        try:
            contents: Contents = await services.pools.run_io(
                read_contents, services, path, self.covers)
        except (ArchiveError, OSError) as exc:
            log.warn("Skipping {path}: {error}", path=log_text(path), error=log_text(str(exc)))
            return ImportResult(path, "skipped", probe.arcid, str(exc))
        options = await self._options()
        digest = None
        if contents.first_page is not None:
            try:
                _, digest = await write_cover(services, probe.arcid, contents.first_page,
                                              options.fmt)
            except ThumbnailError as exc:
                log.warn("{path}: no cover: {error}", path=log_text(path), error=log_text(str(exc)))
        added = await services.archives.add_imported(
            probe.arcid, path, arcsize=probe.size, pagecount=contents.pagecount,
            tags=self._date_added(options, probe), thumbhash=digest)
        if not added:
            # Created meanwhile by a writer that took no lock: it is a known archive now.
            fields = await services.archives.get(probe.arcid)
            if fields is not None:
                return await self._known(path, probe, fields, None)
        await self.run_auto_plugins(probe.arcid)
        log.debug("Added {path} as {arcid}", path=log_text(path), arcid=probe.arcid)
        return ImportResult(path, "added", probe.arcid)

    async def _options(self) -> _ImportOptions:
        """The settings an import reads, fetched at most once a second (a bulk import would
        otherwise read them once per file)."""
        now = float(self.services.reactor.seconds())
        cached = self._options_cache
        if cached is not None and now - cached[0] < OPTIONS_TTL:
            return cached[1]
        config = await self.services.config.get("usedateadded", "usedatemodified",
                                                "jxlthumbpages")
        options = _ImportOptions(
            date_added=flag(config["usedateadded"]),
            use_mtime=flag(config["usedatemodified"]),
            fmt=thumbnail_format(flag(config["jxlthumbpages"])),
        )
        self._options_cache = (now, options)
        return options

    def refresh_options(self) -> None:
        """Read the import settings afresh on the next file (after a settings change)."""
        self._options_cache = None

    def _date_added(self, options: _ImportOptions, probe: Probe) -> str:
        if not options.date_added:
            return ""
        when = probe.mtime if options.use_mtime else int(self.services.reactor.seconds())
        return f"date_added:{when}"

    # -- shared with uploads and downloads ------------------------------------------------------
    async def complete(self, arcid: str, path: str, *, probe: Probe | None = None,
                       contents: Contents | None = None) -> AutoPluginReport:
        """``add_new_file`` after ``add_archive_to_redis``: date_added, pagecount, arcsize,
        the cover, then the auto-plugins. Uploads call it once their file is in place.
        """
        services = self.services
        archives = services.archives
        if probe is None:
            probe = await services.pools.run_io(probe_file, path)
        if contents is None:
            try:
                contents = await services.pools.run_io(read_contents, services, path, self.covers)
            except (ArchiveError, OSError) as exc:
                log.warn("{path}: cannot count pages: {error}", path=log_text(path),
                         error=log_text(str(exc)))
                contents = None
        date_added = self._date_added(await self._options(), probe)
        if date_added:
            await set_archive_tags(archives, services.tankoubons, arcid, date_added, append=True)
        fields: dict[str, str] = {"arcsize": str(probe.size)}
        if contents is not None:
            fields["pagecount"] = str(contents.pagecount)
        await archives.set_fields(arcid, fields)
        await archives.filemap_set(path, arcid)
        if contents is not None and contents.first_page is not None:
            try:
                await store_cover(services, arcid, contents.first_page,
                                  (await self._options()).fmt)
            except ThumbnailError as exc:
                log.warn("{path}: no cover: {error}", path=log_text(path), error=log_text(str(exc)))
        report = await self.run_auto_plugins(arcid)
        log.info("Added {path} as {arcid}", path=log_text(path), arcid=arcid)
        return report

    async def run_auto_plugins(self, arcid: str) -> AutoPluginReport:
        """The call point of the auto-plugins (``exec_enabled_plugins_on_file``): none yet."""
        if self.auto_plugins is None:
            return AutoPluginReport()
        try:
            return await self.auto_plugins(arcid)
        except ArchiveNotFound:
            return AutoPluginReport()
        except Exception:
            log.failure("Auto-plugins failed on {arcid}", arcid=arcid)
            return AutoPluginReport(failed=1)

    async def forget(self, *paths: str) -> None:
        """Files gone from disk leave the filemap only; their metadata stays (§7)."""
        await self.services.archives.filemap_delete(*paths)
        if paths:
            await self.services.archives.invalidate_search_cache()
