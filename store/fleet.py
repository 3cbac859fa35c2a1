"""Device health for IT: recording heartbeats and the fleet report (devices, versions, drift, stale, errors).

The report is no register of who consented. Per device it shows only what every device reports the
same way whatever its employee granted (version, policy digest, clock skew, ledger-head state, errors
that can happen without any grant). What does depend on consent -- which devices deliver batches,
which report a delivery backlog or a capture error -- appears only as counts over a label's devices,
and only where at least ``min_group_size`` (k) devices fall on *each* side of the count; otherwise the
figure is withheld (None). The whole-fleet figures are withheld too when the withheld cells together
would reveal them by subtraction. Filters narrow the device list, never the aggregates, so no filter
can carve a group under k.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from protocol.fleet import (
    CONSENT_REVEALING_ERRORS,
    HEARTBEAT_SECONDS,
    STALE_HEARTBEATS,
    FleetCell,
    FleetDevice,
    FleetReport,
    Heartbeat,
    HeartbeatAck,
)
from store import fleet_db
from store.backend import StoreBackend

DEFAULT_MIN_GROUP_SIZE = 5
SHIPPING_PERIOD_SECONDS = 30 * 86_400  # "delivered a batch" means: in the last 30 days
ALL_DEVICES = "(all)"
TOKEN_LABEL = "(enrolled by token)"


@dataclass(frozen=True)
class FleetFilter:
    """What IT narrows the device list to (None: no condition)."""

    label: str | None = None
    version: str | None = None
    stale: bool | None = None
    drift: bool | None = None
    errors: bool | None = None
    retired: bool | None = None

    def keeps(self, device: FleetDevice) -> bool:
        checks = (
            (self.label, device.label),
            (self.version, device.agent_version),
            (self.stale, device.stale),
            (self.drift, device.policy_drift),
            (self.errors, device.error_class not in (None, "none")),
            (self.retired, device.retired),
        )
        return all(wanted is None or wanted == actual for wanted, actual in checks)


def record_heartbeat(backend: StoreBackend, device_kid: str, heartbeat: Heartbeat, now: int) -> HeartbeatAck:
    """Keep the device's latest heartbeat; the answer is the same for every device."""
    row = fleet_db.HeartbeatRow(
        device_kid=device_kid,
        received_at=now,
        seq=heartbeat.seq,
        sent_at=heartbeat.sent_at,
        agent_version=heartbeat.agent_version,
        policy_digest=heartbeat.policy_digest,
        error_class=heartbeat.error_class,
        queue_depth=heartbeat.queue_depth,
        clock_skew=heartbeat.sent_at - now,  # the store measures the skew itself, from the signed send time
        ledger_head=heartbeat.ledger_head,
    )
    with backend.transaction() as tx:
        fleet_db.put_heartbeat(fleet_db.as_query(tx), row)
    return HeartbeatAck(store_time=now, interval_seconds=HEARTBEAT_SECONDS)


def fleet_report(
    backend: StoreBackend,
    now: int,
    *,
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE,
    expected_policy_digest: str | None = None,
    where: FleetFilter | None = None,
) -> FleetReport:
    """The fleet as IT sees it; ``expected_policy_digest`` defaults to the one most devices report."""
    if min_group_size < 2:
        raise ValueError("min_group_size must be at least 2")
    with backend.transaction() as tx:
        q = fleet_db.as_query(tx)
        enrolled = [
            (str(k), int(t)) for k, t in q.query("SELECT kid, enrolled_at FROM devices ORDER BY kid").fetchall()
        ]
        labels = fleet_db.labels(q)
        retired = fleet_db.retired(q)
        beats = fleet_db.heartbeats(q)
        shipping = {
            str(r[0])
            for r in q.query(
                "SELECT DISTINCT device_kid FROM batches WHERE submitted_at > ?", (now - SHIPPING_PERIOD_SECONDS,)
            ).fetchall()
        }
    active = [kid for kid, _ in enrolled if kid not in retired]
    if expected_policy_digest is None:
        digests = Counter(beats[kid].policy_digest for kid in active if kid in beats)
        # Ties go to the smallest digest, so the same fleet always gives the same answer.
        expected_policy_digest = min(digests, key=lambda d: (-digests[d], d)) if digests else None
    stale_after = HEARTBEAT_SECONDS * STALE_HEARTBEATS
    devices = []
    for kid, enrolled_at in enrolled:
        beat = beats.get(kid)
        error = None
        if beat is not None:
            error = "none" if beat.error_class in CONSENT_REVEALING_ERRORS else beat.error_class
        devices.append(
            FleetDevice(
                device_kid=kid,
                label=labels.get(kid, TOKEN_LABEL),
                enrolled_at=enrolled_at,
                retired=kid in retired,
                last_seen=beat.received_at if beat else None,
                stale=beat is None or now - beat.received_at > stale_after,
                agent_version=beat.agent_version if beat else None,
                policy_digest=beat.policy_digest if beat else None,
                policy_drift=beat is not None and beat.policy_digest != expected_policy_digest,
                error_class=error,
                clock_skew_seconds=beat.clock_skew if beat else None,
                ledger_head=beat.ledger_head if beat else None,
            )
        )
    cells = _cells(active, labels, beats, shipping, min_group_size)
    keep = where or FleetFilter()
    return FleetReport(
        generated_at=now,
        min_group_size=min_group_size,
        expected_policy_digest=expected_policy_digest,
        devices=tuple(d for d in devices if keep.keeps(d)),
        cells=cells,
    )


def _cells(
    active: Sequence[str],
    labels: dict[str, str],
    beats: dict[str, fleet_db.HeartbeatRow],
    shipping: set[str],
    k: int,
) -> tuple[FleetCell, ...]:
    groups: dict[str, list[str]] = {}
    for kid in active:
        groups.setdefault(labels.get(kid, TOKEN_LABEL), []).append(kid)
    measures = {
        "shipping_devices": lambda kid: kid in shipping,
        "devices_with_backlog": lambda kid: kid in beats and beats[kid].queue_depth > 0,
        "devices_with_capture_errors": lambda kid: kid in beats and beats[kid].error_class in CONSENT_REVEALING_ERRORS,
    }
    shown: dict[str, dict[str, int | None]] = {label: {} for label in groups}
    fleet: dict[str, int | None] = {}
    for name, has in measures.items():
        hidden_yes = hidden_no = 0
        for label, kids in groups.items():
            yes = sum(1 for kid in kids if has(kid))
            if yes >= k and len(kids) - yes >= k:
                shown[label][name] = yes
            else:
                shown[label][name] = None
                hidden_yes, hidden_no = hidden_yes + yes, hidden_no + len(kids) - yes
        total = sum(1 for kid in active if has(kid))
        # The fleet figure minus the shown cells gives the withheld cells' sum: show it only if that sum is safe.
        safe = (hidden_yes == hidden_no == 0) or (hidden_yes >= k and hidden_no >= k)
        fleet[name] = total if safe and total >= k and len(active) - total >= k else None
    cells = [FleetCell(label=ALL_DEVICES, devices=len(active), **fleet)]
    cells += [FleetCell(label=label, devices=len(kids), **shown[label]) for label, kids in sorted(groups.items())]
    return tuple(cells)
