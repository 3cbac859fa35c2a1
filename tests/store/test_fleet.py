"""Issue 16 §2: a simulated fleet of 50 devices against a real store (both backends, real HTTP on 127.0.0.1).

Each device is a real vault driven by the real agent-side code (``agent.heartbeat.Heartbeater``: enrollment
with IT's secret on first start, then heartbeats). Half the employees granted a category and their
devices delivered a batch; the other half granted nothing. Nothing IT or a steward can see may tell
the two halves apart: the heartbeats on the wire, the operator's report, CLI and page, and the
steward's queue. Consent shows only as counts over groups of at least k devices on each side.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from admin.fleet_page import FleetPage
from admin.steward_cmd import steward
from admin.store_cmd import store as store_cli
from agent.fleet_state import read_state, status_lines
from agent.heartbeat import Heartbeater, agent_health
from devkit.factories import grant
from devkit.store_kit import Agent, Harness, backend_kind, running_store
from kit.store_client import StoreClient
from kit.web.server import Request
from protocol import SigningKey, b64encode
from protocol.categories import Category
from protocol.fleet import HEARTBEAT_BYTES
from protocol.keyfile import write_key_file
from protocol.store_errors import StoreError
from store import fleet_db
from store.enrollment import create_secret
from tests.store.test_steward_times import EPOCH, ISO
from vault.paths import Layout
from vault.policy import load_policy
from vault.vault import Vault

__all__ = ["backend_kind"]

LABELS = ("eng",) * 24 + ("sales",) * 23 + ("lab",) * 3  # 50 devices; "lab" is a group under k
IDENTITY_FIELDS = ("device_kid", "label", "enrolled_at", "last_seen", "clock_skew_seconds")


class RecordingTransport(httpx.HTTPTransport):
    """A real HTTP transport that also keeps every heartbeat body it sends (kept open across clients)."""

    def __init__(self) -> None:
        super().__init__()
        self.heartbeats: list[bytes] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/fleet/heartbeats":
            self.heartbeats.append(request.content)
        return super().handle_request(request)

    def close(self) -> None:
        """Each StoreClient closes its transport; this one lives for the whole device."""

    def really_close(self) -> None:
        super().close()


@dataclass
class Device:
    layout: Layout
    policy_path: Path
    consented: bool
    transport: RecordingTransport
    beater: Heartbeater
    kid: str = ""


def _policy_dir(tmp: Path, live: Harness, label: str, secret: str) -> Path:
    folder = tmp / f"policy-{label}"
    folder.mkdir()
    (folder / "policy.toml").write_text(
        f'[store]\nurl = "{live.url}"\npublic_key = "{b64encode(live.keys.seal.public_bytes)}"\n'
        f'log_key = "{b64encode(live.keys.log.public_bytes)}"\n',
        encoding="utf-8",
    )
    (folder / "enroll-secret").write_text(secret + "\n", encoding="utf-8")
    return folder / "policy.toml"


def _device(tmp: Path, index: int, policy_path: Path, consented: bool) -> Device:
    layout = Layout(tmp / f"device-{index:02d}")
    policy = load_policy(policy_path)
    with Vault.open(layout) as vault:
        if consented:
            grant(vault, Category.KEYBOARD, policy=policy)
        kid = vault.device_key.kid

    def health() -> Any:
        # What the daemon hands in: its policy, ledger-head state, storage error and per-category states.
        with Vault.open(layout, create=False) as vault:
            snapshot = vault.consent(policy)
            states = ["capturing" if s.state == "granted" else "not_granted" for s in snapshot.categories.values()]
            head = vault.ledger_head_state().status
        storage_error = "disk full" if consented and index % 4 == 0 else None  # only a capturing agent can hit it
        return agent_health(policy, head, storage_error, None, states)

    transport = RecordingTransport()
    beater = Heartbeater(layout, policy_path, lambda: policy, health, client_kwargs={"transport": transport})
    return Device(layout, policy_path, consented, transport, beater, kid)


def _masked_rows(devices: list[dict[str, Any]]) -> set[str]:
    return {json.dumps({k: v for k, v in d.items() if k not in IDENTITY_FIELDS}, sort_keys=True) for d in devices}


def _mask_text(text: str, kids: list[str]) -> str:
    for kid in kids:
        text = text.replace(kid, "KID")
    text = re.sub(r"\b(eng|sales|lab)\b", "LABEL", text)
    text = re.sub(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d(:\d\d)?( UTC)?", "TIME", text)
    return re.sub(r"[+-]?\d+ s\b", "SKEW", text)


def _device_lines(text: str, kids: list[str], by_kid: dict[str, Device]) -> dict[bool, set[str]]:
    found: dict[bool, set[str]] = {True: set(), False: set()}
    for line in text.splitlines():
        for kid in kids:
            if kid in line:
                found[by_kid[kid].consented].add(_mask_text(line, kids))
    return found


def _operator(live: Harness, tmp: Path) -> tuple[SigningKey, Path]:
    signer = SigningKey.generate()
    with live.backend.transaction() as tx:
        fleet_db.add_operator(fleet_db.as_query(tx), signer.kid, "it-ops", b64encode(signer.public_bytes), 1)
    key_file = tmp / "operator.key"
    write_key_file(key_file, "ed25519", signer.private_bytes())
    return signer, key_file


def test_a_fleet_of_50_shows_health_but_no_register_of_who_consented(
    home: Path, tmp_path: Path, backend_kind: str
) -> None:
    with running_store(backend_kind, tmp_path / "store") as live:
        now = int(time.time())
        policies = {
            label: _policy_dir(
                tmp_path,
                live,
                label,
                create_secret(live.backend, label, now=now, valid_seconds=3600, per_hour=100).secret,
            )
            for label in sorted(set(LABELS))
        }
        devices = [_device(tmp_path, i, policies[label], i % 2 == 0) for i, label in enumerate(LABELS)]
        try:
            for device in devices:
                assert device.beater.beat() == "sent"  # first start: enrolls with the secret, then a heartbeat
            for device in devices:
                if device.consented:  # the employee's batch goes through review and is delivered
                    with Vault.open(device.layout, create=False) as vault:
                        agent = Agent(device=vault.device_key)
                    _, sealed = live.shippable(agent)
                    with live.client(agent) as client:
                        client.upload(sealed)
            for device in devices:
                assert device.beater.beat() == "sent"  # the fixed schedule goes on, for everyone alike
            _check_fleet_views(live, devices, tmp_path)
            _check_revoke_and_retire(live, devices, policies, tmp_path)
        finally:
            for device in devices:
                device.transport.really_close()


def _check_fleet_views(live: Harness, devices: list[Device], tmp: Path) -> None:
    by_kid = {d.kid: d for d in devices}
    kids = list(by_kid)
    # 1. The heartbeats on the wire: one length and one set of fields, consented or not.
    for consented in (True, False):
        bodies = [b for d in devices if d.consented == consented for b in d.transport.heartbeats]
        assert len(bodies) == 2 * sum(1 for d in devices if d.consented == consented)
        assert {len(b) for b in bodies} == {HEARTBEAT_BYTES}
        assert {tuple(json.loads(b)) for b in bodies} == {tuple(json.loads(devices[0].transport.heartbeats[0]))}
    # 2. The operator's report: every device row the same once its identity and times are set aside.
    signer, key_file = _operator(live, tmp)
    with StoreClient(live.url, signer=signer, role="operator") as client:
        report = client.fleet()
        filtered = [
            client.fleet(label="lab"),
            client.fleet(errors=True),
            client.fleet(stale=False, drift=False),
            client.fleet(version=report.devices[0].agent_version),
        ]
    rows = [d.model_dump(mode="json") for d in report.devices]
    assert len(rows) == len(devices)
    assert _masked_rows([r for r in rows if by_kid[r["device_kid"]].consented]) == _masked_rows(
        [r for r in rows if not by_kid[r["device_kid"]].consented]
    )
    assert len(_masked_rows(rows)) == 1 and rows[0]["error_class"] == "none" and not rows[0]["stale"]
    # 3. Consent only as counts over groups with >= k devices on each side; the 3-device group is withheld,
    # and so is the whole-fleet figure, which would otherwise reveal it by subtraction.
    cells = {c.label: c for c in report.cells}
    assert cells["eng"].shipping_devices == 12 and cells["sales"].shipping_devices == 12
    assert cells["lab"].shipping_devices is None and cells["(all)"].shipping_devices is None
    assert cells["lab"].devices_with_capture_errors is None
    # Filters narrow the list, never the figures (no filter carves a group under k).
    for other in filtered:
        assert other.cells == report.cells
    assert filtered[1].devices == ()  # errors only a consenting device can have are never per device
    # 4. The operator's CLI (text and JSON) and page: the consenting and the other devices read alike.
    common = ["--key-file", str(tmp / "operator.key"), "--store-url", live.url]
    text = CliRunner().invoke(store_cli, ["fleet", *common], catch_exceptions=False).output
    as_json = CliRunner().invoke(store_cli, ["fleet", "--json", *common], catch_exceptions=False).output
    page = FleetPage(lambda: StoreClient(live.url, signer=signer, role="operator")).handle(Request("GET", "/", {}))
    assert page.status == 200
    html = page.body.decode()
    html_rows = "\n".join(re.findall(r"<tr>.*?</tr>", html, flags=re.S))
    for shown in (text, html_rows):
        lines = _device_lines(shown.replace("</tr>", "</tr>\n"), kids, by_kid)
        assert len(lines[True]) == 1 and lines[True] == lines[False], lines
    assert _masked_rows(json.loads(as_json)["devices"]) == _masked_rows(rows)
    # IT's tools read moments as UTC ISO text, as the stewards' do: never bare epoch seconds.
    assert not EPOCH.findall(as_json), EPOCH.findall(as_json)
    assert ISO.fullmatch(json.loads(as_json)["generated_at"])
    assert all(ISO.fullmatch(d["last_seen"]) for d in json.loads(as_json)["devices"])
    # 5. The steward's queue names no device key.
    steward_key = tmp / "steward.key"
    write_key_file(steward_key, "ed25519", live.stewards.signers[0].private_bytes())
    for args in (["queue"], ["queue", "--json"]):
        out = CliRunner().invoke(steward, [*args, "--key-file", str(steward_key), "--store-url", live.url]).output
        assert not any(kid in out for kid in kids)
    # A device key cannot read the fleet view; a steward key cannot either.
    with live.client(Agent(device=SigningKey.generate())) as stranger, pytest.raises(StoreError) as refused:
        stranger._get(type(report), "/v1/fleet/devices")
    assert refused.value.code in ("unknown_key", "device_mismatch")


def _check_revoke_and_retire(live: Harness, devices: list[Device], policies: dict[str, Path], tmp: Path) -> None:
    # Revoking eng's secret stops new enrollments with it, not the devices already enrolled.
    secret_id = next(s.secret_id for s in _secrets(live) if s.label == "eng")
    from store.enrollment import retire_device, revoke_secret

    revoke_secret(live.backend, secret_id, int(time.time()))
    newcomer = _device(tmp, 99, policies["eng"], False)
    try:
        with pytest.raises(StoreError) as refused:
            newcomer.beater.beat()
        assert refused.value.code == "secret_invalid"
    finally:
        newcomer.transport.really_close()
    assert devices[0].beater.beat() == "sent"
    # Retiring a device refuses its uploads with a clear error, and the employee's status says so in words.
    retired = devices[0]
    retire_device(live.backend, retired.kid, int(time.time()))
    with Vault.open(retired.layout, create=False) as vault:
        agent = Agent(device=vault.device_key, seq=1)
    manifest, _ = agent.next_batch()
    with live.client(agent) as client, pytest.raises(StoreError) as upload_refused:
        client.submit_manifest(manifest)
    assert upload_refused.value.code == "device_retired" and "retired" in upload_refused.value.message
    with pytest.raises(StoreError):
        retired.beater.beat()
    assert read_state(retired.layout)["retired"] is True
    assert any("RETIRED by IT" in line for line in status_lines(retired.layout))
    assert status_lines(devices[1].layout) == []
    assert devices[1].beater.beat() == "sent"


def _secrets(live: Harness) -> list[Any]:
    from store.enrollment import list_secrets

    return list_secrets(live.backend)


def test_enrollment_secrets_expire_and_are_rate_limited_per_hour(home: Path, tmp_path: Path, backend_kind: str) -> None:
    with running_store(backend_kind, tmp_path / "store") as live:
        now = int(time.time())
        limited = create_secret(live.backend, "site-a", now=now, valid_seconds=3600, per_hour=2)
        expired = create_secret(live.backend, "site-b", now=now - 7200, valid_seconds=3600, per_hour=100)
        enrolled = []
        for _ in range(3):
            with live.client(Agent()) as client:
                try:
                    enrolled.append(client.enroll_with_secret(limited.secret).device_kid)
                except StoreError as exc:
                    enrolled.append(exc.code)
        assert enrolled[2] == "enroll_rate_limited" and all(len(k) >= 8 for k in enrolled[:2])
        with live.client(Agent()) as client, pytest.raises(StoreError) as refused:
            client.enroll_with_secret(expired.secret)
        assert refused.value.code == "secret_invalid"
        # The one-time token path works as before.
        agent = Agent()
        live.enroll(agent)
        with live.client(agent) as client:
            manifest, _ = agent.next_batch()
            assert client.submit_manifest(manifest).state == "review"
        listed = {s.label: s for s in _secrets(live)}
        assert listed["site-a"].enrolled == 2 and listed["site-b"].enrolled == 0


def test_every_heartbeat_has_one_length_whatever_it_reports() -> None:
    from agent.heartbeat import Health, build_heartbeat
    from protocol.fleet import ERROR_CLASSES, decode_heartbeat

    lengths = set()
    for error in ERROR_CLASSES:
        for depth, skew in ((0, 0), (999_999, -(10**9)), (7, 12345)):
            beat = build_heartbeat(10**12, 2**40, Health("f" * 64, error, "mismatch"), depth, skew)  # type: ignore[arg-type]
            body = beat.model_dump_json().encode()
            assert decode_heartbeat(body) == beat
            lengths.add(len(body))
    assert lengths == {HEARTBEAT_BYTES}
    with pytest.raises(ValueError):
        decode_heartbeat(b" " * (HEARTBEAT_BYTES - 1))
    from protocol.errors import UnsupportedVersion

    future = body.replace(b'"v":1', b'"v":2')
    assert len(future) == HEARTBEAT_BYTES
    with pytest.raises(UnsupportedVersion):
        decode_heartbeat(future)


def test_store_cli_manages_enrollment_secrets_operators_and_retirement(home: Path, tmp_path: Path) -> None:
    data = ["--data", str(tmp_path / "store")]
    runner = CliRunner()
    created = runner.invoke(store_cli, ["enroll-secret", "create", "--label", "eng", "--json", *data])
    assert created.exit_code == 0, created.output
    secret = json.loads(created.stdout)
    assert ISO.fullmatch(secret["expires_at"]), secret["expires_at"]
    listed = runner.invoke(store_cli, ["enroll-secret", "list", *data], catch_exceptions=False).output
    assert secret["secret_id"] in listed and secret["secret"] not in listed and "0 devices" in listed
    revoked = runner.invoke(store_cli, ["enroll-secret", "revoke", secret["secret_id"], *data])
    assert revoked.exit_code == 0 and "keep working" in revoked.output
    assert "revoked" in runner.invoke(store_cli, ["enroll-secret", "list", *data]).output
    listed_json = runner.invoke(store_cli, ["enroll-secret", "list", "--json", *data], catch_exceptions=False).output
    assert not EPOCH.findall(listed_json), EPOCH.findall(listed_json)
    assert all(ISO.fullmatch(s["created_at"]) and ISO.fullmatch(s["revoked_at"]) for s in json.loads(listed_json))
    unknown = runner.invoke(store_cli, ["enroll-secret", "revoke", "deadbeef", *data])
    assert unknown.exit_code == 1 and "enroll-secret list" in unknown.output
    bad_label = runner.invoke(store_cli, ["enroll-secret", "create", "--label", "../x", *data])
    assert bad_label.exit_code == 1 and "label" in bad_label.output
    init = runner.invoke(store_cli, ["operator", "init", "--json", "--key-file", str(tmp_path / "op.key")])
    assert init.exit_code == 0 and (tmp_path / "op.key").stat().st_mode & 0o077 == 0
    public = json.loads(init.stdout)["public_key"]
    assert runner.invoke(store_cli, ["operator", "add", "ana", public, *data]).exit_code == 0
    assert runner.invoke(store_cli, ["operator", "add", "ana", "not-a-key", *data]).exit_code == 2
    nobody = runner.invoke(store_cli, ["retire", "AAAAAAAAAAAAAAAA", *data])
    assert nobody.exit_code == 1 and "store fleet" in nobody.output
    # A device enrolled with a current secret, then retired through the CLI.
    from protocol.fleet import SecretEnrollRequest, secret_sha256
    from protocol.store_api import enroll_message
    from store.backends.dir import DirBackend
    from store.enrollment import enroll_with_secret

    current = json.loads(
        runner.invoke(store_cli, ["enroll-secret", "create", "--label", "ops", "--json", *data]).stdout
    )
    device = SigningKey.generate()
    public = b64encode(device.public_bytes)
    proof = b64encode(device.sign(enroll_message(secret_sha256(current["secret"]), device.kid, public)))
    storage = DirBackend(tmp_path / "store" / "data")
    request = SecretEnrollRequest(secret=current["secret"], device_kid=device.kid, public_key=public, proof=proof)
    enroll_with_secret(storage, request, int(time.time()))
    retired = runner.invoke(store_cli, ["retire", device.kid, *data])
    assert retired.exit_code == 0 and "refused from now on" in retired.output
    with storage.transaction() as tx:
        assert fleet_db.retired_at(fleet_db.as_query(tx), device.kid) is not None
    with pytest.raises(StoreError) as again:
        enroll_with_secret(storage, request, int(time.time()))
    assert again.value.code == "device_retired"
    no_key = runner.invoke(store_cli, ["fleet", "--key-file", str(tmp_path / "none.key"), "--store-url", "http://x"])
    assert no_key.exit_code == 1 and "operator init" in no_key.output
