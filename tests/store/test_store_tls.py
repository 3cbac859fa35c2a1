"""The store over TLS: ``store serve --tls-cert/--tls-key``, and an agent that trusts only the pinned certificate."""

from __future__ import annotations

import datetime
import ipaddress
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from devkit.store_kit import Agent, Stewards, StoreProcess, free_port, write_policy
from kit.store_client import RetryPolicy, StoreClient
from protocol.errors import PolicyError
from protocol.store_errors import UntrustedStore
from store.auth import issue_token
from vault.policy import parse_policy


def _self_signed(folder: Path, name: str) -> tuple[Path, Path]:
    """A real self-signed certificate for 127.0.0.1 and localhost (what a small on-prem store might use)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"consentry-store-{name}")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    return cert_path, key_path


@pytest.fixture
def tls_store(tmp_path: Path):
    cert, key = _self_signed(tmp_path, "store")
    stewards = Stewards.make(2, 1)
    policy = write_policy(tmp_path / "policy.toml", stewards)
    proc = StoreProcess(tmp_path / "data", policy, backend="dir", port=free_port(), tls=(cert, key))
    proc.start()
    try:
        yield proc, cert
    finally:
        proc.stop()


def _quick() -> RetryPolicy:
    return RetryPolicy(attempts=2, base_seconds=0.01, cap_seconds=0.02)


def test_agent_enrolls_over_tls_trusting_only_the_pinned_certificate(tls_store, tmp_path: Path) -> None:
    proc, cert = tls_store
    assert proc.url.startswith("https://")
    # A default client (system trust store) refuses the self-signed certificate, with a clear error.
    with StoreClient(proc.url, retry=_quick()) as client, pytest.raises(UntrustedStore) as default:
        client.info()
    assert default.value.code == "tls_untrusted" and "tls_ca" in default.value.message
    # Pinned to it, the agent talks to the store: enrollment and a signed request work end to end.
    agent = Agent()
    from store.backends.dir import DirBackend
    from store.settings import StoreSettings

    backend = DirBackend(proc.data_dir / "data")
    try:
        token = issue_token(backend, StoreSettings(stewards=Stewards.make(1, 1).config()), int(time.time()))
    finally:
        backend.close()
    with StoreClient(proc.url, signer=agent.device, tls_ca=cert, retry=_quick()) as client:
        assert client.enroll(token).device_kid == agent.device.kid
        assert client.tree_head().size == 0
        assert client.entries(0, 10) == []


def test_a_different_certificate_is_refused_and_nothing_is_sent(tls_store, tmp_path: Path) -> None:
    proc, _ = tls_store
    other, _ = _self_signed(tmp_path, "impostor")
    agent = Agent()
    with StoreClient(proc.url, signer=agent.device, tls_ca=other, retry=_quick()) as client:
        with pytest.raises(UntrustedStore) as info:
            client.enroll("a-token-that-must-not-leave-the-machine")
    assert info.value.code == "tls_untrusted"
    assert "a-token-that" not in str(info.value)


def test_plain_http_to_the_tls_store_fails_cleanly(tls_store) -> None:
    proc, cert = tls_store
    plain = proc.url.replace("https://", "http://")
    with StoreClient(plain, retry=_quick()) as client, pytest.raises(httpx.TransportError):
        client.info()
    # The store is unharmed: the pinned client still gets answers.
    with StoreClient(proc.url, tls_ca=cert, retry=_quick()) as client:
        assert client.info().approvals_required == 1


def test_policy_pin_needs_an_https_url_and_an_absolute_path() -> None:
    key = "A" * 43 + "="
    with pytest.raises(PolicyError, match="https"):
        parse_policy(f'[store]\nurl = "http://store:8750"\npublic_key = "{key}"\ntls_ca = "/etc/ca.pem"\n')
    with pytest.raises(PolicyError, match="absolute"):
        parse_policy(f'[store]\nurl = "https://store:8750"\npublic_key = "{key}"\ntls_ca = "ca.pem"\n')
    policy = parse_policy(f'[store]\nurl = "https://store:8750"\npublic_key = "{key}"\ntls_ca = "/etc/ca.pem"\n')
    assert policy.store is not None and policy.store.tls_ca == "/etc/ca.pem"


def test_serve_refuses_half_a_tls_configuration(tmp_path: Path) -> None:
    from admin.store_cmd import store

    cert, _ = _self_signed(tmp_path, "half")
    policy = write_policy(tmp_path / "policy.toml", Stewards.make(1, 1))
    result = CliRunner().invoke(
        store, ["serve", "--data", str(tmp_path / "d"), "--policy", str(policy), "--tls-cert", str(cert)]
    )
    assert result.exit_code == 2 and "--tls-key" in result.output


def test_steward_commands_pin_the_policy_tls_ca(tls_store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``consentry steward ...`` reaches a store with a private certificate through the machine policy's
    [store] tls_ca, as the agent does; another certificate there is refused before anything is sent."""
    from admin.steward_cmd import steward

    proc, cert = tls_store
    key_file = tmp_path / "steward.key"
    assert CliRunner().invoke(steward, ["init", "--key-file", str(key_file)]).exit_code == 0
    policy = tmp_path / "machine-policy.toml"
    monkeypatch.setenv("CONSENTRY_POLICY", str(policy))
    key = "A" * 43 + "="
    for pinned, trusted in ((cert, True), (_self_signed(tmp_path, "impostor")[0], False)):
        policy.write_text(f'[store]\nurl = "{proc.url}"\npublic_key = "{key}"\ntls_ca = "{pinned}"\n')
        result = CliRunner().invoke(steward, ["queue", "--json", "--key-file", str(key_file)])
        assert result.exit_code == 1
        # Pinned: the store answers (this key is not one of its stewards); else the TLS check stops it.
        assert ("not a steward" in result.output) is trusted, result.output
        assert ("not trusted" in result.output) is not trusted, result.output


