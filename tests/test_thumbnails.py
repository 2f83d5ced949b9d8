"""Covers, page thumbnails and tank covers made through the pools, in the original's layout."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

from PIL import Image

from lrrd.images import cover_path, page_thumb_path, tank_cover_path
from lrrd.library import thumbnails
from lrrd.library.identity import compute_id
from lrrd.library.thumbnails import ThumbnailError
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
