"""E-Hentai Downloader: tags, title and summary from its ``info.txt``.

Two layouts: the current one (title, original title, gallery URL on the first three lines, then
``Key: value`` lines and a ``Tags:`` section of ``> namespace: a, b`` lines) and the old flat one
(``namespace:value`` per line, ``tag:x`` for plain tags). Anything else is "Unknown file format".
"""

from __future__ import annotations

import calendar
import re
import time
from typing import Any

from twisted.plugin import IPlugin
from zope.interface import implementer

from lrrd.plugins.helpers import split_tags
from lrrd.plugins.interfaces import IMetadataPlugin
from lrrd.plugins.model import PluginError, PluginInfo

_INFO, _TAGS, _FLAT = 1, 2, 3
_FIRST_FLAT = re.compile(r"^(description|title):(.*)")
_GALLERY = re.compile(r"^https://(e.hentai\.org/g/[0-9]*/[0-z]*)/*.*", re.IGNORECASE)
_TAG_LINE = re.compile(r"^> ([a-z]*):(.*)", re.IGNORECASE)
_FLAT_LINE = re.compile(r"^([a-z]*):(.*)")


def _epoch(text: str) -> int:
    try:
        return calendar.timegm(time.strptime(text, "%Y-%m-%d %H:%M"))
    except ValueError:
        raise PluginError(f"Unknown date format in info.txt: {text!r}") from None


def read_info(text: str, japanese_title: bool) -> dict[str, Any]:
    """``{"title"?, "summary"?, "tags"}`` from the file's text (tags sorted, joined with ",")."""
    data: dict[str, Any] = {}
    tags: dict[str, Any] = {}
    count = 0
    section = _INFO
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            count += 1
            continue
        if count == 0:
            first = _FIRST_FLAT.match(line)
            if first:
                data["title" if first.group(1) == "title" else "summary"] = first.group(2).strip()
                section = _FLAT
            else:
                data["title"] = line
        elif section == _INFO and count == 1 and japanese_title:
            data["title"] = line
        elif section == _INFO and count == 2:
            gallery = _GALLERY.match(line)
            if not gallery:
                raise PluginError("Unknown file format")
            tags["source"] = gallery.group(1)
        elif section == _INFO:
            if line.startswith("Category: "):
                tags["category"] = line[len("Category: "):].strip()
            elif line.startswith("Posted: "):
                tags["timestamp"] = _epoch(line[len("Posted: "):].strip())
            elif re.match(r"^Language: ", line, re.IGNORECASE):
                tags["language"] = re.match(r"^Language: ([a-z]*)", line, re.IGNORECASE).group(1).lower()  # type: ignore[union-attr]
            elif line.startswith("Tags:"):
                section = _TAGS
        elif section == _TAGS:
            found = _TAG_LINE.match(line)
            if not found:
                break
            tags[found.group(1)] = split_tags(found.group(2))
        elif section == _FLAT:
            found = _FLAT_LINE.match(line)
            if found:
                namespace, value = found.group(1), found.group(2).strip()
                if namespace in tags:
                    tags[namespace].append(value)
                elif namespace == "title":
                    data["title"] = value
                elif namespace == "description":
                    data["summary"] = value
                else:
                    tags[namespace] = [value]
        count += 1
    if section == _INFO and "source" not in tags:
        raise PluginError("Unknown file format")
    flat: list[str] = []
    for namespace, value in tags.items():
        if value in ("", None, []):
            flat.append(namespace)
        elif namespace == "tag":
            flat.append(",".join(value))
        elif isinstance(value, list):
            flat += [f"{namespace}:{item}" for item in value]
        else:
            flat.append(f"{namespace}:{value}")
    data["tags"] = ",".join(sorted(flat))
    return data


@implementer(IPlugin, IMetadataPlugin)
class EHDLInfoPlugin:
    info = PluginInfo(
        name="EHDL info.txt",
        type="metadata",
        namespace="ehd-info",
        author="IceBreeze",
        version="1.0",
        description="EHDL info.txt metadata parser",
        parameters={
            "replace_title": {"type": "bool",
                              "desc": "Replace the title with the one in the metadata file"},
            "japanese_title": {"type": "bool", "desc": "Use Japanese title if available"},
            "save_summary": {"type": "bool", "desc": 'Save "description" as summary'},
        },
    )

    async def get_tags(self, context: Any, params: Any) -> dict[str, Any]:
        found = await context.read_archive_file("info.txt")
        if found is None:
            # The original returns nothing at all here: a success that adds no tags.
            return {"tags": ""}
        data = read_info(found.text(), params.flag("japanese_title"))
        if not params.flag("replace_title"):
            data.pop("title", None)
        if not params.flag("save_summary"):
            data.pop("summary", None)
        return data


plugin = EHDLInfoPlugin()
