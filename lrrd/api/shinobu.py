"""The shinobu area: the file watcher's status and its stop, restart and rescan operations.

The original runs Shinobu as a child process and reports its pid; lrrd's watcher lives inside an
lrrd process (whichever holds the watcher lease), so ``pid``/``new_pid`` are this process's pid.
"""

from __future__ import annotations

import os

from twisted.web.iweb import IRequest

from lrrd.api.area import area_app
from lrrd.api.errors import api_response, write_json
from lrrd.watcher import Watcher


class ShinobuApi:
    """Status and control of the file watcher, from any process sharing the Redis."""

    app = area_app()

    def __init__(self, watcher: Watcher) -> None:
        self._watcher = watcher

    @app.route("/shinobu", methods=["GET"], endpoint="shinobuStatus")
    async def status(self, request: IRequest) -> bytes:
        alive = await self._watcher.status()
        return write_json(request, {"operation": "shinobu_status", "success": 1,
                                    "is_alive": 1 if alive else 0, "pid": os.getpid()})

    @app.route("/shinobu/stop", methods=["POST"], endpoint="shinobuStop")
    async def stop(self, request: IRequest) -> bytes:
        await self._watcher.stop()
        return write_json(request, api_response("shinobu_stop"))

    @app.route("/shinobu/restart", methods=["POST"], endpoint="shinobuRestart")
    async def restart(self, request: IRequest) -> bytes:
        alive = await self._watcher.restart()
        return write_json(request, {"operation": "shinobu_restart", "success": 1 if alive else 0,
                                    "new_pid": os.getpid()})

    @app.route("/shinobu/rescan", methods=["POST"], endpoint="shinobuRescan")
    async def rescan(self, request: IRequest) -> bytes:
        alive = await self._watcher.rescan()
        return write_json(request, {"operation": "shinobu_rescan", "success": 1 if alive else 0,
                                    "new_pid": os.getpid()})
