"""The archive operations over real HTTP and Redis, checked against the original's golden responses:
listing, metadata, deletion, download with ranges, progress, isnew, ToC, membership, thumbnails."""

from __future__ import annotations

import io
import os

from PIL import Image
from twisted.internet.defer import Deferred

from lrrd.images import cover_path, page_thumb_path
from lrrd.store.categories import CategoryStore
from lrrd.store.redis import DB
from tests.fixtures.archives import make_7z, make_cbz, make_pdf, numbered_pages, png_bytes
from tests.fixtures.reading import LibraryApiTestCase, d, golden, golden_index, same_shape

GOLDEN_ID = "8dc6167b2f18e196cbbaf915aeb65d4273c43cb0"


class ArchivesTestCase(LibraryApiTestCase):
    timeout = 60


class ListingTests(ArchivesTestCase):
    def test_list_and_metadata_match_golden_shapes(self) -> Deferred[None]:
        """/api/archives holds every archive whose file exists, in the golden JSON shape."""
        async def run() -> None:
            cbz = await self.add(self.make("[Artist] Some Title.cbz", make_cbz, 3))
            cb7 = await self.add(self.make("seven.cb7", make_7z, 2))
            pdf = await self.add(self.make("doc.pdf", make_pdf, 2))
            gone_path = self.make("gone.cbz", make_cbz, 2)
            gone = await self.add(gone_path)
            gone_path.unlink()

            response = await self.get("/api/archives")
            self.assertEqual(response.status, 200)
            self.assertEqual(response.header("content-type"), "application/json;charset=UTF-8")
            listed = {item["arcid"]: item for item in response.json}
            self.assertEqual(set(listed), {cbz, cb7, pdf})
            for item in response.json:
                same_shape(self, item, golden("get_archive.json"))
            item = listed[cbz]
            self.assertEqual((item["title"], item["filename"], item["extension"]),
                             ("[Artist] Some Title", "[Artist] Some Title", "cbz"))
            self.assertEqual((item["pagecount"], item["isnew"], item["toc"]), (3, True, []))
            self.assertTrue(item["tags"].startswith("date_added:"))
            self.assertEqual(listed[cb7]["extension"], "cb7")
            self.assertEqual(listed[pdf]["extension"], "pdf")

            for path in (f"/api/archives/{cbz}", f"/api/archives/{cbz}/metadata"):
                single = await self.get(path)
                self.assertEqual(single.json, item)
            missing = await self.get(f"/api/archives/{gone}/metadata")
            self.assertEqual((missing.status, missing.json),
                             (400, golden("err_bad_id_metadata.json")))
            unknown = await self.get("/api/archives/" + "0" * 40 + "/metadata")
            self.assertEqual((unknown.status, unknown.json),
                             (golden_index("err_bad_id_metadata")["status"],
                              golden("err_bad_id_metadata.json")))
            short = await self.get("/api/archives/nope/metadata")
            self.assertEqual((short.status, short.json), (400, golden("err_bad_id_short.json")))
        return d(run())

    def test_untagged(self) -> Deferred[None]:
        """/untagged lists the ids whose tags are all "basic" namespaces."""
        async def run() -> None:
            plain = await self.add(self.make("plain.cbz", make_cbz, 1))
            tagged = await self.add(self.make("tagged.cbz", make_cbz, 2))
            await self.services().archives.set_tags(tagged, "artist:x,full color")
            response = await self.get("/api/archives/untagged")
            self.assertEqual((response.status, response.json), (200, [plain]))
        return d(run())

    def test_categories_and_tankoubons(self) -> Deferred[None]:
        """Membership listings answer the golden envelopes (tanks: empty until their store exists)."""
        async def run() -> None:
            arcid = await self.add(self.make("m.cbz", make_cbz, 1))
            categories = await self.get(f"/api/archives/{arcid}/categories")
            self.assertEqual(categories.json, {"operation": "find_arc_categories", "categories": [],
                                               "success": 1})
            store = CategoryStore(self.redis)
            cat_id = await store.create("Golden Cat")
            await store.create("Dynamic", search="artist:x")
            await store.add_archive(cat_id, arcid)
            categories = await self.get(f"/api/archives/{arcid}/categories")
            self.assertEqual(categories.json, {"operation": "find_arc_categories", "success": 1,
                                               "categories": [{"archives": [arcid], "id": cat_id,
                                                               "name": "Golden Cat", "pinned": 0,
                                                               "search": ""}]})
            same_shape(self, categories.json, golden("get_archive_categories.json"))
            tanks = await self.get(f"/api/archives/{arcid}/tankoubons")
            self.assertEqual(tanks.json, {"operation": "find_arc_tankoubons", "tankoubons": [],
                                          "success": 1})
            same_shape(self, tanks.json, golden("get_archive_tankoubons.json"))
        return d(run())


