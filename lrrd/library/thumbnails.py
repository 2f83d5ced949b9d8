"""Covers, page thumbnails and tank covers, made off the reactor: pages read in the I/O pool,
encoded and written in the image pool, in the original's folder layout (LRR-NOTES §3.6).

Every function here is a coroutine over ``Services``; blocking work never runs on the reactor.
"""

from __future__ import annotations

import inspect
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from twisted.internet.defer import Deferred, DeferredSemaphore
from twisted.logger import Logger

from lrrd.images import (
    ImageError,
    UnsupportedFormat,
    cover_path,
    make_thumbnail,
    page_thumb_path,
    tank_cover_path,
    thumbhash,
    write_atomically,
)
from lrrd.library.formats import ArchiveError, ArchiveReader, PageNotFound, open_archive
from lrrd.store.archives import as_text
from lrrd.store.config import flag

if TYPE_CHECKING:
    from lrrd.services import Services

__all__ = [
    "ThumbnailError",
    "ThumbnailSettings",
    "cover_candidates",
    "extraction_dir",
    "make_cover",
    "make_page_thumbnail",
    "make_page_thumbnails",
    "make_tank_cover",
    "move_thumbnails",
    "open_reader",
    "page_thumb_candidates",
    "remove_thumbnails",
    "store_cover",
    "thumbnail_format",
    "thumbnail_settings",
    "write_cover",
]

log = Logger()

#: Called after each page of a batch: (page number, total pages). May return an awaitable.
Progress = Callable[[int, int], "Awaitable[None] | None"]


class ThumbnailError(Exception):
    """A thumbnail could not be made: unknown archive, unreadable archive or page, bad image."""


@dataclass(frozen=True)
class ThumbnailSettings:
    """The two ``LRR_CONFIG`` switches that shape thumbnails, read once per operation."""

    #: ``jpg``, or ``jxl`` when ``jxlthumbpages`` is on and this Pillow can write it.
    fmt: str
    #: ``hqthumbpages``: page thumbnails at quality 80 instead of 50 (covers are always HQ).
    hq_pages: bool


_jxl_warned = False


def thumbnail_format(jxl_wanted: bool) -> str:
    """``jxl`` if asked for and writable, else ``jpg``; the fallback is logged once per process.

    The original writes JPEG XL through ImageMagick; a Pillow without a JXL plugin would fail
    every thumbnail, so lrrd keeps serving JPEG and says why, once.
    """
    global _jxl_warned
    if not jxl_wanted:
        return "jpg"
    from PIL import Image

    Image.init()
    if "JXL" in Image.SAVE:
        return "jxl"
    if not _jxl_warned:
        _jxl_warned = True
        log.warn("jxlthumbpages is on but this Pillow cannot write JPEG XL; thumbnails stay JPEG")
    return "jpg"


async def thumbnail_settings(services: Services) -> ThumbnailSettings:
    values = await services.config.get("hqthumbpages", "jxlthumbpages")
    return ThumbnailSettings(
        fmt=thumbnail_format(flag(values["jxlthumbpages"])),
        hq_pages=flag(values["hqthumbpages"]),
    )


def _other_format(fmt: str) -> str:
    return "jxl" if fmt == "jpg" else "jpg"


def cover_candidates(thumbdir: str | os.PathLike[str], arcid: str, fmt: str) -> list[Path]:
    """Where a cover may be, preferred format first (the original tries jpg↔jxl both ways)."""
    return [cover_path(thumbdir, arcid, fmt), cover_path(thumbdir, arcid, _other_format(fmt))]


def page_thumb_candidates(thumbdir: str | os.PathLike[str], arcid: str, page: int,
                          fmt: str) -> list[Path]:
    return [page_thumb_path(thumbdir, arcid, page, fmt),
            page_thumb_path(thumbdir, arcid, page, _other_format(fmt))]


def extraction_dir(services: Services) -> Path:
    """Where solid archives (7z, rar) are extracted once and kept, LRU-bounded, for page reads."""
    return services.settings.temp_dir / "extracted"


def open_reader(services: Services, path: str) -> ArchiveReader:
    """Open an archive (blocking: call it in the I/O pool) with lrrd's cache and limits."""
    return open_archive(path, cache_dir=extraction_dir(services))


# ---- blocking helpers (run in pools) ------------------------------------------------------------

def _read_page(services: Services, path: str, page: int) -> tuple[str, bytes, int]:
    """Open, pick the ``page``-th page (1-based, §3.3 order) and read it; returns name, bytes, count."""
    with open_reader(services, path) as reader:
        pages = reader.pages()
        if not pages:
            raise ThumbnailError(f"{path!r} has no image pages")
        if not 1 <= page <= len(pages):
            raise ThumbnailError(f"page {page} is out of range (1-{len(pages)})")
        name = pages[page - 1]
        return name, reader.read(name), len(pages)


