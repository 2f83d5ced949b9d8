"""Backup, restore, clean, the search database rebuild and duplicate finding, on a real Redis
and real files (LRR-NOTES §2.5, §6, §9.5, §9.6)."""

from __future__ import annotations

import json
import os
from itertools import combinations
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.defer import Deferred
from twisted.trial import unittest

from lrrd.library.backup import (
    archive_entry, build_backup, encode_backup, parse_backup, restore_backup, write_atomically,
    write_backup_file, BackupError,
)
from lrrd.library.database import (
    clean_database, drop_database, duplicate_groups, find_duplicates, group_fields,
    plan_search_index, rebuild_search_db,
)
from lrrd.store.redis import DB
from lrrd.store.stats import RebuildConflict, StatsStore
from lrrd.store.tankoubons import Tank
from tests.fixtures.app import ApiTestCase
from tests.fixtures.archives import make_cbz, png_bytes


def d(coro: Any) -> Deferred[Any]:
    return Deferred.fromCoroutine(coro)


class Library:
    """A small library on disk and in Redis: four archives, categories, a tank, stamps."""

    def __init__(self, services: Any) -> None:
        self.services = services
        self.paths: list[Path] = []
        self.ids: list[str] = []

    async def add(self, name: str, color: int) -> str:
        services = self.services
        path = make_cbz(services.settings.content / name, [("1.png", png_bytes(2, 2, (color, 0, 0))),
                                                           ("2.png", png_bytes(2, 2, (0, color, 0)))])
        result = await services.importer.import_file(str(path))
        self.paths.append(path)
        self.ids.append(str(result.arcid))
        return str(result.arcid)

    async def build(self) -> None:
        services = self.services
        services.importer.covers = False
        a, b, c, e = [await self.add(f"{name}.cbz", 40 * i)
                      for i, name in enumerate(["Alpha", "Beta", "Gamma", "Delta"], 1)]
        archives = services.archives
        await archives.set_title(a, "Alpha Title")
        await archives.set_tags(a, "artist:Aoi,Full Color,source:https://example.com/g/1/")
        await archives.set_summary(a, "line one\nline two")
        await archives.set_tags(b, "artist:Aoi,series:Blue:Sky,action")
        await archives.set_tags(c, "language:english")
        await archives.set_fields(a, {"thumbhash": "f" * 40, "pagecount": 2})
        await archives.set_fields(b, {"thumbhash": "e" * 40})
        await archives.set_fields(c, {"thumbhash": "d" * 40})
        await archives.set_isnew(b, False)
        self.stamp = await services.stamps.add(a, 2, "Hi & <bye>", "10,20")
        self.static = await services.categories.create("Static")
        await services.categories.add_archive(self.static, a)
        await services.categories.add_archive(self.static, c)
        self.dynamic = await services.categories.create("Dyn", search="artist:aoi", pinned=True)
        self.tank = await services.tankoubons.create("Tank One")
        await services.tankoubons.update(self.tank, archives=[b, c], summary="A tank summary",
                                         tags="tank:own,Extra")
        self.empty_tank = await services.tankoubons.create("Empty Tank")
        self.a, self.b, self.c, self.e = a, b, c, e


