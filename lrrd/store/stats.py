"""The search database as a whole (DB3) and the database-wide writes of the database API.

``build_stat_hashes`` recomputes every DB3 key from the main database; ``replace_search_db``
swaps the result in the way the original does: ``WATCH`` the index keys, read, then ``FLUSHDB``
and write everything in one ``MULTI``/``EXEC``, so readers see the old index or the new one and
never half of each, and a write made by someone else while the new one was computed cancels the
swap (the caller recomputes). Writes that change the main database wholesale (``FLUSHALL``,
clearing every ``isnew``) publish ``RELOAD_ALL`` on the changes channel: other processes' search
indexes then reload everything rather than one id.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterable, Sequence

import txredisapi
from twisted.logger import Logger

from lrrd.store.archives import ARCHIVE_KEY_PATTERN, CHANGES_CHANNEL, as_text
from lrrd.store.redis import DB, RedisStore, StoreError, StoreUnavailable, gather

log = Logger()

#: Published on ``CHANGES_CHANNEL`` when the main database changed in a way no id names.
RELOAD_ALL = "*"

#: What the original watches while it rebuilds; lrrd adds the search cache, which every
#: archive, tank and category write touches.
WATCHED_KEYS = ("LRR_STATS", "LRR_URLMAP", "LRR_UNTAGGED", "LRR_TITLES", "LRR_NEW",
                "LRR_TANKGROUPED", "LRR_SEARCHCACHE")

#: Members per command when the rebuilt index is written.
_CHUNK = 5000

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
                                                   *[_wire(arcid) for arcid in chunk]])
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

    def commands(self) -> Iterable[list[Any]]:
        """The writes that recreate it in an empty database, a few thousand members each."""
        for tag in sorted(self.index):
            yield from _chunked(["SADD", "INDEX_" + tag], sorted(self.index[tag]))
        stat_pairs: list[Any] = []
        for tag in sorted(self.stats):
            stat_pairs.extend((self.stats[tag], tag))
        yield from _chunked(["ZADD", "LRR_STATS"], stat_pairs, step=2)
        title_pairs: list[Any] = []
        for member in sorted(self.titles):
            title_pairs.extend((0, member))
        yield from _chunked(["ZADD", "LRR_TITLES"], title_pairs, step=2)
        for key, members in (("LRR_TANKGROUPED", self.tankgrouped), ("LRR_NEW", self.new),
                             ("LRR_UNTAGGED", self.untagged)):
            yield from _chunked(["SADD", key], sorted(members))
        url_pairs: list[Any] = []
        for url in sorted(self.urlmap):
            url_pairs.extend((url, self.urlmap[url]))
        yield from _chunked(["HMSET", "LRR_URLMAP"], url_pairs, step=2)
        yield ["SET", "LAST_JOB_TIME", str(self.last_job_time)]


def _chunked(head: list[Any], items: Sequence[Any], step: int = 1) -> Iterable[list[Any]]:
    size = _CHUNK * step
    for start in range(0, len(items), size):
        yield head + [_wire(item) for item in items[start:start + size]]


def _wire(value: Any) -> Any:
    """Text from an undecodable filename carries surrogates: send its raw bytes instead."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return os.fsencode(value)
    return value


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

        With ``watch``, the index keys are watched before ``compute`` reads anything, and
        ``RebuildConflict`` is raised (nothing written) if another writer touched them before
        the swap; without it the swap always happens (a last resort under constant writes).
        """
        handler = self._redis.connection_handler(DB.SEARCH)
        if not self._search.connected:
            raise StoreUnavailable("Redis is not connected")
        try:
            conn = await (handler.watch(list(WATCHED_KEYS)) if watch else handler.multi())
        except txredisapi.ConnectionError as exc:
            raise StoreUnavailable(str(exc)) from None
        in_multi = not watch
        try:
            index = await compute()
            if not in_multi:
                await conn.multi()
                in_multi = True
            queued = [conn.execute_command("FLUSHDB")]
            queued.extend(conn.execute_command(*command) for command in index.commands())
            for reply in queued:
                # Each answers "QUEUED"; a lost connection is reported by the commit below.
                reply.addErrback(lambda _: None)
            await conn.commit()
        except txredisapi.WatchError:
            raise RebuildConflict() from None
        except txredisapi.ConnectionError as exc:
            raise StoreUnavailable(str(exc)) from None
        except txredisapi.ResponseError as exc:
            raise StoreError(str(exc)) from None
        except BaseException:
            # Give the connection back clean: drop the queued writes and the watch.
            try:
                if in_multi:
                    await conn.discard()
                else:
                    await conn.unwatch()
            except Exception:  # noqa: BLE001 - the original failure is the one to report
                log.failure("while abandoning a search database rebuild")
            raise
        return index

    # -- database-wide writes --------------------------------------------------------------------
    async def publish_reload(self) -> None:
        """Tell every process's search index to reload everything."""
        await self._main.publish(CHANGES_CHANNEL, RELOAD_ALL)

    async def flush_all(self) -> None:
        """``FLUSHALL``: every logical database of this Redis, as the original's drop does."""
        await self._main.flushall()

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
