"""The consent categories and the closed vocabularies that captured data may use."""

from __future__ import annotations

from enum import StrEnum


class Category(StrEnum):
    """What an employee can consent to. All are off until granted."""

    KEYBOARD = "keyboard"
    MOUSE = "mouse"
    APPS = "apps"
    FILES = "files"


ALL_CATEGORIES: tuple[Category, ...] = tuple(Category)


class KeyClass(StrEnum):
    """What a key press becomes inside the input callback. Characters never leave the callback."""

    LETTER = "letter"
    DIGIT = "digit"
    SPACE = "space"
    PUNCTUATION = "punctuation"
    MODIFIER = "modifier"
    NAVIGATION = "navigation"
    EDITING = "editing"
    FUNCTION = "function"
    OTHER = "other"


class MouseButton(StrEnum):
    LEFT = "left"
    RIGHT = "right"
    MIDDLE = "middle"
    OTHER = "other"


class AppCategory(StrEnum):
    """Allow-listed application categories; anything else becomes a pseudonymous token."""

    IDE = "ide"
    BROWSER = "browser"
    EMAIL = "email"
    CHAT = "chat"
    OFFICE = "office"
    TERMINAL = "terminal"
    DESIGN = "design"
    MEETING = "meeting"
    FILE_MANAGER = "file_manager"
    SYSTEM = "system"


class RootClass(StrEnum):
    """Where a watched file lives, relative to the folders the employee chose, without any name."""

    DOCUMENTS = "documents"
    DESKTOP = "desktop"
    DOWNLOADS = "downloads"
    PROJECTS = "projects"
    HOME = "home"
    OTHER = "other"


class FileEventKind(StrEnum):
    CREATED = "created"
    MODIFIED = "modified"
    DELETED = "deleted"
    MOVED = "moved"


def parse_category(name: str) -> Category:
    """Turn user input into a Category, with a message that lists the valid names."""
    try:
        return Category(name.strip().lower())
    except ValueError:
        valid = ", ".join(c.value for c in Category)
        raise ValueError(f"unknown category {name!r}; valid categories: {valid}") from None
