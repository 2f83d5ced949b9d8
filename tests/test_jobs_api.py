"""The minion API and DELETE /api/tempfolder over real HTTP, checked against the golden responses
of the original and the spec's examples, field by field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.trial.unittest import FailTest

from lrrd.api.minion import MinionApi
from lrrd.api.misc import MiscApi
from lrrd.jobs.queue import JobFailed, JobQueue
from lrrd.jobs.registry import TaskRegistry
from lrrd.jobs.worker import JobContext, WorkerService
from lrrd.store.redis import DB
from tests.fixtures.app import ApiTestCase

REPO_ROOT = Path(__file__).resolve().parent.parent
# The spec lives beside the repository: /work/shared/spec during development, ../shared/spec in CI.
SPEC_DIR = REPO_ROOT.parent / "shared" / "spec"
GOLDEN = SPEC_DIR / "golden"
ARCHIVE_ID = "8dc6167b2f18e196cbbaf915aeb65d4273c43cb0"


def golden(name: str) -> Any:
    path = GOLDEN / name
    if not path.exists():
        raise FailTest(f"{path} is missing: the spec must be checked out beside the repository")
    return json.loads(path.read_text(encoding="utf-8"))


def spec_example(path: str, method: str) -> Any:
    spec = yaml.safe_load((SPEC_DIR / "lanraragi-openapi.yaml").read_text(encoding="utf-8"))
    response = spec["paths"][path][method]["responses"]["200"]["content"]["application/json"]
    return response["schema"]["example"]


def d(coro: Any) -> Deferred[Any]:
    return Deferred.fromCoroutine(coro)


class MinionApiTestCase(ApiTestCase):
    """The real site with the minion area over a registry of test tasks named like the original's."""

    def setUp(self) -> Deferred[None]:
        self.gate: Deferred[None] = Deferred()
        self.noted: Deferred[None] = Deferred()
        self.registry = TaskRegistry()

        async def page_thumbnails(job: JobContext, archive_id: str, force: int) -> Any:
            return {"errors": []}

        async def find_duplicates(job: JobContext, threshold: int) -> Any:
            await job.note(progress=threshold)
            self.noted.callback(None)
            await self.gate
            return {}

        async def run_plugin(job: JobContext, *args: Any) -> Any:
            raise JobFailed({"errors": ["plugin broke"]})

        self.registry.register("page_thumbnails", page_thumbnails)
        self.registry.register("find_duplicates", find_duplicates)
        self.registry.register("run_plugin", run_plugin)
        return super().setUp()

    def make_site(self) -> Any:
        from lrrd.api.site import build_site

        services = self.services()
        self.queue = JobQueue(self.redis, self.registry, clock=reactor)
        self.temp_dir = services.settings.temp_dir
        areas = [MinionApi(self.queue),
                 MiscApi(self.redis, temp_dir=self.temp_dir, run_io=services.pools.run_io)]
        return build_site(services, areas=areas)

    async def start_worker(self) -> WorkerService:
        worker = WorkerService(self.queue, 2, reactor=reactor)
        worker.startService()
        self.addCleanup(worker.stopService)
        await worker.when_started()
        return worker

    async def last_job_id(self) -> int:
        return int(await self.redis.db(DB.MINION).get("lrrd:jobs:last_id") or 0)


