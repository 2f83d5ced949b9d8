"""The LANraragi HTTP contract as data: its operations, routing by path template, and request checks
worded exactly like the original server's (Mojolicious::Plugin::OpenAPI over JSON::Validator 5).

The facts come from ``contract.json``, generated from the OpenAPI spec by ``tools/make_contract.py``
so that nothing here needs PyYAML.  Clients of LANraragi parse its 400 bodies, so the messages below
copy JSON::Validator's wording, ordering and coercion rules rather than jsonschema's.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence, TypeGuard

if TYPE_CHECKING:
    from referencing import Registry

__all__ = [
    "CONTRACT_URI",
    "JSON_SCHEMA_DIALECT",
    "Contract",
    "Operation",
    "Parameter",
    "negotiate_content_type",
    "validate_body",
    "validate_request",
]

# Base URI of the contract document in schema_registry(): response schemas handed out by
# Contract.response_schema() point their "#/components/..." references here, because a bare "#"
# would resolve against the response schema itself, which has no components.
CONTRACT_URI = "urn:lrrd:contract"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

Error = tuple[str, str]
"""One validation failure: (message, JSON pointer), as in the original's ``errors`` array."""


@dataclass(frozen=True)
class Parameter:
    """One declared path or query parameter; ``schema`` is the spec's JSON Schema for its value."""

    name: str
    location: str
    required: bool
    schema: Mapping[str, Any] = field(hash=False)


@dataclass(frozen=True)
class Operation:
    """One method on one path template of the API, as the spec declares it.

    ``path`` is the template without the ``/api`` prefix the original mounts every route under.
    ``protected`` is true when the spec demands the api_key security scheme; the spec's ``security: []``
    (and, as the spec has no top-level default, an absent ``security``) means public.
    ``responses`` maps status (a string) to content type to the raw response schema.
    """

    operation_id: str
    method: str
    path: str
    area: str
    protected: bool
    parameters: tuple[Parameter, ...]
    request_content_types: tuple[str, ...]
    responses: Mapping[str, Any] = field(hash=False)
    request_body_required: bool = False
    deprecated: bool = False


@dataclass(frozen=True)
class _Route:
    """A path template split into segments; ``None`` marks a template segment."""

    operation: Operation
    literals: tuple[str | None, ...]
    names: tuple[str | None, ...]
    # Literal segments beat template segments, leftmost first: /categories/bookmark_link/{id} is
    # preferred to /categories/{id}/{archive}, as the original's routing does in practice.
    specificity: tuple[int, ...]

    def bind(self, segments: Sequence[str]) -> dict[str, str] | None:
        params: dict[str, str] = {}
        for literal, name, segment in zip(self.literals, self.names, segments):
            if literal is not None:
                if segment != literal:
                    return None
            elif not segment or name is None:
                # Mojolicious placeholders never match an empty segment.
                return None
            else:
                params[name] = segment
        return params


def _route(operation: Operation) -> _Route:
    literals: list[str | None] = []
    names: list[str | None] = []
    for segment in operation.path.strip("/").split("/"):
        if segment.startswith("{") and segment.endswith("}"):
            literals.append(None)
            names.append(segment[1:-1])
        else:
            literals.append(segment)
            names.append(None)
    return _Route(
        operation=operation,
        literals=tuple(literals),
        names=tuple(names),
        specificity=tuple(0 if literal is None else 1 for literal in literals),
    )


def _split_path(path: str) -> list[str] | None:
    """Segments of an API path (the part after ``/api``), or None when it cannot name a route."""
    if not path.startswith("/") or path == "/":
        return None
    if path.endswith("/"):
        path = path[:-1]
    return path[1:].split("/")


def _parameter(raw: Mapping[str, Any]) -> Parameter:
    return Parameter(
        name=raw["name"],
        location=raw["in"],
        required=bool(raw.get("required", False)),
        schema=MappingProxyType(dict(raw.get("schema", {}))),
    )


