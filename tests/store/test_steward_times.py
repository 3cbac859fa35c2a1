"""One time format for stewards: everything a steward reads (the steward commands' text and ``--json``,
``store verify-log``, the review page with its review sets and releases) names a moment as UTC ISO to the
second, ``2026-12-05T13:20:09Z``; never epoch seconds, milliseconds or microseconds, never another form."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from click.testing import CliRunner

from admin.steward_cmd import steward
from admin.store_cmd import store as store_command
from devkit.store_kit import Agent, Stewards, running_store
from protocol import b64encode, manifest_digest, sign_approval
from protocol.keyfile import write_key_file
from protocol.timeutil import utc_text
from tests.store.test_page_steward import Review, _session, review  # noqa: F401  (the page fixture)
from tests.store.test_page_steward_releases import _release

ISO = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
# Anything that looks like a moment: a date with a time, whatever follows (seconds, fraction, zone).
MOMENT = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{1,2}:\d{2}(?::\d{2})?(?:[.,]\d+)?(?:\s?(?:Z|UTC|GMT|[+-]\d{2}:?\d{2}|[A-Z]{3,4}\b))?"
)
# A bare count of seconds (or ms, µs) since 1970: 9 to 16 digits, not inside an id, hash or key.
EPOCH = re.compile(r"(?<![0-9A-Za-z+/=_-])\d{9,16}(?:\.\d+)?(?![0-9A-Za-z+/=_-])")


def steward_times(text: str, where: str) -> int:
    """Fail on an epoch number or a moment not in UTC ISO to the second; return how many moments ``text`` names."""
    assert not EPOCH.findall(text), f"{where}: epoch numbers {EPOCH.findall(text)}"
    moments = [m.group(0) for m in MOMENT.finditer(text)]
    wrong = [m for m in moments if not ISO.fullmatch(m)]
    assert not wrong, f"{where}: moments not in UTC ISO to the second: {wrong}"
    return len(moments)


def test_the_checker_catches_every_other_form() -> None:
    for bad in ("1700000000", "at 1700000000.5", "1700000000123", "2026-12-05 13:20 UTC", "2026-12-05 13:20:09",
                "2026-12-05T13:20:09.123456Z", "2026-12-05T13:20:09+00:00", "2026-12-05 14:20 CET"):  # fmt: skip
        try:
            steward_times(bad, "sample")
        except AssertionError:
            continue
        raise AssertionError(f"not caught: {bad}")
    assert steward_times("from 2026-12-05T13:20:09Z on 2026-12-05, batch 1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d", "ok") == 1


def _html_text(html: str) -> str:
    return re.sub(r"<[^>]+>", " ", html)


def test_steward_commands_and_verify_log_name_every_moment_in_utc_iso(home: Path, tmp_path: Path) -> None:
    stewards = Stewards.make(2, 1)
    key = tmp_path / "s.key"
    write_key_file(key, "ed25519", stewards.signers[0].private_bytes())
    with running_store("dir", tmp_path / "s", stewards) as live:
        ids = []
        for _ in range(2):
            agent = Agent()
            live.enroll(agent)
            manifest, _ = agent.next_batch()
            with live.client(agent) as client:
                client.submit_manifest(manifest)
            ids.append(manifest.batch_id)
        other = stewards.signers[1]
        with live.steward_client(other) as client:  # a decision, so 'show' lists one with its time
            digest = manifest_digest(client.review(ids[0]).manifest)
            client.decide(sign_approval(other, ids[0], digest, "reject", created=int(time.time()), reason="test"))
        common = ["--key-file", str(key), "--store-url", live.url]
        log_key = b64encode(live.keys.log.public_bytes)

        def run(group, args: list[str]) -> str:
            result = CliRunner().invoke(group, args, catch_exceptions=False)
            assert result.exit_code == 0, result.output
            return result.output

        seen = 0
        for args in (["queue"], ["queue", "--json"], ["show", ids[0]], ["show", ids[0], "--json"],
                     ["set", "show", "2023-11-14"], ["reject", ids[1], "--reason", "test", "--json"]):  # fmt: skip
            seen += steward_times(run(steward, [*args, *common]), " ".join(args))
        for args in ([], ["--json"], ["--full", "--key-file", str(key)]):
            out = run(store_command, ["verify-log", "--store-url", live.url, "--log-key", log_key, *args])
            seen += steward_times(out, f"verify-log {args}")
            assert ISO.search(out), out
        queued = json.loads(run(steward, ["queue", "--json", *common]))
        assert {q["submitted_at"] for q in queued} <= {utc_text(time.time() + d) for d in range(-120, 1)}
        shown = json.loads(run(steward, ["show", ids[0], "--json", *common]))
        assert ISO.fullmatch(shown["manifest"]["period_start"]) and ISO.fullmatch(shown["decisions"][0]["created"])
        assert all(ISO.fullmatch(r["granted_at"]) for r in shown["manifest"]["consent_receipts"])
    assert seen >= 20, seen


def test_the_review_page_its_sets_and_releases_name_every_moment_in_utc_iso(review: Review) -> None:  # noqa: F811
    store = review.store
    batch_id = review.manifest.batch_id
    other = store.stewards.signers[1]
    with store.steward_client(other) as client:  # a decision with its time on the batch's page
        digest = manifest_digest(client.review(batch_id).manifest)
        client.decide(sign_approval(other, batch_id, digest, "approve", created=int(time.time())))
        agent = Agent()
        store.enroll(agent)
    manifest, _ = agent.next_batch()
    with store.client(agent) as client:
        client.submit_manifest(manifest)
    with store.steward_client(other) as client:  # a set rejected, so its page lists a rejection and its time
        group = next(g for g in client.review_set_groups())
        view = client.create_review_set(group.key)
        from protocol.review_set import sign_set_rejection
        from store.review_sets import recomputed_members

        client.reject_review_set(
            sign_set_rejection(other, view.set_id, recomputed_members(view), "test", created=int(time.time()))
        )
    release_id = _release(review)
    page = _session(review)
    seen = 0
    for path in ("/", f"/batch/{batch_id}", "/sets", f"/set/{view.set_id}", "/releases", f"/release/{release_id}"):
        answer = page.get(path)
        assert answer.status_code == 200, (path, answer.text)
        seen += steward_times(_html_text(answer.text), path)
    assert seen >= 8, seen
