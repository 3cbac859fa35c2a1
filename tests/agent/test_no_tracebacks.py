"""No traceback and no secret ever reaches a user: every command, as a real subprocess, in bad conditions.

The command tree is walked from ``agent.cli.main.cli``, so a new command is covered the day it is added;
each gets plausible arguments. They run against an enrolled vault whose store is gone (a closed port on
127.0.0.1), and ``enroll`` also with malformed token files (quotes, binary, empty, huge) against both a
live store and the closed port. The output must contain no "Traceback" and never the token.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import httpx
import pytest

from agent import shipping
from agent.cli.main import cli
from devkit.factories import grant, keyboard_window, mouse_window
from devkit.store_kit import Harness, Stewards, running_store
from protocol import SigningKey, b64encode
from protocol.categories import Category
from protocol.keyfile import write_key_file
from store.auth import issue_token
from vault import batches
from vault.paths import Layout
from vault.policy import MachinePolicy, StewardConfig, StoreConfig
from vault.vault import Vault

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime.now(UTC).replace(microsecond=0)
# Commands that run until stopped: they get a few seconds, then SIGTERM (a user's Ctrl-C is SIGINT;
# both must end without a traceback).
LONG_RUNNING = {("agent", "run"), ("store", "serve"), ("steward", "review"), ("demo",), ("tray",), ("page",)}
RUN_SECONDS = 6.0


@dataclass
class World:
    """An enrolled employee home, a steward key, a store folder: all pointing at a store that is gone."""

    home: Path
    policy: Path
    url: str
    token: str  # a real, unused enrollment token of the (former) store: it must never be printed
    steward_key: Path
    store_data: Path
    batch_id: str


def _policy_toml(url: str, policy: MachinePolicy) -> str:
    assert policy.store is not None
    lines = [
        "hold_hours = 24",
        "[store]",
        f'url = "{url}"',
        f'public_key = "{policy.store.public_key}"',
        f'log_key = "{policy.store.log_key}"',
        "[stewards]",
        f"approvals_required = {policy.stewards.approvals_required}",
        "[stewards.keys]",
    ]
    lines += [f'{name} = "{key}"' for name, key in policy.stewards.keys.items()]
    return "\n".join(lines) + "\n"


def _policy_for(store: Harness, steward: SigningKey) -> MachinePolicy:
    return MachinePolicy(
        hold_hours=24,
        store=StoreConfig(
            url=store.url,
            public_key=b64encode(store.keys.seal.public_bytes),
            log_key=b64encode(store.keys.log.public_bytes),
        ),
        stewards=StewardConfig(keys={"steward0": b64encode(steward.public_bytes)}, approvals_required=1),
    )


@pytest.fixture(scope="module")
def gone(tmp_path_factory: pytest.TempPathFactory) -> World:
    """A home enrolled with a real store that then stopped: its port on 127.0.0.1 is closed."""
    root = tmp_path_factory.mktemp("world")
    home = root / "home"
    steward = SigningKey.generate()
    steward_key = root / "steward.key"
    write_key_file(steward_key, "ed25519", steward.private_bytes())
    previous = os.environ.get("CONSENTRY_KEYSTORE")
    os.environ["CONSENTRY_KEYSTORE"] = "file"
    try:
        with running_store("dir", root, Stewards([steward], 1)) as store:
            policy = _policy_for(store, steward)
            with Vault.open(Layout(home)) as vault:
                receipts = {
                    c: grant(vault, c, NOW - timedelta(hours=3), policy) for c in (Category.KEYBOARD, Category.MOUSE)
                }
                t = int(NOW.timestamp()) // 60 * 60 - 3600
                vault.write_windows(
                    [keyboard_window(t, receipts[Category.KEYBOARD]), mouse_window(t, receipts[Category.MOUSE])]
                )
                shipping.enroll(vault, policy, issue_token(store.backend, store.settings, int(NOW.timestamp())), NOW)
                info = batches.seal_pending(vault, policy, NOW)
                batches.release(vault, info.batch_id, NOW)  # the next sync must reach the store to submit it
            token = issue_token(store.backend, store.settings, int(NOW.timestamp()))
            url = store.url
    finally:
        if previous is None:
            os.environ.pop("CONSENTRY_KEYSTORE", None)
        else:
            os.environ["CONSENTRY_KEYSTORE"] = previous
    with pytest.raises(httpx.TransportError):
        httpx.get(url + "/v1/health", timeout=2.0)  # really gone
    policy_file = root / "policy.toml"
    policy_file.write_text(_policy_toml(url, policy), encoding="utf-8")
    return World(home, policy_file, url, token, steward_key, root / "store-data", info.batch_id)


def _leaf_commands() -> list[tuple[tuple[str, ...], click.Command]]:
    found: list[tuple[tuple[str, ...], click.Command]] = []

    def walk(command: click.Command, path: tuple[str, ...], parent: click.Context | None) -> None:
        ctx = click.Context(command, info_name=path[-1] if path else "consentry", parent=parent)
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                if sub is not None and not sub.hidden:
                    walk(sub, (*path, name), ctx)
        else:
            found.append((path, command))

    walk(cli, (), None)
    return found


def _plausible(path: tuple[str, ...], command: click.Command, w: World, scratch: Path) -> list[str]:
    """Arguments a user could type: required ones filled in by their type, plus store and key options."""
    args: list[str] = []
    for param in command.params:
        if isinstance(param, click.Argument) and param.required:
            args += [_value_for(param, path, w, scratch)] * (1 if param.nargs == 1 else 1)
        elif isinstance(param, click.Option) and param.required:
            args += [param.opts[0], _value_for(param, path, w, scratch)]
    names = {p.name for p in command.params}
    if "store_url" in names:
        args += ["--store-url", w.url]
    if "key_file" in names:
        args += ["--key-file", str(w.steward_key)]
    if "data_dir" in names and "--data" not in args:
        args += ["--data", str(w.store_data)]
    if path == ("erase",):
        args += ["--all", "--yes"]  # also asks the (gone) store to erase
    if path == ("demo",):
        args += ["--out", str(scratch / "demo"), "--input", "replay", "--seconds", "1"]
    if path == ("store", "serve"):
        args += ["--port", w.url.rsplit(":", 1)[1], "--backend", "postgres", "--dsn", "postgresql://u@127.0.0.1:9/x"]
    if path == ("agent", "run"):
        args += ["--replay", "synthetic:seed=1"]
    return args


def _value_for(param: click.Parameter, path: tuple[str, ...], w: World, scratch: Path) -> str:
    name = param.name or ""
    if name == "batch_id":
        return w.batch_id
    if name == "categories" or name == "category":
        return "keyboard"
    if name == "token_file":
        token_file = scratch / "token"
        token_file.write_text(w.token + "\n")
        return str(token_file)
    if name == "reason":
        return "not enough subjects"
    if name == "apps":
        return "org.example.App"
    if isinstance(param.type, click.Path):
        if path == ("policy", "validate"):
            return str(w.policy)
        return str(scratch / f"{name}-out")
    return "x" * 8


def _run(args: list[str], w: World, home: Path, *, long_running: bool = False) -> str:
    """Run ``consentry ARGS`` as a real process; its stdout and stderr together, as a user sees them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSENTRY_")}
    env.update(CONSENTRY_HOME=str(home), CONSENTRY_POLICY=str(w.policy), CONSENTRY_KEYSTORE="file", NO_COLOR="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )
    try:
        output, _ = proc.communicate(timeout=RUN_SECONDS if long_running else 120)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT if long_running else signal.SIGKILL)
        try:
            output, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
    return output


