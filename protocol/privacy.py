"""Privacy checks over a batch's records, and the per-batch re-keying of application pseudonyms.

The checks run twice: on the workstation when the manifest is built (their results travel in it, so the
employee and the stewards see them), and again in the store on the decrypted payload before ingest.

    schema              every record validates with protocol.windows.parse_window (extra="forbid": no
                        field outside the schema)
    no_free_text        every string in a record is a closed-vocabulary value at a known key
    consent_coverage    every record names a receipt in the manifest, of its own category, granted
                        no later than the record starts
    counts_match        the per-category counts equal the manifest's
    app_tokens_rekeyed  (workstation only) no vault-level ``anon:`` token survives into the batch
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from protocol import domains
from protocol.categories import Category
from protocol.fields import FROZEN
from protocol.windows import (
    APP_TOKEN_PATTERN,
    EXTENSION_PATTERN,
    AnyWindow,
    AppsWindow,
    WindowRecord,
    parse_window,
)

CheckName = Literal["schema", "no_free_text", "consent_coverage", "counts_match", "app_tokens_rekeyed"]
REQUIRED_CHECKS: tuple[CheckName, ...] = (
    "schema",
    "no_free_text",
    "consent_coverage",
    "counts_match",
    "app_tokens_rekeyed",
)
# Checks the store can repeat on the payload; app_tokens_rekeyed needs the vault's tokens, which never leave.
STORE_CHECKS: tuple[CheckName, ...] = ("schema", "no_free_text", "consent_coverage", "counts_match")

# Where a string may appear in a record, and what it must look like. Anything else is free text.
_ENUM_KEYS = {"category", "root_class", "kind"}
_RECEIPT_KEY = "receipt_id"
_WORD = re.compile(r"^[a-z_]{1,32}$")


class PrivacyCheck(BaseModel):
    """One check's result. ``detail`` holds counts only, never record content."""

    model_config = FROZEN

    name: CheckName
    passed: bool
    detail: str = Field(default="", max_length=200)


class ReceiptLike(Protocol):
    @property
    def receipt_id(self) -> str: ...

    @property
    def category(self) -> Category: ...

    @property
    def granted_at(self) -> int: ...


def _check(name: CheckName, failures: int, what: str) -> PrivacyCheck:
    if failures:
        return PrivacyCheck(name=name, passed=False, detail=f"{failures} record(s) {what}")
    return PrivacyCheck(name=name, passed=True)


def _strings(value: Any, key: str | None) -> Iterable[tuple[str | None, str]]:
    """Every string in a JSON value with the key it sits under; dict keys are reported with key None."""
    if isinstance(value, str):
        yield key, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield None, str(k)
            yield from _strings(v, str(k))
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item, key)


def _has_free_text(record: Mapping[str, Any], receipt_ids: set[str]) -> bool:
    for key, text in _strings(dict(record), None):
        if key is None or key in _ENUM_KEYS:
            ok = bool(_WORD.match(text))
        elif key == _RECEIPT_KEY:
            ok = text in receipt_ids
        elif key == "app":
            ok = bool(APP_TOKEN_PATTERN.match(text))
        elif key == "ext":
            ok = bool(EXTENSION_PATTERN.match(text))
        else:
            ok = False
        if not ok:
            return True
    return False


def _anon_tokens(records: Iterable[Mapping[str, Any]]) -> set[str]:
    tokens: set[str] = set()
    for record in records:
        for focus in record.get("focus", ()) if record.get("category") == "apps" else ():
            app = focus.get("app") if isinstance(focus, dict) else None
            if isinstance(app, str) and app.startswith("anon:"):
                tokens.add(app)
    return tokens


def _parse_all(records: Sequence[Mapping[str, Any]]) -> list[AnyWindow | None]:
    """Validate every record; one call for the common all-valid case, then one by one to find the bad ones."""
    try:
        return list(_records_adapter().validate_python(records))
    except (ValidationError, ValueError, TypeError):
        pass
    parsed: list[AnyWindow | None] = []
    for raw in records:
        try:
            parsed.append(parse_window(dict(raw)))
        except (ValidationError, ValueError, TypeError):
            parsed.append(None)
    return parsed


