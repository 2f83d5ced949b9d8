"""Whole-database work: clean, drop, clear every ``isnew``, the search database rebuild
(``build_stat_hashes``), duplicate detection, and the Minion tasks that run them.

These mirror ``Utils/Database.pm``, ``Model/Stats.pm`` and the tasks of ``Utils/Minion.pm``
(LRR-NOTES §2.5, §6, §9.5). File-system checks and the CPU-heavy parts (computing the index,
comparing thumbnail hashes, encoding JSON) run in the I/O pool, never on the reactor.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from twisted.internet.task import deferLater
from twisted.logger import Logger

from lrrd.library.backup import (
    BackupError,
    build_backup,
    parse_backup,
    restore_backup as restore_from_backup,
    write_backup_file,
)
from lrrd.library.tank_upkeep import delete_archive
from lrrd.store.archives import as_text, index_tags, is_untagged, source_urls, title_member
from lrrd.store.bootstrap import ensure_initialised
from lrrd.store.config import ConfigStore
from lrrd.store.registry import rebuild_registries
from lrrd.store.stats import RebuildConflict, SearchIndex, StatsStore
from lrrd.store.tankoubons import Tank

if TYPE_CHECKING:
    from lrrd.jobs.registry import TaskRegistry
    from lrrd.jobs.worker import JobContext
    from lrrd.services import Services

log = Logger()

AUTOBACKUP_NAME = "autobackup.json"
#: The original queues its rebuilds after drop and clean at this priority.
REBUILD_PRIORITY = 3
#: How often a rebuild is recomputed when writes keep landing while it computes.
REBUILD_ATTEMPTS = 8


# ---- clean -------------------------------------------------------------------------------------
def _files_exist(paths: Sequence[str]) -> list[bool]:
    """``-e $file`` for each path (an empty path does not exist); blocking, for the I/O pool."""
    return [bool(path) and os.path.exists(path) for path in paths]


async def write_autobackup(services: Services) -> Path | None:
    """``autobackup.json`` in the data folder (the original writes it into its cwd); a failure
    is logged and does not stop the clean, as in the original."""
    path = services.settings.data / AUTOBACKUP_NAME
    try:
        backup = await build_backup(services)
        await services.pools.run_io(write_backup_file, path, backup)
    except Exception:  # noqa: BLE001 - the original carries on without its backup too
        log.failure("Unable to save a backup before cleaning the database")
        return None
    log.info("Saved an automatic backup to {path}", path=path)
    return path


async def clean_database(services: Services) -> tuple[int, int]:
    """Remove archives whose file is gone; unlink those whose id the file watcher no longer
    knows. Returns (deleted, unlinked), as ``clean_database`` does (LRR-NOTES §9.5).

    One guard the original lacks: with no ``LRR_FILEMAP`` at all (no watcher has scanned this
    database yet) nothing can be judged stale, so no archive is unlinked.
    """
    await write_autobackup(services)
    archives = services.archives
    stats = StatsStore(services.redis)
    filemap = await archives.filemap()
    known_ids = set(filemap.values())
    ids = await archives.ids()
    rows = await stats.archive_fields(ids, ["file", "tags"])
    broken = [arcid for arcid, row in zip(ids, rows) if row is None]
    hashes = [(arcid, row) for arcid, row in zip(ids, rows) if row is not None]
    files = [as_text(row[0]) for _, row in hashes]
    exists = await services.pools.run_io(_files_exist, files)

    deleted = len(broken)
    await stats.delete_keys(broken)
    unlinked = 0
    for (arcid, row), path, present in zip(hashes, files, exists):
        if not present:
            await delete_archive(archives, services.tankoubons, arcid)
            deleted += 1
            continue
        if not filemap or arcid in known_ids:
            continue
        log.warn("File {path} exists but its id is no longer {id}", path=path, id=arcid)
        new_id = filemap.get(path)
        if new_id is None:
            await archives.set_fields(arcid, {"file": ""})
            unlinked += 1
        elif await archives.exists(new_id):
            await archives.set_fields(arcid, {"file": ""})
        elif await archives.change_id(arcid, new_id):
            await archives.filemap_set(path, new_id)
    log.info("Database cleaned: {deleted} deleted, {unlinked} unlinked", deleted=deleted,
             unlinked=unlinked)
    return deleted, unlinked


# ---- drop and isnew ----------------------------------------------------------------------------
async def drop_database(services: Services) -> None:
    """``FLUSHALL``, then what lrrd's next start would write: the first-start category and
    bookmark. Other processes' search indexes are told to reload.

    One thing survives, unlike in the original: the API key (this process's ``--api-key`` if it
    was given one, else the key in force before the drop). The original's admin logs in to its
    web page with the default password and sets a new key; lrrd has no such page, so a drop
    that forgot the key would lock the API until a restart with ``--api-key``.
    """
    stats = StatsStore(services.redis)
    config = ConfigStore(services.redis)
    key = services.settings.api_key
    if key is None:
        key = (await config.get("apikey"))["apikey"]
    await stats.flush_all()
    await ensure_initialised(services.redis)
    await rebuild_registries(services.redis)
    if key:
        await config.set_api_key(key)
    await stats.publish_reload()


async def clear_all_new(services: Services) -> None:
    """Every archive's ``isnew`` becomes "false" and ``LRR_NEW`` is emptied (no cache bust,
    as the original)."""
    stats = StatsStore(services.redis)
    await stats.clear_all_new(await stats.all_archive_ids())
    await stats.publish_reload()


# ---- build_stat_hashes -------------------------------------------------------------------------
def plan_search_index(archives: Mapping[str, tuple[str, str | None, str]],
                      tanks: Iterable[Tank], now: int) -> SearchIndex:
    """The search database of LRR-NOTES §2.5, computed from (tags, title, isnew) per archive.

    Tanks first, by id: the title; for a tank holding archives, its place in
    ``LRR_TANKGROUPED``, its own tags, and each member's tags indexed under both the tank and
    the member; then every archive no tank holds. An archive's tags count once in
    ``LRR_STATS`` however many tanks hold it (the original counts them once per tank), and an
    archive's repeated tags once (as ``set_tags`` does).
    """
    plan = SearchIndex(last_job_time=now)
    index: defaultdict[str, set[str]] = defaultdict(set)
    stats: defaultdict[str, int] = defaultdict(int)
    standalone = dict.fromkeys(archives)
    counted: set[str] = set()

    def count(arcid: str, tags: set[str], raw_tags: str, title: str | None) -> None:
        if arcid in counted:
            return
        counted.add(arcid)
        for tag in tags:
            stats[tag] += 1
        for url in source_urls(raw_tags):
            plan.urlmap[url] = arcid
        if title is not None:
            plan.titles.append(title_member(title, arcid))

    for tank in sorted(tanks, key=lambda t: t.id):
        plan.titles.append(title_member(tank.name, tank.id))
        if not tank.archives:
            continue
        plan.tankgrouped.add(tank.id)
        for tag in index_tags(tank.tags):
            index[tag].add(tank.id)
            stats[tag] += 1
        for arcid in tank.archives:
            standalone.pop(arcid, None)
            record = archives.get(arcid)
            if record is None:
                continue
            raw_tags, title, isnew = record
            tags = index_tags(raw_tags)
            for tag in tags:
                index[tag].add(tank.id)
                index[tag].add(arcid)
            count(arcid, tags, raw_tags, title)
            if isnew == "true":
                plan.new.add(arcid)

    for arcid in standalone:
        raw_tags, title, isnew = archives[arcid]
        plan.tankgrouped.add(arcid)
        tags = index_tags(raw_tags)
        for tag in tags:
            index[tag].add(arcid)
        count(arcid, tags, raw_tags, title)
        if is_untagged(raw_tags):
            plan.untagged.add(arcid)
        if isnew == "true":
            plan.new.add(arcid)
    plan.index = dict(index)
    plan.stats = dict(stats)
    return plan


async def _read_library(services: Services) -> tuple[dict[str, tuple[str, str | None, str]],
                                                     list[Tank]]:
    stats = StatsStore(services.redis)
    ids = await services.archives.ids()
    rows = await stats.archive_fields(ids, ["tags", "title", "isnew"])
    archives = {
        arcid: (as_text(row[0]), None if row[1] is None else as_text(row[1]), as_text(row[2]))
        for arcid, row in zip(ids, rows) if row is not None
    }
    tank_ids = await services.tankoubons.ids()
    tanks: list[Tank] = []
    for start in range(0, len(tank_ids), 500):
        tanks.extend(t for t in await services.tankoubons.get_many(tank_ids[start:start + 500])
                     if t is not None)
    return archives, tanks


async def rebuild_search_db(services: Services) -> SearchIndex:
    """``build_stat_hashes``: recompute DB3 from the main database and swap it in whole.

    A write landing while it computes cancels the swap (the original then gives up); lrrd
    recomputes, and after ``REBUILD_ATTEMPTS`` swaps unconditionally so that a library under a
    long import still gets its ``LAST_JOB_TIME`` (search answers 204 until then).
    """
    stats = StatsStore(services.redis)
    # The "fix everything" job also re-reads which categories and tanks exist (keys another
    # program wrote since the start), before the tanks are read from that list.
    await rebuild_registries(services.redis)

    async def compute() -> SearchIndex:
        archives, tanks = await _read_library(services)
        now = int(services.reactor.seconds())
        return await services.pools.run_io(plan_search_index, archives, tanks, now)

    for attempt in range(REBUILD_ATTEMPTS):
        try:
            index = await stats.replace_search_db(compute)
            break
        except RebuildConflict:
            delay = min(0.1 * 2 ** attempt, 2.0)
            log.info("Search database changed during the rebuild; again in {delay}s",
                     delay=delay)
            await deferLater(services.reactor, delay, lambda: None)
    else:
        log.warn("Search database kept changing; rebuilding it without waiting for calm")
        index = await stats.replace_search_db(compute, watch=False)
    log.info("Stat indexes built: {tanks} tanks and archives in search, {tags} tags",
             tanks=len(index.tankgrouped), tags=len(index.index))
    return index


# ---- find_duplicates ---------------------------------------------------------------------------
def _distance_within(a: str, b: str, threshold: int) -> bool:
    distance = 0
    for x, y in zip(a, b):
        if x != y:
            distance += 1
            if distance > threshold:
                return False
    return True


def duplicate_groups(hashes: Mapping[str, str], threshold: int) -> list[list[str]]:
    """Archives whose thumbhashes differ in at most ``threshold`` positions, grouped
    transitively (the original's depth-first search), each group sorted, two or more ids.

    The original compares every pair; lrrd compares only pairs that agree on one of
    ``threshold + 1`` slices of the hash (two hashes within the threshold always do), so
    100,000 archives take seconds. Hashes of different lengths are never compared.
    """
    if threshold < 0:
        return []
    parent: dict[str, str] = {arcid: arcid for arcid in hashes}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    by_hash: defaultdict[str, list[str]] = defaultdict(list)
    for arcid, value in hashes.items():
        by_hash[value].append(arcid)
    for same in by_hash.values():
        for other in same[1:]:
            union(same[0], other)

    by_length: defaultdict[int, list[str]] = defaultdict(list)
    for value in by_hash:
        by_length[len(value)].append(value)
    for length, values in by_length.items():
        if threshold >= length:
            for value in values[1:]:
                union(by_hash[values[0]][0], by_hash[value][0])
            continue
        slices = threshold + 1
        bounds = [(i * length // slices, (i + 1) * length // slices) for i in range(slices)]
        compared: set[tuple[str, str]] = set()
        for lo, hi in bounds:
            buckets: defaultdict[str, list[str]] = defaultdict(list)
            for value in values:
                buckets[value[lo:hi]].append(value)
            for bucket in buckets.values():
                for i, a in enumerate(bucket):
                    for b in bucket[i + 1:]:
                        pair = (a, b) if a < b else (b, a)
                        if pair in compared:
                            continue
                        compared.add(pair)
                        if _distance_within(a, b, threshold):
                            union(by_hash[a][0], by_hash[b][0])

    groups: defaultdict[str, list[str]] = defaultdict(list)
    for arcid in hashes:
        groups[find(arcid)].append(arcid)
    return sorted(sorted(group) for group in groups.values() if len(group) >= 2)


def group_fields(groups: Iterable[list[str]]) -> dict[str, str]:
    """``LRR_DUPLICATE_GROUPS`` fields: ``dupgp_`` + the first 10 chars of each id → JSON."""
    return {"dupgp_" + "".join(arcid[:10] for arcid in group):
            json.dumps(group, separators=(",", ":")) for group in groups}


async def find_duplicates(services: Services, threshold: int) -> list[list[str]]:
    stats = StatsStore(services.redis)
    ids = await services.archives.ids()
    rows = await stats.archive_fields(ids, ["thumbhash"])
    hashes = {arcid: as_text(row[0]) for arcid, row in zip(ids, rows)
              if row is not None and row[0]}
    groups = await services.pools.run_io(duplicate_groups, hashes, threshold)
    await stats.save_duplicate_groups(group_fields(groups))
    return groups


# ---- tasks -------------------------------------------------------------------------------------
def _int(value: Any, default: int = 0) -> int:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return default


async def backup_json_task(job: JobContext) -> dict[str, Any]:
    """Write ``backup_<job id>.json`` into the temp folder, whole or not at all."""
    services = job.services
    backup = await build_backup(services, progress=job.note)
    await job.note(status="Finalizing backup...")
    filename = f"backup_{job.id}.json"
    path = services.settings.temp_dir / filename
    await services.pools.run_io(write_backup_file, path, backup)
    return {"success": 1, "filename": filename, "path": str(path)}


async def restore_backup_task(job: JobContext, text: Any = "") -> dict[str, Any]:
    """Restore from the backup JSON text given as the argument (the original's)."""
    from lrrd.jobs.queue import JobFailed

    services = job.services
    try:
        backup = await services.pools.run_io(parse_backup, text if isinstance(text, str) else "")
        await restore_from_backup(services, backup)
    except BackupError as exc:
        raise JobFailed({"error": str(exc)}) from None
    except Exception as exc:
        log.failure("Restoring a backup failed")
        raise JobFailed({"error": str(exc)}) from None
    return {"success": 1}


async def build_stat_hashes_task(job: JobContext) -> None:
    await rebuild_search_db(job.services)


async def find_duplicates_task(job: JobContext, threshold: Any = 0) -> dict[str, Any]:
    """The web Duplicates page queues ``[5]``; a missing threshold is 0 as Perl's undef."""
    groups = await find_duplicates(job.services, _int(threshold))
    log.info("find_duplicates: {n} groups", n=len(groups))
    return {}


def register_database_tasks(registry: TaskRegistry) -> None:
    registry.register("backup_json", backup_json_task)
    registry.register("restore_backup", restore_backup_task)
    registry.register("build_stat_hashes", build_stat_hashes_task)
    registry.register("find_duplicates", find_duplicates_task)


async def queue_rebuild(jobs: Any) -> int:
    """``invalidate_cache(1)``'s rebuild: ``build_stat_hashes`` at priority 3."""
    return int(await jobs.enqueue("build_stat_hashes", [], priority=REBUILD_PRIORITY))