def _copy_home(w: World, scratch: Path) -> Path:
    home = scratch / "home"
    shutil.copytree(w.home, home)
    return home


LEAVES = _leaf_commands()


def test_the_walk_finds_the_commands_a_user_has() -> None:
    paths = {p for p, _ in LEAVES}
    assert {("erase",), ("enroll",), ("store", "verify-log"), ("steward", "approve"), ("batches", "sync")} <= paths
    assert len(paths) >= 30


BAD_TOKENS = {
    "quotes": lambda t: f'"{t}"\n'.encode(),
    "binary": lambda t: b"\xff\xfe\x00" + t.encode() + b"\x00\x9c",
    "empty": lambda t: b"",
    "huge": lambda t: (t + "\n") * 50_000,
    "spaces": lambda t: f"token = {t}\n".encode(),
}


def _write_token(path: Path, kind: str, token: str) -> None:
    data = BAD_TOKENS[kind](token)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())


@pytest.mark.parametrize("kind", sorted(BAD_TOKENS))
def test_enroll_with_a_malformed_token_file_prints_neither_traceback_nor_token(tmp_path: Path, kind: str) -> None:
    steward = SigningKey.generate()
    with running_store("dir", tmp_path, Stewards([steward], 1)) as store:  # a live store: the token would be used
        token = issue_token(store.backend, store.settings, int(NOW.timestamp()))
        policy_file = tmp_path / "policy.toml"
        policy_file.write_text(_policy_toml(store.url, _policy_for(store, steward)), encoding="utf-8")
        w = World(tmp_path / "home", policy_file, store.url, token, tmp_path / "none", tmp_path / "none", "")
        token_file = tmp_path / "token"
        _write_token(token_file, kind, token)
        output = _run(["enroll", "--token-file", str(token_file)], w, w.home)
    assert "Traceback" not in output, output
    assert token not in output and token[:16] not in output, output
    assert output.startswith("Usage:") or output.startswith("Error:"), output
    assert len(output.strip().splitlines()) <= 4, output


