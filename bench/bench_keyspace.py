"""Write paths that look for an archive's categories and tanks, on a library of N archives.

Run from the repository root::

    .venv/bin/python bench/bench_keyspace.py [--count 100000] [--reps 200] [--categories 50]

It starts a private redis-server on a unix socket, writes N archives with ``gen_library.py``
(about N/500 tankoubons), adds categories the way LANraragi writes them (plain ``SET_`` hashes,
nothing of lrrd's), and times through lrrd's stores, one call at a time: ``tanks_of_archive``,
``categories_of_archive``, ``change_id``, the archive delete of the API (``delete_archive``:
tanks found, archive deleted, tanks re-imputed) and a tank's ``remove_archive``. For each it
reports ms per call (mean and p95, seen by the client) and what Redis itself spent: the
``INFO commandstats`` microseconds of EVAL/EVALSHA/SCAN per call (KEYS inside scripts shown
apart), and the ``SLOWLOG``
entries over 1 ms. Loopback only; the server is stopped at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from twisted.internet.defer import ensureDeferred  # noqa: E402
from twisted.internet.task import react  # noqa: E402

from gen_library import generate  # noqa: E402
from lrrd.library.tank_upkeep import delete_archive  # noqa: E402
from lrrd.store.archives import ArchiveStore  # noqa: E402
from lrrd.store.categories import CategoryStore  # noqa: E402
from lrrd.store.redis import DB, RedisAddress, RedisStore  # noqa: E402
from lrrd.store.tankoubons import TankoubonStore  # noqa: E402
from tests.fixtures.redis import RedisServer  # noqa: E402

_COMMANDS = ("eval", "evalsha", "scan", "keys")


def _script_names() -> dict[str, str]:
    """sha1 of every Lua script in ``lrrd.store`` → module.name, to read SLOWLOG's EVALSHAs."""
    import importlib
    import pkgutil

    import lrrd.store

    names = {}
    for info in pkgutil.iter_modules(lrrd.store.__path__):
        module = importlib.import_module(f"lrrd.store.{info.name}")
        for name, value in vars(module).items():
            if isinstance(value, str) and "redis.call" in value:
                names[hashlib.sha1(value.encode()).hexdigest()] = f"{info.name}.{name}"
    return names


