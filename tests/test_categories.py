"""Categories over real HTTP and a real Redis: every rule of LRR-NOTES §9.1, bodies as the golden files."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import Deferred

from lrrd.api.errors import xml_escape
from lrrd.store.categories import CategoryStore, category_json, pinned_flag
from lrrd.store.redis import DB
from tests.fixtures.app import ApiTestCase

A = "a" * 40
B = "b" * 40
MISSING = "c" * 40


def d(coro: Any) -> Deferred[Any]:
    return Deferred.fromCoroutine(coro)


def op(operation: str, error: str = "", message: str = "") -> dict[str, Any]:
    """A ``render_api_response`` body."""
    return {"operation": operation, "error": xml_escape(error), "success": 0 if error else 1,
            "successMessage": message}


class CategoryJsonTests(ApiTestCase.__mro__[-2]):  # a plain trial TestCase
    def test_category_json(self) -> None:
        """pinned becomes an int; dynamic categories list no archives; junk lists read empty."""
        self.assertEqual(category_json("SET_0000000001", {
            "name": "n", "search": "", "pinned": "1", "archives": json.dumps([A]),
            "last_used": "5"}),
            {"archives": [A], "id": "SET_0000000001", "name": "n", "pinned": 1, "search": ""})
        self.assertEqual(category_json("SET_0000000001", {
            "name": "n", "search": "x", "archives": json.dumps([A])})["archives"], [])
        self.assertEqual(category_json("SET_0000000001", {"archives": "{junk"})["archives"], [])
        self.assertEqual([pinned_flag(v) for v in (None, "", "0", "1", "true")], [0, 0, 0, 1, 1])


class CategoryApiTests(ApiTestCase):
    """The ten category operations."""

    def setUp(self) -> Deferred[None]:
        result = super().setUp()
        result.addCallback(lambda _: d(self._fixtures()))
        return result

    async def _fixtures(self) -> None:
        self.store = CategoryStore(self.redis)
        archives = self.services().archives
        await archives.create(A, "/lib/Blue.cbz", 10, name="Blue")
        await archives.create(B, "/lib/q.cbz", 10, name="q")
        await archives.set_title(B, 'Say "hi" & <bye>')
        # The first start created the Favorites category and linked the bookmark to it.
        cats = await self.store.list_all()
        self.assertEqual(len(cats), 1)
        self.favorites = cats[0]["id"]

    async def put(self, path: str, **kwargs: Any) -> Any:
        return await self.request("PUT", path, auth=True, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> Any:
        return await self.request("DELETE", path, auth=True, **kwargs)

    async def create(self, name: str, **params: str) -> str:
        response = await self.put("/api/categories", params={"name": name, **params})
        self.assertEqual(response.status, 200, response.body)
        return response.json["category_id"]

    async def raw(self, cat_id: str) -> dict[str, str]:
        return await self.redis.db(DB.MAIN).hgetall(cat_id)

    async def cache_created(self) -> str | None:
        return await self.redis.db(DB.SEARCH).hget("LRR_SEARCHCACHE", "created")

    def test_create_and_list(self) -> Deferred[None]:
        """Create stores the original's hash; the list carries pinned as an int, sorted by id."""
        async def run() -> None:
            response = await self.put("/api/categories", params={"name": "Golden Cat"})
            self.assertEqual(response.status, 200)
            cat = response.json["category_id"]
            self.assertEqual(response.json, {"category_id": cat, "operation": "create_category",
                                             "success": 1})
            self.assertRegex(cat, r"^SET_\d{10}$")
            self.assertEqual(await self.raw(cat), {"name": "Golden Cat", "search": "",
                                                   "pinned": "0", "archives": "[]"})
            dynamic = await self.create("Dynamic Cat", search="artist:aoi", pinned="true")
            self.assertEqual((await self.raw(dynamic))["pinned"], "1")
            self.assertNotEqual(cat, dynamic)
            listed = (await self.get("/api/categories")).json
            self.assertEqual([c["id"] for c in listed], sorted([self.favorites, cat, dynamic]))
            self.assertIn({"archives": [], "id": dynamic, "name": "Dynamic Cat", "pinned": 1,
                           "search": "artist:aoi"}, listed)
            self.assertIn({"archives": [], "id": cat, "name": "Golden Cat", "pinned": 0,
                           "search": ""}, listed)
            for pinned, stored in (("false", "0"), ("0", "0"), ("1", "1"), ("yes", "1")):
                made = await self.create("P", pinned=pinned)
                self.assertEqual((await self.raw(made))["pinned"], stored, pinned)
        return d(run())

    def test_create_errors(self) -> Deferred[None]:
        """An empty or absent name is a 400 render_api_response; creation needs the key."""
        async def run() -> None:
            for params in ({}, {"name": ""}):
                response = await self.put("/api/categories", params=params)
                self.assertEqual((response.status, response.json),
                                 (400, op("create_category", "Category name not specified.")))
            anonymous = await self.request("PUT", "/api/categories", params={"name": "x"})
            self.assertEqual(anonymous.status, 401)
        return d(run())

    def test_create_form_body(self) -> Deferred[None]:
        """The spec's form-encoded body works as well as query parameters."""
        async def run() -> None:
            response = await self.put("/api/categories", data={"name": "Form", "search": "x:y"})
            self.assertEqual(response.status, 200, response.body)
            cat = (await self.get("/api/categories/" + response.json["category_id"])).json
            self.assertEqual((cat["name"], cat["search"]), ("Form", "x:y"))
            body = ('--XyZ\r\nContent-Disposition: form-data; name="name"\r\n\r\n'
                    'Multi é\r\n--XyZ--\r\n').encode()
            multi = await self.put("/api/categories", data=body, headers={
                "Content-Type": "multipart/form-data; boundary=XyZ"})
            self.assertEqual(multi.status, 200, multi.body)
            cat = (await self.get("/api/categories/" + multi.json["category_id"])).json
            self.assertEqual(cat["name"], "Multi é")
        return d(run())

    def test_get(self) -> Deferred[None]:
        """GET gives the object; an unknown id is a 400 JSON (not the original's 500)."""
        async def run() -> None:
            cat = await self.create("Golden Cat")
            response = await self.get("/api/categories/" + cat)
            self.assertEqual((response.status, response.json), (200, {
                "archives": [], "id": cat, "name": "Golden Cat", "pinned": 0, "search": ""}))
            missing = await self.get("/api/categories/SET_0000000000")
            self.assertEqual((missing.status, missing.json),
                             (400, op("get_category", "The given category does not exist.")))
            short = await self.get("/api/categories/SET_1")
            self.assertEqual(short.status, 400)
            self.assertEqual(short.json["status"], 400)
        return d(run())

    def test_update(self) -> Deferred[None]:
        """Empty name/search fall back (a predicate cannot be cleared); omitting pinned unpins."""
        async def run() -> None:
            cat = await self.create("Tmp Golden", search="artist:aoi", pinned="1")
            response = await self.put(f"/api/categories/{cat}",
                                      params={"name": "Tmp Golden 2", "pinned": "true"})
            self.assertEqual((response.status, response.json), (200, {
                "category_id": cat, "operation": "update_category", "success": 1}))
            self.assertEqual(await self.raw(cat), {"name": "Tmp Golden 2", "search": "artist:aoi",
                                                   "pinned": "1", "archives": "[]"})
            await self.put(f"/api/categories/{cat}", params={"search": ""})
            after = (await self.get(f"/api/categories/{cat}")).json
            self.assertEqual((after["name"], after["search"], after["pinned"]),
                             ("Tmp Golden 2", "artist:aoi", 0))
            await self.put(f"/api/categories/{cat}", params={"search": "female:x"})
            self.assertEqual((await self.raw(cat))["search"], "female:x")
            missing = await self.put("/api/categories/SET_0000000000", params={"name": "x"})
            self.assertEqual((missing.status, missing.json),
                             (400, op("update_category", "The given category does not exist.")))
        return d(run())

    def test_delete(self) -> Deferred[None]:
        """Delete answers 200 even for an unknown id and unlinks the bookmark it held."""
        async def run() -> None:
            cat = await self.create("Tmp")
            self.assertEqual((await self.put(f"/api/categories/bookmark_link/{cat}")).status, 200)
            response = await self.delete(f"/api/categories/{cat}")
            self.assertEqual((response.status, response.json), (200, op("delete_category")))
            self.assertEqual(await self.raw(cat), {})
            self.assertEqual((await self.get("/api/categories/bookmark_link")).json["category_id"],
                             "")
            again = await self.delete(f"/api/categories/{cat}")
            self.assertEqual((again.status, again.json), (200, op("delete_category")))
            # Deleting another category leaves the link alone.
            await self.put(f"/api/categories/bookmark_link/{self.favorites}")
            other = await self.create("Other")
            await self.delete(f"/api/categories/{other}")
            self.assertEqual((await self.get("/api/categories/bookmark_link")).json["category_id"],
                             self.favorites)
            self.assertEqual((await self.delete("/api/categories/SET_1")).status, 400)
        return d(run())

    def test_add_and_remove(self) -> Deferred[None]:
        """Add appends once (golden message), invalidates the search cache; remove takes it out."""
        async def run() -> None:
            cat = await self.create("Tmp Golden 2")
            await self.redis.db(DB.SEARCH).hset("LRR_SEARCHCACHE", "some-query", "[1]")
            await self.redis.db(DB.SEARCH).hset("LRR_SEARCHCACHE", "created", "1")
            response = await self.put(f"/api/categories/{cat}/{A}")
            self.assertEqual((response.status, response.json), (200, op(
                "add_to_category", message="Added &quot;Blue&quot; to category "
                                           "&quot;Tmp Golden 2&quot;!")))
            self.assertEqual(await self.redis.db(DB.SEARCH).hkeys("LRR_SEARCHCACHE"), ["created"])
            self.assertNotEqual(await self.cache_created(), "1")
            again = await self.put(f"/api/categories/{cat}/{A}")
            self.assertEqual(again.status, 200)
            await self.put(f"/api/categories/{cat}/{B}")
            self.assertEqual(json.loads((await self.raw(cat))["archives"]), [A, B])
            self.assertEqual((await self.get(f"/api/categories/{cat}")).json["archives"], [A, B])
            removed = await self.delete(f"/api/categories/{cat}/{A}")
            self.assertEqual((removed.status, removed.json), (200, op(
                "remove_from_category", message="Removed &quot;Blue&quot; from category "
                                                "&quot;Tmp Golden 2&quot;!")))
            self.assertEqual((await self.get(f"/api/categories/{cat}")).json["archives"], [B])
            # Removing an id that is not there still succeeds; XML-escaping of titles.
            absent = await self.delete(f"/api/categories/{cat}/{A}")
            self.assertEqual(absent.status, 200)
            escaped = await self.delete(f"/api/categories/{cat}/{B}")
            self.assertEqual(escaped.json["successMessage"],
                             "Removed &quot;Say &quot;hi&quot; &amp; &lt;bye&gt;&quot; from "
                             "category &quot;Tmp Golden 2&quot;!")
            self.assertEqual((await self.raw(cat))["archives"], "[]")
        return d(run())

    def test_remove_first_occurrence_only(self) -> Deferred[None]:
        """A list holding an id twice (written by another tool) loses only the first one."""
        async def run() -> None:
            cat = await self.create("Dup")
            await self.redis.db(DB.MAIN).hset(cat, "archives", json.dumps([A, B, A]))
            await self.delete(f"/api/categories/{cat}/{A}")
            self.assertEqual((await self.get(f"/api/categories/{cat}")).json["archives"], [B, A])
        return d(run())

    def test_add_errors(self) -> Deferred[None]:
        """Dynamic categories, unknown archives and unknown categories are 400s with the
        original's messages; a tank id is accepted."""
        async def run() -> None:
            dynamic = await self.create("Dyn", search="artist:aoi")
            static = await self.create("Static")
            cases = [
                (f"/api/categories/{dynamic}/{A}",
                 f"{dynamic} is a favorite search/dynamic category, can't add archives to it."),
                (f"/api/categories/{static}/{MISSING}", f"{MISSING} does not exist in the database."),
                (f"/api/categories/SET_0000000000/{A}", "SET_0000000000 doesn't exist in the database!"),
                (f"/api/categories/{static}/TANK_0000000001",
                 "TANK_0000000001 does not exist in the database."),
                (f"/api/categories/{static}/LRR_CONFIG_KEY_X",
                 "LRR_CONFIG_KEY_X does not exist in the database."),
            ]
            for path, message in cases:
                response = await self.put(path)
                self.assertEqual((response.status, response.json),
                                 (400, op("add_to_category", message)), path)
            removal = await self.delete(f"/api/categories/{dynamic}/{A}")
            self.assertEqual((removal.status, removal.json), (400, op(
                "remove_from_category",
                f"{dynamic} is a favorite search, it doesn't contain archives.")))
            unknown = await self.delete(f"/api/categories/SET_0000000000/{A}")
            self.assertEqual((unknown.status, unknown.json), (400, op(
                "remove_from_category", "SET_0000000000 doesn't exist in the database!")))
            short = await self.put(f"/api/categories/{static}/abc")
            self.assertEqual(short.status, 400)
            self.assertEqual(short.json["errors"][0]["path"], "/archive")
            tank = (await self.put("/api/tankoubons", params={"name": "My Tank"})).json
            added = await self.put(f"/api/categories/{static}/{tank['tankoubon_id']}")
            self.assertEqual(added.json["successMessage"],
                             "Added &quot;My Tank&quot; to category &quot;Static&quot;!")
        return d(run())

    def test_substring_quirk(self) -> Deferred[None]:
        """"Already present" is a substring test on the space-joined list, as in the original."""
        async def run() -> None:
            cat = await self.create("Quirk")
            long_id = "TANK_1234567890"
            await self.redis.db(DB.MAIN).hset(cat, "archives", json.dumps(["xTANK_1234567890y"]))
            await self.redis.db(DB.MAIN).zadd(long_id, 0, "name_t")
            response = await self.put(f"/api/categories/{cat}/{long_id}")
            self.assertEqual(response.status, 200)
            self.assertEqual(json.loads((await self.raw(cat))["archives"]), ["xTANK_1234567890y"])
        return d(run())

    def test_locks(self) -> Deferred[None]:
        """A held category-write lock answers 423 with the original's body on every write."""
        async def run() -> None:
            cat = await self.create("Locked")
            await self.redis.db(DB.CONFIG).set(f"category-write:{cat}", "someone")
            for method, path, operation in (
                ("PUT", f"/api/categories/{cat}", "update_category"),
                ("DELETE", f"/api/categories/{cat}", "delete_category"),
                ("PUT", f"/api/categories/{cat}/{A}", "add_to_category"),
                ("DELETE", f"/api/categories/{cat}/{A}", "remove_from_category"),
            ):
                response = await self.request(method, path, auth=True)
                self.assertEqual((response.status, response.json), (423, {
                    "operation": operation, "success": 0, "error": f"Locked resource: {cat}."}))
            self.assertEqual(await self.redis.db(DB.CONFIG).get(f"category-write:{cat}"),
                             "someone")
            self.assertEqual(json.loads((await self.raw(cat))["archives"]), [])
        return d(run())

    def test_bookmark_link(self) -> Deferred[None]:
        """GET/PUT/DELETE of the link, with the 400/404/400 rules and bodies; stored in DB0."""
        async def run() -> None:
            self.assertEqual((await self.get("/api/categories/bookmark_link")).json, {
                "category_id": self.favorites, "operation": "get_bookmark_link", "success": 1})
            cat = await self.create("Tmp Golden")
            response = await self.put(f"/api/categories/bookmark_link/{cat}")
            self.assertEqual((response.status, response.json), (200, {
                "category_id": cat, "operation": "update_bookmark_link", "success": 1}))
            self.assertEqual(await self.redis.db(DB.MAIN).hget("LRR_CONFIG", "bookmark_link"), cat)
            self.assertIsNone(await self.redis.db(DB.CONFIG).hget("LRR_CONFIG", "bookmark_link"))
            missing = await self.put("/api/categories/bookmark_link/SET_0000000001")
            self.assertEqual((missing.status, missing.json), (404, {
                "category_id": "SET_0000000001", "error": "Category does not exist!",
                "operation": "update_bookmark_link", "success": 0}))
            invalid = await self.put("/api/categories/bookmark_link/SET_abcdefghij")
            self.assertEqual((invalid.status, invalid.json), (400, {
                "category_id": "SET_abcdefghij", "error": "Input category ID is invalid.",
                "operation": "update_bookmark_link", "success": 0}))
            dynamic = await self.create("Dyn", search="x")
            refused = await self.put(f"/api/categories/bookmark_link/{dynamic}")
            self.assertEqual((refused.status, refused.json["error"]),
                             (400, "Cannot link bookmark to a dynamic category."))
            removed = await self.delete("/api/categories/bookmark_link")
            self.assertEqual((removed.status, removed.json), (200, {
                "category_id": cat, "operation": "remove_bookmark_link", "success": 1}))
            empty = await self.delete("/api/categories/bookmark_link")
            self.assertEqual(empty.json["category_id"], "")
            self.assertEqual((await self.get("/api/categories/bookmark_link")).json["category_id"],
                             "")
        return d(run())

    def test_categories_of_archive(self) -> Deferred[None]:
        """Only static categories holding the exact id are listed (the archive API's source)."""
        async def run() -> None:
            one = await self.create("One")
            two = await self.create("Two")
            await self.create("Dyn", search="blue")
            await self.put(f"/api/categories/{one}/{A}")
            await self.put(f"/api/categories/{two}/{B}")
            found = await self.store.categories_of_archive(A)
            self.assertEqual(found, [{"archives": [A], "id": one, "name": "One", "pinned": 0,
                                      "search": ""}])
            self.assertEqual(await self.store.categories_of_archive(MISSING), [])
        return d(run())

    def test_restore(self) -> Deferred[None]:
        """Backup restore keeps the id, unpins, and adds only the archives that exist."""
        async def run() -> None:
            cat = "SET_1600000000"
            self.assertTrue(await self.store.restore(cat, "Restored", "", [A, MISSING, A, B]))
            self.assertEqual(await self.raw(cat), {"name": "Restored", "search": "",
                                                   "pinned": "0",
                                                   "archives": json.dumps([A, B]).replace(" ", "")})
            await self.put(f"/api/categories/{cat}", params={"pinned": "1"})
            self.assertTrue(await self.store.restore(cat, "Again", "", [B]))
            self.assertEqual((await self.get(f"/api/categories/{cat}")).json, {
                "archives": [A, B], "id": cat, "name": "Again", "pinned": 0, "search": ""})
            self.assertFalse(await self.store.restore("SET_1", "x", "", []))
        return d(run())

    def test_changes_published(self) -> Deferred[None]:
        """Category writes publish the category id for other processes' search indexes."""
        async def run() -> None:
            from lrrd.store.archives import CHANGES_CHANNEL

            messages = await subscribe(self, CHANGES_CHANNEL, count=5)
            cat = await self.create("Pub")
            await self.put(f"/api/categories/{cat}", params={"name": "Pub2"})
            await self.put(f"/api/categories/{cat}/{A}")
            await self.delete(f"/api/categories/{cat}/{A}")
            await self.delete(f"/api/categories/{cat}")
            self.assertEqual(await messages, [cat] * 5)
        return d(run())


async def subscribe(case: ApiTestCase, channel: str, count: int) -> Deferred[list[str]]:
    """Subscribe to ``channel``; the Deferred fires with the first ``count`` messages."""
    import txredisapi
    from twisted.internet import reactor
    from twisted.internet.endpoints import TCP4ClientEndpoint, UNIXClientEndpoint

    seen: list[str] = []
    done: Deferred[list[str]] = Deferred()

    class Collect(txredisapi.SubscriberProtocol):
        def messageReceived(self, pattern: Any, chan: Any, message: Any) -> None:
            seen.append(message)
            if len(seen) == count:
                done.callback(list(seen))

    factory = txredisapi.SubscriberFactory()
    factory.protocol = Collect
    address = case.redis.address
    endpoint = (UNIXClientEndpoint(reactor, address.path) if address.path
                else TCP4ClientEndpoint(reactor, address.host, address.port))
    protocol = await endpoint.connect(factory)
    case.addCleanup(protocol.transport.loseConnection)
    await protocol.subscribe(channel)
    return done