class MetadataTests(ArchivesTestCase):
    def test_put_metadata(self) -> Deferred[None]:
        """Title and tags are normalised and stored; the answer is the golden one, XML-escaped."""
        async def run() -> None:
            arcid = await self.add(self.make("meta.cbz", make_cbz, 1))
            response = await self.request(
                "PUT", f"/api/archives/{arcid}/metadata", auth=True,
                params={"title": " Blue\n", "tags": "action, artist:Kuro Neko,action,\nmystery ",
                        "summary": "A summary\nwith lines"})
            self.assertEqual((response.status, response.json),
                             (200, golden("put_archive_metadata.json")))
            meta = (await self.get(f"/api/archives/{arcid}")).json
            self.assertEqual(meta["title"], "Blue")
            self.assertEqual(meta["tags"], "action,artist:Kuro Neko,mystery")
            self.assertEqual(meta["summary"], "A summary\nwith lines")
            quoted = await self.request("PUT", f"/api/archives/{arcid}/metadata", auth=True,
                                        data={"title": 'Tom & "Jerry" \'s'})
            self.assertEqual(quoted.json["successMessage"],
                             "Updated metadata for &quot;Tom &amp; &quot;Jerry&quot; &#39;s&quot;!")
            tags_only = await self.request("PUT", f"/api/archives/{arcid}/metadata", auth=True,
                                           params={"tags": ""})
            self.assertEqual(tags_only.status, 200)
            self.assertEqual((await self.get(f"/api/archives/{arcid}")).json["tags"], "")
        return d(run())

    def test_put_metadata_errors(self) -> Deferred[None]:
        """A summary alone is the golden 400; unknown ids and missing keys are refused."""
        async def run() -> None:
            arcid = await self.add(self.make("meta.cbz", make_cbz, 1))
            response = await self.request("PUT", f"/api/archives/{arcid}/metadata?summary=x",
                                          auth=True)
            self.assertEqual((response.status, response.json),
                             (400, golden("err_put_metadata_summary_only.json")))
            unknown = await self.request("PUT", "/api/archives/" + "0" * 40 + "/metadata?title=x",
                                         auth=True)
            self.assertEqual(unknown.status, 400)
            self.assertEqual(unknown.json["operation"], "update_metadata")
            anonymous = await self.request("PUT", f"/api/archives/{arcid}/metadata?title=x")
            self.assertEqual(anonymous.status, 401)
            async with self.services().locks.held(f"archive-write:{arcid}"):
                locked = await self.request("PUT", f"/api/archives/{arcid}/metadata?title=x",
                                            auth=True)
            self.assertEqual((locked.status, locked.json), (423, {
                "operation": "update_metadata", "success": 0,
                "error": f"Locked resource: {arcid}."}))
        return d(run())

    def test_isnew(self) -> Deferred[None]:
        """PUT sets isnew (key needed), DELETE clears it (public); golden bodies."""
        async def run() -> None:
            arcid = await self.add(self.make("new.cbz", make_cbz, 1))
            cleared = await self.request("DELETE", f"/api/archives/{arcid}/isnew")
            expected = dict(golden("delete_archive_isnew.json"), id=arcid)
            self.assertEqual((cleared.status, cleared.json), (200, expected))
            self.assertFalse((await self.get(f"/api/archives/{arcid}")).json["isnew"])
            search = self.redis.db(DB.SEARCH)
            self.assertFalse(await search.sismember("LRR_NEW", arcid))
            self.assertEqual((await self.request("PUT", f"/api/archives/{arcid}/isnew")).status, 401)
            added = await self.request("PUT", f"/api/archives/{arcid}/isnew", auth=True)
            self.assertEqual((added.status, added.json), (200, golden("put_archive_isnew.json")))
            self.assertTrue((await self.get(f"/api/archives/{arcid}")).json["isnew"])
            unknown = await self.request("DELETE", "/api/archives/" + "0" * 40 + "/isnew")
            self.assertEqual(unknown.status, 400)
        return d(run())

    def test_toc(self) -> Deferred[None]:
        """ToC entries are added and removed with the golden bodies and listed sorted by page."""
        async def run() -> None:
            arcid = await self.add(self.make("toc.cbz", make_cbz, 5))
            put = await self.request("PUT", f"/api/archives/{arcid}/toc?page=1&title=Intro",
                                     auth=True)
            self.assertEqual((put.status, put.json), (200, golden("put_archive_toc.json")))
            await self.request("PUT", f"/api/archives/{arcid}/toc?page=10&title=Later", auth=True)
            await self.request("PUT", f"/api/archives/{arcid}/toc?page=3&title=Middle", auth=True)
            meta = (await self.get(f"/api/archives/{arcid}")).json
            self.assertEqual(meta["toc"], [{"page": 1, "name": "Intro"}, {"page": 3, "name": "Middle"},
                                           {"page": 10, "name": "Later"}])
            removed = await self.request("DELETE", f"/api/archives/{arcid}/toc?page=1", auth=True)
            self.assertEqual((removed.status, removed.json), (200, golden("delete_archive_toc.json")))
            self.assertEqual(len((await self.get(f"/api/archives/{arcid}")).json["toc"]), 2)
            missing = await self.request("PUT", f"/api/archives/{arcid}/toc", auth=True)
            self.assertEqual((missing.status, missing.json),
                             (400, golden("err_put_archive_toc_missing.json")))
        return d(run())


