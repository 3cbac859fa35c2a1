"""Every field of every record says what it means and in which unit, in the schema itself (one source).

The data inventory (docs/privacy/inventory.md) renders these descriptions; tests/e2e/test_docs_site.py
checks that the built page shows each of them.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from pydantic import BaseModel

from protocol.windows import (
    IKI_BIN_EDGES_MS,
    AppFocus,
    AppsWindow,
    FileEventCount,
    FilesWindow,
    KeyboardWindow,
    MouseWindow,
    iki_bin_labels,
)

DOCS_EXT = Path(__file__).resolve().parents[2] / "docs" / "_ext"
MODELS: tuple[type[BaseModel], ...] = (KeyboardWindow, MouseWindow, AppsWindow, FilesWindow, AppFocus, FileEventCount)


def test_every_record_field_has_a_meaning() -> None:
    missing = [
        f"{m.__name__}.{n}" for m in MODELS for n, f in m.model_fields.items() if not (f.description or "").strip()
    ]
    assert not missing, f"fields without a description: {missing}"


def test_the_figures_an_employee_asks_about_name_their_units() -> None:
    fields = KeyboardWindow.model_fields
    assert "seconds" in (fields["pauses"].description or "")
    assert "presses" in (fields["bursts"].description or "") and "presses" in (
        fields["longest_burst"].description or ""
    )
    assert re.search(r"from 0 .* to 1", fields["correction_ratio"].description or "")
    assert "pixels" in (MouseWindow.model_fields["distance_px"].description or "")
    assert "seconds" in (MouseWindow.model_fields["idle_seconds"].description or "")


def test_each_histogram_bin_is_named_with_its_range_in_milliseconds() -> None:
    labels = iki_bin_labels()
    assert len(labels) == len(IKI_BIN_EDGES_MS)
    assert labels[0] == "under 50 ms" and labels[1] == "50 to 100 ms" and labels[-1] == "2,000 ms or more"
    described = KeyboardWindow.model_fields["iki_histogram"].description or ""
    for number, label in enumerate(labels, start=1):
        assert f"bin {number}: {label}" in described


def test_the_inventory_generator_gives_each_field_its_schema_meaning() -> None:
    sys.path.insert(0, str(DOCS_EXT))
    try:
        from consentry_docs import inventory_fields, inventory_lines
    finally:
        sys.path.remove(str(DOCS_EXT))
    text = "\n".join(inventory_lines())
    for model in (KeyboardWindow, MouseWindow, AppsWindow, FilesWindow):
        schema = model.model_json_schema()
        for name, prop in inventory_fields(schema):
            row = next((line for line in text.splitlines() if line.startswith(f"| `{name}` |")), None)
            assert row is not None, (model.__name__, name)
            meaning = row.rsplit(" | ", 1)[1].rstrip(" |").replace("\\<", "<")
            assert meaning and meaning == prop["description"], (model.__name__, name)
    assert "`focus[].app`" in text and "`events[].ext`" in text  # nested records too
