"""``consentry store enroll-secret|retire|operator|fleet``: IT's fleet commands.

On the store's host (they open the store's storage, like ``store token``): ``enroll-secret create|list|revoke``,
``retire DEVICE_KID`` and ``operator add NAME PUBLIC_KEY``. Anywhere with an operator key (they talk to the
store over HTTP, like the steward's commands): ``operator init`` and ``fleet`` (``--page`` for the page).
"""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path
from typing import Any

import click

OPERATOR_KEY_NAME = "operator-ed25519.key"
LINK_FILE = "fleet.json"
json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
operator_key_option = click.option(
    "--key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The operator's private key file (default: $CONSENTRY_HOME/operator/operator-ed25519.key).",
)


def _emit(value: Any) -> None:
    """Machine output: every moment as UTC ISO text (``json_with_utc_times``), as the stewards' tools print it."""
    from protocol.timeutil import json_with_utc_times

    click.echo(json.dumps(json_with_utc_times(value), indent=2, sort_keys=True, default=str))


def _when(epoch: int | None) -> str:
    from protocol.timeutil import utc_display

    return "never" if epoch is None else f"{utc_display(epoch)} UTC"


def _storage(backend: str, data_dir: Path, dsn: str | None, schema: str) -> Any:
    from admin.store_cmd import _open
    from store.fleet_db import ensure_tables

    storage = _open(backend, data_dir, dsn, schema)
    ensure_tables(storage)
    return storage


def _store_call(action: Any) -> Any:
    from protocol.store_errors import StoreError

    try:
        return action()
    except StoreError as exc:
        raise click.ClickException(f"{exc.message} ({exc.code})") from None
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


