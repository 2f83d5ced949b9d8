"""What LANraragi's first start writes into an empty database (LRR-NOTES §0 step 8)."""

from __future__ import annotations

from twisted.logger import Logger

from lrrd.store.categories import CategoryStore
from lrrd.store.config import CONFIG_KEY, DEFAULTS, ConfigStore
from lrrd.store.redis import DB, RedisStore

log = Logger()

FAVORITES_NAME = "🔖 Favorites"

#: Guards the first-start writes so two lrrd processes starting together create one category.
_CLAIM = """
if redis.call('HSETNX', KEYS[1], 'htmltitle', ARGV[1]) == 1 then return 1 end
return 0
"""


async def ensure_initialised(redis: RedisStore) -> bool:
    """Give a fresh database the original's first-install state; True when it did so."""
    config = ConfigStore(redis)
    if await config.is_initialised():
        return False
    claimed = await redis.db(DB.CONFIG).eval(_CLAIM, [CONFIG_KEY], [DEFAULTS["htmltitle"]])
    if not claimed:
        return False
    categories = CategoryStore(redis)
    favorites = await categories.create(FAVORITES_NAME)
    await categories.set_bookmark_link(favorites)
    log.info("First start: created category {name} ({id}) and linked the bookmark to it",
             name=FAVORITES_NAME, id=favorites)
    return True
