"""A simulated fleet for tests and benchmarks: real vaults driven by the real agent-side code.

Each ``SimulatedDevice`` is a vault in its own folder with the machine policy IT hands out (store URL
and keys, plus the enrollment secret beside it); ``agent.heartbeat.Heartbeater`` enrolls it with the
secret on its first beat and sends heartbeats. Whether the employee consented is up to the caller
(``consented``): a consenting device grants keyboard and can deliver a batch through the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devkit.factories import grant
from protocol import SigningKey, b64encode
from protocol.categories import Category
from protocol.keyfile import write_key_file
from store.backend import StoreBackend
from store.keys import StoreKeys
from vault.paths import Layout
from vault.policy import load_policy
from vault.vault import Vault


def fleet_policy(folder: Path, store_url: str, keys: StoreKeys, secret: str, extra: str = "") -> Path:
    """IT's machine policy for one group (``policy.toml`` and ``enroll-secret`` in ``folder``).

    ``extra`` is TOML put before the ``[store]`` table (for example another ``retention_days``): a
    device given it reports another policy digest, which the fleet view calls drift.
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "policy.toml").write_text(
        f'{extra}\n[store]\nurl = "{store_url}"\npublic_key = "{b64encode(keys.seal.public_bytes)}"\n'
        f'log_key = "{b64encode(keys.log.public_bytes)}"\n',
        encoding="utf-8",
    )
    (folder / "enroll-secret").write_text(secret + "\n", encoding="utf-8")
    return folder / "policy.toml"


@dataclass
class SimulatedDevice:
    """One workstation's vault and its heartbeat sender (the agent's own ``Heartbeater``)."""

    layout: Layout
    policy_path: Path
    consented: bool
    kid: str
    beater: Any  # agent.heartbeat.Heartbeater

    def beat(self) -> str:
        """One heartbeat round of the real agent code (enrolling with the secret first if needed)."""
        return str(self.beater.beat())

    def enroll_only(self) -> None:
        """Enroll with the group's secret as the agent does at first start, but send no heartbeat (a
        device whose heartbeats never arrive: the fleet view calls it stale)."""
        from agent.fleet_enroll import enroll_with_secret
        from agent.heartbeat import read_secret, secret_path
        from protocol.timeutil import utc_now

        secret = read_secret(secret_path(self.policy_path))
        assert secret is not None, "the policy folder has no enrollment secret"
        with Vault.open(self.layout, create=False) as vault:
            enroll_with_secret(vault, load_policy(self.policy_path), secret, utc_now())

    def beat_as_older_agent(self, version: str) -> None:
        """A heartbeat as an agent of another ``version`` sends it: the same fields and length, on the wire
        through the vault's own store client (the device must have enrolled already)."""
        import time

        from agent.heartbeat import agent_health, build_heartbeat
        from agent.shipping import client_for
        from protocol.fleet import Heartbeat, encode_heartbeat

        policy = load_policy(self.policy_path)
        with Vault.open(self.layout, create=False) as vault:
            health = agent_health(policy, vault.ledger_head_state().status, None, None, [])
            current = build_heartbeat(1_000_000, int(time.time()), health, 0, 0)
            older = Heartbeat.model_validate_json(
                encode_heartbeat(current.model_copy(update={"agent_version": version}))
            )
            with client_for(vault, policy) as client:
                client.heartbeat(older)

    def store_agent(self) -> Any:
        """A ``devkit.store_kit.Agent`` signing with this vault's device key (to deliver a batch)."""
        from devkit.store_kit import Agent

        with Vault.open(self.layout, create=False) as vault:
            return Agent(device=vault.device_key)


def simulated_device(folder: Path, policy_path: Path, *, consented: bool, **client_kwargs: Any) -> SimulatedDevice:
    """A new vault in ``folder``; with ``consented`` its employee granted keyboard under the policy."""
    from agent.heartbeat import Heartbeater, agent_health

    layout = Layout(folder)
    policy = load_policy(policy_path)
    with Vault.open(layout) as vault:
        if consented:
            grant(vault, Category.KEYBOARD, policy=policy)
        kid = vault.device_key.kid

    def health() -> Any:
        # What the daemon hands in: its policy, the ledger-head state and the per-category states.
        with Vault.open(layout, create=False) as vault:
            snapshot = vault.consent(policy)
            states = ["capturing" if s.state == "granted" else "not_granted" for s in snapshot.categories.values()]
            head = vault.ledger_head_state().status
        return agent_health(policy, head, None, None, states)

    beater = Heartbeater(layout, policy_path, lambda: policy, health, client_kwargs=client_kwargs)
    return SimulatedDevice(layout, policy_path, consented, kid, beater)


def add_operator(backend: StoreBackend, key_file: Path, name: str = "it-ops") -> SigningKey:
    """An operator key allowed to read the fleet view, written (0600) to ``key_file``."""
    from store import fleet_db

    signer = SigningKey.generate()
    with backend.transaction() as tx:
        fleet_db.add_operator(fleet_db.as_query(tx), signer.kid, name, b64encode(signer.public_bytes), 1)
    write_key_file(key_file, "ed25519", signer.private_bytes())
    return signer