def _slow_by_script(slow: list[Any], names: dict[str, str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for entry in slow:
        args = [a.decode() if isinstance(a, bytes) else str(a) for a in entry[3]]
        label = args[0].lower()
        if label == "evalsha" and len(args) > 1:
            label = names.get(args[1], args[1][:8])
        counts[label] = counts.get(label, 0) + 1
    return counts


def _commandstats(info: str) -> dict[str, tuple[int, int]]:
    """``cmdstat_<name>:calls=..,usec=..`` lines → name → (calls, usec)."""
    out: dict[str, tuple[int, int]] = {}
    for line in info.splitlines():
        if line.startswith("cmdstat_"):
            name, _, rest = line[len("cmdstat_"):].partition(":")
            fields = dict(part.split("=", 1) for part in rest.split(","))
            out[name] = (int(fields["calls"]), int(fields["usec"]))
    return out


async def _phase(main: Any, label: str, reps: int,
                 call: Callable[[int], Awaitable[Any]]) -> dict[str, Any]:
    await main.execute_command("CONFIG", "RESETSTAT")
    await main.execute_command("SLOWLOG", "RESET")
    times = []
    for i in range(reps):
        started = time.perf_counter()
        await call(i)
        times.append((time.perf_counter() - started) * 1000)
    stats = _commandstats(await main.execute_command("INFO", "commandstats"))
    slow = await main.execute_command("SLOWLOG", "GET", "100000")
    # Commands a script runs are counted again under their own names: KEYS is not added.
    server_usec = sum(stats.get(name, (0, 0))[1] for name in ("eval", "evalsha", "scan"))
    row = {
        "op": label,
        "reps": reps,
        "mean_ms": statistics.fmean(times),
        "p95_ms": sorted(times)[int(0.95 * (len(times) - 1))],
        "redis_ms_per_op": server_usec / 1000 / reps,
        "slowlog_over_1ms": len(slow),
        "slowlog_ms_total": sum(int(entry[2]) for entry in slow) / 1000,
        "commands": {name: stats[name] for name in _COMMANDS if name in stats},
        "slow_by_script": _slow_by_script(slow, _script_names()),
    }
    print(f"{label:28} mean {row['mean_ms']:8.3f} ms  p95 {row['p95_ms']:8.3f} ms  "
          f"redis {row['redis_ms_per_op']:8.3f} ms/op  slowlog>1ms {len(slow):4d} "
          f"({row['slowlog_ms_total']:.0f} ms)  {row['commands']}  slow: {row['slow_by_script']}",
          flush=True)
    return row


async def run(reactor: Any, args: argparse.Namespace) -> None:
    server = RedisServer().start()
    redis = RedisStore(RedisAddress(path=server.socket_path))
    try:
        root = Path(tempfile.mkdtemp(prefix="lrrd-bench-keyspace-", dir="/tmp"))
        started = time.monotonic()
        info = generate(server.url, args.count, root / "content", seed=1, flush=True)
        print(f"{args.count} archives, {info['tanks']} tanks written in "
              f"{time.monotonic() - started:.1f} s", flush=True)
        redis.connect()
        await redis.wait_connected(reactor)
        main = redis.db(DB.MAIN)
        await main.execute_command("CONFIG", "SET", "slowlog-log-slower-than", "1000")
        await main.execute_command("CONFIG", "SET", "slowlog-max-len", "100000")
        archives = ArchiveStore(redis, reactor)
        tanks = TankoubonStore(redis, reactor)
        categories = CategoryStore(redis, reactor)
        ids = await archives.ids()
        rng = random.Random(7)
        # Categories as LANraragi writes them: plain hashes, no lrrd bookkeeping.
        for n in range(args.categories):
            await main.hset(f"SET_{1710000000 + n:010d}", "name", f"Cat {n}")
            await main.hmset(f"SET_{1710000000 + n:010d}", {
                "search": "", "pinned": "0", "archives": json.dumps(rng.sample(ids, 100))})
        print(f"keys in DB0: {await main.dbsize()}", flush=True)
        try:
            from lrrd.store.registry import rebuild_registries
        except ImportError:
            pass
        else:
            t0 = time.perf_counter()
            found = await rebuild_registries(redis)
            print(f"registries rebuilt at start-up: {found} in "
                  f"{(time.perf_counter() - t0) * 1000:.1f} ms", flush=True)

        tank_ids = await tanks.ids()
        members = [a for t in await tanks.get_many(tank_ids) if t for a in t.archives]
        reps = args.reps
        picks = rng.sample(ids, reps)
        rows = [
            await _phase(main, "tanks_of_archive", reps,
                         lambda i: tanks.tanks_of_archive(picks[i])),
            await _phase(main, "categories_of_archive", reps,
                         lambda i: categories.categories_of_archive(picks[i])),
        ]
        # change_id: half tank members, half not; each to a fresh id.
        movers = rng.sample(members, reps // 2) + rng.sample(
            [a for a in ids if a not in set(members)], reps - reps // 2)
        fresh = [hashlib.sha1(f"moved-{i}".encode()).hexdigest() for i in range(reps)]
        rows.append(await _phase(main, "change_id", reps,
                                 lambda i: archives.change_id(movers[i], fresh[i])))
        # Deletes: the moved ids (tank members among them), with the API's tank upkeep.
        rows.append(await _phase(main, "delete_archive (API path)", reps,
                                 lambda i: delete_archive(archives, tanks, fresh[i])))
        # Tank member removal (checks whether another tank holds the archive).
        live = [t for t in await tanks.get_many(tank_ids) if t and len(t.archives) >= 2]
        removals = [(t.id, t.archives[-1]) for t in live[:min(len(live), reps // 2)]]
        rows.append(await _phase(main, "tank remove_archive", len(removals),
                                 lambda i: tanks.remove_archive(*removals[i])))
        if args.json:
            print(json.dumps(rows, indent=1))
    finally:
        await redis.disconnect()
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--categories", type=int, default=50)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    react(lambda reactor: ensureDeferred(run(reactor, args)))


if __name__ == "__main__":
    main()
