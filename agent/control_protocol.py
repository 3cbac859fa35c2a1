"""The control socket's wire format: one JSON object per line each way, versioned.

request   {"v": 1, "op": "status" | "consent-changed" | "pause" | "resume", "until": ISO-8601 | null}
response  {"v": 1, "ok": true, "ledger_seq": int | null, "status": {...AgentStatus} | null}
          {"v": 1, "ok": false, "error": "what went wrong"}
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from protocol.modelconfig import BOUNDARY

PROTOCOL_VERSION: Literal[1] = 1
MAX_LINE = 64 * 1024

Op = Literal["status", "consent-changed", "pause", "resume"]


class ControlRequest(BaseModel):
    model_config = BOUNDARY  # built on first use: `consentry status` with no agent never needs it

    v: Literal[1] = PROTOCOL_VERSION
    op: Op
    until: datetime | None = Field(default=None, description="pause only: when it ends (None = until resumed)")


class ControlResponse(BaseModel):
    model_config = BOUNDARY  # built on first use: `consentry status` with no agent never needs it

    v: Literal[1] = PROTOCOL_VERSION
    ok: bool
    error: str | None = None
    ledger_seq: int | None = None
    status: dict[str, Any] | None = None
