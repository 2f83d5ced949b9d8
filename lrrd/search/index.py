"""The in-memory search index (DESIGN.md decision 3): what search needs of every archive, tank
and category, loaded from Redis at start and kept current through the change feed.

``Library`` is one consistent snapshot of the data, built by ``load_library`` with pipelined
reads (an existing LANraragi database works as it is) and patched in place as notices arrive.
``SearchIndex`` is the service around it: it loads at start, subscribes to the stores'
``CHANGES_CHANNEL``, re-reads whatever a notice names, and reloads everything after a lost
connection (notices are not queued while nobody listens). Until the first load finishes,
``SearchIndex.library`` is None and search answers 204, as the original does before its first
stats build.

Why the shapes below: a search at 100k archives must stay in the tens of milliseconds on the
reactor thread. Ids become small integer slots so candidate sets are C-level ``set`` algebra;
tag and title globs scan one newline-joined blob with ``bytes.find`` instead of looping over
keys in Python; title order and per-namespace orders are kept sorted so a sorted page is a
filter over a list, never a sort of all matches.
"""

from __future__ import annotations

import json
import time
from bisect import bisect_left
from functools import lru_cache
from operator import itemgetter
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from twisted.application import service
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.task import deferLater
from twisted.logger import Logger

from lrrd.jsonbody import encode_json, latin1_fallback
from lrrd.search.natural import (
    NotKeyable, namespace_sort_value, natural_key, natural_string_key,
)
from lrrd.search.query import _STAR, _glob_units, compile_glob  # the Redis glob reader
from lrrd.store.archives import (
    ARCHIVE_KEY_PATTERN, CHANGES_CHANNEL, as_int, as_text, extension_of, title_member, toc_list,
    wire_value,
)
from lrrd.store.categories import archive_list
from lrrd.store.changes import RELOAD_ALL, ChangeFeed, barrier_channel, publish
from lrrd.store.redis import DB, RedisStore, StoreError, StoreUnavailable
from lrrd.store.tankoubons import TANK_ID_RE, parse_metadata, unified_tags

log = Logger()

#: How many keys one pipelined read carries while loading; between chunks the reactor runs.
LOAD_CHUNK = 2000
#: A progress ratio above this makes an archive "completed" for ``hidecompleted``.
COMPLETED_RATIO = 0.85

_TANK_KEY_PATTERN = "TANK_" + "?" * 10
_CATEGORY_KEY_PATTERN = "SET_" + "?" * 10
_DATE_NAMESPACES = ("date_added", "timestamp")


def json_body(obj: Any) -> bytes:
    """The API's JSON encoding (sorted keys, compact, UTF-8), so cached bytes splice in."""
    return encode_json(obj)


def _lower(text: str) -> str:
    # Perl's lc has no final-sigma rule.
    return (text.replace("\u03a3", "\u03c3") if "\u03a3" in text else text).lower()


_quote: Callable[[str], str] = json.encoder.encode_basestring  # type: ignore[attr-defined]
_EMPTY_LIST = "[]"


class ArchiveEntry:
    """What search and its JSON need of one archive hash (the hash itself is not kept)."""

    __slots__ = ("id", "title", "tags", "isnew", "pagecount", "progress", "lastreadtime",
                 "size", "file", "tag_keys", "json")

    def __init__(self, arcid: str, fields: Mapping[str, Any]) -> None:
        # archive_json's rules, inlined: this runs 100,000 times at load.
        get = fields.get
        name = as_text(get("name"))
        title = as_text(get("title"))
        if not title.strip():
            title = name
        tags = as_text(get("tags"))
        self.id = arcid
        self.title = title
        self.tags = tags
        self.isnew = as_text(get("isnew")) == "true"
        self.pagecount = as_int(get("pagecount"))
        self.progress = as_int(get("progress"))
        self.lastreadtime = as_int(get("lastreadtime"))
        self.size = as_int(get("arcsize"))
        self.file = as_text(get("file"))
        #: The ``INDEX_`` names (lowercased tag bytes), distinct; a tuple is a fifth of a set's
        #: size, and the library swaps in its shared copies of the bytes (``Library.intern``).
        self.tag_keys: tuple[bytes, ...] = tuple({
            t.strip().lower().encode("utf-8", "surrogatepass"): None for t in tags.split(",")
            if t.strip()}) if tags else ()
        raw_toc = as_text(get("toc"))
        toc = _EMPTY_LIST if not raw_toc else json_body(toc_list(raw_toc)).decode("utf-8")
        #: The archive's JSON (``archive_json``'s, keys sorted), encoded once: listings and
        #: result pages splice these bytes together.
        summary = as_text(get("summary"))

        def encoded(quote: Callable[[str], str]) -> str:
            return (
                '{"arcid":' + quote(arcid) + ',"extension":' + quote(extension_of(self.file))
                + ',"filename":' + quote(name) + ',"isnew":' + ("true" if self.isnew else "false")
                + ',"lastreadtime":' + str(self.lastreadtime) + ',"pagecount":'
                + str(self.pagecount) + ',"progress":' + str(self.progress) + ',"size":'
                + str(self.size) + ',"summary":' + quote(summary) + ',"tags":' + quote(tags)
                + ',"title":' + quote(title) + ',"toc":' + toc + "}"
            )

        #: The archive's JSON (``archive_json``'s, keys sorted), encoded once: listings and
        #: result pages splice these bytes together. Text an older writer stored as raw bytes
        #: that are not UTF-8 goes out read as Latin-1 (``lrrd.jsonbody``), so the body is
        #: always valid UTF-8.
        try:
            self.json: bytes = encoded(_quote).encode("utf-8")
        except UnicodeEncodeError:
            self.json = encoded(lambda text: _quote(latin1_fallback(text))).encode("utf-8")

    @property
    def completed(self) -> bool:
        return self.pagecount > 0 and self.progress / self.pagecount > COMPLETED_RATIO

    def as_member(self) -> dict[str, Any]:
        """The fields ``tank_json`` reads of a member's archive JSON."""
        return {"title": self.title, "tags": self.tags, "isnew": self.isnew,
                "pagecount": self.pagecount, "lastreadtime": self.lastreadtime,
                "size": self.size}


