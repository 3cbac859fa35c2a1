"""The vault: encrypted records, key handling, permissions, corruption, shredding, crash safety."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devkit.factories import apps_window, files_window, grant, keyboard_window, mouse_window
from protocol.categories import Category
from protocol.errors import (
    ConsentError,
    InsecurePermissions,
    InvalidRecord,
    KeyUnavailable,
    UnsupportedVersion,
    VaultCorrupted,
)
from vault import consent_ops
from vault.paths import Layout
from vault.policy import MachinePolicy
from vault.schema import FORMAT_VERSION
from vault.shredding import apply_retention, erase_categories, erase_period
from vault.vault import Vault

NOW = datetime.now(UTC).replace(microsecond=0)
MINUTE = int(NOW.timestamp()) // 60 * 60


def _digest_files(layout: Layout) -> dict[str, str]:
    out = {}
    for path in sorted(layout.home.rglob("*")):
        if path.is_file():
            out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture
def granted(layout: Layout) -> tuple[Vault, dict[Category, str]]:
    vault = Vault.open(layout)
    receipts = {c: grant(vault, c, NOW - timedelta(hours=1)) for c in Category}
    yield vault, receipts
    vault.close()


def test_records_round_trip_for_every_category(granted) -> None:
    vault, r = granted
    records = [
        keyboard_window(MINUTE, r[Category.KEYBOARD]),
        mouse_window(MINUTE, r[Category.MOUSE]),
        apps_window(MINUTE, r[Category.APPS]),
        files_window(MINUTE, r[Category.FILES]),
    ]
    assert vault.write_windows(records) == 4
    assert sorted(vault.read_windows(), key=lambda w: w.category) == sorted(records, key=lambda w: w.category)
    assert vault.read_windows("mouse") == [records[1]]
    assert list(vault.iter_records_as_stored("mouse")) == [records[1].model_dump(mode="json")]
    assert vault.count_windows("keyboard") == 1


def test_only_ciphertext_is_on_disk(granted) -> None:
    vault, r = granted
    vault.write_windows([keyboard_window(MINUTE, r[Category.KEYBOARD], letters=424242)])
    vault.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw = vault.layout.vault_db.read_bytes()
    assert b"424242" not in raw and b"key_counts" not in raw
    (blob,) = vault.db.execute("SELECT blob FROM records").fetchone()
    assert blob[0] == 1 and b"letter" not in blob


def test_swapped_records_fail_to_decrypt(granted) -> None:
    vault, r = granted
    vault.write_windows(
        [keyboard_window(MINUTE, r[Category.KEYBOARD], 1), keyboard_window(MINUTE + 60, r[Category.KEYBOARD], 2)]
    )
    (a, blob_a), (b, blob_b) = vault.db.execute("SELECT record_id, blob FROM records ORDER BY record_id").fetchall()
    vault.db.execute("UPDATE records SET blob = ? WHERE record_id = ?", (blob_b, a))
    vault.db.execute("UPDATE records SET blob = ? WHERE record_id = ?", (blob_a, b))
    for read in (vault.read_windows, lambda: list(vault.iter_records_as_stored())):  # the schema reader and mydata's
        with pytest.raises(InvalidRecord):
            read()


def test_relabelled_record_fails_to_decrypt(granted) -> None:
    vault, r = granted
    vault.write_windows([keyboard_window(MINUTE, r[Category.KEYBOARD])])
    vault.db.execute("UPDATE records SET category = 'mouse'")
    for read in (vault.read_windows, lambda: list(vault.iter_records_as_stored())):  # the schema reader and mydata's
        with pytest.raises(InvalidRecord):
            read()


def test_flipped_byte_in_record_is_rejected(granted) -> None:
    vault, r = granted
    vault.write_windows([keyboard_window(MINUTE, r[Category.KEYBOARD])])
    (blob,) = vault.db.execute("SELECT blob FROM records").fetchone()
    for position in (1, 15, len(blob) // 2, len(blob) - 1):
        tampered = bytearray(blob)
        tampered[position] ^= 0x04
        vault.db.execute("UPDATE records SET blob = ?", (bytes(tampered),))
        for read in (vault.read_windows, lambda: list(vault.iter_records_as_stored())):
            with pytest.raises(InvalidRecord):
                read()


def test_flipped_byte_in_wrapped_key_is_rejected(layout: Layout) -> None:
    with Vault.open(layout) as vault:
        rid = grant(vault, Category.KEYBOARD, NOW - timedelta(hours=1))
        vault.write_windows([keyboard_window(MINUTE, rid)])
        (wrapped,) = vault.db.execute("SELECT wrapped FROM data_keys").fetchone()
        tampered = bytearray(wrapped)
        tampered[20] ^= 0x01
        vault.db.execute("UPDATE data_keys SET wrapped = ?", (bytes(tampered),))
    with Vault.open(layout) as vault, pytest.raises(InvalidRecord):
        vault.read_windows()


def test_wrong_key_is_refused_and_changes_nothing(layout: Layout) -> None:
    with Vault.open(layout) as vault:
        rid = grant(vault, Category.KEYBOARD, NOW - timedelta(hours=1))
        vault.write_windows([keyboard_window(MINUTE, rid)])
    import base64

    layout.kek_file.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    before = _digest_files(layout)
    with Vault.open(layout) as vault:
        with pytest.raises(KeyUnavailable, match="does not belong to this vault"):
            vault.read_windows()
        with pytest.raises(KeyUnavailable):
            grant(vault, Category.MOUSE)
    after = _digest_files(layout)
    assert {k: v for k, v in after.items() if not k.endswith(("-wal", "-shm"))} == {
        k: v for k, v in before.items() if not k.endswith(("-wal", "-shm"))
    }


def test_missing_key_says_how_to_recover(layout: Layout) -> None:
    with Vault.open(layout) as vault:
        grant(vault, Category.KEYBOARD)
    layout.kek_file.unlink()
    with Vault.open(layout) as vault, pytest.raises(KeyUnavailable, match="erase --all --force"):
        vault.kek()


@pytest.mark.parametrize("target", ["vault", "key", "key_dir", "home"])
def test_files_others_can_read_are_refused_with_the_fix(layout: Layout, target: str) -> None:
    Vault.open(layout).close()
    path, mode = {
        "vault": (layout.vault_db, 0o644),
        "key": (layout.kek_file, 0o640),
        "key_dir": (layout.key_dir, 0o755),
        "home": (layout.home, 0o755),
    }[target]
    os.chmod(path, mode)
    with pytest.raises(InsecurePermissions, match="chmod"):
        with Vault.open(layout) as vault:
            vault.kek()


def test_new_vault_files_are_owner_only(layout: Layout) -> None:
    Vault.open(layout).close()
    for path in (layout.home, layout.key_dir):
        assert path.stat().st_mode & 0o077 == 0
    for path in (layout.vault_db, layout.kek_file):
        assert path.stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("damage", ["truncate", "garbage", "zero-header"])
def test_corrupted_database_is_a_clear_error_and_changes_nothing(layout: Layout, damage: str) -> None:
    with Vault.open(layout) as vault:
        rid = grant(vault, Category.KEYBOARD, NOW - timedelta(hours=4))
        vault.write_windows([keyboard_window(MINUTE - 60 * i, rid) for i in range(1, 201)])
        vault.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = layout.vault_db.read_bytes()
    if damage == "truncate":
        layout.vault_db.write_bytes(data[: len(data) // 3])
    elif damage == "garbage":
        layout.vault_db.write_bytes(os.urandom(len(data)))
    else:
        layout.vault_db.write_bytes(bytes(100) + data[100:])
    before = layout.vault_db.read_bytes()
    with pytest.raises(VaultCorrupted):
        with Vault.open(layout) as vault:
            vault.read_windows()
    assert layout.vault_db.read_bytes() == before


def test_vault_from_a_newer_version_is_refused(layout: Layout) -> None:
    Vault.open(layout).close()
    conn = sqlite3.connect(layout.vault_db)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'format_version'", (str(FORMAT_VERSION + 1),))
    conn.commit()
    conn.close()
    with pytest.raises(UnsupportedVersion, match="newer Consentry"):
        Vault.open(layout)


def test_unknown_migration_is_refused(layout: Layout) -> None:
    Vault.open(layout).close()
    conn = sqlite3.connect(layout.vault_db)
    conn.execute("INSERT INTO _migrations VALUES ('9999_from_the_future', 'x')")
    conn.commit()
    conn.close()
    with pytest.raises(UnsupportedVersion):
        Vault.open(layout)


def test_record_without_a_grant_is_not_stored(layout: Layout) -> None:
    with Vault.open(layout) as vault:
        with pytest.raises(ConsentError):
            vault.write_windows([keyboard_window(MINUTE, "f" * 32)])
        mouse_receipt = grant(vault, Category.MOUSE, NOW - timedelta(hours=1))
        with pytest.raises(ConsentError, match="names no grant of keyboard"):
            vault.write_windows([keyboard_window(MINUTE, mouse_receipt)])
        assert vault.count_windows() == 0


def test_nothing_of_a_withdrawn_grant_is_written_and_the_batch_is_atomic(layout: Layout) -> None:
    """After a revocation nothing more of that grant is stored, even a window captured before it."""
    policy = MachinePolicy()
    with Vault.open(layout) as vault:
        kb = grant(vault, Category.KEYBOARD, NOW - timedelta(hours=1))
        ms = grant(vault, Category.MOUSE, NOW - timedelta(hours=1))
        written_before = keyboard_window(MINUTE - 1200, kb)
        assert vault.write_windows([written_before]) == 1
        consent_ops.revoke(vault, policy, [Category.KEYBOARD], method="api", now=NOW)
        unwritten = keyboard_window(MINUTE - 600, kb)  # captured before the revocation, still unwritten
        with pytest.raises(ConsentError, match="withdrawn grant"):
            vault.write_windows([mouse_window(MINUTE, ms), unwritten])
        assert vault.count_windows() == 1  # nothing of the refused batch, not even the mouse record
        assert vault.write_windows([mouse_window(MINUTE, ms)]) == 1


def test_data_captured_before_an_erasure_cannot_be_written_after_it(layout: Layout) -> None:
    with Vault.open(layout) as vault:
        kb = grant(vault, Category.KEYBOARD, NOW - timedelta(days=3))
        erase_categories(vault, [Category.KEYBOARD], now=NOW, revoked_too=False)  # the grant stays
        with pytest.raises(ConsentError, match="before its category was erased"):
            vault.write_windows([keyboard_window(MINUTE - 600, kb)])
        assert vault.write_windows([keyboard_window(int(NOW.timestamp()) + 60, kb)]) == 1  # later capture is fine
        ms = grant(vault, Category.MOUSE, NOW - timedelta(days=3))
        day = datetime.fromtimestamp(MINUTE - 86400, UTC).strftime("%Y-%m-%d")
        erase_period(vault, day, day, now=NOW)
        with pytest.raises(ConsentError, match="erased period"):
            vault.write_windows([mouse_window(MINUTE - 86400, ms)])
        assert vault.write_windows([mouse_window(MINUTE, ms)]) == 1  # outside the period


def test_record_before_its_grant_is_not_stored(layout: Layout) -> None:
    with Vault.open(layout) as vault:
        rid = grant(vault, Category.KEYBOARD, NOW)
        with pytest.raises(ConsentError, match="before its grant"):
            vault.write_windows([keyboard_window(MINUTE - 3600, rid)])


def _raw_bytes(layout: Layout) -> bytes:
    out = b""
    for suffix in ("", "-wal", "-shm"):
        path = Path(f"{layout.vault_db}{suffix}")
        if path.exists():
            out += path.read_bytes()
    return out


def test_erased_category_leaves_no_wrapped_key_in_db_wal_or_shm(layout: Layout) -> None:
    with Vault.open(layout) as vault:
        rk = grant(vault, Category.KEYBOARD, NOW - timedelta(hours=1))
        rm = grant(vault, Category.MOUSE, NOW - timedelta(hours=1))
        vault.write_windows([keyboard_window(MINUTE, rk), mouse_window(MINUTE, rm)])
        wrapped = {cat: w for cat, w in vault.db.execute("SELECT category, wrapped FROM data_keys")}
        (kb_blob,) = vault.db.execute("SELECT blob FROM records WHERE category='keyboard'").fetchone()
        erase_categories(vault, [Category.KEYBOARD], now=NOW, revoked_too=False)
        raw = _raw_bytes(layout)
        assert wrapped["keyboard"] not in raw and kb_blob not in raw
        assert wrapped["mouse"] in raw  # only the erased category is gone
        assert [w.category for w in vault.read_windows()] == ["mouse"]
        kinds = [e.kind for e in vault.ledger.entries()]
        assert kinds[-1] == "erase"


def test_erasing_a_period_destroys_only_that_period(layout: Layout) -> None:
    with Vault.open(layout) as vault:
        rid = grant(vault, Category.KEYBOARD, NOW - timedelta(days=5))
        days = [MINUTE - 86400 * d for d in (3, 2, 1)]
        vault.write_windows([keyboard_window(t, rid) for t in days])
        first = datetime.fromtimestamp(days[0], UTC).strftime("%Y-%m-%d")
        second = datetime.fromtimestamp(days[1], UTC).strftime("%Y-%m-%d")
        assert len(erase_period(vault, first, second, now=NOW)) == 2
        assert [w.start for w in vault.read_windows()] == [days[2]]


def test_retention_shreds_old_keys_automatically(layout: Layout) -> None:
    policy = MachinePolicy(retention_days=7)
    with Vault.open(layout) as vault:
        rid = grant(vault, Category.MOUSE, NOW - timedelta(days=30), policy)
        old, recent = MINUTE - 86400 * 10, MINUTE - 86400 * 2
        vault.write_windows([mouse_window(old, rid), mouse_window(recent, rid)])
        shredded = apply_retention(vault, policy, NOW)
        assert len(shredded) == 1
        assert [w.start for w in vault.read_windows()] == [recent]
        assert list(vault.ledger.entries(("key-shredded",)))[-1].body["reason"] == "retention"
        assert apply_retention(vault, policy, NOW) == []  # nothing more, and no new ledger entry
        assert len(list(vault.ledger.entries(("key-shredded",)))) == 1


WRITER = """
import sys, time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from vault.paths import Layout
from vault.vault import Vault
from devkit.factories import grant, keyboard_window
vault = Vault.open(Layout(Path(sys.argv[1])))
rid = grant(vault, __import__('protocol.categories').categories.Category.KEYBOARD, datetime.now(UTC) - timedelta(days=8))
start = int(time.time()) // 60 * 60 - 7 * 86400  # a week of minutes to write before "now"
n = 0
while True:
    vault.write_windows([keyboard_window(start + 60 * (n + i), rid) for i in range(50)])
    n += 50
    print(n, flush=True)
