"""The stewards' HTTP routes for releases: list, show (manifest + its logged request) and decide.

Added to the store's app by ``store.app`` (``add_release_routes``; ``release_rules`` joins the gate's
table), so a steward approves from their own machine with ``--store-url``, as for batches.
"""

# No ``from __future__ import annotations``: FastAPI reads the routes' annotations, and ``signed`` is a
# closure variable it could not resolve from a string.
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from protocol.auditlog import LogReceipt
from protocol.fields import FROZEN, b64encode
from protocol.store_errors import Conflict, Forbidden, NotFound, Unprocessable
from store.auth import Role
from store.backend import StoreBackend
from store.gate import Rule
from store.keys import StoreKeys
from store.releases import governance as gov
from store.settings import StoreClock, StoreSettings

SMALL_BODY = 64 * 1024


class ReleaseView(BaseModel):
    """A release as a steward reviews it: the manifest, its hash, the decisions and the logged request."""

    model_config = FROZEN

    release_id: str
    state: str
    manifest: dict[str, Any]
    manifest_sha256: str
    approved_by: tuple[str, ...]
    rejected_by: tuple[str, ...]
    approvals_required: int
    request_log: LogReceipt | None


def view(status: gov.ReleaseStatus) -> ReleaseView:
    return ReleaseView(
        release_id=status.release_id,
        state=status.state,
        manifest=status.manifest,
        manifest_sha256=status.manifest_sha256,
        approved_by=status.approved_by,
        rejected_by=status.rejected_by,
        approvals_required=status.required,
        request_log=status.log,
    )


def release_rules(steward_roles: tuple[Role, ...]) -> dict[str, Rule]:
    """The gate's rules for these routes: stewards only, small bodies."""
    return {
        "steward_releases": Rule(steward_roles, 0),
        "steward_release": Rule(steward_roles, 0),
        "steward_release_decide": Rule(steward_roles, SMALL_BODY),
    }


def _mapped(action: Any) -> Any:
    """Release errors as the store's HTTP errors (one boundary)."""
    try:
        return action()
    except gov.UnknownRelease as exc:
        raise NotFound("unknown_release", str(exc)) from None
    except (gov.ApprovalMismatch, gov.BadSignature) as exc:
        raise Unprocessable("approval_signature_invalid", str(exc)) from None
    except gov.ManifestTampered as exc:
        raise Conflict("manifest_tampered", str(exc)) from None
    except gov.ReleaseError as exc:
        raise Conflict("release_refused", str(exc)) from None


def add_release_routes(
    app: FastAPI, signed: Any, backend: StoreBackend, keys: StoreKeys, settings: StoreSettings, clock: StoreClock
) -> None:
    stewards = settings.stewards

    @app.get("/v1/steward/releases", response_model=list[ReleaseView], tags=["steward"])
    def steward_releases(who: signed) -> list[ReleaseView]:
        return [view(s) for s in gov.list_releases(backend, stewards)]

    @app.get("/v1/steward/releases/{release_id}", response_model=ReleaseView, tags=["steward"])
    def steward_release(who: signed, release_id: str) -> ReleaseView:
        return view(_mapped(lambda: gov.show_release(backend, stewards, release_id)))

    @app.post("/v1/steward/releases/{release_id}/decisions", response_model=ReleaseView, tags=["steward"])
    def steward_release_decide(body: gov.ReleaseDecision, who: signed, release_id: str) -> ReleaseView:
        if body.release_id != release_id:
            raise Unprocessable("malformed_request", "the decision names another release")
        if body.steward_key != b64encode(who.public_key):
            raise Forbidden("not_a_steward", "a steward submits only decisions signed with their own key")
        return view(_mapped(lambda: gov.decide_release(backend, keys, stewards, body, now=clock.now())))
