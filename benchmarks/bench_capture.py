"""Capture benchmarks, each against a baseline measured in the same run; prints ratios and targets.

1  callback   classify + enqueue per input event vs an empty Python callback   (target median <= 5 us)
2  pipeline   replayed events through buffers -> windows -> encrypted vault vs
              merely iterating the same events                                 (target >= 200,000 events/s)
3  overhead   the real agent process replaying 1,000 moves/s + 10 keys/s: CPU % of one core and
              peak RSS, vs the same agent with nothing granted                 (target <= 2 %, <= 80 MB)
4  delivery   pynput under Xvfb: key presses and pointer moves received / sent by xdotool
              at full speed                                                    (target 100 %)

python benchmarks/bench_capture.py [--only 1,2,3,4] [--seconds 60]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.capture import Capture  # noqa: E402
from agent.clock import ManualClock  # noqa: E402
from agent.events import EventBuffer  # noqa: E402
from agent.sources.base import SourceKind  # noqa: E402
from agent.sources.pynput_input import make_key_callback, make_mouse_callbacks  # noqa: E402
from agent.sources.replay_stream import SyntheticSpec, synthetic_stream  # noqa: E402


def _xserver() -> Any:
    from tests.xserver import XServer

    return XServer.start(window_manager=False)


# -- 1 ----------------------------------------------------------------------------------------------


def bench_callback(rounds: int = 300, batch: int = 1000) -> None:
    keys: list[Any]
    server = None
    try:
        server = _xserver()
        os.environ["DISPLAY"] = server.display
        from pynput.keyboard import Key, KeyCode

        keys = [KeyCode.from_char(c) for c in "the quick brown fox, 42"] + [
            Key.shift,
            Key.backspace,
            Key.left,
        ]
        source = "real pynput Key/KeyCode objects"
    except Exception:  # no Xvfb: the same duck-typed shapes pynput hands the callback
        keys = [SimpleNamespace(char=c) for c in "the quick brown fox, 42"] + [SimpleNamespace(name="shift")]
        source = "duck-typed stand-ins (no X server)"
    finally:
        if server is not None:
            server.stop()
    stream = (keys * (batch // len(keys) + 1))[:batch]
    buffer = EventBuffer(capacity=batch + 1)
    on_press = make_key_callback(buffer.put)
    on_move, _, _ = make_mouse_callbacks(buffer.put)

    def empty(key: Any) -> None:
        return None

    def per_call(fn: Any, args: list[Any], two: bool = False) -> float:
        samples = []
        for _ in range(rounds):
            buffer.clear()
            t0 = time.perf_counter_ns()
            if two:
                for a in args:
                    fn(a, a)
            else:
                for a in args:
                    fn(a)
            samples.append((time.perf_counter_ns() - t0) / len(args) / 1000)
        return statistics.median(samples)

    base = per_call(empty, stream)
    ours = per_call(on_press, stream)
    moves = per_call(on_move, list(range(batch)), two=True)
    print(f"[1] callback ({source}, median of {rounds} x {batch} calls)")
    print(f"    empty callback      {base:7.3f} us")
    print(
        f"    on_press            {ours:7.3f} us   ratio {ours / base:5.1f}x   target <= 5 us: "
        f"{'met' if ours <= 5 else 'MISSED'}"
    )
    print(f"    on_move             {moves:7.3f} us   ratio {moves / base:5.1f}x")


# -- 2 ----------------------------------------------------------------------------------------------


def bench_pipeline(virtual_seconds: int = 300) -> None:
    from protocol.categories import Category
    from protocol.timeutil import utc_now
    from vault import consent_ops
    from vault.paths import Layout
    from vault.policy import MachinePolicy
    from vault.vault import Vault

    spec = SyntheticSpec(
        seed=1,
        seconds=virtual_seconds,
        key_rate=100,
        move_rate=3000,
        click_rate=5,
        scroll_rate=5,
        file_rate=20,
        focus_every=5,
    )
    wall0 = float(int(time.time()) // 10 * 10)
    mono0 = 1000.0
    streams: dict[SourceKind, list[tuple[Any, ...]]] = {}
    for kind in SourceKind:
        items = list(synthetic_stream(spec, kind))
        if kind is SourceKind.FOCUS:
            # a focus poll every 0.25 s, as the live source sends (names resolved as tokens up front)
            apps = [(mono0 + t, ("cat:ide" if i % 2 else "cat:browser")) for i, (t, _) in enumerate(items)]
            polls, j = [], 0
            for step in range(int(virtual_seconds * 4)):
                t = mono0 + step * 0.25
                while j + 1 < len(apps) and apps[j + 1][0] <= t:
                    j += 1
                polls.append((t - 0.25, t, apps[j][1], False))
            streams[kind] = polls
        else:
            streams[kind] = [(mono0 + t, *payload) for t, payload in items]
    total_input = sum(len(v) for k, v in streams.items() if k is not SourceKind.FOCUS)

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["CONSENTRY_KEYSTORE"] = "file"
        layout = Layout(Path(tmp) / "home")
        policy = MachinePolicy(aggregation_window_seconds=10)
        with Vault.open(layout) as vault:
            receipts = {}
            grant_at = utc_now().fromtimestamp(wall0 - 60, tz=utc_now().tzinfo)
            for category in Category:
                receipt, _ = consent_ops.grant(
                    vault, policy, category, method="api", confirmation="yes-flag", now=grant_at
                )
                receipts[category] = receipt.receipt_id

            t0 = time.perf_counter()
            n = 0
            for events in streams.values():
                for _ in events:
                    n += 1
            baseline = time.perf_counter() - t0

            clock = ManualClock(wall=wall0, mono=mono0)
            capture = Capture(10, clock, capacity=10_000_000)
            capture.focus_started()
            for category in Category:
                capture.begin(category, receipts[category])
            cursors = {kind: 0 for kind in SourceKind}
            written = 0
            t0 = time.perf_counter()
            for second in range(1, virtual_seconds + 2):
                horizon = mono0 + second
                for kind, events in streams.items():  # what the sources' threads would have put
                    put = capture.buffers[kind].put
                    i = cursors[kind]
                    while i < len(events) and events[i][0] <= horizon:
                        put(events[i])
                        i += 1
                    cursors[kind] = i
                clock.advance(horizon - clock.monotonic())
                records = capture.pump()
                if records:
                    written += vault.write_windows(records)
            ours = time.perf_counter() - t0
    print(
        f"[2] pipeline ({total_input:,} input events, {virtual_seconds} s of replayed input, "
        f"{written} windows written encrypted)"
    )
    print(f"    baseline (iterate)  {n / baseline:14,.0f} events/s")
    rate = total_input / ours
    print(
        f"    buffers->windows->vault {rate:10,.0f} events/s   "
        f"ratio {rate / (n / baseline):.3f} of baseline   "
        f"target >= 200,000/s: {'met' if rate >= 200_000 else 'MISSED'}"
    )


# -- 3 ----------------------------------------------------------------------------------------------


def _proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def _proc_peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _run_agent(seconds: float, granted: bool) -> tuple[float, float]:
    from protocol.categories import Category
    from protocol.timeutil import utc_now
    from vault import consent_ops
    from vault.paths import Layout
    from vault.policy import load_policy
    from vault.vault import Vault

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        policy_path = Path(tmp) / "policy.toml"
        env = {
            **os.environ,
            "CONSENTRY_HOME": str(home),
            "CONSENTRY_POLICY": str(policy_path),
            "CONSENTRY_KEYSTORE": "file",
        }
        os.environ["CONSENTRY_KEYSTORE"] = "file"
        layout = Layout(home)
        with Vault.open(layout) as vault:
            if granted:
                for category in (Category.KEYBOARD, Category.MOUSE, Category.APPS):
                    consent_ops.grant(
                        vault,
                        load_policy(policy_path),
                        category,
                        method="api",
                        confirmation="yes-flag",
                        now=utc_now(),
                    )
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agent.cli.agent_cmd",
                "run",
                "--replay",
                "synthetic:seed=1,move_rate=1000,key_rate=10,click_rate=0,scroll_rate=0,file_rate=0,focus_every=30",
            ],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(3.0)  # start-up (imports, vault open) is not steady-state overhead
            cpu0, t0 = _proc_cpu_seconds(proc.pid), time.monotonic()
            time.sleep(seconds)
            cpu1, t1 = _proc_cpu_seconds(proc.pid), time.monotonic()
            rss = _proc_peak_rss_mb(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        return 100.0 * (cpu1 - cpu0) / (t1 - t0), rss


def bench_overhead(seconds: float) -> None:
    idle_cpu, idle_rss = _run_agent(min(seconds, 10.0), granted=False)
    cpu, rss = _run_agent(seconds, granted=True)
    print(f"[3] agent overhead (replayed 1,000 moves/s + 10 keys/s for {seconds:g} s)")
    print(f"    idle agent (nothing granted)  CPU {idle_cpu:5.2f} %  peak RSS {idle_rss:6.1f} MB")
    print(
        f"    capturing agent               CPU {cpu:5.2f} %  peak RSS {rss:6.1f} MB   "
        f"ratio CPU {cpu / max(idle_cpu, 0.01):.1f}x, RSS {rss / idle_rss:.2f}x   "
        f"target <= 2 % and <= 80 MB: {'met' if cpu <= 2 and rss <= 80 else 'MISSED'}"
    )


# -- 4 ----------------------------------------------------------------------------------------------


def bench_delivery(keys: int = 2000, moves: int = 1000) -> None:
    server = _xserver()
    try:
        os.environ["DISPLAY"] = server.display
        from agent.sources.pynput_input import PynputKeyboardSource, PynputMouseSource

        kb_buffer, mouse_buffer = EventBuffer(), EventBuffer()
        kb, mouse = PynputKeyboardSource("linux", server.env), PynputMouseSource("linux", server.env)
        kb.start(kb_buffer)
        mouse.start(mouse_buffer)
        try:
            text = ("abcdefghij" * (keys // 10 + 1))[:keys]
            t0 = time.perf_counter()
            server.xdotool("type", "--delay", "0", text)
            path: list[str] = []
            for i in range(moves):
                path += ["mousemove", str(100 + (i % 2) * 5 + i % 500), str(100 + i % 300)]
            server.xdotool(*path)
            sent_seconds = time.perf_counter() - t0
            deadline = time.monotonic() + 10
            while (len(kb_buffer) < keys or len(mouse_buffer) < moves) and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.2)
        finally:
            kb.stop()
            mouse.stop()
        got_keys, got_moves = len(kb_buffer), len(mouse_buffer)
    finally:
        server.stop()
    print(
        f"[4] pynput delivery under Xvfb ({keys} key presses + {moves} pointer moves sent by xdotool "
        f"at full speed in {sent_seconds:.2f} s)"
    )
    print(f"    keys  received/sent  {got_keys}/{keys} = {100 * got_keys / keys:.1f} %")
    print(
        f"    moves received/sent  {got_moves}/{moves} = {100 * got_moves / moves:.1f} %   target 100 %: "
        f"{'met' if got_keys == keys and got_moves >= moves else 'MISSED'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="1,2,3,4", help="comma-separated benchmark numbers")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the overhead run (bench 3)")
    args = parser.parse_args()
    chosen = {int(x) for x in args.only.split(",") if x.strip()}
    if 1 in chosen:
        bench_callback()
    if 2 in chosen:
        bench_pipeline()
    if 3 in chosen:
        bench_overhead(args.seconds)
    if 4 in chosen:
        bench_delivery()


if __name__ == "__main__":
    main()