@functools.cache
def _records_adapter() -> TypeAdapter[list[AnyWindow]]:
    return TypeAdapter(list[WindowRecord])


def _tally_records(
    parsed: Sequence[AnyWindow | None], records: Sequence[Mapping[str, Any]], by_id: Mapping[str, ReceiptLike]
) -> tuple[int, int, dict[str, int]]:
    """One pass over the records (the store runs it on every record of every batch): how many contain free
    text, how many no receipt covers, and how many valid records each category has."""
    ids = set(by_id)
    free_text = uncovered = 0
    actual: dict[str, int] = {}
    for p, raw in zip(parsed, records, strict=True):
        if p is None:  # outside the schema: walked string by string, and never covered
            free_text += _has_free_text(raw, ids)
            uncovered += 1
            continue
        # The schema admits no free text except receipt_id, so a valid record needs only that checked.
        receipt = by_id.get(p.receipt_id)
        if receipt is None:
            free_text += 1
            uncovered += 1
        # Windows are aligned to the wall clock, so the first one may start before the grant; it is
        # covered when the grant began before the window ended (the vault's rule).
        elif receipt.category != p.category or receipt.granted_at >= p.end:
            uncovered += 1
        actual[p.category] = actual.get(p.category, 0) + 1
    return free_text, uncovered, actual


def run_privacy_checks(
    records: Sequence[Mapping[str, Any]],
    receipts: Sequence[ReceiptLike],
    counts: Mapping[Category, int],
    *,
    source_records: Sequence[Mapping[str, Any]] | None = None,
    names: Sequence[CheckName] = REQUIRED_CHECKS,
) -> tuple[PrivacyCheck, ...]:
    """Run the checks in ``names`` over raw record dicts (JSON form) and return their results in order."""
    parsed = _parse_all(records)
    by_id = {r.receipt_id: r for r in receipts}
    invalid = sum(p is None for p in parsed)
    free_text, uncovered, actual = _tally_records(parsed, records, by_id)
    results: list[PrivacyCheck] = []
    for name in names:
        if name == "schema":
            results.append(_check(name, invalid, "outside the window schema"))
        elif name == "no_free_text":
            results.append(_check(name, free_text, "contain a string outside the closed vocabularies"))
        elif name == "consent_coverage":
            results.append(_check(name, uncovered, "not covered by a consent receipt in the manifest"))
        elif name == "counts_match":
            expected = {str(c): n for c, n in counts.items() if n}
            if actual == expected and not invalid:
                results.append(PrivacyCheck(name=name, passed=True))
            else:
                results.append(PrivacyCheck(name=name, passed=False, detail="record counts differ from the manifest"))
        elif name == "app_tokens_rekeyed":
            if source_records is None:
                results.append(PrivacyCheck(name=name, passed=False, detail="source records not given"))
            else:
                leaked = _anon_tokens(records) & _anon_tokens(source_records)
                results.append(_check(name, len(leaked), "carry a vault-level app token"))
    return tuple(results)


def rekey_app_tokens(records: Sequence[AnyWindow], batch_key: bytes) -> list[AnyWindow]:
    """Map every ``anon:`` app token through HMAC-SHA-256 under ``batch_key`` (32 random bytes per batch).

    Allow-listed ``cat:`` tokens are kept. Within a batch one application keeps one token (sequences stay
    learnable); across batches tokens are unlinkable because each batch has a fresh key. The key must be
    discarded after sealing and never sent anywhere: with it, a dictionary of app names could be tested.
    """
    if len(batch_key) != 32:
        raise ValueError(f"batch_key must be 32 bytes, got {len(batch_key)}")
    out: list[AnyWindow] = []
    for record in records:
        if isinstance(record, AppsWindow):
            focus = tuple(
                f.model_copy(update={"app": _rekey(f.app, batch_key)}) if f.app.startswith("anon:") else f
                for f in record.focus
            )
            out.append(record.model_copy(update={"focus": focus}))
        else:
            out.append(record)
    return out


def _rekey(token: str, batch_key: bytes) -> str:
    digest = hmac.new(batch_key, domains.APP_TOKEN_V1 + token.encode("ascii"), hashlib.sha256).hexdigest()
    return "anon:" + digest[:16]
