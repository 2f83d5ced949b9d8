"""Categories in the main database: ``SET_<10-digit time>`` hashes, as LANraragi stores them.

A category hash has ``name``, ``search`` (``""`` for a static category, else the predicate of a
dynamic one), ``pinned`` (``"0"``/``"1"``) and ``archives`` (a JSON array of ids). The bookmark
link lives in DB0's ``LRR_CONFIG`` (a quirk of the original). Writes that check and change
together are Lua scripts; each publishes the category id on ``CHANGES_CHANNEL`` so the search
index of every lrrd process can reload it. Creating, restoring and deleting a category keep the
registry of category ids (``lrrd.store.registry``) in step, so nothing here scans the keyspace.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from lrrd.store.lua import INVALIDATE_LUA, JSON_LUA
from lrrd.store.archives import ARCHIVE_ID_RE, CHANGES_CHANNEL, as_text, nfc
from lrrd.store.redis import ScriptedStore, gather
from lrrd.store.registry import REGISTRY_LUA, registered
CATEGORY_ID_RE = re.compile(r"^SET_\d{10}$")
TANK_ID_RE = re.compile(r"^TANK_\d{10}$")

#: The original keeps the bookmark link in DB0's LRR_CONFIG (a quirk of its key migration).
BOOKMARK_KEY = "LRR_CONFIG"
BOOKMARK_FIELD = "bookmark_link"

# Every script runs in the main database; ARGV[1] and ARGV[2] are the main and search database
# numbers. Invalidation is the original's: drop the whole search cache, stamp ``created``.
_INVALIDATE = INVALIDATE_LUA + """
local function is_category(key)
  return redis.call('TYPE', key).ok == 'hash'
end
"""

#: Allocates ``SET_<time>`` (time+1, +2... on collision, as the original does) and writes the
#: hash in one step, so two creators never share an id. ARGV: time, name, search, pinned, channel.
_CREATE = REGISTRY_LUA + """
local t = tonumber(ARGV[1])
for i = 0, 10000 do
  local id = 'SET_' .. string.format('%010d', t + i)
  if redis.call('EXISTS', id) == 0 then
    redis.call('HSET', id, 'name', ARGV[2], 'search', ARGV[3], 'pinned', ARGV[4], 'archives', '[]')
    register('category', id)
    redis.call('PUBLISH', ARGV[5], id)
    return id
  end
end
return redis.error_reply('no free category id')
"""

# ARGV: main, search, name, search predicate, pinned, channel
_UPDATE = _INVALIDATE + """
local id = KEYS[1]
if not is_category(id) then return 0 end
redis.call('HSET', id, 'name', ARGV[3], 'search', ARGV[4], 'pinned', ARGV[5])
redis.call('PUBLISH', ARGV[6], id)
return 1
"""

# ARGV: main, search, channel. The original does not invalidate the search cache here.
_DELETE = REGISTRY_LUA + """
local id = KEYS[1]
if redis.call('EXISTS', id) == 0 then return 0 end
if redis.call('HGET', 'LRR_CONFIG', 'bookmark_link') == id then
  redis.call('HDEL', 'LRR_CONFIG', 'bookmark_link')
