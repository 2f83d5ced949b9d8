"""Search semantics (LRR-NOTES §4.2–§4.4) on a small fixed library, and the index's coherence."""

from __future__ import annotations

import time
from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater

from lrrd.search.engine import SearchQuery, filter_slots, ids_of, run_search
from lrrd.search.index import (
    ArchiveEntry, LineBlob, SearchIndex, json_body, load_library, namespace_key,
)
from lrrd.search.natural import natural_string_key
from lrrd.store.archives import ArchiveStore, archive_json
from lrrd.store.redis import RedisAddress, RedisStore
from lrrd.store.tankoubons import TankoubonStore
from tests.fixtures.app import RedisTestCase
from tests.fixtures.search_library import A, B, C, D, E, F, G, H, K, build_library


def d(coro: Any) -> Deferred[Any]:
    return Deferred.fromCoroutine(coro)


class EngineTests(RedisTestCase):
    """Each rule with the ids it must give, over the fixture library."""

    def setUp(self) -> Deferred[None]:
        result = super().setUp()
        result.addCallback(lambda _: d(self._load()))
        return result

    async def _load(self) -> None:
        self.fx = await build_library(self.redis, __import__("pathlib").Path(self.mktemp()))
        self.T = self.fx.tank
        self.lib = await load_library(self.redis, reactor)

    async def ids(self, **params: Any) -> list[str]:
        outcome = await run_search(self.lib, SearchQuery(start=-1, **params))
        return ids_of(self.lib, outcome.slots)

    def check(self, expected: list[str], **params: Any) -> Deferred[None]:
        async def run() -> None:
            self.assertEqual(await self.ids(**params), expected, params)
        return d(run())

    def test_default_grouped_title_order(self) -> Deferred[None]:
        """No filter: tanks stand for their members, natural title order, untitled K dropped."""
        async def run() -> None:
            outcome = await run_search(self.lib, SearchQuery(start=-1))
            self.assertEqual(ids_of(self.lib, outcome.slots), [A, B, C, self.T, E, D, F])
            self.assertEqual((outcome.total, outcome.filtered), (8, 7))
        return d(run())

    def test_ungrouped(self) -> Deferred[None]:
        """groupby_tanks off: archives only, members included; total = titles − tanks."""
        async def run() -> None:
            outcome = await run_search(self.lib, SearchQuery(start=-1, grouped=False))
            self.assertEqual(ids_of(self.lib, outcome.slots), [A, B, C, E, D, G, H, F])
            self.assertEqual(outcome.total, 8)
        return d(run())

    def test_title_desc(self) -> Deferred[None]:
        """order=desc reverses the natural title order."""
        return self.check([F, D, E, self.T, C, B, A], desc=True)

    def test_commas_only_separate(self) -> Deferred[None]:
        """A space is part of the term; commas split terms that all must match."""
        return d(self._commas())

    async def _commas(self) -> None:
        self.assertEqual(await self.ids(filter="blue sky"), [A, B, C])
        self.assertEqual(await self.ids(filter="blue, sky"), [A, B, C])
        self.assertEqual(await self.ids(filter="blue"), [A, B, C, E])
        self.assertEqual(await self.ids(filter="sky blue"), [])

    def test_exact(self) -> Deferred[None]:
        """Quotes and a trailing $ are exact: whole title, or the tag's own index."""
        return d(self._exact())

    async def _exact(self) -> None:
        for text in ('"blue sky"', "blue sky$", '"blue sky"$'):
            self.assertEqual(await self.ids(filter=text), [A], text)
        self.assertEqual(await self.ids(filter="artist:aoi$"), [B, C])
        self.assertEqual(await self.ids(filter="artist:aoi"), [B, C, F])
        # No INDEX_artist:ao: an exact token falls back to the prefix match.
        self.assertEqual(await self.ids(filter="artist:ao$"), [B, C, F])

    def test_negation(self) -> Deferred[None]:
        """-term removes its matches; a negated term that matches nothing changes nothing."""
        return d(self._negation())

    async def _negation(self) -> None:
        self.assertEqual(await self.ids(filter="-artist:aoi"), [A, self.T, E, D])
        self.assertEqual(await self.ids(filter="-nothing at all"), [A, B, C, self.T, E, D, F])
        self.assertEqual(await self.ids(filter='"-artist:aoi"'), [])

    def test_wildcards(self) -> Deferred[None]:
        """_ and ? match one character, % and * any run."""
        return d(self._wildcards())

    async def _wildcards(self) -> None:
        self.assertEqual(await self.ids(filter="artist:a_i"), [B, C, F])
        self.assertEqual(await self.ids(filter="artist:a?i$"), [B, C, F])
        self.assertEqual(await self.ids(filter="artist:%neko"), [A])
        self.assertEqual(await self.ids(filter="artist:*neko"), [A])
        self.assertEqual(await self.ids(filter="red [special]"), [D])

    def test_namespace_prefix_vs_substring(self) -> Deferred[None]:
        """A namespaced term is a prefix of namespace:value; a bare one a substring."""
        return d(self._prefix())

    async def _prefix(self) -> None:
        self.assertEqual(await self.ids(filter="male:very cool"), [A, C])
        self.assertEqual(await self.ids(filter="very cool"), [A, B, C])
        self.assertEqual(await self.ids(filter="*male:very cool"), [A, B, C])
        self.assertEqual(await self.ids(filter="kuro"), [A])

    def test_titles_and_id_quirk(self) -> Deferred[None]:
        """Terms match titles too, and a non-exact term also matches characters of the id."""
        return d(self._titles())

    async def _titles(self) -> None:
        self.assertEqual(await self.ids(filter="ocean_blue"), [E])
        self.assertEqual(await self.ids(filter="d00dfeed"), [D])
        self.assertEqual(await self.ids(filter='"d00dfeed"'), [])

    def test_numeric(self) -> Deferred[None]:
        """pages:/read: compare pagecount/progress (missing = 0); tanks never match."""
        return d(self._numeric())

    async def _numeric(self) -> None:
        self.assertEqual(await self.ids(filter="pages:>15"), [A, C])
        self.assertEqual(await self.ids(filter="read:>0"), [A, B])
        self.assertEqual(await self.ids(filter="pages:10"), [B])
        self.assertEqual(await self.ids(filter="pages:<=9"), [E, D])
        self.assertEqual(await self.ids(filter="pages:<=9", grouped=False), [E, D, G, H])
        self.assertEqual(await self.ids(filter="-read:0"), [A, B, self.T])

    def test_categories(self) -> Deferred[None]:
        """Static: its ids (tanks too); dynamic: its predicate appended; unknown: ignored."""
        return d(self._categories())

    async def _categories(self) -> None:
        self.assertEqual(await self.ids(category=self.fx.static), [A, self.T])
        self.assertEqual(await self.ids(category=self.fx.dynamic), [B, C, F])
        self.assertEqual(await self.ids(category=self.fx.dynamic, filter="-zeta"), [B, C])
        self.assertEqual(await self.ids(category="SET_9999999999"), [A, B, C, self.T, E, D, F])

    def test_tanks_replace_members(self) -> Deferred[None]:
        """Grouped, a member's tag finds the tank (imputed tags); ungrouped, the member."""
        return d(self._tanks())

    async def _tanks(self) -> None:
        self.assertEqual(await self.ids(filter="tanktag"), [self.T])
        self.assertEqual(await self.ids(filter="tanktag", grouped=False), [G])
        self.assertEqual(await self.ids(filter="owntag"), [self.T])
        self.assertEqual(await self.ids(filter="owntag", grouped=False), [])
        self.assertEqual(await self.ids(filter="my tank"), [self.T])

    def test_flags(self) -> Deferred[None]:
        """newonly (tanks with a new member), untaggedonly, hidecompleted (> 85 % read)."""
        return d(self._flags())

    async def _flags(self) -> None:
        self.assertEqual(await self.ids(newonly=True), [C, self.T, D])
        self.assertEqual(await self.ids(untaggedonly=True), [E, D])
        self.assertEqual(await self.ids(hidecompleted=True), [B, C, self.T, E, D, F])

    def test_sort_lastread(self) -> Deferred[None]:
        """lastread drops never-read items; asc is newest first; tanks take their max."""
        return d(self._lastread())

    async def _lastread(self) -> None:
        self.assertEqual(await self.ids(sortby="lastread"), [B, self.T, A])
        self.assertEqual(await self.ids(sortby="lastread", desc=True), [A, self.T, B])

    def test_sort_namespace(self) -> Deferred[None]:
        """A namespace sorts by its last value naturally; keyless ids last, by id, both orders."""
        return d(self._namespace())

    async def _namespace(self) -> None:
        self.assertEqual(await self.ids(sortby="artist"), [B, F, A, C, K, self.T, D, E])
        self.assertEqual(await self.ids(sortby="artist", desc=True), [C, A, F, B, K, self.T, D, E])
        # The tank has no date of its own: it takes its members' latest.
        self.assertEqual(await self.ids(sortby="date_added"), [self.T, A, C, B, K, D, E, F])
        self.assertEqual(await self.ids(sortby="nonexistent"), [K, self.T, A, B, C, D, E, F])
        self.assertEqual(await self.ids(sortby="(unbalanced"), [K, self.T, A, B, C, D, E, F])
        self.assertEqual(await self.ids(sortby="artist", filter="aoi"), [B, F, C])

    def test_start_and_pagesize(self) -> Deferred[None]:
        """start is an offset into the results, -1 all of them; pagesize bounds the page."""
        async def run() -> None:
            page = await run_search(self.lib, SearchQuery(start=1, pagesize=2))
            self.assertEqual(ids_of(self.lib, page.slots), [B, C])
            self.assertEqual(page.filtered, 7)
            page = await run_search(self.lib, SearchQuery(start=6, pagesize=2))
            self.assertEqual(ids_of(self.lib, page.slots), [F])
            page = await run_search(self.lib, SearchQuery(start=50, pagesize=2))
            self.assertEqual(page.slots, [])
        return d(run())

    def test_ten_thousand_terms(self) -> Deferred[None]:
        """A 10,000-term filter is evaluated (no early stop: all negated) in reasonable time."""
        async def run() -> None:
            started = time.monotonic()
            text = ",".join(f"-zz{i}" for i in range(10_000))
            self.assertEqual(await self.ids(filter=text), [A, B, C, self.T, E, D, F])
            self.assertLess(time.monotonic() - started, 20)
        return d(run())

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.text(alphabet='ab:_%*?"$-, []^\\é\x00', max_size=30))
    def test_any_filter(self, text: str) -> None:
        """No filter makes the engine raise."""
        result = filter_slots(self.lib, SearchQuery(filter=text))
        coro = result.__await__()
        try:
            while True:
                next(coro)
        except StopIteration:
            pass


