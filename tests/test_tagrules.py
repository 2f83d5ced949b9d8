"""Tag rules (LRR-NOTES §9.7): parsing, applying, and the stored ``LRR_TAGRULES`` list."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.defer import Deferred
from twisted.trial import unittest

from lrrd.library.tagrules import (
    HASH_REPLACE, REMOVE, REMOVE_NS, REPLACE, REPLACE_NS, STRIP_NS, TagRule, apply_tag_rules,
    current_tag_rules, flatten, parse_rule, parse_tag_rules, rewrite_tag_string, set_tag_rules,
    unflatten,
)
from lrrd.store.config import DEFAULT_TAG_RULES
from lrrd.store.redis import DB
from tests.fixtures.app import RedisTestCase


def d(coro: Any) -> Deferred[Any]:
    return Deferred.fromCoroutine(coro)


_RULE_TEXT = st.text(alphabet=st.sampled_from(list("ab:*-~>=; \r\n\tÉé,İ")), max_size=40)


class ParseTests(unittest.SynchronousTestCase):
    def test_each_form(self) -> None:
        """Every rule form of the documentation parses to its type, match lowercased."""
        cases = {
            "-Female:*": TagRule(REMOVE_NS, "female"),
            "-Already Uploaded": TagRule(REMOVE, "already uploaded"),
            "~Artist": TagRule(STRIP_NS, "artist"),
            "Serie:* -> parody:*": TagRule(REPLACE_NS, "serie", "parody"),
            "Serie:One Piece -> parody:One Piece":
                TagRule(REPLACE, "serie:one piece", "parody:One Piece"),
            "Old => New Tag": TagRule(HASH_REPLACE, "old", "New Tag"),
            "  translated  ": TagRule(REMOVE, "translated"),
            "a -> b -> c": TagRule(REPLACE, "a", "b"),
            "a ->": TagRule(REMOVE, "a"),
            "-ns:* -> x": TagRule(REPLACE, "-ns:*", "x"),
        }
        for line, rule in cases.items():
            self.assertEqual(parse_rule(line), rule, line)
        for blank in ("", "   ", "\r", "-> b", " => x", "a =>"):
            self.assertIsNone(parse_rule(blank), blank)

    def test_semicolons_are_lines(self) -> None:
        """Stored text uses ``;`` for line breaks; CRLF and LF split too, blanks vanish."""
        self.assertEqual(parse_tag_rules("-a;~b;;c -> d\r\ne:* -> f:*\n"), [
            TagRule(REMOVE, "a"), TagRule(STRIP_NS, "b"), TagRule(REPLACE, "c", "d"),
            TagRule(REPLACE_NS, "e", "f")])
        self.assertEqual(len(parse_tag_rules(DEFAULT_TAG_RULES)), 17)
        self.assertEqual(parse_tag_rules(None), [])

    @given(_RULE_TEXT)
    @settings(max_examples=300, deadline=None)
    def test_parse_never_raises(self, text: str) -> None:
        """Any text parses, into rules of known types with lowercased matches."""
        for rule in parse_tag_rules(text):
            self.assertIn(rule.kind, {REMOVE, REMOVE_NS, STRIP_NS, REPLACE_NS, REPLACE,
                                      HASH_REPLACE})
            self.assertEqual(rule.match, rule.match.lower())

    @given(st.text(max_size=60))
    @settings(max_examples=300, deadline=None)
    def test_parse_any_unicode(self, text: str) -> None:
        """Any Unicode at all parses, and flattening round-trips."""
        rules = parse_tag_rules(text)
        self.assertEqual(unflatten(flatten(rules)), rules)


class ApplyTests(unittest.SynchronousTestCase):
    def rewrite(self, rules: str, tags: list[str]) -> list[str]:
        return apply_tag_rules(tags, parse_tag_rules(rules))

    def test_remove(self) -> None:
        """-tag and a bare tag remove it, case-insensitively, and only exact matches."""
        self.assertEqual(self.rewrite("-Translated;digital",
                                      ["TRANSLATED", "translated x", "Digital", "ok"]),
                         ["translated x", "ok"])

    def test_remove_namespace(self) -> None:
        """-ns:* drops every tag of that namespace, whatever its case."""
        self.assertEqual(self.rewrite("-female:*", ["Female:long hair", "female", "male:x"]),
                         ["female", "male:x"])

    def test_strip_and_replace_namespace(self) -> None:
        """~ns strips the prefix; a:* -> b:* swaps it, keeping the rule's case."""
        self.assertEqual(self.rewrite("~Group;serie:* -> Parody:*",
                                      ["group:Circle", "SERIE:One Piece", "series:x"]),
                         ["Circle", "Parody:One Piece", "series:x"])

    def test_replace_keeps_rule_case(self) -> None:
        """The documentation's example: SERIE:ONE PIECE becomes parody:One Piece."""
        self.assertEqual(self.rewrite("serie:one piece -> parody:One Piece",
                                      ["SERIE:ONE PIECE"]), ["parody:One Piece"])

    def test_rules_chain_in_order(self) -> None:
        """Each rule sees the output of the ones before it."""
        self.assertEqual(self.rewrite("a -> b;b -> c;-c", ["a", "x"]), ["x"])
        self.assertEqual(self.rewrite("-c;a -> b;b -> c", ["a"]), ["c"])

    def test_hash_replace_runs_once_after_the_rest(self) -> None:
        """=> rules apply after every other rule, once (no chaining), last definition wins."""
        self.assertEqual(self.rewrite("x => y;y => z;a -> x", ["a", "Y"]), ["y", "z"])
        self.assertEqual(self.rewrite("k => 1;k => 2", ["K"]), ["2"])

    def test_no_rules_is_identity(self) -> None:
        """Without rules the tags come back unchanged (even empty ones)."""
        self.assertEqual(apply_tag_rules(["a", ""], []), ["a", ""])

    def test_rewrite_tag_string(self) -> None:
        """A plugin's comma string is trimmed, rewritten and joined without spaces."""
        self.assertEqual(rewrite_tag_string(" a , -x ,b,, ", parse_tag_rules("b -> B")),
                         "a,-x,B")

    @given(_RULE_TEXT, st.lists(st.text(max_size=20), max_size=10))
    @settings(max_examples=300, deadline=None)
    def test_apply_never_raises(self, rules: str, tags: list[str]) -> None:
        """Any rules on any tags: a list of non-empty tags, never longer than the input."""
        parsed = parse_tag_rules(rules)
        out = apply_tag_rules(tags, parsed)
        self.assertLessEqual(len(out), len(tags))
        if parsed:
            self.assertTrue(all(out))


