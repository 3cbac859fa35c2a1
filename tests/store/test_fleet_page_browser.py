"""IT's fleet page in a real headless Chromium, against a real store holding a simulated fleet (issue 16 §5).

Fifteen devices, each a real vault driven by the agent's own heartbeat code: ten in group "eng" (five
of whose employees consented and delivered a batch) and five in "lab" (two consented). In eng each
side has the same mix of health: two plain, one on another policy (drift), one older agent version,
one whose heartbeats never arrived (stale). The operator starts the page as the CLI does
(``consentry store fleet --page``, a real process), opens the session link in Chromium, and reads
devices, versions, drift and stale devices, and filters the list. Consent shows only as eng's count
(5 on each side); lab's (2 against 3) and the whole fleet's (which would reveal lab's by subtraction)
are withheld. No device row of a consenting employee differs from one of an employee who did not.
Another local user (``nobody``) with the stolen cookie and the link's token gets nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from urllib.parse import unquote

from devkit.fleet_kit import SimulatedDevice, add_operator, fleet_policy, simulated_device
from devkit.store_kit import Harness, backend_kind, running_store
from kit.page_link import page_link
from store.enrollment import create_secret
from tests.browser_kit import chromium, still_attached, wait_for
from tests.other_user import cookie_thief

__all__ = ["backend_kind"]

ROOT = Path(__file__).resolve().parents[2]
OLDER_VERSION = "0.9.0"
# Per side of eng (consented, not): what each device's health looks like.
ENG_HEALTH = ("plain", "plain", "drift", "older", "stale")
COLUMNS = ("device", "label", "version", "policy", "heartbeat", "last_seen", "error", "skew", "ledger", "retired")
IDENTITY = ("device", "label", "last_seen", "skew")  # differ for every device, consented or not


def _fleet(live: Harness, tmp: Path) -> list[tuple[SimulatedDevice, str]]:
    """The 15 devices with their health role, enrolled, beating, and the consenting ones delivering."""
    now = int(time.time())
    secrets = {
        label: create_secret(live.backend, label, now=now, valid_seconds=3600, per_hour=100).secret
        for label in ("eng", "lab")
    }
    policies = {
        "eng": fleet_policy(tmp / "policy-eng", live.url, live.keys, secrets["eng"]),
        "drift": fleet_policy(tmp / "policy-drift", live.url, live.keys, secrets["eng"], "retention_days = 14"),
        "lab": fleet_policy(tmp / "policy-lab", live.url, live.keys, secrets["lab"]),
    }
    plan = [("eng", consented, role) for consented in (True, False) for role in ENG_HEALTH]
    plan += [("lab", consented, "plain") for consented in (True, True, False, False, False)]
    fleet = []
    for i, (label, consented, role) in enumerate(plan):
        policy = policies["drift" if role == "drift" else label]
        fleet.append((simulated_device(tmp / f"device-{i:02d}", policy, consented=consented), role))
    for device, role in fleet:
        if role == "stale":
            device.enroll_only()
        else:
            assert device.beat() == "sent"
        if role == "older":
            device.beat_as_older_agent(OLDER_VERSION)
    for device, _ in fleet:
        if device.consented:  # the employee's batch goes through review and is delivered
            agent = device.store_agent()
            _, sealed = live.shippable(agent)
            with live.client(agent) as client:
                client.upload(sealed)
    return fleet


def _rows(driver: object) -> list[dict[str, str]]:
    """The device table's rows as the browser renders them, by column."""
    from selenium.webdriver.common.by import By

    table = driver.find_elements(By.TAG_NAME, "table")[0]  # type: ignore[attr-defined]
    rows = []
    for tr in table.find_elements(By.CSS_SELECTOR, "tbody tr"):
        cells = [td.text.strip() for td in tr.find_elements(By.TAG_NAME, "td")]
        rows.append(dict(zip(COLUMNS, cells, strict=True)))
    return rows


def _figures(driver: object) -> dict[str, list[str]]:
    """The fleet figures table: group -> its cells after the name."""
    from selenium.webdriver.common.by import By

    table = driver.find_elements(By.TAG_NAME, "table")[1]  # type: ignore[attr-defined]
    figures = {}
    for tr in table.find_elements(By.CSS_SELECTOR, "tbody tr"):
        cells = [td.text.strip() for td in tr.find_elements(By.TAG_NAME, "td")]
        figures[cells[0]] = cells[1:]
    return figures


def _masked(row: dict[str, str]) -> str:
    return "|".join(row[c] for c in COLUMNS if c not in IDENTITY)


