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
from kit.web.server import Request, Response
from protocol.review_set_api import CountSummary, deviations, figures
from protocol.timeutil import utc_text
from store.check_detail import describe

Page = Callable[..., Response]  # (request, template, status, **context) -> the page: StewardPage._page
DONE = {
    "approve": "Your approval of the set was signed on this machine; each batch's approval is its inclusion proof.",
    "reject": "Your rejection of the set was signed on this machine; every open batch in it is stopped.",
}


def _quantiles(s: CountSummary | None) -> str:
    if s is None:
        return "no batches"
    return f"{s.batches} batches, {s.total} records: {s.minimum} / {s.q1:g} · {s.median:g} · {s.q3:g} / {s.maximum}"


def set_context(view: Any, root: str, picked: list[str], done: str | None = None) -> dict[str, Any]:
    """What admin/templates/review_set.html shows of one set (``root`` is the one recomputed from the manifests)."""
    manifests = [e.manifest for e in view.entries if e.manifest is not None]
    now = figures(manifests)
    previous = view.previous.per_category if view.previous else {}
    by_id = {m.batch_id: m for m in manifests}
    return {
        "done": DONE.get(done or "", ""),
        "set_id": view.set_id,
        "day": view.key.day,
        "frozen": utc_text(view.created),
        "notices": ", ".join(view.key.notices),
        "terms": view.key.terms_sha256[:16],
        "approvals": len(view.approvals),
        "approvals_required": view.approvals_required,
        "rejections": [(r.steward_key[:12] + "…", r.reason, utc_text(r.created)) for r in view.rejections],
        "per_category": [
            (str(c), _quantiles(now.per_category[c] if now else None), _quantiles(previous.get(c)))
            for c in (sorted(now.per_category, key=str) if now else [])
        ],
        "shown": len(manifests),
        "failed": [(m.batch_id, c.name, describe(c, m)) for m in manifests for c in m.privacy_checks if not c.passed],
        "deviating": [(b, "; ".join(r)) for b, r in sorted(deviations(manifests, now).items())],
        "sample": [_sampled(by_id[batch_id]) for batch_id in picked],
        "members": [
            {
                "leaf_index": e.leaf_index,
                "batch_id": e.batch_id,
                "state": e.state,
                "subject": e.manifest.subject if e.manifest else "-",
                "records": sum(e.manifest.record_counts.values()) if e.manifest else "-",
            }
            for e in view.entries
        ],
        "root": root,
    }


def _sampled(m: Any) -> dict[str, Any]:
    """One sampled batch: its pseudonym, its counts and every check with its detail."""
    counts = ", ".join(f"{c} {n}" for c, n in sorted(m.record_counts.items(), key=lambda kv: str(kv[0])))
    checks = [(c.name, describe(c, m)) for c in m.privacy_checks]
    return {"batch_id": m.batch_id, "subject": m.subject, "records": counts, "checks": checks}


class ReviewSetPages:
    """/sets (groups waiting), /sets/open (freeze one), /set/<id> (show), /set/<id>/approve and /reject (sign)."""

    def __init__(self, client: Callable[[], Any], signer: Any, page: Page, clock: Callable[[], float]) -> None:
        self.client = client
        self.signer = signer
        self.page = page
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
            {
                "day": g.key.day,
                "notices": ", ".join(g.key.notices),
                "terms": g.key.terms_sha256[:16],
                "pending": g.pending,
                "key": g.key.model_dump_json(),
            }
            for g in groups
        ]
        return self.page(request, "review_sets.html", 200, groups=rows)

    def _open(self, request: Request) -> Response:
        from protocol.review_set_api import GroupKey

        try:
            key = GroupKey.model_validate_json(request.field("key") or "")
        except ValueError:
            return self._refuse(request, "That group is not valid.", 400)
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
            return self._refuse(request, str(exc))
        open_ids = [e.batch_id for e in view.entries if e.manifest is not None and e.state == "review"]
        context = set_context(view, root, sample(open_ids), request.query.get("done"))
        return self.page(request, "review_set.html", 200, **context)

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

    def _refuse(self, request: Request, message: str, status: int = 409) -> Response:
        """A refusal in the layout: the kit's message page, a red notice (nothing was signed or opened)."""
        context = {"message": message, "bad": True, "plain": False, "refusal": False}
        return self.page(request, "kit/message.html", status, **context)


def _root(members: list[Any]) -> str:
    from protocol.review_set import set_root

    return set_root(members)
