"""Tests for lrrd.library.pages: image names, AppleDouble junk and the page order of LRR-NOTES §3.3."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from lrrd.library.pages import (
    is_apple_double,
    is_apple_junk_path,
    is_image_name,
    page_sort_key,
    sort_pages,
)

APPLE_DOUBLE_HEAD = b"\x00\x05\x16\x07\x00\x02\x00\x00"
APPLE_SINGLE_HEAD = b"\x00\x05\x16\x00\x00\x02\x00\x00"
PNG_HEAD = b"\x89PNG\r\n\x1a\n"

# Names drawn from the pieces that matter to the rules, so hypothesis hits covers and credits often.
name_pieces = st.sampled_from(
    ["cover", "Cover", "back", "end", "rear", "recover", "discover", "credit", "999", "notes.", "note.",
     "end_card_save_file", "artist_info", "/", ".", "_", "0", "7", "12345", "a", "B", "é", "É", "日", "\n", ".jpg"]
)
names = st.one_of(st.text(), st.lists(name_pieces, max_size=6).map("".join))


class ImageNameTests(SynchronousTestCase):
    """is_image_name matches the original's image extension list."""

    def test_every_image_extension(self) -> None:
        """All eleven extensions are images, in any case."""
        for extension in ["png", "jpg", "gif", "bmp", "jpeg", "jfif", "webp", "avif", "heif", "heic", "jxl"]:
            self.assertTrue(is_image_name(f"p.{extension}"), extension)
            self.assertTrue(is_image_name(f"dir/P.{extension.upper()}"), extension)

    def test_non_images(self) -> None:
        """Metadata and other files are not pages."""
        for name in ["ComicInfo.xml", "Thumbs.db", "a.txt", "folder/", "a.png.txt", ".png", "png"]:
            self.assertFalse(is_image_name(name), name)

    def test_trailing_dot_quirk(self) -> None:
        """The original's empty alternative makes a name ending in "." an image."""
        self.assertTrue(is_image_name("page."))


class AppleDoubleTests(SynchronousTestCase):
    """is_apple_double needs both the junk path and the magic, like the original."""

    def test_macosx_folder_with_magic_is_junk(self) -> None:
        """A ``__MACOSX/`` member carrying AppleDouble or AppleSingle magic is junk."""
        self.assertTrue(is_apple_double("__MACOSX/._001.jpg", APPLE_DOUBLE_HEAD))
        self.assertTrue(is_apple_double("book/__MACOSX/001.jpg", APPLE_SINGLE_HEAD))

    def test_dot_underscore_basename_with_magic_is_junk(self) -> None:
        """A ``._`` basename anywhere carrying the magic is junk."""
        self.assertTrue(is_apple_double("chapter/._002.png", APPLE_DOUBLE_HEAD))

    def test_magic_without_junk_path_is_a_page(self) -> None:
        """The magic alone does not drop an ordinary member."""
        self.assertFalse(is_apple_double("chapter/002.png", APPLE_DOUBLE_HEAD))
        self.assertFalse(is_apple_double("x__MACOSX/002.png", APPLE_DOUBLE_HEAD))

    def test_junk_path_without_magic_is_a_page(self) -> None:
        """A real image under ``__MACOSX/`` stays a page."""
        self.assertFalse(is_apple_double("__MACOSX/001.png", PNG_HEAD))

    def test_short_head_is_not_junk(self) -> None:
        """Fewer than 8 bytes are never trusted as magic, as in the original."""
        self.assertFalse(is_apple_double("__MACOSX/._1.png", APPLE_DOUBLE_HEAD[:4]))
        self.assertFalse(is_apple_double("__MACOSX/._1.png", b""))

    def test_junk_path_shapes(self) -> None:
        """Only a whole ``__MACOSX`` segment or a ``._`` basename is a junk path; case matters."""
        self.assertTrue(is_apple_junk_path("__MACOSX/a.png"))
        self.assertTrue(is_apple_junk_path("a/__MACOSX/b/c.png"))
        self.assertTrue(is_apple_junk_path("._a.png"))
        self.assertFalse(is_apple_junk_path("__macosx/a.png"))
        self.assertFalse(is_apple_junk_path("a._b.png"))
        self.assertFalse(is_apple_junk_path("._dir/a.png"))