class ProgressTests(ArchivesTestCase):
    def test_progress(self) -> Deferred[None]:
        """Progress and lastreadtime are stored, pages read counted; golden bodies."""
        async def run() -> None:
            arcid = await self.add(self.make("p.cbz", make_cbz, 5))
            response = await self.request("PUT", f"/api/archives/{arcid}/progress/2")
            self.assertEqual(response.status, 200)
            same_shape(self, response.json, golden("put_archive_progress.json"))
            self.assertEqual((response.json["id"], response.json["page"]), (arcid, 2))
            meta = (await self.get(f"/api/archives/{arcid}")).json
            self.assertEqual((meta["progress"], meta["lastreadtime"]),
                             (2, response.json["lastreadtime"]))
            self.assertTrue(meta["isnew"], "progress does not clear isnew")
            self.assertEqual(await self.services().config.total_pages_read(), 1)
            for page in ("99999", "0"):
                bad = await self.request("PUT", f"/api/archives/{arcid}/progress/{page}")
                self.assertEqual((bad.status, bad.json),
                                 (400, golden("err_put_archive_progress_range.json")))
            forced = await self.request("PUT", f"/api/archives/{arcid}/progress/99999?force=1")
            self.assertEqual((forced.status, forced.json["page"]), (200, 99999))
        return d(run())

    def test_progress_rules_in_order(self) -> Deferred[None]:
        """authprogress → 401, localprogress → 400, no pagecount → 400, locked → 423."""
        async def run() -> None:
            arcid = await self.add(self.make("p.cbz", make_cbz, 5))
            url = f"/api/archives/{arcid}/progress/1"
            await self.set_config(authprogress="1")
            denied = await self.request("PUT", url)
            self.assertEqual((denied.status, denied.json), (401, {
                "operation": "update_progress", "error": "This operation requires authentication.",
                "success": 0}))
            self.assertEqual((await self.request("PUT", url, auth=True)).status, 200)
            await self.set_config(authprogress="0", localprogress="1")
            local = await self.request("PUT", url)
            self.assertEqual(local.status, 400)
            self.assertEqual(local.json["error"],
                             "Server-side Progress Tracking is disabled on this instance.")
            await self.set_config(localprogress="0")
            await self.services().archives.delete_fields(arcid, "pagecount")
            nocount = await self.request("PUT", url)
            self.assertEqual(nocount.json["error"],
                             "Archive doesn&#39;t have a total page count recorded yet.")
            await self.services().archives.set_fields(arcid, {"pagecount": 5})
            async with self.services().locks.held(f"archive-write:{arcid}"):
                locked = await self.request("PUT", url)
            self.assertEqual(locked.status, 423)
        return d(run())


