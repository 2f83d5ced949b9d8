"""Tests for lrrd.library.formats: every archive format, limits, hostile input and the extraction cache."""

from __future__ import annotations

import gc
import io
import os
import struct
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from twisted.trial.unittest import SynchronousTestCase

from lrrd.library.formats import (
    PDF_DPI,
    ArchiveError,
    ArchiveReader,
    ArchiveTooLarge,
    ExtractionCache,
    PageNotFound,
    ReadLimits,
    count_pages,
    open_archive,
)
from lrrd.library.pages import sort_pages
from tests.fixtures.archives import (
    APPLE_DOUBLE,
    NESTED_PAGES,
    UNICODE_PAGES,
    jpeg_bytes,
    make_7z,
    make_cbr,
    make_cbz,
    make_declared_huge_zip,
    make_epub,
    make_lying_zip_bomb,
    make_not_archive,
    make_pdf,
    make_tar,
    make_truncated,
    make_truncated_zip,
    numbered_pages,
    page_color,
    png_bytes,
    with_macosx_junk,
)

Maker = Callable[[Path, list[tuple[str, bytes]]], Path]

# Every way an image archive is written, keyed by the file name it is given.
MAKERS: dict[str, Maker] = {
    "book.cbz": lambda path, pages: make_cbz(path, pages),
    "book.zip": lambda path, pages: make_cbz(path, pages, compression=zipfile.ZIP_STORED),
    "book.cbt": lambda path, pages: make_tar(path, pages),
    "book.tar": lambda path, pages: make_tar(path, pages),
    "book.tar.gz": lambda path, pages: make_tar(path, pages, compression="gzip"),
    "book.tar.zst": lambda path, pages: make_tar(path, pages, compression="zstd"),
    "book.zst": lambda path, pages: make_tar(path, pages, compression="zstd"),
    "book.xz": lambda path, pages: make_tar(path, pages, compression="xz"),
    "book.lzma": lambda path, pages: make_tar(path, pages, compression="lzma"),
    "book.7z": lambda path, pages: make_7z(path, pages),
    "book.cb7": lambda path, pages: make_7z(path, pages),
    "book.rar": lambda path, pages: make_cbr(path, pages),
    "book.cbr": lambda path, pages: make_cbr(path, pages),
}
SOLID = [name for name in MAKERS if not name.endswith((".cbz", ".zip"))]


class ArchiveTestCase(SynchronousTestCase):
    """Helpers: a scratch directory, a cache directory, and readers closed after each test."""

    def setUp(self) -> None:
        self.dir = Path(self.mktemp())
        self.dir.mkdir()
        self.cache_dir = self.dir / "cache"

    def open(self, path: Path, **kwargs: object) -> ArchiveReader:
        kwargs.setdefault("cache_dir", self.cache_dir)
        reader = open_archive(path, **kwargs)  # type: ignore[arg-type]
        self.addCleanup(reader.close)
        return reader

    def build(self, filename: str, pages: list[tuple[str, bytes]]) -> Path:
        return MAKERS[filename](self.dir / filename, pages)


