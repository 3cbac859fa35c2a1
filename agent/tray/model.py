"""What the tray shows, as plain data: the icon's state, its tooltip, and the menu with its actions.

Pure: no pystray, no X, no vault. ``TrayState.from_report`` reads the same report ``consentry status``
builds; ``build_menu`` turns a state into entries whose actions ``agent.tray.actions`` performs.
Granting is never a menu action: it opens the category's notice in the local page, where the
employee confirms; when no page runs, the entry names the CLI command instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from agent.words import counted
from protocol.categories import Category
from protocol.timeutil import parse_iso

IconKind = Literal["capturing", "paused", "off", "problem", "unknown"]
PauseLength = Literal["15m", "1h", "tomorrow"]

# What each capture state (agent/status.py) or, with no agent, consent state means in words.
_WORDS = {
    "capturing": "capturing",
    "paused": "paused",
    "not_granted": "not granted",
    "revoked": "withdrawn",
    "suspended": "needs your consent again (new notice or terms)",
    "forbidden_by_policy": "not offered by IT policy",
    "forbidden": "not offered by IT policy",
    "unavailable": "unavailable on this computer",
    "excluded_app_focused": "stopped (an excluded app has focus)",
    "storage_error": "stopped (storage problem)",
    "settings_error": "stopped (a settings file is damaged or changed)",
    "granted": "granted (agent not running)",
    "policy_invalid": "stopped (the machine policy is invalid)",
    "unknown": "state unknown",
}
_REVOCABLE = {"granted", "suspended"}  # consent states with a grant in force
_GRANTABLE = {"not_granted", "revoked", "suspended"}


@dataclass(frozen=True)
class CategoryView:
    category: Category
    consent: str  # vault.consent.ConsentStateName
    capture: str  # a CaptureState value, or the consent state when no agent reports one

    @property
    def words(self) -> str:
        return _WORDS.get(self.capture, self.capture.replace("_", " "))


@dataclass(frozen=True)
class TrayState:
    """Everything the tray needs to draw itself; built from ``consentry status``'s report."""

    categories: tuple[CategoryView, ...]
    paused_until: str | None = None  # ISO-8601 UTC, "indefinitely", or None
    problems: tuple[str, ...] = ()
    batches_waiting: int = 0
    page_available: bool = False
    unknown: str | None = None  # why the state could not be confirmed; None when it was

    @classmethod
    def unknown_state(cls, why: str, *, page_available: bool = False) -> TrayState:
        """A state nobody confirmed: every category unknown (and still revocable), and why."""
        views = tuple(CategoryView(category=c, consent="unknown", capture="unknown") for c in Category)
        return cls(categories=views, page_available=page_available, unknown=why)

    @classmethod
    def from_report(cls, report: dict[str, Any], *, page_available: bool) -> TrayState:
        agent = report.get("agent") or {}
        if agent.get("unreachable"):  # an agent holds the socket but does not answer: it may capture
            return cls.unknown_state(
                f"the agent does not answer ({agent['unreachable']})", page_available=page_available
            )
        running = bool(agent.get("pid")) and agent.get("running", True) is not False
        policy_ok = (report.get("policy") or {}).get("state") == "ok"
        views = []
        for category in Category:
            entry = (report.get("categories") or {}).get(category.value) or {}
            consent = str(entry.get("consent") or "not_granted")
            capture = entry.get("capture")
            if not policy_ok:
                live = "policy_invalid"
            elif isinstance(capture, dict) and capture.get("state"):
                live = str(capture["state"])
            else:
                live = consent  # no agent: show the consent itself
            views.append(CategoryView(category=category, consent=consent, capture=live))
        problems: list[str] = []
        if not policy_ok:
            problems.append("the machine policy is invalid; nothing is captured until IT fixes it")
        if running and agent.get("storage_error"):
            problems.append("the agent cannot store data; nothing is captured")
        if running and agent.get("housekeeping_error"):
            problems.append("retention or release housekeeping failed; see: consentry status")
        if not running and policy_ok and any(v.consent == "granted" for v in views):
            problems.append("the agent is not running, so nothing is captured")
        if (report.get("release") or {}).get("problems"):
            problems.append("a batch is stuck on its way to the store; see: consentry batches")
        if report.get("error"):
            problems.append(str(report["error"]))
        held = int(((report.get("release") or {}).get("batches") or {}).get("held", 0))
        return cls(
            categories=tuple(views),
            paused_until=report.get("paused_until"),
            problems=tuple(problems),
            batches_waiting=held,
            page_available=page_available,
        )


@dataclass(frozen=True)
class IconSpec:
    """The icon: a shape and a colour per state, so it reads without colour vision too."""

    kind: IconKind
    shape: Literal["disc", "pause-bars", "ring", "triangle", "question"]
    colour: tuple[int, int, int]


ICONS: dict[IconKind, IconSpec] = {
    "capturing": IconSpec("capturing", "disc", (46, 160, 67)),  # green filled disc
    "paused": IconSpec("paused", "pause-bars", (230, 150, 0)),  # amber pause bars
    "off": IconSpec("off", "ring", (128, 128, 128)),  # grey hollow ring
    "problem": IconSpec("problem", "triangle", (200, 30, 30)),  # red warning triangle
    "unknown": IconSpec("unknown", "question", (60, 80, 170)),  # blue square with a white '?'
}


