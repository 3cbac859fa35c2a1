"""``consentry agent``: run the per-user capture daemon, or make a replay recording for it."""

from __future__ import annotations

from pathlib import Path

import click


@click.group("agent")
def agent() -> None:
    """The capture agent that runs in your session (it captures only what you granted)."""


def _replay_config(replay: str | None, speed: float) -> object:
    from agent.sources.replay_stream import SyntheticSpec
    from agent.sources.select import ReplayConfig

    if replay is None:
        return None
    if speed <= 0:
        raise click.BadParameter("must be positive", param_hint="--replay-speed")
    if replay == "synthetic" or replay.startswith("synthetic:"):
        try:
            spec = SyntheticSpec.parse(replay.partition(":")[2])
        except ValueError as exc:
            raise click.BadParameter(str(exc).splitlines()[0], param_hint="--replay") from None
        return ReplayConfig(synthetic=spec, speed=speed)
    path = Path(replay)
    if not path.is_file():
        raise click.BadParameter("no such recording file (or use synthetic[:seed=N,...])", param_hint="--replay")
    return ReplayConfig(recording=path, speed=speed)


@agent.command("run")
@click.option(
    "--replay",
    metavar="FILE|synthetic[:OPTS]",
    help="Feed a recording (JSON lines) or a synthetic stream instead of live input, e.g. "
    "synthetic:seed=1,key_rate=10,move_rate=1000. For demos and benchmarks; consent still applies.",
)
@click.option("--replay-speed", type=float, default=1.0, show_default=True, help="Replay time factor.")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages too.")
def run(replay: str | None, replay_speed: float, verbose: bool) -> None:
    """Run the capture agent in the foreground until SIGTERM or Ctrl-C.

    Nothing is captured for a category you have not granted (consentry consent grant CATEGORY).
    Logs go to stderr and to the logs folder of your Consentry home; status to run/status.json.
    """
    from agent.errors import AlreadyRunning, HomeLost
    from agent.runner import run_agent
    from protocol.errors import ConsentryError
    from vault.paths import default_layout, default_policy_path

    config = _replay_config(replay, replay_speed)
    try:
        run_agent(default_layout(), default_policy_path(), replay=config, verbose=verbose)  # type: ignore[arg-type]
    except AlreadyRunning as exc:
        raise click.ClickException(f"{exc}. Check it with: consentry status") from None
    except HomeLost as exc:
        raise click.ClickException(str(exc)) from None
    except ConsentryError as exc:
        raise click.ClickException(f"{exc}\nCheck the vault with: consentry doctor") from None


@agent.command("make-recording")
@click.argument("out", type=click.Path(dir_okay=False, writable=True, path_type=Path))
@click.option("--seconds", type=float, default=60.0, show_default=True, help="Length of the stream.")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same stream.")
@click.option("--options", default="", metavar="OPTS", help="More synthetic options: key_rate=10,move_rate=200")
def make_recording(out: Path, seconds: float, seed: int, options: str) -> None:
    """Write a deterministic synthetic input recording for --replay (no real input is read)."""
    from agent.sources.replay_stream import SyntheticSpec, write_recording

    try:
        spec = SyntheticSpec.parse(f"{options},seed={seed},seconds={seconds}")
    except ValueError as exc:
        raise click.BadParameter(str(exc).splitlines()[0], param_hint="--options") from None
    count = write_recording(out, spec)
    click.echo(f"wrote {count} events ({seconds:g} s)")


if __name__ == "__main__":
    agent()
