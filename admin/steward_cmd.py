"""``consentry steward``: data stewards create their key, list the review queue, approve or reject batches."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from admin.access import (
    WITHHELD_NOTE,
    default_key_file,
    key_file_option,
    load_signer,
    resolve_store_url,
    shown_manifest_digest,
    steward_json,
    store_tls_ca,
    store_url_option,
)
from admin.review import review as review_command
from admin.review_set_cmd import review_set as review_set_command

F = TypeVar("F", bound=Callable[..., Any])


def _emit(value: Any) -> None:
    """Print ``value`` (a model, a list of models or plain data) as JSON, every moment as UTC ISO text."""
    from protocol.timeutil import json_with_utc_times

    click.echo(json.dumps(json_with_utc_times(value), indent=2, sort_keys=True, default=str))


json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")


def batch_options(*extra: Callable[[Any], Any]) -> Callable[[F], F]:
    """BATCH_ID, then ``extra``, --key-file, --store-url and --json: what each command on one batch takes."""

    def apply(func: F) -> F:
        func = json_option(func)
        func = store_url_option(func)
        func = key_file_option(func)
        for option in reversed(extra):
            func = option(func)
        return click.argument("batch_id")(func)

    return apply


def _client(store_url: str | None, key_file: Path | None) -> Any:
    from kit.store_client import StoreClient

    url = resolve_store_url(store_url)
    signer = load_signer(key_file)
    return _call(lambda: StoreClient(url, signer=signer, role="steward", tls_ca=store_tls_ca(url)))


UNTRUSTED_NEXT = (
    "Nothing was signed. Check [store] tls_ca in the machine policy, or ask IT for the store's certificate."
)


def _call(action: Any) -> Any:
    """Run a store call, turning store errors into messages with a next step."""
    import httpx

    from protocol.store_errors import StoreError, UntrustedStore

    try:
        return action()
    except UntrustedStore as exc:  # no request left this machine: the store is not the one pinned
        raise click.ClickException(f"{exc.message}. {UNTRUSTED_NEXT}") from None
    except StoreError as exc:
        hints = {
            "not_a_steward": "Ask the store operator to add your public key (consentry steward init prints it).",
            "unknown_batch": "Check the id with: consentry steward queue",
            "already_decided": "A steward decides once on each batch (and each review set).",
            "auth_stale": "Your clock is off; sync it (timedatectl) and retry.",
        }
        raise click.ClickException(
            f"the store refused: {exc.code}: {exc.message}. {hints.get(exc.code, '')}".strip()
        ) from None
    except httpx.TransportError as exc:
        raise click.ClickException(
            f"cannot reach the store ({type(exc).__name__}). Check --store-url and the network."
        ) from None


@click.group()
def steward() -> None:
    """Data stewards: review batch manifests (never records) and approve or reject them."""


@steward.command()
@key_file_option
@click.option("--name", default=None, help="Your name as it should appear in the policy's [stewards.keys].")
@json_option
def init(key_file: Path | None, name: str | None, as_json: bool) -> None:
    """Create your steward key pair (private key 0600 in your own folder) and print the public key."""
    from protocol import SigningKey, b64encode
    from protocol.keyfile import write_key_file

    path = key_file or default_key_file()
    if path.exists():
        raise click.ClickException(
            f"a steward key already exists at {path}; it was left unchanged. Use --key-file for another one."
        )
    signer = SigningKey.generate()
    write_key_file(path, "ed25519", signer.private_bytes())
    public = b64encode(signer.public_bytes)
    label = name or os.environ.get("USER", "steward")
    if as_json:
        _emit({"public_key": public, "kid": signer.kid, "name": label})
        return
    click.echo("Created your steward key. Ask IT to add this line under [stewards.keys] in the store's policy:")
    click.echo(f'{label} = "{public}"')


@steward.command()
@key_file_option
@store_url_option
@json_option
def queue(key_file: Path | None, store_url: str | None, as_json: bool) -> None:
    """List batches waiting for review or upload."""
    from protocol.timeutil import utc_text

    with _client(store_url, key_file) as client:
        items = _call(client.queue)
    if as_json:
        _emit(items)
        return
    if not items:
        click.echo("No batches are waiting for review.")
        return
    for i in items:
        counts = ", ".join(f"{k}={v}" for k, v in sorted(i.record_counts.items()))
        click.echo(
            f"{i.batch_id}  {i.state:9}  {i.approvals}/{i.approvals_required} approvals  "
            f"period from {utc_text(i.period_start)}  submitted {utc_text(i.submitted_at)}  {counts}"
        )


@steward.command()
@batch_options()
def show(batch_id: str, key_file: Path | None, store_url: str | None, as_json: bool) -> None:
    """Show a batch's manifest and privacy checks (never its records).

    Also the manifest hash recomputed here (what approve signs). A version-1 manifest's device key id is
    withheld (--json names it in "withheld"); the hash covers it.
    """
    from protocol import manifest_digest
    from protocol.manifest import withheld_from_stewards
    from protocol.timeutil import utc_text

    with _client(store_url, key_file) as client:
        review = _call(lambda: client.review(batch_id))
    if as_json:
        _emit(steward_json(review))
        return
    m = review.manifest
    click.echo(
        f"Batch {m.batch_id} (subject {m.subject}, seq {m.seq}): {review.status.state}, "
        f"{review.status.approvals}/{review.status.approvals_required} approvals"
    )
    digest = manifest_digest(m)
    if digest == review.status.manifest_sha256:
        click.echo(f"Manifest SHA-256 (recomputed here from the manifest shown; what you sign): {digest}")
    else:
        click.echo(
            f"Manifest SHA-256 recomputed here: {digest}; the store names {review.status.manifest_sha256}. "
            "They differ: approve and reject will refuse. Tell the store operator and the other data stewards."
        )
    if withheld_from_stewards(m):
        click.echo(f"Manifest version {m.v}: {WITHHELD_NOTE}.")

    click.echo(f"Period: {utc_text(m.period_start)} to {utc_text(m.period_end)} (UTC); schema v{m.schema_version}")
    click.echo("Records: " + ", ".join(f"{k}={v}" for k, v in sorted(m.record_counts.items())))
    for r in m.consent_receipts:
        click.echo(
            f"Consent: {r.category} under notice {r.notice_id} v{r.notice_version} ({r.lawful_basis}), "
            f"granted {utc_text(r.granted_at)}"
        )
    from store.check_detail import describe

    for c in review.privacy_checks:
        click.echo(f"Check {c.name}: {describe(c, m)}")
    for reason in review.status.rejection_reasons:  # single rejections and a review set's alike
        click.echo(f"Rejected: {reason}")


def _decide(
    batch_id: str,
    decision: str,
    reason: str | None,
    key_file: Path | None,
    store_url: str | None,
    as_json: bool,
) -> None:
    from protocol import sign_approval

    with _client(store_url, key_file) as client:
        review = _call(lambda: client.review(batch_id))
        try:
            digest = shown_manifest_digest(batch_id, review)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        approval = sign_approval(
            load_signer(key_file),
            batch_id,
            digest,
            decision,  # type: ignore[arg-type]
            created=int(time.time()),
            reason=reason,
        )
        status = _call(lambda: client.decide(approval))
    if as_json:
        _emit(status)
        return
    click.echo(
        f"Recorded your {decision} of {batch_id}: now {status.state} "
        f"({status.approvals}/{status.approvals_required} approvals)."
    )


@steward.command()
@batch_options()
def approve(batch_id: str, key_file: Path | None, store_url: str | None, as_json: bool) -> None:
    """Sign your approval of a batch's manifest."""
    _decide(batch_id, "approve", None, key_file, store_url, as_json)


@steward.command()
@batch_options(
    click.option("--reason", required=True, help="Why (recorded in the store's audit log and shown to the employee).")
)
def reject(batch_id: str, reason: str, key_file: Path | None, store_url: str | None, as_json: bool) -> None:
    """Sign your rejection of a batch; one steward's rejection stops it."""
    _decide(batch_id, "reject", reason, key_file, store_url, as_json)


steward.add_command(review_command)  # the review page lives in its own module
steward.add_command(review_set_command)  # review sets live in their own module (admin.review_set_cmd)
