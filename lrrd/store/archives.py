"""Archives in LANraragi's layout: the DB0 hash per id, plus the DB3 indexes kept in step with it.

Every write that touches several keys (the hash, tag indexes, stats, title index, new/untagged
sets, the search-cache stamp) is one Lua script, so a crash or a lost connection never leaves
them disagreeing. Scripts that depend on what was read first (tags, titles) compare-and-set and
are retried, so concurrent writers cannot corrupt the indexes either. Each write publishes the
archive id on ``CHANGES_CHANNEL`` so other lrrd processes can refresh their search index.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from typing import Any, Iterable, Mapping, Sequence

from lrrd.store.lua import COUNTED_LUA, INVALIDATE_LUA
from lrrd.store.redis import DB, ScriptedStore, StoreError, gather
from lrrd.store.registry import REGISTRY_LUA

CHANGES_CHANNEL = "lrrd:archives"

#: Any 40-character key of DB0 is an archive for the original (its KEYS pattern).
ARCHIVE_KEY_PATTERN = "?" * 40
ARCHIVE_ID_RE = re.compile(r"^[0-9a-f]{40}$")

#: Namespaces that do not make an archive "tagged" (an unanchored match, as the original's).
_BASIC_NAMESPACES = re.compile(
    r"(artist|parody|series|language|event|group|date_added|timestamp|source):", re.IGNORECASE
)

FIELDS = ("name", "title", "tags", "summary", "file", "isnew", "arcsize", "pagecount",
          "progress", "lastreadtime", "thumbhash", "toc", "stamps", "thumbjob")

_CAS_RETRIES = 8


class ArchiveNotFound(Exception):
    """No hash for that id in the main database."""


def nfc(text: str) -> str:
    """The original NFC-normalises every text it writes (``redis_encode``)."""
    return unicodedata.normalize("NFC", text)


def normalize_tags(tags: str) -> str:
    """Split on commas, trim, drop line breaks and empties, de-duplicate exactly, keep order."""
    seen: set[str] = set()
    out: list[str] = []
    for raw in nfc(tags).split(","):
        tag = raw.replace("\r", "").replace("\n", "").strip()
        if tag and tag not in seen:
            seen.add(tag)
            out.append(tag)
    return ",".join(out)


def tag_list(tags: str | None) -> list[str]:
    return [t for t in (tags or "").split(",") if t.strip()]


def index_tags(tags: str | None) -> set[str]:
    """The lowercased, trimmed tags as they appear in ``INDEX_<tag>`` and ``LRR_STATS``."""
    return {t.strip().lower() for t in tag_list(tags) if t.strip()}


def normalize_title(title: str) -> str:
    return nfc(title).replace("\r", "").replace("\n", "").strip()


def title_member(title: str, arcid: str) -> str:
    """The ``LRR_TITLES`` member: lowercased trimmed title without newlines, NUL, id."""
    return normalize_title(title).lower() + "\0" + arcid


def is_untagged(tags: str | None) -> bool:
    """True when no tag falls outside the "basic" namespaces (LRR-NOTES §9.11)."""
    return not any(not _BASIC_NAMESPACES.search(tag) for tag in tag_list(tags))


def trim_url(url: str) -> str:
    """The original's ``trim_url``: no scheme, no ``www.``, no query, one trailing ``/`` less."""
    url = url.strip()
    url = re.sub(r"^https?://", "", url, flags=re.IGNORECASE)
    url = re.sub(r"^www\.", "", url, flags=re.IGNORECASE)
    url = url.split("?", 1)[0]
    if url.endswith("/"):
        url = url[:-1]
    return url


def source_urls(tags: str | None) -> set[str]:
    urls = set()
    for tag in tag_list(tags):
        ns, sep, value = tag.strip().partition(":")
        if sep and ns.lower() == "source" and value.strip():
            urls.add(trim_url(value))
    return urls


def as_int(value: Any) -> int:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return 0