def icon_kind(state: TrayState) -> IconKind:
    if state.unknown:  # nothing below was confirmed: never show it
        return "unknown"
    if state.problems:
        return "problem"
    if state.paused_until:
        return "paused"
    if any(v.capture == "capturing" for v in state.categories):
        return "capturing"
    return "off"


def icon_for(state: TrayState) -> IconSpec:
    return ICONS[icon_kind(state)]


def _clock(paused_until: str) -> str:
    if paused_until == "indefinitely":
        return "until you resume"
    try:
        local = parse_iso(paused_until).astimezone()
    except ValueError:
        return "for a while"
    return f"until {local:%a %H:%M %Z}"  # the employee's time, with its zone


def tooltip(state: TrayState) -> str:
    """The state in words, for the icon's hover text (short: some trays cut long tooltips)."""
    kind = icon_kind(state)
    capturing = [v.category.value for v in state.categories if v.capture == "capturing"]
    if kind == "unknown":
        return "Consentry: state unknown - " + (state.unknown or "not confirmed yet")
    if kind == "problem":
        head = "Consentry: problem - " + state.problems[0]
    elif kind == "paused":
        head = f"Consentry: paused {_clock(state.paused_until or '')}"
    elif kind == "capturing":
        head = "Consentry: capturing " + ", ".join(capturing)
    else:
        head = "Consentry: off - nothing is captured"
    if state.batches_waiting:
        head += f"; {counted(state.batches_waiting, 'batch', 'batches')} waiting for you"
    return head


# --- the menu -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Revoke:
    category: Category


@dataclass(frozen=True)
class OpenPage:
    """Open a page of the agent's local page server (``/consent/keyboard``, ``/mydata``, ``/batches``)."""

    path: str


@dataclass(frozen=True)
class Pause:
    length: PauseLength


@dataclass(frozen=True)
class Resume:
    pass


@dataclass(frozen=True)
class Quit:
    pass


Action = Revoke | OpenPage | Pause | Resume | Quit


@dataclass(frozen=True)
class MenuEntry:
    label: str
    action: Action | None = None  # None: a line of information, shown disabled
    children: tuple[MenuEntry, ...] = field(default=())

    @property
    def enabled(self) -> bool:
        return self.action is not None or bool(self.children)


SEPARATOR = MenuEntry("-")


def _category_entry(view: CategoryView, page: bool) -> MenuEntry:
    name = view.category.value.capitalize()
    label = f"{name}: {view.words}"
    if view.consent == "unknown":  # withdrawing is always safe, so it stays one click away
        return MenuEntry(f"{label} - Revoke", Revoke(view.category))
    if view.consent in _REVOCABLE:
        return MenuEntry(f"{label} - Revoke", Revoke(view.category))
    if view.consent in _GRANTABLE and view.capture != "policy_invalid":
        if page:
            return MenuEntry(f"{label} - Grant (read the notice)...", OpenPage(f"/consent/{view.category.value}"))
        return MenuEntry(f"{label} - to grant, run: consentry consent grant {view.category.value}")
    return MenuEntry(label)


def build_menu(state: TrayState) -> tuple[MenuEntry, ...]:
    """The tray menu, top to bottom. Revoking is one click; granting only ever opens the notice."""
    page = state.page_available
    entries: list[MenuEntry] = [MenuEntry(tooltip(state))]
    if state.unknown:
        entries.append(MenuEntry("Check with: consentry status"))
    entries.append(SEPARATOR)
    entries += [_category_entry(v, page) for v in state.categories]
    entries.append(SEPARATOR)
    if state.paused_until:
        entries.append(MenuEntry(f"Resume capture (paused {_clock(state.paused_until)})", Resume()))
    elif not state.unknown and not any(v.consent == "granted" for v in state.categories):
        # Nothing is granted, so nothing is captured: a pause would change nothing. (Unknown: offered,
        # since pausing only ever narrows.)
        entries.append(MenuEntry("Nothing to pause: no category is captured"))
    else:
        entries.append(
            MenuEntry(
                "Pause capture",
                children=(
                    MenuEntry("For 15 minutes", Pause("15m")),
                    MenuEntry("For 1 hour", Pause("1h")),
                    MenuEntry("Until tomorrow", Pause("tomorrow")),
                ),
            )
        )
    waiting = f"Batches waiting for me ({state.batches_waiting})"
    if page:
        entries.append(MenuEntry("See my data...", OpenPage("/mydata")))
        entries.append(MenuEntry(waiting + "...", OpenPage("/batches")))
    else:
        entries.append(MenuEntry("See my data: run consentry mydata"))
        entries.append(MenuEntry(waiting + ": run consentry batches"))
    entries += [SEPARATOR, MenuEntry("Quit the tray (capture goes on)", Quit())]
    return tuple(entries)


def pause_end(length: PauseLength, now: datetime) -> datetime:
    """When a pause of ``length`` started at ``now`` (aware) ends; "tomorrow" is the next local midnight."""
    if length == "15m":
        return now + timedelta(minutes=15)
    if length == "1h":
        return now + timedelta(hours=1)
    local = now.astimezone()
    midnight = (local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight.astimezone(now.tzinfo)
