"""Where the key-encryption key (KEK) lives: the OS keyring, or a 0600 file in a 0700 folder.

A KEK is replaced in three steps so that a crash never loses the vault: ``stage`` keeps the new key
beside the old one (``kek.next`` / account ``<account>:next``); the vault re-wraps its keys under it in
one transaction; ``promote`` then makes it the current key and destroys the old one. A vault whose
current key does not fit but whose staged key does finishes the ``promote`` when it is next opened.
Several processes use one vault at once (the agent, ``consentry erase --all`` in a terminal), so
``promote(expected)`` is idempotent and only ever promotes the key it was told to: whoever comes
second finds the swap done, or a later replacement staged, and leaves both alone. The file store
also holds an advisory lock on its folder while it swaps, so no reader sees a half-made swap twice.

keyring's ``fail`` backend (every headless Linux host) and plaintext backends (``keyrings.alt``) are
never used: there the KEK goes to ``<home>/keys/kek`` instead, in the one key-file format
(``protocol.keyfile``, kind ``aes256``; a file written before it, bare base64, is still read and is
rewritten in that format when the KEK is next replaced), and we refuse to read it, or a vault, if
anyone but the owner could. In the OS keyring the KEK stays bare base64: an entry is typed by its
service and account, not by a file format. ``CONSENTRY_KEYSTORE=file|keyring`` overrides the choice.
The choice made when a vault is created is recorded in the vault, so later opens do not import keyring.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

try:
    import fcntl
except ImportError:  # not POSIX: promote is still idempotent, only without the folder lock
    fcntl = None  # type: ignore[assignment]

from protocol.envelope import KEY_BYTES, new_key
from protocol.errors import KeyUnavailable
from protocol.keyfile import decode_key, encode_key
from protocol.permissions import check_private

KEYSTORE_ENV = "CONSENTRY_KEYSTORE"
KEYRING_SERVICE = "consentry"
KEK_KIND = "aes256"


class KekStore(Protocol):
    """One place a KEK can be kept."""

    kind: str

    def load(self) -> bytes:
        """Return the KEK, or raise KeyUnavailable."""
        ...

    def create(self) -> bytes:
        """Make and store a new KEK; refuses to overwrite an existing one."""
        ...

    def stage(self, key: bytes) -> None:
        """Keep ``key`` as the next KEK beside the current one (replacing any earlier staged key)."""
        ...

    def staged(self) -> bytes | None:
        """The staged next KEK, or None."""
        ...

    def promote(self, expected: bytes | None = None) -> None:
        """The staged KEK becomes the current one; the old current KEK is destroyed.

        With ``expected``: only if the staged KEK is that key; otherwise (already promoted by another
        process, or a later replacement staged) nothing happens.
        """
        ...

    def destroy(self) -> None:
        """Destroy the current and any staged KEK."""
        ...


class FileKekStore:
    """The KEK in a ``protocol.keyfile`` file (0600) inside a 0700 folder."""

    kind = "file"

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def next_path(self) -> Path:
        return self.path.with_name(self.path.name + ".next")

    def load(self) -> bytes:
        check_private(self.path.parent, is_dir=True)
        check_private(self.path, is_dir=False)
        try:
            text = self.path.read_text(encoding="ascii")
        except FileNotFoundError:
            raise KeyUnavailable(
                f"the vault key file ({self._name}) is missing; without it the vault cannot be read. "
                "Restore it from your backup, or erase the vault with: consentry erase --all --force"
            ) from None
        except UnicodeDecodeError:
            text = ""
        key = _decode_file(text)
        if key is None:
            raise KeyUnavailable(
                f"the vault key file ({self._name}) is damaged; restore it from your backup, "
                "or erase the vault with: consentry erase --all --force"
            )
        return key

    @property
    def _name(self) -> str:
        """The key file's name inside the Consentry folder: enough to find it, without the user's path."""
        return f"{self.path.parent.name}/{self.path.name}"

    def create(self) -> bytes:
        self._private_folder()
        key = new_key()
        # O_EXCL: never overwrite a key that protects existing data.
        _write_new(self.path, key)
        return key

    def stage(self, key: bytes) -> None:
        self._private_folder()
        _shred_file(self.next_path)
        _write_new(self.next_path, key)
        _fsync_dir(self.path.parent)

    def staged(self) -> bytes | None:
        check_private(self.next_path, is_dir=False)
        try:
            return _decode_file(self.next_path.read_text(encoding="ascii"))
        except (FileNotFoundError, UnicodeDecodeError):
            return None

    def promote(self, expected: bytes | None = None) -> None:
        with _folder_lock(self.path.parent):
            if expected is not None and self.staged() != expected:
                return  # another process finished this swap, or staged a later key: not ours to touch
            _overwrite(self.path)  # the old key's bytes, not only its name, are gone (as far as the disk allows)
            os.replace(self.next_path, self.path)
            _fsync_dir(self.path.parent)

    def destroy(self) -> None:
        _shred_file(self.path)
        _shred_file(self.next_path)
        _fsync_dir(self.path.parent)

    def _private_folder(self) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.path.parent, 0o700)
        check_private(self.path.parent, is_dir=True)


def _decode_file(text: str) -> bytes | None:
    """A KEK file's key (``protocol.keyfile`` version 1, or the bare base64 written before it), or None."""
    try:
        return decode_key(text, KEK_KIND, legacy=True)
    except KeyUnavailable:
        return None


