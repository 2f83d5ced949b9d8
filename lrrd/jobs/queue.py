"""The job queue as the rest of lrrd sees it: enqueue a task by name, read a job as Minion shows it.

API areas (thumbnail 202s, uploads, downloads, backups) call ``enqueue`` and hand the id to the
client, which follows it with ``/api/minion/{id}``; ``info`` renders a job exactly as the
original's ``/api/minion/{id}/detail`` does (timestamps as strings of whole epoch seconds, counts
as integers, ``worker`` null until a worker takes the job).
"""

from __future__ import annotations

import json
import math
from typing import Any, Callable, Iterable, Mapping, Sequence

from lrrd.jobs.registry import TaskRegistry, UnknownTask
from lrrd.store.jobs import JobStore, RawJob
from lrrd.store.redis import RedisStore

__all__ = [
    "DEFAULT_EXPIRY",
    "InvalidJob",
    "JobFailed",
    "JobQueue",
    "UnknownTask",
    "minion_backoff",
]

#: Settled jobs are kept this long (seconds) for clients to read, then expire: Minion's default.
DEFAULT_EXPIRY = 2 * 86400.0


class InvalidJob(ValueError):
    """The job's arguments or options cannot be stored (not JSON, wrong type, out of range)."""


class JobFailed(Exception):
    """Raised by a task to fail with a structured ``result``, like the original's
    ``$job->fail({errors => [...]})``; any other exception fails with its message."""

    def __init__(self, result: Any) -> None:
        super().__init__(result)
        self.result = result


def minion_backoff(retries: int) -> float:
    """Seconds before retry number ``retries + 1``: Minion's ``retries ** 4 + 15``."""
    return float(retries**4 + 15)


def to_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _timestamp(value: str | None) -> str | None:
    """Minion renders epoch times as strings of whole seconds, or null for "not yet"."""
    if not value:
        return None
    return str(int(float(value)))


def _decode(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        # Written by something other than lrrd: show it as it is rather than fail the request.
        return text


def render_info(raw: RawJob, now: float) -> dict[str, Any]:
    """The original's ``$job->info`` with the JSON types of its golden responses."""
    f = raw.fields
    worker = f.get("worker")
    result = f.get("result")
    return {
        "args": _decode(f.get("args", "[]")),
        "attempts": int(f.get("attempts", 1)),
        "children": list(raw.children),
        "created": _timestamp(f.get("created")),
        "delayed": _timestamp(f.get("delayed")),
        "expires": _timestamp(f.get("expires")),
        "finished": _timestamp(f.get("finished")),
        "id": int(f["id"]),
        "lax": 1 if f.get("lax") == "1" else 0,
        "notes": {name: _decode(value) for name, value in sorted(raw.notes.items())},
        "parents": _decode(f.get("parents", "[]")),
        "priority": int(f.get("priority", 0)),
        "queue": f.get("queue", "default"),
        "result": _decode(result) if result else None,
        "retried": _timestamp(f.get("retried")),
        "retries": int(f.get("retries", 0)),
        "started": _timestamp(f.get("started")),
        "state": f.get("state", "inactive"),
        "task": f.get("task", ""),
        "time": str(int(now)),
        "worker": int(worker) if worker else None,
    }


class JobQueue:
    """Enqueue and inspect jobs; workers (``lrrd.jobs.worker``) take them from the same store.

    ``clock`` is the time authority for every timestamp and delay, so tests can pass a
    ``Clock``. ``expiry`` is how long settled jobs stay readable (0 keeps them forever).
    """

    def __init__(
        self,
        redis: RedisStore,
        registry: TaskRegistry,
        clock: Any = None,
        expiry: float = DEFAULT_EXPIRY,
        backoff: Callable[[int], float] = minion_backoff,
    ) -> None:
        if clock is None:
            from twisted.internet import reactor as clock
        self.store = JobStore(redis)
        self.registry = registry
        self.clock = clock
        self.expiry = expiry
        self.backoff = backoff

    @classmethod
    def from_services(cls, services: Any) -> "JobQueue":
        """The queue of a running process: its Redis, the built-in tasks, the configured expiry."""
        from lrrd.jobs.tasks import builtin_registry

        return cls(services.redis, builtin_registry(), clock=services.reactor,
                   expiry=services.settings.job_expiry)

    def now(self) -> float:
        return float(self.clock.seconds())

    async def enqueue(
        self,
        task: str,
        args: Sequence[Any] = (),
        priority: int = 0,
        attempts: int = 1,
        delay: float = 0,
        parents: Iterable[int] = (),
        notes: Mapping[str, Any] | None = None,
        queue: str = "default",
        lax: bool = False,
    ) -> int:
        """Store a new job and wake the workers; returns its id.

        Raises ``UnknownTask`` for a name no worker could run and ``InvalidJob`` for arguments
        or options that cannot be stored; in both cases nothing is written.
        """
        if task not in self.registry:
            raise UnknownTask(task)
        if isinstance(args, (str, bytes)) or not isinstance(args, Sequence):
            raise InvalidJob("Job arguments must be an array.")
        if not _is_int(priority):
            raise InvalidJob("Job priority must be an integer.")
        if not _is_int(attempts) or attempts < 1:
            raise InvalidJob("Job attempts must be a positive integer.")
        if isinstance(delay, bool) or not isinstance(delay, (int, float)) \
                or not math.isfinite(delay) or delay < 0:
            raise InvalidJob("Job delay must be a non-negative number of seconds.")
        parent_ids = list(parents)
        if not all(_is_int(p) and p > 0 for p in parent_ids):
            raise InvalidJob("Job parents must be job ids.")
        if not isinstance(queue, str) or not queue:
            raise InvalidJob("Job queue must be a non-empty name.")
        try:
            args_json = to_json(list(args))
            notes_json = {str(k): to_json(v) for k, v in (notes or {}).items() if v is not None}
        except (TypeError, ValueError) as exc:
            raise InvalidJob(f"Job data is not JSON-serialisable: {exc}") from None
        now = self.now()
        return await self.store.create(
            now, task, args_json, queue, priority, attempts, now + delay, lax, parent_ids,
            notes_json,
        )

    async def info(self, job_id: int) -> dict[str, Any] | None:
        """The full job (``/api/minion/{id}/detail``), or None when there is no such job."""
        raw = await self.store.get(int(job_id))
        return None if raw is None else render_info(raw, self.now())

    async def status(self, job_id: int) -> dict[str, Any] | None:
        """The short form of ``/api/minion/{id}``; ``error`` is always "" as in the original,
        whose Minion job info has no such field (failures are in ``result``)."""
        info = await self.info(job_id)
        if info is None:
            return None
        return {"task": info["task"], "state": info["state"], "notes": info["notes"], "error": ""}

    async def note(self, job_id: int, **fields: Any) -> bool:
        """Merge progress fields into the job's notes (None removes one); False if no such job."""
        try:
            encoded = {name: None if value is None else to_json(value)
                       for name, value in fields.items()}
        except (TypeError, ValueError) as exc:
            raise InvalidJob(f"Job notes are not JSON-serialisable: {exc}") from None
        if not encoded:
            return await self.store.get(int(job_id)) is not None
        return await self.store.note(int(job_id), encoded)

    async def stats(self) -> dict[str, int]:
        """Counters for monitoring: jobs ever enqueued, finished, failed; live workers."""
        return await self.store.stats()
