"""``consentry doctor``: check the vault file, its key, permissions, the ledger and the policy."""

from __future__ import annotations

import click

from agent.cli import common
from vault.errors import VaultError


@click.command()
@common.json_option
def doctor(as_json: bool) -> None:
    """Run every self-check and say what to do about each failure. Changes nothing."""
    checks: list[dict[str, str]] = []

    def record(name: str, ok: bool, detail: str) -> None:
        checks.append({"check": name, "result": "ok" if ok else "FAIL", "detail": detail})

    try:
        common.policy()
        record("policy", True, str(common.policy_path()))
    except click.ClickException as exc:
        record("policy", False, exc.message)
    lay = common.layout()
    if not lay.vault_db.exists():
        record("vault", True, f"no vault yet in {lay.home} (nothing collected)")
    else:
        try:
            with common.open_vault() as vault:
                result = vault.db.execute("PRAGMA integrity_check").fetchone()[0]
                record("database integrity", result == "ok", result)
                vault.kek()
                record("vault key", True, f"found in the {vault.meta.get('kek_store')} key store and matches")
                report = vault.ledger.verify(vault.device_key.public_bytes)
                record("consent ledger", report.ok, report.reason or f"{report.entries} entries")
        except VaultError as exc:
            record("vault", False, str(exc))
    if as_json:
        common.emit_json(checks)
    else:
        for check in checks:
            click.echo(f"{check['result']:<5} {check['check']}: {check['detail']}")
    if any(c["result"] != "ok" for c in checks):
        raise click.ClickException("some checks failed; see above")
