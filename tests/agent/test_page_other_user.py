"""Another local account cannot read or act through the employee's page, whatever secret it obtains.

The attack as the issue reproduced it: ``nobody`` runs a page on another 127.0.0.1 port, the
employee's real browser visits it and hands over the page's session cookie, and ``nobody`` replays
requests from raw HTTP with that cookie, with a leaked ``?token=`` link and with the CSRF token.
"""

from __future__ import annotations

from pathlib import Path

from kit.page_link import page_link
from kit.web.server import PageServer
from protocol.categories import Category
from protocol.timeutil import utc_now
from tests.agent.test_page_employee import _fill_vault, _ledger_kinds, _open, page  # noqa: F401 (fixture)
from tests.browser_kit import chromium, wait_for
from tests.other_user import cookie_thief
from vault import consent_ops
from vault.paths import Layout
from vault.policy import MachinePolicy
from vault.vault import Vault

# What a refused answer must never contain: page content or a secret of the session.
_READ_MARKERS = ("anon:0123456789abcdef", "Consent, per category", "Consent ledger", "What is stored about you")


def test_another_user_with_the_stolen_cookie_and_link_can_neither_read_nor_act(
    page: PageServer,  # noqa: F811 (the fixture)
    layout: Layout,
    tmp_path: Path,
) -> None:
    from selenium.webdriver.common.by import By

    _fill_vault(layout)  # keyboard, mouse and apps granted, with data; mouse withdrawn so it can be granted again
    with Vault.open(layout) as vault:
        consent_ops.revoke(vault, MachinePolicy(), [Category.MOUSE], method="cli", now=utc_now())
    with chromium(tmp_path / "profile") as driver:
        _open(driver, page_link(layout.page_link, "/consent/mouse"))  # type: ignore[arg-type]
        csrf = driver.find_element(By.NAME, "csrf").get_attribute("value")
        notice = driver.find_element(By.NAME, "notice_sha256").get_attribute("value")
        before = _ledger_kinds(layout)
        with cookie_thief() as thief:
            driver.get(thief.url)  # the employee visits a page another user serves on this machine
            wait_for(lambda: "cute cats" in driver.page_source, "the other user's page")
            grant = {"csrf": csrf, "notice_sha256": notice, "confirm": "yes"}
            results = thief.replay(
                page.url,
                page.token,
                [
                    *({"method": "GET", "path": p} for p in ("/", "/mydata", "/ledger", "/batches", "/consent/mouse")),
                    {"method": "POST", "path": "/consent/mouse/grant", "form": grant},
                    {"method": "POST", "path": "/pause", "form": {"csrf": csrf, "for": "1h"}},
                    {"method": "POST", "path": "/consent/keyboard/revoke", "form": {"csrf": csrf}},
                    {"method": "POST", "path": "/resume", "form": {"csrf": csrf}},
                ],
            )
        stolen = results[0]["stolen"]
        assert stolen and f"consentry-session-{page.port}=" in stolen, "the browser must have leaked the cookie"
        for answer in results[1:]:
            what = f"{answer['method']} {answer['path'][:40]} as another user"
            assert answer["status"] in (0, 403), f"{what} got {answer['status']}"
            assert not answer["set_cookie"], f"{what} was given a session"
            assert csrf not in answer["body"] and not any(m in answer["body"] for m in _READ_MARKERS), what
        assert _ledger_kinds(layout) == before, "another user changed the consent ledger"

        # The employee's own browser keeps its session and grants, with the explicit confirmation.
        driver.get(page.url + "consent/mouse")
        wait_for(lambda: "grant-form" in driver.page_source, "the notice page, still in session")
        driver.find_element(By.ID, "confirm").click()
        driver.find_element(By.ID, "grant").click()
        wait_for(lambda: "Consent granted for mouse" in driver.page_source, "the grant's confirmation")
    with Vault.open(layout) as vault:
        receipts = [e.body for e in vault.ledger.entries(("grant",)) if e.body["category"] == "mouse"]
    receipt = receipts[-1]  # the first is _fill_vault's, through the CLI
    # How the grant was made: on the page, by the confirmation, in a session checked to be this account's.
    assert receipt["collection_method"] == "page" and receipt["confirmation"] == "page-checkbox-same-user"