def _decode(text: str | None) -> bytes | None:
    """A KEK kept in the OS keyring (bare base64), or None."""
    if text is None:
        return None
    try:
        key = base64.b64decode(text, validate=True)
    except ValueError:
        return None
    return key if len(key) == KEY_BYTES else None


def _write_new(path: Path, key: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(encode_key(KEK_KIND, key))
        fh.flush()
        os.fsync(fh.fileno())


def _overwrite(path: Path) -> None:
    """Zero a key file in place before it is unlinked or replaced.

    On a journaling or copy-on-write file system or an SSD the old blocks may survive anyway; what
    this guarantees is that no file, and no later read of this one, returns the key.
    """
    try:
        fd = os.open(path, os.O_WRONLY)
    except FileNotFoundError:
        return
    try:
        size = os.fstat(fd).st_size
        os.write(fd, b"\0" * size)
        os.fsync(fd)
    finally:
        os.close(fd)


def _shred_file(path: Path) -> None:
    _overwrite(path)
    path.unlink(missing_ok=True)


@contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive advisory lock on the key folder (no extra file): one KEK swap at a time."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class KeyringKekStore:
    """The KEK in the desktop's keyring (Secret Service, macOS Keychain, Windows Credential Manager)."""

    kind = "keyring"

    def __init__(self, account: str) -> None:
        self.account = account

    def load(self) -> bytes:
        import keyring
        import keyring.errors

        try:
            text = keyring.get_password(KEYRING_SERVICE, self.account)
        except keyring.errors.KeyringError as exc:
            raise KeyUnavailable(
                f"the OS keyring could not be read: {type(exc).__name__}; unlock it and retry"
            ) from None
        if text is None:
            raise KeyUnavailable(
                "the vault key is missing from the OS keyring; restore it, or erase the vault with: "
                "consentry erase --all --force"
            )
        key = _decode(text)
        if key is None:
            raise KeyUnavailable("the vault key in the OS keyring is damaged")
        return key

    def create(self) -> bytes:
        import keyring

        key = new_key()
        keyring.set_password(KEYRING_SERVICE, self.account, base64.b64encode(key).decode("ascii"))
        return key

    @property
    def next_account(self) -> str:
        return self.account + ":next"

    def stage(self, key: bytes) -> None:
        import keyring
        import keyring.errors

        try:
            keyring.set_password(KEYRING_SERVICE, self.next_account, base64.b64encode(key).decode("ascii"))
        except keyring.errors.KeyringError as exc:
            raise KeyUnavailable(
                f"the OS keyring could not be written ({type(exc).__name__}); the vault key was not replaced. "
                "Unlock the keyring and run the command again"
            ) from None

    def staged(self) -> bytes | None:
        import keyring
        import keyring.errors

        try:
            return _decode(keyring.get_password(KEYRING_SERVICE, self.next_account))
        except keyring.errors.KeyringError:
            return None

    def promote(self, expected: bytes | None = None) -> None:
        import keyring
        import keyring.errors

        try:
            text = keyring.get_password(KEYRING_SERVICE, self.next_account)
            if expected is not None and _decode(text) != expected:
                return  # another process finished this swap, or staged a later key: not ours to touch
            if _decode(text) is None:
                raise KeyUnavailable("the new vault key is missing from the OS keyring; unlock it and retry")
            keyring.set_password(KEYRING_SERVICE, self.account, str(text))  # overwrites the old key's entry
        except keyring.errors.KeyringError as exc:
            # The vault already uses the new key: the next open finishes the swap (Vault.kek).
            raise KeyUnavailable(
                f"the OS keyring could not be written ({type(exc).__name__}); unlock it, then run: consentry doctor"
            ) from None
        self._delete(self.next_account)

    def destroy(self) -> None:
        self._delete(self.account)
        self._delete(self.next_account)

    @staticmethod
    def _delete(account: str) -> None:
        import keyring
        import keyring.errors

        try:
            keyring.delete_password(KEYRING_SERVICE, account)
        except keyring.errors.PasswordDeleteError:
            pass


def keyring_is_usable() -> bool:
    """True when keyring's chosen backend is a real, encrypted OS keyring."""
    try:
        import keyring
        from keyring.backends import fail
    except ImportError:
        return False
    backend = keyring.get_keyring()
    if isinstance(backend, fail.Keyring):
        return False
    module = type(backend).__module__
    # keyrings.alt's plaintext and "encrypted" file backends keep the secret next to the data.
    if module.startswith("keyrings.alt") or "plaintext" in type(backend).__name__.lower():
        return False
    priority = getattr(backend, "priority", 0)
    return isinstance(priority, (int, float)) and priority >= 1


def choose_kek_store(kind: str | None, *, key_file: Path, account: str) -> KekStore:
    """The store recorded for a vault (``kind``), else the env override, else what this host offers."""
    if kind is None:
        kind = os.environ.get(KEYSTORE_ENV, "auto")
    if kind == "auto":
        kind = "keyring" if keyring_is_usable() else "file"
    if kind == "file":
        return FileKekStore(key_file)
    if kind == "keyring":
        return KeyringKekStore(account)
    raise ValueError(f"{KEYSTORE_ENV} must be 'file', 'keyring' or 'auto', not {kind!r}")