class SortKeyTests(SynchronousTestCase):
    """The sort key pads digit runs to 4 and lowercases, like the original's ``expand``."""

    def test_digit_runs_padded_to_four(self) -> None:
        """``7`` becomes ``0007``; longer runs are kept; leading zeros are dropped before padding."""
        self.assertEqual(page_sort_key("p7.jpg"), b"p0007.jpg")
        self.assertEqual(page_sort_key("12345.jpg"), b"12345.jpg")
        self.assertEqual(page_sort_key("000012.jpg"), b"0012.jpg")
        self.assertEqual(page_sort_key("v2c10"), b"v0002c0010")

    def test_perl_integer_overflow(self) -> None:
        """Runs past 2**63 wrap negative and past 2**64-1 become -1, as perl's sprintf "%04d" does."""
        self.assertEqual(page_sort_key("9223372036854775807"), b"9223372036854775807")
        self.assertEqual(page_sort_key("9223372036854775808"), b"-9223372036854775808")
        self.assertEqual(page_sort_key("9999999999999999999"), b"-8446744073709551617")
        self.assertEqual(page_sort_key("18446744073709551616"), b"-001")
        self.assertEqual(page_sort_key("1" * 5000), b"-001")

    def test_lowercase(self) -> None:
        """ASCII capitals are lowered."""
        self.assertEqual(page_sort_key("ABC.JPG"), b"abc.jpg")

    def test_latin1_lead_bytes_lowered_like_perl(self) -> None:
        """Perl lowercases the UTF-8 lead byte of "É" (0xC3 → 0xE3), so it sorts after "あ"."""
        self.assertEqual(page_sort_key("É"), b"\xe3\x89")
        self.assertEqual(sort_pages(["É.jpg", "あ.jpg", "z.jpg"]), ["z.jpg", "あ.jpg", "É.jpg"])