class StoredRulesTests(RedisTestCase):
    """LRR_TAGRULES in the config database, as the original lays it out."""

    def test_set_and_read(self) -> None:
        """Saving a text stores it with ; for line breaks and the flat triples beside it."""
        async def run() -> None:
            rules = await set_tag_rules(self.redis, "-a\r\nb:* -> c:*\nx => Y")
            config = self.redis.db(DB.CONFIG)
            self.assertEqual(await config.hget("LRR_CONFIG", "tagrules"), "-a;b:* -> c:*;x => Y")
            self.assertEqual(await config.lrange("LRR_TAGRULES", 0, -1),
                             ["remove", "a", "", "replace_ns", "b", "c", "hash_replace", "x", "Y"])
            self.assertEqual(await current_tag_rules(self.redis), rules)
        return d(run())

    def test_defaults_and_resync(self) -> None:
        """No setting means the default list; a text changed behind the rules' back wins."""
        async def run() -> None:
            rules = await current_tag_rules(self.redis)
            self.assertEqual(rules, parse_tag_rules(DEFAULT_TAG_RULES))
            config = self.redis.db(DB.CONFIG)
            self.assertEqual(len(await config.lrange("LRR_TAGRULES", 0, -1)), 17 * 3)
            await config.hset("LRR_CONFIG", "tagrules", "~ns")
            self.assertEqual(await current_tag_rules(self.redis), [TagRule(STRIP_NS, "ns")])
            self.assertEqual(await config.lrange("LRR_TAGRULES", 0, -1), ["strip_ns", "ns", ""])
            await set_tag_rules(self.redis, "   ")
            self.assertEqual(await current_tag_rules(self.redis),
                             parse_tag_rules(DEFAULT_TAG_RULES))
        return d(run())

    def test_many_rules(self) -> None:
        """Thousands of rules are stored whole (the script writes them in slices)."""
        async def run() -> None:
            text = ";".join(f"-tag{i}" for i in range(4000))
            rules = await set_tag_rules(self.redis, text)
            self.assertEqual(len(rules), 4000)
            stored = await self.redis.db(DB.CONFIG).llen("LRR_TAGRULES")
            self.assertEqual(int(stored), 12000)
            self.assertEqual(await current_tag_rules(self.redis), rules)
        return d(run())