end
redis.call('DEL', id)
unregister('category', id)
redis.call('PUBLISH', ARGV[3], id)
return 1
"""

# ARGV: main, search, archive id, now, channel.
# Returns {code, detail}: 1 added, 2 already present, -1 no category, -2 dynamic,
# -3 no archive, -4 junk in the archives field (detail = the raw value).
_ADD = _INVALIDATE + """
local id, arc = KEYS[1], ARGV[3]
if not is_category(id) then return {-1, ''} end
local search = redis.call('HGET', id, 'search')
if search and search ~= '' then return {-2, ''} end
if redis.call('EXISTS', arc) == 0 then return {-3, ''} end
local raw = redis.call('HGET', id, 'archives') or '[]'
local ok, list = pcall(cjson.decode, raw)
if not ok or type(list) ~= 'table' then return {-4, raw} end
local texts = {}
for i, member in ipairs(list) do texts[i] = tostring(member) end
-- The original tests "already present" as a substring of the space-joined list.
if string.find(table.concat(texts, ' '), arc, 1, true) then return {2, ''} end
table.insert(texts, arc)
redis.call('HSET', id, 'archives', cjson.encode(texts))
redis.call('SELECT', ARGV[2])
invalidate(ARGV[4])
redis.call('PUBLISH', ARGV[5], id)
return {1, ''}
"""

# ARGV: main, search, archive id, now, channel. Removes the first occurrence only.
# Returns {code, detail}: 1 removed (or absent), -1 no category, -2 dynamic, -4 junk.
_REMOVE = _INVALIDATE + JSON_LUA + """
local id, arc = KEYS[1], ARGV[3]
if not is_category(id) then return {-1, ''} end
local search = redis.call('HGET', id, 'search')
if search and search ~= '' then return {-2, ''} end
local raw = redis.call('HGET', id, 'archives') or '[]'
local ok, list = pcall(cjson.decode, raw)
if not ok or type(list) ~= 'table' then return {-4, raw} end
local kept, removed = {}, false
for _, member in ipairs(list) do
  local text = tostring(member)
  if not removed and text == arc then removed = true else table.insert(kept, text) end
end
redis.call('HSET', id, 'archives', json_list(kept))
redis.call('SELECT', ARGV[2])
invalidate(ARGV[4])
redis.call('PUBLISH', ARGV[5], id)
return {1, ''}
"""

# KEYS: category. ARGV: main, search, now, channel, name, search predicate, archive ids...
# Backup restore: the category keeps its id, is unpinned, and gains the archives that exist.
_RESTORE = _INVALIDATE + REGISTRY_LUA + """
local id = KEYS[1]
if redis.call('EXISTS', id) == 1 and not is_category(id) then return 0 end
if redis.call('EXISTS', id) == 0 then redis.call('HSET', id, 'archives', '[]') end
register('category', id)
redis.call('HSET', id, 'name', ARGV[5], 'search', ARGV[6], 'pinned', '0')
local ok, list = pcall(cjson.decode, redis.call('HGET', id, 'archives') or '[]')
if not ok or type(list) ~= 'table' then list = {} end
local texts = {}
for i, member in ipairs(list) do texts[i] = tostring(member) end
for k = 7, #ARGV do
  local arc = ARGV[k]
  if redis.call('EXISTS', arc) == 1
     and not string.find(table.concat(texts, ' '), arc, 1, true) then
    table.insert(texts, arc)
  end
end
redis.call('HSET', id, 'archives', json_list(texts))
redis.call('SELECT', ARGV[2])
invalidate(ARGV[3])
redis.call('PUBLISH', ARGV[4], id)
return 1
"""

# ARGV: main, search, category id. Returns 1 linked, -1 missing, -2 dynamic.
_LINK = _INVALIDATE + """
local id = ARGV[3]
if not is_category(id) then return -1 end
local search = redis.call('HGET', id, 'search')
if search and search ~= '' then return -2 end
redis.call('HSET', 'LRR_CONFIG', 'bookmark_link', id)
return 1
"""

# ARGV: an id. The registered categories, static, whose archives text contains it (a superset of
# those that hold it: the caller decodes and checks).
_CANDIDATES = REGISTRY_LUA + """
local found = {}
for _, key in ipairs(registered('category')) do
  local search = redis.call('HGET', key, 'search')
  if not search or search == '' then
    local raw = redis.call('HGET', key, 'archives')
    if raw and string.find(raw, ARGV[1], 1, true) then table.insert(found, key) end
  end
end
return found
"""

# Returns the previous link ('' if none) and removes it.
_UNLINK = """
local old = redis.call('HGET', 'LRR_CONFIG', 'bookmark_link') or ''
redis.call('HDEL', 'LRR_CONFIG', 'bookmark_link')
return old
"""


class CategoryError(Exception):
    """A category write the original refuses, with its message (answered as a 400)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message = message
        #: ``no_category``, ``dynamic``, ``no_archive`` or ``junk``.
        self.code = code


