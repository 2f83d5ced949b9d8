"""The backup JSON of LRR-NOTES §9.6: building it, writing it whole, and restoring from it.

A backup carries what a user typed and cannot get back from the files: archive titles, tags,
summaries and stamps, categories and tankoubons. Keys come out sorted and compact, as
Mojolicious writes them; ``tankoubons`` and ``stamps`` are left out when there are none, and
categories carry no ``pinned``, all as the original does. A restore reads the whole file before
it writes anything, so a malformed backup changes nothing.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Mapping, Sequence

from twisted.internet.defer import Deferred, DeferredSemaphore
from twisted.logger import Logger

from lrrd.library.tank_upkeep import refresh_tanks_of_many
from lrrd.store.archives import ARCHIVE_ID_RE, as_text
from lrrd.store.backup import BackupStore
from lrrd.store.categories import CATEGORY_ID_RE
from lrrd.store.stamps import STAMP_KEY_RE, parse_list
from lrrd.store.stats import StatsStore
from lrrd.store.tankoubons import TANK_ID_RE, TankError

if TYPE_CHECKING:
    from lrrd.services import Services

log = Logger()

#: Progress callback of the ``backup_json`` job: receives note fields.
Progress = Callable[..., Awaitable[None]]

#: Archives whose metadata a restore writes at once (each is a few round trips).
RESTORE_CONCURRENCY = 16
_NOTE_EVERY = 2000


class BackupError(ValueError):
    """The text is not a backup this server can restore."""


def _crlf_free(value: Any) -> str:
    """The original's ``trim_CRLF`` on name, title and tags (which never hold line breaks)."""
    return as_text(value).replace("\r", "").replace("\n", "")


