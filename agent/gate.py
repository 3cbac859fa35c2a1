"""The consent gate: what each category's capture state is, from consent, policy and circumstances."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from agent.status import CaptureState, CategoryStatus
from protocol.categories import Category
from protocol.timeutil import iso
from vault.consent import CategoryConsent, pause_in_force

# Leaving capture for one of these drops the open window and buffered events unwritten: consent (or
# the policy) no longer covers them. Any other stop cuts the window and keeps what it holds.
DROP_STATES = frozenset(
    {CaptureState.NOT_GRANTED, CaptureState.REVOKED, CaptureState.SUSPENDED, CaptureState.FORBIDDEN_BY_POLICY}
)
# The window stays open in these states (events simply stop arriving for a while).
OPEN_STATES = frozenset({CaptureState.CAPTURING, CaptureState.EXCLUDED_APP_FOCUSED, CaptureState.UNAVAILABLE})

_CONSENT_STATES = {
    "not_granted": CaptureState.NOT_GRANTED,
    "revoked": CaptureState.REVOKED,
    "suspended": CaptureState.SUSPENDED,
    "forbidden": CaptureState.FORBIDDEN_BY_POLICY,
}


@dataclass(frozen=True)
class Circumstances:
    """Everything besides the employee's consent that decides whether capture runs."""

    now: datetime
    policy_error: str | None = None
    paused_until: datetime | None = None
    storage_error: str | None = None
    excluded_focused: bool = False
    # An employee settings file that cannot be trusted: the exclusion list stops every category, the
    # folder list (unreadable, or not the scope the files grant recorded) stops files only.
    settings_error: str | None = None
    scope_error: str | None = None

    @property
    def paused(self) -> bool:
        return pause_in_force(self.paused_until, self.now)

    def settings_problem(self, category: Category) -> str | None:
        if self.settings_error is not None:
            return self.settings_error
        return self.scope_error if category is Category.FILES else None


def eligible(consent: CategoryConsent, c: Circumstances) -> bool:
    """Consent and policy allow capture and nothing pauses it (sources may still be unavailable)."""
    return (
        c.policy_error is None
        and consent.state == "granted"
        and not c.paused
        and c.storage_error is None
        and c.settings_problem(consent.category) is None
    )


def category_status(consent: CategoryConsent, c: Circumstances, problem: str | None) -> CategoryStatus:
    """The state shown for one category; ``problem`` is why its source cannot run, if it cannot."""
    if c.policy_error is not None:
        return CategoryStatus(
            state=CaptureState.FORBIDDEN_BY_POLICY,
            reason="the machine policy is invalid, so nothing is captured until IT fixes it",
        )
    if consent.state != "granted":
        return CategoryStatus(state=_CONSENT_STATES[consent.state], reason=consent.reason)
    receipt = consent.receipt_id
    settings = c.settings_problem(consent.category)
    if settings is not None:
        return CategoryStatus(state=CaptureState.SETTINGS_ERROR, reason=settings, receipt_id=receipt)
    if c.paused and c.paused_until is not None:
        until = "until resumed" if c.paused_until.year >= 9999 else f"until {iso(c.paused_until)}"
        return CategoryStatus(state=CaptureState.PAUSED, reason=f"paused {until}", receipt_id=receipt)
    if c.storage_error is not None:
        return CategoryStatus(state=CaptureState.STORAGE_ERROR, reason=c.storage_error, receipt_id=receipt)
    if problem is not None:
        return CategoryStatus(state=CaptureState.UNAVAILABLE, reason=problem, receipt_id=receipt)
    if c.excluded_focused:
        return CategoryStatus(
            state=CaptureState.EXCLUDED_APP_FOCUSED,
            reason="an excluded application has focus: nothing is captured",
            receipt_id=receipt,
        )
    return CategoryStatus(state=CaptureState.CAPTURING, receipt_id=receipt)
