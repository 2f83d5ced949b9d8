"""The plugins area: list plugins by type, run one now (nothing saved), or queue ``run_plugin``.

Bodies copy the original's (LRR-NOTES §9.8): an unknown plugin is a 200 with ``success: 0`` and
no ``type``, exactly as its ``/api/plugins/use`` answers.
"""

from __future__ import annotations

from typing import Any

from twisted.web.iweb import IRequest

from lrrd.api.area import area_app, arg
from lrrd.api.errors import ApiError, write_json
from lrrd.jobs.queue import InvalidJob
from lrrd.plugins.tasks import plugin_result

__all__ = ["PluginsApi"]


class PluginsApi:
    """``GET /plugins/{type}``, ``POST /plugins/use``, ``POST /plugins/queue``."""

    app = area_app()

    def __init__(self, runner: Any, jobs: Any) -> None:
        self._runner = runner
        self._jobs = jobs

    @app.route("/plugins/<kind>", methods=["GET"], endpoint="listPlugins")
    async def list_plugins(self, request: IRequest, kind: str) -> bytes:
        """Every plugin of that type (``all`` for every type), hash parameters as arrays."""
        plugins = self._runner.registry.of_type(kind)
        return write_json(request, [plugin.info.to_json() for plugin in plugins])

    @app.route("/plugins/use", methods=["POST"], endpoint="usePluginSync")
    async def use_plugin(self, request: IRequest) -> bytes:
        kind, result = await self._runner.use_plugin(
            arg(request, "plugin") or "", arg(request, "id"), arg(request, "arg"))
        body = {"operation": "use_plugin", **plugin_result(kind, result)}
        if kind is None:
            del body["type"]
        return write_json(request, body)

    @app.route("/plugins/queue", methods=["POST"], endpoint="usePluginAsync")
    async def queue_plugin(self, request: IRequest) -> bytes:
        """Queue ``run_plugin`` [namespace, id, arg] at the requested priority (default 0)."""
        operation = "queue_plugin_exec"
        try:
            priority = int(arg(request, "priority") or 0)
            job = await self._jobs.enqueue(
                "run_plugin", [arg(request, "plugin") or "", arg(request, "id"), arg(request, "arg")],
                priority=priority)
        except (InvalidJob, ValueError) as exc:
            raise ApiError(400, str(exc), operation=operation, envelope="api_response") from None
        return write_json(request, {"operation": operation, "success": 1, "job": job})
