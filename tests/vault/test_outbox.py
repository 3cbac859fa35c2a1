"""The outbox: enrollment, the witnessed checkpoint, queued store erasures and batch states, in a real vault."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from devkit.factories import grant, keyboard_window
from protocol.categories import Category
from protocol.erasure import ErasureRequest, verify_erasure
from protocol.errors import ConsentryError
from protocol.timeutil import iso
from vault import batches, outbox
from vault.paths import Layout
from vault.policy import MachinePolicy
from vault.vault import Vault

NOW = datetime.now(UTC).replace(microsecond=0)
T = int(NOW.timestamp()) // 60 * 60 - 3600
RECEIPT = {"request_id": "r", "leaf_index": 4, "signature": "c2ln"}


@pytest.fixture
def vault(layout: Layout) -> Iterator[Vault]:
    v = Vault.open(layout)
    yield v
    v.close()


def test_enrollment_is_kept_in_the_vault_file(vault: Vault, layout: Layout) -> None:
    assert outbox.enrollment(vault) is None
    enrolled = outbox.Enrollment(url="https://store.example:8443", store_public_key="c3Q=", log_public_key="bG8=")
    outbox.record_enrollment(vault, enrolled, NOW)
    assert outbox.enrollment(vault) == enrolled
    with Vault.open(layout) as reopened:
        assert outbox.enrollment(reopened) == enrolled
        assert reopened.meta[outbox.META_ENROLLED_AT] == iso(NOW)


def test_witnessed_checkpoint_starts_unknown_and_is_replaced(vault: Vault, layout: Layout) -> None:
    assert outbox.witnessed_seq(vault) is None
    outbox.record_witnessed(vault, 5)
    outbox.record_witnessed(vault, 12)
    assert outbox.witnessed_seq(vault) == 12
    with Vault.open(layout) as reopened:
        assert outbox.witnessed_seq(reopened) == 12


def test_queued_erasure_is_signed_by_the_device_and_recorded_in_the_ledger(vault: Vault) -> None:
    request_id = outbox.queue_erasure(vault, "all", NOW)
    (queued,) = outbox.erasure_requests(vault)
    assert (queued.request_id, queued.created, queued.scope) == (request_id, iso(NOW), "all")
    assert queued.receipt is None and queued.last_error is None
    request = ErasureRequest.model_validate_json(queued.request)
    assert request.request_id == request_id and request.subject == vault.subject
    assert request.device_kid == vault.device_key.kid and request.created == int(NOW.timestamp())
    verify_erasure(request, vault.device_key.public_bytes)
    last = list(vault.ledger.entries(("erasure-requested",)))[-1]
    assert (last.body["request_id"], last.body["scope"]) == (request_id, "all")


def test_erasure_for_another_subject_names_that_subject(vault: Vault) -> None:
    outbox.queue_erasure(vault, "all", NOW, subject="subj-other")
    (queued,) = outbox.erasure_requests(vault)
    assert ErasureRequest.model_validate_json(queued.request).subject == "subj-other"


def test_a_failed_send_stays_queued_and_a_receipt_completes_it(vault: Vault) -> None:
    first = outbox.queue_erasure(vault, "all", NOW)
    second = outbox.queue_erasure(vault, "categories", NOW)
    assert [q.request_id for q in outbox.erasure_requests(vault, unsent_only=True)] == [first, second]
    assert outbox.pending_erasure_count(vault) == 2

    outbox.record_erasure_error(vault, first, "unreachable: connection refused")
    (failed, _) = outbox.erasure_requests(vault, unsent_only=True)
    assert failed.request_id == first and failed.last_error == "unreachable: connection refused"
    assert outbox.pending_erasure_count(vault) == 2

    outbox.record_erasure_receipt(vault, first, {**RECEIPT, "request_id": first})
    (still,) = outbox.erasure_requests(vault, unsent_only=True)
    assert still.request_id == second and outbox.pending_erasure_count(vault) == 1
    done = next(q for q in outbox.erasure_requests(vault) if q.request_id == first)
    assert done.receipt == {**RECEIPT, "request_id": first} and done.last_error is None


def test_erasure_requests_are_listed_oldest_first(vault: Vault) -> None:
    later = outbox.queue_erasure(vault, "all", NOW)
    earlier = outbox.queue_erasure(vault, "all", NOW - timedelta(hours=1))
    assert [q.request_id for q in outbox.erasure_requests(vault)] == [earlier, later]


def test_batches_are_listed_with_their_state_and_last_error(vault: Vault) -> None:
    assert outbox.list_batches(vault) == []
    policy = MachinePolicy(hold_hours=24)
    rid = grant(vault, Category.KEYBOARD, NOW - timedelta(hours=2))
    vault.write_windows([keyboard_window(T, rid)])
    vetoed = batches.seal_pending(vault, policy, NOW)
    vault.write_windows([keyboard_window(T + 60, rid)])
    released = batches.seal_pending(vault, policy, NOW + timedelta(seconds=1))
    assert vetoed is not None and released is not None
    batches.veto(vault, vetoed.batch_id, NOW)
    batches.release(vault, released.batch_id, NOW)
    batches.record_error(vault, released.batch_id, "chain_broken: batch 2 does not extend batch 1", NOW)
    listed = [(b.batch_id, b.state, b.last_error) for b in outbox.list_batches(vault)]
    assert listed == [
        (vetoed.batch_id, "vetoed", None),
        (released.batch_id, "released", "chain_broken: batch 2 does not extend batch 1"),
    ]
    assert [b.batch_id for b in outbox.list_batches(vault, ("released",))] == [released.batch_id]
    assert outbox.get_batch(vault, vetoed.batch_id) == outbox.list_batches(vault)[0]
    with pytest.raises(ConsentryError, match="no batch"):
        outbox.get_batch(vault, "missing")
