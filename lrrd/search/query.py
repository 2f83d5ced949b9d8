"""The search language of LANraragi: filter tokens, Redis-style glob matching, and per-token
predicates for tags, titles and the numeric ``read:``/``pages:`` pseudo-tags (no Redis here)."""

from __future__ import annotations

import builtins
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

__all__ = [
    "PERL_WHITESPACE",
    "Token",
    "parse_filter",
    "compile_glob",
    "glob_match",
    "redis_text",
    "parse_numeric",
    "numeric_matches",
    "token_prefix_pattern",
    "token_substring_pattern",
    "tag_index_pattern",
    "exact_tag_key",
    "tag_matches",
    "title_pattern",
    "title_matches",
]

# Perl's \s on a character string (>= 5.18), which is what LANraragi's trim() strips. Python's
# str.strip() would also remove \x1c-\x1f, which Perl keeps.
PERL_WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680"
    "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)

# Steps 6 and 7 of the grammar in one pass. They commute: escaping adds only backslashes, the
# mapping adds only ? and *, and neither is an input of the other.
_TOKEN_TABLE = str.maketrans({"[": "\\[", "]": "\\]", "^": "\\^", "\\": "\\\\", "_": "?", "%": "*"})

# One term of compute_search_filter's hand-written scanner: skip U+0020 only, an optional "-",
# then either a quoted text up to the next quote or the end (one "$" after the quote is eaten)
# or an unquoted text up to the next comma (the comma is eaten). A comma where a term starts is
# an empty term, so runs of spaces and commas are skipped in C. The only empty match is at the
# very end, and its empty term is dropped like every other.
_TERM = re.compile(r'[ ,]*(-?)(?:"([^"]*)(?:"\$?)?|([^,]*),?)')


@dataclass(frozen=True, slots=True)
class Token:
    """One search term, as ``compute_search_filter`` hands it to the search loop.

    ``text`` is already a Redis glob fragment: ``[ ] ^ \\`` are backslash-escaped, ``_``/``%`` are
    ``?``/``*``, and it is lowercased. It is *not* NFC-normalised: the original does that only
    when it encodes the token for Redis, so use :func:`redis_text` for anything sent to Redis.
    """

    text: str
    negated: bool = False
    exact: bool = False

    @property
    def namespaced(self) -> bool:
        """Whether the tag-index lookup is a prefix match (the original tests ``/:/``)."""
        return ":" in self.text


def _perl_lc(text: str) -> str:
    # Perl's lc() has no Final_Sigma rule; Python's lower() turns a final capital sigma into ς.
    if "\u03a3" in text:
        text = text.replace("\u03a3", "\u03c3")
    return text.lower()


def parse_filter(filter: str | None) -> list[Token]:
    """Split a search filter into tokens exactly as LANraragi's ``compute_search_filter`` does.

    Quirks kept on purpose, because clients rely on the original's results:

    * only commas separate unquoted terms; a closing quote also ends a term, so ``"a" b`` is two;
    * only U+0020 spaces are skipped before a term; anything else (a tab, or a space after ``-``)
      makes the term unquoted, so ``- "x"`` searches for the literal text ``"x"``;
    * a trailing ``$`` is looked for before trimming: ``a$ ,b`` is *not* exact and keeps the ``$``;
    * a quoted term is exact, and one ``$`` right after its closing quote is swallowed;
    * ``-`` inside quotes is literal; ``--x`` is the negated term ``-x``;
    * the whole filter ``"0"`` is false in Perl and so yields no terms at all;
    * trimming uses Perl's ``\\s`` (see :data:`PERL_WHITESPACE`), lowercasing Perl's ``lc``.

    Linear in the input: escaping and lowercasing are done once on the whole filter (both act
    per character and never make or remove a ``, " - $`` or a space, so the terms stay the same),
    one regex pass finds the terms, and each distinct term is turned into a Token once (Tokens
    are immutable, so repeats share it); only that last step runs Python code per term.
    """
    if not filter or filter == "0":
        return []
    terms = _TERM.findall(_perl_lc(filter.translate(_TOKEN_TABLE)))
    table: dict[tuple[str, str, str], Token | None] = dict.fromkeys(terms)
    ws = PERL_WHITESPACE
    for term in table:
        dash, quoted, plain = term
        if quoted:
            raw, exact = quoted.strip(ws), True
        elif plain[-1:] == "$":  # looked for before trimming: "a$ ," is not exact
            raw, exact = plain[:-1].strip(ws), True
        else:
            raw, exact = plain.strip(ws), False
        if raw:
            table[term] = Token(raw, dash == "-", exact)
    # `filter` is the parameter (the name is the API's), hence builtins.filter.
    return list(builtins.filter(None, map(table.__getitem__, terms)))


