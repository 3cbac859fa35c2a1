"""Screenshots for the documentation, taken by the tests from the real UI, so the pictures never go stale.

Each picture the docs show is listed in ``SHOTS`` with the test that makes it. That test, driving the
real page in headless Chromium or the real tray under Xvfb, saves it into ``docs/_static/shots/`` on
every run, cropped and reduced to a small palette PNG. tests/e2e/test_doc_screenshots.py fails when a
listed picture is missing, unused by the docs, not produced by its test, or when the docs show one
that is not listed.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHOTS_DIR = ROOT / "docs" / "_static" / "shots"
MAX_SIZE = (1000, 900)  # pixels: readable in a docs page, small on disk
COLOURS = 64

# picture -> the test file that saves it (through save_browser_shot or save_image, with this name)
SHOTS: dict[str, str] = {
    "page-consent.png": "tests/agent/test_page_employee.py",
    "page-mydata.png": "tests/agent/test_page_employee.py",
    "page-batch.png": "tests/agent/test_page_employee.py",
    "steward-review-queue.png": "tests/store/test_page_steward.py",
    "steward-review-batch.png": "tests/store/test_page_steward.py",
    "tray-capturing.png": "tests/agent/test_tray.py",
    "tray-menu.png": "tests/agent/test_tray.py",
}


def save_image(image: Any, name: str) -> Path:
    """Save a Pillow image as the docs' picture ``name``: the top of it, scaled down, 64 colours."""
    if name not in SHOTS:
        raise ValueError(f"{name} is not listed in tests/doc_shots.py SHOTS")
    width, height = image.size
    image = image.convert("RGB").crop((0, 0, width, min(height, int(width * MAX_SIZE[1] / MAX_SIZE[0]))))
    image.thumbnail(MAX_SIZE)
    image = image.quantize(colors=COLOURS)
    SHOTS_DIR.mkdir(parents=True, exist_ok=True)
    target = SHOTS_DIR / name
    partial = target.with_suffix(".part")
    image.save(partial, format="PNG", optimize=True)
    partial.replace(target)  # a test run cut short never leaves half a picture in the docs
    return target


def save_browser_shot(driver: Any, name: str) -> Path:
    """The headless Chromium's current page as the docs' picture ``name``."""
    from PIL import Image

    return save_image(Image.open(io.BytesIO(driver.get_screenshot_as_png())), name)
