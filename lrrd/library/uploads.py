"""Files that arrive whole (uploads, and later downloads): the original's ``handle_incoming_file``
(LRR-NOTES §8.1 step 6). The archive is put in the store before its file enters the content folder,
and the file goes in as ``<name>.upload`` then is renamed, so the watcher never sees half a file and
finds an id it already knows.
"""

from __future__ import annotations

import errno
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from twisted.logger import Logger

from lrrd.library.identity import EmptyArchiveError, compute_id, is_archive_filename
from lrrd.library.importer import IMPORT_LOCK_TTL
from lrrd.library.tank_upkeep import delete_archive, set_archive_tags
from lrrd.library.thumbnails import remove_thumbnails
from lrrd.logtext import log_text
from lrrd.store.archives import as_text, filename_stem
from lrrd.store.config import flag
from lrrd.store.locks import LockBusy

if TYPE_CHECKING:
    from lrrd.services import Services

__all__ = [
    "IncomingResult",
    "UploadRefused",
    "byte_limit",
    "clean_filename",
    "handle_incoming_file",
    "truncate_filename",
]

log = Logger()

_REPLACE_HINT = " Enable replace duplicated archive in config to replace old ones."


class UploadRefused(Exception):
    """The file was not added. ``reason`` is ``invalid`` (a name no file may have),
    ``unsupported`` (not an archive extension), ``duplicate`` (the id or the name is taken),
    ``locked`` (the archive is being written by someone else), ``not_moved`` (the content folder
    refused the file)."""

    def __init__(self, reason: str, message: str, arcid: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.arcid = arcid


@dataclass(frozen=True)
class IncomingResult:
    arcid: str
    title: str
    message: str
    path: str


def clean_filename(raw: str) -> str:
    """The last path segment of a client-supplied filename; refuses names no file may have.

    Clients send anything: ``../../x.cbz``, ``C:\\dir\\x.cbz``, NUL bytes. Only the basename is
    kept (as the original's ``fileparse`` does), whichever separator was used.
    """
    name = raw.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if not name or name in (".", "..") or "\0" in name or any(ord(c) < 32 for c in name):
        raise UploadRefused("invalid", f"Invalid filename: {raw!r}")
    return name


def byte_limit(enablecryptofs: bool) -> int:
    """Filename bytes the content folder accepts: 255, or 143 on eCryptfs."""
    return 143 if enablecryptofs else 255


def truncate_filename(name: str, limit: int) -> str:
    """Shorten the stem a character at a time until ``stem + ext + ".upload"`` fits ``limit``
    bytes of UTF-8, as the original does (``ext`` is the last ``.suffix``)."""
    dot = name.rfind(".")
    stem, ext = (name[:dot], name[dot:]) if dot > 0 else (name, "")
    while stem and len((stem + ext + ".upload").encode("utf-8", "surrogateescape")) > limit:
        stem = stem[:-1]
    if not stem:
        raise UploadRefused("invalid", f"Filename too long: {name!r}")
    return stem + ext


def _file_exists(path: str) -> bool:
    return bool(path) and os.path.exists(path)


def _move_into_place(source: Path, target: Path) -> None:
    """``source`` → ``<target>.upload`` → ``target``; the last step is a rename in the folder."""
    staging = target.with_name(target.name + ".upload")
    try:
        os.replace(source, staging)
    except OSError as exc:
        if exc.errno != errno.EXDEV:  # the temp folder is on another filesystem
            raise
        with open(source, "rb") as src, open(staging, "xb") as dst:
            shutil.copyfileobj(src, dst, 1024 * 1024)
        os.unlink(source)
    try:
        os.replace(staging, target)
    except OSError:
        _unlink_quietly(staging)
        raise


def _unlink_quietly(path: str | os.PathLike[str]) -> None:
    try:
        os.unlink(path)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        pass


async def _remove_archive(services: Services, arcid: str) -> None:
    """``replacedupe``: drop the old archive (entry, file, thumbnails, filemap) first."""
    fields = await services.archives.get_fields(arcid, "file")
    path = as_text(fields.get("file"))
    await delete_archive(services.archives, services.tankoubons, arcid)
    if path:
        await services.pools.run_io(_unlink_quietly, path)
        await services.archives.filemap_delete(path)
    await remove_thumbnails(services, arcid)


async def handle_incoming_file(
    services: Services,
    temp_path: Path,
    filename: str,
    *,
    category_id: str | None = None,
    tags: str | None = None,
    title: str | None = None,
    summary: str | None = None,
) -> IncomingResult:
    """Add the file at ``temp_path`` to the library as ``<content>/<filename>``.

    ``filename`` must already be clean and truncated. The temp file is consumed: moved into the
    library, or deleted when refused. Raises UploadRefused.
    """
    archives = services.archives
    pools = services.pools
    try:
        if not is_archive_filename(filename):
            raise UploadRefused("unsupported", f"Unsupported file extension ({filename})")
        try:
            arcid: str = await pools.run_io(compute_id, temp_path)
        except EmptyArchiveError as exc:
            raise UploadRefused("invalid", str(exc)) from None
        content = Path(os.path.abspath(services.settings.content))
        target = content / filename
        config = await services.config.get("replacedupe")
        known = await archives.get_fields(arcid, "file")
        known_file = as_text(known.get("file"))
        isdupe = bool(known_file) and await pools.run_io(_file_exists, known_file)
        name_taken = await pools.run_io(os.path.lexists, target)
        if isdupe or name_taken:
            if not flag(config["replacedupe"]):
                message = ("This file already exists in the Library." if isdupe
                           else "A file with the same name is present in the Library.")
                raise UploadRefused("duplicate", message + _REPLACE_HINT, arcid)
            if await archives.exists(arcid):
                await _remove_archive(services, arcid)
            elif name_taken:
                other = await archives.filemap_get(str(target))
                if other is not None and await archives.exists(other):
                    await _remove_archive(services, other)
                else:
                    await pools.run_io(_unlink_quietly, target)
        elif await archives.exists(arcid):
            # Known id whose file is gone: the new file takes over the entry (a re-upload).
            await archives.set_fields(arcid, {"file": str(target),
                                              "name": filename_stem(str(target))})

        try:
            async with services.locks.held(f"archive-write:{arcid}", IMPORT_LOCK_TTL):
                size = (await pools.run_io(os.stat, temp_path)).st_size
                created = await archives.create(arcid, str(target), size)
                if tags and tags.strip():
                    await set_archive_tags(archives, services.tankoubons, arcid, tags,
                                           append=not created)
                if title:
                    await archives.set_title(arcid, title)
                if summary:
                    await archives.set_summary(arcid, summary)
                try:
                    await pools.run_io(_move_into_place, temp_path, target)
                except OSError as exc:
                    log.warn("Upload {name}: cannot move it into {folder}: {error}",
                             name=log_text(filename), folder=log_text(str(content)),
                             error=log_text(exc.strerror or str(exc)))
                    if created:
                        await delete_archive(archives, services.tankoubons, arcid)
                    raise UploadRefused("not_moved",
                                        "The file couldn't be moved to your content folder!",
                                        arcid) from None
                report = await services.importer.complete(arcid, str(target))
        except LockBusy:
            raise UploadRefused("locked", f"Locked resource: {arcid}.", arcid) from None

        message = report.message()
        if category_id:
            message += await _add_to_category(services, category_id, arcid)
        fields = await archives.get_fields(arcid, "title", "name")
        shown = as_text(fields.get("title")) or as_text(fields.get("name"))
        return IncomingResult(arcid=arcid, title=report.new_title or shown, message=message,
                              path=str(target))
    finally:
        await pools.run_io(_unlink_quietly, temp_path)


async def _add_to_category(services: Services, category_id: str, arcid: str) -> str:
    from lrrd.store.categories import CategoryError

    categories = services.categories
    try:
        await categories.add_archive(category_id, arcid)
    except CategoryError as exc:
        return f"Couldn't add to Category: {exc.message}"
    category = await categories.get(category_id)
    name = category["name"] if category else category_id
    return f"Added to Category '{name}'!"
