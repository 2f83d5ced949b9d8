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


def builtin_registry() -> TaskRegistry:
    """A fresh registry holding lrrd's tasks."""
    registry = TaskRegistry()
    registry.register("cleantemp", cleantemp)
    return registry
