"""What the store last said to this computer's fleet duties (``fleet-state.json``), and how ``status`` words it.

Kept apart from ``agent.heartbeat`` so ``consentry status`` reads it without importing pydantic.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from protocol.atomic import write_atomic
from vault.paths import Layout

log = logging.getLogger(__name__)

STATE_FILE_NAME = "fleet-state.json"


def read_state(layout: Layout) -> dict[str, Any]:
    """What the store last said to this computer's fleet duties ({} before the first answer)."""
    try:
        data = json.loads((layout.home / STATE_FILE_NAME).read_bytes())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_state(layout: Layout, state: dict[str, Any]) -> None:
    try:
        write_atomic(layout.home / STATE_FILE_NAME, json.dumps(state, sort_keys=True).encode("utf-8"))
    except OSError as exc:
        log.warning("cannot write %s (%s)", STATE_FILE_NAME, exc.strerror or type(exc).__name__)


def status_lines(layout: Layout) -> list[str]:
    """What ``consentry status`` says about this computer's standing with the store's fleet."""
    state = read_state(layout)
    if state.get("retired"):
        return [
            "Store: this computer was RETIRED by IT. Nothing more is uploaded from it; what you already "
            "sent stays under its review and erasure rules. Ask IT to enroll it again if this is a mistake."
        ]
    return []
