"""The twisted.web ``Site`` that serves lrrd: the resource tree, optional access log, JSON 400s.

Twisted answers malformed requests (oversized headers, bad request lines) itself with a bare
``400 Bad Request``; lrrd's channel answers those with a JSON body like every other error.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping
from urllib.parse import unquote

from twisted.web import http, resource, server

from lrrd.api.contract import Contract
from lrrd.api.errors import json_bytes
from lrrd.api.root import ApiRoot, SiteRoot
from lrrd.services import Services

_BAD_REQUEST = json_bytes({"errors": [{"message": "Bad Request.", "path": "/"}], "status": 400})


class JsonErrorChannel(http.HTTPChannel):
    """An HTTP channel whose protocol-level rejections carry a JSON body.

    The client may still be sending (an oversized header, say); closing at once would reset the
    connection and destroy the answer in flight, so lrrd half-closes and discards what follows
    until the client hangs up or the channel's idle timeout ends it.
    """

    _rejected = False

    def _respondToBadRequestAndDisconnect(self) -> None:
        if self._rejected:
            return
        self._rejected = True
        transport = self.transport
        if transport is None:
            return
        transport.write(
            b"HTTP/1.1 400 Bad Request\r\n"
            b"Content-Type: application/json;charset=UTF-8\r\n"
            b"Content-Length: " + str(len(_BAD_REQUEST)).encode("ascii") + b"\r\n"
            b"Connection: close\r\n\r\n" + _BAD_REQUEST
        )
        close_write = getattr(transport, "loseWriteConnection", None)
        if close_write is None:
            self.loseConnection()
        else:
            close_write()

    def lineLengthExceeded(self, line: bytes) -> None:
        # Twisted would just drop the connection on a header line over 16 KB.
        self._respondToBadRequestAndDisconnect()

    def dataReceived(self, data: bytes) -> None:
        if not self._rejected:
            super().dataReceived(data)

    def lineReceived(self, line: bytes) -> None:
        if not self._rejected:
            super().lineReceived(line)

    def rawDataReceived(self, data: bytes) -> None:
        if not self._rejected:
            super().rawDataReceived(data)


def _cookie_value(value: str) -> str:
    """Quoted when it holds a separator, as Mojo::Cookie writes values (a prefix has no ``"``)."""
    return f'"{value}"' if any(c in value for c in ",; ") else value


class LrrdSite(server.Site):
    """A ``Site`` whose access log can be switched off: it costs 30-40% of throughput.

    With an ``observer`` (``lrrd.api.metrics.RequestObserver``) every request is timed from
    routing to its last byte and counted for ``/api/info/metrics``.

    With a ``base_url`` (``/lrr``, LANraragi's ``base_url_path``) every answer carries the
    ``lrr_baseurl`` cookie, and a request that still carries the prefix (a proxy that does not
    strip it) is routed as if it did not, as Mojolicious does once its base path is set.
    """

    def __init__(self, root: resource.Resource, access_log: bool = False,
                 observer: Any = None, base_url: str = "", **kwargs: Any) -> None:
        super().__init__(root, **kwargs)
        self.access_log = access_log
        self.observer = observer
        self.base_url = base_url
        #: The prefix as Twisted splits and unquotes a request path, to compare with postpath.
        self._base_segments = [unquote(part).encode("utf-8")
                               for part in base_url[1:].split("/")] if base_url else []
        self._base_cookie = _cookie_value(base_url).encode("utf-8")
        # Site's stubs type this as its HTTP/2-negotiating factory; a plain channel class is
        # what it calls all the same.
        self.protocol = JsonErrorChannel  # type: ignore[method-assign,assignment]

    def getResourceFor(self, request: Any) -> resource.Resource:
        if self.observer is not None:
            self.observer.started(request)
        if self.base_url:
            request.addCookie(b"lrr_baseurl", self._base_cookie, path=b"/", sameSite="lax")
            self._strip_base(request)
        return super().getResourceFor(request)

    def _strip_base(self, request: Any) -> None:
        """Drop the prefix from a path that starts with it, whole segments only (``/lrrx`` is
        not under ``/lrr``); ``path`` loses it too, so per-path code (metrics) sees no prefix."""
        count = len(self._base_segments)
        if request.postpath[:count] != self._base_segments:
            return
        del request.postpath[:count]
        # Twisted's postpath is the raw path split on "/" and unquoted per segment, so the raw
        # path has as many segments to drop.
        request.path = b"/" + b"/".join(request.path[1:].split(b"/")[count:])

    def log(self, request: Any) -> None:
        # Called by Request.finish for every answered request.
        if self.observer is not None:
            self.observer.finished(request)
        if self.access_log:
            super().log(request)


def build_api_areas(services: Services) -> list[Any]:
    """Every API area app, wired to the stores and domain services it needs."""
    from lrrd.api.archives import ArchivesApi
    from lrrd.api.categories import CategoriesApi
    from lrrd.api.database import DatabaseApi
    from lrrd.api.download import DownloadApi
    from lrrd.api.minion import MinionApi
    from lrrd.api.misc import MiscApi
    from lrrd.api.opds import OpdsApi
    from lrrd.api.plugins import PluginsApi
    from lrrd.api.search import SearchApi, search_service
    from lrrd.api.shinobu import ShinobuApi
    from lrrd.api.stamps import StampsApi
    from lrrd.api.upload import UploadApi
    from lrrd.api.tankoubons import TankoubonsApi
    from lrrd.jobs.queue import JobQueue
    from lrrd.library.thumbnails import make_cover

    jobs = JobQueue.from_services(services)
    search = search_service(services)
    base_url = services.settings.base_url
    archives = ArchivesApi(
        services.archives, services.config, services.locks, services.pools, services.readers,
        str(services.settings.thumb_dir), categories=services.categories,
        tankoubons=services.tankoubons, jobs=jobs,
        thumbnails=lambda arcid, page: make_cover(services, arcid, page),
        clock=services.reactor, search=search, base_url=base_url,
    )
    return [
        MiscApi(services.redis, temp_dir=services.settings.temp_dir,
                run_io=services.pools.run_io, jobs=jobs, thumb_dir=services.settings.thumb_dir),
        MinionApi(jobs),
        archives,
        OpdsApi(search, services.archives, services.categories, services.config,
                services.readers, services.pools, pages=archives, base_url=base_url),
        SearchApi(search, services.archives),
        StampsApi(services.stamps, services.locks),
        ShinobuApi(services.watcher),
        UploadApi(services),
        CategoriesApi(services.categories, services.archives, services.tankoubons,
                      services.locks),
        TankoubonsApi(services, jobs),
        DatabaseApi(services, jobs),
        PluginsApi(services.plugins, jobs),
        DownloadApi(jobs),
    ]


def build_site(
    services: Services,
    access_log: bool = False,
    areas: Iterable[Any] | None = None,
    extra_children: Mapping[bytes, resource.Resource] | None = None,
    is_ready: Callable[[], bool] = lambda: True,
) -> LrrdSite:
    from lrrd.api.metrics import METRICS_PATH, MetricsApi, RequestObserver
    from lrrd.api.misc import MiscApi
    from lrrd.jobs.queue import JobQueue
    from lrrd.metrics import RequestCounters

    counters = RequestCounters()
    metrics = MetricsApi(counters, services.config, MiscApi(services.redis).server_info,
                         services.pools.run_io, jobs=JobQueue.from_services(services),
                         index=services.search_index)
    api = ApiRoot(
        Contract.load(),
        build_api_areas(services) if areas is None else areas,
        services.config.access_settings,
        is_ready,
        extra_routes={("GET", METRICS_PATH): metrics.app.resource()},
    )
    from lrrd.api.search import DataTablesSearch, search_service

    children = {b"search": DataTablesSearch(api, search_service(services)), **(extra_children or {})}
    site = LrrdSite(SiteRoot(api, children), access_log=access_log,
                    observer=RequestObserver(counters), base_url=services.settings.base_url)
    site.displayTracebacks = False
    return site
