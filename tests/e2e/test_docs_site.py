"""The documentation site builds with warnings as errors, and its generated pages come from the code."""

from __future__ import annotations

import html
import re
import subprocess
import sys
from pathlib import Path

import pytest

from agent.cli.main import cli
from protocol.categories import ALL_CATEGORIES
from protocol.windows import AppsWindow, FilesWindow, KeyboardWindow, MouseWindow

REPO = Path(__file__).resolve().parents[2]


def _text(page: Path) -> str:
    body = page.read_text(encoding="utf-8")
    body = body[body.find('<article role="main"') :]  # the page itself, not the navigation
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body)))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    # The command scripts/docs.sh runs, minus its setup step: -W makes every warning an error.
    build = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-q", "-E", "-b", "html", "docs", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    return out


def test_every_persona_guide_and_the_privacy_pack_are_in_the_site(site: Path) -> None:
    for page in ("employee", "it", "release", "store", "formats", "cli-reference"):
        assert (site / f"{page}.html").is_file(), page
    for page in ("inventory", "notices", "dpia", "threat-model"):
        assert (site / "privacy" / f"{page}.html").is_file(), page


def test_data_inventory_lists_every_field_of_every_record_schema(site: Path) -> None:
    text = _text(site / "privacy" / "inventory.html")
    for model in (KeyboardWindow, MouseWindow, AppsWindow, FilesWindow):
        assert model.__name__ in text
        for field in model.model_fields:
            assert re.search(rf"\b{field}\b", text), (model.__name__, field)


def test_notices_page_shows_each_notice_with_its_terms(site: Path) -> None:
    text = _text(site / "privacy" / "notices.html")
    for category in ALL_CATEGORIES:
        assert f"(category: {category.value})" in text
    assert text.count("Retention on this computer:") == len(ALL_CATEGORIES)


def test_notices_page_reads_in_plain_sections_before_the_exact_text(site: Path) -> None:
    text = _text(site / "privacy" / "notices.html")
    for heading in ("What is kept", "What is never kept", "Who receives it, and why", "For how long"):
        assert text.count(heading + " ") == len(ALL_CATEGORIES), heading  # the exact text has "What is kept,"
    assert text.count("How to stop and erase ") == text.count("Whom to ask ") == len(ALL_CATEGORIES)
    assert text.count("The exact text you agree to") == len(ALL_CATEGORIES)
    assert text.index("What is never kept") < text.index("(category: keyboard)")


def test_data_inventory_says_what_every_field_means_and_in_which_unit(site: Path) -> None:
    text = _text(site / "privacy" / "inventory.html")
    for words in ("runs of 3 or more key presses", "pixels", "under 50 ms", "2,000 ms or more", "seconds of focus"):
        assert words in text, words


def test_cli_reference_covers_every_command(site: Path) -> None:
    text = _text(site / "cli-reference.html")
    for name in cli.list_commands(None):  # type: ignore[arg-type]
        assert f"consentry {name}" in text, name


def test_site_loads_no_third_party_assets(site: Path) -> None:
    for page in site.rglob("*.html"):
        assets = re.findall(r'<(?:script|link|img)[^>]+(?:src|href)="(https?:[^"]+)"', page.read_text(encoding="utf-8"))
        assert not assets, (page.name, assets)


def test_data_inventory_gives_every_field_its_meaning_from_the_schema(site: Path) -> None:
    text = _text(site / "privacy" / "inventory.html").replace("\u2019", "'")  # Sphinx's smart quotes
    for model in (KeyboardWindow, MouseWindow, AppsWindow, FilesWindow):
        schema = model.model_json_schema()
        for name, prop in schema["properties"].items():
            assert prop.get("description"), (model.__name__, name)
            assert re.sub(r"\s+", " ", prop["description"]) in text, (model.__name__, name)
    assert "bin 9: 2,000 ms or more" in text and "focus[].app" in text