def _operation(raw: Mapping[str, Any]) -> Operation:
    body = raw.get("requestBody") or {}
    return Operation(
        operation_id=raw["operationId"],
        method=raw["method"].upper(),
        path=raw["path"],
        area=raw["area"],
        protected=bool(raw["protected"]),
        parameters=tuple(_parameter(p) for p in raw.get("parameters", ())),
        # Sorted, because the original lists them sorted in its "Expected ... - got ..." message.
        request_content_types=tuple(sorted(body.get("content", {}))),
        responses=MappingProxyType(dict(raw.get("responses", {}))),
        request_body_required=bool(body.get("required", False)),
        deprecated=bool(raw.get("deprecated", False)),
    )


def _absolute_refs(node: Any) -> Any:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            is_local_ref = key == "$ref" and isinstance(value, str) and value.startswith("#")
            out[key] = CONTRACT_URI + value if is_local_ref else _absolute_refs(value)
        return out
    if isinstance(node, list):
        return [_absolute_refs(item) for item in node]
    return node


def _schema_patterns(schema: Any) -> Iterable[str]:
    if isinstance(schema, Mapping):
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            yield pattern
        for value in schema.values():
            yield from _schema_patterns(value)
    elif isinstance(schema, list):
        for item in schema:
            yield from _schema_patterns(item)


class Contract:
    """The operations of the API, with lookup by id and by (method, path)."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self._document = document
        self.operations: tuple[Operation, ...] = tuple(_operation(o) for o in document["operations"])
        self._by_id = {op.operation_id: op for op in self.operations}
        if len(self._by_id) != len(self.operations):
            raise ValueError("contract has duplicate operationIds")
        self._routes: dict[int, list[_Route]] = {}
        for op in self.operations:
            route = _route(op)
            self._routes.setdefault(len(route.literals), []).append(route)
            # Compile every parameter pattern now, so a pattern Python cannot read fails at load
            # time instead of inside a request.
            for param in op.parameters:
                for pattern in _schema_patterns(param.schema):
                    _compiled(pattern)
        self._registry: Registry[Any] | None = None

    @classmethod
    def load(cls) -> Contract:
        """The contract packaged with lrrd, parsed once per process."""
        return _packaged_contract()

    def by_id(self, operation_id: str) -> Operation:
        """The operation with this operationId; KeyError if the spec has none."""
        return self._by_id[operation_id]

    def match(self, method: str, path: str) -> tuple[Operation, dict[str, str]] | None:
        """The operation serving ``method`` on ``path`` and its path parameters, or None.

        ``path`` is what follows ``/api``, already percent-decoded; it is split on "/", so a decoded
        "%2F" separates segments, as it does in Mojolicious.  One trailing slash is ignored.  Only
        templates that declare ``method`` compete, so ``GET /archives/upload`` reaches
        ``/archives/{id}`` (and fails its length check) as it does on the original; HEAD is served
        by GET.  Among the rest, literal segments beat template segments, leftmost first.
        """
        segments = _split_path(path)
        if segments is None:
            return None
        wanted = method.upper()
        if wanted == "HEAD":
            wanted = "GET"
        best: tuple[tuple[int, ...], Operation, dict[str, str]] | None = None
        for route in self._routes.get(len(segments), ()):
            if route.operation.method != wanted:
                continue
            params = route.bind(segments)
            if params is not None and (best is None or route.specificity > best[0]):
                best = (route.specificity, route.operation, params)
        return None if best is None else (best[1], best[2])

    def methods_for(self, path: str) -> list[str]:
        """Sorted methods of every template matching ``path``: empty means 404, else 405 and Allow.

        OPTIONS is not included: the original answers it for every path itself, outside the spec.
        """
        segments = _split_path(path)
        if segments is None:
            return []
        return sorted(
            {
                route.operation.method
                for route in self._routes.get(len(segments), ())
                if route.bind(segments) is not None
            }
        )

    def schema_registry(self) -> Registry[Any]:
        """A ``referencing.Registry`` holding the contract's components at CONTRACT_URI.

        Imported lazily: jsonschema and referencing are test dependencies, not runtime ones.
        """
        if self._registry is None:
            from referencing import Registry
            from referencing.jsonschema import DRAFT202012

            resource = DRAFT202012.create_resource({"components": self._document["components"]})
            self._registry = Registry().with_resource(CONTRACT_URI, resource)
        return self._registry

    def response_schema(
        self, op: Operation, status: int, content_type: str = "application/json"
    ) -> dict[str, Any] | None:
        """The JSON Schema for ``op``'s response, ready for jsonschema with schema_registry().

        Falls back to a ``default`` response as JSON::Validator does; parameters of the content
        type (``;charset=UTF-8``) are ignored.  None when the spec declares no such response.
        """
        by_type = op.responses.get(str(status))
        if by_type is None:
            by_type = op.responses.get("default")
        if by_type is None:
            return None
        schema = by_type.get(content_type.split(";")[0].strip().lower())
        if schema is None:
            return None
        return {"$schema": JSON_SCHEMA_DIALECT, **_absolute_refs(schema)}

    def component_schema(self, name: str) -> dict[str, Any]:
        """A schema referring to ``#/components/schemas/<name>``, for use with schema_registry()."""
        if name not in self._document["components"]["schemas"]:
            raise KeyError(name)
        return {"$schema": JSON_SCHEMA_DIALECT, "$ref": f"{CONTRACT_URI}#/components/schemas/{name}"}


