"""A real X server for tests: Xvfb on a free display, optionally openbox, xdotool and xterm windows.

with XServer.start(window_manager=True) as x:
    win = x.open_window("xterm", "-class", "ProbeApp")
    x.activate(win)
    x.xdotool("type", "--delay", "20", "hello")
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from devkit.components import require_executable

START_TIMEOUT = 10.0


@dataclass
class XServer:
    display: str
    xvfb: subprocess.Popen[bytes]
    children: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        """The environment of a process that should use this display (and not a Wayland one)."""
        env = {k: v for k, v in os.environ.items() if k not in ("WAYLAND_DISPLAY", "XDG_SESSION_TYPE")}
        env["DISPLAY"] = self.display
        return env

    @classmethod
    def start(cls, window_manager: bool = False) -> XServer:
        """Start Xvfb on a display it picks itself (-displayfd), so parallel runs never collide."""
        xvfb = require_executable("Xvfb", "xvfb")
        require_executable("xdotool", "xdotool")
        if window_manager:
            require_executable("openbox", "openbox")
        read_fd, write_fd = os.pipe()
        proc = subprocess.Popen(
            [
                xvfb,
                "-displayfd",
                str(write_fd),
                "-screen",
                "0",
                "1280x800x24",
                "-nolisten",
                "tcp",
                "-noreset",
            ],
            pass_fds=(write_fd,),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(write_fd)
        data = b""
        deadline = time.monotonic() + START_TIMEOUT
        try:
            # Read up to the newline: closing the pipe before Xvfb wrote all of it kills Xvfb (SIGPIPE).
            while not data.endswith(b"\n") and time.monotonic() < deadline:
                ready, _, _ = select.select([read_fd], [], [], max(0.0, deadline - time.monotonic()))
                chunk = os.read(read_fd, 16) if ready else b""
                if not chunk:
                    break
                data += chunk
        finally:
            os.close(read_fd)
        number = data.decode().strip()
        if not number:
            proc.kill()
            raise RuntimeError("Xvfb did not report a display number")
        server = cls(display=f":{number}", xvfb=proc)
        if window_manager:
            server.children.append(
                subprocess.Popen(
                    ["openbox", "--sm-disable"],
                    env=server.env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            server.wait_for(lambda: server._root_has("_NET_SUPPORTING_WM_CHECK"), "openbox to manage the screen")
        return server

    def _root_has(self, atom: str) -> bool:
        out = subprocess.run(["xprop", "-root", atom], env=self.env, capture_output=True, text=True)
        return out.returncode == 0 and "not found" not in out.stdout and "no such atom" not in out.stdout

    def wait_for(self, predicate: callable[[], bool], what: str, timeout: float = START_TIMEOUT) -> None:  # type: ignore[valid-type]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise TimeoutError(f"timed out waiting for {what}")

    def xdotool(self, *args: str) -> str:
        out = subprocess.run(["xdotool", *args], env=self.env, capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise RuntimeError(f"xdotool {' '.join(args[:2])} failed: {out.stderr.strip()}")
        return out.stdout.strip()

    def type(self, text: str, delay_ms: int = 15) -> None:
        self.xdotool("type", "--delay", str(delay_ms), text)

    def open_window(self, *command: str, wm_class: str | None = None) -> str:
        """Start an X client (e.g. ``xterm -class Foo``) and return its window id once mapped."""
        proc = subprocess.Popen(list(command), env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.children.append(proc)
        found: list[str] = []

        def mapped() -> bool:
            out = subprocess.run(
                ["xdotool", "search", "--onlyvisible", "--pid", str(proc.pid)],
                env=self.env,
                capture_output=True,
                text=True,
            )
            ids = out.stdout.split()
            if ids:
                found.append(ids[0])
            return bool(ids)

        self.wait_for(mapped, f"{command[0]} to map a window")
        return found[0]

    def activate(self, window: str) -> None:
        self.xdotool("windowactivate", "--sync", window)

    def kill(self) -> None:
        """The X server dies, as when a session crashes."""
        self.xvfb.send_signal(signal.SIGKILL)
        self.xvfb.wait(timeout=10)

    def stop(self) -> None:
        for child in reversed(self.children):
            if child.poll() is None:
                child.terminate()
                try:
                    child.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    child.kill()
        if self.xvfb.poll() is None:
            self.xvfb.terminate()
            try:
                self.xvfb.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.xvfb.kill()


@contextmanager
def x_server(window_manager: bool = False) -> Iterator[XServer]:
    server = XServer.start(window_manager=window_manager)
    try:
        yield server
    finally:
        server.stop()