class DeleteAndDownloadTests(ArchivesTestCase):
    def test_delete_archive(self) -> Deferred[None]:
        """DELETE removes the file, the entry, its stamps and its thumbnails; a second says "0"."""
        async def run() -> None:
            path = self.make("del.cbz", make_cbz, 3)
            arcid = await self.add(path, covers=True)
            cover = cover_path(self.thumbdir, arcid, "jpg")
            self.assertTrue(cover.exists())
            stamp = await self.request("PUT", f"/api/archives/{arcid}/stamps/1?content=x&position=1,1",
                                       auth=True)
            self.assertEqual(stamp.json["success"], 1)
            self.assertEqual((await self.request("DELETE", f"/api/archives/{arcid}")).status, 401)
            response = await self.request("DELETE", f"/api/archives/{arcid}", auth=True)
            self.assertEqual((response.status, response.json), (200, {
                "operation": "delete_archive", "id": arcid, "filename": os.fspath(path),
                "success": 1}))
            self.assertFalse(path.exists())
            self.assertFalse(cover.exists())
            self.assertFalse(await self.services().archives.exists(arcid))
            self.assertIsNone(await self.services().stamps.get(stamp.json["stamp_id"]))
            self.assertIsNone(await self.services().archives.filemap_get(os.fspath(path)))
            self.assertEqual((await self.get("/api/archives")).json, [])
            again = await self.request("DELETE", f"/api/archives/{arcid}", auth=True)
            self.assertEqual(again.json, {"operation": "delete_archive", "id": arcid,
                                          "filename": "0", "success": 0})
        return d(run())

    def test_download_and_ranges(self) -> Deferred[None]:
        """The raw file with the original's disposition; single ranges give 206, bad ones 416."""
        async def run() -> None:
            path = self.make("(C101) [Kuro Neko] Blue.cbz", make_cbz, numbered_pages(50))
            arcid = await self.add(path)
            blob = path.read_bytes()
            url = f"/api/archives/{arcid}/download"
            full = await self.get(url)
            self.assertEqual((full.status, full.body), (200, blob))
            self.assertEqual(full.header("content-disposition"),
                             'attachment;filename="(C101) [Kuro Neko] Blue.cbz"')
            self.assertEqual(full.header("content-type"),
                             'application/x-download;name="(C101) [Kuro Neko] Blue.cbz"')
            self.assertEqual(full.header("accept-ranges"), "bytes")
            part = await self.get(url, headers={"Range": "bytes=10-99"})
            self.assertEqual((part.status, part.body), (206, blob[10:100]))
            self.assertEqual(part.header("content-range"), f"bytes 10-99/{len(blob)}")
            tail = await self.get(url, headers={"Range": "bytes=-25"})
            self.assertEqual((tail.status, tail.body), (206, blob[-25:]))
            rest = await self.get(url, headers={"Range": f"bytes={len(blob) - 5}-"})
            self.assertEqual(rest.body, blob[-5:])
            beyond = await self.get(url, headers={"Range": f"bytes={len(blob) + 10}-"})
            self.assertEqual(beyond.status, 416)
            self.assertEqual(beyond.header("content-range"), f"bytes */{len(blob)}")
            several = await self.get(url, headers={"Range": "bytes=0-1,5-6"})
            self.assertEqual((several.status, several.body), (200, blob))
            head = await self.request("HEAD", url)
            self.assertEqual((head.status, head.body, head.header("content-length")),
                             (200, b"", str(len(blob))))
            unknown = await self.get("/api/archives/" + "0" * 40 + "/download")
            self.assertEqual(unknown.status, 400)
            path.unlink()
            missing = await self.get(url)
            self.assertEqual(missing.status, 404)
            self.assertEqual(missing.json["operation"], "serve_file")
        return d(run())

    def test_large_download_streams(self) -> Deferred[None]:
        """A file of several chunks arrives whole (the producer reads it piece by piece)."""
        async def run() -> None:
            path = self.content / "big.cbz"
            blob = os.urandom(3 * 256 * 1024 + 123)
            make_cbz(path, [("001.png", png_bytes())], extra=[("filler.bin", blob)])
            arcid = await self.register(path, 1)
            response = await self.get(f"/api/archives/{arcid}/download")
            self.assertEqual(response.body, path.read_bytes())
        return d(run())

    def test_non_ascii_filename(self) -> Deferred[None]:
        """A non-ASCII name is sent raw in filename= and RFC 6266-encoded in filename*=."""
        async def run() -> None:
            path = self.make("日本語.cbz", make_cbz, 1)
            arcid = await self.add(path)
            response = await self.get(f"/api/archives/{arcid}/download")
            raw = response.headers.getRawHeaders(b"content-disposition")[0]
            self.assertIn('filename="日本語.cbz"'.encode(), raw)
            self.assertIn(b"filename*=UTF-8''%E6%97%A5%E6%9C%AC%E8%AA%9E.cbz", raw)
        return d(run())


