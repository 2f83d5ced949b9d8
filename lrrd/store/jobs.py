"""The job queue's Redis layout and the Lua scripts that move jobs between states atomically.

Everything lives in the Minion database under an ``lrrd:`` prefix, so an existing LANraragi's own
Minion keys (``minion.*``) are never touched:

* ``lrrd:jobs:last_id``            INCR counter: job ids are integers, as Minion's are
* ``lrrd:job:<id>``                hash: task, args (JSON), state, priority, queue, attempts,
                                   retries, created, delayed, started, finished, retried, lax,
                                   parents (JSON), result (JSON), worker; internal: ``blocked``
                                   (waits for parents), ``orphaned`` (times its worker died)
* ``lrrd:job:<id>:notes``          hash: note name -> JSON value
* ``lrrd:job:<id>:children``       set of child job ids
* ``lrrd:queue:<name>``            zset of runnable jobs: score -priority, member the zero-padded
                                   id, so ZRANGE order is "highest priority, then oldest"
* ``lrrd:delayed``                 zset of jobs waiting for their ``delayed`` time (score = time)
* ``lrrd:workers``                 zset: worker id -> last heartbeat
* ``lrrd:worker:<id>``             hash: host, pid, started
* ``lrrd:worker:<id>:jobs``        set of job ids the worker holds
* ``lrrd:stats``                   hash of monotonic counters (finished, failed)

Every transition is one Lua script, so any number of workers in any number of processes see
each job claimed once. Scripts publish on a channel when a job becomes runnable; workers listen
on a dedicated subscriber connection instead of polling. Times come from the caller (the
queue's clock), not from Redis, so tests can drive them with a fake clock.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import txredisapi
from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet import protocol
from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import HostnameEndpoint, UNIXClientEndpoint
from twisted.logger import Logger

from lrrd.store.redis import DB, RedisAddress, RedisStore, gather

log = Logger()

PREFIX = "lrrd:"

#: A note value of "" deletes the note (a JSON encoding is never empty).
_DELETE = ""

# Shared Lua helpers, prepended to the scripts that need them.
_LUA_HELPERS = r"""
local function place(p, id, now, channel)
  -- make an inactive, unblocked job claimable (now) or wait for its delayed time
  local j = p .. 'job:' .. id
  local f = redis.call('HMGET', j, 'delayed', 'queue', 'priority')
  local due = tonumber(f[1]) or now
  if due > now then
    redis.call('ZADD', p .. 'delayed', due, id)
    redis.call('PUBLISH', channel, f[1])
  else
    redis.call('ZADD', p .. 'queue:' .. f[2], -tonumber(f[3]), string.format('%012d', tonumber(id)))
    redis.call('PUBLISH', channel, 'ready')
  end
end

local function blocked(p, id)
  -- Minion's rule: a parent that is inactive, active, or failed (unless the child is lax)
  -- holds the child back; finished or vanished parents do not
  local f = redis.call('HMGET', p .. 'job:' .. id, 'parents', 'lax')
  local parents = cjson.decode(f[1] or '[]')
  for _, parent in ipairs(parents) do
    local st = redis.call('HGET', p .. 'job:' .. string.format('%d', parent), 'state')
    if st == 'inactive' or st == 'active' or (st == 'failed' and f[2] ~= '1') then
      return true
    end
  end
  return false
end

local function release(p, id, now, channel)
  -- a parent settled: children that no longer wait for anything become runnable
  for _, c in ipairs(redis.call('SMEMBERS', p .. 'job:' .. id .. ':children')) do
    local ck = p .. 'job:' .. c
    local f = redis.call('HMGET', ck, 'state', 'blocked')
    if f[1] == 'inactive' and f[2] == '1' and not blocked(p, c) then
      redis.call('HDEL', ck, 'blocked')
      place(p, c, now, channel)
    end
  end
end

local function expire(p, id, ttl)
  if ttl > 0 then
    local j = p .. 'job:' .. id
    redis.call('PEXPIRE', j, ttl)
    redis.call('PEXPIRE', j .. ':notes', ttl)
    redis.call('PEXPIRE', j .. ':children', ttl)
  end
end

local function fail_final(p, id, now, result, ttl, channel)
  redis.call('HSET', p .. 'job:' .. id, 'state', 'failed', 'finished', now, 'result', result)
  redis.call('HINCRBY', p .. 'stats', 'failed', 1)
  expire(p, id, ttl)
  release(p, id, tonumber(now), channel)
