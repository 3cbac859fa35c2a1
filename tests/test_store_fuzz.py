"""Schemathesis against the store's own OpenAPI: any request, valid-looking or malformed, gets 2xx/4xx, never
a 5xx, and an unauthenticated fuzzer never gets a row stored."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.store_kit import Agent, backend_kind, running_store  # noqa: F401

EXAMPLES = 25  # per operation and mode: 16 operations x 2 modes, well under a minute on both backends


def _counts(store) -> dict[str, int]:
    with store.backend.transaction() as tx:
        return {t: tx.count_rows(t) for t in ("devices", "batches", "approvals", "checkpoints", "erasures", "log_leaves")}


def test_fuzzed_requests_get_4xx_never_5xx_and_store_nothing(backend_kind: str, tmp_path: Path) -> None:
    with running_store(backend_kind, tmp_path, max_body_bytes=64 * 1024) as store:
        from vault.store.app import create_app

        # The same app object shape as served; schemathesis calls it in-process over ASGI.
        app = create_app(store.backend, store.keys, store.settings)
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        before = _counts(store)
        failures: list[str] = []
        for result in schema.get_all_operations():
            operation = result.ok()
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

                @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                          suppress_health_check=list(HealthCheck))
                @given(case=operation.as_strategy(generation_mode=mode))
                def check(case: schemathesis.Case) -> None:
                    response = case.call()
                    if response.status_code >= 500:
                        failures.append(f"{operation.method.upper()} {operation.path} -> {response.status_code}")
                    assert response.status_code < 500
                    if response.status_code >= 400:
                        body = response.json()
                        assert set(body) == {"error"} and body["error"]["code"]

                try:
                    check()
                except Unsatisfiable:
                    pass  # nothing to make malformed (no parameters, no body)
                except Exception as exc:  # keep going to report every failing operation at once
                    failures.append(f"{operation.method.upper()} {operation.path} [{mode.value}]: {exc!r}"[:400])
        assert not failures, "\n".join(failures)
        assert _counts(store) == before
