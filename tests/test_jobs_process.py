"""Jobs across real processes on one Redis: exactly-once under two workers, kill -9 recovery, and
``twistd lrrd --role worker`` running a built-in task."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import deferLater

from lrrd.jobs.queue import JobQueue
from lrrd.jobs.registry import TaskRegistry
from lrrd.store.redis import DB
from tests.fixtures.app import RedisTestCase
from tests.fixtures.job_worker import RAN_BY_KEY, RUNS_KEY, registry
from tests.test_daemon import Daemon

REPO_ROOT = Path(__file__).resolve().parent.parent


def d(coro: Any) -> Deferred[Any]:
    return Deferred.fromCoroutine(coro)


class WorkerProcess:
    """``python -m tests.fixtures.job_worker`` against the test's Redis, logging to a file."""

    def __init__(self, case: RedisTestCase, *extra: str) -> None:
        self.log_path = Path(case.mktemp() + ".log")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log = open(self.log_path, "wb")
        case.addCleanup(self.log.close)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.fixtures.job_worker",
             "--redis", case.redis_server.url, *extra],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
        )
        case.addCleanup(self.kill)

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class ProcessTestCase(RedisTestCase):
    timeout = 60

    async def wait_until(self, check: Callable[[], Awaitable[Any]], timeout: float = 20,
                         what: str = "condition") -> Any:
        """Poll (real subprocesses cannot be driven by a clock) until ``check`` is truthy."""
        deadline = time.monotonic() + timeout
        while True:
            value = await check()
            if value:
                return value
            if time.monotonic() > deadline:
                self.fail(f"timed out after {timeout}s waiting for {what} (last: {value!r})")
            await deferLater(reactor, 0.05, lambda: None)

    def make_queue(self, tasks: TaskRegistry | None = None) -> JobQueue:
        return JobQueue(self.redis, tasks or registry(), clock=reactor)

    async def workers_registered(self, count: int) -> None:
        db = self.redis.db(DB.MINION)
        await self.wait_until(lambda: self._count_workers(db, count), what=f"{count} workers")

    async def _count_workers(self, db: Any, count: int) -> bool:
        return int(await db.zcard("lrrd:workers")) == count


class TwoProcessTests(ProcessTestCase):
    def test_thousand_jobs_two_processes_exactly_once(self) -> Deferred[None]:
        """1,000 jobs through 2 worker processes: each finished once, none lost, both worked."""
        async def run() -> None:
            first, second = WorkerProcess(self), WorkerProcess(self)
            await self.workers_registered(2)
            queue = self.make_queue()
            ids = []
            for start in range(0, 1000, 100):  # 100 enqueues in flight at a time
                ids += await gatherResults([d(queue.enqueue("count")) for _ in range(100)])
            self.assertEqual(sorted(ids), list(range(1, 1001)))

            async def all_finished() -> bool:
                return (await queue.stats())["finished_jobs"] >= 1000

            await self.wait_until(all_finished, what="1,000 finished jobs")
            db = self.redis.db(DB.MINION)
            runs = await db.hgetall(RUNS_KEY)
            self.assertEqual(sorted(int(job) for job in runs), sorted(ids))  # none lost
            self.assertEqual(set(runs.values()), {"1"})  # none run twice
            ran_by = await db.hgetall(RAN_BY_KEY)
            self.assertEqual(set(ran_by.values()), {str(first.pid), str(second.pid)})
            infos = await gatherResults([d(queue.info(job)) for job in ids])
            self.assertEqual({info["state"] for info in infos}, {"finished"})
            self.assertEqual({info["retries"] for info in infos}, {0})
            self.assertEqual(sorted(str(info["result"]) for info in infos),
                             sorted(ran_by[str(job)] for job in ids))
            self.assertEqual((await queue.stats())["failed_jobs"], 0)
        return d(run())

    def test_killed_worker_job_runs_again_elsewhere(self) -> Deferred[None]:
        """kill -9 of the process running a job: the other process runs it within the sweep
        interval (heartbeat 0.2 s, missing after 1 s here) and it ends finished."""
        async def run() -> None:
            processes = {p.pid: p for p in (WorkerProcess(self), WorkerProcess(self))}
            await self.workers_registered(2)
            queue = self.make_queue()
            job = await queue.enqueue("hang_once")

            async def running_pid() -> int | None:
                info = await queue.info(job) or {}
                return info.get("notes", {}).get("pid") if info.get("state") == "active" else None

            victim = await self.wait_until(running_pid, what="the job to start")
            victim_worker = (await queue.info(job) or {})["worker"]
            processes[victim].process.send_signal(signal.SIGKILL)
            processes[victim].process.wait()
            killed_at = time.monotonic()

            async def finished() -> dict[str, Any] | None:
                info = await queue.info(job)
                return info if info and info["state"] == "finished" else None

            info = await self.wait_until(finished, timeout=10, what="the job to finish")
            took = time.monotonic() - killed_at
            self.assertLess(took, 1.0 + 0.2 + 1.5, "not re-run within the sweep interval")
            survivor = next(pid for pid in processes if pid != victim)
            self.assertEqual(info["result"], survivor)
            self.assertEqual(info["retries"], 1)
            self.assertNotEqual(info["worker"], victim_worker)
            self.assertEqual((await queue.stats())["workers"], 1)  # the dead one was removed
        return d(run())


