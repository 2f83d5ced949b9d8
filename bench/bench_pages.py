"""Page serving: requests/s over cached cbz pages, the first page of a never-opened cbz, the
whole-library list, and ``/api/info`` latency while a 2,000-page archive's page thumbnails are
generated.

Run from the repository root: ``.venv/bin/python bench/bench_pages.py``. It starts a private
redis-server, imports generated cbz files with lrrd's importer, then runs ``twistd -n lrrd`` as
its own process on a loopback port (the server measured is the production one, with its job
workers) and drives it with ``wrk`` (``apt-get install wrk``) and plain HTTP clients.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twisted.internet.defer import Deferred  # noqa: E402
from twisted.internet.task import react  # noqa: E402

from lrrd.config import Settings  # noqa: E402
from lrrd.services import Services  # noqa: E402
from lrrd.store.redis import RedisAddress, RedisStore  # noqa: E402
from tests.fixtures.redis import RedisServer, free_tcp_port  # noqa: E402

API_KEY = "bench"


def jpeg_page(width: int, height: int, seed: int) -> bytes:
    """A real JPEG with some texture, so thumbnailing it costs what a scanned page costs."""
    import io

    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    image = Image.new("RGB", (width, height), (rng.randrange(256), 200, 180))
    draw = ImageDraw.Draw(image)
    for _ in range(60):
        x, y = rng.randrange(width), rng.randrange(height)
        draw.rectangle([x, y, x + rng.randrange(20, 200), y + rng.randrange(20, 200)],
                       fill=(rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


def make_cbz(path: Path, pages: list[bytes]) -> None:
    """Pages stored, not deflated, as comic scans usually are (JPEG does not compress)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        # A first member unique to the file, so archives never share an id (the first 512,000 bytes).
        archive.writestr("ComicInfo.txt", path.name)
        for number, data in enumerate(pages, 1):
            archive.writestr(f"{number:04d}.jpg", data)


def import_all(redis_url: str, settings: Settings, paths: list[Path]) -> list[str]:
    """Import with the production importer (no covers), in this process, before the server runs."""
    ids: list[str] = []

    async def run(reactor: Any) -> None:
        redis = RedisStore(RedisAddress.parse(redis_url))
        redis.connect()
        await redis.wait_connected(reactor)
        services = Services(settings, redis, reactor)
        services.importer.covers = False
        from lrrd.store.bootstrap import ensure_initialised

        await ensure_initialised(redis)
        for result in await services.importer.import_many([os.fspath(p) for p in paths]):
            if result.status != "added":
                raise RuntimeError(f"{result.path}: {result.status} {result.message}")
            ids.append(result.arcid or "")
        services.pools.stop()
        await redis.disconnect()

    try:
        react(lambda r: Deferred.fromCoroutine(run(r)))
    except SystemExit as exit_:
        if exit_.code:
            raise
    return ids


