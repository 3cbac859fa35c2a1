"""The control socket's wire format: one JSON object per line each way, versioned.

request   {"v": 1, "op": "status" | "consent-changed" | "pause" | "resume", "until": ISO-8601 with offset | null}
response  {"v": 1, "ok": true, "ledger_seq": int | null, "status": {...AgentStatus} | null}
          {"v": 1, "ok": false, "error": "what went wrong"}

A request that does not parse (unknown field or op, a time without a UTC offset, ``until`` on anything
but a pause) is answered with the reason at once and never reaches the agent's loop.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, Field, model_validator

from protocol.modelconfig import BOUNDARY

PROTOCOL_VERSION: Literal[1] = 1
MAX_LINE = 64 * 1024

Op = Literal["status", "consent-changed", "pause", "resume"]


class ControlRequest(BaseModel):
    model_config = BOUNDARY  # built on first use: `consentry status` with no agent never needs it

    v: Literal[1] = PROTOCOL_VERSION
    op: Op
    # Aware only: a time without an offset cannot be compared with the ledger's UTC times.
    until: AwareDatetime | None = Field(default=None, description="pause only: when it ends (None = until resumed)")

    @model_validator(mode="after")
    def _until_only_for_pause(self) -> ControlRequest:
        if self.until is not None and self.op != "pause":
            raise ValueError("'until' belongs to a pause only")
        return self


class ControlResponse(BaseModel):
    model_config = BOUNDARY  # built on first use: `consentry status` with no agent never needs it

    v: Literal[1] = PROTOCOL_VERSION
    ok: bool
    error: str | None = None
    ledger_seq: int | None = None
    status: dict[str, Any] | None = None
