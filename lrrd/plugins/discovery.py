"""Finding plugins: ``twisted.plugin.getPlugins`` over ``lrrd_plugins`` and configured extra folders.

An extra folder is scanned as a package of its own (a synthetic module whose ``__path__`` is that
folder), so a user drops one ``.py`` file there and it is found the same way as the built-ins. A
module that fails to import is logged and skipped; it never stops the others.
"""

from __future__ import annotations

import hashlib
import re
import sys
import types
from pathlib import Path
from typing import Any, Iterable

from twisted.logger import Logger
from twisted.plugin import getPlugins

from lrrd.plugins.interfaces import INTERFACE_BY_TYPE, ILrrdPlugin
from lrrd.plugins.model import PluginInfo

__all__ = ["PluginRegistry", "extra_package"]

log = Logger()


def extra_package(folder: Path) -> types.ModuleType:
    """A package module for ``folder`` so ``getPlugins`` can scan (and import from) it."""
    resolved = Path(folder).expanduser().resolve()
    name = "lrrd_extra_plugins_" + hashlib.sha1(str(resolved).encode("utf-8")).hexdigest()[:12]
    module = sys.modules.get(name)
    if module is None:
        module = types.ModuleType(name, f"lrrd plugins from {resolved}")
        module.__path__ = [str(resolved)]  # type: ignore[attr-defined]
        sys.modules[name] = module
    return module


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
            for folder in self._extra_dirs:
                if folder.is_dir():
                    packages.append(extra_package(folder))
                else:
                    log.warn("Plugin folder {folder} does not exist; skipped", folder=str(folder))
        else:
            packages = self._packages
        found: list[Any] = []
        for package in packages:
            batch = [plugin for plugin in getPlugins(ILrrdPlugin, package) if self._valid(plugin)]
            batch.sort(key=lambda p: (type(p).__module__, p.info.namespace))
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
