"""Helpers for the release/store tests and benchmarks: synthetic agents, stewards, stores (no mocks)."""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from devkit.components import require
from protocol import (
    NO_PREVIOUS_BATCH,
    BatchManifest,
    BatchManifestV1,
    ConsentReceiptRef,
    LedgerCheckpointRef,
    SealedBatch,
    SigningKey,
    b64encode,
    build_header,
    build_manifest,
    encode_payload,
    manifest_digest,
    rekey_app_tokens,
    seal_batch,
    sign_approval,
)
from protocol.categories import Category, KeyClass, MouseButton
from protocol.windows import AnyWindow, AppFocus, AppsWindow, KeyboardWindow, MouseWindow
from store.backend import StoreBackend
from store.keys import StoreKeys
from store.settings import StoreSettings
from vault.policy import StewardConfig

PG_DSN_ENV = "CONSENTRY_TEST_PG_DSN"
DEFAULT_PG_DSN = "postgresql://consentry:consentry@127.0.0.1:5432/consentry_test"
T0 = 1_700_000_000  # a fixed UTC time: tests never depend on the wall clock's date


def pg_dsn() -> str:
    return os.environ.get(PG_DSN_ENV, DEFAULT_PG_DSN)


def postgres_available(dsn: str | None = None) -> bool:
    try:
        with psycopg.connect(dsn or pg_dsn(), connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def receipt_ref(category: Category, receipt_id: str, granted_at: int = T0 - 3600) -> ConsentReceiptRef:
    return ConsentReceiptRef(
        receipt_id=receipt_id,
        category=category,
        notice_id="consentry-notice",
        notice_version="1",
        notice_sha256="ab" * 32,
        lawful_basis="consent",
        purposes=("work-pattern-research",),
        granted_at=granted_at,
    )


def make_records(n: int, *, start: int = T0, receipts: dict[Category, str] | None = None) -> list[AnyWindow]:
    """``n`` windows cycling through keyboard, mouse and apps (60 s apart), with realistic field values."""
    receipts = receipts or {c: f"r-{c.value}" for c in Category}
    records: list[AnyWindow] = []
    for i in range(n):
        t = start + 60 * i
        kind = i % 3
        if kind == 0:
            records.append(
                KeyboardWindow(
                    start=t,
                    end=t + 60,
                    receipt_id=receipts[Category.KEYBOARD],
                    key_counts={KeyClass.LETTER: 120 + i % 7, KeyClass.SPACE: 20, KeyClass.EDITING: 3},
                    iki_histogram=(1, 10, 30, 40, 20, 10, 5, 2, 1),
                    bursts=6,
                    longest_burst=40,
                    pauses=3,
                    correction_ratio=0.025,
                )
            )
        elif kind == 1:
            records.append(
                MouseWindow(
                    start=t,
                    end=t + 60,
                    receipt_id=receipts[Category.MOUSE],
                    clicks={MouseButton.LEFT: 12, MouseButton.RIGHT: 1},
                    scroll_steps=30,
                    moves=400,
                    distance_px=5321.5,
                    idle_seconds=12.0,
                )
            )
        else:
            records.append(
                AppsWindow(
                    start=t,
                    end=t + 60,
                    receipt_id=receipts[Category.APPS],
                    focus=(
                        AppFocus(app="cat:ide", seconds=40.0),
                        AppFocus(app=f"anon:{i:016x}", seconds=20.0),
                    ),
                    switches=4,
                )
            )
    return records


def as_version_1(manifest: BatchManifest, device_kid: str) -> BatchManifestV1:
    """``manifest`` as an agent before manifest version 2 built it: version 1, naming ``device_kid``."""
    return BatchManifestV1.model_validate({**manifest.model_dump(mode="json"), "v": 1, "device_kid": device_kid})


@dataclass
class Agent:
    """A simulated workstation: a device key and its manifest chain."""

    device: SigningKey = field(default_factory=SigningKey.generate)
    subject: str = field(default_factory=lambda: "subj-" + secrets.token_hex(8))
    seq: int = 0
    prev: str = NO_PREVIOUS_BATCH
    ledger_seq: int = 5
    ledger_head: str = "cd" * 32

    def next_batch(
        self,
        n_records: int = 12,
        *,
        start: int = T0,
        created: int = T0 + 86_400,
        receipts: dict[Category, str] | None = None,
        version: int = 2,
    ) -> tuple[BatchManifest, bytes]:
        """The next batch of this device; ``version=1`` builds it as an agent before manifest version 2 did."""
        batch_id = uuid.uuid4().hex
        receipts = receipts or {c: f"r-{c.value}" for c in Category}
        source = make_records(n_records, start=start, receipts=receipts)
        released = rekey_app_tokens(source, secrets.token_bytes(32))
        payload = encode_payload(batch_id, released)
        self.seq += 1
        manifest: BatchManifest = build_manifest(
            batch_id=batch_id,
            subject=self.subject,
            seq=self.seq,
            prev_batch_hash=self.prev,
            records=released,
            receipts=[receipt_ref(c, receipts[c]) for c in Category],
            payload=payload,
            created=created,
            source_records=source,
        )
        if version == 1:
            manifest = as_version_1(manifest, self.device.kid)
        self.prev = manifest_digest(manifest)
        return manifest, payload

    def seal(
        self, manifest: BatchManifest, payload: bytes, store_public: bytes, *, created: int = T0 + 90_000
    ) -> SealedBatch:
        checkpoint = LedgerCheckpointRef(seq=self.ledger_seq, head_hash=self.ledger_head)
        header = build_header(manifest, checkpoint, device_kid=self.device.kid, created=created)
        return seal_batch(header, payload, store_public, self.device)


@dataclass
class Stewards:
    signers: list[SigningKey]
    required: int

    @classmethod
    def make(cls, n: int = 3, required: int = 2) -> Stewards:
        return cls([SigningKey.generate() for _ in range(n)], required)

    def config(self, extra: dict[str, str] | None = None) -> StewardConfig:
        keys = {f"steward{i}": b64encode(s.public_bytes) for i, s in enumerate(self.signers)}
        keys.update(extra or {})
        return StewardConfig(keys=keys, approvals_required=self.required)

    def approvals(self, manifest: BatchManifest, count: int | None = None, *, created: int = T0 + 87_000) -> list:
        digest = manifest_digest(manifest)
        return [
            sign_approval(s, manifest.batch_id, digest, "approve", created=created)
            for s in self.signers[: self.required if count is None else count]
        ]


class FixedClock:
    """A clock the test moves by hand."""

    def __init__(self, now: int = T0 + 100_000) -> None:
        self.t = now

    def now(self) -> int:
        return self.t


def settings_for(stewards: Stewards, **overrides: object) -> StoreSettings:
    return StoreSettings(stewards=stewards.config(), **overrides)  # type: ignore[arg-type]


@contextmanager
def open_test_backend(kind: str, tmp: Path) -> Iterator[StoreBackend]:
    """A fresh backend: a new folder, or a new PostgreSQL schema dropped afterwards."""
    if kind == "dir":
        from store.backends.dir import DirBackend

        backend: StoreBackend = DirBackend(tmp / "store-data")
        try:
            yield backend
        finally:
            backend.close()
        return
    from store.backends.postgres import PostgresBackend

    pg = PostgresBackend(pg_dsn(), schema="t_" + secrets.token_hex(6))
    try:
        yield pg
    finally:
        pg.drop_schema()
        pg.close()


def new_store_keys() -> StoreKeys:
    return StoreKeys.generate()


@dataclass
class Harness:
    """A real store: backend + keys + stewards, served by uvicorn on 127.0.0.1 in a thread."""

    backend: StoreBackend
    keys: StoreKeys
    stewards: Stewards
    settings: StoreSettings
    url: str

    def client(self, agent: Agent, **kwargs: object):  # -> StoreClient
        from kit.store_client import RetryPolicy, StoreClient

        kwargs.setdefault("retry", RetryPolicy(attempts=2, base_seconds=0.01, cap_seconds=0.05))
        return StoreClient(self.url, signer=agent.device, log_public_key=self.keys.log.public_bytes, **kwargs)  # type: ignore[arg-type]

    def steward_client(self, signer: SigningKey):
        from kit.store_client import StoreClient

        return StoreClient(self.url, signer=signer, role="steward", log_public_key=self.keys.log.public_bytes)

    def enroll(self, agent: Agent) -> None:
        import time

        from store.auth import issue_token

        with self.client(agent) as c:
            c.enroll(issue_token(self.backend, self.settings, int(time.time())))

    def approve(self, manifest: BatchManifest, count: int | None = None) -> None:
        for signer, approval in zip(self.stewards.signers, self.stewards.approvals(manifest, count), strict=False):
            with self.steward_client(signer) as c:
                c.decide(approval)

    def shippable(self, agent: Agent, n_records: int = 12) -> tuple[BatchManifest, SealedBatch]:
        """A batch whose manifest is submitted and approved, sealed to this store."""
        manifest, payload = agent.next_batch(n_records)
        with self.client(agent) as c:
            c.submit_manifest(manifest)
        self.approve(manifest)
        return manifest, agent.seal(manifest, payload, self.keys.seal.public_bytes)

    def stored(self) -> tuple[int, int, int]:
        """(stored batches, stored records, audit-log size): what "nothing was stored" compares."""
        with self.backend.transaction() as tx:
            batches = tx.stored_batches()
            records = (
                tx.count_rows("records") if self.backend.kind == "postgres" else sum(b.record_count for b in batches)
            )
            return len(batches), records, tx.log_size()


@contextmanager
def running_store(
    kind: str, tmp: Path, stewards: Stewards | None = None, *, key_dir: Path | None = None, **settings: object
) -> Iterator[Harness]:
    """A store on ``kind``; its keys in memory, or in ``key_dir`` as ``consentry store serve`` keeps them."""
    from store.app import create_app
    from store.server import ThreadedServer

    stewards = stewards or Stewards.make(3, 2)
    with open_test_backend(kind, tmp) as backend:
        keys = StoreKeys.load_or_create(key_dir)[0] if key_dir is not None else StoreKeys.generate()
        store_settings = settings_for(stewards, **settings)
        with ThreadedServer(create_app(backend, keys, store_settings)) as server:
            yield Harness(backend, keys, stewards, store_settings, server.url)


@pytest.fixture(params=["dir", "postgres"])
def backend_kind(request: pytest.FixtureRequest) -> str:
    """Each store test runs on both backends; PostgreSQL is skipped locally without a server, fatal in CI."""
    if request.param == "postgres":
        require(postgres_available(), "PostgreSQL", f"run: bash scripts/start-postgres.sh and set {PG_DSN_ENV}")
    return str(request.param)


def write_policy(path: Path, stewards: Stewards) -> Path:
    """A machine policy naming the stewards, for ``consentry store serve --policy``."""
    lines = ["[stewards]", f"approvals_required = {stewards.required}", "", "[stewards.keys]"]
    lines += [f'steward{i} = "{b64encode(s.public_bytes)}"' for i, s in enumerate(stewards.signers)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def free_port() -> int:
    """A free port on 127.0.0.1 that no other test process of a parallel run hands out (devkit/ports.py)."""
    from devkit.ports import free_port as _free_port

    return _free_port()


class StoreProcess:
    """``consentry store serve`` in a subprocess (the real CLI entry point), which tests may SIGKILL."""

    def __init__(
        self,
        data_dir: Path,
        policy: Path,
        *,
        backend: str,
        port: int,
        schema: str = "consentry",
        tls: tuple[Path, Path] | None = None,  # (certificate, key) PEM files: serve https
        extra: tuple[str, ...] = (),
        dsn: str | None = None,  # PostgreSQL: this server instead of the test cluster's (pg_dsn())
    ) -> None:
        import sys

        self.port = port
        self.data_dir = data_dir
        self.tls = tls
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
        self.env = {k: v for k, v in os.environ.items() if k != "CONSENTRY_STORE_DSN"}
        self.args = [
            sys.executable,
            "-c",
            "from admin.store_cmd import store; store()",
            "serve",
            "--backend",
            backend,
            "--data",
            str(data_dir),
            "--policy",
            str(policy),
            "--port",
            str(port),
            "--schema",
            schema,
        ]
        if backend == "postgres":
            self.env["CONSENTRY_STORE_DSN"] = dsn or pg_dsn()  # never in argv: every account reads that
        if tls is not None:
            self.args += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
        self.args += list(extra)
        self.proc: object = None
        self.log = data_dir / f"serve-{port}.log"

    def start(self, timeout: float = 120.0) -> StoreProcess:
        import ssl
        import subprocess
        import time

        import httpx

        # ``timeout`` is generous: it waits for the server to answer, it times nothing; on a machine loaded
        # by a parallel test run, starting Python with the store's libraries can take tens of seconds.
        root = Path(__file__).resolve().parent.parent
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log.open("ab")
        verify = ssl.create_default_context(cafile=str(self.tls[0])) if self.tls else True
        self.proc = subprocess.Popen(
            self.args, cwd=root, env=self.env, stdout=log, stderr=log, stdin=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:  # type: ignore[attr-defined]
                raise RuntimeError(f"store exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/v1/health", timeout=1.0, verify=verify).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError("store did not become ready")

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, in-flight requests die mid-way."""
        if self.proc is not None and self.proc.poll() is None:  # type: ignore[attr-defined]
            self.proc.kill()  # type: ignore[attr-defined]
            self.proc.wait()  # type: ignore[attr-defined]

    def stop(self) -> None:
        import subprocess

        if self.proc is not None and self.proc.poll() is None:  # type: ignore[attr-defined]
            self.proc.terminate()  # type: ignore[attr-defined]
            try:
                self.proc.wait(timeout=10)  # type: ignore[attr-defined]
            except subprocess.TimeoutExpired:
                self.kill()
