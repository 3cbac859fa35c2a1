"""The data steward's review page: the queue, each manifest with its privacy checks and consent basis,
approve/reject signed on this machine (the key never leaves it), and the store's audit-log tree head.

The page signs only the hash it recomputed from the manifest it showed, and only if the manifest
the store returns when the steward clicks still has that hash. Drawn by admin/templates/.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from admin.access import WITHHELD_NOTE
from admin.review_set_page import ReviewSetPages
from kit.web import templates
from kit.web.server import Request, Response
from protocol.manifest import withheld_from_stewards
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
        self.sets = ReviewSetPages(client, signer, self._page, clock)  # review sets: admin.review_set_page

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

                answer = ReleaseSection(self.client, self.signer, self._page, self._problem).handle(request, parts)
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
        return self._message(request, "There is no such page here.", 404)

    def _page(self, request: Request, template: str, status: int = 200, **context: Any) -> Response:
        """One of the review page's templates (admin/templates/), in the layout with its navigation."""
        html = templates.page(
            "admin", template, title=TITLE, nonce=request.nonce, nav=NAV, here="/", csrf=request.csrf, **context
        )
        return Response.html(html, status)

    def _message(self, request: Request, message: str, status: int) -> Response:
        return Response.html(templates.message_page(TITLE, message, request.nonce, nav=NAV, here="/"), status)

    def _problem(self, request: Request, message: str) -> Response:
        return self._message(request, message, 409)

    def _queue(self, request: Request) -> Response:
        with self.client() as client:
            items = client.queue()
            head = client.tree_head()
            pinned = client.log_public_key is not None
        rows = [
            {
                "batch_id": i.batch_id,
                "state": i.state,
                "approvals": i.approvals,
                "approvals_required": i.approvals_required,
                "records": ", ".join(f"{k} {v}" for k, v in sorted(i.record_counts.items())),
                "period": f"{_when(i.period_start)} – {_when(i.period_end)}",
                "subject": i.subject,
                "seq": i.seq,
                "submitted": _when(i.submitted_at),
            }
            for i in items
        ]
        signed = _when(head.timestamp)
        return self._page(
            request, "queue.html", items=rows, head=head, signed=signed, pinned=pinned, kid=self.signer.kid
        )

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
        done = request.query.get("done") or ""
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
            {
                "passed": c.passed,
                "name": c.name,
                "detail": describe(c, m),
                "store": store_checks[c.name].passed if c.name in store_checks else None,
            }
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
        summary = (
            f"{_when(m.period_start)} – {_when(m.period_end)}",
            ", ".join(f"{k.value} {v}" for k, v in sorted(m.record_counts.items())),
            f"v{m.schema_version}",
            f"{m.payload_bytes} bytes, sha256 {m.payload_sha256[:16]}…",
        )
        return self._page(
            request,
            "batch.html",
            done=DONE.get(done, ""),
            m=m,
            batch_status=status,
            summary=summary,
            digest=digest,
            checks=checks,
            failed=m.failed_checks(),
            receipts=receipts,
            decisions=decisions,
            mismatch=mismatch,
            can_decide=status.state == "review" and digest is not None,
            withheld=WITHHELD_NOTE if withheld_from_stewards(m) else "",
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
