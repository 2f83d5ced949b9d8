"""``--base-url`` (LANraragi's ``base_url_path``, LRR-NOTES §1.3): requests with or without the
prefix reach the same resources, every answer carries ``lrr_baseurl``, and the URLs lrrd hands
out (``/files`` pages, OPDS links) start with the prefix; without one nothing changes."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from lxml import etree
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from lrrd.config import ConfigError, resolve_settings
from lrrd.opds import ATOM_NS
from lrrd.tap import Options
from tests.fixtures.archives import make_cbz, numbered_pages
from tests.fixtures.reading import IndexedLibraryApiTestCase, LibraryApiTestCase, d

PREFIX = "/lrr"


def hrefs(body: bytes) -> list[str]:
    root = etree.fromstring(body, etree.XMLParser(recover=False, resolve_entities=False))
    return [link.get("href") for link in root.iter("{%s}link" % ATOM_NS)]


class BaseUrlOptionTests(SynchronousTestCase):
    """The setting is checked with the original's pattern wherever it comes from."""

    def test_good_prefix_accepted(self) -> None:
        """``--base-url /lrr`` and ``LRRD_BASE_URL`` set the prefix; by default there is none."""
        options = Options()
        options.parseOptions(["--base-url", "/lrr/sub"])
        self.assertEqual(options.settings.base_url, "/lrr/sub")
        self.assertEqual(resolve_settings({}, environ={"LRRD_BASE_URL": "/x"}).base_url, "/x")
        self.assertEqual(resolve_settings({}, environ={}).base_url, "")

    def test_bad_prefix_refused(self) -> None:
        """No leading slash, a trailing slash, a bare ``/`` or a double quote: a usage error
        naming the setting."""
        for bad in ("lrr", "/lrr/", "/", '/l"rr'):
            with self.assertRaises(usage.UsageError) as caught:
                Options().parseOptions(["--base-url", bad])
            self.assertIn("base_url", str(caught.exception))
        with self.assertRaises(ConfigError):
            resolve_settings({}, environ={"LRRD_BASE_URL": "/lrr/"})


class BaseUrlSiteTests(IndexedLibraryApiTestCase):
    """The real site built with ``Settings(base_url="/lrr")``, over real HTTP."""

    timeout = 60

    def settings(self) -> Any:
        return replace(super().settings(), base_url=PREFIX)

    def test_both_paths_answer_with_cookie(self) -> None:
        """``/lrr/api/info`` and ``/api/info`` answer alike, ``/lrr/search`` is ``/search``,
        ``/lrrx`` is not under the prefix, and every answer (a 404 too) sets the cookie."""
        async def run() -> None:
            bare = await self.get("/api/info")
            prefixed = await self.get(PREFIX + "/api/info")
            self.assertEqual((bare.status, prefixed.status), (200, 200))
            self.assertEqual(bare.json["name"], prefixed.json["name"])
            search = await self.get("/search?draw=1&start=0&length=10")
            prefixed_search = await self.get(PREFIX + "/search?draw=1&start=0&length=10")
            self.assertEqual((search.status, prefixed_search.status), (200, 200))
            self.assertEqual(prefixed_search.body, search.body)
            missing = await self.get("/lrrx/api/info")
            self.assertEqual(missing.status, 404)
            for response in (bare, prefixed, search, prefixed_search, missing):
                cookie = response.header("set-cookie") or ""
                parts = [part.strip().lower() for part in cookie.split(";")]
                self.assertEqual(cookie.split(";")[0], "lrr_baseurl=/lrr")
                self.assertIn("path=/", parts)
                self.assertIn("samesite=lax", parts)
        return d(run())

    def test_files_urls_carry_prefix(self) -> None:
        """``/files`` page URLs start with the prefix, and the proxy's URL serves the page."""
        async def run() -> None:
            arcid = await self.add(self.make("a.cbz", make_cbz, numbered_pages(2)))
            for path in (f"/api/archives/{arcid}/files", f"{PREFIX}/api/archives/{arcid}/files"):
                response = await self.get(path)
                self.assertEqual(response.status, 200)
                pages = response.json["pages"]
                self.assertEqual(len(pages), 2)
                for url in pages:
                    self.assertTrue(url.startswith(f"{PREFIX}/api/archives/{arcid}/page?path="),
                                    url)
            page = await self.get(pages[0])
            self.assertEqual(page.status, 200)
            self.assertTrue(page.header("content-type").startswith("image/"))
        return d(run())

    def test_opds_links_carry_prefix(self) -> None:
        """Every link of the catalog and of an entry starts with the prefix (with ``?key=``)."""
        async def run() -> None:
            arcid = await self.add(self.make("a.cbz", make_cbz, numbered_pages(2)))
            catalog = await self.get(PREFIX + "/api/opds?key=test-key")
            self.assertEqual(catalog.status, 200)
            entry = await self.get(f"/api/opds/{arcid}")
            self.assertEqual(entry.status, 200)
            links = hrefs(catalog.body) + hrefs(entry.body)
            self.assertIn(f"{PREFIX}/api/archives/{arcid}/download?key=test-key", links)
            self.assertIn(f"{PREFIX}/api/opds/{arcid}", links)
            for href in links:
                self.assertTrue(href.startswith(PREFIX + "/"), href)
        return d(run())


class NoBaseUrlTests(LibraryApiTestCase):
    """Without a prefix: no cookie, and ``/lrr/...`` is just a path lrrd does not serve."""

    def test_no_cookie_no_prefix(self) -> None:
        """``/api/info`` sets no cookie, ``/lrr/api/info`` is a 404, page URLs start at ``/api``."""
        async def run() -> None:
            info = await self.get("/api/info")
            self.assertEqual(info.status, 200)
            self.assertIsNone(info.header("set-cookie"))
            self.assertEqual((await self.get(PREFIX + "/api/info")).status, 404)
            arcid = await self.add(self.make("a.cbz", make_cbz, numbered_pages(1)))
            pages = (await self.get(f"/api/archives/{arcid}/files")).json["pages"]
            self.assertTrue(pages[0].startswith(f"/api/archives/{arcid}/page?path="))
        return d(run())
