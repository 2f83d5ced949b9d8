"""eze: tags and title from eze-style ``info.json`` (``{"gallery_info": {...}}``), inside the
archive or beside it as ``{archive_name}.json``."""

from __future__ import annotations

import calendar
from typing import Any

from twisted.plugin import IPlugin
from zope.interface import implementer

from lrrd.plugins.helpers import join_tags, parse_json, values_of
from lrrd.plugins.interfaces import IMetadataPlugin
from lrrd.plugins.model import PluginError, PluginInfo


def _timestamp(info: dict[str, Any], full: dict[str, Any]) -> int | float | None:
    """Upload time: ``gallery_info_full.date_uploaded`` (milliseconds), else ``upload_date``
    (``[Y, M, D, h, m, s]`` in UTC)."""
    uploaded = full.get("date_uploaded")
    if isinstance(uploaded, (int, float)) and not isinstance(uploaded, bool) and uploaded:
        return int(uploaded) // 1000 if uploaded % 1000 == 0 else uploaded / 1000
    date = info.get("upload_date")
    if isinstance(date, list) and len(date) >= 6:
        try:
            return calendar.timegm(tuple(int(part) for part in date[:6]) + (0, 0, 0))
        except (TypeError, ValueError, OverflowError):
            return None
    return None


def tags_from_eze(document: Any, origin_title: bool, additional: bool) -> dict[str, Any]:
    """The tags (namespaces sorted), category, uploader/timestamp if asked, source; the title."""
    info = document.get("gallery_info") if isinstance(document, dict) else None
    if not isinstance(info, dict):
        raise PluginError("The info.json file could not be parsed as an eze file!")
    full = document.get("gallery_info_full")
    full = full if isinstance(full, dict) else {}
    tags: list[str] = []
    namespaces = info.get("tags")
    if isinstance(namespaces, dict):
        for namespace in sorted(namespaces):
            tags += [f"{namespace}:{tag}" for tag in values_of(namespaces[namespace])]
    category = info.get("category")
    if category:
        tags.append(f"category:{category}")
    uploader = full.get("uploader")
    if additional and uploader:
        tags.append(f"uploader:{uploader}")
    timestamp = _timestamp(info, full)
    if additional and timestamp:
        tags.append(f"timestamp:{timestamp}")
    source = info.get("source")
    if isinstance(source, dict) and source.get("site") and source.get("gid") and source.get("token"):
        tags.append(f"source:{source['site']}.org/g/{source['gid']}/{source['token']}")
    title = info.get("title")
    if origin_title and info.get("title_original"):
        title = info.get("title_original")
    result: dict[str, Any] = {"tags": join_tags(tags)}
    if isinstance(title, str) and title.strip():
        result["title"] = title.strip()
    return result


@implementer(IPlugin, IMetadataPlugin)
class EzePlugin:
    info = PluginInfo(
        name="eze",
        type="metadata",
        namespace="ezeplugin",
        author="Difegue",
        version="2.4",
        description="Collects metadata from eze-style info.json files ({'gallery_info': {xxx} } "
                    "syntax), either embedded in your archive or in the same folder with the same "
                    "name. ({archive_name}.json)",
        parameters=[
            {"type": "bool", "desc": "Save the original title when available instead of the "
                                     "English or romanised title"},
            {"type": "bool", "desc": "Fetch additional timestamp (time posted) and uploader "
                                     "metadata"},
        ],
    )

    async def get_tags(self, context: Any, params: Any) -> dict[str, Any]:
        found = await context.read_archive_file("info.json") or await context.read_sidecar(".json")
        if found is None:
            raise PluginError("No in-archive info.json or {archive_name}.json file found!")
        return tags_from_eze(parse_json(found), params.flag(0), params.flag(1))


plugin = EzePlugin()
