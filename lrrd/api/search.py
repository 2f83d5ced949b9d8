"""The search area: ``/api/search``, ``/ids``, ``/random``, ``DELETE /cache``, the DataTables
``GET /search`` outside ``/api``, and the index-backed bodies of ``/api/archives`` and
``/api/archives/untagged``.

Results come from the in-memory index (``lrrd.search``); each request first waits for the index
to have applied every write published before it (``SearchIndex.sync``), so a client that wrote
and then searches sees its write, whichever lrrd process it talks to.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Callable, Sequence

from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.web.iweb import IRequest

from lrrd.api.area import area_app, arg
from lrrd.api.auth import has_valid_key
from lrrd.api.errors import (
    JSON_TYPE, ApiError, ValidationFailed, api_response, json_bytes, write_json,
)
from lrrd.api.root import NOFUN_BODY, ApiRoot, AsyncJsonResource
from lrrd.search.engine import (
    SearchQuery, SearchTooExpensive, ids_of, page_json, pick_random, run_search, search_slots,
)
from lrrd.search.index import Library, SearchIndex, iter_archives
from lrrd.store.archives import ArchiveStore
from lrrd.store.config import ConfigStore, as_int

if TYPE_CHECKING:
    from lrrd.services import Services

log = Logger()

#: How many archive files one io-pool task stats for ``/api/archives``.
STAT_BATCH = 4096


def files_exist(paths: Sequence[str]) -> list[bool]:
    """Which paths are files (blocking: run it in the io pool)."""
    out = []
    isfile = os.path.isfile
    for path in paths:
        try:
            out.append(bool(path) and isfile(path))
        except (OSError, ValueError):
            out.append(False)
    return out


def _true(value: str | None) -> bool:
    """The original's test for the search flags: the raw value is exactly ``"true"``."""
    return value == "true"


def _start(raw: str | None) -> int:
    """``start`` is an offset; -1 means everything. The root has checked it is an integer."""
    if not raw:
        return 0
    try:
        start = int(raw.strip())
    except ValueError:
        raise ValidationFailed([("Expected integer - got string.", "/start")]) from None
    if start < -1:
        raise ValidationFailed([(f"{start} < minimum(-1)", "/start")])
    return start


def _list_body(parts: Sequence[bytes]) -> bytes:
    return b"[" + b",".join(parts) + b"]"


class SearchService:
    """What the handlers share: the index, page size, file checks and the reactor."""

    def __init__(self, index: SearchIndex, config: ConfigStore,
                 run_io: Callable[..., Deferred[Any]], reactor: Any) -> None:
        self.index = index
        self.config = config
        self.run_io = run_io
        self.reactor = reactor

    async def library(self) -> Library | None:
        """The index after it applied every published write, or None while it loads."""
        if self.index.library is None:
            return None
        await self.index.sync()
        return self.index.library

    async def pagesize(self) -> int:
        values = await self.config.get("pagesize")
        size = as_int(values["pagesize"], 100)
        return size if size > 0 else 100

    async def pause(self) -> None:
        await deferLater(self.reactor, 0, lambda: None)

    async def exists(self, paths: Sequence[str]) -> list[bool]:
        if not paths:
            return []
        return await self.run_io(files_exist, list(paths))

    async def run(self, lib: Library, query: SearchQuery) -> Any:
        try:
            return await run_search(lib, query, self.pause)
        except SearchTooExpensive as exc:
            raise ApiError(400, str(exc), operation="search") from None

    async def json_parts(self, lib: Library, slots: Sequence[int]) -> list[bytes]:
        return await page_json(lib, slots, self.exists)

    # -- the listing endpoints served from the index ----------------------------------------------
    async def all_archives_body(self) -> bytes | None:
        """``/api/archives``: every archive whose file exists, in id order (None: not loaded)."""
        lib = await self.library()
        if lib is None:
            return None
        entries = list(iter_archives(lib))
        batches = [entries[i:i + STAT_BATCH] for i in range(0, len(entries), STAT_BATCH)]
        results = await gatherResults(
            [self.run_io(files_exist, [e.file for e in batch]) for batch in batches])
        parts = [entry.json for batch, flags in zip(batches, results)
                 for entry, ok in zip(batch, flags) if ok]
        return _list_body(parts)

    async def untagged_body(self) -> bytes | None:
        """``/api/archives/untagged``: the ids of ``LRR_UNTAGGED``, sorted (None: not loaded)."""
        lib = await self.library()
        if lib is None:
            return None
        return json_bytes(sorted(ids_of(lib, [s for s in lib.untagged if s in lib.archives])))


