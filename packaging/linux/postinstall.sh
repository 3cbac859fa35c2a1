#!/bin/sh
# Check that employees can start the installed application, then byte-compile it once, as root, so
# employees' processes never write into /opt. Any failure stops the installation with the reason: a
# package that installs "fine" but gives every employee "Permission denied" is worse than one that fails.
set -e

APP=/opt/consentry
fail() {
    echo "consentry: $*" >&2
    exit 1
}

interpreter="$(readlink -f "$APP/bin/python")" || fail "$APP/bin/python is missing; reinstall the package"
case "$interpreter" in
    /usr/bin/python3.*) ;;
    *) fail "$APP/bin/python leads to $interpreter, not the distribution's /usr/bin/python3.X: this package was built wrongly (rebuild it with scripts/package.sh)" ;;
esac
[ -x "$interpreter" ] || fail "$interpreter is missing: install the package this one depends on (apt-get -f install)"

"$APP/bin/python" -m compileall -q -j 0 "$APP/lib" >/dev/null || fail "byte-compiling $APP failed"

# As an account without any privilege: what every employee's session will do first.
if id nobody >/dev/null 2>&1 && command -v runuser >/dev/null 2>&1; then
    (cd / && runuser -u nobody -- "$APP/bin/python" -I -c 'import agent.cli.main') \
        || fail "an employee's account cannot start $APP/bin/python (see the error above)"
fi
