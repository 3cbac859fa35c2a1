"""The pages' templates (kit.web.templates): autoescaped end to end, strict about what they are given,
shipped whole, and never loaded by the CLI's read commands.

The hostile value reaches the page through real data: an organisation name in the machine policy (IT
writes it; every notice names it), read by the employee's page as the agent serves it, in a real
headless Chromium. The Content-Security-Policy would block an inline script anyway; what this shows
is that the markup never reaches the DOM: the text is shown as text.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jinja2
import pytest

from kit.page_link import page_link
from kit.web import templates
from kit.web.server import PageServer
from tests.agent.test_page_employee import _open, page  # noqa: F401 (fixture)
from tests.browser_kit import chromium
from vault.paths import Layout

HOSTILE = """Evil<script>window.__pwned = 1</script>"><img src=x onerror="window.__pwned = 2">'&amp;"""
PACKAGES = ("kit.web", "agent.web", "admin")


def _policy(name: str) -> str:
    return (
        f'[organisation]\nname = {_toml(name)}\ncontroller = {_toml(name + " DPO")}\ncontact = "privacy@corp.example"\n'
    )


def _toml(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def test_a_hostile_organisation_name_is_shown_as_text_and_never_runs(
    page: PageServer,  # noqa: F811
    layout: Layout,
    policy_path: Path,
    tmp_path: Path,
) -> None:
    from selenium.webdriver.common.by import By

    policy_path.write_text(_policy(HOSTILE))
    with chromium(tmp_path / "profile") as driver:
        _open(driver, page_link(layout.page_link, "/consent/mouse"))  # type: ignore[arg-type]
        main = driver.find_element(By.TAG_NAME, "main")
        plain = driver.find_element(By.ID, "plain-notice").text
        exact = driver.find_element(By.ID, "notice").get_attribute("textContent")
        assert HOSTILE in plain and HOSTILE + " DPO" in plain, plain  # every character, as text
        assert HOSTILE in exact  # and in the exact text a grant hashes
        assert main.find_elements(By.TAG_NAME, "script") == []
        assert main.find_elements(By.TAG_NAME, "img") == []
        assert driver.execute_script("return typeof window.__pwned") == "undefined"
        # The page still works: the grant form is there and carries the notice's fingerprint.
        assert driver.find_element(By.ID, "grant").is_displayed()


def test_a_template_refuses_a_variable_it_was_not_given() -> None:
    given = {"title": "Consentry", "nonce": "n", "csrf": "c", "fields": {"scope": "everything"}}
    with pytest.raises(jinja2.UndefinedError, match="'question' is undefined"):
        templates.page("agent.web", "erase_ask.html", **given)  # never a page with an empty question
    # The control: with every variable given it renders.
    shown = templates.page("agent.web", "erase_ask.html", question="Erase everything?", **given)
    assert '<p id="erase-question">Erase everything?</p>' in shown


def test_every_template_compiles_and_escapes_what_it_is_given() -> None:
    for package in PACKAGES:
        env = templates.environment(package)
        names = [n for n in env.list_templates() if n.endswith(".html")]
        assert names, package
        for name in names:
            env.get_template(name)  # a syntax error fails here, not when a person opens the page
    shown = templates.message_page("<b>title</b>", HOSTILE, "nonce")
    assert "<script>" not in shown and "<img" not in shown and "<b>title" not in shown
    assert "Evil&lt;script&gt;" in shown and "&amp;amp;" in shown


@pytest.mark.parametrize("command", [("status",), ("mydata",), ("consent", "show")])
def test_read_commands_never_import_jinja2(home: Path, command: tuple[str, ...]) -> None:
    probe = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('jinja2 imported:', 'jinja2' in sys.modules, file=sys.stderr))\n"
        "from agent.cli.main import main\n"
        "sys.argv = ['consentry', *sys.argv[1:]]\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", probe, *command], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "jinja2 imported: False" in done.stderr, done.stderr
