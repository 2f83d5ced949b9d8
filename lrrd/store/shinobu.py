"""The file watcher's shared state: which process runs it (a lease with a TTL), and the requests
(stop, restart) any process's ``/api/shinobu`` can make of it. Keys live in the config database,
next to LANraragi's own locks; their ``lrrd:`` prefix keeps them out of the original's way.
"""

from __future__ import annotations

from dataclasses import dataclass

from lrrd.store.archives import as_text
from lrrd.store.redis import DB, RedisStore

LEADER_KEY = "lrrd:shinobu:leader"
STOPPED_KEY = "lrrd:shinobu:stopped"
GENERATION_KEY = "lrrd:shinobu:generation"

# KEYS: leader, stopped, generation. ARGV: owner, ttl (s).
# Claims or renews the lease unless the watcher was stopped; a stopped watcher's lease is dropped.
_HEARTBEAT = """
local stopped = redis.call('GET', KEYS[2]) == '1'
local generation = redis.call('GET', KEYS[3]) or '0'
local holder = redis.call('GET', KEYS[1])
if stopped then
  if holder == ARGV[1] then redis.call('DEL', KEYS[1]) end
  return {0, 1, generation}
end
if holder == ARGV[1] then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return {1, 0, generation}
end
if holder == false then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
  return {1, 0, generation}
end
return {0, 0, generation}
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class Lease:
    """One heartbeat's answer: do we lead, was the watcher stopped, which restart generation."""

    leader: bool
    stopped: bool
    generation: int


class ShinobuStore:
    """Leader election and control flags of the one file watcher of a Redis-sharing cluster."""

    def __init__(self, redis: RedisStore) -> None:
        self._redis = redis

    @property
    def _db(self):  # type: ignore[no-untyped-def]
        return self._redis.db(DB.CONFIG)

    async def heartbeat(self, owner: str, ttl: int) -> Lease:
        """Claim or renew the lease for ``owner`` (``SET NX EX`` semantics), atomically."""
        reply = await self._db.eval(_HEARTBEAT, [LEADER_KEY, STOPPED_KEY, GENERATION_KEY],
                                    [owner, str(max(1, int(ttl)))])
        leader, stopped, generation = reply
        return Lease(leader=int(leader) == 1, stopped=int(stopped) == 1,
                     generation=int(as_text(generation) or 0))

    async def release(self, owner: str) -> None:
        await self._db.eval(_RELEASE, [LEADER_KEY], [owner])

    async def holder(self) -> str | None:
        return as_text(await self._db.get(LEADER_KEY)) or None

    async def is_stopped(self) -> bool:
        return as_text(await self._db.get(STOPPED_KEY)) == "1"

    async def set_stopped(self, stopped: bool) -> None:
        if stopped:
            await self._db.set(STOPPED_KEY, "1")
        else:
            await self._db.delete(STOPPED_KEY)

    async def request_restart(self) -> int:
        """Ask the running watcher, wherever it is, to start over (a fresh startup scan)."""
        return int(await self._db.incr(GENERATION_KEY))