class ShapeTests(MinionApiTestCase):
    def test_status_and_detail_match_the_golden_responses(self) -> Deferred[None]:
        """A finished page_thumbnails job answers exactly like the original's golden job 9."""
        async def run() -> None:
            worker = await self.start_worker()
            job = await self.queue.enqueue("page_thumbnails", [ARCHIVE_ID, 0], attempts=3)
            await worker.when("settled", job)

            status = await self.get(f"/api/minion/{job}")
            self.assertEqual(status.status, 200)
            self.assertEqual(status.header("content-type"), "application/json;charset=UTF-8")
            self.assertEqual(status.json, golden("get_minion_job.json"))

            detail = await self.get(f"/api/minion/{job}/detail", auth=True)
            self.assertEqual(detail.status, 200)
            expected = golden("get_minion_job_detail.json")
            ours = detail.json
            self.assertEqual(sorted(ours), sorted(expected))
            for field, value in expected.items():
                self.assertIs(type(ours[field]), type(value), field)
            same = ("args", "attempts", "children", "expires", "lax", "notes", "parents",
                    "priority", "queue", "result", "retried", "retries", "state", "task")
            self.assertEqual({f: ours[f] for f in same}, {f: expected[f] for f in same})
            for field in ("created", "delayed", "started", "finished", "time"):
                self.assertRegex(ours[field], r"^\d{10}$", field)
            self.assertEqual(ours["id"], job)
            self.assertEqual(ours["worker"], worker.worker_id)
        return d(run())

    def test_detail_has_every_field_of_the_spec_example_and_other_goldens(self) -> Deferred[None]:
        """Detail carries exactly the spec example's fields, and a failed job the golden types."""
        async def run() -> None:
            worker = await self.start_worker()
            job = await self.queue.enqueue("run_plugin", ["regexplugin", ARCHIVE_ID, None])
            await worker.when("settled", job)
            detail = (await self.get(f"/api/minion/{job}/detail", auth=True)).json
            example = spec_example("/minion/{jobid}/detail", "get")
            self.assertEqual(sorted(detail), sorted(example))
            reference = golden("get_minion_plugin_detail.json")
            for field, value in reference.items():
                if field != "result":
                    self.assertIs(type(detail[field]), type(value), field)
            self.assertEqual(detail["args"], reference["args"])
            self.assertEqual(detail["state"], "failed")
            self.assertEqual(detail["result"], {"errors": ["plugin broke"]})
            for name in ("get_minion_backup_detail.json", "get_minion_download_detail.json",
                         "get_minion_regen_detail.json"):
                self.assertEqual(sorted(golden(name)), sorted(detail), name)
        return d(run())

    def test_inactive_job_has_null_worker_and_times(self) -> Deferred[None]:
        """Before any worker takes a job, worker, started and finished are null."""
        async def run() -> None:
            job = await self.queue.enqueue("page_thumbnails", [ARCHIVE_ID, 1], priority=2)
            detail = (await self.get(f"/api/minion/{job}/detail", auth=True)).json
            self.assertEqual((detail["state"], detail["worker"], detail["started"],
                              detail["finished"], detail["priority"]),
                             ("inactive", None, None, None, 2))
            status = (await self.get(f"/api/minion/{job}")).json
            self.assertEqual(status, {"task": "page_thumbnails", "state": "inactive",
                                      "notes": {}, "error": ""})
        return d(run())

    def test_notes_visible_while_running(self) -> Deferred[None]:
        """/api/minion/{id} shows a running job's progress notes and state active."""
        async def run() -> None:
            worker = await self.start_worker()
            job = await self.queue.enqueue("find_duplicates", [5])
            await self.noted
            status = (await self.get(f"/api/minion/{job}")).json
            self.assertEqual(status, {"task": "find_duplicates", "state": "active",
                                      "notes": {"progress": 5}, "error": ""})
            self.gate.callback(None)
            await worker.when("settled", job)
            self.assertEqual((await self.get(f"/api/minion/{job}")).json["state"], "finished")
        return d(run())

    def test_queue_job(self) -> Deferred[None]:
        """POST /api/minion/{name}/queue answers the original's body and stores args and priority."""
        async def run() -> None:
            response = await self.request(
                "POST", "/api/minion/page_thumbnails/queue?args=%5B%22" + ARCHIVE_ID
                + "%22%2C1%5D&priority=4", auth=True)
            self.assertEqual(response.status, 200)
            self.assertEqual(response.json, {"operation": "queue_minion_job", "success": 1,
                                             "job": 1})
            info = await self.queue.info(1) or {}
            self.assertEqual((info["task"], info["args"], info["priority"], info["state"]),
                             ("page_thumbnails", [ARCHIVE_ID, 1], 4, "inactive"))
            # Form fields work too, as Mojolicious's param() reads both.
            response = await self.request("POST", "/api/minion/find_duplicates/queue", auth=True,
                                          data={"args": "[5]"})
            self.assertEqual(response.json["job"], 2)
            self.assertEqual((await self.queue.info(2) or {})["priority"], 0)
        return d(run())


