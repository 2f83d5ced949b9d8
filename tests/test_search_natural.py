"""Tests for lrrd.search.natural: the Sort::Naturally port and namespace sort values."""

from __future__ import annotations

import json
from pathlib import Path
from functools import cmp_to_key, partial

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from lrrd.search.natural import (
    NotKeyable,
    as_perl_bytes,
    namespace_sort_value,
    natural_key,
    ncmp,
    nsort,
    sort_by_ncmp,
)

# Pieces that reach every branch: digit-first, runs of both sizes, leading zeros, non-word runs,
# NUL, Latin-1 and multi-byte characters, marks, final sigma, case.
_PIECES = ["a", "B", "z", "0", "00", "1", "9", "10", "007", "99999999", "100000000", "0000000001",
           " ", "-", "_", ".", "\x00", "é", "É", "×", "あ", "日本", "Σ", "ß", "µ", "²", "\u0301", "Foo"]
_ascii_digit_text = st.lists(st.sampled_from(_PIECES), max_size=6).map("".join)
_any_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=8)


class NcmpTests(SynchronousTestCase):
    def test_documented_synopsis(self) -> None:
        """The module's SYNOPSIS list sorts as Sort::Naturally 1.03 sorts it."""
        words = "foo12a foo12z foo13a foo 14 9x foo12 fooa foolio Foolio Foo12a".split()
        self.assertEqual(nsort(words), "9x 14 foo fooa Foolio foolio foo12 Foo12a foo12a foo12z foo13a".split())

    def test_numbers_compare_by_value(self) -> None:
        """``foo9`` sorts before ``foo10``."""
        self.assertEqual(ncmp("foo9", "foo10"), -1)
        self.assertEqual(ncmp("foo10", "foo9"), 1)

    def test_digits_first_only_at_start(self) -> None:
        """Digit-initial strings come first, even after a leading non-word run is dropped."""
        self.assertEqual(nsort(["b", "a", "10", "9", "[1] x"]), ["[1] x", "9", "10", "a", "b"])

    def test_letters_beat_digits_inside(self) -> None:
        """Past the start a letter sorts before a digit: ``abc1`` < ``ab2``."""
        self.assertEqual(ncmp("abc1", "ab2"), -1)

    def test_code_not_docs_for_foobar(self) -> None:
        """The docs claim foo13 < foobar, but the code (and LANraragi) puts foobar first."""
        self.assertEqual(nsort(["foo13xyz", "foo13", "foobar", "foo"]), ["foo", "foobar", "foo13", "foo13xyz"])

    def test_only_first_non_word_run_is_dropped(self) -> None:
        """``a-b-d`` becomes ``ab-d``, so it sorts before ``ab c`` (``abc``)."""
        self.assertEqual(ncmp("a-b-d", "ab c"), -1)

    def test_long_digit_runs(self) -> None:
        """Runs of 9+ digits compare by length without leading zeros, then as strings."""
        self.assertEqual(ncmp("x99999999", "x100000000"), -1)
        self.assertEqual(ncmp("x0000000001", "x2"), -1)
        self.assertEqual(ncmp("x123456789012345678901", "x123456789012345678902"), -1)

    def test_equal_values_fall_back_to_original(self) -> None:
        """Equal numbers or letters up to case are ordered by the original strings."""
        self.assertEqual(ncmp("a01", "a1"), -1)
        self.assertEqual(ncmp("a0123456789", "a123456789"), -1)
        self.assertEqual(ncmp("Foo", "foo"), -1)
        self.assertEqual(ncmp("foo", "foo"), 0)

    def test_perl_lc_has_no_final_sigma(self) -> None:
        """``ΑΣ`` lowercases to ``ασ`` (not ``ας``), which sorts after ``ας``."""
        self.assertEqual(ncmp("ΑΣ", "ας"), 1)

    def test_non_ascii_digits_numify_like_perl(self) -> None:
        """Perl reads ``１２`` and ``３`` as 0, so they tie and the originals decide."""
        self.assertEqual(ncmp("１２", "３"), -1)
        self.assertEqual(nsort(["３", "１２"]), ["１２", "３"])
        with self.assertRaises(NotKeyable):
            natural_key("x１２")

    def test_byte_view(self) -> None:
        """On raw UTF-8 bytes the locale's Latin-1 rules change the order (title sort)."""
        self.assertEqual(as_perl_bytes("é"), "\xc3\xa9")
        self.assertEqual(ncmp("é", "ä1", utf8_bytes=True), -1)
        self.assertEqual(ncmp("é", "ä1"), 1)
        self.assertEqual(ncmp("a", "×", utf8_bytes=True), -1)
        self.assertEqual(ncmp("a", "×"), 1)

    def test_title_glued_to_id(self) -> None:
        """Quirk: a one-word title loses the NUL before its id, so ``foo`` sorts by ``foob1``."""
        members = ["foo\x00b1", "fooa\x00a0", "foo bar\x00c", "foo\x00a"]
        self.assertEqual(nsort(members, utf8_bytes=True), ["foo\x00a", "fooa\x00a0", "foo bar\x00c", "foo\x00b1"])

    @settings(max_examples=400, deadline=None)
    @given(_ascii_digit_text, _ascii_digit_text)
    def test_key_matches_ncmp(self, a: str, b: str) -> None:
        """natural_key orders any two strings exactly as ncmp does, in both modes."""
        for utf8_bytes in (False, True):
            ka, kb = natural_key(a, utf8_bytes=utf8_bytes), natural_key(b, utf8_bytes=utf8_bytes)
            self.assertEqual((ka > kb) - (ka < kb), ncmp(a, b, utf8_bytes=utf8_bytes))

    @settings(max_examples=300, deadline=None)
    @given(_any_text, _any_text)
    def test_byte_key_matches_ncmp_on_any_text(self, a: str, b: str) -> None:
        """In the byte view (no non-ASCII digits exist there) the key is exact for any text."""
        ka, kb = natural_key(a, utf8_bytes=True), natural_key(b, utf8_bytes=True)
        self.assertEqual((ka > kb) - (ka < kb), ncmp(a, b, utf8_bytes=True))

    @settings(max_examples=300, deadline=None)
    @given(_any_text, _any_text)
    def test_antisymmetric_and_zero_only_when_equal(self, a: str, b: str) -> None:
        """ncmp(a, b) == -ncmp(b, a), and it is 0 only for identical strings."""
        for utf8_bytes in (False, True):
            self.assertEqual(ncmp(a, b, utf8_bytes=utf8_bytes), -ncmp(b, a, utf8_bytes=utf8_bytes))
            self.assertEqual(ncmp(a, b, utf8_bytes=utf8_bytes) == 0, a == b)

    @settings(max_examples=200, deadline=None)
    @given(st.lists(_ascii_digit_text, min_size=3, max_size=12))
    def test_consistent_ordering(self, items: list[str]) -> None:
        """nsort agrees with sorting by ncmp, and every ordered triple is transitive."""
        for utf8_bytes in (False, True):
            ordered = nsort(items, utf8_bytes=utf8_bytes)
            compare = partial(ncmp, utf8_bytes=utf8_bytes)
            self.assertEqual(ordered, sorted(items, key=cmp_to_key(compare)))
            for x, y, z in zip(ordered, ordered[1:], ordered[2:]):
                self.assertLessEqual(compare(x, y), 0)
                self.assertLessEqual(compare(x, z), 0)
                self.assertLessEqual(compare(y, z), 0)

    @settings(max_examples=100, deadline=None)
    @given(st.lists(st.tuples(st.sampled_from(["foo", "foo bar", "foo!", "1a", "", "é"]), st.text("0123456789abcdef", max_size=5))))
    def test_tied_titles_sort_by_id(self, pairs: list[tuple[str, str]]) -> None:
        """Members with tying titles are ordered by their ids, as ncmp orders them."""
        members = [title + "\x00" + ident for title, ident in pairs]
        expected = sorted(members, key=cmp_to_key(partial(ncmp, utf8_bytes=True)))
        self.assertEqual(nsort(members, utf8_bytes=True), expected)

    def test_sort_by_ncmp_is_stable(self) -> None:
        """Items with equal values keep their input order, like Perl's merge sort."""
        items = [("id1", "b"), ("id2", "a"), ("id3", "b"), ("id4", "a10"), ("id5", "a9")]
        self.assertEqual([i for i, _ in sort_by_ncmp(items, lambda p: p[1])], ["id2", "id5", "id4", "id1", "id3"])

    def test_matches_real_sort_naturally(self) -> None:
        """nsort gives the exact order the real Sort::Naturally gave (recorded vectors, both modes)."""
        path = Path(__file__).parent / "fixtures" / "sort_naturally_vectors.json"
        vectors = json.loads(path.read_text(encoding="utf-8"))
        self.assertGreaterEqual(len(vectors), 100)
        for vector in vectors:
            self.assertEqual(nsort(vector["input"], utf8_bytes=vector["utf8_bytes"]), vector["perl"])


