"""ComicInfo.xml inside the archive → group/artist/source/language tags, genres and title.

Parsed with lxml with entity resolution, DTD loading and network access all off, so a hostile
file (external entities, "billion laughs") is read as inert text, never expanded or fetched.
"""

from __future__ import annotations

from typing import Any

from lxml import etree
from twisted.plugin import IPlugin
from zope.interface import implementer

from lrrd.plugins.helpers import join_tags, prefixed, split_tags
from lrrd.plugins.interfaces import IMetadataPlugin
from lrrd.plugins.model import PluginError, PluginInfo

_FIELDS = ("Genre", "Tags", "Web", "Writer", "Penciller", "LanguageISO", "Title")


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                           dtd_validation=False, huge_tree=False, remove_comments=True)


def parse_comicinfo(data: bytes) -> dict[str, Any]:
    """Tags and title from ComicInfo.xml bytes (blocking; small files only)."""
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise PluginError(f"ComicInfo.xml is not valid XML: {exc}") from None
    values: dict[str, str | None] = {}
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        name = etree.QName(element).localname
        if name in _FIELDS and name not in values:
            values[name] = element.text
    tags = (prefixed("group", split_tags(values.get("Writer")))
            + prefixed("artist", split_tags(values.get("Penciller")))
            + prefixed("source", split_tags(values.get("Web"))))
    language = (values.get("LanguageISO") or "").strip()
    if language:
        tags.append(f"language:{language}")
    tags += split_tags(values.get("Genre")) + split_tags(values.get("Tags"))
    result: dict[str, Any] = {"tags": join_tags(tags)}
    if values.get("Title") is not None:
        result["title"] = (values["Title"] or "").strip()
    return result


@implementer(IPlugin, IMetadataPlugin)
class ComicInfoPlugin:
    info = PluginInfo(
        name="ComicInfo",
        type="metadata",
        namespace="comicinfo",
        author="Gin-no-kami",
        version="1.1",
        description="Parses metadata from ComicInfo.xml embedded in the archive",
        parameters=[],
    )

    async def get_tags(self, context: Any, params: Any) -> dict[str, Any]:
        found = await context.read_archive_file("ComicInfo.xml")
        if found is None:
            raise PluginError("No ComicInfo.xml file found in the archive")
        return await context.run_blocking(parse_comicinfo, found.data)


plugin = ComicInfoPlugin()
