"""``consentry demo``: the whole flow on one machine, in a fresh folder, on embedded defaults.

Every employee step runs the real ``consentry`` command in a subprocess (its output is shown); the
store is a real HTTP server on 127.0.0.1 with the ``dir`` backend; the steward signs a real approval.
Nothing touches the real home, keyring or policy: everything lives under ``--out``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click


class Demo:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.home = out / "employee-home"
        self.policy_file = out / "policy.toml"
        self.env = {**os.environ, "CONSENTRY_HOME": str(self.home), "CONSENTRY_POLICY": str(self.policy_file),
                    "CONSENTRY_KEYSTORE": "file"}

    def step(self, title: str) -> None:
        click.secho(f"\n== {title}", bold=True)

    def consentry(self, *args: str, show: int = 12, check: bool = True) -> str:
        click.secho(f"$ consentry {' '.join(args)}", fg="cyan")
        done = subprocess.run([sys.executable, "-m", "agent", *args], env=self.env, capture_output=True, text=True)
        lines = (done.stdout + done.stderr).rstrip().splitlines()
        for line in lines[-show:] if show else []:
            click.echo(f"  {line}")
        if check and done.returncode != 0:
            raise click.ClickException(f"`consentry {' '.join(args)}` failed (exit {done.returncode})")
        return done.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.consentry(*args, "--json", show=0))


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _run_agent(demo: Demo, seconds: float, window: int) -> None:
    """Run the real agent on a synthetic input stream until it has flushed some windows."""
    replay = "synthetic:seed=7,key_rate=8,move_rate=120,focus_every=4"
    click.secho(f"$ consentry agent run --replay {replay}   (for about {seconds:.0f} s)", fg="cyan")
    log = (demo.out / "agent-stderr.log").open("w")
    agent = subprocess.Popen([sys.executable, "-m", "agent", "agent", "run", "--replay", replay],
                             env=demo.env, stdout=log, stderr=log)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline and agent.poll() is None:
            time.sleep(0.5)
    finally:
        agent.send_signal(signal.SIGTERM)  # a clean stop flushes the open windows
        try:
            agent.wait(timeout=20)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()
        log.close()
    if agent.returncode not in (0, -signal.SIGTERM):
        raise click.ClickException(f"the agent stopped with exit code {agent.returncode}; see {log.name}")


@click.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for everything the demo makes (default: a new temporary folder).")
@click.option("--seconds", type=float, default=25.0, show_default=True, help="How long the agent captures.")
def demo(out: Path | None, seconds: float) -> None:
    """Run the whole flow on this machine in a temporary home.

    A store on 127.0.0.1, a steward key, consent, capture by the real agent (on a synthetic
    input stream), a sealed batch, the employee's preview and release, steward approval,
    shipping with a verified receipt, and a Parquet dataset export. Prints where each
    artifact is. Touches nothing outside --out.
    """
    from vault.canonical import canonical_json  # noqa: F401  (fail early if the install is broken)
    from vault.policy import StewardConfig
    from vault.release import Ed25519Signer, b64encode, sign_approval
    from vault.release.keyfile import write_key_file
    from vault.store import StoreKeys, StoreSettings, ThreadedServer, create_app, issue_token, open_backend
    from vault.store.client import StoreClient
    from vault.store.export import export_parquet

    out = out or Path(tempfile.mkdtemp(prefix="consentry-demo-"))
    out.mkdir(parents=True, exist_ok=True)
    demo = Demo(out)
    window = 10
    store_dir = out / "store"

    demo.step("IT: start the on-prem store (dir backend) and name a data steward")
    steward = Ed25519Signer.generate()
    write_key_file(out / "steward" / "steward.key", "steward", steward.private_bytes())
    settings = StoreSettings(stewards=StewardConfig(keys={"demo-steward": b64encode(steward.public_bytes)},
                                                    approvals_required=1))
    backend = open_backend("dir", data_dir=store_dir)
    keys, _ = StoreKeys.load_or_create(store_dir / "keys")
    server = ThreadedServer(create_app(backend, keys, settings)).start()
    try:
        click.echo(f"  store listening on {server.url}")
        demo.policy_file.write_text(
            f"aggregation_window_seconds = {window}\nhold_hours = 24\n"
            f'[store]\nurl = "{server.url}"\npublic_key = "{b64encode(keys.seal.public_bytes)}"\n'
            f'log_key = "{b64encode(keys.log.public_bytes)}"\n'
            f"[stewards]\napprovals_required = 1\n[stewards.keys]\n"
            f'demo-steward = "{b64encode(steward.public_bytes)}"\n'
        )
        demo.consentry("policy", "validate", str(demo.policy_file), show=1)

        demo.step("Employee: nothing is collected before consent")
        demo.consentry("consent", "show", show=5)
        demo.step("Employee: read the notices and grant keyboard, mouse and apps")
        demo.consentry("consent", "grant", "keyboard", "mouse", "apps", "--yes", show=3)

        demo.step("Agent: capture (synthetic input stream through the real pipeline)")
        _run_agent(demo, seconds, window)
        demo.consentry("status", show=8)
        demo.step("Employee: see exactly what was stored (decrypted, only on this computer)")
        demo.consentry("mydata", show=8)

        demo.step("Agent: seal a batch; the employee previews it during the hold and releases it early")
        sealed = demo.json("batches", "seal")
        if not sealed:
            raise click.ClickException("the agent stored no records; see agent-stderr.log in " + str(out))
        batch_id = sealed["batch_id"]
        demo.consentry("batches", "show", batch_id, show=6)
        demo.consentry("batches", "release", batch_id, show=1)

        demo.step("IT: enroll this computer with the store (one-time token)")
        token_file = out / "enroll-token"
        _write_private(token_file, issue_token(backend, settings, int(time.time())).encode())
        demo.consentry("enroll", "--token-file", str(token_file), show=1)
        demo.consentry("batches", "sync", show=2)

        demo.step("Steward: review the manifest and privacy checks (never the records) and approve")
        with StoreClient(server.url, signer=steward, role="steward") as client:
            review = client.review(batch_id)
            for check in review.privacy_checks:
                click.echo(f"  [{'pass' if check.passed else 'FAIL'}] {check.name}")
            client.decide(sign_approval(steward, batch_id, review.status.manifest_sha256, "approve",
                                        created=int(time.time())))
        click.echo(f"  approved batch {batch_id}")

        demo.step("Agent: ship the approved batch (HPKE-sealed, signed); keep the store's receipt")
        demo.consentry("batches", "sync", show=2)
        demo.consentry("batches", "list", show=3)
        demo.consentry("ledger", "verify", show=1)

        demo.step("ML engineer: export approved data as a Parquet dataset with its card and datasheet")
        dataset = out / "dataset"
        result = export_parquet(backend, keys.log, dataset, now=int(time.time()))
        for name, rows in sorted(result.files.items()):
            click.echo(f"  {name}: {rows} rows")
    finally:
        server.stop()
        backend.close()

    demo.step("Where everything is")
    rows = [
        ("employee vault (encrypted SQLite)", demo.home / "vault.sqlite3"),
        ("agent log", demo.home / "logs"),
        ("store receipts kept by the agent", demo.home / "receipts.jsonl"),
        ("machine policy used", demo.policy_file),
        ("on-prem store (dir backend)", store_dir),
        ("steward key (0600)", out / "steward" / "steward.key"),
        ("dataset: Parquet, README.md card, datasheet, manifest.json", dataset),
    ]
    for label, path in rows:
        click.echo(f"  {label:<58} {path}")
