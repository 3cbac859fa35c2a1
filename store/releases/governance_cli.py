"""``consentry dataset``: data consumers request releases and register runs; stewards approve; the store builds.

These commands run where the store's data is (``--data``, ``--backend``), like ``store export``; every
step is signed by the person's own key file and logged in the store's audit log.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from store.cli import _keys, _open, _stewards, backend_options, require_store_extra

KEY_FILE_NAME = "consumer.key"
json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
release_policy_option = click.option(
    "--release-policy",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The store's release policy (consumers, k, retention); default: DATA/release-policy.toml.",
)
policy_option = click.option(
    "--policy",
    "policy_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The policy naming the stewards (as for store serve; default: the machine policy).",
)


def _emit(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


def _default_consumer_key() -> Path:
    from vault.paths import default_home

    return default_home() / "consumer" / KEY_FILE_NAME


def _signer(key_file: Path | None, what: str) -> Any:
    from protocol import SigningKey
    from protocol.errors import VaultError
    from protocol.keyfile import read_key_file

    if key_file is None and what == "consumer":
        key_file = _default_consumer_key()
    if key_file is None:
        from store.steward_access import default_key_file

        key_file = default_key_file()
    if not key_file.exists():
        hint = "consentry dataset keygen" if what == "consumer" else "consentry steward init"
        raise click.ClickException(f"no {what} key at {key_file}. Run: {hint}")
    try:
        return SigningKey(read_key_file(key_file, "ed25519"))
    except VaultError as exc:
        raise click.ClickException(str(exc)) from None


def _release_policy(data_dir: Path, path: Path | None) -> Any:
    from store.releases.consumers import POLICY_FILE_NAME, ReleasePolicyError, load_release_policy

    try:
        return load_release_policy(path or data_dir / POLICY_FILE_NAME)
    except ReleasePolicyError as exc:
        raise click.ClickException(str(exc)) from None


def _day(value: str) -> int:
    try:
        return int(datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC).timestamp())
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date like 2026-12-01 (UTC)") from None


def _guard(action: Any) -> Any:
    from store.releases.governance import ReleaseError

    try:
        return action()
    except ReleaseError as exc:
        raise click.ClickException(str(exc)) from None


def _show(status: Any) -> None:
    m = status.manifest
    click.echo(f"Release {status.release_id}: {status.state}")
    click.echo(f"  consumer {m['consumer']}, purpose {m['purpose']}: {m['description']}")
    click.echo(f"  period {m['period']['from']} to {m['period']['to']}; categories {', '.join(m['categories'])}")
    for category, counts in m["eligible"].items():
        click.echo(f"  eligible {category}: {counts['records']} records of {counts['subjects']} subjects")
    for reason, by_category in m["excluded"].items():
        for category, counts in by_category.items():
            click.echo(
                f"  excluded ({reason}) {category}: {counts['records']} records of {counts['subjects']} subjects"
            )
    k = m["privacy_checks"]["k_distinct_subjects"]
    click.echo(f"  k-check (at least {k['k']} subjects per category): passed")
    click.echo(f"  linkable columns: {', '.join(m['privacy_checks']['linkable_columns'])}")
    click.echo(
        f"  approvals {len(status.approved_by)} of {status.required}"
        + (f" ({', '.join(status.approved_by)})" if status.approved_by else "")
    )
    if status.rejected_by:
        click.echo(f"  rejected by {', '.join(status.rejected_by)}")
    click.echo(f"  manifest SHA-256 (what a decision signs): {status.manifest_sha256}")


def _status_json(status: Any) -> dict[str, Any]:
    return {
        "release_id": status.release_id,
        "state": status.state,
        "manifest": status.manifest,
        "manifest_sha256": status.manifest_sha256,
        "approved_by": list(status.approved_by),
        "rejected_by": list(status.rejected_by),
        "approvals_required": status.required,
    }


@click.group()
def dataset() -> None:
    """Governed dataset releases: request, approve, build, record runs (lineage)."""


@dataset.command()
@click.option("--key-file", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Where to write it.")
@click.option("--name", default="ml-team", show_default=True, help="Your name in the release policy.")
def keygen(key_file: Path | None, name: str) -> None:
    """Create your data consumer key (0600) and print the line the store operator adds to the release policy."""
    from protocol import SigningKey, b64encode
    from protocol.keyfile import write_key_file

    path = key_file or _default_consumer_key()
    if path.exists():
        raise click.ClickException(f"a consumer key already exists at {path}; it was left unchanged")
    signer = SigningKey.generate()
    write_key_file(path, "ed25519", signer.private_bytes())
    click.echo("Created your data consumer key. Ask the store operator to add under [consumers.keys]:")
    click.echo(f'{name} = "{b64encode(signer.public_bytes)}"')


@dataset.command()
@backend_options
@release_policy_option
@policy_option
@click.option("--key-file", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Your consumer key.")
@click.option("--purpose", required=True, help="The purpose; every consent receipt of a released record lists it.")
@click.option("--category", "categories", multiple=True, required=True, help="A category to release (repeat).")
@click.option("--from", "start", required=True, help="First day (UTC), e.g. 2026-11-01.")
@click.option("--to", "end", required=True, help="Day after the last (UTC), e.g. 2026-12-01.")
@click.option("--description", required=True, help="What the data is for, in a sentence.")
@json_option
def request(
    backend: str,
    data_dir: Path,
    dsn: str | None,
    schema: str,
    release_policy: Path | None,
    policy_file: Path | None,
    key_file: Path | None,
    purpose: str,
    categories: tuple[str, ...],
    start: str,
    end: str,
    description: str,
    as_json: bool,
) -> None:
    """Request a release (signed with your consumer key). Nothing is produced until stewards approve."""
    import uuid

    require_store_extra("pyarrow")
    from pydantic import ValidationError

    from protocol.categories import Category
    from store.releases.governance import request_release
    from store.releases.requests import sign_request

    policy = _release_policy(data_dir, release_policy)
    stewards = _stewards(policy_file)
    signer = _signer(key_file, "consumer")
    now = int(time.time())
    try:
        signed = sign_request(
            signer,
            release_id=uuid.uuid4().hex,
            purpose=purpose,
            categories=[Category(c) for c in categories],
            period_start=_day(start),
            period_end=_day(end),
            description=description,
            created=now,
        )
    except (ValidationError, ValueError) as exc:
        raise click.ClickException(f"the request is not valid: {exc}".splitlines()[0]) from None
    keys, _ = _keys(data_dir)
    storage = _open(backend, data_dir, dsn, schema)
    try:
        status = _guard(lambda: request_release(storage, keys, policy, stewards, signed, now=now))
    finally:
        storage.close()
    if as_json:
        _emit(_status_json(status))
        return
    _show(status)
    click.echo(f"Requested. Stewards decide with: consentry dataset approve {status.release_id}")


@dataset.command("list")
@backend_options
@policy_option
@json_option
def list_command(
    backend: str, data_dir: Path, dsn: str | None, schema: str, policy_file: Path | None, as_json: bool
) -> None:
    """Every release request and its state."""
    from store.releases.governance import list_releases

    stewards = _stewards(policy_file)
    storage = _open(backend, data_dir, dsn, schema)
    try:
        statuses = list_releases(storage, stewards)
    finally:
        storage.close()
    if as_json:
        _emit([_status_json(s) for s in statuses])
        return
    if not statuses:
        click.echo("No release requests.")
    for s in statuses:
        click.echo(f"{s.release_id}  {s.state:<9} {s.manifest['purpose']}  approvals {len(s.approved_by)}/{s.required}")


@dataset.command()
@backend_options
@policy_option
@json_option
@click.argument("release_id")
def show(
    backend: str, data_dir: Path, dsn: str | None, schema: str, policy_file: Path | None, as_json: bool, release_id: str
) -> None:
    """A release's manifest: counts, exclusions, privacy checks, decisions and the hash stewards sign."""
    from store.releases.governance import show_release

    stewards = _stewards(policy_file)
    storage = _open(backend, data_dir, dsn, schema)
    try:
        status = _guard(lambda: show_release(storage, stewards, release_id))
    finally:
        storage.close()
    if as_json:
        _emit(_status_json(status))
    else:
        _show(status)