def _filter(driver: object, **values: str) -> None:
    """Fill the page's filter form as the operator would and submit it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.select import Select

    for name, value in values.items():
        field = driver.find_element(By.NAME, name)  # type: ignore[attr-defined]
        if field.tag_name == "select":  # the yes / no flags
            Select(field).select_by_value(value)
        else:
            field.clear()
            field.send_keys(value)
    old = driver.find_element(By.TAG_NAME, "h2")  # type: ignore[attr-defined]
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()  # type: ignore[attr-defined]
    wait_for(lambda: not still_attached(old), "the filtered page")


def test_fleet_page_in_chromium_lists_health_and_no_register_of_who_consented(
    home: Path, tmp_path: Path, backend_kind: str
) -> None:
    with running_store(backend_kind, tmp_path / "store") as live:
        fleet = _fleet(live, tmp_path)
        by_kid = {device.kid: (device, role) for device, role in fleet}
        key_file = tmp_path / "operator.key"
        add_operator(live.backend, key_file)
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
                base = url.split("?")[0]
                token = unquote(url.split("token=", 1)[1])
                with chromium(tmp_path / "profile") as driver:
                    driver.get(url)
                    wait_for(lambda: "Fleet figures" in driver.page_source, "the fleet page")
                    _check_everything_shown(driver, by_kid)
                    _check_filters(driver, by_kid)
                    _check_other_user_gets_nothing(driver, base, token, list(by_kid))
                    driver.get(base)  # the operator's own session still works afterwards
                    wait_for(lambda: "Fleet figures" in driver.page_source, "the page, still in session")
            finally:
                proc.terminate()
                code = proc.wait(timeout=15)
    output = log_path.read_text()
    assert code == 0, output
    assert "Traceback" not in output


def _check_everything_shown(driver: object, by_kid: dict[str, tuple[SimulatedDevice, str]]) -> None:
    rows = _rows(driver)
    assert sorted(r["device"] for r in rows) == sorted(by_kid)
    current = {r["version"] for r in rows if by_kid[r["device"]][1] == "plain"}
    assert len(current) == 1 and current.isdisjoint({OLDER_VERSION, "-"})
    for row in rows:
        _, role = by_kid[row["device"]]
        assert row["version"] == {"older": OLDER_VERSION, "stale": "-"}.get(role, *current), row
        assert (row["policy"] == "drift") == (role == "drift"), row
        assert (row["heartbeat"] == "stale") == (role == "stale"), row
        assert (row["last_seen"] == "never") == (role == "stale"), row
    # No row of a consenting employee reads differently from one of an employee who did not: in eng the
    # rows are the same mix on each side, and the fleet's rows form the same set on each side.
    eng = [r for r in rows if r["label"] == "eng"]
    assert Counter(_masked(r) for r in eng if by_kid[r["device"]][0].consented) == Counter(
        _masked(r) for r in eng if not by_kid[r["device"]][0].consented
    )
    assert {_masked(r) for r in rows if by_kid[r["device"]][0].consented} == {
        _masked(r) for r in rows if not by_kid[r["device"]][0].consented
    }
    # Consent only as counts over groups of at least k = 5 on each side; below that, withheld.
    figures = _figures(driver)
    assert figures["eng"][:2] == ["10", "5"]
    assert figures["lab"][0] == "5" and figures["lab"][1].startswith("withheld")
    assert figures["(all)"][0] == "15" and figures["(all)"][1].startswith("withheld")  # lab's by subtraction
    text = driver.find_element("tag name", "body").text  # type: ignore[attr-defined]
    for word in ("consented", "granted", "paused", "revoked", "erased"):
        assert word not in text.replace("never shows which device or person consented, paused, revoked or erased", "")


def _check_filters(driver: object, by_kid: dict[str, tuple[SimulatedDevice, str]]) -> None:
    figures = _figures(driver)
    for values, role in (
        ({"drift": "yes"}, "drift"),
        ({"drift": "", "stale": "yes"}, "stale"),
        ({"stale": "", "version": OLDER_VERSION}, "older"),
    ):
        _filter(driver, **values)
        rows = _rows(driver)
        assert sorted(by_kid[r["device"]][1] for r in rows) == [role, role], values
        assert {by_kid[r["device"]][0].consented for r in rows} == {True, False}
        assert _figures(driver) == figures  # filters narrow the list, never the figures
    _filter(driver, version="", label="lab")
    assert len(_rows(driver)) == 5 and _figures(driver) == figures
    _filter(driver, label="")
    assert len(_rows(driver)) == 15


def _check_other_user_gets_nothing(driver: object, base: str, token: str, kids: list[str]) -> None:
    port = base.rsplit(":", 1)[1].strip("/")
    with cookie_thief() as thief:
        driver.get(thief.url)  # type: ignore[attr-defined]
        wait_for(lambda: "cute cats" in driver.page_source, "the other user's page")  # type: ignore[attr-defined]
        results = thief.replay(
            base, token, [{"method": "GET", "path": "/"}, {"method": "GET", "path": "/?drift=yes&label=eng"}]
        )
    stolen = results[0]["stolen"]
    assert stolen and f"consentry-session-{port}=" in stolen, "the browser must have leaked the cookie"
    for answer in results[1:]:
        what = f"{answer['method']} {answer['path'][:40]} as another user"
        assert answer["status"] in (0, 403), f"{what} got {answer['status']}"
        assert not answer["set_cookie"], f"{what} was given a session"
        assert "Fleet figures" not in answer["body"] and not any(kid in answer["body"] for kid in kids), what
