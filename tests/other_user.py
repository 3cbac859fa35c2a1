"""A real second Unix user (``nobody``) attacking the local pages the way the issue reproduced it.

``nobody`` serves a harmless page on another 127.0.0.1 port. Browsers send a host's cookies to every
port of it, so when the employee's (or steward's) browser visits, that process keeps the page's
session cookie. It then replays requests to the page from raw HTTP, with that cookie, with a leaked
``?token=`` link and with every other secret the test hands it (the CSRF token, forged Origin and
Sec-Fetch headers): the worst case of a session secret leaking to another account.

The attacker is a separate process under another UID (``setpriv`` to ``nobody``), running the system
Python with the standard library only (``-I``: it cannot read our venv or our files). Needs root to
switch user; skips on a laptop, fails under CI=true (devkit/components.py).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from devkit.components import require

OTHER_USER = "nobody"
SYSTEM_PYTHON = "/usr/bin/python3"

# Runs as ``nobody``: a cookie-keeping page on another port, then replays of the plan read from stdin.
_THIEF = r"""
import http.client, http.server, json, sys, threading, urllib.parse

stolen = []

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        cookie = self.headers.get("Cookie")
        if cookie:
            stolen.append(cookie)
        body = b"<!doctype html><title>cute cats</title><h1>cute cats</h1>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        return

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
print(json.dumps({"port": server.server_address[1]}), flush=True)

plan = json.loads(sys.stdin.readline())
target = urllib.parse.urlsplit(plan["target"])
origin = f"{target.scheme}://{target.netloc}"

def send(method, path, cookie, form=None):
    headers = {"Host": target.netloc, "Origin": origin, "Referer": origin + path,
               "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "navigate", "User-Agent": "Mozilla/5.0"}
    if cookie:
        headers["Cookie"] = cookie
    body = None
    if form is not None:
        body = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers)
        answer = conn.getresponse()
        text = answer.read().decode("utf-8", "replace")
        return {"method": method, "path": path, "status": answer.status, "body": text,
                "set_cookie": answer.getheader("Set-Cookie")}
    except OSError as exc:  # a refused or closed connection is a refusal too
        return {"method": method, "path": path, "status": 0, "body": type(exc).__name__, "set_cookie": None}
    finally:
        conn.close()

results = []
cookie = stolen[0] if stolen else None
results.append({"method": "-", "path": "-", "status": -1, "body": "", "set_cookie": None, "stolen": cookie})
for step in plan["requests"]:
    method, path, form = step["method"], step["path"], step.get("form")
    # 1. the cookie taken from the employee's browser
    results.append(send(method, path, cookie, form))
    # 2. the leaked link: ?token= on the request itself, then with whatever cookie it gave
    sep = "&" if "?" in path else "?"
    with_token = send(method, path + sep + "token=" + urllib.parse.quote(plan["token"], safe=""), None, form)
    results.append(with_token)
    fresh = (with_token["set_cookie"] or "").split(";")[0]
    if fresh:
        results.append(send(method, path, fresh, form))
    redeemed = send("GET", "/?token=" + urllib.parse.quote(plan["token"], safe=""), None)
    fresh = (redeemed["set_cookie"] or "").split(";")[0]
    results.append(redeemed)
    if fresh:
        results.append(send(method, path, fresh, form))
print(json.dumps(results), flush=True)
"""


def require_other_user() -> None:
    """Root (to switch user), setpriv and the ``nobody`` account; else skip (fail under CI=true)."""
    try:
        pwd.getpwnam(OTHER_USER)
        known = True
    except KeyError:
        known = False
    require(
        os.geteuid() == 0 and known and shutil.which("setpriv") is not None and os.path.exists(SYSTEM_PYTHON),
        f"a second Unix user ({OTHER_USER!r}, switched to with setpriv as root)",
        "run the tests as root on Linux with util-linux and /usr/bin/python3",
    )


def as_other_user() -> list[str]:
    """The command prefix that runs the rest as ``nobody`` (setpriv execs: the pid is the attacker's)."""
    entry = pwd.getpwnam(OTHER_USER)
    return ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups", "--"]


@dataclass
class Thief:
    """The other user's process: its page's URL, then ``replay`` of requests with what it stole."""

    proc: subprocess.Popen[str]
    url: str

    def replay(self, target: str, token: str, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Each request with the stolen cookie, with ``?token=``, and with the cookie the token gave (if any)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"target": target, "token": token, "requests": requests}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "the other user's process ended without answering"
        results: list[dict[str, Any]] = json.loads(line)
        return results


@contextmanager
def cookie_thief() -> Iterator[Thief]:
    """``nobody``'s page on another 127.0.0.1 port; visit ``thief.url`` in the browser, then replay."""
    require_other_user()
    proc = subprocess.Popen(
        [*as_other_user(), SYSTEM_PYTHON, "-I", "-c", _THIEF],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/",
        env={"PATH": "/usr/bin:/bin", "HOME": "/"},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first, f"the other user's process did not start: {proc.stderr.read() if proc.stderr else ''}"
        yield Thief(proc, f"http://127.0.0.1:{json.loads(first)['port']}/")
    finally:
        proc.kill()
        proc.wait(timeout=10)
