"""Erasing on the employee's page: a category, a period, everything, or withdraw and erase.

Each is two steps, as ``consentry erase`` asks before it acts: the choice, then the same question the
CLI asks ("Erase … ? This cannot be undone.") with a button that confirms it. The erasure itself calls
what the CLI calls (``agent.erasure.erase``; for withdraw and erase, ``consent_ops.revoke`` then
``vault.shredding.erase_categories`` and the store request, as ``consentry consent revoke --erase``),
so the ledger records the same entries whichever way the employee erased. Drawn by
agent/web/templates/erase.html and erase_ask.html.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING

from kit.web.server import Request, Response
from protocol.categories import ALL_CATEGORIES, Category

if TYPE_CHECKING:
    from agent.web.employee import EmployeePage

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
SCOPES = ("category", "period", "everything", "withdraw")
# Fixed messages after an erasure, chosen by code: a link can never make this page say anything else.
DONE = {
    "erased": "Erased: that data's keys were destroyed; it can no longer be read by anyone.",
    "withdrawn-erased": "Consent withdrawn and its data erased: its keys were destroyed; nothing more is captured.",
    "erased-all": (
        "Everything was erased and every grant withdrawn. The vault key was replaced, so earlier copies of "
        "the vault cannot be read either; the store is asked to erase what it holds under your pseudonym."
    ),
}


class EraseChoice:
    """What the employee chose to erase, checked; ``problem`` says what is wrong with it (nothing erased)."""

    def __init__(self, request: Request) -> None:
        self.scope = request.field("scope") or ""
        self.category: Category | None = None
        self.first_day = request.field("from") or ""
        self.last_day = request.field("to") or ""
        self.problem: str | None = None
        try:
            if self.scope in ("category", "withdraw"):
                self.category = Category(request.field("category") or "")
        except ValueError:
            self.problem = "choose one of the categories"
        if self.scope not in SCOPES:
            self.problem = "choose what to erase"
        elif self.scope == "period" and not (_DAY.match(self.first_day) and _DAY.match(self.last_day)):
            self.problem = "a period needs a first and a last day (YYYY-MM-DD)"
        elif self.scope == "period" and self.first_day > self.last_day:
            self.problem = "the first day of the period is after its last day"

    @property
    def what(self) -> str:
        """The same words ``consentry erase`` uses in its question."""
        if self.scope == "everything":
            return "everything collected about you"
        if self.scope == "period":
            return f"data from {self.first_day} to {self.last_day}"
        assert self.category is not None
        return f"all {self.category.value} data"

    @property
    def question(self) -> str:
        if self.scope == "withdraw":
            assert self.category is not None
            return f"Withdraw consent for {self.category.value} and erase {self.what}? This cannot be undone."
        return f"Erase {self.what}? This cannot be undone."

    def fields(self) -> dict[str, str]:
        out = {"scope": self.scope}
        if self.category is not None:
            out["category"] = self.category.value
        if self.scope == "period":
            out.update({"from": self.first_day, "to": self.last_day})
        return out


def handle(page: EmployeePage, request: Request) -> Response:
    """The ``/erase`` routes: GET the choices, POST a choice (asks), POST it confirmed (erases)."""
    if request.method == "GET":
        return _choices(page, request)
    choice = EraseChoice(request)
    if choice.problem is not None:
        return page._refused(request, f"Nothing was erased: {choice.problem}.")
    if request.field("confirm") != "yes":
        return _ask(page, request, choice)
    return _erase(page, request, choice)


def _choices(page: EmployeePage, request: Request) -> Response:
    code = request.query.get("done", "")
    categories = [c.value for c in ALL_CATEGORIES]
    return page._page(request, "/erase", "erase.html", done=DONE.get(code, ""), categories=categories)


def _ask(page: EmployeePage, request: Request, choice: EraseChoice) -> Response:
    fields = {**choice.fields(), "confirm": "yes"}
    return page._page(request, "/erase", "erase_ask.html", question=choice.question, fields=fields)


def _erase(page: EmployeePage, request: Request, choice: EraseChoice) -> Response:
    now = page.clock()
    if choice.scope == "withdraw":
        assert choice.category is not None
        _withdraw_and_erase(page, choice.category, now)
        page.notify()
        return Response.redirect("/erase", done="withdrawn-erased")
    from agent.erasure import erase

    erase(
        page.home,
        now=now,
        everything=choice.scope == "everything",
        categories=(choice.category,) if choice.category is not None else (),
        period=(choice.first_day, choice.last_day) if choice.scope == "period" else None,
        policy=lambda: page._policy(strict=False),
    )
    page.notify()
    return Response.redirect("/erase", done="erased-all" if choice.scope == "everything" else "erased")


def _withdraw_and_erase(page: EmployeePage, category: Category, now: datetime) -> None:
    """What ``consentry consent revoke CATEGORY --erase`` does, in the same order."""
    from agent.shipping import request_store_erasure
    from vault import consent_ops
    from vault.shredding import erase_categories

    policy = page._policy(strict=False)
    with page._vault() as vault:
        consent_ops.revoke(vault, policy, [category], method="page", now=now)
        erase_categories(vault, [category], now=now, revoked_too=False)
        request_store_erasure(vault, policy, "revoke:" + category.value, now)
