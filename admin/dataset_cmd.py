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

from admin.store_cmd import _keys, _open, _stewards, backend_options, require_store_extra

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
    from protocol.errors import ConsentryError
    from protocol.keyfile import read_key_file

    if key_file is None and what == "consumer":
        key_file = _default_consumer_key()
    if key_file is None:
        from admin.access import default_key_file

        key_file = default_key_file()
    if not key_file.exists():
        hint = "consentry dataset keygen" if what == "consumer" else "consentry steward init"
        raise click.ClickException(f"no {what} key at {key_file}. Run: {hint}")
    try:
        return SigningKey(read_key_file(key_file, "ed25519"))
    except ConsentryError as exc:
        raise click.ClickException(str(exc)) from None


def _release_policy(data_dir: Path, path: Path | None) -> Any:
    from store.releases.consumers import POLICY_FILE_NAME, ReleasePolicyError, load_release_policy

    try:
        return load_release_policy(path or data_dir / POLICY_FILE_NAME)
    except ReleasePolicyError as exc:
        raise click.ClickException(str(exc)) from None


def _warehouse(data_dir: Path, path: Path | None) -> Any:
    """The release policy's ``[warehouse]`` (None: the local folder); a command that needs no other part of
    the policy still opens the table where it is, and runs without a policy file as before."""
    from store.releases.consumers import ReleasePolicyError
    from store.releases.governance_sink import release_table_policy

    try:
        return release_table_policy(data_dir, path).warehouse
    except ReleasePolicyError as exc:
        raise click.ClickException(str(exc)) from None


def _day(value: str) -> int:
    try:
        return int(datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC).timestamp())
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date like 2026-12-01 (UTC)") from None


def _open_table(settings: Any, data_dir: Path, backend: str, dsn: str | None, schema: str, **where: Any) -> Any:
    """The release table, or one line saying why not: no pyiceberg, a warehouse that does not answer, or a
    database put back from a backup older than the last erasure. ``where``: ``grace`` and ``warehouse``."""
    from protocol.errors import KeyUnavailable
    from store.releases.governance_sink import open_release_table
    from store.releases.warehouse import WarehouseError

    try:
        table = open_release_table(settings, data_dir, backend, dsn, schema, **where)
    except (KeyUnavailable, WarehouseError) as exc:
        raise click.ClickException(f"{exc}\nNothing was changed.") from None
    if table is None:  # callers ran require_store_extra("pyiceberg") first; this keeps the type honest
        raise click.ClickException("the release table needs pyiceberg: pip install 'consentry[store,release]'")
    return table


def _guard(action: Any) -> Any:
    from store.releases.governance import ReleaseError

    try:
        return action()
    except ReleaseError as exc:
        raise click.ClickException(str(exc)) from None


def _show(status: Any) -> None:
    from protocol.timeutil import utc_text

    m = status.manifest
    click.echo(f"Release {status.release_id}: {status.state}")
    click.echo(f"  consumer {m['consumer']}, purpose {m['purpose']}: {m['description']}")
    period = f"{utc_text(int(m['period']['from_epoch']))} to {utc_text(int(m['period']['to_epoch']))}"
    click.echo(f"  period {period}; categories {', '.join(m['categories'])}")
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
        f"  approvals {len(status.approved_by)} of {status.approvals_required}"
        + (f" ({', '.join(status.approved_by)})" if status.approved_by else "")
    )
    if status.rejected_by:
        click.echo(f"  rejected by {', '.join(status.rejected_by)}")
    click.echo(f"  manifest SHA-256 (what a decision signs): {status.manifest_sha256}")


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
    from store.releases.governance_api import view
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
        status = view(_guard(lambda: request_release(storage, keys, policy, stewards, signed, now=now)))
    finally:
        storage.close()
    if as_json:
        _emit(_view_json(status))
        return
    _show(status)
    click.echo(f"Requested. Stewards decide with: consentry dataset approve {status.release_id}")


store_url_option = click.option(
    "--store-url", default=None, help="The store's base URL (default: the machine policy's store.url)."
)
log_key_option = click.option(
    "--log-key",
    default=None,
    help="The store's Ed25519 log key (base64): the manifest shown is checked against its logged request.",
)
steward_key_option = click.option(
    "--key-file", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Your steward key."
)


