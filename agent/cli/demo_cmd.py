"""``consentry demo``: the whole flow on one machine, in a fresh folder, on embedded defaults.

Every step runs the real ``consentry`` command in a subprocess and shows its output: the store is a
real ``consentry store serve`` on 127.0.0.1 (``dir`` backend), the agent a real ``consentry agent run``
on a synthetic input stream, the steward signs a real approval. Nothing touches the real home,
keyring or policy: everything lives under ``--out``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

import click

from agent.cli.child_processes import end_with_this_process
from protocol.atomic import write_atomic

SYNTHETIC_INPUT = "synthetic:seed=7,key_rate=8,move_rate=120,focus_every=4"


def use_color() -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set to anything (https://no-color.org)."""
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def styled(text: str, **style: Any) -> None:
    click.secho(text, color=use_color(), **style)


WINDOW_SECONDS = 10


class Demo:
    """The demo's folder, its environment, and how it runs and shows each command."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.home = out / "employee-home"
        self.policy_file = out / "policy.toml"
        self.store_dir = out / "store"
        self.steward_key = out / "steward" / "steward-ed25519.key"
        self.dataset = out / "dataset"
        self.env = {
            **os.environ,
            "CONSENTRY_HOME": str(self.home),
            "CONSENTRY_POLICY": str(self.policy_file),
            "CONSENTRY_KEYSTORE": "file",
            "PYTHONWARNINGS": "ignore",
        }

    @staticmethod
    def step(title: str) -> None:
        styled(f"\n== {title}", bold=True)

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "agent", *args]

    def run(self, *args: str, show: int = 12) -> str:
        styled(f"$ consentry {' '.join(args)}", fg="cyan")
        done = subprocess.run(self.command(*args), env=self.env, capture_output=True, text=True)
        lines = (done.stdout + done.stderr).rstrip().splitlines()
        for line in lines[-show:] if show else []:
            click.echo(f"  {line}")
        if done.returncode != 0:
            raise click.ClickException(f"`consentry {' '.join(args)}` failed (exit {done.returncode})")
        return done.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json", show=0))

    def start(self, *args: str, log: IO[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        styled(f"$ consentry {' '.join(args)} &", fg="cyan")
        return subprocess.Popen(
            self.command(*args),
            env=env or self.env,
            stdout=log,
            stderr=log,
            text=True,
            preexec_fn=end_with_this_process(),
        )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_store(url: str, proc: subprocess.Popen[str], timeout: float = 30.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise click.ClickException("the store stopped while starting; see store.log")
        try:
            if httpx.get(f"{url}/v1/health", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise click.ClickException("the store did not start in time; see store.log")


def _stop(proc: subprocess.Popen[str], timeout: float = 20.0) -> int:
    """SIGTERM (a clean stop: the agent flushes its open windows), then wait."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _capture(d: Demo, seconds: float, use_x11: bool) -> None:
    """Run the real agent for ``seconds``: on a virtual X display with a typist, or on a replay stream."""
    from agent.cli import demo_display

    log_path = d.out / "agent.log"
    with log_path.open("w") as agent_log:
        if not use_x11:
            Demo.step(f"Agent: capture for {seconds:.0f} s (a synthetic input stream through the real pipeline)")
            agent = d.start("agent", "run", "--replay", SYNTHETIC_INPUT, log=agent_log)
            try:
                time.sleep(seconds)
            finally:
                code = _stop(agent)
        else:
            Demo.step(f"Agent: capture real X input for {seconds:.0f} s (Xvfb; xdotool types, moves, clicks)")
            with demo_display.VirtualDisplay(d.out / "display.log") as display:
                click.echo(f"  virtual display {display.display}; the typist types: {demo_display.TYPED_TEXT!r}")
                x_env = {k: v for k, v in d.env.items() if k not in ("WAYLAND_DISPLAY", "XDG_SESSION_TYPE")}
                agent = d.start("agent", "run", log=agent_log, env={**x_env, "DISPLAY": display.display})
                try:
                    time.sleep(2)  # let the sources start before the typist does
                    demo_display.run_typist_in_background(display, seconds).join(seconds + 30)
                finally:
                    code = _stop(agent)  # while the display still exists: the agent flushes, then exits
    if code not in (0, -signal.SIGTERM):
        raise click.ClickException(f"the agent stopped with exit code {code}; see {log_path}")


