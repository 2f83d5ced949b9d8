"""The archives area: listing, metadata, pages, downloads, progress, flags, ToC and thumbnails.

Every operation of the spec's ``archives`` tag but the upload. Archive files are only ever touched
in the io pool (stat, reads, unlinks) and images in the image pool; the handlers themselves only
talk to Redis and shuffle bytes.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from typing import Any, Awaitable, Callable, Coroutine, Iterable, NamedTuple, Protocol, Sequence
from urllib.parse import quote

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.logger import Logger
from twisted.web.iweb import IRequest

from lrrd.api.area import area_app, field
from lrrd.api.errors import JSON_TYPE, ApiError, api_response, write_json
from lrrd.api.root import ACCESS_ATTR, AUTHENTICATED_ATTR
from lrrd.api.streaming import send_file
from lrrd.images import ImageError, cover_path, page_thumb_path, resize_page
from lrrd.jobs.registry import UnknownTask
from lrrd.library.tank_upkeep import delete_archive, set_archive_tags
from lrrd.library.thumbnails import ThumbnailError, thumbnail_format
from lrrd.library.reader import (
    ArchiveError,
    ArchiveMissing,
    ArchiveReaders,
    BadPageName,
    PageData,
    PageNotFound,
    Stamp,
    etag_matches,
    file_stamp,
)
from lrrd.pools import Pools
from lrrd.store.archives import (
    ArchiveNotFound,
    ArchiveStore,
    archive_json,
    as_int,
    as_text,
    normalize_title,
)
from lrrd.store.categories import CategoryStore
from lrrd.store.config import ConfigStore, flag
from lrrd.store.config import as_int as config_int
from lrrd.store.locks import LockBusy, LockStore
from lrrd.store.redis import gather
from lrrd.store.tankoubons import TankoubonStore

log = Logger()

NO_SUCH_ID = "This ID doesn't exist on the server."

#: Mojolicious's MIME table (what the original answers for a page's extension), plus the page
#: image types it lacks, so every image page gets an image type rather than a download.
MIME_TYPES = {
    "gif": "image/gif",
    "jpeg": "image/jpeg",
    "jpg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "svg": "image/svg+xml",
    "ico": "image/x-icon",
    "bmp": "image/bmp",
    "jfif": "image/jpeg",
    "avif": "image/avif",
    "heif": "image/heif",
    "heic": "image/heic",
    "jxl": "image/jxl",
    "pdf": "application/pdf",
    "zip": "application/zip",
    "txt": "text/plain;charset=UTF-8",
}

#: Pages are immutable for a given ETag; a changed file changes the ETag and clients revalidate.
PAGE_CACHE_CONTROL = b"max-age=31536000"
THUMB_CACHE_CONTROL = b"max-age=3600"

NO_THUMB = os.path.join(os.path.dirname(os.path.dirname(__file__)), "static", "noThumb.png")

#: How many archive files one io-pool task stats when listing every archive.
STAT_BATCH = 256


class JobQueue(Protocol):
    """What the thumbnail endpoints need of the job queue (``lrrd.jobs``)."""

    async def enqueue(self, task: str, args: Sequence[Any], priority: int = 0,
                      attempts: int = 1) -> int: ...

    async def status(self, job_id: int) -> dict[str, Any] | None: ...


def mime_for(name: str) -> str:
    """Content type from the requested name's extension, as the original picks it."""
    base = name.rsplit("/", 1)[-1]
    ext = base.rsplit(".", 1)[-1].lower() if "." in base else ""
    return MIME_TYPES.get(ext, "application/octet-stream")


def _quoted(name: str) -> bytes:
    """A header parameter value: quoted, with quotes and backslashes escaped, UTF-8 bytes."""
    return ('"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"').encode("utf-8")


def disposition(kind: str, filename: str) -> bytes:
    """``attachment;filename="..."`` as the original's RenderFile writes it, plus RFC 6266's
    ``filename*`` when the name is not ASCII (browsers then use that)."""
    value = kind.encode("ascii") + b";filename=" + _quoted(filename)
    if not filename.isascii():
        value += b"; filename*=UTF-8''" + quote(filename, safe="").encode("ascii")
    return value


def page_url(arcid: str, name: str, base_url: str = "") -> str:
    """LRR-NOTES §3.5: every byte outside ``A-Za-z0-9-._~`` percent-encoded, but ``/`` kept;
    behind ``base_url`` the URL starts with it, as the original's ``url_for`` does."""
    return f"{base_url}/api/archives/{arcid}/page?path={quote(name, safe='/')}"


