"""Process settings: defaults < LANraragi's env vars < config file < LRRD_* env < command line.

Settings that LANraragi keeps in Redis (API key, page size, No-Fun mode, ...) are not here:
they live in ``LRR_CONFIG`` so the API can change them (see ``lrrd.store.config``).
"""

from __future__ import annotations

import configparser
import os
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

#: The option names shared by the command line, the ``[lrrd]`` INI section and ``LRRD_<NAME>``.
OPTION_NAMES = (
    "listen",
    "content",
    "data",
    "redis",
    "api_key",
    "role",
    "workers",
    "thumbdir",
    "tempdir",
    "access_log",
    "redis_server",
    "rescan_interval",
    "allow_private_downloads",
    "job_expiry",
    "plugin_dirs",
    "thread_pool_size",
    "download_max_size",
    "download_timeout",
    "base_url",
)

ROLES = ("all", "web", "worker")

#: LANraragi's check of ``base_url_path`` (``lib/LANraragi.pm``): a leading slash, no trailing
#: one, no double quote (the prefix ends up inside HTML attributes and a cookie).
BASE_URL_RE = re.compile(r'^/[^"]*[^/"]$')


class ConfigError(ValueError):
    """A setting has a value lrrd cannot use; the message names the setting."""


@dataclass(frozen=True)
class Settings:
    """Everything a running lrrd process needs to know before it talks to Redis."""

    listen: str = "tcp:3000"
    content: Path = Path("./content")
    data: Path = Path("./data")
    redis: str | None = None
    api_key: str | None = None
    role: str = "all"
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    thumbdir: Path | None = None
    tempdir: Path | None = None
    access_log: bool = False
    redis_server: str | None = None
    rescan_interval: float = 300.0
    allow_private_downloads: bool = False
    job_expiry: float = 2 * 86400.0
    plugin_dirs: tuple[Path, ...] = ()
    thread_pool_size: int = 8
    #: Downloads (``download_url``, plugins) larger than this many bytes are cut off.
    download_max_size: int = 4 * 1024**3
    #: Seconds a whole download may take.
    download_timeout: float = 4 * 3600.0
    #: The sub-path a reverse proxy serves lrrd under (``/lrr``), or "" when served at ``/``.
    base_url: str = ""

    @property
    def thumb_dir(self) -> Path:
        """Thumbnails live under the data folder unless placed elsewhere explicitly."""
        return self.thumbdir if self.thumbdir is not None else self.data / "thumb"

    @property
    def temp_dir(self) -> Path:
        """Uploads, downloads and extracted solid archives are staged here."""
        return self.tempdir if self.tempdir is not None else self.data / "temp"

    @property
    def serves_http(self) -> bool:
        return self.role in ("all", "web")

    @property
    def runs_workers(self) -> bool:
        return self.role in ("all", "worker")


def _parse_bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name}: expected a boolean, got {value!r}")


_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def _parse_size(name: str, value: str) -> int:
    """A byte count, optionally with a K/M/G/T suffix (binary units): ``500M``, ``4G``."""
    text = value.strip().lower().removesuffix("ib").removesuffix("b")
    unit = text[-1:] if text[-1:] in _SIZE_UNITS else ""
    try:
        number = float(text[:-1] if unit else text)
    except ValueError:
        raise ConfigError(f"{name}: expected a size such as 500M or 4G, got {value!r}") from None
    if number <= 0:
        raise ConfigError(f"{name}: must be positive, got {value!r}")
    return int(number * _SIZE_UNITS[unit])


