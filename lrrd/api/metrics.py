"""``GET /api/info/metrics`` (LRR-NOTES §1.6, §9.10) and the request observer that feeds it.

The route is not in the contract: ``ApiRoot`` hands it over as an extra route, and it applies
the original's rules itself: absent (404) unless ``enablemetrics`` is on, then always behind
login (No-Fun's 401 body), whatever No-Fun mode says.
"""

from __future__ import annotations

import html
import os
import re
import time
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Protocol

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web.iweb import IRequest

from lrrd.api.area import area_app
from lrrd.api.auth import is_authenticated
from lrrd.api.errors import write_json
from lrrd.api.root import ACCESS_ATTR, NOFUN_BODY, OPERATION_ATTR
from lrrd.metrics import (
    CONTENT_TYPE, Exposition, RequestCounters, labels, process_families, process_stats,
    request_families,
)
from lrrd.store.config import ConfigStore, flag

if TYPE_CHECKING:
    from lrrd.search.index import SearchIndex

log = Logger()

METRICS_PATH = "/info/metrics"
NOT_FOUND_BODY = {"errors": [{"message": "Not Found.", "path": "/"}], "status": 404}
_STARTED_ATTR = "lrrd_started"
_TEMPLATE_PARAM = re.compile(r"\{([^}]+)\}")
#: Requests outside the contract that are still counted, by exact path.
_FIXED_ENDPOINTS = {b"/search": "/search", b"/api" + METRICS_PATH.encode(): "/api" + METRICS_PATH}


class JobStats(Protocol):
    """What the job gauges read (``lrrd.jobs.queue.JobQueue.stats``)."""

    async def stats(self) -> dict[str, int]: ...