"""


def test_kill_9_mid_write_loses_no_committed_record(layout: Layout) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(layout.home)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.stdout is not None
    committed = 0
    deadline = time.monotonic() + 60
    while committed < 2000 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        committed = int(line)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert committed >= 2000, "the writer did not get going"
    with Vault.open(layout) as vault:
        assert vault.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert vault.ledger.verify(vault.device_key.public_bytes).ok
        stored = vault.count_windows()
        assert stored >= committed and stored % 50 == 0  # every committed flush, and only whole flushes
        assert len(vault.read_windows()) == stored


def test_hours_with_data_name_each_hour_a_record_starts_in(layout: Layout) -> None:
    vault = Vault.open(layout)
    r = {c: grant(vault, c, NOW - timedelta(hours=3)) for c in Category}
    assert vault.hours_with_data() == []
    hour = MINUTE // 3600 * 3600
    vault.write_windows(
        [
            keyboard_window(hour, r[Category.KEYBOARD]),
            mouse_window(hour + 120, r[Category.MOUSE]),
            apps_window(hour - 3600, r[Category.APPS]),
        ]
    )
    assert sorted(vault.hours_with_data()) == [hour // 3600 - 1, hour // 3600]
    vault.close()


def test_integrity_check_of_a_sound_vault_is_ok(layout: Layout) -> None:
    with Vault.open(layout) as vault:
        assert vault.integrity_check() == "ok"


def test_meta_of_an_unopened_vault_file_can_be_peeked_at(layout: Layout) -> None:
    from vault.schema import peek_meta

    assert peek_meta(layout.vault_db, ("vault_id",)) == {}  # no file: nothing
    with Vault.open(layout) as vault:
        vault_id, kek_store = vault.vault_id, vault.meta["kek_store"]
    assert peek_meta(layout.vault_db, ("kek_store", "vault_id", "absent")) == {
        "kek_store": kek_store,
        "vault_id": vault_id,
    }
    layout.vault_db.write_bytes(b"not a database" * 100)
    assert peek_meta(layout.vault_db, ("vault_id",)) == {}


def test_window_dated_in_the_future_is_refused_with_the_tolerance_named(layout: Layout) -> None:
    """A window ending more than the clock-skew tolerance after the vault's clock is refused, all or nothing."""
    from protocol.errors import RecordInFuture
    from vault.vault import FUTURE_TOLERANCE_SECONDS

    clock_now = NOW
    with Vault.open(layout, clock=lambda: clock_now) as vault:
        kb = grant(vault, Category.KEYBOARD, NOW - timedelta(hours=1))
        now_s = int(NOW.timestamp())
        too_late = keyboard_window(now_s + FUTURE_TOLERANCE_SECONDS - 59, kb)  # ends tolerance + 1 s ahead
        fine = keyboard_window(now_s - 600, kb)
        with pytest.raises(RecordInFuture, match=r"in the future.*5 minutes.*clock") as refused:
            vault.write_windows([fine, too_late])
        assert "nothing was stored" in str(refused.value)
        assert vault.count_windows() == 0
        edge = keyboard_window(now_s + FUTURE_TOLERANCE_SECONDS - 60, kb)  # ends exactly at the tolerance
        assert vault.write_windows([fine, edge]) == 2
