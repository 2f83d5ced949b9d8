"""The /api root over real HTTP: authentication, No-Fun mode, CORS, errors and /api/info."""

from __future__ import annotations

import base64
import socket
import time

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread

from lrrd.api.area import area_app
from lrrd.store.config import CONFIG_KEY
from lrrd.store.redis import DB, RedisAddress, RedisStore
from tests.fixtures.app import ApiTestCase, RedisTestCase
from tests.fixtures.redis import RedisServer

UNAUTHORIZED = {"errors": [{"message": "Unauthorized", "path": "/security/0/api_key"}],
                "status": 401}
NOFUN = {"error": "This API is protected and requires login or an API Key."}
#: A protected, read-only operation: auth tests only look at whether it answers 401.
PROTECTED = "/api/shinobu"


def d(coro):  # noqa: ANN001, ANN201 - tiny adapter for trial
    return Deferred.fromCoroutine(coro)


class InfoTests(ApiTestCase):
    def test_info_fields_and_types(self) -> Deferred[None]:
        """/api/info carries every field of the original with the original's JSON types."""
        async def run() -> None:
            response = await self.get("/api/info")
            self.assertEqual(response.status, 200)
            self.assertEqual(response.header("content-type"), "application/json;charset=UTF-8")
            info = response.json
            expected_types = {
                "name": str, "motd": str, "version": str, "version_name": str,
                "version_desc": str, "has_password": bool, "debug_mode": bool,
                "nofun_mode": bool, "archives_per_page": int, "server_resizes_images": bool,
                "server_tracks_progress": bool, "authenticated_progress": bool,
                "total_pages_read": int, "total_archives": int, "cache_last_cleared": int,
                "excluded_namespaces": list,
            }
            self.assertEqual(set(info), set(expected_types))
            for field, kind in expected_types.items():
                self.assertIsInstance(info[field], kind, field)
            self.assertEqual(info["name"], "LANraragi")
            self.assertEqual(info["archives_per_page"], 100)
            self.assertEqual(info["excluded_namespaces"], ["source", "date_added"])
            self.assertTrue(info["has_password"])
            self.assertTrue(info["server_tracks_progress"])
            self.assertLess(abs(info["cache_last_cleared"] - time.time()), 5)
        return d(run())

    def test_info_reads_redis(self) -> Deferred[None]:
        """Values come from Redis: config fields, the page counter and the grouped-archive set."""
        async def run() -> None:
            config = self.redis.db(DB.CONFIG)
            await config.hmset(CONFIG_KEY, {"htmltitle": "My <Lib>", "pagesize": "25",
                                            "localprogress": "1", "excludednamespaces": "a , b"})
            await config.set("LRR_TOTALPAGESTAT", "42")
            await self.redis.db(DB.SEARCH).sadd("LRR_TANKGROUPED", ["a" * 40, "b" * 40])
            info = (await self.get("/api/info")).json
            self.assertEqual(info["name"], "My &lt;Lib&gt;")
            self.assertEqual(info["archives_per_page"], 25)
            self.assertFalse(info["server_tracks_progress"])
            self.assertEqual(info["total_pages_read"], 42)
            self.assertEqual(info["total_archives"], 2)
            self.assertEqual(info["excluded_namespaces"], ["a", "b"])
        return d(run())

    def test_first_start_state(self) -> Deferred[None]:
        """A fresh database gets the original's first-start category, linked to the bookmark."""
        async def run() -> None:
            main = self.redis.db(DB.MAIN)
            link = await main.hget("LRR_CONFIG", "bookmark_link")
            self.assertRegex(link, r"^SET_\d{10}$")
            category = await main.hgetall(link)
            self.assertEqual(category, {"name": "🔖 Favorites", "search": "", "pinned": "0",
                                        "archives": "[]"})
        return d(run())