@cache
def _packaged_contract() -> Contract:
    text = resources.files("lrrd.api").joinpath("contract.json").read_text(encoding="utf-8")
    return Contract(json.loads(text))


# ---------------------------------------------------------------------------------------------
# Request validation, after JSON::Validator::Schema 5.x and its OpenAPIv3 subclass.

# JSON::Validator coerces request strings to numbers only when they look like JSON numbers.  Digits
# are ASCII here where Perl's \d would also take other scripts' digits: Python's int() reads those
# differently from Perl's numification, so accepting them would let handlers see another number.
_NUMBER = re.compile(r"^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?$")
_INTEGER = re.compile(r"^-?[0-9]+$")
# Perl's "$" also matches before a final newline, and so does Python's: "true\n" is true there too.
_FALSE = re.compile(r"^(0|false|)$")
_TRUE = re.compile(r"^(1|true)$")
# Data::Dumper prints these unquoted, so JSON::Validator's enum check sees "5" and 5 as equal.
_DUMPER_NUMBER = re.compile(r"^(?:0|-?[1-9][0-9]{0,8})\Z")
# Python refuses to turn longer digit strings into int; Perl would make them a float anyway.
_MAX_INT_DIGITS = 4000


@dataclass(frozen=True)
class _Failure:
    """A JSON::Validator error: ``path`` is relative to the value checked, "" for the value itself.

    Type errors keep what was expected and what was found, because oneOf/anyOf/allOf merge them.
    """

    path: str
    message: str
    expected: str | None = None
    got: str | None = None


def _type_failure(path: str, expected: str, got: str) -> _Failure:
    return _Failure(path, f"Expected {expected} - got {got}.", expected, got)


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _perl_str(value: Any) -> str:
    """How Perl prints a number (or other scalar) in a message."""
    if isinstance(value, bool):
        return "1" if value else ""
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Inf" if value > 0 else "-Inf"
        return "%.15g" % value
    return str(value)


def json_type_name(value: Any) -> str:
    """The JSON type of a decoded value, in the validator's words ("object", "number"...)."""
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return "string"


def _checksum(value: Any) -> tuple[str, str]:
    """Equality key for enum/const, after JSON::Validator's Data::Dumper checksum."""
    if value is None:
        return ("undef", "")
    if isinstance(value, bool):
        return ("bool", str(value))
    if isinstance(value, (str, int, float)):
        text = value if isinstance(value, str) else _perl_str(value)
        return ("number" if _DUMPER_NUMBER.match(text) else "string", text)
    return ("json", json.dumps(value, sort_keys=True))


