"""Tankoubons in the main database: one ``TANK_<10-digit time>`` sorted set each, as LANraragi
stores them, plus the search-database upkeep that goes with every change.

Layout (LRR-NOTES §2.3): metadata members ``name_<name>`` at score 0, ``summary_<text>`` at -1,
``tags_<tags>`` at -2, ``progress_<page>`` at -3; archive ids at scores ≥ 1, in reading order.
Search database upkeep (§2.5): a tank holding archives is in ``LRR_TANKGROUPED`` and its
members are not (an archive returns there once no tank holds it); the tank's title is in
``LRR_TITLES``; its own tags count in ``INDEX_*`` and ``LRR_STATS``; its members' tags are
imputed into ``INDEX_*`` only (max ``date_added``/``timestamp``). Every write is one Lua script
that ends by invalidating the search cache (as the original does for every tank mutation except
progress) and publishing the tank id on ``CHANGES_CHANNEL``: a subscriber should reload that
tank (metadata, members, own tags) and regroup its old and new members.

Where the original leaves the search database wrong, lrrd does not copy it: deleting a tank also
drops its title, its own tags' stats and index entries and its id in static categories; a tank
emptied by removals leaves ``LRR_TANKGROUPED`` (the original's check never fires); a rename
through ``PUT /tankoubons?tankid=`` replaces the name without duplicating the other metadata
members; ``PUT /tankoubons/{id}`` checks every archive before writing anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from lrrd.store.lua import COUNTED_LUA, INVALIDATE_LUA
from lrrd.store.archives import (
    ARCHIVE_ID_RE, CHANGES_CHANNEL, STATS_LUA, as_int, as_text, index_tags, nfc,
    normalize_tags, tag_list, title_member,
)
from lrrd.store.redis import ScriptedStore, StoreError, gather
from lrrd.store.registry import REGISTRY_LUA, registered
TANK_ID_RE = re.compile(r"^TANK_\d{10}$")

#: Metadata field → its fixed score in the tank's sorted set.
METADATA_SCORES = {"name": 0, "summary": -1, "tags": -2, "progress": -3}

_DATE_TAG = re.compile(r"^(date_added|timestamp):(\d+)$", re.IGNORECASE)
_CAS_RETRIES = 8

# ---- Lua ---------------------------------------------------------------------------------------
# Scripts start in the main database; ARGV[1] and ARGV[2] are the main and search database
# numbers. KEYS are read in the main database before any SELECT. The other tanks and the
# categories are the registered ones (``lrrd.store.registry``): no script scans the keyspace.
_COMMON = STATS_LUA + REGISTRY_LUA + INVALIDATE_LUA + COUNTED_LUA + """
local function is_tank(key)
  return redis.call('TYPE', key).ok == 'zset'
end
-- Is arc a member (score >= 1) of any tank other than except?
local function in_other_tank(tanks, arc, except)
  for _, key in ipairs(tanks) do
    if key ~= except then
      local score = redis.call('ZSCORE', key, arc)
      if score and tonumber(score) >= 1 then return true end
    end
  end
  return false
end
-- ARGV[i] is a count followed by that many values; returns the values and the next index.
-- Own tags enter LRR_STATS; every unified tag (own + imputed) is an INDEX_ membership.
local function reindex(id, stat_del, stat_add, index_del, index_add)
  for _, t in ipairs(stat_del) do stat_down(t) end
  for _, t in ipairs(stat_add) do stat_up(t) end
  for _, t in ipairs(index_del) do redis.call('SREM', 'INDEX_' .. t, id) end
  for _, t in ipairs(index_add) do redis.call('SADD', 'INDEX_' .. t, id) end
end
"""

# KEYS: none. ARGV: main, search, now, channel, wanted id ('' = allocate), time,
#   name member, expected old name member ('' = none), old title member, new title prefix
#   (the lowercased title and NUL: the id is appended here, once known).
# Returns the id, or '' when the old name changed under us (retry).
_CREATE = _COMMON + """
local id = ARGV[5]
if id == '' then
  local t = tonumber(ARGV[6])
  for i = 0, 10000 do
    local candidate = 'TANK_' .. string.format('%010d', t + i)
    if redis.call('EXISTS', candidate) == 0 then id = candidate; break end
  end
  if id == '' then return redis.error_reply('no free tankoubon id') end
