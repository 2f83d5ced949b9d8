"""The archive store against a real Redis: LANraragi's hash layout and the indexes kept with it."""

from __future__ import annotations

import json

from twisted.internet.defer import Deferred

from lrrd.store.archives import (
    ArchiveNotFound, ArchiveStore, archive_json, is_untagged, normalize_tags, trim_url,
)
from lrrd.store.locks import LockBusy, LockStore
from lrrd.store.redis import DB
from tests.fixtures.app import RedisTestCase

A = "a" * 40
B = "b" * 40


def d(coro):  # noqa: ANN001, ANN201
    return Deferred.fromCoroutine(coro)


class PureRulesTests(RedisTestCase.__mro__[1]):  # a plain trial TestCase, no Redis needed
    def test_normalize_tags(self) -> None:
        """Tags are split on commas, trimmed, stripped of line breaks and exact duplicates, in order."""
        self.assertEqual(normalize_tags(" b , a,\nb, A ,, c\r"), "b,a,A,c")

    def test_untagged(self) -> None:
        """Only tags outside the basic namespaces make an archive tagged (unanchored match)."""
        self.assertTrue(is_untagged(""))
        self.assertTrue(is_untagged("artist:x,date_added:1,source:y"))
        self.assertTrue(is_untagged("fakeartist:x"))
        self.assertFalse(is_untagged("artist:x,action"))

    def test_trim_url(self) -> None:
        """trim_url drops the scheme, www., the query and one trailing slash."""
        self.assertEqual(trim_url(" https://www.example.org/g/1/?x=1 "), "example.org/g/1")

    def test_archive_json_types(self) -> None:
        """Archive JSON has the spec's types and falls back to the name for a blank title."""
        body = archive_json(A, {"name": "n", "title": " ", "isnew": "true", "file": "/x/n.CBZ",
                                "pagecount": "3", "toc": '{"10":"b","2":"a"}'})
        self.assertEqual(body["title"], "n")
        self.assertIs(body["isnew"], True)
        self.assertEqual(body["extension"], "cbz")
        self.assertEqual(body["pagecount"], 3)
        self.assertEqual(body["progress"], 0)
        self.assertEqual(body["toc"], [{"page": 2, "name": "a"}, {"page": 10, "name": "b"}])


