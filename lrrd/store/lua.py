"""Lua shared by the stores' scripts: cache invalidation, counted argument lists, JSON lists.

Each is a string of ``local function`` definitions to put in front of a script; a script takes
each piece once (``REGISTRY_LUA`` already carries ``JSON_LUA``).
"""

from __future__ import annotations

#: The original's search-cache invalidation: drop the cache, stamp ``created`` (search database).
INVALIDATE_LUA = """
local function invalidate(now)
  redis.call('DEL', 'LRR_SEARCHCACHE')
  redis.call('HSET', 'LRR_SEARCHCACHE', 'created', now)
end
"""

#: A counted list in ARGV (its length, then its items) starting at i: the items, the next index.
COUNTED_LUA = """
local function counted(i)
  local n = tonumber(ARGV[i])
  local items = {}
  for k = 1, n do items[k] = ARGV[i + k] end
  return items, i + n + 1
end
"""

#: JSON array fields (a category's ``archives``, an archive's ``stamps``). cjson encodes an empty
#: table as ``{}``; LANraragi stores ``[]``.
JSON_LUA = """
local function json_list(items)
  if #items == 0 then return '[]' end
  return cjson.encode(items)
end
-- The array's items without every member equal to value; nil when raw is not a JSON array.
local function json_without(raw, value)
  local ok, list = pcall(cjson.decode, raw)
  if not ok or type(list) ~= 'table' then return nil end
  local kept = {}
  for _, member in ipairs(list) do if member ~= value then table.insert(kept, member) end end
  return kept
end
"""
