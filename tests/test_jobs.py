"""The job queue and its workers in one process, against a real redis-server.

Time (timestamps, delays, backoff, heartbeats) runs on a ``Clock`` the tests advance; Redis and
the wake-up connection are real, so every claim and transition goes through the Lua scripts.
"""

from __future__ import annotations

import time
from typing import Any, Awaitable

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import Clock

from lrrd.jobs.queue import InvalidJob, JobFailed, JobQueue, UnknownTask, minion_backoff
from lrrd.jobs.registry import TaskRegistry
from lrrd.jobs.worker import JobContext, WorkerService
from lrrd.store.redis import DB
from tests.fixtures.app import RedisTestCase

#: A plausible "now" for the fake clock (2026), so timestamps look like real ones.
EPOCH = 1_790_000_000.0


def d(coro: Awaitable[Any]) -> Deferred[Any]:
    return Deferred.fromCoroutine(coro)  # type: ignore[arg-type]


async def noop(job: JobContext, *args: Any) -> Any:
    return {"args": list(args)}


class JobsTestCase(RedisTestCase):
    """A registry with test tasks, a queue on a fake clock, and workers that stop after each test."""

    def setUp(self) -> Deferred[None]:
        self.clock = Clock()
        self.clock.advance(EPOCH)
        self.registry = TaskRegistry()
        self.registry.register("noop", noop)
        return super().setUp()

    def make_queue(self, **kwargs: Any) -> JobQueue:
        return JobQueue(self.redis, self.registry, clock=self.clock, **kwargs)

    async def start_worker(self, queue: JobQueue, slots: int = 1, **kwargs: Any) -> WorkerService:
        worker = WorkerService(queue, slots, reactor=reactor, **kwargs)
        worker.startService()
        self.addCleanup(worker.stopService)
        await worker.when_started()
        return worker

    async def minion_keys(self) -> list[str]:
        return sorted(await self.redis.db(DB.MINION).keys("*"))


class EnqueueTests(JobsTestCase):
    def test_enqueue_stores_a_minion_job(self) -> Deferred[None]:
        """enqueue returns increasing integer ids; info renders Minion's fields and types."""
        async def run() -> None:
            queue = self.make_queue()
            first = await queue.enqueue("noop", ["a", 1], priority=3, attempts=2,
                                        notes={"origin": "test"})
            second = await queue.enqueue("noop")
            self.assertEqual((first, second), (1, 2))
            info = await queue.info(first)
            assert info is not None
            self.assertEqual(info, {
                "args": ["a", 1], "attempts": 2, "children": [], "created": str(int(EPOCH)),
                "delayed": str(int(EPOCH)), "expires": None, "finished": None, "id": 1, "lax": 0,
                "notes": {"origin": "test"}, "parents": [], "priority": 3, "queue": "default",
                "result": None, "retried": None, "retries": 0, "started": None,
                "state": "inactive", "task": "noop", "time": str(int(EPOCH)), "worker": None,
            })
            self.assertEqual(await queue.status(first), {
                "task": "noop", "state": "inactive", "notes": {"origin": "test"}, "error": ""})
            self.assertIsNone(await queue.info(99))
            self.assertIsNone(await queue.status(99))
        return d(run())

    def test_unknown_task_and_bad_options_store_nothing(self) -> Deferred[None]:
        """Unknown task names and unstorable arguments raise at enqueue and write no key."""
        async def run() -> None:
            queue = self.make_queue()
            with self.assertRaises(UnknownTask) as caught:
                await queue.enqueue("no_such_task", [])
            self.assertEqual(str(caught.exception), "Unknown task: no_such_task")
            bad_calls: list[dict[str, Any]] = [
                {"args": "not a list"}, {"args": [object()]}, {"args": [float("nan")]},
                {"priority": "1"}, {"attempts": 0}, {"delay": -1}, {"parents": ["x"]},
                {"notes": {"n": object()}}, {"queue": ""},
            ]
            for kwargs in bad_calls:
                with self.assertRaises(InvalidJob, msg=repr(kwargs)):
                    await queue.enqueue("noop", **{"args": [], **kwargs})
            self.assertEqual(await self.minion_keys(), [])
        return d(run())

    def test_minion_backoff(self) -> None:
        """Retries wait Minion's retries**4 + 15 seconds."""
        self.assertEqual([minion_backoff(n) for n in range(3)], [15.0, 16.0, 31.0])

    def test_registry_rejects_double_registration(self) -> None:
        """A task name can be registered once; lookups of unknown names raise UnknownTask."""
        with self.assertRaises(ValueError):
            self.registry.register("noop", noop)
        with self.assertRaises(UnknownTask):
            self.registry.get("nothing")
        self.assertEqual(list(self.registry), ["noop"])


