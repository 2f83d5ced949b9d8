"""Tankoubons over real HTTP and a real Redis: LRR-NOTES §9.2, the sorted-set layout, the search
database upkeep, and bodies as the golden files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from lrrd.api.errors import xml_escape
from lrrd.store.archives import archive_json
from lrrd.store.redis import DB
from lrrd.store.tankoubons import (
    Tank, TankoubonStore, parse_metadata, tank_json, unified_index, unified_tags,
)
from tests.fixtures.app import ApiTestCase
from tests.fixtures.archives import make_cbz

A = "a" * 40
B = "b" * 40
C = "c" * 40
MISSING = "f" * 40


def d(coro: Any) -> Deferred[Any]:
    return Deferred.fromCoroutine(coro)


def op(operation: str, error: str = "", message: str = "") -> dict[str, Any]:
    """A ``render_api_response`` body."""
    return {"operation": operation, "error": xml_escape(error), "success": 0 if error else 1,
            "successMessage": xml_escape(message)}


class TankRulesTests(SynchronousTestCase):
    """The pure rules: metadata parsing, unified tags, tank JSON."""

    def test_parse_metadata(self) -> None:
        """Prefixes are stripped; of several members for a field the last one wins."""
        self.assertEqual(parse_metadata(["progress_0", "progress_7", "tags_a,b", "summary_",
                                         "name_My_Tank"]),
                         {"progress": "7", "tags": "a,b", "summary": "", "name": "My_Tank"})

    def test_unified_tags(self) -> None:
        """Own tags first; members' tags deduplicated case-insensitively without the own ones;
        only the max date_added/timestamp is imputed, and not over an own date tag."""
        own, imputed = unified_tags(" Artist:X , mine", [
            "artist:x,Action,date_added:100,timestamp:5",
            "action,date_added:200, horror ,timestamp:9",
            None,
        ])
        self.assertEqual(own, ["Artist:X", "mine"])
        self.assertEqual(imputed, ["Action", "horror", "date_added:200", "timestamp:9"])
        _, imputed = unified_tags("date_added:1", ["date_added:100,x"])
        self.assertEqual(imputed, ["x"])
        self.assertEqual(unified_index("Mine", ["A,b"]), {"mine", "a", "b"})

    def test_tank_json(self) -> None:
        """build_tank_json: sums, max, any-new, titles in summary, archive_count of all ids."""
        members = [
            archive_json(A, {"name": "a", "title": "One", "tags": "x,date_added:5", "isnew": "false",
                             "file": "/l/a.cbz", "pagecount": "3", "arcsize": "10",
                             "lastreadtime": "50"}),
            archive_json(B, {"name": "b", "title": "Two", "tags": "X,y", "isnew": "true",
                             "file": "/l/b.cbz", "pagecount": "4", "arcsize": "20"}),
        ]
        tank = Tank(id="TANK_0000000001", name="T", tags="own", progress=3,
                    archives=[A, B, C])
        self.assertEqual(tank_json(tank, members), {
            "arcid": "TANK_0000000001", "title": "T", "filename": "", "tags": "own,x,y,date_added:5",
            "summary": "Tankoubon containing: One,Two", "isnew": True, "extension": ".tank",
            "progress": 3, "pagecount": 7, "lastreadtime": 50, "size": 30, "archive_count": 3,
        })
        self.assertIs(tank_json(tank.as_json(), [], archive_count=0)["isnew"], False)


class TankApiTests(ApiTestCase):
    """The eleven tankoubon operations and the store behind them."""

    def setUp(self) -> Deferred[None]:
        result = super().setUp()
        result.addCallback(lambda _: d(self._fixtures()))
        return result

    async def _fixtures(self) -> None:
        self.store = TankoubonStore(self.redis)
        services = self.services()
        self.archives = services.archives
        content = Path(services.settings.content)
        for arcid, name, pages in ((A, "Blue", 3), (B, "Red", 2), (C, "Green", 4)):
            path = make_cbz(content / f"{name}.cbz", pages)
            await self.archives.create(arcid, str(path), path.stat().st_size)
            await self.archives.set_fields(arcid, {"pagecount": pages})
        await self.archives.set_tags(A, "artist:kuro,mystery,date_added:100")
        await self.archives.set_tags(B, "Mystery,slice of life,date_added:200")
        await self.archives.set_tags(C, "horror")

    async def put(self, path: str, **kwargs: Any) -> Any:
        return await self.request("PUT", path, auth=True, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> Any:
        return await self.request("DELETE", path, auth=True, **kwargs)

    async def create(self, name: str, **params: str) -> str:
        response = await self.put("/api/tankoubons", params={"name": name, **params})
        self.assertEqual(response.status, 200, response.body)
        return response.json["tankoubon_id"]

    async def update(self, tank: str, body: Any) -> Any:
        return await self.put(f"/api/tankoubons/{tank}", data=json.dumps(body).encode(),
                              headers={"Content-Type": "application/json"})

    async def zset(self, tank: str) -> list[tuple[str, float]]:
        return await self.redis.db(DB.MAIN).zrange(tank, 0, -1, withscores=True)

    async def search(self, command: str, *args: Any, **kwargs: Any) -> Any:
        return await getattr(self.redis.db(DB.SEARCH), command)(*args, **kwargs)

    async def grouped(self) -> set[str]:
        return set(await self.search("smembers", "LRR_TANKGROUPED"))

    # -- create, get, list -----------------------------------------------------------------------
    def test_create(self) -> Deferred[None]:
        """Create writes the four metadata members, the title, invalidates; no name is a 400."""
        async def run() -> None:
            await self.search("hset", "LRR_SEARCHCACHE", "q", "x")
            response = await self.put("/api/tankoubons", params={"name": "Tmp Tank"})
            tank = response.json["tankoubon_id"]
            self.assertEqual((response.status, response.json), (200, {
                "operation": "create_tankoubon", "success": 1, "tankoubon_id": tank}))
            self.assertRegex(tank, r"^TANK_\d{10}$")
            self.assertEqual(await self.zset(tank), [("progress_0", -3.0), ("tags_", -2.0),
                                                     ("summary_", -1.0), ("name_Tmp Tank", 0.0)])
            self.assertIn("tmp tank\0" + tank, await self.search("zrange", "LRR_TITLES", 0, -1))
            self.assertEqual(await self.search("hkeys", "LRR_SEARCHCACHE"), ["created"])
            self.assertNotIn(tank, await self.grouped())
            other = await self.create("Tmp Tank")
            self.assertNotEqual(other, tank)
            composed = await self.create("Cafe\u0301 ")
            self.assertEqual((await self.get(f"/api/tankoubons/{composed}")).json["name"],
                             "Caf\u00e9 ")
            self.assertIn("caf\u00e9\0" + composed,
                          await self.search("zrange", "LRR_TITLES", 0, -1))
            for params in ({}, {"name": ""}):
                bad = await self.put("/api/tankoubons", params=params)
                self.assertEqual((bad.status, bad.json),
                                 (400, op("create_tankoubon", "Tankoubon name not specified.")))
        return d(run())

    def test_create_with_tankid(self) -> Deferred[None]:
        """tankid renames an existing tank (one name member, title moved) or creates that id."""
        async def run() -> None:
            tank = await self.create("Old Name")
            await self.update(tank, {"metadata": {"summary": "kept"}})
            renamed = await self.put("/api/tankoubons", data={"name": "New Name", "tankid": tank})
            self.assertEqual(renamed.json["tankoubon_id"], tank)
            self.assertEqual(await self.zset(tank), [("progress_0", -3.0), ("tags_", -2.0),
                                                     ("summary_kept", -1.0),
                                                     ("name_New Name", 0.0)])
            titles = await self.search("zrange", "LRR_TITLES", 0, -1)
            self.assertIn("new name\0" + tank, titles)
            self.assertNotIn("old name\0" + tank, titles)
            fixed = await self.create("Fixed", tankid="TANK_1000000000")
            self.assertEqual(fixed, "TANK_1000000000")
            self.assertEqual((await self.get("/api/tankoubons/TANK_1000000000")).json["name"],
                             "Fixed")
            bad = await self.put("/api/tankoubons", params={"name": "x", "tankid": "SET_1"})
            self.assertEqual((bad.status, bad.json),
                             (400, op("create_tankoubon", "SET_1 is not a valid tankoubon ID.")))
        return d(run())

    def test_get_and_list(self) -> Deferred[None]:
        """GET is the tank object; the list pages by index (absent 0, -1 all), filtered = total."""
        async def run() -> None:
            tanks = [await self.create(f"T{i}", tankid=f"TANK_100000000{i}") for i in range(3)]
            await self.put(f"/api/tankoubons/{tanks[0]}/{A}")
            await self.put(f"/api/tankoubons/{tanks[0]}/{B}")
            response = await self.get(f"/api/tankoubons/{tanks[0]}")
            self.assertEqual((response.status, response.json), (200, {
                "archives": [A, B], "id": tanks[0], "name": "T0", "progress": 0, "summary": "",
                "tags": ""}))
            await self.services().config.set({"pagesize": "2"})
            first = (await self.get("/api/tankoubons")).json
            self.assertEqual(([t["id"] for t in first["result"]], first["total"],
                              first["filtered"]), (tanks[:2], 3, 3))
            second = (await self.get("/api/tankoubons", params={"page": "1"})).json
            self.assertEqual([t["id"] for t in second["result"]], tanks[2:])
            everything = (await self.get("/api/tankoubons", params={"page": "-1"})).json
            self.assertEqual(([t["id"] for t in everything["result"]], everything["filtered"]),
                             (tanks, 3))
            # Quirk kept: a tank object lists only the first page of its archives.
            await self.put(f"/api/tankoubons/{tanks[0]}/{C}")
            self.assertEqual((await self.get(f"/api/tankoubons/{tanks[0]}")).json["archives"],
                             [A, B])
            self.assertEqual(first["result"][0]["archives"], [A, B])
            beyond = (await self.get("/api/tankoubons", params={"page": "7"})).json
            self.assertEqual((beyond["result"], beyond["total"]), ([], 3))
            for missing in ("TANK_0000000000", "x", "TANK_00000000001"):
                bad = await self.get(f"/api/tankoubons/{missing}")
                self.assertEqual((bad.status, bad.json),
                                 (400, op("get_tankoubon", "The given tankoubon does not exist.")))
            bad_page = await self.get("/api/tankoubons", params={"page": "x"})
            self.assertEqual(bad_page.status, 400)
        return d(run())

    def test_full(self) -> Deferred[None]:
        """/full adds full_data (members whose file exists), pages the archives by pagesize."""
        async def run() -> None:
            tank = await self.create("Golden Tank")
            for arcid in (A, B, C):
                await self.put(f"/api/tankoubons/{tank}/{arcid}")
            response = await self.get(f"/api/tankoubons/{tank}/full")
            self.assertEqual(response.status, 200)
            body = response.json
            self.assertEqual((body["total"], body["filtered"]), (3, 3))
            self.assertEqual(body["result"]["archives"], [A, B, C])
            expected = [archive_json(arcid, await self.archives.get(arcid)) for arcid in (A, B, C)]
            self.assertEqual(body["result"]["full_data"], expected)
            self.assertEqual(set(body["result"]), {"archives", "full_data", "id", "name",
                                                   "progress", "summary", "tags"})
            await self.services().config.set({"pagesize": "2"})
            page1 = (await self.get(f"/api/tankoubons/{tank}/full", params={"page": "1"})).json
            self.assertEqual((page1["total"], page1["filtered"], page1["result"]["archives"]),
                             (3, 1, [C]))
            # A member whose file is gone is left out of full_data but stays in archives.
            Path(as_path(await self.archives.get(B))).unlink()
            page0 = (await self.get(f"/api/tankoubons/{tank}/full", params={"page": "0"})).json
            self.assertEqual(page0["result"]["archives"], [A, B])
            self.assertEqual([a["arcid"] for a in page0["result"]["full_data"]], [A])
            missing = await self.get("/api/tankoubons/TANK_0000000000/full")
            self.assertEqual(missing.status, 400)
        return d(run())

    def test_full_page_past_any_offset(self) -> Deferred[None]:
        """/full with a page whose offset passes 64 bits is an empty page, not a Redis error."""
        async def run() -> None:
            tank = await self.create("Far Tank")
            await self.put(f"/api/tankoubons/{tank}/{A}")
            for page in ("99999999999999999", "1742898974388403568640"):
                response = await self.get(f"/api/tankoubons/{tank}/full", params={"page": page})
                self.assertEqual(response.status, 200, page)
                self.assertEqual((response.json["total"], response.json["result"]["archives"]),
                                 (1, []))
        return d(run())

    # -- add, remove -----------------------------------------------------------------------------
    def test_add(self) -> Deferred[None]:
        """Add scores by ZCARD (first archive at 4), moves grouping, imputes member tags."""
        async def run() -> None:
            tank = await self.create("Tmp Tank")
            stats_before = await self.search("zrange", "LRR_STATS", 0, -1, withscores=True)
            response = await self.put(f"/api/tankoubons/{tank}/{A}")
            self.assertEqual((response.status, response.json), (200, op(
                "add_to_tankoubon", message='Added "Blue" to tankoubon "Tmp Tank"!')))
            await self.put(f"/api/tankoubons/{tank}/{B}")
            self.assertEqual((await self.zset(tank))[4:], [(A, 4.0), (B, 5.0)])
            again = await self.put(f"/api/tankoubons/{tank}/{A}")
            self.assertEqual(again.status, 200)
            self.assertEqual((await self.zset(tank))[4:], [(A, 4.0), (B, 5.0)])
            grouped = await self.grouped()
            self.assertIn(tank, grouped)
            self.assertNotIn(A, grouped)
            self.assertNotIn(B, grouped)
            self.assertIn(C, grouped)
            for tag in ("artist:kuro", "mystery", "slice of life", "date_added:200"):
                self.assertIn(tank, await self.search("smembers", "INDEX_" + tag), tag)
            self.assertNotIn(tank, await self.search("smembers", "INDEX_date_added:100"))
            self.assertEqual(await self.search("zrange", "LRR_STATS", 0, -1, withscores=True),
                             stats_before)
            self.assertEqual(await self.store.tanks_of_archive(A), [tank])
        return d(run())

    def test_add_errors(self) -> Deferred[None]:
        """Unknown tanks and archives are 400s with the original's messages."""
        async def run() -> None:
            tank = await self.create("T")
            missing = await self.put(f"/api/tankoubons/{tank}/{MISSING}")
            self.assertEqual((missing.status, missing.json), (400, op(
                "add_to_tankoubon", f"{MISSING} does not exist in the database.")))
            unknown = await self.put(f"/api/tankoubons/TANK_0000000000/{A}")
            self.assertEqual((unknown.status, unknown.json), (400, op(
                "add_to_tankoubon", "TANK_0000000000 doesn't exist in the database!")))
            short = await self.put(f"/api/tankoubons/{tank}/abc")
            self.assertEqual((short.status, short.json["errors"][0]["path"]), (400, "/archive"))
            self.assertEqual(await self.zset(tank), await self.zset(tank))
        return d(run())

    def test_remove(self) -> Deferred[None]:
        """Remove re-packs scores, regroups the archive, drops its imputed tags; errors are 400s."""
        async def run() -> None:
            tank = await self.create("Tmp Tank 2")
            for arcid in (A, B, C):
                await self.put(f"/api/tankoubons/{tank}/{arcid}")
            response = await self.delete(f"/api/tankoubons/{tank}/{B}")
            self.assertEqual((response.status, response.json), (200, op(
                "remove_from_tankoubon", message='Removed "Red" from tankoubon "Tmp Tank 2"!')))
            self.assertEqual((await self.zset(tank))[4:], [(A, 4.0), (C, 5.0)])
            self.assertIn(B, await self.grouped())
            self.assertNotIn(tank, await self.search("smembers", "INDEX_slice of life"))
            self.assertIn(tank, await self.search("smembers", "INDEX_mystery"))
            self.assertIn(tank, await self.search("smembers", "INDEX_date_added:100"))
            self.assertNotIn(tank, await self.search("smembers", "INDEX_date_added:200"))
            absent = await self.delete(f"/api/tankoubons/{tank}/{B}")
            self.assertEqual((absent.status, absent.json), (400, op(
                "remove_from_tankoubon", f"{B} not in tankoubon {tank}, doing nothing.")))
            missing = await self.delete(f"/api/tankoubons/{tank}/{MISSING}")
            self.assertEqual(missing.json["error"], f"{MISSING} does not exist in the database.")
            await self.delete(f"/api/tankoubons/{tank}/{A}")
            await self.delete(f"/api/tankoubons/{tank}/{C}")
            grouped = await self.grouped()
            self.assertNotIn(tank, grouped)
            self.assertTrue({A, B, C} <= grouped)
            self.assertNotIn(tank, await self.search("smembers", "INDEX_horror"))
        return d(run())

    def test_archive_in_two_tanks(self) -> Deferred[None]:
        """An archive leaving one tank stays out of grouped search while another holds it."""
        async def run() -> None:
            one, two = await self.create("One"), await self.create("Two")
            await self.put(f"/api/tankoubons/{one}/{A}")
            await self.put(f"/api/tankoubons/{two}/{A}")
            await self.delete(f"/api/tankoubons/{one}/{A}")
            self.assertNotIn(A, await self.grouped())
            await self.delete(f"/api/tankoubons/{two}")
            self.assertIn(A, await self.grouped())
            self.assertEqual(await self.store.tanks_of_archive(A), [])
        return d(run())

    # -- update ----------------------------------------------------------------------------------
    def test_update(self) -> Deferred[None]:
        """PUT: metadata (own tags in INDEX and STATS, title moved), archives re-scored 1..N."""
        async def run() -> None:
            tank = await self.create("Tmp Tank")
            for arcid in (A, B):
                await self.put(f"/api/tankoubons/{tank}/{arcid}")
            response = await self.update(tank, {
                "archives": [C, A],
                "metadata": {"name": "Tmp Tank 2", "summary": "About", "tags": "own, Own ,x"},
            })
            self.assertEqual((response.status, response.json), (200, op(
                "update_tankoubon", message='Updated tankoubon "Tmp Tank 2"!')))
            self.assertEqual(await self.zset(tank), [
                ("progress_0", -3.0), ("tags_own,Own,x", -2.0), ("summary_About", -1.0),
                ("name_Tmp Tank 2", 0.0), (C, 1.0), (A, 2.0)])
            grouped = await self.grouped()
            self.assertIn(B, grouped)
            self.assertNotIn(A, grouped)
            self.assertNotIn(C, grouped)
            self.assertEqual(int(float(await self.search("zscore", "LRR_STATS", "own"))), 1)
            self.assertIn(tank, await self.search("smembers", "INDEX_own"))
            self.assertIn(tank, await self.search("smembers", "INDEX_horror"))
            self.assertNotIn(tank, await self.search("smembers", "INDEX_slice of life"))
            titles = await self.search("zrange", "LRR_TITLES", 0, -1)
            self.assertIn("tmp tank 2\0" + tank, titles)
            self.assertNotIn("tmp tank\0" + tank, titles)
            await self.update(tank, {"metadata": {"tags": "more", "append": True}})
            self.assertEqual((await self.get(f"/api/tankoubons/{tank}")).json["tags"],
                             "own,Own,x,more")
            await self.update(tank, {"metadata": {"tags": ""}})
            self.assertIsNone(await self.search("zscore", "LRR_STATS", "own"))
            self.assertNotIn(tank, await self.search("smembers", "INDEX_own"))
            emptied = await self.update(tank, {"archives": []})
            self.assertEqual(emptied.status, 200)
            self.assertNotIn(tank, await self.grouped())
            self.assertTrue({A, B, C} <= await self.grouped())
        return d(run())

    def test_update_errors(self) -> Deferred[None]:
        """Unknown archives or tank: 400 and nothing written; a bad body: 400, never 500."""
        async def run() -> None:
            tank = await self.create("T")
            await self.put(f"/api/tankoubons/{tank}/{A}")
            before = await self.zset(tank)
            response = await self.update(tank, {"archives": [B, MISSING],
                                                "metadata": {"name": "changed"}})
            self.assertEqual((response.status, response.json), (400, op(
                "update_tankoubon", f"{MISSING} does not exist in the database.")))
            self.assertEqual(await self.zset(tank), before)
            unknown = await self.update("TANK_0000000000", {"metadata": {"name": "x"}})
            self.assertEqual((unknown.status, unknown.json), (400, op(
                "update_tankoubon", "TANK_0000000000 doesn't exist in the database!")))
            for raw, kind in ((b"{not json", "application/json"), (b"[1]", "application/json"),
                              (b'{"archives": "x"}', "application/json"),
                              (b'{"archives": [1]}', "application/json"),
                              (b'{"metadata": {"name": 5}}', "application/json"),
                              (b"[" * 50000, "application/json"),  # past the decoder's depth
                              (b"name=x", "application/x-www-form-urlencoded")):
                bad = await self.put(f"/api/tankoubons/{tank}", data=raw,
                                     headers={"Content-Type": kind})
                self.assertEqual(bad.status, 400, raw)
                self.assertEqual(bad.json["status"], 400, raw)
            self.assertEqual(await self.zset(tank), before)
        return d(run())

    # -- delete ----------------------------------------------------------------------------------
    def test_delete(self) -> Deferred[None]:
        """Delete always answers 200, regroups members, drops title, own stats and categories."""
        async def run() -> None:
            tank = await self.create("Doomed")
            await self.put(f"/api/tankoubons/{tank}/{A}")
            await self.update(tank, {"metadata": {"tags": "doomtag"}})
            cat = (await self.put("/api/categories", params={"name": "C"})).json["category_id"]
            await self.put(f"/api/categories/{cat}/{tank}")
            response = await self.delete(f"/api/tankoubons/{tank}")
            self.assertEqual((response.status, response.json), (200, op("delete_tankoubon")))
            self.assertEqual(await self.zset(tank), [])
            grouped = await self.grouped()
            self.assertNotIn(tank, grouped)
            self.assertIn(A, grouped)
            self.assertNotIn("doomed\0" + tank, await self.search("zrange", "LRR_TITLES", 0, -1))
            self.assertIsNone(await self.search("zscore", "LRR_STATS", "doomtag"))
            self.assertNotIn(tank, await self.search("smembers", "INDEX_mystery"))
            self.assertEqual((await self.get(f"/api/categories/{cat}")).json["archives"], [])
            again = await self.delete(f"/api/tankoubons/{tank}")
            self.assertEqual((again.status, again.json), (200, op("delete_tankoubon")))
            short = await self.delete("/api/tankoubons/TANK_1")
            self.assertEqual((short.status, short.json), (400, op(
                "delete_tankoubon", "The given tankoubon does not exist.")))
        return d(run())

    def test_locks(self) -> Deferred[None]:
        """A held tankoubon-write lock answers 423 on delete, update, add and remove."""
        async def run() -> None:
            tank = await self.create("Locked")
            await self.redis.db(DB.CONFIG).set(f"tankoubon-write:{tank}", "someone")
            for method, path, operation, body in (
                ("PUT", f"/api/tankoubons/{tank}", "update_tankoubon", b"{}"),
                ("DELETE", f"/api/tankoubons/{tank}", "delete_tankoubon", None),
                ("PUT", f"/api/tankoubons/{tank}/{A}", "add_to_tankoubon", None),
                ("DELETE", f"/api/tankoubons/{tank}/{A}", "remove_from_tankoubon", None),
            ):
                kwargs: dict[str, Any] = {}
                if body is not None:
                    kwargs = {"data": body, "headers": {"Content-Type": "application/json"}}
                response = await self.request(method, path, auth=True, **kwargs)
                self.assertEqual((response.status, response.json), (423, {
                    "operation": operation, "success": 0, "error": f"Locked resource: {tank}."}))
            self.assertEqual(len(await self.zset(tank)), 4)
        return d(run())

    # -- progress --------------------------------------------------------------------------------
    def test_progress(self) -> Deferred[None]:
        """Progress is stored at score -3 with no upper bound; auth/localprogress rules apply."""
        async def run() -> None:
            tank = await self.create("T")
            response = await self.request("PUT", f"/api/tankoubons/{tank}/progress/250")
            self.assertEqual(response.status, 200, response.body)
            body = response.json
            self.assertEqual(body, {"id": tank, "lastreadtime": body["lastreadtime"],
                                    "operation": "update_tank_progress", "page": 250,
                                    "success": 1})
            self.assertIsInstance(body["lastreadtime"], int)
            self.assertEqual((await self.zset(tank))[0], ("progress_250", -3.0))
            self.assertEqual((await self.get(f"/api/tankoubons/{tank}")).json["progress"], 250)
            missing = await self.request("PUT", "/api/tankoubons/TANK_0000000000/progress/1")
            self.assertEqual((missing.status, missing.json), (400, op(
                "update_tank_progress", "TANK_0000000000 doesn't exist in the database!")))
            zero = await self.request("PUT", f"/api/tankoubons/{tank}/progress/0")
            self.assertEqual(zero.status, 400)
            config = self.services().config
            await config.set({"localprogress": "1"})
            local = await self.request("PUT", f"/api/tankoubons/{tank}/progress/2")
            self.assertEqual((local.status, local.json), (400, op(
                "update_tank_progress", "Server-side Progress Tracking is disabled on this instance.")))
            await config.set({"authprogress": "1"})
            anonymous = await self.request("PUT", f"/api/tankoubons/{tank}/progress/2")
            self.assertEqual((anonymous.status, anonymous.json), (401, {
                "operation": "update_tank_progress", "error": "This operation requires authentication.",
                "success": 0}))
            authed = await self.request("PUT", f"/api/tankoubons/{tank}/progress/2", auth=True)
            self.assertEqual(authed.status, 200)
        return d(run())

    # -- thumbnails ------------------------------------------------------------------------------
    def test_thumbnail_fallback(self) -> Deferred[None]:
        """No cover: noThumb.png as RenderFile sends it; unknown tank with no_fallback: 400."""
        async def run() -> None:
            tank = await self.create("T")
            response = await self.get(f"/api/tankoubons/{tank}/thumbnail")
            self.assertEqual(response.status, 200)
            self.assertEqual(response.header("content-type"),
                             'application/x-download;name="noThumb.png"')
            self.assertEqual(response.header("content-disposition"),
                             'attachment;filename="noThumb.png"')
            self.assertTrue(response.body.startswith(b"\x89PNG"))
            unknown = await self.get("/api/tankoubons/TANK_0000000000/thumbnail",
                                     params={"no_fallback": "true"})
            self.assertEqual(unknown.status, 400)
        return d(run())

    def test_thumbnail_put_and_get(self) -> Deferred[None]:
        """PUT ?page=G maps the global page to (archive, page) and copies it to TA/<id>.jpg."""
        async def run() -> None:
            tank = await self.create("T")
            await self.put(f"/api/tankoubons/{tank}/{A}")
            await self.put(f"/api/tankoubons/{tank}/{B}")
            response = await self.put(f"/api/tankoubons/{tank}/thumbnail", params={"page": "5"})
            self.assertEqual(response.status, 200, response.body)
            target = Path(self.services().settings.thumb_dir) / "TA" / f"{tank}.jpg"
            self.assertEqual(response.json, {"operation": "update_tankoubon_thumbnail",
                                             "new_thumbnail": str(target), "success": 1})
            self.assertTrue(target.exists())
            self.assertTrue((Path(self.services().settings.thumb_dir) / "bb" / B / "2.jpg").exists())
            self.assertEqual(await self.store.translate_global_page(tank, 3), (A, 3))
            self.assertEqual(await self.store.translate_global_page(tank, 4), (B, 1))
            served = await self.get(f"/api/tankoubons/{tank}/thumbnail")
            self.assertEqual(served.body, target.read_bytes())
            self.assertEqual(served.header("content-type"),
                             f'application/x-download;name="{tank}.jpg"')
            out = await self.put(f"/api/tankoubons/{tank}/thumbnail", params={"page": "6"})
            self.assertEqual((out.status, out.json), (400, op(
                "update_tankoubon_thumbnail", "Page 6 is out of range for this tankoubon.")))
        return d(run())

    def test_thumbnail_job(self) -> Deferred[None]:
        """no_fallback=true queues tank_thumbnail_task (202); the task copies the first cover."""
        async def run() -> None:
            from types import SimpleNamespace

            from lrrd.jobs.tasks import tank_thumbnail_task

            tank = await self.create("T")
            await self.put(f"/api/tankoubons/{tank}/{B}")
            response = await self.get(f"/api/tankoubons/{tank}/thumbnail",
                                      params={"no_fallback": "true"})
            self.assertEqual(response.status, 202, response.body)
            self.assertEqual(response.json, {"operation": "serve_tankoubon_thumbnail",
                                             "success": 1, "job": response.json["job"]})
            self.assertIsInstance(response.json["job"], int)
            job = SimpleNamespace(services=self.services())
            thumbdir = str(self.services().settings.thumb_dir)
            made = await tank_thumbnail_task(job, thumbdir, tank)
            self.assertEqual(made, str(Path(thumbdir) / "TA" / f"{tank}.jpg"))
            served = await self.get(f"/api/tankoubons/{tank}/thumbnail",
                                    params={"no_fallback": "true"})
            self.assertEqual((served.status, served.body), (200, Path(made).read_bytes()))
            empty = await self.create("Empty")
            self.assertIn("no cover", await tank_thumbnail_task(job, thumbdir, empty))
            with self.assertRaises(ValueError):
                await tank_thumbnail_task(job, thumbdir, "TANK_0000000000")
        return d(run())

    def test_archive_tankoubons_store(self) -> Deferred[None]:
        """tanks_of_archive lists every tank holding the id, sorted."""
        async def run() -> None:
            one = await self.create("One", tankid="TANK_2000000001")
            two = await self.create("Two", tankid="TANK_2000000000")
            await self.put(f"/api/tankoubons/{one}/{A}")
            await self.put(f"/api/tankoubons/{two}/{A}")
            self.assertEqual(await self.store.tanks_of_archive(A), [two, one])
            self.assertEqual(await self.store.tanks_of_archive(B), [])
        return d(run())

    def test_archive_api_membership(self) -> Deferred[None]:
        """/api/archives/{id}/tankoubons and /categories list the archive's tanks and categories."""
        async def run() -> None:
            tank = await self.create("T", tankid="TANK_1795822261")
            await self.put(f"/api/tankoubons/{tank}/{A}")
            response = await self.get(f"/api/archives/{A}/tankoubons")
            self.assertEqual((response.status, response.json), (200, {
                "operation": "find_arc_tankoubons", "success": 1, "tankoubons": [tank]}))
            self.assertEqual((await self.get(f"/api/archives/{B}/tankoubons")).json["tankoubons"],
                             [])
            cat = (await self.put("/api/categories", params={"name": "Golden Cat"})).json
            await self.put(f"/api/categories/{cat['category_id']}/{A}")
            cats = await self.get(f"/api/archives/{A}/categories")
            self.assertEqual((cats.status, cats.json), (200, {
                "categories": [{"archives": [A], "id": cat["category_id"], "name": "Golden Cat",
                                "pinned": 0, "search": ""}],
                "operation": "find_arc_categories", "success": 1}))
        return d(run())

    def test_changes_published(self) -> Deferred[None]:
        """Every tank write publishes the tank id on the changes channel."""
        async def run() -> None:
            from lrrd.store.archives import CHANGES_CHANNEL
            from tests.test_categories import subscribe

            tank = "TANK_1000000000"
            messages = await subscribe(self, CHANGES_CHANNEL, count=6)
            await self.create("T", tankid=tank)
            await self.put(f"/api/tankoubons/{tank}/{A}")
            await self.update(tank, {"archives": [A, B]})
            await self.request("PUT", f"/api/tankoubons/{tank}/progress/2")
            await self.delete(f"/api/tankoubons/{tank}/{B}")
            await self.delete(f"/api/tankoubons/{tank}")
            self.assertEqual(await messages, [tank] * 6)
        return d(run())

    def test_refresh_after_member_tags_change(self) -> Deferred[None]:
        """refresh_tanks_of_archive re-imputes after a member's tags change (archive API hook)."""
        async def run() -> None:
            tank = await self.create("T")
            await self.put(f"/api/tankoubons/{tank}/{C}")
            self.assertIn(tank, await self.search("smembers", "INDEX_horror"))
            await self.archives.set_tags(C, "comedy")
            self.assertEqual(await self.store.refresh_tanks_of_archive(C, "horror"), [tank])
            self.assertNotIn(tank, await self.search("smembers", "INDEX_horror"))
            self.assertIn(tank, await self.search("smembers", "INDEX_comedy"))
        return d(run())


    def test_refresh_after_member_deleted(self) -> Deferred[None]:
        """After ArchiveStore.delete, refresh_tanks drops the tank's stale tags and grouping."""
        async def run() -> None:
            tank = await self.create("T")
            await self.put(f"/api/tankoubons/{tank}/{C}")
            tanks = await self.store.tanks_of_archive(C)
            await self.archives.delete(C)
            await self.store.refresh_tanks(tanks, "horror")
            self.assertNotIn(tank, await self.search("smembers", "INDEX_horror"))
            self.assertNotIn(tank, await self.grouped())
            self.assertEqual((await self.get(f"/api/tankoubons/{tank}")).json["archives"], [])
        return d(run())

    def test_tank_follows_member_edit_and_deletion_over_http(self) -> Deferred[None]:
        """Through the archive API: a member's tag edit re-imputes its tank (INDEX_ and grouped
        search follow), a member's deletion drops its tags, the last one's ungroups the tank."""
        async def run() -> None:
            index = self.services().search_index
            index.startService()
            self.addCleanup(index.stopService)
            await index.when_loaded()

            async def found(term: str) -> list[str]:
                await index.sync()
                response = await self.get("/api/search", params={"filter": term})
                self.assertEqual(response.status, 200)
                return [row["arcid"] for row in response.json["data"]]

            tank = await self.create("T")
            await self.put(f"/api/tankoubons/{tank}/{A}")
            await self.put(f"/api/tankoubons/{tank}/{C}")
            self.assertEqual(await found("horror"), [tank])
            edit = await self.put(f"/api/archives/{C}/metadata", params={"tags": "comedy"})
            self.assertEqual(edit.status, 200, edit.body)
            self.assertNotIn(tank, await self.search("smembers", "INDEX_horror"))
            self.assertIn(tank, await self.search("smembers", "INDEX_comedy"))
            self.assertEqual(await found("horror"), [])
            self.assertEqual(await found("comedy"), [tank])
            self.assertEqual(await found("artist:kuro"), [tank])

            gone = await self.delete(f"/api/archives/{A}")
            self.assertEqual(gone.status, 200, gone.body)
            self.assertNotIn(tank, await self.search("smembers", "INDEX_artist:kuro"))
            self.assertEqual(await found("artist:kuro"), [])
            self.assertEqual(await found("comedy"), [tank])
            self.assertEqual((await self.delete(f"/api/archives/{C}")).status, 200)
            self.assertNotIn(tank, await self.search("smembers", "INDEX_comedy"))
            self.assertNotIn(tank, await self.grouped())
            self.assertEqual(await found("comedy"), [])
        return d(run())


def as_path(fields: Any) -> str:
    raw = fields["file"]
    return raw.decode() if isinstance(raw, bytes) else raw