def _steward_client(store_url: str | None, key_file: Path | None, log_key: str | None) -> Any:
    from admin.access import resolve_store_url, store_tls_ca
    from kit.store_client import StoreClient
    from protocol import b64decode

    url = resolve_store_url(store_url)
    pinned = b64decode(log_key) if log_key else None
    signer = _signer(key_file, "steward")
    return _remote(
        lambda: StoreClient(url, signer=signer, role="steward", log_public_key=pinned, tls_ca=store_tls_ca(url))
    )


def _fetch(client: Any, release_id: str) -> Any:
    """The release as the store shows it, checked: the hash is recomputed from the manifest shown, and with a
    pinned log key the logged request must name that same hash (an edited manifest fails here)."""
    from protocol.auditlog import verify_receipt
    from protocol.errors import InvalidRecord
    from store.releases.governance_api import ReleaseView
    from store.releases.requests import manifest_sha256

    view = _remote(lambda: client._get(ReleaseView, f"/v1/steward/releases/{release_id}"))
    shown = manifest_sha256(view.manifest)
    if shown != view.manifest_sha256:
        raise click.ClickException("the store's manifest does not hash to the hash it names; do not approve it")
    if client.log_public_key is not None:
        if view.request_log is None:
            raise click.ClickException("the store shows no logged request for this release; do not approve it")
        try:
            verify_receipt(view.request_log, client.log_public_key)
        except InvalidRecord:
            raise click.ClickException("the request's log receipt does NOT verify under --log-key") from None
        if view.request_log.entry.body.get("manifest_sha256") != shown:
            raise click.ClickException("the manifest shown is not the one logged when it was requested")
    return view


def _remote(action: Any) -> Any:
    import httpx

    from protocol.store_errors import StoreError

    try:
        return action()
    except StoreError as exc:
        raise click.ClickException(f"the store refused: {exc.code}: {exc.message}") from None
    except httpx.TransportError as exc:
        raise click.ClickException(f"cannot reach the store ({type(exc).__name__}). Check --store-url.") from None


def _view_json(view: Any) -> dict[str, Any]:
    return view.model_dump(mode="json", exclude={"request_log"})


@dataset.command("pending")
@store_url_option
@log_key_option
@steward_key_option
@json_option
def pending(store_url: str | None, log_key: str | None, key_file: Path | None, as_json: bool) -> None:
    """Releases and their state (steward key; on the steward's machine, through --store-url)."""
    from pydantic import TypeAdapter

    from store.releases.governance_api import ReleaseView

    with _steward_client(store_url, key_file, log_key) as client:
        views = _remote(
            lambda: TypeAdapter(list[ReleaseView]).validate_python(client._request("GET", "/v1/steward/releases"))
        )
    if as_json:
        _emit([_view_json(v) for v in views])
        return
    if not views:
        click.echo("No release requests.")
    for v in views:
        click.echo(
            f"{v.release_id}  {v.state:<9} {v.manifest['purpose']}  approvals {len(v.approved_by)}/{v.approvals_required}"
        )


@dataset.command()
@store_url_option
@log_key_option
@steward_key_option
@json_option
@click.argument("release_id")
def show(store_url: str | None, log_key: str | None, key_file: Path | None, as_json: bool, release_id: str) -> None:
    """A release's manifest: counts, exclusions, privacy checks, decisions and the hash a decision signs."""
    with _steward_client(store_url, key_file, log_key) as client:
        view = _fetch(client, release_id)
    if as_json:
        _emit(_view_json(view))
    else:
        _show(view)


def _decide_remote(
    store_url: str | None,
    log_key: str | None,
    key_file: Path | None,
    release_id: str,
    decision: str,
    reason: str | None,
) -> Any:
    from store.releases.governance import sign_decision
    from store.releases.governance_api import ReleaseView
    from store.releases.requests import manifest_sha256

    with _steward_client(store_url, key_file, log_key) as client:
        view = _fetch(client, release_id)
        _show(view)
        # Signed over the hash recomputed from the manifest shown, never the store's word for it.
        signed = sign_decision(
            client._signer,
            release_id,
            manifest_sha256(view.manifest),
            decision,  # type: ignore[arg-type]
            created=int(time.time()),
            reason=reason,
        )
        path = f"/v1/steward/releases/{release_id}/decisions"
        return _remote(lambda: client._post(ReleaseView, path, signed))


