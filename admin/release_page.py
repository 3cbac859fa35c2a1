"""The release block of the steward's review page: releases waiting, each manifest, approve/reject.

Served by ``admin.review_page.StewardPage`` under ``/releases`` and ``/release/<id>``. As for batches,
the page signs only the hash it recomputed from the manifest it showed, and only if the manifest the
store returns when the steward clicks still has that hash.
"""

from __future__ import annotations

import re
import time
from typing import Any

from kit.web.html import esc, flash, state_badge, table
from kit.web.security import CSRF_FIELD
from kit.web.server import Request, Response

_RELEASE_ID = re.compile(r"^[0-9a-f]{32}$")
DONE = {
    "approve": "Your approval of the release was signed on this machine and recorded by the store.",
    "reject": "Your rejection was signed on this machine and recorded by the store; the release is stopped.",
}


class ReleaseSection:
    """``render(request, body, status)`` is the page's own frame; ``client()`` its StoreClient factory."""

    def __init__(self, client: Any, signer: Any, render: Any, problem: Any) -> None:
        self.client = client
        self.signer = signer
        self.render = render
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
        rows = [
            (
                f'<a class="mono" href="/release/{esc(v.release_id)}">{esc(v.release_id)}</a>',
                state_badge(v.state),
                f"{len(v.approved_by)}/{v.approvals_required}",
                esc(v.manifest["consumer"]),
                esc(v.manifest["purpose"]),
                esc(", ".join(v.manifest["categories"])),
            )
            for v in views
        ]
        body = "<section><h2>Dataset releases</h2>" + (
            table(("Release", "State", "Approvals", "Consumer", "Purpose", "Categories"), rows, raw=True)
            if rows
            else "<p>No release requests.</p>"
        )
        return self.render(request, body + "</section>")

    def _show(self, request: Request, release_id: str) -> Response:
        from store.releases.requests import manifest_sha256

        with self.client() as client:
            view = self._get(client, release_id)
        m = view.manifest
        digest = manifest_sha256(m)
        done = request.query.get("done")
        parts = [f"<section>{flash(DONE[done])}</section>"] if done in DONE else []
        eligible = [(esc(c), str(v["records"]), str(v["subjects"])) for c, v in m["eligible"].items()]
        excluded = [
            (esc(reason), esc(c), str(v["records"]), str(v["subjects"]))
            for reason, by_category in m["excluded"].items()
            for c, v in by_category.items()
        ]
        k = m["privacy_checks"]["k_distinct_subjects"]
        parts.append(
            f"<section><h2>Release {esc(release_id)}</h2>"
            f"<p>{state_badge(view.state)} approvals {len(view.approved_by)} of {view.approvals_required}"
            + (f" ({esc(', '.join(view.approved_by))})" if view.approved_by else "")
            + "</p>"
            f"<p>Consumer <strong>{esc(m['consumer'])}</strong>, purpose <strong>{esc(m['purpose'])}</strong>: "
            f"{esc(m['description'])}</p>"
            f"<p>Period {esc(_period(m))}.</p>"
            "<h3>Eligible</h3>"
            + table(("Category", "Records", "Subjects"), eligible)
            + "<h3>Excluded</h3>"
            + (table(("Reason", "Category", "Records", "Subjects"), excluded) if excluded else "<p>Nothing.</p>")
            + f"<h3>Privacy checks</h3><p>At least {k['k']} distinct subjects in every category: passed.</p>"
            f"<p>{esc(m['privacy_checks']['no_free_text'])}</p>"
            f"<p>{esc(m['privacy_checks']['time_granularity'])}</p>"
            "<p>Columns that can link rows: "
            + esc("; ".join(f"{c}: {w}" for c, w in m["privacy_checks"]["linkable_columns"].items()))
            + "</p>"
            f'<p>Manifest SHA-256 (recomputed on this machine): <span class="mono" id="release-sha">{esc(digest)}</span></p>'
            "</section>"
        )
        if digest != view.manifest_sha256:
            parts.append(
                f"<section>{flash('The manifest does not hash to the hash the store names.', bad=True)}</section>"
            )
        elif view.state == "review":
            hidden = (
                f'<input type="hidden" name="{CSRF_FIELD}" value="{esc(request.csrf)}">'
                f'<input type="hidden" name="manifest_sha256" value="{esc(digest)}">'
            )
            parts.append(
                "<section><h2>Your decision</h2><p>Signed on this machine with your steward key, over the manifest "
                "hash above.</p>"
                f'<form method="post" action="/release/{release_id}/approve" class="inline" id="release-approve-form">'
                f'{hidden}<button type="submit" class="primary" id="release-approve">Approve release</button></form>'
                f'<form method="post" action="/release/{release_id}/reject" id="release-reject-form">{hidden}'
                '<label for="release-reason">Reason for rejecting (recorded in the audit log):</label>'
                '<input type="text" id="release-reason" name="reason" maxlength="500" required>'
                '<button type="submit" class="danger" id="release-reject">Reject release</button></form></section>'
            )
        return self.render(request, "".join(parts))

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
