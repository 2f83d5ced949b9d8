"""The tasks every lrrd process knows, by the original's names; later features add theirs here.

Web-only processes build this registry too, so ``POST /api/minion/{name}/queue`` accepts exactly
the names some worker can run.
"""

from __future__ import annotations

from typing import Any

from lrrd.jobs.maintenance import clean_temp_folder, temp_folder_size
from lrrd.jobs.registry import TaskRegistry
from lrrd.jobs.worker import JobContext


async def cleantemp(job: JobContext) -> dict[str, Any]:
    """Empty the temp folder (uploads, downloads, extracted pages), as ``DELETE /api/tempfolder``
    does, for schedulers that prefer a job."""
    temp_dir = job.services.settings.temp_dir
    error = await job.run_in_thread(clean_temp_folder, temp_dir)
    size = await job.run_in_thread(temp_folder_size, temp_dir)
    return {"success": 0 if error else 1, "error": error, "newsize": size}


async def tank_thumbnail_task(job: JobContext, thumbdir: Any = None, tank_id: Any = "") -> str:
    """The cover of a tankoubon (``TA/<id>.<fmt>``) from its first archive, queued when the
    archive list changes or a client asks with ``no_fallback``. The original passes its thumbnail
    folder first; lrrd's own setting wins, so a job queued by another node still lands right."""
    from lrrd.library.thumbnails import make_tank_cover

    found = await job.services.tankoubons.get(str(tank_id), page=0, pagesize=1)
    if found is None:
        raise ValueError(f"{tank_id} doesn't exist in the database!")
    tank, _ = found
    if not tank.archives:
        return f"{tank_id} holds no archives; no cover made."
    return str(await make_tank_cover(job.services, tank.id, tank.archives[0]))

def builtin_registry() -> TaskRegistry:
    """A fresh registry holding lrrd's tasks."""
    registry = TaskRegistry()
    registry.register("cleantemp", cleantemp)
    registry.register("tank_thumbnail_task", tank_thumbnail_task)
    from lrrd.library.jobs import register_library_tasks

    register_library_tasks(registry)
    from lrrd.library.database import register_database_tasks

    register_database_tasks(registry)
    from lrrd.plugins.tasks import register_plugin_tasks

    register_plugin_tasks(registry)
    return registry