class RequestObserver:
    """Times and counts every request the site finishes, by endpoint template and method.

    The site calls :meth:`started` when it routes a request and :meth:`finished` when the
    response is done. The cost is a clock read, two attribute lookups and a dict update, so the
    page path does not notice it.
    """

    def __init__(self, counters: RequestCounters,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.counters = counters
        self._clock = clock
        self._templates: dict[str, str] = {}

    def started(self, request: IRequest) -> None:
        setattr(request, _STARTED_ATTR, self._clock())

    def endpoint(self, request: IRequest) -> str | None:
        """``/api/archives/:id/page`` for a request matched to an operation; ``/search`` and
        the metrics route by their path; anything else (404s, OPTIONS) is not counted."""
        operation = getattr(request, OPERATION_ATTR, None)
        if operation is not None:
            template = self._templates.get(operation.path)
            if template is None:
                template = "/api" + _TEMPLATE_PARAM.sub(r":\1", operation.path)
                self._templates[operation.path] = template
            return template
        return _FIXED_ENDPOINTS.get(getattr(request, "path", b""))

    def finished(self, request: IRequest) -> None:
        began = getattr(request, _STARTED_ATTR, None)
        if began is None:
            return
        endpoint = self.endpoint(request)
        if endpoint is None:
            return
        length = request.getHeader(b"content-length")
        try:
            request_bytes = int(length) if length else 0
        except ValueError:
            request_bytes = 0
        method = request.method
        self.counters.add(
            endpoint,
            method.decode("latin-1") if isinstance(method, bytes) else str(method),
            self._clock() - began,
            request_bytes,
            int(getattr(request, "sentLength", 0) or 0),
        )


class MetricsApi:
    """The Prometheus scrape target of this process."""

    app = area_app()

    def __init__(self, counters: RequestCounters, config: ConfigStore,
                 server_info: Callable[[], Awaitable[dict[str, Any]]],
                 run_io: Callable[..., Deferred[Any]], jobs: JobStats | None = None,
                 index: SearchIndex | None = None) -> None:
        self._counters = counters
        self._config = config
        self._server_info = server_info
        self._run_io = run_io
        self._jobs = jobs
        self._index = index

    @app.route(METRICS_PATH, methods=["GET"], endpoint="getMetrics")
    async def metrics(self, request: IRequest) -> bytes:
        values = await self._config.get("enablemetrics")
        if not flag(values["enablemetrics"]):
            return write_json(request, NOT_FOUND_BODY, 404)
        settings = getattr(request, ACCESS_ATTR, None)
        if settings is None or not is_authenticated(request, settings):
            return write_json(request, NOFUN_BODY, 401)
        body = await self.render()
        request.setResponseCode(200)
        request.setHeader(b"content-type", CONTENT_TYPE)
        return body

    async def render(self) -> bytes:
        """The whole scrape. Each source that fails is logged and left out, as the original
        does, so one broken part never hides the rest."""
        out = Exposition()
        request_families(out, self._counters)
        try:
            stats = await self._run_io(process_stats)
        except Exception:  # noqa: BLE001 - reported, and the scrape goes on
            log.failure("Could not read process statistics")
        else:
            process_families(out, stats, os.getpid())
        try:
            info = await self._server_info()
        except Exception:  # noqa: BLE001
            log.failure("Could not read server information for metrics")
        else:
            server_families(out, info)
        if self._jobs is not None:
            try:
                job_stats = await self._jobs.stats()
            except Exception:  # noqa: BLE001
                log.failure("Could not read job statistics for metrics")
            else:
                job_families(out, job_stats)
        if self._index is not None:
            index_families(out, self._index)
        return out.render()


def server_families(out: Exposition, info: dict[str, Any]) -> None:
    """``lanraragi_server_info`` and the configuration gauges, from ``/api/info``'s values
    (whose name and motd are XML-escaped there; the labels carry the plain text)."""
    server = (("name", html.unescape(info["name"])), ("motd", html.unescape(info["motd"])),
              ("version", info["version"]), ("version_name", info["version_name"]),
              ("version_desc", info["version_desc"]))
    out.family("lanraragi_server_info", "gauge",
               "Server information with version and configuration details",
               [(labels(server), 1)])
    out.gauge("lanraragi_has_password", "Whether the server has password protection enabled",
              info["has_password"])
    out.gauge("lanraragi_debug_mode", "Whether the server is running in debug mode",
              info["debug_mode"])
    out.gauge("lanraragi_nofun_mode", "Whether the server is running in no-fun mode",
              info["nofun_mode"])
    out.gauge("lanraragi_server_resizes_images",
              "Whether the server resizes images for bandwidth optimization",
              info["server_resizes_images"])
    out.gauge("lanraragi_archives_per_page", "Number of archives displayed per page",
              info["archives_per_page"])
    out.gauge("lanraragi_archives_total", "Current number of archives in the library",
              info["total_archives"])
    out.family("lanraragi_pages_read_total", "counter",
               "Total number of pages read across all archives", [("", info["total_pages_read"])])
    out.gauge("lanraragi_cache_last_cleared_timestamp_seconds",
              "Unix timestamp when the search cache was last cleared",
              info["cache_last_cleared"], unit="seconds")


def job_families(out: Exposition, stats: dict[str, int]) -> None:
    """lrrd's job queue: jobs ever enqueued, finished and failed; live workers."""
    for name, key, help_text in (
        ("lrrd_jobs_enqueued_total", "enqueued_jobs", "Jobs enqueued since the database began"),
        ("lrrd_jobs_finished_total", "finished_jobs", "Jobs that finished"),
        ("lrrd_jobs_failed_total", "failed_jobs", "Jobs that failed"),
    ):
        out.family(name, "counter", help_text, [("", int(stats.get(key, 0)))])
    out.gauge("lrrd_job_workers", "Job workers heart-beating now", int(stats.get("workers", 0)))


def index_families(out: Exposition, index: SearchIndex) -> None:
    """lrrd's in-memory search index: loaded or not, its size, how long its load took."""
    lib = index.library
    out.gauge("lrrd_search_index_ready", "Whether the search index has loaded", lib is not None)
    if lib is None:
        return
    out.gauge("lrrd_search_index_archives", "Archives in the search index", len(lib.archives))
    out.gauge("lrrd_search_index_tankoubons", "Tankoubons in the search index", len(lib.tanks))
    out.gauge("lrrd_search_index_loaded_timestamp_seconds",
              "Unix time the search index was last loaded in full", lib.loaded_at,
              unit="seconds")
    load_seconds = getattr(index, "load_seconds", None)
    if load_seconds is not None:
        out.gauge("lrrd_search_index_load_seconds", "How long the last full load took",
                  float(load_seconds), unit="seconds")
