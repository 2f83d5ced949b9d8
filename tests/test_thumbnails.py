"""Covers, page thumbnails and tank covers made through the pools, in the original's layout."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

from PIL import Image

from lrrd.images import cover_path, page_thumb_path, tank_cover_path
from lrrd.library import thumbnails
from lrrd.library.identity import compute_id
from lrrd.library.thumbnails import ThumbnailError
from tests.fixtures.app import ApiTestCase
from tests.fixtures.archives import jpeg_bytes, make_cbz, make_lying_zip_bomb, png_bytes
from tests.fixtures.library import LibraryTestCase, d


class ThumbnailTests(LibraryTestCase):
    async def _archive(self, name: str, pages: object) -> str:
        path = make_cbz(self.content / name, pages)  # type: ignore[arg-type]
        arcid = compute_id(path)
        await self.services.archives.create(arcid, str(path))
        return arcid

    def test_cover_is_first_ordered_page(self):  # noqa: ANN201
        """The cover comes from page 1 after §3.3 ordering, fits 500×1000, and sets thumbhash."""
        cover_page = png_bytes(40, 80, (0, 255, 0))

        async def run() -> None:
            arcid = await self._archive("a.cbz", [("001.png", png_bytes(10, 10)),
                                                  ("zz_Cover.png", cover_page)])
            path = await thumbnails.make_cover(self.services, arcid)
            self.assertEqual(path, cover_path(self.settings.thumb_dir, arcid, "jpg"))
            with Image.open(path) as image:
                self.assertEqual(image.format, "JPEG")
                self.assertEqual(image.size, (500, 1000))
            fields = await self.services.archives.get(arcid)
            self.assertEqual(fields["thumbhash"], hashlib.sha1(cover_page).hexdigest())
        return d(run())

    def test_cover_from_page_n_and_errors(self):  # noqa: ANN201
        """A cover can come from page N; out-of-range pages and unknown ids raise ThumbnailError."""
        async def run() -> None:
            arcid = await self._archive("b.cbz", 3)
            await thumbnails.make_cover(self.services, arcid, page=2)
            with self.assertRaises(ThumbnailError):
                await thumbnails.make_cover(self.services, arcid, page=9)
            with self.assertRaises(ThumbnailError):
                await thumbnails.make_cover(self.services, "f" * 40)
        return d(run())

    def test_page_thumbnail_quality_follows_hqthumbpages(self):  # noqa: ANN201
        """Page thumbnails are quality 50 unless hqthumbpages is on, then 80 (bigger files)."""
        noisy = io.BytesIO()
        Image.effect_noise((300, 300), 80).convert("RGB").save(noisy, "PNG")

        async def run() -> None:
            arcid = await self._archive("c.cbz", [("01.png", noisy.getvalue())])
            low = (await thumbnails.make_page_thumbnail(self.services, arcid, 1)).stat().st_size
            await self.services.config.set({"hqthumbpages": "1"})
            path = await thumbnails.make_page_thumbnail(self.services, arcid, 1)
            self.assertEqual(path, page_thumb_path(self.settings.thumb_dir, arcid, 1, "jpg"))
            self.assertGreater(path.stat().st_size, low)
        return d(run())

    def test_all_pages_progress_skip_and_errors(self):  # noqa: ANN201
        """All page thumbnails: progress per page, existing ones kept, a bad page reported alone."""
        pages = [(f"{i:03d}.png", png_bytes(4, 4, (i, 0, 0))) for i in range(1, 8)]
        pages[3] = ("004.png", b"not an image at all")

        async def run() -> None:
            arcid = await self._archive("d.cbz", pages)
            seen: list[tuple[int, int]] = []
            errors = await thumbnails.make_page_thumbnails(
                self.services, arcid, progress=lambda page, total: seen.append((page, total)))
            self.assertEqual(len(errors), 1)
            self.assertIn("page 4", errors[0])
            self.assertEqual(sorted(seen), [(i, 7) for i in range(1, 8)])
            folder = page_thumb_path(self.settings.thumb_dir, arcid, 1, "jpg").parent
            self.assertEqual(sorted(p.name for p in folder.iterdir()),
                             sorted(f"{i}.jpg" for i in (1, 2, 3, 5, 6, 7)))
            first = folder / "1.jpg"
            first.write_bytes(b"sentinel")
            await thumbnails.make_page_thumbnails(self.services, arcid)
            self.assertEqual(first.read_bytes(), b"sentinel")
            await thumbnails.make_page_thumbnails(self.services, arcid, force=True)
            self.assertNotEqual(first.read_bytes(), b"sentinel")
        return d(run())

    def test_bomb_is_an_error_not_a_crash(self):  # noqa: ANN201
        """A zip bomb's lying member fails its page alone; the reader's cap holds."""
        async def run() -> None:
            path = make_lying_zip_bomb(self.content / "bomb.cbz", actual=8 * 1024 * 1024)
            arcid = compute_id(path)
            await self.services.archives.create(arcid, str(path))
            errors = await thumbnails.make_page_thumbnails(self.services, arcid)
            self.assertEqual(len(errors), 1)
        return d(run())

    def test_jxl_falls_back_to_jpg(self):  # noqa: ANN201
        """With jxlthumbpages on and no JPEG XL writer, thumbnails are JPEG (logged once)."""
        async def run() -> None:
            await self.services.config.set({"jxlthumbpages": "1"})
            arcid = await self._archive("e.cbz", [("1.jpg", jpeg_bytes(20, 20))])
            settings = await thumbnails.thumbnail_settings(self.services)
            path = await thumbnails.make_cover(self.services, arcid)
            self.assertEqual(path.suffix, "." + settings.fmt)
            self.assertTrue(path.exists())
        return d(run())

    def test_tank_cover(self):  # noqa: ANN201
        """A tank cover is page 1 of its first archive under TA/, copied from the cover if any."""
        async def run() -> None:
            arcid = await self._archive("f.cbz", 2)
            tank = "TANK_1700000000"
            made = await thumbnails.make_tank_cover(self.services, tank, arcid)
            self.assertEqual(made, tank_cover_path(self.settings.thumb_dir, tank, "jpg"))
            self.assertTrue(made.exists())
            cover = await thumbnails.make_cover(self.services, arcid)
            await thumbnails.make_tank_cover(self.services, tank, arcid)
            self.assertEqual(Path(made).read_bytes(), cover.read_bytes())
        return d(run())

    def test_move_and_remove(self):  # noqa: ANN201
        """Thumbnails follow an id change and can be removed wholesale."""
        async def run() -> None:
            arcid = await self._archive("g.cbz", 2)
            await thumbnails.make_cover(self.services, arcid)
            await thumbnails.make_page_thumbnails(self.services, arcid)
            new = "0" * 40
            await thumbnails.move_thumbnails(self.services, arcid, new)
            thumbdir = self.settings.thumb_dir
            self.assertTrue(cover_path(thumbdir, new, "jpg").exists())
            self.assertTrue(page_thumb_path(thumbdir, new, 2, "jpg").exists())
            self.assertFalse(cover_path(thumbdir, arcid, "jpg").exists())
            await thumbnails.remove_thumbnails(self.services, new)
            self.assertFalse(cover_path(thumbdir, new, "jpg").exists())
            self.assertFalse(page_thumb_path(thumbdir, new, 2, "jpg").parent.exists())
        return d(run())


class ThumbnailJobTests(ApiTestCase):
    """The thumbnail tasks run by a real worker, queued through the real API."""

    timeout = 60

    async def start_worker(self) -> Any:
        from twisted.internet import reactor

        from lrrd.jobs.queue import JobQueue
        from lrrd.jobs.worker import WorkerService

        services = self.services()
        worker = WorkerService(JobQueue.from_services(services), 2, services, reactor=reactor)
        worker.startService()
        self.addCleanup(worker.stopService)
        await worker.when_started()
        return worker

    async def add(self, name: str, pages: object) -> str:
        services = self.services()
        path = make_cbz(services.settings.content / name, pages)  # type: ignore[arg-type]
        result = await services.importer.import_file(str(path))
        return str(result.arcid)

    def test_regen_thumbs(self):  # noqa: ANN201
        """POST /api/regen_thumbs queues regen_all_thumbnails; missing covers are rebuilt, or
        all of them with force."""
        async def run() -> None:
            worker = await self.start_worker()
            services = self.services()
            services.importer.covers = False
            ids = [await self.add(f"{i}.cbz", [("1.png", png_bytes(2, 2, (i, 0, 0)))])
                   for i in range(3)]
            response = await self.request("POST", "/api/regen_thumbs", auth=True)
            self.assertEqual(response.status, 200)
            self.assertEqual(set(response.json), {"operation", "success", "job"})
            self.assertEqual(response.json["operation"], "regen_thumbnails")
            await worker.when("settled", response.json["job"])
            detail = (await self.get(f"/api/minion/{response.json['job']}/detail",
                                     auth=True)).json
            self.assertEqual((detail["state"], detail["result"]), ("finished", {"errors": []}))
            self.assertEqual(detail["args"], [str(services.settings.thumb_dir), 0])
            thumbdir = services.settings.thumb_dir
            covers = [cover_path(thumbdir, arcid, "jpg") for arcid in ids]
            self.assertTrue(all(c.exists() for c in covers))
            covers[0].write_bytes(b"old")
            again = await self.request("POST", "/api/regen_thumbs", auth=True)
            await worker.when("settled", again.json["job"])
            self.assertEqual(covers[0].read_bytes(), b"old")
            forced = await self.request("POST", "/api/regen_thumbs?force=true", auth=True)
            await worker.when("settled", forced.json["job"])
            self.assertNotEqual(covers[0].read_bytes(), b"old")
        return d(run())

    def test_page_thumbnails_job_notes(self):  # noqa: ANN201
        """POST /files/thumbnails queues page_thumbnails: notes per page, thumbjob cleared."""
        async def run() -> None:
            worker = await self.start_worker()
            arcid = await self.add("p.cbz", 4)
            response = await self.request("POST", f"/api/archives/{arcid}/files/thumbnails")
            self.assertEqual(response.status, 202, response.body)
            job = response.json["job"]
            await worker.when("settled", job)
            status = (await self.get(f"/api/minion/{job}")).json
            self.assertEqual(status["state"], "finished")
            self.assertEqual(status["notes"], {"1": "processed", "2": "processed",
                                               "3": "processed", "4": "processed",
                                               "total_pages": 4, "id": arcid})
            fields = await self.services().archives.get(arcid)
            self.assertNotIn("thumbjob", fields)
            self.assertTrue(page_thumb_path(self.services().settings.thumb_dir, arcid, 4,
                                            "jpg").exists())
        return d(run())

    def test_thumbnail_task(self):  # noqa: ANN201
        """thumbnail_task: page 0 is the cover, page N a page thumbnail; a bad id fails the job
        with {"errors": [...]}."""
        async def run() -> None:
            from lrrd.jobs.queue import JobQueue

            worker = await self.start_worker()
            queue = JobQueue.from_services(self.services())
            arcid = await self.add("t.cbz", 2)
            thumbdir = str(self.services().settings.thumb_dir)
            page = await queue.enqueue("thumbnail_task", [thumbdir, arcid, 2])
            await worker.when("settled", page)
            info = await queue.info(page)
            self.assertEqual(info["state"], "finished")
            self.assertEqual(info["result"], str(page_thumb_path(thumbdir, arcid, 2, "jpg")))
            bad = await queue.enqueue("thumbnail_task", [thumbdir, "0" * 40, 0])
            await worker.when("settled", bad)
            info = await queue.info(bad)
            self.assertEqual(info["state"], "failed")
            self.assertEqual(len(info["result"]["errors"]), 1)
        return d(run())

    def test_handle_upload_only_from_temp(self):  # noqa: ANN201
        """handle_upload imports a file from the temp folder, and refuses any other path."""
        async def run() -> None:
            from lrrd.jobs.queue import JobQueue

            worker = await self.start_worker()
            services = self.services()
            queue = JobQueue.from_services(services)
            staged = services.settings.temp_dir / "web" / "queued.cbz"
            staged.parent.mkdir(parents=True)
            make_cbz(staged, 2)
            arcid = compute_id(staged)
            job = await queue.enqueue("handle_upload", [str(staged), None])
            await worker.when("settled", job)
            result = (await queue.info(job))["result"]
            self.assertEqual((result["success"], result["id"]), (1, arcid))
            self.assertTrue((services.settings.content / "queued.cbz").exists())
            outside = make_cbz(Path(self.mktemp() + ".cbz"), 1)
            job = await queue.enqueue("handle_upload", [str(outside), None])
            await worker.when("settled", job)
            self.assertEqual((await queue.info(job))["result"]["success"], 0)
            self.assertTrue(outside.exists())
        return d(run())
