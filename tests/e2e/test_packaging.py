"""What IT deploys parses, and starts a command that exists."""

from __future__ import annotations

import configparser
import plistlib
import xml.etree.ElementTree as ET
from pathlib import Path

from click.testing import CliRunner

from agent.cli.main import cli

PACKAGING = Path(__file__).resolve().parents[2] / "packaging"


def _assert_runs_agent(argv: list[str]) -> None:
    assert argv[-2:] == ["agent", "run"], argv
    shown = CliRunner().invoke(cli, ["agent", "run", "--help"])
    assert shown.exit_code == 0 and "Run the capture agent" in shown.output


def test_systemd_user_unit_and_autostart_start_the_agent() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(PACKAGING / "linux" / "consentry-agent.service")
    _assert_runs_agent(unit["Service"]["ExecStart"].split())
    assert unit["Install"]["WantedBy"] == "graphical-session.target"
    desktop = configparser.ConfigParser(interpolation=None)
    desktop.read(PACKAGING / "linux" / "consentry-agent.desktop")
    assert desktop["Desktop Entry"]["Exec"] == "/usr/libexec/consentry/agent-autostart"
    guard = (PACKAGING / "linux" / "consentry-agent-autostart").read_text(encoding="utf-8").splitlines()
    _assert_runs_agent(guard[-1].split())  # the guard's last step, where systemd does not run the agent


def test_macos_launch_agent_is_a_valid_plist() -> None:
    plist = plistlib.loads((PACKAGING / "macos" / "com.consentry.agent.plist").read_bytes())
    _assert_runs_agent(plist["ProgramArguments"])
    assert plist["LimitLoadToSessionType"] == "Aqua"


def test_windows_logon_task_is_valid_xml() -> None:
    ns = {"t": "http://schemas.microsoft.com/windows/2004/02/mit/task"}
    root = ET.parse(PACKAGING / "windows" / "consentry-agent-task.xml").getroot()
    assert root.find("t:Triggers/t:LogonTrigger", ns) is not None
    arguments = root.find("t:Actions/t:Exec/t:Arguments", ns)
    assert arguments is not None and arguments.text is not None
    _assert_runs_agent(["consentry", *arguments.text.split()])
