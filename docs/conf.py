"""Sphinx configuration for Consentry's documentation site: ``scripts/docs.sh`` builds it (warnings are errors)."""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path[:0] = [str(DOCS.parent), str(DOCS / "_ext")]

project = "Consentry"
author = "Consentry developers"
copyright = "2026, Consentry developers (Apache-2.0)"
release = "0.1.0"

extensions = ["myst_parser", "sphinx_click", "consentry_docs"]
source_suffix = {".md": "markdown"}
root_doc = "index"
# cli.md is the same reference as plain Markdown for readers of the repository; the site renders
# cli-reference.md from the commands themselves (sphinx-click) instead.
exclude_patterns = ["_build", "cli.md"]
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]
html_theme = "furo"
html_title = "Consentry"
# No third-party assets: furo bundles its own; no analytics, no external fonts.
html_static_path: list[str] = []
suppress_warnings: list[str] = []


def _point_cli_links_at_the_site_page(app: object, docname: str, source: list[str]) -> None:
    source[0] = source[0].replace("](cli.md", "](cli-reference.md")


def setup(app: object) -> None:
    app.connect("source-read", _point_cli_links_at_the_site_page)  # type: ignore[attr-defined]
