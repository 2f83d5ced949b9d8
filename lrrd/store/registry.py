"""Registries of the category and tankoubon ids in the main database, so no write scans every key.

LANraragi finds its categories and tanks with ``KEYS SET_??????????`` / ``KEYS TANK_??????????``:
each walks the whole main database (about 10 ms at 100,000 archives, with Redis blocked for
every client), and the original runs them on every archive delete and change of id. lrrd keeps
two sets of its own beside LANraragi's keys instead: ``lrrd:categories`` and ``lrrd:tankoubons``
(plus the marker ``lrrd:registries``, set once they are complete). The original's keys are not
touched, so LANraragi still reads the database as it is; it just ignores the three lrrd keys.

Why registries of ids, and not a reverse index archive → tanks/categories:

* They change only when a category or tank is born or dies (a handful of scripts:
  ``CategoryStore`` create/delete/restore, ``TankoubonStore`` create/delete), not on every
  membership change, so there is little to keep in step and little to get wrong.
* A stale entry is harmless and seen at once: every reader checks the key's type and drops an id
  whose key is gone. A reverse index that missed a membership written by someone else (LANraragi
  itself, a restored dump) would answer wrong with nothing to tell.
* A lookup costs one probe per category or tank (``ZSCORE``, or a substring test of a category's
  list): it grows with the number of tanks and categories, which stay in the hundreds or
  thousands, not with the number of archives.

When they are (re)built, so that a database LANraragi wrote, or one emptied by ``FLUSHALL`` or
replaced by a restored dump, is always answered right:

* ``rebuild_registries`` (at every start, by ``build_stat_hashes`` and after a drop) finds the ids
  with ``SCAN`` (which never blocks Redis for long) and merges them in one script that keeps only
  keys of the right type, so a category or tank created or deleted meanwhile is not lost nor
  brought back. It then sets the marker.
* Any script that needs the ids while the marker is missing (a ``FLUSHALL`` by hand, a dump
  restored under a running lrrd) builds the registries itself from ``KEYS``, once: correct at
  the cost of one scan, and fast again afterwards.

What they cannot see: LANraragi creating a category or tank in the same database while lrrd is
running. lrrd picks such keys up at its next start or ``build_stat_hashes``; taking turns on one
database is supported, running both on it at once is not.
"""

from __future__ import annotations

import os
from typing import Any

from lrrd.store.lua import JSON_LUA
from lrrd.store.redis import DB, RedisStore

CATEGORY_KEY_PATTERN = "SET_" + "?" * 10
TANK_KEY_PATTERN = "TANK_" + "?" * 10

CATEGORY_REGISTRY = "lrrd:categories"
TANK_REGISTRY = "lrrd:tankoubons"
#: Set once both registries hold every category and tank; gone after a ``FLUSHALL``.
REGISTRY_MARKER = "lrrd:registries"

#: Lua for scripts that start in the main database: ``registered('category'|'tank')`` gives the
#: ids (building the registries first when the marker is missing), ``register``/``unregister``
#: keep them in step. Call them before the script SELECTs another database.
REGISTRY_LUA = JSON_LUA + """
local REGISTRY = {
  category = {'%(categories)s', '%(category_pattern)s', 'hash'},
  tank = {'%(tanks)s', '%(tank_pattern)s', 'zset'},
}
local function registry_build()
  for _, spec in pairs(REGISTRY) do
    for _, key in ipairs(redis.call('KEYS', spec[2])) do
      if redis.call('TYPE', key).ok == spec[3] then redis.call('SADD', spec[1], key) end
    end
  end
  redis.call('SET', '%(marker)s', '1')
end
local function registered(kind)
  if redis.call('EXISTS', '%(marker)s') == 0 then registry_build() end
  local spec = REGISTRY[kind]
  local out = {}
  for _, key in ipairs(redis.call('SMEMBERS', spec[1])) do
    if redis.call('TYPE', key).ok == spec[3] then
      table.insert(out, key)
    else
      redis.call('SREM', spec[1], key)
    end
  end
  return out
end
local function register(kind, id) redis.call('SADD', REGISTRY[kind][1], id) end
local function unregister(kind, id) redis.call('SREM', REGISTRY[kind][1], id) end
-- Takes a deleted archive or tank out of every static category's ``archives`` JSON list.
local function uncategorise(id)
  for _, key in ipairs(registered('category')) do
    local raw = redis.call('HGET', key, 'archives')
    if raw and string.find(raw, id, 1, true) then
      local kept = json_without(raw, id)
      if kept then redis.call('HSET', key, 'archives', json_list(kept)) end
    end
  end
end
""" % {
    "categories": CATEGORY_REGISTRY, "tanks": TANK_REGISTRY, "marker": REGISTRY_MARKER,
    "category_pattern": CATEGORY_KEY_PATTERN, "tank_pattern": TANK_KEY_PATTERN,
}

# ARGV: 'category' or 'tank'. The registered ids (built first if need be).
_REGISTERED = REGISTRY_LUA + """
return registered(ARGV[1])
"""

# ARGV: n found categories, their ids, then found tanks. Adds the found keys that still have the
# right type, drops registered ids that no longer do, and marks the registries complete.
_MERGE = REGISTRY_LUA + """
local n = tonumber(ARGV[1])
for i = 2, #ARGV do
  local kind = 'tank'
  if i <= n + 1 then kind = 'category' end
  local key = ARGV[i]
  if redis.call('TYPE', key).ok == REGISTRY[kind][3] then register(kind, key) end
end
local counts = {}
for _, kind in ipairs({'category', 'tank'}) do
  local spec = REGISTRY[kind]
  local kept = 0
  for _, key in ipairs(redis.call('SMEMBERS', spec[1])) do
    if redis.call('TYPE', key).ok == spec[3] then kept = kept + 1 else redis.call('SREM', spec[1], key) end
  end
  table.insert(counts, kept)
end
redis.call('SET', '%s', '1')
return counts
""" % REGISTRY_MARKER


def _text(value: Any) -> str:
    return os.fsdecode(value) if isinstance(value, bytes) else str(value)


async def _scan(redis: RedisStore, pattern: str) -> list[str]:
    main = redis.db(DB.MAIN)
    found: set[str] = set()
    cursor = "0"
    while True:
        cursor, keys = await main.scan(cursor, pattern, 10000)
        found.update(_text(key) for key in keys)
        if str(cursor) == "0":
            return sorted(found)


async def rebuild_registries(redis: RedisStore) -> tuple[int, int]:
    """Find every category and tank by ``SCAN`` and merge them into the registries (dropping
    ids whose key is gone); returns (categories, tanks) registered. Safe to run at any time and
    from several processes at once."""
    categories = await _scan(redis, CATEGORY_KEY_PATTERN)
    tanks = await _scan(redis, TANK_KEY_PATTERN)
    counts = await redis.db(DB.MAIN).eval(
        _MERGE, [], [str(len(categories)), *categories, *tanks])
    return int(counts[0]), int(counts[1])


async def registered(redis: RedisStore, kind: str) -> list[str]:
    """The ids of ``kind`` ('category' or 'tank') whose keys exist with the right type, sorted."""
    return sorted(_text(key) for key in await redis.db(DB.MAIN).eval(_REGISTERED, [], [kind]))