class BackupTests(ApiTestCase):
    """Backup JSON, restore, clean and the rebuild over the real stores."""

    timeout = 30

    def setUp(self) -> Deferred[None]:
        result = super().setUp()
        result.addCallback(lambda _: d(self._library()))
        return result

    async def _library(self) -> None:
        self.lib = Library(self.services())
        await self.lib.build()

    def test_backup_shape(self) -> None:
        """Keys sorted, categories without pinned, tanks and stamps present, raw stamps string."""
        async def run() -> None:
            lib = self.lib
            backup = await build_backup(self.services())
            self.assertEqual(sorted(backup), ["archives", "categories", "stamps", "tankoubons"])
            cats = {cat["catid"]: cat for cat in backup["categories"]}
            self.assertEqual(cats[lib.static], {"catid": lib.static, "name": "Static",
                                                "search": "", "archives": [lib.a, lib.c]})
            self.assertEqual(cats[lib.dynamic]["search"], "artist:aoi")
            self.assertNotIn("pinned", cats[lib.dynamic])
            tanks = {tank["tankid"]: tank for tank in backup["tankoubons"]}
            self.assertEqual(tanks[lib.tank], {"tankid": lib.tank, "name": "Tank One",
                                               "summary": "A tank summary",
                                               "tags": "tank:own,Extra",
                                               "archives": [lib.b, lib.c]})
            self.assertEqual(tanks[lib.empty_tank]["archives"], [])
            self.assertEqual(backup["stamps"], [{"stamp_id": lib.stamp, "content": "Hi & <bye>",
                                                 "position": "10,20", "archive_id": lib.a}])
            entries = {entry["arcid"]: entry for entry in backup["archives"]}
            self.assertEqual(entries[lib.a], {
                "arcid": lib.a, "title": "Alpha Title",
                "tags": "artist:Aoi,Full Color,source:https://example.com/g/1/",
                "summary": "line one\nline two",
                "thumbhash": "f" * 40, "filename": "Alpha", "stamps": json.dumps([lib.stamp]),
            })
            self.assertTrue(entries[lib.e]["tags"].startswith("date_added:"))
            self.assertEqual((entries[lib.e]["stamps"], entries[lib.e]["thumbhash"]), (None, None))
            self.assertEqual(entries[lib.b]["thumbhash"], "e" * 40)
            encoded = encode_backup(backup)
            self.assertTrue(encoded.startswith(b'{"archives":[{"arcid":'))
            first = json.loads(encoded)["archives"][0]
            self.assertEqual(list(first), sorted(first))
            self.assertEqual(parse_backup(encoded), json.loads(encoded))
        return d(run())

    def test_empty_parts_left_out(self) -> None:
        """With no tanks and no stamps those keys are absent, as in the original."""
        async def run() -> None:
            services = self.services()
            for tank in await services.tankoubons.ids():
                await services.tankoubons.delete(tank)
            await services.stamps.remove(self.lib.stamp)
            backup = await build_backup(services)
            self.assertEqual(sorted(backup), ["archives", "categories"])
            self.assertEqual(archive_entry("x", {}), {
                "arcid": "x", "title": "", "tags": "", "summary": None, "thumbhash": None,
                "filename": "", "stamps": None})
        return d(run())

    def test_round_trip(self) -> None:
        """Backup, drop, re-import the files, restore: archives, categories, tanks and stamps
        come back identical, and a rebuilt search database equals the one before."""
        async def run() -> None:
            services = self.services()
            lib = self.lib
            await rebuild_search_db(services)
            before_search = await self.search_db()
            text = encode_backup(await build_backup(services))
            await drop_database(services)
            self.assertEqual(await services.archives.ids(), [])
            # lrrd has no login page to set a new key: the one in force survives the drop.
            self.assertEqual((await services.config.get("apikey"))["apikey"], self.api_key)
            # Covers this time: a restore replaces only a thumbhash that is already set.
            services.importer.covers = True
            for path in lib.paths:
                await services.importer.import_file(str(path))
            await restore_backup(services, parse_backup(text))
            after = await build_backup(services)
            before = json.loads(text)
            self.maxDiff = None
            # Delta had no thumbhash; its new cover's stays (a restore never clears one).
            delta = next(entry for entry in after["archives"] if entry["arcid"] == lib.e)
            self.assertEqual(len(delta.pop("thumbhash")), 40)
            delta["thumbhash"] = None
            self.assertEqual(after["archives"], before["archives"])
            self.assertEqual(after["tankoubons"], before["tankoubons"])
            self.assertEqual(after["stamps"], before["stamps"])
            # Every old category is back as it was; the drop's first-start Favorites may be
            # another one (or the same id, when the drop ran within the same second).
            old_cats = before["categories"]
            self.assertTrue(all(cat in after["categories"] for cat in old_cats))
            new_cats = [cat for cat in after["categories"] if cat not in old_cats]
            self.assertIn([cat["name"] for cat in new_cats], ([], ["🔖 Favorites"]))
            self.assertEqual((await services.categories.get(lib.dynamic))["pinned"], 0)
            await rebuild_search_db(services)
            after_search = await self.search_db()
            # A backup does not carry isnew (nor does the original's): re-imports are new.
            self.assertEqual(after_search.pop("LRR_NEW"), sorted(lib.ids))
            before_search.pop("LRR_NEW")
            self.assertEqual(after_search, before_search)
        return d(run())

    async def search_db(self) -> dict[str, Any]:
        """DB3 without the times that differ between two rebuilds."""
        search = self.redis.db(DB.SEARCH)
        out: dict[str, Any] = {}
        for key in sorted(await search.keys("*")):
            kind = await search.type(key)
            if kind == "set":
                out[key] = sorted(await search.smembers(key))
            elif kind == "zset":
                out[key] = await search.zrange(key, 0, -1, withscores=True)
            elif kind == "hash":
                out[key] = await search.hgetall(key)
            else:
                out[key] = "present"
        return out

    def test_restore_partial(self) -> None:
        """Only archives that exist are restored or listed; a tank's summary and tags come
        back (the original's job dies there); thumbhash replaces only a set one; junk and
        hostile ids are skipped."""
        async def run() -> None:
            services = self.services()
            lib = self.lib
            ghost = "0" * 40
            backup = {
                "categories": [
                    {"catid": "SET_0000000042", "name": "Restored", "search": "",
                     "archives": [lib.a, ghost, lib.tank]},
                    {"catid": "LRR_CONFIG", "name": "evil"}, "junk",
                ],
                "tankoubons": [{"tankid": "TANK_0000000042", "name": "T", "summary": "S",
                                "tags": "x:y", "archives": [ghost, lib.e, lib.a]}],
                "stamps": [{"stamp_id": "STAMPS_1_5", "content": "c", "position": "1,1",
                            "archive_id": lib.e},
                           {"stamp_id": "STAMPS_1_6", "content": "c", "position": "1,1",
                            "archive_id": ghost},
                           {"stamp_id": "LRR_CONFIG", "content": "x", "position": "1,1",
                            "archive_id": lib.e}],
                "archives": [
                    {"arcid": lib.e, "title": "New E", "tags": "a,b", "summary": "s",
                     "thumbhash": "1" * 40, "stamps": '["STAMPS_1_5"]'},
                    {"arcid": lib.a, "title": "", "tags": "t", "summary": None,
                     "thumbhash": "2" * 40, "stamps": None},
                    {"arcid": ghost, "title": "Ghost", "tags": "g"},
                ],
            }
            await restore_backup(services, backup)
            archives = services.archives
            self.assertIsNone(await archives.get(ghost))
            e = await archives.get(lib.e)
            self.assertEqual((e["title"], e["tags"], e["summary"], e.get("thumbhash"),
                              e["stamps"]), ("New E", "a,b", "s", None, '["STAMPS_1_5"]'))
            a = await archives.get(lib.a)
            self.assertEqual((a["title"], a["tags"], a["summary"], a["thumbhash"]),
                             ("Alpha Title", "t", "", "2" * 40))
            cat = await services.categories.get("SET_0000000042")
            self.assertEqual((cat["name"], cat["archives"], cat["pinned"]),
                             ("Restored", [lib.a, lib.tank], 0))
            found = await services.tankoubons.get("TANK_0000000042")
            tank, _ = found
            self.assertEqual((tank.name, tank.summary, tank.tags, tank.archives),
                             ("T", "S", "x:y", [lib.e, lib.a]))
            main = self.redis.db(DB.MAIN)
            self.assertEqual(await main.hgetall("STAMPS_1_5"),
                             {"content": "c", "position": "1,1", "archive_id": lib.e})
            self.assertFalse(await main.exists("STAMPS_1_6"))
            self.assertEqual(await main.type("LRR_CONFIG"), "hash")
            self.assertNotIn("content", await main.hgetall("LRR_CONFIG"))
            self.assertFalse(await main.exists("SET_0000000000"))
        return d(run())

    def test_restore_runs_clean_first(self) -> None:
        """An archive whose file is gone is deleted by the clean a restore starts with."""
        async def run() -> None:
            services = self.services()
            os.unlink(self.lib.paths[3])
            await restore_backup(services, {"archives": []})
            self.assertIsNone(await services.archives.get(self.lib.e))
            self.assertTrue((services.settings.data / "autobackup.json").exists())
        return d(run())

    def test_clean_counts(self) -> None:
        """Missing files are deleted; a file the watcher no longer maps is unlinked; a file
        mapped to a new id moves to it; an entry that is no hash is deleted too."""
        async def run() -> None:
            services = self.services()
            lib = self.lib
            archives = services.archives
            os.unlink(lib.paths[0])                      # Alpha: gone → deleted
            await archives.filemap_delete(str(lib.paths[1]))  # Beta: unknown → unlinked
            new_id = "9" * 40                            # Gamma: its file now has a new id
            await archives.filemap_set(str(lib.paths[2]), new_id)
            await self.redis.db(DB.MAIN).set("8" * 40, "not a hash")
            deleted, unlinked = await clean_database(services)
            self.assertEqual((deleted, unlinked), (2, 1))
            self.assertIsNone(await archives.get(lib.a))
            self.assertFalse(await self.redis.db(DB.MAIN).exists("8" * 40))
            self.assertEqual((await archives.get(lib.b))["file"], "")
            self.assertIsNone(await archives.get(lib.c))
            self.assertEqual((await archives.get(new_id))["tags"], "language:english")
            self.assertEqual((await archives.get(lib.e))["file"], str(lib.paths[3]))
            tank, _ = await services.tankoubons.get(lib.tank)
            self.assertEqual(tank.archives, [lib.b, new_id])
            autobackup = json.loads((services.settings.data / "autobackup.json").read_text())
            self.assertIn(lib.a, [entry["arcid"] for entry in autobackup["archives"]])
            # A second clean deletes what the first unlinked (its file is now "").
            self.assertEqual(await clean_database(services), (1, 0))
        return d(run())

    def test_clean_without_filemap(self) -> None:
        """With no LRR_FILEMAP at all nothing is unlinked (the original would unlink all)."""
        async def run() -> None:
            services = self.services()
            await services.archives.filemap_clear()
            self.assertEqual(await clean_database(services), (0, 0))
            self.assertEqual((await services.archives.get(self.lib.a))["file"],
                             str(self.lib.paths[0]))
        return d(run())

    def test_rebuild(self) -> None:
        """build_stat_hashes recreates DB3 as LRR-NOTES §2.5 says, and sets LAST_JOB_TIME."""
        async def run() -> None:
            services = self.services()
            lib = self.lib
            search = self.redis.db(DB.SEARCH)
            await search.hset("LRR_SEARCHCACHE", "q", "stale")
            await search.sadd("INDEX_stale", "x")
            await rebuild_search_db(services)
            self.assertIsNotNone(await StatsStore(self.redis).last_job_time())
            self.assertFalse(await search.exists("INDEX_stale"))
            self.assertEqual(await search.keys("lrrd:rebuild:*"), [])
            self.assertFalse(await search.exists("LRR_SEARCHCACHE"))
            self.assertEqual(set(await search.smembers("LRR_TANKGROUPED")),
                             {lib.tank, lib.a, lib.e})
            self.assertEqual(set(await search.smembers("INDEX_action")), {lib.b, lib.tank})
            self.assertEqual(set(await search.smembers("INDEX_artist:aoi")),
                             {lib.a, lib.b, lib.tank})
            self.assertEqual(set(await search.smembers("INDEX_tank:own")), {lib.tank})
            stats = dict(await search.zrange("LRR_STATS", 0, -1, withscores=True))
            self.assertEqual((stats["artist:aoi"], stats["tank:own"], stats["extra"]),
                             (2, 1, 1))
            self.assertEqual(set(await search.smembers("LRR_NEW")), {lib.a, lib.c, lib.e})
            self.assertEqual(set(await search.smembers("LRR_UNTAGGED")), {lib.e})
            self.assertEqual(await search.hgetall("LRR_URLMAP"), {"example.com/g/1": lib.a})
            titles = set(await search.zrange("LRR_TITLES", 0, -1))
            self.assertIn("tank one\x00" + lib.tank, titles)
            self.assertIn("empty tank\x00" + lib.empty_tank, titles)
            self.assertIn("alpha title\x00" + lib.a, titles)
            self.assertEqual(len(titles), 6)
        return d(run())

    def test_rebuild_conflict(self) -> None:
        """A write landing while the new index is computed cancels the swap; the rebuild
        then recomputes and succeeds."""
        async def run() -> None:
            stats = StatsStore(self.redis)
            services = self.services()

            async def compute() -> Any:
                await services.archives.set_tags(self.lib.e, "late:write")
                return plan_search_index({}, [], 1)

            with self.assertRaises(RebuildConflict):
                await stats.replace_search_db(compute)
            self.assertIsNone(await stats.last_job_time())
            self.assertEqual(await self.redis.db(DB.SEARCH).keys("lrrd:rebuild:*"), [])
            self.assertTrue(await self.redis.db(DB.SEARCH).exists("INDEX_late:write"))
            await rebuild_search_db(services)
            self.assertTrue(await self.redis.db(DB.SEARCH).sismember("INDEX_late:write",
                                                                      self.lib.e))
        return d(run())

    def test_find_duplicates(self) -> None:
        """Thumbhashes within the threshold group (transitively) into LRR_DUPLICATE_GROUPS."""
        async def run() -> None:
            services = self.services()
            lib = self.lib
            for arcid, value in ((lib.a, "0" * 40), (lib.b, "0" * 38 + "11"),
                                 (lib.c, "0" * 36 + "1111"), (lib.e, "f" * 40)):
                await services.archives.set_fields(arcid, {"thumbhash": value})
            groups = await find_duplicates(services, 2)
            self.assertEqual(groups, [sorted([lib.a, lib.b, lib.c])])
            stored = await self.redis.db(DB.CONFIG).hgetall("LRR_DUPLICATE_GROUPS")
            self.assertEqual(stored, group_fields(groups))
        return d(run())


