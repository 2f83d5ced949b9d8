"""A port of CPAN Sort::Naturally 1.03 (``ncmp``/``nsort``), the order behind LANraragi's
title and namespace sorts, and the extraction of a namespace's sort value from a tag string."""

from __future__ import annotations

import operator
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable
from functools import cache, cmp_to_key, lru_cache, partial
from itertools import repeat
from typing import Any, TypeVar

__all__ = [
    "MAX_INT_SIZE",
    "NotKeyable",
    "as_perl_bytes",
    "ncmp",
    "NaturalKey",
    "natural_key",
    "natural_string_key",
    "nsort",
    "sort_by_ncmp",
    "namespace_sort_value",
]

T = TypeVar("T")
NaturalKey = tuple[Any, ...]

# The module runs under `use locale`; LANraragi's image sets LC_ALL=en_US.UTF-8, and in a UTF-8
# locale Perl applies Unicode rules: \w, \d and lc below follow perl 5.36 in C.UTF-8, and
# cmp is code point order (musl's strcoll is strcmp).

# Sort::Naturally compares digit runs numerically only while both are shorter than this:
# length(256 ** intsize / 2) - 1 with the 4-byte C int of every platform LANraragi runs on.
MAX_INT_SIZE = 9

# Perl's \w is Alphabetic + Nd + marks + Pc + Join_Control. Categories cover all of it except
# these Other_Alphabetic symbols (So), checked against perl 5.36 over every code point.
_WORD_CATEGORIES = frozenset({"Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "Pc"})
_WORD_EXTRAS = frozenset(
    [0x200C, 0x200D]
    + [cp for lo, hi in ((0x24B6, 0x24E9), (0x1F130, 0x1F149), (0x1F150, 0x1F169), (0x1F170, 0x1F189)) for cp in range(lo, hi + 1)]
)


def _class_escape(cp: int) -> str:
    return "\\x%02x" % cp if cp < 0x100 else ("\\u%04x" % cp if cp < 0x10000 else "\\U%08x" % cp)


@cache
def _nonword_run(limit: int) -> re.Pattern[str]:
    """A regex for Perl's ``\\W+`` over code points below ``limit`` (0x100 or all of Unicode).

    Built lazily because scanning all of Unicode takes a few tenths of a second; the Latin-1
    table is all the byte-string (title) sort ever needs.
    """
    category = unicodedata.category
    ranges: list[list[int]] = []
    for cp in range(limit):
        if category(chr(cp)) in _WORD_CATEGORIES or cp in _WORD_EXTRAS:
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1][1] = cp
            else:
                ranges.append([cp, cp])
    body = "".join(_class_escape(lo) + ("-" + _class_escape(hi) if hi > lo else "") for lo, hi in ranges)
    return re.compile("[^" + body + "]+")


# Python's \d on str is exactly Unicode Nd, which is Perl's \d under a UTF-8 locale.
_DIGITS = re.compile(r"\d+")
_NONDIGITS = re.compile(r"\D+")
_DIGIT_RUN_SPLIT = re.compile(r"(\d+)")
_TOP = "\U0010ffff"
_NONASCII_DIGIT = re.compile(r"(?![0-9])\d")
_ASCII_DIGIT_PREFIX = re.compile(r"[0-9]*")


class NotKeyable(ValueError):
    """Raised by :func:`natural_key` when no key can match ncmp, chiefly for non-ASCII digits.

    Perl numifies such a run as its leading ASCII digits (``"１２"`` is 0) while it compares runs
    of MAX_INT_SIZE or more digits as strings, so ncmp is not even transitive there and no key
    can reproduce it; the sorters fall back to ``cmp_to_key(ncmp)`` when they meet one.
    """


def as_perl_bytes(text: str) -> str:
    """View a string as Perl sees an undecoded Redis reply: one character per UTF-8 byte.

    LANraragi hands the raw ``LRR_TITLES`` members to ``nsort``. Under the image's UTF-8 locale
    Perl then treats each byte as a Latin-1 character: ``lc`` turns the lead byte 0xC3 into
    0xE3, bytes 0xC0-0xFF (but 0xD7, 0xF7) are word characters and most continuation bytes are
    not. Comparing these views compares UTF-8 bytes, which is code point order.
    """
    return text.encode("utf-8", "surrogatepass").decode("latin-1")


def _perl_lc(text: str) -> str:
    # Perl's lc() has no Final_Sigma rule; Python's lower() turns a final capital sigma into ς.
    if "\u03a3" in text:
        text = text.replace("\u03a3", "\u03c3")
    return text.lower()


def _prepare(text: str, latin1: bool) -> str:
    """``lc``, then delete the *first* run of non-word characters only (``s/\\W+//s``)."""
    lowered = _perl_lc(text)
    m = _nonword_run(0x100 if latin1 else 0x110000).search(lowered)
    if m is None:
        return lowered
    return lowered[: m.start()] + lowered[m.end() :]


def _cmp(a: str | int, b: str | int) -> int:
    # Perl's cmp/<=>: -1, 0 or 1. Only ever called with two strs or two ints.
    return int(a > b) - int(a < b)  # type: ignore[operator]


def _perl_num(run: str) -> int:
    # Perl's numification reads leading ASCII digits only: "１２" is 0, "1２" is 1.
    digits = _ASCII_DIGIT_PREFIX.match(run).group()  # type: ignore[union-attr]
    return int(digits) if digits else 0


def _cmp_digit_runs(dx: str, dy: str) -> int:
    if len(dx) < MAX_INT_SIZE and len(dy) < MAX_INT_SIZE:
        return _cmp(_perl_num(dx), _perl_num(dy))
    # "ARBITRARILY large integers": drop leading zeros, then longer is larger, then stringwise.
    sx, sy = dx.lstrip("0"), dy.lstrip("0")
    return _cmp(len(sx), len(sy)) or _cmp(sx, sy)


def ncmp(a: str, b: str, *, utf8_bytes: bool = False) -> int:
    """Sort::Naturally's ``ncmp``: -1, 0 or 1, and 0 only for identical strings.

    ``utf8_bytes=True`` compares as Perl does when given the raw UTF-8 bytes (the title sort;
    see :func:`as_perl_bytes`); the default compares decoded strings (the namespace sort).
    This is the reference the key function is tested against, written to follow the original
    step by step rather than to be fast.
    """
    if a == b:
        return 0
    if utf8_bytes:
        a, b = as_perl_bytes(a), as_perl_bytes(b)
    x, y = _prepare(a, utf8_bytes), _prepare(b, utf8_bytes)
    # Digits at the very start beat letters; everywhere else letters beat digits (below).
    xd = _DIGITS.match(x) is not None
    yd = _DIGITS.match(y) is not None
    rv = 0
    if x != y and xd != yd:
        rv = -1 if xd else 1
    i = j = 0
    if rv == 0:
        while i < len(x) and j < len(y):
            mx = _NONDIGITS.match(x, i)
            my = _NONDIGITS.match(y, j)
            span = min(mx.end() - i if mx else 0, my.end() - j if my else 0)
            if span:
                # Only the common length of the two non-digit runs is compared; the longer run's
                # rest then meets the other's digits (letters first) or its end (end first).
                rv = _cmp(x[i : i + span], y[j : j + span])
                if rv:
                    break
                i += span
                j += span
            dx = _DIGITS.match(x, i)
            if dx is not None:
                dy = _DIGITS.match(y, j)
                if dy is None:
                    rv = 1
                    break
                rv = _cmp_digit_runs(dx.group(), dy.group())
                i, j = dx.end(), dy.end()
                if rv:
                    break
            elif _DIGITS.match(y, j) is not None:
                rv = -1
                break
    if rv == 0:
        # Tie-breakers: shorter remainder first, then the remainders (both empty by now, so
        # never decisive), then the original strings.
        rv = _cmp(len(x) - i, len(y) - j) or _cmp(x[i:], y[j:]) or _cmp(a, b)
    return rv


def _byte_view_run(m: re.Match[str]) -> str:
    digits = m.group().lstrip("0")
    if len(digits) > 0x10FFFF - 0x100:
        raise NotKeyable(m.group())
    return chr(0x100 + len(digits)) + digits


def _byte_view_encode(prepared: str) -> str:
    # Characters of the byte view are below U+0100, so a run can be written as a marker above
    # all of them that carries the length without leading zeros, then the digits.
    return _DIGITS.sub(_byte_view_run, prepared)


def _byte_view_head(text: str) -> tuple[str, str]:
    """The prepared byte view of ``text`` split after its first NUL: (encoded head, raw tail)."""
    prepared = _prepare(as_perl_bytes(text), True)
    cut = prepared.find("\x00") + 1
    head, tail = (prepared[:cut], prepared[cut:]) if cut else (prepared, "")
    flag = "0" if "0" <= prepared[:1] <= "9" else "1"
    return flag + _byte_view_encode(head), tail


def natural_key(text: str, *, utf8_bytes: bool = False) -> NaturalKey:
    """A sort key whose order is exactly :func:`ncmp`'s (raises :class:`NotKeyable` if none is).

    Why it is exact: ncmp compares the prepared strings element by element, where an element is
    a non-digit character or a whole digit run; characters compare by code point, a digit run
    sorts after any character, two runs compare by value, and a string that ends sorts first.
    (Comparing the common length of two non-digit runs and then pitting the longer one's rest
    against the other's digits is the same thing, one character at a time.) Ties fall through
    to the original string, ncmp's last tie-breaker; in the byte view that is UTF-8 byte order,
    which is code point order, so ``text`` itself serves. The key starts with a flag for the
    digits-first rule, then encodes the elements:

    * byte view: one string, characters as they are and each run as a marker above U+00FF that
      holds its length without leading zeros, then its digits. It is cut after the first NUL
      into (head, tail): heads are prefix-free (a head's only NUL is its last character), so
      comparing heads first and tails on a tie is the same as comparing the whole, and
      :func:`sort_by_ncmp` encodes a tail (an ``LRR_TITLES`` id) only when two heads tie;
    * decoded strings: ``[D0, N1, D1, ..., Dk]`` from splitting at runs, ints at odd places, and
      each Di that precedes a run ending in U+10FFFF, above every other character (a string
      containing U+10FFFF, or non-ASCII digits, is :class:`NotKeyable`).
    """
    if utf8_bytes:
        head, tail = _byte_view_head(text)
        return head, _byte_view_encode(tail), text
    prepared = _prepare(text, False)
    if not prepared.isascii() and (_TOP in prepared or _NONASCII_DIGIT.search(prepared)):
        raise NotKeyable(text)
    parts: list[Any] = _DIGIT_RUN_SPLIT.split(prepared)
    parts[0:-1:2] = map(operator.add, parts[0:-1:2], repeat(_TOP))
    try:
        parts[1::2] = map(int, parts[1::2])
    except ValueError:  # a run beyond Python's int-from-str digit limit
        raise NotKeyable(text) from None
    return (0 if parts[0] == _TOP else 1), parts, text


def _text_run(m: re.Match[str]) -> str:
    digits = m.group().lstrip("0")
    if len(digits) >= 0x10FFFF:
        raise NotKeyable(m.group())
    return _TOP + chr(1 + len(digits)) + digits


def natural_string_key(text: str) -> tuple[str, str]:
    """:func:`natural_key` for decoded strings as two plain strings, so sorting and bisecting
    compare in C. Same order as ``ncmp`` (raises :class:`NotKeyable` where natural_key does).

    The encoding is natural_key's list flattened: a flag for the digits-first rule, then the
    characters, each digit run written as U+10FFFF (above every character, as a run sorts after
    any character), its length without leading zeros (shorter numbers first) and its digits
    (same length: lexical is numeric); the text itself breaks ties, as ncmp's last rule does.
    """
    prepared = _prepare(text, False)
    if not prepared.isascii() and (_TOP in prepared or _NONASCII_DIGIT.search(prepared)):
        raise NotKeyable(text)
    flag = "0" if _DIGITS.match(prepared) else "1"
    return flag + _DIGITS.sub(_text_run, prepared), text


def nsort(items: Iterable[str], *, utf8_bytes: bool = False) -> list[str]:
    """Sort::Naturally's ``nsort``: a new list in ncmp order (see :func:`ncmp` for ``utf8_bytes``).

    ``nsort(members, utf8_bytes=True)`` is the original's ``nsort(ZRANGEBYLEX LRR_TITLES - +)``.
    """
    return sort_by_ncmp(items, str, utf8_bytes=utf8_bytes)


def sort_by_ncmp(items: Iterable[T], value: Callable[[T], str], *, utf8_bytes: bool = False) -> list[T]:
    """Perl's ``sort { ncmp(value($a), value($b)) } @items``: stable, so equal values keep order.

    Uses the :func:`natural_key` encodings, and falls back to ``cmp_to_key(ncmp)`` only when a
    value is :class:`NotKeyable`. With non-ASCII digits ncmp can be intransitive, so there the
    result may differ from Perl's merge sort; each pairwise comparison still agrees with Perl.
    """
    seq = list(items)
    values = [value(item) for item in seq]
    keys: list[Any]
    try:
        if utf8_bytes:
            heads = [_byte_view_head(v) for v in values]
            counts = Counter(head for head, _ in heads)
            keys = [
                (head, _byte_view_encode(tail) if counts[head] > 1 else "", v)
                for (head, tail), v in zip(heads, values)
            ]
        else:
            keys = [natural_key(v) for v in values]
    except NotKeyable:
        compare = partial(ncmp, utf8_bytes=utf8_bytes)
        keys = [cmp_to_key(compare)(v) for v in values]
    order = sorted(range(len(seq)), key=keys.__getitem__)
    return [seq[i] for i in order]


@lru_cache(maxsize=256)
def _namespace_regex(namespace: str) -> re.Pattern[str] | None:
    try:
        re.compile(namespace)  # qr/$sortkey/ must compile on its own first
        return re.compile(".*(?:" + namespace + "):(.*?)(,.*|$)")
    except (re.error, RecursionError, OverflowError, ValueError):
        return None


def namespace_sort_value(tags: str | None, namespace: str) -> str | None:
    """The value LANraragi sorts an id by for ``sortby=<namespace>``, or None for "no value".

    The original applies ``m/.*${re}:(.*?)(\\,.*|$)/`` with ``$re = qr/$sortkey/``: the greedy
    ``.*`` makes it the value of the *last* ``<namespace>:`` tag, and the namespace is a regex,
    unescaped and case-sensitive. Copied here with Python's ``re`` (``.`` stops at newlines and
    ``$`` also matches before a final newline, as in Perl), including these quirks:

    * ``$1`` is the first group of the whole pattern, so a namespace with its own groups yields
      that group's text, and ``""`` when the group did not take part (Perl's undef);
    * the original marks "no value" with the string ``"zzzz"``, so a real value ``zzzz`` is also
      reported as None; the caller lowercases the value before :func:`ncmp`.

    Where Perl's ``qr//`` would die (and the request with it), or the namespace uses syntax
    Python's ``re`` rejects (``\\p{..}``, ``(?i)`` after the start), this returns None for every
    id instead of raising, so the ids keep their candidate order.
    """
    regex = _namespace_regex(namespace)
    if regex is None or tags is None:
        return None
    m = regex.search(tags)
    if m is None:
        return None
    value = m.group(1)
    if value is None:
        return ""
    return None if value == "zzzz" else value
