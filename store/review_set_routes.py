"""The store's review-set endpoints (steward only): list groups, freeze a group into a set, show a set,
approve or reject it. Routes are added to the app by ``store.app.create_app``; their gate rules are ``RULES``."""

# No ``from __future__ import annotations``: FastAPI reads these signatures' annotations at runtime, and
# ``Signed`` is built here from the app's own dependency.

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path

from protocol.review_set import SetApproval, SetRejection
from protocol.review_set_api import CreateSet, GroupSummary, ReviewSetView, SetOutcome, SetRejectionOutcome
from store.auth import Principal
from store.gate import Rule
from store.review_sets import ReviewSets

SET_ID = Path(pattern=r"^[0-9a-f]{32}$", description="32 lowercase hex digits")
SET_BODY = 64 * 1024
# A set of up to 10,000 members names them all in its view; its approval is one small signed body.
RULES: dict[str, Rule] = {
    "review_set_groups": Rule(("steward",), 0),
    "review_set_create": Rule(("steward",), SET_BODY),
    "review_set_show": Rule(("steward",), 0),
    "review_set_approve": Rule(("steward",), SET_BODY),
    "review_set_reject": Rule(("steward",), SET_BODY),
}


def add_review_set_routes(app: FastAPI, sets: ReviewSets, principal: Callable[..., Any]) -> None:
    Signed = Annotated[Principal, Depends(principal)]  # noqa: N806 (a type alias, named like one)

    @app.get("/v1/steward/review-sets/groups", response_model=list[GroupSummary], tags=["steward"])
    def review_set_groups(signed: Signed) -> list[GroupSummary]:
        return sets.groups()

    @app.post("/v1/steward/review-sets", response_model=ReviewSetView, tags=["steward"])
    def review_set_create(body: CreateSet, signed: Signed) -> ReviewSetView:
        return sets.create(signed, body.key)

    @app.get("/v1/steward/review-sets/{set_id}", response_model=ReviewSetView, tags=["steward"])
    def review_set_show(signed: Signed, set_id: str = SET_ID) -> ReviewSetView:
        return sets.view(set_id)

    @app.post("/v1/steward/review-sets/{set_id}/approvals", response_model=SetOutcome, tags=["steward"])
    def review_set_approve(body: SetApproval, signed: Signed, set_id: str = SET_ID) -> SetOutcome:
        return sets.approve(signed, set_id, body)

    @app.post("/v1/steward/review-sets/{set_id}/rejections", response_model=SetRejectionOutcome, tags=["steward"])
    def review_set_reject(body: SetRejection, signed: Signed, set_id: str = SET_ID) -> SetRejectionOutcome:
        return sets.reject(signed, set_id, body)
