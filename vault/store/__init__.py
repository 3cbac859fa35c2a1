"""The on-prem store: HTTP service, storage backends, audit log, export, and the agent's client.

Agent side (the lead's shipping code)::

    from vault.store import StoreClient, JsonlReceiptSink
    with StoreClient(policy.store.url, signer=vault.device_key,
                     log_public_key=b64decode(policy.store.log_key),
                     receipts=JsonlReceiptSink(layout.home / "receipts.jsonl")) as client:
        client.enroll(token)                         # once, with IT's one-time token
        client.submit_manifest(manifest)             # after the employee's hold passed
        client.batch_status(manifest.batch_id)       # poll until .state == "approved" (or "rejected")
        receipt = client.upload(seal_batch(...))     # verified LogReceipt; retries are safe
        client.submit_checkpoint(sign_checkpoint(vault.device_key, seq, head, created=now))
        client.request_erasure(sign_erasure(vault.device_key, uuid4().hex, subject, created=now))

Store side::

    backend = open_backend("dir", data_dir=DATA)    # or open_backend("postgres", dsn=DSN)
    keys, _ = StoreKeys.load_or_create(DATA / "keys")
    app = create_app(backend, keys, StoreSettings(stewards=policy.stewards))
    serve(app, "127.0.0.1", 8750)                    # or ThreadedServer(app).start()

Errors: every rejection is a ``vault.store.errors.StoreError`` subclass with ``.status`` and ``.code``,
raised the same way on both sides of the wire. This package never imports click, pynput, watchdog or Xlib.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vault.store.app import create_app
from vault.store.auth import issue_token
from vault.store.backend import StoreBackend, StoreTx
from vault.store.backends import open_backend
from vault.store.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    StoreError,
    Unauthenticated,
    Unavailable,
    Unprocessable,
    UntrustedStore,
)
from vault.store.export import ExportResult, export_parquet
from vault.store.keys import StoreKeys
from vault.store.models import BatchReview, BatchStatus, CheckpointAck, EnrollResponse, QueueItem, StoreInfo
from vault.store.server import ThreadedServer, serve
from vault.store.settings import Clock, StoreSettings, SystemClock

if TYPE_CHECKING:
    from vault.store.client import JsonlReceiptSink, ReceiptSink, RetryPolicy, StoreClient

# The client is imported on first use: httpx imports click when it is installed, and the store server
# (which never needs the client) must not pull that in.
_LAZY = {"JsonlReceiptSink", "ReceiptSink", "RetryPolicy", "StoreClient"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from vault.store import client

        return getattr(client, name)
    raise AttributeError(f"module 'vault.store' has no attribute {name!r}")


__all__ = [
    "BadRequest",
    "BatchReview",
    "BatchStatus",
    "CheckpointAck",
    "Clock",
    "Conflict",
    "EnrollResponse",
    "ExportResult",
    "Forbidden",
    "JsonlReceiptSink",
    "NotFound",
    "PayloadTooLarge",
    "QueueItem",
    "ReceiptSink",
    "RetryPolicy",
    "StoreBackend",
    "StoreClient",
    "StoreError",
    "StoreInfo",
    "StoreKeys",
    "StoreSettings",
    "StoreTx",
    "SystemClock",
    "ThreadedServer",
    "Unauthenticated",
    "Unavailable",
    "Unprocessable",
    "UntrustedStore",
    "create_app",
    "export_parquet",
    "issue_token",
    "open_backend",
    "serve",
]
