"""Koromo: tags (and optionally the title) from Koromo-style ``Info.json`` (``{"Tags": [...]}``)."""

from __future__ import annotations

from typing import Any

from twisted.plugin import IPlugin
from zope.interface import implementer

from lrrd.plugins.helpers import join_tags, parse_json, prefixed, values_of
from lrrd.plugins.interfaces import IMetadataPlugin
from lrrd.plugins.model import PluginError, PluginInfo


def tags_from_koromo(document: Any) -> dict[str, Any]:
    """Plain tags first, then characters, series, groups, artists, parody (as series), artist,
    magazine, language, types (as category), URL (as source): the original's order."""
    if not isinstance(document, dict):
        raise PluginError("Info.json does not hold a JSON object.")
    field = document.get
    tags = (values_of(field("Tags"))
            + prefixed("character", values_of(field("Characters")))
            + prefixed("series", values_of(field("Series")))
            + prefixed("group", values_of(field("Groups")))
            + prefixed("artist", values_of(field("Artists")))
            + prefixed("series", values_of(field("Parody")))
            + prefixed("artist", values_of(field("Artist")))
            + prefixed("magazine", values_of(field("Magazine")))
            + prefixed("language", values_of(field("Language")))
            + prefixed("category", values_of(field("Types")))
            + prefixed("source", values_of(field("URL"))))
    result: dict[str, Any] = {"tags": join_tags(tags)}
    title = field("Title")
    if isinstance(title, str) and title.strip():
        result["title"] = title
    return result


@implementer(IPlugin, IMetadataPlugin)
class KoromoPlugin:
    info = PluginInfo(
        name="koromo",
        type="metadata",
        namespace="koromoplugin",
        author="CirnoT, Difegue",
        version="2.1",
        description="Collects metadata embedded into your archives as Koromo-style Info.json "
                    "files. ( {'Tags': [xxx] } syntax)",
        parameters=[{"type": "bool", "desc": "Save archive title"}],
    )

    async def get_tags(self, context: Any, params: Any) -> dict[str, Any]:
        found = await context.read_archive_file("Info.json") or \
            await context.read_archive_file("info.json")
        if found is None:
            raise PluginError("No koromo info.json file found in this archive!")
        result = tags_from_koromo(parse_json(found))
        if not params.flag(0):
            result.pop("title", None)
        return result


plugin = KoromoPlugin()
