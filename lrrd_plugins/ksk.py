"""Koushoku / Koharu: tags and title from ``koushoku.yaml`` or ``info.yaml`` inside the archive.

Two layouts exist: Koushoku's capitalised keys (``Title``, ``Tags``, ``Artist``, ``Parody``,
``Magazine``, ``URL``) and Koharu's lower-case namespace lists (``title``, ``source``, ``general``,
``artist``, ``circle``, ``parody``, ``male``, ...). YAML is read with PyYAML's safe loader: no
tags, no object construction, whatever the file says.
"""

from __future__ import annotations

from typing import Any

import yaml
from twisted.plugin import IPlugin
from zope.interface import implementer

from lrrd.plugins.helpers import join_tags, prefixed, values_of
from lrrd.plugins.interfaces import IMetadataPlugin
from lrrd.plugins.model import PluginError, PluginInfo

#: Koharu list keys whose namespace differs from the key; ``general`` holds plain tags.
_KOHARU_NAMESPACES = {"general": "", "circle": "group"}
_KOHARU_SKIP = {"title", "source"}


def load_yaml(text: str, name: str) -> Any:
    try:
        return yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError) as exc:  # nested past the composer's depth, too
        raise PluginError(f"{name} is not valid YAML: {exc}") from None


def tags_from_ksk(document: Any, assume_english: bool) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise PluginError("The KSK metadata file does not hold a mapping.")
    if "Title" in document or "Tags" in document or "URL" in document:
        return _koushoku(document, assume_english)
    return _koharu(document, assume_english)


def _koushoku(document: dict[str, Any], assume_english: bool) -> dict[str, Any]:
    tags = (values_of(document.get("Tags"))
            + prefixed("artist", values_of(document.get("Artist")))
            + prefixed("series", values_of(document.get("Parody")))
            + prefixed("magazine", values_of(document.get("Magazine"))))
    if assume_english:
        tags.append("language:english")
    tags += prefixed("source", values_of(document.get("URL")))
    return _result(tags, document.get("Title"))


def _koharu(document: dict[str, Any], assume_english: bool) -> dict[str, Any]:
    tags: list[str] = []
    for key, values in document.items():
        key = str(key)
        if key in _KOHARU_SKIP or not isinstance(values, list):
            continue
        tags += prefixed(_KOHARU_NAMESPACES.get(key, key), values_of(values))
    if assume_english and "language" not in document:
        tags.append("language:english")
    tags += prefixed("source", values_of(document.get("source")))
    return _result(tags, document.get("title"))


def _result(tags: list[str], title: Any) -> dict[str, Any]:
    result: dict[str, Any] = {"tags": join_tags(tags)}
    if isinstance(title, (str, int, float)) and str(title).strip():
        result["title"] = str(title).strip()
    return result


@implementer(IPlugin, IMetadataPlugin)
class KskPlugin:
    info = PluginInfo(
        name="Koushoku.yaml",
        type="metadata",
        namespace="kskyamlmeta",
        author="siliconfeces",
        version="0.003",
        description="Collects metadata embedded into your archives as koushoku.yaml/info.yaml "
                    "files (Koushoku and Koharu layouts).",
        parameters=[{"type": "bool", "desc": "Assume english"}],
    )

    async def get_tags(self, context: Any, params: Any) -> dict[str, Any]:
        found = await context.read_archive_file("koushoku.yaml") or \
            await context.read_archive_file("info.yaml")
        if found is None:
            raise PluginError("No KSK metadata file found in archive")
        document = await context.run_blocking(load_yaml, found.text(), found.name)
        return tags_from_ksk(document, params.flag(0))


plugin = KskPlugin()
