"""``consentry steward set``: review a day's pending batches as one set and approve them in one act.

``set list`` shows the groups waiting (day, notice versions, consent-terms digest); ``set show`` freezes a
group into a set (or shows a set again) with its figures, the batches that deviate, a random sample and
the root to approve; ``set approve SET_ID --root ROOT`` signs that root, and only if the set the store
returns still has it; ``set reject SET_ID --root ROOT --reason TEXT`` signs the rejection of every batch
shown the same way, the reason included. The sample is drawn on this machine from the operating system's randomness after
the set is frozen, so no agent (nor the store) can know which batches will be looked at closely.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

import click

from admin.access import key_file_option, load_signer, store_url_option

SAMPLE_SIZE = 5


def sample(batch_ids: list[str], k: int = SAMPLE_SIZE) -> list[str]:
    """``k`` of ``batch_ids`` drawn with the OS's randomness (never a seed an agent could predict)."""
    return secrets.SystemRandom().sample(batch_ids, min(k, len(batch_ids)))


def set_lines(view: Any, picked: list[str]) -> list[str]:
    """The set as plain lines: what it groups, figures against the previous day, deviations, the sample."""
    from protocol.review_set import set_root
    from protocol.review_set_api import deviations, figures
    from protocol.timeutil import utc_text
    from store.check_detail import describe
    from store.review_sets import recomputed_members

    members = recomputed_members(view)  # ValueError: the store's list and manifests disagree
    manifests = [e.manifest for e in view.entries if e.manifest is not None]
    now = figures(manifests)
    lines = [
        f"Review set {view.set_id}: {len(view.entries)} batches of {view.key.day} (UTC), frozen {utc_text(view.created)}, "
        f"notices {', '.join(view.key.notices)}, consent terms {view.key.terms_sha256[:16]}",
        f"Approvals of this set so far: {len(view.approvals)} (each batch needs {view.approvals_required}).",
        *(
            f"Rejected by steward key {r.steward_key[:12]}… at {utc_text(r.created)}: {r.reason}"
            for r in view.rejections
        ),
        "Records per batch, this set against the previous day (min / quartiles / max):",
    ]
    for category, s in (now.per_category if now else {}).items():
        before = view.previous.per_category.get(category) if view.previous else None
        was = (
            f"previous day {before.batches} batches: {before.minimum} / {before.q1:g} {before.median:g} "
            f"{before.q3:g} / {before.maximum}"
            if before
            else "previous day: no batches"
        )
        lines.append(
            f"  {category}: {s.total} records in {s.batches} batches: {s.minimum} / {s.q1:g} {s.median:g} {s.q3:g} "
            f"/ {s.maximum}; {was}"
        )
    deviant = deviations(manifests, now)
    failed = [m.batch_id for m in manifests if m.failed_checks()]
    lines.append(f"Failed checks: {len(failed)} batches" + (": " + ", ".join(failed) if failed else "."))
    lines.append(f"Deviating batches: {len(deviant)}" + ("" if deviant else "."))
    for batch_id, reasons in sorted(deviant.items(), key=lambda kv: kv[0] not in failed):
        lines.append(f"  {batch_id}: {'; '.join(reasons)}")
    by_id = {m.batch_id: m for m in manifests}
    lines.append(f"Sampled for a closer look ({len(picked)}, drawn on this machine at random):")
    for batch_id in picked:
        m = by_id[batch_id]
        counts = ", ".join(f"{c}={n}" for c, n in sorted(m.record_counts.items(), key=lambda kv: str(kv[0])))
        lines.append(f"  {batch_id} (subject {m.subject}): {counts}")
        for c in m.privacy_checks:
            lines.append(f"    check {c.name}: {describe(c, m)}")
    not_open = [e.batch_id for e in view.entries if e.state != "review"]
    if not_open:
        lines.append(f"Not open for approval any more: {len(not_open)} batches (decided, erased or withdrawn).")
    lines.append(f"Root over the {len(members)} manifest hashes shown (recomputed here): {set_root(members)}")
    lines.append(
        f"To approve every batch shown: consentry steward set approve {view.set_id} --root {set_root(members)}"
    )
    lines.append(
        f"To reject every batch shown: consentry steward set reject {view.set_id} --root {set_root(members)} "
        '--reason "…"'
    )
    return lines


def _client(store_url: str | None, key_file: Path | None) -> Any:
    from admin.steward_cmd import _client as client

    return client(store_url, key_file)


@click.group("set")
def review_set() -> None:
    """Review sets: a day's pending batches under the same notices and terms, approved in one act."""