def as_text(value: Any) -> str:
    """Redis replies that were not valid UTF-8 arrive as bytes; paths keep their raw bytes."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        return os.fsdecode(value)
    return str(value)


def extension_of(path: str) -> str:
    base = os.path.basename(path)
    return base.rsplit(".", 1)[-1].lower() if "." in base else ""


def toc_list(raw: str | None) -> list[dict[str, Any]]:
    """The stored ``toc`` JSON object as the API's sorted list of ``{page, name}``."""
    if not raw:
        return []
    try:
        data = json.loads(raw)
    except ValueError:
        return []
    if not isinstance(data, dict):
        return []
    entries = []
    for page, name in data.items():
        try:
            entries.append({"page": int(page), "name": str(name)})
        except (TypeError, ValueError):
            continue
    return sorted(entries, key=lambda entry: entry["page"])


def archive_json(arcid: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The original's ``build_json``, with the spec's types (booleans and integers)."""
    name = as_text(fields.get("name"))
    title = as_text(fields.get("title"))
    return {
        "arcid": arcid,
        "title": title if title.strip() else name,
        "filename": name,
        "tags": as_text(fields.get("tags")),
        "summary": as_text(fields.get("summary")),
        "isnew": as_text(fields.get("isnew")) == "true",
        "extension": extension_of(as_text(fields.get("file"))),
        "progress": as_int(fields.get("progress")),
        "pagecount": as_int(fields.get("pagecount")),
        "lastreadtime": as_int(fields.get("lastreadtime")),
        "size": as_int(fields.get("arcsize")),
        "toc": toc_list(as_text(fields.get("toc"))),
    }


# ---- Lua ---------------------------------------------------------------------------------------
# Every script starts in the main database; ARGV[1] and ARGV[2] are the main and search database
# numbers. A SELECT inside a script does not change the caller's database.

#: In the search database: bumped by every script that changes ``LRR_STATS`` (and set anew by a
#: rebuild's swap and by a drop), so a process that keeps the encoded stats knows when it is
#: stale, whichever process wrote. Seeded with a random value (``StatsStore.stats_version``).
STATS_VERSION_KEY = "lrrd:stats_version"

# The tag counters, called once the script has selected the search database.
STATS_LUA = """
local function stat_up(t)
  redis.call('ZINCRBY', 'LRR_STATS', 1, t)
  redis.call('INCR', '%s')
end
local function stat_down(t)
  if tonumber(redis.call('ZINCRBY', 'LRR_STATS', -1, t)) <= 0 then redis.call('ZREM', 'LRR_STATS', t) end
  redis.call('INCR', '%s')
end
""" % (STATS_VERSION_KEY, STATS_VERSION_KEY)

_INVALIDATE = STATS_LUA + INVALIDATE_LUA + COUNTED_LUA + """
-- Tag index and stats upkeep (in the search database) for one id's added/removed tags.
local function index_tags(id, tags)
  for _, t in ipairs(tags) do redis.call('SADD', 'INDEX_' .. t, id); stat_up(t) end
end
local function unindex_tags(id, tags)
  for _, t in ipairs(tags) do redis.call('SREM', 'INDEX_' .. t, id); stat_down(t) end
end
-- Source URLs that no longer lead to this id.
local function unmap_urls(id, urls)
  for _, u in ipairs(urls) do
    if redis.call('HGET', 'LRR_URLMAP', u) == id then redis.call('HDEL', 'LRR_URLMAP', u) end
  end
end
"""

_CREATE = _INVALIDATE + """
local id = KEYS[1]
if redis.call('EXISTS', id) == 1 then return 0 end
redis.call('HSET', id, 'name', ARGV[3], 'title', ARGV[8], 'tags', '', 'summary', '',
           'file', ARGV[4], 'isnew', 'true')
if ARGV[5] ~= '' then redis.call('HSET', id, 'arcsize', ARGV[5]) end
redis.call('SELECT', ARGV[2])
redis.call('SADD', 'LRR_TANKGROUPED', id)
redis.call('SADD', 'LRR_NEW', id)
redis.call('SADD', 'LRR_UNTAGGED', id)
redis.call('ZADD', 'LRR_TITLES', 0, ARGV[6])
invalidate(ARGV[7])
redis.call('PUBLISH', ARGV[9], id)
return 1
"""

# ARGV: main, search, expected old tags, new tags, now, untagged(1/0), channel,
#       n_removed, removed..., n_added, added..., n_url_del, urls..., n_url_add, urls...
_SET_TAGS = _INVALIDATE + """
local id = KEYS[1]
local cur = redis.call('HGET', id, 'tags')
if cur == false then
  if redis.call('EXISTS', id) == 0 then return -1 end
  cur = ''
end
if cur ~= ARGV[3] then return 0 end
redis.call('HSET', id, 'tags', ARGV[4])
redis.call('SELECT', ARGV[2])
local removed, i = counted(8)
local added, gone_urls, urls
added, i = counted(i)
gone_urls, i = counted(i)
urls, i = counted(i)
unindex_tags(id, removed)
index_tags(id, added)
unmap_urls(id, gone_urls)
for _, u in ipairs(urls) do redis.call('HSET', 'LRR_URLMAP', u, id) end
if ARGV[6] == '1' then redis.call('SADD', 'LRR_UNTAGGED', id) else redis.call('SREM', 'LRR_UNTAGGED', id) end
invalidate(ARGV[5])
redis.call('PUBLISH', ARGV[7], id)
return 1
"""

# ARGV: main, search, expected old title, new title, old member, new member, now, channel, invalidate
_SET_TITLE = _INVALIDATE + """
local id = KEYS[1]
if redis.call('EXISTS', id) == 0 then return -1 end
local cur = redis.call('HGET', id, 'title')
if cur == false then cur = '' end
if cur ~= ARGV[3] then return 0 end
redis.call('HSET', id, 'title', ARGV[4])
redis.call('SELECT', ARGV[2])
redis.call('ZREM', 'LRR_TITLES', ARGV[5])
redis.call('ZADD', 'LRR_TITLES', 0, ARGV[6])
if ARGV[9] == '1' then invalidate(ARGV[7]) end
redis.call('PUBLISH', ARGV[8], id)
return 1
"""

# ARGV: main, search, now, channel, invalidate(1/0), then field/value pairs
_SET_FIELDS = _INVALIDATE + """
local id = KEYS[1]
if redis.call('EXISTS', id) == 0 then return -1 end
for i = 6, #ARGV, 2 do redis.call('HSET', id, ARGV[i], ARGV[i + 1]) end
redis.call('SELECT', ARGV[2])
if ARGV[5] == '1' then invalidate(ARGV[3]) end
redis.call('PUBLISH', ARGV[4], id)
return 1
"""

# An import's whole first write in one script: add_archive_to_redis, the tags (date_added),
# pagecount/arcsize/thumbhash and the filemap entry. ARGV: main, search, config, name, file,
# title, title member, now, channel, tags, untagged(1/0), then n_index, index tags...,
# then field/value pairs to the end.
_ADD_IMPORTED = _INVALIDATE + """
local id = KEYS[1]
if redis.call('EXISTS', id) == 1 then return 0 end
redis.call('HSET', id, 'name', ARGV[4], 'title', ARGV[6], 'tags', ARGV[10], 'summary', '',
           'file', ARGV[5], 'isnew', 'true')
local tags, i = counted(12)
while i < #ARGV do redis.call('HSET', id, ARGV[i], ARGV[i + 1]); i = i + 2 end
redis.call('SELECT', ARGV[3])
redis.call('HSET', 'LRR_FILEMAP', ARGV[5], id)
redis.call('SELECT', ARGV[2])
redis.call('SADD', 'LRR_TANKGROUPED', id)
redis.call('SADD', 'LRR_NEW', id)
if ARGV[11] == '1' then redis.call('SADD', 'LRR_UNTAGGED', id) end
redis.call('ZADD', 'LRR_TITLES', 0, ARGV[7])
index_tags(id, tags)
invalidate(ARGV[8])
redis.call('PUBLISH', ARGV[9], id)
return 1
"""

# ARGV: main, search, now, channel, 'true'/'false'
_SET_ISNEW = _INVALIDATE + """
local id = KEYS[1]
if redis.call('EXISTS', id) == 0 then return -1 end
redis.call('HSET', id, 'isnew', ARGV[5])
redis.call('SELECT', ARGV[2])
if ARGV[5] == 'true' then redis.call('SADD', 'LRR_NEW', id) else redis.call('SREM', 'LRR_NEW', id) end
invalidate(ARGV[3])
redis.call('PUBLISH', ARGV[4], id)
return 1
"""

# ARGV: main, search, config, page, now, channel
_PROGRESS = """
local id = KEYS[1]
if redis.call('EXISTS', id) == 0 then return -1 end
redis.call('HSET', id, 'progress', ARGV[4], 'lastreadtime', ARGV[5])
redis.call('SELECT', ARGV[3])
redis.call('INCR', 'LRR_TOTALPAGESTAT')
redis.call('PUBLISH', ARGV[6], id)
return 1
"""

# ARGV: main, search, now, channel, title member, n_tags, tags..., n_urls, urls...
# The categories and tanks are the registered ones (``lrrd.store.registry``), not a KEYS scan.
_DELETE = _INVALIDATE + REGISTRY_LUA + """
local id = KEYS[1]
if redis.call('EXISTS', id) == 0 then return 0 end
local stamps = redis.call('HGET', id, 'stamps')
if stamps then
  local ok, list = pcall(cjson.decode, stamps)
  if ok and type(list) == 'table' then
    for _, key in ipairs(list) do redis.call('DEL', key) end
  end
end
redis.call('DEL', id)
uncategorise(id)
local tanks = {}
for _, key in ipairs(registered('tank')) do
  if redis.call('ZSCORE', key, id) then
    redis.call('ZREM', key, id)
    table.insert(tanks, key)
  end
end
redis.call('SELECT', ARGV[2])
redis.call('SREM', 'LRR_NEW', id)
redis.call('SREM', 'LRR_UNTAGGED', id)
redis.call('SREM', 'LRR_TANKGROUPED', id)
redis.call('ZREM', 'LRR_TITLES', ARGV[5])
local tags, i = counted(6)
unindex_tags(id, tags)
unmap_urls(id, (counted(i)))
invalidate(ARGV[3])
redis.call('PUBLISH', ARGV[4], id)
return 1
"""

# KEYS: old, new. ARGV: main, search, now, channel, old member, new member, n_tags, tags..., n_urls, urls...
_CHANGE_ID = _INVALIDATE + REGISTRY_LUA + """
local old, new = KEYS[1], KEYS[2]
if redis.call('EXISTS', old) == 0 then return -1 end
if redis.call('EXISTS', new) == 1 then return 0 end
redis.call('RENAME', old, new)
local stamps = redis.call('HGET', new, 'stamps')
if stamps then
  local ok, list = pcall(cjson.decode, stamps)
  if ok and type(list) == 'table' then
    for _, key in ipairs(list) do
      if redis.call('EXISTS', key) == 1 then redis.call('HSET', key, 'archive_id', new) end
    end
  end
end
for _, key in ipairs(registered('category')) do
  local raw = redis.call('HGET', key, 'archives')
  if raw and string.find(raw, old, 1, true) then
    local ok, list = pcall(cjson.decode, raw)
    if ok and type(list) == 'table' then
      for j, member in ipairs(list) do if member == old then list[j] = new end end
      redis.call('HSET', key, 'archives', cjson.encode(list))
    end
  end
end
for _, key in ipairs(registered('tank')) do
  local score = redis.call('ZSCORE', key, old)
  if score then
    redis.call('ZREM', key, old)
    redis.call('ZADD', key, score, new)
  end
end
redis.call('SELECT', ARGV[2])
for _, set in ipairs({'LRR_NEW', 'LRR_UNTAGGED', 'LRR_TANKGROUPED'}) do
  if redis.call('SREM', set, old) == 1 then redis.call('SADD', set, new) end
end
if redis.call('ZREM', 'LRR_TITLES', ARGV[5]) == 1 then redis.call('ZADD', 'LRR_TITLES', 0, ARGV[6]) end
local i = 7
local n = tonumber(ARGV[i]); i = i + 1
for k = 1, n do
  local t = ARGV[i]; i = i + 1
  if redis.call('SREM', 'INDEX_' .. t, old) == 1 then redis.call('SADD', 'INDEX_' .. t, new) end
end
n = tonumber(ARGV[i]); i = i + 1
for k = 1, n do
  local u = ARGV[i]; i = i + 1
  if redis.call('HGET', 'LRR_URLMAP', u) == old then redis.call('HSET', 'LRR_URLMAP', u, new) end
end
invalidate(ARGV[3])
redis.call('PUBLISH', ARGV[4], old)
redis.call('PUBLISH', ARGV[4], new)
return 1
"""


def wire_value(value: Any) -> Any:
    """Text that came from an undecodable filename carries surrogates: send its raw bytes."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return os.fsencode(value)
    return value


def _counted(items: Sequence[str]) -> list[str]:
    return [str(len(items)), *items]


class ArchiveStore(ScriptedStore):
    """Reads and writes archive hashes, the filemap and the indexes that follow them."""

    async def _eval(self, script: str, keys: list[str], args: list[Any]) -> Any:
        return await self._main.eval(script, keys, self._dbs() + [wire_value(a) for a in args])

    # -- reads -----------------------------------------------------------------------------------
    async def get(self, arcid: str) -> dict[str, Any] | None:
        fields = await self._main.hgetall(arcid)
        return fields or None

    async def get_many(self, ids: Sequence[str]) -> list[dict[str, Any] | None]:
        """All hashes in one pipelined round trip (missing ids give None)."""
        if not ids:
            return []
        replies = await gather(*(self._main.hgetall(arcid) for arcid in ids))
        return [reply or None for reply in replies]

    async def get_fields(self, arcid: str, *names: str) -> dict[str, Any]:
        values = await self._main.hmget(arcid, list(names))
        return dict(zip(names, values))

    async def exists(self, arcid: str) -> bool:
        return bool(await self._main.exists(arcid))

    async def ids(self) -> list[str]:
        """Every archive id (any 40-character key of the main database), via SCAN."""
        found: list[str] = []
        cursor = "0"
        while True:
            cursor, keys = await self._main.scan(cursor, ARCHIVE_KEY_PATTERN, 5000)
            found.extend(as_text(key) for key in keys)
            if str(cursor) == "0":
                break
        return sorted(set(found))

    # -- writes ----------------------------------------------------------------------------------
    async def create(self, arcid: str, path: str, arcsize: int | None = None,
                     name: str | None = None) -> bool:
        """``add_archive_to_redis``: name, file, size, title=name, isnew; False if it exists."""
        stem = name if name is not None else filename_stem(path)
        stem = nfc(stem)
        title = normalize_title(stem)
        return bool(await self._eval(_CREATE, [arcid], [
            stem, os.fsencode(path), "" if arcsize is None else str(arcsize),
            title_member(title, arcid), self._now(), title, CHANGES_CHANNEL,
        ]))

    async def add_imported(self, arcid: str, path: str, *, arcsize: int, pagecount: int | None,
                           tags: str = "", thumbhash: str | None = None) -> bool:
        """``create`` plus the import's tags, ``pagecount``, ``arcsize``, ``thumbhash`` and the
        filemap entry, in one script (one round trip per new file); False if the id exists.

        ``tags`` must not hold ``source:`` tags (the URL map is not maintained here).
        """
        stem = nfc(filename_stem(path))
        title = normalize_title(stem)
        tags = normalize_tags(tags)
        fields: list[Any] = ["arcsize", str(arcsize)]
        if pagecount is not None:
            fields += ["pagecount", str(pagecount)]
        if thumbhash:
            fields += ["thumbhash", thumbhash]
        return bool(await self._eval(_ADD_IMPORTED, [arcid], [
            str(self._redis.db(DB.CONFIG).number), stem, os.fsencode(path), title,
            title_member(title, arcid), self._now(), CHANGES_CHANNEL, tags,
            "1" if is_untagged(tags) else "0", *_counted(sorted(index_tags(tags))), *fields,
        ]))

    async def set_tags(self, arcid: str, tags: str, append: bool = False) -> str:
        """Normalise and store tags, moving the id between tag indexes; returns the new string.
        (Callers outside the store use ``lrrd.library.tank_upkeep.set_archive_tags``, which
        also re-imputes the tanks holding the archive.)"""
        return (await self.change_tags(arcid, tags, append))[1]

    async def change_tags(self, arcid: str, tags: str, append: bool = False) -> tuple[str, str]:
        """``set_tags`` that returns (the tags it replaced, the new tags): the old ones are what
        the compare-and-set saw, so a tank's stale imputations are known exactly."""
        for _ in range(_CAS_RETRIES):
            current = as_text(await self._main.hget(arcid, "tags"))
            if append:
                if not tags.strip():
                    return current, current
                new = normalize_tags(current + "," + tags)
            else:
                new = normalize_tags(tags)
            old_index, new_index = index_tags(current), index_tags(new)
            old_urls, new_urls = source_urls(current), source_urls(new)
            result = await self._eval(_SET_TAGS, [arcid], [
                current, new, self._now(), "1" if is_untagged(new) else "0", CHANGES_CHANNEL,
                *_counted(sorted(old_index - new_index)),
                *_counted(sorted(new_index - old_index)),
                *_counted(sorted(old_urls - new_urls)),
                *_counted(sorted(new_urls)),
            ])
            if result == -1:
                raise ArchiveNotFound(arcid)
            if result == 1:
                return current, new
        raise StoreError(f"tags of {arcid} keep changing; gave up")

    async def set_title(self, arcid: str, title: str, invalidate: bool = True) -> bool:
        """``set_title``: empty titles are ignored (returns False)."""
        title = normalize_title(title)
        if not title:
            return False
        for _ in range(_CAS_RETRIES):
            current = as_text(await self._main.hget(arcid, "title"))
            result = await self._eval(_SET_TITLE, [arcid], [
                current, title, title_member(current, arcid), title_member(title, arcid),
                self._now(), CHANGES_CHANNEL, "1" if invalidate else "0",
            ])
            if result == -1:
                raise ArchiveNotFound(arcid)
            if result == 1:
                return True
        raise StoreError(f"title of {arcid} keeps changing; gave up")

    async def set_fields(self, arcid: str, values: Mapping[str, Any],
                         invalidate: bool = False) -> None:
        """Plain field writes (summary, pagecount, arcsize, thumbhash, file, name, toc...)."""
        pairs: list[Any] = []
        for name, value in values.items():
            if name == "file":
                value = os.fsencode(value)
            elif isinstance(value, str):
                value = nfc(value)
            pairs.extend([name, value if isinstance(value, bytes) else str(value)])
        if not pairs:
            return
        result = await self._eval(_SET_FIELDS, [arcid], [
            self._now(), CHANGES_CHANNEL, "1" if invalidate else "0", *pairs,
        ])
        if result == -1:
            raise ArchiveNotFound(arcid)

    async def delete_fields(self, arcid: str, *names: str) -> None:
        if names:
            await self._main.hdel(arcid, list(names))

    async def set_summary(self, arcid: str, summary: str) -> None:
        await self.set_fields(arcid, {"summary": summary}, invalidate=True)

    async def set_isnew(self, arcid: str, isnew: bool) -> None:
        result = await self._eval(_SET_ISNEW, [arcid], [
            self._now(), CHANGES_CHANNEL, "true" if isnew else "false",
        ])
        if result == -1:
            raise ArchiveNotFound(arcid)

    async def update_progress(self, arcid: str, page: int, now: int) -> None:
        """Progress and last-read time, and one more page read in ``LRR_TOTALPAGESTAT``."""
        result = await self._eval(_PROGRESS, [arcid], [
            str(self._redis.db(DB.CONFIG).number), str(page), str(now), CHANGES_CHANNEL,
        ])
        if result == -1:
            raise ArchiveNotFound(arcid)

    async def set_toc_entry(self, arcid: str, page: int, title: str | None) -> None:
        """Add (or, with ``title=None``, remove) one ToC entry; the ToC is a JSON object."""
        raw = as_text(await self._main.hget(arcid, "toc"))
        try:
            toc = json.loads(raw) if raw else {}
        except ValueError:
            toc = {}
        if not isinstance(toc, dict):
            toc = {}
        if title is None:
            toc.pop(str(page), None)
        else:
            toc[str(page)] = nfc(title)
        await self.set_fields(arcid, {"toc": json.dumps(toc, ensure_ascii=False)})

    async def delete(self, arcid: str) -> bool:
        """Remove the hash, its stamps, category/tank memberships and index entries."""
        fields = await self.get(arcid)
        if fields is None:
            return False
        tags = as_text(fields.get("tags"))
        return bool(await self._eval(_DELETE, [arcid], [
            self._now(), CHANGES_CHANNEL, title_member(as_text(fields.get("title")), arcid),
            *_counted(sorted(index_tags(tags))), *_counted(sorted(source_urls(tags))),
        ]))

    async def change_id(self, old: str, new: str) -> bool:
        """A modified file got a new id: move the metadata and every membership to it."""
        fields = await self.get(old)
        if fields is None:
            return False
        tags = as_text(fields.get("tags"))
        title = as_text(fields.get("title"))
        result = await self._eval(_CHANGE_ID, [old, new], [
            self._now(), CHANGES_CHANNEL, title_member(title, old), title_member(title, new),
            *_counted(sorted(index_tags(tags))), *_counted(sorted(source_urls(tags))),
        ])
        return result == 1

    async def invalidate_search_cache(self) -> None:
        search = self._redis.db(DB.SEARCH)
        await search.delete("LRR_SEARCHCACHE")
        await search.hset("LRR_SEARCHCACHE", "created", self._now())

    async def untagged_ids(self) -> list[str]:
        return sorted(as_text(m) for m in await self._redis.db(DB.SEARCH).smembers("LRR_UNTAGGED"))

    async def url_owner(self, url: str) -> str | None:
        """Which archive came from this URL (download de-duplication)."""
        owner = await self._redis.db(DB.SEARCH).hget("LRR_URLMAP", trim_url(url))
        return as_text(owner) or None

    # -- the filemap (DB2): the watcher's list of known files ------------------------------------
    async def filemap(self) -> dict[str, str]:
        raw = await self._redis.db(DB.CONFIG).hgetall("LRR_FILEMAP")
        return {as_text(path): as_text(arcid) for path, arcid in (raw or {}).items()}

    async def filemap_get(self, path: str) -> str | None:
        value = await self._redis.db(DB.CONFIG).hget("LRR_FILEMAP", os.fsencode(path))
        return as_text(value) or None

    async def filemap_set(self, path: str, arcid: str) -> None:
        await self._redis.db(DB.CONFIG).hset("LRR_FILEMAP", os.fsencode(path), arcid)

    async def filemap_delete(self, *paths: str) -> None:
        if paths:
            await self._redis.db(DB.CONFIG).hdel("LRR_FILEMAP", [os.fsencode(p) for p in paths])

    async def filemap_clear(self) -> None:
        await self._redis.db(DB.CONFIG).delete("LRR_FILEMAP")


def filename_stem(path: str) -> str:
    """The archive ``name``: the basename without its last extension (Perl's ``fileparse``).

    A basename that is not valid UTF-8 is read as Latin-1, byte for byte, as the original's
    ``redis_encode`` of Perl's byte string does: names and titles are then always text, so
    such an archive is listed, searched, sorted and shown like any other (``file`` keeps the
    raw bytes, so it is still found on disk).
    """
    base = os.path.basename(path)
    try:
        base.encode("utf-8")
    except UnicodeEncodeError:
        base = os.fsencode(base).decode("latin-1")
    return base.rsplit(".", 1)[0] if "." in base else base


def ids_only(values: Iterable[Any]) -> list[str]:
    return [as_text(v) for v in values if ARCHIVE_ID_RE.match(as_text(v))]
