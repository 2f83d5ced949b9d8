"""The OPDS area: ``/api/opds`` (the catalog), ``/api/opds/{id}`` (one entry) and
``/api/opds/{id}/pse`` (PSE page streaming), LRR-NOTES §5.

The catalog page comes from the in-memory search index, as the original's comes from its
search (empty filter, title order, no grouping), so a 10k-archive library costs one sort-free
slice and a stat of the page's files rather than a Redis read per archive. Feeds are built by
``lrrd.opds``; pages are served by the archives area's own page code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, Sequence

from twisted.internet.defer import Deferred
from twisted.web.iweb import IRequest

import lrrd
from lrrd.api.area import area_app, arg
from lrrd.api.errors import ApiError
from lrrd.library.reader import ArchiveError, ArchiveMissing, ArchiveReaders
from lrrd.opds import Facet, Links, OpdsArchive, Server, catalog_feed, entry_document
from lrrd.pools import Pools
from lrrd.search.engine import SearchQuery
from lrrd.store.archives import ARCHIVE_ID_RE, ArchiveStore, as_int, as_text
from lrrd.store.categories import CategoryStore
from lrrd.store.config import ConfigStore
from lrrd.store.redis import gather

if TYPE_CHECKING:
    from lrrd.api.search import SearchService
    from lrrd.search.index import ArchiveEntry

#: Mojolicious's ``xml`` type, which the original answers with (no charset parameter).
XML_TYPE = b"application/xml"
NO_SUCH_ID = "This ID doesn't exist on the server."
FILE_MISSING = "The archive file is missing on the server."


class PageServer(Protocol):
    """The archives area's page serving (``ArchivesApi.serve_page``)."""

    def serve_page(self, request: IRequest, arcid: str, name: str,
                   label: bytes = b"page") -> Any: ...


def _start(raw: str | None) -> int:
    """``start`` as Perl reads ``param('start') || 0``: a number or 0.

    The spec does not declare ``start`` here, so junk is not a 400. A negative offset would be
    the search's "everything" (-1) and render the whole library in one feed: it reads as 0.
    """
    try:
        return max(0, int((raw or "0").strip()))
    except ValueError:
        return 0


def _from_entry(entry: ArchiveEntry) -> OpdsArchive:
    return OpdsArchive(entry.id, entry.title, entry.tags, entry.isnew, entry.pagecount,
                       entry.progress, entry.lastreadtime, entry.file)


def _from_fields(arcid: str, fields: dict[str, Any]) -> OpdsArchive:
    """An entry from the archive's Redis hash (the title falls back to the file name)."""
    title = as_text(fields.get("title"))
    return OpdsArchive(
        arcid,
        title if title.strip() else as_text(fields.get("name")),
        as_text(fields.get("tags")),
        as_text(fields.get("isnew")) == "true",
        as_int(fields.get("pagecount")),
        as_int(fields.get("progress")),
        as_int(fields.get("lastreadtime")),
        as_text(fields.get("file")),
    )


def _xml(request: IRequest, body: bytes) -> bytes:
    request.setResponseCode(200)
    request.setHeader(b"content-type", XML_TYPE)
    return body


