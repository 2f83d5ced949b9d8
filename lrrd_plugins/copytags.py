"""Tag Copier: adds the tags written in its setting to the archive (the original's ``copytags``)."""

from __future__ import annotations

from typing import Any

from twisted.plugin import IPlugin
from zope.interface import implementer

from lrrd.plugins.interfaces import IMetadataPlugin
from lrrd.plugins.model import PluginInfo


@implementer(IPlugin, IMetadataPlugin)
class CopyTagsPlugin:
    info = PluginInfo(
        name="Tag Copier",
        type="metadata",
        namespace="copytags",
        author="Difegue",
        version="2.1",
        description="Apply custom tag modifications.",
        parameters=[{"type": "string", "desc": "Tags to copy, separated by commas."}],
    )

    async def get_tags(self, context: Any, params: Any) -> dict[str, Any]:
        return {"tags": params.text(0)}


plugin = CopyTagsPlugin()
