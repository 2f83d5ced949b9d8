"""Categories in the main database: ``SET_<10-digit time>`` hashes, as LANraragi stores them."""

from __future__ import annotations

import time

from lrrd.store.redis import DB, RedisStore

#: Allocates ``SET_<time>`` (time+1, +2... on collision, as the original does) and writes the
#: hash in one step, so two creators never share an id.
_CREATE = """
local t = tonumber(ARGV[1])
for i = 0, 10000 do
  local id = 'SET_' .. string.format('%010d', t + i)
  if redis.call('EXISTS', id) == 0 then
    redis.call('HSET', id, 'name', ARGV[2], 'search', ARGV[3], 'pinned', ARGV[4], 'archives', '[]')
    return id
  end
end
return redis.error_reply('no free category id')
"""

#: The original keeps the bookmark link in DB0's LRR_CONFIG (a quirk of its key migration).
BOOKMARK_KEY = "LRR_CONFIG"
BOOKMARK_FIELD = "bookmark_link"


class CategoryStore:
    """Category hashes plus the bookmark link."""

    def __init__(self, redis: RedisStore) -> None:
        self._redis = redis

    async def create(self, name: str, search: str = "", pinned: bool = False) -> str:
        db = self._redis.db(DB.MAIN)
        return await db.eval(
            _CREATE, [], [str(int(time.time())), name, search, "1" if pinned else "0"]
        )

    async def get_bookmark_link(self) -> str:
        return await self._redis.db(DB.MAIN).hget(BOOKMARK_KEY, BOOKMARK_FIELD) or ""

    async def set_bookmark_link(self, category_id: str) -> None:
        await self._redis.db(DB.MAIN).hset(BOOKMARK_KEY, BOOKMARK_FIELD, category_id)
