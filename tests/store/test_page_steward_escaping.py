"""The steward's review page shows what other people wrote as text: a rejection reason another steward
sent to the store, with markup in it, read on the batch page and on the review set's page in a real
headless Chromium.

The value travels through the real store (signed decision, stored, served back) into the page's
template, which escapes it; the DOM gets no element from it and nothing of it runs.
"""

from __future__ import annotations

import time
from pathlib import Path

from protocol import manifest_digest, sign_approval
from tests.browser_kit import chromium, wait_for
from tests.store.test_page_steward import Review, review  # noqa: F401  (the page fixture)

HOSTILE = """<script>window.__pwned = 1</script>"><img src=x onerror="window.__pwned = 2">'&amp; too few"""


def test_another_stewards_hostile_reason_is_shown_as_text(review: Review, tmp_path: Path) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By

    other = review.store.stewards.signers[1]
    manifest = review.manifest
    with review.store.steward_client(other) as client:
        client.decide(
            sign_approval(
                other,
                manifest.batch_id,
                manifest_digest(manifest),
                "reject",
                created=int(time.time()),
                reason=HOSTILE,
            )
        )
    with chromium(tmp_path / "profile") as driver:
        driver.get(review.url.replace("/?", f"/batch/{manifest.batch_id}?"))
        wait_for(lambda: "Decisions so far" in driver.page_source, "the decisions")
        main = driver.find_element(By.TAG_NAME, "main")
        cells = [td.text for td in main.find_elements(By.TAG_NAME, "td")]
        assert HOSTILE in cells, cells  # every character, as the other steward wrote it
        assert main.find_elements(By.TAG_NAME, "script") == []
        assert main.find_elements(By.TAG_NAME, "img") == []
        assert driver.execute_script("return typeof window.__pwned") == "undefined"


def test_a_hostile_reason_for_a_set_rejection_is_shown_as_text_on_the_set_page(
    review: Review,  # noqa: F811
    tmp_path: Path,
) -> None:
    from selenium.webdriver.common.by import By

    from protocol.review_set import sign_set_rejection
    from store.review_sets import recomputed_members

    other = review.store.stewards.signers[1]
    with review.store.steward_client(other) as client:
        (group,) = client.review_set_groups()
        view = client.create_review_set(group.key)
        client.reject_review_set(
            sign_set_rejection(other, view.set_id, recomputed_members(view), HOSTILE, created=int(time.time()))
        )
    with chromium(tmp_path / "profile") as driver:
        driver.get(review.url.replace("/?", f"/set/{view.set_id}?"))
        wait_for(lambda: "Rejections of this set" in driver.page_source, "the set's rejections")
        main = driver.find_element(By.TAG_NAME, "main")
        cells = [td.text for td in main.find_elements(By.TAG_NAME, "td")]
        assert HOSTILE in cells, cells
        assert main.find_elements(By.TAG_NAME, "script") == []
        assert main.find_elements(By.TAG_NAME, "img") == []
        assert driver.execute_script("return typeof window.__pwned") == "undefined"