class EveryFormatTests(ArchiveTestCase):
    """Each supported format lists its images in order and returns their exact bytes."""

    PAGES = [
        ("10.png", png_bytes(1, 1, page_color(10))),
        ("ComicInfo.xml", b"<ComicInfo/>"),
        ("2.png", png_bytes(1, 1, page_color(2))),
        ("chapter/1.jpg", jpeg_bytes()),
        ("front_cover.png", png_bytes(1, 1, page_color(99))),
    ]

    def test_every_format_lists_and_reads_pages(self) -> None:
        """zip, cbz, tar, cbt, tar.gz, tar.zst, zst, xz, lzma, 7z, cb7, rar and cbr all read alike."""
        images = {name: data for name, data in self.PAGES if not name.endswith(".xml")}
        for filename in MAKERS:
            with self.open(self.build(filename, self.PAGES)) as reader:
                self.assertEqual(reader.members(), list(images), filename)
                self.assertEqual(
                    reader.pages(), ["front_cover.png", "2.png", "10.png", "chapter/1.jpg"], filename
                )
                for name, data in images.items():
                    self.assertEqual(reader.read(name), data, f"{filename}: {name}")

    def test_count_pages_every_format(self) -> None:
        """count_pages counts images only, without extracting anything."""
        for filename in MAKERS:
            path = self.build(filename, self.PAGES)
            self.assertEqual(count_pages(path), 4, filename)
        self.assertFalse(self.cache_dir.exists())

    def test_epub_is_read_as_zip(self) -> None:
        """An EPUB gets no special handling: every image inside is a page, in path order."""
        reader = self.open(make_epub(self.dir / "book.epub", 3))
        self.assertEqual(reader.pages(), ["OEBPS/images/001.png", "OEBPS/images/002.png", "OEBPS/images/003.png"])
        self.assertEqual(reader.read("OEBPS/images/002.png"), png_bytes(1, 1, page_color(2)))

    def test_one_page_archive(self) -> None:
        """A single-page archive has one page, readable in every format."""
        for filename in ["book.cbz", "book.7z", "book.cbr"]:
            reader = self.open(self.build(filename, numbered_pages(1)))
            self.assertEqual(reader.pages(), ["001.png"], filename)
            self.assertEqual(reader.read("001.png"), png_bytes(1, 1, page_color(1)), filename)

    def test_two_thousand_page_cbz(self) -> None:
        """A 2,000-page cbz lists every page in numeric order and reads any of them."""
        reader = self.open(make_cbz(self.dir / "big.cbz", 2000))
        pages = reader.pages()
        self.assertEqual(len(pages), 2000)
        self.assertEqual(pages[0], "0001.png")
        self.assertEqual(pages[-1], "2000.png")
        self.assertEqual(pages, [f"{n:04d}.png" for n in range(1, 2001)])
        self.assertEqual(reader.read("1500.png"), png_bytes(1, 1, page_color(1500)))

    def test_empty_archives(self) -> None:
        """An archive without images has no pages."""
        self.assertEqual(self.open(make_cbz(self.dir / "e.cbz", [("a.txt", b"x")])).pages(), [])
        self.assertEqual(self.open(make_cbz(self.dir / "none.cbz", [])).pages(), [])
        self.assertEqual(self.open(make_7z(self.dir / "e.7z", [("a.txt", b"x")])).pages(), [])

    def test_misnamed_archives_are_read_by_magic(self) -> None:
        """A RAR named .cbz and a zip named .cbr are still read (both occur in the wild)."""
        rar_as_cbz = make_cbr(self.dir / "rar.cbz", numbered_pages(2))
        zip_as_cbr = make_cbz(self.dir / "zip.cbr", numbered_pages(2))
        for path in [rar_as_cbz, zip_as_cbr]:
            reader = self.open(path)
            self.assertEqual(reader.read("002.png"), png_bytes(1, 1, page_color(2)), path.name)
        self.assertFalse(self.open(rar_as_cbz).random_access)
        self.assertTrue(self.open(zip_as_cbr).random_access)


