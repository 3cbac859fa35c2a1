"""Schemathesis against the store's own OpenAPI: any request, valid-looking or malformed, gets 2xx/4xx, never
a 5xx, and an unauthenticated fuzzer never gets a row stored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests import store_kit
from tests.store_kit import Harness, running_store

backend_kind = store_kit.backend_kind  # the fixture that runs each test on both backends

EXAMPLES = 25  # per operation and mode: 16 operations x 2 modes, well under a minute on both backends


def _counts(store: Harness) -> dict[str, int]:
    with store.backend.transaction() as tx:
        tables = ("devices", "batches", "approvals", "checkpoints", "erasures", "log_leaves")
        return {t: tx.count_rows(t) for t in tables}


def _fuzz(operation: Any, mode: GenerationMode) -> str | None:
    """Run one operation's generated cases; return a description of the first failure, if any."""
    name = f"{operation.method.upper()} {operation.path} [{mode.value}]"

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: schemathesis.Case) -> None:
        response = case.call()
        assert response.status_code < 500, f"{name} -> {response.status_code}"
        if response.status_code >= 400:
            body = response.json()
            assert set(body) == {"error"} and body["error"]["code"], body

    try:
        check()
    except Unsatisfiable:
        return None  # nothing to make malformed (no parameters, no body)
    except AssertionError as exc:
        return f"{name}: {exc}"[:400]
    return None


def test_fuzzed_requests_get_4xx_never_5xx_and_store_nothing(backend_kind: str, tmp_path: Path) -> None:
    with running_store(backend_kind, tmp_path, max_body_bytes=64 * 1024) as store:
        from vault.store.app import create_app

        # The same app as served, called in-process over ASGI by schemathesis.
        app = create_app(store.backend, store.keys, store.settings)
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        before = _counts(store)
        failures = [
            failure
            for result in schema.get_all_operations()
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
            if (failure := _fuzz(result.ok(), mode)) is not None
        ]
        assert not failures, "\n".join(failures)
        assert _counts(store) == before
