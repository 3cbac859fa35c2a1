"""How Consentry says things to the employee: counts with their plural, moments in local time with the
zone, and one window record as a sentence (the page, ``consentry mydata`` and the batch preview).

Records come as the JSON dicts the vault stores and a batch carries (no pydantic here: ``mydata`` reads
them without the schema models). Labels and units come from protocol.record_words, the same words the
record schemas give as their field descriptions.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from protocol.record_words import IKI_BIN_EDGES_MS, iki_bin_labels

# Key classes in the order a person reads them, with their plural.
_KEY_CLASSES = {
    "letter": "letters",
    "digit": "digits",
    "space": "spaces",
    "punctuation": "punctuation",
    "modifier": "modifiers (Shift, Ctrl, …)",
    "navigation": "navigation (arrows, Home, …)",
    "editing": "corrections (Backspace, Delete)",
    "function": "function keys",
    "other": "other keys",
}
_FILE_KINDS = {"created": "created", "modified": "changed", "deleted": "deleted", "moved": "moved"}


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``1 entry``, ``3 entries``, ``0 batches``: a count as a person writes it."""
    return f"{count:,} {noun if count == 1 else plural or noun + 's'}"


def local_time(epoch_seconds: float, *, seconds: bool = False) -> str:
    """A moment as the employee reads it: local time with the zone (``2026-12-05 14:30 CET``)."""
    from protocol.timeutil import local_display

    return local_display(epoch_seconds, seconds=seconds)


def local_moment(moment: datetime | None) -> str:
    """An aware moment in local time with the zone; ``-`` for none."""
    return "-" if moment is None else local_time(moment.timestamp())


def record_in_words(record: Mapping[str, Any]) -> str:
    """One window record as a sentence, every number with its unit (the raw JSON is shown beside it)."""
    category = record.get("category")
    if category == "keyboard":
        return _keyboard(record)
    if category == "mouse":
        return _mouse(record)
    if category == "apps":
        return _apps(record)
    if category == "files":
        return _files(record)
    return "a record of an unknown kind (see its raw values)"


def _keyboard(record: Mapping[str, Any]) -> str:
    if record.get("sparse"):
        return "The keyboard was used, but too few presses to keep any count (sparse window: under 32 presses)."
    counts: Mapping[str, int] = record.get("key_counts") or {}
    total = sum(counts.values())
    parts = [f"{n:,} {_KEY_CLASSES.get(k, k)}" for k, n in _ordered(counts, _KEY_CLASSES) if n]
    sentence = f"{counted(total, 'key press', 'key presses')}" + (f": {', '.join(parts)}" if parts else "")
    histogram = list(record.get("iki_histogram") or [])
    if any(histogram):
        sentence += f". Typing rhythm: {typical_gap(histogram)} ({histogram_in_words(histogram)})"
    sentence += (
        f". {counted(int(record.get('bursts', 0)), 'typing burst')} "
        f"(longest {counted(int(record.get('longest_burst', 0)), 'key press', 'key presses')}), "
        f"{counted(int(record.get('pauses', 0)), 'pause')} of 2 seconds or more"
        f"; corrections: {float(record.get('correction_ratio', 0.0)):.0%} of presses."
    )
    return sentence


def typical_gap(histogram: list[int]) -> str:
    """Where most gaps between key presses fall: the range holding the middle (median) gap."""
    total, running = sum(histogram), 0
    for i, count in enumerate(histogram):
        running += count
        if running * 2 >= total:
            if i + 1 < len(IKI_BIN_EDGES_MS):
                return f"most gaps under {IKI_BIN_EDGES_MS[i + 1]} ms"
            return f"most gaps {IKI_BIN_EDGES_MS[-1]} ms or longer"
    return "no gaps counted"


def histogram_in_words(histogram: list[int]) -> str:
    """The gap histogram with every non-empty bin named: ``under 50 ms: 40, 50 to 100 ms: 80``."""
    labels = iki_bin_labels()
    named = [f"{labels[i]}: {n:,}" for i, n in enumerate(histogram) if n and i < len(labels)]
    return "gaps between presses " + ", ".join(named)


def _mouse(record: Mapping[str, Any]) -> str:
    clicks: Mapping[str, int] = record.get("clicks") or {}
    total = sum(clicks.values())
    by_button = ", ".join(f"{n:,} {button}" for button, n in clicks.items() if n)
    return (
        f"{counted(total, 'click')}" + (f" ({by_button})" if by_button else "")
        + f", {counted(int(record.get('scroll_steps', 0)), 'scroll step')}"
        + f", {counted(int(record.get('moves', 0)), 'pointer movement')} covering "
        + f"{float(record.get('distance_px', 0.0)):,.0f} pixels"
        + f"; idle for {float(record.get('idle_seconds', 0.0)):,.0f} seconds of the window."
    )  # fmt: skip


def _apps(record: Mapping[str, Any]) -> str:
    focus = [f for f in record.get("focus") or [] if isinstance(f, Mapping)]
    parts = [f"{_app_name(str(f.get('app', '')))} {float(f.get('seconds', 0.0)):,.0f} s" for f in focus]
    switches = counted(int(record.get("switches", 0)), "switch", "switches")
    return f"Time in focus: {', '.join(parts) or 'none'}; {switches} between applications."


def _app_name(token: str) -> str:
    if token.startswith("cat:"):
        return token[4:].replace("_", " ")
    return f"an application outside the named categories (pseudonym {token.removeprefix('anon:')})"


def _files(record: Mapping[str, Any]) -> str:
    parts = []
    for event in record.get("events") or []:
        if not isinstance(event, Mapping):
            continue
        ext = f" .{event['ext']}" if event.get("ext") else ""
        files = counted(int(event.get("count", 0)), "file")
        kind = _FILE_KINDS.get(str(event.get("kind")), str(event.get("kind")))
        parts.append(f"{files}{ext} {kind} in {event.get('root_class')} (folder depth {event.get('depth')})")
    return ("File activity: " + "; ".join(parts) + ".") if parts else "No file activity."


def _ordered(counts: Mapping[str, int], order: Mapping[str, str]) -> list[tuple[str, int]]:
    known = [(k, counts[k]) for k in order if k in counts]
    return known + [(k, v) for k, v in counts.items() if k not in order]