@click.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for everything the demo makes (default: a new temporary folder).",
)
@click.option("--seconds", type=float, default=25.0, show_default=True, help="How long the agent captures.")
@click.option(
    "--input",
    "input_mode",
    type=click.Choice(["auto", "x11", "replay"]),
    default="auto",
    show_default=True,
    help="x11: a virtual X display (Xvfb) typed on by xdotool; replay: a synthetic input stream; "
    "auto: x11 when Xvfb, openbox, xterm and xdotool are installed.",
)
def demo(out: Path | None, seconds: float, input_mode: str) -> None:
    """Run the whole flow on this machine in a temporary home.

    A store on 127.0.0.1, a steward key, consent, capture by the real agent (real X input on
    a virtual display when Xvfb is installed, else a synthetic input stream), a sealed batch, the employee's preview and release, steward approval,
    shipping with a verified receipt, and a Parquet dataset export. Prints where each
    artifact is. Touches nothing outside --out.
    """
    from agent.cli import demo_display, demo_release

    # Stopped by `timeout`, a service manager or `kill`: unwind as for Ctrl-C, so the store and agent
    # this demo started stop with it (the finally blocks below) instead of running on.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    use_x11 = input_mode == "x11" or (input_mode == "auto" and demo_display.available())
    if use_x11 and not demo_display.available():
        raise click.UsageError(
            f"--input x11 needs {', '.join(demo_display.TOOLS)} (apt-get install xvfb openbox xterm xdotool)"
        )
    out = (out or Path(tempfile.mkdtemp(prefix="consentry-demo-"))).resolve()
    out.mkdir(parents=True, exist_ok=True)
    d = Demo(out)
    url = f"http://127.0.0.1:{_free_port()}"

    d.step("IT: create the store's keys, name a data steward, write the machine policy")
    store_keys = d.json("store", "keygen", "--data", str(d.store_dir))
    steward = d.json("steward", "init", "--key-file", str(d.steward_key), "--name", "demo-steward")
    d.policy_file.write_text(
        f"aggregation_window_seconds = {WINDOW_SECONDS}\nhold_hours = 24\n"
        f'[store]\nurl = "{url}"\npublic_key = "{store_keys["public_key"]}"\nlog_key = "{store_keys["log_key"]}"\n'
        f'[stewards]\napprovals_required = 1\n[stewards.keys]\ndemo-steward = "{steward["public_key"]}"\n'
    )
    d.run("policy", "validate", str(d.policy_file), show=1)

    store_log = (out / "store.log").open("w")
    store = d.start(
        "store",
        "serve",
        "--data",
        str(d.store_dir),
        "--port",
        url.rsplit(":", 1)[1],
        "--policy",
        str(d.policy_file),
        log=store_log,
    )
    try:
        _wait_for_store(url, store)
        click.echo(f"  store listening on {url}")

        d.step("Employee: nothing is collected before consent")
        d.run("consent", "show", show=7)
        d.step("Employee: read the notices and grant keyboard, mouse and apps")
        d.run("consent", "grant", "keyboard", "mouse", "apps", "--yes", show=3)

        try:
            _capture(d, seconds, use_x11)
        except RuntimeError as exc:  # the virtual display did not come up
            if input_mode == "x11":
                raise click.ClickException(f"the virtual X display failed: {exc}") from None
            click.echo(f"  the virtual X display failed ({exc}); capturing a synthetic stream instead")
            use_x11 = False
            _capture(d, seconds, use_x11)
        d.run("status", show=8)

        d.step("Employee: see exactly what was stored (decrypted, only on this computer)")
        d.run("mydata", show=8)
        if use_x11:
            secret = demo_display.TYPED_TEXT.split()[-1].encode()
            found = demo_display.files_containing(d.out, secret, skip=("display.log",))
            click.echo(f"  files containing the typed password {secret.decode()!r}: {len(found)}")
            if found:
                raise click.ClickException(f"typed text was stored in {found}; this is a bug, please report it")

        d.step("Agent: seal a batch; the employee previews it during the hold and releases it early")
        sealed = d.json("batches", "seal")
        if not sealed:
            raise click.ClickException(f"the agent stored no records; see {out / 'agent.log'}")
        batch_id = sealed["batch_id"]
        d.run("batches", "show", batch_id, show=8)
        d.run("batches", "release", batch_id, show=1)

        d.step("IT: enroll this computer with the store (one-time token), then the agent submits the manifest")
        token_file = out / "enroll-token"
        token = d.json("store", "token", "--data", str(d.store_dir))["token"]
        write_atomic(token_file, token.encode(), mode=0o600)  # never readable by another account, not even briefly
        d.run("enroll", "--token-file", str(token_file), show=1)
        d.run("batches", "sync", show=2)

        d.step("Steward: review the manifest and privacy checks (never the records) and approve")
        steward_args = ("--key-file", str(d.steward_key), "--store-url", url)
        d.run("steward", "queue", *steward_args, show=3)
        d.run("steward", "show", batch_id, *steward_args, show=12)
        d.run("steward", "approve", batch_id, *steward_args, show=2)

        d.step("Agent: ship the approved batch (HPKE-sealed to the store, signed by the device)")
        d.run("batches", "sync", show=2)
        d.run("batches", "list", show=3)
        d.run("ledger", "verify", show=1)
        d.run("store", "verify-log", "--store-url", url, show=2)
        d.step("Operator: a break-glass export (logged with who and why) of approved data, card and datasheet")
        d.run("store", "export", "--data", str(d.store_dir), "--reason", "demo", str(d.dataset), show=3)
        if demo_release.release_available():  # issue 15: the governed path from store to training
            demo_release.write_release_policy(d, out / "consumer" / "consumer.key")
            release_id = demo_release.request_approve_build_use(d, url, out / "consumer" / "consumer.key")
            demo_release.erase_and_show_runs(d, release_id)
        else:
            click.echo("  (governed releases need the release extra: pip install 'consentry[store,release]')")
    finally:
        _stop(store)
        store_log.close()

    d.step("Where everything is")
    for label, path in [
        ("employee vault (encrypted SQLite)", d.home / "vault.sqlite3"),
        ("agent log", out / "agent.log"),
        ("store receipts kept by the agent", d.home / "receipts.jsonl"),
        ("machine policy", d.policy_file),
        ("on-prem store (dir backend, keys, audit log)", d.store_dir),
        ("steward key (0600)", d.steward_key),
        ("dataset: Parquet, README.md card, DATASHEET.md, manifest.json", d.dataset),
    ]:
        click.echo(f"  {label:<62} {path}")
