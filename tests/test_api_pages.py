"""Pages over real HTTP: /files and /page for every archive format, hostile names and archives,
ETags, resizing, and the server staying up through all of it."""

from __future__ import annotations

import io
import os
import struct
import threading
import zlib
from urllib.parse import quote, unquote

from pathlib import Path

from PIL import Image
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from lrrd.api.streaming import RangeNotSatisfiable, parse_range
from lrrd.library.formats import PageNotFound
from lrrd.library.reader import ArchiveMissing, ArchiveReaders, BadPageName

from lrrd.library.pages import sort_pages
from tests.fixtures.archives import (
    NESTED_PAGES,
    UNICODE_PAGES,
    make_7z,
    make_cbr,
    make_cbz,
    make_declared_huge_zip,
    make_epub,
    make_lying_zip_bomb,
    make_not_archive,
    make_pdf,
    make_tar,
    make_truncated_zip,
    numbered_pages,
    png_bytes,
    with_macosx_junk,
)
from tests.fixtures.reading import LibraryApiTestCase, d, golden, golden_index

MIXED_PAGES = [
    ("credits.png", png_bytes(1, 1, (1, 1, 1))),
    ("page10.png", png_bytes(1, 1, (2, 2, 2))),
    ("page9.png", png_bytes(1, 1, (3, 3, 3))),
    ("page 1.jpg", png_bytes(1, 1, (4, 4, 4))),
    ("Cover.png", png_bytes(1, 1, (5, 5, 5))),
    ("back-cover.png", png_bytes(1, 1, (6, 6, 6))),
    ("999_end.png", png_bytes(1, 1, (7, 7, 7))),
    ("sub/dir/p2.webp", png_bytes(1, 1, (8, 8, 8))),
    ("notes.txt", b"not a page"),
]


