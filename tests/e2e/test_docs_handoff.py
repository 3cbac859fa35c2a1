"""The hand-off points in the docs: how the agent starts, and a quick start per persona that runs.

The quick starts' snippets are executed by tests/e2e/test_docs_snippets.py; this checks that each
persona has one, linked from the site's index, with at least one snippet that is really run, and that
the employee guide names the start-up mechanisms the package really installs.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.e2e.test_docs_snippets import PYTHON, SHELL, extract_blocks

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
QUICK_STARTS = ("quickstart-employee", "quickstart-it", "quickstart-steward", "quickstart-ml")


def _section(text: str, title: str) -> str:
    found = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", text, re.S | re.M)
    assert found, f"no section '## {title}'"
    return found.group(1)


def test_the_employee_guide_says_how_the_agent_starts() -> None:
    section = _section((DOCS / "employee.md").read_text(encoding="utf-8"), "How the agent starts")
    unit = ROOT / "packaging" / "linux" / "consentry-agent.service"
    autostart = ROOT / "packaging" / "linux" / "consentry-agent.desktop"
    assert unit.is_file() and autostart.is_file()
    assert "consentry-agent.service" in section and "systemctl --user status consentry-agent" in section
    assert f"/etc/xdg/autostart/{autostart.name}" in section
    assert "consentry agent run" in section  # by hand, where nothing starts it
    assert "consentry agent run" in unit.read_text(encoding="utf-8")  # what the unit itself runs


def test_each_persona_has_a_quick_start_linked_from_the_index_whose_snippets_run() -> None:
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    for name in QUICK_STARTS:
        page = DOCS / f"{name}.md"
        assert page.is_file(), name
        assert re.search(rf"^{name}$", index, re.M), f"{name} is not in the index's toctree"
        run = [b for b in extract_blocks(page) if b.lang in SHELL | PYTHON and b.not_run is None]
        assert run, f"{name}: no snippet is run by the docs snippet tests"