def search_service(services: Services) -> SearchService:
    """The search area's collaborators, taken from the process's services."""
    return SearchService(services.search_index, services.config, services.pools.run_io,
                         services.reactor)


def read_query(request: IRequest, pagesize: int) -> SearchQuery:
    """The parameters of ``/api/search`` and ``/api/search/ids`` (LRR-NOTES §4.1)."""
    grouped = arg(request, "groupby_tanks")
    return SearchQuery(
        filter=arg(request, "filter") or "",
        category=arg(request, "category") or "",
        start=_start(arg(request, "start")),
        sortby=arg(request, "sortby") or "",
        desc=arg(request, "order") == "desc",
        newonly=_true(arg(request, "newonly")),
        untaggedonly=_true(arg(request, "untaggedonly")),
        hidecompleted=_true(arg(request, "hidecompleted")),
        grouped=True if grouped is None else _true(grouped),
        pagesize=pagesize,
    )


def _no_content(request: IRequest) -> bytes:
    """The original's answer before its first stats build (a 204 has no body)."""
    request.setResponseCode(204)
    return b""


def _results_body(request: IRequest, total: int, filtered: int, parts: Sequence[bytes],
                  extra: bytes = b"") -> bytes:
    request.setResponseCode(200)
    request.setHeader(b"content-type", JSON_TYPE)
    return (b'{"data":' + _list_body(parts) + extra
            + b',"recordsFiltered":%d,"recordsTotal":%d}' % (filtered, total))


class SearchApi:
    """The four ``/api/search`` operations."""

    app = area_app()

    def __init__(self, search: SearchService, archives: ArchiveStore) -> None:
        self._search = search
        self._archives = archives

    @app.route("/search", methods=["GET"], endpoint="searchArchives")
    async def search(self, request: IRequest) -> bytes:
        lib = await self._search.library()
        if lib is None:
            return _no_content(request)
        query = read_query(request, await self._search.pagesize())
        outcome = await self._search.run(lib, query)
        parts = await self._search.json_parts(lib, outcome.slots)
        return _results_body(request, outcome.total, outcome.filtered, parts)

    @app.route("/search/ids", methods=["GET"], endpoint="searchArchiveIds")
    async def search_ids(self, request: IRequest) -> bytes:
        lib = await self._search.library()
        if lib is None:
            return _no_content(request)
        query = read_query(request, await self._search.pagesize())
        outcome = await self._search.run(lib, query)
        return write_json(request, {"data": ids_of(lib, outcome.slots),
                                    "recordsFiltered": outcome.filtered,
                                    "recordsTotal": outcome.total})

    @app.route("/search/random", methods=["GET"], endpoint="searchRandomArchives")
    async def random(self, request: IRequest) -> bytes:
        """A full title-sorted search, then ``count`` (default 5) distinct ids at random."""
        count = as_int(arg(request, "count"), 0) or 5
        lib = await self._search.library()
        if lib is None:
            return write_json(request, {"data": [], "recordsTotal": 0})
        grouped = arg(request, "groupby_tanks")
        query = SearchQuery(
            filter=arg(request, "filter") or "",
            category=arg(request, "category") or "",
            start=-1,
            newonly=_true(arg(request, "newonly")),
            untaggedonly=_true(arg(request, "untaggedonly")),
            hidecompleted=_true(arg(request, "hidecompleted")),
            grouped=True if grouped is None else _true(grouped),
        )
        try:
            slots = await search_slots(lib, query, self._search.pause)
        except SearchTooExpensive as exc:
            raise ApiError(400, str(exc), operation="get_random_archives") from None
        picked = pick_random(slots, count)
        parts = await self._search.json_parts(lib, picked)
        request.setHeader(b"content-type", JSON_TYPE)
        return b'{"data":' + _list_body(parts) + b',"recordsTotal":%d}' % len(picked)

    @app.route("/search/cache", methods=["DELETE"], endpoint="discardSearchCache")
    async def discard_cache(self, request: IRequest) -> bytes:
        """Results are never cached here; the stamp moves so clients watching it refresh."""
        await self._archives.invalidate_search_cache()
        return write_json(request, api_response("clear_cache"))


