"""Tests for lrrd.search.query: the filter grammar, Redis glob semantics and token predicates."""

from __future__ import annotations

import sys
import time

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from lrrd.search.query import (
    PERL_WHITESPACE,
    Token,
    compile_glob,
    exact_tag_key,
    glob_match,
    numeric_matches,
    parse_filter,
    parse_numeric,
    redis_text,
    tag_index_pattern,
    tag_matches,
    title_matches,
    title_pattern,
    token_prefix_pattern,
    token_substring_pattern,
)


def toks(filter: str) -> list[tuple[str, bool, bool]]:
    return [(t.text, t.negated, t.exact) for t in parse_filter(filter)]


_RAW_ALPHABET = 'ab :-$"_%[]^\\*?,\tΣé\u3000\xa0'


def _expected_text(raw: str) -> str:
    """The grammar's steps 5-8, spelled out independently of the module."""
    text = raw.strip(PERL_WHITESPACE)
    out = []
    for ch in text:
        if ch in "[]^\\":
            out.append("\\" + ch)
        elif ch == "_":
            out.append("?")
        elif ch == "%":
            out.append("*")
        else:
            out.append(ch)
    return "".join(out).replace("Σ", "σ").lower()


class FilterGrammarTests(SynchronousTestCase):
    def test_only_commas_separate(self) -> None:
        """Spaces do not split terms; commas do, and surrounding spaces are trimmed."""
        self.assertEqual(toks("foo bar, baz ,qux"), [("foo bar", False, False), ("baz", False, False), ("qux", False, False)])

    def test_quoted_term_is_exact(self) -> None:
        """A quoted term runs to the next quote, may contain commas, and is exact."""
        self.assertEqual(toks('"a, b"'), [("a, b", False, True)])

    def test_closing_quote_ends_term(self) -> None:
        """``"a" b`` gives two terms because the closing quote also ends a term."""
        self.assertEqual(toks('"a" b'), [("a", False, True), ("b", False, False)])
        self.assertEqual(toks('"a"b,"c""d"'), [("a", False, True), ("b", False, False), ("c", False, True), ("d", False, True)])

    def test_dollar_after_quote_is_swallowed(self) -> None:
        """One ``$`` right after a closing quote is eaten; a second one is an empty exact term."""
        self.assertEqual(toks('"a"$,b'), [("a", False, True), ("b", False, False)])
        self.assertEqual(toks('"a"$$'), [("a", False, True)])
        self.assertEqual(toks('"a"$x'), [("a", False, True), ("x", False, False)])

    def test_trailing_dollar_makes_exact(self) -> None:
        """An unquoted term ending in ``$`` is exact and loses the ``$``."""
        self.assertEqual(toks("artist:foo$, bar $"), [("artist:foo", False, True), ("bar", False, True)])

    def test_dollar_is_checked_before_trimming(self) -> None:
        """``a$ ,b``: the last character is a space, so the term is not exact and keeps ``$``."""
        self.assertEqual(toks("a$ ,b"), [("a$", False, False), ("b", False, False)])

    def test_only_last_dollar_counts(self) -> None:
        """``a$$`` is exact with text ``a$``; a lone ``$`` is an empty term and dropped."""
        self.assertEqual(toks("a$$,$"), [("a$", False, True)])

    def test_dash_negates(self) -> None:
        """A leading ``-`` (after spaces) negates the term, quoted or not."""
        self.assertEqual(
            toks(' -female:x, -"big tag"$'), [("female:x", True, False), ("big tag", True, True)]
        )

    def test_dash_inside_quotes_is_literal(self) -> None:
        """``"-character:x"`` searches for the literal text, not a negation."""
        self.assertEqual(toks('"-character:x"'), [("-character:x", False, True)])

    def test_double_dash(self) -> None:
        """Only the first ``-`` negates: ``--x`` is the negated term ``-x``."""
        self.assertEqual(toks("--x"), [("-x", True, False)])

    def test_space_after_dash_makes_quotes_literal(self) -> None:
        """Spaces are not skipped after ``-``, so ``- "x"`` is an unquoted term with quotes."""
        self.assertEqual(toks('- "x"'), [('"x"', True, False)])

    def test_only_spaces_are_skipped_before_quote(self) -> None:
        """A tab before a quote makes the term unquoted (trimmed later), so quotes stay."""
        self.assertEqual(toks('\t"x"'), [('"x"', False, False)])

    def test_unclosed_quote_runs_to_end(self) -> None:
        """An unclosed quote takes the rest of the filter, commas included, as one exact term."""
        self.assertEqual(toks('a, "b, c'), [("a", False, False), ("b, c", False, True)])

    def test_glob_escapes(self) -> None:
        """``[ ] ^ \\`` are backslash-escaped for Redis; ``?`` and ``*`` stay wildcards."""
        self.assertEqual(toks("a[b]^c\\d?e*"), [("a\\[b\\]\\^c\\\\d?e*", False, False)])

    def test_underscore_and_percent_map_to_wildcards(self) -> None:
        """``_`` becomes ``?`` and ``%`` becomes ``*``."""
        self.assertEqual(toks("a_b%c"), [("a?b*c", False, False)])

    def test_lowercase_like_perl(self) -> None:
        """Terms are lowercased with Perl's lc: no Final_Sigma, full mappings like İ."""
        self.assertEqual(toks("ARTIST:Foo, ΑΣ, İ"), [("artist:foo", False, False), ("ασ", False, False), ("i\u0307", False, False)])

    def test_empty_terms_dropped(self) -> None:
        """Empty terms from commas, dashes, empty quotes and whitespace are dropped."""
        self.assertEqual(toks(' , ,, -, "", "  "$, -"", \t ,\u3000'), [])

    def test_trim_is_perl_whitespace(self) -> None:
        """Trimming removes Perl's \\s (NBSP, U+3000) but keeps \\x1c, which Python strips."""
        self.assertEqual(toks("\u3000a\xa0,\x1cb"), [("a", False, False), ("\x1cb", False, False)])

    def test_zero_is_false(self) -> None:
        """The filter ``0`` is false in Perl and yields nothing; `` 0`` and ``00`` do not."""
        self.assertEqual(toks("0"), [])
        self.assertEqual(toks(" 0"), [("0", False, False)])
        self.assertEqual(toks("00"), [("00", False, False)])

    def test_none_and_empty(self) -> None:
        """No filter and an empty filter both give no tokens."""
        self.assertEqual(parse_filter(None), [])
        self.assertEqual(parse_filter(""), [])

    def test_repeated_terms_share_tokens(self) -> None:
        """Repeated terms come back once each, in order, as equal Tokens."""
        self.assertEqual(toks("a,b,a,-a"), [("a", False, False), ("b", False, False), ("a", False, False), ("a", True, False)])

    def test_token_namespaced(self) -> None:
        """A token is namespaced exactly when its text has a colon."""
        self.assertTrue(Token("artist:x").namespaced)
        self.assertFalse(Token("x").namespaced)

    @settings(max_examples=400, deadline=None)
    @given(st.text())
    def test_never_raises(self, filter: str) -> None:
        """Any string parses into non-empty, trimmed Tokens."""
        for token in parse_filter(filter):
            self.assertIsInstance(token, Token)
            self.assertTrue(token.text)
            self.assertEqual(token.text, token.text.strip(PERL_WHITESPACE))

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.tuples(st.text(alphabet=_RAW_ALPHABET, max_size=8), st.booleans(), st.booleans(), st.booleans(), st.sampled_from(["", " ", "  "]))))
    def test_round_trip(self, specs: list[tuple[str, bool, bool, bool, str]]) -> None:
        """Rendering generated terms into a filter and parsing it back gives those terms."""
        parts: list[str] = []
        expected: list[tuple[str, bool, bool]] = []
        for raw, negated, quoted, flag, pad in specs:
            if quoted:
                raw = raw.replace('"', "")
                parts.append(pad + ("-" if negated else "") + '"' + raw + '"' + ("$" if flag else "") + ",")
                exact = True
            else:
                raw = raw.replace(",", "")
                lead = raw if negated else raw.lstrip(" ")
                if lead.startswith('"') or (not negated and lead.startswith("-")) or (not flag and raw.endswith("$")):
                    continue
                parts.append(pad + ("-" if negated else "") + raw + ("$" if flag else "") + ",")
                exact = flag
            text = _expected_text(raw)
            if text:
                expected.append((text, negated, exact))
        filter = "".join(parts)
        if filter == "0":
            return
        self.assertEqual(toks(filter), expected)

    def test_large_inputs_are_linear(self) -> None:
        """1 MB filters of many shapes parse in well under the time a quadratic scan would take."""
        shapes = ["a," * 500_000, "," * 1_000_000, '"' * 1_000_000, " -x," * 250_000, "x" * 1_000_000, '"a"$' * 250_000]
        for filter in shapes:
            start = time.perf_counter()
            parse_filter(filter)
            self.assertLess(time.perf_counter() - start, 3.0)