def _coerce(name: str, value: Any) -> Any:
    """Turn a textual setting into the type its ``Settings`` field wants."""
    if value is None or not isinstance(value, str):
        return value
    if name in ("content", "data", "thumbdir", "tempdir"):
        return Path(value).expanduser()
    if name in ("workers", "thread_pool_size"):
        try:
            number = int(value)
        except ValueError:
            raise ConfigError(f"{name}: expected an integer, got {value!r}") from None
        if number < (0 if name == "workers" else 1):
            raise ConfigError(f"{name}: must not be negative, got {value!r}")
        return number
    if name == "download_max_size":
        return _parse_size(name, value)
    if name in ("rescan_interval", "job_expiry", "download_timeout"):
        try:
            seconds = float(value)
        except ValueError:
            raise ConfigError(f"{name}: expected a number of seconds, got {value!r}") from None
        if seconds < 0:
            raise ConfigError(f"{name}: must not be negative, got {value!r}")
        return seconds
    if name in ("access_log", "allow_private_downloads"):
        return _parse_bool(name, value)
    if name == "role":
        if value not in ROLES:
            raise ConfigError(f"role: expected one of {', '.join(ROLES)}, got {value!r}")
        return value
    if name == "base_url":
        # The original only warns and serves at "/"; a proxy that then gets every link wrong
        # is worse than a refusal to start.
        if value and not BASE_URL_RE.match(value):
            raise ConfigError(f"base_url: expected a path such as /lrr (a leading slash, none "
                              f"at the end, no double quote), got {value!r}")
        return value
    if name == "plugin_dirs":
        return tuple(Path(p.strip()).expanduser() for p in value.split(os.pathsep) if p.strip())
    if name in ("redis", "api_key", "redis_server") and value == "":
        return None
    return value


def lrr_redis_address_to_url(address: str) -> str:
    """LANraragi's ``LRR_REDIS_ADDRESS`` is ``host:port`` or a unix socket path."""
    address = address.strip()
    if address.startswith("/"):
        return f"unix://{address}"
    if "://" in address:
        return address
    return f"redis://{address}"


def read_config_file(path: Path) -> dict[str, str]:
    """The ``[lrrd]`` section of an INI file, keys with ``-`` or ``_`` alike."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except OSError as exc:
        raise ConfigError(f"config: cannot read {path}: {exc.strerror}") from None
    except configparser.Error as exc:
        raise ConfigError(f"config: {path} is not a valid INI file: {exc}") from None
    if not parser.has_section("lrrd"):
        return {}
    values: dict[str, str] = {}
    for key, value in parser.items("lrrd"):
        name = key.replace("-", "_")
        if name not in OPTION_NAMES:
            raise ConfigError(f"config: unknown setting {key!r} in {path}")
        values[name] = value
    return values


def resolve_settings(
    command_line: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Layer the sources; ``command_line`` holds only the options the user gave (others None)."""
    env = os.environ if environ is None else environ
    layered: dict[str, Any] = {}

    # LANraragi's own variables sit lowest so an existing LRR deployment keeps working.
    if env.get("LRR_DATA_DIRECTORY"):
        layered["content"] = env["LRR_DATA_DIRECTORY"]
    if env.get("LRR_THUMB_DIRECTORY"):
        layered["thumbdir"] = env["LRR_THUMB_DIRECTORY"]
    if env.get("LRR_TEMP_DIRECTORY"):
        layered["tempdir"] = env["LRR_TEMP_DIRECTORY"]
    if env.get("LRR_REDIS_ADDRESS"):
        layered["redis"] = lrr_redis_address_to_url(env["LRR_REDIS_ADDRESS"])

    config_path = command_line.get("config") or env.get("LRRD_CONFIG")
    if config_path:
        layered.update(read_config_file(Path(config_path)))

    for name in OPTION_NAMES:
        env_name = "LRRD_" + name.upper()
        if env_name in env:
            layered[name] = env[env_name]

    for name in OPTION_NAMES:
        if command_line.get(name) is not None:
            layered[name] = command_line[name]

    known = {f.name for f in fields(Settings)}
    coerced = {name: _coerce(name, value) for name, value in layered.items() if name in known}
    settings = replace(Settings(), **coerced)
    if settings.workers == 0:
        settings = replace(settings, workers=os.cpu_count() or 1)
    return settings
