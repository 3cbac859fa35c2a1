"""The release block of ``consentry steward review``: a real store, the real page process, an HTTP session.

Approve is signed on the steward's machine over the hash of the release manifest the page showed; a
stale hash signs nothing.
"""

from __future__ import annotations

import re
import uuid

from devkit.store_kit import T0, Agent
from protocol import SigningKey, b64encode
from protocol.categories import Category
from store.releases.consumers import ConsumerConfig, ReleasePolicy
from store.releases.governance import request_release, show_release
from store.releases.requests import sign_request
from tests.store.test_page_steward import Review, _session, review  # noqa: F401  (the page fixture)


def _release(page: Review) -> str:
    store = page.store
    for _ in range(4):  # four subjects with stored batches (the fixture's own batch is only submitted)
        agent = Agent()
        store.enroll(agent)
        with store.client(agent) as c:
            c.upload(store.shippable(agent, 12)[1])
    consumer = SigningKey.generate()
    policy = ReleasePolicy(k_min=4, consumers=ConsumerConfig(keys={"ml-team": b64encode(consumer.public_bytes)}))
    request = sign_request(
        consumer,
        release_id=uuid.uuid4().hex,
        purpose="work-pattern-research",
        categories=[Category.KEYBOARD],
        period_start=T0 - 86_400,
        period_end=T0 + 86_400,
        description="typing rhythm model",
        created=T0 + 2 * 86_400,
    )
    return request_release(
        store.backend, store.keys, policy, store.settings.stewards, request, now=T0 + 2 * 86_400
    ).release_id


def test_release_is_approved_on_the_page_over_the_hash_it_showed(review: Review) -> None:  # noqa: F811
    release_id = _release(review)
    client = _session(review)
    listed = client.get("/releases")
    assert listed.status_code == 200 and release_id in listed.text and "work-pattern-research" in listed.text
    page = client.get(f"/release/{release_id}").text
    status = show_release(review.store.backend, review.store.settings.stewards, release_id)
    assert status.manifest_sha256 in page and "distinct subjects in every category" in page
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert csrf
    origin = {"Origin": review.base.rstrip("/")}
    stale = client.post(
        f"/release/{release_id}/approve", data={"csrf": csrf.group(1), "manifest_sha256": "ab" * 32}, headers=origin
    )
    assert stale.status_code == 409 and "nothing was signed" in stale.text
    assert show_release(review.store.backend, review.store.settings.stewards, release_id).approved_by == ()
    done = client.post(
        f"/release/{release_id}/approve",
        data={"csrf": csrf.group(1), "manifest_sha256": status.manifest_sha256},
        headers=origin,
    )
    assert done.status_code in (302, 303), done.text
    after = show_release(review.store.backend, review.store.settings.stewards, release_id)
    assert after.approved_by == ("steward0",) and after.state == "review"  # 1 of 2
    assert "Your approval of the release was signed" in client.get(done.headers["location"]).text
