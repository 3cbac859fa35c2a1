"""``consentry store fleet --page``: IT's read-only fleet page as a real process against a real store.

The page runs on 127.0.0.1 with the same guard as the steward's page (session link in a 0600 file,
never printed), lists the devices, keeps filters to the device list, and offers nothing that changes
anything.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from devkit.store_kit import Agent, running_store
from kit.page_link import page_link
from protocol import SigningKey, b64encode
from protocol.keyfile import write_key_file
from store import fleet_db
from tests.browser_kit import wait_for

ROOT = Path(__file__).resolve().parents[2]


def test_fleet_page_lists_devices_read_only_behind_the_page_guard(home: Path, tmp_path: Path) -> None:
    with running_store("dir", tmp_path / "store") as live:
        agents = [Agent() for _ in range(3)]
        for agent in agents:
            live.enroll(agent)
        operator = SigningKey.generate()
        with live.backend.transaction() as tx:
            fleet_db.add_operator(fleet_db.as_query(tx), operator.kid, "it", b64encode(operator.public_bytes), 1)
        key_file = tmp_path / "operator.key"
        write_key_file(key_file, "ed25519", operator.private_bytes())
        link = home / "operator" / "fleet.json"
        log_path = tmp_path / "fleet-page.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "agent.cli.main", "store", "fleet", "--page", "--key-file", str(key_file),
                 "--store-url", live.url],
                cwd=ROOT, env=dict(os.environ), stdout=log, stderr=log, stdin=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                url = wait_for(lambda: proc.poll() is None and page_link(link, "/"), "fleet.json", timeout=30)
                assert link.stat().st_mode & 0o077 == 0
                base = url.split("?")[0]
                with httpx.Client(base_url=base, follow_redirects=False) as client:
                    assert client.get("/").status_code in (401, 403)  # no session: nothing shown
                    assert client.get(url).status_code == 200
                    page = client.get("/").text
                    assert all(a.device.kid in page for a in agents) and "Fleet figures" in page
                    filtered = client.get("/", params={"label": "nowhere"}).text
                    assert not any(a.device.kid in filtered for a in agents) and "Fleet figures" in filtered
                    assert '<form method="post"' not in page.lower()
                    refused = client.post("/", data={"x": "1"})
                    assert refused.status_code >= 400
            finally:
                proc.terminate()
                code = proc.wait(timeout=15)
        output = log_path.read_text()
        assert code == 0, output
        assert "Traceback" not in output and "token" not in output
        assert not link.exists()