@pytest.mark.parametrize(("path", "command"), LEAVES, ids=[" ".join(p) for p, _ in LEAVES])
def test_every_command_against_a_store_that_is_gone_prints_no_traceback_and_no_token(
    gone: World, tmp_path: Path, path: tuple[str, ...], command: click.Command
) -> None:
    w = gone
    home = _copy_home(w, tmp_path)
    args = [*path, *_plausible(path, command, w, tmp_path)]
    output = _run(args, w, home, long_running=path in LONG_RUNNING)
    assert "Traceback" not in output, f"{args}:\n{output}"
    assert w.token not in output and w.token[:16] not in output, f"{args}:\n{output}"
    for line in output.splitlines():
        assert not line.startswith('  File "'), f"{args}:\n{output}"
    log = home / "logs" / "cli-errors.log"
    if log.exists():
        assert w.token not in log.read_text(errors="replace")


@pytest.mark.parametrize("kind", sorted(BAD_TOKENS))
def test_enroll_with_a_malformed_token_against_a_store_that_is_gone(gone: World, tmp_path: Path, kind: str) -> None:
    token_file = tmp_path / "token"
    _write_token(token_file, kind, gone.token)
    output = _run(["enroll", "--token-file", str(token_file)], gone, _copy_home(gone, tmp_path))
    assert "Traceback" not in output and gone.token not in output, output


def test_a_good_token_against_a_store_that_is_gone_is_one_line_with_a_next_step(gone: World, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(gone.token + "\n")
    output = _run(["enroll", "--token-file", str(token_file)], gone, _copy_home(gone, tmp_path))
    assert output.startswith("Error: ") and "cannot reach the store" in output, output
    assert gone.token not in output and len(output.strip().splitlines()) == 1, output


def test_verify_log_against_a_store_that_is_gone_is_one_line(gone: World, tmp_path: Path) -> None:
    output = _run(["store", "verify-log", "--store-url", gone.url], gone, _copy_home(gone, tmp_path))
    assert output.startswith("Error: ") and len(output.strip().splitlines()) == 1, output
    assert "Is the store running" in output or "cannot reach the store" in output, output


def test_a_secret_is_never_generated_for_display(tmp_path: Path) -> None:
    """The token check itself: a fresh random token never shows up in the enroll error for quotes."""
    token = secrets.token_urlsafe(32)
    from agent.cli.enroll_cmd import read_token

    path = tmp_path / "t"
    path.write_bytes(f"'{token}'".encode())
    with pytest.raises(click.UsageError) as refused:
        read_token(path)
    assert token not in refused.value.format_message()


def test_an_unexpected_error_is_one_line_and_its_log_record_quotes_nothing(tmp_path: Path) -> None:
    """What the boundary writes for a bug: class names and code locations, never what the exception says."""
    from pydantic import BaseModel, Field

    from agent.cli import crash

    secret = secrets.token_urlsafe(32)

    class Token(BaseModel):
        token: str = Field(pattern=r"^[a-z]+$")

    def failing() -> None:
        try:
            Token(token=secret)  # pydantic quotes the rejected input in its message
        except ValueError as exc:
            raise KeyError(f"lookup of {secret} failed") from exc

    with pytest.raises(KeyError) as caught:
        failing()
    line = crash.one_line(caught.value, tmp_path / "logs")
    assert secret not in line and "KeyError" in line and "\n" not in line
    log = tmp_path / "logs" / crash.LOG_NAME
    text = log.read_text()
    assert secret not in text and "ValidationError" in text and "failing" in text
    assert log.stat().st_mode & 0o077 == 0
    with pytest.raises(ValueError) as invalid:
        Token(token=secret)
    assert secret not in crash.one_line(invalid.value, tmp_path / "logs")
