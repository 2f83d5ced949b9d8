"""Subfolders to Categories: one static category per content subfolder holding archives.

Archives directly in the content folder are left alone. With "top level only", an archive in a
nested folder goes to the category of the top-level folder holding it. Archive ids come from the
file map the watcher keeps, so nothing is hashed again.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from twisted.plugin import IPlugin
from zope.interface import implementer

from lrrd.plugins.helpers import is_archive_filename
from lrrd.plugins.interfaces import IScriptPlugin
from lrrd.plugins.model import PluginError, PluginInfo


def folders_of(root: Path, top_level_only: bool) -> dict[str, list[str]]:
    """Folder name → archive paths below ``root`` (blocking: walks the tree, following links
    once each)."""
    groups: dict[str, list[str]] = {}
    seen: set[tuple[int, int]] = set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        try:
            info = os.stat(folder)
        except OSError:
            dirs[:] = []
            continue
        if (info.st_dev, info.st_ino) in seen:
            dirs[:] = []
            continue
        seen.add((info.st_dev, info.st_ino))
        dirs[:] = sorted(d for d in dirs if d != "thumb")
        relative = Path(folder).relative_to(root)
        if relative == Path("."):
            continue
        name = relative.parts[0] if top_level_only else relative.name
        for file in sorted(files):
            if is_archive_filename(file):
                groups.setdefault(name, []).append(os.path.join(folder, file))
    return groups


@implementer(IPlugin, IScriptPlugin)
class FolderToCategoryPlugin:
    info = PluginInfo(
        name="Subfolders to Categories",
        type="script",
        namespace="fldr2cat",
        author="Difegue",
        version="1.1",
        description="Scan your Content Folder and automatically create Static Categories for each "
                    "subfolder.<br>This Script will create a category for each subfolder with "
                    "archives as direct children.",
        parameters=[
            {"type": "bool", "desc": "Delete all your static categories before creating the ones "
                                     "matching your subfolders"},
            {"type": "bool", "desc": "Use top level subfolders only to create categories"},
        ],
    )

    async def run_script(self, context: Any, params: Any) -> dict[str, Any]:
        library = context.library
        if library is None:
            raise PluginError("This script needs the library.")
        if params.flag(0):
            for category in await library.categories():
                if category.get("search", "") == "":
                    await library.delete_category(category["id"])
        groups = await context.run_blocking(folders_of, library.content_dir, params.flag(1))
        filemap = await library.filemap()
        created = []
        for name in sorted(groups):
            category_id = await library.create_category(name)
            created.append(category_id)
            for path in groups[name]:
                archive_id = filemap.get(path) or filemap.get(os.path.realpath(path))
                if archive_id:
                    await library.add_to_category(category_id, archive_id)
        return {"created_categories": created}


plugin = FolderToCategoryPlugin()