class FileTests(unittest.TestCase):
    def test_atomic_write(self) -> None:
        """A backup file lands whole; a failed write leaves neither it nor a temp file."""
        folder = Path(self.mktemp())
        path = folder / "backup_1.json"
        size = write_backup_file(path, {"archives": [], "categories": []})
        self.assertEqual(path.read_bytes(), b'{"archives":[],"categories":[]}')
        self.assertEqual(size, path.stat().st_size)
        self.assertEqual(os.listdir(folder), ["backup_1.json"])

        def boom(src: str, dst: str) -> None:
            raise OSError("disk full")

        self.patch(os, "replace", boom)
        with self.assertRaises(OSError):
            write_atomically(folder / "other.json", b"{}")
        self.assertEqual(os.listdir(folder), ["backup_1.json"])

    def test_parse_errors(self) -> None:
        """Non-JSON, non-UTF-8 and non-object texts are BackupErrors."""
        for bad in (b"not json", b"\xff\xfe", b"[1, 2]", "null"):
            with self.assertRaises(BackupError):
                parse_backup(bad)


def _brute_groups(hashes: dict[str, str], threshold: int) -> list[list[str]]:
    """The original's algorithm: every pair, depth-first through the graph."""
    ids = list(hashes)
    edges = {i: set() for i in ids}
    for a, b in combinations(ids, 2):
        if len(hashes[a]) == len(hashes[b]) and \
                sum(x != y for x, y in zip(hashes[a], hashes[b])) <= threshold:
            edges[a].add(b)
            edges[b].add(a)
    seen: set[str] = set()
    groups = []
    for start in ids:
        if start in seen:
            continue
        stack, group = [start], []
        while stack:
            node = stack.pop()
            if node in seen:
                continue
            seen.add(node)
            group.append(node)
            stack.extend(edges[node] - seen)
        if len(group) >= 2:
            groups.append(sorted(group))
    return sorted(groups)