def huge_png_header() -> bytes:
    """A PNG that declares 20000×20000 pixels (but carries one row), as a page-bomb stand-in."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    row = zlib.compress(b"\0" + b"\0" * 3 * 20000)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", row) + chunk(b"IEND", b"")


def noisy_png(width: int, height: int) -> bytes:
    """A PNG that does not compress away, so it is over a small resize threshold."""
    image = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


class PagesTests(LibraryApiTestCase):
    timeout = 60

    async def files(self, arcid: str) -> list[str]:
        response = await self.get(f"/api/archives/{arcid}/files")
        self.assertEqual(response.status, 200, response.body)
        self.assertEqual(list(response.json), ["pages"])
        return response.json["pages"]

    async def page(self, url: str, **kwargs):  # type: ignore[no-untyped-def]
        return await self.get(url, **kwargs)

    def test_every_format_lists_and_serves_its_pages(self) -> Deferred[None]:
        """cbz, epub, tar, tar.gz, tar.xz, 7z, cbr and pdf: /files in §3.3 order, each page's bytes."""
        async def run() -> None:
            pages = numbered_pages(5)
            sources = {name: data for name, data in pages}
            cases = {
                "a.cbz": (make_cbz, pages),
                "b.epub": (make_epub, pages),
                "c.cbt": (make_tar, pages),
                "d.tar.gz": (lambda p, pg: make_tar(p, pg, compression="gzip"), pages),
                "e.tar.xz": (lambda p, pg: make_tar(p, pg, compression="xz"), pages),
                "f.cb7": (make_7z, pages),
                "g.cbr": (make_cbr, pages),
            }
            for filename, (builder, content) in cases.items():
                arcid = await self.add(self.make(filename, builder, content))
                urls = await self.files(arcid)
                prefix = "OEBPS/images/" if filename.endswith(".epub") else ""
                expected = [prefix + name for name, _ in pages]
                self.assertEqual(
                    urls, [f"/api/archives/{arcid}/page?path={quote(n)}" for n in expected], filename)
                for url, name in zip(urls, pages):
                    response = await self.page(url)
                    self.assertEqual(response.status, 200, filename)
                    self.assertEqual(response.body, sources[name[0]], filename)
                    self.assertEqual(response.header("content-type"), 'image/png;name="page"')
                    self.assertEqual(response.header("content-disposition"), 'inline;filename="page"')
            pdf = await self.add(self.make("h.pdf", make_pdf, 3))
            urls = await self.files(pdf)
            self.assertEqual([url.rsplit("=", 1)[1] for url in urls], ["1.jpg", "2.jpg", "3.jpg"])
            response = await self.page(urls[1])
            self.assertEqual(response.status, 200)
            self.assertEqual(response.header("content-type"), 'image/jpeg;name="page"')
            self.assertEqual(Image.open(io.BytesIO(response.body)).format, "JPEG")
        return d(run())

    def test_page_order_and_url_encoding(self) -> Deferred[None]:
        """§3.3 order (cover first, credits last, zero-padded numbers) and §3.5 URLs, junk skipped."""
        async def run() -> None:
            members = with_macosx_junk(MIXED_PAGES + NESTED_PAGES + UNICODE_PAGES)
            arcid = await self.add(self.make("order.cbz", make_cbz, members))
            urls = await self.files(arcid)
            image_names = [n for n, _ in MIXED_PAGES + NESTED_PAGES + UNICODE_PAGES if n != "notes.txt"]
            expected = sort_pages(image_names)
            self.assertEqual([unquote(url.split("?path=", 1)[1]) for url in urls], expected)
            self.assertEqual(expected[:2], ["Cover.png", "Vol 1/Cover.jpg"])
            self.assertEqual(set(expected[-3:]), {"999_end.png", "credits.png", "Vol 1/zz_credits.jpg"})
            self.assertLess(expected.index("page9.png"), expected.index("page10.png"))
            # Every byte outside A-Za-z0-9-._~ is encoded, except "/".
            self.assertIn(f"/api/archives/{arcid}/page?path="
                          "%E6%97%A5%E6%9C%AC%E8%AA%9E/%E3%83%9A%E3%83%BC%E3%82%B8"
                          "01.png", urls)
            self.assertIn(f"/api/archives/{arcid}/page?path=page%201.jpg", urls)
            for url in urls:
                self.assertEqual((await self.page(url)).status, 200, url)
            fields = await self.services().archives.get_fields(arcid, "pagecount")
            self.assertEqual(fields["pagecount"], str(len(expected)))
        return d(run())

    def test_files_rewrites_pagecount(self) -> Deferred[None]:
        """/files records the page count it found, as the original does."""
        async def run() -> None:
            arcid = await self.add(self.make("x.cbz", make_cbz, 4))
            await self.services().archives.set_fields(arcid, {"pagecount": 99})
            self.assertEqual(len(await self.files(arcid)), 4)
            fields = await self.services().archives.get_fields(arcid, "pagecount")
            self.assertEqual(fields["pagecount"], "4")
        return d(run())

    def test_two_thousand_pages(self) -> Deferred[None]:
        """A 2,000-page archive lists every page and serves one from its middle."""
        async def run() -> None:
            pages = numbered_pages(2000)
            arcid = await self.add(self.make("big.cbz", make_cbz, pages))
            urls = await self.files(arcid)
            self.assertEqual(len(urls), 2000)
            response = await self.page(urls[1233])
            self.assertEqual(response.body, pages[1233][1])
        return d(run())

    def test_hostile_names(self) -> Deferred[None]:
        """Traversal, absolute and NUL names are 400/404 JSON; nothing outside the archive is read."""
        async def run() -> None:
            arcid = await self.add(self.make("safe.cbz", make_cbz, 2))
            for name, status in [("../../etc/passwd", 404), ("/etc/passwd", 404),
                                 ("..%2F..%2Fetc%2Fpasswd", 404), ("001.png%00.jpg", 400),
                                 ("%00", 400), ("nope.png", 404), ("", 400)]:
                response = await self.get(f"/api/archives/{arcid}/page?path={name}")
                self.assertEqual(response.status, status, name)
                self.assertEqual(response.json["operation"], "serve_page", name)
                self.assertEqual(response.json["success"], 0, name)
                self.assertNotIn(b"root:", response.body)
            missing = await self.get(f"/api/archives/{arcid}/page")
            self.assertEqual((missing.status, missing.json),
                             (golden_index("err_bad_request_page_nopath")["status"],
                              golden("err_bad_request_page_nopath.json")))
            unknown = await self.get("/api/archives/" + "0" * 40 + "/page?path=001.png")
            self.assertEqual(unknown.status, 400)
            self.assertEqual(unknown.json["error"], "This ID doesn&#39;t exist on the server.")
            files = await self.get("/api/archives/" + "0" * 40 + "/files")
            self.assertEqual(files.status, 400)
            self.assertEqual(files.json["operation"], "get_file_list")
        return d(run())

    def test_hostile_archives_fail_cleanly(self) -> Deferred[None]:
        """A zip bomb, a declared-huge member, a truncated zip and a renamed text file answer
        JSON errors, and a good archive is served between and after them."""
        async def run() -> None:
            good = await self.add(self.make("good.cbz", make_cbz, 3))
            good_urls = await self.files(good)
            bomb = await self.register(self.make("bomb.cbz", make_lying_zip_bomb), 2)
            huge = await self.register(self.make("huge.cbz", make_declared_huge_zip), 2)
            truncated = await self.register(self.make("cut.cbz", make_truncated_zip), 20)
            text = await self.register(self.make("text.cbz", make_not_archive), 1)

            for arcid, name in [(bomb, "bomb.png"), (huge, "huge.png")]:
                response = await self.get(f"/api/archives/{arcid}/page?path={name}")
                self.assertEqual(response.status, 400, name)
                self.assertEqual(response.json["operation"], "serve_page")
                self.assertTrue(response.json["error"], name)
                self.assertEqual((await self.get(good_urls[0])).status, 200)
                # The other pages of those archives are fine.
                self.assertEqual((await self.get(f"/api/archives/{arcid}/page?path=001.png")).status, 200)
            for arcid in (truncated, text):
                listing = await self.get(f"/api/archives/{arcid}/files")
                self.assertEqual(listing.status, 400)
                self.assertEqual(listing.json["operation"], "get_file_list")
                self.assertTrue(listing.json["error"])
                page = await self.get(f"/api/archives/{arcid}/page?path=001.png")
                self.assertEqual(page.status, 400)
                self.assertEqual((await self.get(good_urls[1])).status, 200)
            gone = self.content / "good.cbz"
            gone.rename(self.content / "elsewhere.bin")
            response = await self.get(good_urls[0])
            self.assertEqual(response.status, 404)
            self.assertEqual(response.json["operation"], "serve_page")
        return d(run())

    def test_huge_png_page(self) -> Deferred[None]:
        """A page declaring 20000×20000 pixels is served raw, and with resizing on it is never
        decoded: it is sent unresized while the server keeps serving."""
        async def run() -> None:
            bomb = huge_png_header()
            arcid = await self.add(self.make("huge-png.cbz", make_cbz, [("001.png", bomb),
                                                                         ("002.png", png_bytes())]))
            response = await self.get(f"/api/archives/{arcid}/page?path=001.png")
            self.assertEqual((response.status, response.body), (200, bomb))
            await self.set_config(enableresize="1", sizethreshold="0")
            resized = await self.get(f"/api/archives/{arcid}/page?path=001.png")
            self.assertEqual((resized.status, resized.body), (200, bomb))
            self.assertEqual((await self.get(f"/api/archives/{arcid}/page?path=002.png")).status, 200)
        return d(run())

    def test_resize(self) -> Deferred[None]:
        """With enableresize, pages over sizethreshold KB become ≤1064 px wide JPEGs; others not."""
        async def run() -> None:
            wide = noisy_png(1500, 60)
            arcid = await self.add(self.make("wide.cbz", make_cbz, [("001.png", wide),
                                                                     ("002.png", png_bytes())]))
            await self.set_config(enableresize="1", sizethreshold="1", readerquality="70")
            response = await self.get(f"/api/archives/{arcid}/page?path=001.png")
            self.assertEqual(response.status, 200)
            self.assertEqual(response.header("content-type"), 'image/jpeg;name="page"')
            image = Image.open(io.BytesIO(response.body))
            self.assertEqual((image.format, image.size), ("JPEG", (1064, 43)))
            small = await self.get(f"/api/archives/{arcid}/page?path=002.png")
            self.assertEqual(small.body, png_bytes())
            await self.set_config(enableresize="0")
            raw = await self.get(f"/api/archives/{arcid}/page?path=001.png")
            self.assertEqual(raw.body, wide)
            self.assertNotEqual(raw.header("etag"), response.header("etag"))
        return d(run())

    def test_etag_and_cache_control(self) -> Deferred[None]:
        """Pages carry a strong ETag and a long max-age; If-None-Match gives 304 without a body,
        and a rewritten file changes the ETag."""
        async def run() -> None:
            path = self.make("etag.cbz", make_cbz, 2)
            arcid = await self.add(path)
            url = f"/api/archives/{arcid}/page?path=001.png"
            first = await self.get(url)
            etag = first.header("etag")
            self.assertTrue(etag and etag.startswith('"'))
            self.assertEqual(first.header("cache-control"), "max-age=31536000")
            again = await self.get(url, headers={"If-None-Match": etag})
            self.assertEqual((again.status, again.body), (304, b""))
            other = await self.get(url, headers={"If-None-Match": '"nope"'})
            self.assertEqual(other.status, 200)
            make_cbz(path, numbered_pages(3))
            os.utime(path, ns=(1, 1))
            changed = await self.get(url, headers={"If-None-Match": etag})
            self.assertEqual(changed.status, 200)
            self.assertNotEqual(changed.header("etag"), etag)
            self.assertEqual(len(await self.files(arcid)), 3)
        return d(run())

    def test_readers_are_reused(self) -> Deferred[None]:
        """Page reads of one archive reuse its open reader instead of reopening the file."""
        async def run() -> None:
            arcid = await self.add(self.make("reuse.cbz", make_cbz, 10))
            urls = await self.files(arcid)
            readers = self.services().readers
            before = readers.opened
            for url in urls:
                self.assertEqual((await self.get(url)).status, 200)
            self.assertLessEqual(readers.opened - before, 1)
        return d(run())


