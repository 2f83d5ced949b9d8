"""The library's Minion tasks, by the original's names and arguments (LRR-NOTES §6):
``thumbnail_task``, ``page_thumbnails``, ``regen_all_thumbnails`` and ``handle_upload``.

The original passes its thumbnail folder as the first argument of some tasks; lrrd always uses
its own setting, so a job queued by another node (or by an old client) still writes to the right
place. Failures are reported as the original does, ``{"errors": [...]}``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, DeferredSemaphore
from twisted.logger import Logger

from lrrd.library.thumbnails import (
    ThumbnailError,
    cover_candidates,
    make_cover,
    make_page_thumbnail,
    make_page_thumbnails,
    make_tank_cover,
    thumbnail_settings,
)
from lrrd.library.uploads import UploadRefused, handle_incoming_file

if TYPE_CHECKING:
    from lrrd.jobs.registry import TaskRegistry
    from lrrd.jobs.worker import JobContext

__all__ = ["register_library_tasks"]

log = Logger()

#: Covers made at once by ``regen_all_thumbnails`` (each reads in the I/O pool, encodes in the
#: image pool, so this only bounds how many archives are open).
REGEN_CONCURRENCY = 4


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def _page_number(value: Any) -> int:
    try:
        return int(str(value).strip() or 0)
    except ValueError:
        raise ValueError(f"not a page number: {value!r}") from None


async def thumbnail_task(job: JobContext, thumbdir: Any = None, arcid: Any = "",
                         page: Any = 0) -> str:
    """Page 0: the cover (HQ, sets thumbhash); page N: that page's thumbnail. Result: its path."""
    from lrrd.jobs.queue import JobFailed

    number = _page_number(page)
    try:
        if number == 0:
            path = await make_cover(job.services, str(arcid))
        else:
            path = await make_page_thumbnail(job.services, str(arcid), number)
    except (ThumbnailError, ValueError) as exc:
        message = f"Error building thumbnail: {exc}"
        log.warn("{message}", message=message)
        raise JobFailed({"errors": [message]}) from None
    return str(path)


async def page_thumbnails(job: JobContext, arcid: Any = "", force: Any = 0) -> dict[str, Any]:
    """Every page thumbnail of an archive; notes ``{"<page>":"processed","total_pages":N,
    "id":id}`` as each is done, then clears the archive's ``thumbjob``."""
    arcid = str(arcid)
    services = job.services

    async def progress(page: int, total: int) -> None:
        await job.note(**{str(page): "processed", "total_pages": total, "id": arcid})

    try:
        errors = await make_page_thumbnails(services, arcid, force=_truthy(force),
                                            progress=progress)
    except ThumbnailError as exc:
        errors = [str(exc)]
    finally:
        if await services.archives.exists(arcid):
            await services.archives.delete_fields(arcid, "thumbjob")
    return {"errors": errors}


def _missing(paths: list[list[Path]]) -> list[bool]:
    return [not any(path.exists() for path in candidates) for candidates in paths]


async def regen_all_thumbnails(job: JobContext, thumbdir: Any = None,
                               force: Any = 0) -> dict[str, Any]:
    """Every archive cover that is missing (all of them with ``force``), then every tank cover."""
    services = job.services
    forced = _truthy(force)
    thumb_root = services.settings.thumb_dir
    fmt = (await thumbnail_settings(services)).fmt
    ids = await services.archives.ids()
    if forced:
        todo = ids
    else:
        flags = await services.pools.run_io(
            _missing, [cover_candidates(thumb_root, arcid, fmt) for arcid in ids])
        todo = [arcid for arcid, missing in zip(ids, flags) if missing]
    log.info("Regenerating {n} of {total} covers (force={force})", n=len(todo), total=len(ids),
             force=forced)
    errors: list[str] = []
    limit = DeferredSemaphore(REGEN_CONCURRENCY)

    async def one(arcid: str) -> None:
        try:
            await make_cover(services, arcid)
        except ThumbnailError as exc:
            errors.append(str(exc))

    await _all([limit.run(Deferred.fromCoroutine, one(arcid)) for arcid in todo])

    tanks = getattr(services, "tankoubons", None)
    if tanks is not None:
        for tank_id in await tanks.ids():
            from lrrd.images import tank_cover_path

            target = tank_cover_path(thumb_root, tank_id, fmt)
            if not forced and await services.pools.run_io(target.exists):
                continue
            found = await tanks.get(tank_id, page=0, pagesize=1)
            if found is None or not found[0].archives:
                continue
            try:
                await make_tank_cover(services, tank_id, found[0].archives[0])
            except ThumbnailError as exc:
                errors.append(str(exc))
    return {"errors": errors}


async def _all(deferreds: list[Deferred[Any]]) -> None:
    for d in deferreds:
        await d


async def handle_upload(job: JobContext, file: Any = "", catid: Any = None) -> dict[str, Any]:
    """A file already in the temp folder (the web upload page) goes through
    ``handle_incoming_file``. Only files under the temp folder are accepted: the job's argument
    comes from whoever queued it, and this task moves the file."""
    services = job.services
    temp_root = os.path.realpath(services.settings.temp_dir)
    path = os.path.realpath(str(file))
    category = str(catid) if catid else None
    if os.path.commonpath([temp_root, path]) != temp_root or not os.path.isfile(path):
        return {"success": 0, "id": None, "category": category, "title": "",
                "message": f"{file} is not a file in the temp folder."}
    name = os.path.basename(path)
    try:
        result = await handle_incoming_file(services, Path(path), name, category_id=category)
    except UploadRefused as refused:
        return {"success": 0, "id": refused.arcid, "category": category, "title": name,
                "message": refused.message}
    return {"success": 1, "id": result.arcid, "category": category, "title": result.title,
            "message": result.message}


def register_library_tasks(registry: TaskRegistry) -> None:
    registry.register("thumbnail_task", thumbnail_task)
    registry.register("page_thumbnails", page_thumbnails)
    registry.register("regen_all_thumbnails", regen_all_thumbnails)
    registry.register("handle_upload", handle_upload)