class NameTests(ArchiveTestCase):
    """Member names: nesting, Unicode, normalisation, undecodable bytes and hostile paths."""

    def test_nested_folders_keep_full_paths(self) -> None:
        """Pages in nested folders are named by their full in-archive path."""
        pages = [("a/b/c/001.png", png_bytes()), ("a/002.png", png_bytes(1, 1, (0, 0, 0)))]
        for filename in ["book.cbz", "book.7z", "book.cbr", "book.tar"]:
            reader = self.open(self.build(filename, pages))
            self.assertEqual(reader.pages(), ["a/002.png", "a/b/c/001.png"], filename)
            self.assertEqual(reader.read("a/b/c/001.png"), png_bytes(), filename)

    def test_release_layout_order(self) -> None:
        """Volume/chapter folders sort numerically, with the cover first and credits last."""
        expected = ["Vol 1/Cover.jpg", "Vol 1/Chapter 2/001.jpg", "Vol 1/Chapter 10/001.jpg", "Vol 1/zz_credits.jpg"]
        for filename in ["book.cbz", "book.cb7", "book.cbr", "book.cbt"]:
            self.assertEqual(self.open(self.build(filename, NESTED_PAGES)).pages(), expected, filename)

    def test_unicode_fixture_pages_round_trip(self) -> None:
        """Every shared Unicode fixture page reads back byte for byte from a cbz and a 7z."""
        for filename in ["book.cbz", "book.7z"]:
            reader = self.open(self.build(filename, UNICODE_PAGES))
            for name, data in UNICODE_PAGES:
                self.assertEqual(reader.read(name), data, f"{filename}: {name}")

    def test_unicode_names(self) -> None:
        """Japanese and accented names list and read in every format."""
        pages = [("日本語/ページ01.png", png_bytes()), ("é/02.png", png_bytes(1, 1, (1, 1, 1)))]
        for filename in ["book.cbz", "book.7z", "book.cbr", "book.tar.gz"]:
            reader = self.open(self.build(filename, pages))
            self.assertEqual(sorted(reader.members()), sorted(name for name, _ in pages), filename)
            self.assertEqual(reader.read("日本語/ページ01.png"), png_bytes(), filename)

    def test_decomposed_names_found_by_composed_request(self) -> None:
        """A macOS-style NFD member is found when the client asks with the NFC name."""
        nfd = "cafe\u0301/01.png"
        reader = self.open(make_cbz(self.dir / "nfd.cbz", [(nfd, png_bytes())]))
        self.assertEqual(reader.pages(), [nfd])
        self.assertEqual(reader.read("caf\u00e9/01.png"), png_bytes())
        self.assertEqual(reader.read(nfd), png_bytes())

    def test_undecodable_zip_name_is_latin1(self) -> None:
        """A legacy (Shift-JIS) zip name that is not UTF-8 is shown as its bytes read as Latin-1."""
        path = make_cbz(self.dir / "sjis.cbz", [("XX.png", png_bytes())])
        blob = path.read_bytes().replace(b"XX.png", b"\x93\xfa.png")
        path.write_bytes(blob)
        reader = self.open(path)
        self.assertEqual(reader.pages(), ["\x93\xfa.png"])
        self.assertEqual(reader.read("\x93\xfa.png"), png_bytes())

    def test_hostile_names_never_touch_the_filesystem(self) -> None:
        """``..`` and absolute member names are listed and read, and nothing lands outside the cache."""
        pages = [("../../escape.png", png_bytes()), ("/abs/root.png", png_bytes(1, 1, (9, 9, 9)))]
        for filename in ["book.tar", "book.cbz", "book.cbr"]:
            reader = self.open(self.build(filename, pages))
            self.assertEqual(reader.members(), ["../../escape.png", "/abs/root.png"], filename)
            self.assertEqual(reader.read("../../escape.png"), png_bytes(), filename)
            self.assertEqual(reader.read("/abs/root.png"), png_bytes(1, 1, (9, 9, 9)), filename)
        self.assertFalse(Path("/abs/root.png").exists())
        found = {path.name for path in self.dir.parent.rglob("*.png")}
        self.assertNotIn("escape.png", found)
        self.assertNotIn("root.png", found)

    def test_cache_files_are_opaque_numbers(self) -> None:
        """The extraction holds numbered files and its bookkeeping, never member names."""
        reader = self.open(make_7z(self.dir / "b.7z", [("../x.png", png_bytes()), ("y/z.png", png_bytes())]))
        reader.read("y/z.png")
        (extraction,) = [path for path in self.cache_dir.iterdir() if not path.name.startswith(".")]
        self.assertEqual(sorted(path.name for path in extraction.iterdir()), ["0", "1", "bytes", "manifest.json"])

    def test_nul_in_zip_name_truncates(self) -> None:
        """A NUL ends a zip member name, as libarchive (the original's reader) also does."""
        path = make_cbz(self.dir / "nul.cbz", [("aaaaaaa.png", png_bytes())])
        path.write_bytes(path.read_bytes().replace(b"aaaaaaa.png", b"a.png\0x.txt"))
        reader = self.open(path)
        self.assertEqual(reader.pages(), ["a.png"])
        self.assertEqual(reader.read("a.png"), png_bytes())

    def test_duplicate_names_listed_twice_first_one_read(self) -> None:
        """Two members with one name are both listed, and reading gives the first."""
        pages = [("1.png", png_bytes()), ("1.png", png_bytes(1, 1, (0, 9, 0)))]
        for filename in ["book.tar", "book.7z"]:
            reader = self.open(self.build(filename, pages))
            self.assertEqual(reader.pages(), ["1.png", "1.png"], filename)
            self.assertEqual(reader.read("1.png"), png_bytes(), filename)

    def test_unknown_page_is_page_not_found(self) -> None:
        """Asking for a missing page raises PageNotFound, a KeyError, in every kind of reader."""
        paths = [
            make_cbz(self.dir / "a.cbz", 2),
            make_7z(self.dir / "a.7z", 2),
            make_pdf(self.dir / "a.pdf", 2),
        ]
        for path in paths:
            reader = self.open(path)
            for missing in ["404.xyz", "3.jpg", "", "ComicInfo.xml"]:
                error = self.assertRaises(PageNotFound, reader.read, missing)
                self.assertIsInstance(error, KeyError)
                self.assertIn(repr(missing), str(error))

    def test_non_image_member_is_not_a_page(self) -> None:
        """A member that exists but is not an image cannot be read as a page."""
        reader = self.open(make_cbz(self.dir / "a.cbz", 1, extra=[("ComicInfo.xml", b"<x/>")]))
        self.assertRaises(PageNotFound, reader.read, "ComicInfo.xml")


