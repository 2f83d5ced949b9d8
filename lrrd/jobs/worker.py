"""The worker: N job slots in this process, woken through Redis pub/sub, heart-beating.

Each process registers one Minion-style worker id. Claims are atomic in Redis, so several
workers in several processes never run a job twice; a worker that stops heart-beating (killed,
frozen) has its jobs put back by the next sweep of any other worker, and a late answer from it
is ignored because it no longer holds the job.
"""

from __future__ import annotations

import inspect
import os
import socket
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from twisted.application import service
from twisted.internet.defer import CancelledError, Deferred, TimeoutError, gatherResults, succeed
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure

from lrrd.jobs.queue import JobFailed, JobQueue, to_json
from lrrd.store.jobs import ClaimedJob, WakeupSubscriber
from lrrd.store.redis import StoreUnavailable

log = Logger()

#: How often a worker proves it is alive, and how long silence means it is dead. A sweep runs
#: with every heartbeat, so a dead worker's jobs are back in the queue within
#: ``missing_after + heartbeat_interval`` seconds.
HEARTBEAT_INTERVAL = 2.0
MISSING_AFTER = 10.0
#: A job whose worker died this many times is failed ("Worker went away.") rather than re-run:
#: it is probably what kills them.
MAX_ORPHANED = 3
#: Seconds a stopping worker waits for Redis to take its jobs back.
STOP_TIMEOUT = 3.0
#: How many unobserved job events ``when`` remembers.
_SEEN_EVENTS = 1024


