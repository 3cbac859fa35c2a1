"""The recorder: finished windows reach a real vault in one write; storage trouble backs off and
retries; records whose consent ended are dropped, never written."""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from agent.clock import ManualClock
from agent.recorder import FIRST_RETRY_SECONDS, MAX_PENDING, MAX_RETRY_SECONDS, Recorder, storage_message
from devkit.factories import grant, keyboard_window, mouse_window
from protocol.categories import Category
from protocol.errors import KeyUnavailable
from protocol.windows import AnyWindow
from vault import consent_ops
from vault.paths import Layout
from vault.policy import MachinePolicy
from vault.vault import Vault

T0 = 1_772_442_000  # 2026-03-02 09:00 UTC
GRANTED = datetime.fromtimestamp(T0 - 3600, UTC)
WALL = datetime.fromtimestamp(T0 + 600, UTC)


@pytest.fixture
def vault(layout: Layout) -> Iterator[Vault]:
    with Vault.open(layout) as vault:
        yield vault


def recorder_for(write: Callable[[Sequence[AnyWindow]], int], clock: ManualClock) -> Recorder:
    return Recorder(write, clock.monotonic, lambda: WALL)


def test_a_flush_writes_every_pending_window_and_notes_when(vault: Vault) -> None:
    keys = grant(vault, Category.KEYBOARD, GRANTED)
    mouse = grant(vault, Category.MOUSE, GRANTED)
    recorder = recorder_for(vault.write_windows, ManualClock(wall=T0))
    recorder.add([keyboard_window(T0, keys, letters=17), mouse_window(T0, mouse)])
    recorder.add([keyboard_window(T0 + 60, keys, letters=3)])
    assert recorder.due()
    assert recorder.flush() is True
    assert recorder.pending == [] and recorder.written == 3 and recorder.refused == 0
    assert recorder.error is None and recorder.last_flush == WALL
    stored = vault.read_windows("keyboard")
    letters = [(w.start, w.receipt_id, w.model_dump(mode="json")["key_counts"]["letter"]) for w in stored]
    assert letters == [(T0, keys, 17), (T0 + 60, keys, 3)]
    assert [(w.start, w.receipt_id) for w in vault.read_windows("mouse")] == [(T0, mouse)]
    assert not recorder.due()


def test_windows_whose_consent_ended_before_the_flush_are_dropped_and_counted(vault: Vault) -> None:
    keys = grant(vault, Category.KEYBOARD, GRANTED)
    mouse = grant(vault, Category.MOUSE, GRANTED)
    recorder = recorder_for(vault.write_windows, ManualClock(wall=T0))
    recorder.add([mouse_window(T0, mouse), keyboard_window(T0, keys), mouse_window(T0 + 60, mouse)])
    consent_ops.revoke(vault, MachinePolicy(), [Category.MOUSE], method="cli", now=WALL - timedelta(seconds=1))
    assert recorder.flush() is True
    assert recorder.written == 1 and recorder.refused == 2 and recorder.pending == []
    assert recorder.error is None
    assert vault.count_windows("mouse") == 0
    assert [(w.start, w.receipt_id) for w in vault.read_windows("keyboard")] == [(T0, keys)]


def test_discard_forgets_only_the_category_whose_consent_ended(vault: Vault) -> None:
    keys = grant(vault, Category.KEYBOARD, GRANTED)
    mouse = grant(vault, Category.MOUSE, GRANTED)
    recorder = recorder_for(vault.write_windows, ManualClock(wall=T0))
    recorder.add([mouse_window(T0, mouse), keyboard_window(T0, keys), mouse_window(T0 + 60, mouse)])
    assert recorder.discard("mouse") == 2
    assert [(w.category, w.start) for w in recorder.pending] == [("keyboard", T0)]
    assert recorder.discard("mouse") == 0
    recorder.flush()
    assert vault.count_windows() == 1 and vault.count_windows("mouse") == 0


def test_an_unwritable_vault_keeps_the_windows_and_retries_with_growing_backoff(layout: Layout) -> None:
    with Vault.open(layout) as setup:
        keys = grant(setup, Category.KEYBOARD, GRANTED)
    broken = Vault.open(layout)
    broken.close()  # every write now fails inside SQLite, as with a vanished or read-only file
    target = [broken]

    def write(records: Sequence[AnyWindow]) -> int:
        return target[0].write_windows(records)

    clock = ManualClock(wall=T0)
    recorder = recorder_for(write, clock)
    window = keyboard_window(T0, keys)
    recorder.add([window])
    assert recorder.flush() is False
    assert recorder.error is not None and recorder.error.startswith("the vault cannot be written (")
    assert recorder.pending == [window] and recorder.written == 0 and recorder.last_flush is None
    # Not due (and a flush does nothing) until the first backoff has passed.
    clock.advance(FIRST_RETRY_SECONDS / 2)
    assert not recorder.due() and recorder.flush() is False and recorder.pending == [window]
    clock.advance(FIRST_RETRY_SECONDS / 2)
    assert recorder.due() and recorder.flush() is False
    # The second failure doubled the wait.
    clock.advance(FIRST_RETRY_SECONDS)
    assert not recorder.due()
    clock.advance(FIRST_RETRY_SECONDS)
    assert recorder.due()

    with Vault.open(layout) as healthy:
        target[0] = healthy
        assert recorder.flush() is True
        assert recorder.error is None and recorder.pending == [] and recorder.written == 1
        assert recorder.last_flush == WALL
        assert [(w.start, w.receipt_id) for w in healthy.read_windows("keyboard")] == [(T0, keys)]
        # Healthy again: the next failure starts over from the first backoff.
        target[0] = broken
        recorder.add([keyboard_window(T0 + 60, keys)])
        assert recorder.flush() is False
        clock.advance(FIRST_RETRY_SECONDS)
        assert recorder.due()


def test_the_backoff_stops_growing_at_its_ceiling(layout: Layout) -> None:
    with Vault.open(layout) as setup:
        keys = grant(setup, Category.KEYBOARD, GRANTED)
    broken = Vault.open(layout)
    broken.close()
    clock = ManualClock(wall=T0)
    recorder = recorder_for(broken.write_windows, clock)
    recorder.add([keyboard_window(T0, keys)])
    for _ in range(12):  # 1, 2, 4, ... well past the ceiling
        assert recorder.flush() is False
        clock.advance(MAX_RETRY_SECONDS)
    assert recorder.flush() is False
    clock.advance(MAX_RETRY_SECONDS - 0.5)
    assert not recorder.due()
    clock.advance(0.5)
    assert recorder.due()


def test_held_windows_are_bounded_and_the_oldest_go_first(vault: Vault) -> None:
    keys = grant(vault, Category.KEYBOARD, GRANTED)
    recorder = recorder_for(vault.write_windows, ManualClock(wall=T0))
    oldest, newer = keyboard_window(T0, keys), keyboard_window(T0 + 60, keys)
    recorder.add([oldest])
    recorder.add([newer] * MAX_PENDING)
    assert len(recorder.pending) == MAX_PENDING
    assert oldest not in recorder.pending and recorder.pending[0] is newer


def test_storage_messages_never_carry_a_path() -> None:
    full = OSError(errno.ENOSPC, "No space left on device", "/home/alice/.local/share/consentry/vault.db")
    assert storage_message(full) == "the vault cannot be written (No space left on device)"
    locked = sqlite3.OperationalError("database is locked")
    assert storage_message(locked) == "the vault cannot be written (database is locked)"
    assert storage_message(KeyUnavailable("the keyring at /run/user/1000 is locked")) == "the vault key is unavailable"
