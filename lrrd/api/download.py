"""``POST /api/download_url``: queue the ``download_url`` job (LRR-NOTES §8.2).

The spec sends ``url`` and ``catid`` as multipart form fields; query parameters are accepted too,
as older clients send them. The job does the work (``lrrd.download``); this only queues it with the
original's priority (1) and attempts (5).
"""

from __future__ import annotations

from typing import Any

from twisted.web.iweb import IRequest

from lrrd.api.area import area_app, arg
from lrrd.api.errors import ApiError, write_json

__all__ = ["DownloadApi"]

OPERATION = "download_url"


class DownloadApi:
    """Queues URL downloads."""

    app = area_app()

    def __init__(self, jobs: Any) -> None:
        self._jobs = jobs

    @app.route("/download_url", methods=["POST"], endpoint="downloadUrl")
    async def download_url(self, request: IRequest) -> bytes:
        url = (arg(request, "url") or "").strip()
        if not url:
            raise ApiError(400, "No URL specified.", operation=OPERATION, envelope="api_response")
        catid = arg(request, "catid") or None
        job = await self._jobs.enqueue(OPERATION, [url, catid], priority=1, attempts=5)
        return write_json(request, {"operation": OPERATION, "url": url, "category": catid,
                                    "success": 1, "job": job})
