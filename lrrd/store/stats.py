"""The search database as a whole (DB3) and the database-wide writes of the database API.

``build_stat_hashes`` recomputes every DB3 key from the main database; ``replace_search_db``
swaps the result in as the original's ``WATCH``/``MULTI``/``FLUSHDB`` does: readers see the old
index or the new one, never half of each, and a write made by someone else while the new one
was computed cancels the swap (the caller recomputes). The new keys are staged under a prefix
first, so Redis is blocked only for the renames. Writes that change the main database wholesale
(``FLUSHALL``, clearing every ``isnew``, a restore) publish ``changes.RELOAD_ALL``: other
processes' search indexes then reload everything rather than one id.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterable, Sequence

import txredisapi
from twisted.logger import Logger

from lrrd.store.archives import (
    ARCHIVE_KEY_PATTERN, STATS_VERSION_KEY, as_text, wire_value,
)
from lrrd.store.changes import publish_reload
from lrrd.store.redis import DB, RedisStore, StoreError, StoreUnavailable

log = Logger()

#: What the original watches while it rebuilds; lrrd adds the search cache, which every
#: archive, tank and category write touches.
WATCHED_KEYS = ("LRR_STATS", "LRR_URLMAP", "LRR_UNTAGGED", "LRR_TITLES", "LRR_NEW",
                "LRR_TANKGROUPED", "LRR_SEARCHCACHE")

#: Arguments per bulk script call when the rebuilt index is written.
_BULK_ARGS = 100_000

# ARGV[1]: a JSON list of [command, key, [arguments...]] with command SADD, ZADD or HSET (the
# arguments of the last two in pairs). unpack() is bounded by Lua's stack: slices of 1000.
_BULK = """
local groups = cjson.decode(ARGV[1])
for _, group in ipairs(groups) do
  local command, key, args = group[1], group[2], group[3]
  if command == 'SADD' or command == 'ZADD' or command == 'HSET' then
    for i = 1, #args, 1000 do
      redis.call(command, key, unpack(args, i, math.min(i + 999, #args)))
    end
  end
end
return 1
"""

#: Where a rebuild stages the new search database before the swap renames it into place.
STAGING_PREFIX = "lrrd:rebuild:"

#: Stats versions below this were counted up from a missing key, not seeded: a process cannot
#: tell two such histories apart (a flush by hand, then writes), so they are reseeded first.
_SEEDED = 2 ** 40

# ARGV: this rebuild's staging prefix, LAST_JOB_TIME, a random stats version. Every key that is
# not staged by this rebuild goes (the original's FLUSHDB, including other rebuilds' leftovers),
# then the staged keys take their real names; the stats version is bumped past its old value
# (or reseeded), so no process keeps serving the old stats.
_SWAP = """
local prefix = ARGV[1]
local n = #prefix
local version = redis.call('GET', KEYS[1])
local seeded = version and (tonumber(version) or 0) >= %d
for _, key in ipairs(redis.call('KEYS', '*')) do
  if string.sub(key, 1, n) ~= prefix then redis.call('UNLINK', key) end
end
for _, key in ipairs(redis.call('KEYS', prefix .. '*')) do
  redis.call('RENAME', key, string.sub(key, n + 1))
end
redis.call('SET', 'LAST_JOB_TIME', ARGV[2])
if seeded then
  redis.call('SET', KEYS[1], version)
  redis.call('INCR', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[3])
end
return 1
""" % _SEEDED

# KEYS: the stats version. ARGV: a random seed. The version, seeded first when missing or
# unseeded (counted up from nothing by the write scripts' INCR).
_STATS_VERSION = """
local version = redis.call('GET', KEYS[1])
if not version or (tonumber(version) or 0) < %d then
  redis.call('SET', KEYS[1], ARGV[1])
  version = ARGV[1]
end
return version
""" % _SEEDED


def new_stats_version() -> str:
    """A random seed for the stats version, far from any value counted up from nothing."""
    return str(_SEEDED + int.from_bytes(os.urandom(6), "big"))


DUPLICATE_GROUPS_KEY = "LRR_DUPLICATE_GROUPS"

# ARGV: search db, then archive ids. Sets isnew=false on each archive hash and drops them from
# LRR_NEW; like the original it leaves the search cache alone.
_CLEAR_NEW = """
for i = 2, #ARGV do
  local id = ARGV[i]
  if redis.call('TYPE', id).ok == 'hash' then redis.call('HSET', id, 'isnew', 'false') end
end
redis.call('SELECT', ARGV[1])
for i = 2, #ARGV, 1000 do
  redis.call('SREM', 'LRR_NEW', unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
return 1
"""


# ARGV: n field names, then ids. Per id, its HMGET values, or false when the key is no hash (the
# original reads such keys with HGETALL and fails; clean deletes them, the rebuild skips them).
_FIELDS_OF = """
local n = tonumber(ARGV[1])
local names = {}
for i = 1, n do names[i] = ARGV[1 + i] end
local out = {}
for i = n + 2, #ARGV do
  local id = ARGV[i]
  if redis.call('TYPE', id).ok == 'hash' then
    out[#out + 1] = redis.call('HMGET', id, unpack(names))
  else
    out[#out + 1] = false
  end
end
return out
"""


async def read_archive_fields(redis: RedisStore, ids: Sequence[str], names: Sequence[str],
                              batch: int = 1000) -> list[list[Any] | None]:
    """``HMGET names`` of each id (None where the key is not a hash), a batch per round trip."""
    main = redis.db(DB.MAIN)
    out: list[list[Any] | None] = []
    for start in range(0, len(ids), batch):
        chunk = ids[start:start + batch]
        replies = await main.eval(_FIELDS_OF, [], [str(len(names)), *names,
                                                   *[wire_value(arcid) for arcid in chunk]])
        replies = list(replies or [])
        replies.extend([None] * (len(chunk) - len(replies)))
        out.extend(list(reply) if isinstance(reply, list) else None for reply in replies)
    return out


class RebuildConflict(Exception):
    """Another writer changed the search database while the new one was being computed."""


@dataclass
class SearchIndex:
    """Every key of a rebuilt search database (LRR-NOTES §2.5)."""

    index: dict[str, set[str]] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)
    titles: list[str] = field(default_factory=list)
    tankgrouped: set[str] = field(default_factory=set)
    new: set[str] = field(default_factory=set)
    untagged: set[str] = field(default_factory=set)
    urlmap: dict[str, str] = field(default_factory=dict)
    last_job_time: int = 0

    def payloads(self, prefix: str = "") -> Iterable[bytes]:
        """The writes that recreate it, every key under ``prefix``, as ``_BULK`` payloads.

        One command per tag would be 170,000 commands at 100,000 archives, and txredisapi
        spends twenty seconds encoding them; JSON payloads that a script unpacks cost well
        under one. ``LAST_JOB_TIME`` is left to the swap.
        """
        groups: list[tuple[str, str, list[str]]] = [
            ("SADD", prefix + "INDEX_" + tag, list(members))
            for tag, members in self.index.items()]
        groups += [("SADD", prefix + key, list(members)) for key, members in (
            ("LRR_TANKGROUPED", self.tankgrouped), ("LRR_NEW", self.new),
            ("LRR_UNTAGGED", self.untagged))]
        groups.append(("ZADD", prefix + "LRR_STATS",
                       [value for tag, count in self.stats.items() for value in (str(count), tag)]))
        groups.append(("ZADD", prefix + "LRR_TITLES",
                       [value for member in self.titles for value in ("0", member)]))
        groups.append(("HSET", prefix + "LRR_URLMAP",
                       [value for pair in self.urlmap.items() for value in pair]))
        batch: list[list[Any]] = []
        size = 0
        for command, key, args in groups:
            for start in range(0, len(args), _BULK_ARGS):
                part = args[start:start + _BULK_ARGS]
                batch.append([command, key, part])
                size += len(part) + 1
                if size >= _BULK_ARGS:
                    yield _bulk_payload(batch)
                    batch, size = [], 0
        if batch:
            yield _bulk_payload(batch)


def _bulk_payload(batch: list[list[Any]]) -> bytes:
    """JSON for ``_BULK``. Text from undecodable filenames carries surrogates; they go out as
    the raw bytes they stand for (Lua's cjson passes bytes through), as Redis stored them."""
    return json.dumps(batch, ensure_ascii=False, separators=(",", ":")).encode(
        "utf-8", "surrogateescape")


class StatsStore:
    """Tag statistics, the search database rebuild, and the database-wide writes."""

    def __init__(self, redis: RedisStore) -> None:
        self._redis = redis

    @property
    def _search(self):  # type: ignore[no-untyped-def]
        return self._redis.db(DB.SEARCH)

    @property
    def _main(self):  # type: ignore[no-untyped-def]
        return self._redis.db(DB.MAIN)

    # -- reads -----------------------------------------------------------------------------------
    async def stats_version(self) -> str:
        """A value that changes with every write to ``LRR_STATS`` by lrrd (in any process), so
        something computed from the stats after reading it stays right while it is unchanged.

        Write scripts ``INCR`` it; a rebuild's swap bumps it; a drop seeds it anew. A missing
        or merely counted-up value is seeded with a random one first, so a flush by hand
        followed by the same number of writes cannot bring an old value back.
        """
        return as_text(await self._search.eval(_STATS_VERSION, [STATS_VERSION_KEY],
                                               [new_stats_version()]))

    async def tag_stats(self, minweight: float) -> list[tuple[str, int]]:
        """``LRR_STATS`` members with a score of at least ``minweight``, with their scores."""
        replies = await self._search.zrangebyscore("LRR_STATS", minweight, "+inf",
                                                   withscores=True)
        return [(as_text(member), int(float(score))) for member, score in replies or []]

    async def last_job_time(self) -> str | None:
        """When ``build_stat_hashes`` last finished; None until it has (search answers 204)."""
        value = await self._search.get("LAST_JOB_TIME")
        return None if value is None else as_text(value)

    async def archive_fields(self, ids: Sequence[str], names: Sequence[str],
                             batch: int = 1000) -> list[list[Any] | None]:
        """The same fields of many archives, one script call per batch: a list of values (None
        for a missing field) per id, or None where the key is not a hash."""
        return await read_archive_fields(self._redis, ids, names, batch)

    # -- the rebuild -----------------------------------------------------------------------------
    async def replace_search_db(self, compute: Callable[[], Awaitable[SearchIndex]],
                                watch: bool = True) -> SearchIndex:
        """Compute a new search database and swap it in whole.

        The new keys are written under a staging prefix first (a dozen script calls, each a
        fraction of a second, with other clients served in between); then one ``MULTI`` runs
        ``_SWAP``, so Redis is blocked only while keys are renamed, not while 100,000 archives'
        indexes are built. With ``watch``, the index keys are watched before ``compute`` reads
        anything, and ``RebuildConflict`` is raised (the live database untouched) if another
        writer touched them before the swap; without it the swap always happens.
        """
        handler = self._redis.connection_handler(DB.SEARCH)
        if not self._search.connected:
            raise StoreUnavailable("Redis is not connected")
        try:
            conn = await (handler.watch(list(WATCHED_KEYS)) if watch else handler.multi())
        except txredisapi.ConnectionError as exc:
            raise StoreUnavailable(str(exc)) from None
        in_multi = not watch
        prefix = f"{STAGING_PREFIX}{os.urandom(8).hex()}:"
        swapped = False
        try:
            index = await compute()
            for payload in index.payloads(prefix):
                await self._search.eval(_BULK, [], [payload])
            if not in_multi:
                await conn.multi()
                in_multi = True
            queued = conn.execute_command("EVAL", _SWAP, 1, STATS_VERSION_KEY, prefix,
                                          str(index.last_job_time), new_stats_version())
            # It answers "QUEUED"; a lost connection is reported by the commit below.
            queued.addErrback(lambda _: None)
            await conn.commit()
            swapped = True
        except txredisapi.WatchError:
            raise RebuildConflict() from None
        except txredisapi.ConnectionError as exc:
            raise StoreUnavailable(str(exc)) from None
        except txredisapi.ResponseError as exc:
            raise StoreError(str(exc)) from None
        except BaseException:
            # Give the connection back clean: drop the queued swap and the watch.
            try:
                if in_multi:
                    await conn.discard()
                else:
                    await conn.unwatch()
            except Exception:  # noqa: BLE001 - the original failure is the one to report
                log.failure("while abandoning a search database rebuild")
            raise
        finally:
            if not swapped:
                await self._drop_staged(prefix)
        return index

    async def _drop_staged(self, prefix: str) -> None:
        """Delete what an abandoned rebuild staged (best effort: the next swap removes it)."""
        try:
            cursor = "0"
            while True:
                cursor, keys = await self._search.scan(cursor, prefix + "*", 5000)
                if keys:
                    await self._search.delete(list(keys))
                if str(cursor) == "0":
                    break
        except (StoreUnavailable, StoreError):
            log.warn("Could not delete the staged keys of an abandoned rebuild ({prefix})",
                     prefix=prefix)

    # -- database-wide writes --------------------------------------------------------------------
    async def publish_reload(self) -> None:
        """Tell every process's search index to reload everything (``changes.RELOAD_ALL``)."""
        await publish_reload(self._redis)

    async def flush_all(self) -> None:
        """``FLUSHALL``: every logical database of this Redis, as the original's drop does; the
        stats version is seeded anew in the same transaction (its old value must not return)."""
        conn = await self._redis.connection_handler(DB.SEARCH).multi()
        try:
            conn.flushall()
            conn.set(STATS_VERSION_KEY, new_stats_version())
            await conn.commit()
        except txredisapi.ConnectionError as exc:
            raise StoreUnavailable(str(exc)) from None

    async def clear_all_new(self, ids: Sequence[str], batch: int = 2000) -> None:
        """Set ``isnew`` to "false" on these archives and take them out of ``LRR_NEW``."""
        search_db = str(self._search.number)
        for start in range(0, len(ids), batch):
            await self._main.eval(_CLEAR_NEW, [], [search_db, *ids[start:start + batch]])
        # Ids the scan did not see (there are none after a full pass) must not stay "new".
        await self._search.delete("LRR_NEW")

    async def delete_keys(self, keys: Sequence[str]) -> None:
        """Plain ``DEL`` of main-database keys (clean's answer to a 40-character non-hash)."""
        if keys:
            await self._main.delete(list(keys))

    async def all_archive_ids(self) -> list[str]:
        """Every 40-character key of the main database (SCAN, like ``ArchiveStore.ids``)."""
        found: set[str] = set()
        cursor = "0"
        while True:
            cursor, keys = await self._main.scan(cursor, ARCHIVE_KEY_PATTERN, 5000)
            found.update(as_text(key) for key in keys)
            if str(cursor) == "0":
                break
        return sorted(found)

    async def save_duplicate_groups(self, groups: dict[str, str]) -> None:
        """Write ``dupgp_<key>`` → JSON array fields (kept beside older groups, as the original)."""
        if groups:
            await self._redis.db(DB.CONFIG).hmset(DUPLICATE_GROUPS_KEY, groups)