def _redis_stringmatch(pattern: bytes, string: bytes) -> bool:
    """Statement-by-statement model of Redis util.c stringmatchlen_impl (nocase=0, x86 char)."""
    p = pattern + b"\x00"  # C reads the terminator past the end
    gave_up = [False]

    def sg(b: int) -> int:
        return b - 256 if b >= 128 else b

    def impl(pi: int, plen: int, si: int, slen: int, nesting: int) -> bool:
        if nesting > 1000:
            return False
        while plen and slen:
            c = p[pi]
            if c == 0x2A:
                while plen and p[pi + 1] == 0x2A:
                    pi += 1
                    plen -= 1
                if plen == 1:
                    return True
                while slen:
                    if impl(pi + 1, plen - 1, si, slen, nesting + 1):
                        return True
                    if gave_up[0]:
                        return False
                    si += 1
                    slen -= 1
                gave_up[0] = True
                return False
            elif c == 0x3F:
                si += 1
                slen -= 1
            elif c == 0x5B:
                pi += 1
                plen -= 1
                neg = p[pi] == 0x5E
                if neg:
                    pi += 1
                    plen -= 1
                match = False
                while True:
                    if p[pi] == 0x5C and plen >= 2:
                        pi += 1
                        plen -= 1
                        match = match or p[pi] == string[si]
                    elif p[pi] == 0x5D:
                        break
                    elif plen == 0:
                        pi -= 1
                        plen += 1
                        break
                    elif plen >= 3 and p[pi + 1] == 0x2D:
                        lo, hi = sorted((sg(p[pi]), sg(p[pi + 2])))
                        pi += 2
                        plen -= 2
                        match = match or lo <= sg(string[si]) <= hi
                    else:
                        match = match or p[pi] == string[si]
                    pi += 1
                    plen -= 1
                if neg:
                    match = not match
                if not match:
                    return False
                si += 1
                slen -= 1
            else:
                if c == 0x5C and plen >= 2:
                    pi += 1
                    plen -= 1
                if p[pi] != string[si]:
                    return False
                si += 1
                slen -= 1
            pi += 1
            plen -= 1
            if slen == 0:
                while p[pi] == 0x2A:
                    pi += 1
                    plen -= 1
                break
        return plen == 0 and slen == 0

    return impl(0, len(pattern), 0, len(string), 0)


