"""``consentry store``: run the on-prem store, issue enrollment tokens, export datasets, verify its log."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import click

from admin.fleet_cmd import register as register_fleet_commands

F = TypeVar("F", bound=Callable[..., Any])
# What `pip install 'consentry[store]'` adds, by the command that needs it (pyproject.toml's [store] extra).
SERVER_MODULES = ("fastapi", "uvicorn")
POSTGRES_MODULES = ("psycopg", "psycopg_pool")
EXPORT_MODULES = ("pyarrow",)


def _emit(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


def require_store_extra(*modules: str) -> None:
    """A clear error, before anything else happens, when a command needs what only the [store] extra installs.

    ``find_spec`` looks without importing, so the check costs nothing when the extra is there.
    """
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise click.ClickException(
            f"the store needs the store extra: pip install 'consentry[store]' (missing: {', '.join(missing)})"
        )


def _backend_modules(backend: str) -> tuple[str, ...]:
    return POSTGRES_MODULES if backend == "postgres" else ()


def data_option(help_text: str) -> Callable[[F], F]:
    """--data: the store's folder (keys, and with the dir backend all its data)."""
    return click.option(
        "--data",
        "data_dir",
        type=click.Path(file_okay=False, path_type=Path),
        required=True,
        envvar="CONSENTRY_STORE_DATA",
        help=help_text,
    )


def _no_password_in_arguments(ctx: click.Context, param: click.Parameter, dsn: str | None) -> str | None:
    """Refuse a password typed into --dsn: every account on this computer reads a process's arguments
    (``ps``), while its environment and ``~/.pgpass`` stay its own user's."""
    from click.core import ParameterSource

    if dsn is None or ctx.get_parameter_source(str(param.name)) is not ParameterSource.COMMANDLINE:
        return dsn
    parts = urlsplit(dsn)
    in_url = parts.scheme in ("postgresql", "postgres") and (parts.password is not None or "password=" in parts.query)
    if in_url or re.search(r"(^|\s)password\s*=", dsn):
        raise click.BadParameter(
            "it holds the database password, and every account on this computer can read a command's "
            "arguments (ps). Leave the password out and keep it in ~/.pgpass (or the file PGPASSFILE names), "
            "or give the whole DSN in the environment variable CONSENTRY_STORE_DSN instead. Nothing was changed.",
            ctx=ctx,
            param=param,
        )
    return dsn


def backend_options(func: F) -> F:
    """--backend, --data and --dsn, shared by every command that opens the store's storage."""
    func = click.option(
        "--schema", default="consentry", show_default=True, help="PostgreSQL schema for the store's tables."
    )(func)
    func = click.option(
        "--dsn",
        envvar="CONSENTRY_STORE_DSN",
        callback=_no_password_in_arguments,
        help="PostgreSQL DSN (backend postgres). Without a password: keep that in ~/.pgpass, or give the whole "
        "DSN in CONSENTRY_STORE_DSN instead.",
    )(func)
    func = data_option("The store's folder: its keys, and with --backend dir all its data.")(func)
    func = click.option(
        "--backend",
        type=click.Choice(["dir", "postgres"]),
        default="dir",
        show_default=True,
        help="Where batches and the catalog live.",
    )(func)
    return func


def _open(backend: str, data_dir: Path, dsn: str | None, schema: str = "consentry") -> Any:
    from protocol.errors import ConsentryError
    from store.backends import open_backend

    if backend == "postgres" and not dsn:
        raise click.UsageError("--backend postgres needs --dsn postgresql://user:password@host/database")
    if backend == "postgres":
        require_store_extra(*POSTGRES_MODULES)
    try:
        return open_backend(backend, data_dir=data_dir / "data", dsn=dsn, schema=schema)
    except ConsentryError as exc:
        raise click.ClickException(
            f"cannot open the {backend} backend: {exc}. Check --dsn and that the server runs."
        ) from None


def _keys(data_dir: Path) -> tuple[Any, bool]:
    from protocol.errors import InsecurePermissions
    from store.keys import StoreKeys

    try:
        return StoreKeys.load_or_create(data_dir / "keys")
    except InsecurePermissions as exc:
        raise click.ClickException(str(exc)) from None


def _public(keys: Any) -> dict[str, str]:
    from protocol import b64encode

    return {"public_key": b64encode(keys.seal.public_bytes), "log_key": b64encode(keys.log.public_bytes)}