class AppleDoubleTests(ArchiveTestCase):
    """macOS resource-fork junk is dropped only when it carries the Apple magic."""

    PAGES = [
        ("001.png", png_bytes()),
        ("__MACOSX/._001.png", APPLE_DOUBLE),
        ("._002.png", APPLE_DOUBLE),
        ("__MACOSX/real.png", png_bytes(1, 1, (5, 5, 5))),
    ]

    def test_junk_dropped_real_images_kept(self) -> None:
        """Magic-bearing ``__MACOSX``/``._`` members vanish; a real image under ``__MACOSX`` stays."""
        for filename in ["book.cbz", "book.7z", "book.cbr", "book.tar.gz"]:
            reader = self.open(self.build(filename, self.PAGES))
            self.assertEqual(reader.members(), ["001.png", "__MACOSX/real.png"], filename)
            self.assertRaises(PageNotFound, reader.read, "._002.png")
            self.assertEqual(reader.read("__MACOSX/real.png"), png_bytes(1, 1, (5, 5, 5)), filename)

    def test_mac_zip_tool_output(self) -> None:
        """A zip made by macOS (a fork per page under ``__MACOSX``) has exactly the real pages."""
        reader = self.open(make_cbz(self.dir / "mac.cbz", with_macosx_junk(numbered_pages(3))))
        self.assertEqual(reader.pages(), ["001.png", "002.png", "003.png"])

    def test_extraction_agrees_with_listing(self) -> None:
        """Reading before listing gives the same member list as a listing pass."""
        path = make_7z(self.dir / "b.7z", self.PAGES)
        reader = self.open(path)
        reader.read("001.png")
        self.assertEqual(reader.members(), ["001.png", "__MACOSX/real.png"])
        self.assertEqual(count_pages(path), 2)


class PdfTests(ArchiveTestCase):
    """PDF pages are synthetic ``N.jpg`` names rendered at 200 DPI."""

    def test_page_names(self) -> None:
        """An n-page PDF lists ``1.jpg`` … ``n.jpg``."""
        reader = self.open(make_pdf(self.dir / "doc.pdf", 12))
        self.assertEqual(reader.members(), [f"{n}.jpg" for n in range(1, 13)])
        self.assertEqual(reader.pages(), sort_pages(reader.members()))
        self.assertEqual(count_pages(self.dir / "doc.pdf"), 12)

    def test_render_is_jpeg_at_200_dpi(self) -> None:
        """A 72×144 pt page renders to a 200×400 px JPEG tagged 200 DPI."""
        reader = self.open(make_pdf(self.dir / "doc.pdf", 2))
        data = reader.read("2.jpg")
        image = Image.open(io.BytesIO(data))
        self.assertEqual(image.format, "JPEG")
        self.assertEqual(image.size, (200, 400))
        self.assertEqual(image.info["dpi"], (PDF_DPI, PDF_DPI))

    def test_render_size_follows_page_size(self) -> None:
        """A 216×108 pt page renders to 600×300 px."""
        reader = self.open(make_pdf(self.dir / "wide.pdf", 1, size=(216, 108)))
        self.assertEqual(Image.open(io.BytesIO(reader.read("1.jpg"))).size, (600, 300))

    def test_each_page_renders_its_own_content(self) -> None:
        """Page N shows page N's image."""
        reader = self.open(make_pdf(self.dir / "doc.pdf", 3))
        for number in [1, 3]:
            image = Image.open(io.BytesIO(reader.read(f"{number}.jpg"))).convert("RGB")
            pixel = image.getpixel((100, 200))
            assert isinstance(pixel, tuple)
            red, green, blue = pixel[:3]
            expected = page_color(number)
            self.assertLess(abs(red - expected[0]) + abs(green - expected[1]) + abs(blue - expected[2]), 30)

    def test_huge_page_is_refused_before_rendering(self) -> None:
        """A page whose bitmap would pass the member limit raises ArchiveTooLarge."""
        reader = self.open(make_pdf(self.dir / "doc.pdf", 1), limits=ReadLimits(max_member_size=100_000))
        self.assertRaises(ArchiveTooLarge, reader.read, "1.jpg")

    def test_pdf_chosen_by_magic_whatever_the_name(self) -> None:
        """A PDF named .PDF (upper case) is still read as a PDF."""
        path = make_pdf(self.dir / "DOC.PDF", 2)
        self.assertEqual(self.open(path).pages(), ["1.jpg", "2.jpg"])

    def test_unclosed_reader_is_collected_safely(self) -> None:
        """A PDF reader dropped without close() releases its document when collected."""
        reader = open_archive(make_pdf(self.dir / "doc.pdf", 1), cache_dir=None)
        finalizer = reader._finalizer  # type: ignore[attr-defined]
        del reader
        gc.collect()
        self.assertFalse(finalizer.alive)

    def test_not_a_pdf(self) -> None:
        """A text file named .pdf raises ArchiveError."""
        self.assertRaises(ArchiveError, open_archive, make_not_archive(self.dir / "x.pdf"), cache_dir=None)


