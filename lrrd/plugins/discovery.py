"""Finding plugins: ``twisted.plugin.getPlugins`` over ``lrrd_plugins`` and configured extra folders.

Extra folders join the ``lrrd_plugins`` package's ``__path__`` (as Twisted adds plugin folders to
``twisted.plugins``), so a user drops one ``.py`` file there and it is found the same way as the
built-ins, which come first. A module that fails to import is logged and skipped; it never stops
the others.
"""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path
from typing import Any, Iterable

from twisted.logger import Logger
from twisted.plugin import getPlugins

from lrrd.plugins.interfaces import INTERFACE_BY_TYPE, ILrrdPlugin
from lrrd.plugins.model import PluginInfo

__all__ = ["PluginRegistry", "add_plugin_folders"]

log = Logger()


def add_plugin_folders(package: types.ModuleType, folders: Iterable[Path]) -> list[str]:
    """Put ``folders`` on the plugin package's ``__path__`` (Twisted's own way of adding plugin
    folders to ``twisted.plugins``), so ``getPlugins`` scans them with the built-ins.

    Returns the folders that exist and are now scanned.
    """
    paths: list[str] = package.__path__  # type: ignore[assignment]
    added = []
    for folder in folders:
        resolved = Path(folder).expanduser().resolve()
        if not resolved.is_dir():
            log.warn("Plugin folder {folder} does not exist; skipped", folder=str(folder))
            continue
        if str(resolved) not in paths:
            paths.append(str(resolved))
        added.append(str(resolved))
    return added


def _folder_of(plugin: Any) -> str:
    module = sys.modules.get(type(plugin).__module__)
    path = getattr(module, "__file__", None)
    return str(Path(path).resolve().parent) if path else ""


class PluginRegistry:
    """Every plugin of this process, by namespace; built once, on first use.

    The order is the one ``GET /api/plugins`` shows: built-ins by module name, then each extra
    folder's. A namespace claimed twice keeps its first plugin (built-ins win).
    """

    def __init__(self, extra_dirs: Iterable[Path] = (), packages: Iterable[Any] | None = None) -> None:
        self._extra_dirs = tuple(Path(p) for p in extra_dirs)
        self._packages = None if packages is None else list(packages)
        self._plugins: list[Any] | None = None
        self._by_namespace: dict[str, Any] = {}

    def _scan(self) -> list[Any]:
        if self._packages is None:
            import lrrd_plugins

            packages: list[Any] = [lrrd_plugins]
            add_plugin_folders(lrrd_plugins, self._extra_dirs)
        else:
            packages = self._packages
        found: list[Any] = []
        for package in packages:
            builtin_dir = str(Path(package.__file__).resolve().parent)
            batch = [plugin for plugin in getPlugins(ILrrdPlugin, package) if self._valid(plugin)]
            batch.sort(key=lambda p: (_folder_of(p) != builtin_dir, type(p).__module__,
                                      p.info.namespace))
            found.extend(batch)
        plugins = []
        for plugin in found:
            namespace = plugin.info.namespace
            if namespace in self._by_namespace:
                log.warn("Plugin namespace {ns} is declared twice; keeping the first ({module})",
                         ns=namespace, module=type(self._by_namespace[namespace]).__module__)
                continue
            self._by_namespace[namespace] = plugin
            plugins.append(plugin)
        return plugins

    @staticmethod
    def _valid(plugin: Any) -> bool:
        info = getattr(plugin, "info", None)
        if not isinstance(info, PluginInfo):
            log.warn("Ignoring plugin {plugin!r}: its info is not a PluginInfo", plugin=plugin)
            return False
        if not INTERFACE_BY_TYPE[info.type].providedBy(plugin):
            log.warn("Ignoring plugin {ns}: type {type} but it does not provide {iface}",
                     ns=info.namespace, type=info.type, iface=INTERFACE_BY_TYPE[info.type].__name__)
            return False
        return True

    @property
    def plugins(self) -> list[Any]:
        if self._plugins is None:
            self._plugins = self._scan()
        return self._plugins

    def get(self, namespace: str) -> Any | None:
        """The plugin with exactly this namespace (the original compares case-sensitively)."""
        self.plugins
        return self._by_namespace.get(namespace)

    def of_type(self, kind: str) -> list[Any]:
        """Plugins of one type, or all of them for ``all``."""
        return [p for p in self.plugins if kind == "all" or p.info.type == kind]

    def downloader_for(self, url: str) -> Any | None:
        """The first download plugin whose ``url_regex`` matches somewhere in ``url``."""
        for plugin in self.of_type("download"):
            pattern = plugin.info.url_regex
            if not pattern:
                continue
            try:
                if re.search(pattern, url):
                    return plugin
            except re.error as exc:
                log.warn("Plugin {ns} has a bad url_regex: {error}", ns=plugin.info.namespace,
                         error=str(exc))
        return None
