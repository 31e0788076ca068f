"""The one settings reference, generated from the Settings model (vb2po/settings.py):

  docs/settings.md               every setting: its environment variable, type, default and meaning
  helm/vb2po/values.schema.json  JSON Schema of the chart's values: `settings` from the model, less
                                 the secrets (from the Secret) and what the chart sets itself

After a setting is added, renamed or described anew, regenerate both with

    python -m vb2po.settings_reference          (--check: only say whether they are current)

tests/unit/test_settings_reference.py fails while they are stale, and while settings.example.yaml
or the chart's values.yaml misses or misnames a setting.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any, Iterator

from vb2po.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DOCS = Path("docs/settings.md")
VALUES_SCHEMA = Path("helm/vb2po/values.schema.json")
COMMAND = "python -m vb2po.settings_reference"

# Settings the chart sets itself, as environment variables of its pods (templates/_helpers.tpl,
# from other values): they are left out of `settings` in values.yaml and its schema.
CHART_SETS = {
    "metrics_port": "metrics.port",
    "metrics_bind_address": "metrics.bindAddress",
    "consumer.instances": "consumer.replicas",
    "consumer.instance_id": "the pod name, with consumer.kind StatefulSet",
    "admin.enabled": "adminApi.enabled",
    "admin.bind_address": "adminApi.enabled (0.0.0.0)",
    "admin.port": "adminApi.port",
}
# Secrets, and the lists that hold secrets, come from the chart's Secret, never from values.
SECRET_NOTE = "secret: from the chart's Secret"


def env_name(path: str) -> str:
    return "VB2PO_" + path.replace(".", "__").upper()


# -- the model's schema, references inlined ----------------------------------------------------
def model_schema() -> dict[str, Any]:
    """Settings as JSON Schema with every `$ref` inlined and pydantic's generated titles left out."""
    raw = Settings.model_json_schema()
    defs = raw.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                target = copy.deepcopy(defs[node["$ref"].rsplit("/", 1)[-1]])
                extra = {k: v for k, v in node.items() if k not in ("$ref", "default")}  # a section's default is its fields'
                return inline({**target, **extra})
            return {k: inline(v) for k, v in node.items() if k != "title"}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    return inline(raw)


def _is_secret(node: dict[str, Any]) -> bool:
    """A SecretStr (pydantic: writeOnly password), or anything holding one."""
    if node.get("writeOnly") or node.get("format") == "password":
        return True
    children = [*node.get("properties", {}).values(), *node.get("anyOf", [])]
    if isinstance(node.get("items"), dict):
        children.append(node["items"])
    return any(_is_secret(child) for child in children if isinstance(child, dict))


def _object_of(node: dict[str, Any]) -> dict[str, Any] | None:
    return node if node.get("type") == "object" and "properties" in node else None


def _items_object(node: dict[str, Any]) -> dict[str, Any] | None:
    items = node.get("items")
    return _object_of(items) if node.get("type") == "array" and isinstance(items, dict) else None


def walk(schema: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, dict[str, Any], bool]]:
    """(path, schema, required) of every setting, sections and lists of sections included;
    the fields of a list's items as `list[].field`."""
    required = set(schema.get("required", ()))
    for name, node in schema.get("properties", {}).items():
        path = prefix + name
        yield path, node, name in required
        items = _items_object(node)
        if _object_of(node):
            yield from walk(node, path + ".")
        elif items is not None:
            yield from walk(items, path + "[].")


def leaf_paths(schema: dict[str, Any] | None = None) -> set[str]:
    """Paths of the settings that hold a value (not sections, not lists of sections)."""
    schema = schema or model_schema()
    return {path for path, node, _ in walk(schema) if not _object_of(node) and not _items_object(node)}


def secret_paths(schema: dict[str, Any] | None = None) -> set[str]:
    """The settings that are a secret, or a list holding secrets (`companies`, `poweroffice.application_key`, ...)."""
    schema = schema or model_schema()
    found = {path for path, node, _ in walk(schema) if _is_secret(node) and not _object_of(node)}
    return {p for p in found if not any(p.startswith(q + "[]") for q in found)}


# -- values.schema.json ------------------------------------------------------------------------
def _without(schema: dict[str, Any], paths: set[str], prefix: str = "") -> dict[str, Any]:
    out = dict(schema)
    if "properties" in schema:
        props = {}
        for name, node in schema["properties"].items():
            path = prefix + name
            if path in paths:
                continue
            props[name] = _without(node, paths, path + ".") if _object_of(node) else node
        out["properties"] = props
        if "required" in out:
            out["required"] = [r for r in out["required"] if r in props]
    return out


def values_schema() -> dict[str, Any]:
    schema = model_schema()
    settings = _without(schema, secret_paths(schema) | set(CHART_SETS))
    settings.pop("required", None)  # the Secret and the chart's own variables complete the file
    settings["description"] = (
        "The settings file (ConfigMap) without secrets and without what the chart sets itself: "
        "see docs/settings.md for each setting")
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$comment": f"Generated from vb2po/settings.py by `{COMMAND}`; do not edit by hand.",
        "title": "Values of the vb2po chart",
        "type": "object",
        "properties": {
            "settings": settings,
            "consumer": {
                "type": "object",
                "properties": {"kind": {"enum": ["Deployment", "StatefulSet"],
                                        "description": "StatefulSet: static group membership, instance_id = pod name"}},
            },
        },
    }


