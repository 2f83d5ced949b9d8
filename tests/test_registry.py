"""The category and tankoubon registries (``lrrd.store.registry``) on a real Redis: kept in step by
every write, rebuilt for a database LANraragi wrote, and no write path left scanning the keyspace."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred

from lrrd.library.backup import restore_backup
from lrrd.library.database import drop_database, rebuild_search_db
from lrrd.library.tank_upkeep import delete_archive
from lrrd.store import registry
from lrrd.store.redis import DB
from lrrd.store.registry import (
    CATEGORY_REGISTRY, REGISTRY_MARKER, TANK_REGISTRY, rebuild_registries,
)
from tests.fixtures.library import LibraryTestCase

A = "a" * 40
B = "b" * 40
C = "c" * 40
NEW = "d" * 40


def d(coro: Any) -> Deferred[Any]:
    return Deferred.fromCoroutine(coro)


class RegistryTests(LibraryTestCase):
    """Registries through create/rename/delete, archive moves, drop, restore and foreign data."""

    @property
    def main(self) -> Any:
        return self.redis.db(DB.MAIN)

    async def registered(self) -> tuple[list[str], list[str]]:
        cats = await self.main.smembers(CATEGORY_REGISTRY)
        tanks = await self.main.smembers(TANK_REGISTRY)
        return sorted(cats), sorted(tanks)

    async def keys_calls(self) -> dict[str, int]:
        """How many KEYS and SCAN commands Redis ran since the last ``reset_stats``."""
        info = await self.main.execute_command("INFO", "commandstats")
        calls = {"keys": 0, "scan": 0}
        for line in info.splitlines():
            for name in calls:
                if line.startswith(f"cmdstat_{name}:"):
                    calls[name] = int(line.split("calls=")[1].split(",")[0])
        return calls

    async def reset_stats(self) -> None:
        await self.main.execute_command("CONFIG", "RESETSTAT")

    async def archives(self, *ids: str) -> None:
        """Archive hashes over files that exist (a restore cleans away the others first)."""
        for arcid in ids:
            path = self.content / f"{arcid[:4]}.cbz"
            path.write_bytes(b"")
            await self.services.archives.create(arcid, str(path))

    def test_categories_follow_create_rename_restore_delete(self) -> None:
        """Create and restore register a category, a rename keeps it, a delete drops it."""
        async def run() -> None:
            categories = self.services.categories
            first = await categories.create("One")
            dynamic = await categories.create("Dyn", search="artist:x")
            self.assertEqual(await self.registered(), (sorted([first, dynamic]), []))
            await categories.update(first, "Renamed", "", True)
            await categories.restore("SET_0000000042", "Restored", "", [])
            self.assertEqual((await self.registered())[0],
                             sorted([first, dynamic, "SET_0000000042"]))
            self.assertEqual(await categories.ids(), sorted([first, dynamic, "SET_0000000042"]))
            await categories.delete(first)
            await categories.delete("SET_0000000042")
            self.assertEqual(await self.registered(), ([dynamic], []))
            self.assertEqual(await categories.ids(), [dynamic])
        return d(run())

    def test_tanks_follow_create_rename_delete(self) -> None:
        """Create (new id or a wanted one) registers a tank, a rename keeps one entry, a delete
        drops it; updates and member changes leave the registry alone."""
        async def run() -> None:
            tanks = self.services.tankoubons
            await self.archives(A, B)
            first = await tanks.create("First")
            self.assertEqual(await tanks.create("Renamed", first), first)
            wanted = await tanks.create("Wanted", "TANK_0000000007")
            self.assertEqual(await self.registered(), ([], sorted([first, wanted])))
            await tanks.update(first, archives=[A, B], summary="s")
            await tanks.add_archive(wanted, A)
            await tanks.remove_archive(first, B)
            self.assertEqual(await tanks.ids(), sorted([first, wanted]))
            self.assertTrue(await tanks.delete(first))
            self.assertEqual(await self.registered(), ([], [wanted]))
            self.assertEqual(await tanks.ids(), [wanted])
        return d(run())

    def test_archive_writes_scan_nothing(self) -> None:
        """Once registered, change_id, delete, tanks_of_archive, categories_of_archive and the
        tank scripts move memberships right without one KEYS or SCAN."""
        async def run() -> None:
            services = self.services
            await self.archives(A, B, C)
            cat = await services.categories.create("Static")
            await services.categories.add_archive(cat, A)
            await services.categories.add_archive(cat, B)
            tank = await services.tankoubons.create("Tank")
            other = await services.tankoubons.create("Other", "TANK_0000000009")
            await services.tankoubons.update(tank, archives=[A, B])
            await services.tankoubons.update(other, archives=[A])
            await rebuild_registries(self.redis)
            await self.reset_stats()

            self.assertEqual(await services.tankoubons.tanks_of_archive(A), sorted([tank, other]))
            self.assertEqual([c["id"] for c in await services.categories.categories_of_archive(A)],
                             [cat])
            self.assertTrue(await services.archives.change_id(A, NEW))
            self.assertEqual(await services.tankoubons.tanks_of_archive(NEW),
                             sorted([tank, other]))
            self.assertEqual(await services.tankoubons.tanks_of_archive(A), [])
            self.assertEqual((await services.categories.get(cat))["archives"], [NEW, B])
            self.assertEqual([c["id"] for c in await services.categories.categories_of_archive(NEW)],
                             [cat])
            self.assertTrue(await delete_archive(services.archives, services.tankoubons, NEW))
            self.assertEqual((await services.categories.get(cat))["archives"], [B])
            found = await services.tankoubons.get(tank)
            self.assertEqual(found[0].archives if found else None, [B])
            await services.tankoubons.remove_archive(tank, B)
            await services.categories.list_all()
            await services.tankoubons.ids()
            self.assertEqual(await self.keys_calls(), {"keys": 0, "scan": 0})
        return d(run())

    def test_lanraragi_database_is_picked_up(self) -> None:
        """Keys LANraragi wrote (no registry): the first script that needs them builds the
        registries once; rebuild_registries (start-up) adds what was written meanwhile and
        forgets keys deleted behind lrrd's back; look-alike keys of another type stay out."""
        async def run() -> None:
            services = self.services
            await self.archives(A, B)
            main = self.main
            await main.hmset("SET_1600000000", {"name": "LRR cat", "search": "", "pinned": "0",
                                                "archives": json.dumps([A])})
            await main.zadd("TANK_1600000000", 0, "name_LRR tank", 1, A, 2, B)
            await main.set("SET_notahash1", "x")
            self.assertEqual(await main.exists(REGISTRY_MARKER), 0)

            await self.reset_stats()
            self.assertEqual(await services.tankoubons.tanks_of_archive(B), ["TANK_1600000000"])
            self.assertEqual(await self.keys_calls(), {"keys": 2, "scan": 0})
            self.assertEqual(await self.registered(), (["SET_1600000000"], ["TANK_1600000000"]))
            self.assertEqual(await main.get(REGISTRY_MARKER), "1")
            await services.tankoubons.tanks_of_archive(A)
            self.assertEqual((await self.keys_calls())["keys"], 2)

            # LANraragi ran again: one more category, one tank gone.
            await main.hmset("SET_1600000001", {"name": "later", "search": "", "pinned": "0",
                                                "archives": json.dumps([B])})
            await main.delete("TANK_1600000000")
            self.assertEqual(await rebuild_registries(self.redis), (2, 0))
            self.assertEqual(await self.registered(),
                             (["SET_1600000000", "SET_1600000001"], []))
            self.assertEqual([c["id"] for c in await services.categories.categories_of_archive(B)],
                             ["SET_1600000001"])
        return d(run())

    def test_start_up_registers(self) -> None:
        """The store's start-up step registers what LANraragi left, before any request."""
        async def run() -> None:
            from lrrd.tap import StoreService

            await self.main.hmset("SET_1600000000", {"name": "c", "search": "", "pinned": "0",
                                                     "archives": "[]"})
            await self.main.zadd("TANK_1600000000", 0, "name_t")
            await StoreService(self.redis, self.settings, reactor)._prepare()
            cats, tanks = await self.registered()
            self.assertIn("SET_1600000000", cats)  # beside the first-start Favorites
            self.assertEqual(tanks, ["TANK_1600000000"])
            self.assertEqual(await self.main.get(REGISTRY_MARKER), "1")
        return d(run())

    def test_stale_entries_are_skipped(self) -> None:
        """An id whose key was deleted outside lrrd is skipped and dropped by the next reader;
        a rebuild that found a key deleted since does not bring it back."""
        async def run() -> None:
            tanks = self.services.tankoubons
            await self.archives(A)
            tank = await tanks.create("T")
            await tanks.update(tank, archives=[A])
            await rebuild_registries(self.redis)
            await self.main.delete(tank)
            self.assertEqual(await tanks.tanks_of_archive(A), [])
            self.assertEqual(await self.registered(), ([], []))
            counts = await self.main.eval(registry._MERGE, [], ["1", "SET_0000000001",
                                                                "TANK_0000000001"])
            self.assertEqual(counts, [0, 0])
            self.assertEqual(await self.registered(), ([], []))
        return d(run())

    def test_search_rebuild_registers(self) -> None:
        """build_stat_hashes also registers categories and tanks written behind lrrd's back."""
        async def run() -> None:
            await self.archives(A)
            await rebuild_registries(self.redis)
            await self.main.zadd("TANK_1600000005", 0, "name_Late", 1, A)
            await rebuild_search_db(self.services)
            self.assertEqual(await self.registered(), ([], ["TANK_1600000005"]))
            self.assertEqual(await self.services.tankoubons.tanks_of_archive(A),
                             ["TANK_1600000005"])
        return d(run())

    def test_drop_and_restore(self) -> None:
        """After a drop only the first-start category is registered; a restore registers the
        categories and tanks it brings back, and archive deletes then find them."""
        async def run() -> None:
            services = self.services
            await self.archives(A, B)
            await services.categories.create("Gone")
            await services.tankoubons.create("Gone too")
            await drop_database(services)
            cats, tanks = await self.registered()
            self.assertEqual((len(cats), tanks), (1, []))
            self.assertEqual(await self.main.get(REGISTRY_MARKER), "1")
            favorites = cats[0]

            await self.archives(A, B)
            await restore_backup(services, {
                "categories": [{"catid": "SET_1500000000", "name": "Back", "search": "",
                                "archives": [A, B]}],
                "tankoubons": [{"tankid": "TANK_1500000000", "name": "Back tank", "summary": "",
                                "tags": "", "archives": [A, B]}],
                "archives": [],
            })
            self.assertEqual(await self.registered(),
                             (sorted([favorites, "SET_1500000000"]), ["TANK_1500000000"]))
            await self.reset_stats()
            self.assertTrue(await delete_archive(services.archives, services.tankoubons, A))
            self.assertEqual((await services.categories.get("SET_1500000000"))["archives"], [B])
            found = await services.tankoubons.get("TANK_1500000000")
            self.assertEqual(found[0].archives if found else None, [B])
            self.assertEqual((await self.keys_calls())["keys"], 0)
        return d(run())

    def test_flushall_by_hand(self) -> None:
        """A FLUSHALL behind lrrd's back takes the marker too: the next write rebuilds from
        what is there and stays right."""
        async def run() -> None:
            services = self.services
            await self.archives(A)
            await services.tankoubons.create("Before")
            await rebuild_registries(self.redis)
            await self.main.execute_command("FLUSHALL")
            await self.archives(A, B)
            await self.main.zadd("TANK_1600000003", 0, "name_Foreign", 1, A)
            created = await services.tankoubons.create("After")
            await services.tankoubons.update(created, archives=[B])
            self.assertEqual(await services.tankoubons.tanks_of_archive(A), ["TANK_1600000003"])
            self.assertEqual(await services.tankoubons.ids(), sorted(["TANK_1600000003", created]))
        return d(run())
