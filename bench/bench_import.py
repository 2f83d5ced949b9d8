"""Import and thumbnail throughput: the figures of issue 4 that belong to the ingest side.

1. Import rate of N generated cbz (default 2,000) through the file watcher's startup scan (walk,
   filemap diff, hash, list pages, store writes), without covers and then with covers.
2. Thumbnail cost per page: ``make_page_thumbnails`` over a 100-page archive of realistic pages.
3. Reactor latency while a 2,000-page archive gets its page thumbnails: ``/api/info`` is
   requested back to back by a separate client process, and its p50/p99 reported.

Run from the repository root: ``.venv/bin/python bench/bench_import.py [--archives N]``.
It starts a private redis-server and works in a temporary folder it removes afterwards.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image, ImageDraw  # noqa: E402
from twisted.internet import reactor  # noqa: E402
from twisted.internet.defer import Deferred  # noqa: E402
from twisted.internet.task import deferLater, react  # noqa: E402

from lrrd.config import Settings  # noqa: E402
from lrrd.library import thumbnails  # noqa: E402
from lrrd.library.identity import compute_id  # noqa: E402
from lrrd.services import Services  # noqa: E402
from lrrd.store.bootstrap import ensure_initialised  # noqa: E402
from lrrd.store.redis import RedisAddress, RedisStore  # noqa: E402
from lrrd.watcher import Watcher  # noqa: E402
from tests.fixtures.redis import RedisServer  # noqa: E402

PAGE_SIZE = (1200, 1700)

_CLIENT = r"""
import http.client, json, sys, time
import os
port, seconds, stop, out = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4]
conn = http.client.HTTPConnection("127.0.0.1", port)
samples = []
end = time.monotonic() + seconds
while time.monotonic() < end and not os.path.exists(stop):
    start = time.monotonic()
    conn.request("GET", "/api/info")
    response = conn.getresponse()
    response.read()
    samples.append((time.monotonic() - start) * 1000)
with open(out, "w") as handle:
    json.dump(samples, handle)
"""


def manga_page(seed: int) -> bytes:
    """A JPEG that costs what a scanned page costs: line art, screentone and a noisy panel."""
    rng = random.Random(seed)
    width, height = PAGE_SIZE
    page = Image.new("L", PAGE_SIZE, 255)
    draw = ImageDraw.Draw(page)
    for _ in range(250):
        x, y = rng.randrange(width), rng.randrange(height)
        draw.line((x, y, x + rng.randint(-250, 250), y + rng.randint(-250, 250)), fill=0,
                  width=rng.randint(1, 5))
    for y in range(1000, 1500, 6):
        for x in range(80, 1100, 6):
            draw.point((x, y), fill=0)
    panel = (500, 400)
    noise = Image.frombytes("L", panel, rng.randbytes(panel[0] * panel[1]))
    page.paste(Image.blend(noise, Image.linear_gradient("L").resize(panel), 0.6), (600, 120))
    out = io.BytesIO()
    page.convert("RGB").save(out, "JPEG", quality=85)
    return out.getvalue()


def write_cbz(path: Path, pages: list[bytes], unique: str) -> None:
    """A stored (uncompressed, as JPEG pages usually are) cbz; ``unique`` makes its id unique."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("info.txt", unique)
        for number, data in enumerate(pages, start=1):
            archive.writestr(f"{number:04d}.jpg", data)


def generate_library(content: Path, count: int, pool: list[bytes], pages: int) -> None:
    for index in range(count):
        folder = content / f"series {index % 40:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        chosen = [pool[(index + p) % len(pool)] for p in range(pages)]
        write_cbz(folder / f"volume {index:05d}.cbz", chosen, f"archive {index}")


async def sleep(seconds: float) -> None:
    await deferLater(reactor, seconds, lambda: None)


async def import_run(redis: RedisStore, server: RedisServer, root: Path, content: Path,
                     covers: bool, count: int) -> dict[str, float]:
    server.flushall()
    data = root / ("data-covers" if covers else "data-plain")
    shutil.rmtree(data, ignore_errors=True)
    settings = Settings(content=content, data=data)
    services = Services(settings, redis, reactor)
    await ensure_initialised(redis)
    services.importer.covers = covers
    watcher = Watcher(services, rescan_interval=0)
    started = time.monotonic()
    watcher.startService()
    while not watcher.active:
        await sleep(0.005)
    while True:
        await watcher.when_idle(timeout=3600, step=0.01)
        if len(await services.archives.ids()) >= count:
            break
        await sleep(0.01)
    elapsed = time.monotonic() - started
    await watcher.stopService()
    services.pools.stop()
    thumbs = sum(1 for _ in (settings.thumb_dir).rglob("*.jpg")) if covers else 0
    return {"seconds": elapsed, "rate": count / elapsed, "covers": thumbs}


