"""What a running plugin is handed: the data the original's ``$lrr_info`` hash held, plus helpers.

The helpers are the plugin's only way to lrrd: reading a file inside or beside the archive (in a
pool thread, through ``lrrd.library.formats``), the guarded HTTP client, and for scripts a narrow
view of the library (categories, the file map). Plugins never see Redis or HTTP routing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from twisted.logger import Logger

from lrrd.plugins.model import PluginError

if TYPE_CHECKING:
    from lrrd.download import GuardedHttpClient
    from lrrd.services import Services

__all__ = [
    "ArchiveFile",
    "DownloadContext",
    "LibraryAccess",
    "LoginContext",
    "MetadataContext",
    "PluginContext",
    "ScriptContext",
]

#: Metadata files are small; anything bigger than this inside an archive is not one.
MAX_METADATA_FILE = 16 * 1024 * 1024


@dataclass(frozen=True)
class ArchiveFile:
    """A file found inside an archive: its member name and bytes."""

    name: str
    data: bytes

    def text(self) -> str:
        """UTF-8 (with a BOM tolerated), as the original opens these files."""
        return self.data.decode("utf-8-sig", "replace")


@dataclass
class PluginContext:
    """Shared by every kind of plugin run."""

    namespace: str
    oneshot_param: str
    http: GuardedHttpClient | None
    run_io: Callable[..., Any]
    log: Logger = field(default_factory=Logger)

    @property
    def user_agent(self) -> str | None:
        """The login plugin's user agent, if the plugin has ``login_from``."""
        return None if self.http is None else self.http.session.user_agent

    async def run_blocking(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Blocking work (parsing a big file, walking folders) goes to lrrd's I/O pool."""
        return await self.run_io(fn, *args, **kwargs)


@dataclass
class MetadataContext(PluginContext):
    """``archive_id, archive_title, existing_tags, thumbnail_hash, file_path`` as the original."""

    archive_id: str = ""
    archive_title: str = ""
    existing_tags: str = ""
    thumbnail_hash: str = ""
    file_path: str = ""

    async def read_archive_file(self, *names: str,
                                max_size: int = MAX_METADATA_FILE) -> ArchiveFile | None:
        """The first member of the archive whose file name ends with one of ``names`` (the
        original's ``is_file_in_archive``), or None; an unreadable archive is a plugin error."""
        from lrrd.library.formats import ArchiveError, read_named_member

        try:
            found = await self.run_io(read_named_member, self.file_path, *names, max_size=max_size)
        except (ArchiveError, OSError) as exc:
            raise PluginError(f"Could not read the archive: {exc}") from None
        return None if found is None else ArchiveFile(*found)

    def sidecar_path(self, suffix: str) -> Path:
        """``<folder>/<archive name without extension><suffix>``, beside the archive."""
        path = Path(self.file_path)
        return path.with_name(path.stem + suffix)

    async def read_sidecar(self, suffix: str, max_size: int = MAX_METADATA_FILE) -> ArchiveFile | None:
        """A metadata file beside the archive (``{archive_name}.json``), or None."""
        path = self.sidecar_path(suffix)
        data = await self.run_io(_read_small_file, path, max_size)
        return None if data is None else ArchiveFile(path.name, data)

    async def file_mtime(self) -> int:
        return int((await self.run_io(os.stat, self.file_path)).st_mtime)


def _read_small_file(path: Path, max_size: int) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            data = handle.read(max_size + 1)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    except OSError as exc:
        raise PluginError(f"Could not open {path.name}: {exc.strerror or exc}") from None
    if len(data) > max_size:
        raise PluginError(f"{path.name} is larger than {max_size} bytes.")
    return data


@dataclass
class LoginContext(PluginContext):
    """A login plugin gets the bare guarded client to log in with."""


@dataclass
class DownloadContext(PluginContext):
    """The URL to download (``$lrr_info->{url}``); ``temp_dir`` is where a plugin that downloads
    by itself must put the file it returns as ``file_path``."""

    url: str = ""
    temp_dir: Path | None = None


class LibraryAccess:
    """The part of the library a script plugin may change: categories, read-only file map."""

    def __init__(self, services: Services) -> None:
        self._services = services

    @property
    def content_dir(self) -> Path:
        return Path(os.path.abspath(self._services.settings.content))

    async def filemap(self) -> dict[str, str]:
        """Every known file (absolute path) and its archive id."""
        return await self._services.archives.filemap()

    async def categories(self) -> list[dict[str, Any]]:
        return await self._services.categories.list_all()

    async def create_category(self, name: str, search: str = "", pinned: bool = False) -> str:
        return await self._services.categories.create(name, search, pinned)

    async def delete_category(self, category_id: str) -> bool:
        return await self._services.categories.delete(category_id)

    async def add_to_category(self, category_id: str, archive_id: str) -> None:
        from lrrd.store.categories import CategoryError

        try:
            await self._services.categories.add_archive(category_id, archive_id)
        except CategoryError as exc:
            raise PluginError(exc.message) from None


@dataclass
class ScriptContext(PluginContext):
    """A script gets the one-shot argument and the library view."""

    library: LibraryAccess | None = None
