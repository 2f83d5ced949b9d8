"""The search endpoints over real HTTP: shapes as the golden files, 204 before the index is
loaded, read-your-writes, the DataTables ``/search``, listings from the index, bad input."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from twisted.internet.defer import Deferred

from lrrd.store.archives import ArchiveStore, archive_json
from lrrd.store.config import ConfigStore
from lrrd.store.redis import DB
from tests.fixtures.app import ApiTestCase
from tests.fixtures.search_library import A, B, C, D, E, F, K, build_library

GOLDEN = Path(__file__).resolve().parent.parent.parent / "shared" / "spec" / "golden"


def d(coro: Any) -> Deferred[Any]:
    return Deferred.fromCoroutine(coro)


class _SearchCase(ApiTestCase):
    """The fixture library behind a real site; the index started unless ``start_index`` is off."""

    start_index = True

    def setUp(self) -> Deferred[None]:
        result = super().setUp()
        result.addCallback(lambda _: d(self._fixtures()))
        return result

    async def _fixtures(self) -> None:
        self.fx = await build_library(self.redis, Path(self.mktemp()))
        self.T = self.fx.tank
        self.index = self.services().search_index
        if self.start_index:
            self.index.startService()
            self.addCleanup(self.index.stopService)
            await self.index.when_loaded()

    async def search(self, path: str = "/api/search", **params: Any) -> Any:
        query = ("?" + urlencode(params)) if params else ""
        return await self.get(path + query)


class SearchApiTests(_SearchCase):
    """``/api/search*`` and friends with the index loaded."""

    def test_search_shape(self) -> Deferred[None]:
        """Archive and tank JSON in title order; F (file missing) counted but not sent."""
        async def run() -> None:
            response = await self.search()
            self.assertEqual(response.status, 200)
            self.assertEqual(response.header("content-type"), "application/json;charset=UTF-8")
            body = response.json
            self.assertEqual(list(body), ["data", "recordsFiltered", "recordsTotal"])
            self.assertEqual((body["recordsTotal"], body["recordsFiltered"]), (8, 7))
            self.assertEqual([x["arcid"] for x in body["data"]], [A, B, C, self.T, E, D])
            fields = await ArchiveStore(self.redis).get(A)
            self.assertEqual(body["data"][0], archive_json(A, fields))
            tank = body["data"][3]
            self.assertEqual(tank["extension"], ".tank")
            self.assertEqual(tank["archive_count"], 2)
            self.assertEqual(tank["pagecount"], 17)
            self.assertTrue(tank["isnew"])
            self.assertEqual(tank["summary"], "Tankoubon containing: Tank Part One,Tank Part Two")
            # Same key set and types as the original's answer.
            golden = json.loads((GOLDEN / "get_search_random.json").read_text())["data"][0]
            self.assertEqual(sorted(golden), sorted(body["data"][0]))
            self.assertEqual({k: type(v) for k, v in golden.items()},
                             {k: type(v) for k, v in body["data"][0].items()})
        return d(run())

    def test_params(self) -> Deferred[None]:
        """filter, category, sortby, order, flags and groupby_tanks as LRR-NOTES §4.1 reads them."""
        async def run() -> None:
            async def ids(**params: Any) -> list[str]:
                response = await self.search("/api/search/ids", **params)
                self.assertEqual(response.status, 200, response.body)
                return response.json["data"]
            self.assertEqual(await ids(filter="artist:aoi"), [B, C, F])
            self.assertEqual(await ids(filter="artist:aoi", order="desc"), [F, C, B])
            self.assertEqual(await ids(sortby="lastread"), [B, self.T, A])
            self.assertEqual(await ids(category=self.fx.static), [A, self.T])
            self.assertEqual(await ids(category="SET_0000000000"), await ids())
            self.assertEqual(await ids(newonly="true"), [C, self.T, D])
            self.assertEqual(await ids(newonly="1"), await ids())  # only "true" is true
            self.assertEqual(await ids(untaggedonly="true"), [E, D])
            self.assertEqual(await ids(hidecompleted="true"), [B, C, self.T, E, D, F])
            self.assertNotIn(self.T, await ids(groupby_tanks="false"))
            self.assertEqual(await ids(sortby="no such namespace"),
                             [K, self.T, A, B, C, D, E, F])
        return d(run())

    def test_start_and_pagesize(self) -> Deferred[None]:
        """start is an offset into pagesize-long pages; -1 gives everything."""
        async def run() -> None:
            await ConfigStore(self.redis).set({"pagesize": "2"})
            page = (await self.search("/api/search/ids", start="2")).json
            self.assertEqual((page["data"], page["recordsFiltered"]), ([C, self.T], 7))
            everything = (await self.search("/api/search/ids", start="-1")).json
            self.assertEqual(len(everything["data"]), 7)
        return d(run())

    def test_bad_input(self) -> Deferred[None]:
        """Unbalanced quotes, huge filters, bad start or category: the original's answer or a
        400 JSON, never a 500 or a hang."""
        async def run() -> None:
            response = await self.search(filter='"blue sky')
            self.assertEqual((response.status, len(response.json["data"])), (200, 1))
            started = time.monotonic()
            response = await self.search(filter=",".join(f"-t{i}" for i in range(10_000)))
            self.assertIn(response.status, (200, 400))
            json.loads(response.body)
            self.assertLess(time.monotonic() - started, 20)
            # As many terms as fit in Twisted's 16 KB request line.
            response = await self.search(filter=",".join(f"-t{i}" for i in range(1_200)))
            self.assertEqual(response.status, 200)
            response = await self.search(start="abc")
            self.assertEqual(response.status, 400)
            self.assertEqual(response.json, json.loads(
                (GOLDEN / "err_bad_request_search_start.json").read_text()))
            response = await self.search(start="-5")
            self.assertEqual(response.status, 400)
            self.assertEqual(response.json["errors"][0]["path"], "/start")
            response = await self.search(category="SET_1")
            self.assertEqual(response.status, 400)
            self.assertEqual((await self.search(sortby="((")).status, 200)
            self.assertEqual((await self.search(filter="\x00%00[^\\")).status, 200)
        return d(run())

    def test_read_your_writes(self) -> Deferred[None]:
        """A tag written through the API is found by the very next search."""
        async def run() -> None:
            response = await self.request("PUT", f"/api/archives/{D}/metadata", auth=True,
                                          data={"tags": "fresh tag"})
            self.assertEqual(response.status, 200, response.body)
            found = await self.search("/api/search/ids", filter="fresh tag")
            self.assertEqual(found.json["data"], [D])
        return d(run())

    def test_random(self) -> Deferred[None]:
        """count distinct results of the filtered search; recordsTotal is how many were picked."""
        async def run() -> None:
            body = (await self.search("/api/search/random", count="2", filter="blue sky")).json
            self.assertEqual(body["recordsTotal"], 2)
            self.assertEqual(len({x["arcid"] for x in body["data"]}), 2)
            self.assertTrue({x["arcid"] for x in body["data"]} <= {A, B, C})
            body = (await self.search("/api/search/random", filter="zzz nothing")).json
            self.assertEqual(body, {"data": [], "recordsTotal": 0})
        return d(run())

    def test_clear_cache(self) -> Deferred[None]:
        """DELETE /api/search/cache needs the key and moves LRR_SEARCHCACHE.created."""
        async def run() -> None:
            search = self.redis.db(DB.SEARCH)
            await search.hset("LRR_SEARCHCACHE", "created", "5")
            self.assertEqual((await self.request("DELETE", "/api/search/cache")).status, 401)
            response = await self.request("DELETE", "/api/search/cache", auth=True)
            self.assertEqual(response.json, json.loads(
                (GOLDEN / "delete_search_cache.json").read_text()))
            self.assertGreater(int(await search.hget("LRR_SEARCHCACHE", "created")), 5)
        return d(run())

    def test_datatables(self) -> Deferred[None]:
        """GET /search: DataTables params in, draw echoed, NEW_ONLY in the tags column."""
        async def run() -> None:
            params = {"draw": "3", "start": "0", "search[value]": "blue",
                      "order[0][column]": "1", "order[0][dir]": "desc",
                      "columns[0][name]": "title", "columns[1][name]": "artist",
                      "columns[2][name]": "tags", "columns[2][search][value]": ""}
            body = (await self.get("/search?" + urlencode(params))).json
            self.assertEqual(list(body), ["data", "draw", "recordsFiltered", "recordsTotal"])
            self.assertEqual(body["draw"], "3")
            self.assertEqual([x["arcid"] for x in body["data"]], [C, A, B, E])
            params["columns[2][search][value]"] = "NEW_ONLY"
            body = (await self.get("/search?" + urlencode(params))).json
            self.assertEqual([x["arcid"] for x in body["data"]], [C])
            await ConfigStore(self.redis).set({"nofunmode": "1", "enablecors": "1"})
            response = await self.get("/search")
            self.assertEqual(response.status, 401)
            self.assertEqual(response.header("access-control-allow-origin"), "*")
            response = await self.get("/search", headers=self.auth_headers())
            self.assertEqual(response.status, 200)
        return d(run())

    def test_listings_from_index(self) -> Deferred[None]:
        """/api/archives (files that exist) and /untagged come from the index."""
        async def run() -> None:
            listed = (await self.get("/api/archives", auth=True)).json
            ids = [x["arcid"] for x in listed]
            self.assertEqual(ids, sorted(set(ids)))
            self.assertNotIn(F, ids)
            self.assertEqual(len(ids), 8)
            fields = await ArchiveStore(self.redis).get(B)
            self.assertIn(archive_json(B, fields), listed)
            untagged = (await self.get("/api/archives/untagged", auth=True)).json
            self.assertEqual(untagged, sorted([D, E]))
        return d(run())


class NotLoadedTests(_SearchCase):
    """Before the index has loaded: 204, as the original before its first stats build."""

    start_index = False

    def test_not_ready(self) -> Deferred[None]:
        """Search and ids answer 204 with no body; random an empty list; DataTables -1s."""
        async def run() -> None:
            for path in ("/api/search", "/api/search/ids"):
                response = await self.get(path)
                self.assertEqual((response.status, response.body), (204, b""))
            body = (await self.get("/api/search/random")).json
            self.assertEqual(body, {"data": [], "recordsTotal": 0})
            body = (await self.get("/search?draw=1")).json
            self.assertEqual((body["recordsTotal"], body["recordsFiltered"]), (-1, -1))
            # Listings fall back to reading Redis.
            self.assertEqual(len((await self.get("/api/archives", auth=True)).json), 8)
        return d(run())
