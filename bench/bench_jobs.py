"""Enqueue-to-finish throughput of no-op jobs: lrrd's queue and workers on one private Redis.

Run from the repository root: ``.venv/bin/python bench/bench_jobs.py [--jobs N] [--processes P]
[--slots S]``. It starts a redis-server on a unix socket, P worker processes (lrrd's
``WorkerService`` with a ``noop`` task, S slots each) and enqueues N jobs from this process, a
bounded number in flight, timing from the first enqueue until the last job is finished.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twisted.internet import reactor  # noqa: E402
from twisted.internet.defer import Deferred, DeferredSemaphore, gatherResults  # noqa: E402
from twisted.internet.task import deferLater, react  # noqa: E402

from lrrd.jobs.queue import JobQueue  # noqa: E402
from lrrd.jobs.registry import TaskRegistry  # noqa: E402
from lrrd.jobs.worker import JobContext, WorkerService  # noqa: E402
from lrrd.store.redis import DB, RedisAddress, RedisStore  # noqa: E402
from tests.fixtures.redis import RedisServer  # noqa: E402


async def noop(job: JobContext) -> None:
    return None


def registry() -> TaskRegistry:
    tasks = TaskRegistry()
    tasks.register("noop", noop)
    return tasks


def run_worker(url: str, slots: int) -> None:
    """A worker process: the production WorkerService with the bench's task."""
    redis = RedisStore(RedisAddress.parse(url))
    redis.connect()
    queue = JobQueue(redis, registry(), clock=reactor)
    worker = WorkerService(queue, slots, SimpleNamespace(redis=redis), reactor=reactor,
                           ready=lambda: Deferred.fromCoroutine(redis.wait_connected(reactor)))
    reactor.callWhenRunning(worker.startService)
    reactor.addSystemEventTrigger("before", "shutdown", worker.stopService)
    reactor.run()


async def sleep(seconds: float) -> None:
    await deferLater(reactor, seconds, lambda: None)


async def enqueue_all(queue: JobQueue, count: int, in_flight: int) -> None:
    gate = DeferredSemaphore(in_flight)
    await gatherResults([gate.run(lambda: Deferred.fromCoroutine(queue.enqueue("noop")))
                         for _ in range(count)])


async def wait_finished(queue: JobQueue, target: int) -> None:
    while (await queue.stats())["finished_jobs"] < target:
        await sleep(0.005)


async def measure(url: str, jobs: int, processes: int, in_flight: int) -> dict[str, float]:
    redis = RedisStore(RedisAddress.parse(url))
    redis.connect()
    await redis.wait_connected(reactor)
    queue = JobQueue(redis, registry(), clock=reactor)
    while int(await redis.db(DB.MINION).zcard("lrrd:workers")) < processes:
        await sleep(0.05)

    warmup = min(500, jobs)
    await enqueue_all(queue, warmup, in_flight)
    await wait_finished(queue, warmup)

    started = time.perf_counter()
    await enqueue_all(queue, jobs, in_flight)
    enqueued = time.perf_counter() - started
    await wait_finished(queue, warmup + jobs)
    total = time.perf_counter() - started
    failed = (await queue.stats())["failed_jobs"]
    await redis.disconnect()
    return {"enqueue_per_s": jobs / enqueued, "finish_per_s": jobs / total,
            "seconds": total, "failed": failed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--slots", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--worker", metavar="URL", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.worker:
        run_worker(options.worker, options.slots)
        return

    server = RedisServer().start()
    children: list[subprocess.Popen[bytes]] = []
    try:
        results: list[dict[str, float]] = []

        async def bench(_reactor: Any) -> None:
            for _ in range(options.runs):
                # Each run starts from an empty Redis with fresh worker processes.
                for child in children:
                    child.terminate()
                    child.wait()
                server.flushall()
                children[:] = [subprocess.Popen(
                    [sys.executable, __file__, "--worker", server.url, "--slots",
                     str(options.slots)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    for _ in range(options.processes)]
                results.append(await measure(server.url, options.jobs, options.processes,
                                             options.in_flight))

        react(lambda r: Deferred.fromCoroutine(bench(r)))
    except SystemExit as exit_:
        if exit_.code:
            raise
    finally:
        for child in children:
            child.terminate()
            child.wait()
        server.stop()
    print(f"{options.jobs} no-op jobs, {options.processes} worker processes x {options.slots} "
          f"slots, {os.cpu_count()} cores, {options.in_flight} enqueues in flight")
    for n, result in enumerate(results, 1):
        print(f"run {n}: enqueue {result['enqueue_per_s']:7.0f} jobs/s   enqueue-to-finish "
              f"{result['finish_per_s']:7.0f} jobs/s   ({result['seconds']:.2f} s, "
              f"{result['failed']:.0f} failed)")
    best = sorted(r["finish_per_s"] for r in results)
    print(f"median enqueue-to-finish: {best[len(best) // 2]:.0f} jobs/s")


if __name__ == "__main__":
    main()
