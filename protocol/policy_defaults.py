"""Policy defaults that the store's datasheet also states, so both sides say the same number."""

from __future__ import annotations

DEFAULT_WINDOW_SECONDS = 60
DEFAULT_SUBJECT_ROTATION_DAYS = 30