class WorkerTests(JobsTestCase):
    def test_job_runs_and_finishes(self) -> Deferred[None]:
        """A worker runs an enqueued job: state finished, result stored, worker id, times set."""
        async def run() -> None:
            queue = self.make_queue()
            worker = await self.start_worker(queue)
            job = await queue.enqueue("noop", [1, "two"])
            self.assertEqual(await worker.when("settled", job), 1)
            info = await queue.info(job)
            assert info is not None
            self.assertEqual(info["state"], "finished")
            self.assertEqual(info["result"], {"args": [1, "two"]})
            self.assertEqual(info["worker"], worker.worker_id)
            self.assertEqual(info["started"], str(int(EPOCH)))
            self.assertEqual(info["finished"], str(int(EPOCH)))
            self.assertEqual((await queue.stats())["finished_jobs"], 1)
        return d(run())

    def test_wakeup_is_fast(self) -> Deferred[None]:
        """An idle worker starts a newly enqueued job within 50 ms (woken by pub/sub)."""
        async def run() -> None:
            queue = self.make_queue()
            worker = await self.start_worker(queue)
            delays = []
            for _ in range(5):
                begun = time.monotonic()
                job = await queue.enqueue("noop")
                await worker.when("started", job)
                delays.append(time.monotonic() - begun)
                await worker.when("settled", job)
            self.assertLess(max(delays), 0.05, delays)
        return d(run())

    def test_priority_then_age(self) -> Deferred[None]:
        """Claims take the highest priority first, then the oldest job."""
        async def run() -> None:
            order: list[str] = []

            async def record(job: JobContext, name: str) -> None:
                order.append(name)

            self.registry.register("record", record)
            queue = self.make_queue()
            for name, priority in [("low-1", -1), ("mid-1", 0), ("high", 5), ("mid-2", 0),
                                   ("low-2", -1)]:
                await queue.enqueue("record", [name], priority=priority)
            worker = await self.start_worker(queue, slots=1)
            await worker.when("settled", 5)
            for job in range(1, 5):
                await worker.when("settled", job)
            self.assertEqual(order, ["high", "mid-1", "mid-2", "low-1", "low-2"])
        return d(run())

    def test_delayed_job_waits_for_its_time(self) -> Deferred[None]:
        """A job enqueued with a delay stays inactive until the clock reaches it, then runs."""
        async def run() -> None:
            queue = self.make_queue()
            worker = await self.start_worker(queue)
            job = await queue.enqueue("noop", delay=30)
            info = await queue.info(job)
            assert info is not None
            self.assertEqual(info["delayed"], str(int(EPOCH + 30)))
            self.clock.advance(29)
            self.assertEqual(await worker.pump(), 0)
            self.assertEqual((await queue.info(job) or {})["state"], "inactive")
            self.clock.advance(1)  # the worker's own timer fires now
            self.assertEqual(await worker.when("settled", job), 1)
            self.assertEqual((await queue.info(job) or {})["started"], str(int(EPOCH + 30)))
        return d(run())

    def test_retry_with_backoff_then_fail(self) -> Deferred[None]:
        """A failing job is retried after Minion's backoff and ends failed with the error."""
        async def run() -> None:
            runs: list[int] = []

            async def boom(job: JobContext) -> None:
                runs.append(job.retries)
                raise RuntimeError(f"attempt {job.retries + 1} broke")

            self.registry.register("boom", boom)
            queue = self.make_queue(expiry=600)
            worker = await self.start_worker(queue)
            job = await queue.enqueue("boom", attempts=3)
            self.assertEqual(await worker.when("settled", job), 2)  # retried
            info = await queue.info(job) or {}
            self.assertEqual((info["state"], info["retries"]), ("inactive", 1))
            self.assertEqual(info["retried"], str(int(EPOCH)))
            self.assertEqual(info["delayed"], str(int(EPOCH + 15)))
            self.assertEqual(info["result"], "RuntimeError: attempt 1 broke")
            self.assertIsNone(await self.store_ttl(queue, job))

            self.clock.advance(15)
            self.assertEqual(await worker.when("settled", job), 2)
            self.assertEqual((await queue.info(job) or {})["delayed"], str(int(EPOCH + 15 + 16)))
            self.clock.advance(16)
            self.assertEqual(await worker.when("settled", job), 3)  # failed for good
            info = await queue.info(job) or {}
            self.assertEqual(runs, [0, 1, 2])
            self.assertEqual(info["state"], "failed")
            self.assertEqual(info["retries"], 2)
            self.assertEqual(info["result"], "RuntimeError: attempt 3 broke")
            self.assertEqual(info["finished"], str(int(EPOCH + 31)))
            ttl = await self.store_ttl(queue, job)
            assert ttl is not None
            self.assertTrue(590 < ttl <= 600, ttl)
            self.assertEqual((await queue.stats())["failed_jobs"], 1)
            self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 3)
        return d(run())

    async def store_ttl(self, queue: JobQueue, job: int) -> float | None:
        return await queue.store.ttl(job)

    def test_retry_then_succeed_and_structured_failure(self) -> Deferred[None]:
        """A retry that succeeds finishes; JobFailed stores its structured result as is."""
        async def run() -> None:
            async def flaky(job: JobContext) -> str:
                if job.retries == 0:
                    raise ValueError("first time")
                return "second time lucky"

            async def refuse(job: JobContext) -> None:
                raise JobFailed({"errors": ["no cover"]})

            self.registry.register("flaky", flaky)
            self.registry.register("refuse", refuse)
            queue = self.make_queue(backoff=lambda retries: 0)
            worker = await self.start_worker(queue)
            first = await queue.enqueue("flaky", attempts=2)
            self.assertEqual(await worker.when("settled", first), 2)
            self.assertEqual(await worker.when("settled", first), 1)
            info = await queue.info(first) or {}
            self.assertEqual((info["state"], info["retries"], info["result"]),
                             ("finished", 1, "second time lucky"))
            second = await queue.enqueue("refuse")
            self.assertEqual(await worker.when("settled", second), 3)
            self.assertEqual((await queue.info(second) or {})["result"], {"errors": ["no cover"]})
            self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)  # JobFailed is not logged
        return d(run())

    def test_finished_jobs_expire(self) -> Deferred[None]:
        """Settled jobs get the configured lifetime on every key; unsettled ones none."""
        async def run() -> None:
            async def slow_note(job: JobContext) -> None:
                await job.note(progress=1)

            self.registry.register("slow_note", slow_note)
            queue = self.make_queue(expiry=3600)
            waiting = await queue.enqueue("noop")
            self.assertIsNone(await queue.store.ttl(waiting))
            worker = await self.start_worker(queue)
            parent = await queue.enqueue("slow_note")
            await worker.when("settled", waiting)
            await worker.when("settled", parent)
            db = self.redis.db(DB.MINION)
            for key in (f"lrrd:job:{parent}", f"lrrd:job:{parent}:notes"):
                ttl = int(await db.execute_command("PTTL", key))
                self.assertTrue(3_590_000 < ttl <= 3_600_000, (key, ttl))
            # A child enqueued after its parent settled must not leave an immortal children set.
            child = await queue.enqueue("noop", parents=[parent])
            self.assertTrue(0 < int(await db.execute_command("PTTL", f"lrrd:job:{parent}:children")) <= 3_600_000)
            await worker.when("settled", child)
        return d(run())

    def test_notes_while_running(self) -> Deferred[None]:
        """Notes a task writes are readable while it runs; None removes a note."""
        async def run() -> None:
            release: Deferred[None] = Deferred()
            noted: Deferred[None] = Deferred()

            async def progress(job: JobContext) -> str:
                await job.note(done=1, total=3, scratch="x")
                await job.note(scratch=None)
                noted.callback(None)
                await release
                return "ok"

            self.registry.register("progress", progress)
            queue = self.make_queue()
            worker = await self.start_worker(queue)
            job = await queue.enqueue("progress")
            await noted
            self.assertEqual(await queue.status(job), {
                "task": "progress", "state": "active", "notes": {"done": 1, "total": 3},
                "error": ""})
            release.callback(None)
            await worker.when("settled", job)
            self.assertFalse(await queue.note(12345, x=1))
        return d(run())

    def test_blocking_work_runs_in_a_thread(self) -> Deferred[None]:
        """run_in_thread runs a function off the reactor thread and returns its value."""
        async def run() -> None:
            import threading

            async def threaded(job: JobContext) -> bool:
                return bool(await job.run_in_thread(
                    lambda: threading.current_thread() is not threading.main_thread()))

            self.registry.register("threaded", threaded)
            queue = self.make_queue()
            worker = await self.start_worker(queue)
            job = await queue.enqueue("threaded")
            await worker.when("settled", job)
            self.assertIs((await queue.info(job) or {})["result"], True)
        return d(run())

    def test_parents_hold_children_back(self) -> Deferred[None]:
        """A child runs only after its parents finish; a failed parent blocks unless lax."""
        async def run() -> None:
            gate: Deferred[None] = Deferred()

            async def wait_gate(job: JobContext) -> None:
                await gate

            async def fail(job: JobContext) -> None:
                raise RuntimeError("parent failed")

            self.registry.register("wait_gate", wait_gate)
            self.registry.register("fail", fail)
            queue = self.make_queue()
            worker = await self.start_worker(queue, slots=4)
            parent = await queue.enqueue("wait_gate")
            await worker.when("started", parent)
            child = await queue.enqueue("noop", parents=[parent])
            self.assertEqual(await worker.pump(), 0)
            self.assertEqual((await queue.info(parent) or {})["children"], [child])
            self.assertEqual((await queue.info(child) or {})["parents"], [parent])
            gate.callback(None)
            await worker.when("settled", parent)
            self.assertEqual(await worker.when("settled", child), 1)

            failing = await queue.enqueue("fail")
            await worker.when("settled", failing)
            strict = await queue.enqueue("noop", parents=[failing])
            lax = await queue.enqueue("noop", parents=[failing], lax=True)
            self.assertEqual(await worker.when("settled", lax), 1)
            self.assertEqual(await worker.pump(), 0)
            self.assertEqual((await queue.info(strict) or {})["state"], "inactive")
            self.assertEqual((await queue.info(lax) or {})["lax"], 1)
            self.flushLoggedErrors(RuntimeError)
        return d(run())

    def test_unknown_task_of_another_worker_is_left_alone(self) -> Deferred[None]:
        """A worker only claims tasks it has registered; others stay queued for another worker."""
        async def run() -> None:
            other = TaskRegistry()
            other.register("elsewhere", noop)
            writer = JobQueue(self.redis, other, clock=self.clock)
            foreign = await writer.enqueue("elsewhere")
            queue = self.make_queue()
            worker = await self.start_worker(queue)
            mine = await queue.enqueue("noop")
            await worker.when("settled", mine)
            self.assertEqual((await queue.info(foreign) or {})["state"], "inactive")
        return d(run())


