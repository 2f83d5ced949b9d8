"""Files whose names are not UTF-8: imported (by the importer and the watcher), logged, listed,
searched in title order and shown in OPDS; their names are read as Latin-1, as the original's."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

from twisted.logger import globalLogPublisher, textFileLogObserver

from lrrd.logtext import log_text
from lrrd.store.archives import as_text
from lrrd.watcher import Watcher
from tests.fixtures.archives import make_cbz, numbered_pages
from tests.fixtures.reading import IndexedLibraryApiTestCase, d
from tests.test_opds import A, parse
from tests.test_watcher import wait_until

#: "café ÿ" in Latin-1: not valid UTF-8.
RAW_NAME = b"caf\xe9 \xff.cbz"
SHOWN = "caf\u00e9 \u00ff"


class UndecodableNameTests(IndexedLibraryApiTestCase):
    """An archive named by bytes that are not UTF-8 is a first-class archive."""

    timeout = 60

    def strict_log(self) -> io.BytesIO:
        """A log file as twistd writes one: UTF-8, strict (a surrogate fails the write)."""
        raw = io.BytesIO()
        observer = textFileLogObserver(io.TextIOWrapper(raw, encoding="utf-8", errors="strict",
                                                        write_through=True))
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        return raw

    def raw_path(self) -> Path:
        path = Path(os.fsdecode(os.fsencode(self.content) + b"/" + RAW_NAME))
        make_cbz(path, numbered_pages(2))
        return path

    async def neighbours(self) -> None:
        for name, count in (("apple.cbz", 1), ("zebra.cbz", 3)):  # contents differ: ids differ
            await self.add(self.make(name, make_cbz, numbered_pages(count)))

    async def search_ids(self, **params: str) -> tuple[list[str], Any]:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        response = await self.get("/api/search?" + query)
        self.assertEqual(response.status, 200)
        # Always valid UTF-8: a title stored as raw bytes goes out read as Latin-1.
        body = json.loads(response.body.decode("utf-8"))
        return [row["arcid"] for row in body["data"]], body

    def test_imported_logged_listed_searched_and_in_opds(self) -> None:
        """Through the real importer: the "Added" line is written to a strict UTF-8 log with
        the bytes as \\xNN; the name and title read as Latin-1; /api/archives lists it, title
        sort places it, a title search finds it, its pages are served and OPDS shows it."""
        async def run() -> None:
            log = self.strict_log()
            await self.neighbours()
            path = self.raw_path()
            arcid = await self.add(path)
            self.assertIn(f"Added {log_text(path)} as {arcid}".encode(), log.getvalue())
            self.assertIn(b"/caf\\xe9 \\xff.cbz", log.getvalue())
            fields = await self.services().archives.get(arcid)
            self.assertEqual((fields["name"], fields["title"]), (SHOWN, SHOWN))
            self.assertEqual(os.fsencode(as_text(fields["file"])), os.fsencode(path))
            await self.services().search_index.sync()

            listed = {row["arcid"]: row for row in (await self.get("/api/archives")).json}
            self.assertEqual(listed[arcid]["title"], SHOWN)
            self.assertEqual(listed[arcid]["filename"], SHOWN)
            ids, body = await self.search_ids(sortby="title", groupby_tanks="false")
            titles = [row["title"] for row in body["data"]]
            self.assertEqual(titles, ["apple", SHOWN, "zebra"])
            self.assertEqual(ids[1], arcid)
            desc, _ = await self.search_ids(sortby="title", order="desc")
            self.assertEqual(desc, list(reversed(ids)))
            found, _ = await self.search_ids(filter="caf%C3%A9")
            self.assertEqual(found, [arcid])
            files = (await self.get(f"/api/archives/{arcid}/files")).json["pages"]
            page = await self.get(files[0])
            self.assertEqual(page.status, 200)
            self.assertEqual(page.body, numbered_pages(2)[0][1])

            feed = parse((await self.get("/api/opds")).body)
            entries = [t.text for t in feed.iter(A + "title")]
            self.assertIn(SHOWN, entries)
            self.assertLess(entries.index("apple"), entries.index(SHOWN))
            self.assertLess(entries.index(SHOWN), entries.index("zebra"))
            entry = parse((await self.get(f"/api/opds/{arcid}")).body)
            self.assertIn(SHOWN, [t.text for t in entry.iter(A + "title")])
        return d(run())

    def test_watcher_imports_it(self) -> None:
        """The watcher's startup scan imports the file (its log lines written), and search
        finds it in title order."""
        async def run() -> None:
            log = self.strict_log()
            await self.neighbours()
            path = self.raw_path()
            watcher = Watcher(self.services(), rescan_interval=0, settle_delay=0.2, lease_ttl=3)
            watcher.startService()
            self.addCleanup(watcher.stopService)

            async def imported() -> bool:
                return await self.services().archives.filemap_get(str(path)) is not None

            await wait_until(imported, timeout=30)
            await watcher.when_idle()
            arcid = await self.services().archives.filemap_get(str(path))
            self.assertIn(b"caf\\xe9 \\xff.cbz", log.getvalue())
            await self.services().search_index.sync()
            _, body = await self.search_ids(sortby="title")
            self.assertEqual([row["title"] for row in body["data"]], ["apple", SHOWN, "zebra"])
            self.assertEqual(body["data"][1]["arcid"], arcid)
        return d(run())

    def test_raw_title_stays_in_title_order(self) -> None:
        """A title stored as raw bytes (an older database, a client's write) is kept by the
        search index when it changes: the archive stays in title-sorted search and OPDS, and
        every JSON body stays valid UTF-8 (the bytes read as Latin-1, as the original does)."""
        async def run() -> None:
            await self.neighbours()
            path = self.raw_path()
            arcid = await self.register(path, pagecount=2)
            raw_title = os.fsdecode(b"mid \xff title")
            await self.services().archives.set_title(arcid, raw_title)
            await self.services().search_index.sync()
            ids, body = await self.search_ids(sortby="title")
            self.assertEqual(body["recordsFiltered"], 3)
            self.assertEqual(ids[1], arcid)
            self.assertEqual(body["data"][1]["title"], "mid \u00ff title")
            listed = (await self.get(f"/api/archives/{arcid}")).json
            self.assertEqual(listed["title"], "mid \u00ff title")
            feed = parse((await self.get("/api/opds")).body)
            self.assertIn("mid \ufffd title", [t.text for t in feed.iter(A + "title")])
        return d(run())