def register(store: click.Group) -> None:
    """Add the fleet commands to ``consentry store`` (admin.store_cmd calls this once)."""
    from admin.store_cmd import backend_options

    @store.group("enroll-secret")
    def enroll_secret() -> None:
        """Enrollment secrets: IT delivers one with the machine policy; each agent enrolls itself with it."""

    @enroll_secret.command("create")
    @backend_options
    @click.option("--label", required=True, help="The group the devices enroll into (an organisational unit, a site).")
    @click.option("--days", default=30, show_default=True, type=click.IntRange(1, 3650), help="Valid for this long.")
    @click.option(
        "--per-hour",
        default=200,
        show_default=True,
        type=click.IntRange(1, 100_000),
        help="New devices an hour, at most.",
    )
    @json_option
    def create(
        backend: str, data_dir: Path, dsn: str | None, schema: str, label: str, days: int, per_hour: int, as_json: bool
    ) -> None:
        """Create an enrollment secret and print it once (the store keeps only its hash)."""
        from protocol.timeutil import utc_text
        from store.enrollment import create_secret

        storage = _storage(backend, data_dir, dsn, schema)
        try:
            new = _store_call(
                lambda: create_secret(
                    storage, label, now=int(time.time()), valid_seconds=days * 86400, per_hour=per_hour
                )
            )
        finally:
            storage.close()
        if as_json:
            _emit(
                {
                    "secret": new.secret,
                    "secret_id": new.secret_id,
                    "label": new.label,
                    "expires_at": utc_text(new.expires_at),
                }
            )
            return
        click.echo(new.secret)
        click.echo(
            f"Secret {new.secret_id} for label {new.label!r}, valid until {_when(new.expires_at)}, at most "
            f"{new.per_hour} new devices an hour. Install it as the file `enroll-secret` beside the machine "
            "policy (mode 0644, owned by root); each user's agent enrolls itself on first start. "
            f"Stop new enrollments with: consentry store enroll-secret revoke {new.secret_id}",
            err=True,
        )

    @enroll_secret.command("list")
    @backend_options
    @json_option
    def list_(backend: str, data_dir: Path, dsn: str | None, schema: str, as_json: bool) -> None:
        """List enrollment secrets (never the secrets themselves) and how many devices used each."""
        from store.enrollment import list_secrets

        storage = _storage(backend, data_dir, dsn, schema)
        try:
            found = list_secrets(storage)
        finally:
            storage.close()
        if as_json:
            _emit(found)
            return
        if not found:
            click.echo("No enrollment secrets yet. Create one with: consentry store enroll-secret create --label L")
        now = int(time.time())
        for s in found:
            state = (
                f"revoked {_when(s.revoked_at)}"
                if s.revoked_at is not None
                else "expired"
                if s.expires_at <= now
                else f"valid until {_when(s.expires_at)}"
            )
            click.echo(f"{s.secret_id}  {s.label!r}: {state}; {s.enrolled} devices enrolled; {s.per_hour} an hour")

    @enroll_secret.command("revoke")
    @backend_options
    @click.argument("secret_id")
    def revoke(backend: str, data_dir: Path, dsn: str | None, schema: str, secret_id: str) -> None:
        """Stop new enrollments with a secret; devices already enrolled with it keep working."""
        from store.enrollment import revoke_secret

        storage = _storage(backend, data_dir, dsn, schema)
        try:
            _store_call(lambda: revoke_secret(storage, secret_id, int(time.time())))
        finally:
            storage.close()
        click.echo(f"Revoked {secret_id}: no new device enrolls with it; enrolled devices keep working.")

    @store.command("retire")
    @backend_options
    @click.argument("device_kid")
    def retire(backend: str, data_dir: Path, dsn: str | None, schema: str, device_kid: str) -> None:
        """Retire a device: the store refuses its uploads and heartbeats from now on (the employee is told)."""
        from store.enrollment import retire_device

        storage = _storage(backend, data_dir, dsn, schema)
        try:
            _store_call(lambda: retire_device(storage, device_kid, int(time.time())))
        finally:
            storage.close()
        click.echo(f"Retired {device_kid}: its requests are refused from now on. What it sent before stays.")

    @store.group("operator")
    def operator() -> None:
        """Operator keys: what IT's fleet view (consentry store fleet) signs with."""

    @operator.command("init")
    @operator_key_option
    @json_option
    def init(key_file: Path | None, as_json: bool) -> None:
        """Create your operator key (0600) and print its public half for `store operator add`."""
        from protocol import SigningKey, b64encode
        from protocol.keyfile import write_key_file

        path = key_file or _default_key_file()
        if path.exists():
            raise click.ClickException(f"{path} exists already; keep using it, or pass another --key-file")
        signer = SigningKey.generate()
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_key_file(path, "ed25519", signer.private_bytes())
        public = b64encode(signer.public_bytes)
        if as_json:
            _emit({"public_key": public, "kid": signer.kid})
            return
        click.echo(f"Created your operator key. On the store's host run: consentry store operator add NAME {public}")

    @operator.command("add")
    @backend_options
    @click.argument("name")
    @click.argument("public_key")
    def add(backend: str, data_dir: Path, dsn: str | None, schema: str, name: str, public_key: str) -> None:
        """Let the operator key PUBLIC_KEY (base64, from `store operator init`) read the fleet view."""
        from protocol.fields import b64decode
        from protocol.signing import key_id
        from store import fleet_db

        try:
            raw = b64decode(public_key)
        except ValueError:
            raw = b""
        if len(raw) != 32:
            raise click.BadParameter("not a base64 Ed25519 public key", param_hint="PUBLIC_KEY")
        storage = _storage(backend, data_dir, dsn, schema)
        try:
            with storage.transaction() as tx:
                fleet_db.add_operator(fleet_db.as_query(tx), key_id(raw), name, public_key, int(time.time()))
        finally:
            storage.close()
        click.echo(f"Operator {name} ({key_id(raw)}) may now read the fleet view.")

    @store.command("fleet")
    @operator_key_option
    @click.option("--store-url", help="The store's base URL (default: the machine policy's store.url).")
    @click.option("--label", help="Only devices enrolled under this label.")
    @click.option("--version", "agent_version", help="Only devices running this agent version.")
    @click.option("--stale/--fresh", default=None, help="Only devices whose heartbeat is late (or on time).")
    @click.option("--drift/--no-drift", default=None, help="Only devices whose policy differs (or does not).")
    @click.option("--errors/--no-errors", default=None, help="Only devices reporting an error (or none).")
    @click.option("--retired/--active", default=None, help="Only retired (or active) devices.")
    @click.option("--page", is_flag=True, help="Serve the fleet page on 127.0.0.1 instead of printing.")
    @click.option("--port", default=0, type=click.IntRange(0, 65535), help="With --page: the port (default: any).")
    @json_option
    def fleet(
        key_file: Path | None,
        store_url: str | None,
        label: str | None,
        agent_version: str | None,
        stale: bool | None,
        drift: bool | None,
        errors: bool | None,
        retired: bool | None,
        page: bool,
        port: int,
        as_json: bool,
    ) -> None:
        """List devices, versions, policy drift, stale devices and errors (never who consented)."""
        from admin.access import resolve_store_url, store_tls_ca
        from kit.store_client import StoreClient

        url = resolve_store_url(store_url)
        signer = _load_operator(key_file)

        def client() -> StoreClient:
            return StoreClient(url, signer=signer, role="operator", tls_ca=store_tls_ca(url))

        if page:
            _serve_page(client, port)
            return
        filters = {"label": label, "version": agent_version, "stale": stale, "drift": drift, "errors": errors}
        with client() as c:
            report = _store_call(lambda: c.fleet(**filters, retired=retired))
        if as_json:
            _emit(report)
            return
        print_report(report)