class OpdsApi:
    """The three OPDS operations, over the search index, the stores and the page server."""

    app = area_app()

    def __init__(self, search: SearchService, archives: ArchiveStore,
                 categories: CategoryStore, config: ConfigStore, readers: ArchiveReaders,
                 pools: Pools, pages: PageServer, base_url: str = "") -> None:
        self._search = search
        #: The reverse proxy's sub-path: every link of a feed starts with it (LRR-NOTES §5).
        self._base_url = base_url
        self._archives = archives
        self._categories = categories
        self._config = config
        self._readers = readers
        self._pools = pools
        self._pages = pages

    def _links(self, request: IRequest) -> Links:
        return Links(prefix=self._base_url, key=arg(request, "key") or None)

    async def _server(self) -> tuple[Server, int]:
        """The feed's metadata and the page size (one config read)."""
        values = await self._config.get("htmltitle", "motd", "pagesize")
        size = as_int(values["pagesize"]) or 100
        return Server(values["htmltitle"], values["motd"], lrrd.LRR_VERSION), size

    async def _page_archives(self, category: str, start: int,
                             pagesize: int) -> list[OpdsArchive]:
        """One page of the title-sorted, ungrouped search; archives whose file is gone are left
        out (so a page can be short), as the original does. Empty until the index is loaded,
        as the original's search is before its first stats build."""
        lib = await self._search.library()
        if lib is None:
            return []
        outcome = await self._search.run(lib, SearchQuery(
            filter="", category=category, start=start, sortby="title", desc=False,
            grouped=False, pagesize=pagesize))
        entries = [lib.archives[slot] for slot in outcome.slots if slot in lib.archives]
        present: Sequence[bool] = await self._search.exists([e.file for e in entries])
        return [_from_entry(e) for e, ok in zip(entries, present) if ok]

    @app.route("/opds", methods=["GET"], endpoint="getOpdsCatalog")
    async def catalog(self, request: IRequest) -> bytes:
        category = arg(request, "category") or ""
        start = _start(arg(request, "start"))
        (server, pagesize), categories = await gather(
            Deferred.fromCoroutine(self._server()),
            Deferred.fromCoroutine(self._categories.list_all()))
        archives = await self._page_archives(category, start, pagesize)
        facets = [
            Facet(cat["id"], cat["name"], None if cat["search"] else len(cat["archives"]),
                  cat["id"] == category)
            for cat in categories
        ]
        return _xml(request, catalog_feed(server, archives, facets, self._links(request), start,
                                          category))

    @app.route("/opds/<string:arcid>", methods=["GET"], endpoint="getOpdsItem")
    async def item(self, request: IRequest, arcid: str) -> bytes:
        """One entry; an unknown id is the archives area's 400, a missing file a 404 (the
        original renders an entry of empty fields for both).

        The path takes any text, and a tankoubon's or category's key is no hash of archive
        fields: only an archive id is looked up at all."""
        fields = await self._archives.get(arcid) if ARCHIVE_ID_RE.match(arcid) else None
        if not fields or not as_text(fields.get("file")):
            raise ApiError(400, NO_SUCH_ID, operation="serve_opds_item", envelope="api_response")
        archive = _from_fields(arcid, fields)
        present = await self._search.exists([archive.file])
        if not present[0]:
            raise ApiError(404, FILE_MISSING, operation="serve_opds_item",
                           envelope="api_response")
        return _xml(request, entry_document(archive, self._links(request)))

    @app.route("/opds/<string:arcid>/pse", methods=["GET"], endpoint="getOpdsPage")
    async def page(self, request: IRequest, arcid: str) -> Any:
        """Page ``page`` (1-based; 1 when absent, below 1 or past the end) served as
        ``/api/archives/{id}/page`` serves it, resizing included."""
        operation = "serve_opds_page"
        number = as_int(arg(request, "page")) or 1
        path = ""
        if ARCHIVE_ID_RE.match(arcid):  # a tank's or category's key is not an archive's hash
            path = as_text((await self._archives.get_fields(arcid, "file")).get("file"))
        if not path:
            raise ApiError(400, NO_SUCH_ID, operation=operation, envelope="api_response")
        try:
            names = await self._pools.run_io(self._readers.pages, arcid, path)
        except ArchiveMissing:
            raise ApiError(404, FILE_MISSING, operation=operation,
                           envelope="api_response") from None
        except ArchiveError as exc:
            raise ApiError(400, str(exc), operation=operation, envelope="api_response") from None
        if not names:
            raise ApiError(404, "This archive has no pages.", operation=operation,
                           envelope="api_response")
        if number < 1 or number > len(names):
            number = 1
        answer = self._pages.serve_page(request, arcid, names[number - 1], label=b"pse")
        if isinstance(answer, Deferred):
            answer = await answer
        return answer