class SortPagesTests(SynchronousTestCase):
    """sort_pages gives the reader order of LRR-NOTES §3.3."""

    def test_numbers_sort_numerically_up_to_four_digits(self) -> None:
        """Unpadded page numbers come out in numeric order."""
        self.assertEqual(sort_pages(["10.jpg", "9.jpg", "1.jpg", "100.jpg"]), ["1.jpg", "9.jpg", "10.jpg", "100.jpg"])

    def test_five_digit_quirk(self) -> None:
        """Numbers of 5+ digits compare as strings, so 12345 sorts before 9999."""
        self.assertEqual(sort_pages(["9998.jpg", "12345.jpg"]), ["12345.jpg", "9998.jpg"])

    def test_case_insensitive_and_stable(self) -> None:
        """Case is ignored and equal keys keep their input order."""
        self.assertEqual(sort_pages(["b.jpg", "A.jpg", "a.jpg"]), ["A.jpg", "a.jpg", "b.jpg"])
        self.assertEqual(sort_pages(["a.jpg", "A.jpg"]), ["a.jpg", "A.jpg"])
        self.assertEqual(sort_pages(["01.jpg", "1.jpg", "001.jpg"]), ["01.jpg", "1.jpg", "001.jpg"])

    def test_codepoint_order_not_natural_order(self) -> None:
        """Punctuation compares by codepoint: "_" (0x5F) after digits, "-" (0x2D) before."""
        self.assertEqual(sort_pages(["a_1.jpg", "a1.jpg", "a-1.jpg"]), ["a-1.jpg", "a1.jpg", "a_1.jpg"])

    def test_full_path_is_sorted(self) -> None:
        """Folders are part of the key, so chapters stay together."""
        pages = ["ch2/1.jpg", "ch10/1.jpg", "ch1/2.jpg", "ch1/10.jpg"]
        self.assertEqual(sort_pages(pages), ["ch1/2.jpg", "ch1/10.jpg", "ch2/1.jpg", "ch10/1.jpg"])

    def test_covers_first(self) -> None:
        """Names containing "cover" (any case) move to the front, in sorted order."""
        self.assertEqual(
            sort_pages(["001.jpg", "zz_Cover.jpg", "002.jpg", "a_cover.png"]),
            ["a_cover.png", "zz_Cover.jpg", "001.jpg", "002.jpg"],
        )

    def test_not_covers(self) -> None:
        """back/end/rear/recover/discover anywhere in the path disqualify a cover."""
        pages = ["back_cover.jpg", "cover_end.jpg", "rear-cover.jpg", "recover.jpg", "discover.jpg", "000.jpg"]
        self.assertEqual(sort_pages(pages)[0], "000.jpg")
        self.assertEqual(sort_pages(["Extras/BackCover.jpg", "001.jpg"]), ["001.jpg", "Extras/BackCover.jpg"])

    def test_cover_in_folder_name(self) -> None:
        """The full path is tested, so every page of a "covers" folder is a cover."""
        self.assertEqual(sort_pages(["a/1.jpg", "covers/2.jpg"]), ["covers/2.jpg", "a/1.jpg"])

    def test_credits_last(self) -> None:
        """credit anywhere, 999/end_card_save_file/artist_info at the start, note(s).ext at the end."""
        credits = ["999.jpg", "Artist_Info.png", "credits.jpg", "end_card_save_file.png", "notes.png",
                   "sub/TL-note.jpg", "x/Credit/1.jpg"]
        pages = ["001.jpg", "002.jpg", *credits]
        self.assertEqual(sort_pages(reversed(pages)), ["001.jpg", "002.jpg", *sorted(credits, key=page_sort_key)])

    def test_not_credits(self) -> None:
        """Prefix rules apply to the whole path, and notes must be the final extension."""
        pages = ["a999.jpg", "sub/999.jpg", "sub/artist_info.png", "notes.d/001.jpg", "0999.jpg"]
        self.assertEqual(sort_pages(pages), sorted(pages, key=page_sort_key))

    def test_notes_suffix_matches_inside_a_word(self) -> None:
        """"footnotes.png" ends with notes.png, so it is a credit page, as in the original."""
        self.assertEqual(sort_pages(["footnotes.png", "zz.png"]), ["zz.png", "footnotes.png"])

    def test_groups_keep_sorted_order(self) -> None:
        """covers + others + credits, each group in key order."""
        pages = ["credits2.jpg", "10.jpg", "cover2.jpg", "2.jpg", "credits1.jpg", "cover1.jpg"]
        self.assertEqual(
            sort_pages(pages), ["cover1.jpg", "cover2.jpg", "2.jpg", "10.jpg", "credits1.jpg", "credits2.jpg"]
        )

    def test_cover_and_credit_listed_once_as_cover(self) -> None:
        """A page matching both groups appears once, among covers (the original lists it twice)."""
        self.assertEqual(sort_pages(["002.jpg", "cover_credits.jpg"]), ["cover_credits.jpg", "002.jpg"])

    def test_pdf_names_quirks(self) -> None:
        """Synthetic PDF names go through the same rules: 999.jpg is a credit page."""
        pdf = [f"{n}.jpg" for n in range(1, 1001)]
        ordered = sort_pages(pdf)
        self.assertEqual(ordered[:3], ["1.jpg", "2.jpg", "3.jpg"])
        self.assertEqual(ordered[-1], "999.jpg")
        self.assertEqual(ordered[-2], "1000.jpg")

    def test_empty(self) -> None:
        """No pages give no pages."""
        self.assertEqual(sort_pages([]), [])

    @given(st.lists(names))
    def test_is_a_permutation(self, pages: list[str]) -> None:
        """Whatever the names, the result is the same multiset, and nothing raises."""
        self.assertEqual(Counter(sort_pages(pages)), Counter(pages))

    @given(st.lists(names))
    def test_idempotent(self, pages: list[str]) -> None:
        """Sorting a sorted list changes nothing."""
        once = sort_pages(pages)
        self.assertEqual(sort_pages(once), once)

    @given(st.lists(names))
    def test_order_does_not_depend_on_input_order_except_ties(self, pages: list[str]) -> None:
        """Reversing the input only swaps pages whose keys are equal."""
        forward = [page_sort_key(name) for name in sort_pages(pages)]
        backward = [page_sort_key(name) for name in sort_pages(list(reversed(pages)))]
        self.assertEqual(forward, backward)

    @given(names)
    def test_predicates_never_raise(self, name: str) -> None:
        """The name predicates accept any text."""
        is_image_name(name)
        is_apple_junk_path(name)
        is_apple_double(name, APPLE_DOUBLE_HEAD)
        page_sort_key(name)
