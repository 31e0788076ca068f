"""The slice of RFC 6902 JSON Patch that PowerOffice's PATCH endpoints need.

Only `replace`, `add` (same as replace for an existing property) and `test` on top-level
properties: that is what updating a flag like `/DenyTimeTracking` takes. Property names
match case-insensitively, as in ASP.NET.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from sandbox.problems import Problem

PATCH_MEDIA_TYPE = "application/json-patch+json"


@dataclass(frozen=True)
class PatchableField:
    attribute: str  # attribute name on the record
    convert: Callable[[Any], Any]  # raises ValueError/TypeError on a bad value


def strict_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise TypeError(f"expected true or false, got {value!r}")


def plain_str(value: Any) -> str:
    if isinstance(value, str) and value.strip():
        return value
    raise TypeError(f"expected a non-empty string, got {value!r}")


def optional_int(value: Any) -> int | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise TypeError(f"expected a whole number, got {value!r}")


def patch_changes(operations: Any, fields: dict[str, PatchableField], current: Any) -> dict[str, Any]:
    """Validate the operations and return the attribute changes they make (nothing applied yet)."""
    if not isinstance(operations, list) or not operations:
        raise Problem("The body must be a non-empty JSON Patch array of operations.", title="Invalid JSON Patch")
    by_lower = {name.lower(): (name, spec) for name, spec in fields.items()}
    changes: dict[str, Any] = {}
    for index, op in enumerate(operations):
        if not isinstance(op, dict) or not isinstance(op.get("op"), str) or not isinstance(op.get("path"), str):
            raise Problem(f"Operation {index} needs 'op' and 'path'.", title="Invalid JSON Patch")
        verb = op["op"].lower()
        key = op["path"].lstrip("/").lower()
        if key not in by_lower:
            raise Problem(
                f"Operation {index}: the path {op['path']!r} is not a property that can be changed "
                f"(allowed: {', '.join('/' + n for n in fields)}).",
                title="Invalid JSON Patch",
            )
        name, spec = by_lower[key]
        if "value" not in op:
            raise Problem(f"Operation {index} on /{name} needs a 'value'.", title="Invalid JSON Patch")
        try:
            value = spec.convert(op["value"])
        except (TypeError, ValueError) as exc:
            raise Problem(f"Operation {index} on /{name}: {exc}.", title="Invalid JSON Patch") from None
        if verb in ("replace", "add"):
            changes[spec.attribute] = value
        elif verb == "test":
            actual = changes.get(spec.attribute, getattr(current, spec.attribute))
            if actual != value:
                raise Problem(f"Test of /{name} failed: it is {actual!r}, not {value!r}.", title="JSON Patch test failed")
        else:
            raise Problem(f"Operation {index}: '{op['op']}' is not supported here.", title="Invalid JSON Patch")
    return changes
