"""What ``consentry status`` and the tray report: per category, whether it is captured now, and why.

``collect_status`` reads the policy, the vault and (briefly) a running agent; the command line prints
it (``agent.cli.status_cmd``) and the tray draws it (``agent.tray.state``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from agent.settings import check_settings
from protocol.categories import Category
from protocol.errors import PolicyError
from protocol.timeutil import iso_seconds, utc_midnight, utc_now
from vault import outbox
from vault.consent import FOREVER, ConsentSnapshot
from vault.paths import default_layout, default_policy_path
from vault.policy import MachinePolicy, load_policy
from vault.vault import Vault


def _agent_status(timeout: float) -> dict[str, Any] | None:
    lay = default_layout()
    if not lay.control_socket.exists():  # no agent: skip the control protocol (and its pydantic models)
        return None
    from agent.control import query_status
    from agent.errors import ControlError

    try:
        return query_status(lay, timeout=timeout)
    except (ControlError, OSError) as exc:
        # Something holds the socket but does not answer (a frozen or overloaded agent): nothing here
        # says what it captures, so say that, rather than "not running".
        return {"running": False, "unreachable": str(exc) or type(exc).__name__}


def _paused_until(snapshot: ConsentSnapshot, now: datetime) -> str | None:
    if not snapshot.is_paused(now) or snapshot.paused_until is None:
        return None
    return "indefinitely" if snapshot.paused_until == FOREVER else iso_seconds(snapshot.paused_until)


def collect_status(agent_timeout: float = 5.0) -> dict[str, Any]:
    now = utc_now()
    lay = default_layout()
    policy_file = default_policy_path()
    report: dict[str, Any] = {
        "home": str(lay.home),
        "policy_file": str(policy_file),
        "now": iso_seconds(now),
        "warnings": [],
    }
    policy: MachinePolicy | None
    try:
        # Validated once per policy file content (never for a grant or capture: the cache is in the home).
        policy = load_policy(policy_file, cache=lay.policy_cache if lay.home.is_dir() else None)
        report["policy"] = {"state": "ok", "sha256": policy.digest(), "exists": policy_file.exists()}
        report["warnings"] = policy.warnings()
    except PolicyError as exc:
        policy = None
        report["policy"] = {"state": "invalid", "message": str(exc)}
    agent = _agent_status(agent_timeout)
    report["agent"] = agent if agent is not None else {"running": False}
    report.update(paused_until=None, records_today=0, release={"batches": {}, "problems": [], "erasures_pending": 0})
    consent: dict[str, Any] = {c.value: {"consent": "not_granted", "since": None, "reason": None} for c in Category}
    if lay.vault_db.exists():
        with Vault.open(lay, create=False) as vault:
            report["records_today"] = vault.count_windows(since=utc_midnight(now))
            report["release"] = _release_summary(vault)
            # With an invalid policy the employee's own consent is still shown; capture is stopped.
            snapshot = vault.consent(policy or MachinePolicy())
            head = vault.ledger_head_state()
            shown = not head.ok or head.lagging
            report["ledger"] = {"ok": head.ok, "state": head.status, "message": head.explain() if shown else None}
            report["paused_until"] = _paused_until(snapshot, now)
            report["settings_problems"] = check_settings(lay, vault, snapshot)
            for category, state in snapshot.categories.items():
                since = iso_seconds(state.since) if state.since else None
                consent[category.value] = {"consent": state.state, "since": since, "reason": state.reason}
    from agent.fleet_state import status_lines

    report["store_notices"] = status_lines(lay)  # e.g. IT retired this computer (agent.heartbeat)
    if "settings_problems" not in report:
        report["settings_problems"] = check_settings(lay, None, None)
    live = agent.get("categories", {}) if agent else {}
    for name, entry in consent.items():
        if policy is None:
            entry["capture"] = "stopped: the machine policy is invalid"
        elif isinstance(live, dict) and name in live:
            entry["capture"] = live[name]
        else:
            entry["capture"] = "agent not running" if entry["consent"] == "granted" else "off"
    report["categories"] = consent
    return report


def _release_summary(vault: Vault) -> dict[str, Any]:
    """Batches by state, and what the store last said about any that is stuck (from the vault)."""
    counts: dict[str, int] = {}
    problems = []
    for row in outbox.list_batches(vault):
        counts[row.state] = counts.get(row.state, 0) + 1
        if row.last_error and row.state not in ("shipped", "vetoed", "erased"):
            problems.append({"batch_id": row.batch_id, "state": row.state, "error": row.last_error})
    return {"batches": counts, "problems": problems, "erasures_pending": outbox.pending_erasure_count(vault)}
