"""Date Added: a ``date_added:<unix time>`` tag, now or from the file's modification time."""

from __future__ import annotations

import re
import time
from typing import Any

from twisted.plugin import IPlugin
from zope.interface import implementer

from lrrd.plugins.interfaces import IMetadataPlugin
from lrrd.plugins.model import PluginInfo

_YES = re.compile(r"^(yes|true)$", re.IGNORECASE)
_NO = re.compile(r"^(no|false)$", re.IGNORECASE)


@implementer(IPlugin, IMetadataPlugin)
class DateAddedPlugin:
    info = PluginInfo(
        name="Date Added",
        type="metadata",
        namespace="DateAddedPlugin",
        author="Utazukin",
        version="0.2",
        description='Adds the unix time stamp of the date the archive was added as a tag under '
                    'the "date_added" namespace.',
        parameters=[{"type": "bool", "desc": "Use file modified time instead of current time."}],
        oneshot_arg="Use file modified time (yes/true), or use current time (no/false). <br/>"
                    "Leaving blank uses the global setting (default: current time)",
    )

    async def get_tags(self, context: Any, params: Any) -> dict[str, Any]:
        oneshot = (context.oneshot_param or "").strip()
        use_file_time = bool(_YES.match(oneshot)) or (params.flag(0) and not _NO.match(oneshot))
        when = await context.file_mtime() if use_file_time else int(time.time())
        return {"tags": f"date_added:{when}"}


plugin = DateAddedPlugin()
