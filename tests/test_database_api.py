"""The database area over real HTTP, a real Redis and a real job worker (LRR-NOTES §9.5–§9.6),
with bodies checked against the original's golden responses."""

from __future__ import annotations

import json
import os
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred

from lrrd.api.database import read_file_part, split_tag
from lrrd.store.redis import DB
from tests.fixtures.app import ApiTestCase
from tests.fixtures.reading import GOLDEN, golden, same_shape
from tests.test_backup import Library


def d(coro: Any) -> Deferred[Any]:
    return Deferred.fromCoroutine(coro)


def multipart(parts: list[tuple[str, str | None, str | None, bytes]]) -> tuple[bytes, str]:
    """A multipart/form-data body of (name, filename, content type, data) parts."""
    boundary = "lrrdBoundary7MA4YWxk"
    chunks = []
    for name, filename, ctype, data in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        head = f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
        if ctype is not None:
            head += f"Content-Type: {ctype}\r\n"
        chunks.append(head.encode() + b"\r\n" + data + b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


def golden_first(name: str) -> Any:
    """The first object of the first array of a golden file cut at 4 KB (not valid JSON whole)."""
    raw = (GOLDEN / name).read_text(encoding="utf-8")
    start = raw.index("[{") + 1
    first, _ = json.JSONDecoder().raw_decode(raw, start)
    return first


def op(operation: str, error: str = "") -> dict[str, Any]:
    return {"operation": operation, "error": error, "success": 0 if error else 1,
            "successMessage": ""}


class DatabaseApiTests(ApiTestCase):
    """The eight database operations."""

    timeout = 30

    def settings(self) -> Any:
        from dataclasses import replace

        # What --api-key gives: a drop keeps the key.
        return replace(super().settings(), api_key=self.api_key)

    def setUp(self) -> Deferred[None]:
        result = super().setUp()
        result.addCallback(lambda _: d(self._library()))
        return result

    async def _library(self) -> None:
        self.lib = Library(self.services())
        await self.lib.build()

    async def start_worker(self) -> Any:
        from lrrd.jobs.queue import JobQueue
        from lrrd.jobs.worker import WorkerService

        services = self.services()
        worker = WorkerService(JobQueue.from_services(services), 2, services, reactor=reactor)
        worker.startService()
        self.addCleanup(worker.stopService)
        await worker.when_started()
        return worker

    async def post(self, path: str, **kwargs: Any) -> Any:
        return await self.request("POST", path, auth=True, **kwargs)

    async def restore_request(self, parts: list[tuple[str, str | None, str | None, bytes]]) -> Any:
        body, ctype = multipart(parts)
        return await self.post("/api/database/restore", data=body,
                               headers={"Content-Type": ctype})

    # -- stats -----------------------------------------------------------------------------------
    def test_stats(self) -> None:
        """Shape as the golden file; minweight filters; namespace split at the first colon;
        hide_excluded_namespaces drops the configured namespaces."""
        async def run() -> None:
            from lrrd.library.database import rebuild_search_db

            await rebuild_search_db(self.services())
            response = await self.get("/api/database/stats")
            self.assertEqual(response.status, 200)
            self.assertEqual(response.header("content-type"), "application/json;charset=UTF-8")
            tags = response.json
            same_shape(self, tags, [golden_first("get_database_stats.json")])
            by_text = {(t["namespace"], t["text"]): t["weight"] for t in tags}
            self.assertEqual(by_text[("artist", "aoi")], 2)
            self.assertEqual(by_text[("series", "blue:sky")], 1)
            self.assertEqual(by_text[("", "full color")], 1)
            self.assertIn(("source", "https://example.com/g/1/"), by_text)
            self.assertTrue(any(ns == "date_added" for ns, _ in by_text))
            heavy = (await self.get("/api/database/stats?minweight=2")).json
            self.assertEqual([(t["namespace"], t["text"]) for t in heavy], [("artist", "aoi")])
            self.assertEqual((await self.get("/api/database/stats?minweight=0")).json, tags)
            hidden = (await self.get("/api/database/stats?hide_excluded_namespaces=true")).json
            self.assertFalse({t["namespace"] for t in hidden} & {"source", "date_added"})
            self.assertEqual(len(hidden), len(tags) - sum(
                1 for t in tags if t["namespace"] in ("source", "date_added")))
            bad = await self.get("/api/database/stats?minweight=abc")
            self.assertEqual(bad.status, 400)
            self.assertEqual(split_tag("a:b:c"), ("a", "b:c"))
            self.assertEqual(split_tag(":x"), ("", "x"))
            self.assertEqual(split_tag("plain"), ("", "plain"))
        return d(run())

    async def stats_truth(self, minweight: int = 1) -> bytes:
        """The stats body computed straight from ``LRR_STATS``, with no cache involved."""
        from lrrd.api.errors import json_bytes

        replies = await self.redis.db(DB.SEARCH).zrangebyscore(
            "LRR_STATS", minweight, "+inf", withscores=True)
        tags = []
        for member, score in replies or []:
            namespace, text = split_tag(member)
            tags.append({"namespace": namespace, "text": text, "weight": int(float(score))})
        return json_bytes(tags)

    def test_stats_follow_every_write(self) -> None:
        """The kept stats body is exactly LRR_STATS after each kind of write, made by this
        process's stores or by a second process's (its own connections and stores)."""
        async def run() -> None:
            from lrrd.library.database import rebuild_search_db
            from lrrd.store.archives import ArchiveStore
            from lrrd.store.redis import RedisAddress, RedisStore
            from lrrd.store.stats import StatsStore
            from lrrd.store.tankoubons import TankoubonStore

            other = RedisStore(RedisAddress.parse(self.redis_server.url))
            other.connect()
            self.addCleanup(lambda: d(other.disconnect()))
            await other.wait_connected(reactor)
            archives, tanks = ArchiveStore(other), TankoubonStore(other)
            lib = self.lib

            async def check(minweight: int = 1) -> None:
                path = "/api/database/stats" + (f"?minweight={minweight}" if minweight > 1 else "")
                first = await self.get(path)
                self.assertEqual(first.body, await self.stats_truth(minweight))
                again = await self.get(path)  # served from what was kept
                self.assertEqual(again.body, first.body)

            await rebuild_search_db(self.services())
            await check()
            await check(2)
            await archives.set_tags(lib.c, "language:english,fresh tag,artist:aoi")
            await check()
            await check(2)
            await archives.set_tags(lib.a, "full color", append=True)  # no change to the counts
            await check()
            await archives.set_tags(lib.b, "")
            await check()
            await tanks.update(lib.tank, tags="tank:renamed")
            await check()
            await archives.delete(lib.c)
            await check()
            await self.services().archives.set_tags(lib.e, "here:too")
            await check()
            await rebuild_search_db(self.services())
            await check()
            self.assertNotEqual(await self.get("/api/database/stats"), [])
            await StatsStore(other).flush_all()
            await check()
            self.assertEqual((await self.get("/api/database/stats")).json, [])
        return d(run())

    def test_stats_version_never_returns(self) -> None:
        """A flush by hand and as many writes as before do not bring an old version back:
        versions counted up from nothing are reseeded before anyone keeps them."""
        async def run() -> None:
            from lrrd.store.stats import StatsStore

            stats = StatsStore(self.redis)
            first = await stats.stats_version()
            self.assertGreaterEqual(int(first), 2 ** 40)
            self.assertEqual(await stats.stats_version(), first)
            await self.services().archives.set_tags(self.lib.e, "one,two")
            bumped = await stats.stats_version()
            self.assertNotEqual(bumped, first)
            self.redis_server.flushall()
            await self.services().archives.create("f" * 40, str(self.lib.paths[0]))
            await self.services().archives.set_tags("f" * 40, "one")
            reseeded = await stats.stats_version()
            self.assertGreaterEqual(int(reseeded), 2 ** 40)
            self.assertNotIn(reseeded, (first, bumped))
        return d(run())

    # -- backups ---------------------------------------------------------------------------------
    def test_backup_get(self) -> None:
        """The backup JSON directly, shaped like the golden one; it needs the key."""
        async def run() -> None:
            response = await self.get("/api/database/backup", auth=True)
            self.assertEqual(response.status, 200)
            self.assertEqual(response.header("content-type"), "application/json;charset=UTF-8")
            self.assertTrue(response.body.startswith(b'{"archives":[{"arcid":'))
            backup = response.json
            theirs = golden_first("get_database_backup.json")
            # The golden library's archives have thumbhashes and no stamps (null).
            for entry in backup["archives"]:
                self.assertEqual(sorted(entry), sorted(theirs))
                same_shape(self, {**entry, "stamps": None, "thumbhash": entry["thumbhash"] or ""},
                           theirs)
            anonymous = await self.get("/api/database/backup")
            self.assertEqual((anonymous.status, anonymous.json),
                             (401, golden("err_missing_key_backup.json")))
        return d(run())

    def test_backup_job(self) -> None:
        """POST queues backup_json; the job's detail and the file match the golden ones; the
        file is served as JSON or as an attachment."""
        async def run() -> None:
            worker = await self.start_worker()
            response = await self.post("/api/database/backup")
            self.assertEqual(response.status, 200)
            same_shape(self, response.json, golden("post_database_backup.json"))
            self.assertEqual(response.json["operation"], "queue_backup")
            job = response.json["job"]
            await worker.when("settled", job)
            detail = (await self.get(f"/api/minion/{job}/detail", auth=True)).json
            theirs = golden("get_minion_backup_detail.json")
            same_shape(self, detail["notes"], theirs["notes"])
            same_shape(self, detail["result"], theirs["result"])
            self.assertEqual(detail["result"]["filename"], f"backup_{job}.json")
            self.assertEqual(detail["notes"]["status"], "Finalizing backup...")
            self.assertEqual(detail["notes"]["total_archives"], 4)
            path = self.services().settings.temp_dir / f"backup_{job}.json"
            self.assertEqual(detail["result"]["path"], str(path))
            as_json = await self.get(f"/api/database/backup/{job}?format=json", auth=True)
            self.assertEqual(as_json.status, 200)
            self.assertEqual(as_json.header("content-type"), "application/json;charset=UTF-8")
            self.assertEqual(as_json.body, path.read_bytes())
            direct = (await self.get("/api/database/backup", auth=True)).json
            self.assertEqual(as_json.json["archives"], direct["archives"])
            entry = next(e for e in as_json.json["archives"] if e["arcid"] == self.lib.b)
            same_shape(self, entry, golden_first("get_database_backup_job_json.json"))
            as_file = await self.get(f"/api/database/backup/{job}", auth=True)
            self.assertEqual(as_file.status, 200)
            self.assertEqual(as_file.header("content-disposition"),
                             f'attachment;filename="backup_{job}.json"')
            self.assertEqual(as_file.body, as_json.body)
            os.unlink(path)
            gone = await self.get(f"/api/database/backup/{job}", auth=True)
            self.assertEqual((gone.status, gone.json),
                             (400, op("download_backup", "Backup file not found on disk")))
        return d(run())

    def test_backup_job_errors(self) -> None:
        """Unknown job, unfinished job, a job that is no backup: the original's 400s."""
        async def run() -> None:
            missing = await self.get("/api/database/backup/999", auth=True)
            self.assertEqual((missing.status, missing.json),
                             (400, op("download_backup", "Job not found")))
            queued = (await self.post("/api/database/backup")).json["job"]
            waiting = await self.get(f"/api/database/backup/{queued}", auth=True)
            self.assertEqual((waiting.status, waiting.json), (400, op(
                "download_backup", "Job not completed yet (state: inactive)")))
            worker = await self.start_worker()
            other = await self.post("/api/minion/find_duplicates/queue",
                                    params={"args": "[5]"})
            await worker.when("settled", other.json["job"])
            detail = (await self.get(f"/api/minion/{other.json['job']}/detail", auth=True)).json
            self.assertEqual((detail["state"], detail["result"]), ("finished", {}))
            wrong = await self.get(f"/api/database/backup/{other.json['job']}", auth=True)
            self.assertEqual((wrong.status, wrong.json),
                             (400, op("download_backup", "Backup file not available")))
            bad_format = await self.get(f"/api/database/backup/{queued}?format=xml", auth=True)
            self.assertEqual(bad_format.status, 400)
            anonymous = await self.get(f"/api/database/backup/{queued}")
            self.assertEqual(anonymous.status, 401)
            # The worker took the queued backup too: let it end before the worker stops.
            await worker.when("settled", queued)
        return d(run())

    # -- restore ---------------------------------------------------------------------------------
    def test_restore_bad_input(self) -> None:
        """No file, a part that is not application/json, non-JSON content: 400 JSON, no job."""
        async def run() -> None:
            none = await self.restore_request([("other", None, None, b"x")])
            self.assertEqual((none.status, none.json),
                             (400, op("queue_restore", "No file provided")))
            no_filename = await self.restore_request([("file", None, "application/json", b"{}")])
            self.assertEqual(no_filename.json["error"], "No file provided")
            for ctype in ("text/plain", "application/json; charset=utf-8", None):
                wrong = await self.restore_request([("file", "b.json", ctype, b"{}")])
                self.assertEqual((wrong.status, wrong.json),
                                 (400, op("queue_restore", "File must be JSON")), ctype)
            for junk in (b"not json", b"[1]", b"\xff", b"[" * 50000 + b"]" * 50000):
                bad = await self.restore_request([("file", "b.json", "application/json", junk)])
                self.assertEqual(bad.status, 400)
                self.assertEqual(bad.json["operation"], "queue_restore")
            empty = await self.post("/api/database/restore")
            self.assertEqual((empty.status, empty.json["error"]), (400, "No file provided"))
            jobs = await self.redis.db(DB.MINION).get("lrrd:jobs:last_id")
            self.assertIsNone(jobs)
        return d(run())

    def test_backup_drop_restore(self) -> None:
        """Backup over HTTP, drop, re-import, restore over HTTP: the metadata comes back and
        the key, the first-start category and a queued rebuild survive the drop."""
        async def run() -> None:
            services = self.services()
            lib = self.lib
            backup = (await self.get("/api/database/backup", auth=True)).body
            dropped = await self.post("/api/database/drop")
            self.assertEqual((dropped.status, dropped.json), (200, op("drop_database")))
            self.assertEqual(await services.archives.ids(), [])
            cats = await services.categories.list_all()
            self.assertEqual([cat["name"] for cat in cats], ["🔖 Favorites"])
            self.assertEqual(await services.categories.get_bookmark_link(), cats[0]["id"])
            queued = await self.get("/api/minion/1", auth=True)
            self.assertEqual((queued.status, queued.json["task"]), (200, "build_stat_hashes"))
            services.importer.covers = False
            for path in lib.paths:
                await services.importer.import_file(str(path))
            worker = await self.start_worker()
            response = await self.restore_request(
                [("file", "backup.json", "application/json", backup)])
            self.assertEqual(response.status, 200, response.body)
            self.assertEqual(set(response.json), {"operation", "success", "job"})
            self.assertEqual(response.json["operation"], "queue_restore")
            await worker.when("settled", response.json["job"])
            detail = (await self.get(f"/api/minion/{response.json['job']}/detail",
                                     auth=True)).json
            self.assertEqual((detail["state"], detail["result"]), ("finished", {"success": 1}))
            after = json.loads((await self.get("/api/database/backup", auth=True)).body)
            before = json.loads(backup)
            self.assertEqual(after["tankoubons"], before["tankoubons"])
            self.assertEqual(after["stamps"], before["stamps"])
            for old, new in zip(before["archives"], after["archives"]):
                if old["thumbhash"] is not None:
                    old["thumbhash"] = None  # re-imported without covers: nothing to replace
                self.assertEqual(new, old)
            self.assertTrue(all(cat in after["categories"] for cat in before["categories"]))
        return d(run())

    def test_search_after_drop_and_restore(self) -> None:
        """Backup, drop, re-import, restore: /api/search answers as it did before (the
        archives are new again: a backup does not carry isnew)."""
        async def run() -> None:
            services = self.services()
            lib = self.lib
            index = services.search_index
            index.startService()
            self.addCleanup(index.stopService)
            await index.when_loaded()
            queries = [{}, {"filter": "artist:aoi"}, {"filter": "tank:own"},
                       {"filter": "Alpha"}, {"groupby_tanks": "false", "sortby": "title"},
                       {"category": lib.static}, {"untaggedonly": "true"},
                       {"sortby": "artist", "order": "desc", "groupby_tanks": "false"}]

            async def answers() -> list[Any]:
                await index.sync()
                out = []
                for params in queries:
                    response = await self.get("/api/search", params=params)
                    self.assertEqual(response.status, 200, (params, response.body))
                    body = response.json
                    out.append((body["recordsTotal"], body["recordsFiltered"],
                                [(a["arcid"], a["title"], a["tags"], a["summary"])
                                 for a in body["data"]]))
                return out

            before = await answers()
            self.assertEqual(before[1][1], 2)
            backup = (await self.get("/api/database/backup", auth=True)).body
            await self.post("/api/database/drop")
            services.importer.covers = False
            for path in lib.paths:
                await services.importer.import_file(str(path))
            worker = await self.start_worker()
            response = await self.restore_request(
                [("file", "backup.json", "application/json", backup)])
            await worker.when("settled", response.json["job"])
            self.assertEqual(await answers(), before)
        return d(run())

    def test_restore_job_failure(self) -> None:
        """A restore job given something that is no backup fails with {"error": ...}."""
        async def run() -> None:
            worker = await self.start_worker()
            from lrrd.jobs.queue import JobQueue

            # The spec's /minion/{task}/queue does not list restore_backup: queue it directly.
            job = await JobQueue.from_services(self.services()).enqueue("restore_backup",
                                                                       ["not json"])
            await worker.when("settled", job)
            detail = (await self.get(f"/api/minion/{job}/detail", auth=True)).json
            self.assertEqual(detail["state"], "failed")
            self.assertIn("not valid JSON", detail["result"]["error"])
        return d(run())

    # -- maintenance -----------------------------------------------------------------------------
    def test_clear_new(self) -> None:
        """DELETE /database/isnew sets every isnew to false and empties LRR_NEW."""
        async def run() -> None:
            services = self.services()
            anonymous = await self.request("DELETE", "/api/database/isnew")
            self.assertEqual(anonymous.status, 401)
            response = await self.request("DELETE", "/api/database/isnew", auth=True)
            self.assertEqual((response.status, response.json), (200, op("clear_new_all")))
            for arcid in self.lib.ids:
                self.assertEqual((await services.archives.get(arcid))["isnew"], "false")
            self.assertFalse(await self.redis.db(DB.SEARCH).exists("LRR_NEW"))
        return d(run())

    def test_clean(self) -> None:
        """POST /database/clean reports deleted and unlinked, writes autobackup.json into the
        data folder and queues a rebuild."""
        async def run() -> None:
            services = self.services()
            os.unlink(self.lib.paths[0])
            await services.archives.filemap_delete(str(self.lib.paths[1]))
            response = await self.post("/api/database/clean")
            self.assertEqual((response.status, response.json), (200, {
                "operation": "clean_database", "deleted": 1, "unlinked": 1, "success": 1}))
            self.assertTrue((services.settings.data / "autobackup.json").exists())
            queued = (await self.get("/api/minion/1/detail", auth=True)).json
            self.assertEqual((queued["task"], queued["priority"]), ("build_stat_hashes", 3))
            self.assertEqual((await self.request("POST", "/api/database/clean")).status, 401)
        return d(run())


class UploadPartTests(ApiTestCase.__mro__[-2]):  # a plain trial TestCase
    def test_read_file_part(self) -> None:
        """The first file upload's bytes and raw Content-Type; a truncated part is an error."""
        import io

        from multipart import MultipartError

        body, ctype = multipart([("x", None, None, b"1"),
                                 ("file", "a.json", "application/json", b'{"a":1}'),
                                 ("file", "b.json", "text/plain", b"second")])
        self.assertEqual(read_file_part(io.BytesIO(body), ctype),
                         (True, "application/json", b'{"a":1}'))
        self.assertEqual(read_file_part(io.BytesIO(body), "text/plain"), (False, None, b""))
        self.assertEqual(read_file_part(None, ctype), (False, None, b""))
        with self.assertRaises(MultipartError):
            read_file_part(io.BytesIO(body[:-60]), ctype)
