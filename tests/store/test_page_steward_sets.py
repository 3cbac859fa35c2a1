"""The review page's review sets in a real headless Chromium against a real store: a day's batches shown
with figures, deviations, a sample whose checks all show their detail, approved or rejected in one signed
act."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from devkit.store_kit import Agent, Stewards, running_store
from kit.page_link import page_link
from protocol import b64encode
from protocol.keyfile import write_key_file
from tests.browser_kit import chromium, wait_for

ROOT = Path(__file__).resolve().parents[2]


def test_a_review_set_is_shown_with_its_figures_and_approved_in_one_act(home: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    with running_store("dir", tmp_path, Stewards.make(2, 1)) as store:
        ids = []
        for n in range(4):
            agent = Agent()
            store.enroll(agent)
            for size in (12, 12, 60 if n == 3 else 9):
                manifest, _ = agent.next_batch(size)
                with store.client(agent) as client:
                    client.submit_manifest(manifest)
                ids.append(manifest.batch_id)
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
            with chromium(tmp_path / "profile") as driver:
                driver.get(url)
                wait_for(lambda: "Batches waiting" in driver.page_source, "the queue")
                driver.find_element(By.LINK_TEXT, "Review sets").click()
                wait_for(lambda: "Review as one set" in driver.page_source, "the groups")
                assert "2023-11-14" in driver.page_source
                driver.find_element(By.XPATH, "//button[text()='Review as one set']").click()
                wait_for(lambda: "set-root" in driver.page_source, "the set")
                main = driver.find_element(By.TAG_NAME, "main").text
                assert "12 batches of 2023-11-14" in main and "Previous day" in main
                assert "No failed check in 12 batches" in main
                deviating = driver.find_element(By.ID, "deviating").text
                assert ids[-1] in deviating and "outside" in deviating
                sample = driver.find_element(By.ID, "sample").text
                assert "Sampled for a closer look (5)" in sample
                assert sample.count("records outside the window schema") == 5 and " 0 of " in sample
                assert not re.search(r"\bpass(ed)?\s*$", sample, re.M), "a check shown without its detail"
                root = driver.find_element(By.ID, "set-root").text
                driver.save_screenshot(str(Path(os.environ.get("CONSENTRY_SCREENSHOTS", tmp_path)) / "page-set.png"))
                driver.find_element(By.ID, "approve-set").click()
                wait_for(lambda: "Your approval of the set was signed" in driver.page_source, "the confirmation")
                assert str(b64encode(signer.private_bytes())) not in driver.page_source
        finally:
            proc.terminate()
            code = proc.wait(timeout=15)
            log.close()
        assert code == 0, (tmp_path / "review.log").read_text()
        with store.steward_client(signer) as client:
            assert {client.review(i).status.state for i in ids} == {"approved"}
            (view_approval,) = client.review_set(_only_set(client)).approvals
        assert view_approval.root == root


def _only_set(client) -> str:  # the one set this test opened, found through the log's approval entries
    head = client.tree_head()
    sets = {e.body.get("review_set") for e in client.entries(0, head.size) if e.kind == "approval"}
    (set_id,) = sets
    return str(set_id)


@contextmanager
def _review_page(store, signer, home: Path, tmp_path: Path) -> Iterator[str]:
    """The real ``consentry steward review`` process for ``signer``; yields the page's way-in address."""
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
        yield wait_for(lambda: proc.poll() is None and page_link(link, "/"), "review.json", timeout=30)
    finally:
        proc.terminate()
        code = proc.wait(timeout=15)
        log.close()
    assert code == 0, (tmp_path / "review.log").read_text()


def test_a_review_set_is_rejected_in_one_act_with_its_reason(home: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    reason = "App tokens of an unlisted tool appear in every batch"
    with running_store("dir", tmp_path, Stewards.make(2, 1)) as store:
        ids = []
        for _ in range(3):
            agent = Agent()
            store.enroll(agent)
            for _ in range(2):
                manifest, _ = agent.next_batch()
                with store.client(agent) as client:
                    client.submit_manifest(manifest)
                ids.append(manifest.batch_id)
        signer = store.stewards.signers[0]
        with _review_page(store, signer, home, tmp_path) as url, chromium(tmp_path / "profile") as driver:
            driver.get(url)
            wait_for(lambda: "Batches waiting" in driver.page_source, "the queue")
            driver.find_element(By.LINK_TEXT, "Review sets").click()
            wait_for(lambda: "Review as one set" in driver.page_source, "the groups")
            driver.find_element(By.XPATH, "//button[text()='Review as one set']").click()
            wait_for(lambda: "reject-set" in driver.page_source, "the set")
            set_page = driver.current_url
            # The browser asks for a reason itself; without the browser's check the page refuses too.
            driver.execute_script("document.getElementById('set-reason').removeAttribute('required')")
            driver.find_element(By.ID, "reject-set").click()
            wait_for(lambda: "A rejection needs a reason; nothing was signed." in driver.page_source, "the refusal")
            with store.steward_client(signer) as client:
                assert {client.review(i).status.state for i in ids} == {"review"}
            driver.get(set_page)
            wait_for(lambda: "reject-set" in driver.page_source, "the set again")
            driver.find_element(By.ID, "set-reason").send_keys(reason)
            driver.find_element(By.ID, "reject-set").click()
            wait_for(lambda: "Your rejection of the set was signed" in driver.page_source, "the confirmation")
            main = driver.find_element(By.TAG_NAME, "main").text
            assert "Rejections of this set" in main and reason in main
            driver.get(set_page.split("/set/")[0] + f"/batch/{ids[0]}")  # each batch's page says why
            wait_for(lambda: "Why it was rejected" in driver.page_source, "the batch's page")
            assert reason in driver.find_element(By.TAG_NAME, "main").text
            assert str(b64encode(signer.private_bytes())) not in driver.page_source
        with store.steward_client(signer) as client:
            statuses = [client.review(i).status for i in ids]
        assert {s.state for s in statuses} == {"rejected"}
        assert {s.rejection_reasons for s in statuses} == {(reason,)}
