"""The pictures in the docs are the ones the tests take of the real UI (tests/doc_shots.py).

Fails when a listed picture is missing or too large, when no doc shows it, when the test named for it
does not save it, or when a doc shows a picture that no test takes (it would go stale unnoticed).
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

from tests.doc_shots import MAX_SIZE, ROOT, SHOTS, SHOTS_DIR

DOCS = ROOT / "docs"
MAX_BYTES = 200_000
_SHOWN = re.compile(r"_static/shots/([\w.-]+)")


def _shown_in_docs() -> dict[str, list[str]]:
    shown: dict[str, list[str]] = {}
    for page in sorted(DOCS.rglob("*.md")):
        if "_build" in page.parts:
            continue
        for name in _SHOWN.findall(page.read_text(encoding="utf-8")):
            shown.setdefault(name, []).append(str(page.relative_to(ROOT)))
    return shown


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def test_every_listed_picture_exists_small_and_is_shown_in_the_docs() -> None:
    shown = _shown_in_docs()
    for name in SHOTS:
        path = SHOTS_DIR / name
        assert path.is_file(), f"{name} is missing: run {SHOTS[name]} (it saves the picture into docs/_static/shots)"
        width, height = _png_size(path)
        assert width <= MAX_SIZE[0] and height <= MAX_SIZE[1], f"{name} is {width}x{height}"
        assert path.stat().st_size <= MAX_BYTES, f"{name} is {path.stat().st_size} bytes"
        assert name in shown, f"{name} is taken by the tests but no page of docs/ shows it"


def test_the_docs_show_only_pictures_the_tests_take() -> None:
    for name, pages in _shown_in_docs().items():
        assert name in SHOTS, f"{pages} show {name}, which no test takes (list it in tests/doc_shots.py SHOTS)"
    for path in SHOTS_DIR.iterdir():
        assert path.name in SHOTS, f"docs/_static/shots/{path.name} is not taken by any test; remove it"


def test_each_picture_is_saved_by_the_test_named_for_it() -> None:
    for name, test_file in SHOTS.items():
        source = (ROOT / test_file).read_text(encoding="utf-8")
        saved = re.search(rf"""(save_browser_shot|save_image|_screenshot)\([^)]*["']{re.escape(name)}["']""", source)
        assert saved, f"{test_file} does not save {name}"
        if saved.group(1) == "_screenshot":  # the employee page's helper must hand it on to the docs
            assert "save_browser_shot(driver, name)" in source
