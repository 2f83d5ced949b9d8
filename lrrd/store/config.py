"""``LRR_CONFIG`` in the config database: LANraragi's server settings with their defaults.

A missing or blank field means the default, exactly as the original reads it, so a database
written by LANraragi (or by LANraragi's test suites, which write ``apikey`` before starting the
server) is understood as is.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Mapping

from lrrd.store.redis import DB, RedisStore

CONFIG_KEY = "LRR_CONFIG"

DEFAULT_TAG_RULES = ";".join(
    [
        "-already uploaded",
        "-forbidden content",
        "-incomplete",
        "-ongoing",
        "-complete",
        "-various",
        "-digital",
        "-translated",
        "-russian",
        "-chinese",
        "-portuguese",
        "-french",
        "-spanish",
        "-italian",
        "-vietnamese",
        "-german",
        "-indonesian",
    ]
)

#: Every field of the original's LRR_CONFIG with its default (LRR-NOTES §2.4).
DEFAULTS: Mapping[str, str] = {
    "htmltitle": "LANraragi",
    "motd": "Welcome to this Library running LANraragi!",
    "dirname": "./content",
    "thumbdir": "./thumb",
    "pagesize": "100",
    "enablepass": "1",
    # bcrypt("kamimamita"), cost 8, RFC2307 form: only the web login page ever reads it.
    "password": "{CRYPT}$2a$08$4AcMwwkGXnWtFTOLuw/hduQlRdqWQIBzX3UuKn.M1qTFX5R4CALxy",
    "nofunmode": "0",
    "enablecors": "0",
    "enablemetrics": "0",
    "disableopenapi": "0",
    "apikey": "",
    "localprogress": "0",
    "authprogress": "0",
    "tagruleson": "1",
    "tagrules": DEFAULT_TAG_RULES,
    "enableresize": "0",
    "sizethreshold": "1000",
    "readerquality": "50",
    "theme": "modern.css",
    "usedateadded": "1",
    "usedatemodified": "0",
    "enablecryptofs": "0",
    "hqthumbpages": "0",
    "jxlthumbpages": "0",
    "replacedupe": "0",
    "replacetitles": "1",
    "language": "auto",
    "excludednamespaces": "source, date_added",
    "devmode": "0",
    "tempmaxsize": "500",
}


def with_defaults(raw: Mapping[str, str | None]) -> dict[str, str]:
    """Fill blanks the way ``Model/Config.pm`` does: missing or whitespace-only → default."""
    merged = dict(DEFAULTS)
    for key, value in raw.items():
        if value is not None and value.strip() != "":
            merged[key] = value
    return merged


def flag(value: str | None) -> bool:
    """LANraragi's booleans are "1"/"0" (some older writers used "true")."""
    return (value or "").strip().lower() in ("1", "true", "on", "yes")


def as_int(value: str | None, default: int) -> int:
    try:
        return int((value or "").strip())
    except ValueError:
        return default


@dataclass(frozen=True)
class AccessSettings:
    """What the HTTP root needs on every request, read in one round trip."""

    apikey: str
    enablepass: bool
    nofunmode: bool
    enablecors: bool
    authprogress: bool


class ConfigStore:
    """Reads and writes ``LRR_CONFIG`` (config DB) and a few related counters."""

    def __init__(self, redis: RedisStore) -> None:
        self._redis = redis

    @property
    def _db(self):  # type: ignore[no-untyped-def]
        return self._redis.db(DB.CONFIG)

    async def get_all(self) -> dict[str, str]:
        raw = await self._db.hgetall(CONFIG_KEY)
        return with_defaults(raw or {})

    async def get(self, *fields: str) -> dict[str, str]:
        values = await self._db.hmget(CONFIG_KEY, list(fields))
        merged = with_defaults(dict(zip(fields, values)))
        return {name: merged.get(name, "") for name in fields}

    async def set(self, values: Mapping[str, str]) -> None:
        if values:
            await self._db.hmset(CONFIG_KEY, dict(values))

    async def access_settings(self) -> AccessSettings:
        """Read per request: a changed API key or password switch applies at once."""
        values = await self.get("apikey", "enablepass", "nofunmode", "enablecors", "authprogress")
        return AccessSettings(
            apikey=values["apikey"].strip() if values["apikey"] else "",
            enablepass=flag(values["enablepass"]),
            nofunmode=flag(values["nofunmode"]),
            enablecors=flag(values["enablecors"]),
            authprogress=flag(values["authprogress"]),
        )

    async def set_api_key(self, key: str) -> None:
        await self._db.hset(CONFIG_KEY, "apikey", key)

    async def is_initialised(self) -> bool:
        """The original treats a config without ``htmltitle`` as a first start."""
        return bool(await self._db.hexists(CONFIG_KEY, "htmltitle"))

    async def total_pages_read(self) -> int:
        return as_int(await self._db.get("LRR_TOTALPAGESTAT"), 0)


def now() -> int:
    return int(time.time())