# -- docs/settings.md --------------------------------------------------------------------------
def _type(node: dict[str, Any]) -> str:
    if "anyOf" in node:
        kinds = [_type(n) for n in node["anyOf"] if n.get("type") != "null"]
        optional = any(n.get("type") == "null" for n in node["anyOf"])
        return " or ".join(kinds) + (" (optional)" if optional else "")
    if "enum" in node:
        return "one of " + ", ".join(f"`{v}`" for v in node["enum"])
    kind = node.get("type", "any")
    if node.get("format") == "password":
        return "secret string"
    if node.get("format") == "date":
        return "date (YYYY-MM-DD)"
    if kind == "array":
        items = node.get("items", {})
        return "list of sections" if _object_of(items) else f"list of {_type(items)}"
    return {"string": "string", "integer": "integer", "number": "number", "boolean": "boolean",
            "object": "section"}.get(kind, kind)


def _limits(node: dict[str, Any]) -> str:
    parts = []
    for key, sign in (("exclusiveMinimum", ">"), ("minimum", "≥"), ("exclusiveMaximum", "<"), ("maximum", "≤")):
        if key in node:
            parts.append(f"{sign} {node[key]:g}" if isinstance(node[key], float) else f"{sign} {node[key]}")
    if "pattern" in node:
        parts.append(f"matches `{node['pattern']}`")
    return ", ".join(parts)


def _default(node: dict[str, Any], required: bool) -> str:
    if required:
        return "required"
    if "default" not in node:
        return ""
    value = node["default"]
    if value is None:
        return "none"
    if value == "" and node.get("format") == "password":
        return "empty"
    return "`" + json.dumps(value, ensure_ascii=False) + "`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def reference_markdown() -> str:
    schema = model_schema()
    secrets = secret_paths(schema)
    lines = [
        "# Settings reference",
        "",
        f"<!-- Generated from vb2po/settings.py by `{COMMAND}`; do not edit by hand. -->",
        "",
        "One YAML file (`--config FILE` or `VB2PO_CONFIG`) plus environment variables: `VB2PO_` and the",
        "setting's path in upper case with `__` between levels. A variable wins over the file. A list",
        "(`companies`, `invoice_clients`, `admin.groups`, ...) is given whole, as JSON, in one variable.",
        "`settings.example.yaml` is a commented example of the file. On Kubernetes the chart's `settings`",
        "values become the file (checked by `helm/vb2po/values.schema.json`), without the secrets, which",
        "come from the Secret, and without the settings the chart sets itself (noted below).",
        "",
    ]
    sections: dict[str, list[tuple[str, dict[str, Any], bool]]] = {"": []}
    described: dict[str, str] = {"": schema.get("description", "")}
    for path, node, required in walk(schema):
        items = _items_object(node)
        if _object_of(node):
            sections[path] = []
            described[path] = node.get("description", "")
        elif items is not None:
            sections[path + "[]"] = []
            described[path + "[]"] = items.get("description") or node.get("description", "")
        parent = path.rsplit(".", 1)[0] if "." in path else ""
        sections.setdefault(parent, []).append((path, node, required))
    for section, rows in sections.items():
        rows = [r for r in rows if not (_object_of(r[1]))]
        if not rows:
            continue
        lines.append(f"## `{section}`" if section else "## Top level")
        if described.get(section):
            lines += ["", _cell(described[section])]
        lines += ["", "| setting | environment variable | type | default | what |", "| --- | --- | --- | --- | --- |"]
        for path, node, required in rows:
            notes = [node.get("description", "")]
            limits = _limits(node)
            if limits:
                notes.append(f"({limits})")
            if path in secrets:
                notes.append(f"*{SECRET_NOTE}*")
            if path in CHART_SETS:
                notes.append(f"*chart: set from {CHART_SETS[path]}*")
            env = "" if "[]" in path else f"`{env_name(path)}`"
            lines.append(f"| `{path}` | {env} | {_cell(_type(node))} | {_default(node, required)} | "
                         f"{_cell(' '.join(n for n in notes if n))} |")
        lines.append("")
    return "\n".join(lines)


# -- the command -------------------------------------------------------------------------------
def generated() -> dict[Path, str]:
    return {DOCS: reference_markdown(), VALUES_SCHEMA: json.dumps(values_schema(), indent=2, ensure_ascii=False) + "\n"}


def stale(root: Path = ROOT) -> list[Path]:
    return [path for path, text in generated().items()
            if not (root / path).is_file() or (root / path).read_text() != text]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when a generated file is stale")
    parser.add_argument("--root", type=Path, default=ROOT, help="the source checkout (default: the one this runs from)")
    args = parser.parse_args(argv)
    if not (args.root / "helm" / "vb2po" / "Chart.yaml").is_file():
        parser.error(f"{args.root} is not a vb2po source checkout (no helm/vb2po/Chart.yaml)")
    missing = sorted(p for p in CHART_SETS if p not in leaf_paths())
    if missing:
        parser.error(f"CHART_SETS names settings the model does not have: {missing}")
    outdated = stale(args.root)
    if args.check:
        for path in outdated:
            print(f"{path} is stale: run `{COMMAND}`", file=sys.stderr)
        return 1 if outdated else 0
    for path, text in generated().items():
        target = args.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        print(f"{'wrote' if path in outdated else 'unchanged'} {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
