"""The release block of the steward's review page: releases waiting, each manifest, approve/reject.

Served by ``admin.review_page.StewardPage`` under ``/releases`` and ``/release/<id>``. As for batches,
the page signs only the hash it recomputed from the manifest it showed, and only if the manifest the
store returns when the steward clicks still has that hash. Drawn by admin/templates/releases.html and
release.html.
"""

from __future__ import annotations

import re
import time
from typing import Any

from kit.web.server import Request, Response

_RELEASE_ID = re.compile(r"^[0-9a-f]{32}$")
DONE = {
    "approve": "Your approval of the release was signed on this machine and recorded by the store.",
    "reject": "Your rejection was signed on this machine and recorded by the store; the release is stopped.",
}


class ReleaseSection:
    """``page(request, template, status, **context)`` draws one of the review page's templates in its
    layout; ``problem(request, message)`` says what went wrong; ``client()`` is its StoreClient factory."""

    def __init__(self, client: Any, signer: Any, page: Any, problem: Any) -> None:
        self.client = client
        self.signer = signer
        self.page = page
        self.problem = problem

    def handle(self, request: Request, parts: list[str]) -> Response | None:
        if parts == ["releases"] and request.method == "GET":
            return self._list(request)
        if len(parts) >= 2 and parts[0] == "release" and _RELEASE_ID.match(parts[1]):
            if request.method == "GET" and len(parts) == 2:
                return self._show(request, parts[1])
            if request.method == "POST" and parts[2:] in (["approve"], ["reject"]):
                return self._decide(request, parts[1], parts[2])
        return None

    def _get(self, client: Any, release_id: str) -> Any:
        from store.releases.governance_api import ReleaseView

        return client._get(ReleaseView, f"/v1/steward/releases/{release_id}")

    def _list(self, request: Request) -> Response:
        from pydantic import TypeAdapter

        from store.releases.governance_api import ReleaseView

        with self.client() as client:
            views = TypeAdapter(list[ReleaseView]).validate_python(client._request("GET", "/v1/steward/releases"))
        return self.page(request, "releases.html", views=views)

    def _show(self, request: Request, release_id: str) -> Response:
        from store.releases.requests import manifest_sha256

        with self.client() as client:
            view = self._get(client, release_id)
        m = view.manifest
        digest = manifest_sha256(m)
        done = request.query.get("done") or ""
        eligible = [(c, str(v["records"]), str(v["subjects"])) for c, v in m["eligible"].items()]
        excluded = [
            (reason, c, str(v["records"]), str(v["subjects"]))
            for reason, by_category in m["excluded"].items()
            for c, v in by_category.items()
        ]
        checks = m["privacy_checks"]
        return self.page(
            request,
            "release.html",
            done=DONE.get(done, ""),
            release_id=release_id,
            view=view,
            m=m,
            eligible=eligible,
            excluded=excluded,
            k=checks["k_distinct_subjects"]["k"],
            checks=checks,
            linkable="; ".join(f"{c}: {w}" for c, w in checks["linkable_columns"].items()),
            digest=digest,
            period=_period(m),
        )

    def _decide(self, request: Request, release_id: str, decision: str) -> Response:
        from store.releases.governance import sign_decision
        from store.releases.governance_api import ReleaseView
        from store.releases.requests import manifest_sha256

        shown = request.field("manifest_sha256") or ""
        reason = (request.field("reason") or "").strip() or None
        if decision == "reject" and reason is None:
            return self.problem(request, "A rejection needs a reason; nothing was signed.")
        with self.client() as client:
            view = self._get(client, release_id)
            digest = manifest_sha256(view.manifest)
            if digest != shown or digest != view.manifest_sha256:
                return self.problem(
                    request,
                    "The release manifest changed since this page showed it; nothing was signed. Review it again.",
                )
            signed = sign_decision(
                self.signer,
                release_id,
                digest,
                "approve" if decision == "approve" else "reject",
                created=int(time.time()),
                reason=reason,
            )
            client._post(ReleaseView, f"/v1/steward/releases/{release_id}/decisions", signed)
        return Response.redirect(f"/release/{release_id}", done=decision)


def _period(manifest: dict[str, Any]) -> str:
    """The release's period as stewards read every moment: UTC ISO to the second (the manifest's own
    ``from``/``to`` text is part of what is hashed, so it is shown from its epoch twins instead)."""
    from protocol.timeutil import utc_text

    period = manifest["period"]
    return f"{utc_text(int(period['from_epoch']))} to {utc_text(int(period['to_epoch']))}"