class ArchiveStoreTests(RedisTestCase):
    def setUp(self):  # noqa: ANN201
        result = super().setUp()
        self.store = ArchiveStore(self.redis)
        return result

    async def _search(self, *command):  # noqa: ANN001, ANN202
        db = self.redis.db(DB.SEARCH)
        return await getattr(db, command[0])(*command[1:])

    def test_create(self) -> Deferred[None]:
        """Creation writes the original's fields and joins the grouped, new, untagged and title sets."""
        async def run() -> None:
            self.assertTrue(await self.store.create(A, "/lib/My Book.cbz", 123))
            self.assertFalse(await self.store.create(A, "/lib/My Book.cbz", 123))
            fields = await self.store.get(A)
            self.assertEqual(fields, {"name": "My Book", "title": "My Book", "tags": "",
                                      "summary": "", "file": "/lib/My Book.cbz",
                                      "isnew": "true", "arcsize": "123"})
            self.assertTrue(await self._search("sismember", "LRR_TANKGROUPED", A))
            self.assertTrue(await self._search("sismember", "LRR_NEW", A))
            self.assertEqual(await self._search("zrange", "LRR_TITLES", 0, -1), ["my book\0" + A])
            self.assertEqual(await self.store.ids(), [A])
        return d(run())

    def test_tags_and_indexes(self) -> Deferred[None]:
        """set_tags normalises, moves index memberships, counts stats and tracks URLs and untagged."""
        async def run() -> None:
            await self.store.create(A, "/lib/a.cbz")
            await self.store.create(B, "/lib/b.cbz")
            self.assertEqual(await self.store.set_tags(A, "Artist:X, action,source:https://e.org/g/1"),
                             "Artist:X,action,source:https://e.org/g/1")
            await self.store.set_tags(B, "action")
            self.assertEqual(set(await self._search("smembers", "INDEX_action")), {A, B})
            self.assertEqual(set(await self._search("smembers", "INDEX_artist:x")), {A})
            self.assertEqual(int(await self._search("zscore", "LRR_STATS", "action")), 2)
            self.assertEqual(await self.store.url_owner("http://www.e.org/g/1/"), A)
            self.assertFalse(await self._search("sismember", "LRR_UNTAGGED", A))
            await self.store.set_tags(A, "date_added:5", append=True)
            self.assertEqual((await self.store.get(A))["tags"],
                             "Artist:X,action,source:https://e.org/g/1,date_added:5")
            await self.store.set_tags(A, "artist:y")
            self.assertEqual(set(await self._search("smembers", "INDEX_action")), {B})
            self.assertEqual(int(await self._search("zscore", "LRR_STATS", "action")), 1)
            self.assertIsNone(await self._search("zscore", "LRR_STATS", "artist:x"))
            self.assertIsNone(await self.store.url_owner("e.org/g/1"))
            self.assertTrue(await self._search("sismember", "LRR_UNTAGGED", A))
            with self.assertRaises(ArchiveNotFound):
                await self.store.set_tags("c" * 40, "x")
        return d(run())

    def test_title_isnew_progress_toc(self) -> Deferred[None]:
        """Title index follows renames; isnew, progress (with the page counter) and ToC are stored."""
        async def run() -> None:
            await self.store.create(A, "/lib/a.cbz")
            self.assertFalse(await self.store.set_title(A, "  "))
            await self.store.set_title(A, " New\nTitle ")
            self.assertEqual(await self._search("zrange", "LRR_TITLES", 0, -1), ["newtitle\0" + A])
            await self.store.set_isnew(A, False)
            self.assertEqual((await self.store.get(A))["isnew"], "false")
            self.assertFalse(await self._search("sismember", "LRR_NEW", A))
            await self.store.update_progress(A, 3, 1000)
            await self.store.update_progress(A, 4, 1001)
            fields = await self.store.get(A)
            self.assertEqual((fields["progress"], fields["lastreadtime"]), ("4", "1001"))
            self.assertEqual(await self.redis.db(DB.CONFIG).get("LRR_TOTALPAGESTAT"), "2")
            await self.store.set_toc_entry(A, 2, "Intro")
            await self.store.set_toc_entry(A, 9, "End")
            await self.store.set_toc_entry(A, 9, None)
            self.assertEqual(json.loads((await self.store.get(A))["toc"]), {"2": "Intro"})
        return d(run())

    def test_delete_and_change_id(self) -> Deferred[None]:
        """change_id moves metadata and memberships; delete removes the hash and every trace."""
        async def run() -> None:
            main = self.redis.db(DB.MAIN)
            await self.store.create(A, "/lib/a.cbz")
            await self.store.set_tags(A, "action")
            await main.hset("SET_0000000001", "archives", json.dumps([A]))
            await main.zadd("TANK_0000000001", 1, A)
            self.assertTrue(await self.store.change_id(A, B))
            self.assertIsNone(await self.store.get(A))
            self.assertEqual((await self.store.get(B))["tags"], "action")
            self.assertEqual(set(await self._search("smembers", "INDEX_action")), {B})
            self.assertEqual(json.loads(await main.hget("SET_0000000001", "archives")), [B])
            self.assertEqual(float(await main.zscore("TANK_0000000001", B)), 1.0)
            self.assertTrue(await self.store.delete(B))
            self.assertFalse(await self.store.delete(B))
            self.assertEqual(await main.hget("SET_0000000001", "archives"), "[]")
            self.assertIsNone(await main.zscore("TANK_0000000001", B))
            self.assertEqual(set(await self._search("smembers", "INDEX_action")), set())
            self.assertEqual(await self._search("zcard", "LRR_TITLES"), 0)
        return d(run())

    def test_filemap_raw_bytes(self) -> Deferred[None]:
        """File paths are stored as raw bytes, including ones that are not valid UTF-8."""
        async def run() -> None:
            weird = "/lib/" + b"\xff\xfe name.cbz".decode("utf-8", "surrogateescape")
            await self.store.filemap_set(weird, A)
            self.assertEqual(await self.store.filemap_get(weird), A)
            self.assertEqual(await self.store.filemap(), {weird: A})
            await self.store.create(A, weird)
            self.assertEqual(os_path(await self.store.get(A)), weird)
        return d(run())

    def test_locks(self) -> Deferred[None]:
        """A held lock refuses a second holder at once and is free again after release."""
        async def run() -> None:
            locks = LockStore(self.redis)
            async with locks.held("archive-write:" + A):
                with self.assertRaises(LockBusy):
                    async with locks.held("archive-write:" + A):
                        pass
            async with locks.held("archive-write:" + A):
                pass
        return d(run())


def os_path(fields):  # noqa: ANN001, ANN201
    from lrrd.store.archives import as_text

    return as_text(fields["file"])
