"""Hentai@Home: tags and title from the ``galleryinfo.txt`` the H@H downloader puts in archives."""

from __future__ import annotations

import re
from typing import Any

from twisted.plugin import IPlugin
from zope.interface import implementer

from lrrd.plugins.interfaces import IMetadataPlugin
from lrrd.plugins.model import PluginError, PluginInfo

_LINES = (
    ("title", re.compile(r"Title: (.*)")),
    ("upload_time", re.compile(r"Upload Time: (.*)")),
    ("uploader", re.compile(r"Uploaded By: (.*)")),
    ("tags", re.compile(r"Tags: (.*)")),
)


def tags_from_galleryinfo(text: str) -> dict[str, Any]:
    """Fields in file order up to the ``Tags:`` line (the comments after it are free text)."""
    tags: list[str] = []
    title = ""
    for line in text.splitlines():
        for field, pattern in _LINES:
            found = pattern.search(line)
            if not found:
                continue
            value = found.group(1).strip()
            if field == "title":
                title = value
            elif field == "tags":
                tags.append(value)
                return {"tags": ", ".join(tag for tag in tags if tag), "title": title}
            else:
                tags.append(f"{field}:{value}")
    raise PluginError("No tags were found in galleryinfo.txt!")


@implementer(IPlugin, IMetadataPlugin)
class HentaiAtHomePlugin:
    info = PluginInfo(
        name="Hentai@Home",
        type="metadata",
        namespace="hentaiathome",
        author="lily",
        version="0.2",
        description="Collects metadata embedded into your archives by HentaiAtHome Downloader's "
                    "galleryinfo txt files.",
        parameters=[],
    )

    async def get_tags(self, context: Any, params: Any) -> dict[str, Any]:
        found = await context.read_archive_file("galleryinfo.txt")
        if found is None:
            raise PluginError("No galleryinfo.txt file found in this archive!")
        return tags_from_galleryinfo(found.text())


plugin = HentaiAtHomePlugin()