def _decide(
    backend: str,
    data_dir: Path,
    dsn: str | None,
    schema: str,
    policy_file: Path | None,
    key_file: Path | None,
    release_id: str,
    decision: str,
    reason: str | None,
) -> Any:
    from store.releases.governance import decide_release, show_release, sign_decision
    from store.releases.requests import manifest_sha256

    stewards = _stewards(policy_file)
    signer = _signer(key_file, "steward")
    keys, _ = _keys(data_dir)
    storage = _open(backend, data_dir, dsn, schema)
    try:
        shown = _guard(lambda: show_release(storage, stewards, release_id))
        _show(shown)
        # Signed over the hash of the manifest as it was shown here, recomputed, never the stored hash as such.
        digest = manifest_sha256(shown.manifest)
        now = int(time.time())
        signed = sign_decision(signer, release_id, digest, decision, created=now, reason=reason)  # type: ignore[arg-type]
        return _guard(lambda: decide_release(storage, keys, stewards, signed, now=now))
    finally:
        storage.close()


@dataset.command()
@backend_options
@policy_option
@click.option("--key-file", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Your steward key.")
@click.argument("release_id")
def approve(
    backend: str,
    data_dir: Path,
    dsn: str | None,
    schema: str,
    policy_file: Path | None,
    key_file: Path | None,
    release_id: str,
) -> None:
    """Approve a release: sign the hash of the manifest shown (steward key)."""
    status = _decide(backend, data_dir, dsn, schema, policy_file, key_file, release_id, "approve", None)
    click.echo(f"Approved. Release {release_id} is {status.state} ({len(status.approved_by)} of {status.required}).")


@dataset.command()
@backend_options
@policy_option
@click.option("--key-file", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Your steward key.")
@click.option("--reason", required=True, help="Why (one rejection stops the release).")
@click.argument("release_id")
def reject(
    backend: str,
    data_dir: Path,
    dsn: str | None,
    schema: str,
    policy_file: Path | None,
    key_file: Path | None,
    reason: str,
    release_id: str,
) -> None:
    """Reject a release (steward key); one rejection stops it."""
    status = _decide(backend, data_dir, dsn, schema, policy_file, key_file, release_id, "reject", reason)
    click.echo(f"Rejected. Release {release_id} is {status.state}.")


@dataset.command()
@backend_options
@release_policy_option
@policy_option
@json_option
@click.argument("release_id")
def build(
    backend: str,
    data_dir: Path,
    dsn: str | None,
    schema: str,
    release_policy: Path | None,
    policy_file: Path | None,
    as_json: bool,
    release_id: str,
) -> None:
    """Build an approved release into DATA/releases/RELEASE_ID (operator)."""
    require_store_extra("pyarrow")
    from store.releases.governance import build_release
    from store.releases.governance_sink import ParquetReleaseSink

    policy = _release_policy(data_dir, release_policy)
    stewards = _stewards(policy_file)
    keys, _ = _keys(data_dir)
    storage = _open(backend, data_dir, dsn, schema)
    sink = ParquetReleaseSink(data_dir / "releases")
    try:
        result = _guard(
            lambda: build_release(
                storage, keys, stewards, release_id, sink, now=int(time.time()), retention_days=policy.retention_days
            )
        )
    finally:
        storage.close()
    summary = {"release_id": release_id, "rows": result.rows, "subjects": result.subjects, **result.written}
    if as_json:
        _emit(summary)
        return
    click.echo(
        f"Built release {release_id}: {result.rows} rows of {result.subjects} subjects in {result.written['folder']}."
    )
    click.echo(f"Record each run that reads it: consentry dataset use {release_id} --run NAME")


@dataset.command()
@backend_options
@release_policy_option
@click.option("--key-file", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Your consumer key.")
@click.option("--run", "run", required=True, help="The training or evaluation run's name (as in your tracker).")
@click.argument("release_id")
def use(
    backend: str,
    data_dir: Path,
    dsn: str | None,
    schema: str,
    release_policy: Path | None,
    key_file: Path | None,
    run: str,
    release_id: str,
) -> None:
    """Record that a run read a release (consumer key): erasures later name the runs they reach."""
    from pydantic import ValidationError

    from store.releases.governance import ReleaseError
    from store.releases.lineage import record_use, sign_use

    policy = _release_policy(data_dir, release_policy)
    signer = _signer(key_file, "consumer")
    now = int(time.time())
    try:
        signed = sign_use(signer, release_id, run, created=now)
    except ValidationError:
        raise click.ClickException(
            "a run name is 1-128 letters, digits and _ . : / - (and a release id 32 hex digits)"
        ) from None
    keys, _ = _keys(data_dir)
    storage = _open(backend, data_dir, dsn, schema)
    try:
        receipt = record_use(storage, keys, policy, signed, now=now)
    except ReleaseError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        storage.close()
    click.echo(f"Recorded run {run} on release {release_id} (audit log entry {receipt.leaf_index}).")


@dataset.command()
@backend_options
@release_policy_option
@json_option
def runs(
    backend: str, data_dir: Path, dsn: str | None, schema: str, release_policy: Path | None, as_json: bool
) -> None:
    """Every recorded run, and those that trained on data erased since (retrain or unlearn)."""
    from store.releases.lineage import list_runs
    from store.releases.requests import utc

    policy = _release_policy(data_dir, release_policy)
    storage = _open(backend, data_dir, dsn, schema)
    try:
        found = list_runs(storage, policy)
    finally:
        storage.close()
    if as_json:
        _emit([r.__dict__ for r in found])
        return
    if not found:
        click.echo("No runs recorded.")
    for r in found:
        mark = f"  ** {r.flag} (since {utc(r.flagged_at or 0)})" if r.flag else ""
        click.echo(f"{r.run}  release {r.release_id}  by {r.consumer}, recorded {utc(r.recorded)}{mark}")