class TankEntry:
    """A tankoubon: its metadata and member ids (in reading order)."""

    __slots__ = ("id", "name", "summary", "tags", "progress", "members", "tag_keys")

    def __init__(self, tank_id: str, meta: Sequence[Any], members: Sequence[Any]) -> None:
        fields = parse_metadata(meta)
        if "name" not in fields:
            bare = [as_text(m) for m in meta if not parse_metadata([m])]
            if bare:
                fields["name"] = bare[-1]
        self.id = tank_id
        self.name = fields.get("name", "")
        self.summary = fields.get("summary", "")
        self.tags = fields.get("tags", "")
        self.progress = as_int(fields.get("progress"))
        self.members: list[str] = [as_text(m) for m in members]
        self.tag_keys: tuple[bytes, ...] = ()

    def as_tank(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "summary": self.summary, "tags": self.tags,
                "progress": self.progress, "archives": list(self.members)}


class Category:
    """A category as search uses it: a predicate, or (when the predicate is empty) a list."""

    __slots__ = ("search", "archives")

    def __init__(self, fields: Mapping[str, Any]) -> None:
        self.search = as_text(fields.get("search"))
        self.archives = archive_list(fields.get("archives"))


# ---- blob scanning ---------------------------------------------------------------------------------


class LineBlob:
    """Distinct byte strings joined by newlines, for Redis-glob scans at C speed.

    ``KEYS INDEX_<glob>`` and ``ZSCAN LRR_TITLES MATCH <glob>`` become: find a literal piece of
    the glob with ``bytes.find`` (at a line start when the glob starts with it), take each line
    it occurs in once, and check the whole glob only on those. Lines never contain a newline
    (tags and titles are stored without them), so a literal with a newline matches nothing.
    """

    __slots__ = ("blob",)

    def __init__(self, lines: Iterable[bytes]) -> None:
        self.blob = b"\n" + b"\n".join(line for line in lines if b"\n" not in line) + b"\n"

    def match(self, pattern: str) -> list[bytes]:
        """Every line the Redis glob ``pattern`` matches in full."""
        raw = pattern.encode("utf-8", "surrogatepass")
        units = _glob_units(raw)
        # Maximal runs of literal bytes, with where they sit.
        runs: list[tuple[int, bytes]] = []
        current = bytearray()
        start = 0
        for i, unit in enumerate(units):
            if isinstance(unit, int) and unit >= 0:
                if not current:
                    start = i
                current.append(unit)
            else:
                if current:
                    runs.append((start, bytes(current)))
                    current = bytearray()
        if current:
            runs.append((start, bytes(current)))
        blob = self.blob
        if not runs:
            lines = blob[1:-1].split(b"\n") if len(blob) > 2 else []
            simple = False
        else:
            # The longest literal narrows the scan most; one at the start also anchors it.
            anchored = runs[0][0] == 0
            longest = max(runs[1:] if anchored else runs, key=lambda r: len(r[1]), default=None)
            if anchored and (longest is None or len(runs[0][1]) + 1 >= len(longest[1])):
                needle = runs[0][1]
            else:
                anchored = False
                needle = longest[1] if longest is not None else runs[0][1]
            if b"\n" in needle:
                return []
            lines = _lines_with(blob, needle, anchored)
            # "lit*" and "*lit*" need no second look; anything else does.
            simple = (len(runs) == 1 and units[-1] == _STAR and all(
                isinstance(u, int) and (u >= 0 or (u == _STAR and (i == 0 or i == len(units) - 1)))
                for i, u in enumerate(units)))
        if simple:
            return lines
        regex = compile_glob(raw)
        return [line for line in lines if regex.match(line) is not None]


def _lines_with(blob: bytes, needle: bytes, anchored: bool) -> list[bytes]:
    find, rfind = blob.find, blob.rfind
    out: list[bytes] = []
    append = out.append
    if anchored:
        marker = b"\n" + needle
        i = find(marker)
        while i != -1:
            end = find(b"\n", i + len(marker))
            append(blob[i + 1:end])
            i = find(marker, end)
        return out
    i = find(needle, 1)
    while i != -1:
        begin = rfind(b"\n", 0, i) + 1
        end = find(b"\n", i + len(needle))
        append(blob[begin:end])
        i = find(needle, end)
    return out


# ---- sorted orders ---------------------------------------------------------------------------------


def _title_key(member: str) -> tuple[Any, ...]:
    """Sort::Naturally's order over raw ``LRR_TITLES`` members, as a sort key."""
    try:
        return natural_key(member, utf8_bytes=True)
    except NotKeyable:  # a digit run of a million digits: order it last, by text
        return ("\U0010ffff", "", member)


