"""The data steward's review page: the queue, each manifest with its privacy checks and consent basis,
approve/reject signed on this machine (the key never leaves it), and the store's audit-log tree head.

The page signs only the hash it recomputed from the manifest it showed, and only if the manifest
the store returns when the steward clicks still has that hash.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from admin.review_set_page import ReviewSetPages
from kit.web.html import esc, flash, layout, state_badge, table
from kit.web.security import CSRF_FIELD
from kit.web.server import Request, Response
from protocol.timeutil import utc_text
from store.check_detail import describe

TITLE = "Consentry: steward review"
NAV = (("/", "Queue"), ("/sets", "Review sets"), ("/releases", "Releases"))
_BATCH_ID = re.compile(r"^[0-9a-f]{32}$")
DONE = {
    "approve": "Your approval was signed on this machine and recorded by the store.",
    "reject": "Your rejection was signed on this machine and recorded by the store; the batch is stopped.",
}

ClientFactory = Callable[[], AbstractContextManager[Any]]  # -> kit.store_client.StoreClient
DigestOf = Callable[[str, Any], str]  # (batch_id, BatchReview) -> recomputed manifest hash; ValueError if it lies


class StewardPage:
    """Routes of the review page; talks to the store through ``StoreClient`` with the steward's key."""

    title = TITLE

    def __init__(
        self, client: ClientFactory, signer: Any, digest_of: DigestOf, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.client = client
        self.signer = signer
        self.digest_of = digest_of
        self.clock = clock
        self.sets = ReviewSetPages(client, signer, self._render, clock)  # review sets: admin.review_set_page

    def handle(self, request: Request) -> Response:
        import httpx

        from protocol.errors import InvalidRecord
        from protocol.store_errors import StoreError, UntrustedStore

        parts = [p for p in request.path.split("/") if p]
        try:
            if request.method == "GET" and not parts:
                return self._queue(request)
            if parts and parts[0] in ("sets", "set") and (shown := self.sets.handle(request, parts)) is not None:
                return shown
            if len(parts) >= 2 and parts[0] == "batch" and _BATCH_ID.match(parts[1]):
                if request.method == "GET" and len(parts) == 2:
                    return self._batch(request, parts[1])
                if request.method == "POST" and parts[2:] in (["approve"], ["reject"]):
                    return self._decide(request, parts[1], parts[2])
            if parts and parts[0] in ("releases", "release"):  # dataset releases: admin/release_page.py
                from admin.release_page import ReleaseSection

                answer = ReleaseSection(self.client, self.signer, self._render, self._problem).handle(request, parts)
                if answer is not None:
                    return answer
        except UntrustedStore as exc:  # nothing left this machine: the store is not the one pinned
            return self._problem(
                request,
                f"{exc.message[:1].upper()}{exc.message[1:]}. Nothing was signed. Check [store] tls_ca in the "
                "machine policy, or ask IT for the store's certificate.",
            )
        except StoreError as exc:
            return self._problem(request, f"The store refused: {exc.code}: {exc.message}. Nothing was signed.")
        except httpx.TransportError as exc:
            return self._problem(request, f"Cannot reach the store ({type(exc).__name__}); nothing was signed.")
        except InvalidRecord:
            return self._problem(request, "The store's signed tree head did not verify with the pinned log key.")
        return self._render(request, f"<section>{flash('There is no such page here.', bad=True)}</section>", 404)

    def _render(self, request: Request, body: str, status: int = 200) -> Response:
        return Response.html(layout(TITLE, body, request.nonce, nav=NAV, here="/"), status)

    def _problem(self, request: Request, message: str) -> Response:
        return self._render(request, f"<section>{flash(message, bad=True)}</section>", 409)

    def _queue(self, request: Request) -> Response:
        with self.client() as client:
            items = client.queue()
            head = client.tree_head()
            pinned = client.log_public_key is not None
        rows = [
            (
                f'<a class="mono" href="/batch/{esc(i.batch_id)}">{esc(i.batch_id)}</a>',
                state_badge(i.state),
                f"{i.approvals}/{i.approvals_required}",
                esc(", ".join(f"{k} {v}" for k, v in sorted(i.record_counts.items()))),
                esc(f"{_when(i.period_start)} – {_when(i.period_end)}"),
                esc(f"{i.subject} #{i.seq}"),
                esc(_when(i.submitted_at)),
            )
            for i in items
        ]
        verified = (
            f"{state_badge('ok')} signature verified with the pinned log key"
            if pinned
            else f"{state_badge('problem')} not verified: pass --log-key (or set store.log_key in the policy) to pin it"
        )
        body = (
            "<section><h2>Batches waiting for review</h2>"
            + (
                table(
                    ("Batch", "State", "Approvals", "Records", "Period (UTC)", "Subject #seq", "Submitted (UTC)"),
                    rows,
                    raw=True,
                )
                if rows
                else "<p>No batches are waiting for review.</p>"
            )
            + "</section><section><h2>Audit log</h2>"
            f'<p id="tree-head">Tree head: <strong>{head.size}</strong> entries, root '
            f'<span class="mono">{esc(head.root_hash)}</span>, signed {esc(_when(head.timestamp))}.</p>'
            f"<p>{verified}.</p>"
            f'<p class="muted">Signing as steward key <span class="mono">{esc(self.signer.kid)}</span>; '
            "the private key stays on this machine.</p></section>"
        )
        return self._render(request, body)

    def _batch(self, request: Request, batch_id: str) -> Response:
        with self.client() as client:
            review = client.review(batch_id)
        try:
            digest: str | None = self.digest_of(batch_id, review)
            mismatch = None
        except ValueError as exc:
            digest, mismatch = None, str(exc)
        m = review.manifest
        status = review.status
        done = request.query.get("done")
        receipts = [
            (
                r.category.value,
                r.lawful_basis,
                ", ".join(r.purposes),
                f"{r.notice_id} v{r.notice_version}",
                r.notice_sha256[:16] + "…",
                _when(r.granted_at),
            )
            for r in m.consent_receipts
        ]
        store_checks = {c.name: c for c in review.privacy_checks}
        checks = [
            (
                state_badge("pass" if c.passed else "fail"),
                esc(c.name),
                esc(describe(c, m)),
                state_badge("pass" if store_checks[c.name].passed else "fail") if c.name in store_checks else "-",
            )
            for c in m.privacy_checks
        ]
        mine = self.signer.public_bytes
        decisions = [
            (
                d.decision,
                ("you" if _b64(mine) == d.steward_key else d.steward_key[:12] + "…"),
                d.reason or "",
                _when(d.created),
            )
            for d in review.decisions
        ]
        failed = m.failed_checks()
        parts = [flash(DONE[done]) if done in DONE else ""]
        parts.append(
            f'<section><h2>Batch <span class="mono">{esc(m.batch_id)}</span> {state_badge(status.state)}</h2>'
            f"<p>{status.approvals}/{status.approvals_required} approvals. Subject "
            f'<span class="mono">{esc(m.subject)}</span> (a pseudonym), manifest #{m.seq}.</p>'
            + table(
                ("Period (UTC)", "Records", "Schema", "Payload"),
                [
                    (
                        f"{_when(m.period_start)} – {_when(m.period_end)}",
                        ", ".join(f"{k.value} {v}" for k, v in sorted(m.record_counts.items())),
                        f"v{m.schema_version}",
                        f"{m.payload_bytes} bytes, sha256 {m.payload_sha256[:16]}…",
                    )
                ],
            )
            + f'<p>Manifest SHA-256 (recomputed here): <span class="mono" id="manifest-hash">{esc(digest or "-")}</span></p>'
            + "</section>"
        )
        parts.append(
            "<section><h2>Privacy checks</h2>"
            + table(("Workstation", "Check", "Detail", "Store"), checks, raw=True)
            + (flash("Failed: " + ", ".join(failed), bad=True) if failed else "")
            + "</section><section><h2>Consent basis</h2>"
            + table(("Category", "Lawful basis", "Purposes", "Notice", "Notice SHA-256", "Granted (UTC)"), receipts)
            + "</section>"
        )
        if status.state == "rejected" and status.rejection_reasons:  # single rejections and a set's alike
            parts.append(
                "<section><h2>Why it was rejected</h2>"
                + "".join(f"<p>{esc(reason)}</p>" for reason in status.rejection_reasons)
                + "</section>"
            )
        if decisions:
            parts.append(
                "<section><h2>Decisions so far</h2>"
                + table(("Decision", "Steward", "Reason", "When (UTC)"), decisions)
                + "</section>"
            )
        if mismatch is not None:
            parts.append(f"<section>{flash(mismatch, bad=True)}</section>")
        elif status.state == "review" and digest is not None:
            parts.append(self._decision_forms(request, m.batch_id, digest))
        return self._render(request, "".join(parts))

    def _decision_forms(self, request: Request, batch_id: str, digest: str) -> str:
        hidden = (
            f'<input type="hidden" name="{CSRF_FIELD}" value="{esc(request.csrf)}">'
            f'<input type="hidden" name="manifest_sha256" value="{esc(digest)}">'
        )
        return (
            "<section><h2>Your decision</h2><p>Signed on this machine with your steward key, over the manifest "
            "hash above.</p>"
            f'<form method="post" action="/batch/{batch_id}/approve" class="inline" id="approve-form">{hidden}'
            '<button type="submit" class="primary" id="approve">Approve</button></form>'
            f'<form method="post" action="/batch/{batch_id}/reject" id="reject-form">{hidden}'
            '<label for="reason">Reason for rejecting (recorded in the audit log, shown to the employee):</label>'
            '<input type="text" id="reason" name="reason" maxlength="500" required>'
            '<button type="submit" class="danger" id="reject">Reject</button></form></section>'
        )

    def _decide(self, request: Request, batch_id: str, decision: str) -> Response:
        from protocol import sign_approval

        shown = request.field("manifest_sha256") or ""
        reason = (request.field("reason") or "").strip() or None
        if decision == "reject" and reason is None:
            return self._problem(request, "A rejection needs a reason; nothing was signed.")
        with self.client() as client:
            review = client.review(batch_id)
            try:
                digest = self.digest_of(batch_id, review)
            except ValueError as exc:
                return self._problem(request, str(exc))
            if digest != shown:
                return self._problem(
                    request, "The manifest changed since this page showed it; nothing was signed. Review it again."
                )
            approval = sign_approval(
                self.signer,
                batch_id,
                digest,
                "approve" if decision == "approve" else "reject",
                created=int(self.clock()),
                reason=reason,
            )
            client.decide(approval)
        return Response.redirect(f"/batch/{batch_id}", done=decision)


def _when(ts: int) -> str:
    return utc_text(ts)


def _b64(raw: bytes) -> str:
    from protocol import b64encode

    return str(b64encode(raw))
