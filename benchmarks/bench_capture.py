"""Capture benchmarks, each against a baseline measured in the same run; prints ratios and targets.

1  callback   classify + enqueue per input event vs an empty Python callback   (target median <= 5 us)
2  pipeline   replayed events through buffers -> windows -> encrypted vault vs the
              same windows computed the simplest correct way (group by window,
              plain loops) and written to the same vault, alternated           (target >= 200,000 events/s)
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
from agent.events import CLICK, MOVE, SCROLL, EventBuffer  # noqa: E402
from agent.sources.base import SourceKind  # noqa: E402
from agent.sources.pynput_input import make_key_callback, make_mouse_callbacks  # noqa: E402
from agent.sources.replay_stream import SyntheticSpec, synthetic_stream  # noqa: E402


def _xserver() -> Any:
    from devkit.xserver import XServer

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


def naive_windows(
    streams: dict[SourceKind, list[tuple[Any, ...]]], offset: float, size: int, receipts: dict[Any, str]
) -> list[Any]:
    """The pipeline's aggregation done the simplest correct way: group each source's events by aligned
    window, then compute every statistic from the window's event list with plain loops (the baseline)."""
    from bisect import bisect_right
    from collections import Counter
    from math import hypot

    from protocol.categories import Category, KeyClass, MouseButton
    from protocol.windows import (
        BURST_MIN_PRESSES,
        IKI_BIN_EDGES_MS,
        MOUSE_IDLE_GAP_SECONDS,
        PAUSE_GAP_SECONDS,
        AppFocus,
        AppsWindow,
        FileEventCount,
        FilesWindow,
        KeyboardWindow,
        MouseWindow,
    )

    def grouped(events: list[tuple[Any, ...]]) -> dict[int, list[tuple[Any, ...]]]:
        groups: dict[int, list[tuple[Any, ...]]] = {}
        for event in events:
            groups.setdefault(int((event[0] + offset) // size) * size, []).append(event)
        return groups

    out: list[Any] = []
    for start, events in grouped(streams[SourceKind.KEYBOARD]).items():
        times = [e[0] for e in events]
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        histogram = [0] * len(IKI_BIN_EDGES_MS)
        for gap in gaps:
            histogram[bisect_right(IKI_BIN_EDGES_MS, gap * 1000.0) - 1] += 1
        runs, run = [], 1
        for gap in gaps:
            if gap >= PAUSE_GAP_SECONDS:
                runs.append(run)
                run = 0
            run += 1
        runs.append(run)
        bursts = [r for r in runs if r >= BURST_MIN_PRESSES]
        counts = Counter(e[1] for e in events)
        out.append(
            KeyboardWindow(
                start=start,
                end=start + size,
                receipt_id=receipts[Category.KEYBOARD],
                key_counts={c: counts.get(c, 0) for c in KeyClass},
                iki_histogram=tuple(histogram),
                bursts=len(bursts),
                longest_burst=max(bursts, default=0),
                pauses=sum(1 for gap in gaps if gap >= PAUSE_GAP_SECONDS),
                correction_ratio=counts.get(KeyClass.EDITING, 0) / len(events),
            )
        )
    for start, events in grouped(streams[SourceKind.MOUSE]).items():
        moves = [(e[2], e[3]) for e in events if e[1] == MOVE]
        clicks = Counter(e[2] for e in events if e[1] == CLICK)
        edges = [start - offset] + [e[0] for e in events] + [start + size - offset]
        idle = sum(g for g in (b - a for a, b in zip(edges, edges[1:], strict=False)) if g > MOUSE_IDLE_GAP_SECONDS)
        out.append(
            MouseWindow(
                start=start,
                end=start + size,
                receipt_id=receipts[Category.MOUSE],
                clicks={b: clicks.get(b, 0) for b in MouseButton},
                scroll_steps=sum(e[2] for e in events if e[1] == SCROLL),
                moves=len(moves),
                distance_px=round(
                    sum(hypot(b[0] - a[0], b[1] - a[1]) for a, b in zip(moves, moves[1:], strict=False)), 1
                ),
                idle_seconds=round(min(idle, float(size)), 3),
            )
        )
    for start, events in grouped(streams[SourceKind.FILES]).items():
        counted = Counter(e[1:] for e in events)
        out.append(
            FilesWindow(
                start=start,
                end=start + size,
                receipt_id=receipts[Category.FILES],
                events=tuple(
                    FileEventCount(root_class=r, depth=d, ext=x, kind=k, count=n)
                    for (r, d, x, k), n in sorted(
                        counted.items(), key=lambda item: (item[0][0], item[0][1], item[0][2] or "", item[0][3])
                    )
                ),
            )
        )
    polls = [(p[1], p[2]) for p in streams[SourceKind.FOCUS]]  # (time seen, token)
    for start, window_polls in grouped(polls).items():
        seconds: Counter[str] = Counter()
        switches = 0
        for (t, token), (t_next, token_next) in zip(window_polls, window_polls[1:], strict=False):
            seconds[token] += t_next - t
            switches += token_next != token
        focus = tuple(AppFocus(app=a, seconds=round(s, 1)) for a, s in sorted(seconds.items()) if s >= 0.05)
        if focus:
            out.append(
                AppsWindow(
                    start=start, end=start + size, receipt_id=receipts[Category.APPS], focus=focus, switches=switches
                )
            )
    return out


def bench_pipeline(virtual_seconds: int = 300, rounds: int = 5) -> None:
    """Ours: buffers -> capture core -> windows -> vault. Baseline: the same events aggregated by
    ``naive_windows`` and written to the same kind of vault. Both write encrypted; they alternate."""
    from protocol.categories import Category
    from protocol.timeutil import utc_now
    from vault import consent_ops
    from vault.paths import Layout
    from vault.policy import MachinePolicy
    from vault.vault import Vault

    size = 10
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
    wall0 = float(int(time.time()) // size * size)
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
    os.environ["CONSENTRY_KEYSTORE"] = "file"
    policy = MachinePolicy(aggregation_window_seconds=size)

    def fresh_vault(folder: Path) -> tuple[Vault, dict[Any, str]]:
        vault = Vault.open(Layout(folder))
        grant_at = utc_now().fromtimestamp(wall0 - 60, tz=utc_now().tzinfo)
        receipts = {}
        for category in Category:
            receipt, _ = consent_ops.grant(vault, policy, category, method="api", confirmation="yes-flag", now=grant_at)
            receipts[category] = receipt.receipt_id
        return vault, receipts

    def run_ours(folder: Path) -> tuple[float, int]:
        vault, receipts = fresh_vault(folder)
        with vault:
            clock = ManualClock(wall=wall0, mono=mono0)
            capture = Capture(size, clock, capacity=10_000_000)
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
            for category in Category:  # the last windows, as the agent closes them at shutdown
                written += vault.write_windows(capture.cut(category))
            return time.perf_counter() - t0, written

    def run_naive(folder: Path) -> tuple[float, int]:
        vault, receipts = fresh_vault(folder)
        with vault:
            t0 = time.perf_counter()
            records = naive_windows(streams, wall0 - mono0, size, receipts)
            written = sum(vault.write_windows(records[i : i + 50]) for i in range(0, len(records), 50))
            return time.perf_counter() - t0, written

    ours_rates, naive_rates, ratios = [], [], []
    written = naive_written = 0
    for round_number in range(rounds):
        with tempfile.TemporaryDirectory() as tmp:
            order = [("ours", run_ours), ("naive", run_naive)]
            if round_number % 2:
                order.reverse()
            got = {name: run(Path(tmp) / name) for name, run in order}
        ours_rates.append(total_input / got["ours"][0])
        naive_rates.append(total_input / got["naive"][0])
        ratios.append(ours_rates[-1] / naive_rates[-1])
        written, naive_written = got["ours"][1], got["naive"][1]
    print(
        f"[2] pipeline ({total_input:,} input events, {virtual_seconds} s of replayed input, {size} s windows, "
        f"{rounds} rounds alternated; windows written encrypted: ours {written}, baseline {naive_written})"
    )
    print(f"    baseline: group by window + plain loops -> vault {statistics.median(naive_rates):12,.0f} events/s")
    rate = statistics.median(ours_rates)
    print(
        f"    ours: buffers -> capture core -> vault         {rate:12,.0f} events/s   "
        f"ratio {statistics.median(ratios):.2f} of baseline (median of rounds)   "
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
