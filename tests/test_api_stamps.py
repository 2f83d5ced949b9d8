"""The six stamp operations over real HTTP and Redis, against the original's golden responses."""

from __future__ import annotations

import json

from twisted.internet.defer import Deferred

from lrrd.store.redis import DB
from tests.fixtures.archives import make_cbz
from tests.fixtures.reading import LibraryApiTestCase, d, golden, same_shape


class StampTests(LibraryApiTestCase):
    timeout = 60

    async def archive(self, pages: int = 3) -> str:
        return await self.add(self.make("stamped.cbz", make_cbz, pages))

    async def add_stamp(self, arcid: str, page: int, content: str = "hello",
                        position: str = "10,20") -> dict:  # type: ignore[type-arg]
        response = await self.request("PUT", f"/api/archives/{arcid}/stamps/{page}", auth=True,
                                      params={"content": content, "position": position})
        self.assertEqual(response.status, 200)
        return response.json

    def test_lifecycle(self) -> Deferred[None]:
        """Add, list by page, list pages, get, update, delete: golden bodies and the Redis layout."""
        async def run() -> None:
            arcid = await self.archive()
            empty = await self.get(f"/api/archives/{arcid}/stamps")
            self.assertEqual((empty.status, empty.json), (200, golden("get_archive_stamps.json")))
            self.assertEqual((await self.get(f"/api/archives/{arcid}/stamps/1")).json,
                             golden("get_archive_stamps_0.json"))

            added = await self.add_stamp(arcid, 1)
            same_shape(self, added, golden("put_archive_stamp.json"))
            key = added["stamp_id"]
            self.assertRegex(key, r"^STAMPS_1_\d{13}$")
            self.assertEqual(added, {"operation": "add_stamp", "stamp_id": key, "success": 1})
            main = self.redis.db(DB.MAIN)
            self.assertEqual(await main.hgetall(key),
                             {"content": "hello", "position": "10,20", "archive_id": arcid})
            second = (await self.add_stamp(arcid, 1, "again"))["stamp_id"]
            third = (await self.add_stamp(arcid, 3, "three"))["stamp_id"]
            self.assertEqual(len({key, second, third}), 3)
            self.assertEqual(json.loads(await main.hget(arcid, "stamps")), [key, second, third])

            pages = await self.get(f"/api/archives/{arcid}/stamps")
            self.assertEqual(pages.json, {"result": ["1", "3"]})

            updated = await self.request("PUT", f"/api/stamps/{key}?content=hello2", auth=True)
            self.assertEqual(updated.status, 200)
            expected = dict(golden("put_stamp.json"),
                            successMessage=f"Updated stamp &quot;{key}&quot;!")
            self.assertEqual(updated.json, expected)
            by_page = await self.get(f"/api/archives/{arcid}/stamps/1")
            self.assertEqual(by_page.json["result"][0],
                             {"content": "hello2", "id": key, "position": "10,20"})
            same_shape(self, by_page.json, golden("get_archive_stamps_1.json"))
            self.assertEqual([s["id"] for s in by_page.json["result"]], [key, second])

            one = await self.get(f"/api/stamps/{key}")
            self.assertEqual(one.status, 200)
            stamp = {"id": key, "content": "hello2", "position": "10,20"}
            self.assertEqual(one.json["result"], stamp)
            self.assertEqual({k: one.json[k] for k in stamp}, stamp)

            deleted = await self.request("DELETE", f"/api/stamps/{key}", auth=True)
            self.assertEqual((deleted.status, deleted.json), (200, golden("delete_stamp.json")))
            self.assertFalse(await main.exists(key))
            self.assertEqual(json.loads(await main.hget(arcid, "stamps")), [second, third])
            for other in (second, third):
                await self.request("DELETE", f"/api/stamps/{other}", auth=True)
            self.assertEqual(json.loads(await main.hget(arcid, "stamps")), [])
            self.assertEqual((await self.get(f"/api/archives/{arcid}/stamps")).json, {"result": []})
        return d(run())

    def test_add_stamp_errors_answer_200(self) -> Deferred[None]:
        """Out-of-range pages and unknown archives give the original's HTTP 200 with success 0."""
        async def run() -> None:
            arcid = await self.archive(3)
            for page in (0, 4):
                body = await self.add_stamp(arcid, page)
                self.assertEqual(body, {"operation": "add_stamp", "stamp_id": "0", "success": 0,
                                        "error": f"Page {page} out of range."})
            unknown = await self.add_stamp("f" * 40, 1)
            self.assertEqual(unknown["error"], f"{'f' * 40} does not exist in the database.")
            self.assertEqual(unknown["success"], 0)
            self.assertFalse(await self.redis.db(DB.MAIN).exists("f" * 40))
            anonymous = await self.request("PUT", f"/api/archives/{arcid}/stamps/1?content=x")
            self.assertEqual(anonymous.status, 401)
            async with self.services().locks.held(f"archive-write:{arcid}"):
                locked = await self.request("PUT", f"/api/archives/{arcid}/stamps/1", auth=True)
            self.assertEqual((locked.status, locked.json), (423, {
                "operation": "update_archive", "success": 0, "error": f"Locked resource: {arcid}."}))
        return d(run())

    def test_unknown_stamps_and_archives(self) -> Deferred[None]:
        """An unknown stamp is a 400 (the original answers 500); unknown archives too."""
        async def run() -> None:
            missing = "STAMPS_1_1795824119296"
            got = await self.get(f"/api/stamps/{missing}")
            self.assertEqual((got.status, got.json), (400, {
                "operation": "get_stamp", "error": "The given stamp does not exist.", "success": 0,
                "successMessage": ""}))
            put = await self.request("PUT", f"/api/stamps/{missing}?content=x", auth=True)
            self.assertEqual(put.status, 400)
            self.assertEqual(put.json["operation"], "update_stamp")
            deleted = await self.request("DELETE", f"/api/stamps/{missing}", auth=True)
            self.assertEqual((deleted.status, deleted.json["error"]),
                             (400, "The given stamp does not exist."))
            for path in ("/api/archives/nope/stamps", "/api/archives/nope/stamps/1"):
                response = await self.get(path)
                self.assertEqual(response.status, 400, path)
                self.assertEqual(response.json["success"], 0)
        return d(run())

    def test_other_keys_are_not_stamps(self) -> Deferred[None]:
        """Archive, category and tank ids as stamp ids, or as archive ids, are 400s and change nothing."""
        async def run() -> None:
            arcid = await self.archive()
            tank = (await self.request("PUT", "/api/tankoubons?name=T", auth=True)).json["tankoubon_id"]
            category = (await self.request("PUT", "/api/categories?name=C", auth=True)).json["category_id"]
            main = self.redis.db(DB.MAIN)
            before = {key: await main.execute_command("DUMP", key) for key in (arcid, tank, category)}
            for key in (arcid, tank, category, "LRR_TANKGROUPS"):
                got = await self.get(f"/api/stamps/{key}")
                self.assertEqual((got.status, got.json["error"]), (400, "The given stamp does not exist."))
                put = await self.request("PUT", f"/api/stamps/{key}?content=x&position=1,1", auth=True)
                self.assertEqual((put.status, put.json["operation"]), (400, "update_stamp"))
                deleted = await self.request("DELETE", f"/api/stamps/{key}", auth=True)
                self.assertEqual((deleted.status, deleted.json["operation"]), (400, "delete_stamp"))
            for key in (tank, category):
                listed = await self.get(f"/api/archives/{key}/stamps")
                self.assertEqual((listed.status, listed.json["success"]), (400, 0))
                by_page = await self.get(f"/api/archives/{key}/stamps/1")
                self.assertEqual((by_page.status, by_page.json["success"]), (400, 0))
                added = await self.add_stamp(key, 1)
                self.assertEqual(added["error"], f"{key} does not exist in the database.")
            self.assertEqual({key: await main.execute_command("DUMP", key) for key in before}, before)
            self.assertEqual((await self.get(f"/api/archives/{arcid}")).status, 200)
        return d(run())

    def test_update_keeps_empty_fields(self) -> Deferred[None]:
        """PUT /stamps/{id} changes only the fields given non-empty."""
        async def run() -> None:
            arcid = await self.archive()
            key = (await self.add_stamp(arcid, 2, "text", "1,2"))["stamp_id"]
            await self.request("PUT", f"/api/stamps/{key}?position=50,50&content=", auth=True)
            self.assertEqual((await self.get(f"/api/stamps/{key}")).json["result"],
                             {"id": key, "content": "text", "position": "50,50"})
            async with self.services().locks.held(f"stamp-write:{key}"):
                locked = await self.request("PUT", f"/api/stamps/{key}?content=x", auth=True)
                self.assertEqual(locked.status, 423)
                busy = await self.request("DELETE", f"/api/stamps/{key}", auth=True)
                self.assertEqual((busy.status, busy.json), (423, {
                    "operation": "delete_stamp", "success": 0, "error": "Locked resource"}))
        return d(run())
