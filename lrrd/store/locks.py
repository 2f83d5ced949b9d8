"""LANraragi's write locks: ``SET NX EX`` keys in the config database, released by token.

The original never waits for a busy lock (the request fails with 423 at once), so neither does
lrrd. Names: ``archive-write:<id>``, ``category-write:<id>``, ``tankoubon-write:<id>``,
``stamp-write:<id>``, ``upload:<filename>``.
"""

from __future__ import annotations

import secrets
from contextlib import asynccontextmanager
from typing import AsyncIterator

from lrrd.store.redis import DB, RedisStore

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class LockBusy(Exception):
    """Somebody else holds the lock; the caller answers 423."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class LockStore:
    def __init__(self, redis: RedisStore) -> None:
        self._redis = redis

    async def acquire(self, name: str, ttl: int = 10) -> str | None:
        token = secrets.token_hex(16)
        ok = await self._redis.db(DB.CONFIG).set(name, token, expire=ttl, only_if_not_exists=True)
        return token if ok else None

    async def release(self, name: str, token: str) -> None:
        await self._redis.db(DB.CONFIG).eval(_RELEASE, [name], [token])

    @asynccontextmanager
    async def held(self, name: str, ttl: int = 10) -> AsyncIterator[None]:
        """``async with locks.held("archive-write:" + id):`` — raises LockBusy when taken."""
        token = await self.acquire(name, ttl)
        if token is None:
            raise LockBusy(name)
        try:
            yield
        finally:
            await self.release(name, token)