class ThumbnailTests(ArchivesTestCase):
    def test_get_thumbnail(self) -> Deferred[None]:
        """Cover → 200 image; a missing page thumb → noThumb.png, or 202 + job with no_fallback."""
        async def run() -> None:
            arcid = await self.add(self.make("t.cbz", make_cbz, 3), covers=True)
            cover = await self.get(f"/api/archives/{arcid}/thumbnail")
            self.assertEqual(cover.status, 200)
            self.assertEqual(cover.body, cover_path(self.thumbdir, arcid, "jpg").read_bytes())
            self.assertTrue(cover.header("content-type").startswith("image/jpeg"))
            fallback = await self.get(f"/api/archives/{arcid}/thumbnail?page=3")
            self.assertEqual(fallback.status, 200)
            self.assertEqual(Image.open(io.BytesIO(fallback.body)).format, "PNG")
            queued = await self.get(f"/api/archives/{arcid}/thumbnail?page=3&no_fallback=true")
            self.assertEqual(queued.status, 202)
            same_shape(self, queued.json, golden("get_archive_thumbnail_nofallback_first.json"))
            self.assertEqual(queued.json["operation"], "serve_thumbnail")
            target = page_thumb_path(self.thumbdir, arcid, 3, "jpg")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(b"jpeg!")
            found = await self.get(f"/api/archives/{arcid}/thumbnail?page=3&no_fallback=true")
            self.assertEqual((found.status, found.body), (200, b"jpeg!"))
            unknown = await self.get("/api/archives/" + "0" * 40 + "/thumbnail")
            self.assertEqual(unknown.status, 200)
            bad = await self.get(f"/api/archives/{arcid}/thumbnail?page=x")
            self.assertEqual((bad.status, bad.json), (400, golden("err_bad_request_thumbnail_page.json")))
        return d(run())

    def test_put_thumbnail(self) -> Deferred[None]:
        """PUT regenerates the cover from page N and updates thumbhash."""
        async def run() -> None:
            pages = [("001.png", png_bytes(4, 4, (255, 0, 0))), ("002.png", png_bytes(4, 4, (0, 255, 0)))]
            arcid = await self.add(self.make("c.cbz", make_cbz, pages), covers=True)
            before = (await self.services().archives.get_fields(arcid, "thumbhash"))["thumbhash"]
            response = await self.request("PUT", f"/api/archives/{arcid}/thumbnail?page=2",
                                          auth=True)
            self.assertEqual(response.status, 200, response.body)
            self.assertEqual(response.json, {
                "operation": "update_thumbnail", "success": 1,
                "new_thumbnail": os.fspath(cover_path(self.thumbdir, arcid, "jpg"))})
            after = (await self.services().archives.get_fields(arcid, "thumbhash"))["thumbhash"]
            self.assertNotEqual(before, after)
            out_of_range = await self.request("PUT", f"/api/archives/{arcid}/thumbnail?page=9",
                                              auth=True)
            self.assertEqual(out_of_range.status, 400)
            self.assertEqual(out_of_range.json["operation"], "update_thumbnail")
        return d(run())

    def test_queue_page_thumbnails(self) -> Deferred[None]:
        """POST /files/thumbnails: 202 with a job (the same one while it waits), 200 when all exist."""
        async def run() -> None:
            arcid = await self.add(self.make("q.cbz", make_cbz, 2))
            url = f"/api/archives/{arcid}/files/thumbnails"
            first = await self.request("POST", url)
            self.assertEqual(first.status, 202)
            self.assertEqual(first.json["operation"], "generate_page_thumbnails")
            job = first.json["job"]
            again = await self.request("POST", url)
            self.assertEqual((again.status, again.json["job"]), (202, job))
            stored = await self.services().archives.get_fields(arcid, "thumbjob")
            self.assertEqual(stored["thumbjob"], str(job))
            for page in (1, 2):
                target = page_thumb_path(self.thumbdir, arcid, page, "jpg")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(b"x")
            done = await self.request("POST", url)
            self.assertEqual((done.status, done.json), (200, {
                "operation": "generate_page_thumbnails", "success": 1,
                "message": "No job queued, all thumbnails already exist."}))
            forced = await self.request("POST", url + "?force=true")
            self.assertEqual(forced.status, 202)
        return d(run())