class DuplicateTests(unittest.SynchronousTestCase):
    def test_groups(self) -> None:
        """Transitive groups, identical hashes, thresholds 0 and past the length."""
        hashes = {"a": "0000", "b": "0001", "c": "0011", "d": "1111", "e": "0000"}
        self.assertEqual(duplicate_groups(hashes, 0), [["a", "e"]])
        self.assertEqual(duplicate_groups(hashes, 1), [["a", "b", "c", "e"]])
        self.assertEqual(duplicate_groups(hashes, 4), [["a", "b", "c", "d", "e"]])
        self.assertEqual(duplicate_groups(hashes, -1), [])
        self.assertEqual(group_fields([["a" * 40, "b" * 40]]),
                         {"dupgp_" + "a" * 10 + "b" * 10: json.dumps(["a" * 40, "b" * 40],
                                                                     separators=(",", ":"))})

    @given(st.dictionaries(st.text(alphabet="abcdef", min_size=1, max_size=4),
                           st.text(alphabet="01", min_size=6, max_size=6), max_size=12),
           st.integers(min_value=0, max_value=7))
    @settings(max_examples=200, deadline=None)
    def test_same_as_every_pair(self, hashes: dict[str, str], threshold: int) -> None:
        """The sliced comparison finds exactly the groups of the all-pairs search."""
        self.assertEqual(duplicate_groups(hashes, threshold), _brute_groups(hashes, threshold))

    def test_plan_counts(self) -> None:
        """An archive in two tanks counts once in LRR_STATS; a missing member is skipped."""
        archives = {"a" * 40: ("x,X,y", "T", "true")}
        tanks = [Tank(id="TANK_0000000001", name="One", archives=["a" * 40, "b" * 40]),
                 Tank(id="TANK_0000000002", name="Two", archives=["a" * 40])]
        plan = plan_search_index(archives, tanks, 7)
        self.assertEqual(plan.stats, {"x": 1, "y": 1})
        self.assertEqual(plan.index["x"], {"a" * 40, "TANK_0000000001", "TANK_0000000002"})
        self.assertEqual(plan.new, {"a" * 40})
        self.assertEqual(plan.untagged, set())
        self.assertEqual(plan.tankgrouped, {"TANK_0000000001", "TANK_0000000002"})
        self.assertEqual(plan.last_job_time, 7)