@dataset.command()
@store_url_option
@log_key_option
@steward_key_option
@click.argument("release_id")
def approve(store_url: str | None, log_key: str | None, key_file: Path | None, release_id: str) -> None:
    """Approve a release (steward key): sign the hash of the manifest shown."""
    view = _decide_remote(store_url, log_key, key_file, release_id, "approve", None)
    click.echo(
        f"Approved. Release {release_id} is {view.state} ({len(view.approved_by)} of {view.approvals_required})."
    )


@dataset.command()
@store_url_option
@log_key_option
@steward_key_option
@click.option("--reason", required=True, help="Why (one rejection stops the release).")
@click.argument("release_id")
def reject(store_url: str | None, log_key: str | None, key_file: Path | None, reason: str, release_id: str) -> None:
    """Reject a release (steward key); one rejection stops it."""
    view = _decide_remote(store_url, log_key, key_file, release_id, "reject", reason)
    click.echo(f"Rejected. Release {release_id} is {view.state}.")


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
    """Build an approved release into the release table; its card and datasheet go to DATA/data/release-cards/."""
    require_store_extra("pyarrow")
    from store.releases.card import CARDS_FOLDER, release_facts, write_documents
    from store.releases.governance import build_release
    from store.releases.governance_sink import TableReleaseSink
    from store.settings import StoreSettings

    policy = _release_policy(data_dir, release_policy)
    stewards = _stewards(policy_file)
    require_store_extra("pyiceberg")  # the release table: pip install 'consentry[store,release]'
    keys, _ = _keys(data_dir)
    storage = _open(backend, data_dir, dsn, schema)
    try:
        table = _open_table(
            StoreSettings(stewards=stewards), data_dir, backend, dsn, schema, warehouse=policy.warehouse
        )
    except BaseException:
        storage.close()
        raise
    try:
        result = _guard(
            lambda: build_release(
                storage,
                keys,
                stewards,
                release_id,
                TableReleaseSink(table),
                now=int(time.time()),
                retention_days=policy.retention_days,
            )
        )
        facts = _guard(lambda: release_facts(storage, stewards, table, release_id))
        card, _sheet = write_documents(data_dir / "data" / CARDS_FOLDER / release_id, facts)
    finally:
        table.close()
        storage.close()
    summary = {
        "release_id": release_id,
        "rows": result.rows,
        "subjects": result.subjects,
        "card_folder": str(card.parent),
        **result.written,
    }
    if as_json:
        _emit(summary)
        return
    click.echo(
        f"Built release {release_id}: {result.rows} rows of {result.subjects} subjects, "
        f"snapshot tag {result.written['tag']} of the release table."
    )
    click.echo(f"Its dataset card and datasheet: {card.parent} (README.md, DATASHEET.md)")
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
    from protocol.timeutil import utc_text as utc
    from store.releases.lineage import list_runs

    policy = _release_policy(data_dir, release_policy)
    storage = _open(backend, data_dir, dsn, schema)
    try:
        found = list_runs(storage, policy)
    finally:
        storage.close()
    if as_json:  # times as people's tools read them, like every other --json a steward or consumer reads
        times = ("recorded", "flagged_at")
        _emit([{k: utc(v) if k in times and v is not None else v for k, v in r.__dict__.items()} for r in found])
        return
    if not found:
        click.echo("No runs recorded.")
    for r in found:
        mark = f"  ** {r.flag} (since {utc(r.flagged_at or 0)})" if r.flag else ""
        click.echo(f"{r.run}  release {r.release_id}  by {r.consumer}, recorded {utc(r.recorded)}{mark}")


