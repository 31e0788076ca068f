"""Does a new JSON Schema of an event still describe every message old readers accept?

Pure functions over JSON Schema documents (as pydantic exports them). Breaking changes:
a field removed or renamed, a field's type narrowed (fewer types, fewer enum values, a
tighter length, bound or pattern), or a required field added.
"""
from __future__ import annotations

from typing import Any

Schema = dict[str, Any]


def _resolve(node: Schema, root: Schema) -> Schema:
    while "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/$defs/"):
            raise ValueError(f"unsupported $ref {ref!r}")
        node = root["$defs"][ref.removeprefix("#/$defs/")]
    return node


def _types(node: Schema, root: Schema) -> set[str]:
    node = _resolve(node, root)
    if "anyOf" in node:
        return set().union(*(_types(n, root) for n in node["anyOf"]))
    if "type" in node:
        return {node["type"]} if isinstance(node["type"], str) else set(node["type"])
    return {"any"}


def _values(node: Schema, root: Schema) -> set | None:
    node = _resolve(node, root)
    if "const" in node:
        return {node["const"]}
    if "enum" in node:
        return set(node["enum"])
    return None


def _compare(old: Schema, new: Schema, old_root: Schema, new_root: Schema, where: str, out: list[str]) -> None:
    old, new = _resolve(old, old_root), _resolve(new, new_root)
    old_types, new_types = _types(old, old_root), _types(new, new_root)
    if "any" not in new_types and not old_types <= new_types:
        out.append(f"{where}: type narrowed from {sorted(old_types)} to {sorted(new_types)}")
    old_values, new_values = _values(old, old_root), _values(new, new_root)
    if new_values is not None and (old_values is None or not old_values <= new_values):
        out.append(f"{where}: allowed values narrowed to {sorted(map(str, new_values))}")
    for key, tighter in (("maxLength", lambda o, n: n < o), ("minLength", lambda o, n: n > o),
                         ("maximum", lambda o, n: n < o), ("minimum", lambda o, n: n > o),
                         ("exclusiveMinimum", lambda o, n: n > o), ("exclusiveMaximum", lambda o, n: n < o)):
        if key in new and (key not in old or tighter(old[key], new[key])):
            out.append(f"{where}: {key} tightened to {new[key]}")
    if "pattern" in new and new.get("pattern") != old.get("pattern"):
        out.append(f"{where}: pattern changed to {new['pattern']!r}")
    if "properties" in old or "properties" in new:
        old_props, new_props = old.get("properties", {}), new.get("properties", {})
        for name in old_props:
            if name not in new_props:
                out.append(f"{where}.{name}: field removed or renamed")
            else:
                _compare(old_props[name], new_props[name], old_root, new_root, f"{where}.{name}", out)
        for name in sorted(set(new.get("required", ())) - set(old.get("required", ()))):
            out.append(f"{where}.{name}: required field added")


def breaking_changes(old: Schema, new: Schema) -> list[str]:
    """Every change from `old` to `new` that would break existing readers (empty: compatible)."""
    out: list[str] = []
    _compare(old, new, old, new, "$", out)
    return out