class LimitTests(ArchiveTestCase):
    """ReadLimits stop bombs, whatever their headers say."""

    def test_lying_zip_bomb_stops_at_declared_size(self) -> None:
        """A member declaring 1 KB but inflating to 64 MB fails as ArchiveError; other pages still read."""
        reader = self.open(make_lying_zip_bomb(self.dir / "bomb.cbz"))
        self.assertEqual(reader.pages(), ["001.png", "bomb.png"])
        self.assertRaises(ArchiveError, reader.read, "bomb.png")
        self.assertEqual(reader.read("001.png"), png_bytes())

    def test_declared_huge_member_refused_without_reading(self) -> None:
        """A member declaring 4 GB is refused as ArchiveTooLarge before any inflation."""
        reader = self.open(make_declared_huge_zip(self.dir / "huge.cbz"))
        self.assertRaises(ArchiveTooLarge, reader.read, "huge.png")
        self.assertEqual(reader.read("001.png"), png_bytes())

    def test_zip_member_over_cap(self) -> None:
        """An honest zip member larger than max_member_size is ArchiveTooLarge."""
        path = make_cbz(self.dir / "a.cbz", [("big.png", b"\0" * 5000), ("small.png", b"x")])
        reader = self.open(path, limits=ReadLimits(max_member_size=1000))
        self.assertRaises(ArchiveTooLarge, reader.read, "big.png")
        self.assertEqual(reader.read("small.png"), b"x")

    def test_solid_member_over_cap(self) -> None:
        """A 7z member over max_member_size is ArchiveTooLarge; its neighbours still read."""
        path = make_7z(self.dir / "a.7z", [("big.png", b"\0" * 5000), ("small.png", b"x")])
        reader = self.open(path, limits=ReadLimits(max_member_size=1000))
        self.assertRaises(ArchiveTooLarge, reader.read, "big.png")
        self.assertEqual(reader.read("small.png"), b"x")
        self.assertEqual(reader.pages(), ["big.png", "small.png"])

    def test_solid_lying_header_stopped_by_counter(self) -> None:
        """A RAR member declaring 10 bytes but holding 5,000 is cut off by the streaming counter."""
        path = make_cbr(
            self.dir / "lie.cbr", [("a.png", b"a" * 50), ("b.png", b"b" * 5000)], declared_sizes={"b.png": 10}
        )
        reader = self.open(path, limits=ReadLimits(max_member_size=1000))
        self.assertRaises(ArchiveTooLarge, reader.read, "b.png")
        self.assertEqual(reader.read("a.png"), b"a" * 50)

    def test_total_extraction_cap(self) -> None:
        """Once max_total_size is spent, later members are ArchiveTooLarge and earlier ones read."""
        pages = [(f"{n}.png", bytes([n]) * 100) for n in range(1, 6)]
        reader = self.open(make_7z(self.dir / "a.7z", pages), limits=ReadLimits(max_total_size=250))
        self.assertEqual(reader.read("1.png"), b"\x01" * 100)
        self.assertEqual(reader.read("2.png"), b"\x02" * 100)
        for name in ["3.png", "4.png", "5.png"]:
            self.assertRaises(ArchiveTooLarge, reader.read, name)
        self.assertEqual(len(reader.pages()), 5)

    def test_member_count_cap(self) -> None:
        """Archives with more members than max_members are refused in every kind of reader."""
        limits = ReadLimits(max_members=10)
        self.assertRaises(ArchiveTooLarge, open_archive, make_cbz(self.dir / "a.cbz", 11), cache_dir=None, limits=limits)
        reader = self.open(make_7z(self.dir / "a.7z", numbered_pages(11)), limits=limits)
        self.assertRaises(ArchiveTooLarge, reader.pages)
        self.assertRaises(ArchiveTooLarge, reader.read, "001.png")
        self.assertRaises(ArchiveTooLarge, open_archive, make_pdf(self.dir / "a.pdf", 11), cache_dir=None, limits=limits)
        self.assertEqual(count_pages(self.dir / "a.cbz", limits=ReadLimits(max_members=11)), 11)


