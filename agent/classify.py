"""What raw input becomes inside the callback: a KeyClass or MouseButton, never a character or keycode."""

from __future__ import annotations

from protocol.categories import KeyClass, MouseButton

# pynput's special keys, by Key enum member name (the same names on X11, macOS and Windows).
_SPECIAL: dict[str, KeyClass] = {
    "space": KeyClass.SPACE,
    "backspace": KeyClass.EDITING,
    "delete": KeyClass.EDITING,
    **{
        name: KeyClass.MODIFIER
        for name in (
            "alt",
            "alt_l",
            "alt_r",
            "alt_gr",
            "ctrl",
            "ctrl_l",
            "ctrl_r",
            "shift",
            "shift_l",
            "shift_r",
            "cmd",
            "cmd_l",
            "cmd_r",
            "caps_lock",
            "num_lock",
            "scroll_lock",
        )
    },
    **{
        name: KeyClass.NAVIGATION
        for name in (
            "left",
            "right",
            "up",
            "down",
            "home",
            "end",
            "page_up",
            "page_down",
        )
    },
    **{f"f{n}": KeyClass.FUNCTION for n in range(1, 25)},
}


def classify_char(char: str) -> KeyClass:
    if char.isalpha():
        return KeyClass.LETTER
    if char.isdigit():
        return KeyClass.DIGIT
    if char == " ":
        return KeyClass.SPACE
    if char.isprintable() and not char.isspace():
        return KeyClass.PUNCTUATION
    return KeyClass.OTHER  # control characters (ctrl+letter), tabs, newlines


def classify_key(key: object) -> KeyClass:
    """Classify a pynput key: a ``KeyCode`` (has ``char``) or a ``Key`` member (has ``name``).

    Duck-typed so that no pynput import is needed here; a KeyCode without a character (an unmapped
    vk) is OTHER. Enter and Tab are OTHER too: they are neither editing nor text.
    """
    char = getattr(key, "char", None)
    if char is not None:
        return classify_char(char)
    name = getattr(key, "name", None)
    if name is not None:
        return _SPECIAL.get(name, KeyClass.OTHER)
    return KeyClass.OTHER


_BUTTONS = {"left": MouseButton.LEFT, "right": MouseButton.RIGHT, "middle": MouseButton.MIDDLE}


def classify_button(name: str | None) -> MouseButton:
    """A pynput ``Button`` member name to a MouseButton (x1, x2, button8 ... are OTHER)."""
    return _BUTTONS.get(name or "", MouseButton.OTHER)