def _encode_and_write(data: bytes, target: Path, hq: bool, fmt: str) -> Path:
    write_atomically(target, make_thumbnail(data, hq=hq, fmt=fmt))
    return target


def _encode_cover(data: bytes, target: Path, fmt: str) -> str:
    """Encode the cover, write it and return the thumbhash (SHA-1 of the source bytes)."""
    write_atomically(target, make_thumbnail(data, hq=True, fmt=fmt))
    return thumbhash(data)


def _existing_pages(folder: Path, fmt: str) -> set[int]:
    """The page numbers that already have a thumbnail in ``fmt`` (one directory listing)."""
    found: set[int] = set()
    try:
        names = os.listdir(folder)
    except OSError:
        return found
    suffix = "." + fmt
    for name in names:
        if name.endswith(suffix) and name[: -len(suffix)].isdigit():
            found.add(int(name[: -len(suffix)]))
    return found


def _copy_file(source: Path, target: Path) -> Path:
    write_atomically(target, source.read_bytes())
    return target


def _remove_tree(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


# ---- coroutines ---------------------------------------------------------------------------------

def _failure_text(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


async def _archive_file(services: Services, arcid: str) -> str:
    raw = (await services.archives.get_fields(arcid, "file")).get("file")
    path = as_text(raw)
    if not path:
        raise ThumbnailError(f"Archive {arcid} is not in the database.")
    return path


async def write_cover(services: Services, arcid: str, data: bytes,
                      fmt: str) -> tuple[Path, str]:
    """Encode ``data`` (page bytes) as the HQ cover of ``arcid`` and write it; returns the path
    and the thumbhash, leaving the store alone (the importer writes it with everything else)."""
    target = cover_path(services.settings.thumb_dir, arcid, fmt)
    try:
        digest = await services.pools.run_image(_encode_cover, data, target, fmt)
    except (ImageError, UnsupportedFormat) as exc:
        raise ThumbnailError(f"cannot make the cover of {arcid}: {_failure_text(exc)}") from exc
    except OSError as exc:
        raise ThumbnailError(f"cannot write the cover of {arcid}: {_failure_text(exc)}") from exc
    return target, digest


async def store_cover(services: Services, arcid: str, data: bytes,
                      fmt: str | None = None) -> tuple[Path, str]:
    """Encode ``data`` (page bytes) as the HQ cover of ``arcid``, write it, set ``thumbhash``."""
    if fmt is None:
        fmt = (await thumbnail_settings(services)).fmt
    target, digest = await write_cover(services, arcid, data, fmt)
    await services.archives.set_fields(arcid, {"thumbhash": digest})
    # The other format's file would otherwise keep being served in its place.
    stale = cover_path(services.settings.thumb_dir, arcid, _other_format(fmt))
    await services.pools.run_io(_unlink_quietly, stale)
    return target, digest


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError:
        log.warn("Could not remove the stale thumbnail {path}", path=str(path))


async def make_cover(services: Services, arcid: str, page: int = 1) -> Path:
    """The cover of ``arcid`` from its ``page``-th page (default the first), HQ, with thumbhash.

    Used by ``PUT /thumbnail?page=N``, ``thumbnail_task`` with page 0, ``regen_all_thumbnails``.
    Raises ThumbnailError with a message fit for a client.
    """
    path = await _archive_file(services, arcid)
    settings = await thumbnail_settings(services)
    try:
        _, data, _ = await services.pools.run_io(_read_page, services, path, page)
    except (ArchiveError, PageNotFound, OSError) as exc:
        raise ThumbnailError(f"cannot read page {page} of {arcid}: {_failure_text(exc)}") from exc
    target, _ = await store_cover(services, arcid, data, settings.fmt)
    return target


async def make_page_thumbnail(services: Services, arcid: str, page: int) -> Path:
    """The thumbnail of page ``page`` (1-based), HQ only when ``hqthumbpages`` is on."""
    if page < 1:
        return await make_cover(services, arcid)
    path = await _archive_file(services, arcid)
    settings = await thumbnail_settings(services)
    target = page_thumb_path(services.settings.thumb_dir, arcid, page, settings.fmt)
    try:
        _, data, _ = await services.pools.run_io(_read_page, services, path, page)
        return await services.pools.run_image(_encode_and_write, data, target,
                                              settings.hq_pages, settings.fmt)
    except (ArchiveError, PageNotFound, ImageError, OSError) as exc:
        raise ThumbnailError(
            f"cannot make the thumbnail of page {page} of {arcid}: {_failure_text(exc)}") from exc


async def make_page_thumbnails(
    services: Services,
    arcid: str,
    *,
    force: bool = False,
    progress: Progress | None = None,
) -> list[str]:
    """Every page thumbnail of ``arcid`` (missing ones only, unless ``force``); returns the errors.

    The reader is used from one I/O thread at a time (it is not thread-safe) and reads ahead of
    the encoders, which run in the image pool, at most as many at once as it has threads, so a
    2,000-page archive never holds more than a few pages in memory. ``progress(page, total)``
    runs after each page, skipped ones included, as the original's job notes do.
    """
    path = await _archive_file(services, arcid)
    settings = await thumbnail_settings(services)
    thumbdir = services.settings.thumb_dir
    pools = services.pools
    errors: list[str] = []

    try:
        reader = await pools.run_io(open_reader, services, path)
    except (ArchiveError, OSError) as exc:
        return [f"cannot open {arcid}: {_failure_text(exc)}"]
    try:
        try:
            pages: list[str] = await pools.run_io(reader.pages)
        except (ArchiveError, OSError) as exc:
            return [f"cannot list the pages of {arcid}: {_failure_text(exc)}"]
        total = len(pages)
        folder = page_thumb_path(thumbdir, arcid, 1, settings.fmt).parent
        existing: set[int] = set() if force else await pools.run_io(
            _existing_pages, folder, settings.fmt)

        in_flight = DeferredSemaphore(max(1, pools.images.max))
        pending: list[Deferred[Any]] = []

        async def report(number: int) -> None:
            if progress is not None:
                result = progress(number, total)
                if inspect.isawaitable(result):
                    await result

        async def encode(number: int, data: bytes) -> None:
            target = page_thumb_path(thumbdir, arcid, number, settings.fmt)
            try:
                await pools.run_image(_encode_and_write, data, target, settings.hq_pages,
                                      settings.fmt)
            except (ImageError, OSError) as exc:
                message = f"page {number} of {arcid}: {_failure_text(exc)}"
                log.warn("Thumbnail failed: {message}", message=message)
                errors.append(message)
            finally:
                in_flight.release()
            await report(number)

        for number, name in enumerate(pages, start=1):
            if number in existing:
                await report(number)
                continue
            await in_flight.acquire()
            try:
                data = await pools.run_io(reader.read, name)
            except (ArchiveError, PageNotFound, OSError) as exc:
                in_flight.release()
                message = f"page {number} of {arcid}: {_failure_text(exc)}"
                log.warn("Thumbnail failed: {message}", message=message)
                errors.append(message)
                await report(number)
                continue
            pending.append(Deferred.fromCoroutine(encode(number, data)))
        for d in pending:
            await d
    finally:
        await pools.run_io(reader.close)
    return errors


async def make_tank_cover(services: Services, tank_id: str, first_arcid: str) -> Path:
    """``TA/<tank>.<fmt>``: the HQ thumbnail of page 1 of the tank's first archive.

    The archive's own cover is copied when it exists (it is that very image); otherwise the page
    is encoded afresh, without touching the archive's cover or thumbhash, as the original does.
    """
    settings = await thumbnail_settings(services)
    thumbdir = services.settings.thumb_dir
    target = tank_cover_path(thumbdir, tank_id, settings.fmt)
    cover = cover_path(thumbdir, first_arcid, settings.fmt)
    try:
        return await services.pools.run_io(_copy_file, cover, target)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise ThumbnailError(f"cannot copy the cover of {first_arcid}: {_failure_text(exc)}") from exc
    path = await _archive_file(services, first_arcid)
    try:
        _, data, _ = await services.pools.run_io(_read_page, services, path, 1)
        return await services.pools.run_image(_encode_and_write, data, target, True, settings.fmt)
    except (ArchiveError, PageNotFound, ImageError, OSError) as exc:
        raise ThumbnailError(
            f"cannot make the cover of {tank_id} from {first_arcid}: {_failure_text(exc)}") from exc


async def move_thumbnails(services: Services, old: str, new: str) -> None:
    """A modified file changed id: carry its cover and page thumbnails over to the new id."""
    await services.pools.run_io(_move_thumbnails, services.settings.thumb_dir, old, new)


def _move_thumbnails(thumbdir: Path, old: str, new: str) -> None:
    for fmt in ("jpg", "jxl"):
        source = cover_path(thumbdir, old, fmt)
        if source.exists():
            target = cover_path(thumbdir, new, fmt)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
    old_pages = page_thumb_path(thumbdir, old, 1, "jpg").parent
    if old_pages.is_dir():
        new_pages = page_thumb_path(thumbdir, new, 1, "jpg").parent
        new_pages.parent.mkdir(parents=True, exist_ok=True)
        if new_pages.exists():
            _remove_tree(old_pages)
        else:
            os.replace(old_pages, new_pages)


async def remove_thumbnails(services: Services, arcid: str) -> None:
    """Delete an archive's cover (any format) and its page-thumbnail folder."""
    await services.pools.run_io(_remove_thumbnails, services.settings.thumb_dir, arcid)


def _remove_thumbnails(thumbdir: Path, arcid: str) -> None:
    for fmt in ("jpg", "jxl", "webp"):
        _unlink_quietly(cover_path(thumbdir, arcid, fmt))
    _remove_tree(page_thumb_path(thumbdir, arcid, 1, "jpg").parent)
