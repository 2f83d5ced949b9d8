"""OPDS at scale: the catalog's page 1 of an N-archive library, and what request counting costs.

Run from the repository root::

    .venv/bin/python bench/bench_opds.py [--count 10000] [--reps 50] [--keep DIR]

It starts a private redis-server on a unix socket, writes N archives with ``gen_library.py``,
starts ``twistd -n lrrd --role web`` on a loopback port against it, waits for the search index,
and times (from this process, one keep-alive HTTP connection, one request at a time, after two
warm-ups): ``GET /api/opds`` (page 1, ``pagesize`` 100), the same with ``?key=``, a later page,
a category's feed, one entry, and a PSE page. Every feed is parsed with lxml in strict mode and
its entries counted. Then it times ``RequestObserver`` (what ``/api/info/metrics`` adds to every
request) in-process. Loopback only; every loop is bounded.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from lxml import etree  # noqa: E402

from bench_search import (  # noqa: E402
    API_KEY, Client, percentile, start_lrrd, stop_run, wait_loaded,
)
from gen_library import generate  # noqa: E402
from tests.fixtures.redis import RedisServer, free_tcp_port  # noqa: E402

ATOM = "{http://www.w3.org/2005/Atom}"
STRICT = etree.XMLParser(recover=False, resolve_entities=False, no_network=True)
GOAL_MS = 200.0


def entries(body: bytes) -> list[Any]:
    return etree.fromstring(body, STRICT).findall(ATOM + "entry")


def timed(client: Client, path: str, params: dict[str, str] | None, reps: int,
          check: Any = None) -> dict[str, Any]:
    times: list[float] = []
    status, body = 0, b""
    for i in range(reps + 2):
        status, body, seconds = client.get(path, params)
        if i >= 2:
            times.append(seconds * 1000)
    result: dict[str, Any] = {"status": status, "bytes": len(body),
                              "p50": statistics.median(times), "p95": percentile(times, 0.95),
                              "max": max(times)}
    if check is not None and status == 200:
        result.update(check(body))
    return result


def observer_cost(n: int = 200_000) -> float:
    """Nanoseconds ``RequestObserver.started`` + ``finished`` take per request."""
    from lrrd.api.metrics import RequestObserver
    from lrrd.metrics import RequestCounters

    class Op:
        path = "/archives/{id}/page"

    class Req:
        path = b"/api/archives/x/page"
        method = b"GET"
        sentLength = 65536
        lrrd_operation = Op()

        def getHeader(self, name: bytes) -> None:
            return None

    observer = RequestObserver(RequestCounters())
    request = Req()
    started = time.perf_counter()
    for _ in range(n):
        observer.started(request)
        observer.finished(request)
    return (time.perf_counter() - started) / n * 1e9


def run(count: int, reps: int, keep: Path | None) -> dict[str, Any]:
    root = keep or Path(tempfile.mkdtemp(prefix="lrrd-bench-opds-"))
    root.mkdir(parents=True, exist_ok=True)
    redis = RedisServer().start()
    process = None
    try:
        started = time.monotonic()
        generate(redis.url, count, root / "content", seed=1, flush=True)
        print(f"generated {count} archives in {time.monotonic() - started:.1f} s",
              file=sys.stderr)
        port = free_tcp_port()
        process, log = start_lrrd(root, redis.url, port, root / "content")
        client = Client(port)
        load = wait_loaded(client, log, process)
        status, body, _ = client.get("/api/categories")
        categories = json.loads(body) if status == 200 else []
        static = next((c for c in categories if not c["search"] and c["archives"]), None)
        status, body, _ = client.get("/api/search/ids", {"start": "0"})
        some_id = json.loads(body)["data"][0]

        def count_entries(body: bytes) -> dict[str, Any]:
            return {"entries": len(entries(body))}

        cases: list[tuple[str, str, dict[str, str] | None, Any]] = [
            ("catalog page 1", "/api/opds", None, count_entries),
            ("catalog page 1 ?key=", "/api/opds", {"key": API_KEY}, count_entries),
            ("catalog start=5000", "/api/opds", {"start": "5000"}, count_entries),
            ("entry", f"/api/opds/{some_id}", None, None),
            ("pse page 1", f"/api/opds/{some_id}/pse", {"page": "1"}, None),
        ]
        if static is not None:
            cases.insert(3, ("category feed", "/api/opds", {"category": static["id"]},
                             count_entries))
        results: dict[str, Any] = {"count": count, "load_seconds": load, "cases": {}}
        for label, path, params, check in cases:
            result = timed(client, path, params, reps, check)
            results["cases"][label] = result
            extra = f" ({result['entries']} entries)" if "entries" in result else ""
            print(f"{label:22s} {result['status']} p50 {result['p50']:6.1f} ms  "
                  f"p95 {result['p95']:6.1f} ms  max {result['max']:6.1f} ms  "
                  f"{result['bytes'] / 1024:.0f} KiB{extra}", file=sys.stderr)
        results["observer_ns"] = observer_cost()
        print(f"request counting: {results['observer_ns']:.0f} ns a request", file=sys.stderr)
        page1 = results["cases"]["catalog page 1"]["p95"]
        print(f"goal: page 1 p95 <= {GOAL_MS:.0f} ms: "
              f"{'met' if page1 <= GOAL_MS else 'MISSED'} ({page1:.1f} ms)", file=sys.stderr)
        return results
    finally:
        stop_run(process, redis, root, keep)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=50)
    parser.add_argument("--keep", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()
    results = run(args.count, args.reps, args.keep)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    print(json.dumps({k: v for k, v in results.items() if k != "cases"}), file=sys.stderr)



if __name__ == "__main__":
    main()