class BrokenInputTests(ArchiveTestCase):
    """Broken files raise ArchiveError with a useful message, never another exception type."""

    def test_truncated_archives(self) -> None:
        """Half of a cbz, 7z, tar.gz or rar is an ArchiveError."""
        pages = numbered_pages(20)
        for filename in ["book.cbz", "book.7z", "book.tar.gz", "book.cbr"]:
            whole = self.build(filename, pages)
            cut = make_truncated(self.dir / f"cut-{filename}", whole)
            with self.assertRaises(ArchiveError, msg=filename) as caught:
                with open_archive(cut, cache_dir=self.cache_dir) as reader:
                    for name in reader.pages():
                        reader.read(name)
            self.assertIn(str(cut), str(caught.exception))

    def test_truncated_zip_fixture(self) -> None:
        """A cbz without its central directory fails to open with a message naming the file."""
        path = make_truncated_zip(self.dir / "cut.cbz")
        error = self.assertRaises(ArchiveError, open_archive, path, cache_dir=None)
        self.assertIn("cut.cbz", str(error))

    def test_text_renamed_as_archive(self) -> None:
        """A text file named like any archive is an ArchiveError that names the file."""
        for filename in ["x.cbz", "x.cbr", "x.cb7", "x.tar.gz", "x.zip", "x.epub"]:
            path = make_not_archive(self.dir / filename)
            with self.assertRaises(ArchiveError, msg=filename) as caught:
                with open_archive(path, cache_dir=self.cache_dir) as reader:
                    reader.pages()
            self.assertIn(filename, str(caught.exception))

    def test_empty_and_missing_files(self) -> None:
        """An empty file and a missing path are ArchiveErrors."""
        empty = self.dir / "empty.cbz"
        empty.write_bytes(b"")
        self.assertRaises(ArchiveError, open_archive, empty, cache_dir=None)
        self.assertRaises(ArchiveError, open_archive, self.dir / "missing.cbz", cache_dir=None)
        self.assertRaises(ArchiveError, count_pages, self.dir / "missing.7z")

    def test_cbw_is_refused_clearly(self) -> None:
        """A CBW web comic is not a local archive: ArchiveError saying so."""
        path = self.dir / "web.cbw"
        path.write_text("<WebComic><Images><Image Url='http://x/1.jpg'/></Images></WebComic>")
        error = self.assertRaises(ArchiveError, open_archive, path, cache_dir=None)
        self.assertIn("CBW", str(error))

    def test_corrupt_member_data(self) -> None:
        """Flipped bytes inside a deflated member fail that read with ArchiveError."""
        path = make_cbz(self.dir / "c.cbz", [("a.png", os.urandom(2000)), ("b.png", png_bytes())])
        blob = bytearray(path.read_bytes())
        start = 30 + len("a.png")
        for offset in range(start + 10, start + 200):
            blob[offset] ^= 0xFF
        path.write_bytes(bytes(blob))
        reader = self.open(path)
        self.assertRaises(ArchiveError, reader.read, "a.png")

    def test_closed_reader(self) -> None:
        """Using a closed reader is an ArchiveError, and closing twice is harmless."""
        reader = open_archive(make_cbz(self.dir / "a.cbz", 1), cache_dir=None)
        reader.close()
        reader.close()
        self.assertRaises(ArchiveError, reader.read, "001.png")
        self.assertRaises(ArchiveError, reader.members)

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.data())
    def test_fuzzed_archives_raise_only_archive_errors(self, data: st.DataObject) -> None:
        """Random byte corruption of a cbz, 7z or rar never escapes as anything but ArchiveError."""
        filename = data.draw(st.sampled_from(["book.cbz", "book.7z", "book.cbr", "book.tar.gz"]))
        blob = bytearray(self.build(filename, numbered_pages(3)).read_bytes())
        for _ in range(data.draw(st.integers(1, 8))):
            offset = data.draw(st.integers(0, len(blob) - 1))
            blob[offset] = data.draw(st.integers(0, 255))
        if data.draw(st.booleans()):
            del blob[data.draw(st.integers(1, len(blob))) :]
        path = self.dir / f"fuzz-{filename}"
        path.write_bytes(bytes(blob))
        try:
            with open_archive(path, cache_dir=self.dir / "fuzzcache") as reader:
                for name in reader.pages():
                    reader.read(name)
        except ArchiveError:
            pass


