"""The ``run_plugin`` Minion task (LRR-NOTES §6): ``use_plugin`` in a worker, with the original's
result ``{type, success, error, data}``. Like ``/api/plugins/use`` it saves nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lrrd.jobs.registry import TaskRegistry
    from lrrd.jobs.worker import JobContext

__all__ = ["plugin_result", "register_plugin_tasks", "run_plugin"]


def plugin_result(kind: str | None, result: dict[str, Any]) -> dict[str, Any]:
    """The shape shared by ``run_plugin``'s result and ``/api/plugins/use`` (which adds
    ``operation`` and drops ``type`` when the plugin is unknown)."""
    return {"type": kind, "success": 0 if "error" in result else 1,
            "error": result.get("error"), "data": result}


async def run_plugin(job: JobContext, namespace: Any = "", arcid: Any = None,
                     arg: Any = None) -> dict[str, Any]:
    """Args ``[namespace, id, arg]`` as the original queues them."""
    kind, result = await job.services.plugins.use_plugin(
        str(namespace or ""), None if arcid is None else str(arcid),
        None if arg is None else str(arg))
    return plugin_result(kind, result)


def register_plugin_tasks(registry: TaskRegistry) -> None:
    from lrrd.download import register_download_tasks

    registry.register("run_plugin", run_plugin)
    register_download_tasks(registry)
