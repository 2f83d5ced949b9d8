"""Search over the in-memory ``Library``: LRR-NOTES §4.2–§4.4, computed per request (no cache).

``run_search`` filters (category, untagged, new, completed, then each token) and sorts (title,
lastread, or a namespace); ``page_json`` turns a page of results into archive and tank JSON,
skipping archives whose file is gone. The original's evaluation order is kept where it shows:
tokens intersect in turn and stop once nothing is left, and an empty positive token empties the
result. Everything else is set algebra on slots, which gives the same sets.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Sequence

from lrrd.search.index import ArchiveEntry, Library, TankEntry, json_body
from lrrd.search.natural import sort_by_ncmp
from lrrd.search.query import (
    Token, compile_glob, exact_tag_key, numeric_matches, parse_filter, parse_numeric,
    tag_index_pattern, title_pattern,
)
from lrrd.store.tankoubons import tank_json

#: Below this many candidates a token is checked against each candidate's own tags and title;
#: above it, against the whole tag and title blobs (the original's ``KEYS``/``ZSCAN``).
PER_CANDIDATE_LIMIT = 2000
#: How long a search may run before it yields to the reactor once.
SLICE_SECONDS = 0.02
#: A search still running after this long is refused (a pathological filter).
BUDGET_SECONDS = 30.0


class SearchTooExpensive(Exception):
    """The filter would take too long to evaluate; the API answers 400."""


@dataclass(frozen=True)
class SearchQuery:
    """The parameters of ``/api/search`` after the API layer has read them."""

    filter: str = ""
    category: str = ""
    start: int = 0            # an offset; -1 means everything
    sortby: str = ""          # "" or "title", "lastread", or a namespace
    desc: bool = False
    newonly: bool = False
    untaggedonly: bool = False
    hidecompleted: bool = False
    grouped: bool = True
    pagesize: int = 100


@dataclass
class SearchOutcome:
    """``recordsTotal``, ``recordsFiltered`` and the page (all results when start is -1)."""

    total: int
    filtered: int
    slots: list[int]


Pause = Callable[[], Awaitable[None]]


async def run_search(lib: Library, query: SearchQuery, pause: Pause | None = None) -> SearchOutcome:
    """The whole search: candidates, filters, tokens, sort, slice."""
    ordered = await search_slots(lib, query, pause)
    if query.start == -1:
        page = ordered
    else:
        page = ordered[query.start:query.start + query.pagesize]
    return SearchOutcome(lib.total(query.grouped), len(ordered), page)


async def search_slots(lib: Library, query: SearchQuery, pause: Pause | None = None) -> list[int]:
    """Every matching slot in result order."""
    matches = await filter_slots(lib, query, pause)
    if not matches:
        return []
    return order_slots(lib, matches, query.sortby or "title", query.desc)


async def filter_slots(lib: Library, query: SearchQuery, pause: Pause | None = None) -> set[int]:
    """§4.3: the set of slots matching the query, unordered."""
    cands = set(lib.grouped) if query.grouped else set(lib.archives)
    tokens = parse_filter(query.filter)
    category = lib.categories.get(query.category) if query.category else None
    if category is not None:
        if category.search:
            tokens += parse_filter(category.search)
        else:
            cands &= lib.slots_of(category.archives)
    if query.untaggedonly:
        cands &= lib.untagged
    if query.newonly:
        tanks = [s for s in cands if s in lib.tanks]
        cands &= lib.new
        new = lib.new
        for tank_slot in tanks:
            if any(lib.slot_of.get(a) in new for a in lib.tanks[tank_slot].members):
                cands.add(tank_slot)
    if query.hidecompleted:
        cands -= lib.completed
    started = last = time.monotonic()
    seen: set[Token] = set()
    for token in tokens:
        if not cands:
            break
        if token in seen:  # intersecting with the same set twice changes nothing
            continue
        seen.add(token)
        hits = token_hits(lib, token, cands)
        if not hits:
            if not token.negated:
                return set()
            continue
        if token.negated:
            cands -= hits
        else:
            cands &= hits
        now = time.monotonic()
        if now - started > BUDGET_SECONDS:
            raise SearchTooExpensive("This search filter is too complex.")
        if pause is not None and now - last > SLICE_SECONDS:
            await pause()
            last = time.monotonic()
    return cands


def token_hits(lib: Library, token: Token, cands: set[int]) -> set[int]:
    """The ids one token selects (§4.3 5a–c), as far as they matter: within ``cands``.

    The union of numeric hits, tag-index hits and title hits, where an exact token whose
    ``INDEX_`` exists takes that set *instead of* the numeric hits (the original overwrites
    its list). Only the intersection with the candidates is ever used, so a small candidate
    set is checked one candidate at a time and a large one against the whole index.
    """
    numeric = parse_numeric(token)
    exact_set = lib.postings.get(exact_tag_key(token).encode("utf-8", "surrogatepass")) \
        if token.exact else None
    if len(cands) <= PER_CANDIDATE_LIMIT:
        return _hits_per_candidate(lib, token, cands, numeric, exact_set)
    hits: set[int] = set()
    if numeric is not None and not exact_set:
        hits = _numeric_hits(lib, numeric, cands)
    if exact_set:
        hits |= exact_set
    else:
        postings = lib.postings
        lines = lib.tag_blob().match(tag_index_pattern(token))
        if lines:
            hits = hits.union(*[postings[line] for line in lines if line in postings])
    title_slot = lib.title_slot
    for line in lib.title_blob().match(title_pattern(token)):
        slot = title_slot.get(line)
        if slot is not None:
            hits.add(slot)
    return hits


def _numeric_hits(lib: Library, spec: Any, cands: set[int]) -> set[int]:
    field = "progress" if spec[0] == "read" else "pagecount"
    archives = lib.archives
    out = set()
    for slot in cands:
        entry = archives.get(slot)  # tanks have no counts of their own: never selected
        if entry is not None and numeric_matches(spec, getattr(entry, field)):
            out.add(slot)
    return out


def _hits_per_candidate(lib: Library, token: Token, cands: set[int], numeric: Any,
                        exact_set: set[int] | None) -> set[int]:
    tag_regex = compile_glob(tag_index_pattern(token))
    title_regex = compile_glob(title_pattern(token))
    titles = lib.titles
    archives, tanks = lib.archives, lib.tanks
    out: set[int] = set()
    if numeric is not None and not exact_set:
        out = _numeric_hits(lib, numeric, cands)
    for slot in cands:
        if slot in out:
            continue
        if exact_set:
            if slot in exact_set:
                out.add(slot)
                continue
        else:
            entry: ArchiveEntry | TankEntry | None = archives.get(slot) or tanks.get(slot)
            if entry is not None and any(tag_regex.match(key) for key in entry.tag_keys):
                out.add(slot)
                continue
        member = titles.get(slot)
        if member is not None and title_regex.match(member.encode("utf-8", "surrogatepass")):
            out.add(slot)
    return out


# ---- sorting --------------------------------------------------------------------------------------


def order_slots(lib: Library, matches: set[int], sortby: str, desc: bool) -> list[int]:
    """§4.4: title, lastread or a namespace; what a sort drops is gone from the count too."""
    if sortby == "title":
        titled = matches.intersection(lib.titles)  # ids missing from LRR_TITLES are dropped
        return lib.title_order.ordered(titled, reverse=desc)
    if sortby == "lastread":
        return _lastread(lib, matches, desc)
    return _by_namespace(lib, matches, sortby, desc)


def _lastread(lib: Library, matches: set[int], desc: bool) -> list[int]:
    archives, tanks, ids = lib.archives, lib.tanks, lib.ids
    read: list[tuple[int, str, int]] = []
    for slot in matches:
        entry = archives.get(slot)
        if entry is not None:
            value = entry.lastreadtime
        else:
            tank = tanks.get(slot)
            if tank is None:
                continue
            value = max([m.lastreadtime for m in lib.member_entries(tank) if m] or [0])
        if value > 0:  # never read: dropped
            read.append((-value, ids[slot] or "", slot))
    read.sort()  # newest first; equal times in candidate (id) order
    out = [slot for _, _, slot in read]
    if desc:
        out.reverse()
    return out


def _by_namespace(lib: Library, matches: set[int], namespace: str, desc: bool) -> list[int]:
    ns = lib.namespace_order(namespace)
    keyed_slots = matches.intersection(ns.keyed.key_of)
    if ns.fallback:
        extra = [s for s in matches if s in ns.fallback]
        if extra:
            # Values ncmp alone can order (non-ASCII digits): the original's sort, in full.
            def value(slot: int) -> str:
                return ns.fallback[slot] if ns.fallback and slot in ns.fallback \
                    else (lib.sort_value(slot, namespace) or "")

            base = lib.by_id.ordered(keyed_slots | set(extra))
            keyed = sort_by_ncmp(base, value)
        else:
            keyed = ns.keyed.ordered(keyed_slots)
    else:
        keyed = ns.keyed.ordered(keyed_slots)
    if desc:
        keyed.reverse()
    keyless = lib.by_id.ordered(matches & ns.keyless)  # always last, in candidate order
    return keyed + keyless


# ---- JSON -----------------------------------------------------------------------------------------------

ExistsFn = Callable[[Sequence[str]], Awaitable[Sequence[bool]]]


async def page_json(lib: Library, slots: Sequence[int], exists: ExistsFn) -> list[bytes]:
    """Archive JSON (cached bytes) and tank JSON for ``slots``, in order; archives whose file
    is missing (and ids the index no longer knows) are left out, as the original does."""
    paths: list[str] = []
    for slot in slots:
        entry = lib.archives.get(slot)
        if entry is not None:
            paths.append(entry.file)
            continue
        tank = lib.tanks.get(slot)
        if tank is not None:
            paths.extend(m.file for m in lib.member_entries(tank) if m is not None)
    present = {p for p, ok in zip(paths, await exists(paths)) if ok} if paths else set()
    out: list[bytes] = []
    for slot in slots:
        entry = lib.archives.get(slot)
        if entry is not None:
            if entry.file in present:
                out.append(entry.json)
            continue
        tank = lib.tanks.get(slot)
        if tank is not None:
            members = [m.as_member() for m in lib.member_entries(tank)
                       if m is not None and m.file in present]
            out.append(json_body(tank_json(tank.as_tank(), members, len(tank.members))))
    return out


def pick_random(slots: Sequence[int], count: int, rng: random.Random | None = None) -> list[int]:
    """Up to ``count`` distinct slots, drawn without replacement."""
    count = max(0, min(count, len(slots)))
    return (rng or random).sample(list(slots), count)


def ids_of(lib: Library, slots: Sequence[int]) -> list[str]:
    ids = lib.ids
    return [i for i in (ids[s] for s in slots) if i is not None]
