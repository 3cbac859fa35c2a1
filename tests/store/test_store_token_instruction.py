"""``consentry store token`` tells IT what to run on the workstation, and that command really enrolls it.

Read as IT reads it: the instruction printed beside the token is taken word for word, FILE is replaced
by a file holding the token, and the command is run against a real ``consentry store serve`` that the
workstation's machine policy names.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from click.testing import CliRunner

from agent.cli.main import cli
from devkit.store_kit import Stewards, StoreProcess, free_port, write_policy
from protocol import b64encode
from store.keys import StoreKeys


def test_the_enroll_command_printed_beside_the_token_enrolls_the_workstation(
    tmp_path: Path, home: Path, policy_path: Path
) -> None:
    stewards = Stewards.make(1, 1)
    data = tmp_path / "store"
    proc = StoreProcess(data, write_policy(tmp_path / "store-policy.toml", stewards), backend="dir", port=free_port())
    proc.start()
    try:
        keys, _ = StoreKeys.load_or_create(data / "keys")
        policy_path.write_text(
            f'[store]\nurl = "{proc.url}"\npublic_key = "{b64encode(keys.seal.public_bytes)}"\n'
            f'log_key = "{b64encode(keys.log.public_bytes)}"\n'
            f'[stewards]\napprovals_required = 1\n[stewards.keys]\nsteward0 = "{b64encode(stewards.signers[0].public_bytes)}"\n'
        )
        issued = CliRunner().invoke(cli, ["store", "token", "--data", str(data)])
        assert issued.exit_code == 0, issued.output
        token = issued.stdout.strip()
        said = issued.stderr
        assert token not in said
        found = re.search(r"run: (consentry enroll [^\n]*?FILE)\b", said)
        assert found, f"no enroll command in: {said!r}"
        assert "[store] url" in said, "IT must learn where the store's address comes from"
        token_file = tmp_path / "token"
        token_file.write_text(token + "\n")
        token_file.chmod(0o600)
        words = shlex.split(found.group(1).replace("FILE", str(token_file)))
        assert words[:2] == ["consentry", "enroll"]
        enrolled = CliRunner().invoke(cli, words[1:])
        assert enrolled.exit_code == 0, enrolled.output
        assert "Enrolled" in enrolled.output
    finally:
        proc.stop()
