"""Another local account cannot approve, reject or read through the steward's review page.

As in the issue: ``nobody`` serves a page on another 127.0.0.1 port, the steward's real browser
visits it and hands over the review page's session cookie, and ``nobody`` replays requests with
that cookie, a leaked ``?token=`` link and the form's CSRF token and manifest hash.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

from tests.browser_kit import chromium, wait_for
from tests.other_user import cookie_thief
from tests.store.test_page_steward import Review, review  # noqa: F401 (fixture)


def test_another_user_with_the_stolen_cookie_and_link_can_neither_read_nor_sign(
    review: Review,  # noqa: F811
    tmp_path: Path,
) -> None:
    from selenium.webdriver.common.by import By

    batch_id = review.manifest.batch_id
    port = review.base.rsplit(":", 1)[1].strip("/")
    token = unquote(review.url.split("token=", 1)[1])
    with chromium(tmp_path / "profile") as driver:
        driver.get(review.url.replace("/?", f"/batch/{batch_id}?"))
        wait_for(lambda: "Consent basis" in driver.page_source, "the manifest")
        csrf = driver.find_element(By.NAME, "csrf").get_attribute("value")
        digest = driver.find_element(By.NAME, "manifest_sha256").get_attribute("value")
        with cookie_thief() as thief:
            driver.get(thief.url)  # the steward visits a page another user serves on this machine
            wait_for(lambda: "cute cats" in driver.page_source, "the other user's page")
            signed = {"csrf": csrf, "manifest_sha256": digest}
            results = thief.replay(
                review.base,
                token,
                [
                    {"method": "GET", "path": "/"},
                    {"method": "GET", "path": f"/batch/{batch_id}"},
                    {"method": "POST", "path": f"/batch/{batch_id}/approve", "form": signed},
                    {"method": "POST", "path": f"/batch/{batch_id}/reject", "form": {**signed, "reason": "x"}},
                ],
            )
        stolen = results[0]["stolen"]
        assert stolen and f"consentry-session-{port}=" in stolen, "the browser must have leaked the cookie"
        for answer in results[1:]:
            what = f"{answer['method']} {answer['path'][:40]} as another user"
            assert answer["status"] in (0, 403), f"{what} got {answer['status']}"
            assert not answer["set_cookie"], f"{what} was given a session"
            assert csrf not in answer["body"] and batch_id not in answer["body"], what
        assert review.status().decisions == (), "another user signed a decision with the steward's key"

        # The steward's own browser keeps its session and approves.
        driver.get(f"{review.base}batch/{batch_id}")
        wait_for(lambda: "Consent basis" in driver.page_source, "the manifest, still in session")
        driver.find_element(By.ID, "approve").click()
        wait_for(lambda: "Your approval was signed" in driver.page_source, "the approval's confirmation")
    assert review.status().status.approvals == 1