class SolidCacheTests(ArchiveTestCase):
    """Solid archives are extracted once, shared through the cache and evicted by budget."""

    def test_second_read_does_not_reopen_archive(self) -> None:
        """After the first read of a 7z, further reads come from the cache without scanning the archive."""
        reader = self.open(make_7z(self.dir / "a.7z", 5))
        self.assertEqual(reader.read("001.png"), png_bytes(1, 1, page_color(1)))
        self.assertEqual(reader.archive_scans, 1)
        for name in reader.pages():
            reader.read(name)
        self.assertEqual(reader.archive_scans, 1)

    def test_new_reader_uses_existing_extraction(self) -> None:
        """A second reader of the same file lists and reads from the cache with zero scans."""
        path = make_7z(self.dir / "a.7z", 5)
        self.open(path).read("003.png")
        reader = self.open(path)
        self.assertEqual(reader.pages(), [f"{n:03d}.png" for n in range(1, 6)])
        self.assertEqual(reader.read("005.png"), png_bytes(1, 1, page_color(5)))
        self.assertEqual(reader.archive_scans, 0)

    def test_listing_then_reading_scans_twice(self) -> None:
        """Listing a fresh 7z streams its headers once, then the first read extracts once."""
        reader = self.open(make_7z(self.dir / "a.7z", 3))
        reader.pages()
        self.assertEqual(reader.archive_scans, 1)
        reader.read("001.png")
        reader.read("002.png")
        self.assertEqual(reader.archive_scans, 2)

    def test_zip_needs_no_cache(self) -> None:
        """Random-access zips are read in place: no scans, no cache directory."""
        reader = self.open(make_cbz(self.dir / "a.cbz", 3))
        reader.read("002.png")
        self.assertEqual(reader.archive_scans, 0)
        self.assertFalse(self.cache_dir.exists())

    def test_modified_archive_is_extracted_again(self) -> None:
        """Replacing the file's contents invalidates its extraction."""
        path = make_7z(self.dir / "a.7z", [("1.png", b"old")])
        self.assertEqual(self.open(path).read("1.png"), b"old")
        make_7z(path, [("1.png", b"new-contents")])
        os.utime(path, ns=(1, 1))
        self.assertEqual(self.open(path).read("1.png"), b"new-contents")

    def test_concurrent_first_reads_extract_once(self) -> None:
        """Threads reading a fresh 7z at once share one extraction."""
        path = make_7z(self.dir / "a.7z", 20)
        readers = [self.open(path) for _ in range(4)]
        results: list[bytes] = []
        errors: list[BaseException] = []

        def read(reader: ArchiveReader) -> None:
            try:
                results.append(reader.read("010.png"))
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=read, args=(reader,)) for reader in readers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.assertEqual(errors, [])
        self.assertEqual(results, [png_bytes(1, 1, page_color(10))] * 4)
        self.assertEqual(sum(reader.archive_scans for reader in readers), 1)

    def test_eviction_by_budget(self) -> None:
        """When a new extraction passes the budget, older ones are deleted."""
        first = make_7z(self.dir / "first.7z", [("1.png", b"1" * 1000)])
        second = make_7z(self.dir / "second.7z", [("1.png", b"2" * 1000)])
        self.open(first, cache_budget=1500).read("1.png")
        self.open(second, cache_budget=1500).read("1.png")
        cache = ExtractionCache(self.cache_dir, budget=1500)
        self.assertIsNone(cache.lookup(ExtractionCache.key_for(first)))
        self.assertIsNotNone(cache.lookup(ExtractionCache.key_for(second)))
        self.assertEqual(cache.usage(), 1000)

    def test_least_recently_used_goes_first(self) -> None:
        """Reading an old extraction again protects it; the least recently read one is evicted."""
        paths = [make_7z(self.dir / f"{n}.7z", [("1.png", bytes([n]) * 1000)]) for n in range(3)]
        budget = 2500
        a = self.open(paths[0], cache_budget=budget)
        a.read("1.png")
        self.open(paths[1], cache_budget=budget).read("1.png")
        a.read("1.png")
        self.open(paths[2], cache_budget=budget).read("1.png")
        cache = ExtractionCache(self.cache_dir, budget=budget)
        kept = [cache.lookup(ExtractionCache.key_for(path)) is not None for path in paths]
        self.assertEqual(kept, [True, False, True])

    def test_newest_extraction_kept_even_over_budget(self) -> None:
        """An archive larger than the whole budget stays cached rather than thrashing."""
        reader = self.open(make_7z(self.dir / "a.7z", [("1.png", b"x" * 5000), ("2.png", b"y")]), cache_budget=100)
        reader.read("1.png")
        self.assertEqual(reader.read("2.png"), b"y")
        self.assertEqual(reader.archive_scans, 1)

    def test_eviction_under_a_live_reader(self) -> None:
        """If another reader's eviction deletes this reader's extraction, the next read re-extracts."""
        reader = self.open(make_7z(self.dir / "a.7z", 3))
        reader.read("001.png")
        ExtractionCache(self.cache_dir).clear()
        self.assertEqual(reader.read("002.png"), png_bytes(1, 1, page_color(2)))
        self.assertEqual(reader.archive_scans, 2)

    def test_failed_extraction_leaves_nothing(self) -> None:
        """A half-extracted archive never appears in the cache."""
        path = make_truncated(self.dir / "cut.7z", make_7z(self.dir / "a.7z", numbered_pages(50)), keep=0.9)
        reader = self.open(path)
        self.assertRaises(ArchiveError, reader.read, "001.png")
        self.assertEqual(list(self.cache_dir.iterdir()), [])

    def test_private_cache_removed_on_close(self) -> None:
        """Without a cache_dir, a reader's temporary extraction is deleted when it closes."""
        reader = open_archive(make_7z(self.dir / "a.7z", 2), cache_dir=None)
        reader.read("001.png")
        private = reader._private.name  # type: ignore[attr-defined]
        self.assertTrue(Path(private).exists())
        reader.close()
        self.assertFalse(Path(private).exists())

    def test_tampered_manifest_is_ignored(self) -> None:
        """A cache entry with an unreadable manifest is treated as missing and rebuilt."""
        path = make_7z(self.dir / "a.7z", 2)
        self.open(path).read("001.png")
        key = ExtractionCache.key_for(path)
        (self.cache_dir / key / "manifest.json").write_text("{not json")
        self.assertIsNone(ExtractionCache(self.cache_dir).lookup(key))


class ZipStructureTests(ArchiveTestCase):
    """zip specifics: encrypted members and headers describing other members."""

    def test_encrypted_member_is_archive_error(self) -> None:
        """A member flagged as encrypted is listed and fails to read with ArchiveError."""
        path = make_cbz(self.dir / "enc.cbz", [("a.png", png_bytes())])
        blob = bytearray(path.read_bytes())
        struct.pack_into("<H", blob, 6, struct.unpack_from("<H", blob, 6)[0] | 1)
        central = blob.find(b"PK\x01\x02")
        struct.pack_into("<H", blob, central + 8, struct.unpack_from("<H", blob, central + 8)[0] | 1)
        path.write_bytes(bytes(blob))
        reader = self.open(path)
        self.assertEqual(reader.pages(), ["a.png"])
        self.assertRaises(ArchiveError, reader.read, "a.png")