class GlobTests(SynchronousTestCase):
    @settings(max_examples=600, deadline=None)
    @given(
        st.lists(st.sampled_from(list(b"ab*?[]^\\-\xc3\xa9\x00")), max_size=10).map(bytes),
        st.lists(st.sampled_from(list(b"ab]^\\-\xc3\xa9\x00\xff")), max_size=8).map(bytes),
    )
    def test_agrees_with_redis_model(self, pattern: bytes, subject: bytes) -> None:
        """compile_glob agrees with a model of Redis's stringmatchlen, quirks included."""
        self.assertEqual(compile_glob(pattern).match(subject) is not None, _redis_stringmatch(pattern, subject))

    def test_question_mark_is_one_byte(self) -> None:
        """``?`` matches one UTF-8 byte, as in Redis, not one character."""
        self.assertFalse(glob_match("caf?", "café"))
        self.assertTrue(glob_match("caf??", "café"))

    def test_star_never_matches_empty_subject(self) -> None:
        """Redis quirk: a non-empty pattern, even ``*``, does not match the empty string."""
        self.assertFalse(glob_match("*", ""))
        self.assertTrue(glob_match("", ""))
        self.assertTrue(glob_match("a*", "a"))

    def test_escapes(self) -> None:
        """A backslash makes the next byte literal; a lone trailing one is a literal backslash."""
        self.assertTrue(glob_match("a\\*", "a*"))
        self.assertFalse(glob_match("a\\*", "ab"))
        self.assertTrue(glob_match("a\\", "a\\"))
        self.assertTrue(glob_match("\\[x\\]", "[x]"))

    def test_classes(self) -> None:
        """Classes, negation, ranges and the odd ``[a-]`` range up to ``]`` behave as in Redis."""
        self.assertTrue(glob_match("[a-c]x", "bx"))
        self.assertTrue(glob_match("[^a-c]x", "dx"))
        self.assertFalse(glob_match("[]a", "a"))
        self.assertTrue(glob_match("[a-]x", "^"))
        self.assertFalse(glob_match("[a-]x", "b"))
        self.assertTrue(glob_match("[ab", "b"))

    def test_nesting_limit(self) -> None:
        """Like Redis, a pattern recursing through more than 1000 star groups matches nothing."""
        subject = "a" * 1003
        self.assertTrue(glob_match("*a" * 1000 + "*", subject))
        self.assertTrue(glob_match("*a" * 1000 + "*", subject))
        self.assertFalse(glob_match("*a" * 1001, subject))
        sys_limit = sys.getrecursionlimit()
        sys.setrecursionlimit(5000)
        try:
            self.assertEqual(glob_match("*a" * 1001, subject), _redis_stringmatch(b"*a" * 1001, subject.encode()))
            self.assertEqual(glob_match("a*" * 1001, subject), _redis_stringmatch(b"a*" * 1001, subject.encode()))
        finally:
            sys.setrecursionlimit(sys_limit)

    def test_no_catastrophic_backtracking(self) -> None:
        """Patterns like ``*a*a*...*b`` against long runs of ``a`` fail fast."""
        start = time.perf_counter()
        self.assertFalse(glob_match("*a" * 300 + "*b", "a" * 5000))
        self.assertLess(time.perf_counter() - start, 2.0)

    def test_huge_token_rejected_cheaply(self) -> None:
        """A pattern longer than the subject is turned away without compiling it."""
        start = time.perf_counter()
        self.assertFalse(glob_match("INDEX_" + "x" * 1_000_000 + "*", "INDEX_artist:x"))
        self.assertLess(time.perf_counter() - start, 1.0)

    def test_compiled_patterns_are_cached(self) -> None:
        """compile_glob returns the same compiled object for the same pattern."""
        self.assertIs(compile_glob("foo*"), compile_glob("foo*"))