class ConcurrentReadTests(LibraryApiTestCase):
    timeout = 60

    def test_burst_on_a_cold_solid_archive(self) -> Deferred[None]:
        """Twenty simultaneous first requests on a never-opened 7z all get their page; the
        archive is extracted once and at most ``per_archive`` readers are opened."""
        async def run() -> None:
            from twisted.internet.defer import gatherResults

            pages = numbered_pages(20)
            arcid = await self.add(self.make("burst.cb7", make_7z, pages))
            readers = self.services().readers
            before = readers.opened
            responses = await gatherResults([
                Deferred.fromCoroutine(self.get(f"/api/archives/{arcid}/page?path={name}"))
                for name, _ in pages])
            self.assertEqual([r.body for r in responses], [data for _, data in pages])
            self.assertLessEqual(readers.opened - before, 4)
            extracted = self.services().settings.temp_dir / "extracted"
            self.assertEqual(len([p for p in extracted.iterdir() if not p.name.startswith(".")]), 1)
        return d(run())


class ReaderCacheTests(SynchronousTestCase):
    """ArchiveReaders on its own (blocking calls, as the io pool makes them)."""

    def test_reopens_when_the_file_changes_and_evicts_lru(self) -> None:
        """A rewritten file gets a fresh reader; over ``max_archives`` the oldest is closed."""
        root = Path(self.mktemp())
        root.mkdir()
        readers = ArchiveReaders(None, max_archives=2)
        first = make_cbz(root / "a.cbz", numbered_pages(2))
        self.assertEqual(readers.read("a", str(first), "001.png").data, numbered_pages(2)[0][1])
        readers.read("a", str(first), "002.png")
        self.assertEqual(readers.opened, 1)
        make_cbz(first, [("001.png", png_bytes(3, 3))])
        os.utime(first, ns=(5, 5))
        self.assertEqual(readers.read("a", str(first), "001.png").data, png_bytes(3, 3))
        self.assertEqual(readers.opened, 2)
        with self.assertRaises(PageNotFound):
            readers.read("a", str(first), "002.png")
        for name in ("b", "c"):
            path = make_cbz(root / f"{name}.cbz", numbered_pages(1))
            readers.read(name, str(path), "001.png")
        self.assertEqual(len(readers), 2)
        readers.read("a", str(first), "001.png")
        self.assertEqual(readers.opened, 5)
        with self.assertRaises(BadPageName):
            readers.read("a", str(first), "a\0b")
        with self.assertRaises(ArchiveMissing):
            readers.read("z", str(root / "nope.cbz"), "001.png")
        readers.clear()
        self.assertEqual(len(readers), 0)

    def test_per_archive_is_a_cap(self) -> None:
        """Threads that find all ``per_archive`` readers of an archive busy wait for one to come
        back instead of opening more (how a loaded burst once opened 8 where the cap was 4)."""
        root = Path(self.mktemp())
        root.mkdir()
        path = root / "a.cbz"
        path.write_bytes(b"not read: the opener is a stand-in")
        go = threading.Event()
        made: list[object] = []

        class BlockingReader:
            """Holds its thread inside read() until the test lets go."""

            def read(self, name: str) -> bytes:
                go.wait(30)
                return b"page"

            def members(self) -> list[str]:
                return ["001.png"]

            def close(self) -> None:
                pass

        def opener(_path: str, **_kwargs: object) -> BlockingReader:
            reader = BlockingReader()
            made.append(reader)
            return reader

        readers = ArchiveReaders(None, per_archive=2, opener=opener)  # type: ignore[arg-type]
        three_waiting = threading.Event()

        class WatchedCondition(threading.Condition):
            waits = 0

            def wait(self, timeout: float | None = None) -> bool:
                WatchedCondition.waits += 1  # under the readers' lock
                if WatchedCondition.waits >= 3:
                    three_waiting.set()
                return super().wait(timeout)

        readers._returned = WatchedCondition(readers._lock)
        results: list[bytes | None] = []
        threads = [threading.Thread(target=lambda: results.append(
            readers.read("a", str(path), "001.png").data)) for _ in range(5)]
        for thread in threads:
            thread.start()
        # Two threads hold the two readers inside read(); the other three must be waiting.
        waited = three_waiting.wait(30)
        opened_while_busy = len(made)
        go.set()
        for thread in threads:
            thread.join(30)
        self.assertTrue(waited)
        self.assertEqual(opened_while_busy, 2)
        self.assertEqual(results, [b"page"] * 5)
        self.assertEqual(readers.opened, 2)

    def test_etag_short_circuit(self) -> None:
        """A matching If-None-Match skips the read for a known page, never for an unknown name."""
        root = Path(self.mktemp())
        root.mkdir()
        path = str(make_cbz(root / "a.cbz", numbered_pages(2)))
        readers = ArchiveReaders(None)
        etag = readers.read("a", path, "001.png").etag
        self.assertIsNone(readers.read("a", path, "001.png", if_none_match=etag).data)
        self.assertIsNone(readers.read("a", path, "001.png", if_none_match="W/" + etag).data)
        self.assertIsNotNone(readers.read("a", path, "001.png", if_none_match='"x"').data)
        self.assertNotEqual(readers.read("a", path, "001.png", variant="resize").etag, etag)
        with self.assertRaises(PageNotFound):
            readers.read("a", path, "nope.png", if_none_match="*")


class RangeTests(SynchronousTestCase):
    def test_parse_range(self) -> None:
        """Single ranges are honoured, several or unreadable ones mean the whole file, and a
        range wholly past the end is unsatisfiable."""
        self.assertEqual(parse_range("bytes=0-9", 100), (0, 9))
        self.assertEqual(parse_range("bytes=90-200", 100), (90, 99))
        self.assertEqual(parse_range("bytes=-10", 100), (90, 99))
        self.assertEqual(parse_range("bytes=-1000", 100), (0, 99))
        self.assertEqual(parse_range("bytes=50-", 100), (50, 99))
        for header in (None, "", "bytes=0-1,5-6", "items=0-1", "bytes=9-2", "bytes=-"):
            self.assertIsNone(parse_range(header, 100), header)
        for header in ("bytes=100-", "bytes=150-160", "bytes=-0"):
            with self.assertRaises(RangeNotSatisfiable):
                parse_range(header, 100)