class ConcurrencyTests(JobsTestCase):
    def test_two_workers_run_each_job_once(self) -> Deferred[None]:
        """Two workers with several slots each share 400 jobs: every job runs exactly once."""
        async def run() -> None:
            runs: dict[int, list[int]] = {}

            async def count(job: JobContext) -> None:
                runs.setdefault(job.id, []).append(job.retries)

            self.registry.register("count", count)
            queue = self.make_queue()
            first = await self.start_worker(queue, slots=3)
            second = await self.start_worker(queue, slots=3)
            ids = await gatherResults([d(queue.enqueue("count")) for _ in range(400)])
            await gatherResults([self._settled_anywhere([first, second], job) for job in ids])
            self.assertEqual(sorted(runs), sorted(ids))
            self.assertTrue(all(len(r) == 1 for r in runs.values()))
            workers = {(await queue.info(job) or {})["worker"] for job in ids[:50]} | {
                (await queue.info(job) or {})["worker"] for job in ids[-50:]}
            self.assertEqual(workers, {first.worker_id, second.worker_id})
        return d(run())

    def _settled_anywhere(self, workers: list[WorkerService], job: int) -> Deferred[Any]:
        from twisted.internet.defer import DeferredList

        return DeferredList([w.when("settled", job) for w in workers], fireOnOneCallback=True)

    def test_dead_workers_jobs_are_requeued(self) -> Deferred[None]:
        """Jobs of a worker that stopped heart-beating go back to inactive and run elsewhere."""
        async def run() -> None:
            queue = self.make_queue()
            store = queue.store
            # A worker that claims a job and then dies without a word (no heartbeat, no settle).
            ghost = await store.register_worker(queue.now(), "ghost-host", 1)
            job = await queue.enqueue("noop", ["orphan"])
            claimed, _ = await store.claim(ghost, queue.now(), 1, ["noop"], ["default"])
            self.assertEqual([c.id for c in claimed], [job])
            self.assertEqual((await queue.info(job) or {})["worker"], ghost)

            # Sweeps by hand here; the timer's are tested below and by the kill -9 test.
            worker = await self.start_worker(queue, heartbeat_interval=3600, missing_after=10)
            self.clock.advance(10)  # exactly missing_after: not late yet
            self.assertEqual(await worker.sweep(), [])
            self.assertEqual((await queue.info(job) or {})["state"], "active")
            self.clock.advance(0.5)
            self.assertEqual(await worker.sweep(), [job])
            self.assertEqual(await worker.when("settled", job), 1)
            info = await queue.info(job) or {}
            self.assertEqual((info["state"], info["retries"], info["worker"]),
                             ("finished", 1, worker.worker_id))
            # The ghost's late answer is refused: it no longer holds the job.
            self.assertEqual(await store.settle(job, ghost, 0, queue.now(), "finished", '"late"',
                                                60, queue.now()), 0)
            self.assertEqual((await queue.info(job) or {})["result"], {"args": ["orphan"]})
        return d(run())

    def test_heartbeat_timer_beats_and_sweeps(self) -> Deferred[None]:
        """Every heartbeat_interval the worker refreshes its heartbeat and sweeps dead workers."""
        async def run() -> None:
            queue = self.make_queue()
            ghost = await queue.store.register_worker(queue.now(), "ghost", 1)
            job = await queue.enqueue("noop")
            await queue.store.claim(ghost, queue.now(), 1, ["noop"], ["default"])
            worker = await self.start_worker(queue, heartbeat_interval=2, missing_after=10)
            db = self.redis.db(DB.MINION)
            for _ in range(5):
                self.clock.advance(2)
                await worker.beating
            self.assertEqual(float(await db.zscore("lrrd:workers", str(worker.worker_id))),
                             EPOCH + 10)
            self.assertEqual((await queue.info(job) or {})["state"], "active")  # 10 s: not late
            self.clock.advance(2)
            await worker.beating
            self.assertIsNone(await db.zscore("lrrd:workers", str(ghost)))
            self.assertEqual(await worker.when("settled", job), 1)
        return d(run())

    def test_job_that_keeps_killing_workers_fails(self) -> Deferred[None]:
        """After MAX_ORPHANED lost workers a job fails with "Worker went away." instead of looping."""
        async def run() -> None:
            queue = self.make_queue()
            store = queue.store
            job = await queue.enqueue("noop")
            for round_ in range(4):
                ghost = await store.register_worker(queue.now(), "ghost", round_)
                claimed, _ = await store.claim(ghost, queue.now(), 1, ["noop"], ["default"])
                self.assertEqual([c.id for c in claimed], [job])
                self.clock.advance(11)
                self.assertEqual(await store.sweep(queue.now(), 10, 3, 60), [job])
            info = await queue.info(job) or {}
            self.assertEqual((info["state"], info["result"]), ("failed", "Worker went away."))
        return d(run())

    def test_stopping_hands_back_running_jobs(self) -> Deferred[None]:
        """A worker that stops puts its running jobs back to inactive for another worker."""
        async def run() -> None:
            async def forever(job: JobContext) -> None:
                if job.retries == 0:
                    await Deferred()

            self.registry.register("forever", forever)
            queue = self.make_queue()
            first = WorkerService(queue, 1, reactor=reactor)
            first.startService()
            await first.when_started()
            job = await queue.enqueue("forever")
            await first.when("started", job)
            await first.stopService()
            info = await queue.info(job) or {}
            self.assertEqual((info["state"], info["retries"]), ("inactive", 1))
            second = await self.start_worker(queue)
            self.assertEqual(await second.when("settled", job), 1)
        return d(run())

    def test_many_processes_share_one_counter(self) -> Deferred[None]:
        """Worker ids are distinct integers and stats count registered workers."""
        async def run() -> None:
            queue = self.make_queue()
            first = await self.start_worker(queue)
            second = await self.start_worker(queue)
            self.assertNotEqual(first.worker_id, second.worker_id)
            self.assertEqual((await queue.stats())["workers"], 2)
        return d(run())