class NumericTests(SynchronousTestCase):
    def test_operators(self) -> None:
        """read:/pages: accept no operator (meaning =) and > < >= <=."""
        self.assertEqual(parse_numeric("pages:20"), ("pages", "=", 20))
        self.assertEqual(parse_numeric("read:>0"), ("read", ">", 0))
        self.assertEqual(parse_numeric("pages:>=3"), ("pages", ">=", 3))
        self.assertEqual(parse_numeric("pages:<=3"), ("pages", "<=", 3))
        self.assertEqual(parse_numeric("pages:<007"), ("pages", "<", 7))

    def test_rejects(self) -> None:
        """Other shapes, spaces and non-ASCII digits are ordinary tags."""
        for text in ["pages:=3", "pages:>", "Pages:5", "pages: 5", "pages:5x", "pages:٣", "xpages:5", "pages:5\n"]:
            self.assertIsNone(parse_numeric(text), text)

    def test_from_parsed_token(self) -> None:
        """A parsed (lowercased, exact) token is recognised."""
        self.assertEqual(parse_numeric(parse_filter("PAGES:>5$")[0]), ("pages", ">", 5))

    def test_numeric_matches(self) -> None:
        """Each operator compares the archive's value against the number."""
        self.assertTrue(numeric_matches(("pages", "=", 5), 5))
        self.assertTrue(numeric_matches(("pages", ">", 5), 6))
        self.assertFalse(numeric_matches(("pages", ">", 5), 5))
        self.assertTrue(numeric_matches(("read", ">=", 5), 5))
        self.assertTrue(numeric_matches(("read", "<", 5), 0))
        self.assertFalse(numeric_matches(("read", "<=", 5), 6))


