"""``consentry dataset``: the whole governed path through the real CLI on a real store's data folder."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

from click.testing import CliRunner

from admin.dataset_cmd import dataset
from devkit.store_kit import T0, Agent, running_store, write_policy
from protocol import SigningKey, b64encode, sign_erasure
from protocol.keyfile import write_key_file


def _run(args: list[str]):
    return CliRunner().invoke(dataset, args, catch_exceptions=False)


def test_dataset_request_approve_build_use_and_runs_marked_after_erasure(home: Path, tmp_path: Path) -> None:
    data = tmp_path / "store"
    data.mkdir()
    (data / "data").symlink_to(tmp_path / "store-data", target_is_directory=True)  # where running_store keeps it
    with running_store("dir", tmp_path, key_dir=data / "keys") as store:
        agents = [Agent() for _ in range(5)]
        for agent in agents:
            store.enroll(agent)
            with store.client(agent) as c:
                c.upload(store.shippable(agent, 12)[1])
        policy = write_policy(tmp_path / "policy.toml", store.stewards)
        steward_keys = []
        for i, signer in enumerate(store.stewards.signers):
            write_key_file(path := tmp_path / f"s{i}" / "steward.key", "ed25519", signer.private_bytes())
            steward_keys.append(path)

        made = _run(["keygen", "--name", "ml-team"])
        assert made.exit_code == 0, made.output
        consumer_line = made.output.strip().splitlines()[-1]
        (data / "release-policy.toml").write_text(
            f"k_min = 5\nretention_days = 3650\n\n[consumers.keys]\n{consumer_line}\n"
        )
        common = ["--data", str(data)]
        what = [
            "--category",
            "keyboard",
            "--from",
            "2023-11-13",
            "--to",
            "2023-11-16",
            "--description",
            "typing rhythm",
        ]
        ask = [*common, "--policy", str(policy), "--purpose", "work-pattern-research", *what]

        refused = _run(["request", *common, "--policy", str(policy), "--purpose", "ads", *what])
        assert refused.exit_code == 1 and "'ads'" in refused.output and "consented to" in refused.output

        requested = _run(["request", *ask, "--json"])
        assert requested.exit_code == 0, requested.output
        release = json.loads(requested.output)
        release_id = release["release_id"]
        assert release["manifest"]["eligible"] == {"keyboard": {"records": 20, "subjects": 5}}

        early = _run(["build", *common, "--policy", str(policy), release_id])
        assert early.exit_code == 1 and "0 of 2 steward approvals" in early.output
        # Stewards, on their own machines: no machine policy, only the store's URL and its pinned log key.
        remote = ["--store-url", store.url, "--log-key", b64encode(store.keys.log.public_bytes)]
        wrong_key = ["--store-url", store.url, "--log-key", b64encode(SigningKey.generate().public_bytes)]
        refused = _run(["approve", *wrong_key, "--key-file", str(steward_keys[0]), release_id])
        assert refused.exit_code == 1 and "does NOT verify" in refused.output
        pending = _run(["pending", *remote, "--key-file", str(steward_keys[0])])
        assert release_id in pending.output and "approvals 0/2" in pending.output
        for key in steward_keys[:2]:
            approved = _run(["approve", *remote, "--key-file", str(key), release_id])
            assert approved.exit_code == 0, approved.output
            assert release["manifest_sha256"] in approved.output  # the hash shown is the hash signed
        assert "is approved (2 of 2)" in approved.output
        built = _run(["build", *common, "--policy", str(policy), "--json", release_id])
        assert built.exit_code == 0, built.output
        assert json.loads(built.output)["rows"] == 20
        stored_card = Path(json.loads(built.output)["card_folder"]) / "README.md"
        assert stored_card.is_relative_to(data) and "Rows now: 20 of 5 subjects" in stored_card.read_text()
        printed = _run(["card", *common, "--policy", str(policy), release_id])
        assert printed.exit_code == 0 and "## Columns" in printed.output and "Approvals" in printed.output
        out = tmp_path / "consumer-copy"
        written = _run(["card", *common, "--policy", str(policy), "--out", str(out), release_id])
        assert written.exit_code == 0, written.output
        from datasets import load_dataset

        assert load_dataset(str(out), cache_dir=str(tmp_path / "hf"), split="train").num_rows == 20
        unknown = _run(["card", *common, "--policy", str(policy), "0" * 32])
        assert unknown.exit_code == 1 and "not built" in unknown.output

        used = _run(["use", *common, "--run", "rhythm-v1", release_id])
        assert used.exit_code == 0 and "Recorded run rhythm-v1" in used.output
        assert "retrain or unlearn" not in _run(["runs", *common]).output

        alice = agents[0]
        with store.client(alice) as c:
            c.request_erasure(sign_erasure(alice.device, uuid.uuid4().hex, alice.subject, created=T0))
        shown = _run(["runs", *common])
        assert "rhythm-v1" in shown.output and "trained on erased data: retrain or unlearn" in shown.output
        as_json = json.loads(_run(["runs", *common, "--json"]).output)
        assert [r["run"] for r in as_json] == ["rhythm-v1"]
        assert all(
            re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r[k]) for r in as_json for k in ("recorded", "flagged_at")
        )
        listed = _run(["pending", *remote, "--key-file", str(steward_keys[2])])
        assert release_id in listed.output and "built" in listed.output
