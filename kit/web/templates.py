"""Pages are rendered from Jinja2 templates: autoescaped, and a missing variable is an error.

Each package that serves pages keeps its templates in a ``templates/`` folder shipped with it (package
data); the kit's own (the layout every page extends, the messages, the macros for badges, forms, tables
and charts) are under ``kit/`` in this package's. Every value a page shows is escaped by Jinja2: no page
builds HTML in Python or hands a template ``Markup``.

Jinja2 is imported on first use, so the CLI's read commands (``status``, ``mydata``, ...) never load it.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jinja2

KIT = "kit.web"
# Eight distinguishable colours (Okabe-Ito); chart series beyond eight reuse them in order.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
Nav = Sequence[tuple[str, str]]


@cache
def environment(package: str = KIT) -> jinja2.Environment:
    """The environment for ``package``'s pages: its ``templates/`` folder first, then the kit's."""
    import jinja2

    folders = [jinja2.PackageLoader(package, "templates")]
    if package != KIT:
        folders.append(jinja2.PackageLoader(KIT, "templates"))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(folders),
        autoescape=True,  # every template here is HTML
        undefined=jinja2.StrictUndefined,  # a variable a page forgot to pass is an error, never an empty string
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # templates ship with the package; nothing edits them while a page runs
    )
    env.globals["PALETTE"] = PALETTE
    return env


def render(package: str, name: str, **context: Any) -> str:
    """``package``'s template ``name`` filled with ``context`` (every value escaped)."""
    return environment(package).get_template(name).render(**context)


def page(package: str, name: str, *, title: str, nonce: str, nav: Nav = (), here: str = "", **context: Any) -> str:
    """A whole page: ``name`` extends ``kit/page.html`` (head, CSS under this response's nonce, header, nav)."""
    return render(package, name, title=title, nonce=nonce, nav=nav, here=here, **context)


def message_page(
    title: str, message: str, nonce: str, *, nav: Nav = (), here: str = "", bad: bool = True, plain: bool = False
) -> str:
    """A page of an app that only says ``message`` (a refusal, "no such page"): a flash, or a plain paragraph."""
    context: dict[str, Any] = {"message": message, "bad": bad, "plain": plain, "refusal": False}
    return page(KIT, "kit/message.html", title=title, nonce=nonce, nav=nav, here=here, **context)


def error_page(title: str, message: str, nonce: str) -> str:
    """The server's own refusal or error (no session, a foreign Host, a bug): no navigation."""
    context: dict[str, Any] = {"message": message, "bad": True, "plain": False, "refusal": True}
    return page(KIT, "kit/message.html", title=title, nonce=nonce, **context)


def moving_page(target: str) -> str:
    """Sent once with the session cookie: go on to ``target`` (a path on this server) without the token."""
    return render(KIT, "kit/moving.html", target=target)
