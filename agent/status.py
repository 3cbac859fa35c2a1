"""What the agent reports about itself (``status.json`` in the runtime folder, and over the socket).

Reasons are written for the employee; they never contain a path, a key or an application name.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from protocol.atomic import write_atomic
from protocol.categories import Category

STATUS_VERSION: Literal[1] = 1
_frozen = ConfigDict(frozen=True, extra="forbid")


class CaptureState(StrEnum):
    CAPTURING = "capturing"
    PAUSED = "paused"
    NOT_GRANTED = "not_granted"
    REVOKED = "revoked"
    SUSPENDED = "suspended"  # granted under an older notice: re-consent needed
    FORBIDDEN_BY_POLICY = "forbidden_by_policy"
    UNAVAILABLE = "unavailable"
    EXCLUDED_APP_FOCUSED = "excluded_app_focused"
    STORAGE_ERROR = "storage_error"
    SETTINGS_ERROR = "settings_error"  # an employee settings file is unreadable or not what was granted


class CategoryStatus(BaseModel):
    model_config = _frozen

    state: CaptureState
    reason: str | None = None
    receipt_id: str | None = Field(default=None, description="the grant records are written under")


class PolicyStatus(BaseModel):
    model_config = _frozen

    state: Literal["ok", "invalid"]
    message: str | None = None


class LedgerCheck(BaseModel):
    """The consent ledger against its signed head, or against what the store witnessed."""

    model_config = _frozen

    state: str = Field(description="head: ok, lagging, rolled-back, ...; store: confirmed, checking, contradicted, ...")
    message: str | None = None
    checked_at: datetime | None = None


class AgentStatus(BaseModel):
    model_config = _frozen

    version: Literal[1] = STATUS_VERSION
    agent_state: Literal["running", "stopped"] = "running"
    pid: int
    started_at: datetime
    updated_at: datetime
    categories: dict[Category, CategoryStatus]
    policy: PolicyStatus
    paused_until: datetime | None = None
    last_flush: datetime | None = None
    records_written_today: int = Field(ge=0)
    dropped_events: int = Field(default=0, ge=0, description="events lost to full buffers since start")
    storage_error: str | None = None
    housekeeping_error: str | None = Field(default=None, description="retention, sealing or store sync failed")
    ledger_head: LedgerCheck | None = Field(default=None, description="the ledger against its signed head")
    ledger_witness: LedgerCheck | None = Field(default=None, description="the ledger against the store's witness")

    def same_state(self, other: AgentStatus | None) -> bool:
        """Equal except for the heartbeat timestamp."""
        return other is not None and self.model_copy(update={"updated_at": other.updated_at}) == other


def write_status(path: Path, status: AgentStatus) -> None:
    # 0600 like everything of the employee's: it says which categories they consented to.
    write_atomic(path, status.model_dump_json(indent=2).encode() + b"\n", mode=0o600)
