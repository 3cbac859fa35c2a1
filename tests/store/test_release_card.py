"""Every built release gets a dataset card and a datasheet people can read and `datasets` can load (both backends)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from devkit import store_kit
from devkit.store_kit import running_store
from protocol import SigningKey, subject_digest
from store.releases.card import (
    CARD_NAME,
    DATASHEET_NAME,
    EmptyReleaseCard,
    link_data_files,
    release_facts,
    write_documents,
)
from store.releases.governance import ReleaseError, build_release, request_release
from store.releases.governance_sink import TableReleaseSink, open_release_table
from store.releases.rows import RELEASE_SCHEMA
from tests.store.test_release_governance import NOW, PURPOSE, _approve_all, _fill, _policy, _request

backend_kind = store_kit.backend_kind
_EPOCH = re.compile(r"(?<![\w/+=.-])1\d{9}(?![\w/+=.-])")  # a bare epoch-seconds figure (2001..2033)


def test_built_release_has_a_card_and_datasheet_people_read_and_datasets_loads(
    backend_kind: str, tmp_path: Path
) -> None:
    consumer = SigningKey.generate()
    with running_store(backend_kind, tmp_path) as store:
        schema = getattr(store.backend, "schema", "consentry")
        table = open_release_table(store.settings, tmp_path / "store", backend_kind, store_kit.pg_dsn(), schema)
        agents = _fill(store, 5)
        policy, stewards = _policy(consumer), store.settings.stewards
        status = request_release(store.backend, store.keys, policy, stewards, _request(consumer), now=NOW)
        with pytest.raises(ReleaseError, match="not built"):
            release_facts(store.backend, stewards, table, status.release_id)
        _approve_all(store, status.release_id, status.manifest_sha256)
        build_release(
            store.backend, store.keys, stewards, status.release_id, TableReleaseSink(table), now=NOW, retention_days=30
        )
        facts = release_facts(store.backend, stewards, table, status.release_id)
        folder = tmp_path / "card"
        card_path, sheet_path = write_documents(folder, facts)
        links = link_data_files(folder, table.data_files(status.release_id))
        card, sheet = card_path.read_text(), sheet_path.read_text()

        assert card.startswith("---\npretty_name:") and "configs:" in card
        assert f"for **one purpose: `{PURPOSE}`**" in card and "typing rhythm model, v1" in card
        assert "Licence: internal use only; no redistribution" in card
        assert "Contact: the data protection officer" in card
        assert "Rows now: 40 of 5 subjects" in card
        for name in stewards.keys:  # the approving stewards, by name, key and readable time
            if name in ("steward0", "steward1"):
                assert f"| {name} | `{stewards.keys[name]}` | approve |" in card
        assert card.count(" UTC |") >= 2 and "| keyboard | 5 | yes |" in card
        for column in RELEASE_SCHEMA.names:  # the column dictionary, every column
            assert f"| `{column}` |" in card
        assert "| `start` | timestamp[us, tz=UTC] | UTC time | when the time window began" in card
        assert "| reason | category | records | subjects |" in card
        assert _EPOCH.findall(card) == [] and _EPOCH.findall(sheet) == []  # times in words, never epoch seconds
        assert sheet.startswith("# Datasheet: Consentry release") and "## Preprocessing and exclusions" in sheet
        assert "Questions: the data protection officer" in sheet

        from huggingface_hub import DatasetCard

        meta = DatasetCard.load(card_path).data.to_dict()
        assert meta["license"] == "other" and meta["configs"][0]["data_files"][0]["path"] == "data/*.parquet"
        from datasets import load_dataset

        train = load_dataset(str(folder), cache_dir=str(tmp_path / "hf"), split="train")
        assert train.num_rows == 40 == table.read(status.release_id).num_rows and len(links) >= 1
        assert (folder / DATASHEET_NAME).exists() and (folder / CARD_NAME).exists()

        # Every subject erased: the release is empty, and no card is written for it.
        for agent in agents:
            table.erase_subject(subject_digest(agent.subject))
        empty = release_facts(store.backend, stewards, table, status.release_id)
        assert empty.rows == 0
        with pytest.raises(EmptyReleaseCard, match="holds no rows now"):
            write_documents(tmp_path / "empty-card", empty)
        assert not (tmp_path / "empty-card").exists()
        table.close()