def existing_files(paths: Iterable[str]) -> list[bool]:
    """Which of ``paths`` are files on disk (blocking; io pool)."""
    out = []
    for path in paths:
        try:
            out.append(bool(path) and os.path.isfile(path))
        except (OSError, ValueError):
            out.append(False)
    return out


def _first_existing(candidates: Sequence[str]) -> str | None:
    for candidate in candidates:
        if os.path.isfile(candidate):
            return candidate
    return None


def _read_file(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def _missing_page_thumbs(thumbdir: str, arcid: str, pagecount: int, exts: Sequence[str]) -> bool:
    for page in range(1, pagecount + 1):
        if not any(os.path.isfile(page_thumb_path(thumbdir, arcid, page, ext)) for ext in exts):
            return True
    return False


def _delete_files(path: str, thumbdir: str, arcid: str) -> bool:
    """Unlink the archive and its thumbnails; True when the archive file was there to delete."""
    import shutil

    deleted = False
    if path and os.path.isfile(path):
        os.unlink(path)
        deleted = True
    try:
        for ext in ("jpg", "jxl", "webp"):
            try:
                os.unlink(cover_path(thumbdir, arcid, ext))
            except FileNotFoundError:
                pass
        shutil.rmtree(os.path.join(thumbdir, arcid[:2], arcid), ignore_errors=True)
    except ValueError:
        pass  # not a hex id: it has no thumbnails
    return deleted


class _ServedPage(NamedTuple):
    """A page as last served: bytes (resized or not), headers' values, and the file version."""

    etag: str
    data: bytes
    content_type: bytes
    path: str
    stamp: Stamp


class _PageMemory:
    """Recently served pages in memory, bounded in bytes, least recently used dropped first.

    The original keeps a page cache too (500 MB by default); readers turn through pages and
    re-fetch them, and a page served from here costs no thread hop at all. Used only on the
    reactor thread.
    """

    def __init__(self, budget: int) -> None:
        self._budget = budget
        self._used = 0
        self._items: OrderedDict[tuple[str, str, str], tuple[_ServedPage, int]] = OrderedDict()

    def get(self, key: tuple[str, str, str]) -> _ServedPage | None:
        item = self._items.get(key)
        if item is None:
            return None
        self._items.move_to_end(key)
        return item[0]

    def put(self, key: tuple[str, str, str], page: _ServedPage, size: int) -> None:
        old = self._items.pop(key, None)
        if old is not None:
            self._used -= old[1]
        if size > self._budget // 8:
            return
        self._items[key] = (page, size)
        self._used += size
        while self._used > self._budget and self._items:
            _, (_, dropped) = self._items.popitem(last=False)
            self._used -= dropped

    def forget(self, arcid: str) -> None:
        for key in [key for key in self._items if key[0] == arcid]:
            self._used -= self._items.pop(key)[1]


class ArchivesApi:
    """The archive operations, over the archive store, the reader cache and the pools."""

    app = area_app()

    #: How long page requests trust a remembered archive path and the resize settings. A
    #: settings change reaches pages within this time; tests set these to 0.
    path_ttl = 5.0
    settings_ttl = 1.0
    #: How long a page in memory is served without checking its file again (a stat).
    page_ttl = 1.0

    def __init__(
        self,
        archives: ArchiveStore,
        config: ConfigStore,
        locks: LockStore,
        pools: Pools,
        readers: ArchiveReaders,
        thumbdir: str,
        categories: CategoryStore | None = None,
        tankoubons: TankoubonStore | None = None,
        jobs: JobQueue | None = None,
        thumbnails: Callable[[str, int], Awaitable[Any]] | None = None,
        clock: Any = None,
        page_memory: int = 128 * 1024 * 1024,
        search: Any = None,
        base_url: str = "",
    ) -> None:
        self._archives = archives
        #: The reverse proxy's sub-path, put in front of the page URLs this area hands out.
        self._base_url = base_url
        #: The search area's service: once its index is loaded, the listings come from it.
        self._search = search
        self._config = config
        self._locks = locks
        self._pools = pools
        self._readers = readers
        self._thumbdir = thumbdir
        self._categories = categories
        self._tankoubons = tankoubons
        #: The tanks a tag edit or a deletion re-imputes: they exist in Redis whether or not
        #: this area was given their store to list them.
        self._tank_upkeep = tankoubons if tankoubons is not None else TankoubonStore(
            archives._redis, clock=clock)
        self._jobs = jobs
        self._thumbnails = thumbnails
        self._clock = clock
        self._memory = _PageMemory(page_memory)
        #: arcid -> (path, file stamp, monotonic time of that stat): see _still_valid.
        self._checked: dict[str, tuple[str, Stamp, float]] = {}
        self._paths: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._settings: tuple[tuple[bool, int, int], float] | None = None

    # -- helpers ---------------------------------------------------------------------------------
    def _now(self) -> int:
        return int(self._clock.seconds() if self._clock is not None else time.time())

    async def _file_of(self, arcid: str, operation: str) -> str:
        """The archive's file path, or the original's 400 for an id it does not know."""
        fields = await self._archives.get_fields(arcid, "file")
        path = as_text(fields.get("file"))
        if not path:
            raise ApiError(400, NO_SUCH_ID, operation=operation, envelope="api_response")
        return path

    async def _page_file(self, arcid: str) -> str:
        """The archive's path for page reads, remembered for ``path_ttl`` seconds.

        A reader turns pages at a few per second and each would otherwise cost a Redis round
        trip; a stale path (the file moved) shows as a missing file, and the caller then asks
        Redis again, so a move is never served wrong, only re-looked-up.
        """
        now = self._monotonic()
        cached = self._remembered_path(arcid, now)
        if cached is not None:
            return cached
        fields = await self._archives.get_fields(arcid, "file")
        path = as_text(fields.get("file"))
        if path:
            self._paths[arcid] = (path, now)
            if len(self._paths) > 4096:
                self._paths.popitem(last=False)
        return path

    async def _page_settings(self) -> tuple[bool, int, int]:
        """(enableresize, sizethreshold KB, readerquality), re-read every ``settings_ttl`` s."""
        now = self._monotonic()
        if self._settings is not None and now - self._settings[1] < self.settings_ttl:
            return self._settings[0]
        values = await self._config.get("enableresize", "sizethreshold", "readerquality")
        settings = (flag(values["enableresize"]), config_int(values["sizethreshold"], 1000),
                    min(100, max(1, config_int(values["readerquality"], 50))))
        self._settings = (settings, now)
        return settings

    @staticmethod
    def _monotonic() -> float:
        return time.monotonic()

    async def _require(self, arcid: str, operation: str) -> None:
        if not await self._archives.exists(arcid):
            raise ApiError(400, NO_SUCH_ID, operation=operation, envelope="api_response")

    def _locked(self, arcid: str) -> Any:
        """The original's per-archive write lock; busy means 423 at once, never a wait."""
        return self._locks.held(f"archive-write:{arcid}")

    @staticmethod
    def _lock_error(operation: str, arcid: str) -> ApiError:
        return ApiError(423, f"Locked resource: {arcid}.", operation=operation)

    async def _thumb_exts(self) -> list[str]:
        """The preferred thumbnail format first, then the others (LRR-NOTES §3.6)."""
        values = await self._config.get("jxlthumbpages")
        return ["jxl", "jpg"] if thumbnail_format(flag(values["jxlthumbpages"])) == "jxl" else ["jpg", "jxl"]

    # -- listing ---------------------------------------------------------------------------------
    @app.route("/archives", methods=["GET"], endpoint="getAllArchives")
    async def get_all_archives(self, request: IRequest) -> bytes:
        """Every archive whose file exists; files are stat'ed in the io pool in batches."""
        body = await self._search.all_archives_body() if self._search is not None else None
        if body is not None:
            request.setHeader(b"content-type", JSON_TYPE)
            return body
        ids = await self._archives.ids()
        hashes = await self._archives.get_many(ids)
        rows = [(arcid, fields) for arcid, fields in zip(ids, hashes) if fields]
        paths = [as_text(fields.get("file")) for _, fields in rows]
        batches = [paths[i:i + STAT_BATCH] for i in range(0, len(paths), STAT_BATCH)]
        results = await gather(*(self._pools.run_io(existing_files, batch) for batch in batches))
        exists = [flag_ for batch in results for flag_ in batch]
        body = [archive_json(arcid, fields) for (arcid, fields), ok in zip(rows, exists) if ok]
        return write_json(request, body)

    @app.route("/archives/untagged", methods=["GET"], endpoint="getUntaggedArchives")
    async def get_untagged(self, request: IRequest) -> bytes:
        body = await self._search.untagged_body() if self._search is not None else None
        if body is not None:
            request.setHeader(b"content-type", JSON_TYPE)
            return body
        return write_json(request, await self._archives.untagged_ids())

    # -- metadata --------------------------------------------------------------------------------
    async def _metadata(self, request: IRequest, arcid: str) -> bytes:
        fields = await self._archives.get(arcid)
        path = as_text((fields or {}).get("file"))
        if not fields or not (await self._pools.run_io(existing_files, [path]))[0]:
            # The original emits nothing for an archive whose file is gone, hence "doesn't exist".
            raise ApiError(400, NO_SUCH_ID, operation="metadata", envelope="api_response")
        return write_json(request, archive_json(arcid, fields))

    @app.route("/archives/<string:arcid>", methods=["GET"], endpoint="getArchive")
    async def get_archive(self, request: IRequest, arcid: str) -> bytes:
        return await self._metadata(request, arcid)

    @app.route("/archives/<string:arcid>/metadata", methods=["GET"], endpoint="getArchiveMetadata")
    async def get_archive_metadata(self, request: IRequest, arcid: str) -> bytes:
        return await self._metadata(request, arcid)

    @app.route("/archives/<string:arcid>/metadata", methods=["PUT"],
               endpoint="updateArchiveMetadata")
    async def update_metadata(self, request: IRequest, arcid: str) -> bytes:
        """LRR-NOTES §9.11: title and/or tags required; a summary alone is refused."""
        title = field(request, "title")
        tags = field(request, "tags")
        summary = field(request, "summary")
        operation = "update_metadata"
        if title is None and tags is None:
            raise ApiError(400, "No metadata parameters (Please supply title, tags or summary)",
                           operation=operation, envelope="api_response")
        await self._require(arcid, operation)
        try:
            async with self._locked(arcid):
                if title is not None:
                    await self._archives.set_title(arcid, title)
                if tags is not None:
                    await set_archive_tags(self._archives, self._tank_upkeep, arcid,
                                           tags.strip())
                if summary is not None:
                    await self._archives.set_summary(arcid, summary)
                current = await self._archives.get_fields(arcid, "title", "name")
        except LockBusy:
            raise self._lock_error(operation, arcid) from None
        except ArchiveNotFound:
            raise ApiError(400, NO_SUCH_ID, operation=operation, envelope="api_response") from None
        shown = normalize_title(as_text(current.get("title"))) or as_text(current.get("name"))
        return write_json(request, api_response(operation, "", f'Updated metadata for "{shown}"!'))

    @app.route("/archives/<string:arcid>", methods=["DELETE"], endpoint="deleteArchive")
    async def delete_archive(self, request: IRequest, arcid: str) -> bytes:
        """Deletes the DB entry, the file and the thumbnails (LRR-NOTES §9.11)."""
        operation = "delete_archive"
        try:
            async with self._locked(arcid):
                fields = await self._archives.get_fields(arcid, "file")
                path = as_text(fields.get("file"))
                existed = await delete_archive(self._archives, self._tank_upkeep, arcid)
                if path:
                    await self._archives.filemap_delete(path)
        except LockBusy:
            raise self._lock_error(operation, arcid) from None
        self._readers_invalidate(arcid)
        self._paths.pop(arcid, None)
        self._memory.forget(arcid)
        self._checked.pop(arcid, None)
        deleted = False
        if existed:
            try:
                deleted = await self._pools.run_io(_delete_files, path, self._thumbdir, arcid)
            except OSError as exc:
                log.warn("could not delete {path}: {error}", path=path, error=exc)
        return write_json(request, {
            "operation": operation,
            "id": arcid,
            "filename": path if deleted else "0",
            "success": 1 if deleted else 0,
        })

    def _readers_invalidate(self, arcid: str) -> None:
        # Closing readers may close files: keep it off the reactor.
        self._pools.run_io(self._readers.invalidate, arcid)

    # -- files and pages -------------------------------------------------------------------------
    @app.route("/archives/<string:arcid>/download", methods=["GET"], endpoint="downloadArchive")
    async def download(self, request: IRequest, arcid: str) -> Any:
        path = await self._file_of(arcid, "serve_file")
        name = os.path.basename(path)
        try:
            await send_file(request, path, self._pools, {
                b"content-type": b"application/x-download;name=" + _quoted(name),
                b"content-disposition": disposition("attachment", name),
            })
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ApiError(404, "The archive file is missing on the server.",
                           operation="serve_file", envelope="api_response") from None
        except OSError as exc:
            raise ApiError(500, f"The archive file cannot be read: {exc.strerror}",
                           operation="serve_file", envelope="api_response") from None
        return None

    @app.route("/archives/<string:arcid>/files", methods=["GET"], endpoint="getFiles")
    async def get_files(self, request: IRequest, arcid: str) -> bytes:
        """Page URLs in reading order; also records the page count (LRR-NOTES §3.5)."""
        operation = "get_file_list"
        fields = await self._archives.get_fields(arcid, "file", "pagecount")
        path = as_text(fields.get("file"))
        if not path:
            raise ApiError(400, NO_SUCH_ID, operation=operation, envelope="api_response")
        try:
            pages = await self._pools.run_io(self._readers.pages, arcid, path)
        except ArchiveMissing:
            raise ApiError(404, "The archive file is missing on the server.",
                           operation=operation, envelope="api_response") from None
        except ArchiveError as exc:
            log.warn("cannot list pages of {arcid}: {error}", arcid=arcid, error=exc)
            raise ApiError(400, str(exc), operation=operation, envelope="api_response") from None
        if as_int(fields.get("pagecount")) != len(pages) or fields.get("pagecount") is None:
            try:
                await self._archives.set_fields(arcid, {"pagecount": len(pages)})
            except ArchiveNotFound:
                pass
        return write_json(request, {"pages": [page_url(arcid, name, self._base_url)
                                              for name in pages]})

    @app.route("/archives/<string:arcid>/page", methods=["GET"], endpoint="getPage")
    def get_page(self, request: IRequest, arcid: str) -> Any:
        """One page, read from the archive member of that name (never a filesystem path)."""
        return self.serve_page(request, arcid, field(request, "path") or "")

    def serve_page(self, request: IRequest, arcid: str, name: str, label: bytes = b"page") -> Any:
        """Answer ``request`` with page ``name`` of ``arcid``: bytes, or a Deferred of them.

        ``/page`` and OPDS-PSE both serve through here, so resizing, ETags and the page memory
        apply alike; ``label`` is the name the headers give the file (the original's is the
        last segment of the route: ``page`` or ``pse``).

        The hot path (a page served moments ago, path and settings remembered) answers
        synchronously: no Redis, no thread hop, no coroutine. Everything else goes through
        :meth:`_read_page`.
        """
        raw_inm = request.getHeader(b"if-none-match")
        if_none_match = raw_inm.decode("latin-1") if isinstance(raw_inm, bytes) else raw_inm
        now = self._monotonic()
        path = self._remembered_path(arcid, now)
        settings = self._settings
        if path is not None and settings is not None and now - settings[1] < self.settings_ttl:
            resize, threshold, quality = settings[0]
            variant = f"resize:{threshold}:{quality}" if resize else ""
            remembered = self._memory.get((arcid, name, variant))
            if remembered is not None and self._still_valid(arcid, remembered, now):
                return self._page_response(request, remembered.etag, remembered, if_none_match,
                                           label)
        return Deferred.fromCoroutine(self._read_page(request, arcid, name, if_none_match, label))

    def _still_valid(self, arcid: str, page: _ServedPage, now: float) -> bool:
        """Whether the archive file was stat'ed within ``page_ttl`` and is the page's version.

        One stat per archive and interval keeps every remembered page of it valid, so a reader
        turning pages costs one io-pool trip a second, not one per page.
        """
        checked = self._checked.get(arcid)
        return (checked is not None and now - checked[2] < self.page_ttl
                and checked[0] == page.path and checked[1] == page.stamp)

    def _remember_check(self, arcid: str, path: str, stamp: Stamp) -> tuple[str, Stamp, float]:
        checked = (path, stamp, self._monotonic())
        if len(self._checked) > 4096 and arcid not in self._checked:
            self._checked.clear()  # rare, and only costs one stat per archive afterwards
        self._checked[arcid] = checked
        return checked

    def _remembered_path(self, arcid: str, now: float) -> str | None:
        cached = self._paths.get(arcid)
        if cached is not None and now - cached[1] < self.path_ttl:
            return cached[0]
        return None

    async def _read_page(self, request: IRequest, arcid: str, name: str,
                         if_none_match: str | None, label: bytes = b"page") -> bytes:
        operation = "serve_page"
        path, settings = await _both(self._page_file(arcid), self._page_settings())
        if not path:
            raise ApiError(400, NO_SUCH_ID, operation=operation, envelope="api_response")
        resize, threshold, quality = settings
        variant = f"resize:{threshold}:{quality}" if resize else ""
        key = (arcid, name, variant)
        remembered = self._memory.get(key)
        if remembered is not None and remembered.path == path:
            checked = self._checked.get(arcid)
            if not self._still_valid(arcid, remembered, self._monotonic()):
                try:
                    stamp = await self._pools.run_io(file_stamp, path)
                except ArchiveMissing:
                    checked = None
                else:
                    checked = self._remember_check(arcid, path, stamp)
            if checked is not None and checked[0] == path and checked[1] == remembered.stamp:
                return self._page_response(request, remembered.etag, remembered, if_none_match,
                                           label)
        try:
            try:
                page: PageData = await self._pools.run_io(
                    self._readers.read, arcid, path, name, if_none_match, variant)
            except ArchiveMissing:
                # The remembered path may be stale (renamed, moved, deleted): ask Redis again.
                self._paths.pop(arcid, None)
                fresh = await self._page_file(arcid)
                if not fresh:
                    raise ApiError(400, NO_SUCH_ID, operation=operation,
                                   envelope="api_response") from None
                if fresh == path:
                    raise
                path = fresh
                page = await self._pools.run_io(
                    self._readers.read, arcid, path, name, if_none_match, variant)
        except BadPageName:
            raise ApiError(400, "Invalid page path.", operation=operation,
                           envelope="api_response") from None
        except PageNotFound:
            raise ApiError(404, f"The page {name!r} doesn't exist in this archive.",
                           operation=operation, envelope="api_response") from None
        except ArchiveMissing:
            self._paths.pop(arcid, None)
            raise ApiError(404, "The archive file is missing on the server.",
                           operation=operation, envelope="api_response") from None
        except ArchiveError as exc:
            log.warn("cannot read page {name!r} of {arcid}: {error}", name=name, arcid=arcid,
                     error=exc)
            raise ApiError(400, str(exc), operation=operation, envelope="api_response") from None
        if page.data is None:
            return self._page_response(request, page.etag, None, b"", label)
        data = page.data
        content_type = mime_for(name)
        if resize and len(data) > threshold * 1024:
            try:
                data = await self._pools.run_image(resize_page, data, quality=quality)
                content_type = "image/jpeg"
            except ImageError as exc:
                log.warn("serving page {name!r} of {arcid} unresized: {error}", name=name,
                         arcid=arcid, error=exc)
        served = _ServedPage(page.etag, data, content_type.encode("ascii"), path, page.stamp)
        self._memory.put(key, served, len(data))
        self._remember_check(arcid, path, page.stamp)
        return self._page_response(request, served.etag, served, if_none_match, label)

    @staticmethod
    def _page_response(request: IRequest, etag: str, served: _ServedPage | None,
                       if_none_match: str | bytes | None, label: bytes = b"page") -> bytes:
        request.setHeader(b"etag", etag.encode("ascii"))
        request.setHeader(b"cache-control", PAGE_CACHE_CONTROL)
        if served is None or (isinstance(if_none_match, str) and etag_matches(if_none_match, etag)):
            request.setResponseCode(304)
            return b""
        request.setHeader(b"content-type", served.content_type + b';name="' + label + b'"')
        request.setHeader(b"content-disposition", b'inline;filename="' + label + b'"')
        return served.data

    # -- reading state ---------------------------------------------------------------------------
    @app.route("/archives/<string:arcid>/progress/<string:page>", methods=["PUT"],
               endpoint="updateArchiveProgress")
    async def update_progress(self, request: IRequest, arcid: str, page: str) -> bytes:
        """LRR-NOTES §9.4, checks in the original's order; ``force`` skips the range checks."""
        operation = "update_progress"
        access = getattr(request, ACCESS_ATTR, None)
        if access is not None and access.authprogress and not getattr(request, AUTHENTICATED_ATTR, False):
            raise ApiError(401, "This operation requires authentication.", operation=operation)
        settings = await self._config.get("localprogress", "authprogress")
        if flag(settings["localprogress"]) and not flag(settings["authprogress"]):
            raise ApiError(400, "Server-side Progress Tracking is disabled on this instance.",
                           operation=operation, envelope="api_response")
        force = (field(request, "force") or "0") != "0"  # Perl truth: "" and "0" are false
        pagecount = as_int((await self._archives.get_fields(arcid, "pagecount")).get("pagecount"))
        number = int(page)
        if not force:
            if pagecount <= 0:
                raise ApiError(400, "Archive doesn't have a total page count recorded yet.",
                               operation=operation, envelope="api_response")
            if not 1 <= number <= pagecount:
                raise ApiError(400, "Invalid progress value.", operation=operation,
                               envelope="api_response")
        now = self._now()
        try:
            async with self._locked(arcid):
                await self._archives.update_progress(arcid, number, now)
        except LockBusy:
            raise self._lock_error(operation, arcid) from None
        except ArchiveNotFound:
            raise ApiError(400, NO_SUCH_ID, operation=operation, envelope="api_response") from None
        return write_json(request, {"operation": operation, "id": arcid, "page": number,
                                    "lastreadtime": now, "success": 1})

    async def _set_isnew(self, arcid: str, operation: str, value: bool) -> None:
        try:
            async with self._locked(arcid):
                await self._archives.set_isnew(arcid, value)
        except LockBusy:
            raise self._lock_error(operation, arcid) from None
        except ArchiveNotFound:
            raise ApiError(400, NO_SUCH_ID, operation=operation, envelope="api_response") from None

    @app.route("/archives/<string:arcid>/isnew", methods=["PUT"], endpoint="setNewArchiveFlag")
    async def set_new(self, request: IRequest, arcid: str) -> bytes:
        await self._set_isnew(arcid, "add_new", True)
        return write_json(request, api_response("add_new"))

    @app.route("/archives/<string:arcid>/isnew", methods=["DELETE"], endpoint="clearNewArchiveFlag")
    async def clear_new(self, request: IRequest, arcid: str) -> bytes:
        await self._set_isnew(arcid, "clear_new", False)
        return write_json(request, {"operation": "clear_new", "id": arcid, "success": 1})

    @app.route("/archives/<string:arcid>/toc", methods=["PUT"], endpoint="addArchiveToc")
    async def add_toc(self, request: IRequest, arcid: str) -> bytes:
        operation = "add_toc"
        page, title = field(request, "page"), field(request, "title")
        if page is None or title is None:
            raise ApiError(400, "Missing page and/or title.", operation=operation,
                           envelope="api_response")
        number = int(page)
        await self._toc(arcid, operation, number, title)
        return write_json(request, api_response(operation, "", f"Added ToC entry for page {number}."))

    @app.route("/archives/<string:arcid>/toc", methods=["DELETE"], endpoint="deleteArchiveToc")
    async def remove_toc(self, request: IRequest, arcid: str) -> bytes:
        operation = "remove_toc"
        page = field(request, "page")
        if page is None:
            raise ApiError(400, "Please specify a page to remove", operation=operation,
                           envelope="api_response")
        number = int(page)
        await self._toc(arcid, operation, number, None)
        return write_json(request, api_response(operation, "", f"Removed ToC entry for page {number}."))

    async def _toc(self, arcid: str, operation: str, page: int, title: str | None) -> None:
        await self._require(arcid, operation)
        try:
            async with self._locked(arcid):
                await self._archives.set_toc_entry(arcid, page, title)
        except LockBusy:
            raise self._lock_error(operation, arcid) from None
        except ArchiveNotFound:
            raise ApiError(400, NO_SUCH_ID, operation=operation, envelope="api_response") from None

    # -- membership ------------------------------------------------------------------------------
    @app.route("/archives/<string:arcid>/categories", methods=["GET"], endpoint="getArchiveCategories")
    async def get_categories(self, request: IRequest, arcid: str) -> bytes:
        categories = (await self._categories.categories_of_archive(arcid)
                      if self._categories is not None else [])
        return write_json(request, {"operation": "find_arc_categories", "categories": categories,
                                    "success": 1})

    @app.route("/archives/<string:arcid>/tankoubons", methods=["GET"], endpoint="getArchiveTankoubons")
    async def get_tankoubons(self, request: IRequest, arcid: str) -> bytes:
        tankoubons = (await self._tankoubons.tanks_of_archive(arcid)
                      if self._tankoubons is not None else [])
        return write_json(request, {"operation": "find_arc_tankoubons", "tankoubons": tankoubons,
                                    "success": 1})

    # -- thumbnails ------------------------------------------------------------------------------
    @app.route("/archives/<string:arcid>/thumbnail", methods=["GET"], endpoint="getArchiveThumbnail")
    async def get_thumbnail(self, request: IRequest, arcid: str) -> bytes:
        """LRR-NOTES §3.6: the file, a 202 job with ``no_fallback=true``, else noThumb.png."""
        page = int(field(request, "page") or 0)
        no_fallback = field(request, "no_fallback") == "true"
        exts = await self._thumb_exts()
        try:
            candidates = [str(cover_path(self._thumbdir, arcid, ext) if page == 0
                              else page_thumb_path(self._thumbdir, arcid, page, ext))
                          for ext in exts]
        except ValueError:
            candidates = []  # not a hex id: nothing can exist for it
        found = await self._pools.run_io(_first_existing, candidates) if candidates else None
        if found is not None:
            return await self._send_image(request, found)
        if no_fallback and candidates:
            job = await self._enqueue("thumbnail_task", [self._thumbdir, arcid, page], priority=0,
                                      attempts=3)
            return write_json(request, {"operation": "serve_thumbnail", "success": 1, "job": job},
                              202)
        return await self._send_image(request, NO_THUMB)

    async def _send_image(self, request: IRequest, path: str) -> bytes:
        data = await self._pools.run_io(_read_file, path)
        name = os.path.basename(path)
        request.setHeader(b"content-type", mime_for(name).encode("ascii") + b";name=" + _quoted(name))
        request.setHeader(b"content-disposition", disposition("inline", name))
        request.setHeader(b"cache-control", THUMB_CACHE_CONTROL)
        return data

    async def _enqueue(self, task: str, args: Sequence[Any], priority: int, attempts: int) -> int:
        if self._jobs is None:
            raise ApiError(503, "The job queue is not available.", operation=task)
        try:
            return int(await self._jobs.enqueue(task, list(args), priority=priority,
                                                attempts=attempts))
        except UnknownTask as exc:  # no worker of this process could run it
            raise ApiError(503, f"The {task} job cannot run here: {exc}", operation=task) from None

    @app.route("/archives/<string:arcid>/thumbnail", methods=["PUT"], endpoint="updateArchiveThumbnail")
    async def update_thumbnail(self, request: IRequest, arcid: str) -> bytes:
        """Regenerate the cover from page N (default 1), in HQ, and record its thumbhash."""
        operation = "update_thumbnail"
        page = int(field(request, "page") or 1)
        await self._require(arcid, operation)
        if self._thumbnails is None:
            raise ApiError(503, "Thumbnails are not available.", operation=operation,
                           envelope="api_response")
        try:
            new_path = await self._thumbnails(arcid, page)
        except ThumbnailError as exc:
            raise ApiError(400, str(exc), operation=operation, envelope="api_response") from None
        return write_json(request, {"operation": operation, "new_thumbnail": str(new_path),
                                    "success": 1})

    @app.route("/archives/<string:arcid>/files/thumbnails", methods=["POST"],
               endpoint="queueArchivePageThumbnailExtraction")
    async def queue_page_thumbnails(self, request: IRequest, arcid: str) -> bytes:
        """202 with a (possibly already running) job, or 200 when every page thumbnail exists."""
        operation = "generate_page_thumbnails"
        force = field(request, "force") in ("true", "1")
        fields = await self._archives.get_fields(arcid, "pagecount", "thumbjob")
        pagecount = as_int(fields.get("pagecount"))
        exts = await self._thumb_exts()
        try:
            missing = force or await self._pools.run_io(
                _missing_page_thumbs, self._thumbdir, arcid, pagecount, exts)
        except ValueError:
            raise ApiError(400, NO_SUCH_ID, operation=operation, envelope="api_response") from None
        if not missing:
            return write_json(request, {"operation": operation, "success": 1,
                                        "message": "No job queued, all thumbnails already exist."})
        previous = as_int(fields.get("thumbjob"))
        if previous and self._jobs is not None:
            status = await self._jobs.status(previous)
            if status is not None and status.get("state") in ("inactive", "active"):
                return write_json(request, {"operation": operation, "success": 1,
                                            "job": previous}, 202)
        job = await self._enqueue("page_thumbnails", [arcid, 1 if force else 0], priority=0,
                                  attempts=3)
        try:
            await self._archives.set_fields(arcid, {"thumbjob": job})
        except ArchiveNotFound:
            pass
        return write_json(request, {"operation": operation, "success": 1, "job": job}, 202)


async def _both(first: Coroutine[Any, Any, Any], second: Coroutine[Any, Any, Any]) -> tuple[Any, Any]:
    """Run two store reads at once: both commands leave in the same reactor turn (pipelined)."""
    a, b = await gather(ensureDeferred(first), ensureDeferred(second))
    return a, b
