"""The shared import path: §7's new / renamed / modified rules, date_added, covers, bad files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from twisted.logger import globalLogPublisher

from lrrd.images import cover_path, page_thumb_path
from lrrd.library import thumbnails
from lrrd.library.identity import compute_id
from lrrd.store.archives import as_text
from tests.fixtures.archives import (
    make_7z,
    make_cbz,
    make_declared_huge_zip,
    make_not_archive,
    make_pdf,
    make_tar,
    make_truncated_zip,
    png_bytes,
)
from tests.fixtures.library import LibraryTestCase, d


class LogCatcher:
    """Collects formatted log events so a test can prove a skip was logged."""

    def __init__(self, case: LibraryTestCase) -> None:
        self.events: list[dict] = []
        globalLogPublisher.addObserver(self.events.append)
        case.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def text(self) -> str:
        from twisted.logger import formatEvent

        return "\n".join(formatEvent(event) for event in self.events)


class ImporterTests(LibraryTestCase):
    def test_new_archive(self):  # noqa: ANN201
        """A new file: hash, title=name, isnew, date_added, pagecount, arcsize, cover, filemap."""
        async def run() -> None:
            path = make_cbz(self.content / "My Book.cbz", 5)
            self.clock_before = int(self.services.reactor.seconds())
            result = await self.services.importer.import_file(str(path))
            self.assertEqual(result.status, "added")
            arcid = compute_id(path)
            self.assertEqual(result.arcid, arcid)
            fields = await self.services.archives.get(arcid)
            self.assertEqual(fields["name"], "My Book")
            self.assertEqual(fields["title"], "My Book")
            self.assertEqual(fields["isnew"], "true")
            self.assertEqual(fields["pagecount"], "5")
            self.assertEqual(fields["arcsize"], str(path.stat().st_size))
            self.assertEqual(as_text(fields["file"]), str(path))
            self.assertRegex(fields["tags"], r"^date_added:\d+$")
            self.assertGreaterEqual(int(fields["tags"].split(":")[1]), self.clock_before)
            self.assertTrue(fields["thumbhash"])
            self.assertTrue(cover_path(self.settings.thumb_dir, arcid, "jpg").exists())
            self.assertEqual(await self.services.archives.filemap_get(str(path)), arcid)
            again = await self.services.importer.import_file(str(path))
            self.assertEqual(again.status, "unchanged")
        return d(run())

    def test_date_added_settings(self):  # noqa: ANN201
        """usedatemodified takes the file's mtime; usedateadded=0 adds no tag."""
        async def run() -> None:
            await self.services.config.set({"usedatemodified": "1"})
            a = make_cbz(self.content / "a.cbz", 1)
            os.utime(a, (1_500_000_000, 1_500_000_000))
            await self.services.importer.import_file(str(a))
            fields = await self.services.archives.get(compute_id(a))
            self.assertEqual(fields["tags"], "date_added:1500000000")
            await self.services.config.set({"usedateadded": "0"})
            self.services.importer.refresh_options()
            b = make_cbz(self.content / "b.cbz", 2)
            await self.services.importer.import_file(str(b))
            self.assertEqual((await self.services.archives.get(compute_id(b)))["tags"], "")
        return d(run())

    def test_rename_keeps_metadata(self):  # noqa: ANN201
        """A known id at a new path: file and name follow, title and tags stay (§7)."""
        async def run() -> None:
            old = make_cbz(self.content / "old.cbz", 2)
            await self.services.importer.import_file(str(old))
            arcid = compute_id(old)
            await self.services.archives.set_tags(arcid, "artist:someone", append=True)
            await self.services.archives.set_title(arcid, "A Title")
            (self.content / "sub").mkdir()
            new = self.content / "sub" / "new name.cbz"
            old.rename(new)
            await self.services.importer.forget(str(old))
            result = await self.services.importer.import_file(str(new))
            self.assertEqual((result.status, result.arcid), ("moved", arcid))
            fields = await self.services.archives.get(arcid)
            self.assertEqual(as_text(fields["file"]), str(new))
            self.assertEqual(fields["name"], "new name")
            self.assertEqual(fields["title"], "A Title")
            self.assertIn("artist:someone", fields["tags"])
            self.assertIsNone(await self.services.archives.filemap_get(str(old)))
        return d(run())

    def test_modified_changes_id_keeps_metadata(self):  # noqa: ANN201
        """New content at a known path: a new id with the old metadata and thumbnails (§7)."""
        async def run() -> None:
            path = make_cbz(self.content / "book.cbz", 2)
            await self.services.importer.import_file(str(path))
            old = compute_id(path)
            await self.services.archives.set_tags(old, "female:glasses", append=True)
            await thumbnails.make_page_thumbnails(self.services, old)
            make_cbz(path, 3)
            result = await self.services.importer.import_file(str(path))
            new = compute_id(path)
            self.assertNotEqual(old, new)
            self.assertEqual((result.status, result.arcid, result.old_id), ("modified", new, old))
            self.assertIsNone(await self.services.archives.get(old))
            fields = await self.services.archives.get(new)
            self.assertIn("female:glasses", fields["tags"])
            self.assertEqual(fields["pagecount"], "3")
            self.assertEqual(await self.services.archives.filemap_get(str(path)), new)
            thumbdir = self.settings.thumb_dir
            self.assertTrue(cover_path(thumbdir, new, "jpg").exists())
            self.assertTrue(page_thumb_path(thumbdir, new, 1, "jpg").exists())
            self.assertFalse(cover_path(thumbdir, old, "jpg").exists())
        return d(run())

    def test_copy_points_to_new_path(self):  # noqa: ANN201
        """A copy of a known file is the same id: the entry follows the newest path, as Shinobu's."""
        async def run() -> None:
            path = make_cbz(self.content / "one.cbz", 1)
            await self.services.importer.import_file(str(path))
            copy = self.content / "two.cbz"
            shutil.copy(path, copy)
            result = await self.services.importer.import_file(str(copy))
            self.assertEqual(result.status, "moved")
            self.assertEqual(await self.services.archives.filemap_get(str(copy)), result.arcid)
        return d(run())

    def test_formats_and_bad_files(self):  # noqa: ANN201
        """Every format imports; truncated, non-archive and empty files are skipped with a log
        line; a bomb imports (its listing is sane) without harming the others."""
        logs = LogCatcher(self)

        async def run() -> None:
            good = [
                make_cbz(self.content / "z.cbz", 2),
                make_tar(self.content / "t.cbt", 2),
                make_7z(self.content / "s.cb7", 2),
                make_pdf(self.content / "p.pdf", 2),
            ]
            bad = [
                make_truncated_zip(self.content / "trunc.cbz"),
                make_not_archive(self.content / "text.cbz"),
            ]
            empty = self.content / "empty.cbz"
            empty.write_bytes(b"")
            bomb = make_declared_huge_zip(self.content / "bomb.cbz")
            paths = [str(p) for p in [*good, *bad, empty, bomb]]
            results = await self.services.importer.import_many(paths)
            by_path = {r.path: r for r in results}
            for path in good:
                self.assertEqual(by_path[str(path)].status, "added", path)
                fields = await self.services.archives.get(compute_id(path))
                self.assertEqual(fields["pagecount"], "2", path)
            for path in [*bad, empty]:
                self.assertEqual(by_path[str(path)].status, "skipped", path)
                self.assertIn(f"Skipping {path}", logs.text())
            self.assertEqual(by_path[str(bomb)].status, "added")
            self.assertEqual(sorted(await self.services.archives.ids()),
                             sorted(compute_id(p) for p in [*good, bomb]))
        return d(run())

    def test_lock_busy(self):  # noqa: ANN201
        """A file whose archive-write lock is held elsewhere is left for later, untouched."""
        async def run() -> None:
            path = make_cbz(self.content / "l.cbz", 1)
            arcid = compute_id(path)
            token = await self.services.locks.acquire(f"archive-write:{arcid}", 60)
            self.addCleanup(lambda: d(self.services.locks.release(f"archive-write:{arcid}", token)))
            result = await self.services.importer.import_file(str(path))
            self.assertEqual(result.status, "locked")
            self.assertIsNone(await self.services.archives.get(arcid))
        return d(run())

    def test_many_at_once_and_no_covers(self):  # noqa: ANN201
        """Fifty files through import_many with covers off: all added, no cover written."""
        async def run() -> None:
            self.services.importer.covers = False
            paths = []
            for i in range(50):
                paths.append(str(make_cbz(self.content / f"{i:02d}.cbz",
                                          [("1.png", png_bytes(1, 1, (i, 1, 1)))])))
            results = await self.services.importer.import_many(paths)
            self.assertEqual([r.status for r in results], ["added"] * 50)
            self.assertEqual([r.path for r in results], paths)
            self.assertFalse(Path(self.settings.thumb_dir).exists()
                             and any(Path(self.settings.thumb_dir).rglob("*.jpg")))
        return d(run())
