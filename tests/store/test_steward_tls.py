"""Every steward tool that signs pins the machine policy's ``[store] tls_ca``: ``steward approve`` and
``reject``, ``steward set approve`` and ``reject``, and the review page's decisions, against a real
``store serve --tls-cert/--tls-key`` process with a self-signed certificate. Pinned to the store's
certificate they work; pinned to another one they refuse in words, and nothing is signed or sent."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from admin.steward_cmd import steward
from devkit.store_kit import Agent, Stewards, StoreProcess, free_port, write_policy
from kit.page_link import page_link
from kit.store_client import RetryPolicy, StoreClient
from protocol.keyfile import write_key_file
from store.auth import issue_token
from tests.browser_kit import wait_for
from tests.store.test_store_tls import _pin_in_machine_policy, _self_signed

ROOT = Path(__file__).resolve().parents[2]
UNTRUSTED = "TLS certificate is not trusted"


@dataclass
class TlsStore:
    proc: StoreProcess
    cert: Path  # the store's own certificate
    impostor: Path  # another self-signed certificate
    stewards: Stewards
    key_file: Path  # the first steward's key
    policy: Path  # the machine policy the steward tools read

    def client(self, signer) -> StoreClient:  # a steward's client pinned to the real certificate
        quick = RetryPolicy(attempts=2, base_seconds=0.01, cap_seconds=0.02)
        return StoreClient(self.proc.url, signer=signer, role="steward", tls_ca=self.cert, retry=quick)

    def pin(self, certificate: Path) -> None:
        _pin_in_machine_policy(self.policy, self.proc.url, certificate)

    def states(self, ids: list[str]) -> dict[str, str]:
        with self.client(self.stewards.signers[1]) as client:
            return {i: client.review(i).status.state for i in ids}

    def log_size(self) -> int:
        with self.client(self.stewards.signers[1]) as client:
            return client.tree_head().size

    def submit(self, batches: int) -> list[str]:
        """``batches`` manifests from one newly enrolled device, over TLS."""
        from store.backends.dir import DirBackend
        from store.settings import StoreSettings

        backend = DirBackend(self.proc.data_dir / "data")
        try:
            token = issue_token(backend, StoreSettings(stewards=self.stewards.config()), int(time.time()))
        finally:
            backend.close()
        agent = Agent()
        ids = []
        with StoreClient(self.proc.url, signer=agent.device, tls_ca=self.cert) as client:
            client.enroll(token)
            for _ in range(batches):
                manifest, _ = agent.next_batch()
                client.submit_manifest(manifest)
                ids.append(manifest.batch_id)
        return ids


@pytest.fixture
def tls(home: Path, tmp_path: Path) -> Iterator[TlsStore]:
    cert, key = _self_signed(tmp_path, "store")
    impostor, _ = _self_signed(tmp_path, "impostor")
    stewards = Stewards.make(2, 1)
    proc = StoreProcess(
        tmp_path / "data", write_policy(tmp_path / "store-policy.toml", stewards), backend="dir",
        port=free_port(), tls=(cert, key),
    )  # fmt: skip
    proc.start()
    key_file = home / "steward" / "steward-ed25519.key"
    write_key_file(key_file, "ed25519", stewards.signers[0].private_bytes())
    try:
        yield TlsStore(proc, cert, impostor, stewards, key_file, Path(os.environ["CONSENTRY_POLICY"]))
    finally:
        proc.stop()


def _steward(args: list[str]):
    return CliRunner().invoke(steward, args, catch_exceptions=False)


def test_steward_approve_and_reject_pin_the_policy_tls_ca(tls: TlsStore) -> None:
    ids = tls.submit(2)
    before = tls.log_size()
    key = ["--key-file", str(tls.key_file)]
    tls.pin(tls.impostor)
    for args in (["approve", ids[0]], ["reject", ids[1], "--reason", "too many apps"]):
        refused = _steward([*args, *key])
        assert refused.exit_code == 1 and UNTRUSTED in refused.output and "Nothing was signed" in refused.output
        assert "tls_ca" in refused.output and "Traceback" not in refused.output
    assert tls.states(ids) == {ids[0]: "review", ids[1]: "review"} and tls.log_size() == before
    tls.pin(tls.cert)
    assert _steward(["approve", ids[0], *key]).exit_code == 0
    assert _steward(["reject", ids[1], "--reason", "too many apps", *key]).exit_code == 0
    assert tls.states(ids) == {ids[0]: "approved", ids[1]: "rejected"}


def test_steward_set_approve_and_reject_pin_the_policy_tls_ca(tls: TlsStore) -> None:
    first = tls.submit(2)
    key = ["--key-file", str(tls.key_file)]
    tls.pin(tls.cert)
    shown = _steward(["set", "show", "2023-11-14", *key])
    assert shown.exit_code == 0, shown.output
    set_id, root = re.search(r"set approve ([0-9a-f]{32}) --root ([0-9a-f]{64})", shown.output).groups()
    before = tls.log_size()
    tls.pin(tls.impostor)
    for args in (["set", "approve", set_id, "--root", root], ["set", "reject", set_id, "--root", root, "--reason", "x"],
                 ["set", "show", set_id], ["set", "list"]):  # fmt: skip
        refused = _steward([*args, *key])
        assert refused.exit_code == 1 and UNTRUSTED in refused.output, refused.output
        assert "Traceback" not in refused.output
    assert set(tls.states(first).values()) == {"review"} and tls.log_size() == before
    with tls.client(tls.stewards.signers[1]) as client:
        view = client.review_set(set_id)
        assert view.approvals == () and view.rejections == ()
    tls.pin(tls.cert)
    done = _steward(["set", "approve", set_id, "--root", root, *key])
    assert done.exit_code == 0 and "2 have all the approvals they need" in done.output, done.output
    assert set(tls.states(first).values()) == {"approved"}
    second = tls.submit(2)  # a new device's batches, the same day: a new set to reject
    shown = _steward(["set", "show", "2023-11-14", *key])
    set_id, root = re.search(r"set reject ([0-9a-f]{32}) --root ([0-9a-f]{64})", shown.output).groups()
    done = _steward(["set", "reject", set_id, "--root", root, "--reason", "wrong notice", *key])
    assert done.exit_code == 0 and "2 batches are now rejected" in done.output, done.output
    assert set(tls.states(second).values()) == {"rejected"}


def test_a_tls_ca_that_cannot_be_read_is_said_in_words(tls: TlsStore, tmp_path: Path) -> None:
    (ids,) = [tls.submit(1)]
    broken = tmp_path / "broken.pem"
    broken.write_text("not a certificate\n")
    tls.pin(broken)
    refused = _steward(["approve", ids[0], "--key-file", str(tls.key_file)])
    assert refused.exit_code == 1 and "cannot read [store] tls_ca" in refused.output, refused.output
    assert "Traceback" not in refused.output and tls.states(ids) == {ids[0]: "review"}


def test_the_review_page_signs_nothing_when_the_pinned_certificate_is_not_the_store_s(
    tls: TlsStore, tmp_path: Path
) -> None:
    """The page reads the pinned file each time it reaches the store: with the store's certificate there it
    shows a batch and a set; with another one in its place, the steward's click signs and sends nothing."""
    ids = tls.submit(3)
    pinned = tmp_path / "pinned-ca.pem"  # the file the machine policy names; its content is swapped below
    shutil.copy(tls.cert, pinned)
    tls.pin(pinned)
    link = Path(os.environ["CONSENTRY_HOME"]) / "steward" / "review.json"
    log = (tmp_path / "review.log").open("wb")
    page = subprocess.Popen(
        [sys.executable, "-m", "agent.cli.main", "steward", "review", "--key-file", str(tls.key_file), "--no-browser"],
        cwd=ROOT, env=dict(os.environ), stdout=log, stderr=log, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = wait_for(lambda: page.poll() is None and page_link(link, "/"), "review.json", timeout=30)
        with httpx.Client(base_url=url.split("?")[0], timeout=30) as browser:
            assert browser.get(url).status_code == 200  # the token becomes this session's cookie
            origin = {"Origin": url.split("?")[0].rstrip("/")}
            batch = browser.get(f"/batch/{ids[0]}").text
            csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', batch).group(1)
            digest = re.search(r'name="manifest_sha256" value="([0-9a-f]{64})"', batch).group(1)
            opened = browser.post("/sets/open", data={"csrf": csrf, "key": _group_key(tls)}, headers=origin)
            set_path = opened.headers["location"].split("?")[0]
            root = re.search(r'name="root" value="([0-9a-f]{64})"', browser.get(set_path).text).group(1)
            before = tls.log_size()
            shutil.copy(tls.impostor, pinned)  # the pinned certificate is no longer the store's
            decisions = [
                (f"/batch/{ids[0]}/approve", {"manifest_sha256": digest}),
                (f"/batch/{ids[0]}/reject", {"manifest_sha256": digest, "reason": "x"}),
                (f"{set_path}/approve", {"root": root}),
                (f"{set_path}/reject", {"root": root, "reason": "x"}),
            ]
            for path, fields in decisions:
                refused = browser.post(path, data={"csrf": csrf, **fields}, headers=origin)
                assert refused.status_code == 409 and UNTRUSTED in refused.text, (path, refused.text)
                assert "Nothing was signed" in refused.text and "tls_ca" in refused.text
            assert set(tls.states(ids).values()) == {"review"} and tls.log_size() == before
            shutil.copy(tls.cert, pinned)  # the store's own certificate again: the same clicks work
            done = browser.post(f"{set_path}/reject", data={"csrf": csrf, "root": root, "reason": "x"}, headers=origin)
            assert done.status_code in (302, 303), done.text
            assert "Your rejection of the set was signed" in browser.get(done.headers["location"]).text
    finally:
        page.terminate()
        code = page.wait(timeout=15)
        log.close()
    assert code == 0 and "Traceback" not in (tmp_path / "review.log").read_text()
    assert set(tls.states(ids).values()) == {"rejected"}


def _group_key(tls: TlsStore) -> str:
    with tls.client(tls.stewards.signers[1]) as client:
        (group,) = client.review_set_groups()
    return group.key.model_dump_json()


def test_verify_log_pins_the_policy_tls_ca_when_the_store_and_log_key_are_given_as_options(tls: TlsStore) -> None:
    """Before, ``--store-url`` with ``--log-key`` skipped the machine policy and so its tls_ca: the policy's
    own store, named on the command line, was then checked against the system trust store."""
    import json

    from admin.store_cmd import store

    with tls.client(tls.stewards.signers[1]) as client:
        log_key = client.info().log_public_key
    args = ["verify-log", "--store-url", tls.proc.url, "--log-key", log_key, "--json"]
    tls.pin(tls.cert)
    checked = CliRunner().invoke(store, args)
    assert checked.exit_code == 0 and json.loads(checked.output)["signature"] == "ok", checked.output
    tls.pin(tls.impostor)
    refused = CliRunner().invoke(store, args)
    assert refused.exit_code == 1 and UNTRUSTED in refused.output and "tls_ca" in refused.output, refused.output
    tls.policy.write_text("[store\n")  # an unreadable policy does not stop a check given every option
    other = CliRunner().invoke(store, args)
    assert other.exit_code == 1 and other.output.startswith("Error: cannot check the log: the store's TLS"), (
        other.output
    )
