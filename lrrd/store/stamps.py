"""Stamps in LANraragi's layout: ``STAMPS_<page>_<ms>`` hashes plus each archive's ``stamps`` JSON list.

A stamp is a note pinned to a position on one page. Its hash holds ``content``, ``position`` and
``archive_id``; the archive's hash lists its stamp keys in the ``stamps`` field. Adding and removing
change both in one Lua script, so the list never names a stamp that is gone, nor misses one.
"""

from __future__ import annotations

import json
import re
import time
import unicodedata
from typing import Any

from lrrd.store.lua import JSON_LUA
from lrrd.store.archives import ARCHIVE_ID_RE
from lrrd.store.redis import DB, RedisStore, gather

STAMP_KEY_RE = re.compile(r"^STAMPS_(\d+)_(\d+)$")


def is_stamp_key(key: str) -> bool:
    """Whether ``key`` names a stamp: the API takes any text as a stamp or archive id, and the
    main database also holds archives, categories and tankoubons, so anything else is no stamp
    (reading it as one fails on a tank's sorted set; deleting it would delete an archive)."""
    return STAMP_KEY_RE.match(key) is not None

#: Results of the add script, besides the new key.
_NO_ARCHIVE = "-1"
_OUT_OF_RANGE = "-2"
_BAD_LIST = "-3"

# KEYS: archive id. ARGV: page, ms timestamp, content, position.
_ADD = """
local id = KEYS[1]
if redis.call('EXISTS', id) == 0 then return '-1' end
local page = tonumber(ARGV[1])
local pagecount = tonumber(redis.call('HGET', id, 'pagecount') or '0') or 0
if page == nil or page < 1 or page > math.floor(pagecount) then return '-2' end
local list = {}
local raw = redis.call('HGET', id, 'stamps')
if raw then
  local ok, decoded = pcall(cjson.decode, raw)
  if not ok or type(decoded) ~= 'table' then return '-3' end
  list = decoded
end
local ms = tonumber(ARGV[2])
local key = 'STAMPS_' .. ARGV[1] .. '_' .. string.format('%d', ms)
while redis.call('EXISTS', key) == 1 do
  ms = ms + 1
  key = 'STAMPS_' .. ARGV[1] .. '_' .. string.format('%d', ms)
end
redis.call('HSET', key, 'content', ARGV[3], 'position', ARGV[4], 'archive_id', id)
table.insert(list, key)
redis.call('HSET', id, 'stamps', cjson.encode(list))
return key
"""

# KEYS: stamp key. Returns the archive id it belonged to ('' if none), or false if no such stamp.
_REMOVE = JSON_LUA + """
local key = KEYS[1]
if redis.call('EXISTS', key) == 0 then return false end
local id = redis.call('HGET', key, 'archive_id') or ''
if id ~= '' and redis.call('EXISTS', id) == 1 then
  local raw = redis.call('HGET', id, 'stamps')
  local kept = raw and json_without(raw, key)
  if kept then redis.call('HSET', id, 'stamps', json_list(kept)) end
end
redis.call('DEL', key)
return id
"""

# KEYS: stamp key. ARGV: content or '', position or '' ('' leaves the field alone).
_UPDATE = """
local key = KEYS[1]
if redis.call('EXISTS', key) == 0 then return 0 end
if ARGV[1] ~= '' then redis.call('HSET', key, 'content', ARGV[1]) end
if ARGV[2] ~= '' then redis.call('HSET', key, 'position', ARGV[2]) end
return 1
"""


class StampArchiveMissing(Exception):
    """The archive the stamp is for has no hash in the main database."""


class StampPageOutOfRange(Exception):
    """The page is not between 1 and the archive's page count."""


class StampListCorrupt(Exception):
    """The archive's ``stamps`` field is not a JSON list, so it cannot be appended to."""


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def page_of(key: str) -> str | None:
    """The page number a stamp key carries (``STAMPS_<page>_<ms>``), as text."""
    parts = key.split("_", 2)
    return parts[1] if len(parts) == 3 and parts[0] == "STAMPS" else None


