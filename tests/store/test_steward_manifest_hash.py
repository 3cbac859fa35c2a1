"""``consentry steward approve`` signs the hash of the manifest it was shown, never a hash the server names."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from click.testing import CliRunner

from admin.steward_cmd import steward
from devkit.store_kit import Agent
from protocol import manifest_digest
from protocol.manifest import BatchManifest


class _LyingStore(ThreadingHTTPServer):
    """Serves one batch review whose status names ``claimed_sha256``; records every request it gets."""

    def __init__(self, manifest: BatchManifest, claimed_sha256: str, *, any_batch: bool = False) -> None:
        self.manifest = manifest
        self.claimed_sha256 = claimed_sha256
        self.any_batch = any_batch  # answer a review of any batch id with this one
        self.requests: list[tuple[str, str]] = []
        super().__init__(("127.0.0.1", 0), _Handler)

    def review_body(self) -> bytes:
        status = {
            "batch_id": self.manifest.batch_id,
            "state": "review",
            "seq": self.manifest.seq,
            "manifest_sha256": self.claimed_sha256,
            "approvals": 0,
            "approvals_required": 1,
        }
        manifest = self.manifest.model_dump(mode="json")
        review = {"status": status, "manifest": manifest, "privacy_checks": manifest["privacy_checks"], "decisions": []}
        return json.dumps(review).encode()


class _Handler(BaseHTTPRequestHandler):
    server: _LyingStore

    def log_message(self, *args: object) -> None:  # keep the test output clean
        pass

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.server.requests.append(("GET", self.path))
        wanted = f"/v1/steward/batches/{self.server.manifest.batch_id}"
        if self.path == wanted or (self.server.any_batch and self.path.startswith("/v1/steward/batches/")):
            self._answer(200, self.server.review_body())
        else:
            self._answer(404, b'{"error": {"code": "unknown_batch", "message": "no such batch"}}')

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        self.server.requests.append(("POST", self.path))
        self._answer(500, b'{"error": {"code": "internal", "message": "the test store takes no decisions"}}')


@contextmanager
def lying_store(manifest: BatchManifest, claimed_sha256: str, *, any_batch: bool = False) -> Iterator[_LyingStore]:
    server = _LyingStore(manifest, claimed_sha256, any_batch=any_batch)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _steward_key(tmp_path: Path) -> Path:
    key = tmp_path / "steward.key"
    result = CliRunner().invoke(steward, ["init", "--key-file", str(key)])
    assert result.exit_code == 0, result.output
    return key


def test_steward_approve_refuses_a_hash_that_is_not_the_shown_manifests(home: Path, tmp_path: Path) -> None:
    manifest, _ = Agent().next_batch()
    other, _ = Agent().next_batch()  # a real manifest's hash, just not this one's
    key = _steward_key(tmp_path)
    with lying_store(manifest, manifest_digest(other)) as server:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        for verb, extra in (("approve", []), ("reject", ["--reason", "too few subjects"])):
            result = CliRunner().invoke(
                steward, [verb, manifest.batch_id, "--key-file", str(key), "--store-url", url, *extra]
            )
            assert result.exit_code == 1, result.output
            assert "does not match the manifest" in result.output and "nothing was signed" in result.output
            assert "Traceback" not in result.output
        assert [m for m, _ in server.requests] == ["GET", "GET"]  # no decision was ever sent


def test_steward_approve_refuses_a_review_of_another_batch(home: Path, tmp_path: Path) -> None:
    manifest, _ = Agent().next_batch()
    other, _ = Agent().next_batch()
    key = _steward_key(tmp_path)
    # The review of `manifest.batch_id` is answered with `other`, whose hash is consistent.
    with lying_store(other, manifest_digest(other), any_batch=True) as server:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        result = CliRunner().invoke(steward, ["approve", manifest.batch_id, "--key-file", str(key), "--store-url", url])
        assert result.exit_code == 1 and "another batch" in result.output, result.output
        assert [m for m, _ in server.requests] == ["GET"]
