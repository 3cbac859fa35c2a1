"""Keyboard and mouse through pynput: the callback classifies, stamps and enqueues, nothing more."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from agent.classify import classify_button, classify_key
from agent.errors import SourceUnavailable, UnsupportedPlatform
from agent.events import CLICK, MOVE, SCROLL, EventSink
from agent.sources.base import ThreadedSource
from agent.sources.session import session_problem

log = logging.getLogger("consentry.agent")

READY_TIMEOUT = 5.0
LOST_REASON = "the input session went away (display closed or permission withdrawn)"


def make_key_callback(put: Callable[[tuple[Any, ...]], None]) -> Callable[[Any], None]:
    """The on_press callback: nothing of the key but its class survives this function."""
    monotonic = time.monotonic
    classify = classify_key

    def on_press(key: Any) -> None:
        put((monotonic(), classify(key)))

    return on_press


def make_mouse_callbacks(
    put: Callable[[tuple[Any, ...]], None],
) -> tuple[Callable[..., None], Callable[..., None], Callable[..., None]]:
    monotonic = time.monotonic

    def on_move(x: int, y: int) -> None:
        put((monotonic(), MOVE, x, y))

    def on_click(x: int, y: int, button: Any, pressed: bool) -> None:
        if pressed:  # presses only: a release is not a click
            put((monotonic(), CLICK, classify_button(getattr(button, "name", None)), 0))

    def on_scroll(x: int, y: int, dx: int, dy: int) -> None:
        put((monotonic(), SCROLL, abs(dx) + abs(dy), 0))

    return on_move, on_click, on_scroll


def _import_pynput(module: str, platform: str, env: Mapping[str, str]) -> Any:
    if platform not in ("darwin", "win32") and not platform.startswith(("linux", "freebsd", "openbsd", "netbsd")):
        raise UnsupportedPlatform(f"keyboard and mouse capture is not supported on {platform}")
    problem = session_problem(platform, env)
    if problem:
        raise SourceUnavailable(problem)
    try:
        if module == "keyboard":
            from pynput import keyboard as mod
        else:
            from pynput import mouse as mod
    except ImportError:
        # pynput connects to the display at import time on X11; the message would name the display.
        raise SourceUnavailable("cannot connect to the display for input capture") from None
    return mod


class _PynputSource(ThreadedSource):
    """Owns one pynput listener thread and reports its unexpected death to the sink."""

    module = ""

    def __init__(self, platform: str = sys.platform, env: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self._platform = platform
        self._env = dict(os.environ) if env is None else env

    def _callbacks(self, put: Callable[[tuple[Any, ...]], None]) -> dict[str, Callable[..., None]]:
        raise NotImplementedError

    def start(self, sink: EventSink) -> None:
        self._check_not_started()
        mod = _import_pynput(self.module, self._platform, self._env)
        listener = _supervised(mod.Listener, sink)(**self._callbacks(sink.put))
        listener.start()
        deadline = time.monotonic() + READY_TIMEOUT
        # pynput's own wait() blocks forever if the thread dies before it is ready.
        while not getattr(listener, "_ready", True) and listener.is_alive() and time.monotonic() < deadline:
            time.sleep(0.005)
        if not listener.is_alive() or not getattr(listener, "_ready", True) or not self._recording(listener, deadline):
            self._halt(listener)
            raise SourceUnavailable("the input listener could not start (display or permission problem)")
        self._worker = listener

    def _recording(self, listener: Any, deadline: float) -> bool:
        """On X, wait for the server to record: pynput says ready a moment before it enables its
        XRecord context, and a key pressed in that moment is lost. The agent says "capturing" once
        ``start`` returns, so that must be true from then on."""
        if self._platform in ("darwin", "win32"):  # their hooks are installed when pynput says ready
            return True
        return bool(listener.consentry_recording.wait(max(0.0, deadline - time.monotonic())))

    def _halt(self, worker: Any) -> None:
        _stop_quietly(worker)  # a pynput Listener: a thread that ends when told
        if self._platform not in ("darwin", "win32"):
            _end_x_recording(worker, self._env.get("DISPLAY"))


class PynputKeyboardSource(_PynputSource):
    module = "keyboard"

    def _callbacks(self, put: Callable[[tuple[Any, ...]], None]) -> dict[str, Callable[..., None]]:
        return {"on_press": make_key_callback(put)}


class PynputMouseSource(_PynputSource):
    module = "mouse"

    def _callbacks(self, put: Callable[[tuple[Any, ...]], None]) -> dict[str, Callable[..., None]]:
        on_move, on_click, on_scroll = make_mouse_callbacks(put)
        return {"on_move": on_move, "on_click": on_click, "on_scroll": on_scroll}


def _supervised(listener_cls: type, sink: EventSink) -> type:
    """A Listener subclass whose thread tells the sink when it ends without being stopped."""

    class Supervised(listener_cls):
        consentry_stopping = False

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.consentry_recording = threading.Event()

        def _handler(self, reply: Any) -> None:
            # X only: XRecord's first reply to the enable request (StartOfData) comes once the server
            # records. Every reply passes here, hence the cheap check before the lock of set().
            if not self.consentry_recording.is_set():
                self.consentry_recording.set()
            super()._handler(reply)

        def run(self) -> None:
            try:
                super().run()
            except Exception as exc:  # X connection closed, permission revoked: the thread ends here
                # Stopping closes the display under the thread, which then raises: that is expected.
                level = logging.DEBUG if self.consentry_stopping else logging.WARNING
                log.log(level, "input listener ended: %s", type(exc).__name__)
            finally:
                if not self.consentry_stopping:
                    sink.unavailable(LOST_REASON)

    return Supervised


def _stop_quietly(listener: Any) -> None:
    listener.consentry_stopping = True
    try:
        listener.stop()
    except Exception as exc:  # stopping a listener whose display is gone raises; it is stopped anyway
        log.debug("input listener stop: %s", type(exc).__name__)


def _end_x_recording(listener: Any, display_name: str | None) -> None:
    """End the X listener's recording from a connection of our own, so its thread ends at once.

    pynput's ``stop`` asks for the end on the connection its thread is blocked receiving the
    recording on, which the server does not read until the recording ends (XRecord wants a separate
    control connection): the thread would linger until the next key or mouse event, and the agent's
    stop wait for it. Disabling a context that already ended is harmless.
    """
    context = getattr(listener, "_context", None)
    if context is None:
        return
    try:
        from Xlib import display

        control = display.Display(display_name)
    except Exception as exc:  # no display any more: the recording ended with it
        log.debug("x recording stop: %s", type(exc).__name__)
        return
    try:
        control.record_disable_context(context)
        control.sync()
    except Exception as exc:
        log.debug("x recording stop: %s", type(exc).__name__)
    finally:
        control.close()