def namespace_key(value: str) -> tuple[str, str]:
    """The ncmp sort key of a lowercased namespace value, as strings (C-speed comparisons).
    All-ASCII-digit values (``date_added``, ``timestamp``) are encoded directly, exactly as
    ``natural_string_key`` would."""
    if value.isdigit() and value.isascii():
        digits = value.lstrip("0")
        return "0\U0010ffff" + chr(1 + len(digits)) + digits, value
    return natural_string_key(value)


class SortedSlots:
    """Slots kept in key order; ``keys`` and ``slots`` are parallel, ``key_of`` finds a slot."""

    __slots__ = ("keys", "slots", "key_of", "_rank")

    def __init__(self, pairs: Iterable[tuple[Any, int]] = ()) -> None:
        ordered = sorted(pairs, key=itemgetter(0))
        self.keys: list[Any] = [k for k, _ in ordered]
        self.slots: list[int] = [s for _, s in ordered]
        self.key_of: dict[int, Any] = {s: k for k, s in ordered}
        self._rank: dict[int, int] | None = None

    def __len__(self) -> int:
        return len(self.slots)

    def discard(self, slot: int) -> None:
        key = self.key_of.pop(slot, None)
        if key is None:
            return
        i = bisect_left(self.keys, key)
        while i < len(self.keys) and self.slots[i] != slot:
            i += 1
        if i < len(self.keys):
            del self.keys[i]
            del self.slots[i]
            self._rank = None

    def put(self, slot: int, key: Any) -> None:
        if self.key_of.get(slot) == key and slot in self.key_of:
            return
        self.discard(slot)
        i = bisect_left(self.keys, key)
        self.keys.insert(i, key)
        self.slots.insert(i, slot)
        self.key_of[slot] = key
        self._rank = None

    def rank(self) -> dict[int, int]:
        """Position of every slot, rebuilt after a change (only small-match sorts use it)."""
        if self._rank is None:
            self._rank = {s: i for i, s in enumerate(self.slots)}
        return self._rank

    def ordered(self, wanted: set[int], reverse: bool = False) -> list[int]:
        """The slots of ``wanted`` (all must be in this order) in key order.

        Few matches: sort them by rank; many: filter the whole order. Either way no key is
        compared at query time.
        """
        if len(wanted) * 16 < len(self.slots):
            rank = self.rank()
            return sorted(wanted, key=rank.__getitem__, reverse=reverse)
        source = reversed(self.slots) if reverse else self.slots
        return list(filter(wanted.__contains__, source))


class NamespaceOrder:
    """The sort order for ``sortby=<namespace>``: keyed slots by (ncmp key, id), keyless apart."""

    __slots__ = ("namespace", "keyed", "keyless", "fallback")

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.keyed = SortedSlots()
        self.keyless: set[int] = set()
        #: Set when some value has no key function (non-ASCII digits): sort with ncmp itself.
        self.fallback: dict[int, str] | None = None


# ---- the snapshot ------------------------------------------------------------------------------------