class PureTests(RedisTestCase.__mro__[1]):  # trial's TestCase, no Redis
    def test_entry_json_is_archive_json(self) -> None:
        """The cached archive JSON is byte for byte the encoding of archive_json."""
        fields = {"name": "n", "title": " ", "tags": 'a,"b"', "file": "/x/y.CBZ",
                  "isnew": "true", "pagecount": "3", "toc": '{"2":"two","1":"one"}'}
        self.assertEqual(ArchiveEntry(A, fields).json, json_body(archive_json(A, fields)))

    def test_line_blob(self) -> None:
        """Glob scans over the blob agree with Redis's matcher, anchors and wildcards included."""
        blob = LineBlob([b"artist:aoi", b"artist:aoi2", b"female:x", b"male:x", b"a?b"])
        self.assertEqual(blob.match("artist:aoi*"), [b"artist:aoi", b"artist:aoi2"])
        self.assertEqual(blob.match("*male:x*"), [b"female:x", b"male:x"])
        self.assertEqual(blob.match("male:x*"), [b"male:x"])
        self.assertEqual(blob.match("*a\\?b*"), [b"a?b"])
        self.assertEqual(blob.match("*"), [b"artist:aoi", b"artist:aoi2", b"female:x", b"male:x",
                                           b"a?b"])
        self.assertEqual(blob.match("*\n*"), [])

    def test_namespace_key(self) -> None:
        """Digit values get natural_string_key's own encoding."""
        for value in ("0", "0012", "1795821965", "9" * 30, "abc"):
            self.assertEqual(namespace_key(value), natural_string_key(value))