class DataTablesSearch(AsyncJsonResource):
    """``GET /search``: the web UI's DataTables endpoint, behind the API's CORS and No-Fun gates."""

    isLeaf = True

    def __init__(self, api: ApiRoot, search: SearchService) -> None:
        super().__init__()
        self._api = api
        self._search = search

    async def _serve(self, request: IRequest) -> None:
        settings = await self._api.admit(request)
        method = request.method.upper()
        if method == b"OPTIONS":
            request.setHeader(b"Allow", b"OPTIONS, GET")
            request.setHeader(b"content-length", b"0")
            request.finish()
            return
        if settings.nofunmode and not has_valid_key(request, settings):
            self._finish(request, write_json(request, NOFUN_BODY, 401))
            return
        if request.postpath not in ([], [b""]) or method not in (b"GET", b"HEAD"):
            self._finish(request, write_json(request, {
                "errors": [{"message": "Not Found.", "path": "/"}], "status": 404}, 404))
            return
        self._finish(request, await self._datatables(request))

    async def _datatables(self, request: IRequest) -> bytes:
        """Params of DataTables (LRR-NOTES §4.7); the page size is lrrd's, not ``length``."""
        draw = arg(request, "draw")
        sort_column = arg(request, "order[0][column]")
        sortby = arg(request, f"columns[{sort_column}][name]") if sort_column is not None else None
        category, newonly, untagged = "", False, False
        i = 0
        while arg(request, f"columns[{i}][name]"):
            if arg(request, f"columns[{i}][name]") == "tags":
                for value in (arg(request, f"columns[{i}][search][value]") or "").split(","):
                    if value == "NEW_ONLY":
                        newonly = True
                    elif value == "UNTAGGED_ONLY":
                        untagged = True
                    elif value and not category:
                        category = value
            i += 1
        try:
            start = int((arg(request, "start") or "0").strip())
        except ValueError:
            start = 0  # Perl reads a non-number as 0
        start = max(start, -1)
        grouped = arg(request, "grouptanks")
        lib = await self._search.library()
        if lib is None:
            # No 204 here: the original hands DataTables its -1/-1 "not ready" counts.
            return write_json(request, {"data": [], "draw": draw, "recordsFiltered": -1,
                                        "recordsTotal": -1})
        query = SearchQuery(
            filter=arg(request, "search[value]") or "",
            category=category,
            start=start,
            sortby=sortby or "",
            desc=arg(request, "order[0][dir]") == "desc",
            newonly=newonly,
            untaggedonly=untagged,
            hidecompleted=_true(arg(request, "hidecompleted")),
            grouped=True if grouped is None else _true(grouped),
            pagesize=await self._search.pagesize(),
        )
        outcome = await self._search.run(lib, query)
        parts = await self._search.json_parts(lib, outcome.slots)
        return _results_body(request, outcome.total, outcome.filtered, parts,
                             extra=b',"draw":' + json_bytes(draw))