class Library:
    """Everything search reads, for one database; slots are small ints standing for ids."""

    def __init__(self) -> None:
        self.ids: list[str | None] = []
        self.slot_of: dict[str, int] = {}
        self.archives: dict[int, ArchiveEntry] = {}
        self.tanks: dict[int, TankEntry] = {}
        #: archive slot → the tanks holding it.
        self.tanks_of: dict[int, set[int]] = {}
        self.categories: dict[str, Category] = {}
        #: ``INDEX_<tag>`` as tag bytes → slots; an empty set is a key that does not exist.
        self.postings: dict[bytes, set[int]] = {}
        self._canon: dict[bytes, bytes] = {}
        self.grouped: set[int] = set()      # LRR_TANKGROUPED
        self.new: set[int] = set()          # LRR_NEW
        self.untagged: set[int] = set()     # LRR_UNTAGGED
        self.completed: set[int] = set()    # progress past 85 %
        self.titles: dict[int, str] = {}    # LRR_TITLES member of each slot that has one
        self.title_slot: dict[bytes, int] = {}
        self.title_order = SortedSlots()
        self.by_id = SortedSlots()          # candidate order: by id
        self.namespaces: dict[str, NamespaceOrder] = {}
        self._tag_blob: LineBlob | None = None
        self._title_blob: LineBlob | None = None
        self.loaded_at = time.time()

    # -- slots ---------------------------------------------------------------------------------------
    def slot(self, some_id: str) -> int:
        """The slot of an id, allocated on first sight."""
        slot = self.slot_of.get(some_id)
        if slot is None:
            slot = len(self.ids)
            self.ids.append(some_id)
            self.slot_of[some_id] = slot
            self.by_id.put(slot, some_id)
        return slot

    def _free(self, slot: int) -> None:
        some_id = self.ids[slot]
        if some_id is None:
            return
        self.ids[slot] = None
        self.slot_of.pop(some_id, None)
        self.by_id.discard(slot)
        for ns in self.namespaces.values():
            ns.keyed.discard(slot)
            ns.keyless.discard(slot)
            if ns.fallback is not None:
                ns.fallback.pop(slot, None)

    def slots_of(self, ids: Iterable[str]) -> set[int]:
        get = self.slot_of.get
        return {s for s in map(get, ids) if s is not None}

    # -- postings ------------------------------------------------------------------------------------
    def intern(self, keys: Iterable[bytes]) -> tuple[bytes, ...]:
        """The same keys, as the library's one shared copy of each (a tag's bytes are kept
        once however many archives carry it)."""
        canon = self._canon
        return tuple([canon.setdefault(k, k) for k in keys])

    def _set_postings(self, slot: int, old_keys: Iterable[bytes], new_keys: Iterable[bytes]) -> None:
        postings = self.postings
        old, new = set(old_keys), set(new_keys)
        for key in old - new:
            members = postings.get(key)
            if members is not None:
                members.discard(slot)
                if not members:
                    del postings[key]
                    self._tag_blob = None
        for key in new - old:
            members = postings.get(key)
            if members is None:
                postings[key] = {slot}
                self._tag_blob = None
            else:
                members.add(slot)

    def tag_blob(self) -> LineBlob:
        if self._tag_blob is None:
            self._tag_blob = LineBlob(self.postings)
        return self._tag_blob

    def title_blob(self) -> LineBlob:
        if self._title_blob is None:
            self._title_blob = LineBlob(self.title_slot)
        return self._title_blob

    # -- titles --------------------------------------------------------------------------------------
    def set_title(self, slot: int, member: str | None) -> None:
        old = self.titles.get(slot)
        if old == member:
            return
        if old is not None:
            del self.titles[slot]
            self.title_slot.pop(old.encode("utf-8", "surrogatepass"), None)
            self.title_order.discard(slot)
        if member is not None:
            self.titles[slot] = member
            self.title_slot[member.encode("utf-8", "surrogatepass")] = slot
            self.title_order.put(slot, _title_key(member))
        self._title_blob = None

    # -- archives ------------------------------------------------------------------------------------
    def put_archive(self, entry: ArchiveEntry, grouped: bool, new: bool, untagged: bool,
                    title: str | None) -> None:
        slot = self.slot(entry.id)
        old = self.archives.get(slot)
        entry.tag_keys = self.intern(entry.tag_keys)
        self.archives[slot] = entry
        self._set_postings(slot, old.tag_keys if old else (), entry.tag_keys)
        _toggle(self.grouped, slot, grouped)
        _toggle(self.new, slot, new)
        _toggle(self.untagged, slot, untagged)
        _toggle(self.completed, slot, entry.completed)
        self.set_title(slot, title)
        if old is None or old.tags != entry.tags:
            for ns in self.namespaces.values():
                self._place(ns, slot)
            for tank in self.tanks_of.get(slot, ()):
                self.reindex_tank(tank)
                for ns in self.namespaces.values():
                    self._place(ns, tank)

    def drop(self, some_id: str) -> None:
        """Forget an archive or tank that is gone from the database."""
        slot = self.slot_of.get(some_id)
        if slot is None:
            return
        archive = self.archives.pop(slot, None)
        tank = self.tanks.pop(slot, None) if archive is None else None
        if tank is not None:
            self._set_members(slot, tank.members, [])
        keys = archive.tag_keys if archive is not None else tank.tag_keys if tank is not None else ()
        self._set_postings(slot, keys, ())
        for group in (self.grouped, self.new, self.untagged, self.completed):
            group.discard(slot)
        self.set_title(slot, None)
        for tank_slot in self.tanks_of.pop(slot, set()):
            self.reindex_tank(tank_slot)
        self._free(slot)

    # -- tanks ---------------------------------------------------------------------------------------
    def _set_members(self, tank_slot: int, old: Sequence[str], new: Sequence[str]) -> None:
        for arcid in set(old) - set(new):
            slot = self.slot_of.get(arcid)
            if slot is not None and slot in self.tanks_of:
                self.tanks_of[slot].discard(tank_slot)
                if not self.tanks_of[slot]:
                    del self.tanks_of[slot]
        for arcid in new:
            self.tanks_of.setdefault(self.slot(arcid), set()).add(tank_slot)

    def put_tank(self, entry: TankEntry, grouped: bool, title: str | None) -> None:
        slot = self.slot(entry.id)
        old = self.tanks.get(slot)
        self._set_members(slot, old.members if old else [], entry.members)
        entry.tag_keys = old.tag_keys if old else ()
        self.tanks[slot] = entry
        _toggle(self.grouped, slot, grouped)
        self.set_title(slot, title)
        self.reindex_tank(slot)
        for ns in self.namespaces.values():
            self._place(ns, slot)

    def member_entries(self, tank: TankEntry) -> list[ArchiveEntry | None]:
        get_slot, archives = self.slot_of.get, self.archives
        out = []
        for arcid in tank.members:
            slot = get_slot(arcid)
            out.append(archives.get(slot) if slot is not None else None)
        return out

    def reindex_tank(self, slot: int) -> None:
        """A tank is in ``INDEX_<tag>`` for its own tags and its members' (imputed) tags."""
        tank = self.tanks.get(slot)
        if tank is None:
            return
        own, imputed = unified_tags(tank.tags, [m.tags if m else None
                                                for m in self.member_entries(tank)])
        keys = self.intern({t.lower().encode("utf-8", "surrogatepass"): None for t in own + imputed})
        if set(keys) != set(tank.tag_keys):
            self._set_postings(slot, tank.tag_keys, keys)
            tank.tag_keys = keys

    # -- namespace sort values -------------------------------------------------------------------------
    def sort_value(self, slot: int, namespace: str) -> str | None:
        """The (lowercased) value ``slot`` sorts by for ``sortby=namespace``, or None."""
        archive = self.archives.get(slot)
        if archive is not None:
            value = namespace_value(archive.tags, namespace)
        else:
            tank = self.tanks.get(slot)
            if tank is None:
                return None
            value = namespace_value(tank.tags, namespace)
            if value is None and namespace in _DATE_NAMESPACES:
                _, imputed = unified_tags(tank.tags, [m.tags if m else None
                                                      for m in self.member_entries(tank)])
                for tag in imputed:
                    if tag.lower().startswith(namespace + ":"):
                        value = tag.split(":", 1)[1]
        return None if value is None else _lower(value)

    def _place(self, ns: NamespaceOrder, slot: int) -> None:
        value = self.sort_value(slot, ns.namespace) if self.ids[slot] is not None else None
        ns.keyed.discard(slot)
        ns.keyless.discard(slot)
        if ns.fallback is not None:
            ns.fallback.pop(slot, None)
        if value is None:
            if self.ids[slot] is not None and (slot in self.archives or slot in self.tanks):
                ns.keyless.add(slot)
            return
        try:
            ns.keyed.put(slot, (*namespace_key(value), self.ids[slot]))
        except NotKeyable:
            if ns.fallback is None:
                ns.fallback = {}
            ns.fallback[slot] = value

    def namespace_order(self, namespace: str) -> NamespaceOrder:
        """Values for ``namespace`` are computed on first use and then kept current."""
        ns = self.namespaces.get(namespace)
        if ns is not None:
            return ns
        ns = NamespaceOrder(namespace)
        pairs: list[tuple[Any, int]] = []
        keys: dict[str, Any] = {}  # many archives share a value (artists, series)
        for slots in (self.archives, self.tanks):
            for slot in slots:
                value = self.sort_value(slot, namespace)
                if value is None:
                    ns.keyless.add(slot)
                    continue
                try:
                    key = keys.get(value)
                    if key is None:
                        key = keys[value] = namespace_key(value)
                    pairs.append(((*key, self.ids[slot]), slot))
                except NotKeyable:
                    if ns.fallback is None:
                        ns.fallback = {}
                    ns.fallback[slot] = value
        ns.keyed = SortedSlots(pairs)
        self.namespaces[namespace] = ns
        return ns

    # -- counts -------------------------------------------------------------------------------------
    def total(self, grouped: bool) -> int:
        """``recordsTotal``: SCARD LRR_TANKGROUPED, or ZCARD LRR_TITLES minus the tanks."""
        if grouped:
            return len(self.grouped)
        return max(0, len(self.titles) - len(self.tanks))