class CoherenceTests(RedisTestCase):
    """Two index services on one Redis: a write through either is seen by both."""

    def test_second_process_sees_tag_edit_within_a_second(self) -> Deferred[None]:
        """A tag edit made through the store reaches another index in under 1 s."""
        return d(self._coherence())

    async def _index(self) -> SearchIndex:
        redis = RedisStore(RedisAddress.parse(self.redis_server.url))
        redis.connect()
        self.addCleanup(lambda: d(redis.disconnect()))
        await redis.wait_connected(reactor)
        index = SearchIndex(redis, reactor)
        index.startService()
        self.addCleanup(index.stopService)
        await index.when_loaded()
        return index

    async def _coherence(self) -> None:
        await build_library(self.redis, __import__("pathlib").Path(self.mktemp()))
        first, second = await self._index(), await self._index()
        store = ArchiveStore(self.redis)
        started = time.monotonic()
        await store.set_tags(A, "brand new tag", append=True)
        while True:
            lib = second.library
            assert lib is not None
            if await self._found(lib, "brand new tag") == [A]:
                break
            self.assertLess(time.monotonic() - started, 1.0)
            await deferLater(reactor, 0.01, lambda: None)
        # The barrier: after sync() the first index has it too, without polling.
        await first.sync()
        assert first.library is not None
        self.assertEqual(await self._found(first.library, "brand new tag"), [A])
        # Tank membership changes regroup members in both.
        await TankoubonStore(self.redis).remove_archive(
            ids_of(first.library, [s for s in first.library.tanks])[0], H)
        await second.sync()
        assert second.library is not None
        self.assertEqual(await self._found(second.library, "other"), [H])
        # Deleting an archive drops it.
        await store.delete(B)
        await second.sync()
        self.assertEqual(await self._found(second.library, "artist:aoi$"), [C])

    async def _found(self, lib: Any, text: str) -> list[str]:
        return ids_of(lib, (await run_search(lib, SearchQuery(filter=text, start=-1))).slots)
