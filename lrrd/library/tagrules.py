"""Tag rules (LRR-NOTES §9.7): the user's rule text parsed into rules, and rules applied to tags.

Metadata plugins pass the tags they found through ``apply_tag_rules`` when ``tagruleson`` is set;
manual edits and uploads never do. The text is one rule per line (stored with ``;`` for line
breaks); each rule becomes ``(type, lowercased match, value)``:

=========================  ============  ==============================================
``-ns:*``                  remove_ns     drop every tag of namespace ``ns``
``-tag`` or ``tag``        remove        drop the tag
``~ns``                    strip_ns      ``ns:x`` becomes ``x``
``a:* -> b:*``             replace_ns    ``a:x`` becomes ``b:x``
``a -> b``                 replace       the whole tag, the output keeping the rule's case
``a => b``                 hash_replace  like replace, looked up once after all other rules
=========================  ============  ==============================================

Matching is case-insensitive. Parsing and applying never raise, whatever the text: a rule the
parser cannot make sense of is simply not a rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Sequence

from lrrd.store.config import DEFAULT_TAG_RULES
from lrrd.store.redis import RedisStore
from lrrd.store.tagrules import TagRulesStore

REMOVE = "remove"
REMOVE_NS = "remove_ns"
STRIP_NS = "strip_ns"
REPLACE_NS = "replace_ns"
REPLACE = "replace"
HASH_REPLACE = "hash_replace"

KINDS = frozenset({REMOVE, REMOVE_NS, STRIP_NS, REPLACE_NS, REPLACE, HASH_REPLACE})


@dataclass(frozen=True)
class TagRule:
    """One parsed rule; ``match`` is lowercased, ``value`` keeps the case the user wrote."""

    kind: str
    match: str
    value: str = ""


def _lines(text: str) -> list[str]:
    """The original turns ``;`` back into CRLF and splits on LF; the CR is trimmed later."""
    return text.replace(";", "\r\n").split("\n")


def _split(line: str, arrow: str) -> tuple[str, str]:
    """Perl's ``my ($match, $value) = split('->', $line)``: the first two fields, trimmed."""
    parts = line.split(arrow)
    match = parts[0].strip()
    value = parts[1].strip() if len(parts) > 1 else ""
    return match, value


def parse_rule(line: str) -> TagRule | None:
    """One line of rule text as a rule, or None for a blank line."""
    if "=>" in line:
        match, value = _split(line, "=>")
        return TagRule(HASH_REPLACE, match.lower(), value) if match and value else None
    match, value = _split(line, "->")
    if not match:
        return None
    if not value and match.startswith("-") and match.endswith(":*") and len(match) >= 3:
        return TagRule(REMOVE_NS, match[1:-2].lower())
    if not value and match.startswith("-"):
        return TagRule(REMOVE, match[1:].lower())
    if not value and match.startswith("~"):
        return TagRule(STRIP_NS, match[1:].lower())
    if match.endswith(":*") and value.endswith(":*"):
        return TagRule(REPLACE_NS, match[:-2].lower(), value[:-2])
    if not value:
        return TagRule(REMOVE, match.lower())  # a bare tag: blacklist mode
    return TagRule(REPLACE, match.lower(), value)


def parse_tag_rules(text: str | None) -> list[TagRule]:
    """The rules of a ``tagrules`` text, in order (``None`` or blank text means no rules)."""
    rules = []
    for line in _lines(text or ""):
        rule = parse_rule(line)
        if rule is not None:
            rules.append(rule)
    return rules


def flatten(rules: Sequence[TagRule]) -> list[str]:
    """``LRR_TAGRULES`` as the original stores it: type, match, value, type, match, value..."""
    flat: list[str] = []
    for rule in rules:
        flat.extend((rule.kind, rule.match, rule.value))
    return flat


def unflatten(flat: Sequence[str]) -> list[TagRule]:
    """The rules of a stored flat list; an incomplete last triple is ignored."""
    return [TagRule(flat[i], flat[i + 1], flat[i + 2]) for i in range(0, len(flat) - 2, 3)]


@lru_cache(maxsize=4096)
def _prefix(namespace: str) -> re.Pattern[str]:
    """``ns:`` at the start of a tag, case-insensitively (the original's ``s/^\\Qns:/.../i``)."""
    return re.compile(re.escape(namespace + ":"), re.IGNORECASE)


def _apply(tag: str, rules: Sequence[TagRule]) -> str | None:
    for rule in rules:
        kind = rule.kind
        if kind == REMOVE:
            if tag.lower() == rule.match:
                return None
        elif kind == REMOVE_NS:
            if _prefix(rule.match).match(tag):
                return None
        elif kind == REPLACE_NS:
            found = _prefix(rule.match).match(tag)
            if found:
                tag = rule.value + ":" + tag[found.end():]
        elif kind == STRIP_NS:
            found = _prefix(rule.match).match(tag)
            if found:
                tag = tag[found.end():]
        elif kind != HASH_REPLACE:
            # "replace", and (as the original's default branch) any type it does not know.
            if tag.lower() == rule.match:
                tag = rule.value
    return tag


def apply_tag_rules(tags: Iterable[str], rules: Sequence[TagRule]) -> list[str]:
    """Rewrite a list of tags: each rule in order on each tag, then the hash replacements once.

    A tag a rule removes, or one that ends up empty, is dropped; order is kept otherwise.
    """
    if not rules:
        return list(tags)
    table: dict[str, str] = {}
    for rule in rules:
        if rule.kind == HASH_REPLACE:
            table[rule.match] = rule.value  # a later rule for the same tag wins, as in a Perl hash
    out = []
    for tag in tags:
        new = _apply(tag, rules)
        if not new:
            continue
        if table:
            new = table.get(new.lower(), new)
        out.append(new)
    return out


def rewrite_tag_string(tags: str, rules: Sequence[TagRule]) -> str:
    """A plugin's comma-separated tags, trimmed, rewritten and joined again with ``,``."""
    split = [tag.strip() for tag in tags.split(",")]
    return ",".join(apply_tag_rules([tag for tag in split if tag], rules))


def config_text(raw: str | None) -> str:
    """The ``tagrules`` setting as the original reads it: blank means the default list."""
    return raw if raw is not None and raw.strip() else DEFAULT_TAG_RULES


async def current_tag_rules(redis: RedisStore) -> list[TagRule]:
    """The rules in force: parsed from the ``tagrules`` setting, with ``LRR_TAGRULES`` brought
    back in step when it is missing or was computed from another text (a setting written by
    something that did not recompute it)."""
    store = TagRulesStore(redis)
    flat, text = await store.load()
    rules = parse_tag_rules(config_text(text))
    if flat != flatten(rules):
        await store.save(flatten(rules))
    return rules


async def set_tag_rules(redis: RedisStore, text: str) -> list[TagRule]:
    """Save a new ``tagrules`` text (line breaks stored as ``;``) and its computed rules."""
    stored = text.replace("\r\n", ";").replace("\n", ";")
    rules = parse_tag_rules(config_text(stored))
    await TagRulesStore(redis).save(flatten(rules), stored)
    return rules
