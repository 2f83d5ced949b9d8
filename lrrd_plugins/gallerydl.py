"""gallery-dl: tags and title from gallery-dl's metadata JSON, inside the archive (``info.json``)
or beside it as ``{archive_name}.json``. Tags may be a list (``"ns:tag"`` or plain) or a mapping
of namespace to list; ``category`` and ``source`` become tags too."""

from __future__ import annotations

from typing import Any

from twisted.plugin import IPlugin
from zope.interface import implementer

from lrrd.plugins.helpers import join_tags, parse_json, values_of
from lrrd.plugins.interfaces import IMetadataPlugin
from lrrd.plugins.model import PluginError, PluginInfo


def tags_from_gallerydl(document: Any) -> dict[str, Any]:
    if not isinstance(document, dict) or document.get("tags") is None:
        raise PluginError("The info.json file could not be parsed as a gallery-dl file!")
    raw = document["tags"]
    tags: list[str] = []
    if isinstance(raw, dict):
        for namespace in sorted(raw):
            tags += [f"{namespace}:{tag}" for tag in values_of(raw[namespace])]
    elif isinstance(raw, list):
        tags += values_of(raw)
    else:
        raise PluginError("Tags are in an unexpected structure, can't be parsed")
    if document.get("category"):
        tags.append(f"category:{document['category']}")
    if document.get("source"):
        tags.append(f"source:{document['source']}")
    result: dict[str, Any] = {"tags": join_tags(tags)}
    title = document.get("title")
    if isinstance(title, str) and title.strip():
        result["title"] = title.strip()
    return result


@implementer(IPlugin, IMetadataPlugin)
class GalleryDLPlugin:
    info = PluginInfo(
        name="GalleryDL",
        type="metadata",
        namespace="gallerydlplugin",
        author="Okaros",
        version="1.0",
        description="Collects metadata from gallery-dl-created info.json files, either embedded "
                    "in your archive or in the same folder with the same name. "
                    "({archive_name}.json)",
        parameters=[],
    )

    async def get_tags(self, context: Any, params: Any) -> dict[str, Any]:
        found = await context.read_archive_file("info.json") or await context.read_sidecar(".json")
        if found is None:
            raise PluginError("No in-archive info.json or {archive_name}.json file found!")
        return tags_from_gallerydl(parse_json(found))


plugin = GalleryDLPlugin()