def _stewards(policy_file: Path | None) -> Any:
    from protocol.errors import PolicyError
    from vault.paths import default_policy_path
    from vault.policy import load_policy

    path = policy_file or default_policy_path()
    try:
        policy = load_policy(path)
    except PolicyError as exc:
        raise click.ClickException(f"{exc}\nFix the policy file, then start the store again.") from None
    if not policy.stewards.keys:
        raise click.ClickException(
            f"{path} names no steward keys, so no batch could ever be approved. Each steward runs "
            "`consentry steward init`; add their keys under [stewards.keys] and set approvals_required."
        )
    return policy.stewards


@click.group()
def store() -> None:
    """Run the on-prem store, issue enrollment tokens, export datasets, verify the audit log."""


@store.command()
@backend_options
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8750, show_default=True, type=click.IntRange(0, 65535), help="TCP port.")
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Policy file whose [stewards] section says whose approvals count (default: the machine policy).",
)
@click.option("--max-body-mb", default=32, show_default=True, type=click.IntRange(1, 1024), help="Request size limit.")
@click.option(
    "--tls-cert",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Serve HTTPS with this PEM certificate (chain); needs --tls-key.",
)
@click.option(
    "--tls-key", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="The certificate's PEM private key."
)
@click.option("--docs", is_flag=True, help="Also serve the interactive API docs (/docs, /redoc, /openapi.json).")
@click.option(
    "--min-group-size",
    default=5,
    show_default=True,
    type=click.IntRange(2, 10_000),
    help="k: the fleet view shows consent figures only over groups with at least this many devices on each side.",
)
@click.option(
    "--release-housekeeping-minutes",
    default=15,
    show_default=True,
    type=click.IntRange(1, 1440),
    help="How often the release table drops rows past retention and removes snapshots past the grace period.",
)
def serve(
    backend: str,
    data_dir: Path,
    dsn: str | None,
    schema: str,
    host: str,
    port: int,
    policy_file: Path | None,
    max_body_mb: int,
    tls_cert: Path | None,
    tls_key: Path | None,
    docs: bool,
    min_group_size: int,
    release_housekeeping_minutes: int,
) -> None:
    """Serve the store API until interrupted (first run creates the store's keys in --data)."""
    require_store_extra(*SERVER_MODULES, *_backend_modules(backend))
    from store.app import create_app
    from store.server import serve as run
    from store.settings import StoreSettings

    _check_tls(tls_cert, tls_key)
    stewards = _stewards(policy_file)
    keys, created = _keys(data_dir)
    storage = _open(backend, data_dir, dsn, schema)
    public = _public(keys)
    verb = "Created" if created else "Using"
    click.echo(
        f"{verb} store keys in {data_dir / 'keys'}. Put these in the machine policy's [store] section:",
        err=True,
    )
    click.echo(f'  public_key = "{public["public_key"]}"\n  log_key = "{public["log_key"]}"', err=True)
    scheme = "https" if tls_cert else "http"
    click.echo(f"Serving on {scheme}://{host}:{port} ({backend} backend); Ctrl-C stops.", err=True)
    settings = StoreSettings(stewards=stewards, max_body_bytes=max_body_mb * 1024 * 1024, api_docs=docs)
    from protocol.errors import KeyUnavailable
    from store.releases.consumers import ReleasePolicyError
    from store.releases.governance_sink import open_release_table, release_table_eraser, release_table_policy
    from store.releases.warehouse import WarehouseError

    try:
        release_policy = release_table_policy(data_dir)  # erasure_grace_hours and [warehouse]
    except ReleasePolicyError as exc:
        storage.close()
        raise click.ClickException(f"{exc}\nFix it, then start the store again.") from None
    from datetime import timedelta

    grace = timedelta(hours=release_policy.erasure_grace_hours)
    where = release_policy.warehouse
    housekeeper = None
    try:
        try:  # erasures reach it
            table = open_release_table(settings, data_dir, backend, dsn, schema, grace=grace, warehouse=where)
        except (WarehouseError, KeyUnavailable) as exc:
            raise click.ClickException(f"{exc}\nFix it, then start the store again.") from None
        erase = release_table_eraser(table) if table is not None else None
        if table is not None:  # its own catalog connection: the thread never shares the request handlers'
            from store.releases.housekeeping import ReleaseHousekeeper

            every = timedelta(minutes=release_housekeeping_minutes)
            own = open_release_table(settings, data_dir, backend, dsn, schema, grace=grace, warehouse=where)
            housekeeper = ReleaseHousekeeper(own, every=every).start()
        try:  # the records KEK is checked here, against the database
            app = create_app(storage, keys, settings, erase_from_releases=erase, min_group_size=min_group_size)
        except KeyUnavailable as exc:
            raise click.ClickException(f"{exc}\nThe store did not start.") from None
        run(app, host, port, tls_cert=tls_cert, tls_key=tls_key)
    finally:
        if housekeeper is not None:
            housekeeper.stop()
        storage.close()