end
"""

ENQUEUE = _LUA_HELPERS + r"""
-- ARGV: prefix, channel, now, task, args, queue, priority, attempts, delayed, lax, parents(JSON),
--       nparents, parent ids..., then note name/value pairs
local p, channel = ARGV[1], ARGV[2]
local now = tonumber(ARGV[3])
local id = redis.call('INCR', p .. 'jobs:last_id')
local j = p .. 'job:' .. id
redis.call('HSET', j, 'id', id, 'task', ARGV[4], 'args', ARGV[5], 'state', 'inactive',
  'queue', ARGV[6], 'priority', ARGV[7], 'attempts', ARGV[8], 'retries', 0,
  'created', ARGV[3], 'delayed', ARGV[9], 'lax', ARGV[10], 'parents', ARGV[11])
local nparents = tonumber(ARGV[12])
for i = 1, nparents do
  local pk = p .. 'job:' .. ARGV[12 + i]
  local ttl = redis.call('PTTL', pk)
  if ttl ~= -2 then
    redis.call('SADD', pk .. ':children', id)
    -- a settled parent's keys expire; its children set must not outlive it
    if ttl > 0 then redis.call('PEXPIRE', pk .. ':children', ttl) end
  end
end
local first_note = 13 + nparents
if #ARGV >= first_note then
  redis.call('HSET', j .. ':notes', unpack(ARGV, first_note))
end
if nparents > 0 and blocked(p, id) then
  redis.call('HSET', j, 'blocked', '1')
else
  place(p, id, now, channel)
end
return id
"""

CLAIM = r"""
-- ARGV: prefix, worker, now, count, ntasks, tasks..., nqueues, queues...
-- returns {next delayed time or '', then id, task, args, retries, attempts per claimed job}
local p, worker = ARGV[1], ARGV[2]
local now = tonumber(ARGV[3])
local count = tonumber(ARGV[4])
local ntasks = tonumber(ARGV[5])
local tasks = {}
for i = 1, ntasks do tasks[ARGV[5 + i]] = true end
local qi = 6 + ntasks
local queues = {}
for i = 1, tonumber(ARGV[qi]) do queues[i] = ARGV[qi + i] end

-- delayed jobs whose time has come join their queue first
for _, id in ipairs(redis.call('ZRANGEBYSCORE', p .. 'delayed', '-inf', now, 'LIMIT', 0, 1000)) do
  redis.call('ZREM', p .. 'delayed', id)
  local f = redis.call('HMGET', p .. 'job:' .. id, 'queue', 'priority', 'state')
  if f[3] == 'inactive' then
    redis.call('ZADD', p .. 'queue:' .. f[1], -tonumber(f[2]), string.format('%012d', tonumber(id)))
  end
end

local function candidate(key)
  -- the best member of one queue whose task this worker knows (unknown ones are left alone)
  local offset = 0
  while true do
    local batch = redis.call('ZRANGE', key, offset, offset + 31, 'WITHSCORES')
    if #batch == 0 then return nil end
    for i = 1, #batch, 2 do
      local member = batch[i]
      local task = redis.call('HGET', p .. 'job:' .. tonumber(member), 'task')
      if not task then
        redis.call('ZREM', key, member)  -- its hash is gone: drop the stale entry
      elseif ntasks == 0 or tasks[task] then
        return member, tonumber(batch[i + 1])
      end
    end
    offset = offset + 32
    if offset >= 1024 then return nil end
  end
end

