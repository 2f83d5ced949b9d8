"""What a backup reads and a restore writes beyond the archive, category and tank stores.

The backup JSON (LRR-NOTES §9.6) needs raw archive fields for every id and every stamp hash;
a restore writes stamp hashes and, under the original's rule, the ``thumbhash`` of archives that
already have one. Reads are pipelined a batch at a time so a 100,000-archive library costs a few
dozen round trips, not 100,000.
"""

from __future__ import annotations

from typing import Any, Sequence

from lrrd.store.archives import as_text
from lrrd.store.redis import DB, RedisStore, gather
from lrrd.store.stats import read_archive_fields

STAMP_KEY_PATTERN = "STAMPS_*"

#: The archive fields a backup records, in ``HMGET`` order.
BACKUP_FIELDS = ("name", "title", "tags", "summary", "thumbhash", "stamps")

# KEYS: archive id. ARGV: thumbhash. The original overwrites only a thumbhash that is set.
_THUMBHASH = """
local current = redis.call('HGET', KEYS[1], 'thumbhash')
if current and current ~= '' then
  redis.call('HSET', KEYS[1], 'thumbhash', ARGV[1])
  return 1
end
return 0
"""

# ARGV: groups of four (stamp key, content, position, archive id). A stamp is written only when
# its archive exists and the key is free or already a stamp hash.
_STAMPS = """
local written = 0
for i = 1, #ARGV, 4 do
  local key, arc = ARGV[i], ARGV[i + 3]
  local kind = redis.call('TYPE', key).ok
  if redis.call('EXISTS', arc) == 1 and (kind == 'none' or kind == 'hash') then
    redis.call('HSET', key, 'content', ARGV[i + 1], 'position', ARGV[i + 2], 'archive_id', arc)
    written = written + 1
  end
end
return written
"""


class BackupStore:
    """Bulk reads for backups, and the few raw writes of a restore (main database)."""

    def __init__(self, redis: RedisStore) -> None:
        self._redis = redis

    @property
    def _main(self):  # type: ignore[no-untyped-def]
        return self._redis.db(DB.MAIN)

    async def archive_records(self, ids: Sequence[str]) -> list[dict[str, Any] | None]:
        """``BACKUP_FIELDS`` of each archive (a missing field is None; a key that is no hash
        gives None), in ``ids`` order."""
        rows = await read_archive_fields(self._redis, ids, BACKUP_FIELDS)
        return [None if row is None else dict(zip(BACKUP_FIELDS, row)) for row in rows]

    async def stamps(self, batch: int = 2000) -> list[tuple[str, dict[str, str]]]:
        """Every ``STAMPS_*`` hash, sorted by key."""
        keys: set[str] = set()
        cursor = "0"
        while True:
            cursor, found = await self._main.scan(cursor, STAMP_KEY_PATTERN, 5000)
            keys.update(as_text(key) for key in found)
            if str(cursor) == "0":
                break
        ordered = sorted(keys)
        out: list[tuple[str, dict[str, str]]] = []
        for start in range(0, len(ordered), batch):
            chunk = ordered[start:start + batch]
            replies = await gather(*(self._main.hgetall(key) for key in chunk))
            out.extend((key, {as_text(k): as_text(v) for k, v in (fields or {}).items()})
                       for key, fields in zip(chunk, replies) if fields)
        return out

    async def existing(self, ids: Sequence[str], batch: int = 2000) -> set[str]:
        """Which of these keys exist in the main database (pipelined ``EXISTS``)."""
        found: set[str] = set()
        for start in range(0, len(ids), batch):
            chunk = ids[start:start + batch]
            replies = await gather(*(self._main.exists(key) for key in chunk))
            found.update(key for key, reply in zip(chunk, replies) if int(reply or 0))
        return found

    async def restore_thumbhash(self, arcid: str, thumbhash: str) -> bool:
        """Overwrite ``thumbhash`` only when the archive already has a non-empty one."""
        return bool(int(await self._main.eval(_THUMBHASH, [arcid], [thumbhash])))

    async def restore_stamps(self, stamps: Sequence[tuple[str, str, str, str]],
                             batch: int = 500) -> int:
        """Write stamp hashes (key, content, position, archive id) whose archive exists."""
        written = 0
        for start in range(0, len(stamps), batch):
            argv = [value for stamp in stamps[start:start + batch] for value in stamp]
            written += int(await self._main.eval(_STAMPS, [], argv))
        return written
