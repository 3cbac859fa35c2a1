"""The demo's own X display: Xvfb, a window manager, two terminals, and xdotool playing a typist.

Used by ``consentry demo`` when Xvfb, openbox, xterm and xdotool are installed, so the real agent
captures real X input. Nothing here is used by the agent itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from agent.cli.child_processes import end_with_this_process

TOOLS = ("Xvfb", "openbox", "xterm", "xdotool", "xprop")
# What the simulated employee types, password included: the demo then shows that only key
# classes were stored, never a character.
TYPED_TEXT = "Quarterly report draft, login hunter2-Secret! "


def available() -> bool:
    return all(shutil.which(tool) for tool in TOOLS)


class VirtualDisplay:
    """Xvfb on a display it picks itself, openbox, and an xterm per application class."""

    def __init__(self, log: Path) -> None:
        self._log = log.open("ab")
        self._procs: list[subprocess.Popen[bytes]] = []
        self.display = ""
        self.windows: list[str] = []

    def __enter__(self) -> VirtualDisplay:
        try:
            self._start()
        except BaseException:
            self.__exit__()  # never leave an Xvfb, openbox or xterm behind
            raise
        return self

    def _start(self) -> None:
        read_fd, write_fd = os.pipe()
        xvfb = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
            pass_fds=(write_fd,),
            stdout=self._log,
            stderr=self._log,
            preexec_fn=end_with_this_process(),
        )
        os.close(write_fd)
        self._procs.append(xvfb)
        with os.fdopen(read_fd) as pipe:
            self.display = ":" + pipe.readline().strip()
        self._procs.append(
            subprocess.Popen(
                ["openbox", "--sm-disable"],
                env=self.env,
                stdout=self._log,
                stderr=self._log,
                preexec_fn=end_with_this_process(),
            )
        )
        # Windows mapped before the window manager manages the screen can be missed by xdotool.
        self._wait_for(self._window_manager_ready, "openbox to manage the screen")
        for wm_class in ("xterm", "ConsentryDemoTool"):  # an allow-listed terminal, and an unlisted app
            proc = subprocess.Popen(
                ["xterm", "-class", wm_class],
                env=self.env,
                stdout=self._log,
                stderr=self._log,
                preexec_fn=end_with_this_process(),
            )
            self._procs.append(proc)
            self.windows.append(self._wait_window(proc.pid, wm_class))

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("WAYLAND_DISPLAY", "XDG_SESSION_TYPE")}
        env["DISPLAY"] = self.display
        return env

    def xdotool(self, *args: str) -> str:
        done = subprocess.run(["xdotool", *args], env=self.env, capture_output=True, text=True, timeout=10)
        return done.stdout.strip()

    def _window_manager_ready(self) -> bool:
        done = subprocess.run(
            ["xprop", "-root", "_NET_SUPPORTING_WM_CHECK"], env=self.env, capture_output=True, text=True
        )
        return done.returncode == 0 and "window id" in done.stdout

    @staticmethod
    def _wait_for(ready: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            time.sleep(0.1)
        raise RuntimeError(f"timed out waiting for {what}")

    def _wait_window(self, pid: int, wm_class: str) -> str:
        found: list[str] = []

        def mapped() -> bool:
            found.extend(self.xdotool("search", "--onlyvisible", "--pid", str(pid)).split())
            return bool(found)

        self._wait_for(mapped, f"a {wm_class} window on the virtual display")
        return found[0]

    def play_typist(self, seconds: float) -> None:
        """Switch between the windows, type, move and click, for about ``seconds``."""
        stop_at = time.monotonic() + seconds
        turn = 0
        while time.monotonic() < stop_at:
            window = self.windows[turn % len(self.windows)]
            self.xdotool("windowactivate", "--sync", window)
            self.xdotool("type", "--delay", "60", TYPED_TEXT)
            for step in range(20):
                self.xdotool("mousemove", str(200 + 30 * step), str(200 + 15 * (step % 7)))
            self.xdotool("click", "1")
            turn += 1

    def __exit__(self, *exc: object) -> None:
        for proc in reversed(self._procs):
            proc.terminate()
        for proc in self._procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
        self._log.close()


def run_typist_in_background(display: VirtualDisplay, seconds: float) -> threading.Thread:
    thread = threading.Thread(target=display.play_typist, args=(seconds,), daemon=True)
    thread.start()
    return thread


def files_containing(root: Path, needle: bytes, skip: tuple[str, ...] = ()) -> list[Path]:
    """Every file under ``root`` whose bytes contain ``needle`` (the demo's privacy check)."""
    return [
        path
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name not in skip and needle in path.read_bytes()
    ]