def archive_entry(arcid: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """One archive of the backup. Missing ``summary``, ``thumbhash`` and ``stamps`` are null,
    as the original's undef; the summary keeps its line breaks (the original strips them,
    which a restore then cannot give back)."""
    summary = fields.get("summary")
    thumbhash = fields.get("thumbhash")
    stamps = fields.get("stamps")
    return {
        "arcid": arcid,
        "title": _crlf_free(fields.get("title")),
        "tags": _crlf_free(fields.get("tags")),
        "summary": None if summary is None else as_text(summary),
        "thumbhash": None if thumbhash is None else as_text(thumbhash),
        "filename": _crlf_free(fields.get("name")),
        "stamps": None if stamps is None else as_text(stamps),
    }


async def build_backup(services: Services, progress: Progress | None = None) -> dict[str, Any]:
    """The backup object of the whole database (categories, tanks, stamps, archives)."""
    async def note(**fields: Any) -> None:
        if progress is not None:
            await progress(**fields)

    store = BackupStore(services.redis)
    categories = await services.categories.list_all()
    tank_ids = await services.tankoubons.ids()
    archive_ids = await services.archives.ids()
    await note(total_categories=len(categories), total_tankoubons=len(tank_ids),
               total_archives=len(archive_ids), categories_processed=0, tankoubons_processed=0,
               archives_processed=0, status="Backing up categories...")
    backup: dict[str, Any] = {
        "categories": [
            {"catid": cat["id"], "name": cat["name"], "search": cat["search"],
             "archives": list(cat["archives"])}
            for cat in categories
        ],
        "archives": [],
    }
    await note(categories_processed=len(categories), status="Backing up tankoubons...")

    tanks: list[dict[str, Any]] = []
    for start in range(0, len(tank_ids), 500):
        for tank in await services.tankoubons.get_many(tank_ids[start:start + 500]):
            if tank is not None:
                tanks.append({"tankid": tank.id, "name": tank.name, "summary": tank.summary,
                              "tags": tank.tags, "archives": list(tank.archives)})
    if tanks:
        backup["tankoubons"] = tanks
    await note(tankoubons_processed=len(tanks), status="Backing up archives...")

    stamps = [{"stamp_id": key, "content": fields.get("content", ""),
               "position": fields.get("position", ""), "archive_id": fields.get("archive_id", "")}
              for key, fields in await store.stamps()]
    if stamps:
        backup["stamps"] = stamps

    entries = backup["archives"]
    for start in range(0, len(archive_ids), _NOTE_EVERY):
        chunk = archive_ids[start:start + _NOTE_EVERY]
        for arcid, fields in zip(chunk, await store.archive_records(chunk)):
            if fields is not None:  # a 40-character key that is no archive hash
                entries.append(archive_entry(arcid, fields))
        await note(archives_processed=min(start + len(chunk), len(archive_ids)))
    return backup


def encode_backup(backup: Mapping[str, Any]) -> bytes:
    """Sorted keys, compact, UTF-8 (blocking for a big library: run it in a pool)."""
    text = json.dumps(backup, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    # Names from undecodable filenames carry surrogates; JSON has no way to say raw bytes.
    return text.encode("utf-8", "replace")


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all: a temp file beside it, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix="." + path.name + ".", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
        raise


def write_backup_file(path: Path, backup: Mapping[str, Any]) -> int:
    """Encode and write a backup atomically (blocking); returns its size in bytes."""
    data = encode_backup(backup)
    write_atomically(path, data)
    return len(data)


def parse_backup(text: str | bytes) -> dict[str, Any]:
    """The backup object of a JSON text; raises ``BackupError`` for anything else."""
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        backup = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # too deep to decode, too
        raise BackupError(f"The file is not valid JSON: {exc}") from None
    if not isinstance(backup, dict):
        raise BackupError("The file is not a backup: its JSON is not an object.")
    return backup


def _objects(value: Any) -> list[Mapping[str, Any]]:
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _ids(value: Any) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


async def restore_backup(services: Services, backup: Mapping[str, Any]) -> None:
    """Restore a parsed backup the original's way (LRR-NOTES §9.6), without its bug.

    Clean first; categories keep their ids, come back unpinned, and hold the archives that
    exist; tanks keep their ids with summary, tags and the existing archives; archives that
    exist get title, tags, summary and stamp list back (thumbhash only over a non-empty one);
    stamps of existing archives are rewritten; the search cache is invalidated.
    """
    from lrrd.library.database import clean_database

    store = BackupStore(services.redis)
    await clean_database(services)

    for category in _objects(backup.get("categories")):
        cat_id = _text(category.get("catid"))
        if not CATEGORY_ID_RE.match(cat_id):
            log.warn("Backup: skipping a category with id {id!r}", id=cat_id)
            continue
        await services.categories.restore(cat_id, _text(category.get("name")),
                                          _text(category.get("search")),
                                          _ids(category.get("archives")))

    restored_tanks: list[tuple[str, list[str]]] = []
    for tank in _objects(backup.get("tankoubons")):
        tank_id = _text(tank.get("tankid"))
        if not TANK_ID_RE.match(tank_id):
            log.warn("Backup: skipping a tankoubon with id {id!r}", id=tank_id)
            continue
        wanted = [arcid for arcid in dict.fromkeys(_ids(tank.get("archives")))
                  if ARCHIVE_ID_RE.match(arcid)]
        present = await store.existing(wanted)
        members = [arcid for arcid in wanted if arcid in present]
        try:
            await services.tankoubons.create(_text(tank.get("name")), tank_id)
            await services.tankoubons.update(tank_id, archives=members,
                                             summary=_text(tank.get("summary")),
                                             tags=_text(tank.get("tags")))
        except TankError as exc:
            log.warn("Backup: tankoubon {id} not restored: {error}", id=tank_id,
                     error=exc.message)
            continue
        restored_tanks.append((tank_id, members))

    archives = [entry for entry in _objects(backup.get("archives"))
                if ARCHIVE_ID_RE.match(_text(entry.get("arcid")))]
    present = await store.existing([_text(entry["arcid"]) for entry in archives])
    archives = [entry for entry in archives if entry["arcid"] in present]
    # Tanks impute their members' tags: note the old ones so stale imputations can go.
    members = sorted({arcid for _, ids in restored_tanks for arcid in ids})
    old_tags = dict(zip(members, await services.tankoubons.member_tags(members)))

    limit = DeferredSemaphore(RESTORE_CONCURRENCY)
    #: archive id -> its tags before the restore, for those whose tags it changed.
    changed: dict[str, str] = {}
    await _run_all([limit.run(_restore_archive, services, store, entry, changed)
                    for entry in archives])

    for tank_id, ids in restored_tanks:
        stale = [tag for arcid in ids for tag in old_tags.get(arcid, "").split(",")]
        await services.tankoubons.refresh_imputed(tank_id, stale)
    # Tanks the backup does not hold still impute the restored archives' tags.
    restored = {tank_id for tank_id, _ in restored_tanks}
    await refresh_tanks_of_many(services.tankoubons, changed, skip=restored)

    stamps = []
    for stamp in _objects(backup.get("stamps")):
        key, arcid = _text(stamp.get("stamp_id")), _text(stamp.get("archive_id"))
        if STAMP_KEY_RE.match(key) and ARCHIVE_ID_RE.match(arcid):
            stamps.append((key, _text(stamp.get("content")), _text(stamp.get("position")), arcid))
    await store.restore_stamps(stamps)
    await services.archives.invalidate_search_cache()
    # Many ids changed at once: one reload beats thousands of single notices.
    await StatsStore(services.redis).publish_reload()


async def _restore_archive(services: Services, store: BackupStore,
                           entry: Mapping[str, Any], changed: dict[str, str]) -> None:
    arcid = entry["arcid"]
    archives = services.archives
    title = _text(entry.get("title"))
    if title.strip():
        await archives.set_title(arcid, title, invalidate=False)
    old, new = await archives.change_tags(arcid, _text(entry.get("tags")))
    if new != old:
        changed[arcid] = old
    fields: dict[str, str] = {"summary": _text(entry.get("summary"))}
    raw_stamps = entry.get("stamps")
    if isinstance(raw_stamps, str):
        keys = parse_list(raw_stamps)
        if keys is not None and all(STAMP_KEY_RE.match(key) for key in keys):
            fields["stamps"] = raw_stamps
    await archives.set_fields(arcid, fields, invalidate=True)
    thumbhash = entry.get("thumbhash")
    if isinstance(thumbhash, str) and thumbhash:
        await store.restore_thumbhash(arcid, thumbhash)


async def _run_all(deferreds: Sequence[Deferred[Any]]) -> None:
    """Wait for every one; the first failure is raised once all have settled."""
    failure: BaseException | None = None
    for d in deferreds:
        try:
            await d
        except Exception as exc:  # noqa: BLE001 - keep going, report the first
            if failure is None:
                failure = exc
    if failure is not None:
        raise failure