class TagAndTitleTests(SynchronousTestCase):
    def test_namespaced_is_prefix(self) -> None:
        """``male:very cool`` matches that tag and longer ones, but not ``female:``."""
        token = parse_filter("male:very cool")[0]
        self.assertEqual(tag_index_pattern(token), "male:very cool*")
        self.assertTrue(tag_matches(token, "male:very cool"))
        self.assertTrue(tag_matches(token, "male:very cool too"))
        self.assertFalse(tag_matches(token, "female:very cool"))

    def test_leading_star_reaches_other_namespaces(self) -> None:
        """``*male:very cool`` also matches ``female:very cool``."""
        self.assertTrue(tag_matches(parse_filter("*male:very cool")[0], "female:very cool"))

    def test_bare_is_substring(self) -> None:
        """A bare token matches anywhere in ``namespace:value``."""
        token = parse_filter("cool")[0]
        self.assertEqual(tag_index_pattern(token), "*cool*")
        self.assertTrue(tag_matches(token, "artist:coolguy"))
        self.assertTrue(tag_matches(token, "cool:x"))

    def test_exact_falls_back_to_prefix(self) -> None:
        """Without its exact index, an exact token still prefix-matches longer tags."""
        self.assertTrue(tag_matches(parse_filter("artist:foo$")[0], "artist:foobar"))

    def test_exact_key_is_escaped_text(self) -> None:
        """The exact-index key is the escaped, glob-mapped text, so ``a_b`` looks up ``a?b``."""
        self.assertEqual(exact_tag_key(parse_filter('"a_b"')[0]), "a?b")
        self.assertEqual(exact_tag_key(parse_filter('"x[1]"')[0]), "x\\[1\\]")

    def test_wildcards_and_escapes_in_tags(self) -> None:
        """``_`` matches one byte and an escaped bracket matches itself."""
        self.assertTrue(tag_matches(parse_filter("artist:a_c")[0], "artist:abc"))
        self.assertTrue(tag_matches(parse_filter("artist:[x]")[0], "artist:[x] y"))
        self.assertFalse(tag_matches(parse_filter("artist:[x]")[0], "artist:x"))

    def test_token_is_nfc_normalised(self) -> None:
        """A decomposed token matches the NFC tag, as redis_encode normalises it."""
        token = parse_filter("cafe\u0301")[0]
        self.assertEqual(redis_text(token), "café")
        self.assertTrue(tag_matches(token, "artist:café"))

    def test_pattern_helpers(self) -> None:
        """The prefix and substring helpers add the stars the original adds."""
        self.assertEqual(token_prefix_pattern("a:b"), "a:b*")
        self.assertEqual(token_substring_pattern("b"), "*b*")

    def test_title_substring(self) -> None:
        """A non-exact token matches a substring of the title."""
        self.assertTrue(title_matches(parse_filter("foo")[0], "a foo b", "0" * 40))
        self.assertFalse(title_matches(parse_filter("bar")[0], "a foo b", "0" * 40))

    def test_title_matches_id_characters(self) -> None:
        """Quirk: a non-exact token also matches characters of the id."""
        self.assertTrue(title_matches(parse_filter("abc1")[0], "some title", "abc123" + "0" * 34))

    def test_title_star_spans_nul(self) -> None:
        """Quirk: a ``*`` in a non-exact token can span the NUL between title and id."""
        self.assertTrue(title_matches(parse_filter("foo*0a")[0], "foo", "0a" + "1" * 38))

    def test_title_exact(self) -> None:
        """An exact token must match the whole title (``<token>\\0*``), wildcards included."""
        token = parse_filter('"foo"')[0]
        self.assertEqual(title_pattern(token), "foo\x00*")
        self.assertTrue(title_matches(token, "foo", "1" * 40))
        self.assertFalse(title_matches(token, "foo bar", "1" * 40))
        self.assertTrue(title_matches(parse_filter('"f*"')[0], "foo bar", "1" * 40))

    def test_title_question_mark_is_a_byte(self) -> None:
        """``caf_`` exact does not match the title ``café``; ``caf__`` does (two UTF-8 bytes)."""
        self.assertFalse(title_matches(parse_filter('"caf_"')[0], "café", "1" * 40))
        self.assertTrue(title_matches(parse_filter('"caf__"')[0], "café", "1" * 40))