class BadInputTests(MinionApiTestCase):
    def test_unknown_job_id(self) -> Deferred[None]:
        """A job id that never existed answers 400 in render_api_response's envelope."""
        async def run() -> None:
            response = await self.get("/api/minion/99999999")
            self.assertEqual(response.status, 400)
            self.assertEqual(response.json, {"operation": "minion_job_status",
                                             "error": "No job with this ID.", "success": 0,
                                             "successMessage": ""})
            response = await self.get("/api/minion/99999999/detail", auth=True)
            self.assertEqual(response.status, 400)
            self.assertEqual(response.json, {"operation": "minion_job_detail",
                                             "error": "No job with this ID.", "success": 0,
                                             "successMessage": ""})
        return d(run())

    def test_non_integer_job_id(self) -> Deferred[None]:
        """A job id that is not an integer is refused by the contract with a 400 JSON body."""
        async def run() -> None:
            for path in ("/api/minion/abc", "/api/minion/1.5", "/api/minion/abc/detail"):
                response = await self.get(path, auth=True)
                self.assertEqual(response.status, 400, path)
                self.assertEqual(response.json["status"], 400, path)
                self.assertEqual(response.json["errors"][0]["path"], "/jobid", path)
        return d(run())

    def test_bad_queue_requests_enqueue_nothing(self) -> Deferred[None]:
        """Non-JSON or non-array args, unknown or unregistered task names: 400, no job stored."""
        async def run() -> None:
            response = await self.request("POST", "/api/minion/nosuchtask/queue?args=%5B%5D",
                                          auth=True)
            self.assertEqual(response.status, 400)
            self.assertEqual(response.json, golden("err_queue_minion_unknown_task.json"))
            for query in ("args=%5Bnot%20json", "args=", "args=%7B%7D", "args=5"):
                response = await self.request(
                    "POST", "/api/minion/page_thumbnails/queue?" + query, auth=True)
                self.assertEqual(response.status, 400, query)
                self.assertEqual(response.json, {
                    "operation": "queue_minion_job", "success": 0, "successMessage": "",
                    "error": "The args parameter must be a JSON array."}, query)
            # Nested past the JSON decoder's depth (a RecursionError, once a 500), in a form body.
            deep = await self.request("POST", "/api/minion/page_thumbnails/queue", auth=True,
                                      data={"args": "[" * 50000})
            self.assertEqual((deep.status, deep.json["error"]),
                             (400, "The args parameter must be a JSON array."))
            # In the spec's list, but no task of that name is registered here.
            response = await self.request("POST", "/api/minion/download_url/queue?args=%5B%5D",
                                          auth=True)
            self.assertEqual(response.status, 400)
            self.assertEqual(response.json["error"],
                             "No task named download_url is available on this server.")
            missing = await self.request("POST", "/api/minion/page_thumbnails/queue", auth=True)
            self.assertEqual(missing.status, 400)
            self.assertEqual(missing.json["errors"][0]["path"], "/args")
            bad_priority = await self.request(
                "POST", "/api/minion/page_thumbnails/queue?args=%5B%5D&priority=high", auth=True)
            self.assertEqual(bad_priority.status, 400)
            self.assertEqual(await self.last_job_id(), 0)
            self.assertEqual(await self.redis.db(DB.MINION).keys("lrrd:*"), [])
        return d(run())

    def test_detail_and_queue_need_the_key(self) -> Deferred[None]:
        """Detail and queueing are protected; the short status is public."""
        async def run() -> None:
            job = await self.queue.enqueue("page_thumbnails", [ARCHIVE_ID, 0])
            self.assertEqual((await self.get(f"/api/minion/{job}")).status, 200)
            self.assertEqual((await self.get(f"/api/minion/{job}/detail")).status, 401)
            response = await self.request("POST", "/api/minion/page_thumbnails/queue?args=%5B%5D")
            self.assertEqual(response.status, 401)
            self.assertEqual(await self.last_job_id(), 1)
        return d(run())


class TempFolderTests(MinionApiTestCase):
    def test_clean_tempfolder(self) -> Deferred[None]:
        """DELETE /api/tempfolder empties the temp folder and answers like the golden response."""
        async def run() -> None:
            (self.temp_dir / "upload-1" / "nested").mkdir(parents=True)
            (self.temp_dir / "upload-1" / "nested" / "page.jpg").write_bytes(b"x" * 4096)
            (self.temp_dir / "backup_3.json").write_text("{}")
            response = await self.request("DELETE", "/api/tempfolder", auth=True)
            self.assertEqual(response.status, 200)
            self.assertEqual(response.json, golden("delete_tempfolder.json"))
            self.assertTrue(self.temp_dir.is_dir())
            self.assertEqual(list(self.temp_dir.iterdir()), [])
            self.assertEqual((await self.request("DELETE", "/api/tempfolder")).status, 401)
        return d(run())

    def test_temp_folder_size_in_megabytes(self) -> None:
        """newsize is MB cut to two decimals, an integer when whole, as the original computes it."""
        from lrrd.jobs.maintenance import temp_folder_size

        folder = Path(self.mktemp())
        folder.mkdir()
        self.assertEqual(temp_folder_size(folder), 0)
        self.assertIs(type(temp_folder_size(folder)), int)
        (folder / "a").write_bytes(b"\0" * (3 * 1024 * 1024 // 2))
        (folder / "sub").mkdir()
        (folder / "sub" / "b").write_bytes(b"\0" * 10_000)
        self.assertEqual(temp_folder_size(folder), 1.50)
        (folder / "sub" / "c").write_bytes(b"\0" * (1024 * 1024 // 2 - 10_000))
        self.assertEqual(temp_folder_size(folder), 2)
