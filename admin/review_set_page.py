"""The review page's review sets (routes under /sets and /set/<id>): a day's pending batches shown with
their figures, failed checks first, deviating batches, a random sample with every check's detail, and
one approval (or one rejection, with its reason) signed on this machine over the root of the manifest
hashes shown.

The page signs only the root it recomputed from the manifests it showed, and only if the set the store
returns when the steward clicks still has that root. The sample is drawn here with the operating
system's randomness after the set was frozen, so no agent can know which batches will be looked at.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from admin.review_set_cmd import sample
from kit.web.html import esc, flash, state_badge, table
from kit.web.security import CSRF_FIELD
from kit.web.server import Request, Response
from protocol.review_set_api import CountSummary, deviations, figures
from protocol.timeutil import utc_text
from store.check_detail import describe

Render = Callable[[Request, str, int], Response]
DONE = {
    "approve": "Your approval of the set was signed on this machine; each batch's approval is its inclusion proof.",
    "reject": "Your rejection of the set was signed on this machine; every open batch in it is stopped.",
}


def _quantiles(s: CountSummary | None) -> str:
    if s is None:
        return "no batches"
    return f"{s.batches} batches, {s.total} records: {s.minimum} / {s.q1:g} · {s.median:g} · {s.q3:g} / {s.maximum}"


def render_set(view: Any, root: str, picked: list[str], csrf: str, done: str | None = None) -> str:
    """The body of one review set's page (``root`` is the one recomputed from the manifests shown)."""
    manifests = [e.manifest for e in view.entries if e.manifest is not None]
    now = figures(manifests)
    deviant = deviations(manifests, now)
    failed = [m for m in manifests if m.failed_checks()]
    parts = [flash(DONE[done]) if done in DONE else ""]
    parts.append(
        f'<section id="set-summary"><h2>Review set <span class="mono">{esc(view.set_id)}</span></h2>'
        f"<p>{len(view.entries)} batches of {esc(view.key.day)} (UTC), frozen {esc(utc_text(view.created))}, "
        f"notices {esc(', '.join(view.key.notices))}, "
        f'consent terms <span class="mono">{esc(view.key.terms_sha256[:16])}…</span>. '
        f"{len(view.approvals)} set approval(s) so far; each batch needs {view.approvals_required}.</p>"
        + _rejections(view)
    )
    categories = sorted(now.per_category, key=str) if now else []
    previous = view.previous.per_category if view.previous else {}
    parts.append(
        "<h3>Records per batch (min / quartiles / max)</h3>"
        + table(
            ("Category", "This set", "Previous day"),
            [
                (str(c), _quantiles(now.per_category[c] if now else None), _quantiles(previous.get(c)))
                for c in categories
            ],
        )
        + "</section>"
    )
    parts.append(
        '<section id="failed-checks"><h2>Failed checks</h2>'
        + (
            table(
                ("Batch", "Check", "Detail"),
                [(m.batch_id, c.name, describe(c, m)) for m in failed for c in m.privacy_checks if not c.passed],
            )
            if failed
            else f"<p>No failed check in {len(manifests)} batches.</p>"
        )
        + '</section><section id="deviating"><h2>Deviating batches</h2>'
        + (
            table(("Batch", "Why"), [(b, "; ".join(r)) for b, r in sorted(deviant.items())])
            if deviant
            else "<p>No batch outside the set's far-out fences (Q1 − 3 IQR … Q3 + 3 IQR).</p>"
        )
        + "</section>"
    )
    by_id = {m.batch_id: m for m in manifests}
    sampled = []
    for batch_id in picked:
        m = by_id[batch_id]
        counts = ", ".join(f"{c} {n}" for c, n in sorted(m.record_counts.items(), key=lambda kv: str(kv[0])))
        checks = table(("Check", "Detail"), [(c.name, describe(c, m)) for c in m.privacy_checks])
        sampled.append(
            f'<h3 class="mono">{esc(batch_id)}</h3><p>Subject <span class="mono">{esc(m.subject)}</span> '
            f"(a pseudonym); records {esc(counts)}.</p>{checks}"
        )
    parts.append(
        f'<section id="sample"><h2>Sampled for a closer look ({len(picked)})</h2>'
        "<p>Drawn on this machine at random after the set was frozen.</p>" + "".join(sampled) + "</section>"
    )
    rows = [
        (
            str(e.leaf_index),
            f'<span class="mono">{esc(e.batch_id)}</span>',
            state_badge(e.state),
            esc(e.manifest.subject if e.manifest else "-"),
            esc(str(sum(e.manifest.record_counts.values())) if e.manifest else "-"),
        )
        for e in view.entries
    ]
    parts.append(
        '<section id="members"><h2>Every batch in the set</h2>'
        + table(("#", "Batch", "State", "Subject", "Records"), rows, raw=True)
        + "</section>"
    )
    parts.append(
        '<section id="set-decision"><h2>Your decision</h2>'
        f"<p>Root over the {len(view.entries)} manifest hashes shown (recomputed here): "
        f'<span class="mono" id="set-root">{esc(root)}</span></p>'
        f'<form method="post" action="/set/{esc(view.set_id)}/approve" id="approve-set-form">'
        f'<input type="hidden" name="{CSRF_FIELD}" value="{esc(csrf)}">'
        f'<input type="hidden" name="root" value="{esc(root)}">'
        '<button type="submit" class="primary" id="approve-set">Approve every batch shown</button></form>'
        "<p>To stop one batch, reject it on its own page first; a set approval skips it.</p>"
        f'<form method="post" action="/set/{esc(view.set_id)}/reject" id="reject-set-form">'
        f'<input type="hidden" name="{CSRF_FIELD}" value="{esc(csrf)}">'
        f'<input type="hidden" name="root" value="{esc(root)}">'
        '<label for="set-reason">Reason for rejecting every batch shown (signed with the set and shown to each '
        "employee; the audit log keeps only a digest of it):</label>"
        '<input type="text" id="set-reason" name="reason" maxlength="500" required>'
        '<button type="submit" class="danger" id="reject-set">Reject every batch shown</button></form></section>'
    )
    return "".join(parts)


