"""The tray menu as a Tk popup, for X11 tray hosts where pystray has no menu of its own."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agent.tray.model import SEPARATOR, Action, MenuEntry


def _fill(menu: Any, entries: tuple[MenuEntry, ...], chosen: list[Action]) -> None:
    import tkinter as tk

    for entry in entries:
        if entry == SEPARATOR:
            menu.add_separator()
        elif entry.children:
            sub = tk.Menu(menu, tearoff=False)
            _fill(sub, entry.children, chosen)
            menu.add_cascade(label=entry.label, menu=sub)
        elif entry.action is None:
            menu.add_command(label=entry.label, state="disabled")
        else:
            menu.add_command(label=entry.label, command=lambda a=entry.action: chosen.append(a))


def popup(entries: tuple[MenuEntry, ...], choose: Callable[[Action], None]) -> None:
    """Show ``entries`` at the pointer until the employee picks one or clicks away; then run the pick."""
    import tkinter as tk

    root = tk.Tk(className="ConsentryTrayMenu")
    root.withdraw()
    chosen: list[Action] = []
    menu = tk.Menu(root, tearoff=False)
    _fill(menu, entries, chosen)
    # Tk runs a command after it unposts the menu: wait a moment after the unmap so the pick is seen.
    menu.bind("<Unmap>", lambda _e: root.after(250, root.quit))
    try:
        x, y = root.winfo_pointerxy()
        menu.tk_popup(x, y)
        root.mainloop()
    finally:
        menu.grab_release()
        root.destroy()
    for action in chosen[:1]:
        choose(action)