def _toggle(group: set[int], slot: int, present: bool) -> None:
    if present:
        group.add(slot)
    else:
        group.discard(slot)


def namespace_value(tags: str | None, namespace: str) -> str | None:
    """``namespace_sort_value`` with a fast path for plain names (no regex syntax, no newline):
    the greedy ``.*K:(.*?)(,.*|$)`` is then the text after the last ``K:`` up to a comma."""
    if not tags:
        return None  # the pattern needs a ":" to match
    if _plain_name(namespace) and "\n" not in tags:
        marker = namespace + ":"
        i = tags.rfind(marker)
        if i < 0:
            return None
        i += len(marker)
        j = tags.find(",", i)
        value = tags[i:] if j < 0 else tags[i:j]
        return None if value == "zzzz" else value
    return namespace_sort_value(tags, namespace)


@lru_cache(maxsize=256)
def _plain_name(namespace: str) -> bool:
    """No regex syntax: letters, digits, ``_``, space and ``-`` all stand for themselves."""
    return bool(namespace) and all(c.isalnum() or c in "_ -" for c in namespace)


# ---- loading --------------------------------------------------------------------------------------------


async def _pause(reactor: Any) -> None:
    """Let the reactor serve other requests between chunks of a long job."""
    await deferLater(reactor, 0, lambda: None)


async def _pipelined(calls: Sequence[Deferred[Any]]) -> list[Any]:
    """Replies of commands sent together; a command that failed (a key of another type) gives
    None instead of failing the lot. A lost connection still raises."""
    results = await DeferredList(list(calls), consumeErrors=True)
    out = []
    for ok, value in results:
        if ok:
            out.append(value)
        elif value.check(StoreUnavailable):
            value.raiseException()
        else:
            out.append(None)
    return out


# Many hashes in one reply: a command per archive costs more in the client (a Deferred and a
# reply timer each) than Redis takes to answer, so a chunk is one script returning one JSON
# text. Keys of another type read as {}.
_HASHES_AS_JSON = """
local out = {}
for i, key in ipairs(KEYS) do
  local reply = redis.pcall('HGETALL', key)
  local fields = {}
  if type(reply) == 'table' and not reply.err then
    for j = 1, #reply, 2 do fields[reply[j]] = reply[j + 1] end
  end
  out[i] = fields
end
return cjson.encode(out)
"""


async def read_hashes(db: Any, keys: Sequence[str]) -> list[dict[str, Any]]:
    """The hashes at ``keys`` ({} where none), one script call; values that are not UTF-8
    (a raw-bytes file path) make the chunk fall back to plain pipelined ``HGETALL``s."""
    if not keys:
        return []
    reply = await db.eval(_HASHES_AS_JSON, list(keys), [])
    try:
        decoded = json.loads(reply)
    except (TypeError, ValueError):
        decoded = None
    if isinstance(decoded, list) and len(decoded) == len(keys):
        # cjson writes an empty table as {} and a table of n fields as an object.
        return [d if isinstance(d, dict) else {} for d in decoded]
    hashes = await _pipelined([db.hgetall(k) for k in keys])
    return [h if isinstance(h, dict) else {} for h in hashes]