def _rejections(view: Any) -> str:
    if not view.rejections:
        return ""
    rows = [(r.steward_key[:12] + "…", r.reason, utc_text(r.created)) for r in view.rejections]
    return "<h3>Rejections of this set</h3>" + table(("Steward key", "Reason", "When (UTC)"), rows)


class ReviewSetPages:
    """/sets (groups waiting), /sets/open (freeze one), /set/<id> (show), /set/<id>/approve and /reject (sign)."""

    def __init__(self, client: Callable[[], Any], signer: Any, render: Render, clock: Callable[[], float]) -> None:
        self.client = client
        self.signer = signer
        self.render = render
        self.clock = clock

    def handle(self, request: Request, parts: list[str]) -> Response | None:
        if parts == ["sets"] and request.method == "GET":
            return self._groups(request)
        if parts == ["sets", "open"] and request.method == "POST":
            return self._open(request)
        if len(parts) >= 2 and parts[0] == "set" and len(parts[1]) == 32 and parts[1].isalnum():
            if request.method == "GET" and len(parts) == 2:
                return self._show(request, parts[1])
            if request.method == "POST" and parts[2:] == ["approve"]:
                return self._approve(request, parts[1])
            if request.method == "POST" and parts[2:] == ["reject"]:
                return self._reject(request, parts[1])
        return None

    def _groups(self, request: Request) -> Response:
        with self.client() as client:
            groups = client.review_set_groups()
        rows = [
            (
                esc(g.key.day),
                esc(", ".join(g.key.notices)),
                f'<span class="mono">{esc(g.key.terms_sha256[:16])}…</span>',
                str(g.pending),
                f'<form method="post" action="/sets/open" class="inline">'
                f'<input type="hidden" name="{CSRF_FIELD}" value="{esc(request.csrf)}">'
                f'<input type="hidden" name="key" value="{esc(g.key.model_dump_json())}">'
                '<button type="submit">Review as one set</button></form>',
            )
            for g in groups
        ]
        body = "<section><h2>Review sets: pending batches by day, notices and terms</h2>" + (
            table(("Day (UTC)", "Notices", "Consent terms", "Batches", ""), rows, raw=True)
            if rows
            else "<p>No batches are waiting for review.</p>"
        )
        return self.render(request, body + "</section>", 200)

    def _open(self, request: Request) -> Response:
        from protocol.review_set_api import GroupKey

        try:
            key = GroupKey.model_validate_json(request.field("key") or "")
        except ValueError:
            return self.render(request, f"<section>{flash('That group is not valid.', bad=True)}</section>", 400)
        with self.client() as client:
            view = client.create_review_set(key)
        return Response.redirect(f"/set/{view.set_id}")

    def _show(self, request: Request, set_id: str) -> Response:
        from store.review_sets import recomputed_members

        with self.client() as client:
            view = client.review_set(set_id)
        try:
            root = _root(recomputed_members(view))
        except ValueError as exc:
            return self.render(request, f"<section>{flash(str(exc), bad=True)}</section>", 409)
        open_ids = [e.batch_id for e in view.entries if e.manifest is not None and e.state == "review"]
        body = render_set(view, root, sample(open_ids), request.csrf, request.query.get("done"))
        return self.render(request, body, 200)

    def _approve(self, request: Request, set_id: str) -> Response:
        from protocol.review_set import sign_set_approval

        with self.client() as client:
            members = self._shown(client, set_id, request.field("root") or "")
            if isinstance(members, str):
                return self._refuse(request, members)
            client.approve_review_set(sign_set_approval(self.signer, set_id, members, created=int(self.clock())))
        return Response.redirect(f"/set/{set_id}", done="approve")

    def _reject(self, request: Request, set_id: str) -> Response:
        from protocol.review_set import sign_set_rejection

        reason = (request.field("reason") or "").strip()
        if not reason:
            return self._refuse(request, "A rejection needs a reason; nothing was signed.")
        if len(reason) > 500:
            return self._refuse(request, "A reason has at most 500 characters; nothing was signed.")
        with self.client() as client:
            members = self._shown(client, set_id, request.field("root") or "")
            if isinstance(members, str):
                return self._refuse(request, members)
            rejection = sign_set_rejection(self.signer, set_id, members, reason, created=int(self.clock()))
            client.reject_review_set(rejection)
        return Response.redirect(f"/set/{set_id}", done="reject")

    @staticmethod
    def _shown(client: Any, set_id: str, shown_root: str) -> list[Any] | str:
        """The members to sign, recomputed from the set the store returns now; a refusal if it is not the one shown."""
        from store.review_sets import recomputed_members

        view = client.review_set(set_id)
        try:
            members = recomputed_members(view)
        except ValueError as exc:
            return str(exc)
        if _root(members) != shown_root:
            return "The set changed since this page showed it; nothing was signed. Review it again."
        return members

    def _refuse(self, request: Request, message: str) -> Response:
        return self.render(request, f"<section>{flash(message, bad=True)}</section>", 409)


def _root(members: list[Any]) -> str:
    from protocol.review_set import set_root

    return set_root(members)
