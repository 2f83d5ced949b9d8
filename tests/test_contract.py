"""Tests for lrrd.api.contract: the packaged contract, routing by template, and validation wording."""

from __future__ import annotations

import importlib.util
import json
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import jsonschema
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import FailTest, SynchronousTestCase

from lrrd.api.contract import (
    Contract,
    Operation,
    negotiate_content_type,
    validate_body,
    validate_request,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
# The spec lives beside the repository: /work/shared/spec during development, ../shared/spec in CI.
SPEC_DIR = REPO_ROOT.parent / "shared" / "spec"
SPEC = SPEC_DIR / "lanraragi-openapi.yaml"
GOLDEN = SPEC_DIR / "golden"
ARCHIVE_ID = "8dc6167b2f18e196cbbaf915aeb65d4273c43cb0"


def _require(path: Path) -> Path:
    if not path.exists():
        raise FailTest(
            f"{path} is missing: the LANraragi spec must be checked out beside the repository "
            f"(expected at {SPEC_DIR}, i.e. ../shared/spec relative to {REPO_ROOT})"
        )
    return path


def _golden_index() -> dict[str, dict[str, Any]]:
    index: dict[str, dict[str, Any]] = {}
    for name in ("INDEX.json", "INDEX-writes.json"):
        index.update(json.loads(_require(GOLDEN / name).read_text(encoding="utf-8")))
    return index


def _request(entry: dict[str, Any]) -> tuple[str, str, dict[str, list[str]]]:
    """(method, path after /api, query) of a golden request, decoded as the HTTP root will."""
    url = urlsplit(entry["url"])
    assert url.path.startswith("/api/"), url.path
    path = "/".join(unquote(segment) for segment in url.path[len("/api") :].split("/"))
    query = parse_qs(url.query, keep_blank_values=True)
    for name, value in (entry.get("params") or {}).items():
        query.setdefault(name, []).append(value)
    return entry["method"], path, query


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_contract", REPO_ROOT / "tools" / "make_contract.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class ContractLoadTests(SynchronousTestCase):
    """The packaged contract.json and its agreement with the YAML spec."""

    def setUp(self) -> None:
        self.contract = Contract.load()

    def test_all_operations_loaded(self) -> None:
        """All 76 operations of the spec are in the packaged contract, each with a unique id."""
        self.assertEqual(len(self.contract.operations), 76)
        ids = {op.operation_id for op in self.contract.operations}
        self.assertEqual(len(ids), 76)
        self.assertEqual(self.contract.by_id("getArchiveMetadata").method, "GET")

    def test_load_is_cached(self) -> None:
        """Contract.load() parses the JSON once and hands out the same object afterwards."""
        self.assertIs(Contract.load(), self.contract)

    def test_unknown_operation_id(self) -> None:
        """by_id() raises KeyError for an operationId the spec does not have."""
        self.assertRaises(KeyError, self.contract.by_id, "noSuchOperation")

    def test_operation_facts(self) -> None:
        """An operation carries its upper-case method, template, first tag and parameters."""
        op = self.contract.by_id("updateTankoubonProgress")
        self.assertEqual(
            (op.method, op.path, op.area, op.protected),
            ("PUT", "/tankoubons/{id}/progress/{page}", "tankoubons", False),
        )
        self.assertEqual(
            [(p.name, p.location, p.required) for p in op.parameters], [("id", "path", True), ("page", "path", True)]
        )
        self.assertEqual(dict(op.parameters[1].schema), {"type": "integer", "minimum": 1})

    def test_path_level_parameters_merged(self) -> None:
        """Parameters declared on a path item reach its operations, before the operation's own."""
        op = self.contract.by_id("getTankoubonFull")
        self.assertEqual([(p.name, p.location) for p in op.parameters], [("id", "path"), ("page", "query")])
        self.assertEqual(dict(self.contract.by_id("deleteCategory").parameters[0].schema)["minLength"], 14)

    def test_security(self) -> None:
        """protected follows each operation's security; the odd public writes stay public."""
        protected = {op.operation_id for op in self.contract.operations if op.protected}
        self.assertEqual(len(protected), 43)
        for public in (
            "clearNewArchiveFlag",
            "updateArchiveProgress",
            "updateTankoubonProgress",
            "queueArchivePageThumbnailExtraction",
            "minionJobStatus",
            "getServerInfo",
        ):
            self.assertNotIn(public, protected)
        for private in ("minionJobDetail", "getBackupJson", "listPlugins", "setNewArchiveFlag", "discardSearchCache"):
            self.assertIn(private, protected)

    def test_request_bodies(self) -> None:
        """Request content types are listed sorted, with whether the spec requires a body."""
        create = self.contract.by_id("createCategory")
        self.assertEqual(create.request_content_types, ("application/x-www-form-urlencoded", "multipart/form-data"))
        self.assertFalse(create.request_body_required)
        upload = self.contract.by_id("uploadArchive")
        self.assertEqual(upload.request_content_types, ("multipart/form-data",))
        self.assertTrue(upload.request_body_required)
        self.assertEqual(self.contract.by_id("getArchive").request_content_types, ())

    def test_deprecated(self) -> None:
        """The one deprecated operation (GET /archives/{id}) is marked so."""
        self.assertEqual([op.operation_id for op in self.contract.operations if op.deprecated], ["getArchive"])

    def test_prose_stripped_but_properties_kept(self) -> None:
        """Annotations are gone from the contract, yet schema properties named like them survive."""
        document = json.loads((REPO_ROOT / "lrrd" / "api" / "contract.json").read_text(encoding="utf-8"))

        def keywords(node: Any, in_properties: bool = False) -> set[str]:
            found: set[str] = set()
            if isinstance(node, dict):
                for key, value in node.items():
                    if not in_properties:
                        found.add(key)
                    found |= keywords(value, key == "properties" and not in_properties)
            elif isinstance(node, list):
                for item in node:
                    found |= keywords(item)
            return found

        used = keywords(document["operations"]) | keywords(document["components"]["schemas"])
        for dropped in ("description", "summary", "example", "examples", "x-mojo-to"):
            self.assertNotIn(dropped, used)
        (upload,) = [o for o in document["operations"] if o["operationId"] == "uploadArchive"]
        self.assertIn("summary", upload["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"])

    def test_in_sync_with_spec(self) -> None:
        """Regenerating contract.json from the YAML spec reproduces the committed file byte for byte."""
        spec = _require(SPEC)
        generator = _load_generator()
        with tempfile.TemporaryDirectory() as tmp:
            output = Path(tmp) / "contract.json"
            self.assertEqual(generator.main([str(spec), "--output", str(output)]), 0)
            fresh = output.read_bytes()
        committed = (REPO_ROOT / "lrrd" / "api" / "contract.json").read_bytes()
        self.assertTrue(fresh == committed, "lrrd/api/contract.json is stale: run tools/make_contract.py")

    def test_generator_refuses_unknown_keys(self) -> None:
        """The generator fails loudly on an operation key it would otherwise silently drop."""
        generator = _load_generator()
        spec = {
            "paths": {"/x": {"get": {"operationId": "x", "responses": {}, "callbacks": {}}}},
            "components": {},
        }
        self.assertRaises(generator.SpecError, generator.build_contract, spec)


class MatchTests(SynchronousTestCase):
    """Contract.match() and methods_for(): routing a decoded path to its operation."""

    def setUp(self) -> None:
        self.contract = Contract.load()

    def assertMatches(self, method: str, path: str, operation_id: str, params: dict[str, str]) -> None:
        found = self.contract.match(method, path)
        self.assertIsNotNone(found, f"{method} {path} matched nothing")
        assert found is not None
        self.assertEqual((found[0].operation_id, found[1]), (operation_id, params))

    def test_bookmark_link_literal_beats_id(self) -> None:
        """/categories/bookmark_link is the bookmark operation, not a category named bookmark_link."""
        self.assertMatches("GET", "/categories/bookmark_link", "getBookmarkLink", {})
        self.assertMatches("DELETE", "/categories/bookmark_link", "removeBookmarkLink", {})
        category = "SET_0000000001"
        self.assertMatches("PUT", f"/categories/bookmark_link/{category}", "updateBookmarkLink", {"id": category})
        self.assertMatches("GET", "/categories/SET_0000000001", "getCategory", {"id": "SET_0000000001"})

    def test_literal_only_wins_for_its_own_methods(self) -> None:
        """A method the literal path lacks falls through to the template, as on the original."""
        self.assertMatches("PUT", "/categories/bookmark_link", "updateCategory", {"id": "bookmark_link"})
        self.assertMatches("GET", "/archives/upload", "getArchive", {"id": "upload"})

    def test_upload(self) -> None:
        """PUT /archives/upload is the upload, not an update of an archive called upload."""
        self.assertMatches("PUT", "/archives/upload", "uploadArchive", {})
        self.assertMatches("GET", "/archives/untagged", "getUntaggedArchives", {})

    def test_tank_ids(self) -> None:
        """TANK_ ids route like archive ids on the archive and tankoubon templates."""
        tank = "TANK_1795822351"
        self.assertMatches("GET", f"/archives/{tank}/categories", "getArchiveCategories", {"id": tank})
        self.assertMatches("GET", f"/tankoubons/{tank}", "getTankoubon", {"id": tank})
        self.assertMatches("GET", f"/tankoubons/{tank}/full", "getTankoubonFull", {"id": tank})
        self.assertMatches("PUT", f"/tankoubons/{tank}/progress/3", "updateTankoubonProgress", {"id": tank, "page": "3"})
        self.assertMatches("PUT", f"/tankoubons/{tank}/{ARCHIVE_ID}", "addToTankoubon", {"id": tank, "archive": ARCHIVE_ID})

    def test_minion(self) -> None:
        """/minion/5/detail, /minion/5 and /minion/<task>/queue reach their own operations."""
        self.assertMatches("GET", "/minion/5/detail", "minionJobDetail", {"jobid": "5"})
        self.assertMatches("GET", "/minion/5", "minionJobStatus", {"jobid": "5"})
        self.assertMatches("POST", "/minion/find_duplicates/queue", "queueMinionJob", {"jobname": "find_duplicates"})

    def test_plugins(self) -> None:
        """/plugins/all lists plugins; /plugins/use and /plugins/queue are their own POSTs."""
        self.assertMatches("GET", "/plugins/all", "listPlugins", {"type": "all"})
        self.assertMatches("POST", "/plugins/use", "usePluginSync", {})
        self.assertMatches("POST", "/plugins/queue", "usePluginAsync", {})

    def test_search_literals(self) -> None:
        """The /search family is routed by its literal paths."""
        self.assertMatches("GET", "/search", "searchArchives", {})
        self.assertMatches("GET", "/search/ids", "searchArchiveIds", {})
        self.assertMatches("GET", "/search/random", "searchRandomArchives", {})
        self.assertMatches("DELETE", "/search/cache", "discardSearchCache", {})

    def test_stamps(self) -> None:
        """Nested templates bind every parameter: /archives/{id}/stamps/{index}."""
        self.assertMatches("PUT", f"/archives/{ARCHIVE_ID}/stamps/1", "addStamp", {"id": ARCHIVE_ID, "index": "1"})
        self.assertMatches("DELETE", "/stamps/STAMPS_1_1795824119296", "deleteStamp", {"id": "STAMPS_1_1795824119296"})

    def test_trailing_slash(self) -> None:
        """One trailing slash is ignored."""
        self.assertMatches("GET", "/archives/", "getAllArchives", {})
        self.assertMatches("GET", f"/archives/{ARCHIVE_ID}/files/", "getFiles", {"id": ARCHIVE_ID})

    def test_method_spelling(self) -> None:
        """Methods match case-insensitively and HEAD is served by the GET operation."""
        self.assertMatches("get", "/info", "getServerInfo", {})
        self.assertMatches("HEAD", f"/archives/{ARCHIVE_ID}/download", "downloadArchive", {"id": ARCHIVE_ID})

    def test_decoded_segments(self) -> None:
        """Path parameters come back as given, spaces and non-ASCII included."""
        self.assertMatches("GET", "/opds/a b/pse", "getOpdsPage", {"id": "a b"})
        self.assertMatches("GET", "/stamps/\u30b9\u30bf\u30f3\u30d7", "getStamp", {"id": "\u30b9\u30bf\u30f3\u30d7"})

    def test_no_match(self) -> None:
        """Unknown paths, wrong depths, empty segments and unrooted paths match nothing."""
        for method, path in [
            ("GET", "/doesnotexist"),
            ("GET", f"/archives/{ARCHIVE_ID}/files/thumbnails/extra"),
            ("GET", "/archives//files"),
            ("GET", "/"),
            ("GET", ""),
            ("GET", "archives"),
            ("GET", "/search/cache"),
            ("PATCH", "/archives"),
            ("GET", "/Archives"),
        ]:
            self.assertIsNone(self.contract.match(method, path), f"{method} {path!r}")

    def test_methods_for(self) -> None:
        """methods_for() unions the methods of every matching template, for 405 and Allow."""
        self.assertEqual(self.contract.methods_for("/categories/bookmark_link"), ["DELETE", "GET", "PUT"])
        self.assertEqual(self.contract.methods_for("/archives/upload"), ["DELETE", "GET", "PUT"])
        self.assertEqual(self.contract.methods_for("/search/cache"), ["DELETE"])
        self.assertEqual(self.contract.methods_for(f"/archives/{ARCHIVE_ID}/isnew/"), ["DELETE", "PUT"])
        self.assertEqual(self.contract.methods_for("/doesnotexist"), [])
        self.assertEqual(self.contract.methods_for(""), [])

    @settings(max_examples=300, deadline=None)
    @given(method=st.text(max_size=10), path=st.text(max_size=80))
    def test_match_never_raises(self, method: str, path: str) -> None:
        """match() and methods_for() accept any string and answer None/[] rather than raising."""
        found = self.contract.match(method, path)
        if found is not None:
            self.assertIn(found[0].method, self.contract.methods_for(path))


class GoldenValidationTests(SynchronousTestCase):
    """validate_request() against every request captured from the original server."""

    def setUp(self) -> None:
        self.contract = Contract.load()
        self.index = _golden_index()

    def _golden_errors(self, name: str) -> list[tuple[str, str]]:
        body = json.loads(_require(GOLDEN / f"{name}.json").read_text(encoding="utf-8"))
        return [(e["message"], e["path"]) for e in body["errors"]]

    def assertGolden(self, name: str) -> None:
        self.assertEqual(self._validate(name), self._golden_errors(name))

    def _validate(self, name: str) -> list[tuple[str, str]]:
        method, path, query = _request(self.index[name])
        found = self.contract.match(method, path)
        self.assertIsNotNone(found, f"{name}: {method} {path} matched nothing")
        assert found is not None
        return validate_request(found[0], found[1], query)

    def test_bad_id_short(self) -> None:
        """GET /archives/nope/metadata: the original's "String is too short: 4/40." at /id."""
        self.assertGolden("err_bad_id_short")

    def test_page_without_path(self) -> None:
        """GET /archives/{id}/page without ?path=: "Missing property." at /path."""
        self.assertGolden("err_bad_request_page_nopath")

    def test_search_start_not_integer(self) -> None:
        """GET /search?start=abc: "Expected integer - got string." at /start."""
        self.assertGolden("err_bad_request_search_start")

    def test_thumbnail_page_not_integer(self) -> None:
        """GET /archives/{id}/thumbnail?page=x: "Expected integer - got string." at /page."""
        self.assertGolden("err_bad_request_thumbnail_page")

    def test_toc_missing_both(self) -> None:
        """PUT /archives/{id}/toc without page and title: two errors, in spec order."""
        self.assertGolden("err_put_archive_toc_missing")

    def test_unknown_minion_task(self) -> None:
        """POST /minion/nosuchtask/queue: the enum list, comma separated, at /jobname."""
        self.assertGolden("err_queue_minion_unknown_task")

    def test_download_url_wrong_body_type(self) -> None:
        """POST /download_url with a urlencoded body: only validate_body objects, at /body."""
        op = self.contract.by_id("downloadUrl")
        self.assertEqual(self._validate("err_post_download_url_missing"), [])
        self.assertEqual(
            validate_body(op, "application/x-www-form-urlencoded", has_body=False),
            self._golden_errors("err_post_download_url_missing"),
        )

    def test_unknown_route(self) -> None:
        """GET /api/doesnotexist, a 404 on the original, matches no operation and no template."""
        method, path, _ = _request(self.index["err_unknown_api_route"])
        self.assertIsNone(self.contract.match(method, path))
        self.assertEqual(self.contract.methods_for(path), [])

    def test_every_accepted_request_validates(self) -> None:
        """Every captured request the original let through to a handler routes and validates cleanly."""
        checked = 0
        for name, entry in sorted(self.index.items()):
            file = GOLDEN / str(entry.get("file", ""))
            rejected = False
            if entry["status"] in (400, 404) and file.suffix == ".json":
                # The original's own request-validation failures carry an "errors" array.
                rejected = "errors" in json.loads(file.read_text(encoding="utf-8"))
            if rejected or entry["method"] not in ("GET", "PUT", "POST", "DELETE"):
                continue
            self.assertEqual(self._validate(name), [], name)
            checked += 1
        self.assertGreater(checked, 90)


class ValidationWordingTests(SynchronousTestCase):
    """validate_request() wording and coercion beyond the captured cases, after JSON::Validator."""

    def setUp(self) -> None:
        self.contract = Contract.load()

    def check(
        self, operation_id: str, path_params: dict[str, str] | None = None, /, **query: str | list[str]
    ) -> list[tuple[str, str]]:
        op = self.contract.by_id(operation_id)
        return validate_request(op, path_params or {}, {k: ([v] if isinstance(v, str) else v) for k, v in query.items()})

    def test_too_long(self) -> None:
        """An archive id of 41 characters is "String is too long: 41/40."."""
        self.assertEqual(self.check("getArchive", {"id": "a" * 41}), [("String is too long: 41/40.", "/id")])

    def test_length_counts_characters(self) -> None:
        """Lengths count characters, not UTF-8 bytes, as Perl's length() on decoded text does."""
        self.assertEqual(self.check("getArchive", {"id": "\u00e9" * 40}), [])

    def test_enum(self) -> None:
        """An unknown plugin type lists the allowed values in spec order."""
        self.assertEqual(
            self.check("listPlugins", {"type": "use"}),
            [("Not in enum list: download, login, metadata, script, all.", "/type")],
        )

    def test_minimum(self) -> None:
        """Below minimum reads "0 < minimum(1)", without a full stop, as JSON::Validator 5 words it."""
        self.assertEqual(self.check("updateTankoubonThumbnail", {"id": "TANK_1"}, page="0"), [("0 < minimum(1)", "/page")])
        self.assertEqual(
            self.check("updateTankoubonProgress", {"id": "TANK_1234567890", "page": "-3"}),
            [("-3 < minimum(1)", "/page")],
        )
        self.assertEqual(self.check("getArchiveThumbnail", {"id": ARCHIVE_ID}, page="0"), [])

    def test_bounds_before_integrality(self) -> None:
        """A fraction is checked against bounds first, then rejected as "got string"."""
        self.assertEqual(self.check("updateTankoubonThumbnail", {"id": "T"}, page="0.5"), [("0.5 < minimum(1)", "/page")])
        self.assertEqual(
            self.check("updateTankoubonThumbnail", {"id": "T"}, page="1.5"), [("Expected integer - got string.", "/page")]
        )

    def test_integer_forms(self) -> None:
        """Integers must look like JSON numbers: no plus sign, leading zeros, blanks or spaces."""
        for good in ("0", "-1", "1000", "99999999999999999999"):
            self.assertEqual(self.check("searchArchives", start=good), [], good)
        for bad in ("", "+1", "01", " 1", "1 ", "1e3", "0x10", "\u0661", "1_000"):
            expected = [("Expected integer - got string.", "/start")]
            self.assertEqual(self.check("searchArchives", start=bad), expected, repr(bad))

    def test_boolean_forms(self) -> None:
        """Booleans accept true/false/1/0 and the empty string, case-sensitively, like JSON::Validator."""
        for good in ("true", "false", "1", "0", ""):
            self.assertEqual(self.check("searchArchives", newonly=good), [], repr(good))
        for bad in ("yes", "True", "2", "on"):
            expected = [("Expected boolean - got string.", "/newonly")]
            self.assertEqual(self.check("searchArchives", newonly=bad), expected, bad)

    def test_last_value_wins(self) -> None:
        """A repeated query parameter is judged by its last value; an empty value list is absent."""
        self.assertEqual(self.check("searchArchives", start=["abc", "5"]), [])
        self.assertEqual(self.check("searchArchives", start=["5", "abc"]), [("Expected integer - got string.", "/start")])
        self.assertEqual(self.check("getPage", {"id": ARCHIVE_ID}, path=[]), [("Missing property.", "/path")])

    def test_several_parameters_in_spec_order(self) -> None:
        """Errors of several parameters come in the spec's parameter order."""
        self.assertEqual(
            self.check("searchArchives", category="x", start="a", groupby_tanks="no"),
            [
                ("String is too short: 1/14.", "/category"),
                ("Expected integer - got string.", "/start"),
                ("Expected boolean - got string.", "/groupby_tanks"),
            ],
        )

    def test_one_of(self) -> None:
        """The categories id (40-hex or TANK_) reports each failed branch with its /oneOf prefix."""
        self.assertEqual(self.check("getArchiveCategories", {"id": ARCHIVE_ID}), [])
        self.assertEqual(self.check("getArchiveCategories", {"id": "TANK_1795822351"}), [])
        self.assertEqual(
            self.check("getArchiveCategories", {"id": "nope"}),
            [
                ("/oneOf/0 String is too short: 4/40.", "/id"),
                ("/oneOf/0 String does not match ^[0-9a-f]{40}$.", "/id"),
                ("/oneOf/1 String is too short: 4/15.", "/id"),
                ("/oneOf/1 String does not match ^TANK_[0-9]{10}$.", "/id"),
            ],
        )

    def test_uri_format(self) -> None:
        """download_url's url query parameter gets JSON::Validator's uri format messages."""
        self.assertEqual(self.check("downloadUrl", url="https://example.com/g/1"), [])
        self.assertEqual(self.check("downloadUrl", url="//example.com/"), [("Scheme missing.", "/url")])
        self.assertEqual(self.check("downloadUrl", url=""), [("Scheme, path or fragment are required.", "/url")])
        self.assertEqual(self.check("downloadUrl", url="http://ex.com/%zz"), [("Invalid hex escape.", "/url")])
        self.assertEqual(
            self.check("downloadUrl", url="http://ex.com/\u00e9"),
            [("An URI can only only contain ASCII characters.", "/url")],
        )

    def test_defaults_need_no_value(self) -> None:
        """Absent optional parameters with defaults are fine; required ones are "Missing property."."""
        self.assertEqual(self.check("searchRandomArchives"), [])
        self.assertEqual(self.check("queueMinionJob", {"jobname": "find_duplicates"}), [("Missing property.", "/args")])

    def test_undeclared_parameters_ignored(self) -> None:
        """Query parameters the spec does not declare (like ?key=) are not validated."""
        self.assertEqual(self.check("getServerInfo", key="whatever", start="abc"), [])

    @settings(max_examples=400, deadline=None)
    @given(data=st.data())
    def test_validate_never_raises(self, data: st.DataObject) -> None:
        """Arbitrary strings in every parameter of every operation yield a list, never an exception."""
        op: Operation = data.draw(st.sampled_from(self.contract.operations))
        # Any text (lone surrogates included), plus number-like strings to reach the bounds checks.
        anything = st.text(alphabet=st.characters(exclude_categories=()), max_size=60)
        numeric = st.from_regex(r"-?[0-9]{1,30}(\.[0-9]+)?(e[0-9]+)?", fullmatch=True)
        text = anything | numeric
        path = {p.name: data.draw(text) for p in op.parameters if p.location == "path"}
        query = {
            p.name: data.draw(st.lists(text, max_size=3))
            for p in op.parameters
            if p.location == "query" and data.draw(st.booleans())
        }
        query.update(data.draw(st.dictionaries(st.text(max_size=8), st.lists(text, max_size=2), max_size=3)))
        errors = validate_request(op, path, query)
        self.assertIsInstance(errors, list)
        for message, pointer in errors:
            self.assertIsInstance(message, str)
            self.assertTrue(pointer.startswith("/"))


class BodyTests(SynchronousTestCase):
    """validate_body() and negotiate_content_type(): the original's body checks before handlers."""

    def setUp(self) -> None:
        self.contract = Contract.load()

    def test_accepted_types(self) -> None:
        """A multipart body with a boundary is accepted; so is urlencoded where the spec allows it."""
        self.assertEqual(validate_body(self.contract.by_id("downloadUrl"), "multipart/form-data; boundary=xyz", True), [])
        create = self.contract.by_id("createCategory")
        self.assertEqual(validate_body(create, "application/x-www-form-urlencoded", True), [])

    def test_wrong_type_lists_accepted_types(self) -> None:
        """A refused Content-Type is quoted whole after the sorted accepted types."""
        self.assertEqual(
            validate_body(self.contract.by_id("createCategory"), "text/plain; charset=UTF-8", True),
            [("Expected application/x-www-form-urlencoded, multipart/form-data - got text/plain; charset=UTF-8.", "/body")],
        )

    def test_required_body(self) -> None:
        """A required body that is absent is "Missing property." at /body."""
        self.assertEqual(validate_body(self.contract.by_id("uploadArchive"), None, False), [("Missing property.", "/body")])
        self.assertEqual(validate_body(self.contract.by_id("getArchive"), "text/plain", True), [])

    def test_negotiation_quirks(self) -> None:
        """Two Content-Type parameters defeat negotiation, as they do in JSON::Validator."""
        accepts = ("multipart/form-data",)
        self.assertEqual(negotiate_content_type(accepts, "Multipart/Form-Data"), "multipart/form-data")
        self.assertIsNone(negotiate_content_type(accepts, "multipart/form-data; boundary=x; charset=utf-8"))
        self.assertEqual(negotiate_content_type(accepts, "*/*"), "multipart/form-data")
        self.assertIsNone(negotiate_content_type(accepts, ""))

    @settings(max_examples=200, deadline=None)
    @given(header=st.text(max_size=60))
    def test_negotiation_never_raises(self, header: str) -> None:
        """Any Content-Type string negotiates to an accepted type or None."""
        self.assertIn(negotiate_content_type(("a/b", "multipart/form-data"), header), (None, "a/b", "multipart/form-data"))


class ResponseSchemaTests(SynchronousTestCase):
    """response_schema() and schema_registry(): checking response bodies against the spec."""

    def setUp(self) -> None:
        self.contract = Contract.load()

    def _validator(self, schema: dict[str, Any]) -> jsonschema.protocols.Validator:
        return jsonschema.Draft202012Validator(schema, registry=self.contract.schema_registry())

    def test_golden_metadata_conforms(self) -> None:
        """The original's archive metadata response validates through a components $ref."""
        op = self.contract.by_id("getArchiveMetadata")
        schema = self.contract.response_schema(op, 200, "application/json;charset=UTF-8")
        assert schema is not None
        body = json.loads(_require(GOLDEN / "get_archive_metadata.json").read_text(encoding="utf-8"))
        self._validator(schema).validate(body)
        broken = dict(body, pagecount="many")
        self.assertFalse(self._validator(schema).is_valid(broken))

    def test_component_schema(self) -> None:
        """component_schema() names a components schema that resolves through the registry."""
        validator = self._validator(self.contract.component_schema("OperationResponse"))
        self.assertTrue(validator.is_valid({"operation": "x", "success": 1}))
        self.assertRaises(KeyError, self.contract.component_schema, "NoSuchSchema")

    def test_missing_responses(self) -> None:
        """Undeclared statuses and content types have no schema; a body-less 204 neither."""
        search = self.contract.by_id("searchArchives")
        self.assertIsNone(self.contract.response_schema(search, 418))
        self.assertIsNone(self.contract.response_schema(search, 204))
        self.assertIsNone(self.contract.response_schema(search, 200, "text/html"))
        self.assertIsNotNone(self.contract.response_schema(self.contract.by_id("getPage"), 200, "application/octet-stream"))