def print_report(report: Any) -> None:
    k = report.min_group_size
    click.echo(f"Devices: {len(report.devices)} shown. Expected policy: {(report.expected_policy_digest or '-')[:16]}")
    for d in report.devices:
        flags = [f for f, on in (("RETIRED", d.retired), ("STALE", d.stale), ("POLICY DRIFT", d.policy_drift)) if on]
        click.echo(
            f"{d.device_kid}  {d.label}  v{d.agent_version or '-'}  last seen {_when(d.last_seen)}  "
            f"error {d.error_class or '-'}  skew {d.clock_skew_seconds if d.clock_skew_seconds is not None else '-'} s  "
            f"ledger {d.ledger_head or '-'}" + (f"  [{', '.join(flags)}]" if flags else "")
        )
    click.echo(f"\nFleet figures (shown only where at least {k} devices are on each side; '-' = withheld):")
    for c in report.cells:
        figures = (c.shipping_devices, c.devices_with_backlog, c.devices_with_capture_errors)
        shown = ["-" if v is None else str(v) for v in figures]
        click.echo(
            f"{c.label}: {c.devices} devices; delivered a batch (30 days) {shown[0]}; backlog {shown[1]}; "
            f"capture errors {shown[2]}"
        )


def _default_key_file() -> Path:
    from vault.paths import default_home

    return default_home() / "operator" / OPERATOR_KEY_NAME


def _load_operator(key_file: Path | None) -> Any:
    from protocol import SigningKey
    from protocol.errors import ConsentryError
    from protocol.keyfile import read_key_file

    path = key_file or _default_key_file()
    if not path.exists():
        raise click.ClickException(f"no operator key at {path}. Run: consentry store operator init")
    try:
        return SigningKey(read_key_file(path, "ed25519"))
    except ConsentryError as exc:
        raise click.ClickException(str(exc)) from None


def _serve_page(client: Any, port: int) -> None:
    from admin.fleet_page import FleetPage
    from kit.web.peer import PeerCheckUnavailable
    from kit.web.server import PageServer

    reopen = "Run consentry store fleet --page again for a new session."
    try:
        server = PageServer(FleetPage(client), port=port, reopen=reopen)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on 127.0.0.1:{port} ({exc.strerror}); try another --port") from None
    except PeerCheckUnavailable as exc:  # no page rather than one another local user could read
        raise click.ClickException(f"{exc}. Use: consentry store fleet (without --page)") from None
    from kit.page_link import remove_page_link, write_page_link
    from vault.paths import default_home

    link = default_home() / "operator" / LINK_FILE
    link.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with server:
            # The session token goes into a 0600 file, never onto the terminal or a command line.
            write_page_link(link, url=server.url, token=server.token)
            click.echo(f"Fleet page on {server.url}; open the address in {link} (Ctrl-C to stop).")
            stop.wait()
    finally:
        remove_page_link(link)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo("Fleet page stopped.")