@review_set.command("list")
@key_file_option
@store_url_option
def list_groups(key_file: Path | None, store_url: str | None) -> None:
    """List the groups of pending batches (day, notice versions, consent terms)."""
    from admin.steward_cmd import _call

    with _client(store_url, key_file) as client:
        groups = _call(client.review_set_groups)
    if not groups:
        click.echo("No batches are waiting for review.")
    for g in groups:
        click.echo(
            f"{g.key.day}  {g.pending:5} batches  notices {', '.join(g.key.notices)}  terms {g.key.terms_sha256}"
        )


@review_set.command("show")
@click.argument("day_or_set_id")
@click.option("--terms", help="The consent-terms digest (from set list) when a day has several groups.")
@key_file_option
@store_url_option
def show(day_or_set_id: str, terms: str | None, key_file: Path | None, store_url: str | None) -> None:
    """Freeze a day's group into a review set (DAY as YYYY-MM-DD), or show a set again (SET_ID)."""
    from admin.steward_cmd import _call

    with _client(store_url, key_file) as client:
        if len(day_or_set_id) == 32:
            view = _call(lambda: client.review_set(day_or_set_id))
        else:
            groups = [
                g
                for g in _call(client.review_set_groups)
                if g.key.day == day_or_set_id and (terms is None or g.key.terms_sha256.startswith(terms))
            ]
            if len(groups) != 1:
                raise click.ClickException(
                    f"{len(groups)} groups of pending batches match {day_or_set_id}"
                    + (terms and f" and terms {terms}" or "")
                    + ". See: consentry steward set list (and pass --terms)"
                )
            view = _call(lambda: client.create_review_set(groups[0].key))
    ids = [e.batch_id for e in view.entries if e.manifest is not None and e.state == "review"]
    try:
        lines = set_lines(view, sample(ids))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    for line in lines:
        click.echo(line)


def _shown_members(client: Any, set_id: str, root: str) -> list[Any]:
    """The members to sign: recomputed from the set the store returns now, only if it has the root shown."""
    from admin.steward_cmd import _call
    from protocol.review_set import set_root
    from store.review_sets import recomputed_members

    view = _call(lambda: client.review_set(set_id))
    try:
        members = recomputed_members(view)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if set_root(members) != root:
        raise click.ClickException(
            "the set is not the one shown (its root differs); nothing was signed. "
            f"Show it again: consentry steward set show {set_id}"
        )
    return members


root_option = click.option(
    "--root", required=True, help="The root 'set show' printed: you decide on exactly what it showed."
)


@review_set.command("approve")
@click.argument("set_id")
@root_option
@key_file_option
@store_url_option
def approve(set_id: str, root: str, key_file: Path | None, store_url: str | None) -> None:
    """Sign one approval of every batch in the set shown (each batch's approval is its inclusion proof)."""
    from admin.steward_cmd import _call
    from protocol.review_set import sign_set_approval

    with _client(store_url, key_file) as client:
        members = _shown_members(client, set_id, root)
        approval = sign_set_approval(load_signer(key_file), set_id, members, created=int(time.time()))
        outcome = _call(lambda: client.approve_review_set(approval))
    click.echo(
        f"Signed the set's root: your approval now counts for {outcome.counted} batches; "
        f"{outcome.approved} have all the approvals they need."
    )
    for batch_id, why in sorted(outcome.skipped.items()):
        click.echo(f"  not approved: {batch_id}: {why}")


@review_set.command("reject")
@click.argument("set_id")
@root_option
@click.option(
    "--reason",
    required=True,
    help="Why (signed with the set; each employee's agent shows it; the audit log keeps only a digest).",
)
@key_file_option
@store_url_option
def reject(set_id: str, root: str, reason: str, key_file: Path | None, store_url: str | None) -> None:
    """Sign one rejection of every batch in the set shown; one steward's rejection stops a batch."""
    from admin.steward_cmd import _call
    from protocol.review_set import sign_set_rejection

    if not reason.strip():
        raise click.BadParameter("a rejection needs a reason; nothing was signed", param_hint="--reason")
    if len(reason.strip()) > 500:
        raise click.BadParameter("at most 500 characters; nothing was signed", param_hint="--reason")
    with _client(store_url, key_file) as client:
        members = _shown_members(client, set_id, root)
        rejection = sign_set_rejection(load_signer(key_file), set_id, members, reason, created=int(time.time()))
        outcome = _call(lambda: client.reject_review_set(rejection))
    click.echo(f"Signed the set's rejection: {outcome.rejected} batches are now rejected.")
    for batch_id, why in sorted(outcome.skipped.items()):
        click.echo(f"  not rejected: {batch_id}: {why}")
