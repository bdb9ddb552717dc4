"""The JSON Schema of the report (report.schema.json, shipped in the package) and a validator of the part
of JSON Schema (draft 2020-12) it uses, so checking a baseline needs no dependency.

The keywords understood: $ref (to #/$defs/...), allOf, anyOf, type, const, enum, minimum, maximum,
required, properties, additionalProperties and items. tests/test_schema.py checks that the schema uses
no other and that this validator agrees with the `jsonschema` package.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable
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
    found = (_report_check() if schema is None else compile_schema(schema))(document)
    if found is None:
        return None
    where, why = found
    return f"{where.removeprefix('.') or 'the document'}: {why}"


# A compiled schema: None for a valid value, else (where within it, e.g. ".results[0].value", and why).
Check = Callable[[Any], "tuple[str, str] | None"]


@functools.cache
def _report_check() -> Check:
    return compile_schema(report_schema())


def compile_schema(root: dict[str, Any]) -> Check:
    """The schema as nested closures, built once: a report with a million groups is checked in seconds,
    the path of the first error put together only when there is one."""
    defs: dict[str, Check] = {}
    for name, part in root.get("$defs", {}).items():
        defs[name] = _compile(part, defs)
    return _compile(root, defs)


_JSON_TYPES = {  # the types json.loads makes
    dict: "object",
    list: "array",
    str: "string",
    bool: "boolean",
    type(None): "null",
    int: "integer",
    float: "number",
}


def _kind(value: Any) -> str:
    """The JSON type of a parsed value ("integer" for an int: the type check counts it as a number too)."""
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _is_number(value: Any) -> bool:
    return _kind(value) in ("integer", "number")


def _compile(schema: dict[str, Any], defs: dict[str, Check]) -> Check:
    """One schema node's checks in order ($ref, allOf, type, const, enum, bounds, required, properties,
    items, anyOf): the first failing one gives the error."""
    checks: list[Check] = []
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/$defs/")
        checks.append(lambda v: defs[name](v))  # looked up when run: a definition may refer to a later one
    checks += [_compile(part, defs) for part in schema.get("allOf", ())]
    if "type" in schema:
        allowed = [schema["type"]] if isinstance(schema["type"], str) else list(schema["type"])
        accepted = set(allowed) | ({"integer"} if "number" in allowed else set())
        checks.append(lambda v: None if _kind(v) in accepted else
                      ("", f"expected {' or '.join(allowed)}, found {_kind(v)}"))  # fmt: skip
    if "const" in schema:
        const = schema["const"]
        checks.append(lambda v: None if _equal(v, const) else ("", f"expected {json.dumps(const)}, found {_shown(v)}"))
    if "enum" in schema:
        options = schema["enum"]
        listed = ", ".join(json.dumps(o) for o in options)
        checks.append(lambda v: None if any(_equal(v, o) for o in options) else
                      ("", f"expected one of {listed}, found {_shown(v)}"))  # fmt: skip
    if "minimum" in schema or "maximum" in schema:
        low, high = schema.get("minimum", -math.inf), schema.get("maximum", math.inf)
        checks.append(lambda v: None if not _is_number(v) or low <= v <= high else
                      ("", f"{_shown(v)} is {'below the minimum' if v < low else 'above the maximum'} "
                           f"{low if v < low else high!r}"))  # fmt: skip
    if any(key in schema for key in ("required", "properties", "additionalProperties")):
        checks.append(_object_check(schema, defs))
    if "items" in schema:
        item_check = _compile(schema["items"], defs)
        checks.append(lambda v: _items(v, item_check))
    if "anyOf" in schema:
        parts = [_compile(part, defs) for part in schema["anyOf"]]
        checks.append(lambda v: _any_of(v, parts))
    if len(checks) == 1:
        return checks[0]

    def every(value: Any) -> tuple[str, str] | None:
        for check in checks:
            found = check(value)
            if found is not None:
                return found
        return None

    return every


def _object_check(schema: dict[str, Any], defs: dict[str, Check]) -> Check:
    required = list(schema.get("required", ()))
    properties = {key: _compile(part, defs) for key, part in schema.get("properties", {}).items()}
    extra = schema.get("additionalProperties")
    other = _compile(extra, defs) if isinstance(extra, dict) else None

    def check(value: Any) -> tuple[str, str] | None:
        if not isinstance(value, dict):
            return None
        missing = next((key for key in required if key not in value), None)
        if missing is not None:
            return "", f"no {missing!r} key"
        for key, item in value.items():
            rule = properties.get(key, other)
            found = rule(item) if rule is not None else None
            if found is not None:
                return f".{key}{found[0]}", found[1]
        return None

    return check


def _items(value: Any, check: Check) -> tuple[str, str] | None:
    if not isinstance(value, list):
        return None
    for index, item in enumerate(value):
        found = check(item)
        if found is not None:
            return f"[{index}]{found[0]}", found[1]
    return None


def _any_of(value: Any, parts: list[Check]) -> tuple[str, str] | None:
    problems = []
    for part in parts:
        found = part(value)
        if found is None:
            return None
        problems.append(f"{found[0].removeprefix('.')}: {found[1]}" if found[0] else found[1])
    return "", " or ".join(problems)


def _equal(value: Any, expected: Any) -> bool:
    """JSON equality: 1 equals 1.0, but true is not 1."""
    return isinstance(value, bool) == isinstance(expected, bool) and value == expected


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."
