"""Tests for lrrd.library.identity: archive ids, the archive filename filter and the JSON extension."""

from __future__ import annotations

import hashlib
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from lrrd.library.identity import (
    ID_PREFIX_BYTES,
    EmptyArchiveError,
    compute_id,
    extension_of,
    is_archive_filename,
)

ARCHIVE_EXTENSIONS = [
    "zip", "rar", "7z", "tar", "tar.gz", "lzma", "xz", "cbz", "cbr", "cb7", "cbt", "cbw", "pdf", "epub",
    "tar.zst", "zst",
]


class ComputeIdTests(SynchronousTestCase):
    """compute_id hashes exactly the first 512,000 bytes."""

    def write(self, data: bytes) -> Path:
        path = Path(self.mktemp())
        path.write_bytes(data)
        return path

    def test_small_file_is_sha1_of_whole_file(self) -> None:
        """A file under 512,000 bytes gets the SHA-1 of all its bytes, as lowercase hex."""
        data = b"hello archive" * 100
        self.assertEqual(compute_id(self.write(data)), hashlib.sha1(data).hexdigest())

    def test_id_is_forty_lowercase_hex_digits(self) -> None:
        """The id has the shape of the original's: 40 lowercase hex characters."""
        archive_id = compute_id(self.write(b"\xff" * 10))
        self.assertRegex(archive_id, r"^[0-9a-f]{40}$")

    def test_only_first_512000_bytes_count(self) -> None:
        """Bytes after 512,000 (not 512 KiB) do not change the id."""
        head = bytes(range(256)) * 2000
        first = self.write(head + b"A" * 30_000)
        second = self.write(head + b"B" * 30_000)
        self.assertEqual(len(head), ID_PREFIX_BYTES)
        self.assertEqual(compute_id(first), compute_id(second))
        self.assertEqual(compute_id(first), hashlib.sha1(head).hexdigest())

    def test_byte_just_inside_prefix_counts(self) -> None:
        """Changing byte 511,999 changes the id, so the prefix is not shorter than 512,000."""
        data = bytearray(600_000)
        before = compute_id(self.write(bytes(data)))
        data[ID_PREFIX_BYTES - 1] = 1
        self.assertNotEqual(compute_id(self.write(bytes(data))), before)

    def test_bytes_between_512000_and_512kib_do_not_count(self) -> None:
        """A change at byte 520,000 (inside 512 KiB, beyond 512,000) keeps the id."""
        data = bytearray(600_000)
        before = compute_id(self.write(bytes(data)))
        data[520_000] = 1
        self.assertEqual(compute_id(self.write(bytes(data))), before)

    def test_empty_file_is_rejected(self) -> None:
        """An empty file has no id: EmptyArchiveError, like the original's "null value" error."""
        self.assertRaises(EmptyArchiveError, compute_id, self.write(b""))


class ArchiveFilenameTests(SynchronousTestCase):
    """is_archive_filename accepts exactly the original's extension list."""

    def test_every_listed_extension_is_accepted(self) -> None:
        """Each extension of LRR-NOTES §3.2 is an archive name."""
        for extension in ARCHIVE_EXTENSIONS:
            self.assertTrue(is_archive_filename(f"book.{extension}"), extension)

    def test_case_insensitive(self) -> None:
        """Upper and mixed case extensions match too."""
        for name in ["BOOK.CBZ", "a.Tar.Gz", "x.TAR.ZST", "y.Epub", "z.PdF"]:
            self.assertTrue(is_archive_filename(name), name)

    def test_other_names_are_rejected(self) -> None:
        """Images, partial extensions and unknown formats are not archives."""
        for name in ["a.jpg", "a.gz", "a.zipx", "a.cbz.part", "a.tgz", "readme", "a.tar.bz2", "a.cb"]:
            self.assertFalse(is_archive_filename(name), name)

    def test_extension_alone_is_not_a_name(self) -> None:
        """At least one character must precede the dot: ".cbz" is not an archive name."""
        self.assertFalse(is_archive_filename(".cbz"))
        self.assertTrue(is_archive_filename("a.cbz"))

    def test_whole_path_is_matched(self) -> None:
        """Paths with directories match on the final extension."""
        self.assertTrue(is_archive_filename("/data/comics/vol.1/book.cbz"))

    def test_newline_before_extension_does_not_match(self) -> None:
        """A newline inside the name stops the match, as Perl's "." does."""
        self.assertFalse(is_archive_filename("evil\nname.cbz"))

    @given(st.text())
    def test_never_raises(self, name: str) -> None:
        """Any text is answered with a boolean."""
        self.assertIsInstance(is_archive_filename(name), bool)


class ExtensionTests(SynchronousTestCase):
    """extension_of gives the archive JSON ``extension`` field."""

    def test_lowercase_last_extension(self) -> None:
        """The text after the last dot, lowercased."""
        self.assertEqual(extension_of("/data/Book.CBZ"), "cbz")
        self.assertEqual(extension_of("/data/book.tar.gz"), "gz")
        self.assertEqual(extension_of("/data/book.tar.ZST"), "zst")

    def test_perl_split_quirks(self) -> None:
        """Trailing dots are ignored, no dot gives the whole path, a dotted folder leaks in."""
        self.assertEqual(extension_of("book.cbz."), "cbz")
        self.assertEqual(extension_of("book"), "book")
        self.assertEqual(extension_of("/d/v1.2/book"), "2/book")
        self.assertEqual(extension_of(""), "")
        self.assertEqual(extension_of("..."), "")

    @given(st.text())
    def test_never_raises(self, path: str) -> None:
        """Any path gives a string with no dot in it."""
        self.assertNotIn(".", extension_of(path))