def _check_tls(cert: Path | None, key: Path | None) -> None:
    """Both or neither, and a pair that loads: found now rather than as a failed start inside uvicorn."""
    import ssl

    if (cert is None) != (key is None):
        raise click.UsageError("--tls-cert and --tls-key go together: pass both (or neither, behind a TLS proxy)")
    if cert is None or key is None:
        return
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise click.ClickException(
            f"cannot use {cert} with {key}: {getattr(exc, 'reason', None) or type(exc).__name__}. "
            "Both must be PEM, and the key must belong to the certificate."
        ) from None


@store.command()
@data_option("The store's folder.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def keygen(data_dir: Path, as_json: bool) -> None:
    """Create the store's keys if missing and print the public halves (for the machine policy)."""
    keys, created = _keys(data_dir)
    public = _public(keys)
    if as_json:
        _emit({**public, "created": created})
        return
    click.echo(("Created" if created else "Existing") + " store keys. Machine policy [store] section:")
    click.echo(f'public_key = "{public["public_key"]}"\nlog_key = "{public["log_key"]}"')


@store.command()
@backend_options
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def token(backend: str, data_dir: Path, dsn: str | None, schema: str, as_json: bool) -> None:
    """Issue a one-time enrollment token for one workstation (the store keeps only its hash)."""
    import time

    from protocol.stewards import StewardConfig
    from store.auth import issue_token
    from store.settings import StoreSettings

    storage = _open(backend, data_dir, dsn, schema)
    try:
        settings = StoreSettings(stewards=StewardConfig())
        value = issue_token(storage, settings, int(time.time()))
    finally:
        storage.close()
    if as_json:
        _emit({"token": value, "expires_in_seconds": settings.token_ttl_seconds})
        return
    click.echo(value)
    click.echo(
        "Give it to the workstation's IT setup: save it in a file only they can read and, on that computer "
        "(its machine policy names this store in [store] url, public_key and log_key), "
        "run: consentry enroll --token-file FILE\n"
        f"It works once, within {settings.token_ttl_seconds // 86400} days.",
        err=True,
    )


@store.command()
@backend_options
@click.option("--format", "fmt", type=click.Choice(["parquet"]), default="parquet", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary.")
@click.option(
    "--reason",
    default=None,
    help="Required: why this break-glass export is needed (written to the audit log with your user name).",
)
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
def export(
    backend: str, data_dir: Path, dsn: str | None, schema: str, fmt: str, as_json: bool, reason: str | None, out: Path
) -> None:
    """Break-glass only: export all approved, non-erased data to OUT, logged with who and why.

    Datasets for training are released with `consentry dataset request` (purpose-bound, steward-approved).
    """
    import getpass
    import time

    require_store_extra(*EXPORT_MODULES, *_backend_modules(backend))
    if not reason or not reason.strip():
        raise click.UsageError(
            'store export is the operator\'s break-glass path and needs --reason "..." (logged with your user '
            "name). For training data, request a governed release: consentry dataset request"
        )
    from protocol.errors import ConsentryError
    from store.export import export_parquet

    keys, _ = _keys(data_dir)
    storage = _open(backend, data_dir, dsn, schema)
    try:
        with storage.transaction() as tx:
            total = len(tx.stored_batches()) * 4  # four category passes over the batches
        with click.progressbar(length=max(total, 1), label="Exporting", file=sys.stderr) as bar:
            try:
                result = export_parquet(
                    storage,
                    keys,
                    out,
                    now=int(time.time()),
                    progress=bar.update,
                    break_glass={"operator": getpass.getuser(), "reason": reason.strip()[:500]},
                )
            except (ValueError, ConsentryError) as exc:
                raise click.ClickException(f"{exc}") from None
    finally:
        storage.close()
    summary = {
        "export_id": result.export_id,
        "files": result.files,
        "batches": result.batches,
        "log_index": result.receipt.leaf_index,
    }
    if as_json:
        _emit(summary)
        return
    click.echo(f"Exported {sum(result.files.values())} rows from {result.batches} batches into {out}.")
    click.echo("Read it with datasets.load_dataset('parquet', data_files=...) as shown in its README.md.")


@store.command("verify-log")
@click.option("--store-url", help="The store's base URL (default: the machine policy's store.url).")
@click.option("--log-key", help="The store's Ed25519 log key, base64 (default: the machine policy's store.log_key).")
@click.option(
    "--state",
    "state_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File keeping the last verified tree head; each run proves the log only grew since.",
)
@click.option(
    "--full", is_flag=True, help="Also download every entry and recompute the root (signed: needs a steward key)."
)
@click.option(
    "--key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --full: the steward key that signs the entry requests "
    "(default: $CONSENTRY_HOME/steward/steward-ed25519.key).",
)
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def verify_log(
    store_url: str | None,
    log_key: str | None,
    state_file: Path | None,
    full: bool,
    key_file: Path | None,
    as_json: bool,
) -> None:
    """Check the store's signed tree head and that the log is append-only since the last check."""
    from admin.access import load_signer, store_tls_ca
    from kit.store_client import StoreClient
    from protocol import TreeHead, b64decode
    from protocol.errors import InvalidRecord
    from protocol.store_errors import StoreError, UntrustedStore
    from protocol.timeutil import utc_text
    from store.audit import verify_log as check

    store_url_given, log_key_given = bool(store_url), bool(log_key)
    store_url, log_key = _store_from_policy(store_url, log_key)
    if log_key is None:
        raise click.UsageError("no log key: pass --log-key or set store.log_key in the machine policy")
    # Tree heads and proofs are public; the entries show per-device activity, so only stewards read them.
    signer = load_signer(key_file) if full else None
    public_key = b64decode(log_key)
    try:
        since = None
        if state_file is not None and state_file.exists():
            since = TreeHead.model_validate_json(state_file.read_text(encoding="utf-8"))
        try:  # the policy's store is pinned to its tls_ca, however its URL was given
            tls_ca = store_tls_ca(store_url)
        except click.ClickException:
            if not (store_url_given and log_key_given):
                raise
            tls_ca = None  # everything came from the options: an unreadable machine policy does not stop them
        with StoreClient(store_url, signer=signer, role="steward", log_public_key=public_key, tls_ca=tls_ca) as client:
            result = check(client, public_key, since=since, full=full)
    except InvalidRecord:  # opaque on purpose; the three checks it stands for are named here
        raise click.ClickException(
            "the store's log does NOT verify (its tree head signature, the proof that it only grew, or its "
            "entries). Keep the state file as evidence and tell the data stewards."
        ) from None
    except UntrustedStore as exc:
        raise click.ClickException(
            f"cannot check the log: {exc.message}. Check [store] tls_ca in the machine policy."
        ) from None
    except (StoreError, OSError) as exc:
        raise click.ClickException(f"cannot check the log: {exc}. Is the store running at {store_url}?") from None
    head = result.head
    if state_file is not None:
        state_file.parent.mkdir(parents=True, exist_ok=True)
        state_file.write_text(head.model_dump_json() + "\n", encoding="utf-8")
    if as_json:
        summary: dict[str, Any] = {
            "store_url": store_url,
            "size": head.size,
            "root_hash": head.root_hash,
            "timestamp": utc_text(head.timestamp),
            "signature": "ok",
        }
        if result.consistent_with_size is not None:
            summary["consistent_with_size"] = result.consistent_with_size
        if result.entries_checked is not None:
            summary["entries_checked"] = result.entries_checked
        _emit(summary)
        return
    extra = f", consistent with size {result.consistent_with_size}" if result.consistent_with_size is not None else ""
    click.echo(f"Log OK: {head.size} entries, tree head signed {utc_text(head.timestamp)} verified{extra}.")


def _store_from_policy(store_url: str | None, log_key: str | None) -> tuple[str, str | None]:
    if store_url and log_key:
        return store_url, log_key
    from admin.access import machine_store

    section = machine_store("Pass --store-url and --log-key instead.")
    if section is None and not store_url:
        raise click.UsageError("no store: pass --store-url or set [store] url in the machine policy")
    url = store_url or (section.url if section else "")
    key = log_key or (section.log_key if section else None)
    return url, key


register_fleet_commands(store)  # enroll-secret, retire, operator, fleet (admin.fleet_cmd)
