"""Sphinx directives that render the privacy pack from the code itself, so it cannot drift.

``{data-inventory}``   every field of every record type the vault may hold and a batch may carry,
                       from the pydantic schemas in ``protocol/windows.py`` (type, bounds, description).
``{consent-notices}``  the notice of every category, exactly as ``consentry consent grant`` shows it
                       under the embedded default policy.
"""

from __future__ import annotations

from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective


class _MarkdownDirective(SphinxDirective):
    """Parse generated Markdown (MyST) in place of the directive."""

    def lines(self) -> list[str]:
        raise NotImplementedError

    def run(self) -> list[nodes.Node]:
        container = nodes.container()
        self.state.nested_parse(StringList(self.lines(), source="consentry_docs"), self.content_offset, container)
        return list(container.children)


class DataInventory(_MarkdownDirective):
    def lines(self) -> list[str]:
        return inventory_lines()


def inventory_lines() -> list[str]:
    """The inventory's tables: a row per field (and per field of a nested record), its meaning from the schema."""
    from protocol.windows import AppsWindow, FilesWindow, KeyboardWindow, MouseWindow

    out: list[str] = []
    for model in (KeyboardWindow, MouseWindow, AppsWindow, FilesWindow):
        schema = model.model_json_schema()
        category = schema["properties"]["category"].get("const") or schema["properties"]["category"]["default"]
        out += [f"**{category}** (`{model.__name__}`, one record per category per window)", ""]
        out += ["| field | type | bounds and values | meaning |", "|---|---|---|---|"]
        for name, prop in inventory_fields(schema):
            out.append(f"| `{name}` | {_type(prop, schema)} | {_bounds(prop, schema)} | {_cell(prop)} |")
        out.append("")
    return out


def _cell(prop: dict[str, Any]) -> str:
    """The field's description as Markdown text: ``<hex>`` is not an HTML tag, ``|`` not a column."""
    return str(prop.get("description", "")).replace("\\", "\\\\").replace("<", "\\<").replace("|", "\\|")


def inventory_fields(schema: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(name, property) of each field; a list of nested records adds a ``field[].part`` row per part."""
    rows: list[tuple[str, dict[str, Any]]] = []
    for name, prop in schema["properties"].items():
        rows.append((name, prop))
        items = _resolve(prop.get("items", {}), schema) if prop.get("type") == "array" else {}
        for part, inner in items.get("properties", {}).items():
            rows.append((f"{name}[].{part}", inner))
    return rows


class ConsentNotices(_MarkdownDirective):
    def lines(self) -> list[str]:
        from protocol.categories import ALL_CATEGORIES
        from vault.consent import policy_terms
        from vault.notice_words import plain_sections, sections_as_markdown
        from vault.policy import MachinePolicy

        out: list[str] = []
        for category in ALL_CATEGORIES:
            text = _notice_text(category)
            out += [f"**{category.value}**", ""]
            out += sections_as_markdown(plain_sections(category, policy_terms(category, MachinePolicy())))
            out += ["*The exact text you agree to* (the receipt records its SHA-256):", ""]
            out += ["```text", *text.rstrip("\n").splitlines(), "```", ""]
        return out


def _notice_text(category: Any) -> str:
    """The notice as shown under the embedded default policy (what a fresh install shows)."""
    from vault.consent import policy_terms
    from vault.notices import load_notice
    from vault.policy import MachinePolicy

    return load_notice(category).rendered(policy_terms(category, MachinePolicy()))


def _resolve(prop: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = prop.get("$ref")
    if ref:
        return dict(schema.get("$defs", {})[ref.rsplit("/", 1)[-1]])
    return prop


def _type(prop: dict[str, Any], schema: dict[str, Any]) -> str:
    prop = _resolve(prop, schema)
    if "anyOf" in prop:
        return " or ".join(_type(p, schema) for p in prop["anyOf"])
    kind = prop.get("type", "object")
    if kind == "array":
        items = prop.get("items", {})
        return f"list of {_type(items, schema) if items else 'values'}"
    if kind == "object" and "properties" in prop:
        return "record: " + ", ".join(f"`{k}`" for k in prop["properties"])
    if kind == "object":
        return "counts by class"
    return str(kind)


def _bounds(prop: dict[str, Any], schema: dict[str, Any]) -> str:
    prop = _resolve(prop, schema)
    parts = []
    if "const" in prop:
        parts.append(f"always `{prop['const']}`")
    if "enum" in prop:
        parts.append("one of " + ", ".join(f"`{v}`" for v in prop["enum"]))
    names = prop.get("propertyNames")
    if names:
        parts.append("keys: " + ", ".join(f"`{v}`" for v in _resolve(names, schema).get("enum", [])))
    for key, label in (("minimum", "≥"), ("maximum", "≤"), ("minLength", "length ≥"), ("maxLength", "length ≤")):
        if key in prop:
            parts.append(f"{label} {prop[key]}")
    if "pattern" in prop:
        parts.append(f"pattern `{prop['pattern']}`")
    return "; ".join(parts)


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("data-inventory", DataInventory)
    app.add_directive("consent-notices", ConsentNotices)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
