"""The JSON Schema of the report (report.schema.json, shipped in the package) and a validator of the part
of JSON Schema (draft 2020-12) it uses, so checking a baseline needs no dependency.

The keywords understood: $ref (to #/$defs/...), allOf, anyOf, type, const, enum, minimum, maximum,
required, properties, additionalProperties and items. tests/test_schema.py checks that the schema uses
no other and that this validator agrees with the `jsonschema` package.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from importlib import resources
from typing import Any

KEYWORDS = frozenset(
    {"$ref", "allOf", "anyOf", "type", "const", "enum", "minimum", "maximum", "required", "properties",
     "additionalProperties", "items"}
)  # fmt: skip
ANNOTATIONS = frozenset({"$schema", "$id", "$defs", "title", "description"})  # no effect on validity


def schema_text() -> str:
    """The schema as shipped: what `smoothl1 schema` prints."""
    return resources.files("smoothl1_cli").joinpath("report.schema.json").read_text(encoding="utf-8")


@functools.cache
def report_schema() -> dict[str, Any]:
    """The report's schema, parsed once."""
    parsed: dict[str, Any] = json.loads(schema_text())
    return parsed


def first_error(document: Any, schema: dict[str, Any] | None = None) -> str | None:
    """Where and why `document` breaks the schema (the report's by default), or None where it is valid.

    >>> first_error({"schema_version": 1, "results": "none"}, {"properties": {"results": {"type": "array"}}})
    'results: expected array, found string'
    """
    root = report_schema() if schema is None else schema
    return next(_errors(document, root, root, "$"), None)


_TYPES: dict[str, Any] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
}


def _kind(value: Any) -> str:
    return next(name for name in ("null", "boolean", "integer", "number", "string", "array", "object")
                if _TYPES[name](value))  # fmt: skip


def _errors(value: Any, schema: dict[str, Any], root: dict[str, Any], where: str) -> Iterator[str]:
    """Every way `value` at `where` breaks `schema`, the first one first."""
    at = where.removeprefix("$").removeprefix(".") or "the document"
    if "$ref" in schema:
        target = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        yield from _errors(value, target, root, where)
    for part in schema.get("allOf", ()):
        yield from _errors(value, part, root, where)
    types = schema.get("type")
    if types is not None:
        allowed = [types] if isinstance(types, str) else types
        if not any(_TYPES[name](value) for name in allowed):
            yield f"{at}: expected {' or '.join(allowed)}, found {_kind(value)}"
            return
    if "const" in schema and not _equal(value, schema["const"]):
        yield f"{at}: expected {json.dumps(schema['const'])}, found {_shown(value)}"
    if "enum" in schema and not any(_equal(value, option) for option in schema["enum"]):
        yield f"{at}: expected one of {', '.join(json.dumps(o) for o in schema['enum'])}, found {_shown(value)}"
    if _TYPES["number"](value):
        if "minimum" in schema and value < schema["minimum"]:
            yield f"{at}: {_shown(value)} is below the minimum {schema['minimum']!r}"
        if "maximum" in schema and value > schema["maximum"]:
            yield f"{at}: {_shown(value)} is above the maximum {schema['maximum']!r}"
    if isinstance(value, dict):
        yield from (f"{at}: no {key!r} key" for key in schema.get("required", ()) if key not in value)
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            rule = properties.get(key, extra)
            if isinstance(rule, dict):
                yield from _errors(item, rule, root, f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            yield from _errors(item, schema["items"], root, f"{where}[{index}]")
    if "anyOf" in schema:
        problems = [next(_errors(value, part, root, where), None) for part in schema["anyOf"]]
        if all(problems):
            yield " or ".join(str(problem) for problem in problems)


def _equal(value: Any, expected: Any) -> bool:
    """JSON equality: 1 equals 1.0, but true is not 1."""
    return isinstance(value, bool) == isinstance(expected, bool) and value == expected


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."
