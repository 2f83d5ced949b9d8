"""The computed tag rules: ``LRR_TAGRULES`` in the config database, beside their ``tagrules`` text.

The original keeps the rules twice: the text the user typed (``LRR_CONFIG.tagrules``, lines joined
with ``;``) and the parsed rules flattened into a list of ``type, match, value`` triples, which is
what its plugin runner reads. Both are written together here, in one script, so a reader never
sees the text of one version and the rules of another.
"""

from __future__ import annotations

import unicodedata
from typing import Sequence

from lrrd.store.archives import as_text
from lrrd.store.config import CONFIG_KEY
from lrrd.store.redis import DB, RedisStore, gather

TAGRULES_KEY = "LRR_TAGRULES"

# KEYS: LRR_TAGRULES, LRR_CONFIG. ARGV: '1' to write the text too, the text, then the flat rules.
_SAVE = """
redis.call('DEL', KEYS[1])
-- unpack() is bounded by Lua's stack, so long rule lists go in slices.
for i = 3, #ARGV, 1000 do
  redis.call('RPUSH', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
if ARGV[1] == '1' then redis.call('HSET', KEYS[2], 'tagrules', ARGV[2]) end
return 1
"""


class TagRulesStore:
    """Reads and writes the rules text and its flattened form (config database)."""

    def __init__(self, redis: RedisStore) -> None:
        self._redis = redis

    @property
    def _db(self):  # type: ignore[no-untyped-def]
        return self._redis.db(DB.CONFIG)

    async def load(self) -> tuple[list[str] | None, str | None]:
        """The flat list (None when ``LRR_TAGRULES`` is absent) and the raw ``tagrules`` text
        (None when unset), in one round trip."""
        exists, flat, text = await gather(
            self._db.exists(TAGRULES_KEY),
            self._db.lrange(TAGRULES_KEY, 0, -1),
            self._db.hget(CONFIG_KEY, "tagrules"),
        )
        rules = [as_text(item) for item in flat or []] if exists else None
        return rules, (None if text is None else as_text(text))

    async def save(self, flat: Sequence[str], text: str | None = None) -> None:
        """Replace the flat rules (NFC, as the original's ``redis_encode``) and, when ``text``
        is given, the ``tagrules`` setting with them."""
        values = [unicodedata.normalize("NFC", item) for item in flat]
        await self._db.eval(_SAVE, [TAGRULES_KEY, CONFIG_KEY], [
            "0" if text is None else "1", "" if text is None else unicodedata.normalize("NFC", text),
            *values,
        ])
