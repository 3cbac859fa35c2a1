"""``consentry steward review``: the steward's page against a real store, in a real headless Chromium.

The queue, the manifest with its privacy checks and consent basis, approve/reject signed on the
steward's machine, the signed tree head; and the same guard as the employee's page.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from devkit.store_kit import Agent, Harness, running_store
from kit.page_link import page_link
from protocol import BatchManifest, SigningKey, b64encode, manifest_digest
from protocol.keyfile import write_key_file
from tests.browser_kit import attack_page, chromium, hostile_site, wait_for
from tests.doc_shots import save_browser_shot

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Review:
    store: Harness
    manifest: BatchManifest
    signer: SigningKey
    link: Path
    url: str  # with the session token

    @property
    def base(self) -> str:
        return self.url.split("?")[0]

    def status(self):  # -> BatchReview
        with self.store.steward_client(self.signer) as client:
            return client.review(self.manifest.batch_id)


@pytest.fixture
def review(home: Path, tmp_path: Path) -> Iterator[Review]:
    """A real store with one submitted batch, and ``consentry steward review`` running as a process."""
    with running_store("dir", tmp_path) as store:
        agent = Agent()
        store.enroll(agent)
        manifest, _ = agent.next_batch()
        with store.client(agent) as client:
            client.submit_manifest(manifest)
        signer = store.stewards.signers[0]
        key_file = home / "steward" / "steward-ed25519.key"
        write_key_file(key_file, "ed25519", signer.private_bytes())
        link = home / "steward" / "review.json"
        log = (tmp_path / "review.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "agent.cli.main", "steward", "review", "--store-url", store.url,
             "--key-file", str(key_file), "--log-key", b64encode(store.keys.log.public_bytes), "--no-browser"],
            cwd=ROOT, env=dict(os.environ), stdout=log, stderr=log, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            url = wait_for(lambda: proc.poll() is None and page_link(link, "/"), "review.json", timeout=30)
            assert link.stat().st_mode & 0o077 == 0
            yield Review(store, manifest, signer, link, url)
        finally:
            proc.terminate()
            code = proc.wait(timeout=15)
            log.close()
        output = (tmp_path / "review.log").read_text()
        assert code == 0, output
        secret = url.split("token=", 1)[1]  # the session key (URL-quoted) is never printed, nor any ?token= link
        assert "Traceback" not in output and "token=" not in output and secret not in output
        assert not link.exists(), "review.json must go when the page stops"


def _session(review: Review) -> httpx.Client:
    client = httpx.Client(base_url=review.base, follow_redirects=False)
    assert client.get(review.url).status_code == 200
    return client


def test_approve_through_the_page_is_signed_locally_over_the_manifest_shown(review: Review, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    batch_id = review.manifest.batch_id
    with chromium(tmp_path / "profile") as driver:
        driver.get(review.url)
        wait_for(lambda: batch_id in driver.page_source, "the queue")
        head = driver.find_element(By.ID, "tree-head").text
        assert re.search(r"Tree head: \d+ entries", head)
        assert "signature verified with the pinned log key" in driver.page_source
        driver.save_screenshot(str(Path(os.environ.get("CONSENTRY_SCREENSHOTS", tmp_path)) / "page-steward-queue.png"))
        save_browser_shot(driver, "steward-review-queue.png")  # the docs' picture (tests/doc_shots.py)
        driver.find_element(By.LINK_TEXT, batch_id).click()
        wait_for(lambda: "Consent basis" in driver.page_source, "the manifest")
        main = driver.find_element(By.TAG_NAME, "main").text
        assert "Privacy checks" in main and "consent_coverage" in main and "keyboard" in main and "consent" in main
        assert driver.find_element(By.ID, "manifest-hash").text == manifest_digest(review.manifest)
        driver.save_screenshot(str(Path(os.environ.get("CONSENTRY_SCREENSHOTS", tmp_path)) / "page-steward.png"))
        save_browser_shot(driver, "steward-review-batch.png")
        driver.find_element(By.ID, "approve").click()
        wait_for(lambda: "Your approval was signed" in driver.page_source, "the approval's confirmation")
        assert str(b64encode(review.signer.private_bytes())) not in driver.page_source
    seen = review.status()
    assert seen.status.approvals == 1
    (decision,) = seen.decisions
    assert decision.decision == "approve" and decision.steward_key == b64encode(review.signer.public_bytes)
    assert decision.manifest_sha256 == manifest_digest(review.manifest)


def test_reject_through_the_page_needs_a_reason_and_stops_the_batch(review: Review, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    with chromium(tmp_path / "profile") as driver:
        driver.get(review.url.replace("/?", f"/batch/{review.manifest.batch_id}?"))
        wait_for(lambda: "Consent basis" in driver.page_source, "the manifest")
        driver.find_element(By.ID, "reject").click()  # no reason: the browser does not send the form
        assert review.status().status.state == "review"
        driver.find_element(By.ID, "reason").send_keys("too few records to be anonymous")
        driver.find_element(By.ID, "reject").click()
        wait_for(lambda: "Your rejection was signed" in driver.page_source, "the rejection's confirmation")
    status = review.status().status
    assert status.state == "rejected" and status.rejection_reasons == ("too few records to be anonymous",)


def test_a_page_from_another_origin_cannot_approve(review: Review, tmp_path: Path) -> None:
    client = _session(review)
    page = client.get(f"/batch/{review.manifest.batch_id}").text
    fields = dict(re.findall(r'name="(csrf|manifest_sha256)" value="([0-9a-f]+)"', page))
    assert set(fields) == {"csrf", "manifest_sha256"}
    target = f"{review.base}batch/{review.manifest.batch_id}/approve"
    with chromium(tmp_path / "profile") as driver:
        driver.get(review.url)
        wait_for(lambda: "Batches waiting" in driver.page_source, "the queue")
        with hostile_site(attack_page(target, fields)) as evil:
            driver.get(evil)
            wait_for(lambda: driver.current_url.startswith(review.base), "the hostile form to be submitted")
            wait_for(lambda: "<main>" in driver.page_source, "the page's answer")
            assert review.status().status.approvals == 0, "a hostile page made the steward approve"
            assert "did not come from this page" in driver.page_source


def test_wrong_host_missing_token_and_a_changed_manifest_sign_nothing(review: Review) -> None:
    raw = httpx.Client(base_url=review.base)
    for answer in (raw.get("/"), raw.get("/", params={"token": "wrong"})):
        assert answer.status_code == 403 and review.manifest.batch_id not in answer.text
    client = _session(review)
    port = review.base.rsplit(":", 1)[1].strip("/")
    assert client.get("/", headers={"Host": f"rebound.example:{port}"}).status_code == 403
    page = client.get(f"/batch/{review.manifest.batch_id}").text
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert csrf
    origin = {"Origin": review.base.rstrip("/")}
    stale = client.post(
        f"/batch/{review.manifest.batch_id}/approve",
        data={"csrf": csrf.group(1), "manifest_sha256": "ab" * 32},
        headers=origin,
    )
    assert stale.status_code == 409 and "nothing was signed" in stale.text
    assert review.status().decisions == ()
