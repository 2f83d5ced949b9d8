"""Plugin settings where the original keeps them: ``LRR_PLUGIN_<NAMESPACE>`` hashes in the config DB.

Each hash holds ``enabled`` ("1" runs the plugin on every new archive) and either one field per
named parameter or, for plugins with the legacy parameter list, ``customargs`` (a JSON array).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from lrrd.store.redis import DB, RedisStore, gather

__all__ = ["PluginSettingsStore", "settings_key"]


def settings_key(namespace: str) -> str:
    """The original upper-cases the namespace (``LRR_PLUGIN_REGEXPLUGIN``)."""
    return "LRR_PLUGIN_" + namespace.upper()


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


class PluginSettingsStore:
    """Reads and writes plugin settings; values are returned as the strings Redis holds."""

    def __init__(self, redis: RedisStore) -> None:
        self._redis = redis

    @property
    def _db(self):  # type: ignore[no-untyped-def]
        return self._redis.db(DB.CONFIG)

    async def get(self, namespace: str) -> dict[str, str]:
        raw = await self._db.hgetall(settings_key(namespace))
        return {_text(k): _text(v) for k, v in (raw or {}).items()}

    async def get_many(self, namespaces: Iterable[str]) -> dict[str, dict[str, str]]:
        """Every listed plugin's settings in one pipelined round trip (the auto-plugin check runs
        on each import, so it must not cost one round trip per plugin)."""
        names = list(namespaces)
        replies = await gather(*(self._db.hgetall(settings_key(ns)) for ns in names))
        return {ns: {_text(k): _text(v) for k, v in (reply or {}).items()}
                for ns, reply in zip(names, replies)}

    async def set(self, namespace: str, values: Mapping[str, Any]) -> None:
        """Write fields (booleans as "1"/"0", the way the original's settings page saves them)."""
        encoded = {name: ("1" if value else "0") if isinstance(value, bool) else _text(value)
                   for name, value in values.items()}
        if encoded:
            await self._db.hmset(settings_key(namespace), encoded)

    async def set_enabled(self, namespace: str, enabled: bool) -> None:
        await self._db.hset(settings_key(namespace), "enabled", "1" if enabled else "0")

    async def delete_fields(self, namespace: str, *fields: str) -> None:
        if fields:
            await self._db.hdel(settings_key(namespace), list(fields))