def parse_list(raw: Any) -> list[str] | None:
    """The archive's ``stamps`` field as a list of keys; None when it is not a JSON list."""
    if raw is None or raw == "":
        return []
    try:
        decoded = json.loads(_text(raw))
    except ValueError:
        return None
    if not isinstance(decoded, list):
        # cjson writes an emptied Lua table as {}: that is an empty list too.
        return [] if decoded == {} else None
    return [_text(item) for item in decoded]


class StampStore:
    """Reads and writes stamps and the archives' stamp lists (main database)."""

    def __init__(self, redis: RedisStore, clock: Any = None) -> None:
        self._redis = redis
        self._clock = clock

    @property
    def _main(self):  # type: ignore[no-untyped-def]
        return self._redis.db(DB.MAIN)

    def _now_ms(self) -> int:
        seconds = self._clock.seconds() if self._clock is not None else time.time()
        return int(seconds * 1000)

    async def add(self, arcid: str, page: int, content: str, position: str) -> str:
        """Create a stamp on ``page`` of ``arcid``; returns its key."""
        if not ARCHIVE_ID_RE.match(arcid):
            raise StampArchiveMissing(arcid)
        result = _text(await self._main.eval(_ADD, [arcid], [
            str(page), str(self._now_ms()),
            unicodedata.normalize("NFC", content), unicodedata.normalize("NFC", position),
        ]))
        if result == _NO_ARCHIVE:
            raise StampArchiveMissing(arcid)
        if result == _OUT_OF_RANGE:
            raise StampPageOutOfRange(page)
        if result == _BAD_LIST:
            raise StampListCorrupt(arcid)
        return result

    async def get(self, key: str) -> dict[str, str] | None:
        """``{"id","content","position"}`` of one stamp, or None."""
        if not is_stamp_key(key):
            return None
        fields = await self._main.hgetall(key)
        if not fields:
            return None
        return _stamp_object(key, fields)

    async def archive_of(self, key: str) -> str | None:
        if not is_stamp_key(key):
            return None
        value = await self._main.hget(key, "archive_id")
        return _text(value) or None

    async def keys_of(self, arcid: str) -> list[str] | None:
        """The archive's stamp keys; None when there is no such archive."""
        if not ARCHIVE_ID_RE.match(arcid):
            return None
        exists, raw = await gather(self._main.exists(arcid), self._main.hget(arcid, "stamps"))
        if not exists:
            return None
        return parse_list(raw) or []

    async def stamped_pages(self, arcid: str) -> list[str] | None:
        """Distinct page numbers that carry at least one stamp, as strings, in page order."""
        keys = await self.keys_of(arcid)
        if keys is None:
            return None
        pages = {page for page in (page_of(key) for key in keys) if page is not None}
        return sorted(pages, key=lambda page: (int(page) if page.isdigit() else 0, page))

    async def by_page(self, arcid: str, page: int) -> list[dict[str, str]] | None:
        """The stamps of one page, in the order they were added; None when no such archive."""
        keys = await self.keys_of(arcid)
        if keys is None:
            return None
        wanted = [key for key in keys if (page_of(key) or "").isdigit() and int(page_of(key) or 0) == page]
        if not wanted:
            return []
        replies = await gather(*(self._main.hgetall(key) for key in wanted))
        return [_stamp_object(key, fields) for key, fields in zip(wanted, replies) if fields]

    async def update(self, key: str, content: str | None, position: str | None) -> bool:
        """Change the non-empty fields given; False when there is no such stamp."""
        if not is_stamp_key(key):
            return False
        result = await self._main.eval(_UPDATE, [key], [
            unicodedata.normalize("NFC", content or ""), unicodedata.normalize("NFC", position or ""),
        ])
        return bool(int(result))

    async def remove(self, key: str) -> bool:
        """Delete a stamp and drop it from its archive's list; False when there is no such stamp."""
        if not is_stamp_key(key):
            return False
        result = await self._main.eval(_REMOVE, [key], [])
        return result is not None


def _stamp_object(key: str, fields: dict[Any, Any]) -> dict[str, str]:
    decoded = {_text(name): _text(value) for name, value in fields.items()}
    return {"id": key, "content": decoded.get("content", ""), "position": decoded.get("position", "")}
