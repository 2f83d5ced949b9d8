"""Search at scale: lrrd on a generated library of N archives, the query set of issue 5.

Run from the repository root::

    .venv/bin/python bench/bench_search.py [--count 100000] [--reps 30] [--keep DIR]

It starts a private redis-server on a unix socket, writes N archives with ``gen_library.py``,
starts ``twistd -n lrrd --role web`` on a loopback port against it, and times (from this
process, one keep-alive HTTP connection, one request at a time): the index load (from lrrd's
log line), each query's p50/p95 over ``--reps`` runs after two warm-ups, ``GET /api/archives``,
and lrrd's RSS at the end. Loopback only; every loop is bounded.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import psutil  # noqa: E402

from gen_library import general_tag, generate  # noqa: E402
from tests.fixtures.redis import RedisServer, free_tcp_port  # noqa: E402

API_KEY = "bench-key"
AUTH = {"Authorization": "Bearer " + base64.b64encode(API_KEY.encode()).decode()}


def queries(rare_tag: str) -> list[tuple[str, str, dict[str, str]]]:
    """(label, path, params): the acceptance list of issue 5."""
    common = general_tag(0)  # Zipf rank 1: about a fifth of the library
    return [
        ("title asc", "/api/search", {}),
        ("title desc", "/api/search", {"order": "desc"}),
        ("common tag", "/api/search", {"filter": common}),
        ("rare tag", "/api/search", {"filter": rare_tag}),
        ("namespaced tag", "/api/search", {"filter": "artist:ka"}),
        ("exact $ tags", "/api/search", {"filter": f"{common}$,{general_tag(3)}$"}),
        ("sort artist asc", "/api/search", {"sortby": "artist"}),
        ("sort artist desc", "/api/search", {"sortby": "artist", "order": "desc"}),
        ("sort series asc", "/api/search", {"sortby": "series"}),
        ("sort series desc", "/api/search", {"sortby": "series", "order": "desc"}),
        ("sort date_added asc", "/api/search", {"sortby": "date_added"}),
        ("sort date_added desc", "/api/search", {"sortby": "date_added", "order": "desc"}),
        ("tag + sort", "/api/search", {"filter": common, "sortby": "date_added", "order": "desc"}),
        ("start=50000", "/api/search", {"start": "50000"}),
        ("newonly", "/api/search", {"newonly": "true"}),
        ("untaggedonly", "/api/search", {"untaggedonly": "true"}),
        ("stats", "/api/database/stats", {}),
    ]


class Client:
    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def get(self, path: str, params: dict[str, str] | None = None) -> tuple[int, bytes, float]:
        url = path + ("?" + urlencode(params) if params else "")
        started = time.perf_counter()
        try:
            self.conn.request("GET", url, headers=AUTH)
            response = self.conn.getresponse()
            body = response.read()
        except (http.client.HTTPException, OSError):
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            raise
        return response.status, body, time.perf_counter() - started


def start_lrrd(root: Path, redis_url: str, port: int, content: Path) -> tuple[subprocess.Popen[bytes], Path]:
    log = root / "lrrd.log"
    twistd = Path(sys.executable).with_name("twistd")
    process = subprocess.Popen(
        [str(twistd), "-n", "--pidfile=", "--logfile", str(log), "lrrd",
         "--listen", f"tcp:{port}:interface=127.0.0.1", "--content", str(content),
         "--data", str(root / "data"), "--redis", redis_url, "--api-key", API_KEY,
         "--role", "web"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return process, log


def stop_run(process: subprocess.Popen[bytes] | None, redis: Any, root: Path,
             keep: Path | None) -> None:
    """End a benchmark run: SIGTERM lrrd (SIGKILL after 30 s), stop its Redis, and remove the
    run's folder unless it is to be kept."""
    if process is not None and process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
    redis.stop()
    if keep is None:
        subprocess.run(["rm", "-rf", str(root)], check=False)