async def _scan(db: Any, pattern: str) -> list[str]:
    found: set[str] = set()
    cursor = "0"
    while True:
        cursor, keys = await db.scan(cursor, pattern, 10000)
        found.update(as_text(k) for k in keys)
        if str(cursor) == "0":
            return sorted(found)


async def load_library(redis: RedisStore, reactor: Any) -> Library:
    """Read the whole database into a new ``Library``, a chunk per reactor turn."""
    main, search = redis.db(DB.MAIN), redis.db(DB.SEARCH)
    lib = Library()
    arc_ids = [k for k in await _scan(main, ARCHIVE_KEY_PATTERN)]
    tank_ids = [k for k in await _scan(main, _TANK_KEY_PATTERN) if TANK_ID_RE.match(k)]
    cat_ids = await _scan(main, _CATEGORY_KEY_PATTERN)
    grouped, new, untagged, titles = await _pipelined([
        search.smembers("LRR_TANKGROUPED"), search.smembers("LRR_NEW"),
        search.smembers("LRR_UNTAGGED"), search.zrange("LRR_TITLES", 0, -1),
    ])
    grouped = {as_text(x) for x in grouped or ()}
    new = {as_text(x) for x in new or ()}
    untagged = {as_text(x) for x in untagged or ()}
    title_of: dict[str, str] = {}
    for member in titles or ():
        text = as_text(member)
        cut = text.find("\x00")
        if cut >= 0:
            title_of.setdefault(text[cut + 1:], text)

    # Slots in id order, so the candidate order is settled before anything else.
    for arcid in arc_ids:
        lib.slot(arcid)
    for i in range(0, len(arc_ids), LOAD_CHUNK):
        chunk = arc_ids[i:i + LOAD_CHUNK]
        hashes = await read_hashes(main, chunk)
        for arcid, fields in zip(chunk, hashes):
            if not fields:
                continue
            entry = ArchiveEntry(arcid, fields)
            entry.tag_keys = lib.intern(entry.tag_keys)
            slot = lib.slot_of[arcid]
            lib.archives[slot] = entry
            for key in entry.tag_keys:
                members = lib.postings.get(key)
                if members is None:
                    lib.postings[key] = {slot}
                else:
                    members.add(slot)
            if arcid in grouped:
                lib.grouped.add(slot)
            if arcid in new:
                lib.new.add(slot)
            if arcid in untagged:
                lib.untagged.add(slot)
            if entry.completed:
                lib.completed.add(slot)
        await _pause(reactor)

    for i in range(0, len(tank_ids), LOAD_CHUNK // 4):
        chunk = tank_ids[i:i + LOAD_CHUNK // 4]
        calls = []
        for tank_id in chunk:
            calls += [main.type(tank_id), main.zrangebyscore(tank_id, -3, 0),
                      main.zrangebyscore(tank_id, 1, "+inf")]
        replies = await _pipelined(calls)
        for n, tank_id in enumerate(chunk):
            kind, meta, members = replies[3 * n:3 * n + 3]
            if as_text(kind) != "zset":
                continue
            tank = TankEntry(tank_id, meta or [], members or [])
            slot = lib.slot(tank_id)
            lib.tanks[slot] = tank
            lib._set_members(slot, [], tank.members)
            if tank_id in grouped:
                lib.grouped.add(slot)
        await _pause(reactor)
    for slot in list(lib.tanks):
        lib.reindex_tank(slot)

    if cat_ids:
        replies = await _pipelined([main.hgetall(c) for c in cat_ids])
        for cat_id, fields in zip(cat_ids, replies):
            if fields and isinstance(fields, dict):
                lib.categories[cat_id] = Category(fields)

    # Title order: keys in chunks (the costly part), then one sort.
    pairs: list[tuple[Any, int]] = []
    items = [(lib.slot_of[i], m) for i, m in title_of.items()
             if i in lib.slot_of and (lib.slot_of[i] in lib.archives or lib.slot_of[i] in lib.tanks)]
    for i in range(0, len(items), LOAD_CHUNK * 5):
        for slot, member in items[i:i + LOAD_CHUNK * 5]:
            lib.titles[slot] = member
            lib.title_slot[member.encode("utf-8", "surrogatepass")] = slot
            pairs.append((_title_key(member), slot))
        await _pause(reactor)
    lib.title_order = SortedSlots(pairs)
    natural_string_key("warm")  # builds the Unicode word table once, now rather than mid-query
    # Slots allocated for ids that turned out not to be archives (foreign 40-char keys) or
    # unknown tank members are kept: they cost a list cell and match nothing.
    lib.loaded_at = time.time()
    return lib


# ---- the service ------------------------------------------------------------------------------------------


class SearchIndex(service.Service):
    """Loads the ``Library`` at start, follows the change feed, answers ``sync()`` barriers."""

    name = "search-index"  # type: ignore[assignment]

    def __init__(self, redis: RedisStore, reactor: Any,
                 ready: Callable[[], Deferred[None]] | None = None) -> None:
        self._redis = redis
        self._reactor = reactor
        #: Awaited before the first connection (tap.py sets the store's readiness here).
        self.ready = ready
        self.library: Library | None = None
        self._barrier = barrier_channel()
        self._feed: ChangeFeed | None = None
        self._queue: list[tuple[str, str]] = []
        self._reload_wanted = False
        self._draining = False
        self._waiters: dict[str, Deferred[None]] = {}
        self._nonce = 0
        self._loaded_waiters: list[Deferred[None]] = []
        self.load_seconds: float | None = None

    # -- life cycle ----------------------------------------------------------------------------------
    def startService(self) -> None:
        super().startService()
        Deferred.fromCoroutine(self._start()).addErrback(
            lambda f: log.failure("Search index start-up failed", f))

    async def _start(self) -> None:
        if self.ready is not None:
            await self.ready()
        if not self.running:
            return
        self._feed = ChangeFeed(self._redis.address, [CHANGES_CHANNEL, self._barrier],
                                self._message, self._connected, self._reactor)
        self._feed.start()

    def stopService(self) -> Deferred[None] | None:
        super().stopService()
        feed, self._feed = self._feed, None
        for d in list(self._waiters.values()):
            if not d.called:
                d.callback(None)
        self._waiters.clear()
        return feed.stop() if feed is not None else None

    def when_loaded(self) -> Deferred[None]:
        """Fires once the first load is done (tests, bench)."""
        d: Deferred[None] = Deferred()
        if self.library is not None:
            d.callback(None)
        else:
            self._loaded_waiters.append(d)
        return d

    # -- notices -------------------------------------------------------------------------------------
    def _connected(self) -> None:
        # Notices may have been missed while nobody listened: read everything again.
        self._reload_wanted = True
        self._kick()

    def _message(self, channel: str, message: str) -> None:
        if channel == self._barrier:
            self._queue.append(("barrier", message))
        elif message == RELOAD_ALL:
            self._reload_wanted = True
        else:
            self._queue.append(("id", message))
        self._kick()

    def _kick(self) -> None:
        if not self._draining and self.running:
            self._draining = True
            Deferred.fromCoroutine(self._drain()).addErrback(
                lambda f: log.failure("Search index update failed", f))

    async def _drain(self) -> None:
        """Apply queued notices in order: runs of ids are read in one pipeline; a barrier is
        answered once everything queued before it is applied."""
        try:
            while self.running and (self._reload_wanted or self._queue):
                if self._reload_wanted:
                    self._reload_wanted = False
                    # Notices queued so far are covered by the reload; barriers wait for it.
                    barriers = [value for kind, value in self._queue if kind == "barrier"]
                    self._queue = []
                    await self._reload()
                    self._release(barriers)
                    continue
                if self._queue[0][0] == "barrier":
                    self._release([self._queue.pop(0)[1]])
                    continue
                batch: list[str] = []
                while self._queue and self._queue[0][0] == "id" and len(batch) < 500:
                    value = self._queue.pop(0)[1]
                    if value not in batch:
                        batch.append(value)
                if self.library is not None:
                    try:
                        await apply_changes(self.library, self._redis, batch)
                    except (StoreUnavailable, StoreError):
                        log.warn("Search index: could not read changes; reloading")
                        self._reload_wanted = True
        finally:
            self._draining = False

    async def _reload(self) -> None:
        started = time.monotonic()
        while self.running:
            try:
                library = await load_library(self._redis, self._reactor)
                break
            except (StoreUnavailable, StoreError) as exc:
                log.warn("Search index load failed ({why}); retrying", why=str(exc))
                await deferLater(self._reactor, 0.5, lambda: None)
        else:
            return
        first = self.library is None
        self.library = library
        self.load_seconds = time.monotonic() - started
        if first:
            log.info("Search index loaded: {n} archives, {t} tanks in {s:.1f} s",
                     n=len(library.archives), t=len(library.tanks), s=self.load_seconds)
        waiting, self._loaded_waiters = self._loaded_waiters, []
        for d in waiting:
            d.callback(None)

    def _release(self, nonces: Iterable[str]) -> None:
        for nonce in nonces:
            d = self._waiters.pop(nonce, None)
            if d is not None and not d.called:
                d.callback(None)

    # -- barriers ------------------------------------------------------------------------------------
    async def sync(self, timeout: float = 1.0) -> None:
        """Wait until every change published before this call is applied here.

        Publishes a nonce on this process's barrier channel: Redis delivers it after every
        notice published earlier, so once it is processed, a write the caller saw complete
        (here or in another process) is visible. Gives up quietly after ``timeout``.
        """
        if self._feed is None or not self._feed.subscribed or self.library is None:
            return
        self._nonce += 1
        nonce = str(self._nonce)
        d: Deferred[None] = Deferred()
        self._waiters[nonce] = d
        timer = self._reactor.callLater(timeout, self._release, [nonce])
        try:
            await publish(self._redis, self._barrier, nonce)
            await d
        except (StoreUnavailable, StoreError):
            self._waiters.pop(nonce, None)
        finally:
            if timer.active():
                timer.cancel()


# ---- applying notices -----------------------------------------------------------------------------------


async def apply_changes(lib: Library, redis: RedisStore, ids: Sequence[str]) -> None:
    """Re-read the named archives, tanks and categories and patch ``lib`` with what is there."""
    archives = [i for i in ids if len(i) == 40]  # any 40-character key, as the original
    tanks = [i for i in ids if TANK_ID_RE.match(i)]
    cats = [i for i in ids if i.startswith("SET_") and len(i) == 14]
    follow: list[str] = []
    if archives:
        follow += await _apply_archives(lib, redis, archives)
    tanks += [t for t in follow if t.startswith("TANK_") and t not in tanks]
    cats += [c for c in follow if c.startswith("SET_") and c not in cats]
    if tanks:
        await _apply_tanks(lib, redis, tanks)
    if cats:
        await _apply_categories(lib, redis, cats)


async def _apply_archives(lib: Library, redis: RedisStore, ids: Sequence[str]) -> list[str]:
    main, search = redis.db(DB.MAIN), redis.db(DB.SEARCH)
    calls = []
    for arcid in ids:
        calls += [main.hgetall(arcid), search.sismember("LRR_TANKGROUPED", arcid),
                  search.sismember("LRR_NEW", arcid), search.sismember("LRR_UNTAGGED", arcid)]
    replies = await _pipelined(calls)
    present: list[tuple[str, dict[str, Any], bool, bool, bool]] = []
    follow: list[str] = []
    for n, arcid in enumerate(ids):
        fields, grouped, new, untagged = replies[4 * n:4 * n + 4]
        if not fields or not isinstance(fields, dict):
            slot = lib.slot_of.get(arcid)
            if slot is not None:
                follow += [lib.ids[t] or "" for t in lib.tanks_of.get(slot, ())]
                follow += [c for c, cat in lib.categories.items()
                           if not cat.search and arcid in cat.archives]
            lib.drop(arcid)
            continue
        present.append((arcid, fields, bool(int(grouped or 0)), bool(int(new or 0)),
                        bool(int(untagged or 0))))
    if not present:
        return follow
    # Which title member does LRR_TITLES hold for each? The one the store writes, or the one
    # this index knew (a database written by the original may spell it differently).
    checks = []
    candidates = []
    for arcid, fields, *_ in present:
        computed = title_member(as_text(fields.get("title")), arcid)
        slot = lib.slot_of.get(arcid)
        known = lib.titles.get(slot) if slot is not None else None
        options = [computed] + ([known] if known and known != computed else [])
        candidates.append(options)
        # A member from an undecodable title is raw bytes in Redis (text with surrogates here).
        checks += [search.zscore("LRR_TITLES", wire_value(option)) for option in options]
    scores = await _pipelined(checks)
    k = 0
    for (arcid, fields, grouped, new, untagged), options in zip(present, candidates):
        title = None
        for option in options:
            if scores[k] is not None and title is None:
                title = option
            k += 1
        lib.put_archive(ArchiveEntry(arcid, fields), grouped, new, untagged, title)
    return follow


async def _apply_tanks(lib: Library, redis: RedisStore, ids: Sequence[str]) -> None:
    main, search = redis.db(DB.MAIN), redis.db(DB.SEARCH)
    calls = []
    for tank_id in ids:
        calls += [main.type(tank_id), main.zrangebyscore(tank_id, -3, 0),
                  main.zrangebyscore(tank_id, 1, "+inf"),
                  search.sismember("LRR_TANKGROUPED", tank_id)]
    replies = await _pipelined(calls)
    found: list[tuple[TankEntry, bool]] = []
    affected: set[str] = set()
    for n, tank_id in enumerate(ids):
        kind, meta, members, grouped = replies[4 * n:4 * n + 4]
        slot = lib.slot_of.get(tank_id)
        old = lib.tanks.get(slot) if slot is not None else None
        if old is not None:
            affected.update(old.members)
        if as_text(kind) != "zset":
            lib.drop(tank_id)
            continue
        entry = TankEntry(tank_id, meta or [], members or [])
        affected.update(entry.members)
        found.append((entry, bool(int(grouped or 0))))
    # Members join or leave LRR_TANKGROUPED with the tank's changes; ask Redis which they are.
    members = sorted(a for a in affected if a in lib.slot_of)
    checks = [search.sismember("LRR_TANKGROUPED", a) for a in members]
    checks += [search.zscore("LRR_TITLES", wire_value(title_member(e.name, e.id)))
               for e, _ in found]
    replies = await _pipelined(checks)
    for arcid, flag in zip(members, replies[:len(members)]):
        slot = lib.slot_of[arcid]
        if slot in lib.archives:
            _toggle(lib.grouped, slot, bool(int(flag or 0)))
    for (entry, grouped), score in zip(found, replies[len(members):]):
        slot = lib.slot_of.get(entry.id)
        title = title_member(entry.name, entry.id) if score is not None else (
            lib.titles.get(slot) if slot is not None else None)
        lib.put_tank(entry, grouped, title)


async def _apply_categories(lib: Library, redis: RedisStore, ids: Sequence[str]) -> None:
    main = redis.db(DB.MAIN)
    calls = []
    for cat_id in ids:
        calls += [main.type(cat_id), main.hgetall(cat_id)]
    replies = await _pipelined(calls)
    for n, cat_id in enumerate(ids):
        kind, fields = replies[2 * n:2 * n + 2]
        if as_text(kind) == "hash" and fields and isinstance(fields, dict):
            lib.categories[cat_id] = Category(fields)
        else:
            lib.categories.pop(cat_id, None)


def iter_archives(lib: Library) -> Iterator[ArchiveEntry]:
    """Every archive in id order (``/api/archives``)."""
    archives = lib.archives
    for slot in lib.by_id.slots:
        entry = archives.get(slot)
        if entry is not None:
            yield entry


__all__ = [
    "ArchiveEntry", "Category", "Library", "LineBlob", "NamespaceOrder", "SearchIndex",
    "SortedSlots", "TankEntry", "apply_changes", "iter_archives", "json_body", "load_library",
    "namespace_value",
]
