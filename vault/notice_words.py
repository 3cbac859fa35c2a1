"""Every notice in plain words, as sections a person reads: the one source for the page, the CLI and the
docs' notices page.

The exact text a grant's receipt hashes is ``Notice.rendered(terms)`` (vault.notices); it stays as it
was, so every earlier receipt still verifies, and it is shown beside these sections. The sections say
the same terms without identifiers: no key classes by their internal names, no purpose slugs, no URLs,
no key hashes.
"""

from __future__ import annotations

from typing import NamedTuple

from protocol.categories import Category
from vault.consent import NOBODY
from vault.notices import Terms

# The purpose slugs a manifest carries, in words.
PURPOSE_WORDS = {"internal-work-pattern-models": "to train your company's internal models of how work is done"}

_KEPT = {
    Category.KEYBOARD: (
        "How many keys of each kind you pressed (letters, digits, spaces, punctuation, Shift and other "
        "modifiers, arrows, Backspace and Delete, function keys), how long the gaps between presses were "
        "(in a few coarse ranges), how many typing bursts and pauses there were, and the share of "
        "corrections."
    ),
    Category.MOUSE: (
        "How many clicks per button, how many scroll steps, how many movements and how far the pointer "
        "travelled in pixels, and how many seconds the mouse was idle."
    ),
    Category.APPS: (
        "Which kind of application you used (for example a code editor, a browser, email, chat or office) "
        "and for how many seconds; an application outside those kinds only as a code that changes in every "
        "batch; and how often you switched between applications."
    ),
    Category.FILES: (
        "Only in the folders you choose: how many files were created, changed, deleted or moved, in which "
        "kind of folder (documents, desktop, downloads, projects, home, other) and how deep below it, and "
        "the file type when it is on your company's list."
    ),
}
_NEVER = {
    Category.KEYBOARD: (
        "Which key or character you typed, any text or password, the timing of any single key, and which "
        "window you typed into. Your keys are sorted into these kinds the moment you press them; the "
        "characters themselves are never stored or written anywhere."
    ),
    Category.MOUSE: ("Where the pointer was, what you clicked on, screenshots, or which window was under the pointer."),
    Category.APPS: (
        "Window titles, document or page names, web addresses, or the name of an application outside the named kinds."
    ),
    Category.FILES: "File or folder names, where they are, what they contain, or file types not on the list.",
}


class Section(NamedTuple):
    """One plain-language part of a notice: a heading a person scans for, and what it says."""

    key: str  # stable, for pages and tests: kept, never, recipients, duration, stop, ask
    title: str
    paragraphs: tuple[str, ...]


def plain_sections(category: Category, terms: Terms) -> tuple[Section, ...]:
    """The notice for ``category`` under ``terms``, in six plain sections."""
    return (
        Section("kept", "What is kept", _kept(category, terms)),
        Section("never", "What is never kept", _never(category, terms)),
        Section("recipients", "Who receives it, and why", _recipients(terms)),
        Section("duration", "For how long", _duration(terms)),
        Section("stop", "How to stop and erase", _stop(category)),
        Section("ask", "Whom to ask", _ask(terms)),
    )


def _kept(category: Category, terms: Terms) -> tuple[str, ...]:
    paragraphs = [
        f"One summary for every {_duration_words(terms.window_seconds)} of activity, and nothing finer: "
        + _KEPT[category]
    ]
    if category is Category.FILES and terms.file_extensions is not None:
        paragraphs.append(f"File types on the list: {', '.join(terms.file_extensions) or 'none'}.")
    if category is Category.APPS and terms.app_categories:
        named = ", ".join(f"{app} as {kind.replace('_', ' ')}" for app, kind in terms.app_categories)
        paragraphs.append(f"Applications your company names by kind: {named}.")
    return tuple(paragraphs)


def _never(category: Category, terms: Terms) -> tuple[str, ...]:
    extra = len(terms.excluded_apps or ())
    return (
        _NEVER[category],
        "Nothing at all is captured, from any category, while a password manager, a banking or HR "
        f"application, or another application on your company's exclusion list ({extra} in all) is in front.",
    )


def _recipients(terms: Terms) -> tuple[str, ...]:
    purposes = "; ".join(PURPOSE_WORDS.get(p, p.replace("-", " ")) for p in terms.purposes)
    you = "You can see everything that is kept, at any time, on your Consentry page (My data)."
    if not [r for r in terms.recipients if r != NOBODY]:
        return (you, "Nobody else: no company data store is set up, so nothing leaves this computer.")
    owner = f" of {terms.organisation[0]}" if terms.organisation else ""
    approvals = terms.approvals_required or 1
    return (
        you,
        f"Your company's own data store{owner}, on its premises, and only in batches: each batch waits for "
        f"you to look at it and, if you wish, stop it; then {approvals} of your company's data stewards must "
        "approve it. Batches carry a pseudonym, never your name"
        + (
            f", and the pseudonym changes every {terms.subject_rotation_days} days."
            if terms.subject_rotation_days
            else "."
        ),
        f"Why: {purposes}.",
    )


def _duration(terms: Terms) -> tuple[str, ...]:
    paragraphs = [
        f"On this computer: {terms.retention_days} days, encrypted, then destroyed automatically.",
    ]
    if terms.hold_hours is not None:
        paragraphs.append(
            f"Before a batch goes to review it waits {terms.hold_hours:g} hours, so you can look at it and stop it."
        )
    return tuple(paragraphs)


def _stop(category: Category) -> tuple[str, ...]:
    return (
        f"Withdraw at any time with one click: Revoke in the tray menu or on your Consentry page (or type "
        f"consentry consent revoke {category.value}). Capture stops at once. Withdrawing is never harder than "
        "agreeing.",
        "You can also erase what was kept, at any time: this category, a period, or everything, on the My "
        "data page or with consentry erase.",
    )


def _ask(terms: Terms) -> tuple[str, ...]:
    if terms.organisation is None:
        return (
            "Your company has not named a contact in its policy for this computer yet; ask your IT department "
            "or your data protection officer.",
        )
    name, controller, contact, works_council = terms.organisation
    paragraphs = [
        f"Responsible for your data (the controller): {controller}, for {name}.",
        f"Questions, or to use your rights: {contact}.",
    ]
    if works_council:
        paragraphs.append(f"This collection is covered by the works-council agreement {works_council}.")
    return tuple(paragraphs)


def _duration_words(seconds: int) -> str:
    if seconds % 60 == 0:
        minutes = seconds // 60
        return "minute" if minutes == 1 else f"{minutes} minutes"
    return f"{seconds} seconds"


def sections_as_text(sections: tuple[Section, ...]) -> str:
    """The sections for a terminal: a heading, then its paragraphs, wrapped."""
    import textwrap

    out = []
    for section in sections:
        out.append(section.title.upper())
        out += [textwrap.fill(p, width=78, initial_indent="  ", subsequent_indent="  ") for p in section.paragraphs]
        out.append("")
    return "\n".join(out)


def sections_as_markdown(sections: tuple[Section, ...]) -> list[str]:
    """The sections as Markdown lines (the docs' notices page)."""
    out: list[str] = []
    for section in sections:
        out += [f"*{section.title}*", ""]
        for paragraph in section.paragraphs:
            out += [paragraph, ""]
    return out
