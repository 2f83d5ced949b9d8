"""``/api/info/metrics`` (LRR-NOTES §1.6, §9.10): off by default (404), behind login when on,
Prometheus text that parses line by line, request counters that move by endpoint template."""

from __future__ import annotations

import os
import re
from typing import Any

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from lrrd.api.metrics import RequestObserver
from lrrd.metrics import Exposition, RequestCounters, escape_label, labels, process_stats
from tests.fixtures.archives import make_cbz, numbered_pages
from tests.fixtures.reading import LibraryApiTestCase, d

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(rf"^({_NAME})(\{{{_LABEL}(?:,{_LABEL})*\}})? (-?[0-9.]+(?:e[+-]?[0-9]+)?|NaN)$")
COMMENT = re.compile(rf"^# (?:(?:TYPE {_NAME} (?:counter|gauge))|(?:UNIT {_NAME} \w+)|"
                     rf"(?:HELP {_NAME} .*)|EOF)$")


def parse_exposition(test: Any, body: bytes) -> dict[str, float]:
    """Every line a sample or a known comment, ``# EOF`` last; samples keyed by name+labels."""
    text = body.decode("utf-8")
    test.assertTrue(text.endswith("# EOF\n"), text[-80:])
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            test.assertRegex(line, COMMENT)
            continue
        match = SAMPLE.match(line)
        test.assertIsNotNone(match, line)
        assert match is not None
        samples[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return samples


class _FakeRequest:
    def __init__(self, path: bytes, method: bytes = b"GET", operation: Any = None) -> None:
        self.path = path
        self.method = method
        self.sentLength = 10
        if operation is not None:
            self.lrrd_operation = operation

    def getHeader(self, name: bytes) -> bytes | None:
        return b"5" if name == b"content-length" else None


class _Op:
    path = "/archives/{id}/progress/{page}"


class UnitTests(SynchronousTestCase):
    """The counters and the text format on their own."""

    def test_observer_templates_and_cap(self) -> None:
        """Requests count under their operation's template; others only for fixed paths; past
        the series cap they fold into ``other``."""
        counters = RequestCounters(max_series=2)
        ticks = iter([1.0, 1.5, 2.0, 2.25, 3.0, 3.1, 4.0, 4.5])
        observer = RequestObserver(counters, clock=lambda: next(ticks))
        for request in (_FakeRequest(b"/api/archives/x/progress/3", b"PUT", _Op()),
                        _FakeRequest(b"/search"), _FakeRequest(b"/nowhere"),
                        _FakeRequest(b"/api/info/metrics")):
            observer.started(request)
            observer.finished(request)
        series = counters.series
        self.assertEqual(sorted(series), [("/api/archives/:id/progress/:page", "PUT"),
                                          ("/search", "GET"), ("other", "GET")])
        first = series[("/api/archives/:id/progress/:page", "PUT")]
        self.assertEqual((first.count, first.duration, first.request_bytes,
                          first.response_bytes), (1, 0.5, 5, 10))
        self.assertEqual(series[("other", "GET")].count, 1)

    def test_exposition(self) -> None:
        """Families with TYPE/UNIT/HELP, escaped label values, ``# EOF`` at the end."""
        out = Exposition()
        out.family("x_total", "counter", "help", [(labels([("a", 'q"\\\nz')]), 3)], unit="bytes")
        out.gauge("y", "a gauge", 0.25)
        out.gauge("z", "a flag", True)
        body = out.render()
        self.assertEqual(body.decode(), "# TYPE x_total counter\n# UNIT x_total bytes\n"
                         "# HELP x_total help\n" 'x_total{a="q\\"\\\\\\nz"} 3\n'
                         "# TYPE y gauge\n# HELP y a gauge\ny 0.25\n"
                         "# TYPE z gauge\n# HELP z a flag\nz 1\n# EOF\n")
        parse_exposition(self, body)
        self.assertEqual(escape_label("a\\b"), "a\\\\b")

    def test_process_stats(self) -> None:
        """CPU times always; memory, descriptors and start time on Linux."""
        stats = process_stats()
        self.assertGreater(stats["cpu_seconds_total"], 0)
        if os.path.exists("/proc/self/statm"):
            self.assertGreater(stats["resident_memory_bytes"], 1024 * 1024)
            self.assertGreater(stats["open_fds"], 2)
            self.assertGreater(stats["start_time_seconds"], 1e9)


class MetricsApiTests(LibraryApiTestCase):
    """The route over real HTTP."""

    timeout = 60

    async def scrape(self, **kwargs: Any) -> Any:
        return await self.get("/api/info/metrics", **kwargs)

    def test_disabled_is_404(self) -> None:
        """With ``enablemetrics`` off (the default) the route does not exist, key or not."""
        async def run() -> None:
            response = await self.scrape(auth=True)
            self.assertEqual(response.status, 404)
            self.assertEqual(response.json, {"errors": [{"message": "Not Found.", "path": "/"}],
                                             "status": 404})
        return d(run())

    def test_needs_login(self) -> None:
        """On, it answers No-Fun's 401 without the key, even with No-Fun off; the header, or
        ``?key=``, or password protection off let a scraper in."""
        async def run() -> None:
            await self.set_config(enablemetrics="1")
            response = await self.scrape()
            self.assertEqual(response.status, 401)
            self.assertEqual(response.json,
                             {"error": "This API is protected and requires login or an API Key."})
            self.assertEqual((await self.scrape(auth=True)).status, 200)
            self.assertEqual((await self.get("/api/info/metrics?key=test-key")).status, 200)
            self.assertEqual((await self.request("POST", "/api/info/metrics", auth=True)).status,
                             404)
            await self.set_config(enablepass="0")
            self.assertEqual((await self.scrape()).status, 200)
        return d(run())

    def test_scrape(self) -> None:
        """The text parses; every §9.10 family is there with lrrd's job and index gauges, and
        the request counters move by endpoint template and method."""
        async def run() -> None:
            await self.set_config(enablemetrics="1", htmltitle='My "Lib" & <co>')
            arcid = await self.add(self.make("a.cbz", make_cbz, numbered_pages(2)))
            for _ in range(3):
                self.assertEqual((await self.get("/api/info")).status, 200)
            page = await self.get(f"/api/archives/{arcid}/page?path=001.png")
            self.assertEqual(page.status, 200)
            await self.get("/api/archives/" + "0" * 40 + "/metadata")
            await self.request("PUT", f"/api/archives/{arcid}/isnew")  # 401 without the key
            response = await self.scrape(auth=True)
            self.assertEqual(response.status, 200)
            self.assertEqual(response.header("content-type"),
                             "text/plain; version=0.0.4; charset=utf-8")
            samples = parse_exposition(self, response.body)
            info = 'lanraragi_api_requests_total{endpoint="/api/info",method="GET"}'
            self.assertEqual(samples[info], 3)
            page_key = '{endpoint="/api/archives/:id/page",method="GET"}'
            self.assertEqual(samples["lanraragi_api_requests_total" + page_key], 1)
            self.assertEqual(samples["lanraragi_http_response_size_bytes_total" + page_key],
                             len(page.body))
            self.assertGreater(samples["lanraragi_api_duration_seconds_total" + page_key], 0)
            self.assertEqual(samples['lanraragi_api_requests_total{endpoint='
                                     '"/api/archives/:id/metadata",method="GET"}'], 1)
            self.assertEqual(samples['lanraragi_api_requests_total{endpoint='
                                     '"/api/archives/:id/isnew",method="PUT"}'], 1)
            names = {key.split("{")[0] for key in samples}
            for name in ("lanraragi_api_duration_seconds_total",
                         "lanraragi_http_request_size_bytes_total", "lanraragi_active_workers",
                         "lanraragi_process_cpu_seconds_total", "lanraragi_server_info",
                         "lanraragi_has_password", "lanraragi_debug_mode", "lanraragi_nofun_mode",
                         "lanraragi_server_resizes_images", "lanraragi_archives_per_page",
                         "lanraragi_archives_total", "lanraragi_pages_read_total",
                         "lanraragi_cache_last_cleared_timestamp_seconds",
                         "lrrd_jobs_enqueued_total", "lrrd_jobs_finished_total",
                         "lrrd_jobs_failed_total", "lrrd_job_workers", "lrrd_search_index_ready"):
                self.assertIn(name, names)
            self.assertEqual(samples["lanraragi_has_password"], 1)
            self.assertEqual(samples["lanraragi_archives_per_page"], 100)
            server = [k for k in samples if k.startswith("lanraragi_server_info{")][0]
            self.assertIn('name="My \\"Lib\\" & <co>"', server)
            self.assertIn('version="0.9.81"', server)
            again = parse_exposition(self, (await self.scrape(auth=True)).body)
            self.assertEqual(again['lanraragi_api_requests_total{endpoint="/api/info/metrics",'
                                   'method="GET"}'], 1)
        return d(run())

    def test_index_gauges(self) -> Deferred[None]:
        """Once the search index has loaded, its size and load time are reported."""
        async def run() -> None:
            await self.set_config(enablemetrics="1")
            await self.add(self.make("a.cbz", make_cbz, numbered_pages(1)))
            index = self.services().search_index
            index.startService()
            self.addCleanup(index.stopService)
            await index.when_loaded()
            await index.sync()
            samples = parse_exposition(self, (await self.scrape(auth=True)).body)
            self.assertEqual(samples["lrrd_search_index_ready"], 1)
            self.assertEqual(samples["lrrd_search_index_archives"], 1)
            self.assertIn("lrrd_search_index_loaded_timestamp_seconds", samples)
        return d(run())