async def thumbnail_run(redis: RedisStore, server: RedisServer, root: Path, pool: list[bytes],
                        pages: int) -> dict[str, float]:
    server.flushall()
    settings = Settings(content=root / "content-thumbs", data=root / "data-thumbs")
    settings.content.mkdir(parents=True, exist_ok=True)
    services = Services(settings, redis, reactor)
    path = settings.content / "pages.cbz"
    write_cbz(path, [pool[i % len(pool)] for i in range(pages)], "thumbs")
    arcid = compute_id(path)
    await services.archives.create(arcid, str(path))
    await thumbnails.make_page_thumbnails(services, arcid)  # warm-up (and page cache)
    started = time.monotonic()
    await thumbnails.make_page_thumbnails(services, arcid, force=True)
    elapsed = time.monotonic() - started
    single = []
    from lrrd.images import make_thumbnail

    for data in pool[:8]:
        t0 = time.perf_counter()
        make_thumbnail(data, hq=False)
        single.append((time.perf_counter() - t0) * 1000)
    services.pools.stop()
    return {"ms_per_page": elapsed * 1000 / pages, "pages": pages,
            "single_thread_ms": statistics.median(single),
            "image_threads": services.pools.images.max}


async def latency_run(redis: RedisStore, server: RedisServer, root: Path, pool: list[bytes],
                      pages: int) -> dict[str, float]:
    from lrrd.api.site import build_site

    server.flushall()
    await ensure_initialised(redis)
    settings = Settings(content=root / "content-latency", data=root / "data-latency")
    settings.content.mkdir(parents=True, exist_ok=True)
    services = Services(settings, redis, reactor)
    path = settings.content / "huge.cbz"
    write_cbz(path, [pool[i % len(pool)] for i in range(pages)], "latency")
    arcid = compute_id(path)
    await services.archives.create(arcid, str(path))
    port = reactor.listenTCP(0, build_site(services), interface="127.0.0.1")
    number = port.getHost().port
    # Idle baseline first, then the same client while the thumbnails are made.
    baseline = await run_client(number, 3.0, str(root / "never"), root / "idle.json")
    stop = root / "stop-client"
    client = Deferred.fromCoroutine(run_client(number, 3600, str(stop), root / "busy.json"))
    await sleep(0.3)
    started = time.monotonic()
    try:
        errors = await thumbnails.make_page_thumbnails(services, arcid, force=True)
    finally:
        stop.touch()
    elapsed = time.monotonic() - started
    busy = await client
    await port.stopListening()
    services.pools.stop()
    return {"pages": pages, "thumbnail_seconds": elapsed, "errors": len(errors),
            "idle_p50": pct(baseline, 50), "idle_p99": pct(baseline, 99),
            "busy_p50": pct(busy, 50), "busy_p99": pct(busy, 99), "busy_max": max(busy),
            "busy_requests": len(busy)}


async def run_client(port: int, seconds: float, stop: str, out: Path) -> list[float]:
    """Request /api/info back to back from another process; per-request latencies in ms."""
    process = subprocess.Popen([sys.executable, "-c", _CLIENT, str(port), str(seconds), stop,
                                str(out)])
    while process.poll() is None:
        await sleep(0.05)
    return json.loads(out.read_text())


def pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


async def main(_reactor: Any, options: argparse.Namespace) -> None:
    root = Path(tempfile.mkdtemp(prefix="lrrd-bench-import-"))
    server = RedisServer().start()
    redis = RedisStore(RedisAddress.parse(server.url))
    try:
        print(f"machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
              f"Python {platform.python_version()}")
        pool = [manga_page(seed) for seed in range(16)]
        print(f"page pool: 16 JPEGs of {PAGE_SIZE[0]}x{PAGE_SIZE[1]}, "
              f"{statistics.mean(len(p) for p in pool) / 1024:.0f} KiB on average")
        content = root / "content"
        t0 = time.monotonic()
        generate_library(content, options.archives, pool, options.pages)
        print(f"generated {options.archives} cbz x {options.pages} pages "
              f"in {time.monotonic() - t0:.1f}s")
        redis.connect()
        await redis.wait_connected(reactor)
        for covers in (False, True) if options.archives else ():
            runs = [await import_run(redis, server, root, content, covers, options.archives)
                    for _ in range(options.runs)]
            rates = sorted(run["rate"] for run in runs)
            label = "with covers" if covers else "no covers"
            print(f"import {label}: median {statistics.median(rates):.0f} archives/s "
                  f"(runs: {', '.join(f'{r:.0f}' for r in rates)}; "
                  f"{runs[-1]['covers']} covers written)")
        thumbs = await thumbnail_run(redis, server, root, pool, 100)
        print(f"page thumbnails: {thumbs['ms_per_page']:.1f} ms/page over {thumbs['pages']} "
              f"pages ({thumbs['image_threads']} image threads); one thumbnail on one thread: "
              f"{thumbs['single_thread_ms']:.1f} ms")
        if options.latency_pages:
            lat = await latency_run(redis, server, root, pool, options.latency_pages)
            print(f"/api/info while {lat['pages']} page thumbnails are made "
                  f"({lat['thumbnail_seconds']:.1f}s): p50 {lat['busy_p50']:.1f} ms, "
                  f"p99 {lat['busy_p99']:.1f} ms, max {lat['busy_max']:.1f} ms over "
                  f"{lat['busy_requests']} requests (idle: p50 {lat['idle_p50']:.1f} ms, "
                  f"p99 {lat['idle_p99']:.1f} ms)")
    finally:
        await redis.disconnect()
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archives", type=int, default=2000)
    parser.add_argument("--pages", type=int, default=4, help="pages per generated archive")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency-pages", type=int, default=2000,
                        help="pages of the archive thumbnailed during the latency run (0: skip)")
    return parser.parse_args()


if __name__ == "__main__":
    react(main, [parse()])