class DaemonWorkerTests(ProcessTestCase):
    def test_twistd_worker_role_runs_builtin_task(self) -> Deferred[None]:
        """``twistd lrrd --role worker`` registers a worker and runs a queued cleantemp job."""
        async def run() -> None:
            root = Path(self.mktemp()).resolve()
            root.mkdir(parents=True)
            daemon = Daemon(self, root, "--redis", self.redis_server.url, "--role", "worker",
                            "--workers", "1")
            (root / "data" / "temp").mkdir(parents=True, exist_ok=True)
            (root / "data" / "temp" / "leftover.bin").write_bytes(b"x" * 100)
            await self.workers_registered(1)
            from lrrd.jobs.tasks import builtin_registry

            queue = self.make_queue(builtin_registry())
            job = await queue.enqueue("cleantemp")

            async def finished() -> dict[str, Any] | None:
                info = await queue.info(job)
                return info if info and info["state"] == "finished" else None

            info = await self.wait_until(finished, what="cleantemp to finish")
            self.assertEqual(info["result"], {"success": 1, "error": "", "newsize": 0})
            self.assertEqual(list((root / "data" / "temp").iterdir()), [])
            self.assertTrue(daemon.stop())
            self.assertEqual((await queue.stats())["workers"], 0)  # it said goodbye
        return d(run())


class FrozenRedisTests(ProcessTestCase):
    def test_stop_does_not_hang_on_a_frozen_redis(self) -> Deferred[None]:
        """A worker stops within its STOP_TIMEOUT even when Redis no longer answers (SIGSTOP)."""
        async def run() -> None:
            from lrrd.jobs.worker import STOP_TIMEOUT, WorkerService
            from lrrd.store.redis import RedisAddress, RedisStore
            from tests.fixtures.redis import RedisServer

            server = RedisServer().start()
            self.addCleanup(server.stop)
            redis = RedisStore(RedisAddress.parse(server.url))
            redis.connect()
            self.addCleanup(lambda: Deferred.fromCoroutine(redis.disconnect()))
            await redis.wait_connected(reactor)
            worker = WorkerService(JobQueue(redis, registry(), clock=reactor), 1, reactor=reactor)
            worker.startService()
            await worker.when_started()
            assert server.process is not None
            server.process.send_signal(signal.SIGSTOP)
            self.addCleanup(server.process.send_signal, signal.SIGCONT)
            began = time.monotonic()
            await worker.stopService()
            self.assertLess(time.monotonic() - began, STOP_TIMEOUT + 1)
            server.process.send_signal(signal.SIGCONT)
        return d(run())