class Client:
    """A keep-alive HTTP/1.1 client with the API key, for latency measurements."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        import base64

        self.headers = {"Authorization": "Bearer " + base64.b64encode(API_KEY.encode()).decode()}

    def request(self, method: str, path: str) -> tuple[int, bytes, float]:
        start = time.perf_counter()
        self.conn.request(method, path, headers=self.headers)
        response = self.conn.getresponse()
        body = response.read()
        return response.status, body, (time.perf_counter() - start) * 1000


def start_server(port: int, settings: Settings, redis_url: str, log: Path,
                 profile: Path | None = None) -> subprocess.Popen[bytes]:
    twistd = Path(sys.executable).with_name("twistd")
    profiling = ([f"--profile={profile}", "--profiler=cprofile", "--savestats"]
                 if profile is not None else [])
    process = subprocess.Popen(
        [str(twistd), "-n", "--pidfile=", "--logfile", str(log), *profiling, "lrrd",
         "--listen", f"tcp:{port}:interface=127.0.0.1", "--content", str(settings.content),
         "--data", str(settings.data), "--redis", redis_url, "--api-key", API_KEY],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            status, _, _ = Client(port).request("GET", "/api/info")
            if status == 200:
                return process
        except OSError:
            pass
        if process.poll() is not None:
            raise RuntimeError(f"twistd exited; see {log}")
        time.sleep(0.1)
    raise RuntimeError(f"twistd did not answer within 30 s; see {log}")


def run_wrk(port: int, urls: list[str], seconds: int, connections: int, lua: Path) -> dict[str, float]:
    lua.write_text(
        "local urls = {" + ",".join(json.dumps(u) for u in urls) + "}\n"
        "local i = 0\n"
        "request = function()\n"
        "  i = i + 1\n"
        "  return wrk.format('GET', urls[(i % #urls) + 1])\n"
        "end\n")
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(lua),
         f"http://127.0.0.1:{port}"], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    p99_ms = 0.0
    if p99:
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
        p99_ms = float(p99.group(1)) * scale
    return {"rps": rps, "errors": float(non2xx.group(1)) if non2xx else 0.0, "p99_ms": p99_ms}


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (robust to other load on the machine)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--archives", type=int, default=20)
    parser.add_argument("--pages", type=int, default=30, help="pages per cached archive")
    parser.add_argument("--seconds", type=int, default=10, help="each wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--fresh", type=int, default=10, help="never-opened archives to time")
    parser.add_argument("--thumb-pages", type=int, default=2000)
    parser.add_argument("--skip-thumbs", action="store_true")
    parser.add_argument("--list", type=int, default=2000,
                        help="also time GET /api/archives over this many small archives (0: skip)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--profile", metavar="FILE", help="cProfile the server into FILE")
    options = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install -y wrk")

    root = Path(tempfile.mkdtemp(prefix="lrrd-bench-pages-"))
    settings = Settings(content=root / "content", data=root / "data")
    settings.content.mkdir(parents=True)
    settings.data.mkdir(parents=True)
    redis = RedisServer().start()
    server: subprocess.Popen[bytes] | None = None
    try:
        page_blobs = [jpeg_page(1000, 1400, seed) for seed in range(8)]
        page_size = statistics.mean(len(b) for b in page_blobs)
        cached = []
        for n in range(options.archives):
            path = settings.content / f"cached-{n:03d}.cbz"
            make_cbz(path, [page_blobs[(n + i) % len(page_blobs)] + bytes([n, i % 256])
                            for i in range(options.pages)])
            cached.append(path)
        fresh = []
        for n in range(options.fresh):
            path = settings.content / f"fresh-{n:03d}.cbz"
            make_cbz(path, [page_blobs[(n + i) % len(page_blobs)] + bytes([200 + n, i])
                            for i in range(options.pages)])
            fresh.append(path)
        big_fresh = settings.content / "fresh-big.cbz"
        make_cbz(big_fresh, [page_blobs[i % len(page_blobs)] + i.to_bytes(2, "big")
                             for i in range(2000)])
        thumbs = settings.content / "thumbs-2000.cbz"
        if not options.skip_thumbs:
            thumb_pages = [jpeg_page(1000, 1400, 100 + i) for i in range(16)]
            make_cbz(thumbs, [thumb_pages[i % 16] + i.to_bytes(2, "big")
                              for i in range(options.thumb_pages)])

        listed = []
        for n in range(options.list):
            path = settings.content / "list" / f"small-{n:05d}.cbz"
            path.parent.mkdir(exist_ok=True)
            make_cbz(path, [page_blobs[0][:2000]])
            listed.append(path)

        paths = cached + fresh + [big_fresh] + ([] if options.skip_thumbs else [thumbs]) + listed
        t0 = time.perf_counter()
        ids = import_all(redis.url, settings, paths)
        print(f"imported {len(ids)} archives in {time.perf_counter() - t0:.1f} s")
        id_of = dict(zip(paths, ids))

        port = free_tcp_port()
        server = start_server(port, settings, redis.url, root / "twistd.log",
                              Path(options.profile).resolve() if options.profile else None)
        client = Client(port)

        # -- 1. cached pages ------------------------------------------------------------------
        urls: list[str] = []
        for path in cached:
            status, body, _ = client.request("GET", f"/api/archives/{id_of[path]}/files")
            assert status == 200, body
            urls.extend(json.loads(body)["pages"])
        for url in urls:  # every reader open, every page read once
            status, body, _ = client.request("GET", url)
            assert status == 200, (url, status, body[:200])
        print(f"{len(urls)} cached pages of {page_size / 1024:.0f} KiB over {len(cached)} cbz")
        results = []
        for _ in range(options.runs):
            before = cpu_seconds(server.pid)
            result = run_wrk(port, urls, options.seconds, options.connections, root / "pages.lua")
            used = cpu_seconds(server.pid) - before
            result["cpu_ms"] = used * 1000 / max(1.0, result["rps"] * options.seconds)
            results.append(result)
        for n, result in enumerate(results, 1):
            print(f"run {n}: {result['rps']:8.0f} pages/s  p99 {result['p99_ms']:.1f} ms  "
                  f"non-2xx {result['errors']:.0f}  server CPU {result['cpu_ms']:.2f} ms/page")
        print(f"median: {statistics.median(r['rps'] for r in results):.0f} pages/s")

        # -- 2. first page of a never-opened cbz ----------------------------------------------
        firsts = []
        for path in fresh:
            status, _, ms = client.request("GET", f"/api/archives/{id_of[path]}/page?path=0001.jpg")
            assert status == 200
            firsts.append(ms)
        status, _, big_ms = client.request(
            "GET", f"/api/archives/{id_of[big_fresh]}/page?path=0001.jpg")
        assert status == 200
        print(f"first page of a never-opened {options.pages}-page cbz: median "
              f"{statistics.median(firsts):.1f} ms, max {max(firsts):.1f} ms "
              f"({len(firsts)} archives); 2,000-page cbz: {big_ms:.1f} ms")

        # -- 3. the whole list ------------------------------------------------------------------
        if options.list:
            timings = []
            for _ in range(5):
                status, body, ms = client.request("GET", "/api/archives")
                assert status == 200
                timings.append(ms)
            print(f"GET /api/archives ({len(json.loads(body))} archives): median "
                  f"{statistics.median(timings):.0f} ms")

        # -- 4. /api/info while page thumbnails are generated ---------------------------------
        if not options.skip_thumbs:
            arcid = id_of[thumbs]
            status, body, _ = client.request("POST", f"/api/archives/{arcid}/files/thumbnails")
            if status != 202:
                print(f"page thumbnails not queued: {status} {body[:300]!r}")
            else:
                job = json.loads(body)["job"]
                info = Client(port)
                latencies: list[float] = []
                started = time.perf_counter()
                state = "inactive"
                last_poll = 0.0
                while state not in ("finished", "failed"):
                    status, _, ms = info.request("GET", "/api/info")
                    assert status == 200
                    latencies.append(ms)
                    if time.perf_counter() - last_poll > 0.5:
                        last_poll = time.perf_counter()
                        _, raw, _ = client.request("GET", f"/api/minion/{job}")
                        state = json.loads(raw)["state"]
                    time.sleep(0.01)
                elapsed = time.perf_counter() - started
                print(f"page thumbnails of {options.thumb_pages} pages: job {state} in "
                      f"{elapsed:.1f} s ({elapsed * 1000 / options.thumb_pages:.1f} ms/page); "
                      f"/api/info over {len(latencies)} requests meanwhile: p50 "
                      f"{percentile(latencies, 50):.1f} ms, p99 {percentile(latencies, 99):.1f} ms, "
                      f"max {max(latencies):.1f} ms")
    finally:
        if server is not None:
            server.send_signal(signal.SIGINT)
            server.wait(60)
        redis.stop()
        if options.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