class BookmarkError(Exception):
    """``update_bookmark_link`` refused: the status and message the original answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class AddResult:
    """What ``add_archive`` did: ``added`` is False when the id was already present."""

    added: bool


def pinned_flag(raw: Any) -> int:
    """The stored ``pinned`` ("0"/"1", or missing in old databases) as the API's integer."""
    text = as_text(raw).strip()
    return 0 if text in ("", "0") else 1


def archive_list(raw: Any) -> list[str]:
    """The ``archives`` field decoded; junk (not a JSON list) reads as empty."""
    text = as_text(raw)
    if not text:
        return []
    try:
        value = json.loads(text)
    except ValueError:
        return []
    if not isinstance(value, list):
        return []
    return [item if isinstance(item, str) else json.dumps(item) for item in value]


def category_json(cat_id: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The API's category object: ``archives`` is ``[]`` for dynamic ones, ``pinned`` an int."""
    search = as_text(fields.get("search"))
    return {
        "archives": [] if search else archive_list(fields.get("archives")),
        "id": cat_id,
        "name": as_text(fields.get("name")),
        "pinned": pinned_flag(fields.get("pinned")),
        "search": search,
    }


def is_member_id(value: str) -> bool:
    """Ids a static category may hold: archive ids and tankoubon ids."""
    return bool(ARCHIVE_ID_RE.match(value) or TANK_ID_RE.match(value))


class CategoryStore(ScriptedStore):
    """Category hashes plus the bookmark link."""

    # -- reads -----------------------------------------------------------------------------------
    async def ids(self) -> list[str]:
        """Every category id (``KEYS SET_??????????`` in the original), sorted: the registered
        ones, so a listing does not walk every archive key."""
        return await registered(self._redis, "category")

    async def get(self, cat_id: str) -> dict[str, Any] | None:
        """The category object, or None when the id is not a 14-character category key."""
        if len(cat_id) != 14:
            return None
        fields = await self._get_hash(cat_id)
        return None if fields is None else category_json(cat_id, fields)

    async def _get_hash(self, cat_id: str) -> dict[str, Any] | None:
        kind, fields = await gather(self._main.type(cat_id), self._main.hgetall(cat_id))
        if as_text(kind) != "hash" or not fields:
            return None
        return dict(fields)

    async def list_all(self) -> list[dict[str, Any]]:
        """All categories, their hashes read in one pipelined round trip."""
        ids = [cat_id for cat_id in await self.ids() if len(cat_id) == 14]
        if not ids:
            return []
        replies = await gather(*(self._main.hgetall(cat_id) for cat_id in ids))
        return [category_json(cat_id, fields) for cat_id, fields in zip(ids, replies) if fields]

    async def categories_of_archive(self, arcid: str) -> list[dict[str, Any]]:
        """The static categories whose list holds ``arcid`` exactly (dynamic ones never do).

        A script picks the registered categories whose ``archives`` text contains the id, so
        only those few lists cross the wire to be decoded and checked exactly here."""
        ids = sorted(as_text(key) for key in await self._main.eval(_CANDIDATES, [], [arcid]))
        if not ids:
            return []
        replies = await gather(*(self._main.hgetall(cat_id) for cat_id in ids))
        found = [category_json(cat_id, fields) for cat_id, fields in zip(ids, replies) if fields]
        return [cat for cat in found if not cat["search"] and arcid in cat["archives"]]

    # -- writes ----------------------------------------------------------------------------------
    async def create(self, name: str, search: str = "", pinned: bool = False) -> str:
        return await self._main.eval(
            _CREATE, [], [self._now(), nfc(name), nfc(search), "1" if pinned else "0",
                          CHANGES_CHANNEL],
        )

    async def update(self, cat_id: str, name: str, search: str, pinned: bool) -> bool:
        """Set all three fields (the API layer applies the fall-backs); False if missing."""
        return bool(await self._main.eval(_UPDATE, [cat_id], self._dbs() + [
            nfc(name), nfc(search), "1" if pinned else "0", CHANGES_CHANNEL,
        ]))

    async def delete(self, cat_id: str) -> bool:
        """Delete the hash and unlink the bookmark if it pointed here; False if it was absent."""
        return bool(await self._main.eval(_DELETE, [cat_id], self._dbs() + [CHANGES_CHANNEL]))

    async def add_archive(self, cat_id: str, arcid: str) -> AddResult:
        """Append to a static category; raises CategoryError with the original's messages."""
        if not is_member_id(arcid):
            # Only archives and tanks belong in a category (the original took any DB0 key).
            if not await self._category_exists(cat_id):
                raise CategoryError(f"{cat_id} doesn't exist in the database!", "no_category")
            raise CategoryError(f"{arcid} does not exist in the database.", "no_archive")
        code, detail = await self._main.eval(_ADD, [cat_id], self._dbs() + [
            arcid, self._now(), CHANGES_CHANNEL,
        ])
        code = int(code)
        if code == -1:
            raise CategoryError(f"{cat_id} doesn't exist in the database!", "no_category")
        if code == -2:
            raise CategoryError(
                f"{cat_id} is a favorite search/dynamic category, can't add archives to it.",
                "dynamic")
        if code == -3:
            raise CategoryError(f"{arcid} does not exist in the database.", "no_archive")
        if code == -4:
            raise CategoryError(
                f"Couldn't deserialize archives in DB for {cat_id}! "
                f"Redis returned the following junk data: {as_text(detail)}", "junk")
        return AddResult(added=code == 1)

    async def restore(self, cat_id: str, name: str, search: str,
                      archives: Sequence[str]) -> bool:
        """Backup restore (LRR-NOTES §9.6): keep the id, unpin, add the archives that exist
        (archive and tank ids only). False when the id is taken by something else."""
        if not CATEGORY_ID_RE.match(cat_id):
            return False
        members = [arcid for arcid in archives if isinstance(arcid, str) and is_member_id(arcid)]
        return bool(await self._main.eval(_RESTORE, [cat_id], self._dbs() + [
            self._now(), CHANGES_CHANNEL, nfc(name), nfc(search), *members,
        ]))

    async def remove_archive(self, cat_id: str, arcid: str) -> None:
        """Remove the first occurrence; an id that is not there still "succeeds"."""
        code, detail = await self._main.eval(_REMOVE, [cat_id], self._dbs() + [
            arcid, self._now(), CHANGES_CHANNEL,
        ])
        code = int(code)
        if code == -1:
            raise CategoryError(f"{cat_id} doesn't exist in the database!", "no_category")
        if code == -2:
            raise CategoryError(f"{cat_id} is a favorite search, it doesn't contain archives.",
                                "dynamic")
        if code == -4:
            raise CategoryError(
                f"Couldn't deserialize archives in DB for {cat_id}! "
                f"Redis returned the following junk data: {as_text(detail)}", "junk")

    async def _category_exists(self, cat_id: str) -> bool:
        return as_text(await self._main.type(cat_id)) == "hash"

    # -- the bookmark link (DB0 LRR_CONFIG) ------------------------------------------------------
    async def get_bookmark_link(self) -> str:
        return as_text(await self._main.hget(BOOKMARK_KEY, BOOKMARK_FIELD))

    async def set_bookmark_link(self, category_id: str) -> None:
        """Unchecked write, for first start; the API uses ``link_bookmark``."""
        await self._main.hset(BOOKMARK_KEY, BOOKMARK_FIELD, category_id)

    async def link_bookmark(self, category_id: str) -> None:
        """``update_bookmark_link``: raises BookmarkError(400/404) with the original's messages."""
        if not CATEGORY_ID_RE.match(category_id):
            raise BookmarkError(400, "Input category ID is invalid.")
        code = int(await self._main.eval(_LINK, [], self._dbs() + [category_id]))
        if code == -1:
            raise BookmarkError(404, "Category does not exist!")
        if code == -2:
            raise BookmarkError(400, "Cannot link bookmark to a dynamic category.")

    async def unlink_bookmark(self) -> str:
        """Remove the link; returns the id it pointed to ("" if none)."""
        return as_text(await self._main.eval(_UNLINK, [], []))