class AuthTests(ApiTestCase):
    def test_protected_needs_key(self) -> Deferred[None]:
        """A protected operation without credentials answers the plugin-style 401."""
        async def run() -> None:
            response = await self.get(PROTECTED)
            self.assertEqual(response.status, 401)
            self.assertEqual(response.json, UNAUTHORIZED)
        return d(run())

    def test_bearer_key(self) -> Deferred[None]:
        """Bearer base64(apikey) passes."""
        async def run() -> None:
            response = await self.get(PROTECTED, auth=True)
            self.assertEqual(response.status, 200)
            self.assertEqual(response.json["operation"], "shinobu_status")
        return d(run())

    def test_query_key(self) -> Deferred[None]:
        """The raw key in ?key= passes, as OPDS clients send it."""
        async def run() -> None:
            response = await self.get(PROTECTED + "?key=" + self.api_key)
            self.assertNotEqual(response.status, 401)
        return d(run())

    def test_bad_credentials(self) -> Deferred[None]:
        """Wrong, malformed, non-base64, raw or oddly-cased headers all get a JSON 401, never 500."""
        async def run() -> None:
            raw_b64 = base64.b64encode(self.api_key.encode()).decode()
            for header in ["Bearer", "Bearer ", "Bearer !!!not base64!!!", "Basic " + raw_b64,
                           "bearer " + raw_b64, "Bearer  " + raw_b64, self.api_key,
                           "Bearer " + base64.b64encode(b"wrong").decode(),
                           "Bearer " + "A" * 8000, "Bearer \u00e9\u00e9"]:
                response = await self.get(PROTECTED, headers={"Authorization": header.encode("utf-8")})
                self.assertEqual(response.status, 401, header[:40])
                self.assertEqual(response.json, UNAUTHORIZED)
            response = await self.get(PROTECTED + "?key=wrong")
            self.assertEqual(response.status, 401)
        return d(run())

    def test_empty_key_never_matches(self) -> Deferred[None]:
        """With no API key configured, an empty Bearer or ?key= does not authenticate."""
        async def run() -> None:
            await self.redis.db(DB.CONFIG).hset(CONFIG_KEY, "apikey", "")
            for kwargs in [{"headers": {"Authorization": "Bearer "}}, {}]:
                response = await self.get(PROTECTED + "?key=", **kwargs)
                self.assertEqual(response.status, 401)
        return d(run())

    def test_key_change_applies_at_once(self) -> Deferred[None]:
        """apikey is read per request: a new key works and the old one stops working immediately."""
        async def run() -> None:
            await self.redis.db(DB.CONFIG).hset(CONFIG_KEY, "apikey", "new-key")
            self.assertEqual((await self.get(PROTECTED, auth=True)).status, 401)
            self.assertNotEqual(
                (await self.get(PROTECTED, headers=self.auth_headers("new-key"))).status, 401)
        return d(run())

    def test_enablepass_off_opens_everything(self) -> Deferred[None]:
        """enablepass=0 lets every protected operation through without a key."""
        async def run() -> None:
            await self.redis.db(DB.CONFIG).hset(CONFIG_KEY, "enablepass", "0")
            self.assertNotEqual((await self.get(PROTECTED)).status, 401)
        return d(run())

    def test_nofun_mode(self) -> Deferred[None]:
        """No-Fun mode locks even public routes, with the original's other 401 body."""
        async def run() -> None:
            await self.redis.db(DB.CONFIG).hset(CONFIG_KEY, "nofunmode", "1")
            response = await self.get("/api/info")
            self.assertEqual(response.status, 401)
            self.assertEqual(response.json, NOFUN)
            self.assertEqual((await self.get("/api/info", auth=True)).status, 200)
            self.assertEqual((await self.get("/api/info?key=" + self.api_key)).status, 200)
        return d(run())


class UnimplementedTests(ApiTestCase):
    """An operation without a handler answers 501 naming itself (after auth), never 404 or 200."""

    def make_site(self):  # noqa: ANN201
        from lrrd.api.misc import MiscApi
        from lrrd.api.site import build_site

        return build_site(self.services(), areas=[MiscApi(self.redis)])

    def test_501_names_the_operation(self) -> Deferred[None]:
        """A routed but unbuilt operation answers 501 with its operationId; auth still comes first."""
        async def run() -> None:
            self.assertEqual((await self.get("/api/database/backup")).status, 401)
            response = await self.get("/api/database/backup", auth=True)
            self.assertEqual(response.status, 501)
            self.assertEqual(response.json, {"operation": "getBackupJson",
                                             "error": "not implemented yet", "success": 0})
        return d(run())


class _Exploding:
    """An area whose /api/info handler fails the way a bug would."""

    app = area_app()

    @app.route("/info", methods=["GET"], endpoint="getServerInfo")
    async def info(self, request):  # noqa: ANN001, ANN201
        raise RuntimeError("a bug")


class CrashTests(ApiTestCase):
    """An unexpected exception in a handler answers 500 JSON and logs its traceback."""

    def make_site(self):  # noqa: ANN201
        from lrrd.api.site import build_site

        return build_site(self.services(), areas=[_Exploding()])

    def test_unhandled_exception(self) -> Deferred[None]:
        """The client gets the 500 envelope without the traceback; the log gets the traceback."""
        async def run() -> None:
            response = await self.get("/api/info")
            self.assertEqual(response.status, 500)
            self.assertEqual(response.json, {"error": "Internal server error.", "success": 0})
            self.assertNotIn(b"a bug", response.body)
            logged = self.flushLoggedErrors(RuntimeError)
            self.assertEqual([str(f.value) for f in logged], ["a bug"])
        return d(run())