local out = {''}
local wjobs = p .. 'worker:' .. worker .. ':jobs'
while (#out - 1) / 5 < count do
  local best_key, best_member, best_score
  for _, q in ipairs(queues) do
    local key = p .. 'queue:' .. q
    local member, score = candidate(key)
    if member and (not best_member or score < best_score
                   or (score == best_score and member < best_member)) then
      best_key, best_member, best_score = key, member, score
    end
  end
  if not best_member then break end
  redis.call('ZREM', best_key, best_member)
  local id = tostring(tonumber(best_member))
  local j = p .. 'job:' .. id
  redis.call('HSET', j, 'state', 'active', 'started', ARGV[3], 'worker', worker)
  redis.call('SADD', wjobs, id)
  local f = redis.call('HMGET', j, 'task', 'args', 'retries', 'attempts')
  table.insert(out, id)
  table.insert(out, f[1])
  table.insert(out, f[2])
  table.insert(out, f[3])
  table.insert(out, f[4])
end
local nxt = redis.call('ZRANGE', p .. 'delayed', 0, 0, 'WITHSCORES')
if #nxt > 0 then out[1] = nxt[2] end
return out
"""

SETTLE = _LUA_HELPERS + r"""
-- ARGV: prefix, channel, id, worker, retries, now, outcome (finished|failed), result,
--       ttl (ms), retry time
-- returns 0 when the worker no longer holds the job, 1 finished, 2 retried, 3 failed
local p, channel, id, worker = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local j = p .. 'job:' .. id
local f = redis.call('HMGET', j, 'state', 'worker', 'retries', 'attempts')
if f[1] ~= 'active' or f[2] ~= worker or f[3] ~= ARGV[5] then return 0 end
redis.call('SREM', p .. 'worker:' .. worker .. ':jobs', id)
local now, ttl = ARGV[6], tonumber(ARGV[9])
if ARGV[7] == 'finished' then
  redis.call('HSET', j, 'state', 'finished', 'finished', now, 'result', ARGV[8])
  redis.call('HINCRBY', p .. 'stats', 'finished', 1)
  expire(p, id, ttl)
  release(p, id, tonumber(now), channel)
  return 1
end
local retries = tonumber(f[3])
if retries + 1 < tonumber(f[4]) then
  redis.call('HSET', j, 'state', 'inactive', 'retries', retries + 1, 'retried', now,
    'delayed', ARGV[10], 'result', ARGV[8])
  place(p, id, tonumber(now), channel)
  return 2
end
fail_final(p, id, now, ARGV[8], ttl, channel)
return 3
"""

SWEEP = _LUA_HELPERS + r"""
-- ARGV: prefix, channel, now, heartbeat cutoff, max orphanings, ttl (ms), explicit worker ids...
-- Jobs held by workers that stopped heart-beating (or the listed ones) go back to the queue.
local p, channel, now = ARGV[1], ARGV[2], ARGV[3]
local max_orphaned, ttl = tonumber(ARGV[5]), tonumber(ARGV[6])
local workers = {}
if #ARGV > 6 then
  for i = 7, #ARGV do workers[#workers + 1] = ARGV[i] end
else
  workers = redis.call('ZRANGEBYSCORE', p .. 'workers', '-inf', '(' .. ARGV[4])
end
local moved = {}
for _, w in ipairs(workers) do
  local wk = p .. 'worker:' .. w .. ':jobs'
  for _, id in ipairs(redis.call('SMEMBERS', wk)) do
    local j = p .. 'job:' .. id
    local f = redis.call('HMGET', j, 'state', 'worker', 'retries')
    if f[1] == 'active' and f[2] == w then
      if redis.call('HINCRBY', j, 'orphaned', 1) > max_orphaned then
        fail_final(p, id, now, '"Worker went away."', ttl, channel)
      else
        redis.call('HSET', j, 'state', 'inactive', 'retries', tonumber(f[3]) + 1,
          'retried', now, 'delayed', now)
        place(p, id, tonumber(now), channel)
      end
      moved[#moved + 1] = id
    end
  end
  redis.call('DEL', wk, p .. 'worker:' .. w)
  redis.call('ZREM', p .. 'workers', w)
end
return moved
"""

NOTE = r"""
-- ARGV: prefix, id, then name/value pairs ('' deletes); returns 0 when the job does not exist
local j = ARGV[1] .. 'job:' .. ARGV[2]
local ttl = redis.call('PTTL', j)
if ttl == -2 then return 0 end
local notes = j .. ':notes'
for i = 3, #ARGV, 2 do
  if ARGV[i + 1] == '' then
    redis.call('HDEL', notes, ARGV[i])
  else
    redis.call('HSET', notes, ARGV[i], ARGV[i + 1])
  end
end
if ttl > 0 then redis.call('PEXPIRE', notes, ttl) end
return 1
"""

INFO = r"""
-- ARGV: prefix, id; returns {job hash, notes hash, children} or nil
local j = ARGV[1] .. 'job:' .. ARGV[2]
local job = redis.call('HGETALL', j)
if #job == 0 then return nil end
return {job, redis.call('HGETALL', j .. ':notes'), redis.call('SMEMBERS', j .. ':children')}
"""

REGISTER = r"""
-- ARGV: prefix, now, host, pid; returns the new worker id
local p = ARGV[1]
local id = redis.call('INCR', p .. 'workers:last_id')
redis.call('HSET', p .. 'worker:' .. id, 'id', id, 'host', ARGV[3], 'pid', ARGV[4], 'started', ARGV[2])
redis.call('ZADD', p .. 'workers', ARGV[2], id)
return id
"""


def format_time(seconds: float) -> str:
    """Times are stored as decimal seconds (never in exponent form, which Lua would misread)."""
    return f"{seconds:.6f}"


def wakeup_channel(minion_db: int) -> str:
    """Pub/sub channels are server-wide: name the database so two lrrd installations on one
    Redis (different base databases) do not wake each other's workers."""
    return f"{PREFIX}jobs:{minion_db}:wakeup"


@dataclass(frozen=True)
class ClaimedJob:
    """What a worker needs to run a job it has just claimed."""

    id: int
    task: str
    args: list[Any]
    retries: int
    attempts: int


@dataclass(frozen=True)
class RawJob:
    """A job as stored: the hash's strings, the notes' JSON strings and the child ids."""

    fields: dict[str, str]
    notes: dict[str, str]
    children: list[int]


def _pairs(flat: Sequence[Any]) -> dict[str, str]:
    return {str(flat[i]): str(flat[i + 1]) for i in range(0, len(flat), 2)}


class JobStore:
    """The queue's Redis operations; each is one round trip."""

    def __init__(self, redis: RedisStore, prefix: str = PREFIX) -> None:
        self.redis = redis
        self.prefix = prefix

    @property
    def _db(self) -> Any:
        return self.redis.db(DB.MINION)

    @property
    def channel(self) -> str:
        return wakeup_channel(self.redis.address.base_db + int(DB.MINION))

    async def create(
        self,
        now: float,
        task: str,
        args_json: str,
        queue: str,
        priority: int,
        attempts: int,
        delayed: float,
        lax: bool,
        parents: Sequence[int],
        notes: Mapping[str, str],
    ) -> int:
        argv: list[Any] = [
            self.prefix, self.channel, format_time(now), task, args_json, queue, str(priority),
            str(attempts), format_time(delayed), "1" if lax else "0",
            json.dumps(list(parents)), str(len(parents)), *[str(p) for p in parents],
        ]
        for name, value in notes.items():
            argv += [name, value]
        return int(await self._db.eval(ENQUEUE, [], argv))

    async def claim(
        self,
        worker: int,
        now: float,
        count: int,
        tasks: Sequence[str],
        queues: Sequence[str],
    ) -> tuple[list[ClaimedJob], float | None]:
        """Up to ``count`` runnable jobs, best first; and when the next delayed job is due."""
        argv = [self.prefix, str(worker), format_time(now), str(count), str(len(tasks)), *tasks,
                str(len(queues)), *queues]
        reply = await self._db.eval(CLAIM, [], argv)
        next_due = float(reply[0]) if reply[0] else None
        jobs = []
        for i in range(1, len(reply), 5):
            job_id, task, args, retries, attempts = reply[i:i + 5]
            jobs.append(ClaimedJob(int(job_id), str(task), json.loads(args), int(retries),
                                   int(attempts)))
        return jobs, next_due

    async def settle(
        self,
        job_id: int,
        worker: int,
        retries: int,
        now: float,
        outcome: str,
        result_json: str,
        ttl: float,
        retry_at: float,
    ) -> int:
        """Record a run's outcome; 0 when the worker lost the job meanwhile (result dropped)."""
        argv = [self.prefix, self.channel, str(job_id), str(worker), str(retries),
                format_time(now), outcome, result_json, str(int(ttl * 1000)),
                format_time(retry_at)]
        return int(await self._db.eval(SETTLE, [], argv))

    async def note(self, job_id: int, fields: Mapping[str, str | None]) -> bool:
        argv: list[str] = [self.prefix, str(job_id)]
        for name, value in fields.items():
            argv += [name, _DELETE if value is None else value]
        return bool(await self._db.eval(NOTE, [], argv))

    async def get(self, job_id: int) -> RawJob | None:
        reply = await self._db.eval(INFO, [], [self.prefix, str(job_id)])
        if not reply:
            return None
        job, notes, children = reply
        return RawJob(_pairs(job), _pairs(notes), sorted(int(c) for c in children))

    async def register_worker(self, now: float, host: str, pid: int) -> int:
        return int(await self._db.eval(REGISTER, [], [self.prefix, format_time(now), host,
                                                      str(pid)]))

    async def heartbeat(self, worker: int, now: float) -> None:
        await self._db.zadd(self.prefix + "workers", now, str(worker))

    async def sweep(
        self,
        now: float,
        missing_after: float,
        max_orphaned: int,
        ttl: float,
        workers: Sequence[int] = (),
    ) -> list[int]:
        """Re-queue the jobs of dead workers (or of ``workers``, leaving); returns their ids."""
        argv = [self.prefix, self.channel, format_time(now), format_time(now - missing_after),
                str(max_orphaned), str(int(ttl * 1000)), *[str(w) for w in workers]]
        return [int(i) for i in await self._db.eval(SWEEP, [], argv)]

    async def stats(self) -> dict[str, int]:
        db = self._db
        counters, last_id, workers = await gather(
            db.hgetall(self.prefix + "stats"),
            db.get(self.prefix + "jobs:last_id"),
            db.zcard(self.prefix + "workers"),
        )
        counters = counters or {}
        return {
            "enqueued_jobs": int(last_id or 0),
            "finished_jobs": int(counters.get("finished", 0)),
            "failed_jobs": int(counters.get("failed", 0)),
            "workers": int(workers or 0),
        }

    async def ttl(self, job_id: int) -> float | None:
        """Seconds until a settled job's keys expire (None when it never will or is gone)."""
        ms = int(await self._db.execute_command("PTTL", f"{self.prefix}job:{job_id}"))
        return ms / 1000 if ms >= 0 else None


class _WakeupProtocol(txredisapi.SubscriberProtocol):
    """Subscribes as soon as its handshake (auth) is done, then reports each message.

    Subscribing here rather than in ClientService's ``prepareConnection`` matters: txredisapi's
    handshake Deferreds cannot be cancelled, and a stop during preparation would leave the
    connection open.
    """

    def connectionMade(self) -> Any:
        handshake = super().connectionMade()
        self.whenConnected().addCallback(
            lambda _: self.subscribe(self.factory.channel)
        ).addCallbacks(lambda _: self.factory.on_connected(), lambda _: None)
        return handshake

    def messageReceived(self, pattern: Any, channel: Any, message: Any) -> None:
        self.factory.on_message(message if isinstance(message, str) else message.decode())


class _WakeupFactory(protocol.Factory):
    """Builds subscriber protocols; also answers the calls txredisapi makes on auth failure."""

    protocol = _WakeupProtocol
    isLazy = True
    noisy = False

    def __init__(self, address: RedisAddress, channel: str, on_message: Callable[[str], None],
                 on_connected: Callable[[], None]) -> None:
        self.address = address
        self.channel = channel
        self.on_message = on_message
        self.on_connected = on_connected

    def buildProtocol(self, addr: Any) -> _WakeupProtocol:
        p = _WakeupProtocol(charset="utf-8", password=self.address.password,
                            username=self.address.username, convertNumbers=False)
        p.factory = self
        return p

    def stopTrying(self) -> None:
        pass

    def connectionError(self, message: str) -> None:
        log.error("Job wake-up connection: {message}", message=message)


class WakeupSubscriber:
    """A dedicated, reconnecting pub/sub connection that reports the queue's wake-up messages.

    A subscribed connection can send nothing else, so it cannot come from the command pools.
    ``on_connected`` runs after every (re)subscription: messages published while the
    connection was down are lost, so the listener should look at the queue then.
    """

    def __init__(self, address: RedisAddress, channel: str, on_message: Callable[[str], None],
                 on_connected: Callable[[], None], reactor: Any) -> None:
        self._address = address
        self._reactor = reactor
        self._factory = _WakeupFactory(address, channel, on_message, on_connected)
        self._service: ClientService | None = None

    def start(self) -> None:
        if self._address.path:
            endpoint: Any = UNIXClientEndpoint(self._reactor, self._address.path, timeout=2)
        else:
            endpoint = HostnameEndpoint(self._reactor, self._address.host, self._address.port,
                                        timeout=2)
        self._service = ClientService(
            endpoint, self._factory,  # type: ignore[arg-type]  # a Factory is one (zope)
            retryPolicy=backoffPolicy(0.1, 1.0, 1.6),
            clock=self._reactor,
        )
        self._service.startService()

    def stop(self) -> Deferred[None]:
        if self._service is None:
            return succeed(None)
        service, self._service = self._service, None
        return service.stopService()
