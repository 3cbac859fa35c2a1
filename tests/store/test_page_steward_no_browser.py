"""``consentry steward review --no-browser`` prints a way in that works for the steward and no one else.

Read as the steward reads it: the address printed on the terminal is opened in a real headless Chromium
and must show the review queue (not a "no session" page). ``nobody``, a real second Unix user, can
neither read the printed file nor get anything from the page's bare address.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

from devkit.store_kit import Agent, running_store
from protocol import b64encode
from protocol.keyfile import write_key_file
from tests.browser_kit import chromium, wait_for
from tests.other_user import OTHER_USER, SYSTEM_PYTHON, as_other_user, require_other_user

ROOT = Path(__file__).resolve().parents[2]

# Runs as ``nobody``: read the printed file, then GET the page's bare address; report what worked.
_TRY = r"""
import http.client, json, sys
path, port = sys.argv[1], int(sys.argv[2])
out = {}
try:
    out["file"] = open(path, encoding="utf-8").read()
except OSError as exc:
    out["file_error"] = type(exc).__name__
try:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/", headers={"Host": f"127.0.0.1:{port}"})
    answer = conn.getresponse()
    out["status"], out["body"] = answer.status, answer.read().decode("utf-8", "replace")
except OSError as exc:
    out["status"], out["body"] = 0, type(exc).__name__
print(json.dumps(out))
"""


def _printed(log: Path, pattern: str) -> re.Match[str] | None:
    return re.search(pattern, log.read_text(encoding="utf-8", errors="replace"))


def test_no_browser_prints_a_file_link_that_opens_the_review_for_the_steward_only(home: Path, tmp_path: Path) -> None:
    import json

    with running_store("dir", tmp_path) as store:
        agent = Agent()
        store.enroll(agent)
        manifest, _ = agent.next_batch()
        with store.client(agent) as client:
            client.submit_manifest(manifest)
        key_file = home / "steward" / "steward-ed25519.key"
        write_key_file(key_file, "ed25519", store.stewards.signers[0].private_bytes())
        log_path = tmp_path / "review.log"
        log = log_path.open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "agent.cli.main", "steward", "review", "--store-url", store.url,
             "--key-file", str(key_file), "--log-key", b64encode(store.keys.log.public_bytes), "--no-browser"],
            cwd=ROOT, env=dict(os.environ), stdout=log, stderr=log, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_for(lambda: proc.poll() is None and _printed(log_path, r"http://127\.0\.0\.1:\d+/"), "the address")
            time.sleep(0.5)  # let the rest of the start-up lines reach the log
            said = log_path.read_text(encoding="utf-8")
            assert "token=" not in said, "the session key must never be printed on the terminal"
            found = _printed(log_path, r"(file://\S+)")
            assert found, f"no way in was printed: {said!r}"
            opener = Path(unquote(urlsplit(found.group(1)).path))
            assert stat.S_IMODE(opener.stat().st_mode) == 0o600
            assert stat.S_IMODE(opener.parent.stat().st_mode) == 0o700
            with chromium(tmp_path / "profile") as driver:
                driver.get(found.group(1))
                wait_for(lambda: manifest.batch_id in driver.page_source, "the review queue")
                assert "Tree head" in driver.page_source
                assert "consentry page" not in driver.page_source  # not the employee's instructions

            require_other_user()
            port = int(re.search(r"http://127\.0\.0\.1:(\d+)/", said).group(1))  # type: ignore[union-attr]
            tried = subprocess.run(
                [*as_other_user(), SYSTEM_PYTHON, "-I", "-c", _TRY, str(opener), str(port)],
                capture_output=True, text=True, cwd="/", env={"PATH": "/usr/bin:/bin", "HOME": "/"}, timeout=60,
            )  # fmt: skip
            assert tried.returncode == 0, tried.stderr
            seen = json.loads(tried.stdout)
            assert "file" not in seen and seen["file_error"] == "PermissionError", f"{OTHER_USER} read the link"
            assert seen["status"] in (0, 403) and manifest.batch_id not in seen["body"]
        finally:
            proc.terminate()
            code = proc.wait(timeout=15)
            log.close()
        assert code == 0, log_path.read_text()
        assert not opener.exists(), "the link file must go when the page stops"