else
  if redis.call('EXISTS', id) == 1 and not is_tank(id) then return redis.error_reply('not a tank') end
  local old = redis.call('ZRANGEBYSCORE', id, 0, 0)
  local current = old[#old] or ''
  if current ~= ARGV[8] then return '' end
  redis.call('ZREMRANGEBYSCORE', id, 0, 0)
end
redis.call('ZADD', id, 0, ARGV[7])
register('tank', id)
-- Metadata defaults, only where missing (the original re-adds them, duplicating members).
local defaults = {{-1, 'summary_'}, {-2, 'tags_'}, {-3, 'progress_0'}}
for _, d in ipairs(defaults) do
  if redis.call('ZCOUNT', id, d[1], d[1]) == 0 then redis.call('ZADD', id, d[1], d[2]) end
end
redis.call('SELECT', ARGV[2])
if ARGV[9] ~= '' then redis.call('ZREM', 'LRR_TITLES', ARGV[9]) end
redis.call('ZADD', 'LRR_TITLES', 0, ARGV[10] .. id)
invalidate(ARGV[3])
redis.call('PUBLISH', ARGV[4], id)
return id
"""

# KEYS: tank. ARGV: main, search, now, channel, title member,
#   counted own stats to drop, counted unified index tags to drop.
_DELETE = _COMMON + """
local id = KEYS[1]
if not is_tank(id) then return 0 end
local members = redis.call('ZRANGEBYSCORE', id, 1, '+inf')
redis.call('DEL', id)
unregister('tank', id)
local tanks = registered('tank')
local regroup = {}
for _, arc in ipairs(members) do
  if redis.call('EXISTS', arc) == 1 and not in_other_tank(tanks, arc, id) then
    table.insert(regroup, arc)
  end
end
-- A deleted tank leaves no dangling id in static categories.
uncategorise(id)
redis.call('SELECT', ARGV[2])
redis.call('SREM', 'LRR_TANKGROUPED', id)
for _, arc in ipairs(regroup) do redis.call('SADD', 'LRR_TANKGROUPED', arc) end
redis.call('ZREM', 'LRR_TITLES', ARGV[5])
local stat_del, i = counted(6)
local index_del = counted(i)
reindex(id, stat_del, {}, index_del, {})
invalidate(ARGV[3])
redis.call('PUBLISH', ARGV[4], id)
return 1
"""

# KEYS: tank. ARGV: main, search, now, channel,
#   set name (0/1), name member, old title member, new title member,
#   set summary (0/1), summary member, set tags (0/1), tags member,
#   set archives (0/1), counted archive ids,
#   counted stats drop, counted stats add, counted index drop, counted index add.
# Returns {1, ''}, {-1, ''} no tank, {-2, id} unknown archive.
_UPDATE = _COMMON + """
local id = KEYS[1]
if not is_tank(id) then return {-1, ''} end
local archives, i = counted(14)
local stat_del, stat_add, index_del, index_add
stat_del, i = counted(i)
stat_add, i = counted(i)
index_del, i = counted(i)
index_add, i = counted(i)
if ARGV[13] == '1' then
  for _, arc in ipairs(archives) do
    if redis.call('EXISTS', arc) == 0 then return {-2, arc} end
  end
end
if ARGV[5] == '1' then
  redis.call('ZREMRANGEBYSCORE', id, 0, 0)
  redis.call('ZADD', id, 0, ARGV[6])
end
if ARGV[9] == '1' then
  redis.call('ZREMRANGEBYSCORE', id, -1, -1)
  redis.call('ZADD', id, -1, ARGV[10])
end
if ARGV[11] == '1' then
  redis.call('ZREMRANGEBYSCORE', id, -2, -2)
  redis.call('ZADD', id, -2, ARGV[12])
end
local regroup = {}
if ARGV[13] == '1' then
  local wanted = {}
  for _, arc in ipairs(archives) do wanted[arc] = true end
  local removed = {}
  for _, arc in ipairs(redis.call('ZRANGEBYSCORE', id, 1, '+inf')) do
    if not wanted[arc] then table.insert(removed, arc) end
  end
  for _, arc in ipairs(removed) do redis.call('ZREM', id, arc) end
  for k, arc in ipairs(archives) do redis.call('ZADD', id, k, arc) end
  local tanks = registered('tank')
  for _, arc in ipairs(removed) do
    if redis.call('EXISTS', arc) == 1 and not in_other_tank(tanks, arc, id) then
      table.insert(regroup, arc)
    end
  end
end
redis.call('SELECT', ARGV[2])
if ARGV[5] == '1' then
  if ARGV[7] ~= '' then redis.call('ZREM', 'LRR_TITLES', ARGV[7]) end
  redis.call('ZADD', 'LRR_TITLES', 0, ARGV[8])
end
if ARGV[13] == '1' then
  for _, arc in ipairs(regroup) do redis.call('SADD', 'LRR_TANKGROUPED', arc) end
  if #archives == 0 then
    redis.call('SREM', 'LRR_TANKGROUPED', id)
  else
    redis.call('SADD', 'LRR_TANKGROUPED', id)
    for _, arc in ipairs(archives) do redis.call('SREM', 'LRR_TANKGROUPED', arc) end
  end
end
reindex(id, stat_del, stat_add, index_del, index_add)
invalidate(ARGV[3])
redis.call('PUBLISH', ARGV[4], id)
return {1, ''}
"""

# KEYS: tank. ARGV: main, search, now, channel, archive, counted index drop, counted index add.
# Returns 1 added, 2 already there, -1 no tank, -2 no archive.
_ADD = _COMMON + """
local id, arc = KEYS[1], ARGV[5]
if not is_tank(id) then return -1 end
if redis.call('EXISTS', arc) == 0 then return -2 end
local score = redis.call('ZSCORE', id, arc)
if score and tonumber(score) >= 1 then return 2 end
-- The original scores a new member with ZCARD, which counts the metadata members too.
local next_score = redis.call('ZCARD', id)
local last = redis.call('ZRANGE', id, -1, -1, 'WITHSCORES')
if last[2] and tonumber(last[2]) >= next_score then next_score = tonumber(last[2]) + 1 end
if next_score < 1 then next_score = 1 end
redis.call('ZADD', id, next_score, arc)
local index_del, i = counted(6)
local index_add = counted(i)
redis.call('SELECT', ARGV[2])
redis.call('SREM', 'LRR_TANKGROUPED', arc)
redis.call('SADD', 'LRR_TANKGROUPED', id)
reindex(id, {}, {}, index_del, index_add)
invalidate(ARGV[3])
redis.call('PUBLISH', ARGV[4], id)
return 1
"""

# KEYS: tank. ARGV: main, search, now, channel, archive, counted index drop, counted index add.
# Returns 1 removed the first member, 2 removed another, -1 no tank, -2 no archive, -3 absent.
_REMOVE = _COMMON + """
local id, arc = KEYS[1], ARGV[5]
if not is_tank(id) then return -1 end
if redis.call('EXISTS', arc) == 0 then return -2 end
local score = redis.call('ZSCORE', id, arc)
if not score or tonumber(score) < 1 then return -3 end
local first = redis.call('ZRANGEBYSCORE', id, 1, '+inf', 'LIMIT', 0, 1)[1] == arc
local later = redis.call('ZRANGEBYSCORE', id, '(' .. score, '+inf', 'WITHSCORES')
redis.call('ZREM', id, arc)
for k = 1, #later, 2 do redis.call('ZADD', id, tonumber(later[k + 1]) - 1, later[k]) end
local remaining = redis.call('ZCOUNT', id, 1, '+inf')
local elsewhere = in_other_tank(registered('tank'), arc, id)
local index_del, i = counted(6)
local index_add = counted(i)
redis.call('SELECT', ARGV[2])
if remaining == 0 then redis.call('SREM', 'LRR_TANKGROUPED', id) end
if not elsewhere then redis.call('SADD', 'LRR_TANKGROUPED', arc) end
reindex(id, {}, {}, index_del, index_add)
invalidate(ARGV[3])
redis.call('PUBLISH', ARGV[4], id)
if first then return 1 end
return 2
"""

# KEYS: tank. ARGV: main, search, now, channel, progress member. No cache invalidation.
_PROGRESS = _COMMON + """
local id = KEYS[1]
if not is_tank(id) then return -1 end
redis.call('ZREMRANGEBYSCORE', id, -3, -3)
redis.call('ZADD', id, -3, ARGV[5])
redis.call('PUBLISH', ARGV[4], id)
return 1
"""

# ARGV: archive id. The tanks holding it, in one round trip (the original's KEYS + ZSCORE, over
# the registered tanks instead of every key).
_TANKS_OF = REGISTRY_LUA + """
local found = {}
for _, key in ipairs(registered('tank')) do
  local score = redis.call('ZSCORE', key, ARGV[1])
  if score and tonumber(score) >= 1 then table.insert(found, key) end
end
return found
"""

# KEYS: tank. ARGV: main, search, now, channel, counted index drop, counted index add.
# Also puts the tank in or out of LRR_TANKGROUPED by whether it still holds archives.
_REINDEX = _COMMON + """
local id = KEYS[1]
if not is_tank(id) then return -1 end
local members = redis.call('ZCOUNT', id, 1, '+inf')
local index_del, i = counted(5)
local index_add = counted(i)
redis.call('SELECT', ARGV[2])
if members > 0 then
  redis.call('SADD', 'LRR_TANKGROUPED', id)
else
  redis.call('SREM', 'LRR_TANKGROUPED', id)
end
reindex(id, {}, {}, index_del, index_add)
invalidate(ARGV[3])
redis.call('PUBLISH', ARGV[4], id)
return 1
"""


# ---- pure rules ----------------------------------------------------------------------------------
class TankError(Exception):
    """A tank write the original refuses, with its message (answered as a 400)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message = message
        #: ``no_tank``, ``no_archive``, ``absent`` or ``bad_id``.
        self.code = code


@dataclass
class Tank:
    """A tank as read from its sorted set: metadata and the archive ids in score order."""

    id: str
    name: str = ""
    summary: str = ""
    tags: str = ""
    progress: int = 0
    archives: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The API's tank object (``get_tankoubon``)."""
        return {
            "archives": list(self.archives),
            "id": self.id,
            "name": self.name,
            "progress": self.progress,
            "summary": self.summary,
            "tags": self.tags,
        }


def parse_metadata(members: Sequence[Any]) -> dict[str, str]:
    """Metadata members (scores -3..0, in Redis order) → fields; the last match of a prefix wins.

    A bare member at score 0 without ``name_`` is how very old versions stored the name.
    """
    out: dict[str, str] = {}
    for raw in members:
        text = as_text(raw)
        for key in METADATA_SCORES:
            if text.startswith(key + "_"):
                out[key] = text[len(key) + 1:]
                break
    return out


def unified_tags(own_tags: str, member_tags: Iterable[str | None]) -> tuple[list[str], list[str]]:
    """``get_tank_unified_tags``: (own tags, imputed tags) as the original computes them.

    Imputed tags are the members' tags, trimmed and deduplicated case-insensitively, without
    the tank's own; of ``date_added:``/``timestamp:`` only the largest value is imputed, and
    only when the tank has no own tag of that namespace.
    """
    own = [t.strip() for t in (own_tags or "").split(",") if t.strip()]
    own_lc = {t.lower() for t in own}
    own_dates = {m.group(1).lower() for t in own if (m := _DATE_TAG.match(t))}
    seen: set[str] = set()
    imputed: list[str] = []
    best_dates: dict[str, tuple[int, str]] = {}
    date_order: list[str] = []
    for tags in member_tags:
        for raw in (tags or "").split(","):
            tag = raw.strip()
            if not tag:
                continue
            match = _DATE_TAG.match(tag)
            if match:
                ns, value = match.group(1).lower(), int(match.group(2))
                if ns not in best_dates:
                    date_order.append(ns)
                if ns not in best_dates or value > best_dates[ns][0]:
                    best_dates[ns] = (value, tag)
                continue
            lowered = tag.lower()
            if lowered in seen:
                continue
            seen.add(lowered)
            if lowered in own_lc:
                continue
            imputed.append(tag)
    for ns in date_order:
        if ns not in own_dates:
            imputed.append(best_dates[ns][1])
    return own, imputed


def unified_index(own_tags: str, member_tags: Iterable[str | None]) -> set[str]:
    """The ``INDEX_<tag>`` names (lowercased) a tank belongs to."""
    own, imputed = unified_tags(own_tags, member_tags)
    return {t.lower() for t in own + imputed}


def tank_json(tank: Tank | Mapping[str, Any], members: Sequence[Mapping[str, Any]],
              archive_count: int | None = None) -> dict[str, Any]:
    """The original's ``build_tank_json``: a tank as a pseudo-archive in search results.

    ``tank`` is a ``Tank`` (or its ``as_json()``); ``members`` are the archive JSON objects
    (``archive_json``) of the members whose file exists, in tank order; ``archive_count`` the
    number of member ids (all of them; defaults to ``len(tank archives)``). Types follow the
    spec: ``isnew`` a boolean, counts integers.
    """
    data = tank.as_json() if isinstance(tank, Tank) else dict(tank)
    member_tags = [as_text(m.get("tags")) for m in members]
    own, imputed = unified_tags(as_text(data.get("tags")), member_tags)
    titles = ",".join(as_text(m.get("title")) for m in members)
    count = len(data.get("archives") or []) if archive_count is None else archive_count
    return {
        "arcid": data.get("id", ""),
        "title": as_text(data.get("name")),
        "filename": "",
        "tags": ",".join(own + imputed),
        "summary": "Tankoubon containing: " + titles,
        "isnew": any(m.get("isnew") is True or m.get("isnew") == "true" for m in members),
        "extension": ".tank",
        "progress": as_int(data.get("progress")),
        "pagecount": sum(as_int(m.get("pagecount")) for m in members),
        "lastreadtime": max([as_int(m.get("lastreadtime")) for m in members] or [0]),
        "size": sum(as_int(m.get("size")) for m in members),
        "archive_count": count,
    }


def _counted(items: Iterable[str]) -> list[str]:
    values = sorted(items)
    return [str(len(values)), *values]


#: Redis takes a LIMIT offset as a signed 64-bit integer; a page past any tank's end is empty anyway.
_MAX_OFFSET = 2**62


def _page_offset(page: int | None, pagesize: int) -> int | None:
    """The members' offset of page ``page`` (None for all), capped so that any page number a
    client sends (``?page=`` takes arbitrary integers) is an empty page, not a Redis error."""
    if page is None or page < 0:
        return None
    return min(page * max(pagesize, 0), _MAX_OFFSET)


# ---- the store -----------------------------------------------------------------------------------
class TankoubonStore(ScriptedStore):
    """Reads and writes tank sorted sets and the search-database entries that follow them."""

    async def _eval(self, script: str, keys: list[str], args: list[Any]) -> Any:
        return await self._main.eval(script, keys, self._dbs() + [self._now(), CHANGES_CHANNEL]
                                     + list(args))

    # -- reads -----------------------------------------------------------------------------------
    async def ids(self) -> list[str]:
        """Every tank id (``KEYS TANK_??????????`` in the original), sorted: the registered
        ones, so listing tanks does not walk every archive key."""
        return await registered(self._redis, "tank")

    async def exists(self, tank_id: str) -> bool:
        return len(tank_id) == 15 and as_text(await self._main.type(tank_id)) == "zset"

    def _read_commands(self, tank_id: str, offset: int | None, count: int | None) -> list[Any]:
        main = self._main
        if offset is None:
            members = main.zrangebyscore(tank_id, 1, "+inf", withscores=True)
        else:
            members = main.zrangebyscore(tank_id, 1, "+inf", withscores=True,
                                         offset=offset, count=count)
        return [main.type(tank_id), main.zrangebyscore(tank_id, -3, 0), members,
                main.zcount(tank_id, 1, "+inf")]

    @staticmethod
    def _build(tank_id: str, kind: Any, meta: Any, members: Any) -> Tank | None:
        if as_text(kind) != "zset":
            return None
        fields = parse_metadata(meta or [])
        if "name" not in fields:
            bare = [as_text(m) for m in (meta or []) if not parse_metadata([m])]
            if bare:
                fields["name"] = bare[-1]
        return Tank(
            id=tank_id,
            name=fields.get("name", ""),
            summary=fields.get("summary", ""),
            tags=fields.get("tags", ""),
            progress=as_int(fields.get("progress")),
            archives=[as_text(member) for member, _ in (members or [])],
        )

    async def get(self, tank_id: str, page: int | None = None,
                  pagesize: int = 100) -> tuple[Tank, int] | None:
        """The tank with the archives of ``page`` (a page index; None or negative = all),
        and the total number of archives; None when no such tank."""
        if len(tank_id) != 15:
            return None
        offset = _page_offset(page, pagesize)
        kind, meta, members, total = await gather(
            *self._read_commands(tank_id, offset, pagesize if offset is not None else None))
        tank = self._build(tank_id, kind, meta, members)
        return None if tank is None else (tank, int(total or 0))

    async def get_many(self, tank_ids: Sequence[str], page: int | None = None,
                       pagesize: int = 100) -> list[Tank | None]:
        """Several tanks in one pipelined round trip (``page`` applies to each)."""
        if not tank_ids:
            return []
        offset = _page_offset(page, pagesize)
        commands: list[Any] = []
        for tank_id in tank_ids:
            commands.extend(self._read_commands(tank_id, offset,
                                                pagesize if offset is not None else None))
        replies = await gather(*commands)
        return [self._build(tank_id, *replies[4 * i:4 * i + 3])
                for i, tank_id in enumerate(tank_ids)]

    async def member_tags(self, arcids: Sequence[str]) -> list[str]:
        """The raw ``tags`` strings of archives, pipelined."""
        if not arcids:
            return []
        replies = await gather(*(self._main.hget(arcid, "tags") for arcid in arcids))
        return [as_text(reply) for reply in replies]

    async def tanks_of_archive(self, arcid: str) -> list[str]:
        """The tanks (sorted by id) that hold ``arcid``, found in one script call."""
        return sorted(as_text(key) for key in await self._main.eval(_TANKS_OF, [], [arcid]))

    async def page_counts(self, arcids: Sequence[str]) -> list[int]:
        if not arcids:
            return []
        replies = await gather(*(self._main.hget(arcid, "pagecount") for arcid in arcids))
        return [as_int(reply) for reply in replies]

    async def translate_global_page(self, tank_id: str, page: int) -> tuple[str, int] | None:
        """A page number across the whole tank → (archive id, page in that archive)."""
        found = await self.get(tank_id)
        if found is None or page < 1:
            return None
        tank, _ = found
        offset = 0
        for arcid, count in zip(tank.archives, await self.page_counts(tank.archives)):
            if page <= offset + count:
                return arcid, page - offset
            offset += count
        return None

    async def _index_of(self, tank_id: str) -> tuple[Tank, set[str], list[str]] | None:
        """The tank (all members), its unified index names, and its members' tags."""
        found = await self.get(tank_id)
        if found is None:
            return None
        tank, _ = found
        tags = await self.member_tags(tank.archives)
        return tank, unified_index(tank.tags, tags), tags

    # -- writes ----------------------------------------------------------------------------------
    async def create(self, name: str, tank_id: str | None = None) -> str:
        """A new tank (id from the clock, +1 on collision), or rename/create ``tank_id``."""
        name = nfc(name)
        wanted = tank_id or ""
        if wanted and not TANK_ID_RE.match(wanted):
            raise TankError(f"{wanted} is not a valid tankoubon ID.", "bad_id")
        for _ in range(_CAS_RETRIES):
            old_member = old_title = ""
            if wanted:
                names = await self._main.zrangebyscore(wanted, 0, 0)
                if names:
                    old_member = as_text(names[-1])
                    old_name = parse_metadata([old_member]).get("name", old_member)
                    old_title = title_member(old_name, wanted)
            created = as_text(await self._eval(_CREATE, [], [
                wanted, self._now(), "name_" + name, old_member, old_title,
                title_member(name, ""),
            ]))
            if created:
                return created
        raise StoreError(f"the name of {wanted} keeps changing; gave up")

    async def delete(self, tank_id: str) -> bool:
        """Delete the tank; members no other tank holds return to grouped search."""
        indexed = await self._index_of(tank_id)
        if indexed is None:
            return False
        tank, unified, _ = indexed
        return bool(await self._eval(_DELETE, [tank_id], [
            title_member(tank.name, tank_id),
            *_counted(index_tags(tank.tags)),
            *_counted(unified),
        ]))

    async def update(self, tank_id: str, archives: Sequence[str] | None = None,
                     name: str | None = None, summary: str | None = None,
                     tags: str | None = None, append: bool = False) -> Tank:
        """``PUT /tankoubons/{id}``: metadata, then the archive list (scores 1..N), at once.

        The caller holds ``tankoubon-write:<id>``. Raises TankError for an unknown tank or
        archive; nothing is written then.
        """
        indexed = await self._index_of(tank_id)
        if indexed is None:
            raise TankError(f"{tank_id} doesn't exist in the database!", "no_tank")
        tank, old_unified, old_member_tags = indexed
        if archives is not None:
            for arcid in archives:
                if not ARCHIVE_ID_RE.match(arcid):
                    raise TankError(f"{arcid} does not exist in the database.", "no_archive")
        new_own = tank.tags
        if tags is not None:
            if append:
                if tags.strip():
                    new_own = normalize_tags(tank.tags + "," + tags)
            else:
                new_own = normalize_tags(tags)
        new_members = list(dict.fromkeys(archives)) if archives is not None else tank.archives
        member_tags = (await self.member_tags(new_members)
                       if archives is not None else old_member_tags)
        new_unified = unified_index(new_own, member_tags)
        old_stats, new_stats = index_tags(tank.tags), index_tags(new_own)
        new_name = nfc(name) if name else None
        code, detail = await self._eval(_UPDATE, [tank_id], [
            "1" if new_name is not None else "0",
            "name_" + (new_name or ""),
            title_member(tank.name, tank_id) if new_name is not None else "",
            title_member(new_name or "", tank_id),
            "1" if summary is not None else "0", "summary_" + nfc(summary or ""),
            "1" if tags is not None else "0", "tags_" + new_own,
            "1" if archives is not None else "0",
            *([str(len(new_members)), *new_members] if archives is not None else ["0"]),
            *_counted(old_stats - new_stats), *_counted(new_stats - old_stats),
            *_counted(old_unified - new_unified), *_counted(new_unified),
        ])
        if int(code) == -1:
            raise TankError(f"{tank_id} doesn't exist in the database!", "no_tank")
        if int(code) == -2:
            raise TankError(f"{as_text(detail)} does not exist in the database.", "no_archive")
        return Tank(
            id=tank_id,
            name=new_name if new_name is not None else tank.name,
            summary=nfc(summary) if summary is not None else tank.summary,
            tags=new_own,
            progress=tank.progress,
            archives=new_members,
        )

    async def add_archive(self, tank_id: str, arcid: str) -> bool:
        """Append ``arcid`` (score = ZCARD, the original's quirk); False if already there."""
        indexed = await self._index_of(tank_id)
        if indexed is None:
            raise TankError(f"{tank_id} doesn't exist in the database!", "no_tank")
        tank, old_unified, member_tags = indexed
        if not ARCHIVE_ID_RE.match(arcid):
            raise TankError(f"{arcid} does not exist in the database.", "no_archive")
        if arcid in tank.archives:
            return False
        new_unified = unified_index(tank.tags, member_tags + await self.member_tags([arcid]))
        code = int(await self._eval(_ADD, [tank_id], [
            arcid, *_counted(old_unified - new_unified), *_counted(new_unified),
        ]))
        if code == -1:
            raise TankError(f"{tank_id} doesn't exist in the database!", "no_tank")
        if code == -2:
            raise TankError(f"{arcid} does not exist in the database.", "no_archive")
        return code == 1

    async def remove_archive(self, tank_id: str, arcid: str) -> bool:
        """Remove ``arcid`` and re-pack later scores; True when it was the first archive."""
        indexed = await self._index_of(tank_id)
        if indexed is None:
            raise TankError(f"{tank_id} doesn't exist in the database!", "no_tank")
        tank, old_unified, member_tags = indexed
        if not ARCHIVE_ID_RE.match(arcid) or not await self._main.exists(arcid):
            raise TankError(f"{arcid} does not exist in the database.", "no_archive")
        if arcid not in tank.archives:
            raise TankError(f"{arcid} not in tankoubon {tank_id}, doing nothing.", "absent")
        kept = [tags for member, tags in zip(tank.archives, member_tags) if member != arcid]
        new_unified = unified_index(tank.tags, kept)
        code = int(await self._eval(_REMOVE, [tank_id], [
            arcid, *_counted(old_unified - new_unified), *_counted(new_unified),
        ]))
        if code == -1:
            raise TankError(f"{tank_id} doesn't exist in the database!", "no_tank")
        if code == -2:
            raise TankError(f"{arcid} does not exist in the database.", "no_archive")
        if code == -3:
            raise TankError(f"{arcid} not in tankoubon {tank_id}, doing nothing.", "absent")
        return code == 1

    async def set_progress(self, tank_id: str, page: int) -> None:
        """``progress_<page>`` at score -3; no upper bound, no lastreadtime, no cache change."""
        code = int(await self._eval(_PROGRESS, [tank_id], [f"progress_{page}"]))
        if code == -1:
            raise TankError(f"{tank_id} doesn't exist in the database!", "no_tank")

    async def refresh_imputed(self, tank_id: str, removed_tags: Iterable[str] = ()) -> None:
        """``update_tank_imputed_indexes``: add the tank to every unified tag's index, and take
        it out of those ``removed_tags`` (e.g. a member's old tags) no longer unified. Also sets
        the tank's ``LRR_TANKGROUPED`` membership from whether it still holds archives."""
        indexed = await self._index_of(tank_id)
        if indexed is None:
            return
        _, unified, _ = indexed
        stale = {t.strip().lower() for t in removed_tags if t.strip()} - unified
        await self._eval(_REINDEX, [tank_id], [*_counted(stale), *_counted(unified)])

    async def refresh_tanks(self, tank_ids: Iterable[str], old_tags: str) -> None:
        """After a member of these tanks changed tags or was deleted (``old_tags`` its tags
        before): re-impute each and fix its grouping. For ``ArchiveStore.delete``, read
        ``tanks_of_archive`` first, delete, then call this."""
        removed = tag_list(old_tags)
        for tank_id in tank_ids:
            await self.refresh_imputed(tank_id, removed)

    async def refresh_tanks_of_archive(self, arcid: str, old_tags: str) -> list[str]:
        """After an archive's tags changed: re-impute every tank holding it (the original does
        this in ``set_tags``). Returns those tanks."""
        tanks = await self.tanks_of_archive(arcid)
        await self.refresh_tanks(tanks, old_tags)
        return tanks