@dataclass
class JobContext:
    """What a running task sees: its job, a way to report progress, and the process's services."""

    id: int
    task: str
    args: list[Any]
    retries: int
    attempts: int
    queue: JobQueue
    services: Any = None
    _run_blocking: Callable[..., Deferred[Any]] | None = field(default=None, repr=False)

    async def note(self, **fields: Any) -> None:
        """Write progress into the job's notes (visible in ``/api/minion/{id}`` at once)."""
        await self.queue.note(self.id, **fields)

    async def run_in_thread(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Blocking work (archives, hashing, Pillow) goes to the thread pool, never the reactor."""
        if self._run_blocking is None:
            raise RuntimeError("this job has no thread pool")
        return await self._run_blocking(fn, *args, **kwargs)

    async def info(self) -> dict[str, Any] | None:
        return await self.queue.info(self.id)


def _default_run_blocking(services: Any, reactor: Any) -> Callable[..., Deferred[Any]]:
    pools = getattr(services, "pools", None)
    if pools is not None:
        return pools.run_io

    def run(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred[Any]:
        return deferToThreadPool(reactor, reactor.getThreadPool(), fn, *args, **kwargs)

    return run


class WorkerService(service.Service):
    """Runs up to ``slots`` jobs at once from ``queues``, for as long as the service runs.

    ``reactor`` does the networking (the wake-up connection, threads); ``queue.clock`` does the
    timing (heartbeats, delayed jobs, timestamps), so tests can drive time with a ``Clock``.
    ``ready``, when given, is awaited before the first contact with Redis (the store's start-up).
    """

    name = "jobs"  # type: ignore[assignment]  # Service declares it None

    def __init__(
        self,
        queue: JobQueue,
        slots: int,
        services: Any = None,
        *,
        reactor: Any = None,
        queues: tuple[str, ...] = ("default",),
        heartbeat_interval: float = HEARTBEAT_INTERVAL,
        missing_after: float = MISSING_AFTER,
        max_orphaned: int = MAX_ORPHANED,
        ready: Callable[[], Deferred[None]] | None = None,
        run_blocking: Callable[..., Deferred[Any]] | None = None,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor
        if slots < 1:
            raise ValueError("a worker needs at least one slot")
        self.queue = queue
        self.slots = slots
        self.services = services
        self.queues = queues
        self.heartbeat_interval = heartbeat_interval
        self.missing_after = missing_after
        self.max_orphaned = max_orphaned
        self.worker_id: int | None = None
        self._reactor = reactor
        self._clock = queue.clock
        self._ready = ready
        self._run_blocking = run_blocking or _default_run_blocking(services, reactor)
        self._running: dict[int, Deferred[None]] = {}
        self._pumping = False
        self._again = False
        self._timer: Any = None
        self._retry_timer: Any = None
        self._heartbeat: LoopingCall | None = None
        #: The heartbeat (and sweep) in progress or last done, for tests to wait on.
        self.beating: Deferred[None] = succeed(None)
        self._subscriber: WakeupSubscriber | None = None
        self._started: Deferred[None] | None = None
        self._stopping = False
        self._waiters: dict[tuple[str, int], list[Deferred[Any]]] = {}
        self._seen: OrderedDict[tuple[str, int], Any] = OrderedDict()

    # -- lifecycle -------------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self._stopping = False
        self._started = Deferred.fromCoroutine(self._start())
        self._started.addErrback(self._start_failed)

    def _start_failed(self, failure: Failure) -> None:
        if not failure.check(CancelledError):
            log.failure("The job worker failed to start", failure)

    async def _start(self) -> None:
        if self._ready is not None:
            await self._ready()
        while not self._stopping:
            try:
                self.worker_id = await self.queue.store.register_worker(
                    self.queue.now(), socket.gethostname(), os.getpid())
                break
            except StoreUnavailable:
                await self._sleep(0.5)
        if self._stopping:
            return
        log.info("Job worker {worker} started with {slots} slot(s) for {tasks}",
                 worker=self.worker_id, slots=self.slots, tasks=", ".join(self.queue.registry))
        store = self.queue.store
        self._subscriber = WakeupSubscriber(store.redis.address, store.channel, self._on_message,
                                            self.poke, self._reactor)
        self._subscriber.start()
        self._heartbeat = LoopingCall(self._beat)
        self._heartbeat.clock = self._clock
        self._heartbeat.start(self.heartbeat_interval, now=False).addErrback(
            lambda f: log.failure("Job heartbeat stopped", f))
        self.poke()

    def when_started(self) -> Deferred[None]:
        """Fires once the worker is registered and listening (for tests and tools)."""
        if self._started is None:
            return succeed(None)
        d: Deferred[None] = Deferred()

        def fire(result: Any) -> Any:
            d.callback(None)
            return result

        self._started.addBoth(fire)
        return d

    def stopService(self) -> Deferred[None]:
        """Stop taking jobs and hand back the ones still running, at once.

        The process's other services (the Redis connection, the embedded Redis) stop in the same
        turn, so the hand-back is sent immediately rather than after the tasks end; a task still
        running is cancelled, and its job runs again on another worker.
        """
        super().stopService()
        self._stopping = True
        if self._started is not None and not self._started.called:
            self._started.cancel()
        for timer in (self._timer, self._retry_timer):
            if timer is not None and timer.active():
                timer.cancel()
        if self._heartbeat is not None and self._heartbeat.running:
            self._heartbeat.stop()
        pending: list[Deferred[Any]] = []
        if self._subscriber is not None:
            pending.append(self._subscriber.stop())
            self._subscriber = None
        if self.worker_id is not None:
            pending.append(Deferred.fromCoroutine(self._leave(self.worker_id)))
        for running in list(self._running.values()):
            running.cancel()
        for step in pending:
            # Shutdown must not hang on a Redis that stopped answering (it may be restarting).
            step.addTimeout(STOP_TIMEOUT, self._reactor)
            step.addErrback(self._stop_failed)
        return gatherResults(pending).addCallback(lambda _: None)

    def _stop_failed(self, failure: Failure) -> None:
        if failure.check(TimeoutError, CancelledError):
            log.info("Job worker stopped without Redis confirming; the sweep will clean up")
        else:
            log.failure("While stopping the job worker", failure)

    async def _leave(self, worker: int) -> None:
        try:
            held = await self.queue.store.sweep(self.queue.now(), self.missing_after,
                                                self.max_orphaned, self.queue.expiry, [worker])
        except StoreUnavailable:
            # The process is going down with its Redis connection: the command was sent, only
            # its answer is lost; if it never arrived, the other workers' sweeps do the same.
            log.info("Job worker {worker} stopped", worker=worker)
            return
        if held:
            log.info("Job worker {worker} stopped; handed back jobs {ids}", worker=worker,
                     ids=held)

    def _sleep(self, seconds: float) -> Deferred[None]:
        from twisted.internet.task import deferLater

        return deferLater(self._clock, seconds, lambda: None)

    # -- heartbeat and sweep ---------------------------------------------------------------

    def _beat(self) -> Deferred[None]:
        self.beating = Deferred.fromCoroutine(self._beat_quietly())
        return self.beating

    async def _beat_quietly(self) -> None:
        try:
            await self._beat_once()
        except StoreUnavailable:
            log.debug("Job heartbeat skipped: Redis unavailable")
        except Exception:  # noqa: BLE001 - keep beating; the next tick may work
            log.failure("Job heartbeat failed")

    async def _beat_once(self) -> list[int]:
        if self.worker_id is None or self._stopping:
            return []
        now = self.queue.now()
        await self.queue.store.heartbeat(self.worker_id, now)
        moved = await self.queue.store.sweep(now, self.missing_after, self.max_orphaned,
                                             self.queue.expiry)
        if moved:
            log.warn("Jobs {ids} were held by a worker that went away; they are queued again",
                     ids=moved)
        return moved

    async def sweep(self) -> list[int]:
        """One heartbeat and sweep now (what the timer does every ``heartbeat_interval``)."""
        return await self._beat_once()

    # -- waking and claiming ---------------------------------------------------------------

    def _on_message(self, message: str) -> None:
        if message == "ready":
            self.poke()
            return
        try:
            due = float(message)
        except ValueError:
            self.poke()
            return
        self._wake_at(due)

    def _wake_at(self, due: float) -> None:
        """Be back when a delayed job is due (one timer, for the earliest known time)."""
        if self._stopping:
            return
        delay = max(0.0, due - self.queue.now())
        if self._timer is not None and self._timer.active():
            if self._timer.getTime() <= self._clock.seconds() + delay:
                return
            self._timer.cancel()
        self._timer = self._clock.callLater(delay, self.poke)

    def poke(self) -> None:
        """Look for work now; calls made while a claim is in flight fold into one more round."""
        if self._stopping or self.worker_id is None:
            return
        if self._pumping:
            self._again = True
            return
        Deferred.fromCoroutine(self._pump()).addErrback(
            lambda f: log.failure("Job claiming failed", f))

    async def pump(self) -> int:
        """Claim and start what fits in the free slots now; returns how many jobs started."""
        if self._pumping:
            self._again = True
            return 0
        return await self._pump()

    async def _pump(self) -> int:
        self._pumping = True
        started = 0
        try:
            while not self._stopping and self.worker_id is not None:
                self._again = False
                free = self.slots - len(self._running)
                if free <= 0:
                    break
                jobs, next_due = await self.queue.store.claim(
                    self.worker_id, self.queue.now(), free, self.queue.registry.names(),
                    self.queues)
                for job in jobs:
                    self._start_job(job)
                started += len(jobs)
                if next_due is not None:
                    self._wake_at(next_due)
                if len(jobs) < free and not self._again:
                    break
        except StoreUnavailable:
            # Try again shortly; the wake-up connection's reconnection pokes too.
            if not self._stopping and (self._retry_timer is None or not self._retry_timer.active()):
                self._retry_timer = self._clock.callLater(0.5, self.poke)
        finally:
            self._pumping = False
        return started

    # -- running ---------------------------------------------------------------------------

    def _start_job(self, job: ClaimedJob) -> None:
        d = Deferred.fromCoroutine(self._run(job))
        if not d.called:
            self._running[job.id] = d
        d.addErrback(self._crashed, job.id)

    def _crashed(self, failure: Failure, job_id: int) -> None:
        # A job cancelled while the worker stops (its settle, say) is handed back, not a crash.
        if self._stopping and failure.check(CancelledError):
            return
        log.failure("Job {id} crashed the worker loop", failure, id=job_id)

    async def _run(self, job: ClaimedJob) -> None:
        assert self.worker_id is not None
        worker = self.worker_id
        self._fire("started", job.id, job)
        context = JobContext(job.id, job.task, job.args, job.retries, job.attempts, self.queue,
                             self.services, self._run_blocking)
        outcome = "finished"
        try:
            try:
                result = self.queue.registry.get(job.task)(context, *job.args)
                if inspect.isawaitable(result):
                    result = await result
                result_json = to_json(result)
            except CancelledError:
                if self._stopping:
                    return  # handed back by stopService; another worker runs it again
                outcome, result_json = "failed", to_json("CancelledError: the task was cancelled")
            except JobFailed as failed:
                outcome, result_json = "failed", _safe_json(failed.result)
            except Exception as exc:  # noqa: BLE001 - a task's failure is the job's, not ours
                log.failure("Job {id} ({task}) failed", id=job.id, task=job.task)
                outcome, result_json = "failed", _safe_json(f"{type(exc).__name__}: {exc}")
            settled = await self._settle(job, worker, outcome, result_json)
            self._fire("settled", job.id, settled)
        finally:
            self._running.pop(job.id, None)
            self.poke()

    async def _settle(self, job: ClaimedJob, worker: int, outcome: str, result_json: str) -> int:
        """Record the outcome, retrying while Redis is away: a finished job's result matters."""
        while True:
            now = self.queue.now()
            try:
                return await self.queue.store.settle(
                    job.id, worker, job.retries, now, outcome, result_json, self.queue.expiry,
                    now + self.queue.backoff(job.retries))
            except StoreUnavailable:
                if self._stopping:
                    return 0
                await self._sleep(0.5)

    # -- observation (tests, tools) --------------------------------------------------------

    def when(self, event: str, job_id: int) -> Deferred[Any]:
        """A Deferred for the ``started`` or ``settled`` event of ``job_id`` in this worker.

        Recent events are remembered, so asking just after the fact still answers (a job can
        start before its ``enqueue`` call has returned to the caller).
        """
        if (event, job_id) in self._seen:
            return succeed(self._seen.pop((event, job_id)))
        d: Deferred[Any] = Deferred()
        self._waiters.setdefault((event, job_id), []).append(d)
        return d

    def _fire(self, event: str, job_id: int, value: Any) -> None:
        waiters = self._waiters.pop((event, job_id), [])
        if not waiters:
            self._seen[(event, job_id)] = value
            if len(self._seen) > _SEEN_EVENTS:
                self._seen.popitem(last=False)
        for d in waiters:
            d.callback(value)

    @property
    def running_jobs(self) -> Mapping[int, Deferred[None]]:
        return dict(self._running)


def _safe_json(value: Any) -> str:
    try:
        return to_json(value)
    except (TypeError, ValueError):
        return to_json(repr(value))
