"""Filename Parsing: tags from a name in the doujinshi convention
``(Release) [Artist] TITLE (Series) [Language]`` (the original's ``regexplugin``).

Optional settings keep everything else caught in brackets as ``parsed:`` tags, and read a
trailing ``{tag, tag}`` group as plain tags.
"""

from __future__ import annotations

import os
import re
from typing import Any

from twisted.plugin import IPlugin
from zope.interface import implementer

from lrrd.plugins.helpers import looks_like_number
from lrrd.plugins.interfaces import IMetadataPlugin
from lrrd.plugins.model import PluginInfo

PARSED = "parsed:"

LANGUAGES = {
    "chi": "chinese", "chinese": "chinese", "zh": "chinese", "zho": "chinese",
    "de": "german", "deu": "german", "ger": "german", "german": "german",
    "en": "english", "eng": "english", "english": "english",
    "es": "spanish", "spa": "spanish", "spanish": "spanish",
    "fr": "french", "fra": "french", "fre": "french", "french": "french",
    "it": "italian", "ita": "italian", "italian": "italian",
    "ja": "japanese", "jpn": "japanese", "japanese": "japanese",
    "ko": "korean", "kor": "korean", "korean": "korean",
    "pl": "polish", "pol": "polish", "polish": "polish",
    "ru": "russian", "rus": "russian", "russian": "russian",
    "textless": "textless",
}

EXTRANEOUS = {"uncensored", "decensored", "ongoing", "pixiv", "twitter", "fanbox", "cosplay",
              "digital"}

# (Release) [Artist] Title (Series) [Language] then the rest; every part but the title optional.
FILENAME = re.compile(
    r"(\(([^([]+)\))?\s*(\[([^]]+)\])?\s*([^([]+)\s*(\(([^([)]+)\))?\s*(\[([^]]+)\])?(?P<tail>.*)?")
TRAILING = re.compile(r"(?P<head>.*)\{(?P<ttags>[^}]*)\}$")
CAPTURES = re.compile(r"\(([^)]+)\)|\{([^}]+)\}|\[([^\]]+)\]")
GROUP_AND_ARTIST = re.compile(r"(.*) \((.*)\)")


def _classify(item: str, namespace: str) -> str:
    """Common noise words (and numbers) in a namespaced field go to ``parsed:`` instead."""
    if (namespace and item.lower() in EXTRANEOUS) or looks_like_number(item):
        return PARSED + item.lower()
    return namespace + item


def _captured(capture: str, namespace: str) -> list[str]:
    return [_classify(item.strip(), namespace) for item in capture.split(",") if item.strip()]


def _languages(text: str) -> list[str]:
    tags = []
    for item in (part.strip().lower() for part in text.split(",")):
        if item:
            tags.append("language:" + LANGUAGES[item] if item in LANGUAGES else PARSED + item)
    return tags


def _artists(text: str) -> list[str]:
    tags = []
    pair = GROUP_AND_ARTIST.search(text)
    if pair:
        tags.append("group:" + pair.group(1))
        text = pair.group(2)
    return tags + _captured(text, "artist:")


def parse_filename(filename: str, check_trailing_tags: bool = False,
                   keep_all_captures: bool = False) -> tuple[str, str]:
    """(tags sorted and joined with ", ", title) for a file name without its extension."""
    match = FILENAME.search(filename.replace("_", " "))
    event = artist = series = language = title = ""
    tail = ""
    if match:
        event, artist = match.group(2) or "", match.group(4) or ""
        title = (match.group(5) or "").strip()
        series, language = match.group(7) or "", match.group(9) or ""
        tail = (match.group("tail") or "").strip()
    trailing = other = ""
    if tail and check_trailing_tags:
        found = TRAILING.search(tail)
        if found:
            trailing, tail = found.group("ttags"), found.group("head")
    if tail and keep_all_captures:
        items = [part for groups in CAPTURES.findall(tail) for part in groups]
        other = ",".join(item for item in items if item.strip())
    tags: list[str] = []
    if artist:
        tags += _artists(artist)
    if event:
        tags.append("event:" + event)
    if language:
        tags += _languages(language)
    if series:
        tags += _captured(series, "series:")
    if other:
        tags += _captured(other, PARSED)
    if trailing:
        tags += _captured(trailing, "")
    if not keep_all_captures:
        tags = [tag for tag in tags if not tag.startswith(PARSED)]
    return ", ".join(sorted(tags)), title.strip()


@implementer(IPlugin, IMetadataPlugin)
class RegexParsePlugin:
    info = PluginInfo(
        name="Filename Parsing",
        type="metadata",
        namespace="regexplugin",
        author="Difegue",
        version="1.0.1",
        description="Derive tags from the filename of the given archive. <br>Follows the "
                    "doujinshi naming standard (Release) [Artist] TITLE (Series) [Language].",
        parameters=[
            {"type": "bool", "desc": "Capture trailing tags in curly brackets"},
            {"type": "bool", "desc": f'Keep everything you catch as tags in the namespace "{PARSED}"'
                                     "<BR />(this should be used in conjunction with Tag Rules)"},
        ],
    )

    async def get_tags(self, context: Any, params: Any) -> dict[str, Any]:
        name = os.path.basename(context.file_path)
        stem = name.rsplit(".", 1)[0] if "." in name else name
        tags, title = parse_filename(stem, params.flag(0), params.flag(1))
        return {"tags": tags, "title": title}


plugin = RegexParsePlugin()
