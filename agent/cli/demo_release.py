"""The demo's governed-release part: a consumer requests, the steward approves, the store builds, a run is
recorded; then the employee erases and the run is marked. Real ``consentry`` commands only (no store import:
the agent package never imports the store's)."""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

PURPOSE = "internal-work-pattern-models"  # what the embedded notices list (vault/consent.py PURPOSES)


def release_available() -> bool:
    """The release table needs the [release] extra (pyiceberg); without it the demo says so and skips."""
    return importlib.util.find_spec("pyiceberg") is not None


def write_release_policy(d: Any, consumer_key: Path) -> None:
    """The store's release policy: the demo's consumer key, and k = 1 (one employee; a demo-only override)."""
    line = d.run("dataset", "keygen", "--key-file", str(consumer_key), "--name", "demo-ml-team", show=2)
    entry = line.strip().splitlines()[-1]
    (d.store_dir / "release-policy.toml").write_text(
        "# demo only: one employee cannot reach k = 2\nk_min = 1\nallow_small_k_for_demo = true\n"
        f"\n[consumers.keys]\n{entry}\n"
    )


def request_approve_build_use(d: Any, url: str, consumer_key: Path) -> str:
    """Returns the release id. The store must be running (the steward approves through it)."""
    today = datetime.now(UTC).date()
    store = ("--data", str(d.store_dir), "--policy", str(d.policy_file))
    d.step("ML engineer: request a release for one purpose; the store computes its manifest, nothing leaves yet")
    requested = d.json(
        "dataset",
        "request",
        *store,
        "--key-file",
        str(consumer_key),
        "--purpose",
        PURPOSE,
        "--category",
        "keyboard",
        "--category",
        "mouse",
        "--from",
        (today - timedelta(days=2)).isoformat(),
        "--to",
        (today + timedelta(days=2)).isoformat(),
        "--description",
        "demo: typing and pointing rhythm model",
    )
    release_id = str(requested["release_id"])
    eligible = ", ".join(f"{c}: {v['records']} records" for c, v in requested["manifest"]["eligible"].items())
    click.echo(f"  release {release_id} requested; eligible {eligible}")

    d.step("Steward: review the release manifest and approve its hash (from the steward's machine)")
    remote = ("--key-file", str(d.steward_key), "--store-url", url)
    d.run("dataset", "approve", release_id, *remote, show=4)

    d.step("Store: build the approved release as a snapshot of the release table; ML engineer records a run")
    d.run("dataset", "build", release_id, *store, show=3)
    d.run(
        "dataset",
        "use",
        release_id,
        "--run",
        "demo-rhythm-v1",
        "--data",
        str(d.store_dir),
        "--key-file",
        str(consumer_key),
        show=1,
    )
    held = d.json("dataset", "rows", release_id, "--data", str(d.store_dir))
    click.echo(f"  the release holds {held['rows']} rows of {held['subjects']} subject(s), read back from the table")
    if not held["rows"]:
        raise click.ClickException("the built release reads back empty; this is a bug")
    return release_id


def erase_and_show_runs(d: Any, release_id: str) -> None:
    d.step("Employee: erase everything; the store rewrites the release and marks the run that used it")
    d.run("erase", "--all", "--yes", show=4)
    held = d.json("dataset", "rows", release_id, "--data", str(d.store_dir))
    click.echo(f"  the release now holds {held['rows']} rows: the employee's rows are gone from it")
    if held["rows"]:
        raise click.ClickException("the erased employee's rows are still in the release; this is a bug")
    runs = d.run("dataset", "runs", "--data", str(d.store_dir), show=3)
    if "retrain or unlearn" not in runs:
        raise click.ClickException("the run that read the erased subject's release was not marked; this is a bug")
