"""Generate lrrd/api/contract.json: the facts of the LANraragi OpenAPI spec, without its prose.

The server must not need PyYAML at runtime, and the spec's descriptions and examples are noise for
routing and validation, so this tool keeps only what the code acts on and writes it as sorted JSON.
Run it again whenever the spec changes; tests/test_contract.py fails while the two disagree.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SPEC = REPO_ROOT.parent / "shared" / "spec" / "lanraragi-openapi.yaml"
DEFAULT_OUTPUT = REPO_ROOT / "lrrd" / "api" / "contract.json"

HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")

# Prose and samples: nothing in lrrd reads them, and dropping them keeps the contract reviewable.
ANNOTATIONS = frozenset({"description", "summary", "example", "examples"})

# Operation keys this tool understands.  Anything else is refused rather than silently dropped, so a
# new fact in a future spec (callbacks, servers per operation...) cannot go unnoticed.
KNOWN_OPERATION_KEYS = frozenset(
    {"operationId", "tags", "security", "parameters", "requestBody", "responses", "deprecated"}
) | ANNOTATIONS
KNOWN_PARAMETER_KEYS = frozenset(
    {"name", "in", "required", "schema", "style", "explode", "allowEmptyValue", "allowReserved", "deprecated"}
) | ANNOTATIONS

# Schema keywords whose value is a map of names to subschemas: the names are data, not keywords,
# so a property called "summary" (the upload form has one) must survive the stripping.
SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})
SCHEMA_SINGLE = frozenset(
    {
        "items",
        "additionalItems",
        "additionalProperties",
        "unevaluatedItems",
        "unevaluatedProperties",
        "not",
        "if",
        "then",
        "else",
        "contains",
        "propertyNames",
    }
)
SCHEMA_LISTS = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})


class SpecError(Exception):
    """The spec holds something this tool does not know how to carry over faithfully."""


def _is_dropped(key: str) -> bool:
    return key in ANNOTATIONS or key.startswith("x-")


def clean_schema(schema: Any) -> Any:
    """Return a copy of a JSON Schema without annotations, keeping every validation keyword."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if _is_dropped(key):
            continue
        if key in SCHEMA_MAPS:
            out[key] = {name: clean_schema(sub) for name, sub in value.items()}
        elif key in SCHEMA_SINGLE:
            out[key] = [clean_schema(v) for v in value] if isinstance(value, list) else clean_schema(value)
        elif key in SCHEMA_LISTS:
            out[key] = [clean_schema(v) for v in value]
        else:
            # enum, const, default, required, type, bounds, $ref...: literal data, copied as is.
            out[key] = value
    return out


def _clean_parameter(param: dict[str, Any], where: str) -> dict[str, Any]:
    if "$ref" in param:
        raise SpecError(f"{where}: parameter $ref is not supported by this tool")
    unknown = {k for k in param if not k.startswith("x-")} - KNOWN_PARAMETER_KEYS
    if unknown:
        raise SpecError(f"{where}: unknown parameter keys {sorted(unknown)}")
    out = {k: v for k, v in param.items() if not _is_dropped(k) and k != "schema"}
    # OpenAPI: path parameters are always required; others default to optional.
    out["required"] = bool(param.get("required", param["in"] == "path"))
    out["schema"] = clean_schema(param.get("schema", {}))
    return out


def _merge_parameters(path_level: list[dict[str, Any]], op_level: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Path-level parameters first, then the operation's; the operation's win on (name, in).

    The order is the order in which the original validates them, and so the order of its errors.
    """
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for param in [*path_level, *op_level]:
        merged[(param["name"], param["in"])] = param
    return list(merged.values())


def _is_protected(security: list[dict[str, list[str]]]) -> bool:
    # A list of alternatives: protected only if none of them is the empty (anonymous) requirement.
    return bool(security) and all(bool(requirement) for requirement in security)


def build_contract(spec: dict[str, Any]) -> dict[str, Any]:
    """Turn the parsed OpenAPI document into the facts-only contract."""
    default_security = spec.get("security", [])
    schemes = spec.get("components", {}).get("securitySchemes", {})
    operations = []
    for path, item in spec["paths"].items():
        if path.startswith("x-"):
            continue
        path_params = [_clean_parameter(p, f"{path} parameters") for p in item.get("parameters", [])]
        for method, op in item.items():
            if method not in HTTP_METHODS:
                if method not in ("parameters",) and not method.startswith("x-") and method not in ANNOTATIONS:
                    raise SpecError(f"{path}: unknown path item key {method!r}")
                continue
            where = f"{method.upper()} {path}"
            unknown = {k for k in op if not k.startswith("x-")} - KNOWN_OPERATION_KEYS
            if unknown:
                raise SpecError(f"{where}: unknown operation keys {sorted(unknown)}")
            security = op.get("security", default_security)
            for requirement in security:
                for name in requirement:
                    if name not in schemes:
                        raise SpecError(f"{where}: unknown security scheme {name!r}")
            op_params = [_clean_parameter(p, where) for p in op.get("parameters", [])]
            request_body = None
            if "requestBody" in op:
                body = op["requestBody"]
                request_body = {
                    "required": bool(body.get("required", False)),
                    "content": {
                        content_type: {"schema": clean_schema(media.get("schema", {}))}
                        for content_type, media in body.get("content", {}).items()
                    },
                }
            responses = {
                str(status): {
                    content_type: clean_schema(media.get("schema", {}))
                    for content_type, media in (response.get("content") or {}).items()
                }
                for status, response in op["responses"].items()
            }
            tags = op.get("tags") or [""]
            operations.append(
                {
                    "operationId": op["operationId"],
                    "method": method.upper(),
                    "path": path,
                    "area": tags[0],
                    "protected": _is_protected(security),
                    "security": security,
                    "deprecated": bool(op.get("deprecated", False)),
                    "parameters": _merge_parameters(path_params, op_params),
                    "requestBody": request_body,
                    "responses": responses,
                }
            )
    operations.sort(key=lambda o: (o["path"], HTTP_METHODS.index(o["method"].lower())))
    ids = [o["operationId"] for o in operations]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise SpecError(f"duplicate operationIds {duplicates}")
    components = spec.get("components", {})
    return {
        "openapi": spec.get("openapi", ""),
        "version": spec.get("info", {}).get("version", ""),
        "operations": operations,
        "components": {
            "schemas": {name: clean_schema(s) for name, s in components.get("schemas", {}).items()},
            "securitySchemes": {
                name: {k: v for k, v in s.items() if not _is_dropped(k)} for name, s in schemes.items()
            },
        },
    }


def render(contract: dict[str, Any]) -> str:
    """Serialise deterministically, so regenerating an unchanged spec changes no byte."""
    return json.dumps(contract, sort_keys=True, indent=1, ensure_ascii=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", nargs="?", type=Path, default=DEFAULT_SPEC, help="OpenAPI YAML to read")
    parser.add_argument("--output", "-o", type=Path, default=DEFAULT_OUTPUT, help="contract JSON to write")
    args = parser.parse_args(argv)
    with args.spec.open(encoding="utf-8") as f:
        spec = yaml.safe_load(f)
    args.output.write_text(render(build_contract(spec)), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
