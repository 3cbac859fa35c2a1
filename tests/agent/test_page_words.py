"""The employee's page in words, read in a real headless Chromium: notices in plain sections with the
exact text one click away, records as sentences with their raw values one click away, a batch's
receipt aliases tied to the employee's grants, and erasing (a category, a period, withdraw and erase,
everything) with the CLI's question and the CLI's ledger entries, against a real agent."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kit.page_link import page_link
from kit.web.server import PageServer
from protocol.categories import Category
from tests.agent.test_page_employee import _fill_vault, _local, _open, page  # noqa: F401 (fixture)
from tests.agent_harness import SHORT_WINDOW_POLICY, AgentProcess, agent_env, grant, wait_records
from tests.browser_kit import chromium, wait_for
from vault import batches as batch_ops
from vault import consent_ops, outbox
from vault.paths import Layout
from vault.policy import load_policy
from vault.vault import Vault

ORGANISATION = (
    '[organisation]\nname = "Example Corp"\ncontroller = "Example Corp, Data Protection Office"\n'
    'contact = "privacy@corp.example"\nworks_council = "Works agreement BV-2026-07"\n'
)


def _by(kind: str) -> Any:
    from selenium.webdriver.common.by import By

    return getattr(By, kind)


def _text(driver: Any, css: str) -> str:
    return str(driver.find_element(_by("CSS_SELECTOR"), css).text)


def test_a_notice_reads_in_plain_sections_and_the_exact_text_is_one_click_away(
    page: PageServer,  # noqa: F811 (the fixture)
    layout: Layout,
    policy_path: Path,
    tmp_path: Path,
) -> None:
    policy_path.write_text(ORGANISATION)
    with chromium(tmp_path / "profile") as driver:
        _open(driver, page_link(layout.page_link, "/consent/keyboard"))
        plain = _text(driver, "#plain-notice")
        for heading in ("What is kept", "What is never kept", "Who receives it, and why", "For how long"):
            assert heading in plain
        assert "How to stop and erase" in plain and "Whom to ask" in plain
        assert "Example Corp, Data Protection Office" in plain and "Works agreement BV-2026-07" in plain
        for jargon in ("keycode", "input callback", "internal-work-pattern-models", "http", "SHA-256"):
            assert jargon not in plain
        exact = driver.find_element(_by("ID"), "notice")
        assert not exact.is_displayed()  # folded
        driver.find_element(_by("CSS_SELECTOR"), "details.exact-notice summary").click()
        wait_for(exact.is_displayed, "the exact text to unfold")
        _, text = consent_ops.notice_shown(Category.KEYBOARD, load_policy(policy_path))
        assert exact.get_attribute("textContent") == text and "Data controller: Example Corp" in text


def test_my_data_and_the_batch_preview_read_in_words_with_the_raw_values_a_click_away(
    page: PageServer,  # noqa: F811 (the fixture)
    layout: Layout,
    tmp_path: Path,
) -> None:
    from vault.policy import MachinePolicy

    own_ids = _fill_vault(layout)
    with Vault.open(layout) as vault:
        batch = batch_ops.seal_pending(vault, MachinePolicy(), datetime.now(UTC), up_to=_local(2026, 11, 20, 12, 0))
        assert batch is not None
    with chromium(tmp_path / "profile") as driver:
        _open(driver, page_link(layout.page_link, "/mydata") + "&day=2026-11-20")  # type: ignore[operator]
        words = [e.text for e in driver.find_elements(_by("CSS_SELECTOR"), ".record-words")]
        assert "5 clicks (4 left, 1 right), 0 scroll steps, 10 pointer movements covering 300 pixels" in "\n".join(
            words
        )
        assert any(w.startswith("100 key presses: 100 letters") for w in words)
        assert "key_counts" not in _text(driver, "main") and "distance_px" not in _text(driver, "main")
        raw = driver.find_elements(_by("CSS_SELECTOR"), "details.raw")[0]
        assert not raw.find_element(_by("TAG_NAME"), "pre").is_displayed()
        raw.find_element(_by("TAG_NAME"), "summary").click()
        assert "{" in raw.find_element(_by("TAG_NAME"), "pre").text  # the exact stored values

        driver.get(page.url + f"batches/{batch.batch_id}")
        main = _text(driver, "main")
        assert "100 key presses: 100 letters" in main and "key_counts" not in main
        links = _text(driver, "#receipt-links")
        cited = {own_ids["keyboard"], own_ids["mouse"], own_ids["apps"]}
        assert any(rid in links for rid in cited)  # each alias is shown beside the grant's own id
        with Vault.open(layout) as vault:
            records = batch_ops.preview_records(vault, outbox.get_batch(vault, batch.batch_id))
        for alias in {r["receipt_id"] for r in records}:
            row = next(line for line in links.splitlines() if alias in line)
            assert any(rid in row for rid in cited), row


def _erase_entries(layout: Layout, after: int) -> list[tuple[str, tuple[tuple[str, object], ...]]]:
    """The ledger entries after ``after``, as (kind, body without times and the method used)."""
    with Vault.open(layout) as vault:
        # The agent writes entries of its own meanwhile (its start, the store's witness): only the acts.
        entries = [e for e in vault.ledger.entries(("erase", "revoke")) if e.seq > after]
    # What was there to destroy differs between two vaults (key ids, counts); which fields, and what
    # was chosen (scope, categories, period), must not.
    data = {"key_ids", "records", "batches", "method", "at", "seq", "v", "kind", "receipt_ids"}
    return [(e.kind, tuple(sorted((k, "-" if k in data else repr(v)) for k, v in e.body.items()))) for e in entries]


def _last_seq(layout: Layout) -> int:
    with Vault.open(layout) as vault:
        return max(e.seq for e in vault.ledger.entries())


def _confirm(driver: Any, question: str, layout: Layout, before: int) -> None:
    wait_for(lambda: question in driver.page_source, f"the question {question!r}")
    assert not _erase_entries(layout, before), "nothing is erased before the employee confirms"
    driver.find_element(_by("XPATH"), "//button[text()='Yes, erase']").click()
    # The question page is at /erase too: wait until it has been replaced by the result.
    wait_for(
        lambda: question not in (shown := driver.page_source) and "flash" in shown and "/erase" in driver.current_url,
        "the erasure's result",
    )


def _cli(home: Path, policy_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CONSENTRY_HOME": str(home),
        "CONSENTRY_POLICY": str(policy_path),
        "CONSENTRY_KEYSTORE": "file",
    }
    done = subprocess.run([sys.executable, "-m", "agent", *args], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_erasing_on_the_page_asks_what_the_cli_asks_and_writes_what_the_cli_writes(
    layout: Layout, policy_path: Path, tmp_path: Path
) -> None:
    from selenium.webdriver.support.ui import Select

    policy_path.write_text(SHORT_WINDOW_POLICY)
    Vault.open(layout, create=True).close()
    grant(layout, policy_path, Category.KEYBOARD, Category.MOUSE, Category.APPS)
    start = _last_seq(layout)
    agent = AgentProcess(
        layout, agent_env(layout.home, policy_path, None), "--replay", "synthetic:seed=4,key_rate=20,move_rate=5"
    )
    try:
        wait_records(layout, Category.MOUSE)
        wait_records(layout, Category.KEYBOARD)
        link = wait_for(lambda: page_link(layout.page_link, "/erase"), "the agent's page.json")
        with chromium(tmp_path / "profile") as driver:
            _open(driver, link)
            Select(driver.find_element(_by("ID"), "erase-category-name")).select_by_value("mouse")
            driver.find_element(_by("XPATH"), "//button[text()='Erase this category…']").click()
            _confirm(driver, "Erase all mouse data? This cannot be undone.", layout, start)
            with Vault.open(layout) as vault:  # the mouse data captured so far had its keys destroyed
                (erased,) = [e.body for e in vault.ledger.entries(("erase",))]
            assert erased["erased_categories"] == ["mouse"] and erased["key_ids"]

            erase_page = link.split("?")[0]  # the session cookie is set: no token needed any more
            driver.get(erase_page)
            for field, day in (("erase-from", "2020-01-01"), ("erase-to", "2020-01-02")):
                driver.execute_script(f"document.getElementById('{field}').value = '{day}'")
            before = _last_seq(layout)
            driver.find_element(_by("XPATH"), "//button[text()='Erase this period…']").click()
            _confirm(driver, "Erase data from 2020-01-01 to 2020-01-02? This cannot be undone.", layout, before)

            driver.get(erase_page)
            Select(driver.find_element(_by("ID"), "erase-withdraw-name")).select_by_value("keyboard")
            before = _last_seq(layout)
            driver.find_element(_by("XPATH"), "//button[text()='Withdraw and erase…']").click()
            _confirm(
                driver,
                "Withdraw consent for keyboard and erase all keyboard data? This cannot be undone.",
                layout,
                before,
            )
            agent.wait_state("keyboard", "revoked")

            driver.get(erase_page)
            before = _last_seq(layout)
            driver.find_element(_by("XPATH"), "//button[text()='Erase everything…']").click()
            _confirm(driver, "Erase everything collected about you? This cannot be undone.", layout, before)
            assert "Everything was erased and every grant withdrawn" in driver.page_source
    finally:
        assert agent.stop() == 0
    on_the_page = _erase_entries(layout, start)

    # The same four erasures through the CLI, in a vault of their own.
    other = tmp_path / "cli-home"
    _cli(other, policy_path, "consent", "grant", "keyboard", "mouse", "apps", "--yes")
    cli_layout = Layout(other)
    cli_start = _last_seq(cli_layout)
    _cli(other, policy_path, "erase", "--category", "mouse", "--yes")
    _cli(other, policy_path, "erase", "--from", "2020-01-01", "--to", "2020-01-02", "--yes")
    _cli(other, policy_path, "consent", "revoke", "keyboard", "--erase")
    _cli(other, policy_path, "erase", "--all", "--yes")
    assert on_the_page == _erase_entries(cli_layout, cli_start)
    assert [kind for kind, _ in on_the_page].count("erase") == 4


def test_the_cli_asks_the_same_question_before_erasing(home: Path) -> None:
    from click.testing import CliRunner

    from agent.cli.main import cli

    assert CliRunner().invoke(cli, ["consent", "grant", "mouse", "--yes"]).exit_code == 0
    asked = CliRunner().invoke(cli, ["erase", "--category", "mouse"], input="n\n")
    assert "Erase all mouse data? This cannot be undone." in asked.output


def test_an_erasure_without_the_session_csrf_token_erases_nothing(
    page: PageServer,  # noqa: F811 (the fixture)
    layout: Layout,
) -> None:
    from tests.agent.test_page_employee import _session

    _fill_vault(layout)
    client = _session(page)
    origin = {"Origin": page.url.rstrip("/")}
    forged = client.post("/erase", data={"scope": "everything", "confirm": "yes", "csrf": "0" * 64}, headers=origin)
    unconfirmed = client.post("/erase", data={"scope": "everything", "csrf": _csrf_of(client)}, headers=origin)
    assert forged.status_code == 403
    assert unconfirmed.status_code == 200 and "Erase everything collected about you?" in unconfirmed.text
    assert not _erase_entries(layout, 0)


def _csrf_of(client: Any) -> str:
    import re

    found = re.search(r'name="csrf" value="([0-9a-f]+)"', client.get("/erase").text)
    assert found
    return found.group(1)
