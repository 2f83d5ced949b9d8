"""Conformance with the OpenAPI contract: every operation routed, secured as specified, answers valid.

Each of the spec's 76 operations is called over real HTTP with parameters made from its own
schema: without credentials a protected one must answer the plugin-style 401; with them it must
be routed (never 404/405), and an implemented one's JSON must validate against the spec's schema.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Mapping
from urllib.parse import quote, urlencode

from jsonschema import Draft202012Validator
from twisted.internet.defer import Deferred

from lrrd.api.contract import Contract, Operation
from tests.fixtures.app import ApiTestCase

TOTAL_OPERATIONS = 76


def sample_value(schema: Mapping[str, Any]) -> str:
    """A value that satisfies a parameter schema, for building valid requests."""
    if "oneOf" in schema:
        return sample_value(schema["oneOf"][0])
    if "enum" in schema:
        return str(schema["enum"][0])
    kind = schema.get("type")
    if kind == "integer" or kind == "number":
        return str(max(int(schema.get("minimum", 1)), 1))
    if kind == "boolean":
        return "true"
    length = schema.get("minLength")
    if length == 40 or schema.get("pattern", "").endswith("{40}$"):
        return "a" * 40
    if length == 14:
        return "SET_0000000001"
    if length == 15:
        return "TANK_0000000001"
    if schema.get("format") == "uri":
        return "http://example.invalid/gallery"
    return "x"


def build_path(operation: Operation) -> str:
    path = operation.path
    query: dict[str, str] = {}
    for parameter in operation.parameters:
        value = sample_value(parameter.schema)
        if parameter.location == "path":
            path = path.replace("{" + parameter.name + "}", quote(value, safe=""))
        elif parameter.location == "query" and parameter.required:
            query[parameter.name] = "[]" if parameter.name == "args" else value
    return "/api" + path + ("?" + urlencode(query) if query else "")


def implemented_summary() -> str:
    """``implemented: N/76`` for the site as built now (printed by tools/run_tests.py too)."""
    from lrrd.api.root import implemented_operations
    from lrrd.api.site import build_api_areas
    from lrrd.config import Settings
    from lrrd.services import Services
    from lrrd.store.redis import RedisAddress, RedisStore

    contract = Contract.load()
    ids = {op.operation_id for op in contract.operations}
    done: set[str] = set()
    for area in build_api_areas(Services(Settings(), RedisStore(RedisAddress()), None)):
        done |= implemented_operations(area) & ids
    return f"implemented: {len(done)}/{len(ids)}"


class ConformanceTests(ApiTestCase):
    timeout = 120

    def test_contract_size(self) -> None:
        """The packaged contract holds the spec's 76 operations."""
        self.assertEqual(len(Contract.load().operations), TOTAL_OPERATIONS)

    def test_every_operation(self) -> Deferred[None]:
        """Every operation is routed, protected ones need the key, and implemented JSON validates."""
        async def run() -> None:
            contract = Contract.load()
            registry = contract.schema_registry()
            implemented = 0
            for operation in contract.operations:
                path = build_path(operation)
                label = f"{operation.method} {path} ({operation.operation_id})"
                if operation.protected:
                    anonymous = await self.request(operation.method, path)
                    self.assertEqual(anonymous.status, 401, label)
                    self.assertEqual(anonymous.json["errors"][0]["path"], "/security/0/api_key")
                response = await self.request(operation.method, path, auth=True)
                # A 404 the spec declares for the operation (a missing resource, JSON from the
                # handler) is an answer; only the router's own 404/405 mean "not routed".
                declared_404 = (response.status == 404 and "404" in operation.responses
                                and "errors" not in response.json)
                if not declared_404:
                    self.assertNotIn(response.status, (404, 405), label)
                self.assertNotEqual(response.status, 500, label + " " + repr(response.body[:300]))
                if response.status == 501:
                    self.assertEqual(response.json, {"operation": operation.operation_id,
                                                     "error": "not implemented yet",
                                                     "success": 0}, label)
                    continue
                implemented += 1
                content_type = (response.header("content-type") or "").split(";")[0]
                schema = contract.response_schema(operation, response.status, content_type)
                if schema is not None and content_type == "application/json":
                    errors = sorted(
                        Draft202012Validator(schema, registry=registry).iter_errors(
                            json.loads(response.body)),
                        key=str)
                    self.assertEqual(errors, [], label)
            summary = implemented_summary()
            self.assertEqual(summary, f"implemented: {implemented}/{TOTAL_OPERATIONS}")
            sys.__stdout__.write(f"\n{summary}\n")
        return Deferred.fromCoroutine(run())