# --- Redis glob --------------------------------------------------------------------------------

_STAR = -1
_ANY = -2
_Unit = int | frozenset[int]  # a literal byte, _STAR, _ANY, or a set of bytes
_ALL_BYTES = frozenset(range(256))
# Redis gives up (no match) once a pattern recurses through more than this many '*' groups.
_REDIS_MAX_NESTING = 1000


def _signed(byte: int) -> int:
    # Redis compares range ends as plain `char`, which is signed on x86-64.
    return byte - 256 if byte >= 128 else byte


def _glob_units(p: bytes) -> list[_Unit]:
    """Read a pattern the way Redis's ``stringmatchlen`` walks it, quirks included:
    ``]`` right after ``[`` (or ``[^``) closes an empty class; ``[a-]`` is the range ``a``..``]``
    and leaves the class open; an unclosed class runs to the end of the pattern; ``\\`` escapes
    inside and outside classes, and a lone trailing ``\\`` is a literal backslash."""
    units: list[_Unit] = []
    n = len(p)
    i = 0
    while i < n:
        c = p[i]
        if c == 0x2A:  # *
            if not units or units[-1] != _STAR:
                units.append(_STAR)
            i += 1
        elif c == 0x3F:  # ?
            units.append(_ANY)
            i += 1
        elif c == 0x5B:  # [
            i += 1
            negate = i < n and p[i] == 0x5E
            if negate:
                i += 1
            members: set[int] = set()
            while i < n:
                b = p[i]
                if b == 0x5C and n - i >= 2:
                    members.add(p[i + 1])
                    i += 2
                elif b == 0x5D:
                    i += 1
                    break
                elif n - i >= 3 and p[i + 1] == 0x2D:
                    lo, hi = sorted((_signed(b), _signed(p[i + 2])))
                    members.update(x for x in range(256) if lo <= _signed(x) <= hi)
                    i += 3
                else:
                    members.add(b)
                    i += 1
            units.append(_ALL_BYTES - members if negate else frozenset(members))
        elif c == 0x5C and n - i >= 2:  # backslash escape
            units.append(p[i + 1])
            i += 2
        else:
            units.append(c)
            i += 1
    return units


def _unit_regex(unit: _Unit) -> bytes:
    if isinstance(unit, frozenset):
        if not unit:
            return b"(?!)"
        if unit == _ALL_BYTES:
            return b"."
        return b"[" + b"".join(b"\\x%02x" % x for x in sorted(unit)) + b"]"
    if unit == _ANY:
        return b"."
    return re.escape(bytes((unit,)))


@lru_cache(maxsize=4096)
def compile_glob(pattern: str | bytes) -> re.Pattern[bytes]:
    """Compile a Redis glob (as used by ``KEYS``/``SCAN MATCH``) into a regex over UTF-8 bytes.

    Redis matches bytes, not characters, so ``?`` consumes one byte of a multi-byte character and
    ``caf?`` does not match ``café`` as a whole: match the result against ``subject.encode()``.
    Also copied from Redis: a non-empty pattern never matches the empty string (not even ``*``),
    and a pattern that would recurse through more than 1000 ``*`` groups matches nothing.

    Middle ``*`` segments are atomic, leftmost-first: that is correct for globs (segments have a
    fixed length) and keeps matching O(len(pattern) * len(subject)) where a naive ``.*``
    translation backtracks exponentially on patterns like ``*a*a*a*a*b``.
    """
    p = pattern.encode("utf-8", "surrogatepass") if isinstance(pattern, str) else pattern
    if not p:
        return re.compile(rb"\A\Z")
    units = _glob_units(p)
    stars = sum(1 for u in units if u == _STAR)
    if stars > _REDIS_MAX_NESTING and not (stars == _REDIS_MAX_NESTING + 1 and units[-1] == _STAR):
        return re.compile(rb"(?!)")
    segments: list[list[_Unit]] = [[]]
    for unit in units:
        if unit == _STAR:
            segments.append([])
        else:
            segments[-1].append(unit)
    parts = [rb"(?s)\A(?=.)"]
    parts.extend(_unit_regex(u) for u in segments[0])
    if len(segments) > 1:
        for middle in segments[1:-1]:
            parts.append(rb"(?>.*?" + b"".join(_unit_regex(u) for u in middle) + b")")
        parts.append(b".*")
        parts.extend(_unit_regex(u) for u in segments[-1])
    parts.append(rb"\Z")
    return re.compile(b"".join(parts))


@lru_cache(maxsize=4096)
def _min_subject_len(pattern: str | bytes) -> int:
    # Every unit but '*' consumes exactly one byte, so the bytes that are neither '*' nor '\'
    # bound the subject's length from below (a class can span many bytes: no bound then). This
    # turns a huge token away from short tags before compile_glob pays sre's ~6 s per MB.
    p = pattern.encode("utf-8", "surrogatepass") if isinstance(pattern, str) else pattern
    if b"[" in p:
        return 0
    return len(p) - p.count(b"*") - p.count(b"\\")


