"""The employee reads records in words: each window as a sentence with its units and named histogram
bins (``consentry mydata``, the batch preview), the raw JSON one option away, and a batch's receipt
aliases tied to the grants the employee made."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from click.testing import CliRunner, Result

from agent.cli.main import cli
from agent.words import record_in_words
from devkit.factories import apps_window, files_window, grant, mouse_window
from protocol.categories import Category
from protocol.windows import KeyboardWindow, window_to_json_dict
from vault import batches as batch_ops
from vault import outbox
from vault.paths import Layout
from vault.policy import MachinePolicy
from vault.vault import Vault

NOW = datetime.now(UTC).replace(microsecond=0)


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _typing(start: int, receipt_id: str) -> KeyboardWindow:
    return KeyboardWindow(
        start=start,
        end=start + 60,
        receipt_id=receipt_id,
        key_counts={"letter": 226, "space": 31, "punctuation": 20, "editing": 35},
        iki_histogram=(40, 120, 60, 30, 20, 15, 10, 8, 8),
        bursts=12,
        longest_burst=48,
        pauses=3,
        correction_ratio=35 / 312,
    )


def _vault_with_every_category(layout: Layout) -> dict[str, str]:
    start = int((NOW - timedelta(hours=1)).timestamp())
    with Vault.open(layout, create=True) as vault:
        ids = {c.value: grant(vault, c, NOW - timedelta(hours=2)) for c in Category}
        vault.write_windows(
            [
                _typing(start, ids["keyboard"]),
                mouse_window(start, ids["mouse"]),
                apps_window(start, ids["apps"]),
                files_window(start, ids["files"]),
            ]
        )
    return ids


def test_a_keyboard_window_reads_as_a_sentence_with_named_bins_and_units() -> None:
    words = record_in_words(window_to_json_dict(_typing(0, "r" * 16)))
    assert words.startswith("312 key presses: 226 letters, 31 spaces, 20 punctuation, 35 corrections")
    assert "most gaps under 100 ms" in words
    assert "under 50 ms: 40, 50 to 100 ms: 120" in words and "2,000 ms or more: 8" in words
    assert "12 typing bursts (longest 48 key presses), 3 pauses of 2 seconds or more" in words
    assert "corrections: 11% of presses" in words
    assert "{" not in words and "iki" not in words and "_" not in words


def test_every_category_reads_in_words_without_field_names() -> None:
    sparse = KeyboardWindow.sparse_window(0, 60, "r" * 16)
    texts = {
        "sparse": record_in_words(window_to_json_dict(sparse)),
        "mouse": record_in_words(window_to_json_dict(mouse_window(0, "r" * 16))),
        "apps": record_in_words(window_to_json_dict(apps_window(0, "r" * 16))),
        "files": record_in_words(window_to_json_dict(files_window(0, "r" * 16))),
    }
    assert "too few presses to keep any count" in texts["sparse"]
    assert texts["mouse"].startswith("4 clicks (3 left, 1 right), 4 scroll steps")
    assert "3,400 pixels" in texts["mouse"] and "12 seconds" in texts["mouse"]
    assert "ide 40 s" in texts["apps"] and "2 switches between applications" in texts["apps"]
    assert "3 files .py changed in projects (folder depth 2)" in texts["files"]
    for text in texts.values():
        assert "distance_px" not in text and "=" not in text and "{" not in text


def test_mydata_shows_each_window_in_words_and_json_keeps_the_raw_values(layout: Layout) -> None:
    _vault_with_every_category(layout)
    text = run("mydata").output
    assert "312 key presses: 226 letters" in text and "most gaps under 100 ms" in text
    assert "4 clicks (3 left, 1 right)" in text
    assert "key_counts" not in text and "iki_histogram" not in text and "distance_px" not in text
    raw = json.loads(run("mydata", "--json").output)
    keyboard = next(r for r in raw["records"] if r["category"] == "keyboard")
    assert keyboard["key_counts"]["letter"] == 226 and keyboard["iki_histogram"][1] == 120


def _held_batch(layout: Layout) -> tuple[str, dict[str, str]]:
    ids = _vault_with_every_category(layout)
    with Vault.open(layout) as vault:
        info = batch_ops.seal_pending(vault, MachinePolicy(), NOW)
        assert info is not None
    return info.batch_id, ids


def test_batch_preview_reads_in_words_and_ties_each_alias_to_the_grant_in_my_data(layout: Layout) -> None:
    batch_id, ids = _held_batch(layout)
    with Vault.open(layout) as vault:
        cited = {r["receipt_id"] for r in batch_ops.preview_records(vault, outbox.get_batch(vault, batch_id))}
    assert cited and not cited & set(ids.values())  # the batch cites aliases, never the grant's own id
    text = run("batches", "show", batch_id).output
    assert "312 key presses: 226 letters" in text and "key_counts" not in text
    for alias in cited:
        line = next(line for line in text.splitlines() if alias in line)
        own = next(rid for rid in ids.values() if rid in line)  # the grant's own id, as My data lists it
        assert own in run("mydata", "--json").output
    raw = json.loads(run("batches", "show", batch_id, "--json").output)
    assert {r["receipt_id"] for r in raw["records"]} == cited
    assert set(raw["receipt_links"].values()) <= set(ids.values())
