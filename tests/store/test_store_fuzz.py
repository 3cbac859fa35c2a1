"""Schemathesis against the store's own OpenAPI: any request, valid-looking or malformed, gets 2xx/4xx, never
a 5xx; a schema-valid request is never refused for its shape (only for credentials or state); a schema-invalid
one is refused; and an unauthenticated fuzzer never gets a row stored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    negative_data_rejection,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from devkit import store_kit
from devkit.store_kit import Harness, running_store

backend_kind = store_kit.backend_kind  # the fixture that runs each test on both backends

EXAMPLES = 25  # per operation and mode: 16 operations x 2 modes, well under a minute on both backends
CHECKS = [
    not_a_server_error,
    positive_data_acceptance,  # schema-valid: 2xx, or 401/403/404/409 (credentials, state), never 400/422
    negative_data_rejection,  # schema-invalid: refused with a 4xx
    status_code_conformance,  # every status the store answers is documented
    response_schema_conformance,  # and its body matches the documented schema
]


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
        response = case.call_and_validate(checks=CHECKS)
        if response.status_code >= 400:
            body = response.json()
            assert set(body) == {"error"} and body["error"]["code"], body

    try:
        check()
    except Unsatisfiable:
        return None  # nothing to make malformed (no parameters, no body)
    except (AssertionError, BaseExceptionGroup) as exc:  # schemathesis reports its checks' failures as a group
        return f"{name}: {exc!r}"[:1500]
    return None


def test_fuzzed_requests_are_answered_as_the_schema_says_and_store_nothing(backend_kind: str, tmp_path: Path) -> None:
    with running_store(backend_kind, tmp_path, max_body_bytes=64 * 1024) as store:
        from store.app import create_app

        # The same app as served (its docs off, as in production), called in-process over ASGI; the schema
        # comes from the app object, not over HTTP.
        app = create_app(store.backend, store.keys, store.settings)
        schema = schemathesis.openapi.from_dict(app.openapi())
        schema.app = app
        before = _counts(store)
        failures = [
            failure
            for result in schema.get_all_operations()
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
            if (failure := _fuzz(result.ok(), mode)) is not None
        ]
        assert not failures, "\n".join(failures)
        assert _counts(store) == before
