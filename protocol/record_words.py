"""What each field of a window record means, in words and units: the one source for the record schemas'
descriptions (protocol.windows), the data inventory in the docs, and every view that shows a record to a
person (agent.words).

Plain data, no pydantic: ``consentry mydata`` reads it without paying for the schema models.
"""

from __future__ import annotations

from typing import NamedTuple

# Inter-key interval histogram: bin i counts intervals in [EDGES[i], EDGES[i+1]) milliseconds; the
# last bin is open-ended. Coarse on purpose: per-key timings are behavioural biometrics.
IKI_BIN_EDGES_MS: tuple[int, ...] = (0, 50, 100, 150, 200, 300, 500, 1000, 2000)


class FieldWords(NamedTuple):
    """One record field as a person reads it: a short label, its unit (or ``""``) and what it means."""

    label: str
    unit: str
    meaning: str


def iki_bin_labels() -> tuple[str, ...]:
    """``under 50 ms``, ``50 to 100 ms``, …, ``2,000 ms or more``: the histogram's bins, named."""
    edges = IKI_BIN_EDGES_MS
    labels = [f"under {edges[1]:,} ms"]
    labels += [f"{low:,} to {high:,} ms" for low, high in zip(edges[1:-1], edges[2:], strict=True)]
    labels.append(f"{edges[-1]:,} ms or more")
    return tuple(labels)


FIELDS: dict[str, dict[str, FieldWords]] = {
    "common": {
        "start": FieldWords("window start", "UTC seconds since 1970", "when the time window began"),
        "end": FieldWords("window end", "UTC seconds since 1970", "when the time window ended (exclusive)"),
        "receipt_id": FieldWords(
            "consent receipt", "", "the consent grant in force when this was captured (in a batch: its alias)"
        ),
        "category": FieldWords("category", "", "which kind of activity this record counts"),
    },
    "keyboard": {
        "key_counts": FieldWords(
            "key presses by class",
            "presses",
            "how many keys of each class were pressed (letter, digit, space, punctuation, modifier, "
            "navigation, editing, function, other); never which key",
        ),
        "iki_histogram": FieldWords(
            "gaps between key presses",
            "gaps per time range",
            "how many gaps between consecutive key presses fell in each range: "
            + "; ".join(f"bin {i}: {label}" for i, label in enumerate(iki_bin_labels(), start=1)),
        ),
        "bursts": FieldWords(
            "typing bursts", "bursts", "runs of 3 or more key presses with no gap of 2 seconds or longer"
        ),
        "longest_burst": FieldWords("longest burst", "presses", "key presses in the longest typing burst"),
        "pauses": FieldWords("pauses", "pauses", "gaps of 2 seconds or longer between key presses"),
        "correction_ratio": FieldWords(
            "corrections",
            "share of presses, from 0 (none) to 1 (all)",
            "the share of key presses that were backspace or delete",
        ),
        "sparse": FieldWords(
            "too few presses to count",
            "",
            "the keyboard was used, but with fewer than 32 presses: every count is withheld (zero)",
        ),
    },
    "mouse": {
        "clicks": FieldWords("clicks by button", "clicks", "mouse clicks per button (left, right, middle, other)"),
        "scroll_steps": FieldWords("scroll steps", "steps", "notches the scroll wheel turned"),
        "moves": FieldWords("movements", "movement events", "how many pointer movements were reported"),
        "distance_px": FieldWords("pointer travel", "pixels", "how far the pointer moved on screen, in total"),
        "idle_seconds": FieldWords(
            "mouse idle time", "seconds", "time within the window with no mouse event for over 1 second"
        ),
    },
    "apps": {
        "focus": FieldWords(
            "time per application",
            "seconds",
            "seconds of focus per application category, or per pseudonymous token for an application "
            "outside the named categories (never its name)",
        ),
        "switches": FieldWords("application switches", "switches", "how often focus moved to another application"),
    },
    "files": {
        "events": FieldWords(
            "file activity",
            "events",
            "file events counted by kind, by kind of folder (documents, projects, …) and folder depth, and by "
            "extension when it is on the allowed list; never a file or folder name",
        ),
    },
}


def meaning(category: str, name: str) -> str:
    """The schema description of field ``name`` of a ``category`` record (with its unit)."""
    words = FIELDS.get(category, {}).get(name) or FIELDS["common"][name]
    return f"{words.meaning} ({words.unit})" if words.unit else words.meaning