def wait_loaded(client: Client, log: Path, process: subprocess.Popen[bytes],
                limit: float = 300) -> float:
    """Seconds of the first index load, as lrrd logs it; waits for search to answer 200."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"lrrd exited; see {log}")
        try:
            status, _, _ = client.get("/api/search/ids", {"filter": "zz-not-there"})
            if status == 200:
                break
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.1)
    else:
        raise RuntimeError(f"the index did not load within {limit} s; see {log}")
    found = re.findall(r"Search index loaded: .* in ([0-9.]+) s", log.read_text())
    return float(found[0]) if found else float("nan")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(q * (len(ordered) - 1)))))
    return ordered[k]


def run(count: int, reps: int, keep: Path | None, reload: float = 0.0) -> dict[str, Any]:
    root = keep or Path(tempfile.mkdtemp(prefix="lrrd-bench-search-"))
    root.mkdir(parents=True, exist_ok=True)
    redis = RedisServer().start()
    process = None
    try:
        started = time.monotonic()
        info = generate(redis.url, count, root / "content", seed=1, flush=True)
        print(f"generated {count} archives ({info['tags']} tags, {info['tanks']} tanks) "
              f"in {time.monotonic() - started:.1f} s", file=sys.stderr)
        port = free_tcp_port()
        process, log = start_lrrd(root, redis.url, port, root / "content")
        client = Client(port)
        load = wait_loaded(client, log, process)
        # A rare tag: a high Zipf rank that some archive carries.
        status, body, _ = client.get("/api/database/stats", {"minweight": "1"})
        rare = general_tag(60_000)
        if status == 200:
            rares = [t for t in json.loads(body) if t.get("namespace", "") == ""
                     and int(t.get("weight", 0)) == 1]
            if rares:
                rare = rares[len(rares) // 2]["text"]
        results: dict[str, Any] = {"count": count, "load_seconds": load, "queries": {}}
        for label, path, params in queries(rare):
            times, status, filtered = [], 0, None
            for i in range(reps + 2):
                status, body, seconds = client.get(path, params)
                if i >= 2:
                    times.append(seconds * 1000)
            if status == 200 and path == "/api/search":
                filtered = json.loads(body)["recordsFiltered"]
            results["queries"][label] = {
                "status": status, "filtered": filtered,
                "p50": statistics.median(times), "p95": percentile(times, 0.95),
                "max": max(times),
            }
            print(f"{label:22s} {status} p50 {statistics.median(times):7.1f} ms  "
                  f"p95 {percentile(times, 0.95):7.1f} ms  (filtered {filtered})", file=sys.stderr)
        archive_times = []
        size = 0
        for _ in range(3):
            status, body, seconds = client.get("/api/archives")
            archive_times.append(seconds)
            size = len(body)
        results["archives_seconds"] = min(archive_times)
        results["archives_all"] = archive_times
        results["archives_bytes"] = size
        results["rss_mb"] = psutil.Process(process.pid).memory_info().rss / 2**20
        if reload:
            # A full reload (what restore/drop/clean ask for) holds two libraries for a while.
            redis.command("PUBLISH", "lrrd:archives", "*")
            peak, until = 0.0, time.monotonic() + reload
            while time.monotonic() < until:
                peak = max(peak, psutil.Process(process.pid).memory_info().rss / 2**20)
                time.sleep(0.1)
            results["reload_peak_rss_mb"] = peak
            print(f"RSS peak during a full reload: {peak:.0f} MB", file=sys.stderr)
        print(f"/api/archives {min(archive_times):.2f} s (runs {archive_times}), "
              f"{size / 2**20:.1f} MB; load {load:.1f} s; RSS {results['rss_mb']:.0f} MB",
              file=sys.stderr)
        return results
    finally:
        stop_run(process, redis, root, keep)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--keep", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--reload", type=float, default=0.0,
                        help="then ask for a full reload and watch RSS for this many seconds")
    args = parser.parse_args()
    results = run(args.count, args.reps, args.keep, args.reload)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    os.sys.stdout.write(json.dumps(results) + "\n")


if __name__ == "__main__":
    main()
