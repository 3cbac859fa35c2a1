"""Review sets at fleet scale: 1,000 pending batches from 100 simulated devices approved in one act,
against 1,000 single approvals of 1,000 other batches, and the same for rejecting, alternated in the same
run on the same store.

Timed, per round:
  set    the store's ``ReviewSets.approve``: verify the steward's signature, rebuild the set's tree,
         verify each batch's inclusion proof, count M-of-N per batch, record 1,000 inclusions and their
         audit-log entries, commit (in-process, as the route runs it)
  single the store's ``StoreService.decide`` called 1,000 times, one signed approval each (same work
         per batch, one request each; the steward's signing is not timed in either)
  set-reject     the store's ``ReviewSets.reject``: the same checks, then 1,000 rejections recorded as
                 inclusion proofs under one signed set rejection, with their audit-log entries (each
                 naming the reason by its salted digest), commit
  single-reject  ``StoreService.decide`` called 1,000 times, one signed rejection (with its reason) each
  page   the review page's GET /set/<id>: fetch the set from a real store over HTTP (1,000 manifests),
         recompute every manifest hash and the root, draw the sample and render the HTML
Targets: set, set-reject and page each under 2 s on this machine.

    python benchmarks/bench_review_set.py [--devices 100] [--per-device 10] [--rounds 2] [--backend dir|postgres]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devkit.store_kit import Agent, Stewards, open_test_backend
from protocol import manifest_digest, sign_approval
from protocol.manifest import NO_PREVIOUS_BATCH
from protocol.review_set import sign_set_approval, sign_set_rejection
from protocol.review_set_api import group_key
from store.app import create_app
from store.auth import Principal
from store.backend import DeviceRow, StoreBackend
from store.keys import StoreKeys
from store.review_sets import ReviewSets, recomputed_members
from store.server import ThreadedServer
from store.service import StoreService
from store.settings import StoreSettings, SystemClock


def _submit_round(service: StoreService, agents: list[Agent], per_device: int) -> list:
    manifests = []
    for agent in agents:
        who = Principal("device", agent.device.kid, agent.device.public_bytes, agent.device.kid)
        for _ in range(per_device):
            manifest, _ = agent.next_batch(12)
            service.submit_manifest(who, manifest)
            manifests.append(manifest)
    return manifests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--per-device", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2, help="rounds of each kind, alternated")
    parser.add_argument("--backend", choices=("dir", "postgres"), default="dir")
    args = parser.parse_args()
    n = args.devices * args.per_device
    stewards = Stewards.make(2, 1)
    signer = stewards.signers[0]
    steward = Principal("steward", signer.kid, signer.public_bytes, "steward0")
    settings = StoreSettings(stewards=stewards.config(), queue_limit=10_000)
    keys = StoreKeys.generate()
    kinds = ("set", "single", "set-reject", "single-reject")
    timings: dict[str, list[float]] = {k: [] for k in (*kinds, "page")}
    with tempfile.TemporaryDirectory() as tmp, open_test_backend(args.backend, Path(tmp)) as backend:
        service = StoreService(backend, keys, settings, SystemClock())
        sets = ReviewSets(backend, keys, settings, SystemClock())
        agents = [Agent() for _ in range(args.devices)]
        _enroll(backend, agents)
        with ThreadedServer(create_app(backend, keys, settings)) as server:
            for round_no in range(args.rounds):
                for kind in kinds if round_no % 2 == 0 else tuple(reversed(kinds)):
                    manifests = _submit_round(service, agents, args.per_device)
                    if kind.startswith("single"):
                        decision = "approve" if kind == "single" else "reject"
                        reason = None if decision == "approve" else REASON
                        decisions = [
                            sign_approval(signer, m.batch_id, manifest_digest(m), decision,  # type: ignore[arg-type]
                                          created=int(time.time()), reason=reason)
                            for m in manifests
                        ]  # fmt: skip
                        start = time.perf_counter()
                        for a in decisions:
                            service.decide(steward, a.batch_id, a)
                        timings[kind].append(time.perf_counter() - start)
                        continue
                    view = sets.create(steward, group_key(manifests[0]))
                    assert len(view.entries) == n, f"the set has {len(view.entries)} batches, not {n}"
                    members = recomputed_members(view)
                    if kind == "set":
                        timings["page"].append(_page_time(server.url, signer, view.set_id))
                        approval = sign_set_approval(signer, view.set_id, members, created=int(time.time()))
                        start = time.perf_counter()
                        outcome = sets.approve(steward, view.set_id, approval)
                        timings["set"].append(time.perf_counter() - start)
                        assert outcome.approved == n, outcome.skipped
                    else:
                        rejection = sign_set_rejection(signer, view.set_id, members, REASON, created=int(time.time()))
                        start = time.perf_counter()
                        rejected = sets.reject(steward, view.set_id, rejection)
                        timings["set-reject"].append(time.perf_counter() - start)
                        assert rejected.rejected == n, rejected.skipped
    s, one, rs, rone, page = (statistics.median(timings[k]) for k in (*kinds, "page"))
    print(f"{n} batches from {args.devices} devices, backend {args.backend}, {args.rounds} rounds each (alternated)")
    print(f"  set approval, store verify+record:  median {s:.3f} s  (rounds: {_fmt(timings['set'])})  target < 2 s")
    print(f"  {n} single approvals, store:         median {one:.3f} s  (rounds: {_fmt(timings['single'])})")
    print(
        f"  set rejection, store verify+record: median {rs:.3f} s  (rounds: {_fmt(timings['set-reject'])})  target < 2 s"
    )
    print(f"  {n} single rejections, store:        median {rone:.3f} s  (rounds: {_fmt(timings['single-reject'])})")
    print(
        f"  review page renders the set:         median {page:.3f} s  (rounds: {_fmt(timings['page'])})  target < 2 s"
    )
    print(f"  ratio single/set (store time for the same {n} approvals): {one / s:.2f}x")
    print(f"  ratio single/set (store time for the same {n} rejections): {rone / rs:.2f}x")


REASON = "App tokens of an unlisted tool appear in every batch"


def _page_time(url: str, signer, set_id: str) -> float:
    from admin.review_page import StewardPage
    from kit.store_client import StoreClient
    from kit.web.server import Request

    page = StewardPage(lambda: StoreClient(url, signer=signer, role="steward"), signer, lambda *_: "")
    start = time.perf_counter()
    response = page.handle(Request("GET", f"/set/{set_id}", {}, csrf="0" * 32, nonce="n"))
    elapsed = time.perf_counter() - start
    assert response.status == 200 and b"set-root" in response.body, response.body[:300]
    return elapsed


def _enroll(backend: StoreBackend, agents: list[Agent]) -> None:
    with backend.transaction() as tx:
        for agent in agents:
            tx.insert_device(
                DeviceRow(
                    agent.device.kid, agent.device.public_bytes, int(time.time()), 0, NO_PREVIOUS_BATCH, None, None
                )
            )


def _fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.3f}" for v in values)


if __name__ == "__main__":
    main()