class RoutingTests(ApiTestCase):
    def test_unknown_path(self) -> Deferred[None]:
        """Unknown /api paths and paths outside /api answer 404 JSON."""
        async def run() -> None:
            for path in ["/api/nothing/here", "/api/", "/nothing", "/"]:
                response = await self.get(path)
                self.assertEqual(response.status, 404, path)
                self.assertEqual(response.json["status"], 404)
        return d(run())

    def test_one_trailing_slash(self) -> Deferred[None]:
        """A trailing slash reaches the operation, as the contract matched it, instead of a 500."""
        async def run() -> None:
            for path in ["/api/info/", "/api/categories/", "/api/tankoubons/", "/api/archives/",
                         "/api/search/", "/api/opds/", "/api/categories/bookmark_link/"]:
                plain = await self.request("GET", path.rstrip("/"), auth=True)
                slashed = await self.request("GET", path, auth=True)
                self.assertEqual((slashed.status, slashed.body), (plain.status, plain.body), path)
            for path in ["/api/categories/", "/api/tankoubons/"]:
                created = await self.request("PUT", path + "?name=x", auth=True)
                self.assertEqual((created.status, created.json["success"]), (200, 1), path)
        return d(run())

    def test_wrong_and_unknown_methods(self) -> Deferred[None]:
        """A known path with a method it lacks, or an invented method, answers 405 JSON."""
        async def run() -> None:
            for method in ["POST", "FOO", "PATCH"]:
                response = await self.request(method, "/api/info")
                self.assertEqual(response.status, 405, method)
                self.assertEqual(response.json["status"], 405)
                self.assertIn("GET", response.header("allow"))
        return d(run())

    def test_validation_error(self) -> Deferred[None]:
        """A request that breaks the contract gets the original's 400 validation envelope."""
        async def run() -> None:
            response = await self.get("/api/archives/abcd")
            self.assertEqual(response.status, 400)
            self.assertEqual(response.json, {
                "errors": [{"message": "String is too short: 4/40.", "path": "/id"}],
                "status": 400})
        return d(run())

    def test_cors(self) -> Deferred[None]:
        """With enablecors=1, responses (401s included) carry CORS headers; OPTIONS needs no key."""
        async def run() -> None:
            self.assertIsNone((await self.get("/api/info")).header("access-control-allow-origin"))
            await self.redis.db(DB.CONFIG).hset(CONFIG_KEY, "enablecors", "1")
            for response in [await self.get("/api/info"), await self.get(PROTECTED),
                             await self.request("OPTIONS", PROTECTED)]:
                self.assertEqual(response.header("access-control-allow-origin"), "*")
                self.assertEqual(response.header("access-control-allow-methods"),
                                 "GET, OPTIONS, POST, DELETE, PUT")
                self.assertEqual(response.header("access-control-allow-headers"), "Authorization")
            preflight = await self.request("OPTIONS", PROTECTED)
            self.assertEqual(preflight.status, 200)
        return d(run())

    def test_huge_header(self) -> Deferred[None]:
        """A request with oversized headers gets a JSON 400, not a bare protocol error."""
        async def run() -> None:
            port = self.port.getHost().port

            def send() -> bytes:
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                try:
                    sock.sendall(b"GET /api/info HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70000
                                 + b"\r\n\r\n")
                    data = b""
                    while True:
                        chunk = sock.recv(65536)
                        if not chunk:
                            return data
                        data += chunk
                except ConnectionResetError:
                    return data
                finally:
                    sock.close()

            reply = await deferToThread(send)
            self.assertTrue(reply.startswith(b"HTTP/1.1 400"), reply[:80])
            self.assertIn(b'"status":400', reply)
        return d(run())


class OutageTests(RedisTestCase):
    """Redis going away turns into fast 503s, and the API recovers by itself."""

    def setUp(self) -> Deferred[None]:
        self.private = RedisServer().start()
        self.addCleanup(self.private.stop)
        return super().setUp()

    def test_503_then_recovery(self) -> Deferred[None]:
        """With Redis down, /api/info answers 503 JSON within a second; after restart it works."""
        import treq
        from twisted.web.client import HTTPConnectionPool

        from lrrd.api.site import build_site
        from lrrd.config import Settings
        from lrrd.services import Services
        from lrrd.store.bootstrap import ensure_initialised

        async def run() -> None:
            store = RedisStore(RedisAddress.parse(self.private.url))
            store.connect()
            self.addCleanup(lambda: d(store.disconnect()))
            await store.wait_connected(reactor)
            await ensure_initialised(store)
            site = build_site(Services(Settings(), store, reactor))
            port = reactor.listenTCP(0, site, interface="127.0.0.1")
            self.addCleanup(port.stopListening)
            pool = HTTPConnectionPool(reactor, persistent=False)
            self.addCleanup(pool.closeCachedConnections)
            url = f"http://127.0.0.1:{port.getHost().port}/api/info"
            self.assertEqual((await treq.get(url, pool=pool)).code, 200)

            self.private.process.kill()
            self.private.process.wait()
            started = time.monotonic()
            while store.connected and time.monotonic() - started < 5:
                await _sleep(0.01)
            response = await treq.get(url, pool=pool)
            body = await treq.json_content(response)
            self.assertEqual(response.code, 503)
            self.assertEqual(body["success"], 0)
            self.assertLess(time.monotonic() - started, 1.5)

            socket_path = self.private.socket_path
            self.private.start()
            self.assertEqual(self.private.socket_path, socket_path)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                response = await treq.get(url, pool=pool)
                await treq.content(response)
                if response.code == 200:
                    break
                await _sleep(0.05)
            self.assertEqual(response.code, 200)
        return d(run())


def _sleep(seconds: float) -> Deferred[None]:
    from twisted.internet.task import deferLater

    return deferLater(reactor, seconds, lambda: None)
