"""The original's ``exec_with_lock`` for API handlers: a busy write lock answers 423 at once."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import AsyncIterator

from lrrd.api.errors import ApiError
from lrrd.store.locks import LockStore


@asynccontextmanager
async def write_lock(locks: LockStore, kind: str, resource_id: str,
                     operation: str) -> AsyncIterator[None]:
    """Hold ``<kind>-write:<id>`` for the block; if taken, raise the 423
    ``{"operation","success":0,"error":"Locked resource: <id>."}`` the original sends."""
    name = f"{kind}-write:{resource_id}"
    token = await locks.acquire(name)
    if token is None:
        raise ApiError(423, f"Locked resource: {resource_id}.", operation=operation)
    try:
        yield
    finally:
        await locks.release(name, token)
