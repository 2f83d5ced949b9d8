"""The minion area: follow a job (``/api/minion/{id}``, ``/detail``) and queue one by task name.

Every client follows uploads, downloads, thumbnail work and plugin runs through these, so the
bodies copy the original's exactly; an unknown job id is the original's 400 envelope (where the
original itself crashes with a 500 on ``/api/minion/{id}``).
"""

from __future__ import annotations

import json

from twisted.web.iweb import IRequest

from lrrd.api.area import area_app, arg
from lrrd.api.errors import ApiError, write_json
from lrrd.jobs.queue import InvalidJob, JobQueue, UnknownTask

NO_JOB = "No job with this ID."


def _job_id(text: str, operation: str) -> int:
    """The contract has already checked the id is an integer; this guards direct callers."""
    try:
        return int(text)
    except ValueError:
        raise ApiError(400, NO_JOB, operation=operation, envelope="api_response") from None


class MinionApi:
    """Job status, job detail and job queueing over the process's ``JobQueue``."""

    app = area_app()

    def __init__(self, jobs: JobQueue) -> None:
        self._jobs = jobs

    @app.route("/minion/<jobid>", methods=["GET"], endpoint="minionJobStatus")
    async def job_status(self, request: IRequest, jobid: str) -> bytes:
        status = await self._jobs.status(_job_id(jobid, "minion_job_status"))
        if status is None:
            raise ApiError(400, NO_JOB, operation="minion_job_status", envelope="api_response")
        return write_json(request, status)

    @app.route("/minion/<jobid>/detail", methods=["GET"], endpoint="minionJobDetail")
    async def job_detail(self, request: IRequest, jobid: str) -> bytes:
        info = await self._jobs.info(_job_id(jobid, "minion_job_detail"))
        if info is None:
            raise ApiError(400, NO_JOB, operation="minion_job_detail", envelope="api_response")
        return write_json(request, info)

    @app.route("/minion/<jobname>/queue", methods=["POST"], endpoint="queueMinionJob")
    async def queue_job(self, request: IRequest, jobname: str) -> bytes:
        operation = "queue_minion_job"
        try:
            args = json.loads(arg(request, "args") or "")
        except (ValueError, RecursionError):  # RecursionError: nested past the decoder's depth
            # The original dies in decode_json here (a 500); a client error deserves a 400.
            raise ApiError(400, "The args parameter must be a JSON array.", operation=operation,
                           envelope="api_response") from None
        if not isinstance(args, list):
            raise ApiError(400, "The args parameter must be a JSON array.", operation=operation,
                           envelope="api_response")
        try:
            # The original's `param('priority') || 0`; the contract has checked it is an integer.
            priority = int(arg(request, "priority") or 0)
            job = await self._jobs.enqueue(jobname, args, priority=priority)
        except UnknownTask:
            raise ApiError(400, f"No task named {jobname} is available on this server.",
                           operation=operation, envelope="api_response") from None
        except (InvalidJob, ValueError) as exc:
            raise ApiError(400, str(exc), operation=operation, envelope="api_response") from None
        return write_json(request, {"operation": operation, "success": 1, "job": job})