@dataset.command()
@backend_options
@release_policy_option
@json_option
@click.argument("release_id")
def rows(
    backend: str,
    data_dir: Path,
    dsn: str | None,
    schema: str,
    release_policy: Path | None,
    as_json: bool,
    release_id: str,
) -> None:
    """How many rows and subjects a release holds now, by category (rows erased since its build are gone)."""
    require_store_extra("pyiceberg")  # the release table: pip install 'consentry[store,release]'
    from protocol.stewards import StewardConfig
    from store.releases.table import ReleaseTableError
    from store.settings import StoreSettings

    where = _warehouse(data_dir, release_policy)
    table = _open_table(StoreSettings(stewards=StewardConfig()), data_dir, backend, dsn, schema, warehouse=where)
    try:
        read = table.read(release_id)
    except ReleaseTableError as exc:
        raise click.ClickException(
            f"{exc}. The releases built so far: consentry dataset runs, or the audit log"
        ) from None
    finally:
        table.close()
    columns = read.select(["category", "subject"]).to_pylist()
    by_category: dict[str, int] = {}
    for row in columns:
        by_category[row["category"]] = by_category.get(row["category"], 0) + 1
    summary = {
        "release_id": release_id,
        "rows": read.num_rows,
        "subjects": len({row["subject"] for row in columns}),
        "by_category": dict(sorted(by_category.items())),
    }
    if as_json:
        _emit(summary)
        return
    per = ", ".join(f"{category} {count:,}" for category, count in summary["by_category"].items()) or "none"
    people = summary["subjects"]
    click.echo(
        f"Release {release_id} holds {read.num_rows:,} row{'' if read.num_rows == 1 else 's'} of "
        f"{people} subject{'' if people == 1 else 's'} now ({per})."
    )


@dataset.command()
@backend_options
@release_policy_option
@json_option
def housekeep(
    backend: str, data_dir: Path, dsn: str | None, schema: str, release_policy: Path | None, as_json: bool
) -> None:
    """Now, what `store serve` does every 15 minutes: drop released rows past retention, remove expired snapshots."""
    require_store_extra("pyiceberg")  # the release table: pip install 'consentry[store,release]'
    from datetime import timedelta

    from protocol.stewards import StewardConfig
    from store.releases.housekeeping import housekeeping_words
    from store.settings import StoreSettings

    policy = _release_policy(data_dir, release_policy)
    grace = timedelta(hours=policy.erasure_grace_hours)
    table = _open_table(
        StoreSettings(stewards=StewardConfig()), data_dir, backend, dsn, schema, grace=grace, warehouse=policy.warehouse
    )
    try:
        retention, expiry = table.housekeep(datetime.now(UTC))
    finally:
        table.close()
    if as_json:
        _emit({"retention": retention.__dict__, "expiry": expiry.__dict__})
        return
    words = housekeeping_words(retention, expiry)
    click.echo(words[0].upper() + words[1:] + ".")


@dataset.command()
@backend_options
@release_policy_option
@policy_option
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write README.md, DATASHEET.md and data/ (links to the snapshot's Parquet files) into this folder.",
)
@click.argument("release_id")
def card(
    backend: str,
    data_dir: Path,
    dsn: str | None,
    schema: str,
    release_policy: Path | None,
    policy_file: Path | None,
    out: Path | None,
    release_id: str,
) -> None:
    """A release's dataset card as it stands now (print it, or --out DIR: a folder `datasets` loads)."""
    require_store_extra("pyiceberg")  # the release table: pip install 'consentry[store,release]'
    from store.releases.card import EmptyReleaseCard, dataset_card, link_data_files, release_facts, write_documents
    from store.releases.table import ReleaseTableError
    from store.settings import StoreSettings

    stewards = _stewards(policy_file)
    where = _warehouse(data_dir, release_policy)
    storage = _open(backend, data_dir, dsn, schema)
    try:
        table = _open_table(StoreSettings(stewards=stewards), data_dir, backend, dsn, schema, warehouse=where)
    except BaseException:
        storage.close()
        raise
    try:
        facts = _guard(lambda: release_facts(storage, stewards, table, release_id))
        if out is None:
            click.echo(dataset_card(facts), nl=False)
            return
        write_documents(out, facts)
        files = table.data_files(release_id)
        if not table.is_local:  # objects in a bucket: a link cannot point at them, and a copy would escape erasure
            click.echo(f"Wrote {out / 'README.md'} and {out / 'DATASHEET.md'}.")
            click.echo(
                f"The release's {len(files)} data {'file is an object' if len(files) == 1 else 'files are objects'} "
                f"in {table.location}; read them there with the warehouse's S3 endpoint and your own credentials "
                "(docs/release-table.md, 'S3-compatible warehouse'), never as a copy."
            )
            return
        links = link_data_files(out, files)
    except (EmptyReleaseCard, ReleaseTableError) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        table.close()
        storage.close()
    click.echo(
        f"Wrote {out / 'README.md'}, {out / 'DATASHEET.md'} and {len(links)} data file {'link' if len(links) == 1 else 'links'} in {out / 'data'}."
    )
    click.echo(f'Load it with: datasets.load_dataset("{out}")  (record the run first: consentry dataset use)')
