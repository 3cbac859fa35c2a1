"""The on-prem store: the HTTP service, its storage backends, audit log, export, and its CLI.

It never runs on a workstation and never touches an employee's vault. The wire formats it shares with
agents are in ``protocol`` (``protocol.store_api``, ``protocol.store_errors``); the agent's client is
``kit.store_client``. Its dependencies (fastapi, uvicorn, psycopg, pyarrow) come with
``pip install 'consentry[store]'``; ``admin.store_cmd`` and ``admin.steward_cmd`` import them only when a
command needs them, so ``consentry --help`` and the steward's tools work on a workstation install.

    backend = open_backend("dir", data_dir=DATA)    # or open_backend("postgres", dsn=DSN)
    keys, _ = StoreKeys.load_or_create(DATA / "keys")
    app = create_app(backend, keys, StoreSettings(stewards=policy.stewards))
    serve(app, "127.0.0.1", 8750)                    # or ThreadedServer(app).start()

Errors: every rejection is a ``protocol.store_errors.StoreError`` subclass with ``.status`` and ``.code``,
raised the same way on both sides of the wire. This package never imports pynput, watchdog or Xlib.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocol.lazy import lazy_exports

# name -> module: resolved on first use (PEP 562), so importing one submodule stays cheap
_EXPORTS: dict[str, str] = {
    "create_app": "store.app",
    "issue_token": "store.auth",
    "StoreBackend": "store.backend",
    "StoreTx": "store.backend",
    "open_backend": "store.backends",
    "ExportResult": "store.export",
    "export_parquet": "store.export",
    "StoreKeys": "store.keys",
    "ThreadedServer": "store.server",
    "serve": "store.server",
    "StoreClock": "store.settings",
    "StoreSettings": "store.settings",
    "SystemClock": "store.settings",
}

__all__, __getattr__, __dir__ = lazy_exports("store", _EXPORTS)


if TYPE_CHECKING:  # for type checkers and IDEs; never executed
    from store.app import create_app
    from store.auth import issue_token
    from store.backend import StoreBackend, StoreTx
    from store.backends import open_backend
    from store.export import ExportResult, export_parquet
    from store.keys import StoreKeys
    from store.server import ThreadedServer, serve
    from store.settings import StoreClock, StoreSettings, SystemClock
