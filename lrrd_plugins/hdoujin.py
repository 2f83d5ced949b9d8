"""HDoujin Downloader: tags, title and summary from its ``info.json`` or ``info.txt``.

Fields may sit under an outer ``manga_info`` object, hold one value or a list, or (with namespaced
tags enabled) a mapping of namespace to list. Namespaces are normalised (``characters`` →
``character``, ``misc`` → ``other``, ``url`` → ``source``, plain ``tags`` → none) and tags
de-duplicated case-insensitively.
"""

from __future__ import annotations

import re
from typing import Any

from twisted.plugin import IPlugin
from zope.interface import implementer

from lrrd.plugins.helpers import parse_json, split_tags, trim_url, values_of
from lrrd.plugins.interfaces import IMetadataPlugin
from lrrd.plugins.model import PluginError, PluginInfo

_JSON_KEYS = re.compile(r"^(?:artist|author|circle|characters?|language|parody|series|tags|url)",
                        re.IGNORECASE)
_TXT_LINE = re.compile(
    r"^(artist|author|circle|characters?|description|language|parody|series|tags|title|url): (.*)",
    re.IGNORECASE)


def normalize_namespace(name: str) -> str:
    name = name.lower()
    return {"characters": "character", "misc": "other", "tags": "", "url": "source"}.get(name, name)


def _append(tags: list[str], namespace: str, value: str) -> None:
    for tag in split_tags(value):
        tags.append(f"{namespace.lower()}:{tag}" if namespace else tag)


def _unique(tags: list[str]) -> str:
    seen: set[str] = set()
    kept = []
    for tag in tags:
        if tag.lower() not in seen:
            seen.add(tag.lower())
            kept.append(tag)
    return ", ".join(kept)


def tags_from_json(document: Any) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise PluginError("info.json does not hold a JSON object.")
    if isinstance(document.get("manga_info"), dict):
        document = document["manga_info"]
    tags: list[str] = []
    for key, values in document.items():
        if not _JSON_KEYS.match(str(key)):
            continue
        namespace = normalize_namespace(str(key))
        if isinstance(values, dict):
            for nested, nested_values in values.items():
                for tag in values_of(nested_values):
                    _append(tags, normalize_namespace(str(nested)), tag)
            continue
        for tag in values_of(values):
            _append(tags, namespace, trim_url(tag) if namespace == "source" else tag)
    if not tags:
        raise PluginError("No tags were found in info.json!")
    result: dict[str, Any] = {"tags": _unique(tags)}
    if isinstance(document.get("title"), str):
        result["title"] = document["title"]
    if isinstance(document.get("description"), str):
        result["summary"] = document["description"]
    return result


def tags_from_txt(text: str) -> dict[str, Any]:
    tags: list[str] = []
    title = summary = ""
    for line in text.splitlines():
        found = _TXT_LINE.match(line)
        if not found:
            continue
        namespace = normalize_namespace(found.group(1))
        value = found.group(2).strip()
        if not value:
            continue
        if namespace == "description":
            summary = value
        elif namespace == "title":
            title = value
        else:
            _append(tags, namespace, trim_url(value) if namespace == "source" else value)
    if not tags:
        raise PluginError("No tags were found in info.txt!")
    return {"title": title, "tags": _unique(tags), "summary": summary}


@implementer(IPlugin, IMetadataPlugin)
class HDoujinPlugin:
    info = PluginInfo(
        name="HDoujin",
        type="metadata",
        namespace="Hdoujinplugin",
        author="Pao, Squidy",
        version="0.7",
        description="Collects metadata embedded into your archives by HDoujin Downloader's JSON "
                    "or TXT files.",
        parameters=[],
    )

    async def get_tags(self, context: Any, params: Any) -> dict[str, Any]:
        found = await context.read_archive_file("info.json")
        if found is not None:
            return tags_from_json(parse_json(found))
        found = await context.read_archive_file("info.txt")
        if found is not None:
            return tags_from_txt(found.text())
        raise PluginError("No HDoujin metadata files found in this archive!")


plugin = HDoujinPlugin()
