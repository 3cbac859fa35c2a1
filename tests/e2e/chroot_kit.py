"""A clean Debian 12 root file system that never saw the build, made with mmdebstrap from apt's own mirror.

The first run bootstraps a minimal system (``--variant=minbase``) into a tarball cached under
/var/cache/consentry-tests (or ``$CONSENTRY_CHROOT_CACHE``), keyed by the recipe and the mirror list, so
later runs only unpack it. Each command runs in its own mount and PID namespace (``unshare``), with /proc
and /dev/shm mounted inside the chroot: nothing is left mounted on the host when the command ends.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SUITE = "bookworm"  # Debian 12, what the package is built for (python3.11)
CACHE_ENV = "CONSENTRY_CHROOT_CACHE"
DEFAULT_CACHE = Path("/var/cache/consentry-tests")
# The lists stay in the tarball: each run's apt-get update then only checks them against the mirror.
MMDEBSTRAP_OPTIONS = ("--variant=minbase", "--mode=root", "--format=tar", "--skip=cleanup/apt/lists")
# Inside the namespace: mount what dpkg, apt and Python's multiprocessing need, then enter the chroot.
ENTER = (
    'set -e; root="$1"; shift; '
    'mount -t proc proc "$root/proc"; '
    'mkdir -p "$root/dev/shm" "$root/var/cache/apt/archives"; mount -t tmpfs -o mode=1777 tmpfs "$root/dev/shm"; '
    'if [ -n "$APT_ARCHIVES" ]; then mount --bind "$APT_ARCHIVES" "$root/var/cache/apt/archives"; fi; '
    'exec chroot "$root" "$@"'
)
CHROOT_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive"}


def apt_sources_file() -> Path | None:
    """The host's apt source list naming the Debian 12 suite (the only mirror this test may use)."""
    suite = re.compile(rf"(^|\s){SUITE}(\s|$)", re.MULTILINE)
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        if path.suffix in (".list", ".sources") and path.is_file():
            if suite.search(path.read_text(encoding="utf-8", errors="replace")):
                return path
    return None


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE)


def rootfs_tarball(sources: Path) -> tuple[Path, bool]:
    """The cached tarball for ``sources`` (built now if missing); also whether it was built by this call."""
    recipe = "\n".join([SUITE, *MMDEBSTRAP_OPTIONS, sources.read_text(encoding="utf-8")])
    key = hashlib.sha256(recipe.encode()).hexdigest()[:16]
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    tarball = cache / f"debian-{SUITE}-minbase-{key}.tar"
    with open(cache / f"{tarball.name}.lock", "w") as lock:  # one build at a time; others wait for it
        fcntl.flock(lock, fcntl.LOCK_EX)
        if tarball.is_file():
            return tarball, False
        partial = tarball.with_suffix(".partial.tar")
        done = subprocess.run(
            ["mmdebstrap", *MMDEBSTRAP_OPTIONS, SUITE, str(partial), str(sources)],
            capture_output=True,
            text=True,
            timeout=1200,
        )
        if done.returncode != 0:
            partial.unlink(missing_ok=True)
            raise AssertionError(f"mmdebstrap failed ({done.returncode}):\n{done.stderr[-4000:]}")
        partial.rename(tarball)
        return tarball, True


@dataclass(frozen=True)
class Chroot:
    root: Path
    apt_archives: Path

    def run(self, *argv: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """``argv`` as root inside the chroot, in namespaces of its own."""
        command = ["unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child"]
        command += ["sh", "-c", ENTER, "enter", str(self.root), *argv]
        env = dict(CHROOT_ENV, APT_ARCHIVES=str(self.apt_archives))
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"in the chroot, {argv} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done

    def as_user(self, user: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``argv`` as ``user`` with the environment of a plain login (runuser drops every privilege first)."""
        env = [f"{k}={v}" for k, v in CHROOT_ENV.items() if k != "DEBIAN_FRONTEND"]
        env += [f"HOME=/home/{user}", f"USER={user}", "CONSENTRY_KEYSTORE=file"]
        return self.run("runuser", "-u", user, "--", "/usr/bin/env", "-i", *env, *argv, check=check)

    def path(self, inside: str) -> Path:
        return self.root / inside.lstrip("/")


@contextmanager
def debian_chroot(tarball: Path) -> Iterator[Chroot]:
    """A fresh copy of the cached root file system, with the host's resolver; deleted afterwards."""
    base = Path(tempfile.mkdtemp(prefix="consentry-chroot-", dir=os.environ.get("TMPDIR", "/var/tmp")))
    root = base / "root"
    root.mkdir()
    try:
        subprocess.run(["tar", "-xf", str(tarball), "-C", str(root)], check=True, timeout=600)
        shutil.copy2("/etc/resolv.conf", root / "etc" / "resolv.conf", follow_symlinks=True)
        archives = cache_dir() / "apt-archives"  # downloaded .debs kept between runs: a warm run fetches none
        (archives / "partial").mkdir(parents=True, exist_ok=True)
        yield Chroot(root=root, apt_archives=archives)
    finally:
        shutil.rmtree(base, ignore_errors=True)
