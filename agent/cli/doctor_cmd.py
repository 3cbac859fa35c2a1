"""``consentry doctor``: check the vault file, its key, every stored record, the ledger and the policy.

``--repair`` removes the stored records that no longer authenticate (``vault.integrity``), keeps every
other one, and records the repair in the consent ledger.
"""

from __future__ import annotations

from collections.abc import Callable

import click

from agent.cli import common
from protocol.errors import ConsentryError
from vault.paths import Layout
from vault.vault import Vault


@click.command()
@click.option(
    "--repair",
    is_flag=True,
    help="Remove the stored records that fail to authenticate (and only those), keep every other one, "
    "and record the repair in the consent ledger.",
)
@common.json_option
def doctor(repair: bool, as_json: bool) -> None:
    """Run every self-check and say what to do about each failure.

    Every stored record is decrypted and authenticated, not a sample. Changes nothing
    unless --repair is given. With a store configured it also asks the store whether this
    consent ledger is the latest it has seen (an old copy of the vault put back from a
    backup is not).
    """
    checks: list[dict[str, str]] = []

    def record(name: str, ok: bool, detail: str) -> None:
        checks.append({"check": name, "result": "ok" if ok else "FAIL", "detail": detail})

    try:
        for warning in common.policy().warnings():
            checks.append({"check": "policy", "result": "WARN", "detail": warning})
        record("policy", True, str(common.policy_path()))
    except click.ClickException as exc:
        record("policy", False, exc.message)
    lay = common.layout()
    if not lay.vault_db.exists():
        record("vault", True, f"no vault yet in {lay.home} (nothing collected)")
    else:
        try:
            with common.open_vault() as vault:
                result = vault.integrity_check()
                record("database integrity", result == "ok", result)
                vault.kek()
                record("vault key", True, f"found in the {vault.meta.get('kek_store')} key store and matches")
                report = vault.ledger.verify(vault.device_key.public_bytes)
                record("consent ledger", report.ok, report.reason or common.counted(report.entries, "entry", "entries"))
                head = vault.ledger_head_state()
                record("ledger head", head.ok and not head.lagging, head.explain())
                checks.append(_store_witness(vault))
                _check_stored_data(record, vault, repair)
                _check_settings(record, lay, vault)
        except ConsentryError as exc:
            record("vault", False, str(exc))
    if not lay.vault_db.exists():
        _check_settings(record, lay, None)
    if as_json:
        common.emit_json(checks)
    else:
        for check in checks:
            click.echo(f"{check['result']:<5} {check['check']}: {check['detail']}")
    if any(c["result"] == "FAIL" for c in checks):
        raise click.ClickException("some checks failed; see above")


def _check_stored_data(record: Callable[[str, bool, str], None], vault: Vault, repair: bool) -> None:
    """Authenticate every record, data key, secret and held batch; with ``repair``, remove what fails."""
    from protocol.timeutil import utc_now
    from vault import integrity

    found = integrity.check(vault)
    if repair and found.repairable:
        done = integrity.repair(vault, utc_now())
        where = ", ".join(f"{cat} on {day}: {n}" for (cat, day), n in sorted(done.by_day.items()))
        record(
            "repair",
            True,
            f"removed {common.counted(done.records_removed, 'record')} that did not authenticate"
            + (f" ({where})" if where else "")
            + f" and {common.counted(len(done.keys_removed), 'unusable data key')}; "
            + f"kept {common.counted(done.records_kept, 'record')}; "
            "recorded in your consent ledger (consentry ledger show)",
        )
        found = integrity.check(vault)
    elif repair:
        record("repair", True, "nothing to repair: every stored record authenticates")
    record("stored data", found.ok, found.summary())


def _store_witness(vault: Vault) -> dict[str, str]:
    """Ask the store whether this ledger is the latest it witnessed (agent/ledger_witness.py)."""
    from agent.ledger_witness import ask_store
    from protocol.timeutil import utc_now

    verdict = ask_store(vault, common.policy_or_defaults(), utc_now())
    result, detail = {
        "confirmed": ("ok", "the store confirms this consent ledger is the latest it has seen"),
        "not-configured": (  # a limit to know, not a fault: a healthy computer without a store is all ok
            "ok",
            "no store configured (or this computer is not enrolled): this computer alone cannot detect an old "
            "copy of both the vault file and its signed head put back (a restored home backup); see the "
            "employee guide",
        ),
        "contradicted": ("FAIL", verdict.message or ""),
        "accepted": ("WARN", verdict.message or ""),
    }.get(verdict.state, ("WARN", f"the store could not confirm this consent ledger: {verdict.message}"))
    return {"check": "store witness", "result": result, "detail": detail}


def _check_settings(record: Callable[[str, bool, str], None], lay: Layout, vault: Vault | None) -> None:
    """The employee's settings files: readable, and the folder list is the one the files grant covers."""
    from agent.settings import check_settings

    snapshot = vault.consent(common.policy_or_defaults()) if vault is not None else None
    problems = check_settings(lay, vault, snapshot)
    record("employee settings", not problems, "; ".join(problems) or "readable and as granted")