def _pin_in_machine_policy(policy: Path, store_url: str, pinned: Path, *, log_key: str | None = None) -> None:
    """A machine policy naming the TLS store, pinning ``pinned`` (and the store's log key when given)."""
    key = "A" * 43 + "="
    lines = ["[store]", f'url = "{store_url}"', f'public_key = "{key}"', f'tls_ca = "{pinned}"']
    if log_key is not None:
        lines.append(f'log_key = "{log_key}"')
    policy.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_steward_review_page_pins_the_policy_tls_ca(tls_store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``consentry steward review`` (a real process) reaches the store through the machine policy's
    [store] tls_ca: pinned to the store's certificate its page shows the store's answer (this key is no
    steward there); pinned to another certificate it shows that the store is not trusted."""
    import os
    import subprocess
    import sys

    from kit.page_link import page_link
    from protocol import SigningKey
    from protocol.keyfile import write_key_file
    from tests.browser_kit import wait_for

    proc, cert = tls_store
    home = tmp_path / "home"
    policy = tmp_path / "machine-policy.toml"
    monkeypatch.setenv("CONSENTRY_HOME", str(home))
    monkeypatch.setenv("CONSENTRY_POLICY", str(policy))
    key_file = home / "steward" / "steward-ed25519.key"
    write_key_file(key_file, "ed25519", SigningKey.generate().private_bytes())
    link = home / "steward" / "review.json"
    root = Path(__file__).resolve().parents[2]

    def page_text(log: Path) -> str:
        with log.open("wb") as out:
            page = subprocess.Popen(
                [sys.executable, "-m", "agent.cli.main", "steward", "review", "--key-file", str(key_file), "--no-browser"],
                cwd=root, env=dict(os.environ), stdout=out, stderr=out, stdin=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                url = wait_for(lambda: page.poll() is None and page_link(link, "/"), "review.json", timeout=30)
                with httpx.Client(timeout=30) as browser:
                    browser.get(url).raise_for_status()  # the token becomes this session's cookie
                    return browser.get(url.split("?")[0]).text  # the queue, asked of the store
            finally:
                page.terminate()
                page.wait(timeout=15)

    for pinned, trusted in ((cert, True), (_self_signed(tmp_path, "impostor")[0], False)):
        _pin_in_machine_policy(policy, proc.url, pinned)
        log = tmp_path / f"review-{trusted}.log"
        text = page_text(log)
        assert ("not a steward" in text) is trusted, text
        assert ("not trusted" in text) is not trusted, text
        assert "Traceback" not in log.read_text()


def test_verify_log_pins_the_policy_tls_ca(tls_store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``consentry store verify-log`` with the store and its log key from the machine policy checks the
    log over TLS through [store] tls_ca; another pinned certificate is refused before anything is sent."""
    import json
    import ssl

    from admin.store_cmd import store

    proc, cert = tls_store
    info = httpx.get(proc.url + "/v1/info", verify=ssl.create_default_context(cafile=str(cert))).json()
    policy = tmp_path / "machine-policy.toml"
    monkeypatch.setenv("CONSENTRY_POLICY", str(policy))
    for pinned, trusted in ((cert, True), (_self_signed(tmp_path, "impostor")[0], False)):
        _pin_in_machine_policy(policy, proc.url, pinned, log_key=info["log_public_key"])
        result = CliRunner().invoke(store, ["verify-log", "--json"])
        if trusted:
            assert result.exit_code == 0, result.output
            assert json.loads(result.output)["signature"] == "ok"
        else:
            assert result.exit_code == 1 and "not trusted" in result.output, result.output