def _enum_item(value: Any) -> str:
    if value is None or isinstance(value, (bool, list, dict)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return _perl_str(value)


_TYPE_HINTS = (
    ("object", ("additionalProperties", "patternProperties", "properties", "propertyNames", "required")),
    ("object", ("maxProperties", "minProperties")),
    ("array", ("additionalItems", "items", "uniqueItems", "maxItems", "minItems")),
    ("string", ("pattern", "maxLength", "minLength")),
    ("number", ("multipleOf", "maximum", "minimum")),
)


def _guessed_type(schema: Mapping[str, Any], value: Any) -> str:
    """JSON::Validator's schema_type() for a schema without ``type``, checked against the data."""
    for guess, keywords in _TYPE_HINTS:
        if any(k in schema for k in keywords):
            return guess if json_type_name(value) == guess else ""
    return ""


def _check_uri(value: str) -> str | None:
    """JSON::Validator::Formats::check_uri: None when valid, else its message."""
    if any(ord(c) > 127 for c in value):
        return "An URI can only only contain ASCII characters."
    # Always matches: every part is optional.
    m = re.match(r"(([^:/?#]+):)?(//([^/?#]*))?([^?#]*)(\?([^#]*))?(#(.*))?", value)
    assert m is not None
    scheme, authority, path, has_fragment = (m.group(i) or "" for i in (2, 4, 5, 8))
    if authority and not scheme:
        return "Scheme missing."
    if not (scheme or path or has_fragment):
        return "Scheme, path or fragment are required."
    if scheme and not re.match(r"^[a-z][a-z0-9+\-.]*$", scheme.lower()):
        return "Scheme must begin with a letter."
    if re.search(r"%[^0-9a-f]", value, re.IGNORECASE):
        return "Invalid hex escape."
    if re.search(r"%[0-9a-f](:?[^0-9a-f]|$)", value, re.IGNORECASE):
        return "Hex escapes are not complete."
    if authority:
        if path and not path.startswith("/"):
            return "Path cannot be empty and must begin with a /"
    elif path.startswith("//"):
        return "Path cannot not start with //."
    return None


# Formats JSON::Validator checks that lrrd's spec uses on parameters; others pass, as the original's
# missing format rules do.
_FORMATS = {"uri": _check_uri}


class _Validator:
    """One pass of JSON::Validator's _validate over a request value.

    Each check returns its failures and the value as coerced (a query string becomes a number or a
    boolean), because enum and const compare the coerced value.
    """

    def validate(self, value: Any, schema: Any, path: str = "") -> tuple[list[_Failure], Any]:
        if isinstance(schema, bool):
            return ([] if schema else [_Failure(path, "Should not match.")]), value
        if not isinstance(schema, Mapping):
            return [], value
        failures: list[_Failure] = []
        if "not" in schema and not self.validate(value, schema["not"], path)[0]:
            failures.append(_Failure(path, "Should not match."))
        if schema.get("allOf"):
            failures += self._all_of(value, schema["allOf"], path)
        if schema.get("anyOf"):
            failures += self._any_of(value, schema["anyOf"], path)
        if schema.get("oneOf"):
            failures += self._one_of(value, schema["oneOf"], path)

        declared = schema.get("type")
        if isinstance(declared, list):
            type_failures, value = self._any_type(value, schema, declared, path)
        elif declared or (declared := _guessed_type(schema, value)):
            type_failures, value = self._typed(value, schema, str(declared), path)
        else:
            type_failures = []
        failures += type_failures
        if failures:
            return failures, value

        if "const" in schema and _checksum(value) != _checksum(schema["const"]):
            failures.append(_Failure(path, f"Does not match const: {json.dumps(schema['const'], sort_keys=True)}."))
        enum = schema.get("enum")
        if enum and all(_checksum(value) != _checksum(item) for item in enum):
            failures.append(_Failure(path, f"Not in enum list: {', '.join(_enum_item(i) for i in enum)}."))
        return failures, value

    def _typed(self, value: Any, schema: Mapping[str, Any], kind: str, path: str) -> tuple[list[_Failure], Any]:
        if kind == "string":
            return self._string(value, schema, path), value
        if kind == "integer":
            return self._integer(value, schema, path)
        if kind == "number":
            return self._number(value, schema, path, "number")
        if kind == "boolean":
            return self._boolean(value, path)
        if kind == "array":
            return self._array(value, schema, path), value
        if kind == "null":
            return ([] if value is None else [_type_failure(path, "null", json_type_name(value))]), value
        if kind == "object":
            return ([] if isinstance(value, dict) else [_type_failure(path, "object", json_type_name(value))]), value
        return [], value

    def _string(self, value: Any, schema: Mapping[str, Any], path: str) -> list[_Failure]:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = _perl_str(value)  # coerce: strings => 1 in OpenAPI
        if not isinstance(value, str):
            return [_type_failure(path, "string", json_type_name(value))]
        failures = []
        check = _FORMATS.get(str(schema.get("format", "")))
        if check is not None and (problem := check(value)) is not None:
            failures.append(_Failure(path, problem))
        if isinstance(schema.get("maxLength"), int) and len(value) > schema["maxLength"]:
            failures.append(_Failure(path, f"String is too long: {len(value)}/{schema['maxLength']}."))
        if isinstance(schema.get("minLength"), int) and len(value) < schema["minLength"]:
            failures.append(_Failure(path, f"String is too short: {len(value)}/{schema['minLength']}."))
        pattern = schema.get("pattern")
        if isinstance(pattern, str) and not _compiled(pattern).search(value):
            failures.append(_Failure(path, f"String does not match {pattern}."))
        return failures

    def _number(self, value: Any, schema: Mapping[str, Any], path: str, expected: str) -> tuple[list[_Failure], Any]:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            return [_type_failure(path, expected, json_type_name(value))], value
        if isinstance(value, str):
            if not _NUMBER.match(value):
                return [_type_failure(path, expected, "string")], value
            number: float = float(value)
            coerced: Any = int(value) if _INTEGER.match(value) and len(value) <= _MAX_INT_DIGITS else number
        else:
            number = float(value)
            coerced = value
        # Messages quote the value as received, as Perl does with its untouched copy.
        shown = value if isinstance(value, str) else _perl_str(value)
        failures = []
        ex_max, maximum = schema.get("exclusiveMaximum"), schema.get("maximum")
        if isinstance(ex_max, bool):
            if ex_max and _is_number(maximum) and not number < maximum:
                failures.append(_Failure(path, f"{shown} >= maximum({_perl_str(maximum)})"))
        elif _is_number(ex_max) and not number < ex_max:
            failures.append(_Failure(path, f"{shown} >= maximum({_perl_str(ex_max)})"))
        if _is_number(maximum) and not number <= maximum:
            failures.append(_Failure(path, f"{shown} > maximum({_perl_str(maximum)})"))
        ex_min, minimum = schema.get("exclusiveMinimum"), schema.get("minimum")
        if isinstance(ex_min, bool):
            if ex_min and _is_number(minimum) and not number > minimum:
                failures.append(_Failure(path, f"{shown} <= minimum({_perl_str(minimum)})"))
        elif _is_number(ex_min) and not number > ex_min:
            failures.append(_Failure(path, f"{shown} <= minimum({_perl_str(ex_min)})"))
        if _is_number(minimum) and not number >= minimum:
            failures.append(_Failure(path, f"{shown} < minimum({_perl_str(minimum)})"))
        divisor = schema.get("multipleOf")
        if _is_number(divisor) and divisor and math.isfinite(number):
            # Perl's own test: the printed quotient has a fractional part without zeros.
            if re.search(r"\.[^0]+$", _perl_str(number / divisor)):
                failures.append(_Failure(path, f"Not multiple of {_perl_str(divisor)}."))
        return failures, coerced

    def _integer(self, value: Any, schema: Mapping[str, Any], path: str) -> tuple[list[_Failure], Any]:
        failures, coerced = self._number(value, schema, path, "integer")
        if failures:
            # Bounds are checked before integrality: "0.5" against minimum 1 says "0.5 < minimum(1)".
            return failures, value
        text = value if isinstance(value, str) else _perl_str(value)
        if not _INTEGER.match(text):
            return [_type_failure(path, "integer", json_type_name(value))], value
        return [], coerced

    def _boolean(self, value: Any, path: str) -> tuple[list[_Failure], Any]:
        if isinstance(value, bool):
            return [], value
        if isinstance(value, (str, int, float)):
            text = value if isinstance(value, str) else _perl_str(value)
            if _FALSE.match(text):
                return [], False
            if _TRUE.match(text):
                return [], True
        return [_type_failure(path, "boolean", json_type_name(value))], value

    def _array(self, value: Any, schema: Mapping[str, Any], path: str) -> list[_Failure]:
        if not isinstance(value, list):
            return [_type_failure(path, "array", json_type_name(value))]
        failures = []
        if isinstance(schema.get("minItems"), int) and len(value) < schema["minItems"]:
            failures.append(_Failure(path, f"Not enough items: {len(value)}/{schema['minItems']}."))
        if isinstance(schema.get("maxItems"), int) and len(value) > schema["maxItems"]:
            failures.append(_Failure(path, f"Too many items: {len(value)}/{schema['maxItems']}."))
        if schema.get("uniqueItems") and len({_checksum(v) for v in value}) < len(value):
            failures.append(_Failure(path, "Unique items required."))
        items = schema.get("items")
        if isinstance(items, Mapping):
            for index, item in enumerate(value):
                failures += self.validate(item, items, f"{path}/{index}")[0]
        return failures

    def _any_type(
        self, value: Any, schema: Mapping[str, Any], types: list[Any], path: str
    ) -> tuple[list[_Failure], Any]:
        failures: list[_Failure] = []
        for kind in types:
            found, coerced = self._typed(value, schema, str(kind), path)
            if not found:
                return [], coerced
            failures += found
        specific = [f for f in failures if f.expected is None or f.path != path]
        if specific:
            return specific, value
        wanted = "/".join(dict.fromkeys(str(f.expected) for f in failures))
        return [_type_failure(path, wanted, str(failures[-1].got))], value

    def _combine(self, kind: str, path: str, per_rule: list[tuple[int, list[_Failure]]]) -> list[_Failure]:
        """JSON::Validator's prefix_errors, or one merged type error when only types failed."""
        failures = [f for _, found in per_rule for f in found]
        if len(failures) == 1 or any(f.expected is None or f.path != path for f in failures):
            return [
                _Failure(f.path, re.sub(r"(\d+)\s/", r"\1/", f"/{kind}/{index} {f.message}"))
                for index, found in per_rule
                for f in found
            ]
        wanted = "/".join(dict.fromkeys(str(f.expected) for f in failures))
        return [_Failure(path, f"/{kind} Expected {wanted} - got {failures[-1].got}.", kind, failures[-1].got)]

    def _all_of(self, value: Any, rules: list[Any], path: str) -> list[_Failure]:
        per_rule = [(i, found) for i, rule in enumerate(rules) if (found := self.validate(value, rule, path)[0])]
        return self._combine("allOf", path, per_rule) if per_rule else []

    def _any_of(self, value: Any, rules: list[Any], path: str) -> list[_Failure]:
        per_rule = []
        for i, rule in enumerate(rules):
            found = self.validate(value, rule, path)[0]
            if not found:
                return []
            per_rule.append((i, found))
        return self._combine("anyOf", path, per_rule)

    def _one_of(self, value: Any, rules: list[Any], path: str) -> list[_Failure]:
        passed: list[int] = []
        per_rule: list[tuple[int, list[_Failure]]] = []
        for i, rule in enumerate(rules):
            found = self.validate(value, rule, path)[0]
            if found:
                per_rule.append((i, found))
            else:
                passed.append(i)
        if len(passed) == 1:
            return []
        if not per_rule:
            return [_Failure(path, "All of the oneOf rules match.")]
        if passed:
            return [_Failure(path, f"oneOf rules {', '.join(map(str, passed))} match.")]
        return self._combine("oneOf", path, per_rule)


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def validate_request(op: Operation, path_params: Mapping[str, str], query: Mapping[str, Sequence[str]]) -> list[Error]:
    """Check ``op``'s declared path and query parameters as the original does before any handler.

    Returns (message, pointer) pairs in the original's words and order (parameters in spec order,
    path-level ones first); an empty list means the request may proceed.  A repeated query parameter
    counts by its last value, an empty list of values as absent, and an absent parameter with a
    default as valid.  Request bodies are left to validate_body() and the handlers.  Never raises.
    """
    validator = _Validator()
    errors: list[Error] = []
    for param in op.parameters:
        if param.location == "path":
            present = param.name in path_params
            value: Any = _text(path_params.get(param.name, ""))
        elif param.location == "query":
            raw = query.get(param.name) or []
            values = [_text(v) for v in ([raw] if isinstance(raw, (str, bytes)) else raw)]
            present = bool(values)
            # JSON::Validator keeps the last value unless the schema wants an array.
            value = values if param.schema.get("type") == "array" else (values[-1] if values else "")
        else:
            continue
        if not present:
            if "default" not in param.schema and param.required:
                errors.append(("Missing property.", f"/{param.name}"))
            continue
        failures, _ = validator.validate(value, param.schema)
        for failure in sorted(failures, key=lambda f: f.path):
            # _prefix_error_path: the parameter name, then the inner pointer if it names anything.
            suffix = failure.path if re.search(r"\w", failure.path) else ""
            errors.append((failure.message, f"/{param.name}{suffix}"))
    return errors


def negotiate_content_type(accepts: Sequence[str], header: str | None) -> str | None:
    """JSON::Validator::Util::negotiate_content_type: the accepted type ``header`` selects, or None.

    Kept quirk for quirk: a Content-Type with two parameters (``multipart/form-data; boundary=x;
    charset=y``) or a quoted boundary containing a space is not recognised, as in the original.
    Wildcards match literally otherwise, where the original would read the rest as a regex.
    """
    if not header:
        return None
    parts = header.split(",")
    while parts and parts[-1] == "":
        parts.pop()  # Perl's split drops trailing empty fields
    weights: dict[str, float] = {}
    for part in parts:
        if m := re.match(r"^\s*([^,; ]+)(?:\s*;\s*q\s*=\s*(\d+(?:\.\d+)?))?\s*$", part, re.IGNORECASE):
            weights[m.group(1).lower()] = float(m.group(2)) if m.group(2) else -3.0
        elif m := re.match(r"^\s*([^,; ]+)(?:\s*;\s*\w+\s*=\S+)?\s*$", part, re.IGNORECASE):
            weights[m.group(1).lower()] = -1.0
        else:
            weights[part.lower()] = -2.0
    offered = sorted(sorted(weights), key=lambda t: -weights[t])
    for accept in accepts:
        if accept in weights:
            return accept
    for accept in accepts:
        if "*" in accept and any(_wildcard(accept).search(t) for t in offered):
            return accept
    for offer in offered:
        if "*" in offer:
            for accept in accepts:
                if _wildcard(offer).search(accept):
                    return accept
    return None


def _wildcard(text: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(piece) for piece in text.split("*")))


def validate_body(op: Operation, content_type: str | None, has_body: bool) -> list[Error]:
    """The original's checks on a request body before a handler runs, except its schema.

    Its Content-Type must negotiate with the spec's (an absent one is taken as the first), and a
    required body must be present.  The body's fields are the handlers' to check.
    """
    accepts = op.request_content_types
    if not accepts:
        return []
    given = content_type or accepts[0]
    if negotiate_content_type(accepts, given) is None:
        return [(f"Expected {', '.join(accepts)} - got {given}.", "/body")]
    if op.request_body_required and not has_body:
        return [("Missing property.", "/body")]
    return []