def glob_match(pattern: str | bytes, subject: str | bytes) -> bool:
    """Whether Redis would say ``subject`` matches the glob ``pattern`` (case-sensitive)."""
    data = subject.encode("utf-8", "surrogatepass") if isinstance(subject, str) else subject
    if len(data) < _min_subject_len(pattern):
        return False
    return compile_glob(pattern).match(data) is not None


# --- Token predicates ---------------------------------------------------------------------------


def redis_text(token: Token | str) -> str:
    """The token as the original sends it to Redis: ``redis_encode`` NFC-normalises first."""
    text = token.text if isinstance(token, Token) else token
    return text if text.isascii() else unicodedata.normalize("NFC", text)


NumericField = Literal["read", "pages"]
NumericOp = Literal["=", ">", "<", ">=", "<="]
_NUMERIC = re.compile(r"(read|pages):(>=|<=|>|<)?([0-9]+)")


def parse_numeric(token: Token | str) -> tuple[NumericField, NumericOp, int] | None:
    """Recognise ``read:N``/``pages:N`` with an optional ``> < >= <=`` (absent means ``=``).

    Matched on the encoded bytes in the original, so only ASCII digits count. The original runs
    this *before* the tag lookup and, for an exact token whose tag index exists, then replaces
    (not extends) the numeric hits with that index's members: the caller must copy that.
    """
    m = _NUMERIC.fullmatch(redis_text(token))
    if m is None:
        return None
    field: NumericField = "read" if m.group(1) == "read" else "pages"
    op: NumericOp = m.group(2) or "="  # type: ignore[assignment]
    return field, op, int(m.group(3))


def numeric_matches(spec: tuple[NumericField, NumericOp, int], value: int) -> bool:
    """Compare an archive's ``progress``/``pagecount`` (missing or non-numeric = 0) to a spec."""
    _, op, n = spec
    if op == "=":
        return value == n
    if op == ">":
        return value > n
    if op == "<":
        return value < n
    if op == ">=":
        return value >= n
    return value <= n


def token_prefix_pattern(text: str) -> str:
    """Glob for a namespaced token against ``namespace:value`` (``KEYS INDEX_<token>*``)."""
    return text + "*"


def token_substring_pattern(text: str) -> str:
    """Glob for a bare token against ``namespace:value`` (``KEYS INDEX_*<token>*``)."""
    return "*" + text + "*"


def tag_index_pattern(token: Token) -> str:
    """The tag glob the original uses for ``token`` (without the ``INDEX_`` key prefix).

    Exact tokens use it too whenever the exact index does not exist, so ``artist:foo$`` still
    matches ``artist:foobar`` when there is no ``artist:foo`` tag at all.
    """
    text = redis_text(token)
    return token_prefix_pattern(text) if ":" in text else token_substring_pattern(text)


def exact_tag_key(token: Token) -> str:
    """The tag whose ``INDEX_`` set an exact token reads directly, when that set exists.

    The original tests ``EXISTS INDEX_<token>`` with the *escaped, glob-mapped* text, so an
    exact term containing ``[ ] ^ \\ _ %`` never takes this path and falls back to the glob.
    """
    return redis_text(token)


def tag_matches(token: Token, tag_lc: str) -> bool:
    """Whether the glob fallback of §4.3(b) selects the lowercased, NFC tag ``tag_lc``.

    Matched on the whole key ``INDEX_<tag>`` as ``KEYS`` does. The exact fast path
    (``token.exact`` and a tag equal to :func:`exact_tag_key` exists) is the caller's, since it
    depends on the whole index rather than on one tag.
    """
    return glob_match("INDEX_" + tag_index_pattern(token), "INDEX_" + tag_lc)


def title_pattern(token: Token) -> str:
    """The ``ZSCAN LRR_TITLES MATCH`` glob: ``<token>\\0*`` when exact, else ``*<token>*``."""
    text = redis_text(token)
    return text + "\x00*" if token.exact else "*" + text + "*"


def title_matches(token: Token, title_lc: str, arcid: str) -> bool:
    """Whether the title scan of §4.3(c) selects the ``LRR_TITLES`` member ``title\\0id``.

    ``title_lc`` must be the stored form: ``lc(trim(title))`` without newlines. A non-exact
    pattern runs over the whole member, so it also matches characters of the id, and a ``*``
    in the token can span the NUL (``foo*0a`` finds title ``foo`` with an id starting ``0a``).
    An exact token must match the whole title, its wildcards included.
    """
    return glob_match(title_pattern(token), title_lc + "\x00" + arcid)