class NamespaceSortValueTests(SynchronousTestCase):
    def test_last_occurrence(self) -> None:
        """The greedy leading ``.*`` picks the value of the last ``ns:`` tag."""
        self.assertEqual(namespace_sort_value("artist:a,series:x,artist:b", "artist"), "b")

    def test_value_stops_at_comma(self) -> None:
        """The value runs to the next comma and may contain colons."""
        self.assertEqual(namespace_sort_value("artist:a:b,c", "artist"), "a:b")
        self.assertEqual(namespace_sort_value("artist:", "artist"), "")

    def test_unanchored_and_case_sensitive(self) -> None:
        """``fakeartist:`` counts for ``artist``; ``Artist:`` does not."""
        self.assertEqual(namespace_sort_value("fakeartist:z", "artist"), "z")
        self.assertIsNone(namespace_sort_value("Artist:Q", "artist"))

    def test_namespace_is_a_regex(self) -> None:
        """The key is used as an unescaped regex: alternation and dots work."""
        self.assertEqual(namespace_sort_value("series:1,artist:2", "artist|series"), "2")
        self.assertEqual(namespace_sort_value("art:1,ant:2", "a.t"), "2")

    def test_groups_in_namespace_shift_capture(self) -> None:
        """``$1`` is the namespace's own group when it has one; undef becomes ``""``."""
        self.assertEqual(namespace_sort_value("artist:v", "(artist)"), "artist")
        self.assertEqual(namespace_sort_value("artist:v", "(x)?artist"), "")

    def test_invalid_regex_is_no_value(self) -> None:
        """A namespace Perl's qr// would die on gives no value instead of raising."""
        self.assertIsNone(namespace_sort_value("a:1", "["))
        self.assertIsNone(namespace_sort_value("a:1", "a)(b"))
        self.assertIsNone(namespace_sort_value("a:1", "\\p{L}"))

    def test_zzzz_means_missing(self) -> None:
        """The original marks "no value" as ``zzzz``, so that real value is no value too."""
        self.assertIsNone(namespace_sort_value("artist:zzzz", "artist"))
        self.assertEqual(namespace_sort_value("artist:ZZZZ", "artist"), "ZZZZ")

    def test_missing_tags(self) -> None:
        """No tags string means no value."""
        self.assertIsNone(namespace_sort_value(None, "artist"))
        self.assertIsNone(namespace_sort_value("", "artist"))

    def test_newlines_like_perl(self) -> None:
        """``.`` stops at a newline and ``$`` also matches before a final one, as in Perl."""
        self.assertIsNone(namespace_sort_value("artist:x\nseries:y", "artist"))
        self.assertEqual(namespace_sort_value("artist:x\nseries:y", "series"), "y")
        self.assertEqual(namespace_sort_value("x,artist:v\n", "artist"), "v")
